/**
 * MQTT 5.0 properties (section 2.2.2): the typed {@linkcode Properties}
 * object the packets carry, and their encoding: a Variable Byte Integer
 * Property Length, then identifier / value pairs, each identifier allowed on
 * the packets of Table 2-4 only.
 *
 * Properties are written in the order of the object's keys and decoded into
 * keys in the order they arrive, so decoding and re-encoding gives back the
 * same bytes (User Properties and Subscription Identifiers are grouped).
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import type { PacketTypeName } from "./packet.ts";
import { remainingLengthSize, writeRemainingLength } from "./remaining_length.ts";
import { decodeTopicName, topicNameLength } from "./topic.ts";
import { MAX_STRING_BYTES, readString, utf8Length, writeBinary, writeString } from "./utf8.ts";

/**
 * Every property of MQTT 5.0 (section 2.2.2.2, Table 2-4), camelCase. Each
 * packet type allows a subset (see the per-packet types such as
 * {@linkcode PublishProperties}); flags that may only be 0 or 1 are booleans.
 */
export interface Properties {
  /** 0x01 Payload Format Indicator: 0 unspecified bytes, 1 UTF-8 (PUBLISH, will). */
  payloadFormatIndicator?: 0 | 1;
  /** 0x02 Message Expiry Interval, seconds (PUBLISH, will). */
  messageExpiryInterval?: number;
  /** 0x03 Content Type (PUBLISH, will). */
  contentType?: string;
  /** 0x08 Response Topic, a topic name without wildcards (PUBLISH, will; MQTT-3.3.2-14). */
  responseTopic?: string;
  /** 0x09 Correlation Data (PUBLISH, will). Decoded: a view aliasing the input. */
  correlationData?: Uint8Array;
  /** 0x0B Subscription Identifiers of a PUBLISH, each 1..268,435,455; may repeat. */
  subscriptionIdentifiers?: number[];
  /** 0x0B Subscription Identifier of a SUBSCRIBE, 1..268,435,455; at most once. */
  subscriptionIdentifier?: number;
  /** 0x11 Session Expiry Interval, seconds (CONNECT, CONNACK, DISCONNECT). */
  sessionExpiryInterval?: number;
  /** 0x12 Assigned Client Identifier (CONNACK). */
  assignedClientIdentifier?: string;
  /** 0x13 Server Keep Alive, seconds (CONNACK). */
  serverKeepAlive?: number;
  /** 0x15 Authentication Method (CONNECT, CONNACK, AUTH). */
  authenticationMethod?: string;
  /** 0x16 Authentication Data (CONNECT, CONNACK, AUTH). Decoded: a view aliasing the input. */
  authenticationData?: Uint8Array;
  /** 0x17 Request Problem Information (CONNECT). */
  requestProblemInformation?: boolean;
  /** 0x18 Will Delay Interval, seconds (will). */
  willDelayInterval?: number;
  /** 0x19 Request Response Information (CONNECT). */
  requestResponseInformation?: boolean;
  /** 0x1A Response Information (CONNACK). */
  responseInformation?: string;
  /** 0x1C Server Reference (CONNACK, DISCONNECT). */
  serverReference?: string;
  /** 0x1F Reason String (CONNACK, acknowledgements, DISCONNECT, AUTH). */
  reasonString?: string;
  /** 0x21 Receive Maximum, 1..65535 (CONNECT, CONNACK). */
  receiveMaximum?: number;
  /** 0x22 Topic Alias Maximum (CONNECT, CONNACK). */
  topicAliasMaximum?: number;
  /** 0x23 Topic Alias, 1..65535 (PUBLISH; MQTT-3.3.2-8). */
  topicAlias?: number;
  /** 0x24 Maximum QoS (CONNACK). */
  maximumQoS?: 0 | 1;
  /** 0x25 Retain Available (CONNACK). */
  retainAvailable?: boolean;
  /** 0x26 User Properties: ordered [name, value] pairs, names may repeat (every packet but PINGs). */
  userProperties?: [string, string][];
  /** 0x27 Maximum Packet Size, 1..4,294,967,295 (CONNECT, CONNACK). */
  maximumPacketSize?: number;
  /** 0x28 Wildcard Subscription Available (CONNACK). */
  wildcardSubscriptionAvailable?: boolean;
  /** 0x29 Subscription Identifier Available (CONNACK). */
  subscriptionIdentifiersAvailable?: boolean;
  /** 0x2A Shared Subscription Available (CONNACK). */
  sharedSubscriptionAvailable?: boolean;
}

