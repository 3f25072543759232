/**
 * MQTT 5.0 reason codes (section 2.4, Table 2-6) by name, the codes each
 * packet may carry, and {@linkcode isFailure}, the one test for "this code
 * reports a failure" shared by both protocol versions.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import type { PacketTypeName } from "./packet.ts";

/**
 * Every reason code of MQTT 5.0 section 2.4 (Table 2-6), by name. Several
 * names share a value: 0x00 is Success, Normal disconnection and Granted
 * QoS 0 depending on the packet.
 *
 * @example
 * ```ts
 * import { REASON_CODE } from "./reason_codes.ts";
 * console.log(REASON_CODE.NoMatchingSubscribers); // 16
 * ```
 */
export const REASON_CODE = {
  Success: 0x00,
  NormalDisconnection: 0x00,
  GrantedQoS0: 0x00,
  GrantedQoS1: 0x01,
  GrantedQoS2: 0x02,
  DisconnectWithWillMessage: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  UseAnotherServer: 0x9c,
  ServerMoved: 0x9d,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const;

/** Any MQTT 5.0 reason code (section 2.4). */
export type ReasonCode = (typeof REASON_CODE)[keyof typeof REASON_CODE];

/** Reason codes of a 5.0 CONNACK (section 3.2.2.2, Table 3-1). */
export type ConnectReasonCode =
  | 0x00
  | 0x80
  | 0x81
  | 0x82
  | 0x83
  | 0x84
  | 0x85
  | 0x86
  | 0x87
  | 0x88
  | 0x89
  | 0x8a
  | 0x8c
  | 0x90
  | 0x95
  | 0x97
  | 0x99
  | 0x9a
  | 0x9b
  | 0x9c
  | 0x9d
  | 0x9f;

/** Reason codes of PUBACK and PUBREC (sections 3.4.2.1, 3.5.2.1). */
export type PubackReasonCode = 0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99;

/** Reason codes of PUBREL and PUBCOMP (sections 3.6.2.1, 3.7.2.1). */
export type PubrelReasonCode = 0x00 | 0x92;

/** Reason codes of a 5.0 SUBACK, one per filter (section 3.9.3). */
export type SubackReasonCode =
  | 0x00
  | 0x01
  | 0x02
  | 0x80
  | 0x83
  | 0x87
  | 0x8f
  | 0x91
  | 0x97
  | 0x9e
  | 0xa1
  | 0xa2;

/** Reason codes of a 5.0 UNSUBACK, one per filter (section 3.11.3). */
export type UnsubackReasonCode = 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8f | 0x91;

/** Reason codes of a 5.0 DISCONNECT (section 3.14.2.1). */
export type DisconnectReasonCode =
  | 0x00
  | 0x04
  | 0x80
  | 0x81
  | 0x82
  | 0x83
  | 0x87
  | 0x89
  | 0x8b
  | 0x8d
  | 0x8e
  | 0x8f
  | 0x90
  | 0x93
  | 0x94
  | 0x95
  | 0x96
  | 0x97
  | 0x98
  | 0x99
  | 0x9a
  | 0x9b
  | 0x9c
  | 0x9d
  | 0x9e
  | 0x9f
  | 0xa0
  | 0xa1
  | 0xa2;

/** Reason codes of AUTH (section 3.15.2.1, Table 3-11). */
export type AuthReasonCode = 0x00 | 0x18 | 0x19;

// Which packets may carry each code: the "Packets" column of Table 2-6, as
// bits by packet type number (CONNACK 2 ... AUTH 15).
const CONNACK = 1 << 2;
const PUBACK = 1 << 4;
const PUBREC = 1 << 5;
const PUBREL = 1 << 6;
const PUBCOMP = 1 << 7;
const SUBACK = 1 << 9;
const UNSUBACK = 1 << 11;
const DISCONNECT = 1 << 14;
const AUTH = 1 << 15;

const ALLOWED: readonly [number, number, string][] = [
  [0x00, CONNACK | PUBACK | PUBREC | PUBREL | PUBCOMP | UNSUBACK | AUTH | DISCONNECT | SUBACK, ""],
  [0x01, SUBACK, "granted QoS 1"],
  [0x02, SUBACK, "granted QoS 2"],
  [0x04, DISCONNECT, "disconnect with will message"],
  [0x10, PUBACK | PUBREC, "no matching subscribers"],
  [0x11, UNSUBACK, "no subscription existed"],
  [0x18, AUTH, "continue authentication"],
  [0x19, AUTH, "re-authenticate"],
  [0x80, CONNACK | PUBACK | PUBREC | SUBACK | UNSUBACK | DISCONNECT, "unspecified error"],
  [0x81, CONNACK | DISCONNECT, "malformed packet"],
  [0x82, CONNACK | DISCONNECT, "protocol error"],
  [
    0x83,
    CONNACK | PUBACK | PUBREC | SUBACK | UNSUBACK | DISCONNECT,
    "implementation specific error",
  ],
  [0x84, CONNACK, "unsupported protocol version"],
  [0x85, CONNACK, "client identifier not valid"],
  [0x86, CONNACK, "bad user name or password"],
  [0x87, CONNACK | PUBACK | PUBREC | SUBACK | UNSUBACK | DISCONNECT, "not authorized"],
  [0x88, CONNACK, "server unavailable"],
  [0x89, CONNACK | DISCONNECT, "server busy"],
  [0x8a, CONNACK, "banned"],
  [0x8b, DISCONNECT, "server shutting down"],
  [0x8c, CONNACK | DISCONNECT, "bad authentication method"],
  [0x8d, DISCONNECT, "keep alive timeout"],
  [0x8e, DISCONNECT, "session taken over"],
  [0x8f, SUBACK | UNSUBACK | DISCONNECT, "topic filter invalid"],
  [0x90, CONNACK | PUBACK | PUBREC | DISCONNECT, "topic name invalid"],
  [0x91, PUBACK | PUBREC | SUBACK | UNSUBACK, "packet identifier in use"],
  [0x92, PUBREL | PUBCOMP, "packet identifier not found"],
  [0x93, DISCONNECT, "receive maximum exceeded"],
  [0x94, DISCONNECT, "topic alias invalid"],
  [0x95, CONNACK | DISCONNECT, "packet too large"],
  [0x96, DISCONNECT, "message rate too high"],
  [0x97, CONNACK | PUBACK | PUBREC | SUBACK | DISCONNECT, "quota exceeded"],
  [0x98, DISCONNECT, "administrative action"],
  [0x99, CONNACK | PUBACK | PUBREC | DISCONNECT, "payload format invalid"],
  [0x9a, CONNACK | DISCONNECT, "retain not supported"],
  [0x9b, CONNACK | DISCONNECT, "QoS not supported"],
  [0x9c, CONNACK | DISCONNECT, "use another server"],
  [0x9d, CONNACK | DISCONNECT, "server moved"],
  [0x9e, SUBACK | DISCONNECT, "shared subscriptions not supported"],
  [0x9f, CONNACK | DISCONNECT, "connection rate exceeded"],
  [0xa0, DISCONNECT, "maximum connect time"],
  [0xa1, SUBACK | DISCONNECT, "subscription identifiers not supported"],
  [0xa2, SUBACK | DISCONNECT, "wildcard subscriptions not supported"],
];

/** Packet-type bits by code; 0 for a code no packet carries. */
const PACKETS_BY_CODE = new Uint16Array(256);
const NAMES: string[] = new Array(256).fill("");
for (const [code, packets, name] of ALLOWED) {
  PACKETS_BY_CODE[code] = packets;
  NAMES[code] = name;
}
const TYPE_NUMBERS: Partial<Record<PacketTypeName, number>> = {
  connack: 2,
  puback: 4,
  pubrec: 5,
  pubrel: 6,
  pubcomp: 7,
  suback: 9,
  unsuback: 11,
  disconnect: 14,
  auth: 15,
};

/**
 * Whether `code` reports a failure: reason codes (5.0, section 2.4) and the
 * SUBACK return code 0x80 (3.1.1, section 3.9.3) of 0x80 or more do, lower
 * codes report success.
 *
 * @example
 * ```ts
 * import { isFailure } from "./reason_codes.ts";
 * console.log(isFailure(0x10), isFailure(0x80), isFailure(0x97)); // false true true
 * ```
 */
export function isFailure(code: number): boolean {
  return code >= 0x80;
}

/**
 * Whether `packetType` may carry reason code `code` in MQTT 5.0 (Table 2-6
 * and the table of each packet).
 *
 * @example
 * ```ts
 * import { isReasonCodeOf } from "./reason_codes.ts";
 * console.log(isReasonCodeOf(0x10, "puback"), isReasonCodeOf(0x10, "pubrel")); // true false
 * ```
 */
export function isReasonCodeOf(code: number, packetType: PacketTypeName): boolean {
  const bit = TYPE_NUMBERS[packetType];
  return bit !== undefined && (code & 0xff) === code && (PACKETS_BY_CODE[code] & (1 << bit)) !== 0;
}

/**
 * Name of a reason code as the specification writes it, lower case; for
 * 0x00 the name depends on the packet ("normal disconnection" in a
 * DISCONNECT, "granted QoS 0" in a SUBACK, "success" elsewhere).
 *
 * @example
 * ```ts
 * import { reasonCodeName } from "./reason_codes.ts";
 * console.log(reasonCodeName(0x8e)); // session taken over
 * console.log(reasonCodeName(0, "disconnect")); // normal disconnection
 * ```
 */
export function reasonCodeName(code: number, packetType?: PacketTypeName): string {
  if (code === 0) {
    return packetType === "disconnect"
      ? "normal disconnection"
      : packetType === "suback"
      ? "granted QoS 0"
      : "success";
  }
  return NAMES[code & 0xff] || `unknown reason code 0x${code.toString(16)}`;
}

/** Normative id of "the sender MUST use one of the <packet> Reason Codes". */
const REASON_RULES: Partial<Record<PacketTypeName, string>> = {
  connack: "MQTT-3.2.2-8",
  puback: "MQTT-3.4.2-1",
  pubrec: "MQTT-3.5.2-1",
  pubrel: "MQTT-3.6.2-1",
  pubcomp: "MQTT-3.7.2-1",
  suback: "MQTT-3.9.3-2",
  unsuback: "MQTT-3.11.3-2",
  disconnect: "MQTT-3.14.2-1",
  auth: "MQTT-3.15.2-1",
};

/**
 * Throws an `INVALID_REASON_CODE` {@linkcode ProtocolError} citing the rule
 * of `packetType` unless it may carry `code` ({@linkcode isReasonCodeOf}).
 * The encoder and the decoder share it.
 *
 * @example
 * ```ts
 * import { checkReasonCode } from "./reason_codes.ts";
 * checkReasonCode(0x10, "puback"); // fine
 * try {
 *   checkReasonCode(0x10, "pubrel");
 * } catch (err) {
 *   console.log((err as Error).message); // reason code 0x10 is not one of the PUBREL reason codes (MQTT-3.6.2-1)
 * }
 * ```
 */
export function checkReasonCode(code: number, packetType: PacketTypeName): void {
  if (!isReasonCodeOf(code, packetType)) {
    const shown = typeof code === "number" ? `0x${code.toString(16)}` : JSON.stringify(code);
    throw new ProtocolError(
      "INVALID_REASON_CODE",
      `reason code ${shown} is not one of the ${packetType.toUpperCase()} reason codes (${
        REASON_RULES[packetType]
      })`,
      packetType,
    );
  }
}
