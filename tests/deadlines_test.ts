/**
 * The one timer for many connections' deadlines (lib/util/deadlines.ts),
 * which the client's connections share process-wide and a broker's share per
 * broker (issues 14, 18): each owner is told once its deadline is reached, in
 * order, with a clock past it; a cleared deadline never fires; an owner
 * arming again when told waits for the next turn; and no timer is left once
 * none is armed (the Deno test sanitizers fail a test that leaves one).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Deadlines, sharedDeadlines } from "../lib/util/deadlines.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("deadlines: owners are told in deadline order, each once, with a clock past their deadline", async () => {
  const deadlines = new Deadlines();
  const told: [string, number, number][] = [];
  const start = performance.now();
  for (const [name, delay] of [["c", 60], ["a", 20], ["d", 80], ["b", 40]] as const) {
    const at = start + delay;
    deadlines.for({ onDeadline: (now) => void told.push([name, now, at]) }).arm(at);
  }
  assert.equal(deadlines.size, 4);
  await sleep(120);
  assert.deepEqual(told.map(([name]) => name), ["a", "b", "c", "d"]);
  for (const [name, now, at] of told) assert.ok(now >= at, `${name} told before its deadline`);
  assert.equal(deadlines.size, 0);
});

Deno.test("deadlines: clear removes a deadline at once; a later one changes nothing; an earlier one moves it up", async () => {
  const deadlines = new Deadlines();
  const told: string[] = [];
  const [cleared, moved, kept] = ["cleared", "moved", "kept"].map((name) =>
    deadlines.for({ onDeadline: () => void told.push(name) })
  );
  const start = performance.now();
  cleared.arm(start + 30);
  moved.arm(start + 200);
  kept.arm(start + 60);
  kept.arm(start + 500); // later: the armed 60 ms stays
  moved.arm(start + 10); // earlier: moves up
  cleared.clear();
  assert.equal(deadlines.size, 2); // out of the heap now, not when it would have fired
  cleared.clear(); // twice is harmless
  await sleep(100);
  assert.deepEqual(told, ["moved", "kept"]);
  assert.equal(deadlines.size, 0);
});

Deno.test("deadlines: a deadline cleared by an owner told before it in the same turn is not told", async () => {
  const deadlines = new Deadlines();
  const told: string[] = [];
  // Same deadline: both leave the heap in one turn; the first closes the second's connection.
  const at = performance.now() + 5;
  const second = deadlines.for({ onDeadline: () => void told.push("second") });
  const first = deadlines.for({
    onDeadline: () => {
      told.push("first");
      second.clear();
    },
  });
  first.arm(at);
  second.arm(at);
  await sleep(40);
  assert.deepEqual(told, ["first"]);
  assert.equal(deadlines.size, 0);
});

Deno.test("deadlines: an owner arming again when told, even for a deadline past, is told in the next turn", async () => {
  const deadlines = new Deadlines();
  let count = 0;
  const deadline = deadlines.for({
    onDeadline: (now) => {
      count++;
      // Already due: must wait for the queue's next turn rather than loop here.
      if (count < 3) deadline.arm(now - 1);
    },
  });
  deadline.arm(performance.now());
  await sleep(0);
  assert.ok(count <= 1);
  await sleep(30);
  assert.equal(count, 3);
  assert.equal(deadlines.size, 0);
});

Deno.test("deadlines: an owner that throws does not keep the others due from being told", async () => {
  const deadlines = new Deadlines();
  const told: string[] = [];
  const reported: unknown[] = [];
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    reported.push(event.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    const at = performance.now() + 5;
    deadlines.for({
      onDeadline: () => {
        throw new Error("owner failed");
      },
    }).arm(at);
    deadlines.for({ onDeadline: () => void told.push("other") }).arm(at);
    await sleep(40);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
  assert.deepEqual(told, ["other"]);
  assert.equal(reported.length, 1);
  assert.equal((reported[0] as Error).message, "owner failed");
});

Deno.test("deadlines: clearing the last deadline clears the shared setTimeout (sanitizer)", () => {
  for (const deadlines of [new Deadlines(), sharedDeadlines]) {
    const deadline = deadlines.for({ onDeadline: () => assert.fail("cleared deadline told") });
    deadline.arm(performance.now() + 60_000);
    deadline.clear();
    deadline.arm(Infinity); // asks for nothing
    assert.equal(deadlines.size, 0);
  }
});

Deno.test("deadlines: a deadline beyond setTimeout's range (24.8 days) waits instead of firing every millisecond", async () => {
  // A broker's connectTimeout has no upper bound: 30 days is a valid CONNECT deadline.
  let reads = 0;
  const deadlines = new Deadlines(() => {
    reads++;
    return performance.now();
  });
  let told = 0;
  const deadline = deadlines.for({ onDeadline: () => void told++ });
  deadline.arm(performance.now() + 30 * 24 * 3600 * 1000);
  const armed = reads;
  await sleep(100);
  // A setTimeout over 2^31 - 1 ms fires after 1 ms: each firing read the clock and set another.
  assert.equal(reads - armed, 0, `the queue woke ${reads - armed} times in 100 ms`);
  assert.equal(told, 0);
  deadline.clear();
});
