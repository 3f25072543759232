/**
 * Deadline timers of many connections on one `setTimeout`. Ten thousand idle
 * clients each ping once per keep-alive period; with a `setTimeout` of its
 * own, every ping made a timer object, its closures and a timer operation,
 * all kept until the next ping (so promoted to the old generation, where only
 * a full GC frees them). Here a timer is an entry of a binary heap, moved in
 * place when it is armed again: arming allocates nothing, and one timer
 * callback serves every deadline that falls due at once (issue 18).
 *
 * @module
 */

/** Entries by deadline, earliest first (a binary min-heap). */
const heap: QueuedDeadlineTimer[] = [];
/** The one `setTimeout`, and the deadline it was set for. */
let handle: ReturnType<typeof setTimeout> | undefined;
let handleAt = Infinity;
/** Entries due in the current callback: fired after they all left the heap. */
const due: QueuedDeadlineTimer[] = [];

function swap(i: number, j: number): void {
  const a = heap[i];
  const b = heap[j];
  heap[i] = b;
  heap[j] = a;
  b.index = i;
  a.index = j;
}

function siftUp(i: number): void {
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent].at <= heap[i].at) return;
    swap(i, parent);
    i = parent;
  }
}

function siftDown(i: number): void {
  const n = heap.length;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= n) return;
    const right = left + 1;
    const child = right < n && heap[right].at < heap[left].at ? right : left;
    if (heap[i].at <= heap[child].at) return;
    swap(i, child);
    i = child;
  }
}

function remove(timer: QueuedDeadlineTimer): void {
  const i = timer.index;
  const last = heap.pop()!;
  timer.index = -1;
  if (last !== timer) {
    heap[i] = last;
    last.index = i;
    siftDown(i);
    siftUp(last.index);
  }
}

/**
 * Makes the `setTimeout` fire by the earliest deadline. A later earliest
 * deadline keeps the timer set: it fires early once, then is set again.
 * With no deadline left it is cleared, so nothing keeps a process alive.
 */
function schedule(): void {
  if (heap.length === 0) {
    if (handle !== undefined) clearTimeout(handle);
    handle = undefined;
    handleAt = Infinity;
    return;
  }
  const at = heap[0].at;
  if (handle !== undefined && handleAt <= at) return;
  if (handle !== undefined) clearTimeout(handle);
  handleAt = at;
  handle = setTimeout(run, Math.max(0, at - performance.now()));
}

function run(): void {
  handle = undefined;
  handleAt = Infinity;
  const now = performance.now();
  // Everything due leaves the heap first: a callback arming a deadline already
  // past waits for the next turn instead of looping here.
  while (heap.length !== 0 && heap[0].at <= now) {
    const timer = heap[0];
    remove(timer);
    timer.at = Infinity;
    due.push(timer);
  }
  let failure: { error: unknown } | undefined;
  for (let i = 0; i < due.length; i++) {
    const timer = due[i];
    due[i] = undefined as unknown as QueuedDeadlineTimer;
    try {
      timer.fire(now);
    } catch (error) {
      // One connection's failure must not starve the others' deadlines.
      failure ??= { error };
    }
  }
  due.length = 0;
  schedule();
  if (failure !== undefined) throw failure.error;
}

/**
 * A deadline timer on the shared queue, with the contract of
 * `DeadlineTimer`: `arm` makes sure `fire` runs by the deadline (a later
 * deadline than the armed one changes nothing: the owner arms its next one
 * when it fires), `clear` stops it. Deadlines are `performance.now()` times.
 *
 * @example
 * ```ts
 * import { QueuedDeadlineTimer } from "./timer_queue.ts";
 * const timer = new QueuedDeadlineTimer(() => console.log("due"));
 * timer.arm(performance.now() + 10);
 * timer.clear(); // nothing fires
 * ```
 */
export class QueuedDeadlineTimer {
  /** @internal The armed deadline; `Infinity` when not armed. */
  at = Infinity;
  /** @internal Position in the heap; -1 when not in it. */
  index = -1;
  /** @internal Runs when the deadline is reached, with the time the queue read then. */
  readonly fire: (now: number) => void;

  /**
   * `fire` runs when the armed deadline is reached (`performance.now()`
   * time), with the clock as read for all timers due at once.
   */
  constructor(fire: (now: number) => void) {
    this.fire = fire;
  }

  /** Makes sure the timer fires by `deadline`; `Infinity` asks for nothing. */
  arm(deadline: number): void {
    if (deadline === Infinity || deadline >= this.at) return;
    this.at = deadline;
    if (this.index === -1) {
      this.index = heap.length;
      heap.push(this);
    }
    siftUp(this.index);
    schedule();
  }

  /** Stops the timer. */
  clear(): void {
    if (this.index === -1) return;
    remove(this);
    this.at = Infinity;
    schedule();
  }
}
