/**
 * Every error this module throws is an {@linkcode MqttError} with a stable
 * `code`, so callers can branch on `err.code` instead of parsing messages.
 *
 * @module
 */
import { CONNACK_RETURN_CODE_NAMES, type PacketTypeName } from "./codec/packet.ts";
// A cycle (reason_codes.ts throws ProtocolError), safe: neither side uses the other at load time.
import { reasonCodeName } from "./codec/reason_codes.ts";

/**
 * Codes of {@linkcode ProtocolError}: malformed or illegal packets, found by
 * the codec on encode or decode, or by the session on a packet that is legal
 * alone but not at this point of the conversation.
 */
export type ProtocolErrorCode =
  | "MALFORMED_REMAINING_LENGTH"
  | "PACKET_TOO_LARGE"
  | "INVALID_PACKET_TYPE"
  | "INVALID_FLAGS"
  | "INVALID_QOS"
  | "INVALID_PACKET_ID"
  | "INVALID_UTF8"
  | "STRING_TOO_LONG"
  | "INVALID_TOPIC"
  | "INVALID_TOPIC_FILTER"
  | "INVALID_CONNECT_FLAGS"
  | "UNSUPPORTED_PROTOCOL"
  | "INVALID_RETURN_CODE"
  | "EMPTY_SUBSCRIPTION"
  | "TRUNCATED_PACKET"
  | "TRAILING_BYTES"
  | "INVALID_CLIENT_ID"
  | "INVALID_KEEPALIVE"
  | "UNEXPECTED_PACKET"
  | "MALFORMED_VARIABLE_BYTE_INTEGER"
  | "PROPERTY_NOT_ALLOWED"
  | "DUPLICATE_PROPERTY"
  | "INVALID_PROPERTY"
  | "INVALID_REASON_CODE"
  | "PROTOCOL_VERSION_MISMATCH"
  | "RECEIVE_MAXIMUM_EXCEEDED"
  | "TOPIC_ALIAS_INVALID"
  | "UNKNOWN_TOPIC_ALIAS";

/** Every stable error code of this module. */
export type MqttErrorCode =
  | ProtocolErrorCode
  | "CONNECTION_REFUSED"
  | "CONNECT_TIMEOUT"
  | "KEEPALIVE_TIMEOUT"
  | "CONNECTION_CLOSED"
  | "INVALID_STATE"
  | "SUBSCRIBE_FAILED"
  | "PUBLISH_REFUSED"
  | "QUEUE_FULL"
  | "ABORTED"
  | "TRANSPORT_ERROR"
  | "INVALID_OPTION"
  | "CLOSE_TIMEOUT"
  | "STORE_ERROR"
  | "STORE_CORRUPT"
  | "PUBLISH_REJECTED"
  | "UNSUBSCRIBE_FAILED"
  | "SERVER_DISCONNECT"
  | "QOS_NOT_SUPPORTED"
  | "RETAIN_NOT_SUPPORTED"
  | "REQUEST_TIMEOUT"
  | "AUTH_FAILED"
  | "MESSAGE_EXPIRED";

/**
 * Base class of every error this module throws.
 *
 * @example
 * ```ts
 * import { MqttError } from "./errors.ts";
 * try {
 *   throw new MqttError("QUEUE_FULL", "offline queue is full");
 * } catch (err) {
 *   if (err instanceof MqttError && err.code === "QUEUE_FULL") console.log("retry later");
 * }
 * ```
 */
export class MqttError extends Error {
  /** Stable, machine-readable error code. */
  readonly code: MqttErrorCode;
  /** Creates an error with a stable code. */
  constructor(code: MqttErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MqttError";
    this.code = code;
  }
}

/**
 * A packet broke a rule of the MQTT specification (on encode, decode, or in
 * the session). `packetType` names the packet when it is known.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "./errors.ts";
 * const err = new ProtocolError("INVALID_QOS", "QoS 3 is reserved", "publish");
 * console.log(err.code, err.packetType);
 * ```
 */
