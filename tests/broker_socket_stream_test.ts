/**
 * The broker's TCP read stream (lib/broker/socket_stream.ts): a quiet
 * connection keeps a small read pending (not `conn.readable`'s 64 KiB, which
 * made 1,000 idle connections cost 64 MiB), busy ones read up to 64 KiB.
 *
 * @module
 */
import assert from "node:assert/strict";
import { adaptiveReadable, MAX_READ, MIN_READ } from "../lib/broker/socket_stream.ts";

/** A fake connection that answers each read with the next of `answers` (bytes to fill). */
function fakeConn(answers: (number | null | Error)[]) {
  const sizes: number[] = [];
  return {
    sizes,
    read(buffer: Uint8Array): Promise<number | null> {
      sizes.push(buffer.length);
      const next = answers.shift();
      if (next === undefined) return new Promise(() => {}); // idle: never answers
      if (next instanceof Error) return Promise.reject(next);
      if (next !== null) buffer.fill(7, 0, next);
      return Promise.resolve(next === null ? null : next);
    },
  };
}

Deno.test("broker socket stream: reads start small, double while full, halve while mostly empty", async () => {
  const fills = [MIN_READ, MIN_READ * 2, MIN_READ * 4, 10, 10, null];
  const conn = fakeConn([...fills]);
  const chunks: number[] = [];
  for await (const chunk of adaptiveReadable(conn)) {
    assert.ok(chunk.every((b) => b === 7));
    chunks.push(chunk.length);
  }
  assert.deepEqual(chunks, [MIN_READ, MIN_READ * 2, MIN_READ * 4, 10, 10]);
  assert.deepEqual(conn.sizes, [
    MIN_READ,
    MIN_READ * 2,
    MIN_READ * 4,
    MIN_READ * 8,
    MIN_READ * 4,
    MIN_READ * 2,
  ]);
});

Deno.test("broker socket stream: the buffer stops growing at 64 KiB", async () => {
  const fills: (number | null)[] = Array.from({ length: 10 }, (_, i) => MIN_READ * 2 ** i);
  fills.push(null);
  const conn = fakeConn(fills);
  const reader = adaptiveReadable(conn).getReader();
  while (!(await reader.read()).done);
  assert.equal(Math.max(...conn.sizes), MAX_READ);
});

Deno.test("broker socket stream: an idle connection keeps only a small read pending", async () => {
  const conn = fakeConn([]);
  const reader = adaptiveReadable(conn).getReader();
  const pending = reader.read();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(conn.sizes, [MIN_READ]);
  await reader.cancel();
  assert.deepEqual(await pending, { done: true, value: undefined });
});

Deno.test("broker socket stream: a read error ends the stream with it", async () => {
  const reader = adaptiveReadable(fakeConn([5, new Error("reset")])).getReader();
  assert.equal((await reader.read()).value?.length, 5);
  await assert.rejects(reader.read(), /reset/);
});
