/**
 * The client at MQTT 5.0 against scripted peers, for what no broker here does: a broker that
 * speaks only MQTT 3.1.1 (as RabbitMQ 3.10 and NATS 2.9 of the interop matrix do), a server
 * DISCONNECT with reasons Mosquitto 2.0.11 never sends.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, ConnectionRefusedError, type Transport } from "../mod.ts";

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
