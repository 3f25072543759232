/**
 * The client at MQTT 5.0 against scripted peers, for what no broker here does: a broker that
 * speaks only MQTT 3.1.1 (as RabbitMQ 3.10 and NATS 2.9 of the interop matrix do), a server
 * DISCONNECT with reasons Mosquitto 2.0.11 never sends.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type CloseEventDetail,
  connect,
  ConnectionRefusedError,
  encodePacket,
  MqttError,
  type Packet,
  ServerDisconnectError,
  type Transport,
} from "../mod.ts";
import { within } from "./client_helpers.ts";

/** The protocol level of a CONNECT written by the client (one-byte Remaining Length). */
function levelOf(connect: Uint8Array): number {
  // Fixed header (2), protocol name length (2), "MQTT" (4), then the level (section 3.1.2.2).
  return connect[8];
}

/**
 * A broker that speaks only 3.1.1: a level 5 CONNECT gets the 3.1.1 CONNACK 0x01
 * (unacceptable protocol version, 3.1.1 MQTT-3.1.2-2) and the connection closes; a level 4
 * CONNECT is accepted. Records the levels it saw.
 */
function broker311(levels: number[]): () => Promise<Transport> {
  return () => {
    let out!: ReadableStreamDefaultController<Uint8Array>;
    let open = true;
    const readable = new ReadableStream<Uint8Array>({ start: (c) => void (out = c) });
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (!open || chunk[0] !== 0x10) return;
        const level = levelOf(chunk);
        levels.push(level);
        if (level === 4) {
          out.enqueue(new Uint8Array([0x20, 0x02, 0x00, 0x00]));
          return;
        }
        out.enqueue(new Uint8Array([0x20, 0x02, 0x00, 0x01]));
        open = false;
        out.close();
      },
      // The client is done writing (after its DISCONNECT): the broker hangs up.
      close: () => {
        if (open) out.close();
        open = false;
      },
    });
    return Promise.resolve({
      readable,
      writable,
      close: () => {
        if (open) out.close();
        open = false;
      },
    });
  };
}

Deno.test("5.0 against a 3.1.1-only broker: a typed refusal saying the broker does not speak MQTT 5.0", async () => {
  const levels: number[] = [];
  const error = await connect("mqtt://old.invalid", {
    protocolVersion: 5,
    transport: broker311(levels),
  }).then(() => undefined, (e) => e);
  assert.ok(error instanceof ConnectionRefusedError, String(error));
  assert.equal(error.code, "CONNECTION_REFUSED");
  assert.equal(error.reasonCode, 0x84);
  assert.equal(error.returnCode, 1);
  assert.match(error.message, /does not speak MQTT 5\.0/);
  assert.deepEqual(levels, [5]);
});

Deno.test('protocolVersion "auto" against a 3.1.1-only broker: tries 5.0, then agrees on 3.1.1', async () => {
  const levels: number[] = [];
  const client = await connect("mqtt://old.invalid", {
    protocolVersion: "auto",
    sessionExpiryInterval: 60, // a 5.0 option, left out of the 3.1.1 CONNECT
    transport: broker311(levels),
  });
  try {
    assert.equal(client.protocolVersion, 4);
    assert.ok(client.connected);
    assert.deepEqual(levels, [5, 4]);
  } finally {
    await client.close();
  }
});

Deno.test('protocolVersion "auto" with enhanced authentication does not fall back to 3.1.1 without it', async () => {
  const levels: number[] = [];
  const error = await connect("mqtt://old.invalid", {
    protocolVersion: "auto",
    authenticationMethod: "SCRAM-SHA-256",
    onAuth: () => new Uint8Array(),
    reconnect: false,
    transport: broker311(levels),
  }).then(() => undefined, (e) => e);
  // Only the 5.0 CONNECT went out: a 3.1.1 one would have connected unauthenticated.
  assert.deepEqual(levels, [5]);
  assert.ok(error instanceof ConnectionRefusedError, String(error));
  assert.equal(error.reasonCode, 0x84);
  assert.match(error.message, /does not speak MQTT 5\.0/);
  assert.match(error.message, /enhanced authentication .* needs MQTT 5\.0/);
});

