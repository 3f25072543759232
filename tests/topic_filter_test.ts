import assert from "node:assert/strict";
import { topicMatches } from "../lib/util/topic_filter.ts";

// [filter, topic, expected], worked out by hand from section 4.7.
const TABLE: [string, string, boolean][] = [
  // 4.7.1.2: "sport/tennis/player1/#" receives the parent and any children.
  ["sport/tennis/player1/#", "sport/tennis/player1", true],
  ["sport/tennis/player1/#", "sport/tennis/player1/ranking", true],
  ["sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true],
  ["sport/tennis/player1/#", "sport/tennis/player2", false],
  ["sport/tennis/player1/#", "sport/tennis/player10", false],
  ["sport/tennis/player1/#", "sport/tennis", false],
  // "sport/#" also matches the singular "sport"; "#" receives everything.
  ["sport/#", "sport", true],
  ["sport/#", "sport/", true],
  ["sport/#", "sports", false],
  ["sport/#", "spor", false],
  ["#", "sport", true],
  ["#", "sport/tennis/player1", true],
  ["#", "/", true],
  ["#", "/finance", true],
  ["sport/tennis/#", "sport/tennis", true],
  ["sport/tennis/#", "sport/tennis/x/y/z", true],
  // 4.7.1.3: "+" matches exactly one level.
  ["sport/tennis/+", "sport/tennis/player1", true],
  ["sport/tennis/+", "sport/tennis/player2", true],
  ["sport/tennis/+", "sport/tennis/player1/ranking", false],
  ["sport/+", "sport", false],
  ["sport/+", "sport/", true],
  ["+", "sport", true],
  ["+", "sport/tennis", false],
  ["+/tennis/#", "sport/tennis", true],
  ["+/tennis/#", "sport/tennis/player1", true],
  ["+/tennis/#", "sport/golf", false],
  ["+/+", "a/b", true],
  ["+/+", "a/b/c", false],
  ["+/+", "a", false],
  // Empty levels: "/finance" matches "+/+" and "/+", but not "+".
  ["+/+", "/finance", true],
  ["/+", "/finance", true],
  ["+", "/finance", false],
  ["/finance", "/finance", true],
  ["/finance", "finance", false],
  ["finance", "/finance", false],
  ["a//b", "a//b", true],
  ["a//b", "a/b", false],
  ["a/+/b", "a//b", true],
  ["a/+/b", "a/x/b", true],
  ["a/+/+", "a//", true],
  ["+/+/+", "//", true],
  // "+" at the ends.
  ["+/b", "a/b", true],
  ["+/b", "/b", true],
  ["+/b", "a/c", false],
  ["a/+", "a/b", true],
  ["a/+", "a/b/", false],
  ["a/+/#", "a/b", true],
  ["a/+/#", "a", false],
  ["+/#", "a", true],
  // Literal comparison: case-sensitive, no normalization (MQTT-4.7.3-4).
  ["Sport", "sport", false],
  ["sport", "sport", true],
  ["sport", "sport/", false],
  ["sport/", "sport", false],
  ["a/b", "a/bc", false],
  ["a/bc", "a/b", false],
  ["ÄÖ/+", "ÄÖ/ü", true],
  ["ÄÖ/+", "ÄÖ/😀", true],
  ["😀/#", "😀", true],
];

for (const [filter, topic, expected] of TABLE) {
  Deno.test(`topicMatches("${filter}", "${topic}") is ${expected}`, () => {
    assert.equal(topicMatches(filter, topic), expected);
  });
}

Deno.test("MQTT-4.7.3-1: an empty topic or filter matches nothing", () => {
  assert.equal(topicMatches("+", ""), false);
  assert.equal(topicMatches("#", ""), false);
  assert.equal(topicMatches("", ""), false);
  assert.equal(topicMatches("", "a"), false);
});

Deno.test("MQTT-4.7.2-1: filters starting with a wildcard do not match $-topics", () => {
  assert.equal(topicMatches("#", "$SYS/broker/uptime"), false);
  assert.equal(topicMatches("#", "$SYS"), false);
  assert.equal(topicMatches("+/monitor/Clients", "$SYS/monitor/Clients"), false);
  assert.equal(topicMatches("+", "$SYS"), false);
  assert.equal(topicMatches("+/#", "$SYS/x"), false);
  // ...but filters naming the $ level do.
  assert.equal(topicMatches("$SYS/#", "$SYS/broker/uptime"), true);
  assert.equal(topicMatches("$SYS/#", "$SYS"), true);
  assert.equal(topicMatches("$SYS/monitor/+", "$SYS/monitor/Clients"), true);
  assert.equal(topicMatches("$SYS/+/Clients", "$SYS/monitor/Clients"), true);
  assert.equal(topicMatches("$SYS", "$SYS"), true);
  // A $ later in the topic is an ordinary character.
  assert.equal(topicMatches("#", "a/$SYS"), true);
  assert.equal(topicMatches("+/+", "a/$b"), true);
});
