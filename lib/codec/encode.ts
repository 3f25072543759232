/**
 * Packet objects to bytes. Every packet is validated first (the same rules
 * the decoder enforces), measured, then written in one pass into a buffer
 * of exactly the right size.
 *
 * @module
 */
import { MqttError, ProtocolError } from "../errors.ts";
import type {
  ConnectPacket,
  Packet,
  PacketTypeName,
  ProtocolVersion,
  PublishPacket,
  SubscribePacket,
  UnsubscribePacket,
} from "./packet.ts";
import {
  hasProperties,
  type Properties,
  propertiesLength,
  varIntSize,
  WILL_PROPERTIES,
  writeProperties,
} from "./properties.ts";
import { checkReasonCode } from "./reason_codes.ts";
import type { CodecOptions } from "./options.ts";
import { protocolVersionOf } from "./options.ts";
import {
  MAX_PACKET_SIZE,
  MAX_REMAINING_LENGTH,
  remainingLengthSize,
  writeRemainingLength,
} from "./remaining_length.ts";
import { topicFilterLength, topicNameLength } from "./topic.ts";
import { MAX_STRING_BYTES, utf8Length, writeBinary, writeString } from "./utf8.ts";

// First byte of each fixed header: type << 4 | flags. Reserved flags are
// fixed by Table 2.2 (MQTT-2.2.2-1): 0b0010 for PUBREL (MQTT-3.6.1-1),
// SUBSCRIBE (MQTT-3.8.1-1) and UNSUBSCRIBE (MQTT-3.10.1-1), 0 elsewhere.
// PUBLISH adds its own flags.
const CONNECT = 0x10;
const CONNACK = 0x20;
const PUBLISH = 0x30;
const PUBACK = 0x40;
const PUBREC = 0x50;
const PUBREL = 0x62;
const PUBCOMP = 0x70;
const SUBSCRIBE = 0x82;
const SUBACK = 0x90;
const UNSUBSCRIBE = 0xa2;
const UNSUBACK = 0xb0;
const PINGREQ = 0xc0;
const PINGRESP = 0xd0;
const DISCONNECT = 0xe0;
const AUTH = 0xf0;

/** Packet type numbers by name, for the property contexts of 5.0. */
const TYPE_IDS: Record<PacketTypeName, number> = {
  connect: 1,
  connack: 2,
  publish: 3,
  puback: 4,
  pubrec: 5,
  pubrel: 6,
  pubcomp: 7,
  subscribe: 8,
  suback: 9,
  unsubscribe: 10,
  unsuback: 11,
  pingreq: 12,
  pingresp: 13,
  disconnect: 14,
  auth: 15,
};

// Property lengths measured by bodyLength for the writePacket that follows
// it. Safe: encoding is synchronous and never re-entered.
let propLength = 0;
let willPropLength = 0;

/** Protocol name of MQTT 3.1.1 (MQTT-3.1.2-1). */
const PROTOCOL_NAME = "MQTT";

/**
 * Encodes `packet` into a `Uint8Array` of exactly {@linkcode encodedLength}
 * bytes that belongs to the caller.
 *
 * Packets up to 8 KiB are views into a shared 64 KiB pool (`byteOffset` may
 * be non-zero and `buffer` holds other packets): use the view, never its
 * whole `buffer`, and do not transfer or detach that buffer. Use
 * {@linkcode encodeInto} to write into memory of your own.
 *
 * Throws a {@linkcode ProtocolError} when the packet breaks a rule of the
 * specification (the error `code` says which, the message cites its
 * normative id), or `PACKET_TOO_LARGE` beyond the 268,435,455-byte remaining
 * length or `options.maxPacketSize`.
 *
 * @example
 * ```ts
 * import { encodePacket } from "./encode.ts";
 * const bytes = encodePacket({
 *   type: "publish",
 *   topic: "a/b",
 *   payload: new TextEncoder().encode("hi"),
 *   qos: 0,
 *   retain: false,
 *   dup: false,
 * });
 * console.log(bytes); // Uint8Array [0x30, 7, 0, 3, 0x61, 0x2f, 0x62, 0x68, 0x69]
 * ```
 */