/** A 5.0 server that accepts every CONNECT and can end the latest connection with a DISCONNECT. */
class Server5 {
  connections = 0;
  /** Every chunk the client wrote, in order. */
  written: Uint8Array[] = [];
  #out: ReadableStreamDefaultController<Uint8Array> | undefined;
  #end: (() => void) | undefined;

  open = (): Promise<Transport> => {
    let out!: ReadableStreamDefaultController<Uint8Array>;
    let open = true;
    const readable = new ReadableStream<Uint8Array>({ start: (c) => void (out = c) });
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        this.written.push(chunk);
        if (!open || chunk[0] !== 0x10) return;
        this.connections++;
        this.#out = out;
        this.#end = close;
        out.enqueue(encodePacket({ type: "connack", sessionPresent: false, reasonCode: 0 }, {
          protocolVersion: 5,
        }));
      },
      // The client is done writing (after its DISCONNECT): the broker hangs up.
      close: () => close(),
    });
    const close = () => {
      if (open) out.close();
      open = false;
    };
    return Promise.resolve({ readable, writable, close });
  };

  /** Sends packets to the client on the latest connection. */
  send(...packets: Packet[]): void {
    for (const p of packets) this.#out!.enqueue(encodePacket(p, { protocolVersion: 5 }));
  }

  /** Sends DISCONNECT with `reasonCode` and `properties` and closes the connection (section 3.14). */
  disconnect(reasonCode: number, properties?: { reasonString?: string; serverReference?: string }) {
    const out = this.#out!;
    out.enqueue(
      encodePacket({ type: "disconnect", reasonCode: reasonCode as 0, properties }, {
        protocolVersion: 5,
      }),
    );
    this.#end!();
  }
}

function nextEvent(target: EventTarget, type: string): Promise<CloseEventDetail> {
  return new Promise((resolve) => {
    target.addEventListener(type, (e) => resolve((e as CustomEvent<CloseEventDetail>).detail), {
      once: true,
    });
  });
}

Deno.test("5.0 server DISCONNECT 0x8E session taken over: its reason in the disconnect event, and the client ends (fatal)", async () => {
  const server = new Server5();
  const client = await connect("mqtt://v5.invalid", {
    protocolVersion: 5,
    transport: server.open,
    reconnect: { minDelay: 1, maxDelay: 5 },
  });
  const dropped = nextEvent(client, "disconnect");
  const closed = nextEvent(client, "close");
  server.disconnect(0x8e, { reasonString: "another connection took the client id" });
  const detail = await within(dropped, "the disconnect event");
  assert.ok(detail.error instanceof ServerDisconnectError);
  assert.equal(detail.error.code, "SERVER_DISCONNECT");
  assert.equal(detail.reasonCode, 0x8e);
  assert.equal(detail.reasonString, "another connection took the client id");
  const end = await within(closed, "the close event");
  assert.equal(end.reasonCode, 0x8e);
  assert.equal(client.closed, true);
  assert.equal(server.connections, 1, "no reconnect after a session takeover");
});

Deno.test("5.0 server DISCONNECT 0x9C use another server: the serverReference in the event; fatal", async () => {
  const server = new Server5();
  const client = await connect("mqtt://v5.invalid", {
    protocolVersion: 5,
    transport: server.open,
    reconnect: { minDelay: 1, maxDelay: 5 },
  });
  const closed = nextEvent(client, "close");
  server.disconnect(0x9c, { serverReference: "mqtt://elsewhere:1883" });
  const end = await within(closed, "the close event");
  assert.equal(end.reasonCode, 0x9c);
  assert.equal(end.serverReference, "mqtt://elsewhere:1883");
  assert.equal(server.connections, 1);
});

