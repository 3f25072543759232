/**
 * The broker's WebSocket link (lib/broker/websocket.ts): messages are read in
 * order whether they came before or after the read, the end and errors reach
 * the reader, a text frame (MQTT-6.0.0-1) or a flood nobody reads cuts the
 * peer off.
 *
 * @module
 */
import assert from "node:assert/strict";
import { WebSocketLink } from "../lib/broker/websocket.ts";

/** Enough of a server-side WebSocket for the link: handlers to call, sends and closes to see. */
function fakeSocket() {
  const socket = {
    binaryType: "blob",
    readyState: WebSocket.OPEN as number,
    bufferedAmount: 0,
    sent: [] as number[][],
    closes: [] as (number | undefined)[],
    onmessage: null as ((event: { data: unknown }) => void) | null,
    onclose: null as (() => void) | null,
    onerror: null as (() => void) | null,
    send(chunk: Uint8Array) {
      socket.sent.push([...chunk]);
    },
    close(code?: number) {
      socket.closes.push(code);
      socket.readyState = WebSocket.CLOSED;
    },
  };
  const message = (...bytes: number[]) => socket.onmessage!({ data: new Uint8Array(bytes).buffer });
  return { socket, message, link: new WebSocketLink(socket as unknown as WebSocket) };
}

Deno.test("broker WebSocket link: messages are read in order, before or after the read", async () => {
  const { socket, message, link } = fakeSocket();
  assert.equal(socket.binaryType, "arraybuffer");
  const first = link.read();
  message(1, 2);
  message(3);
  message(4);
  assert.deepEqual([...(await first)!], [1, 2]);
  assert.deepEqual([...(await link.read())!], [3]);
  socket.onclose!(); // the rest is still read, then the end
  assert.deepEqual([...(await link.read())!], [4]);
  assert.equal(await link.read(), null);
});

Deno.test("broker WebSocket link: writes are binary messages; an error or a close ends the reading", async () => {
  const { socket, link } = fakeSocket();
  await link.write(new Uint8Array([0xd0, 0x00]));
  assert.deepEqual(socket.sent, [[0xd0, 0x00]]);
  const pending = link.read();
  socket.onerror!();
  await assert.rejects(pending, /WebSocket error/);
  link.close();
  assert.deepEqual(socket.closes, [undefined]);
  await assert.rejects(link.write(new Uint8Array([1])), /not open/);
});

Deno.test("broker WebSocket link: a text frame closes with 1003 (MQTT-6.0.0-1)", async () => {
  const { socket, link } = fakeSocket();
  socket.onmessage!({ data: "hello" });
  assert.deepEqual(socket.closes, [1003]);
  await assert.rejects(link.read(), /text frame/);
});

Deno.test("broker WebSocket link: more than 32 MiB unread cuts the peer off", async () => {
  const { socket, link } = fakeSocket();
  const mib = new ArrayBuffer(1024 * 1024);
  for (let i = 0; i < 33 && socket.closes.length === 0; i++) socket.onmessage!({ data: mib });
  assert.deepEqual(socket.closes, [1008]);
  await assert.rejects(link.read(), /too much unread data/);
});
