/**
 * Client behaviour checked against the embedded broker: the reconnect backoff
 * (grows while connections do not last, starts over after one that did) and
 * a publish too large for the protocol.
 */
import assert from "node:assert/strict";
import { Broker } from "../broker.ts";
import {
  connect,
  MqttError,
  ProtocolError,
  type ReconnectEventDetail,
  type Transport,
} from "../mod.ts";

/** A TCP transport whose latest connection the test can cut. */
function cuttable(port: number): { open: () => Promise<Transport>; cut: () => void } {
  let conn: Deno.Conn | undefined;
  const close = (c: Deno.Conn | undefined) => {
    try {
      c?.close();
    } catch {
      // already closed
    }
  };
  return {
    open: async () => {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      conn = c;
      return { readable: c.readable, writable: c.writable, close: () => close(c) };
    },
    cut: () => close(conn),
  };
}

Deno.test("reconnect: the backoff grows while each new connection is dropped at once", async () => {
  await using broker = new Broker();
  const { port } = await broker.listen({ port: 0 });
  const link = cuttable(port);
  const client = await connect(`mqtt://127.0.0.1:${port}`, {
    reconnect: { minDelay: 5, maxDelay: 10_000 },
    transport: link.open,
  });
  const attempts: number[] = [];
  const seen = Promise.withResolvers<void>();
  client.addEventListener("reconnect", (e) => {
    attempts.push((e as CustomEvent<ReconnectEventDetail>).detail.attempt);
  });
  client.addEventListener("connect", () => {
    if (attempts.length >= 4) seen.resolve();
    else link.cut(); // dropped right after CONNACK, as NATS does on a QoS 2 PUBLISH
  });
  link.cut();
  await seen.promise;
  await client.close();
  assert.deepEqual(attempts, [1, 2, 3, 4]);
});

Deno.test("reconnect: after a connection that lasted, the backoff starts over", async () => {
  await using broker = new Broker();
  const { port } = await broker.listen({ port: 0 });
  const link = cuttable(port);
  // minDelay 1 ms: a connection lasting 1 s (the floor of the stable time) counts as stable.
  const client = await connect(`mqtt://127.0.0.1:${port}`, {
    reconnect: { minDelay: 1, maxDelay: 50 },
    transport: link.open,
  });
  const attempts: number[] = [];
  let connects = 0;
  const done = Promise.withResolvers<void>();
  client.addEventListener("reconnect", (e) => {
    attempts.push((e as CustomEvent<ReconnectEventDetail>).detail.attempt);
  });
  client.addEventListener("connect", () => {
    connects++;
    if (connects === 1) link.cut(); // short-lived: the next attempt is number 2
    else if (connects === 2) setTimeout(link.cut, 1100); // lasted: the count starts over
    else done.resolve();
  });
  link.cut();
  await done.promise;
  await client.close();
  assert.deepEqual(attempts, [1, 2, 1]);
});

Deno.test("publish: a payload beyond the protocol's limit rejects with PACKET_TOO_LARGE and the connection stays", async () => {
  await using broker = new Broker();
  const { port } = await broker.listen({ port: 0 });
  await using client = await connect(`mqtt://127.0.0.1:${port}`);
  let disconnects = 0;
  client.addEventListener("disconnect", () => disconnects++);
  // 268,435,455 is the largest Remaining Length (section 2.2.3); topic and length prefix add 3.
  const huge = new Uint8Array(268_435_455 - 3 + 1);
  await assert.rejects(
    client.publish("t", huge, { qos: 0 }),
    (err: unknown) => err instanceof ProtocolError && err.code === "PACKET_TOO_LARGE",
  );
  const sub = await client.subscribe("t");
  await client.publish("t", "still connected", { qos: 1 });
  const first = await sub[Symbol.asyncIterator]().next();
  assert.equal(first.done, false);
  assert.equal(first.value?.text(), "still connected");
  assert.equal(disconnects, 0);
});

/** A transport fed by the test: what `serve` returns is what the "broker" answers to each write. */
function scripted(serve: (written: Uint8Array) => Uint8Array[]): () => Promise<Transport> {
  return () => {
    let out!: ReadableStreamDefaultController<Uint8Array>;
    const readable = new ReadableStream<Uint8Array>({ start: (c) => void (out = c) });
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        for (const reply of serve(chunk)) out.enqueue(reply);
      },
      // The client is done writing (after its DISCONNECT): the "broker" hangs up.
      close: () => out.close(),
    });
    // Like a tunnel that does not end its readable when closed.
    return Promise.resolve({ readable, writable, close: () => {} });
  };
}