Deno.test("5.0 server DISCONNECT 0x8B server shutting down: its reason in the event, and the client reconnects", async () => {
  const server = new Server5();
  const client = await connect("mqtt://v5.invalid", {
    protocolVersion: 5,
    transport: server.open,
    reconnect: { minDelay: 1, maxDelay: 5 },
  });
  try {
    const dropped = nextEvent(client, "disconnect");
    const back = nextEvent(client, "connect");
    server.disconnect(0x8b);
    const detail = await within(dropped, "the disconnect event");
    assert.equal(detail.reasonCode, 0x8b);
    assert.match(detail.error!.message, /server shutting down/);
    await within(back, "the reconnect");
    assert.equal(server.connections, 2);
  } finally {
    await client.close();
  }
});

Deno.test("5.0 publish properties the codec refuses reject the publish; the connection stays up", async () => {
  const server = new Server5();
  const client = await connect("mqtt://v5.invalid", {
    protocolVersion: 5,
    transport: server.open,
    reconnect: false,
  });
  try {
    // A lone surrogate is not well-formed UTF-8 (MQTT-1.5.4-1).
    await assert.rejects(
      client.publish("t", "x", { properties: { contentType: "bad \ud800" } }),
      (err) => err instanceof MqttError && err.code === "INVALID_UTF8",
    );
    // Refused before anything was written: nothing fails the connection a moment later.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(client.connected);
  } finally {
    await client.close();
  }
});

Deno.test("5.0: a QoS 2 PUBLISH beyond our receiveMaximum: DISCONNECT 0x93 reaches the server, the connection ends", async () => {
  const server = new Server5();
  const client = await connect("mqtt://v5.invalid", {
    protocolVersion: 5,
    transport: server.open,
    receiveMaximum: 2,
    reconnect: false,
  });
  const closed = nextEvent(client, "close");
  const publish = (packetId: number): Packet => ({
    type: "publish",
    topic: "in",
    payload: new Uint8Array(),
    qos: 2,
    retain: false,
    dup: false,
    packetId,
  });
  server.send(publish(1), publish(2), publish(3));
  const end = await within(closed, "the client to close");
  assert.equal(end.error?.code, "RECEIVE_MAXIMUM_EXCEEDED");
  const last = server.written.at(-1)!;
  // DISCONNECT (0xE0), Remaining Length 1, Reason Code 0x93 (section 3.14.2.1).
  assert.deepEqual([...last.subarray(last.length - 3)], [0xe0, 0x01, 0x93]);
});

Deno.test("MQTT-3.8.3-4: noLocal on a shared subscription is refused before anything is sent", async () => {
  const server = new Server5();
  const client = await connect("mqtt://v5.invalid", {
    protocolVersion: 5,
    transport: server.open,
    reconnect: false,
  });
  try {
    const before = server.written.length;
    await assert.rejects(
      client.subscribe("$share/group/jobs/#", { qos: 1, noLocal: true }),
      (err) =>
        err instanceof MqttError && err.code === "INVALID_OPTION" &&
        /MQTT-3\.8\.3-4/.test(err.message),
    );
    assert.equal(server.written.length, before);
  } finally {
    await client.close();
  }
});

Deno.test("3.1.1: the 5.0 subscribe options and publish properties are refused with INVALID_OPTION naming them", async () => {
  const client = await connect("mqtt://old.invalid", { transport: broker311([]) });
  try {
    for (
      const [name, options] of [
        ["noLocal", { noLocal: true }],
        ["retainAsPublished", { retainAsPublished: false }],
        ["retainHandling", { retainHandling: 1 }],
      ] as const
    ) {
      await assert.rejects(
        client.subscribe("a", options),
        (err) =>
          err instanceof MqttError && err.code === "INVALID_OPTION" && err.message.startsWith(name),
      );
    }
    await assert.rejects(
      client.publish("a", "x", { properties: { contentType: "text/plain" } }),
      (err) =>
        err instanceof MqttError && err.code === "INVALID_OPTION" &&
        err.message.startsWith("properties"),
    );
  } finally {
    await client.close();
  }
});
