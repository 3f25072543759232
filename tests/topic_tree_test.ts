import assert from "node:assert/strict";
import { TopicTree } from "../lib/util/topic_tree.ts";
import { topicMatches } from "../lib/util/topic_filter.ts";
import { mulberry32 } from "./fuzz.ts";

/** The filters stored in a tree that match `topic`, sorted. */
function matching(tree: TopicTree<string>, topic: string): string[] {
  const out: string[] = [];
  tree.match(topic, (value, filter) => {
    assert.equal(value, `v:${filter}`);
    out.push(filter);
  });
  return out.sort();
}

/** The topic names stored in a tree that `filter` selects, sorted. */
function selected(tree: TopicTree<string>, filter: string): string[] {
  return [...tree.select(filter)].map(([topic, value]) => {
    assert.equal(value, `v:${topic}`);
    return topic;
  }).sort();
}

function treeOf(keys: string[]): TopicTree<string> {
  const tree = new TopicTree<string>();
  for (const key of keys) tree.set(key, `v:${key}`);
  return tree;
}

// Worked out by hand from section 4.7.
const FILTERS = [
  "sport/tennis/player1/#",
  "sport/#",
  "sport/+",
  "+/+",
  "+",
  "/+",
  "#",
  "+/tennis/#",
  "sport/tennis/+",
  "$SYS/#",
  "$SYS/+",
  "+/monitor/Clients",
  "$SYS/monitor/+",
  "a//b",
  "a/+/b",
];

Deno.test("TopicTree.match: '#' includes the parent level, '+' one level (MQTT 4.7.1.2, 4.7.1.3)", () => {
  const tree = treeOf(FILTERS);
  assert.deepEqual(matching(tree, "sport/tennis/player1"), [
    "#",
    "+/tennis/#",
    "sport/#",
    "sport/tennis/+",
    "sport/tennis/player1/#",
  ]);
  assert.deepEqual(matching(tree, "sport"), ["#", "+", "sport/#"]);
  assert.deepEqual(matching(tree, "sport/"), ["#", "+/+", "sport/#", "sport/+"]);
  assert.deepEqual(matching(tree, "/finance"), ["#", "+/+", "/+"]);
  assert.deepEqual(matching(tree, "a//b"), ["#", "a/+/b", "a//b"]);
  assert.deepEqual(matching(tree, "sport/tennis"), [
    "#",
    "+/+",
    "+/tennis/#",
    "sport/#",
    "sport/+",
  ]);
});

Deno.test("TopicTree.match: wildcard-led filters do not match $-topics (MQTT-4.7.2-1)", () => {
  const tree = treeOf(FILTERS);
  assert.deepEqual(matching(tree, "$SYS/monitor/Clients"), ["$SYS/#", "$SYS/monitor/+"]);
  assert.deepEqual(matching(tree, "$SYS"), ["$SYS/#"]);
  assert.deepEqual(matching(tree, "$SYS/x"), ["$SYS/#", "$SYS/+"]);
  // "$" only counts in the first character of the topic.
  assert.deepEqual(matching(tree, "a/$x"), ["#", "+/+"]);
});

Deno.test("TopicTree.select: the stored topics a filter matches, $-topics excluded from wildcard-led filters", () => {
  const tree = treeOf([
    "sport",
    "sport/tennis",
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
    "sport/",
    "/finance",
    "$SYS/uptime",
    "$SYS",
    "a//b",
  ]);
  assert.deepEqual(selected(tree, "sport/tennis/player1/#"), [
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
  ]);
  assert.deepEqual(selected(tree, "sport/#"), [
    "sport",
    "sport/",
    "sport/tennis",
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
  ]);
  assert.deepEqual(selected(tree, "sport/+"), ["sport/", "sport/tennis"]);
  assert.deepEqual(selected(tree, "+"), ["sport"]);
  assert.deepEqual(selected(tree, "+/+"), ["/finance", "sport/", "sport/tennis"]);
  assert.deepEqual(selected(tree, "#"), [
    "/finance",
    "a//b",
    "sport",
    "sport/",
    "sport/tennis",
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
  ]);
  assert.deepEqual(selected(tree, "$SYS/#"), ["$SYS", "$SYS/uptime"]);
  assert.deepEqual(selected(tree, "$SYS/+"), ["$SYS/uptime"]);
  assert.deepEqual(selected(tree, "a/+/b"), ["a//b"]);
  assert.deepEqual(selected(tree, "sport/tennis"), ["sport/tennis"]);
  assert.deepEqual(selected(tree, "nothing/#"), []);
});

Deno.test("TopicTree: set replaces, delete frees emptied levels, size counts keys", () => {
  const tree = new TopicTree<number>();
  tree.set("a/b/c", 1);
  tree.set("a/b/c", 2);
  tree.set("a", 3);
  assert.equal(tree.size, 2);
  assert.equal(tree.get("a/b/c"), 2);
  assert.equal(tree.get("a/b"), undefined);
  assert.equal(tree.has("a/b"), false);
  assert.equal(tree.delete("a/b"), false, "an inner level without a value is not a key");
  assert.equal(tree.delete("a/b/c"), true);
  assert.equal(tree.delete("a/b/c"), false);
  assert.equal(tree.size, 1);
  assert.deepEqual([...tree.entries()], [["a", 3]]);
  assert.equal(tree.delete("a"), true);
  assert.deepEqual([...tree.entries()], []);
  tree.set("x", 1);
  tree.clear();
  assert.equal(tree.size, 0);
  assert.equal(tree.get("x"), undefined);
});

Deno.test("TopicTree: a topic of 20,000 levels neither overflows the stack nor fails", () => {
  const deep = Array.from({ length: 20_000 }, () => "a").join("/");
  const tree = treeOf(["#", `${deep}/#`, deep]);
  assert.deepEqual(matching(tree, deep), ["#", deep, `${deep}/#`].sort());
  assert.deepEqual(selected(treeOf([deep, "b"]), "a/#"), [deep]);
  assert.equal(tree.delete(deep), true);
});

Deno.test("TopicTree agrees with topicMatches on random filters and topics", () => {
  const random = mulberry32(14);
  const words = ["a", "b", "", "$x", "c"];
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)];
  // Topic names and filters are at least one character long (MQTT-4.7.3-1).
  const topicOf = () =>
    Array.from({ length: 1 + Math.floor(random() * 4) }, () => pick(words)).join("/") || "a";
  const filterOf = () => {
    const levels = Array.from(
      { length: 1 + Math.floor(random() * 4) },
      () => pick([...words, "+", "+"]),
    );
    if (random() < 0.3) levels[levels.length - 1] = "#";
    return levels.join("/") || "a";
  };
  for (let round = 0; round < 200; round++) {
    const filters = [...new Set(Array.from({ length: 20 }, filterOf))];
    const topics = [...new Set(Array.from({ length: 20 }, topicOf))];
    const filterTree = treeOf(filters);
    const topicTree = treeOf(topics);
    for (const topic of topics) {
      assert.deepEqual(
        matching(filterTree, topic),
        filters.filter((f) => topicMatches(f, topic)).sort(),
        `match ${topic}`,
      );
    }
    for (const filter of filters) {
      assert.deepEqual(
        selected(topicTree, filter),
        topics.filter((t) => topicMatches(filter, t)).sort(),
        `select ${filter}`,
      );
    }
    // Removing half keeps the rest findable.
    for (const filter of filters.slice(0, 10)) filterTree.delete(filter);
    for (const topic of topics) {
      assert.deepEqual(
        matching(filterTree, topic),
        filters.slice(10).filter((f) => topicMatches(f, topic)).sort(),
      );
    }
  }
});
