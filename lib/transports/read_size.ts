/**
 * How large a connection's next read buffer is: one rule for the client's
 * and the broker's socket reads.
 *
 * @module
 */

/**
 * The next read buffer's size after a read of `count` bytes into a buffer of
 * `size`: double after a read that filled it (up to `max`), halve after one
 * that used less than a quarter (down to `min`), else the same. A busy
 * connection reads in large chunks; after a burst a quiet one gives the large
 * buffer back a halving per read instead of keeping it for its life (10,000
 * connections that each saw one burst would otherwise hold 640 MiB).
 *
 * @example
 * ```ts
 * import { nextReadSize } from "./read_size.ts";
 * console.log(nextReadSize(512, 512, 256, 65536)); // 1024
 * console.log(nextReadSize(1024, 10, 256, 65536)); // 512
 * ```
 */
export function nextReadSize(size: number, count: number, min: number, max: number): number {
  if (count === size && size < max) return Math.min(size * 2, max);
  if (count < size / 4 && size > min) return Math.max(size / 2, min);
  return size;
}
