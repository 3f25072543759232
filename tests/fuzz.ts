/**
 * Seeded generators and the fuzz core shared by `codec_fuzz_test.ts`,
 * `codec_roundtrip_test.ts` and `deno task fuzz` (`fuzz_main.ts`).
 *
 * Everything derives from one 32-bit seed through mulberry32, so a failure
 * report (seed, input index, bytes) can be replayed exactly.
 *
 * @module
 */
import { ProtocolError } from "../lib/errors.ts";
import {
  decodePacket,
  encodePacket,
  type Packet,
  packetLength,
  type QoS,
  type SubackReturnCode,
} from "../lib/codec/mod.ts";

/** A seeded pseudo-random generator returning floats in [0, 1). */
export type Rng = () => number;

/** mulberry32: a small, fast 32-bit PRNG, good enough for test data. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Integer in [0, n). */
export function int(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[int(rng, items.length)];
}

/** Random bytes of the given length. */
export function bytes(rng: Rng, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = int(rng, 256);
  return out;
}

// Pieces of legal strings: ASCII, 2-, 3- and 4-byte UTF-8 and a BOM, which
// must survive a round trip (MQTT-1.5.3-3).
const TEXT_PIECES = ["a", "b", "Z", "0", " ", "$", "-", "ñ", "€", "\u{1F600}", "\uFEFF", "x"];
const LEVEL_PIECES = ["a", "b", "sensor", "ñ", "€", "\u{1F600}", "", "$SYS", "x1"];

function text(rng: Rng, maxPieces: number): string {
  let s = "";
  const n = int(rng, maxPieces + 1);
  for (let i = 0; i < n; i++) s += pick(rng, TEXT_PIECES);
  return s;
}

function topicName(rng: Rng): string {
  const levels = 1 + int(rng, 4);
  const parts: string[] = [];
  for (let i = 0; i < levels; i++) parts.push(pick(rng, LEVEL_PIECES));
  const t = parts.join("/");
  return t.length === 0 ? "t" : t;
}

function topicFilter(rng: Rng): string {
  const levels = 1 + int(rng, 4);
  const parts: string[] = [];
  for (let i = 0; i < levels; i++) {
    const r = rng();
    parts.push(r < 0.2 ? "+" : pick(rng, LEVEL_PIECES));
  }
  if (rng() < 0.25) parts.push("#");
  const f = parts.join("/");
  return f.length === 0 ? "#" : f;
}

function qos(rng: Rng): QoS {
  return int(rng, 3) as QoS;
}

function packetId(rng: Rng): number {
  return rng() < 0.1 ? pick(rng, [1, 255, 256, 65535]) : 1 + int(rng, 65535);
}

/**
 * A random valid packet of any of the 14 types, shaped exactly as the
 * decoder returns it (PUBLISH always has `packetId`, CONNECT omits absent
 * optional fields).
 */
export function randomPacket(rng: Rng, maxPayload = 300): Packet {
  switch (int(rng, 14)) {
    case 0: {
      const clean = rng() < 0.5;
      const p: Packet = {
        type: "connect",
        protocolName: "MQTT",
        protocolLevel: 4,
        clientId: clean && rng() < 0.2 ? "" : text(rng, 8) || "c",
        clean,
        keepAlive: rng() < 0.1 ? pick(rng, [0, 65535]) : int(rng, 65536),
      };
      if (rng() < 0.5) {
        p.will = {
          topic: topicName(rng),
          payload: bytes(rng, int(rng, 40)),
          qos: qos(rng),
          retain: rng() < 0.5,
        };
      }
      if (rng() < 0.5) {
        p.username = text(rng, 6);
        if (rng() < 0.5) p.password = bytes(rng, int(rng, 20));
      }
      return p;
    }
    case 1:
      return {
        type: "connack",
        sessionPresent: rng() < 0.5,
        returnCode: int(rng, 6) as 0 | 1 | 2 | 3 | 4 | 5,
      };
    case 2: {
      const q = qos(rng);
      return {
        type: "publish",
        topic: topicName(rng),
        payload: bytes(rng, int(rng, maxPayload + 1)),
        qos: q,
        retain: rng() < 0.5,
        dup: q > 0 && rng() < 0.5,
        packetId: q > 0 ? packetId(rng) : undefined,
      };
    }
    case 3:
      return { type: "puback", packetId: packetId(rng) };
    case 4:
      return { type: "pubrec", packetId: packetId(rng) };
    case 5:
      return { type: "pubrel", packetId: packetId(rng) };
    case 6:
      return { type: "pubcomp", packetId: packetId(rng) };
    case 7: {
      const n = 1 + int(rng, 5);
      const subscriptions = [];
      for (let i = 0; i < n; i++) subscriptions.push({ filter: topicFilter(rng), qos: qos(rng) });
      return { type: "subscribe", packetId: packetId(rng), subscriptions };
    }
    case 8: {
      const n = 1 + int(rng, 6);
      const returnCodes: SubackReturnCode[] = [];
      for (let i = 0; i < n; i++) returnCodes.push(pick(rng, [0, 1, 2, 0x80] as const));
      return { type: "suback", packetId: packetId(rng), returnCodes };
    }
    case 9: {
      const n = 1 + int(rng, 5);
      const filters = [];
      for (let i = 0; i < n; i++) filters.push(topicFilter(rng));
      return { type: "unsubscribe", packetId: packetId(rng), filters };
    }
    case 10:
      return { type: "unsuback", packetId: packetId(rng) };
    case 11:
      return { type: "pingreq" };
    case 12:
      return { type: "pingresp" };
    default:
      return { type: "disconnect" };
  }
}

