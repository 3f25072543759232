/**
 * Bytes to packet objects. The decoder trusts nothing: every length is
 * checked against the packet's bounds before it is used, so malformed input
 * ends in a {@linkcode ProtocolError}, never in a TypeError, a RangeError,
 * a read past `end` or a loop that does not end.
 *
 * Decoded PUBLISH payloads, will messages and passwords are `subarray`
 * views that alias the input buffer: nothing is copied. The caller must not
 * change those bytes while the packet is in use (the stream reader never
 * does).
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import type {
  ConnackPacket,
  ConnackReturnCode,
  ConnectPacket,
  Packet,
  PacketTypeName,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubackReturnCode,
  SubscriptionRequest,
} from "./packet.ts";
import { type Properties, readEnd, readProperties, WILL_PROPERTIES } from "./properties.ts";
import { checkReasonCode } from "./reason_codes.ts";
import type { CodecOptions } from "./options.ts";
import { DEFAULT_PROTOCOL_VERSION, protocolVersionOf } from "./options.ts";
import { MAX_PACKET_SIZE, readRemainingLength } from "./remaining_length.ts";
import { decodeTopicName, topicFilterLength } from "./topic.ts";
import { readString } from "./utf8.ts";

/** Packet type names by the 4-bit type of the fixed header (0 is forbidden, 15 is 5.0 only). */
const TYPE_NAMES: readonly (PacketTypeName | undefined)[] = [
  undefined,
  "connect",
  "connack",
  "publish",
  "puback",
  "pubrec",
  "pubrel",
  "pubcomp",
  "subscribe",
  "suback",
  "unsubscribe",
  "unsuback",
  "pingreq",
  "pingresp",
  "disconnect",
  "auth",
];

/**
 * Given bytes `buf[offset..end)`, the total length (fixed header + body) of
 * the packet that starts at `offset`, or -1 if its fixed header is not
 * complete yet. Reads at most 5 bytes.
 *
 * Throws `INVALID_PACKET_TYPE` for a reserved type (0, and 15 unless
 * `protocolVersion` is 5: AUTH exists only in MQTT 5.0) from the first byte,
 * `MALFORMED_REMAINING_LENGTH` when the length field would need a fifth byte
 * (section 2.2.3), and `PACKET_TOO_LARGE` when the packet exceeds
 * `maxPacketSize`, all as soon as the header is known, before the body
 * arrives.
 *
 * @example
 * ```ts
 * import { packetLength } from "./decode.ts";
 * const bytes = new Uint8Array([0x30, 0x05, 0x00, 0x01, 0x61]); // 2 of its 7 bytes missing
 * console.log(packetLength(bytes, 0, 1), packetLength(bytes, 0, bytes.length)); // -1 7
 * ```
 */
export function packetLength(
  buf: Uint8Array,
  offset: number,
  end: number,
  maxPacketSize: number = MAX_PACKET_SIZE,
  protocolVersion: ProtocolVersion = DEFAULT_PROTOCOL_VERSION,
): number {
  if (end - offset < 1) return -1;
  // A reserved type is known from the first byte: refuse it before buffering a body.
  const typeId = buf[offset] >> 4;
  const type = TYPE_NAMES[typeId];
  if (type === undefined || (typeId === 15 && protocolVersion !== 5)) throw reservedType(typeId);
  if (end - offset < 2) return -1;
  const r = readRemainingLength(buf, offset + 1, end, type);
  if (r < 0) return -1;
  const total = (r >>> 2) + (r & 3) + 2;
  if (total > maxPacketSize) throw tooLarge(total, maxPacketSize, buf[offset]);
  return total;
}

function reservedType(typeId: number): ProtocolError {
  // 3.1.1 section 2.2.1, Table 2.1: types 0 and 15 are reserved, forbidden;
  // 5.0 section 2.1.2, Table 2-1: 0 is reserved, 15 is AUTH.
  return new ProtocolError(
    "INVALID_PACKET_TYPE",
    typeId === 15
      ? "packet type 15 (AUTH) exists only in MQTT 5.0 (3.1.1 section 2.2.1)"
      : `packet type ${typeId} is reserved (section 2.2.1)`,
  );
}

