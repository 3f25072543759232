/**
 * UTF-8 encoded strings of MQTT (section 1.5.3): a 2-byte big-endian length
 * then at most 65,535 bytes of well-formed UTF-8 without U+0000.
 *
 * Encoding writes the bytes by hand (no `TextEncoder`, no temporary arrays);
 * decoding turns all-ASCII bytes into a string directly and hands anything
 * else to a fatal `TextDecoder`.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import type { PacketTypeName } from "./packet.ts";

/** Largest byte length of an MQTT string or binary field (2-byte length prefix). */
export const MAX_STRING_BYTES = 65_535;

// ignoreBOM keeps a leading U+FEFF: it must not be stripped (MQTT-1.5.3-3).
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// Reused argument arrays for String.fromCharCode.apply, one per length, so
// decoding a short ASCII string allocates nothing but the string itself.
const POOLED_MAX = 64;
const pooled: number[][] = [];
for (let n = 0; n <= POOLED_MAX; n++) pooled.push(new Array<number>(n).fill(0));

/**
 * Validates `s` as an MQTT string and returns its UTF-8 byte length.
 *
 * Throws `INVALID_UTF8` for U+0000 (MQTT-1.5.3-2) or a lone surrogate, which
 * has no UTF-8 encoding (MQTT-1.5.3-1), and `STRING_TOO_LONG` beyond 65,535
 * bytes.
 *
 * @example
 * ```ts
 * import { utf8Length } from "./utf8.ts";
 * console.log(utf8Length("añb")); // 4
 * ```
 */
export function utf8Length(s: string, packetType?: PacketTypeName): number {
  const n = s.length;
  let bytes = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      // MQTT-1.5.3-2: U+0000 must not appear in a string.
      if (c === 0) {
        throw new ProtocolError(
          "INVALID_UTF8",
          "string contains U+0000 (MQTT-1.5.3-2)",
          packetType,
        );
      }
    } else if (c < 0x800) {
      bytes += 1;
    } else if (c < 0xd800 || c > 0xdfff) {
      bytes += 2;
    } else {
      // MQTT-1.5.3-1: surrogates only as a high+low pair (one 4-byte code point).
      const d = i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (c > 0xdbff || d < 0xdc00 || d > 0xdfff) {
        throw new ProtocolError(
          "INVALID_UTF8",
          `string contains a lone surrogate at index ${i} (MQTT-1.5.3-1)`,
          packetType,
        );
      }
      i++;
      bytes += 2; // 4 bytes for 2 UTF-16 units
    }
  }
  checkStringBytes(bytes, packetType);
  return bytes;
}

/**
 * Throws `STRING_TOO_LONG` when `bytes` exceeds the 65,535 bytes a 2-byte
 * length prefix can describe (section 1.5.3, MQTT-4.7.3-3 for topics).
 *
 * @example
 * ```ts
 * import { checkStringBytes } from "./utf8.ts";
 * checkStringBytes(65_535); // fine
 * ```
 */
export function checkStringBytes(bytes: number, packetType?: PacketTypeName): void {
  if (bytes > MAX_STRING_BYTES) {
    throw new ProtocolError(
      "STRING_TOO_LONG",
      `string of ${bytes} bytes exceeds 65535 (section 1.5.3)`,
      packetType,
    );
  }
}

/**
 * Writes `s` with its 2-byte length prefix at `pos`; returns the position
 * after it. `s` must have passed {@linkcode utf8Length} (no validation here).
 *
 * @example
 * ```ts
 * import { writeString } from "./utf8.ts";
 * const buf = new Uint8Array(6);
 * console.log(writeString("MQTT", buf, 0), buf); // 6 [0, 4, 77, 81, 84, 84]
 * ```
 */
