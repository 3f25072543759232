/**
 * A first-in first-out queue with O(1) amortized push and shift.
 *
 * `Array.prototype.shift` moves every element, which turns a long queue of
 * waiting publishes into O(n²) work; this queue advances a head index instead
 * and compacts the backing array only when the dead prefix dominates it.
 *
 * @module
 */

/** Compact once this many shifted slots have piled up at the front (and they are half the array). */
const COMPACT_THRESHOLD = 1024;

/**
 * A FIFO queue of items.
 *
 * @example
 * ```ts
 * import { Queue } from "./queue.ts";
 * const q = new Queue<string>();
 * q.push("a");
 * q.push("b");
 * console.log(q.shift(), q.length); // a 1
 * ```
 */
export class Queue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  /** Number of items in the queue. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Appends an item at the tail. */
  push(item: T): void {
    this.#items.push(item);
  }

  /** The item at the head, or `undefined` when empty. */
  peek(): T | undefined {
    return this.#head < this.#items.length ? this.#items[this.#head] : undefined;
  }

  /** Removes and returns the item at the head, or `undefined` when empty. */
  shift(): T | undefined {
    const items = this.#items;
    if (this.#head >= items.length) return undefined;
    const item = items[this.#head];
    // Drop the reference so a shifted message's payload can be collected.
    items[this.#head++] = undefined;
    if (this.#head === items.length) {
      items.length = 0;
      this.#head = 0;
    } else if (this.#head >= COMPACT_THRESHOLD && this.#head * 2 >= items.length) {
      items.splice(0, this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Removes every item and returns them in order (for bulk failure; not on the hot path). */
  drain(): T[] {
    const out = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return out;
  }

  /** Iterates the items from head to tail without removing them. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) yield this.#items[i] as T;
  }
}
