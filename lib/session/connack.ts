/**
 * What a CONNACK means for the client's side of the connection: whether it
 * refuses (3.1.1 return code, 5.0 reason code, or a 3.1.1-only server
 * refusing a 5.0 CONNECT) and, under MQTT 5.0, the limits its properties set
 * for the rest of the connection (section 3.2.2.3).
 *
 * @module
 */
import type {
  ConnackPacket,
  ProtocolVersion,
  QoS,
  SubscribePacket,
  UnsubscribePacket,
} from "../codec/packet.ts";
import { isFailure } from "../codec/reason_codes.ts";
import { encodedLength } from "../codec/encode.ts";
import { ConnectionRefusedError, MqttError, ProtocolError } from "../errors.ts";
import type { OutgoingMessage } from "./types.ts";

/** 5.0 Connect Reason Code "unsupported protocol version". */
export const UNSUPPORTED_PROTOCOL_VERSION = 0x84;

/**
 * The server's limits for one connection, from its CONNACK's properties (all
 * absent under 3.1.1, where the defaults below hold).
 */
export interface ServerLimits {
  /** Most unacknowledged QoS 1/2 PUBLISH we may send (MQTT-3.3.4-7). Default 65535. */
  receiveMaximum: number;
  /** Highest QoS the server accepts in a PUBLISH (MQTT-3.2.2-11). Default 2. */
  maximumQoS: QoS;
  /** Whether the server accepts retained messages (MQTT-3.2.2-14). Default true. */
  retainAvailable: boolean;
  /** Largest packet, in bytes, the server accepts (MQTT-3.2.2-15). Default: no limit beyond the protocol's. */
  maximumPacketSize: number;
  /** Highest Topic Alias we may send (MQTT-3.2.2-17, 0: none). Default 0. */
  topicAliasMaximum: number;
  /** The keep-alive the server wants us to use instead of ours (MQTT-3.2.2-21), seconds. */
  serverKeepAlive: number | undefined;
  /** The client identifier the server assigned, when we sent an empty one. */
  assignedClientIdentifier: string | undefined;
}

/** Limits under 3.1.1, or of a 5.0 CONNACK without properties. */
export const DEFAULT_LIMITS: Readonly<ServerLimits> = Object.freeze({
  receiveMaximum: 65535,
  maximumQoS: 2,
  retainAvailable: true,
  maximumPacketSize: Infinity,
  topicAliasMaximum: 0,
  serverKeepAlive: undefined,
  assignedClientIdentifier: undefined,
});

/**
 * The error a CONNACK refuses the connection with, or undefined when it
 * accepts. At 5.0 a CONNACK in the 3.1.1 shape (the codec decodes a 3.1.1
 * refusal so) is a server that does not speak 5.0; so is a 5.0 refusal with
 * 0x84: both give a {@linkcode ConnectionRefusedError} with `reasonCode` 0x84
 * and a message saying so.
 *
 * @example
 * ```ts
 * import { connackRefusal } from "./connack.ts";
 * const err = connackRefusal({ type: "connack", sessionPresent: false, returnCode: 1 }, 5);
 * console.log(err?.reasonCode, err?.message.includes("does not speak MQTT 5.0")); // 132 true
 * ```
 */
export function connackRefusal(
  packet: ConnackPacket,
  version: ProtocolVersion,
): ConnectionRefusedError | undefined {
  if (version === 4 || packet.reasonCode === undefined) {
    const rc = packet.returnCode ?? 0;
    if (rc === 0) return undefined;
    if (version === 5 && rc === 1) return notSpeaking5(rc);
    return new ConnectionRefusedError(rc);
  }
  const code = packet.reasonCode;
  if (!isFailure(code)) return undefined;
  if (code === UNSUPPORTED_PROTOCOL_VERSION) return notSpeaking5(0);
  return new ConnectionRefusedError(0, {
    reasonCode: code,
    reasonString: packet.properties?.reasonString,
    serverReference: packet.properties?.serverReference,
  });
}

function notSpeaking5(returnCode: number): ConnectionRefusedError {
  const error = new ConnectionRefusedError(returnCode, {
    reasonCode: UNSUPPORTED_PROTOCOL_VERSION,
  });
  error.message = "connection refused: the broker does not speak MQTT 5.0 (it refused " +
    'protocol level 5); connect with protocolVersion: 4, or "auto" to fall back by itself';
  return error;
}

