/**
 * Closing loses nothing (issue 15): a process that exits right after closing (a CLI, an edge
 * isolate being frozen) must have sent everything it wrote first.
 *
 * Deno's `WebSocket.send()` only queues a frame: the bytes are written when the event loop next
 * turns, and `bufferedAmount` counts them until then. A transport whose writable closed at once
 * let a process exit with every QoS 0 PUBLISH and the DISCONNECT still queued: the broker got
 * none of them and published the Last Will (MQTT-3.1.2-8), although the client had closed
 * cleanly. Over TCP each write resolves once the bytes are in the socket, so TCP is the control.
 *
 * The end-to-end tests run a child process (a script written to a temp dir, importing this
 * repository by absolute file URL) that writes, closes and calls `Deno.exit(0)` at once, while a
 * watcher subscribed over TCP counts what arrives. The child trusts the test CA with `--cert`,
 * since the web-standard `WebSocket` takes no TLS settings.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../lib/client/connect.ts";
import type { Message } from "../lib/client/message.ts";
import { connectWebSocket } from "../lib/transports/websocket.ts";
import { brokerTest, type Mosquitto, startMosquitto, startProxy } from "./broker/mod.ts";
import { fresh, hasCode, within } from "./client_helpers.ts";

type Scheme = "mqtt" | "ws" | "wss";

const MESSAGES = 10;
const decoder = new TextDecoder();

const imports = {
  mod: JSON.stringify(new URL("../mod.ts", import.meta.url).href),
  tcp: JSON.stringify(new URL("../lib/transports/tcp.ts", import.meta.url).href),
  ws: JSON.stringify(new URL("../lib/transports/websocket.ts", import.meta.url).href),
};

/**
 * Child: CONNECT with a will through the bare transport, 10 QoS 0 PUBLISH, DISCONNECT, close the
 * writable, exit. Arguments: url, data topic, will topic, client id.
 */
const TRANSPORT_CHILD = `import { encodePacket } from ${imports.mod};
import { connectTcp } from ${imports.tcp};
import { connectWebSocket } from ${imports.ws};
const [url, topic, willTopic, clientId] = Deno.args;
const u = new URL(url);
const transport = u.protocol === "mqtt:"
  ? await connectTcp({ hostname: u.hostname, port: Number(u.port) })
  : await connectWebSocket(u);
const encoder = new TextEncoder();
const will = { topic: willTopic, payload: encoder.encode("gone"), qos: 0, retain: false };
const writer = transport.writable.getWriter();
await writer.write(encodePacket({
  type: "connect", protocolName: "MQTT", protocolLevel: 4, clientId, clean: true, keepAlive: 60, will,
}));
const reader = transport.readable.getReader();
const { value } = await reader.read();
if (value?.[0] !== 0x20 || value[3] !== 0) throw new Error("no CONNACK accepting the connection");
reader.releaseLock();
for (let i = 0; i < ${MESSAGES}; i++) {
  const payload = encoder.encode(String(i));
  await writer.write(encodePacket({ type: "publish", topic, payload, qos: 0, retain: false, dup: false }));
}
await writer.write(encodePacket({ type: "disconnect" }));
await writer.close();
Deno.exit(0);
`;

/** Child: the same through the client, the way a CLI would. */
const CLIENT_CHILD = `import { connect } from ${imports.mod};
const [url, topic, willTopic, clientId] = Deno.args;
const client = await connect(url, {
  clientId,
  reconnect: false,
  will: { topic: willTopic, payload: "gone" },
});
const errors = [];
client.addEventListener("error", (event) => errors.push(event.detail));
for (let i = 0; i < ${MESSAGES}; i++) await client.publish(topic, String(i));
await client.close();
// A clean close is not an error, even when the server hangs up first after the DISCONNECT.
if (errors.length > 0) {
  console.error("error events while closing:", ...errors);
  Deno.exit(1);
}
Deno.exit(0);
`;

