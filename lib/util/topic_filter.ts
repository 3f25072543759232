/**
 * Local matching of topic names against topic filters, with the wildcard rules
 * of MQTT 3.1.1 section 4.7. Syntax checks of filters and names live in the
 * codec; this module assumes both are valid.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";

const SLASH = 0x2f; // "/"
const PLUS = 0x2b; // "+"
const HASH = 0x23; // "#"
const DOLLAR = 0x24; // "$"

/**
 * Whether the topic name `topic` matches the topic filter `filter`.
 *
 * `+` matches exactly one level (possibly empty), `#` matches the parent level
 * and any number of child levels, and a filter starting with a wildcard never
 * matches a topic starting with `$` (MQTT-4.7.2-1). No normalization is done
 * (MQTT-4.7.3-4). Both arguments must already be valid (see the codec's
 * validators); for invalid input the answer is unspecified but never throws.
 *
 * Walks both strings once by char code: no regular expression, no split.
 *
 * @example
 * ```ts
 * import { topicMatches } from "./topic_filter.ts";
 * topicMatches("sport/tennis/+", "sport/tennis/player1"); // true
 * topicMatches("sport/#", "sport"); // true: "#" includes the parent level
 * topicMatches("#", "$SYS/broker/uptime"); // false (MQTT-4.7.2-1)
 * ```
 */
export function topicMatches(filter: string, topic: string): boolean {
  const flen = filter.length;
  const tlen = topic.length;
  if (flen === 0 || tlen === 0) return false; // both are at least one character (MQTT-4.7.3-1)
  const first = filter.charCodeAt(0);
  // MQTT-4.7.2-1: wildcard-led filters never match $-topics.
  if ((first === PLUS || first === HASH) && topic.charCodeAt(0) === DOLLAR) {
    return false;
  }
  let i = 0;
  let j = 0;
  while (i < flen) {
    const c = filter.charCodeAt(i);
    if (c === HASH) return true; // valid filters have "#" only as the whole last level
    if (c === PLUS) {
      while (j < tlen && topic.charCodeAt(j) !== SLASH) j++;
      i++;
      continue;
    }
    if (j === tlen) {
      // The topic ended inside the filter: only "/#" may remain, as "#" includes the parent.
      return c === SLASH && i + 2 === flen && filter.charCodeAt(i + 1) === HASH;
    }
    if (topic.charCodeAt(j) !== c) return false;
    i++;
    j++;
  }
  return j === tlen;
}

/** Prefix of a shared subscription's filter (MQTT 5.0 section 4.8.2; Mosquitto at 3.1.1 too). */
const SHARE_PREFIX = "$share/";

/**
 * The parts of a shared subscription's topic filter `$share/{ShareName}/{filter}`
 * (section 4.8.2), or undefined when `filter` is not one. The ShareName is at
 * least one character without "/", "+" or "#", and a "/" and a topic filter
 * follow it (MQTT-4.8.2-1, MQTT-4.8.2-2): a filter that starts with
 * `$share/` without that shape throws `ProtocolError("INVALID_TOPIC_FILTER")`.
 *
 * @example
 * ```ts
 * import { parseSharedFilter } from "./topic_filter.ts";
 * console.log(parseSharedFilter("$share/workers/jobs/#")); // { shareName: "workers", filter: "jobs/#" }
 * console.log(parseSharedFilter("jobs/#")); // undefined
 * ```
 */
export function parseSharedFilter(
  filter: string,
): { shareName: string; filter: string } | undefined {
  if (!filter.startsWith(SHARE_PREFIX)) return undefined;
  const slash = filter.indexOf("/", SHARE_PREFIX.length);
  const shareName = filter.slice(SHARE_PREFIX.length, slash === -1 ? undefined : slash);
  const rest = slash === -1 ? "" : filter.slice(slash + 1);
  if (shareName.length === 0 || /[+#]/.test(shareName) || slash === -1 || rest.length === 0) {
    throw new ProtocolError(
      "INVALID_TOPIC_FILTER",
      `"${filter}" is not a shared subscription filter $share/{ShareName}/{filter}: the ` +
        `ShareName needs at least one character without "/", "+" or "#", then "/" and a ` +
        "topic filter (MQTT-4.8.2-1, MQTT-4.8.2-2)",
    );
  }
  return { shareName, filter: rest };
}

/**
 * The filter that local matching uses for a subscription's topic filter: the
 * filter itself, or for a shared subscription the part after
 * `$share/{ShareName}/` (messages carry the topic they were published to).
 *
 * @example
 * ```ts
 * import { localFilter } from "./topic_filter.ts";
 * console.log(localFilter("$share/g/sensors/+"), localFilter("sensors/+")); // sensors/+ sensors/+
 * ```
 */
export function localFilter(filter: string): string {
  return parseSharedFilter(filter)?.filter ?? filter;
}