export function encodePacket(packet: Packet, options?: CodecOptions): Uint8Array {
  const version = protocolVersionOf(options);
  const remaining = bodyLength(packet, version);
  const total = totalLength(packet.type, remaining, options?.maxPacketSize);
  const buf = allocate(total);
  writePacket(packet, buf, 0, remaining, version);
  return buf;
}

// Small packets are carved out of a shared 64 KiB pool, as Node's
// Buffer.allocUnsafe does: allocating a small off-heap ArrayBuffer costs
// several times more than encoding the packet. Every byte handed out is
// overwritten by the encoder, so the pool needs no zeroing.
const POOL_SIZE = 64 * 1024;
const POOL_MAX_PACKET = 8 * 1024;
let pool = new Uint8Array(POOL_SIZE);
let poolOffset = 0;

// `size` is a validated integer (totalLength); the comparisons are written so that anything
// else (NaN included) takes a fresh buffer or a fresh pool rather than corrupt the shared
// offset, which every later packet of every connection in the process depends on.
function allocate(size: number): Uint8Array {
  if (!(size <= POOL_MAX_PACKET)) return new Uint8Array(size);
  if (!(poolOffset + size <= POOL_SIZE)) {
    pool = new Uint8Array(POOL_SIZE);
    poolOffset = 0;
  }
  const buf = pool.subarray(poolOffset, poolOffset + size);
  poolOffset += buf.length;
  return buf;
}

/**
 * Exact number of bytes {@linkcode encodePacket} produces for `packet`,
 * after validating it (throws the same errors).
 *
 * @example
 * ```ts
 * import { encodedLength } from "./encode.ts";
 * console.log(encodedLength({ type: "pingreq" })); // 2
 * ```
 */
export function encodedLength(packet: Packet, options?: CodecOptions): number {
  const version = protocolVersionOf(options);
  return totalLength(packet.type, bodyLength(packet, version), options?.maxPacketSize);
}

/**
 * Encodes `packet` into `target` at `offset` and returns the number of bytes
 * written ({@linkcode encodedLength}). Nothing is written when the packet is
 * invalid. `target` must have room; if it has not, an `INVALID_OPTION`
 * {@linkcode MqttError} is thrown before anything is written.
 *
 * @example
 * ```ts
 * import { encodeInto } from "./encode.ts";
 * const target = new Uint8Array(16);
 * const n = encodeInto({ type: "puback", packetId: 10 }, target, 4);
 * console.log(n, target.subarray(4, 4 + n)); // 4 Uint8Array [0x40, 2, 0, 10]
 * ```
 */
export function encodeInto(
  packet: Packet,
  target: Uint8Array,
  offset: number,
  options?: CodecOptions,
): number {
  const version = protocolVersionOf(options);
  const remaining = bodyLength(packet, version);
  const total = totalLength(packet.type, remaining, options?.maxPacketSize);
  if (!(Number.isInteger(offset) && offset >= 0 && offset + total <= target.length)) {
    throw new MqttError(
      "INVALID_OPTION",
      `encodeInto: ${total} bytes do not fit at offset ${offset} of a ${target.length}-byte target`,
    );
  }
  return writePacket(packet, target, offset, remaining, version) - offset;
}

