/**
 * The Remaining Length field of the fixed header: the spec's variable byte
 * integer of 1 to 4 bytes, 7 bits per byte, least significant group first
 * (section 2.2.3).
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import type { PacketTypeName } from "./packet.ts";

/** Largest value the 4-byte Remaining Length field can carry (section 2.2.3, Table 2.4). */
export const MAX_REMAINING_LENGTH = 268_435_455;

/**
 * Largest possible whole packet: one type byte, four length bytes and the
 * largest remaining length. The default `maxPacketSize` of the codec.
 */
export const MAX_PACKET_SIZE = 268_435_460;

/**
 * Number of bytes the Remaining Length field takes for `length` (1 to 4).
 *
 * @example
 * ```ts
 * import { remainingLengthSize } from "./remaining_length.ts";
 * console.log(remainingLengthSize(127), remainingLengthSize(128)); // 1 2
 * ```
 */
export function remainingLengthSize(length: number): number {
  return length < 0x80 ? 1 : length < 0x4000 ? 2 : length < 0x20_0000 ? 3 : 4;
}

/**
 * Writes `length` as a variable byte integer at `pos` and returns the
 * position after it. `length` must be within 0..{@linkcode MAX_REMAINING_LENGTH}.
 *
 * @example
 * ```ts
 * import { writeRemainingLength } from "./remaining_length.ts";
 * const buf = new Uint8Array(4);
 * const end = writeRemainingLength(buf, 0, 321); // buf starts 0xc1 0x02
 * console.log(end); // 2
 * ```
 */
export function writeRemainingLength(buf: Uint8Array, pos: number, length: number): number {
  while (length >= 0x80) {
    buf[pos++] = (length & 0x7f) | 0x80;
    length >>>= 7;
  }
  buf[pos++] = length;
  return pos;
}

/**
 * Reads the Remaining Length field that starts at `pos` (the byte after the
 * packet type) without reading at or past `end`.
 *
 * Returns -1 when the field is not complete yet, otherwise
 * `value * 4 + (fieldBytes - 1)` packed into one number so the hot path
 * allocates nothing: `value = r >>> 2`, `fieldBytes = (r & 3) + 1`.
 *
 * Throws a `MALFORMED_REMAINING_LENGTH` {@linkcode ProtocolError} as soon as
 * the fourth byte still has its continuation bit set.
 *
 * @example
 * ```ts
 * import { readRemainingLength } from "./remaining_length.ts";
 * const r = readRemainingLength(new Uint8Array([0x80, 0x01]), 0, 2);
 * console.log(r >>> 2, (r & 3) + 1); // 128 2
 * ```
 */
export function readRemainingLength(
  buf: Uint8Array,
  pos: number,
  end: number,
  packetType?: PacketTypeName,
): number {
  let value = 0;
  for (let i = 0, shift = 0; i < 4; i++, shift += 7) {
    if (pos + i >= end) return -1;
    const byte = buf[pos + i];
    value |= (byte & 0x7f) << shift;
    if (byte < 0x80) return value * 4 + i;
  }
  // MQTT-2.2.3 (section 2.2.3): at most four bytes, so the fourth must end the field.
  throw new ProtocolError(
    "MALFORMED_REMAINING_LENGTH",
    "remaining length longer than 4 bytes (section 2.2.3)",
    packetType,
  );
}