export function writeString(s: string, buf: Uint8Array, pos: number): number {
  const n = s.length;
  let p = pos + 2;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      buf[p++] = c;
    } else if (c < 0x800) {
      buf[p++] = 0xc0 | (c >> 6);
      buf[p++] = 0x80 | (c & 0x3f);
    } else if (c < 0xd800 || c > 0xdfff) {
      buf[p++] = 0xe0 | (c >> 12);
      buf[p++] = 0x80 | ((c >> 6) & 0x3f);
      buf[p++] = 0x80 | (c & 0x3f);
    } else {
      const cp = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      buf[p++] = 0xf0 | (cp >> 18);
      buf[p++] = 0x80 | ((cp >> 12) & 0x3f);
      buf[p++] = 0x80 | ((cp >> 6) & 0x3f);
      buf[p++] = 0x80 | (cp & 0x3f);
    }
  }
  const len = p - pos - 2;
  buf[pos] = len >> 8;
  buf[pos + 1] = len & 0xff;
  return p;
}

/**
 * Writes binary data with its 2-byte length prefix at `pos` (will message,
 * password); returns the position after it. Length must be <= 65,535.
 *
 * @example
 * ```ts
 * import { writeBinary } from "./utf8.ts";
 * const buf = new Uint8Array(4);
 * console.log(writeBinary(new Uint8Array([1, 2]), buf, 0)); // 4
 * ```
 */
export function writeBinary(data: Uint8Array, buf: Uint8Array, pos: number): number {
  const len = data.length;
  buf[pos] = len >> 8;
  buf[pos + 1] = len & 0xff;
  buf.set(data, pos + 2);
  return pos + 2 + len;
}

/**
 * Turns bytes known to be below 0x80 into a string without a decoder call.
 *
 * @example
 * ```ts
 * import { asciiString } from "./utf8.ts";
 * console.log(asciiString(new Uint8Array([0x61, 0x2f, 0x62]), 0, 3)); // a/b
 * ```
 */
export function asciiString(buf: Uint8Array, start: number, end: number): string {
  const n = end - start;
  // Long strings go to the native decoder (ASCII is valid UTF-8): apply() with
  // tens of thousands of arguments would be slow and risks the stack limit.
  if (n > POOLED_MAX) return decoder.decode(buf.subarray(start, end));
  const args = pooled[n];
  for (let i = 0; i < n; i++) args[i] = buf[start + i];
  return String.fromCharCode.apply(null, args);
}

/**
 * Decodes the string bytes `buf[start..end)` (without their length prefix).
 *
 * Throws `INVALID_UTF8` for a 0x00 byte (U+0000, MQTT-1.5.3-2) or ill-formed
 * UTF-8 such as overlong forms or encoded surrogates (MQTT-1.5.3-1). A BOM
 * is kept, not stripped (MQTT-1.5.3-3).
 *
 * @example
 * ```ts
 * import { readString } from "./utf8.ts";
 * console.log(readString(new Uint8Array([0x61, 0xc3, 0xb1]), 0, 3)); // añ
 * ```
 */
export function readString(
  buf: Uint8Array,
  start: number,
  end: number,
  packetType?: PacketTypeName,
): string {
  let high = 0;
  for (let i = start; i < end; i++) {
    const c = buf[i];
    // MQTT-1.5.3-2: in well-formed UTF-8 a 0x00 byte can only be U+0000.
    if (c === 0) {
      throw new ProtocolError("INVALID_UTF8", "string contains U+0000 (MQTT-1.5.3-2)", packetType);
    }
    high |= c;
  }
  return high < 0x80 ? asciiString(buf, start, end) : decodeUtf8(buf, start, end, packetType);
}

/**
 * Decodes bytes that are not all ASCII with a fatal decoder, turning its
 * TypeError into an `INVALID_UTF8` {@linkcode ProtocolError} (MQTT-1.5.3-1).
 *
 * @example
 * ```ts
 * import { decodeUtf8 } from "./utf8.ts";
 * console.log(decodeUtf8(new Uint8Array([0xe2, 0x82, 0xac]), 0, 3)); // €
 * ```
 */
export function decodeUtf8(
  buf: Uint8Array,
  start: number,
  end: number,
  packetType?: PacketTypeName,
): string {
  try {
    return decoder.decode(buf.subarray(start, end));
  } catch {
    throw new ProtocolError(
      "INVALID_UTF8",
      "string is not well-formed UTF-8 (MQTT-1.5.3-1)",
      packetType,
    );
  }
}
