/**
 * Codec and stream throughput: `deno bench -A bench/codec_bench.ts`.
 *
 * Each iteration handles a known number of packets and bytes (printed when the
 * file loads), so packets/s = packets per iteration / time per iteration, and
 * MB/s likewise from the bytes.
 *
 * @module
 */
import {
  type CodecOptions,
  decodePacket,
  encodeInto,
  encodePacket,
  packetLength,
} from "../lib/codec/mod.ts";
import type { Packet, PublishPacket, SubscribePacket } from "../lib/codec/packet.ts";
import { PacketReader } from "../lib/streams/packet_reader.ts";

/** Packets handled per iteration of each codec bench. */
const BATCH = 1000;
/** Chunk size of the stream bench, the size Deno's TCP `readable` hands out. */
const CHUNK = 64 * 1024;
/** Chunks per iteration of the stream bench (4 MiB). */
const CHUNKS = 64;

function payload(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = i & 0xff;
  return out;
}

function publish(size: number): PublishPacket {
  return {
    type: "publish",
    topic: "sensors/building-1/room-42/temperature",
    payload: payload(size),
    qos: 0,
    retain: false,
    dup: false,
  };
}

const PUBLISH_64 = publish(64);
const PUBLISH_4K = publish(4096);
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

/** MQTT 5.0: the same 64 B PUBLISH without properties, and with 3 User Properties. */
const V5: CodecOptions = { protocolVersion: 5 };
const PUBLISH_64_V5: PublishPacket = { ...PUBLISH_64, properties: undefined };
const PUBLISH_64_V5_PROPS: PublishPacket = {
  ...PUBLISH_64,
  properties: {
    userProperties: [["trace-id", "4bf92f3577b34da6"], ["unit", "celsius"], ["source", "sensor-7"]],
  },
};

/** BATCH copies of a packet back to back, walked the way the reader walks a chunk. */
function repeated(packet: Packet, options?: CodecOptions): Uint8Array {
  const one = encodePacket(packet, options);
  const out = new Uint8Array(one.length * BATCH);
  for (let i = 0; i < BATCH; i++) out.set(one, i * one.length);
  return out;
}

/** 64 KiB chunks of back-to-back 64 B PUBLISH packets, cut wherever 64 KiB falls. */
function stream(): { chunks: Uint8Array[]; packets: number; bytes: number } {
  const one = encodePacket(PUBLISH_64);
  const packets = Math.floor((CHUNK * CHUNKS) / one.length);
  const all = new Uint8Array(packets * one.length);
  for (let i = 0; i < packets; i++) all.set(one, i * one.length);
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < all.length; at += CHUNK) chunks.push(all.slice(at, at + CHUNK));
  return { chunks, packets, bytes: all.length };
}

const PUBLISH_64_BATCH = repeated(PUBLISH_64);
const PUBLISH_4K_BATCH = repeated(PUBLISH_4K);
const SUBSCRIBE_5_BATCH = repeated(SUBSCRIBE_5);
const PUBLISH_64_V5_BATCH = repeated(PUBLISH_64_V5, V5);
const PUBLISH_64_V5_PROPS_BATCH = repeated(PUBLISH_64_V5_PROPS, V5);
const STREAM = stream();
const TARGET = new Uint8Array(PUBLISH_4K_BATCH.length);

// On stderr, so that `deno bench --json` stays parseable.
console.error(
  `per iteration: ${BATCH} packets for codec benches ` +
    `(PUBLISH 64 B = ${PUBLISH_64_BATCH.length / BATCH} B, PUBLISH 4 KiB = ` +
    `${PUBLISH_4K_BATCH.length / BATCH} B, SUBSCRIBE x5 = ${SUBSCRIBE_5_BATCH.length / BATCH} B ` +
    `on the wire; 5.0 PUBLISH 64 B = ${PUBLISH_64_V5_BATCH.length / BATCH} B, with 3 user ` +
    `properties = ${PUBLISH_64_V5_PROPS_BATCH.length / BATCH} B); stream: ${STREAM.packets} ` +
    `packets, ${STREAM.bytes} B in ${STREAM.chunks.length} chunks`,
);