function totalLength(
  type: PacketTypeName,
  remaining: number,
  maxPacketSize: number | undefined,
): number {
  // A length that is not a whole number comes from a field of the wrong type (a number for a
  // topic, an object for a payload) that the checks before could not see: refuse the packet.
  if (!Number.isSafeInteger(remaining) || remaining < 0) {
    throw new MqttError(
      "INVALID_OPTION",
      `${type.toUpperCase()} has a field of the wrong type (its length measured ${remaining})`,
    );
  }
  if (remaining > MAX_REMAINING_LENGTH) {
    throw new ProtocolError(
      "PACKET_TOO_LARGE",
      `remaining length ${remaining} exceeds 268435455 (section 2.2.3)`,
      type,
    );
  }
  const total = 1 + remainingLengthSize(remaining) + remaining;
  if (total > (maxPacketSize ?? MAX_PACKET_SIZE)) {
    throw new ProtocolError(
      "PACKET_TOO_LARGE",
      `packet of ${total} bytes exceeds maxPacketSize ${maxPacketSize}`,
      type,
    );
  }
  return total;
}

/** Validates `packet` and returns its remaining length (variable header + payload). */
function bodyLength(packet: Packet, version: ProtocolVersion): number {
  switch (packet.type) {
    case "publish":
      return publishLength(packet, version);
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      checkPacketId(packet.packetId, packet.type);
      if (version === 5) return ackLength(packet.type, packet.reasonCode, packet.properties);
      only5(packet.reasonCode !== undefined && packet.reasonCode !== 0, packet.type, "reasonCode");
      only5(hasProperties(packet.properties), packet.type, "properties");
      return 2;
    case "unsuback":
      checkPacketId(packet.packetId, packet.type);
      if (version === 5) {
        return codesLength("unsuback", packet.reasonCodes, packet.properties, "MQTT-3.11.3-1");
      }
      only5(packet.reasonCodes !== undefined, packet.type, "reasonCodes");
      only5(hasProperties(packet.properties), packet.type, "properties");
      return 2;
    case "subscribe":
      return subscribeLength(packet, version);
    case "suback": {
      if (version === 5) {
        checkPacketId(packet.packetId, "suback");
        // 3.1.1 return codes 0, 1, 2 and 0x80 mean the same as 5.0 reason codes.
        const codes = packet.reasonCodes ?? packet.returnCodes;
        return codesLength("suback", codes, packet.properties, "MQTT-3.9.3-1");
      }
      only5(packet.reasonCodes !== undefined, packet.type, "reasonCodes");
      only5(hasProperties(packet.properties), packet.type, "properties");
      checkPacketId(packet.packetId, "suback");
      const codes = packet.returnCodes;
      if (codes === undefined || codes.length === 0) {
        throw new ProtocolError(
          "EMPTY_SUBSCRIPTION",
          "SUBACK needs one return code per topic filter of its SUBSCRIBE, so at least one " +
            "(MQTT-3.8.3-3, MQTT-3.9.3-1)",
          "suback",
        );
      }
      for (let i = 0; i < codes.length; i++) {
        const c = codes[i];
        // MQTT-3.9.3-2: only 0x00, 0x01, 0x02 and 0x80.
        if (c !== 0 && c !== 1 && c !== 2 && c !== 0x80) {
          throw new ProtocolError(
            "INVALID_RETURN_CODE",
            `SUBACK return code ${c} is reserved (MQTT-3.9.3-2)`,
            "suback",
          );
        }
      }
      return 2 + codes.length;
    }
    case "unsubscribe":
      return unsubscribeLength(packet, version);
    case "connect":
      return connectLength(packet, version);
    case "connack": {
      if (version === 5) {
        let rc: number | undefined = packet.reasonCode;
        if (rc === undefined) {
          // A 3.1.1-shaped CONNACK: only its success code means the same in 5.0.
          if (packet.returnCode !== undefined && packet.returnCode !== 0) {
            throw new ProtocolError(
              "INVALID_REASON_CODE",
              `a 5.0 CONNACK carries reasonCode, not the 3.1.1 returnCode ${packet.returnCode} ` +
                `(MQTT-3.2.2-8)`,
              "connack",
            );
          }
          rc = 0;
        }
        checkReasonCode(rc, "connack");
        propLength = propertiesLength(packet.properties, 2, "connack");
        return 2 + varIntSize(propLength) + propLength;
      }
      only5(packet.reasonCode !== undefined, packet.type, "reasonCode");
      only5(hasProperties(packet.properties), packet.type, "properties");
      const rc = packet.returnCode;
      // Section 3.2.2.3: return codes 0..5; 6..255 are reserved.
      if (rc !== 0 && rc !== 1 && rc !== 2 && rc !== 3 && rc !== 4 && rc !== 5) {
        throw new ProtocolError(
          "INVALID_RETURN_CODE",
          `CONNACK return code ${rc} is reserved (section 3.2.2.3)`,
          "connack",
        );
      }
      return 2;
    }
    case "pingreq":
    case "pingresp":
      return 0;
    case "disconnect":
    case "auth": {
      if (version === 5) {
        const rc = packet.reasonCode ?? 0;
        checkReasonCode(rc, packet.type);
        propLength = propertiesLength(packet.properties, TYPE_IDS[packet.type], packet.type);
        // Sections 3.14.2.1, 3.15.2.1: success without properties is an empty body;
        // a DISCONNECT may also stop after its reason code (section 3.14.2.2.1).
        if (propLength === 0) return rc === 0 ? 0 : packet.type === "auth" ? 2 : 1;
        return 1 + varIntSize(propLength) + propLength;
      }
      if (packet.type === "auth") {
        // 3.1.1 section 2.2.1: type 15 is reserved; AUTH exists only in 5.0.
        throw new ProtocolError(
          "INVALID_PACKET_TYPE",
          "packet type 15 (AUTH) exists only in MQTT 5.0: set protocolVersion 5 (section 2.2.1)",
          "auth",
        );
      }
      only5(packet.reasonCode !== undefined && packet.reasonCode !== 0, "disconnect", "reasonCode");
      only5(hasProperties(packet.properties), "disconnect", "properties");
      return 0;
    }
    default:
      throw new ProtocolError(
        "INVALID_PACKET_TYPE",
        `unknown packet type ${JSON.stringify((packet as { type: unknown }).type)} (section 2.2.1)`,
      );
  }
}

