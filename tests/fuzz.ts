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
  type Properties,
  type ProtocolVersion,
  type QoS,
  type SubackReturnCode,
} from "../lib/codec/mod.ts";
import { PacketFramer } from "../lib/streams/packet_reader.ts";

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
 * A random valid packet of any of the 14 types (15 with AUTH at 5.0), shaped
 * exactly as the decoder returns it (PUBLISH always has `packetId`, CONNECT
 * omits absent optional fields; at 5.0 see {@linkcode randomPacket5}).
 */
export function randomPacket(rng: Rng, maxPayload = 300, version: ProtocolVersion = 4): Packet {
  if (version === 5) return randomPacket5(rng, maxPayload);
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

// MQTT 5.0 (written from Table 2-4 and Table 2-6 of the 5.0 specification,
// independently of the codec's own tables).

/** Property names allowed in each property block (Table 2-4). */
const ALLOWED_PROPERTIES: Record<string, (keyof Properties)[]> = {
  will: [
    "payloadFormatIndicator",
    "messageExpiryInterval",
    "contentType",
    "responseTopic",
    "correlationData",
    "willDelayInterval",
    "userProperties",
  ],
  connect: [
    "sessionExpiryInterval",
    "receiveMaximum",
    "maximumPacketSize",
    "topicAliasMaximum",
    "requestResponseInformation",
    "requestProblemInformation",
    "userProperties",
    "authenticationMethod",
    "authenticationData",
  ],
  connack: [
    "sessionExpiryInterval",
    "receiveMaximum",
    "maximumQoS",
    "retainAvailable",
    "maximumPacketSize",
    "assignedClientIdentifier",
    "topicAliasMaximum",
    "reasonString",
    "userProperties",
    "wildcardSubscriptionAvailable",
    "subscriptionIdentifiersAvailable",
    "sharedSubscriptionAvailable",
    "serverKeepAlive",
    "responseInformation",
    "serverReference",
    "authenticationMethod",
    "authenticationData",
  ],
  publish: [
    "payloadFormatIndicator",
    "messageExpiryInterval",
    "topicAlias",
    "responseTopic",
    "correlationData",
    "userProperties",
    "subscriptionIdentifiers",
    "contentType",
  ],
  ack: ["reasonString", "userProperties"],
  subscribe: ["subscriptionIdentifier", "userProperties"],
  unsubscribe: ["userProperties"],
  disconnect: ["sessionExpiryInterval", "reasonString", "serverReference", "userProperties"],
  auth: ["authenticationMethod", "authenticationData", "reasonString", "userProperties"],
};

/** Reason codes each packet may carry (Table 2-6). */
export const REASON_CODES_OF: Record<string, readonly number[]> = {
  connack: [
    0x00,
    0x80,
    0x81,
    0x82,
    0x83,
    0x84,
    0x85,
    0x86,
    0x87,
    0x88,
    0x89,
    0x8a,
    0x8c,
    0x90,
    0x95,
    0x97,
    0x99,
    0x9a,
    0x9b,
    0x9c,
    0x9d,
    0x9f,
  ],
  puback: [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
  pubrel: [0x00, 0x92],
  suback: [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2],
  unsuback: [0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91],
  disconnect: [
    0x00,
    0x04,
    0x80,
    0x81,
    0x82,
    0x83,
    0x87,
    0x89,
    0x8b,
    0x8d,
    0x8e,
    0x8f,
    0x90,
    0x93,
    0x94,
    0x95,
    0x96,
    0x97,
    0x98,
    0x99,
    0x9a,
    0x9b,
    0x9c,
    0x9d,
    0x9e,
    0x9f,
    0xa0,
    0xa1,
    0xa2,
  ],
  auth: [0x00, 0x18, 0x19],
};
REASON_CODES_OF.pubrec = REASON_CODES_OF.puback;
REASON_CODES_OF.pubcomp = REASON_CODES_OF.pubrel;

function u32(rng: Rng): number {
  return rng() < 0.2 ? pick(rng, [0, 1, 0xffff_ffff]) : int(rng, 0x1_0000_0000);
}

function varInt(rng: Rng): number {
  return rng() < 0.3 ? pick(rng, [1, 127, 128, 16_383, 16_384, 2_097_152, 268_435_455]) : 1 +
    int(rng, 268_435_455);
}

function propertyValue(rng: Rng, name: keyof Properties): unknown {
  switch (name) {
    case "payloadFormatIndicator":
    case "maximumQoS":
      return int(rng, 2);
    case "requestProblemInformation":
    case "requestResponseInformation":
    case "retainAvailable":
    case "wildcardSubscriptionAvailable":
    case "subscriptionIdentifiersAvailable":
    case "sharedSubscriptionAvailable":
      return rng() < 0.5;
    case "messageExpiryInterval":
    case "sessionExpiryInterval":
    case "willDelayInterval":
      return u32(rng);
    case "maximumPacketSize":
      return Math.max(1, u32(rng));
    case "serverKeepAlive":
    case "topicAliasMaximum":
      return int(rng, 65_536);
    case "receiveMaximum":
    case "topicAlias":
      return 1 + int(rng, 65_535);
    case "subscriptionIdentifier":
      return varInt(rng);
    case "subscriptionIdentifiers": {
      const ids = [];
      for (let i = 1 + int(rng, 3); i > 0; i--) ids.push(varInt(rng));
      return ids;
    }
    case "responseTopic":
      return topicName(rng);
    case "correlationData":
    case "authenticationData":
      return bytes(rng, int(rng, 12));
    case "userProperties": {
      const pairs: [string, string][] = [];
      for (let i = 1 + int(rng, 3); i > 0; i--) {
        // Repeated names are legal (section 3.3.2.3.7).
        pairs.push([rng() < 0.3 ? "k" : text(rng, 4), text(rng, 4)]);
      }
      return pairs;
    }
    default:
      return text(rng, 6);
  }
}

/**
 * Random properties allowed in `block` (a key of {@linkcode ALLOWED_PROPERTIES}),
 * or `undefined` (about half the time): never an empty object, which the
 * decoder returns as no properties.
 */
export function randomProperties(rng: Rng, block: string): Properties | undefined {
  if (rng() < 0.5) return undefined;
  const names = ALLOWED_PROPERTIES[block];
  const props: Record<string, unknown> = {};
  const count = 1 + int(rng, Math.min(4, names.length));
  for (let i = 0; i < count; i++) {
    const name = pick(rng, names);
    props[name as string] = propertyValue(rng, name);
  }
  // Section 3.1.2.11.10: Authentication Data needs an Authentication Method.
  if (block === "connect" && props.authenticationData !== undefined) {
    props.authenticationMethod ??= "m";
  }
  return props as Properties;
}

function withProperties<T extends object>(packet: T, props: Properties | undefined): T {
  if (props !== undefined) (packet as { properties?: Properties }).properties = props;
  return packet;
}

/**
 * A random valid MQTT 5.0 packet of any of the 15 types, shaped as the
 * decoder returns it at 5.0: a PUBLISH always has `packetId` and
 * `properties` keys, acknowledgements, DISCONNECT and AUTH always a
 * `reasonCode`, SUBACK and UNSUBACK `reasonCodes`, subscriptions all three
 * options; other absent fields (and empty properties) are left out.
 */
export function randomPacket5(rng: Rng, maxPayload = 300): Packet {
  const type = int(rng, 15);
  switch (type) {
    case 0: {
      const p: Packet = {
        type: "connect",
        protocolName: "MQTT",
        protocolLevel: 5,
        // 5.0 lets an empty client id go without Clean Start (section 3.1.3.1).
        clientId: rng() < 0.2 ? "" : text(rng, 8) || "c",
        clean: rng() < 0.5,
        keepAlive: rng() < 0.1 ? pick(rng, [0, 65535]) : int(rng, 65536),
      };
      withProperties(p, randomProperties(rng, "connect"));
      if (rng() < 0.5) {
        p.will = withProperties({
          topic: topicName(rng),
          payload: bytes(rng, int(rng, 40)),
          qos: qos(rng),
          retain: rng() < 0.5,
        }, randomProperties(rng, "will"));
      }
      // 5.0 allows a password without a user name (section 3.1.2.9).
      if (rng() < 0.5) p.username = text(rng, 6);
      if (rng() < 0.3) p.password = bytes(rng, int(rng, 20));
      return p;
    }
    case 1:
      return withProperties(
        {
          type: "connack",
          sessionPresent: rng() < 0.5,
          reasonCode: pick(rng, REASON_CODES_OF.connack),
        } as unknown as Packet,
        randomProperties(rng, "connack"),
      );
    case 2: {
      const q = qos(rng);
      let properties = randomProperties(rng, "publish");
      let topic = topicName(rng);
      if (rng() < 0.1) {
        // Section 3.3.2.3.4: an empty topic name with a Topic Alias.
        topic = "";
        properties = { ...properties, topicAlias: 1 + int(rng, 65_535) };
      }
      return {
        type: "publish",
        topic,
        payload: bytes(rng, int(rng, maxPayload + 1)),
        qos: q,
        retain: rng() < 0.5,
        dup: q > 0 && rng() < 0.5,
        packetId: q > 0 ? packetId(rng) : undefined,
        properties,
      };
    }
    case 3:
    case 4:
    case 5:
    case 6: {
      const name = (["puback", "pubrec", "pubrel", "pubcomp"] as const)[type - 3];
      return withProperties(
        {
          type: name,
          packetId: packetId(rng),
          reasonCode: pick(rng, REASON_CODES_OF[name]),
        } as Packet,
        randomProperties(rng, "ack"),
      );
    }
    case 7: {
      const n = 1 + int(rng, 5);
      const subscriptions = [];
      for (let i = 0; i < n; i++) {
        subscriptions.push({
          filter: topicFilter(rng),
          qos: qos(rng),
          noLocal: rng() < 0.5,
          retainAsPublished: rng() < 0.5,
          retainHandling: int(rng, 3) as 0 | 1 | 2,
        });
      }
      return withProperties(
        { type: "subscribe", packetId: packetId(rng), subscriptions },
        randomProperties(rng, "subscribe"),
      );
    }
    case 8:
    case 10: {
      const name = type === 8 ? "suback" : "unsuback";
      const reasonCodes = [];
      for (let i = 1 + int(rng, 6); i > 0; i--) reasonCodes.push(pick(rng, REASON_CODES_OF[name]));
      return withProperties(
        { type: name, packetId: packetId(rng), reasonCodes } as unknown as Packet,
        randomProperties(rng, "ack"),
      );
    }
    case 9: {
      const filters = [];
      for (let i = 1 + int(rng, 5); i > 0; i--) filters.push(topicFilter(rng));
      return withProperties(
        { type: "unsubscribe", packetId: packetId(rng), filters },
        randomProperties(rng, "unsubscribe"),
      );
    }
    case 11:
      return { type: "pingreq" };
    case 12:
      return { type: "pingresp" };
    case 13:
    case 14: {
      const name = type === 13 ? "disconnect" : "auth";
      return withProperties(
        { type: name, reasonCode: pick(rng, REASON_CODES_OF[name]) } as Packet,
        randomProperties(rng, name),
      );
    }
  }
  throw new Error("unreachable");
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

/** Ways a fuzz input is produced at 5.0: those of 3.1.1 and a damaged property block. */
export const MUTATIONS_5 = [...MUTATIONS, "properties", "properties"] as const;

/** Builds the next fuzz input from `rng`: random bytes or a mutated valid packet. */
export function fuzzInput(
  rng: Rng,
  version: ProtocolVersion = 4,
): { kind: (typeof MUTATIONS_5)[number]; input: Uint8Array } {
  const kinds = version === 5 ? MUTATIONS_5 : MUTATIONS;
  const kind = kinds[int(rng, kinds.length)];
  if (kind === "properties") return { kind, input: propertyInput(rng) };
  if (kind === "random") {
    const input = bytes(rng, int(rng, 48));
    // A plausible first byte and a small length make deeper paths reachable.
    if (input.length > 1 && rng() < 0.7) {
      const types = version === 5 ? 15 : 14;
      input[0] = (1 + int(rng, types)) << 4 |
        (rng() < 0.7 ? [0, 2, 0, 2][int(rng, 4)] : int(rng, 16));
      input[1] = int(rng, input.length);
    }
    return { kind, input };
  }
  const options = { protocolVersion: version };
  const valid = encodePacket(randomPacket(rng, 24, version), options).slice();
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
      const other = encodePacket(randomPacket(rng, 24, version), options);
      const out = new Uint8Array(n + other.length);
      out.set(valid);
      out.set(other, n);
      return { kind, input: out.subarray(0, int(rng, out.length + 1)) };
    }
  }
}

// Value types of Table 2-4 by property identifier: 1 byte, 2 two-byte
// integer, 4 four-byte integer, 0 variable byte integer, "s" string, "b"
// binary, "p" string pair.
const PROPERTY_TYPES: Record<number, 0 | 1 | 2 | 4 | "s" | "b" | "p"> = {
  0x01: 1,
  0x02: 4,
  0x03: "s",
  0x08: "s",
  0x09: "b",
  0x0b: 0,
  0x11: 4,
  0x12: "s",
  0x13: 2,
  0x15: "s",
  0x16: "b",
  0x17: 1,
  0x18: 4,
  0x19: 1,
  0x1a: "s",
  0x1c: "s",
  0x1f: "s",
  0x21: 2,
  0x22: 2,
  0x23: 2,
  0x24: 1,
  0x25: 1,
  0x26: "p",
  0x27: 4,
  0x28: 1,
  0x29: 1,
  0x2a: 1,
};
const PROPERTY_IDS = Object.keys(PROPERTY_TYPES).map(Number);

function rawString(rng: Rng): number[] {
  const s = rng() < 0.9 ? Array.from(new TextEncoder().encode(text(rng, 3))) : [0xc0, 0x80];
  return [s.length >> 8, s.length & 0xff, ...s];
}

function rawVarInt(value: number): number[] {
  const out: number[] = [];
  do {
    out.push((value & 0x7f) | (value >= 0x80 ? 0x80 : 0));
    value >>>= 7;
  } while (value > 0);
  return out;
}

/** One raw property: usually well typed, sometimes an odd identifier or value. */
function rawProperty(rng: Rng): number[] {
  const id = rng() < 0.9 ? pick(rng, PROPERTY_IDS) : int(rng, 256);
  const t = PROPERTY_TYPES[id] ?? pick(rng, [1, 2, 4, "s"] as const);
  const out = id >= 0x80 ? [id, int(rng, 2)] : [id];
  // Zero (alias, subscription id, receive maximum) and 2 (flags) are the edge values.
  const edge = rng() < 0.15;
  switch (t) {
    case 0:
      if (edge) out.push(...pick(rng, [[0], [0x80, 0x00], [0xff, 0xff, 0xff, 0xff]]));
      else out.push(...rawVarInt(varInt(rng)));
      break;
    case 1:
      out.push(edge ? 2 : int(rng, 2));
      break;
    case 2:
      out.push(...(edge ? [0, 0] : [int(rng, 256), 1 + int(rng, 255)]));
      break;
    case 4:
      out.push(...(edge ? [0, 0, 0, 0] : [int(rng, 256), int(rng, 256), int(rng, 256), 1]));
      break;
    case "s":
      out.push(...(id === 0x08 && edge ? [0, 1, 0x23] : rawString(rng)));
      break;
    case "b": {
      const n = int(rng, 6);
      out.push(0, n, ...bytes(rng, n));
      break;
    }
    default:
      out.push(...rawString(rng), ...rawString(rng));
  }
  return out;
}

/**
 * A 5.0 packet whose property block is built byte by byte: random
 * properties (sometimes one not allowed there, a duplicate, a zero or
 * out-of-range value), with a Property Length that is usually right and
 * sometimes too short, too long or not minimal.
 */
function propertyInput(rng: Rng): Uint8Array {
  const props: number[] = [];
  for (let i = int(rng, 4); i > 0; i--) {
    const p = rawProperty(rng);
    props.push(...p);
    if (rng() < 0.1) props.push(...p); // a duplicate
  }
  let length = rawVarInt(props.length);
  const r = rng();
  if (r < 0.1) length = rawVarInt(Math.max(0, props.length - 1 - int(rng, 3)));
  else if (r < 0.2) length = rawVarInt(props.length + 1 + int(rng, 3));
  else if (r < 0.25) length = [...length.slice(0, -1), length[length.length - 1] | 0x80, 0x00];
  const block = [...length, ...props];
  const id = [int(rng, 256), 1 + int(rng, 255)];
  const topic = [0, 1, 0x74];
  // Where each packet type keeps its properties (sections 3.1 to 3.15).
  const shapes: [number, number[], number[]][] = [
    [0x10, [0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 0x02, 0, 60], [0, 1, 0x63]], // CONNECT
    [0x20, [0, pick(rng, [0x00, 0x80, 0x87])], []], // CONNACK
    [0x30, topic, Array.from(bytes(rng, int(rng, 4)))], // PUBLISH QoS 0
    [0x32, [...topic, ...id], []], // PUBLISH QoS 1
    [0x40, [...id, pick(rng, [0x00, 0x10, 0x80])], []], // PUBACK
    [0x50, [...id, 0x00], []], // PUBREC
    [0x62, [...id, pick(rng, [0x00, 0x92])], []], // PUBREL
    [0x70, [...id, 0x00], []], // PUBCOMP
    [0x82, id, [0, 1, 0x23, int(rng, 64)]], // SUBSCRIBE
    [0x90, id, [pick(rng, [0, 1, 2, 0x80, 0xa2])]], // SUBACK
    [0xa2, id, [0, 1, 0x61]], // UNSUBSCRIBE
    [0xb0, id, [pick(rng, [0, 0x11, 0x80])]], // UNSUBACK
    [0xe0, [pick(rng, [0x00, 0x04, 0x8e])], []], // DISCONNECT
    [0xf0, [pick(rng, [0x00, 0x18, 0x19])], []], // AUTH
  ];
  const [first, before, after] = pick(rng, shapes);
  const body = [...before, ...block, ...after];
  if (first === 0x10 && rng() < 0.5) {
    // Will flag set: the property block goes again into the will properties.
    body[7] = 0x06;
    body.push(...block, 0, 1, 0x77, 0, 0);
  }
  return withHeader(first, Uint8Array.from(body));
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
export function checkInput(input: Uint8Array, version: ProtocolVersion = 4): string {
  const options = { protocolVersion: version };
  // The input sits inside a larger buffer with poison around it, so a read
  // outside [offset, end) would change results (0x00 poison would decode as
  // a valid-looking byte only by accident; the offset check catches misuse).
  const offset = 3;
  const end = offset + input.length;
  const buf = new Uint8Array(end + 3).fill(0xee);
  buf.set(input, offset);
  let outcome: string;
  try {
    const total = packetLength(buf, offset, end, undefined, version);
    if (total < 0 || offset + total > end) {
      outcome = "incomplete";
      // The decoder must refuse an incomplete packet, not guess.
      try {
        decodePacket(buf, offset, end, options);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        return outcome;
      }
      throw new Error("decodePacket accepted a packet whose bytes are incomplete");
    }
    const packet = decodePacket(buf, offset, offset + total, options);
    verifyValid(packet, buf.subarray(offset, offset + total), version);
    outcome = `ok:${packet.type}`;
    // Whole input given to the decoder: same packet, or TRAILING_BYTES.
    if (offset + total < end) {
      try {
        decodePacket(buf, offset, end, options);
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

/**
 * A decoded packet must re-encode to its own bytes and decode to itself
 * again. At 5.0 the bytes may be shorter instead: a reason code or Property
 * Length of zero the sender could have left out, or a Variable Byte Integer
 * of more bytes than needed, are legal input the encoder does not produce.
 */
function verifyValid(packet: Packet, wire: Uint8Array, version: ProtocolVersion): void {
  const options = { protocolVersion: version };
  const again = encodePacket(packet, options);
  const back = decodePacket(again, 0, again.length, options);
  if (!samePacket(packet, back)) throw new Error("decode(encode(decoded)) differs");
  if (version === 5) {
    if (wire[0] !== again[0] || again.length > wire.length) {
      throw new Error("re-encoded bytes are longer or of another type");
    }
    return;
  }
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

/** Runs `inputs` fuzz inputs from `seed` at `version`; never throws, reports failures. */
export function runFuzz(
  seed: number,
  inputs: number,
  maxFailures = 20,
  version: ProtocolVersion = 4,
): FuzzResult {
  return runWith(seed, inputs, maxFailures, version, (input) => checkInput(input, version));
}

/** Runs each input through `check` (which may draw more from `rng`), counting outcomes. */
function runWith(
  seed: number,
  inputs: number,
  maxFailures: number,
  version: ProtocolVersion,
  check: (input: Uint8Array, rng: Rng) => string,
): FuzzResult {
  const rng = mulberry32(seed);
  const counts: Record<string, number> = {};
  const failures: FuzzResult["failures"] = [];
  for (let index = 0; index < inputs; index++) {
    const { kind, input } = fuzzInput(rng, version);
    try {
      const outcome = check(input, rng);
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

/**
 * The streaming path the client and broker read with: `input` framed by a
 * {@linkcode PacketFramer} in up to four chunks split at random points, with
 * a random Maximum Packet Size (MQTT-3.1.2-24/-25, section 3.2.2.3.6) half the
 * time. The packets must be those framing `input` in one piece gives, a
 * packet above the maximum must give `PACKET_TOO_LARGE` and never be
 * returned, and every failure must be a ProtocolError. Returns the outcome
 * (`framed:<count>` or `error:<code>`); throws on a violation.
 */
export function checkFramed(input: Uint8Array, rng: Rng, version: ProtocolVersion = 4): string {
  const whole = frameAll([input], undefined, version);
  const max = rng() < 0.5 ? 2 + int(rng, 40) : undefined;
  const cuts = new Set<number>();
  for (let i = int(rng, 4); i > 0; i--) cuts.add(int(rng, input.length + 1));
  const points = [0, ...[...cuts].sort((a, b) => a - b), input.length];
  const chunks: Uint8Array[] = [];
  for (let i = 1; i < points.length; i++) {
    if (points[i] > points[i - 1]) chunks.push(input.slice(points[i - 1], points[i]));
  }
  const split = frameAll(chunks, max, version);
  for (const packet of split.packets) {
    const size = encodePacket(packet, { protocolVersion: version }).length;
    // Re-encoding is never longer than the wire form, so this bounds the packet from below.
    if (max !== undefined && size > max) {
      throw new Error("a packet above maxPacketSize was returned");
    }
  }
  const n = split.packets.length;
  if (n > whole.packets.length) throw new Error("chunked framing returned more packets");
  for (let i = 0; i < n; i++) {
    if (!samePacket(split.packets[i], whole.packets[i])) {
      throw new Error(`chunked framing returned another packet #${i}`);
    }
  }
  if (split.error === undefined) {
    if (n !== whole.packets.length || whole.error !== undefined) {
      throw new Error("chunked framing accepted what whole framing refused");
    }
    return `framed:${n}`;
  }
  // Within the maximum, the chunked framing fails where the whole one does, for the same reason.
  if (split.error !== "PACKET_TOO_LARGE" && split.error !== whole.error) {
    throw new Error(`chunked framing failed with ${split.error}, whole with ${whole.error}`);
  }
  return `error:${split.error}`;
}

function frameAll(
  chunks: Uint8Array[],
  maxPacketSize: number | undefined,
  version: ProtocolVersion,
): { packets: Packet[]; error?: string } {
  const framer = new PacketFramer({ protocolVersion: version, maxPacketSize });
  const packets: Packet[] = [];
  try {
    for (const chunk of chunks) framer.push(chunk, (p) => void packets.push(p));
    framer.end();
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return { packets, error: err.code };
  }
  return { packets };
}

/** Runs `inputs` fuzz inputs from `seed` through {@linkcode checkFramed}; never throws. */
export function runFramedFuzz(
  seed: number,
  inputs: number,
  version: ProtocolVersion = 4,
): FuzzResult {
  return runWith(seed, inputs, 20, version, (input, rng) => checkFramed(input, rng, version));
}