export class ProtocolError extends MqttError {
  /** The offending packet's type, when known. */
  readonly packetType: PacketTypeName | undefined;
  /** Creates a protocol error; `message` should cite the normative id it enforces. */
  constructor(
    code: ProtocolErrorCode,
    message: string,
    packetType?: PacketTypeName,
    options?: ErrorOptions,
  ) {
    super(code, message, options);
    this.name = "ProtocolError";
    this.packetType = packetType;
  }
}

/** MQTT 5.0 details of a refusal: see {@linkcode ConnectionRefusedError}. */
export interface RefusalDetails {
  /** The 5.0 Connect Reason Code (0x80 and above). */
  reasonCode?: number;
  /** The CONNACK's Reason String, if the server gave one. */
  reasonString?: string;
  /** The CONNACK's Server Reference (with 0x9C use another server, 0x9D server moved), if any. */
  serverReference?: string;
}

/** 3.1.1 return codes of the 5.0 reason codes that mean the same (0 when none does). */
const RETURN_CODE_OF_REASON: Record<number, number> = {
  0x84: 1,
  0x85: 2,
  0x88: 3,
  0x89: 3,
  0x86: 4,
  0x87: 5,
};

/**
 * The server refused the connection in CONNACK. Under MQTT 5.0 `reasonCode`
 * and `reasonString` say why, and `returnCode` is the 3.1.1 code meaning the
 * same (0 when there is none). A server that speaks only MQTT 3.1.1 refusing
 * a 5.0 CONNECT gives `reasonCode` 0x84 (unsupported protocol version) and a
 * message saying the broker does not speak MQTT 5.0.
 *
 * @example
 * ```ts
 * import { ConnectionRefusedError } from "./errors.ts";
 * const err = new ConnectionRefusedError(4);
 * console.log(err.code, err.returnCode, err.reason); // CONNECTION_REFUSED 4 bad user name or password
 * const v5 = new ConnectionRefusedError(0, { reasonCode: 0x87, reasonString: "no" });
 * console.log(v5.returnCode, v5.reasonCode, v5.reason); // 5 135 not authorized
 * ```
 */
export class ConnectionRefusedError extends MqttError {
  /** The CONNACK return code (1..5); for MQTT 5.0 the 3.1.1 code meaning the same, or 0. */
  readonly returnCode: number;
  /** Name of the return code or reason code, e.g. "not authorized". */
  readonly reason: string;
  /** MQTT 5.0 Connect Reason Code, when the refusal was a 5.0 CONNACK (or a 3.1.1 one of a 5.0 CONNECT). */
  readonly reasonCode: number | undefined;
  /** MQTT 5.0 Reason String of the CONNACK, if any. */
  readonly reasonString: string | undefined;
  /** MQTT 5.0 Server Reference of the CONNACK (another server to use), if any. */
  readonly serverReference: string | undefined;
  /** Creates the error for a CONNACK return code, or (with `options.reasonCode`) a 5.0 reason code. */
  constructor(returnCode: number, options?: ErrorOptions & RefusalDetails) {
    const reasonCode = options?.reasonCode;
    let reason: string;
    if (reasonCode !== undefined) {
      reason = reasonCodeName(reasonCode, "connack");
      if (returnCode === 0) returnCode = RETURN_CODE_OF_REASON[reasonCode] ?? 0;
    } else {
      reason = (returnCode > 0 && CONNACK_RETURN_CODE_NAMES[returnCode]) ||
        `unknown return code ${returnCode}`;
    }
    const reasonString = options?.reasonString;
    super(
      "CONNECTION_REFUSED",
      `connection refused: ${reason}${reasonString ? ` (${reasonString})` : ""}` +
        (options?.serverReference ? `; server reference: ${options.serverReference}` : ""),
      options,
    );
    this.name = "ConnectionRefusedError";
    this.returnCode = returnCode;
    this.reason = reason;
    this.reasonCode = reasonCode;
    this.reasonString = reasonString;
    this.serverReference = options?.serverReference;
  }
}

