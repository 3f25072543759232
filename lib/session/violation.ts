/**
 * The MQTT 5.0 reason a client gives in the DISCONNECT it may send before
 * closing over an incoming packet it refuses (section 4.13): the server then
 * learns why the connection ended instead of seeing it drop.
 *
 * @module
 */
import type { DisconnectReasonCode } from "../codec/reason_codes.ts";
import type { MqttError } from "../errors.ts";

/** DISCONNECT 0x81: the packet could not be parsed (section 4.13.1). */
export const MALFORMED_PACKET = 0x81;
/** DISCONNECT 0x82: the packet parsed but breaks a rule of the protocol (section 4.13.1). */
export const PROTOCOL_ERROR = 0x82;
/** DISCONNECT 0x95: the packet is larger than our Maximum Packet Size (MQTT-3.1.2-25). */
export const PACKET_TOO_LARGE = 0x95;

/**
 * Errors the specification calls a Protocol Error rather than a Malformed
 * Packet: the bytes parse, the content breaks a rule (a property given twice,
 * section 2.2.2.2; a packet a server never sends).
 */
const PROTOCOL_ERRORS: ReadonlySet<string> = new Set([
  "DUPLICATE_PROPERTY",
  "UNEXPECTED_PACKET",
  "RECEIVE_MAXIMUM_EXCEEDED",
]);

/**
 * The DISCONNECT reason code for closing over `error`, an incoming packet
 * the decoder or the session refused: 0x95 for a packet above our Maximum
 * Packet Size, 0x82 for a protocol error, 0x81 for anything that did not
 * parse.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "../errors.ts";
 * import { disconnectReasonFor } from "./violation.ts";
 * const error = new ProtocolError("PACKET_TOO_LARGE", "too large", "publish");
 * console.log(disconnectReasonFor(error).toString(16)); // 95
 * ```
 */
export function disconnectReasonFor(error: MqttError): DisconnectReasonCode {
  if (error.code === "PACKET_TOO_LARGE") return PACKET_TOO_LARGE;
  return PROTOCOL_ERRORS.has(error.code) ? PROTOCOL_ERROR : MALFORMED_PACKET;
}
