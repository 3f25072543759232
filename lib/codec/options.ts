/**
 * Options shared by the encoder and the decoder.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import type { ProtocolVersion } from "./packet.ts";
import { MAX_PACKET_SIZE } from "./remaining_length.ts";

/** Options of the codec functions. */
export interface CodecOptions {
  /**
   * Protocol level of the connection: 4 is MQTT 3.1.1, 5 is MQTT 5.0
   * (properties, reason codes, the AUTH packet). A CONNECT carries its own
   * level, which the decoder reads from the packet: this option is then the
   * highest level accepted. Default 4.
   */
  protocolVersion?: ProtocolVersion;
  /**
   * Largest whole packet (fixed header included) accepted on decode and
   * produced on encode, in bytes. Default 268,435,460, the protocol maximum.
   */
  maxPacketSize?: number;
}

/** Default protocol level of the codec: 4, MQTT 3.1.1. */
export const DEFAULT_PROTOCOL_VERSION: ProtocolVersion = 4;

export { MAX_PACKET_SIZE };

/**
 * Returns the protocol level of `options`, refusing levels this codec does
 * not speak (only 4, MQTT 3.1.1, and 5, MQTT 5.0) with `UNSUPPORTED_PROTOCOL`.
 *
 * @example
 * ```ts
 * import { protocolVersionOf } from "./options.ts";
 * console.log(protocolVersionOf(undefined)); // 4
 * ```
 */
export function protocolVersionOf(options: CodecOptions | undefined): ProtocolVersion {
  const version = options?.protocolVersion ?? DEFAULT_PROTOCOL_VERSION;
  if (version !== 4 && version !== 5) {
    throw new ProtocolError(
      "UNSUPPORTED_PROTOCOL",
      `protocol level ${version} is not supported by this codec: 4 (MQTT 3.1.1) or 5 ` +
        `(MQTT 5.0) (MQTT-3.1.2-2)`,
    );
  }
  return version;
}