/** Throws when `present`: `what` exists only in MQTT 5.0 and would be lost under 3.1.1. */
function only5(present: boolean, type: PacketTypeName, what: string): void {
  if (present) {
    throw new ProtocolError(
      "PROTOCOL_VERSION_MISMATCH",
      `${type.toUpperCase()} ${what} exists only in MQTT 5.0, but the packet is encoded as ` +
        `MQTT 3.1.1 (protocolVersion 4${type === "connect" ? " or protocolLevel 4" : ""}): ` +
        `use protocolVersion 5 or remove it`,
      type,
    );
  }
}

/** Body of a 5.0 PUBACK, PUBREC, PUBREL or PUBCOMP, omitting what the spec lets go. */
function ackLength(
  type: PacketTypeName,
  reasonCode: number | undefined,
  properties: Properties | undefined,
): number {
  const rc = reasonCode ?? 0;
  checkReasonCode(rc, type);
  propLength = propertiesLength(properties, TYPE_IDS[type], type);
  // Section 3.4.2.1 (and 3.5/3.6/3.7): Remaining Length 2 is success without
  // properties; 3 is a reason code without properties (section 3.4.2.2.1).
  if (propLength === 0) return rc === 0 ? 2 : 3;
  return 3 + varIntSize(propLength) + propLength;
}

/** Body of a 5.0 SUBACK or UNSUBACK: id, properties, one reason code per filter. */
function codesLength(
  type: PacketTypeName,
  codes: readonly number[] | undefined,
  properties: Properties | undefined,
  rule: string,
): number {
  if (codes === undefined || codes.length === 0) {
    throw new ProtocolError(
      "EMPTY_SUBSCRIPTION",
      `${type.toUpperCase()} needs one reason code per topic filter, so at least one (${rule})`,
      type,
    );
  }
  for (let i = 0; i < codes.length; i++) checkReasonCode(codes[i], type);
  propLength = propertiesLength(properties, TYPE_IDS[type], type);
  return 2 + varIntSize(propLength) + propLength + codes.length;
}

