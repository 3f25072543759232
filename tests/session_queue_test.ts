import assert from "node:assert/strict";
import { Queue } from "../lib/util/queue.ts";

Deno.test("Queue keeps FIFO order across compaction and interleaved push/shift", () => {
  const q = new Queue<number>();
  const expected: number[] = [];
  let next = 0;
  // Push more than the compaction threshold, then drain partly, repeatedly.
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 3000; i++) {
      q.push(next);
      expected.push(next++);
    }
    for (let i = 0; i < 2500; i++) assert.equal(q.shift(), expected.shift());
    assert.equal(q.length, expected.length);
    assert.equal(q.peek(), expected[0]);
  }
  assert.deepEqual([...q], expected);
  assert.deepEqual(q.drain(), expected);
  assert.equal(q.length, 0);
  assert.equal(q.shift(), undefined);
  assert.equal(q.peek(), undefined);
});

Deno.test("Queue empties to length 0 and is reusable", () => {
  const q = new Queue<string>();
  q.push("a");
  assert.equal(q.shift(), "a");
  assert.equal(q.length, 0);
  q.push("b");
  q.push("c");
  assert.deepEqual([...q], ["b", "c"]);
  assert.equal(q.shift(), "b");
  assert.equal(q.length, 1);
});
