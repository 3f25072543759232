/**
 * The shared timer queue (lib/util/timer_queue.ts): many connections'
 * deadlines on one `setTimeout` (issue 18). The Deno test sanitizers check
 * that the one `setTimeout` is cleared once no deadline is left.
 *
 * @module
 */
import assert from "node:assert/strict";
import { QueuedDeadlineTimer } from "../lib/util/timer_queue.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("QueuedDeadlineTimer: deadlines fire in order, each once, with a clock past its deadline", async () => {
  const fired: [string, number, number][] = [];
  const timers = new Map<string, { timer: QueuedDeadlineTimer; at: number }>();
  const start = performance.now();
  for (const [name, delay] of [["c", 30], ["a", 5], ["d", 40], ["b", 15]] as const) {
    const at = start + delay;
    const timer = new QueuedDeadlineTimer((now) => fired.push([name, now, at]));
    timer.arm(at);
    timers.set(name, { timer, at });
  }
  await sleep(80);
  assert.deepEqual(fired.map(([name]) => name), ["a", "b", "c", "d"]);
  for (const [name, now, at] of fired) assert.ok(now >= at, `${name} fired before its deadline`);
});

Deno.test("QueuedDeadlineTimer: clear removes a deadline; a later one changes nothing; an earlier one wins", async () => {
  const fired: string[] = [];
  const start = performance.now();
  const cleared = new QueuedDeadlineTimer(() => fired.push("cleared"));
  const moved = new QueuedDeadlineTimer(() => fired.push("moved"));
  const kept = new QueuedDeadlineTimer(() => fired.push("kept"));
  cleared.arm(start + 10);
  moved.arm(start + 200);
  kept.arm(start + 20);
  kept.arm(start + 500); // later: the armed 20 ms stays
  moved.arm(start + 5); // earlier: moves up
  cleared.clear();
  cleared.clear(); // twice is harmless
  await sleep(60);
  assert.deepEqual(fired, ["moved", "kept"]);
});

Deno.test("QueuedDeadlineTimer: a timer armed again from its own callback fires again, not in the same turn", async () => {
  let count = 0;
  const timer: QueuedDeadlineTimer = new QueuedDeadlineTimer((now) => {
    count++;
    // Already due: must wait for the queue's next turn rather than loop here.
    if (count < 3) timer.arm(now - 1);
  });
  timer.arm(performance.now());
  await sleep(0);
  assert.ok(count <= 1);
  await sleep(30);
  assert.equal(count, 3);
});

Deno.test("QueuedDeadlineTimer: clearing the last deadline clears the shared setTimeout (sanitizer)", () => {
  const timer = new QueuedDeadlineTimer(() => assert.fail("cleared timer fired"));
  timer.arm(performance.now() + 60_000);
  timer.clear();
  timer.arm(Infinity); // asks for nothing
});