function checkPacketId(id: number, type: PacketTypeName): void {
  // MQTT-2.3.1-1: a non-zero 16-bit integer. `(id & 0xffff) === id` also
  // rejects fractions, NaN, strings and undefined.
  if ((id & 0xffff) !== id || id === 0) {
    throw new ProtocolError(
      "INVALID_PACKET_ID",
      `packet identifier ${id} is not in 1..65535 (MQTT-2.3.1-1)`,
      type,
    );
  }
}

function checkQos(qos: number, type: PacketTypeName): void {
  if (qos !== 0 && qos !== 1 && qos !== 2) {
    // MQTT-3.3.1-4 (PUBLISH), MQTT-3.8.3-4 (SUBSCRIBE): QoS 3 is reserved.
    throw new ProtocolError(
      "INVALID_QOS",
      `QoS ${qos} is not 0, 1 or 2 (${type === "publish" ? "MQTT-3.3.1-4" : "MQTT-3.8.3-4"})`,
      type,
    );
  }
}

function publishLength(p: PublishPacket, version: ProtocolVersion): number {
  const qos = p.qos;
  checkQos(qos, "publish");
  // A packet identifier is written only when QoS > 0 (MQTT-2.3.1-5); for QoS 0
  // a leftover `packetId` is ignored rather than rejected.
  if (qos !== 0) checkPacketId(p.packetId as number, "publish");
  else if (p.dup) {
    // MQTT-3.3.1-2: DUP must be 0 for QoS 0.
    throw new ProtocolError(
      "INVALID_FLAGS",
      "DUP set on a QoS 0 PUBLISH (MQTT-3.3.1-2)",
      "publish",
    );
  }
  if (version === 5) {
    const props = p.properties;
    propLength = props === undefined ? 0 : propertiesLength(props, 3, "publish");
    // 5.0 section 3.3.2.1: an empty topic name needs a Topic Alias.
    const topicBytes = p.topic === "" && props?.topicAlias !== undefined
      ? 0
      : topicNameLength(p.topic, "publish");
    return 2 + topicBytes + (qos === 0 ? 0 : 2) + varIntSize(propLength) + propLength +
      p.payload.length;
  }
  if (p.properties !== undefined) only5(hasProperties(p.properties), "publish", "properties");
  return 2 + topicNameLength(p.topic, "publish") + (qos === 0 ? 0 : 2) + p.payload.length;
}

function subscribeLength(p: SubscribePacket, version: ProtocolVersion): number {
  checkPacketId(p.packetId, "subscribe");
  const subs = p.subscriptions;
  if (subs.length === 0) {
    throw new ProtocolError(
      "EMPTY_SUBSCRIPTION",
      "SUBSCRIBE without a topic filter (MQTT-3.8.3-3)",
      "subscribe",
    );
  }
  let len = 2;
  for (let i = 0; i < subs.length; i++) {
    const s = subs[i];
    checkQos(s.qos, "subscribe");
    len += 3 + topicFilterLength(s.filter, "subscribe");
    const rh = s.retainHandling;
    if (version === 4) {
      only5(s.noLocal === true, "subscribe", "noLocal");
      only5(s.retainAsPublished === true, "subscribe", "retainAsPublished");
      only5(rh !== undefined && rh !== 0, "subscribe", "retainHandling");
      continue;
    }
    // Section 3.8.3.1: Retain Handling 3 is a Protocol Error.
    if (rh !== undefined && rh !== 0 && rh !== 1 && rh !== 2) {
      throw new ProtocolError(
        "INVALID_FLAGS",
        `retainHandling ${rh} is not 0, 1 or 2 (section 3.8.3.1)`,
        "subscribe",
      );
    }
    // MQTT-3.8.3-4: No Local on a shared subscription is a Protocol Error.
    if (s.noLocal === true && s.filter.startsWith("$share/")) {
      throw new ProtocolError(
        "INVALID_FLAGS",
        `noLocal on the shared subscription ${JSON.stringify(s.filter)} (MQTT-3.8.3-4)`,
        "subscribe",
      );
    }
  }
  if (version === 5) {
    propLength = propertiesLength(p.properties, 8, "subscribe");
    return len + varIntSize(propLength) + propLength;
  }
  only5(hasProperties(p.properties), "subscribe", "properties");
  return len;
}