/**
 * The `UNEXPECTED_PACKET` error when an accepting CONNACK contradicts our
 * CONNECT, or undefined when it does not. Clean Start 1 discarded our side's
 * state, so a server claiming a session contradicts us (3.1.1 MQTT-3.2.2-1;
 * 5.0 MQTT-3.2.2-2, and MQTT-3.2.2-4 has us close). With Clean Start 0 the
 * state may be another process's: Session Present 1 is the resume we asked for.
 *
 * @example
 * ```ts
 * import { connackContradiction } from "./connack.ts";
 * const ack = { type: "connack", sessionPresent: true, returnCode: 0 } as const;
 * console.log(connackContradiction(ack, true, 4)?.code); // UNEXPECTED_PACKET
 * ```
 */
export function connackContradiction(
  packet: ConnackPacket,
  clean: boolean,
  version: ProtocolVersion,
): ProtocolError | undefined {
  if (!packet.sessionPresent || !clean) return undefined;
  const why = version === 5
    ? "Session Present 1 after Clean Start 1: we have no session state (MQTT-3.2.2-2, " +
      "MQTT-3.2.2-4)"
    : "session present with clean session set (MQTT-3.2.2-1)";
  return new ProtocolError(
    "UNEXPECTED_PACKET",
    `unexpected CONNACK from the server: ${why}`,
    "connack",
  );
}

/**
 * The error of a connection the server closed after our CONNECT and before
 * any CONNACK (`CONNECTION_CLOSED`). After a 5.0 CONNECT that is what some
 * brokers that do not speak 5.0 do instead of refusing it (RabbitMQ 3.10's
 * MQTT plugin does), so the message says so, and `"auto"` tries 3.1.1 next.
 *
 * @example
 * ```ts
 * import { closedBeforeConnack, refusedVersion5 } from "./connack.ts";
 * console.log(refusedVersion5(closedBeforeConnack(5)), refusedVersion5(closedBeforeConnack(4))); // true false
 * ```
 */
export function closedBeforeConnack(version: ProtocolVersion): MqttError {
  if (version === 4) {
    return new MqttError("CONNECTION_CLOSED", "the server closed the connection before CONNACK");
  }
  const error = new MqttError(
    "CONNECTION_CLOSED",
    "the server closed the connection before CONNACK: the broker may not speak MQTT 5.0 " +
      '(some close instead of refusing it); connect with protocolVersion: 4, or "auto" to ' +
      "fall back by itself",
  );
  CLOSED_AT_5.add(error);
  return error;
}

/** Errors of {@linkcode closedBeforeConnack} at 5.0. */
const CLOSED_AT_5 = new WeakSet<MqttError>();

/**
 * Whether an error is the refusal of a 5.0 CONNECT by a server that does
 * not speak 5.0 (what `protocolVersion: "auto"` falls back to 3.1.1 on): a
 * 3.1.1 CONNACK 0x01, a 5.0 CONNACK 0x84, or the connection closed before
 * any CONNACK.
 *
 * @example
 * ```ts
 * import { connackRefusal, refusedVersion5 } from "./connack.ts";
 * console.log(refusedVersion5(connackRefusal({ type: "connack", sessionPresent: false, returnCode: 1 }, 5))); // true
 * ```
 */
export function refusedVersion5(error: unknown): boolean {
  return (error instanceof ConnectionRefusedError &&
    error.reasonCode === UNSUPPORTED_PROTOCOL_VERSION) ||
    (error instanceof MqttError && CLOSED_AT_5.has(error));
}

/**
 * The limits a 5.0 CONNACK sets (the defaults for absent properties, and
 * under 3.1.1).
 *
 * @example
 * ```ts
 * import { limitsOf } from "./connack.ts";
 * const limits = limitsOf({
 *   type: "connack", sessionPresent: false, reasonCode: 0,
 *   properties: { receiveMaximum: 20, maximumQoS: 1 },
 * });
 * console.log(limits.receiveMaximum, limits.maximumQoS, limits.retainAvailable); // 20 1 true
 * ```
 */
export function limitsOf(packet: ConnackPacket): ServerLimits {
  const p = packet.properties;
  if (p === undefined) return { ...DEFAULT_LIMITS };
  return {
    receiveMaximum: p.receiveMaximum ?? DEFAULT_LIMITS.receiveMaximum,
    maximumQoS: p.maximumQoS ?? DEFAULT_LIMITS.maximumQoS,
    retainAvailable: p.retainAvailable ?? DEFAULT_LIMITS.retainAvailable,
    maximumPacketSize: p.maximumPacketSize ?? DEFAULT_LIMITS.maximumPacketSize,
    topicAliasMaximum: p.topicAliasMaximum ?? DEFAULT_LIMITS.topicAliasMaximum,
    serverKeepAlive: p.serverKeepAlive,
    assignedClientIdentifier: p.assignedClientIdentifier,
  };
}

