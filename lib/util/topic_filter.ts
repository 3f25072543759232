/**
 * Local matching of topic names against topic filters, with the wildcard rules
 * of MQTT 3.1.1 section 4.7. Syntax checks of filters and names live in the
 * codec; this module assumes both are valid.
 *
 * @module
 */

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