/** Keeps results alive so no work is optimised away. */
let sink = 0;

function decodeAll(batch: Uint8Array, options?: CodecOptions): void {
  const end = batch.length;
  const version = options?.protocolVersion;
  let offset = 0;
  while (offset < end) {
    const length = packetLength(batch, offset, end, undefined, version);
    const packet = decodePacket(batch, offset, offset + length, options);
    sink += packet.type.length;
    offset += length;
  }
}

function encodeAll(packet: Packet, options?: CodecOptions): void {
  for (let i = 0; i < BATCH; i++) sink += encodePacket(packet, options).length;
}

function encodeAllInto(packet: Packet): void {
  let offset = 0;
  for (let i = 0; i < BATCH; i++) offset += encodeInto(packet, TARGET, offset);
  sink += offset;
}

Deno.bench({
  name: "decode PUBLISH 64 B",
  group: "publish-64",
  baseline: true,
  fn: () => decodeAll(PUBLISH_64_BATCH),
});
Deno.bench({ name: "encode PUBLISH 64 B", group: "publish-64", fn: () => encodeAll(PUBLISH_64) });
Deno.bench({
  name: "encodeInto PUBLISH 64 B",
  group: "publish-64",
  fn: () => encodeAllInto(PUBLISH_64),
});

// MQTT 5.0 against 3.1.1, side by side in one group (aim: 5.0 without
// properties decodes within 10 % of 3.1.1).
Deno.bench({
  name: "decode PUBLISH 64 B, 3.1.1",
  group: "publish-64-v5",
  baseline: true,
  fn: () => decodeAll(PUBLISH_64_BATCH),
});
Deno.bench({
  name: "decode PUBLISH 64 B, 5.0 without properties",
  group: "publish-64-v5",
  fn: () => decodeAll(PUBLISH_64_V5_BATCH, V5),
});
Deno.bench({
  name: "decode PUBLISH 64 B, 5.0 with 3 user properties",
  group: "publish-64-v5",
  fn: () => decodeAll(PUBLISH_64_V5_PROPS_BATCH, V5),
});
Deno.bench({
  name: "encode PUBLISH 64 B, 5.0 without properties",
  group: "publish-64-v5",
  fn: () => encodeAll(PUBLISH_64_V5, V5),
});
Deno.bench({
  name: "encode PUBLISH 64 B, 5.0 with 3 user properties",
  group: "publish-64-v5",
  fn: () => encodeAll(PUBLISH_64_V5_PROPS, V5),
});

Deno.bench({
  name: "decode PUBLISH 4 KiB",
  group: "publish-4k",
  baseline: true,
  fn: () => decodeAll(PUBLISH_4K_BATCH),
});
Deno.bench({ name: "encode PUBLISH 4 KiB", group: "publish-4k", fn: () => encodeAll(PUBLISH_4K) });
Deno.bench({
  name: "encodeInto PUBLISH 4 KiB",
  group: "publish-4k",
  fn: () => encodeAllInto(PUBLISH_4K),
});

Deno.bench({
  name: "decode SUBSCRIBE 5 filters",
  group: "subscribe-5",
  baseline: true,
  fn: () => decodeAll(SUBSCRIBE_5_BATCH),
});
Deno.bench({
  name: "encode SUBSCRIBE 5 filters",
  group: "subscribe-5",
  fn: () => encodeAll(SUBSCRIBE_5),
});

Deno.bench({
  name: "PacketReader 4 MiB in 64 KiB chunks of PUBLISH 64 B",
  group: "stream",
  fn: async () => {
    const packets = ReadableStream.from(STREAM.chunks).pipeThrough(new PacketReader());
    const reader = packets.getReader();
    let count = 0;
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
      count++;
    }
    if (count !== STREAM.packets) throw new Error(`read ${count} of ${STREAM.packets} packets`);
    sink += count;
  },
});

globalThis.addEventListener("unload", () => {
  if (sink === -1) console.log(sink);
});
