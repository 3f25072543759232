import assert from "node:assert/strict";
import { SubscriptionSet } from "../lib/client/subscription_set.ts";
import { createSubscription, type Subscription } from "../lib/client/subscription.ts";
import { topicMatches } from "../lib/util/topic_filter.ts";

function sub(...filters: string[]): Subscription {
  return createSubscription(filters, filters.map(() => 0), {
    bufferSize: 10,
    unsubscribe: () => Promise.resolve(),
  });
}

Deno.test("SubscriptionSet: match finds what a scan with Subscription.matches finds, in insertion order", () => {
  const filters = [
    "a/b",
    "a/+",
    "a/#",
    "#",
    "+/b",
    "+/+",
    "a/b/c",
    "+",
    "$SYS/#",
    "$SYS/+/x",
    "a//b",
    "+//+",
    "/a",
    "/#",
    "$share/g/a/+",
    "$share/h/#",
  ];
  const set = new SubscriptionSet();
  const all: Subscription[] = [];
  // One subscription per filter, and some holding several (overlapping) filters.
  for (const f of filters) all.push(sub(f));
  all.push(sub("a/b", "a/+", "#"), sub("x/y", "$SYS/a/x"));
  for (const s of all) set.add(s);
  const topics = [
    "a",
    "a/b",
    "a/c",
    "a/b/c",
    "b",
    "x/y",
    "$SYS/a/x",
    "$SYS",
    "a//b",
    "/a",
    "/",
    "a/",
  ];
  for (const topic of topics) {
    const scan = [...set].filter((s) => s.matches(topic));
    assert.deepEqual(set.match(topic), scan, topic);
  }
  // MQTT-4.7.2-1: wildcard-led filters do not match $-topics.
  assert.equal(set.match("$SYS/a/x").some((s) => s.filters[0] === "#"), false);
});

Deno.test("SubscriptionSet: delete and clear remove subscriptions from matching", () => {
  for (const filler of [0, 20]) {
    const set = new SubscriptionSet();
    // With 20 more, matching walks the tree rather than scanning.
    for (let i = 0; i < filler; i++) set.add(sub(`filler/${i}`));
    const a = sub("a/+");
    const b = sub("a/+", "b");
    set.add(a);
    set.add(b);
    set.add(a); // again: no duplicate
    assert.deepEqual(set.match("a/x"), [a, b]);
    assert.equal(set.delete(a), true);
    assert.equal(set.delete(a), false);
    assert.deepEqual(set.match("a/x"), [b]);
    assert.equal(set.size, filler + 1);
    set.clear();
    assert.deepEqual(set.match("a/x"), []);
    assert.deepEqual(set.match("b"), []);
    assert.equal(set.size, 0);
  }
});

Deno.test("SubscriptionSet: 10,000 random filters agree with topicMatches", () => {
  // A fixed pseudo-random sequence: the same filters every run.
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const level = () => ["a", "b", "c", "+", ""][rnd(5)];
  const set = new SubscriptionSet();
  for (let i = 0; i < 10_000; i++) {
    const levels = Array.from({ length: 1 + rnd(4) }, level);
    if (rnd(4) === 0) levels.push("#");
    set.add(sub(levels.join("/")));
  }
  for (const topic of ["a", "a/b", "a/b/c", "c/c/c/c", "/b", "a//", "b/a/c/a/b"]) {
    const scan = [...set].filter((s) => topicMatches(s.filters[0], topic));
    assert.deepEqual(set.match(topic), scan, topic);
  }
});