function tooLarge(total: number, max: number, firstByte: number): ProtocolError {
  return new ProtocolError(
    "PACKET_TOO_LARGE",
    `packet of ${total} bytes exceeds maxPacketSize ${max}`,
    TYPE_NAMES[firstByte >> 4],
  );
}

/**
 * Decodes exactly one whole packet occupying `buf[offset..end)`, where
 * `end - offset` is its {@linkcode packetLength}. Never reads outside that
 * range.
 *
 * The returned PUBLISH `payload` (and a CONNECT's will `payload` and
 * `password`) is a `subarray` view aliasing `buf`, not a copy: do not
 * mutate those bytes while the packet is in use. A decoded PUBLISH always
 * has a `packetId` key (`undefined` for QoS 0); a decoded CONNECT omits
 * absent optional fields.
 *
 * Throws a {@linkcode ProtocolError} whose `code` names the broken rule and
 * whose message cites its normative id; `TRUNCATED_PACKET` when a field
 * runs past the remaining length (or the bytes end before it),
 * `TRAILING_BYTES` when bytes are left over.
 *
 * @example
 * ```ts
 * import { decodePacket } from "./decode.ts";
 * const bytes = new Uint8Array([0x32, 0x07, 0x00, 0x01, 0x74, 0x00, 0x0a, 0x68, 0x69]);
 * const packet = decodePacket(bytes, 0, bytes.length);
 * // { type: "publish", topic: "t", payload: Uint8Array [0x68, 0x69], qos: 1,
 * //   retain: false, dup: false, packetId: 10 }
 * console.log(packet);
 * ```
 */
export function decodePacket(
  buf: Uint8Array,
  offset: number,
  end: number,
  options?: CodecOptions,
): Packet {
  if (end - offset < 2) throw truncated(end > offset ? TYPE_NAMES[buf[offset] >> 4] : undefined);
  const first = buf[offset];
  const typeId = first >> 4;
  const type = TYPE_NAMES[typeId];
  const version = protocolVersionOf(options);
  if (type === undefined || (typeId === 15 && version !== 5)) throw reservedType(typeId);
  const r = readRemainingLength(buf, offset + 1, end, type);
  if (r < 0) throw truncated(type);
  const start = offset + (r & 3) + 2;
  const stop = start + (r >>> 2);
  const max = options?.maxPacketSize ?? MAX_PACKET_SIZE;
  if (stop - offset > max) throw tooLarge(stop - offset, max, first);
  if (stop > end) throw truncated(type);
  if (stop < end) throw trailing(type);
  const flags = first & 0x0f;
  if (typeId === 3) return decodePublish(buf, flags, start, stop, version);
  // MQTT-2.2.2-1/-2 (5.0: MQTT-2.1.3-1): reserved flags have fixed values (Table 2.2).
  const expected = typeId === 6 || typeId === 8 || typeId === 10 ? 0b0010 : 0;
  if (flags !== expected) throw invalidFlags(type, flags, expected);
  switch (typeId) {
    case 4:
    case 5:
    case 6:
    case 7:
      if (version === 5) return decodeAck(buf, start, stop, typeId, type);
      return {
        type: type as "puback" | "pubrec" | "pubrel" | "pubcomp",
        packetId: exactId(buf, start, stop, type),
      };
    case 11:
      if (version === 5) return decodeSuback(buf, start, stop, version, "unsuback");
      return { type: "unsuback", packetId: exactId(buf, start, stop, type) };
    case 8:
      return decodeSubscribe(buf, start, stop, version);
    case 9:
      return decodeSuback(buf, start, stop, version, "suback");
    case 10:
      return decodeUnsubscribe(buf, start, stop, version);
    case 14:
    case 15:
      // 5.0 sections 3.14.2.1, 3.15.2.1: DISCONNECT and AUTH may omit both reason code and properties.
      if (version === 5) return decodeDisconnectOrAuth(buf, start, stop, typeId, type);
      if (stop !== start) throw trailing(type);
      return { type: "disconnect" };
    case 12:
    case 13:
      if (stop !== start) throw trailing(type);
      return { type: type as "pingreq" | "pingresp" };
    case 2:
      return decodeConnack(buf, start, stop, version);
    default:
      return decodeConnect(buf, start, stop, version);
  }
}

