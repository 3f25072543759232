/**
 * Deadline timers of many connections on one `setTimeout`: the client's
 * connections (the keep-alive, the CONNACK and other protocol deadlines) and
 * a broker's (the CONNECT deadline, the keep-alive). A `setTimeout` of each
 * connection's own would cost an idle connection a timer object and its
 * closures, made again at every ping and kept until the next one (so
 * promoted to the old generation, where only a full GC frees them): some
 * 450 bytes each (issues 14 and 18). Mosquitto, too, checks every client's
 * keep-alive from one loop.
 *
 * A deadline is an entry of a binary min-heap that keeps its position, so
 * arming and clearing take O(log n), arming again moves the entry in place
 * without allocating, and a cleared entry leaves the heap at once (a closed
 * connection leaves nothing behind until its deadline would have come).
 *
 * @module
 */

/** Something with a deadline: told when it is reached. */
export interface Timed {
  /**
   * The armed deadline is reached; `now` is the clock as read once for every
   * deadline due at the same time.
   */
  onDeadline(now: number): void;
}

/**
 * The longest delay `setTimeout` takes: a longer one fires after 1 ms, which
 * would wake the queue every millisecond until the deadline came in range.
 */
const MAX_DELAY = 2 ** 31 - 1;

/** Not in the heap, not due. */
const IDLE = -1;
/** Taken out of the heap to be told in the current turn. */
const DUE = -2;

/**
 * One owner's deadline in a {@linkcode Deadlines}: what a connection holds
 * instead of a timer. At most one deadline is armed at a time.
 *
 * @example
 * ```ts
 * import { Deadlines } from "./deadlines.ts";
 * const deadline = new Deadlines().for({ onDeadline: () => console.log("due") });
 * deadline.arm(performance.now() + 1000);
 * deadline.clear(); // nothing fires
 * ```
 */
export class Deadline {
  /** @internal The armed deadline (`Infinity`: none). */
  at = Infinity;
  /** @internal Its place in the heap (-1: not in it; -2: due in this turn). */
  index = IDLE;
  /** Told when the deadline is reached. */
  readonly owner: Timed;
  readonly #deadlines: Deadlines;

  /** Use {@linkcode Deadlines.for}. */
  constructor(deadlines: Deadlines, owner: Timed) {
    this.#deadlines = deadlines;
    this.owner = owner;
  }

  /**
   * Makes sure the owner is told by `deadline` (ms, the queue's clock);
   * `Infinity`, or a deadline later than the one armed, asks for nothing: the
   * earlier one fires, and the owner arms its next deadline then.
   */
  arm(deadline: number): void {
    if (deadline < this.at) this.#deadlines.arm(this, deadline);
  }

  /** Forgets the armed deadline: the owner is not told of it, even if it is due in this turn. */
  clear(): void {
    if (this.index !== IDLE) this.#deadlines.clear(this);
  }
}

/**
 * The deadlines of many owners, each with at most one armed, served by a
 * single `setTimeout` for the earliest, which is cleared once no deadline is
 * armed (so nothing keeps the process alive, and the test sanitizers find no
 * timer left). Clients share {@linkcode sharedDeadlines}; a broker has its own.
 *
 * @example
 * ```ts
 * import { Deadlines } from "./deadlines.ts";
 * const deadlines = new Deadlines();
 * const deadline = deadlines.for({ onDeadline: () => console.log("due") });
 * deadline.arm(performance.now() + 10);
 * deadline.clear(); // nothing fires, and no timer is left
 * ```
 */
export class Deadlines {
  readonly #clock: () => number;
  readonly #heap: Deadline[] = [];
  /** Taken out of the heap in the current turn, to be told: kept to allocate nothing per turn. */
  readonly #due: Deadline[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** When the timer is set to fire (`Infinity`: no timer). */
  #timerAt = Infinity;
  readonly #fire = (): void => this.#run();

  /** Deadlines in `clock`'s time (ms; `performance.now()` by default). */
  constructor(clock: () => number = () => performance.now()) {
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

  /** Makes sure `entry`'s owner is told by `deadline`; see {@linkcode Deadline.arm}. */
  arm(entry: Deadline, deadline: number): void {
    if (deadline === Infinity || deadline >= entry.at) return;
    entry.at = deadline;
    if (entry.index < 0) {
      // Also when due in this turn: it is told now and, once more, by the new deadline.
      entry.index = this.#heap.length;
      this.#heap.push(entry);
    }
    this.#up(entry.index);
    this.#schedule();
  }

  /** Forgets `entry`'s deadline; see {@linkcode Deadline.clear}. */
  clear(entry: Deadline): void {
    if (entry.index === DUE) {
      entry.index = IDLE; // #run skips it
      return;
    }
    if (entry.index === IDLE) return;
    this.#remove(entry);
    if (this.#heap.length === 0) this.#stopTimer();
  }

  /** Tells every owner whose deadline is reached, then waits for the next. */
  #run(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#clock();
    const heap = this.#heap;
    const due = this.#due;
    // Everything due leaves the heap first: an owner arming again, even for a
    // deadline already past, waits for the next turn instead of looping here.
    while (heap.length > 0 && heap[0].at <= now) {
      const entry = heap[0];
      this.#remove(entry);
      entry.index = DUE;
      due.push(entry);
    }
    for (let i = 0; i < due.length; i++) {
      const entry = due[i];
      due[i] = undefined as unknown as Deadline;
      // Cleared by an owner told before it (IDLE): not told.
      if (entry.index === IDLE) continue;
      if (entry.index === DUE) entry.index = IDLE;
      try {
        entry.owner.onDeadline(now);
      } catch (err) {
        // As a throwing timer callback would, without skipping the other owners due.
        reportError(err);
      }
    }
    due.length = 0;
    this.#schedule();
  }

  /** Sets the timer for the earliest deadline, unless it fires by then already. */
  #schedule(): void {
    const heap = this.#heap;
    if (heap.length === 0) return this.#stopTimer();
    const at = heap[0].at;
    if (at >= this.#timerAt) return; // fires sooner: #run sets it again
    this.#stopTimer();
    this.#timerAt = at;
    // A deadline further off is waited for in steps: #run finds nothing due and sets the next.
    this.#timer = setTimeout(this.#fire, Math.min(MAX_DELAY, Math.max(0, at - this.#clock())));
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #remove(entry: Deadline): void {
    const heap = this.#heap;
    const index = entry.index;
    const last = heap.pop()!;
    entry.index = IDLE;
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

/**
 * The process's one queue for client connections' deadlines.
 *
 * @example
 * ```ts
 * import { sharedDeadlines } from "./deadlines.ts";
 * const deadline = sharedDeadlines.for({ onDeadline: (now) => console.log("due at", now) });
 * deadline.arm(performance.now() + 10);
 * deadline.clear();
 * ```
 */
export const sharedDeadlines: Deadlines = new Deadlines();