/** Will Properties of a 5.0 CONNECT (section 3.1.3.2). */
export type WillProperties = Pick<
  Properties,
  | "payloadFormatIndicator"
  | "messageExpiryInterval"
  | "contentType"
  | "responseTopic"
  | "correlationData"
  | "willDelayInterval"
  | "userProperties"
>;

/** Properties of a 5.0 CONNECT (section 3.1.2.11). */
export type ConnectProperties = Pick<
  Properties,
  | "sessionExpiryInterval"
  | "receiveMaximum"
  | "maximumPacketSize"
  | "topicAliasMaximum"
  | "requestResponseInformation"
  | "requestProblemInformation"
  | "userProperties"
  | "authenticationMethod"
  | "authenticationData"
>;

/** Properties of a 5.0 CONNACK (section 3.2.2.3). */
export type ConnackProperties = Pick<
  Properties,
  | "sessionExpiryInterval"
  | "receiveMaximum"
  | "maximumQoS"
  | "retainAvailable"
  | "maximumPacketSize"
  | "assignedClientIdentifier"
  | "topicAliasMaximum"
  | "reasonString"
  | "userProperties"
  | "wildcardSubscriptionAvailable"
  | "subscriptionIdentifiersAvailable"
  | "sharedSubscriptionAvailable"
  | "serverKeepAlive"
  | "responseInformation"
  | "serverReference"
  | "authenticationMethod"
  | "authenticationData"
>;

/** Properties of a 5.0 PUBLISH (section 3.3.2.3). */
export type PublishProperties = Pick<
  Properties,
  | "payloadFormatIndicator"
  | "messageExpiryInterval"
  | "topicAlias"
  | "responseTopic"
  | "correlationData"
  | "userProperties"
  | "subscriptionIdentifiers"
  | "contentType"
>;

/** Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK (sections 3.4 to 3.11). */
export type AckProperties = Pick<Properties, "reasonString" | "userProperties">;

/** Properties of a 5.0 SUBSCRIBE (section 3.8.2.1). */
export type SubscribeProperties = Pick<Properties, "subscriptionIdentifier" | "userProperties">;

/** Properties of a 5.0 UNSUBSCRIBE (section 3.10.2.1). */
export type UnsubscribeProperties = Pick<Properties, "userProperties">;

/** Properties of a 5.0 DISCONNECT (section 3.14.2.2). */
export type DisconnectProperties = Pick<
  Properties,
  "sessionExpiryInterval" | "reasonString" | "serverReference" | "userProperties"
>;

/** Properties of AUTH (section 3.15.2.2). */
export type AuthProperties = Pick<
  Properties,
  "authenticationMethod" | "authenticationData" | "reasonString" | "userProperties"
>;

/**
 * Where a property block sits: the packet type number (CONNECT 1 ... AUTH
 * 15), or 0 for the Will Properties of a CONNECT.
 */
export type PropertyContext = number;

/**
 * {@linkcode PropertyContext} of the Will Properties.
 *
 * @example
 * ```ts
 * import { propertiesLength, WILL_PROPERTIES } from "./properties.ts";
 * console.log(propertiesLength({ willDelayInterval: 5 }, WILL_PROPERTIES, "connect")); // 5
 * ```
 */
export const WILL_PROPERTIES: PropertyContext = 0;

// Value types of Table 2-4 (section 1.5) and the extra rule each property has.
const BYTE = 0;
const U16 = 1;
const U32 = 2;
const VBI = 3;
const STRING = 4;
const BINARY = 5;
const PAIR = 6;

const PLAIN = 0;
/** A Byte that must be 0 or 1, surfaced as a boolean. */
const FLAG = 1;
/** A Byte that must be 0 or 1, surfaced as 0 | 1. */
const ZERO_ONE = 2;
/** Zero is a Protocol Error. */
const NONZERO = 3;
/** A topic name: no wildcards (MQTT-3.3.2-14). */
const TOPIC = 4;

interface PropertyInfo {
  id: number;
  name: keyof Properties;
  kind: number;
  rule: number;
  /** Bits by {@linkcode PropertyContext}. */
  contexts: number;
  /** May appear more than once. */
  repeats: boolean;
  /** Normative id or section that says what a bad value breaks. */
  cite: string;
}

