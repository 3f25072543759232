/**
 * The keep-alive timing of one client connection (MQTT-3.1.2-23, -24): when
 * a PINGREQ is due, and when one unanswered means the link is dead. Sans-IO:
 * the {@linkcode Session} tells it what was sent and received and when, asks
 * it on each tick what is due, and sends the PINGREQ or closes itself.
 *
 * @module
 */

/** What {@linkcode KeepAlive.due} finds due at a tick. */
export type KeepAliveDue = "ping" | "timeout" | undefined;

/**
 * Keep-alive of one connection at a time: a PINGREQ goes out when nothing
 * was sent for the interval, and also when nothing was received for that
 * long, so a half-open link is found within the interval plus `pingTimeout`
 * even while the client keeps sending. After a PINGREQ, any packet received
 * answers it; none within `pingTimeout` is a timeout. While reading is
 * paused the timeout is suspended.
 *
 * @example
 * ```ts
 * import { KeepAlive } from "./keep_alive.ts";
 * const keepAlive = new KeepAlive(30, 5000);
 * keepAlive.start(30, 0);
 * keepAlive.sent(0);
 * console.log(keepAlive.deadline(), keepAlive.due(30_000)); // 30000 ping
 * keepAlive.pinged(30_000);
 * console.log(keepAlive.due(35_000)); // timeout
 * ```
 */
export class KeepAlive {
  /** The interval in milliseconds (0: off); a 5.0 Server Keep Alive replaces ours. */
  intervalMs: number;
  readonly #pingTimeout: number;
  #lastSent = 0;
  #lastReceived = 0;
  #outstanding = false;
  #timeoutAt = Infinity;
  #readPaused = false;

  /** Keep-alive of `keepAlive` seconds; a PINGREQ unanswered for `pingTimeout` ms is a timeout. */
  constructor(keepAlive: number, pingTimeout: number) {
    this.intervalMs = keepAlive * 1000;
    this.#pingTimeout = pingTimeout;
  }

  /** A new connection with `keepAlive` seconds, begun at `now`: no PINGREQ outstanding. */
  start(keepAlive: number, now: number): void {
    this.intervalMs = keepAlive * 1000;
    this.#outstanding = false;
    this.#timeoutAt = Infinity;
    this.#lastReceived = now;
  }

  /** A packet was sent at `now`. */
  sent(now: number): void {
    this.#lastSent = now;
  }

  /** A packet was received at `now`: the link is alive, which answers an outstanding PINGREQ. */
  received(now: number): void {
    this.#lastReceived = now;
    this.#outstanding = false;
  }

  /** A PINGREQ went out at `now` (after {@linkcode sent}); the first one outstanding arms the timeout. */
  pinged(now: number): void {
    if (this.#outstanding) return;
    this.#outstanding = true;
    this.#timeoutAt = now + this.#pingTimeout;
  }

  /** The connection ended: nothing outstanding. */
  stop(): void {
    this.#outstanding = false;
    this.#timeoutAt = Infinity;
  }

  /** The next time something may be due; `Infinity` when keep-alive is off. */
  deadline(): number {
    const ka = this.intervalMs;
    if (ka === 0) return Infinity;
    const due = this.#lastSent + ka;
    if (this.#readPaused) return due;
    const other = this.#outstanding ? this.#timeoutAt : this.#lastReceived + ka;
    return other < due ? other : due;
  }

  /** What is due at `now`: a PINGREQ, the timeout of the outstanding one, or nothing. */
  due(now: number): KeepAliveDue {
    const ka = this.intervalMs;
    if (ka === 0) return undefined;
    const paused = this.#readPaused;
    if (this.#outstanding && !paused && now >= this.#timeoutAt) return "timeout";
    // MQTT-3.1.2-23: never let the gap between sent packets exceed keep-alive.
    // Also probe when the server has been silent for keep-alive, so a half-open
    // link is found even while we keep sending (QoS 0 into a black hole).
    if (
      now >= this.#lastSent + ka ||
      (!this.#outstanding && !paused && now >= this.#lastReceived + ka)
    ) return "ping";
    return undefined;
  }

  /**
   * Reading stopped (or resumed). While paused the PINGREQ response timeout
   * is suspended; on resume an outstanding PINGREQ gets a full `pingTimeout`
   * again, since its answer may sit unread in the socket.
   */
  setReadPaused(paused: boolean, now: number): void {
    if (paused === this.#readPaused) return;
    this.#readPaused = paused;
    if (!paused && this.#outstanding) this.#timeoutAt = now + this.#pingTimeout;
  }
}