/**
 * Why the server's limits forbid sending `message`, or undefined when they
 * allow it: a QoS above Maximum QoS (MQTT-3.2.2-11, `QOS_NOT_SUPPORTED`: it
 * is not downgraded behind the caller's back), RETAIN when Retain Available
 * is 0 (MQTT-3.2.2-14, `RETAIN_NOT_SUPPORTED`), a PUBLISH larger than the
 * Maximum Packet Size (MQTT-3.2.2-15, `PACKET_TOO_LARGE`).
 *
 * @example
 * ```ts
 * import { checkLimits, DEFAULT_LIMITS } from "./connack.ts";
 * const limits = { ...DEFAULT_LIMITS, maximumQoS: 1 as const };
 * const msg = { topic: "a", payload: new Uint8Array(), qos: 2 as const, retain: false };
 * console.log(checkLimits(msg, limits, 5)?.code); // QOS_NOT_SUPPORTED
 * ```
 */
export function checkLimits(
  message: OutgoingMessage,
  limits: Readonly<ServerLimits>,
  version: ProtocolVersion,
): MqttError | undefined {
  if (message.qos > limits.maximumQoS) {
    return new MqttError(
      "QOS_NOT_SUPPORTED",
      `the server accepts PUBLISH up to QoS ${limits.maximumQoS} (Maximum QoS in CONNACK), ` +
        `not QoS ${message.qos}; publish with a lower qos (MQTT-3.2.2-11)`,
    );
  }
  if (message.retain && !limits.retainAvailable) {
    return new MqttError(
      "RETAIN_NOT_SUPPORTED",
      "the server does not support retained messages (Retain Available 0 in CONNACK); " +
        "publish without retain (MQTT-3.2.2-14)",
    );
  }
  const max = limits.maximumPacketSize;
  if (max !== Infinity) {
    const size = publishSize(message, version);
    if (size > max) {
      return new ProtocolError(
        "PACKET_TOO_LARGE",
        `the PUBLISH to "${message.topic}" would be ${size} bytes, above the server's ` +
          `Maximum Packet Size of ${max} (MQTT-3.2.2-15); nothing was sent`,
        "publish",
      );
    }
  }
  return undefined;
}

/**
 * `PACKET_TOO_LARGE` when a SUBSCRIBE or UNSUBSCRIBE would exceed the
 * server's Maximum Packet Size (MQTT-3.2.2-15: the client must not send it),
 * or undefined when it fits (always, without a maximum).
 *
 * @example
 * ```ts
 * import { checkRequestSize, DEFAULT_LIMITS } from "./connack.ts";
 * import type { UnsubscribePacket } from "../codec/packet.ts";
 * const packet: UnsubscribePacket = { type: "unsubscribe", packetId: 1, filters: ["a/long/filter"] };
 * console.log(checkRequestSize(packet, { ...DEFAULT_LIMITS, maximumPacketSize: 10 })?.code); // PACKET_TOO_LARGE
 * ```
 */
export function checkRequestSize(
  packet: SubscribePacket | UnsubscribePacket,
  limits: Readonly<ServerLimits>,
): ProtocolError | undefined {
  const max = limits.maximumPacketSize;
  if (max === Infinity) return undefined;
  const size = encodedLength(packet, { protocolVersion: 5 });
  if (size <= max) return undefined;
  const name = packet.type.toUpperCase();
  return new ProtocolError(
    "PACKET_TOO_LARGE",
    `the ${name} would be ${size} bytes, above the server's Maximum Packet Size of ${max} ` +
      `(MQTT-3.2.2-15); nothing was sent: ${packet.type} fewer or shorter filters at a time`,
    packet.type,
  );
}

/**
 * The size in bytes of the PUBLISH that carries `message` at `version`
 * (fixed header included), to hold against a peer's Maximum Packet Size
 * (MQTT-3.1.2-24, MQTT-3.2.2-15). A Topic Alias could only make it smaller.
 *
 * @example
 * ```ts
 * import { publishSize } from "./connack.ts";
 * const message = { topic: "a", payload: new Uint8Array(10), qos: 1, retain: false } as const;
 * console.log(publishSize(message, 4)); // 17
 * ```
 */
export function publishSize(message: OutgoingMessage, version: ProtocolVersion): number {
  return encodedLength({
    type: "publish",
    topic: message.topic,
    payload: message.payload,
    qos: message.qos,
    retain: message.retain,
    dup: false,
    packetId: message.qos === 0 ? undefined : 1,
    properties: message.properties,
  }, { protocolVersion: version });
}