/**
 * Structural equality of two packets (plain objects, arrays, Uint8Arrays,
 * primitives; a key holding `undefined` differs from a missing key). Much
 * faster than `assert.deepStrictEqual` for the fuzz loop.
 */
export function samePacket(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array) {
    if (!(b instanceof Uint8Array) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => samePacket(v, b[i]));
  }
  if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    for (const k of ka) {
      if (!Object.hasOwn(b, k)) return false;
      if (!samePacket((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) {
        return false;
      }
    }
    return true;
  }
  return false;
}

/** Ways a fuzz input is produced. */
export const MUTATIONS = [
  "random",
  "bitflip",
  "truncate",
  "length",
  "insert",
  "delete",
  "overwrite",
  "splice",
] as const;

/** Builds the next fuzz input from `rng`: random bytes or a mutated valid packet. */
export function fuzzInput(rng: Rng): { kind: (typeof MUTATIONS)[number]; input: Uint8Array } {
  const kind = MUTATIONS[int(rng, MUTATIONS.length)];
  if (kind === "random") {
    const input = bytes(rng, int(rng, 48));
    // A plausible first byte and a small length make deeper paths reachable.
    if (input.length > 1 && rng() < 0.7) {
      input[0] = (1 + int(rng, 14)) << 4 | (rng() < 0.7 ? [0, 2, 0, 2][int(rng, 4)] : int(rng, 16));
      input[1] = int(rng, input.length);
    }
    return { kind, input };
  }
  const valid = encodePacket(randomPacket(rng, 24)).slice();
  const n = valid.length;
  switch (kind) {
    case "bitflip": {
      const flips = 1 + int(rng, 3);
      for (let i = 0; i < flips; i++) valid[int(rng, n)] ^= 1 << int(rng, 8);
      return { kind, input: valid };
    }
    case "truncate": {
      const cut = valid.subarray(0, int(rng, n));
      if (rng() < 0.5) return { kind, input: cut };
      // Cut the body but keep the length field consistent with it, so the
      // decoder meets fields that run past the remaining length.
      let h = 1;
      while (valid[h] & 0x80) h++;
      const body = valid.subarray(h + 1, h + 1 + int(rng, n - h));
      return { kind, input: withHeader(valid[0], body) };
    }
    case "length": {
      // Corrupt the remaining length field: another value, or an extra byte.
      if (rng() < 0.5) valid[1] = int(rng, 256);
      else valid[1 + int(rng, Math.min(4, n - 1))] |= 0x80;
      return { kind, input: valid };
    }
    case "insert": {
      const at = int(rng, n + 1);
      const extra = bytes(rng, 1 + int(rng, 4));
      const out = new Uint8Array(n + extra.length);
      out.set(valid.subarray(0, at));
      out.set(extra, at);
      out.set(valid.subarray(at), at + extra.length);
      return { kind, input: rng() < 0.5 ? out : reframe(out, valid) };
    }
    case "delete": {
      const at = int(rng, n);
      const len = 1 + int(rng, Math.min(4, n - at));
      const out = new Uint8Array(n - len);
      out.set(valid.subarray(0, at));
      out.set(valid.subarray(at + len), at);
      return { kind, input: rng() < 0.5 ? out : reframe(out, valid) };
    }
    case "overwrite": {
      const count = 1 + int(rng, 3);
      for (let i = 0; i < count; i++) {
        valid[int(rng, n)] = pick(rng, [
          0,
          0x23,
          0x2b,
          0x2f,
          0x80,
          0xc0,
          0xed,
          0xff,
          int(rng, 256),
        ]);
      }
      return { kind, input: valid };
    }
    default: {
      // Two valid packets glued, cut at a random point.
      const other = encodePacket(randomPacket(rng, 24));
      const out = new Uint8Array(n + other.length);
      out.set(valid);
      out.set(other, n);
      return { kind, input: out.subarray(0, int(rng, out.length + 1)) };
    }
  }
}