const WILL = 1 << 0;
const CONNECT = 1 << 1;
const CONNACK = 1 << 2;
const PUBLISH = 1 << 3;
const ACKS = (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 9) | (1 << 11);
const SUBSCRIBE = 1 << 8;
const UNSUBSCRIBE = 1 << 10;
const DISCONNECT = 1 << 14;
const AUTH = 1 << 15;

function info(
  id: number,
  name: keyof Properties,
  kind: number,
  contexts: number,
  rule: number,
  cite: string,
  repeats = false,
): PropertyInfo {
  return { id, name, kind, rule, contexts, repeats, cite };
}

/** Table 2-4. Subscription Identifier has two names: repeated in PUBLISH, single in SUBSCRIBE. */
const TABLE: readonly PropertyInfo[] = [
  info(0x01, "payloadFormatIndicator", BYTE, PUBLISH | WILL, ZERO_ONE, "section 3.3.2.3.2"),
  info(0x02, "messageExpiryInterval", U32, PUBLISH | WILL, PLAIN, "section 3.3.2.3.3"),
  info(0x03, "contentType", STRING, PUBLISH | WILL, PLAIN, "section 3.3.2.3.9, MQTT-3.3.2-19"),
  info(0x08, "responseTopic", STRING, PUBLISH | WILL, TOPIC, "section 3.3.2.3.5, MQTT-3.3.2-14"),
  info(0x09, "correlationData", BINARY, PUBLISH | WILL, PLAIN, "section 3.3.2.3.6"),
  info(0x0b, "subscriptionIdentifiers", VBI, PUBLISH, NONZERO, "section 3.3.2.3.8", true),
  info(0x0b, "subscriptionIdentifier", VBI, SUBSCRIBE, NONZERO, "section 3.8.2.1.2"),
  info(
    0x11,
    "sessionExpiryInterval",
    U32,
    CONNECT | CONNACK | DISCONNECT,
    PLAIN,
    "section 3.1.2.11.2",
  ),
  info(0x12, "assignedClientIdentifier", STRING, CONNACK, PLAIN, "section 3.2.2.3.7"),
  info(0x13, "serverKeepAlive", U16, CONNACK, PLAIN, "section 3.2.2.3.14"),
  info(0x15, "authenticationMethod", STRING, CONNECT | CONNACK | AUTH, PLAIN, "section 3.1.2.11.9"),
  info(0x16, "authenticationData", BINARY, CONNECT | CONNACK | AUTH, PLAIN, "section 3.1.2.11.10"),
  info(0x17, "requestProblemInformation", BYTE, CONNECT, FLAG, "section 3.1.2.11.7"),
  info(0x18, "willDelayInterval", U32, WILL, PLAIN, "section 3.1.3.2.2"),
  info(0x19, "requestResponseInformation", BYTE, CONNECT, FLAG, "section 3.1.2.11.6"),
  info(0x1a, "responseInformation", STRING, CONNACK, PLAIN, "section 3.2.2.3.15"),
  info(0x1c, "serverReference", STRING, CONNACK | DISCONNECT, PLAIN, "section 3.2.2.3.16"),
  info(
    0x1f,
    "reasonString",
    STRING,
    CONNACK | ACKS | DISCONNECT | AUTH,
    PLAIN,
    "section 3.2.2.3.9",
  ),
  info(0x21, "receiveMaximum", U16, CONNECT | CONNACK, NONZERO, "section 3.1.2.11.3"),
  info(0x22, "topicAliasMaximum", U16, CONNECT | CONNACK, PLAIN, "section 3.1.2.11.5"),
  info(0x23, "topicAlias", U16, PUBLISH, NONZERO, "section 3.3.2.3.4, MQTT-3.3.2-8"),
  info(0x24, "maximumQoS", BYTE, CONNACK, ZERO_ONE, "section 3.2.2.3.4"),
  info(0x25, "retainAvailable", BYTE, CONNACK, FLAG, "section 3.2.2.3.5"),
  info(
    0x26,
    "userProperties",
    PAIR,
    WILL | CONNECT | CONNACK | PUBLISH | ACKS | SUBSCRIBE | UNSUBSCRIBE | DISCONNECT | AUTH,
    PLAIN,
    "section 3.1.2.11.8, MQTT-1.5.7-1",
    true,
  ),
  info(0x27, "maximumPacketSize", U32, CONNECT | CONNACK, NONZERO, "section 3.1.2.11.4"),
  info(0x28, "wildcardSubscriptionAvailable", BYTE, CONNACK, FLAG, "section 3.2.2.3.11"),
  info(0x29, "subscriptionIdentifiersAvailable", BYTE, CONNACK, FLAG, "section 3.2.2.3.12"),
  info(0x2a, "sharedSubscriptionAvailable", BYTE, CONNACK, FLAG, "section 3.2.2.3.13"),
];