function unsubscribeLength(p: UnsubscribePacket, version: ProtocolVersion): number {
  checkPacketId(p.packetId, "unsubscribe");
  const filters = p.filters;
  if (filters.length === 0) {
    throw new ProtocolError(
      "EMPTY_SUBSCRIPTION",
      "UNSUBSCRIBE without a topic filter (MQTT-3.10.3-2)",
      "unsubscribe",
    );
  }
  let len = 2;
  for (let i = 0; i < filters.length; i++) len += 2 + topicFilterLength(filters[i], "unsubscribe");
  if (version === 5) {
    propLength = propertiesLength(p.properties, 10, "unsubscribe");
    return len + varIntSize(propLength) + propLength;
  }
  only5(hasProperties(p.properties), "unsubscribe", "properties");
  return len;
}

function checkBinary(data: Uint8Array, what: string): number {
  if (data.length > MAX_STRING_BYTES) {
    throw new ProtocolError(
      "STRING_TOO_LONG",
      `${what} of ${data.length} bytes exceeds 65535 (section 3.1.3)`,
      "connect",
    );
  }
  return data.length;
}

function connectLength(p: ConnectPacket, version: ProtocolVersion): number {
  // MQTT-3.1.2-1, MQTT-3.1.2-2: "MQTT" at level 4 for 3.1.1, 5 for 5.0; the
  // packet's level decides its format, up to the codec's version.
  const level = p.protocolLevel;
  if (p.protocolName !== PROTOCOL_NAME || (level !== 4 && level !== version)) {
    throw new ProtocolError(
      "UNSUPPORTED_PROTOCOL",
      `protocol ${JSON.stringify(p.protocolName)} level ${level} is not MQTT level ` +
        `${version === 5 ? "4 or 5" : "4"} (MQTT-3.1.2-1, MQTT-3.1.2-2)`,
      "connect",
    );
  }
  const v5 = level === 5;
  const ka = p.keepAlive;
  if ((ka & 0xffff) !== ka) {
    throw new ProtocolError(
      "INVALID_KEEPALIVE",
      `keep alive ${ka} is not in 0..65535 seconds (section 3.1.2.10)`,
      "connect",
    );
  }
  const clientIdBytes = utf8Length(p.clientId, "connect");
  // 3.1.1 MQTT-3.1.3-7: a zero-byte client id needs CleanSession 1 (5.0 lets the server decide).
  if (clientIdBytes === 0 && !p.clean && !v5) {
    throw new ProtocolError(
      "INVALID_CLIENT_ID",
      "empty client identifier requires clean session (MQTT-3.1.3-7)",
      "connect",
    );
  }
  let len = 10 + 2 + clientIdBytes;
  if (v5) {
    propLength = propertiesLength(p.properties, 1, "connect");
    len += varIntSize(propLength) + propLength;
  } else {
    only5(hasProperties(p.properties), "connect", "properties");
  }
  const will = p.will;
  if (will !== undefined) {
    if (v5) {
      willPropLength = propertiesLength(will.properties, WILL_PROPERTIES, "connect");
      len += varIntSize(willPropLength) + willPropLength;
    } else {
      only5(hasProperties(will.properties), "connect", "will properties");
    }
    const q = will.qos;
    // MQTT-3.1.2-14: will QoS 0, 1 or 2, never 3.
    if (q !== 0 && q !== 1 && q !== 2) {
      throw new ProtocolError(
        "INVALID_CONNECT_FLAGS",
        `will QoS ${q} is not 0, 1 or 2 (MQTT-3.1.2-14)`,
        "connect",
      );
    }
    // The will topic is the topic the will is published to: a topic name.
    len += 4 + topicNameLength(will.topic, "connect") + checkBinary(will.payload, "will message");
  }
  if (p.username !== undefined) len += 2 + utf8Length(p.username, "connect");
  if (p.password !== undefined) {
    // MQTT-3.1.2-22: no password without a user name (3.1.1; 5.0 allows it).
    if (p.username === undefined && !v5) {
      throw new ProtocolError(
        "INVALID_CONNECT_FLAGS",
        "password without user name (MQTT-3.1.2-22)",
        "connect",
      );
    }
    len += 2 + checkBinary(p.password, "password");
  }
  return len;
}

