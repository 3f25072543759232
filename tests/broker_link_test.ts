/**
 * The broker's TCP link (lib/broker/link.ts): a quiet connection keeps a
 * small read pending (not `conn.readable`'s 64 KiB, which made 1,000 idle
 * connections cost 64 MiB), busy ones read up to 64 KiB; writes go out whole
 * however the socket cuts them.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MAX_READ, MIN_READ, SocketLink } from "../lib/broker/link.ts";

/** A fake socket that answers each read with the next of `answers` (bytes to fill). */
function fakeSocket(answers: (number | null | Error)[], writeLimit = Infinity) {
  const sizes: number[] = [];
  const written: number[] = [];
  let closed = 0;
  return {
    sizes,
    written,
    get closed() {
      return closed;
    },
    read(buffer: Uint8Array): Promise<number | null> {
      sizes.push(buffer.length);
      const next = answers.shift();
      if (next === undefined) return new Promise(() => {}); // idle: never answers
      if (next instanceof Error) return Promise.reject(next);
      if (next !== null) buffer.fill(7, 0, next);
      return Promise.resolve(next === null ? null : next);
    },
    write(buffer: Uint8Array): Promise<number> {
      const n = Math.min(buffer.length, writeLimit);
      written.push(...buffer.subarray(0, n));
      return Promise.resolve(n);
    },
    close() {
      closed++;
    },
  };
}

Deno.test("broker link: reads start small, double while full, halve while mostly empty", async () => {
  const fills = [MIN_READ, MIN_READ * 2, MIN_READ * 4, 10, 10, null];
  const socket = fakeSocket([...fills]);
  const link = new SocketLink(socket);
  const chunks: number[] = [];
  for (let chunk = await link.read(); chunk !== null; chunk = await link.read()) {
    assert.ok(chunk.every((b) => b === 7));
    chunks.push(chunk.length);
  }
  assert.deepEqual(chunks, [MIN_READ, MIN_READ * 2, MIN_READ * 4, 10, 10]);
  assert.deepEqual(socket.sizes, [
    MIN_READ,
    MIN_READ * 2,
    MIN_READ * 4,
    MIN_READ * 8,
    MIN_READ * 4,
    MIN_READ * 2,
  ]);
});

Deno.test("broker link: a chunk using less than half of its buffer is a copy of its size", async () => {
  const link = new SocketLink(fakeSocket([MIN_READ, MIN_READ + 1, 10]));
  const whole = (await link.read())!;
  assert.equal(whole.buffer.byteLength, MIN_READ);
  const most = (await link.read())!; // read into a buffer of 2 × MIN_READ: a view is kept
  assert.equal(most.buffer.byteLength, MIN_READ * 2);
  const little = (await link.read())!;
  assert.equal(little.length, 10);
  assert.equal(little.buffer.byteLength, 10);
});

Deno.test("broker link: the buffer stops growing at 64 KiB", async () => {
  const fills: (number | null)[] = Array.from({ length: 10 }, (_, i) => MIN_READ * 2 ** i);
  fills.push(null);
  const socket = fakeSocket(fills);
  const link = new SocketLink(socket);
  while ((await link.read()) !== null);
  assert.equal(Math.max(...socket.sizes), MAX_READ);
});

Deno.test("broker link: an idle connection keeps only a small read pending", async () => {
  const socket = fakeSocket([]);
  const link = new SocketLink(socket);
  link.read();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(socket.sizes, [MIN_READ]);
  link.close();
  link.close();
  assert.equal(socket.closed, 1);
});

Deno.test("broker link: a read error rejects the read", async () => {
  const link = new SocketLink(fakeSocket([5, new Error("reset")]));
  assert.equal((await link.read())?.length, 5);
  await assert.rejects(link.read(), /reset/);
});

Deno.test("broker link: a write the socket takes in parts goes out whole, in order", async () => {
  const socket = fakeSocket([], 3);
  const link = new SocketLink(socket);
  await link.write(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  assert.deepEqual(socket.written, [1, 2, 3, 4, 5, 6, 7, 8]);
});