/**
 * After bytes were inserted or deleted in the body of `original`, rewrites
 * the length field so the decoder meets the damage inside the fields
 * instead of only an incomplete packet. Changes in the header itself are
 * left as they are.
 */
function reframe(mutated: Uint8Array, original: Uint8Array): Uint8Array {
  let h = 1;
  while (original[h] & 0x80) h++;
  const headerSize = h + 1;
  if (mutated.length < headerSize) return mutated;
  for (let i = 0; i < headerSize; i++) if (mutated[i] !== original[i]) return mutated;
  return withHeader(mutated[0], mutated.subarray(headerSize));
}

function withHeader(first: number, body: Uint8Array): Uint8Array {
  const len: number[] = [];
  let x = body.length;
  do {
    len.push((x & 0x7f) | (x >= 0x80 ? 0x80 : 0));
    x >>>= 7;
  } while (x > 0);
  const out = new Uint8Array(1 + len.length + body.length);
  out[0] = first;
  out.set(len, 1);
  out.set(body, 1 + len.length);
  return out;
}

/** Result of {@linkcode runFuzz}. */
export interface FuzzResult {
  /** Inputs run. */
  inputs: number;
  /** Outcome counts: `ok:<type>`, `incomplete`, or `error:<code>`. */
  counts: Record<string, number>;
  /** Inputs that produced anything but a valid packet or a ProtocolError. */
  failures: { index: number; kind: string; hex: string; error: string }[];
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

/**
 * Checks one input against the decoder contract; returns the outcome name
 * or throws a description of the violation.
 */
export function checkInput(input: Uint8Array): string {
  // The input sits inside a larger buffer with poison around it, so a read
  // outside [offset, end) would change results (0x00 poison would decode as
  // a valid-looking byte only by accident; the offset check catches misuse).
  const offset = 3;
  const end = offset + input.length;
  const buf = new Uint8Array(end + 3).fill(0xee);
  buf.set(input, offset);
  let outcome: string;
  try {
    const total = packetLength(buf, offset, end);
    if (total < 0 || offset + total > end) {
      outcome = "incomplete";
      // The decoder must refuse an incomplete packet, not guess.
      try {
        decodePacket(buf, offset, end);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        return outcome;
      }
      throw new Error("decodePacket accepted a packet whose bytes are incomplete");
    }
    const packet = decodePacket(buf, offset, offset + total);
    verifyValid(packet, buf.subarray(offset, offset + total));
    outcome = `ok:${packet.type}`;
    // Whole input given to the decoder: same packet, or TRAILING_BYTES.
    if (offset + total < end) {
      try {
        decodePacket(buf, offset, end);
        throw new Error("decodePacket ignored trailing bytes");
      } catch (err) {
        if (!(err instanceof ProtocolError) || err.code !== "TRAILING_BYTES") throw err;
      }
    }
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    outcome = `error:${err.code}`;
  }
  return outcome;
}

/** A decoded packet must re-encode to its own bytes and decode to itself again. */
function verifyValid(packet: Packet, wire: Uint8Array): void {
  const again = encodePacket(packet);
  const back = decodePacket(again, 0, again.length);
  if (!samePacket(packet, back)) throw new Error("decode(encode(decoded)) differs");
  // Bytes are canonical except for a non-minimal remaining length field,
  // which 3.1.1 does not forbid: compare type byte and body.
  const hdr = (b: Uint8Array) => {
    let i = 1;
    while (b[i] & 0x80) i++;
    return i + 1;
  };
  const a = wire.subarray(hdr(wire));
  const b = again.subarray(hdr(again));
  if (wire[0] !== again[0] || !samePacket(a, b)) throw new Error("re-encoded bytes differ");
}

/** Runs `inputs` fuzz inputs from `seed`; never throws, reports failures. */
export function runFuzz(seed: number, inputs: number, maxFailures = 20): FuzzResult {
  const rng = mulberry32(seed);
  const counts: Record<string, number> = {};
  const failures: FuzzResult["failures"] = [];
  for (let index = 0; index < inputs; index++) {
    const { kind, input } = fuzzInput(rng);
    try {
      const outcome = checkInput(input);
      counts[outcome] = (counts[outcome] ?? 0) + 1;
    } catch (err) {
      counts["FAILURE"] = (counts["FAILURE"] ?? 0) + 1;
      if (failures.length < maxFailures) {
        failures.push({ index, kind, hex: hex(input), error: String(err) });
      }
    }
  }
  return { inputs, counts, failures };
}
