/**
 * The one timer a protocol machine's `deadline` asks its driver for.
 *
 * @module
 */

/**
 * Keeps one `setTimeout` armed for the earliest deadline it was given. A
 * later deadline needs no new timer: the earlier one fires, the driver ticks
 * its machine and arms the machine's next deadline.
 *
 * @example
 * ```ts
 * import { DeadlineTimer } from "./deadline_timer.ts";
 * const timer = new DeadlineTimer(() => performance.now(), () => console.log("due"));
 * timer.arm(performance.now() + 10);
 * timer.clear(); // nothing fires
 * ```
 */
export class DeadlineTimer {
  readonly #clock: () => number;
  readonly #fire: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;
  #at = Infinity;

  /** `fire` runs when the armed deadline is reached, by `clock`'s reckoning. */
  constructor(clock: () => number, fire: () => void) {
    this.#clock = clock;
    this.#fire = fire;
  }

  /** Makes sure the timer fires by `deadline` (ms, `clock`'s time); `Infinity` asks for nothing. */
  arm(deadline: number): void {
    if (deadline === Infinity || deadline >= this.#at) return;
    this.clear();
    this.#at = deadline;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#at = Infinity;
      this.#fire();
    }, Math.max(0, deadline - this.#clock()));
  }

  /** Stops the timer. */
  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = Infinity;
  }
}