/** Writes a validated packet with its known remaining length; returns the end position. */
function writePacket(
  packet: Packet,
  buf: Uint8Array,
  pos: number,
  remaining: number,
  version: ProtocolVersion,
): number {
  switch (packet.type) {
    case "publish": {
      const qos = packet.qos;
      buf[pos] = PUBLISH | (packet.dup ? 0x08 : 0) | (qos << 1) | (packet.retain ? 0x01 : 0);
      pos = writeString(packet.topic, buf, writeRemainingLength(buf, pos + 1, remaining));
      if (qos !== 0) pos = writeUint16(buf, pos, packet.packetId as number);
      if (version === 5) pos = writeProperties(packet.properties, propLength, buf, pos);
      buf.set(packet.payload, pos);
      return pos + packet.payload.length;
    }
    case "puback":
      return writeAck(buf, pos, PUBACK, packet.packetId, remaining, packet);
    case "pubrec":
      return writeAck(buf, pos, PUBREC, packet.packetId, remaining, packet);
    case "pubrel":
      return writeAck(buf, pos, PUBREL, packet.packetId, remaining, packet);
    case "pubcomp":
      return writeAck(buf, pos, PUBCOMP, packet.packetId, remaining, packet);
    case "unsuback":
      pos = writeUint16(buf, writeHeader(buf, pos, UNSUBACK, remaining), packet.packetId);
      if (version === 4) return pos;
      return writeCodes(
        buf,
        writeProperties(packet.properties, propLength, buf, pos),
        packet.reasonCodes!,
      );
    case "subscribe": {
      pos = writeUint16(buf, writeHeader(buf, pos, SUBSCRIBE, remaining), packet.packetId);
      const subs = packet.subscriptions;
      if (version === 5) {
        pos = writeProperties(packet.properties, propLength, buf, pos);
        for (let i = 0; i < subs.length; i++) {
          const s = subs[i];
          pos = writeString(s.filter, buf, pos);
          // Section 3.8.3.1: QoS, No Local, Retain As Published, Retain Handling; bits 6-7 are 0.
          buf[pos++] = s.qos | (s.noLocal ? 0x04 : 0) | (s.retainAsPublished ? 0x08 : 0) |
            ((s.retainHandling ?? 0) << 4);
        }
        return pos;
      }
      for (let i = 0; i < subs.length; i++) {
        pos = writeString(subs[i].filter, buf, pos);
        buf[pos++] = subs[i].qos;
      }
      return pos;
    }
    case "suback": {
      pos = writeUint16(buf, writeHeader(buf, pos, SUBACK, remaining), packet.packetId);
      if (version === 5) {
        pos = writeProperties(packet.properties, propLength, buf, pos);
        return writeCodes(buf, pos, (packet.reasonCodes ?? packet.returnCodes)!);
      }
      return writeCodes(buf, pos, packet.returnCodes!);
    }
    case "unsubscribe": {
      pos = writeUint16(buf, writeHeader(buf, pos, UNSUBSCRIBE, remaining), packet.packetId);
      if (version === 5) pos = writeProperties(packet.properties, propLength, buf, pos);
      const filters = packet.filters;
      for (let i = 0; i < filters.length; i++) pos = writeString(filters[i], buf, pos);
      return pos;
    }
    case "connect":
      return writeConnect(packet, buf, writeHeader(buf, pos, CONNECT, remaining));
    case "connack": {
      pos = writeHeader(buf, pos, CONNACK, remaining);
      // Section 3.2.2.1: bits 7-1 of the acknowledge flags are reserved, 0.
      buf[pos] = packet.sessionPresent ? 1 : 0;
      if (version === 4) {
        buf[pos + 1] = packet.returnCode!;
        return pos + 2;
      }
      buf[pos + 1] = packet.reasonCode ?? 0;
      return writeProperties(packet.properties, propLength, buf, pos + 2);
    }
    case "pingreq":
      return writeHeader(buf, pos, PINGREQ, 0);
    case "pingresp":
      return writeHeader(buf, pos, PINGRESP, 0);
    case "disconnect":
    case "auth": {
      pos = writeHeader(buf, pos, packet.type === "auth" ? AUTH : DISCONNECT, remaining);
      if (remaining === 0) return pos;
      buf[pos++] = packet.reasonCode ?? 0;
      if (remaining === 1) return pos;
      return writeProperties(packet.properties, propLength, buf, pos);
    }
  }
}

