/**
 * Client behaviour checked against the embedded broker: the reconnect backoff
 * (grows while connections do not last, starts over after one that did) and
 * a publish too large for the protocol.
 */
import assert from "node:assert/strict";
import { Broker } from "../broker.ts";
import { connect, ProtocolError, type ReconnectEventDetail, type Transport } from "../mod.ts";

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