Deno.test("connect: a transport whose close() leaves its readable open still times out", async () => {
  const started = performance.now();
  await assert.rejects(
    connect("mqtt://scripted.invalid", {
      connectTimeout: 200,
      transport: scripted(() => []), // never answers CONNECT
    }),
    (err: unknown) => err instanceof MqttError && err.code === "CONNECT_TIMEOUT",
  );
  assert.ok(performance.now() - started < 2000);
});

Deno.test("connect: a connection lost right after CONNACK rejects instead of returning a closed client", async () => {
  const transport = () => {
    // CONNACK (section 3.2: 0x20 0x02, flags 0, return code 0), then the end of the stream.
    const readable = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array([0x20, 0x02, 0x00, 0x00]));
        controller.close();
      },
    });
    return Promise.resolve({ readable, writable: new WritableStream(), close: () => {} });
  };
  await assert.rejects(
    connect("mqtt://scripted.invalid", { reconnect: false, transport }),
    (err: unknown) => err instanceof MqttError && err.code === "CONNECTION_CLOSED",
  );
});

Deno.test("subscribe: a retained message in the same chunk as the SUBACK reaches the new subscription", async () => {
  // CONNACK; SUBACK for id n granting QoS 0; a retained PUBLISH "r/x" = "hi" (section 3.3).
  const connack = new Uint8Array([0x20, 0x02, 0x00, 0x00]);
  const retained = [0x31, 0x07, 0x00, 0x03, 0x72, 0x2f, 0x78, 0x68, 0x69];
  const transport = scripted((bytes) => {
    if (bytes[0] === 0x10) return [connack];
    if (bytes[0] === 0x82) {
      const suback = [0x90, 0x03, bytes[2], bytes[3], 0x00];
      const first = bytes[8] === 0x23; // the filter "r/#" ('#' is its third byte) comes first
      return [new Uint8Array(first ? suback : [...suback, ...retained])];
    }
    return [];
  });
  const client = await connect("mqtt://scripted.invalid", { reconnect: false, transport });
  const broad = await client.subscribe("r/#");
  const narrow = await client.subscribe("r/x");
  assert.equal(narrow.buffered, 1, "the retained message reached the new subscription");
  assert.equal(broad.buffered, 1, "and the overlapping one too");
  await client.close();
});

Deno.test("publish: with qos0WhenOffline false, QoS 0 rejects during a reconnect attempt too", async () => {
  await using broker = new Broker();
  const { port } = await broker.listen({ port: 0 });
  const link = cuttable(port);
  let opens = 0;
  const attempting = Promise.withResolvers<void>();
  const silent = scripted(() => []); // reconnect attempts that never get a CONNACK
  const client = await connect(`mqtt://127.0.0.1:${port}`, {
    reconnect: { minDelay: 1, maxDelay: 5 },
    queue: { qos0WhenOffline: false },
    transport: () => {
      if (opens++ === 0) return link.open();
      attempting.resolve();
      return silent();
    },
  });
  link.cut();
  await attempting.promise;
  await new Promise((resolve) => setTimeout(resolve, 10)); // CONNECT sent, no CONNACK
  await assert.rejects(
    client.publish("t", "x"),
    (err: unknown) => err instanceof MqttError && err.code === "CONNECTION_CLOSED",
  );
  await client.close();
});

Deno.test("unsubscribe: messages held for a filter nobody subscribes to again stop the reading until it is unsubscribed", async () => {
  await using broker = new Broker();
  const { port } = await broker.listen({ port: 0 });
  const url = `mqtt://127.0.0.1:${port}`;
  const old = await connect(url, { clientId: "held-old", clean: false });
  await old.subscribe("old/#", { qos: 1 });
  await old.close();
  await using source = await connect(url, { clientId: "held-source" });
  for (let i = 0; i < 30; i++) await source.publish("old/x", String(i), { qos: 1 });
  // The resumed session delivers 30 messages for "old/#", which this program no longer wants.
  await using client = await connect(url, { clientId: "held-old", clean: false, bufferSize: 5 });
  await client.unsubscribe("old/#");
  const sub = await client.subscribe("new/x", { qos: 1 });
  await client.publish("new/x", "flows again", { qos: 1 });
  const next = await sub[Symbol.asyncIterator]().next();
  assert.equal(next.value?.text(), "flows again");
  await sub.unsubscribe();
});