/** Writes a PUBACK, PUBREC, PUBREL or PUBCOMP whose body is `remaining` bytes long. */
function writeAck(
  buf: Uint8Array,
  pos: number,
  first: number,
  packetId: number,
  remaining: number,
  packet: { reasonCode?: number; properties?: Properties },
): number {
  pos = writeUint16(buf, writeHeader(buf, pos, first, remaining), packetId);
  if (remaining === 2) return pos;
  buf[pos++] = packet.reasonCode ?? 0;
  if (remaining === 3) return pos;
  return writeProperties(packet.properties, propLength, buf, pos);
}

function writeCodes(buf: Uint8Array, pos: number, codes: readonly number[]): number {
  for (let i = 0; i < codes.length; i++) buf[pos++] = codes[i];
  return pos;
}

function writeHeader(buf: Uint8Array, pos: number, first: number, remaining: number): number {
  buf[pos] = first;
  return writeRemainingLength(buf, pos + 1, remaining);
}

function writeUint16(buf: Uint8Array, pos: number, value: number): number {
  buf[pos] = value >> 8;
  buf[pos + 1] = value & 0xff;
  return pos + 2;
}

function writeConnect(p: ConnectPacket, buf: Uint8Array, pos: number): number {
  pos = writeString(PROTOCOL_NAME, buf, pos);
  buf[pos++] = p.protocolLevel;
  const will = p.will;
  // Connect flags (section 3.1.2.3): bit 0 reserved 0 (MQTT-3.1.2-3); will
  // QoS and retain only with the will flag (MQTT-3.1.2-11/-13/-15).
  let flags = p.clean ? 0x02 : 0;
  if (will !== undefined) flags |= 0x04 | (will.qos << 3) | (will.retain ? 0x20 : 0);
  if (p.password !== undefined) flags |= 0x40;
  if (p.username !== undefined) flags |= 0x80;
  buf[pos++] = flags;
  pos = writeUint16(buf, pos, p.keepAlive);
  const v5 = p.protocolLevel === 5;
  if (v5) pos = writeProperties(p.properties, propLength, buf, pos);
  // Payload order is fixed (MQTT-3.1.3-1).
  pos = writeString(p.clientId, buf, pos);
  if (will !== undefined) {
    if (v5) pos = writeProperties(will.properties, willPropLength, buf, pos);
    pos = writeString(will.topic, buf, pos);
    pos = writeBinary(will.payload, buf, pos);
  }
  if (p.username !== undefined) pos = writeString(p.username, buf, pos);
  if (p.password !== undefined) pos = writeBinary(p.password, buf, pos);
  return pos;
}
