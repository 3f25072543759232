/**
 * One timer for the deadlines of all of a broker's connections (the CONNECT
 * deadline, the keep-alive), instead of a `setTimeout` per connection: a
 * timer costs an idle connection some 450 bytes of heap (issue 14), and
 * Mosquitto, too, checks every client's keep-alive from one loop.
 *
 * @module
 */

/** Something with a deadline: told when it is reached. */
export interface Timed {
  /** The deadline given to {@linkcode Deadlines.arm} is reached. */
  onDeadline(): void;
}

/**
 * One owner's deadline in a {@linkcode Deadlines}: what a connection holds
 * instead of a timer.
 *
 * @example
 * ```ts
 * import { Deadlines } from "./deadlines.ts";
 * const deadline = new Deadlines(() => performance.now()).for({ onDeadline: () => {} });
 * deadline.arm(performance.now() + 1000);
 * deadline.clear();
 * ```
 */
export class Deadline {
  /** The armed deadline (`Infinity`: none). */
  at = Infinity;
  /** Its place in the heap (-1: not in it). */
  index = -1;
  readonly #deadlines: Deadlines;
  /** Told when the deadline is reached. */
  readonly owner: Timed;

  /** Use {@linkcode Deadlines.for}. */
  constructor(deadlines: Deadlines, owner: Timed) {
    this.#deadlines = deadlines;
    this.owner = owner;
  }

  /** Makes sure the owner is told by `deadline`; see {@linkcode Deadlines.arm}. */
  arm(deadline: number): void {
    if (deadline < this.at) this.#deadlines.arm(this, deadline);
  }

  /** Forgets the armed deadline. */
  clear(): void {
    if (this.index >= 0) this.#deadlines.clear(this);
  }
}

type Entry = Deadline;

/**
 * The deadlines of many owners, each with at most one armed, served by a
 * single `setTimeout` for the earliest. As `DeadlineTimer`, a later deadline
 * than the armed one asks for nothing: the earlier one fires, and the owner
 * arms its next deadline then. Arming and clearing take O(log n) (a binary
 * heap with each entry's position kept, so clearing a closed connection's
 * deadline does not leave it held until it would have fired).
 *
 * @example
 * ```ts
 * import { Deadlines } from "./deadlines.ts";
 * const deadlines = new Deadlines(() => performance.now());
 * const deadline = deadlines.for({ onDeadline: () => console.log("due") });
 * deadline.arm(performance.now() + 10);
 * deadline.clear(); // nothing fires, and no timer is left
 * ```
 */
export class Deadlines {
  readonly #clock: () => number;
  readonly #heap: Entry[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** When the timer is set to fire (`Infinity`: no timer). */
  #timerAt = Infinity;
  readonly #fire = (): void => this.#due();

  /** Deadlines in `clock`'s time (ms). */
  constructor(clock: () => number) {
    this.#clock = clock;
  }

  /** Armed deadlines. */
  get size(): number {
    return this.#heap.length;
  }

  /** A deadline of `owner`'s, armed by nothing yet. */
  for(owner: Timed): Deadline {
    return new Deadline(this, owner);
  }

  /**
   * Makes sure `entry`'s owner is told by `deadline` (ms, the clock's time);
   * `Infinity`, or a deadline later than the one armed, asks for nothing.
   */
  arm(entry: Deadline, deadline: number): void {
    if (deadline === Infinity) return;
    if (entry.index < 0) {
      entry.at = deadline;
      entry.index = this.#heap.length;
      this.#heap.push(entry);
      this.#up(entry.index);
    } else if (deadline < entry.at) {
      entry.at = deadline;
      this.#up(entry.index);
    } else return;
    this.#schedule();
  }

  /** Forgets `entry`'s deadline. */
  clear(entry: Deadline): void {
    if (entry.index < 0) return;
    this.#remove(entry);
    if (this.#heap.length === 0) this.#stopTimer();
  }

  /** Tells every owner whose deadline is reached, then waits for the next. */
  #due(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#clock();
    const heap = this.#heap;
    // Taken out first: an owner told may arm again, even for a deadline already reached.
    const due: Timed[] = [];
    while (heap.length > 0 && heap[0].at <= now) {
      const entry = heap[0];
      this.#remove(entry);
      due.push(entry.owner);
    }
    for (const owner of due) {
      try {
        owner.onDeadline();
      } catch (err) {
        // As a throwing timer callback would, without skipping the other owners due.
        reportError(err);
      }
    }
    this.#schedule();
  }

  /** Sets the timer for the earliest deadline, unless it is set for it already. */
  #schedule(): void {
    const heap = this.#heap;
    if (heap.length === 0) return this.#stopTimer();
    const at = heap[0].at;
    if (at >= this.#timerAt) return; // fires sooner: `#due` sets it again
    this.#stopTimer();
    this.#timerAt = at;
    this.#timer = setTimeout(this.#fire, Math.max(0, at - this.#clock()));
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #remove(entry: Entry): void {
    const heap = this.#heap;
    const index = entry.index;
    const last = heap.pop()!;
    entry.index = -1;
    entry.at = Infinity;
    if (last === entry) return;
    heap[index] = last;
    last.index = index;
    this.#up(index);
    this.#down(last.index);
  }

  #up(index: number): void {
    const heap = this.#heap;
    const entry = heap[index];
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (heap[parent].at <= entry.at) break;
      heap[index] = heap[parent];
      heap[index].index = index;
      index = parent;
    }
    heap[index] = entry;
    entry.index = index;
  }

  #down(index: number): void {
    const heap = this.#heap;
    const entry = heap[index];
    const length = heap.length;
    while (true) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      const child = right < length && heap[right].at < heap[left].at ? right : left;
      if (heap[child].at >= entry.at) break;
      heap[index] = heap[child];
      heap[index].index = index;
      index = child;
    }
    heap[index] = entry;
    entry.index = index;
  }
}