function brokerUrl(broker: Mosquitto, scheme: Scheme): string {
  return scheme === "mqtt" ? broker.url : scheme === "ws" ? broker.wsUrl! : broker.wssUrl!;
}

/** Waits until the broker has logged the end of `clientId`'s connection, clean or not. */
async function connectionEnded(broker: Mosquitto, clientId: string): Promise<void> {
  const ended = new RegExp(
    `Client ${clientId} (disconnected|closed its connection)|Socket error on client ${clientId}`,
  );
  const deadline = Date.now() + 10_000;
  while (!ended.test(await broker.log())) {
    if (Date.now() > deadline) throw new Error(`the broker never saw ${clientId} go`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Runs `script` in a child process against `scheme` while a watcher subscribed over TCP counts
 * the data messages and wills that arrive.
 */
async function countDelivered(
  script: string,
  scheme: Scheme,
): Promise<{ data: number; wills: number }> {
  await using broker = await startMosquitto({ websockets: true, wsTls: true });
  const dir = await Deno.makeTempDir({ prefix: "close-flush-" });
  const id = fresh("close-flush");
  const topic = `${id}/data`;
  const willTopic = `${id}/will`;
  const fence = `${id}/fence`;
  const watcher = await connect(broker.url, { clientId: `${id}-watcher`, reconnect: false });
  try {
    const sub = await watcher.subscribe([topic, willTopic, fence], { qos: 1 });
    await Deno.writeTextFile(`${dir}/child.ts`, script);
    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--no-config",
        "--cert",
        broker.certs!.ca.certFile,
        `${dir}/child.ts`,
        brokerUrl(broker, scheme),
        topic,
        willTopic,
        id,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(child.code, 0, decoder.decode(child.stderr));
    // Once the broker is done with the child's connection, any will is already published; the
    // watcher's own message after it is a fence: whatever came before it has arrived.
    await connectionEnded(broker, id);
    await watcher.publish(fence, "fence", { qos: 1 });
    let data = 0;
    let wills = 0;
    const it = sub[Symbol.asyncIterator]();
    for (;;) {
      const next = await within(it.next(), "the fence message");
      assert.equal(next.done, false, "the subscription ended early");
      const message = next.value as Message;
      if (message.topic === fence) break;
      if (message.topic === topic) data++;
      if (message.topic === willTopic) wills++;
    }
    return { data, wills };
  } finally {
    await watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
}

for (const scheme of ["mqtt", "ws", "wss"] as const) {
  brokerTest(
    `MQTT-3.1.2-8, MQTT-3.14.4-3: a process that exits right after closing the ${scheme}:// ` +
      `transport's writable has sent its ${MESSAGES} QoS 0 PUBLISH and its DISCONNECT (no will)`,
    async () => {
      const { data, wills } = await countDelivered(TRANSPORT_CHILD, scheme);
      assert.equal(data, MESSAGES, `${data} of ${MESSAGES} QoS 0 messages arrived`);
      assert.equal(wills, 0, "the broker published the will: the DISCONNECT never arrived");
    },
  );
}

for (const scheme of ["mqtt", "ws", "wss"] as const) {
  const name = `MQTT-3.1.2-8, MQTT-3.14.4-3: a process that exits right after ` +
    `\`await client.close()\` over ${scheme}:// has sent its ${MESSAGES} QoS 0 messages and its ` +
    `DISCONNECT (no will, no error event)`;
  const fn = async () => {
    const { data, wills } = await countDelivered(CLIENT_CHILD, scheme);
    assert.equal(data, MESSAGES, `${data} of ${MESSAGES} QoS 0 messages arrived`);
    assert.equal(wills, 0, "the broker published the will: the DISCONNECT never arrived");
  };
  brokerTest(name, fn);
}

/** A WebSocket server (no TLS) on a free port counting the bytes it receives. */
function countingServer() {
  const counts = { received: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: "mqtt" });
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => counts.received += (event.data as ArrayBuffer).byteLength;
    return response;
  });
  return { counts, server, url: new URL(`ws://127.0.0.1:${server.addr.port}/mqtt`) };
}

Deno.test("connectWebSocket: closing the writable resolves once the peer has every byte", async () => {
  const { counts, server, url } = countingServer();
  const transport = await connectWebSocket(url);
  const writer = transport.writable.getWriter();
  const chunk = new Uint8Array(64 * 1024);
  for (let i = 0; i < 16; i++) await writer.write(chunk); // below maxSendBuffer: all still queued
  await writer.close();
  assert.equal(counts.received, 16 * chunk.length, "bytes were still queued when close resolved");
  // The close handshake completed, so the readable has ended.
  assert.deepEqual(await transport.readable.getReader().read(), { done: true, value: undefined });
  transport.close();
  await server.shutdown();
});

Deno.test("connectWebSocket: close() during a flush does not cut it short", async () => {
  const { counts, server, url } = countingServer();
  const transport = await connectWebSocket(url);
  const writer = transport.writable.getWriter();
  const chunk = new Uint8Array(64 * 1024);
  for (let i = 0; i < 16; i++) await writer.write(chunk);
  const flushed = writer.close();
  transport.close(); // what a client tearing down right after closing the writable does
  await flushed;
  assert.equal(counts.received, 16 * chunk.length, "bytes queued before close() were lost");
  await server.shutdown();
});

Deno.test("connectWebSocket: a link that fails errors the writable, not only the readable", async () => {
  const { server, url } = countingServer();
  await using proxy = await startProxy({
    target: { hostname: "127.0.0.1", port: Number(url.port) },
  });
  const transport = await connectWebSocket(new URL(`ws://127.0.0.1:${proxy.port}/mqtt`));
  const writer = transport.writable.getWriter();
  await writer.write(new Uint8Array([0xc0, 0x00]));
  proxy.cut(); // the TCP connection ends without a close frame
  const error = await within(writer.closed.then(() => undefined, (e: unknown) => e), "an error");
  assert.ok(hasCode("TRANSPORT_ERROR", /WebSocket/)(error));
  // Later writes fail with the same cause rather than vanishing.
  await assert.rejects(writer.write(new Uint8Array([0xc0, 0x00])), (e) => e === error);
  await assert.rejects(transport.readable.getReader().read(), hasCode("TRANSPORT_ERROR"));
  transport.close();
  await server.shutdown();
});

Deno.test("connectWebSocket: closeTimeout bounds a flush to a peer that stopped reading", async () => {
  const { server, url } = countingServer();
  const proxy = await startProxy({ target: { hostname: "127.0.0.1", port: Number(url.port) } });
  const transport = await connectWebSocket(new URL(`ws://127.0.0.1:${proxy.port}/mqtt`), {
    maxSendBuffer: 64 * 1024 * 1024, // writes never wait: the flush alone meets the stall
    closeTimeout: 200,
  });
  const writer = transport.writable.getWriter();
  const reading = transport.readable.getReader().read().catch(() => undefined);
  proxy.stall(); // TCP backpressure: far more than the socket buffers hold stays queued
  const chunk = new Uint8Array(1024 * 1024);
  for (let i = 0; i < 32; i++) await writer.write(chunk);
  await assert.rejects(writer.close(), hasCode("TRANSPORT_ERROR", /still unsent after none left/));
  await proxy.close(); // the stuck writes fail, and the socket's pending operations end
  await reading;
  transport.close();
  await server.shutdown();
});

Deno.test("connectWebSocket: a closeTimeout that is not a finite number >= 0 is INVALID_OPTION", async () => {
  for (const closeTimeout of [-1, NaN, Infinity, "5" as unknown as number]) {
    await assert.rejects(
      connectWebSocket(new URL("ws://127.0.0.1:1/mqtt"), { closeTimeout }),
      hasCode("INVALID_OPTION", /closeTimeout/),
    );
  }
});