/** Property info by context, then by identifier: what the decoder may meet. */
const BY_CONTEXT: (PropertyInfo | undefined)[][] = [];
for (let context = 0; context < 16; context++) {
  const row: (PropertyInfo | undefined)[] = new Array(0x2b).fill(undefined);
  for (const p of TABLE) if (p.contexts & (1 << context)) row[p.id] = p;
  BY_CONTEXT.push(row);
}
/** Property info by name: what the encoder may meet. */
const BY_NAME = new Map<string, PropertyInfo>(TABLE.map((p) => [p.name, p]));

const CONTEXT_NAMES = [
  "will properties",
  "CONNECT",
  "CONNACK",
  "PUBLISH",
  "PUBACK",
  "PUBREC",
  "PUBREL",
  "PUBCOMP",
  "SUBSCRIBE",
  "SUBACK",
  "UNSUBSCRIBE",
  "UNSUBACK",
  "PINGREQ",
  "PINGRESP",
  "DISCONNECT",
  "AUTH",
];

/** Largest Variable Byte Integer (section 1.5.5): also the largest Subscription Identifier. */
const MAX_VBI = 268_435_455;

function truncated(type: PacketTypeName): ProtocolError {
  return new ProtocolError(
    "TRUNCATED_PACKET",
    "a property runs past the end of its property length or of the packet (section 2.2.2)",
    type,
  );
}

function notAllowed(id: string, context: PropertyContext, type: PacketTypeName): ProtocolError {
  // Section 2.2.2.2: an identifier not valid for its packet type is a Malformed Packet.
  return new ProtocolError(
    "PROPERTY_NOT_ALLOWED",
    `property ${id} is not allowed in ${CONTEXT_NAMES[context]} (section 2.2.2.2, Table 2-4)`,
    type,
  );
}

function invalid(p: PropertyInfo, value: unknown, type: PacketTypeName): ProtocolError {
  const shown = value instanceof Uint8Array ? `${value.length} bytes` : JSON.stringify(value);
  return new ProtocolError(
    "INVALID_PROPERTY",
    `property ${p.name} (0x${hex(p.id)}) has the invalid value ${shown} (${p.cite})`,
    type,
  );
}

