/**
 * Every error this module throws is an {@linkcode MqttError} with a stable
 * `code`, so callers can branch on `err.code` instead of parsing messages.
 *
 * @module
 */
import { CONNACK_RETURN_CODE_NAMES, type PacketTypeName } from "./codec/packet.ts";

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
  | "PROTOCOL_VERSION_MISMATCH";

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
  | "STORE_CORRUPT";

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

/**
 * The server refused the connection in CONNACK.
 *
 * @example
 * ```ts
 * import { ConnectionRefusedError } from "./errors.ts";
 * const err = new ConnectionRefusedError(4);
 * console.log(err.code, err.returnCode, err.reason); // CONNECTION_REFUSED 4 bad user name or password
 * ```
 */
export class ConnectionRefusedError extends MqttError {
  /** The CONNACK return code (1..5). */
  readonly returnCode: number;
  /** Name of the return code, e.g. "not authorized". */
  readonly reason: string;
  /** Creates the error for a CONNACK return code. */
  constructor(returnCode: number, options?: ErrorOptions) {
    const reason = (returnCode > 0 && CONNACK_RETURN_CODE_NAMES[returnCode]) ||
      `unknown return code ${returnCode}`;
    super("CONNECTION_REFUSED", `connection refused: ${reason}`, options);
    this.name = "ConnectionRefusedError";
    this.returnCode = returnCode;
    this.reason = reason;
  }
}

/**
 * A SUBSCRIBE was answered with return code 0x80 (failure) for a filter.
 *
 * @example
 * ```ts
 * import { SubscribeError } from "./errors.ts";
 * const err = new SubscribeError("secret/#");
 * console.log(err.code, err.filter); // SUBSCRIBE_FAILED secret/#
 * ```
 */
export class SubscribeError extends MqttError {
  /** The refused topic filter. */
  readonly filter: string;
  /** Creates the error for a refused filter. */
  constructor(filter: string, options?: ErrorOptions) {
    super("SUBSCRIBE_FAILED", `subscription to "${filter}" refused by the server`, options);
    this.name = "SubscribeError";
    this.filter = filter;
  }
}
