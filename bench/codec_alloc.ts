/**
 * Heap bytes allocated per decoded (and encoded) packet:
 * `deno run --v8-flags=--expose-gc,--max-semi-space-size=64 bench/codec_alloc.ts`.
 *
 * Allocation is read from `Deno.memoryUsage().heapUsed` before and after a
 * batch small enough to fit the young generation, after a full collection,
 * so no collection runs inside the batch and the delta is every byte the batch
 * allocated, garbage included. Each result is kept in a preallocated array, as
 * a consumer would hold it, so the optimiser cannot drop the allocation. The
 * median over many batches is reported. Known allocations are measured the
 * same way first, to check the method (this V8 has no pointer compression: a
 * two-field object is 40 bytes).
 *
 * @module
 */
import { decodePacket, encodeInto, encodePacket, packetLength } from "../lib/codec/mod.ts";
import type { Packet, PublishPacket, SubscribePacket } from "../lib/codec/packet.ts";
import { PacketReader } from "../lib/streams/packet_reader.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc,--max-semi-space-size=64");

const PER_BATCH = 10_000;
const BATCHES = 100; // 1e6 operations in all

function publish(size: number): PublishPacket {
  return {
    type: "publish",
    topic: "sensors/building-1/room-42/temperature",
    payload: new Uint8Array(size).fill(7),
    qos: 0,
    retain: false,
    dup: false,
  };
}

const SUBSCRIBE_5: SubscribePacket = {
  type: "subscribe",
  packetId: 1234,
  subscriptions: [
    { filter: "sensors/+/+/temperature", qos: 0 },
    { filter: "sensors/building-1/#", qos: 1 },
    { filter: "alerts/#", qos: 2 },
    { filter: "$SYS/broker/load/#", qos: 0 },
    { filter: "devices/+/status", qos: 1 },
  ],
};

let sink = 0;
/** Where each batch keeps its results, cleared before the collection that starts a batch. */
const keep: unknown[] = new Array(PER_BATCH).fill(null);

/** Median bytes allocated per operation; `batch` runs PER_BATCH operations. */
function measure(batch: () => void): number {
  batch(); // warm up: compile before measuring
  batch();
  const samples: number[] = [];
  for (let b = 0; b < BATCHES; b++) {
    keep.fill(null);
    gc!();
    const before = Deno.memoryUsage().heapUsed;
    batch();
    const after = Deno.memoryUsage().heapUsed;
    samples.push((after - before) / PER_BATCH);
  }
  samples.sort((x, y) => x - y);
  return samples[samples.length >> 1];
}

function repeated(packet: Packet): Uint8Array {
  const one = encodePacket(packet);
  const out = new Uint8Array(one.length * PER_BATCH);
  for (let i = 0; i < PER_BATCH; i++) out.set(one, i * one.length);
  return out;
}

function decodeBatch(bytes: Uint8Array): () => void {
  return () => {
    const end = bytes.length;
    let offset = 0;
    for (let i = 0; offset < end; i++) {
      const length = packetLength(bytes, offset, end);
      keep[i] = decodePacket(bytes, offset, offset + length);
      offset += length;
    }
  };
}

function encodeBatch(packet: Packet): () => void {
  return () => {
    for (let i = 0; i < PER_BATCH; i++) keep[i] = encodePacket(packet);
  };
}

function encodeIntoBatch(packet: Packet): () => void {
  const target = new Uint8Array(encodePacket(packet).length * PER_BATCH);
  return () => {
    let offset = 0;
    for (let i = 0; i < PER_BATCH; i++) offset += encodeInto(packet, target, offset);
    sink += offset;
  };
}

const rows: [string, number][] = [];
rows.push([
  "calibration: { a, b } (expect 40)",
  measure(() => {
    for (let i = 0; i < PER_BATCH; i++) keep[i] = { a: i, b: i };
  }),
]);
rows.push([
  "calibration: new Uint8Array(64)",
  measure(() => {
    for (let i = 0; i < PER_BATCH; i++) keep[i] = new Uint8Array(64);
  }),
]);
rows.push(["decode PUBLISH 64 B", measure(decodeBatch(repeated(publish(64))))]);
rows.push(["decode PUBLISH 4 KiB", measure(decodeBatch(repeated(publish(4096))))]);
rows.push(["decode SUBSCRIBE 5 filters", measure(decodeBatch(repeated(SUBSCRIBE_5)))]);
rows.push(["encode PUBLISH 64 B", measure(encodeBatch(publish(64)))]);
rows.push(["encodeInto PUBLISH 64 B", measure(encodeIntoBatch(publish(64)))]);
rows.push(["encode SUBSCRIBE 5 filters", measure(encodeBatch(SUBSCRIBE_5))]);

// PacketReader: per packet through the stream, 64 KiB chunks of PUBLISH 64 B.
{
  const bytes = repeated(publish(64));
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += 65_536) chunks.push(bytes.slice(at, at + 65_536));
  const run = async () => {
    const reader = ReadableStream.from(chunks).pipeThrough(new PacketReader()).getReader();
    for (let i = 0;; i++) {
      const { done, value } = await reader.read();
      if (done) break;
      keep[i] = value;
    }
  };
  await run();
  await run();
  const samples: number[] = [];
  for (let b = 0; b < 20; b++) {
    keep.fill(null);
    gc();
    const before = Deno.memoryUsage().heapUsed;
    await run();
    const after = Deno.memoryUsage().heapUsed;
    samples.push((after - before) / PER_BATCH);
  }
  samples.sort((x, y) => x - y);
  rows.push(["PacketReader PUBLISH 64 B, 64 KiB chunks", samples[samples.length >> 1]]);
}

for (const [name, bytes] of rows) console.log(`${name.padEnd(44)} ${bytes.toFixed(1)} B/op`);
if (sink === -1) console.log(sink);