function hex(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/**
 * Bytes a Variable Byte Integer takes (section 1.5.5): the Remaining Length's encoding.
 *
 * @example
 * ```ts
 * import { varIntSize } from "./properties.ts";
 * console.log(varIntSize(127), varIntSize(16_384)); // 1 3
 * ```
 */
export const varIntSize: (value: number) => number = remainingLengthSize;

/**
 * Writes a Variable Byte Integer (section 1.5.5) at `pos`; returns the position after it.
 *
 * @example
 * ```ts
 * import { writeVarInt } from "./properties.ts";
 * const buf = new Uint8Array(4);
 * console.log(writeVarInt(buf, 0, 200), buf); // 2 [0xc8, 0x01, 0, 0]
 * ```
 */
export const writeVarInt: (buf: Uint8Array, pos: number, value: number) => number =
  writeRemainingLength;

// Position after the last Variable Byte Integer or property block read.
// Safe: decoding is synchronous and never re-entered.
let after = 0;

/**
 * Reads a Variable Byte Integer at `pos` that must end before `stop`; the
 * position after it is then {@linkcode readEnd}. Refuses a fifth byte and a
 * value not in the fewest bytes (MQTT-1.5.5-1).
 *
 * @example
 * ```ts
 * import { readEnd, readVarInt } from "./properties.ts";
 * console.log(readVarInt(new Uint8Array([0xc8, 0x01]), 0, 2, "publish"), readEnd()); // 200 2
 * ```
 */
export function readVarInt(
  buf: Uint8Array,
  pos: number,
  stop: number,
  type: PacketTypeName,
): number {
  let value = 0;
  for (let i = 0, shift = 0; i < 4; i++, shift += 7) {
    if (pos + i >= stop) throw truncated(type);
    const byte = buf[pos + i];
    value |= (byte & 0x7f) << shift;
    if (byte < 0x80) {
      // MQTT-1.5.5-1: the fewest bytes; a last byte of 0 after the first is padding.
      if (byte === 0 && i > 0) {
        throw new ProtocolError(
          "MALFORMED_VARIABLE_BYTE_INTEGER",
          "variable byte integer not in the fewest bytes (MQTT-1.5.5-1)",
          type,
        );
      }
      after = pos + i + 1;
      return value;
    }
  }
  throw new ProtocolError(
    "MALFORMED_VARIABLE_BYTE_INTEGER",
    "variable byte integer longer than 4 bytes (section 1.5.5)",
    type,
  );
}

/**
 * Position after the last {@linkcode readVarInt} or {@linkcode readProperties}.
 *
 * @example
 * ```ts
 * import { readEnd, readProperties } from "./properties.ts";
 * readProperties(new Uint8Array([0x00, 0xff]), 0, 2, 4, "puback"); // no properties
 * console.log(readEnd()); // 1
 * ```
 */
export function readEnd(): number {
  return after;
}

/**
 * Reads a property block (Property Length then properties) at `pos`, which
 * must end by `stop`. Returns the properties, or `undefined` when the block
 * is empty; the position after it is then {@linkcode readEnd}.
 *
 * Throws a {@linkcode ProtocolError}: `PROPERTY_NOT_ALLOWED` for an
 * identifier `context` does not allow (section 2.2.2.2), `DUPLICATE_PROPERTY`
 * for a second copy of a property that may appear once,
 * `INVALID_PROPERTY` for a value out of its range (a zero Topic Alias,
 * Subscription Identifier, Receive Maximum or Maximum Packet Size, a flag
 * other than 0 or 1), `TRUNCATED_PACKET` when a value or the block runs past
 * `stop`, and the string errors for a bad string.
 *
 * @example
 * ```ts
 * import { readProperties } from "./properties.ts";
 * // Property Length 3, Topic Alias (0x23) 5, in a PUBLISH (context 3).
 * const bytes = new Uint8Array([0x03, 0x23, 0x00, 0x05]);
 * console.log(readProperties(bytes, 0, bytes.length, 3, "publish")); // { topicAlias: 5 }
 * ```
 */
export function readProperties(
  buf: Uint8Array,
  pos: number,
  stop: number,
  context: PropertyContext,
  type: PacketTypeName,
): Properties | undefined {
  if (pos >= stop) throw truncated(type);
  if (buf[pos] === 0) {
    // MQTT-2.2.2-1: no properties is a Property Length of zero.
    after = pos + 1;
    return undefined;
  }
  const length = readVarInt(buf, pos, stop, type);
  pos = after;
  const end = pos + length;
  if (end > stop) throw truncated(type);
  const row = BY_CONTEXT[context];
  const props: Record<string, unknown> = {};
  let seen = 0; // bits of identifiers 0..31
  let seenHigh = 0; // bits of identifiers 32..63
  while (pos < end) {
    let id = buf[pos++];
    if (id >= 0x80) {
      // Identifiers are Variable Byte Integers; all defined ones take one byte.
      id = readVarInt(buf, pos - 1, end, type);
      pos = after;
    }
    const p = id < row.length ? row[id] : undefined;
    if (p === undefined) throw notAllowed(`0x${hex(id)}`, context, type);
    if (!p.repeats) {
      const bit = 1 << (id & 31);
      const mask = id < 32 ? seen : seenHigh;
      if (mask & bit) {
        throw new ProtocolError(
          "DUPLICATE_PROPERTY",
          `property ${p.name} (0x${hex(id)}) appears more than once (${p.cite})`,
          type,
        );
      }
      if (id < 32) seen |= bit;
      else seenHigh |= bit;
    }
    let value: unknown;
    switch (p.kind) {
      case BYTE: {
        if (pos >= end) throw truncated(type);
        const b = buf[pos++];
        if (b > 1) throw invalid(p, b, type);
        value = p.rule === FLAG ? b === 1 : b;
        break;
      }
      case U16:
        if (end - pos < 2) throw truncated(type);
        value = (buf[pos] << 8) | buf[pos + 1];
        pos += 2;
        break;
      case U32:
        if (end - pos < 4) throw truncated(type);
        value = ((buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]) >>>
          0;
        pos += 4;
        break;
      case VBI:
        value = readVarInt(buf, pos, end, type);
        pos = after;
        break;
      case PAIR: {
        const name = readStringAt(buf, pos, end, type);
        const v = readStringAt(buf, after, end, type);
        pos = after;
        const list = props.userProperties as [string, string][] | undefined;
        if (list === undefined) props.userProperties = [[name, v]];
        else list.push([name, v]);
        continue;
      }
      case BINARY: {
        if (end - pos < 2) throw truncated(type);
        const stopAt = pos + 2 + ((buf[pos] << 8) | buf[pos + 1]);
        if (stopAt > end) throw truncated(type);
        value = buf.subarray(pos + 2, stopAt);
        pos = stopAt;
        break;
      }
      default: {
        if (p.rule === TOPIC) {
          if (end - pos < 2) throw truncated(type);
          const stopAt = pos + 2 + ((buf[pos] << 8) | buf[pos + 1]);
          if (stopAt > end) throw truncated(type);
          value = decodeTopicName(buf, pos + 2, stopAt, type);
          pos = stopAt;
        } else {
          value = readStringAt(buf, pos, end, type);
          pos = after;
        }
      }
    }
    if (p.rule === NONZERO && value === 0) throw invalid(p, value, type);
    if (p.repeats) {
      const list = props[p.name] as unknown[] | undefined;
      if (list === undefined) props[p.name] = [value];
      else list.push(value);
    } else {
      props[p.name] = value;
    }
  }
  after = end;
  if (context === 1 && props.authenticationData !== undefined && !(seen & (1 << 0x15))) {
    // Section 3.1.2.11.10: Authentication Data without Authentication Method.
    throw new ProtocolError(
      "INVALID_PROPERTY",
      "authenticationData without authenticationMethod (section 3.1.2.11.10)",
      type,
    );
  }
  return props as Properties;
}

function readStringAt(buf: Uint8Array, pos: number, end: number, type: PacketTypeName): string {
  if (end - pos < 2) throw truncated(type);
  const stopAt = pos + 2 + ((buf[pos] << 8) | buf[pos + 1]);
  if (stopAt > end) throw truncated(type);
  after = stopAt;
  return readString(buf, pos + 2, stopAt, type);
}

/**
 * Validates `props` for `context` and returns the byte length of its
 * properties, without the Property Length field (0 for `undefined` or an
 * object without a defined value).
 *
 * Throws `INVALID_PROPERTY` for an unknown name or a value of the wrong type
 * or range, `PROPERTY_NOT_ALLOWED` for a property `context` does not allow,
 * and the string errors for a bad string.
 *
 * @example
 * ```ts
 * import { propertiesLength } from "./properties.ts";
 * console.log(propertiesLength({ topicAlias: 5, contentType: "json" }, 3, "publish")); // 10
 * ```
 */
export function propertiesLength(
  props: Properties | undefined,
  context: PropertyContext,
  type: PacketTypeName,
): number {
  if (props === undefined) return 0;
  const bit = 1 << context;
  let len = 0;
  for (const name in props) {
    const value = (props as Record<string, unknown>)[name];
    if (value === undefined) continue;
    const p = BY_NAME.get(name);
    if (p === undefined) {
      throw new ProtocolError(
        "INVALID_PROPERTY",
        `unknown property ${JSON.stringify(name)} (section 2.2.2.2, Table 2-4)`,
        type,
      );
    }
    if (!(p.contexts & bit)) throw notAllowed(name, context, type);
    len += valueLength(p, value, type);
  }
  if (
    context === 1 && props.authenticationData !== undefined &&
    props.authenticationMethod === undefined
  ) {
    throw new ProtocolError(
      "INVALID_PROPERTY",
      "authenticationData without authenticationMethod (section 3.1.2.11.10)",
      type,
    );
  }
  return len;
}

/** Validates one value; returns the bytes it takes with its identifier(s). */
function valueLength(p: PropertyInfo, value: unknown, type: PacketTypeName): number {
  switch (p.kind) {
    case BYTE:
      if (p.rule === FLAG ? typeof value !== "boolean" : value !== 0 && value !== 1) {
        throw invalid(p, value, type);
      }
      return 2;
    case U16: {
      const v = value as number;
      if ((v & 0xffff) !== v || (p.rule === NONZERO && v === 0)) throw invalid(p, value, type);
      return 3;
    }
    case U32: {
      const v = value as number;
      if (
        !Number.isInteger(v) || v < 0 || v > 0xffff_ffff || (p.rule === NONZERO && v === 0)
      ) {
        throw invalid(p, value, type);
      }
      return 5;
    }
    case VBI: {
      if (p.repeats) {
        if (!Array.isArray(value)) throw invalid(p, value, type);
        let len = 0;
        for (const v of value) len += 1 + varIntValue(p, v, type);
        return len;
      }
      return 1 + varIntValue(p, value, type);
    }
    case STRING:
      if (typeof value !== "string") throw invalid(p, value, type);
      return 3 + (p.rule === TOPIC ? topicNameLength(value, type) : utf8Length(value, type));
    case BINARY:
      if (!(value instanceof Uint8Array) || value.length > MAX_STRING_BYTES) {
        throw invalid(p, value, type);
      }
      return 3 + value.length;
    default: {
      if (!Array.isArray(value)) throw invalid(p, value, type);
      let len = 0;
      for (const pair of value) {
        if (
          !Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" ||
          typeof pair[1] !== "string"
        ) {
          throw invalid(p, pair, type);
        }
        // MQTT-1.5.7-1: both strings of a pair are UTF-8 Encoded Strings.
        len += 5 + utf8Length(pair[0], type) + utf8Length(pair[1], type);
      }
      return len;
    }
  }
}

function varIntValue(p: PropertyInfo, v: unknown, type: PacketTypeName): number {
  // Section 3.3.2.3.8 / 3.8.2.1.2: 1..268,435,455; zero is a Protocol Error.
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > MAX_VBI) {
    throw invalid(p, v, type);
  }
  return varIntSize(v as number);
}

