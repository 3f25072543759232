/**
 * Topic names (what a PUBLISH is sent to) and topic filters (what a
 * SUBSCRIBE asks for), section 4.7.
 *
 * The client calls {@linkcode validateTopicName} and
 * {@linkcode validateTopicFilter} on user input; the codec uses the same
 * functions on encode and decode, so each rule lives here only.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import type { PacketTypeName } from "./packet.ts";
import { asciiString, checkStringBytes, decodeUtf8, utf8Length } from "./utf8.ts";

const HASH = 0x23; // '#'
const PLUS = 0x2b; // '+'
const SLASH = 0x2f; // '/'

/**
 * Throws unless `topic` is a legal topic name: at least one character
 * (MQTT-4.7.3-1), no `+` or `#` (MQTT-3.3.2-2, MQTT-4.7.1-1), and a valid MQTT
 * string (no U+0000, no lone surrogate, at most 65,535 UTF-8 bytes:
 * MQTT-1.5.3-1/-2, MQTT-4.7.3-2/-3).
 *
 * Codes: `INVALID_TOPIC`, or `INVALID_UTF8` / `STRING_TOO_LONG`.
 *
 * @example
 * ```ts
 * import { validateTopicName } from "./topic.ts";
 * validateTopicName("sensors/kitchen/temp"); // fine
 * try {
 *   validateTopicName("sensors/+/temp");
 * } catch (err) {
 *   console.log((err as { code: string }).code); // INVALID_TOPIC
 * }
 * ```
 */
export function validateTopicName(topic: string): void {
  topicNameLength(topic, undefined);
}

/**
 * Validates a topic name like {@linkcode validateTopicName} and returns its
 * UTF-8 byte length, in one pass for ASCII names (the encoder's hot path).
 *
 * @example
 * ```ts
 * import { topicNameLength } from "./topic.ts";
 * console.log(topicNameLength("a/b", "publish")); // 3
 * ```
 */
export function topicNameLength(topic: string, packetType: PacketTypeName | undefined): number {
  // A publish's topic is checked by the client's publish() and again by the
  // encoder, and a publisher mostly repeats its last topic: the last valid name
  // is remembered (validity depends on the string alone), so each publish
  // validates its topic once. The same string is found by identity at once.
  if (topic === lastValidName) return lastValidLength;
  const length = checkTopicName(topic, packetType);
  lastValidName = topic;
  lastValidLength = length;
  return length;
}

let lastValidName: string | undefined = undefined;
let lastValidLength = 0;

function checkTopicName(topic: string, packetType: PacketTypeName | undefined): number {
  // From plain JavaScript anything may arrive here; only a string is a topic name.
  if (typeof topic !== "string") throw notAString("topic name", "INVALID_TOPIC", packetType);
  const n = topic.length;
  // MQTT-4.7.3-1: at least one character.
  if (n === 0) {
    throw new ProtocolError("INVALID_TOPIC", "topic name is empty (MQTT-4.7.3-1)", packetType);
  }
  for (let i = 0; i < n; i++) {
    const c = topic.charCodeAt(i);
    // MQTT-3.3.2-2 / MQTT-4.7.1-1: no wildcards in a topic name.
    if (c === HASH || c === PLUS) throw wildcardInName(packetType);
    if (c === 0 || c >= 0x80) {
      if (topic.includes("#", i) || topic.includes("+", i)) throw wildcardInName(packetType);
      return utf8Length(topic, packetType);
    }
  }
  checkStringBytes(n, packetType);
  return n;
}

function notAString(
  what: string,
  code: "INVALID_TOPIC" | "INVALID_TOPIC_FILTER",
  packetType: PacketTypeName | undefined,
): ProtocolError {
  return new ProtocolError(code, `a ${what} must be a string (section 4.7)`, packetType);
}

function wildcardInName(packetType: PacketTypeName | undefined): ProtocolError {
  return new ProtocolError(
    "INVALID_TOPIC",
    "topic name contains a wildcard character (MQTT-3.3.2-2, MQTT-4.7.1-1)",
    packetType,
  );
}

/**
 * Throws unless `filter` is a legal topic filter: at least one character
 * (MQTT-4.7.3-1), `#` only alone or after `/` and only as the last character
 * (MQTT-4.7.1-2), `+` only as a whole level (MQTT-4.7.1-3), and a valid MQTT
 * string (MQTT-1.5.3-1/-2, MQTT-4.7.3-2/-3).
 *
 * Codes: `INVALID_TOPIC_FILTER`, or `INVALID_UTF8` / `STRING_TOO_LONG`.
 *
 * @example
 * ```ts
 * import { validateTopicFilter } from "./topic.ts";
 * validateTopicFilter("sensors/+/temp"); // fine
 * validateTopicFilter("sensors/#"); // fine
 * try {
 *   validateTopicFilter("sensors/te#");
 * } catch (err) {
 *   console.log((err as { code: string }).code); // INVALID_TOPIC_FILTER
 * }
 * ```
 */