/**
 * A SUBSCRIBE was answered with a failure code for a filter: 0x80 in MQTT
 * 3.1.1, a reason code of 0x80 or more in 5.0 (`reasonCode`).
 *
 * @example
 * ```ts
 * import { SubscribeError } from "./errors.ts";
 * const err = new SubscribeError("secret/#", { reasonCode: 0x87 });
 * console.log(err.code, err.filter, err.reasonCode); // SUBSCRIBE_FAILED secret/# 135
 * ```
 */
export class SubscribeError extends MqttError {
  /** The refused topic filter. */
  readonly filter: string;
  /** The SUBACK's code for the filter (0x80 under 3.1.1), when known. */
  readonly reasonCode: number | undefined;
  /** Creates the error for a refused filter. */
  constructor(filter: string, options?: ErrorOptions & { reasonCode?: number }) {
    const rc = options?.reasonCode;
    super(
      "SUBSCRIBE_FAILED",
      `subscription to "${filter}" refused by the server` +
        (rc !== undefined && rc !== 0x80 ? `: ${reasonCodeName(rc, "suback")}` : ""),
      options,
    );
    this.name = "SubscribeError";
    this.filter = filter;
    this.reasonCode = rc;
  }
}

/**
 * MQTT 5.0: the server answered a QoS 1 or 2 PUBLISH with a reason code of
 * 0x80 or more in its PUBACK or PUBREC (e.g. 0x87 not authorized, 0x97 quota
 * exceeded), or a PUBCOMP with 0x92 (packet identifier not found).
 *
 * @example
 * ```ts
 * import { PublishRejectedError } from "./errors.ts";
 * const err = new PublishRejectedError("a/b", 0x87);
 * console.log(err.code, err.reasonCode, err.message); // PUBLISH_REJECTED 135 publish to "a/b" refused by the server: not authorized
 * ```
 */
export class PublishRejectedError extends MqttError {
  /** The topic published to. */
  readonly topic: string;
  /** The acknowledgement's reason code. */
  readonly reasonCode: number;
  /** The acknowledgement's Reason String, if any. */
  readonly reasonString: string | undefined;
  /** Creates the error for a refused publish. */
  constructor(topic: string, reasonCode: number, reasonString?: string, options?: ErrorOptions) {
    super(
      "PUBLISH_REJECTED",
      `publish to "${topic}" refused by the server: ${reasonCodeName(reasonCode, "puback")}` +
        (reasonString ? ` (${reasonString})` : ""),
      options,
    );
    this.name = "PublishRejectedError";
    this.topic = topic;
    this.reasonCode = reasonCode;
    this.reasonString = reasonString;
  }
}

/**
 * MQTT 5.0: the server ended the connection with a DISCONNECT (section
 * 3.14), e.g. 0x8E session taken over, 0x9C use another server, 0x97 quota
 * exceeded. `serverReference` names the server to use instead, when given.
 *
 * @example
 * ```ts
 * import { ServerDisconnectError } from "./errors.ts";
 * const err = new ServerDisconnectError(0x8e);
 * console.log(err.code, err.reasonCode, err.message); // SERVER_DISCONNECT 142 the server disconnected: session taken over
 * ```
 */
export class ServerDisconnectError extends MqttError {
  /** The DISCONNECT's reason code. */
  readonly reasonCode: number;
  /** Its Reason String, if any. */
  readonly reasonString: string | undefined;
  /** Its Server Reference, if any (with 0x9C use another server, 0x9D server moved). */
  readonly serverReference: string | undefined;
  /** Creates the error for a server's DISCONNECT. */
  constructor(
    reasonCode: number,
    details?: { reasonString?: string; serverReference?: string },
    options?: ErrorOptions,
  ) {
    const { reasonString, serverReference } = details ?? {};
    super(
      "SERVER_DISCONNECT",
      `the server disconnected: ${reasonCodeName(reasonCode, "disconnect")}` +
        (reasonString ? ` (${reasonString})` : "") +
        (serverReference ? `; server reference: ${serverReference}` : ""),
      options,
    );
    this.name = "ServerDisconnectError";
    this.reasonCode = reasonCode;
    this.reasonString = reasonString;
    this.serverReference = serverReference;
  }
}
