/**
 * Retained messages ordered by when their Message Expiry Interval ends, so
 * the broker can drop expired ones a bounded batch at a time instead of only
 * when a subscriber happens to meet them.
 *
 * @module
 */
import type { RetainedMessage } from "./retained.ts";

/**
 * A binary min-heap of retained messages by `expiresAt`. Entries are never
 * removed when their topic is replaced or cleared; {@linkcode ExpiryQueue.take}
 * skips those (the caller tells which are still held), and the queue is
 * rebuilt from the live messages when stale entries outnumber them.
 *
 * @example
 * ```ts
 * import { ExpiryQueue } from "./expiry_queue.ts";
 * const queue = new ExpiryQueue();
 * const payload = new Uint8Array([1]);
 * queue.add({ topic: "a", payload, qos: 0, expiresAt: 20 });
 * queue.add({ topic: "b", payload, qos: 0, expiresAt: 10 });
 * console.log(queue.next()); // 10
 * console.log(queue.take(15, 100, () => true).map((m) => m.topic)); // ["b"]
 * ```
 */
export class ExpiryQueue {
  readonly #heap: RetainedMessage[] = [];

  /** Entries held, stale ones included. */
  get length(): number {
    return this.#heap.length;
  }

  /** Adds a message that has an `expiresAt`. */
  add(message: RetainedMessage): void {
    const heap = this.#heap;
    heap.push(message);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent].expiresAt! <= heap[i].expiresAt!) break;
      [heap[parent], heap[i]] = [heap[i], heap[parent]];
      i = parent;
    }
  }

  /** The earliest `expiresAt` held (possibly of a stale entry), if any. */
  next(): number | undefined {
    return this.#heap[0]?.expiresAt;
  }

  /**
   * Removes up to `max` entries whose time has come (`expiresAt <= now`) and
   * returns those `held` still accepts; stale ones count toward `max` too, so
   * one call's work is bounded.
   */
  take(now: number, max: number, held: (message: RetainedMessage) => boolean): RetainedMessage[] {
    const out: RetainedMessage[] = [];
    for (let n = 0; n < max && this.#heap.length > 0 && this.#heap[0].expiresAt! <= now; n++) {
      const message = this.#pop();
      if (held(message)) out.push(message);
    }
    return out;
  }

  /** Replaces every entry with `live` (each with an `expiresAt`). */
  rebuild(live: Iterable<RetainedMessage>): void {
    this.#heap.length = 0;
    for (const message of live) this.add(message);
  }

  /** Forgets every entry. */
  clear(): void {
    this.#heap.length = 0;
  }

  #pop(): RetainedMessage {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let min = i;
        if (l < heap.length && heap[l].expiresAt! < heap[min].expiresAt!) min = l;
        if (r < heap.length && heap[r].expiresAt! < heap[min].expiresAt!) min = r;
        if (min === i) break;
        [heap[min], heap[i]] = [heap[i], heap[min]];
        i = min;
      }
    }
    return top;
  }
}
