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

function allocate(size: number): Uint8Array {
  if (size > POOL_MAX_PACKET) return new Uint8Array(size);
  if (poolOffset + size > POOL_SIZE) {
    pool = new Uint8Array(POOL_SIZE);
    poolOffset = 0;
  }
  const buf = pool.subarray(poolOffset, poolOffset + size);
  poolOffset += size;
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
  if (!(offset >= 0 && offset + total <= target.length)) {
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
    case "unsuback":
      checkPacketId(packet.packetId, packet.type);
      // MQTT 5.0: reason code and properties follow here when version === 5.
      return 2;
    case "subscribe":
      return subscribeLength(packet);
    case "suback": {
      checkPacketId(packet.packetId, "suback");
      const codes = packet.returnCodes;
      if (codes.length === 0) {
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
      return unsubscribeLength(packet);
    case "connect":
      return connectLength(packet, version);
    case "connack": {
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
    case "disconnect":
      return 0;
    default:
      throw new ProtocolError(
        "INVALID_PACKET_TYPE",
        `unknown packet type ${JSON.stringify((packet as { type: unknown }).type)} (section 2.2.1)`,
      );
  }
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

function publishLength(p: PublishPacket, _version: ProtocolVersion): number {
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
  // MQTT 5.0: properties length and properties go after the packet id.
  return 2 + topicNameLength(p.topic, "publish") + (qos === 0 ? 0 : 2) + p.payload.length;
}

function subscribeLength(p: SubscribePacket): number {
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
  }
  return len;
}

function unsubscribeLength(p: UnsubscribePacket): number {
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
  // MQTT-3.1.2-1, MQTT-3.1.2-2: "MQTT" at level 4 for 3.1.1.
  if (p.protocolName !== PROTOCOL_NAME || p.protocolLevel !== version) {
    throw new ProtocolError(
      "UNSUPPORTED_PROTOCOL",
      `protocol ${JSON.stringify(p.protocolName)} level ${p.protocolLevel} is not MQTT level ` +
        `${version} (MQTT-3.1.2-1, MQTT-3.1.2-2)`,
      "connect",
    );
  }
  const ka = p.keepAlive;
  if ((ka & 0xffff) !== ka) {
    throw new ProtocolError(
      "INVALID_KEEPALIVE",
      `keep alive ${ka} is not in 0..65535 seconds (section 3.1.2.10)`,
      "connect",
    );
  }
  const clientIdBytes = utf8Length(p.clientId, "connect");
  // MQTT-3.1.3-7: a zero-byte client id needs CleanSession 1.
  if (clientIdBytes === 0 && !p.clean) {
    throw new ProtocolError(
      "INVALID_CLIENT_ID",
      "empty client identifier requires clean session (MQTT-3.1.3-7)",
      "connect",
    );
  }
  // MQTT 5.0: connect properties go after keep alive.
  let len = 10 + 2 + clientIdBytes;
  const will = p.will;
  if (will !== undefined) {
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
    // MQTT-3.1.2-22: no password without a user name (3.1.1).
    if (p.username === undefined) {
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
  _version: ProtocolVersion,
): number {
  switch (packet.type) {
    case "publish": {
      const qos = packet.qos;
      buf[pos] = PUBLISH | (packet.dup ? 0x08 : 0) | (qos << 1) | (packet.retain ? 0x01 : 0);
      pos = writeString(packet.topic, buf, writeRemainingLength(buf, pos + 1, remaining));
      if (qos !== 0) pos = writeUint16(buf, pos, packet.packetId as number);
      buf.set(packet.payload, pos);
      return pos + packet.payload.length;
    }
    case "puback":
      return writeUint16(buf, writeHeader(buf, pos, PUBACK, 2), packet.packetId);
    case "pubrec":
      return writeUint16(buf, writeHeader(buf, pos, PUBREC, 2), packet.packetId);
    case "pubrel":
      return writeUint16(buf, writeHeader(buf, pos, PUBREL, 2), packet.packetId);
    case "pubcomp":
      return writeUint16(buf, writeHeader(buf, pos, PUBCOMP, 2), packet.packetId);
    case "unsuback":
      return writeUint16(buf, writeHeader(buf, pos, UNSUBACK, 2), packet.packetId);
    case "subscribe": {
      pos = writeUint16(buf, writeHeader(buf, pos, SUBSCRIBE, remaining), packet.packetId);
      const subs = packet.subscriptions;
      for (let i = 0; i < subs.length; i++) {
        pos = writeString(subs[i].filter, buf, pos);
        buf[pos++] = subs[i].qos;
      }
      return pos;
    }
    case "suback": {
      pos = writeUint16(buf, writeHeader(buf, pos, SUBACK, remaining), packet.packetId);
      const codes = packet.returnCodes;
      for (let i = 0; i < codes.length; i++) buf[pos++] = codes[i];
      return pos;
    }
    case "unsubscribe": {
      pos = writeUint16(buf, writeHeader(buf, pos, UNSUBSCRIBE, remaining), packet.packetId);
      const filters = packet.filters;
      for (let i = 0; i < filters.length; i++) pos = writeString(filters[i], buf, pos);
      return pos;
    }
    case "connect":
      return writeConnect(packet, buf, writeHeader(buf, pos, CONNECT, remaining));
    case "connack": {
      pos = writeHeader(buf, pos, CONNACK, 2);
      // Section 3.2.2.1: bits 7-1 of the acknowledge flags are reserved, 0.
      buf[pos] = packet.sessionPresent ? 1 : 0;
      buf[pos + 1] = packet.returnCode;
      return pos + 2;
    }
    case "pingreq":
      return writeHeader(buf, pos, PINGREQ, 0);
    case "pingresp":
      return writeHeader(buf, pos, PINGRESP, 0);
    case "disconnect":
      return writeHeader(buf, pos, DISCONNECT, 0);
  }
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
  // Payload order is fixed (MQTT-3.1.3-1).
  pos = writeString(p.clientId, buf, pos);
  if (will !== undefined) {
    pos = writeString(will.topic, buf, pos);
    pos = writeBinary(will.payload, buf, pos);
  }
  if (p.username !== undefined) pos = writeString(p.username, buf, pos);
  if (p.password !== undefined) pos = writeBinary(p.password, buf, pos);
  return pos;
}
