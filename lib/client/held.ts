/**
 * Messages that arrived for no subscription: held while the program may
 * still subscribe for them, then acknowledged and dropped, and said so.
 *
 * A resumed session's queued messages arrive right after CONNACK, before the
 * program has had its turn to subscribe again: dropping them at once would
 * lose them. Holding them for good is no better: acknowledgements go out in
 * arrival order (MQTT-4.6.0-2/3), so one held QoS 1/2 message holds back the
 * acknowledgement of every later one, the server's in-flight window fills
 * (Mosquitto's `max_inflight_messages`, 20 by default) and no QoS 1/2
 * message arrives on any filter again. (A share of the window reserved for
 * held messages would not help: the first held one already blocks the rest.)
 * So they are held for a grace period after each connection is accepted, and
 * while a SUBSCRIBE awaits its SUBACK (the server may send its messages
 * first); then acknowledged and dropped, which MQTT-4.5.0-2 allows ("whether
 * or not the application elects to process" a message).
 *
 * @module
 */
import { type Message, settleMessage } from "./message.ts";

/**
 * Detail of the client's `unclaimed` event: messages that matched no
 * subscription, acknowledged and dropped (see `holdTimeout` in the options).
 *
 * @example
 * ```ts ignore
 * client.addEventListener("unclaimed", (e) => {
 *   for (const msg of e.detail.messages) console.warn("no subscription for", msg.topic);
 * });
 * ```
 */
export interface UnclaimedEventDetail {
  /** The dropped messages, in arrival order. */
  readonly messages: readonly Message[];
}

/**
 * Says on the console, once per client, that messages were dropped unclaimed
 * while nobody listened for the `unclaimed` event: otherwise a program that
 * subscribes later than `holdTimeout` would lose them without a word.
 *
 * @example
 * ```ts ignore
 * warnUnclaimed(25, 1000);
 * ```
 */
export function warnUnclaimed(count: number, holdTimeout: number): void {
  console.warn(
    `mqtt: ${count} message(s) matched no subscription within holdTimeout (${holdTimeout} ms) ` +
      `and were acknowledged and dropped; subscribe sooner, raise holdTimeout, or listen for ` +
      `the client's "unclaimed" event (which also silences this warning)`,
  );
}

/** The clock of the grace period (monotonic, as the driver's). */
const now = (): number => performance.now();

/**
 * The messages held for no subscription, in arrival order, and the timer that
 * ends their grace period.
 *
 * @example
 * ```ts
 * import { HeldMessages } from "./held.ts";
 * import { Message } from "./message.ts";
 * const held = new HeldMessages(Infinity, () => false, (dropped) => console.log(dropped.length));
 * held.opened();
 * held.hold(new Message({ type: "publish", topic: "a", payload: new Uint8Array(), qos: 0, retain: false, dup: false }));
 * console.log(held.length); // 1
 * held.dropAll(); // logs 1
 * ```
 */
export class HeldMessages {
  #messages: Message[] = [];
  /** Milliseconds after a connection is accepted during which messages are held; `Infinity`: for good. */
  readonly #timeout: number;
  /**
   * Whether a subscription may still claim the held messages past the grace
   * period: a SUBSCRIBE awaits its SUBACK, and the reading goes on to read it.
   */
  readonly #subscribing: () => boolean;
  /** Told of every message acknowledged and dropped because no subscription claimed it. */
  readonly #dropped: (messages: Message[]) => void;
  /** When the grace period of the current connection ends (the clock of {@linkcode now}). */
  #until = Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Holds for `timeout` milliseconds after each connection is accepted, longer
   * while `subscribing()`; tells `dropped` of the messages it gives up on.
   * `timeout` Infinity: held until taken.
   */
  constructor(
    timeout: number,
    subscribing: () => boolean,
    dropped: (messages: Message[]) => void,
  ) {
    this.#timeout = timeout;
    this.#subscribing = subscribing;
    this.#dropped = dropped;
  }

  /** How many messages are held. */
  get length(): number {
    return this.#messages.length;
  }

  /** A connection was accepted: its grace period starts now. */
  opened(): void {
    this.#until = now() + this.#timeout;
    if (this.#messages.length > 0) this.#arm(this.#timeout);
  }

  /**
   * Holds a message no subscription claims. Once the grace period is over and
   * no SUBSCRIBE is awaited, it is acknowledged and dropped at the next
   * macrotask, not here: the messages that come with the CONNACK are read
   * before `connect()` resolves, so an `unclaimed` event told now would reach
   * no listener (and one told now would come before the held ones before it).
   */
  hold(message: Message): void {
    this.#messages.push(message);
    const expiring = this.#timer !== undefined;
    if (this.#messages.length === 1 || (!expiring && this.#over() && !this.#subscribing())) {
      this.#arm(this.#until - now());
    }
  }

  /** Removes and returns the held messages `wanted` picks, in arrival order. */
  take(wanted: (message: Message) => boolean): Message[] {
    const taken: Message[] = [];
    if (this.#messages.length === 0) return taken;
    const keep: Message[] = [];
    for (const message of this.#messages) (wanted(message) ? taken : keep).push(message);
    this.#messages = keep;
    if (keep.length === 0) this.#disarm();
    return taken;
  }

  /**
   * What `subscribing()` says changed (the last SUBSCRIBE awaited was
   * answered, or the held messages stopped the reading, so its SUBACK cannot
   * be read): looks again once the grace period is over, at the next
   * macrotask at the earliest, after the program's own reaction to a SUBACK
   * (a loop subscribing filter after filter sends its next SUBSCRIBE in it).
   */
  recheck(): void {
    if (this.#messages.length > 0) this.#arm(this.#until - now());
  }

  /** Acknowledges and drops every held message, telling `dropped`. */
  dropAll(): void {
    this.#disarm();
    const messages = this.#messages;
    if (messages.length === 0) return;
    this.#messages = [];
    for (const message of messages) settleMessage(message, true);
    this.#dropped(messages);
  }

  /** Stops the timer (the client is closing); the messages stay as they are. */
  stop(): void {
    this.#until = Infinity;
    this.#disarm();
  }

  #over(): boolean {
    return now() >= this.#until;
  }

  #arm(ms: number): void {
    // Held for good (`timeout` Infinity), or no connection accepted yet: no timer.
    if (!Number.isFinite(ms)) return;
    this.#disarm();
    this.#timer = setTimeout(this.#expire, Math.max(0, ms));
  }

  #disarm(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  readonly #expire = (): void => {
    this.#timer = undefined;
    if (this.#messages.length === 0) return;
    // A SUBSCRIBE awaiting its SUBACK may still claim them: `recheck()` looks again after it.
    if (this.#subscribing()) return;
    const left = this.#until - now();
    if (left > 0) this.#arm(left);
    else this.dropAll();
  };
}
