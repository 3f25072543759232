/**
 * MQTT 5.0 against 3.1.1 decode rates, interleaved: `deno run bench/codec_v5.ts [--rounds 400]`.
 *
 * `deno bench` runs one bench after the other, so on a shared, noisy machine
 * drift in load falls on one of them. Here each round decodes a batch of
 * 1,000 PUBLISH 64 B (the same packet as `codec_bench.ts`) at 3.1.1, at 5.0
 * without properties and at 5.0 with 3 User Properties, in an order that
 * rotates every round; the fastest round of each is the figure least
 * disturbed by other processes, the median is printed beside it.
 *
 * @module
 */
import { type CodecOptions, decodePacket, encodePacket, packetLength } from "../lib/codec/mod.ts";
import type { PublishPacket } from "../lib/codec/packet.ts";
import { arg } from "./_mosquitto.ts";

const BATCH = 1000;
const PUBLISH_64: PublishPacket = {
  type: "publish",
  topic: "sensors/building-1/room-42/temperature",
  payload: Uint8Array.from({ length: 64 }, (_, i) => i),
  qos: 0,
  retain: false,
  dup: false,
};
const V5: CodecOptions = { protocolVersion: 5 };
const V4: CodecOptions = { protocolVersion: 4 };

function repeated(packet: PublishPacket, options: CodecOptions): Uint8Array {
  const one = encodePacket(packet, options);
  const out = new Uint8Array(one.length * BATCH);
  for (let i = 0; i < BATCH; i++) out.set(one, i * one.length);
  return out;
}

let sink = 0;

function decodeAll(batch: Uint8Array, options: CodecOptions): void {
  const end = batch.length;
  const version = options.protocolVersion;
  let offset = 0;
  while (offset < end) {
    const length = packetLength(batch, offset, end, undefined, version);
    sink += decodePacket(batch, offset, offset + length, options).type.length;
    offset += length;
  }
}

const cases = [
  { name: "3.1.1", batch: repeated(PUBLISH_64, V4), options: V4 },
  { name: "5.0 without properties", batch: repeated(PUBLISH_64, V5), options: V5 },
  {
    name: "5.0 with 3 user properties",
    batch: repeated({
      ...PUBLISH_64,
      properties: {
        userProperties: [["trace-id", "4bf92f3577b34da6"], ["unit", "celsius"], [
          "source",
          "sensor-7",
        ]],
      },
    }, V5),
    options: V5,
  },
];

const rounds = Number(arg("rounds") ?? 400);
const times: number[][] = cases.map(() => []);
// Warm up every path before measuring.
for (let i = 0; i < 200; i++) for (const c of cases) decodeAll(c.batch, c.options);
for (let r = 0; r < rounds; r++) {
  for (let k = 0; k < cases.length; k++) {
    const i = (r + k) % cases.length;
    const t0 = performance.now();
    decodeAll(cases[i].batch, cases[i].options);
    times[i].push(performance.now() - t0);
  }
}

const rate = (ms: number) => Math.round((BATCH / ms) * 1000);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const best = times.map((t) => Math.min(...t));
const mid = times.map(median);
console.log(
  `decode PUBLISH 64 B, ${BATCH} packets a round, ${rounds} interleaved rounds; ` +
    `packets/s (fastest round; median round), and against 3.1.1`,
);
for (let i = 0; i < cases.length; i++) {
  console.log(
    `${cases[i].name.padEnd(28)} ${rate(best[i]).toLocaleString("en").padStart(12)}  ` +
      `(${rate(mid[i]).toLocaleString("en").padStart(12)})  ` +
      `${(best[0] / best[i]).toFixed(3)} (${(mid[0] / mid[i]).toFixed(3)})`,
  );
}
if (sink === 0) console.log("");