/**
 * A 5.0 PUBACK, PUBREC, PUBREL or PUBCOMP: packet id, then a reason code
 * that a Remaining Length of 2 omits (success), then properties that a
 * Remaining Length below 4 omits (sections 3.4.2.1, 3.4.2.2.1 and the same
 * for the others).
 */
function decodeAck(
  buf: Uint8Array,
  start: number,
  stop: number,
  typeId: number,
  type: PacketTypeName,
): Packet {
  const packetId = readId(buf, start, stop, type);
  let reasonCode = 0;
  let properties: Properties | undefined;
  if (stop - start > 2) {
    reasonCode = buf[start + 2];
    checkReasonCode(reasonCode, type);
    if (stop - start > 3) {
      properties = readProperties(buf, start + 3, stop, typeId, type);
      if (readEnd() !== stop) throw trailing(type);
    }
  }
  const packet = { type, packetId, reasonCode } as Packet & { properties?: Properties };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

/** A 5.0 DISCONNECT or AUTH: Remaining Length 0 is reason code 0 without properties. */
function decodeDisconnectOrAuth(
  buf: Uint8Array,
  start: number,
  stop: number,
  typeId: number,
  type: PacketTypeName,
): Packet {
  let reasonCode = 0;
  let properties: Properties | undefined;
  if (stop > start) {
    reasonCode = buf[start];
    checkReasonCode(reasonCode, type);
    // DISCONNECT: a Remaining Length below 2 has no Property Length (section
    // 3.14.2.2.1); AUTH names no such case, so its properties must follow.
    if (stop - start > 1 || typeId === 15) {
      properties = readProperties(buf, start + 1, stop, typeId, type);
      if (readEnd() !== stop) throw trailing(type);
    }
  }
  const packet = { type, reasonCode } as Packet & { properties?: Properties };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function truncated(type: PacketTypeName | undefined): ProtocolError {
  return new ProtocolError(
    "TRUNCATED_PACKET",
    "a field runs past the end of the packet (section 2.2.3)",
    type,
  );
}

function trailing(type: PacketTypeName): ProtocolError {
  return new ProtocolError(
    "TRAILING_BYTES",
    "bytes left over after the last field of the packet (section 2.2.3)",
    type,
  );
}

function invalidFlags(type: PacketTypeName, flags: number, expected: number): ProtocolError {
  const extra = type === "pubrel"
    ? ", MQTT-3.6.1-1"
    : type === "subscribe"
    ? ", MQTT-3.8.1-1"
    : type === "unsubscribe"
    ? ", MQTT-3.10.1-1"
    : type === "disconnect"
    ? ", MQTT-3.14.1-1"
    : type === "auth"
    ? ", MQTT-3.15.1-1"
    : "";
  return new ProtocolError(
    "INVALID_FLAGS",
    `fixed header flags 0x${flags.toString(16)} of ${type} must be 0x${
      expected.toString(16)
    } (MQTT-2.2.2-1, MQTT-2.2.2-2${extra})`,
    type,
  );
}

function invalidId(type: PacketTypeName): ProtocolError {
  return new ProtocolError(
    "INVALID_PACKET_ID",
    "packet identifier 0 (MQTT-2.3.1-1)",
    type,
  );
}

/** Reads a non-zero packet id that is the packet's whole body. */
function exactId(buf: Uint8Array, start: number, stop: number, type: PacketTypeName): number {
  if (stop - start < 2) throw truncated(type);
  if (stop - start > 2) throw trailing(type);
  const id = (buf[start] << 8) | buf[start + 1];
  if (id === 0) throw invalidId(type);
  return id;
}

/** Reads a non-zero packet id at `pos`, which must leave 2 bytes before `stop`. */
function readId(buf: Uint8Array, pos: number, stop: number, type: PacketTypeName): number {
  if (stop - pos < 2) throw truncated(type);
  const id = (buf[pos] << 8) | buf[pos + 1];
  // MQTT-2.3.1-1: packet identifiers are non-zero.
  if (id === 0) throw invalidId(type);
  return id;
}

function decodePublish(
  buf: Uint8Array,
  flags: number,
  start: number,
  stop: number,
  version: ProtocolVersion,
): PublishPacket {
  const qos = (flags >> 1) & 3;
  // MQTT-3.3.1-4: both QoS bits set is malformed.
  if (qos === 3) {
    throw new ProtocolError("INVALID_QOS", "PUBLISH with QoS 3 (MQTT-3.3.1-4)", "publish");
  }
  const dup = (flags & 0x08) !== 0;
  // MQTT-3.3.1-2: DUP must be 0 for QoS 0.
  if (dup && qos === 0) {
    throw new ProtocolError(
      "INVALID_FLAGS",
      "DUP set on a QoS 0 PUBLISH (MQTT-3.3.1-2)",
      "publish",
    );
  }
  if (stop - start < 2) throw truncated("publish");
  const topicStart = start + 2;
  let pos = topicStart + ((buf[start] << 8) | buf[start + 1]);
  if (pos > stop) throw truncated("publish");
  // MQTT-3.3.2-1/-2, MQTT-4.7.3-1/-2: a non-empty UTF-8 topic name without
  // wildcards; 5.0 allows an empty one with a Topic Alias, checked below.
  const topic = version === 5 && pos === topicStart
    ? ""
    : decodeTopicName(buf, topicStart, pos, "publish");
  let packetId: number | undefined;
  if (qos !== 0) {
    packetId = readId(buf, pos, stop, "publish");
    pos += 2;
  }
  if (version === 5) {
    let properties: Properties | undefined;
    if (pos < stop && buf[pos] === 0) {
      // No properties: the common case, without a call.
      pos++;
    } else {
      properties = readProperties(buf, pos, stop, 3, "publish");
      pos = readEnd();
    }
    // 5.0 section 3.3.2.1: a zero length Topic Name needs a Topic Alias.
    if (topic === "" && properties?.topicAlias === undefined) {
      throw new ProtocolError(
        "INVALID_TOPIC",
        "empty topic name without a topic alias (section 3.3.2.1, MQTT-4.7.3-1)",
        "publish",
      );
    }
    // A literal of its own: a connection speaks one version, so each of its
    // call sites still sees one PUBLISH shape.
    return {
      type: "publish",
      topic,
      payload: buf.subarray(pos, stop),
      qos: qos as QoS,
      retain: (flags & 0x01) !== 0,
      dup,
      packetId,
      properties,
    };
  }
  // Same property order on every decoded PUBLISH keeps call sites monomorphic.
  return {
    type: "publish",
    topic,
    payload: buf.subarray(pos, stop),
    qos: qos as QoS,
    retain: (flags & 0x01) !== 0,
    dup,
    packetId,
  };
}

// Decoders of the less frequent packets share a cursor instead of returning
// (value, position) pairs. Safe: decoding is synchronous and never re-entered.
let cursor = 0;

/** Reads a length-prefixed string at `cursor`, advancing it. */
function readStringField(buf: Uint8Array, stop: number, type: PacketTypeName): string {
  const pos = cursor;
  if (stop - pos < 2) throw truncated(type);
  const end = pos + 2 + ((buf[pos] << 8) | buf[pos + 1]);
  if (end > stop) throw truncated(type);
  cursor = end;
  return readString(buf, pos + 2, end, type);
}

/** Reads length-prefixed binary data at `cursor` as a view aliasing `buf`, advancing it. */
function readBinaryField(buf: Uint8Array, stop: number, type: PacketTypeName): Uint8Array {
  const pos = cursor;
  if (stop - pos < 2) throw truncated(type);
  const end = pos + 2 + ((buf[pos] << 8) | buf[pos + 1]);
  if (end > stop) throw truncated(type);
  cursor = end;
  return buf.subarray(pos + 2, end);
}

function decodeSubscribe(
  buf: Uint8Array,
  start: number,
  stop: number,
  version: ProtocolVersion,
): Packet {
  const packetId = readId(buf, start, stop, "subscribe");
  cursor = start + 2;
  let properties: Properties | undefined;
  if (version === 5) {
    properties = readProperties(buf, cursor, stop, 8, "subscribe");
    cursor = readEnd();
  }
  const subscriptions: SubscriptionRequest[] = [];
  while (cursor < stop) {
    const filter = readStringField(buf, stop, "subscribe");
    topicFilterLength(filter, "subscribe");
    if (cursor >= stop) throw truncated("subscribe");
    const options = buf[cursor++];
    if (version === 5) {
      subscriptions.push(subscriptionOptions(filter, options));
      continue;
    }
    // MQTT-3.8.3-4: reserved bits 0 and QoS 0, 1 or 2.
    if (options > 2) {
      throw new ProtocolError(
        "INVALID_QOS",
        `requested QoS byte 0x${options.toString(16)} has reserved bits or QoS 3 (MQTT-3.8.3-4)`,
        "subscribe",
      );
    }
    subscriptions.push({ filter, qos: options as QoS });
  }
  // MQTT-3.8.3-3: at least one filter.
  if (subscriptions.length === 0) {
    throw new ProtocolError(
      "EMPTY_SUBSCRIPTION",
      "SUBSCRIBE without a topic filter (MQTT-3.8.3-3)",
      "subscribe",
    );
  }
  if (properties !== undefined) return { type: "subscribe", packetId, subscriptions, properties };
  return { type: "subscribe", packetId, subscriptions };
}

/** The 5.0 Subscription Options byte (section 3.8.3.1). */
function subscriptionOptions(filter: string, options: number): SubscriptionRequest {
  let rule: string | undefined;
  if ((options & 3) === 3) {
    throw new ProtocolError(
      "INVALID_QOS",
      "subscription options with Maximum QoS 3 (section 3.8.3.1)",
      "subscribe",
    );
  }
  if (options & 0xc0) rule = "reserved bits 6-7 set (MQTT-3.8.3-5)";
  else if ((options & 0x30) === 0x30) rule = "Retain Handling 3 (section 3.8.3.1)";
  else if (options & 0x04 && filter.startsWith("$share/")) {
    rule = "No Local on a shared subscription (MQTT-3.8.3-4)";
  }
  if (rule !== undefined) {
    throw new ProtocolError(
      "INVALID_FLAGS",
      `subscription options 0x${options.toString(16)}: ${rule}`,
      "subscribe",
    );
  }
  return {
    filter,
    qos: (options & 3) as QoS,
    noLocal: (options & 0x04) !== 0,
    retainAsPublished: (options & 0x08) !== 0,
    retainHandling: ((options >> 4) & 3) as 0 | 1 | 2,
  };
}

function decodeUnsubscribe(
  buf: Uint8Array,
  start: number,
  stop: number,
  version: ProtocolVersion,
): Packet {
  const packetId = readId(buf, start, stop, "unsubscribe");
  cursor = start + 2;
  let properties: Properties | undefined;
  if (version === 5) {
    properties = readProperties(buf, cursor, stop, 10, "unsubscribe");
    cursor = readEnd();
  }
  const filters: string[] = [];
  while (cursor < stop) {
    const filter = readStringField(buf, stop, "unsubscribe");
    topicFilterLength(filter, "unsubscribe");
    filters.push(filter);
  }
  // MQTT-3.10.3-2: at least one filter.
  if (filters.length === 0) {
    throw new ProtocolError(
      "EMPTY_SUBSCRIPTION",
      "UNSUBSCRIBE without a topic filter (MQTT-3.10.3-2)",
      "unsubscribe",
    );
  }
  if (properties !== undefined) return { type: "unsubscribe", packetId, filters, properties };
  return { type: "unsubscribe", packetId, filters };
}

function decodeSuback(
  buf: Uint8Array,
  start: number,
  stop: number,
  version: ProtocolVersion,
  type: "suback" | "unsuback",
): Packet {
  const packetId = readId(buf, start, stop, type);
  if (version === 5) {
    // 5.0 sections 3.9.2, 3.11.2: properties, then one reason code per filter.
    const typeId = type === "suback" ? 9 : 11;
    const properties = readProperties(buf, start + 2, stop, typeId, type);
    const reasonCodes: number[] = [];
    for (let pos = readEnd(); pos < stop; pos++) {
      const c = buf[pos];
      checkReasonCode(c, type);
      reasonCodes.push(c);
    }
    if (reasonCodes.length === 0) {
      throw new ProtocolError(
        "EMPTY_SUBSCRIPTION",
        `${type.toUpperCase()} needs one reason code per topic filter, so at least one ` +
          `(${type === "suback" ? "MQTT-3.9.3-1" : "MQTT-3.11.3-1"}, section 2.3)`,
        type,
      );
    }
    const packet = { type, packetId, reasonCodes } as Packet & { properties?: Properties };
    if (properties !== undefined) packet.properties = properties;
    return packet;
  }
  const returnCodes: SubackReturnCode[] = [];
  for (let pos = start + 2; pos < stop; pos++) {
    const c = buf[pos];
    // MQTT-3.9.3-2: only 0x00, 0x01, 0x02 and 0x80.
    if (c > 2 && c !== 0x80) {
      throw new ProtocolError(
        "INVALID_RETURN_CODE",
        `SUBACK return code 0x${c.toString(16)} is reserved (MQTT-3.9.3-2)`,
        "suback",
      );
    }
    returnCodes.push(c as SubackReturnCode);
  }
  if (returnCodes.length === 0) {
    throw new ProtocolError(
      "EMPTY_SUBSCRIPTION",
      "SUBACK needs one return code per topic filter of its SUBSCRIBE, so at least one " +
        "(MQTT-3.8.3-3, MQTT-3.9.3-1)",
      "suback",
    );
  }
  return { type: "suback", packetId, returnCodes };
}

function decodeConnack(
  buf: Uint8Array,
  start: number,
  stop: number,
  version: ProtocolVersion,
): Packet {
  if (stop - start < 2) throw truncated("connack");
  // 5.0 section 3.2.2.3: properties follow the reason code.
  if (version === 4 && stop - start > 2) throw trailing("connack");
  const ack = buf[start];
  // Section 3.2.2.1: bits 7-1 of the acknowledge flags are reserved, 0.
  if (ack > 1) {
    throw new ProtocolError(
      "INVALID_FLAGS",
      `CONNACK acknowledge flags 0x${ack.toString(16)} set reserved bits (section 3.2.2.1)`,
      "connack",
    );
  }
  const rc = buf[start + 1];
  // A 5.0 CONNACK always has a Property Length, so two bytes with a 3.1.1 refusal code are a
  // server that speaks only 3.1.1 refusing the 5.0 CONNECT (3.1.1 MQTT-3.1.2-2: return code
  // 0x01). Decoded in its 3.1.1 shape, so the client can say so instead of "malformed".
  if (version === 5 && (stop - start > 2 || rc === 0 || rc > 5)) {
    // MQTT-3.2.2-1: bits 7-1 reserved (checked above); MQTT-3.2.2-8: a Connect Reason Code.
    checkReasonCode(rc, "connack");
    const properties = readProperties(buf, start + 2, stop, 2, "connack");
    if (readEnd() !== stop) throw trailing("connack");
    const packet = { type: "connack", sessionPresent: ack === 1, reasonCode: rc } as
      & Omit<ConnackPacket, "returnCode">
      & { properties?: Properties };
    if (properties !== undefined) packet.properties = properties;
    return packet as ConnackPacket;
  }
  // Section 3.2.2.3: return codes 6..255 are reserved.
  if (rc > 5) {
    throw new ProtocolError(
      "INVALID_RETURN_CODE",
      `CONNACK return code ${rc} is reserved (section 3.2.2.3)`,
      "connack",
    );
  }
  return { type: "connack", sessionPresent: ack === 1, returnCode: rc as ConnackReturnCode };
}

function decodeConnect(
  buf: Uint8Array,
  start: number,
  stop: number,
  version: ProtocolVersion,
): ConnectPacket {
  cursor = start;
  const protocolName = readStringField(buf, stop, "connect");
  if (cursor >= stop) throw truncated("connect");
  const protocolLevel = buf[cursor++];
  // MQTT-3.1.2-1, MQTT-3.1.2-2: "MQTT" at level 4 for 3.1.1, 5 for 5.0. The
  // packet says its level; `version` is the highest this side accepts.
  if (protocolName !== "MQTT" || (protocolLevel !== 4 && protocolLevel !== version)) {
    throw new ProtocolError(
      "UNSUPPORTED_PROTOCOL",
      `protocol ${JSON.stringify(protocolName)} level ${protocolLevel} is not MQTT level ` +
        `${version === 5 ? "4 or 5" : "4"} (MQTT-3.1.2-1, MQTT-3.1.2-2)`,
      "connect",
    );
  }
  const v5 = protocolLevel === 5;
  if (stop - cursor < 3) throw truncated("connect");
  const flags = buf[cursor];
  const keepAlive = (buf[cursor + 1] << 8) | buf[cursor + 2];
  cursor += 3;
  checkConnectFlags(flags, v5);
  let properties: Properties | undefined;
  if (v5) {
    properties = readProperties(buf, cursor, stop, 1, "connect");
    cursor = readEnd();
  }
  const clean = (flags & 0x02) !== 0;
  const clientId = readStringField(buf, stop, "connect");
  // 3.1.1 MQTT-3.1.3-7: a zero-byte client id needs CleanSession 1 (5.0 lets the server decide).
  if (clientId.length === 0 && !clean && !v5) {
    throw new ProtocolError(
      "INVALID_CLIENT_ID",
      "empty client identifier requires clean session (MQTT-3.1.3-7)",
      "connect",
    );
  }
  const packet: ConnectPacket = {
    type: "connect",
    protocolName,
    protocolLevel,
    clientId,
    clean,
    keepAlive,
  };
  if (properties !== undefined) packet.properties = properties;
  if (flags & 0x04) {
    // MQTT-3.1.2-9: (5.0: will properties,) topic and message present with the will flag.
    let willProperties: Properties | undefined;
    if (v5) {
      willProperties = readProperties(buf, cursor, stop, WILL_PROPERTIES, "connect");
      cursor = readEnd();
    }
    const pos = cursor;
    if (stop - pos < 2) throw truncated("connect");
    const topicEnd = pos + 2 + ((buf[pos] << 8) | buf[pos + 1]);
    if (topicEnd > stop) throw truncated("connect");
    cursor = topicEnd;
    const topic = decodeTopicName(buf, pos + 2, topicEnd, "connect");
    const payload = readBinaryField(buf, stop, "connect");
    packet.will = { topic, payload, qos: ((flags >> 3) & 3) as QoS, retain: (flags & 0x20) !== 0 };
    if (willProperties !== undefined) packet.will.properties = willProperties;
  }
  if (flags & 0x80) packet.username = readStringField(buf, stop, "connect");
  if (flags & 0x40) packet.password = readBinaryField(buf, stop, "connect");
  if (cursor !== stop) throw trailing("connect");
  return packet;
}

function checkConnectFlags(flags: number, v5: boolean): void {
  let rule: string | undefined;
  if (flags & 0x01) {
    rule = "reserved flag set (MQTT-3.1.2-3)";
  } else if ((flags & 0x04) === 0 && (flags & 0x38) !== 0) {
    rule =
      "will QoS or will retain without will flag (MQTT-3.1.2-11, MQTT-3.1.2-13, MQTT-3.1.2-15)";
  } else if ((flags & 0x18) === 0x18) {
    rule = "will QoS 3 (MQTT-3.1.2-14)";
  } else if ((flags & 0xc0) === 0x40 && !v5) {
    rule = "password without user name (MQTT-3.1.2-22)";
  }
  if (rule !== undefined) {
    throw new ProtocolError(
      "INVALID_CONNECT_FLAGS",
      `CONNECT flags 0x${flags.toString(16)}: ${rule}`,
      "connect",
    );
  }
}
