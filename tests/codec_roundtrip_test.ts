/**
 * Round trips of randomized valid packets (seeded, reproducible): encode,
 * measure, frame and decode give back the same packet.
 */
import assert from "node:assert/strict";
import {
  decodePacket,
  encodedLength,
  encodeInto,
  encodePacket,
  type Packet,
  packetLength,
} from "../lib/codec/mod.ts";
import { int, mulberry32, randomPacket, randomPacket5 } from "./fuzz.ts";

const SEED = 0x5eed_0001;
const COUNT = 20_000;

Deno.test(`round trip of ${COUNT} random valid packets of every type (seed ${SEED})`, () => {
  const rng = mulberry32(SEED);
  const seen = new Set<string>();
  for (let i = 0; i < COUNT; i++) {
    const packet = randomPacket(rng);
    seen.add(packet.type);
    const bytes = encodePacket(packet);
    const where = `packet #${i} ${JSON.stringify(packet.type)}`;
    assert.equal(encodedLength(packet), bytes.length, where);
    assert.equal(packetLength(bytes, 0, bytes.length), bytes.length, where);
    assert.deepStrictEqual(decodePacket(bytes, 0, bytes.length), packet, where);
  }
  assert.equal(seen.size, 14);
});

Deno.test("round trip: many packets back to back in one buffer via encodeInto", () => {
  const rng = mulberry32(SEED + 1);
  const packets: Packet[] = [];
  let size = 0;
  for (let i = 0; i < 2_000; i++) {
    const p = randomPacket(rng);
    packets.push(p);
    size += encodedLength(p);
  }
  const buf = new Uint8Array(size + 7);
  let offset = 7; // not at 0, not aligned
  for (const p of packets) offset += encodeInto(p, buf, offset);
  // Nothing after the last packet, so the last packet must end exactly there.
  assert.equal(offset, buf.length);
  // Reading them back: packetLength frames each one, also when bytes trickle in.
  let pos = 7;
  for (const p of packets) {
    const total = packetLength(buf, pos, buf.length);
    assert(total > 0);
    for (let end = pos; end < pos + Math.min(total, 6); end++) {
      const partial = packetLength(buf, pos, end);
      assert(partial === -1 || partial === total);
    }
    assert.deepStrictEqual(decodePacket(buf, pos, pos + total), p);
    pos += total;
  }
  assert.equal(pos, buf.length);
});

Deno.test("round trip: encodePacket output views are independent of one another", () => {
  // Encoded packets may share a pooled ArrayBuffer; none may overwrite another.
  const rng = mulberry32(SEED + 2);
  const kept: [Packet, Uint8Array][] = [];
  for (let i = 0; i < 3_000; i++) {
    const p = randomPacket(rng, int(rng, 2) === 0 ? 50 : 9_000);
    kept.push([p, encodePacket(p)]);
  }
  for (const [p, bytes] of kept) assert.deepStrictEqual(decodePacket(bytes, 0, bytes.length), p);
});

Deno.test("round trip: strings with every UTF-8 length class and a BOM", () => {
  const topics = [
    "a",
    "\u007f",
    "\u0080",
    "\u07ff",
    "\u0800",
    "\ud7ff",
    "\ue000",
    "\uffff",
    "\uFEFF",
  ];
  topics.push("\u{10000}", "\u{10FFFF}", "a/\u{1F600}/b");
  for (const topic of topics) {
    const packet: Packet = {
      type: "publish",
      topic,
      payload: new Uint8Array(0),
      qos: 0,
      retain: false,
      dup: false,
      packetId: undefined,
    };
    const bytes = encodePacket(packet);
    assert.deepEqual(bytes.subarray(4), new TextEncoder().encode(topic), topic);
    assert.deepStrictEqual(decodePacket(bytes, 0, bytes.length), packet);
  }
});

Deno.test("round trip: decoded topic cache returns the right topic after collisions", () => {
  // More distinct topics than cache slots, revisited: every decode must
  // return exactly its own topic.
  const names: string[] = [];
  for (let i = 0; i < 3_000; i++) names.push(`dev/${i}/t${i % 7}`);
  const encoded = names.map((topic) =>
    encodePacket({
      type: "publish",
      topic,
      payload: new Uint8Array(0),
      qos: 0,
      retain: false,
      dup: false,
    })
  );
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < names.length; i++) {
      const j = (i * 7919 + round) % names.length;
      const p = decodePacket(encoded[j], 0, encoded[j].length);
      assert(p.type === "publish" && p.topic === names[j], names[j]);
    }
  }
});

// MQTT 5.0

const V5 = { protocolVersion: 5 } as const;

Deno.test(`5.0 round trip of ${COUNT} random valid packets of all 15 types (seed ${SEED})`, () => {
  const rng = mulberry32(SEED + 5);
  const seen = new Set<string>();
  let withProperties = 0;
  for (let i = 0; i < COUNT; i++) {
    const packet = randomPacket5(rng);
    seen.add(packet.type);
    if ((packet as { properties?: object }).properties !== undefined) withProperties++;
    const bytes = encodePacket(packet, V5);
    const where = `packet #${i} ${JSON.stringify(packet.type)}`;
    assert.equal(encodedLength(packet, V5), bytes.length, where);
    assert.equal(packetLength(bytes, 0, bytes.length, undefined, 5), bytes.length, where);
    assert.deepStrictEqual(decodePacket(bytes, 0, bytes.length, V5), packet, where);
  }
  assert.equal(seen.size, 15);
  assert(withProperties > COUNT / 4, `${withProperties} packets with properties`);
});

Deno.test("5.0 round trip: many packets back to back in one buffer via encodeInto", () => {
  const rng = mulberry32(SEED + 6);
  const packets: Packet[] = [];
  let size = 0;
  for (let i = 0; i < 2_000; i++) {
    const p = randomPacket(rng, 300, 5);
    packets.push(p);
    size += encodedLength(p, V5);
  }
  const buf = new Uint8Array(size + 5);
  let offset = 5;
  for (const p of packets) offset += encodeInto(p, buf, offset, V5);
  assert.equal(offset, buf.length);
  let pos = 5;
  for (const p of packets) {
    const total = packetLength(buf, pos, buf.length, undefined, 5);
    assert.deepStrictEqual(decodePacket(buf, pos, pos + total, V5), p);
    pos += total;
  }
  assert.equal(pos, buf.length);
});

Deno.test("round trip: an explicit protocolVersion 4 encodes and decodes as the default", () => {
  const rng = mulberry32(SEED);
  for (let i = 0; i < 2_000; i++) {
    const p = randomPacket(rng);
    const bytes = encodePacket(p, { protocolVersion: 4 });
    assert.deepStrictEqual(Array.from(bytes), Array.from(encodePacket(p)));
    assert.deepStrictEqual(decodePacket(bytes, 0, bytes.length, { protocolVersion: 4 }), p);
  }
});
