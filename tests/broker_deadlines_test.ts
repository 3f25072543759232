/**
 * The broker's one timer for all its connections' deadlines
 * (lib/broker/deadlines.ts): each owner is told once its deadline is reached,
 * in order, a cleared deadline never fires, and no timer is left once none is
 * armed (the test sanitizers check that).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Deadlines } from "../lib/broker/deadlines.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function owners(deadlines: Deadlines, names: string[], told: string[]) {
  return names.map((name) => deadlines.for({ onDeadline: () => void told.push(name) }));
}

Deno.test("broker deadlines: owners are told in deadline order, each once", async () => {
  const deadlines = new Deadlines(() => performance.now());
  const told: string[] = [];
  const [a, b, c, d] = owners(deadlines, ["a", "b", "c", "d"], told);
  const t = performance.now();
  c.arm(t + 60);
  a.arm(t + 20);
  d.arm(t + 80);
  b.arm(t + 40);
  b.arm(t + 70); // later than armed: asks for nothing
  assert.equal(deadlines.size, 4);
  await sleep(120);
  assert.deepEqual(told, ["a", "b", "c", "d"]);
  assert.equal(deadlines.size, 0);
});

Deno.test("broker deadlines: a cleared deadline never fires; an earlier one moves it up", async () => {
  const deadlines = new Deadlines(() => performance.now());
  const told: string[] = [];
  const [a, b, c] = owners(deadlines, ["a", "b", "c"], told);
  const t = performance.now();
  a.arm(t + 30);
  b.arm(t + 200);
  c.arm(t + 60);
  a.clear();
  a.clear();
  b.arm(t + 10);
  await sleep(90);
  assert.deepEqual(told, ["b", "c"]);
  assert.equal(deadlines.size, 0);
});

Deno.test("broker deadlines: an owner may arm again when told; clearing the last stops the timer", async () => {
  const deadlines = new Deadlines(() => performance.now());
  let times = 0;
  const deadline = deadlines.for({
    onDeadline: () => {
      if (++times < 3) deadline.arm(performance.now() + 5);
    },
  });
  deadline.arm(performance.now() + 5);
  await sleep(60);
  assert.equal(times, 3);
  const other = deadlines.for({ onDeadline: () => assert.fail("cleared") });
  other.arm(performance.now() + 10_000);
  other.clear(); // the sanitizers fail the test if its timer were left
  assert.equal(deadlines.size, 0);
});
