/**
 * Measures what hostile traffic makes the embedded broker hold, in a process
 * of its own started with `--v8-flags=--expose-gc` (so that garbage does not
 * count): `deno run -A --v8-flags=--expose-gc tests/broker_memory_probe.ts <scenario>`.
 * Prints one JSON line `{ scenario, externalBytes, heapBytes }` with the growth
 * of external (ArrayBuffer) and heap memory after full collections.
 *
 * Scenarios:
 * - `connect-trickle`: 25 connections each announce a 2 MiB CONNECT and send
 *   200 bytes of it one byte per write, never finishing it.
 * - `queued`: 1,000 QoS 1 messages of 16 bytes, each sent in its own write,
 *   queued for an offline persistent session.
 * - `authorize`: 20,000 QoS 0 PUBLISH on one connection through an async
 *   `authorizePublish` hook.
 * - `idle`: 500 idle MQTT 3.1.1 connections (CONNECT with keep-alive 0, then
 *   nothing), opened by a client process of its own (`idle-clients <port>`)
 *   so that only the broker's side is counted; prints `connections` too.
 *
 * Used by tests/broker_hostile_test.ts; the figures are in the report of issue 14.
 *
 * @module
 */
import { Broker } from "../broker.ts";
import { encodePacket } from "../lib/codec/mod.ts";
import type { Packet } from "../lib/codec/packet.ts";
import { PacketReader } from "../lib/streams/packet_reader.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

async function settle(): Promise<{ external: number; heap: number }> {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    gc!();
  }
  const usage = Deno.memoryUsage();
  return { external: usage.external, heap: usage.heapUsed };
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function open(port: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const writer = conn.writable.getWriter();
  const reader = conn.readable.pipeThrough(new PacketReader()).getReader();
  return {
    conn,
    send: (packet: Packet) => writer.write(encodePacket(packet)),
    write: (data: Uint8Array) => writer.write(data),
    next: async () => (await reader.read()).value,
    close: () => {
      reader.cancel().catch(() => {});
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    },
  };
}

const connect = (clientId: string, clean: boolean): Packet => ({
  type: "connect",
  protocolName: "MQTT",
  protocolLevel: 4,
  clientId,
  clean,
  keepAlive: 0,
});

/** Idle connections the `idle` scenario opens. */
const IDLE_CONNECTIONS = 500;

const scenario = Deno.args[0];
if (scenario === "idle-clients") {
  // The client side of `idle`: one connection, then (on a line on stdin) the rest; each line
  // on stdout says they are all accepted. The end of stdin closes them.
  const port = Number(Deno.args[1]);
  const bytes = encodePacket(connect("", true));
  const conns: Deno.TcpConn[] = [];
  const openIdle = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(bytes);
    await conn.read(new Uint8Array(4)); // CONNACK
    conns.push(conn);
  };
  const say = (line: string) => Deno.stdout.write(new TextEncoder().encode(line + "\n"));
  await openIdle();
  await say("warm");
  const lines = Deno.stdin.readable.getReader();
  await lines.read();
  for (let i = 0; i < IDLE_CONNECTIONS; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, IDLE_CONNECTIONS - i) }, openIdle));
  }
  await say("ready");
  while (!(await lines.read()).done);
  for (const conn of conns) conn.close();
  Deno.exit(0);
}
const broker = new Broker(
  scenario === "authorize" ? { authorizePublish: () => Promise.resolve(true) } : {},
);
const { port } = await broker.listen({ port: 0 });
const clients: Awaited<ReturnType<typeof open>>[] = [];
const before = await settle();

if (scenario === "connect-trickle") {
  // A CONNECT whose Remaining Length claims 2 MiB (0x80 0x80 0x80 0x01), then its first bytes.
  const header = new Uint8Array([0x10, 0x80, 0x80, 0x80, 0x01]);
  const body = new Uint8Array([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 60, 0xff, 0xff]);
  for (let i = 0; i < 25; i++) {
    const client = await open(port);
    clients.push(client);
    await client.write(header);
  }
  for (let i = 0; i < 200; i++) {
    const byte = new Uint8Array([i < body.length ? body[i] : 0x61]);
    await Promise.all(clients.map((client) => client.write(byte).catch(() => {})));
    await delay(1);
  }
} else if (scenario === "queued") {
  const subscriber = await open(port);
  await subscriber.send(connect("offline", false));
  await subscriber.next();
  await subscriber.send({
    type: "subscribe",
    packetId: 1,
    subscriptions: [{ filter: "q", qos: 1 }],
  });
  await subscriber.next();
  await subscriber.send({ type: "disconnect" });
  subscriber.close();
  const publisher = await open(port);
  clients.push(publisher);
  await publisher.send(connect("publisher", true));
  await publisher.next();
  for (let id = 1; id <= 1000; id++) {
    await publisher.send({
      type: "publish",
      topic: "q",
      payload: new Uint8Array(16).fill(id & 255),
      qos: 1,
      retain: false,
      dup: false,
      packetId: id,
    });
    await publisher.next(); // PUBACK: the next PUBLISH goes in a write of its own
  }
  if (broker.stats().queuedMessages !== 1000) throw new Error("messages were not queued");
} else if (scenario === "authorize") {
  const publisher = await open(port);
  clients.push(publisher);
  await publisher.send(connect("publisher", true));
  await publisher.next();
  const payload = new Uint8Array(4);
  for (let i = 0; i < 20_000; i++) {
    publisher.send({ type: "publish", topic: "t", payload, qos: 0, retain: false, dup: false });
    if (i % 100 === 99) await delay(0);
  }
  // A QoS 1 PUBLISH after them: its PUBACK says every one before it went through the hook.
  await publisher.send({
    type: "publish",
    topic: "t",
    payload,
    qos: 1,
    retain: false,
    dup: false,
    packetId: 1,
  });
  await publisher.next();
  if (broker.stats().messagesReceived < 20_001) throw new Error("publishes were not all handled");
} else if (scenario !== "idle") {
  throw new Error(`unknown scenario ${scenario}`);
}

if (scenario === "idle") {
  const idleClients = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      import.meta.filename!,
      "idle-clients",
      String(port),
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const said = idleClients.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stdin = idleClients.stdin.getWriter();
  await said.read(); // "warm": code and first-connection costs are paid before measuring
  Object.assign(before, await settle());
  await stdin.write(new TextEncoder().encode("go\n"));
  await said.read(); // "ready"
  if (broker.stats().clients !== IDLE_CONNECTIONS + 1) throw new Error("clients not connected");
  const after = await settle();
  await stdin.close();
  await said.cancel();
  await idleClients.status;
  await broker.close();
  console.log(JSON.stringify({
    scenario,
    connections: IDLE_CONNECTIONS,
    externalBytes: after.external - before.external,
    heapBytes: after.heap - before.heap,
  }));
  Deno.exit(0);
}

const after = await settle();
for (const client of clients) client.close();
await broker.close();
console.log(JSON.stringify({
  scenario,
  externalBytes: after.external - before.external,
  heapBytes: after.heap - before.heap,
}));
