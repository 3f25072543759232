/**
 * The embedded broker's routing under load a hostile or careless client can
 * create (issue 14): `deno run -A bench/broker_routing.ts`.
 *
 * 1. QoS 0 throughput, 50,000 × 64 B from one client to another, without and
 *    then with 50,000 wildcard subscriptions of a third client that match nothing.
 * 2. With 100,000 retained messages held: how long one SUBSCRIBE of 2,000
 *    wildcard filters that match none of them takes to be answered (the event
 *    loop is busy meanwhile), and how many of them a subscriber to `r/#` gets.
 *
 * Broker and clients share this process; the figures compare builds, they are
 * not the broker's ceiling.
 *
 * @module
 */
import { Broker } from "../broker.ts";
import { encodePacket } from "../lib/codec/mod.ts";
import type { Packet } from "../lib/codec/packet.ts";
import { PacketReader } from "../lib/streams/packet_reader.ts";
import { connectRaw } from "./_raw_client.ts";

const MESSAGES = 50_000;
const WILDCARDS = 50_000;
const RETAINED = 100_000;

async function open(port: number, clientId: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const writer = conn.writable.getWriter();
  const reader = conn.readable.pipeThrough(new PacketReader()).getReader();
  const send = (packet: Packet) => writer.write(encodePacket(packet));
  const next = async () => (await reader.read()).value!;
  await send({
    type: "connect",
    protocolName: "MQTT",
    protocolLevel: 4,
    clientId,
    clean: true,
    keepAlive: 0,
  });
  await next();
  return {
    send,
    next,
    close() {
      reader.cancel().catch(() => {});
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    },
  };
}

async function throughput(url: string): Promise<number> {
  const subscriber = await connectRaw(url, { clientId: "sub" });
  const publisher = await connectRaw(url, { clientId: "pub" });
  let received = 0;
  const all = Promise.withResolvers<void>();
  await subscriber.subscribe("bench/t", 0, () => {
    if (++received === MESSAGES) all.resolve();
  });
  const payload = new Uint8Array(64);
  const start = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    publisher.publish("bench/t", payload, 0, () => {});
    if (i % 1000 === 999) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await all.promise;
  const rate = MESSAGES / ((performance.now() - start) / 1000);
  await publisher.close();
  await subscriber.close();
  return rate;
}

const broker = new Broker({ maxRetained: RETAINED, maxQueuedMessages: 2 * RETAINED });
const { port } = await broker.listen({ port: 0 });
const url = `mqtt://127.0.0.1:${port}`;

const before = await throughput(url);
const wild = await open(port, "wild");
for (let batch = 0; batch < WILDCARDS / 1000; batch++) {
  await wild.send({
    type: "subscribe",
    packetId: batch + 1,
    subscriptions: Array.from({ length: 1000 }, (_, i) => ({
      filter: `w/${batch * 1000 + i}/+`,
      qos: 0 as const,
    })),
  });
  await wild.next();
}
const after = await throughput(url);
console.log(
  `QoS 0 64 B: ${before.toFixed(0)} msg/s; with ${WILDCARDS} wildcard subscriptions: ${
    after.toFixed(0)
  } msg/s`,
);
wild.close();

for (let i = 0; i < RETAINED; i++) broker.publish(`r/${i}`, "x", { retain: true });
const filters = await open(port, "filters");
let start = performance.now();
await filters.send({
  type: "subscribe",
  packetId: 1,
  subscriptions: Array.from(
    { length: 2000 },
    (_, i) => ({ filter: `r/+/${i}/#`, qos: 0 as const }),
  ),
});
await filters.next();
console.log(
  `SUBSCRIBE of 2,000 non-matching wildcard filters, ${RETAINED} retained held: ` +
    `answered in ${(performance.now() - start).toFixed(0)} ms`,
);
filters.close();

const reader = await open(port, "reader");
start = performance.now();
await reader.send({ type: "subscribe", packetId: 1, subscriptions: [{ filter: "r/#", qos: 0 }] });
await reader.next(); // SUBACK
let got = 0;
while (true) {
  const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 1000));
  const packet = await Promise.race([reader.next(), timeout]);
  if (packet === undefined) break;
  got++;
}
console.log(
  `subscriber to r/#: ${got} of ${RETAINED} retained messages ` +
    `(${((performance.now() - start - 1000) / 1000).toFixed(1)} s)`,
);
reader.close();
await broker.close();
Deno.exit(0);