/**
 * Writes the Property Length `length` (from {@linkcode propertiesLength})
 * and the properties of validated `props` at `pos`; returns the position
 * after them.
 *
 * @example
 * ```ts
 * import { propertiesLength, writeProperties } from "./properties.ts";
 * const props = { topicAlias: 5 };
 * const buf = new Uint8Array(4);
 * writeProperties(props, propertiesLength(props, 3, "publish"), buf, 0);
 * console.log(buf); // [0x03, 0x23, 0x00, 0x05]
 * ```
 */
export function writeProperties(
  props: Properties | undefined,
  length: number,
  buf: Uint8Array,
  pos: number,
): number {
  pos = writeVarInt(buf, pos, length);
  if (length === 0) return pos;
  for (const name in props) {
    const value = (props as Record<string, unknown>)[name];
    if (value === undefined) continue;
    const p = BY_NAME.get(name)!;
    const id = p.id;
    switch (p.kind) {
      case BYTE:
        buf[pos++] = id;
        buf[pos++] = value === true ? 1 : value === false ? 0 : value as number;
        break;
      case U16: {
        const v = value as number;
        buf[pos++] = id;
        buf[pos++] = v >> 8;
        buf[pos++] = v & 0xff;
        break;
      }
      case U32: {
        const v = value as number;
        buf[pos++] = id;
        buf[pos++] = v >>> 24;
        buf[pos++] = (v >>> 16) & 0xff;
        buf[pos++] = (v >>> 8) & 0xff;
        buf[pos++] = v & 0xff;
        break;
      }
      case VBI:
        for (const v of (p.repeats ? value : [value]) as number[]) {
          buf[pos++] = id;
          pos = writeVarInt(buf, pos, v);
        }
        break;
      case STRING:
        buf[pos++] = id;
        pos = writeString(value as string, buf, pos);
        break;
      case BINARY:
        buf[pos++] = id;
        pos = writeBinary(value as Uint8Array, buf, pos);
        break;
      default:
        for (const [k, v] of value as [string, string][]) {
          buf[pos++] = id;
          pos = writeString(k, buf, pos);
          pos = writeString(v, buf, pos);
        }
    }
  }
  return pos;
}

/**
 * Whether `props` holds at least one defined value, that is, whether an
 * encoder must write it.
 *
 * @example
 * ```ts
 * import { hasProperties } from "./properties.ts";
 * console.log(hasProperties({}), hasProperties({ reasonString: "x" })); // false true
 * ```
 */
export function hasProperties(props: Properties | undefined): boolean {
  if (props === undefined) return false;
  for (const name in props) {
    if ((props as Record<string, unknown>)[name] !== undefined) return true;
  }
  return false;
}