export function validateTopicFilter(filter: string): void {
  topicFilterLength(filter, undefined);
}

/**
 * Validates a topic filter like {@linkcode validateTopicFilter} and returns
 * its UTF-8 byte length.
 *
 * @example
 * ```ts
 * import { topicFilterLength } from "./topic.ts";
 * console.log(topicFilterLength("a/+/#", "subscribe")); // 5
 * ```
 */
export function topicFilterLength(filter: string, packetType: PacketTypeName | undefined): number {
  if (typeof filter !== "string") {
    throw notAString("topic filter", "INVALID_TOPIC_FILTER", packetType);
  }
  const n = filter.length;
  // MQTT-4.7.3-1: at least one character.
  if (n === 0) {
    throw new ProtocolError(
      "INVALID_TOPIC_FILTER",
      "topic filter is empty (MQTT-4.7.3-1)",
      packetType,
    );
  }
  let ascii = true;
  for (let i = 0; i < n; i++) {
    const c = filter.charCodeAt(i);
    if (c === HASH) {
      // MQTT-4.7.1-2: '#' alone or after '/', and last.
      if (i !== n - 1 || (i > 0 && filter.charCodeAt(i - 1) !== SLASH)) {
        throw new ProtocolError(
          "INVALID_TOPIC_FILTER",
          `'#' must be the last character, alone or after '/', in "${filter}" (MQTT-4.7.1-2)`,
          packetType,
        );
      }
    } else if (c === PLUS) {
      // MQTT-4.7.1-3: '+' occupies a whole level.
      if (
        (i > 0 && filter.charCodeAt(i - 1) !== SLASH) ||
        (i < n - 1 && filter.charCodeAt(i + 1) !== SLASH)
      ) {
        throw new ProtocolError(
          "INVALID_TOPIC_FILTER",
          `'+' must occupy a whole level in "${filter}" (MQTT-4.7.1-3)`,
          packetType,
        );
      }
    } else if (c === 0 || c >= 0x80) {
      ascii = false;
    }
  }
  if (!ascii) return utf8Length(filter, packetType);
  checkStringBytes(n, packetType);
  return n;
}

// Interning of decoded ASCII topic names. Topics repeat a lot (a device
// publishes to a handful), so a decoded PUBLISH usually finds its topic here
// by comparing bytes and allocates no string. Direct-mapped: a colliding
// topic simply replaces the slot.
const CACHE_SLOTS = 512; // power of two
const CACHE_MAX_BYTES = 64;
const cacheBytes = new Uint8Array(CACHE_SLOTS * CACHE_MAX_BYTES);
const cacheLengths = new Int32Array(CACHE_SLOTS).fill(-1);
const cacheStrings: string[] = new Array<string>(CACHE_SLOTS).fill("");

/**
 * Decodes and validates the topic name bytes `buf[start..end)` (without the
 * length prefix) of a PUBLISH or a will: non-empty (MQTT-4.7.3-1), no
 * wildcard (MQTT-3.3.2-2), no U+0000 (MQTT-1.5.3-2, MQTT-4.7.3-2), well-formed
 * UTF-8 (MQTT-1.5.3-1). Validation, hashing and the ASCII test share one loop.
 *
 * @example
 * ```ts
 * import { decodeTopicName } from "./topic.ts";
 * console.log(decodeTopicName(new TextEncoder().encode("a/b"), 0, 3, "publish")); // a/b
 * ```
 */
export function decodeTopicName(
  buf: Uint8Array,
  start: number,
  end: number,
  packetType: PacketTypeName,
): string {
  const n = end - start;
  if (n === 0) {
    throw new ProtocolError("INVALID_TOPIC", "topic name is empty (MQTT-4.7.3-1)", packetType);
  }
  let high = 0;
  let hash = 0x811c9dc5 | 0; // FNV-1a
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c === 0) {
      throw new ProtocolError(
        "INVALID_UTF8",
        "topic name contains U+0000 (MQTT-1.5.3-2, MQTT-4.7.3-2)",
        packetType,
      );
    }
    // Multi-byte UTF-8 never contains bytes below 0x80, so this test is exact.
    if (c === HASH || c === PLUS) throw wildcardInName(packetType);
    high |= c;
    hash = Math.imul(hash ^ c, 0x01000193);
  }
  if (high >= 0x80) return decodeUtf8(buf, start, end, packetType);
  if (n > CACHE_MAX_BYTES) return asciiString(buf, start, end);
  const slot = (hash >>> 0) & (CACHE_SLOTS - 1);
  const base = slot * CACHE_MAX_BYTES;
  if (cacheLengths[slot] === n) {
    let i = 0;
    while (i < n && cacheBytes[base + i] === buf[start + i]) i++;
    if (i === n) return cacheStrings[slot];
  }
  const topic = asciiString(buf, start, end);
  for (let i = 0; i < n; i++) cacheBytes[base + i] = buf[start + i];
  cacheLengths[slot] = n;
  cacheStrings[slot] = topic;
  return topic;
}
