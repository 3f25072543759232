/**
 * Where delivered messages go: the client's live subscriptions, the messages
 * held for no subscription yet, and the backpressure that stops the reading
 * when a consumer falls behind. No sockets: testable on its own.
 *
 * @module
 */
import type { ClientSessionState } from "../session/client_state.ts";
import type { MqttError } from "../errors.ts";
import { localFilter, topicMatches } from "../util/topic_filter.ts";
import { copyMessage, type Message, settleMessage } from "./message.ts";
import { SubscriptionIds } from "./identifiers.ts";
import { HeldMessages } from "./held.ts";
import { SubscriptionSet } from "./subscription_set.ts";
import { endSubscription, pushMessage, type Subscription, whenReady } from "./subscription.ts";

/**
 * How far past `bufferSize` a buffer (or the held messages) may grow: while an
 * acknowledgement is awaited, and for QoS 1/2 messages not yet acknowledged,
 * whose number the server's in-flight window already bounds. The hard bound
 * for a server with no such window.
 */
const READ_AHEAD_FACTOR = 4;
/** How many ended subscriptions' identifiers are remembered (copies for them arrive soon after). */
const ENDED_IDS = 4096;

/** How the {@linkcode Inbox} treats messages that match no subscription. */
export interface HoldOptions {
  /**
   * Milliseconds after each connection is accepted during which they are held
   * for a subscription (and, past them, while a SUBSCRIBE awaits its SUBACK);
   * then they are acknowledged and dropped. `Infinity`: held until claimed.
   */
  holdTimeout: number;
  /** Told of the messages acknowledged and dropped because no subscription claimed them. */
  unclaimed?: (messages: Message[]) => void;
}

/**
 * A SUBSCRIBE sent and awaiting its SUBACK. `cancelled` once an UNSUBSCRIBE for
 * one of its filters went out after it: the server handles that after the
 * SUBSCRIBE, so the subscription must end rather than wait for nothing.
 */
export interface PendingSubscribe {
  /** The filters of the SUBSCRIBE. */
  readonly filters: readonly string[];
  /** Filters unsubscribed after the SUBSCRIBE was sent. */
  cancelled: Set<string> | undefined;
}

/**
 * The client's subscriptions and the messages waiting for them.
 *
 * Messages that arrive for no subscription (a resumed session's queued
 * messages arrive right after CONNACK, before the user subscribes again) are
 * held and handed to the first subscription that matches them, for
 * `holdTimeout` after each connection is accepted and while a SUBSCRIBE
 * awaits its SUBACK; then acknowledged and dropped, and `unclaimed` is told
 * (see {@linkcode HeldMessages}). While `bufferSize` QoS 0 messages are held,
 * `backpressure()` stops the reading; unacknowledged QoS 1/2 messages are bounded by the server's
 * in-flight window, and by READ_AHEAD_FACTOR × `bufferSize` at most, whatever
 * is awaited. Messages arriving for filters being unsubscribed, and those
 * held for them, are acknowledged and dropped (the application ended the
 * subscription, as with the buffered messages of a subscription left).
 *
 * A message matching several subscriptions is handed to each as its own copy
 * and acknowledged once every copy is settled (consumed, or dropped by a
 * subscription that ended; declined only when the client closes).
 *
 * Each topic filter is counted over the subscriptions using it, so that the
 * filter is unsubscribed at the server only when the last one ends.
 *
 * @example
 * ```ts
 * import { Inbox } from "./inbox.ts";
 * import { Message } from "./message.ts";
 * import { ClientSessionState } from "../session/client_state.ts";
 * const inbox = new Inbox(new ClientSessionState(), 2);
 * inbox.route(new Message({ type: "publish", topic: "a/b", payload: new Uint8Array(), qos: 0, retain: false, dup: false }));
 * console.log(inbox.heldCount); // 1: no subscription yet
 * ```
 */
export class Inbox {
  readonly #state: ClientSessionState;
  readonly #bufferSize: number;
  readonly #subscriptions = new SubscriptionSet();
  readonly #filterCounts = new Map<string, number>();
  readonly #held: HeldMessages;
  #heldReady: PromiseWithResolvers<void> | undefined = undefined;
  /** SUBSCRIBEs awaiting their SUBACK. */
  readonly #pending = new Set<PendingSubscribe>();
  #blocked: Promise<void>[] = [];
  readonly #ids = new SubscriptionIds();
  /** Subscription Identifiers of subscriptions this client ended, the latest {@linkcode ENDED_IDS}. */
  readonly #endedIds = new Set<number>();

  /**
   * An empty inbox; `bufferSize` bounds the held messages as it bounds each
   * subscription; `hold` says how long they are held (default: until claimed).
   */
  constructor(
    state: ClientSessionState,
    bufferSize: number,
    hold: HoldOptions = { holdTimeout: Infinity },
  ) {
    this.#state = state;
    this.#bufferSize = bufferSize;
    const unclaimed = hold.unclaimed;
    // A SUBSCRIBE awaiting its SUBACK may claim held messages, unless they stopped the
    // reading (see mayReadAhead): then its SUBACK is never read, so they are dropped once
    // the grace is over.
    const subscribing = () =>
      this.#pending.size > 0 && this.#held.length < bufferSize * READ_AHEAD_FACTOR;
    this.#held = new HeldMessages(hold.holdTimeout, subscribing, (messages) => {
      this.#heldShrank();
      unclaimed?.(messages);
    });
  }

  /** Messages held for no subscription. */
  get heldCount(): number {
    return this.#held.length;
  }

  /** Hands a delivered message to every matching subscription, or holds it. */
  route(message: Message): void {
    const topic = message.topic;
    let first: Subscription | undefined;
    let more: Subscription[] | undefined;
    // MQTT 5.0: Subscription Identifiers say exactly which subscriptions matched.
    const ids = message.properties?.subscriptionIdentifiers;
    // Otherwise the topic tree finds the matching filters, whatever their number (issue 18).
    for (const sub of ids !== undefined ? this.#subscriptions : this.#subscriptions.match(topic)) {
      if (ids !== undefined && !this.#ids.routes(sub, topic, ids)) continue;
      if (first === undefined) first = sub;
      else (more ??= []).push(sub);
    }
    if (first === undefined && ids !== undefined) {
      // The server sends a copy per matching subscription, each with its identifier
      // (MQTT-3.3.4-3): a copy whose identifiers all name subscriptions this client ended was
      // meant for them alone. Routed by topic it would reach an overlapping subscription a
      // second time; declined, it would keep one of the server's in-flight slots. Ending the
      // subscription was the application's choice, as with unsubscribe(): acknowledged.
      if (ids.every((id) => this.#endedIds.has(id))) {
        settleMessage(message, true);
        return;
      }
      // Identifiers no live subscription has: a message queued for a subscription of an
      // earlier connection or process. Held, it would never be consumed (and, never
      // acknowledged, hold back every later acknowledgement): match it by topic.
      for (const sub of this.#subscriptions.match(topic)) {
        if (first === undefined) first = sub;
        else (more ??= []).push(sub);
      }
    }
    if (first !== undefined) {
      // Every copy exists before any is pushed: a subscription that settles on
      // receipt must not complete the delivery while others are still to get theirs.
      const copies = more?.map(() => copyMessage(message));
      this.#push(first, message);
      if (more !== undefined) {
        for (let i = 0; i < more.length; i++) this.#push(more[i], copies![i]);
      }
      return;
    }
    // Late messages of a filter whose UNSUBSCRIBE awaits its UNSUBACK: the application
    // ended its subscription, so they are acknowledged and dropped (declined, each
    // would keep one of the server's in-flight slots until the next connection).
    if (this.#state.unsubscribing((f) => topicMatches(localFilter(f), topic))) {
      settleMessage(message, true);
      return;
    }
    const held = this.#held;
    // Past the grace period, and with no SUBSCRIBE awaited, it is acknowledged and dropped soon.
    held.hold(message);
    const n = held.length;
    // Held QoS 1/2 messages are not acknowledged (a subscription will consume
    // them), so the server's in-flight window bounds them; QoS 0 ones only we do.
    const full = n >= this.#bufferSize * READ_AHEAD_FACTOR;
    if (full || (n >= this.#bufferSize && message.qos === 0)) {
      this.#heldReady ??= Promise.withResolvers();
      this.#blocked.push(this.#heldReady.promise);
    }
    // The reading stops here whatever is awaited, a SUBACK too: held for no SUBSCRIBE now.
    if (full) held.recheck();
  }

  /** Pushes into one subscription; a full buffer stops the reading unless the server's window bounds it. */
  #push(sub: Subscription, message: Message): void {
    if (pushMessage(sub, message)) return;
    // With acknowledgement on consume (MQTT-4.3.2-2, MQTT-4.3.3-2 let the
    // receiver choose when), the server sends no more unacknowledged QoS 1/2
    // messages than its in-flight window: reading on is safe up to the hard bound.
    if (
      message.qos === 0 || sub.ack === "receive" ||
      sub.buffered >= sub.bufferSize * READ_AHEAD_FACTOR
    ) {
      this.#blocked.push(whenReady(sub));
    }
  }

  /** A promise to await before reading on, when a consumer is behind. */
  backpressure(): Promise<unknown> | undefined {
    if (this.#blocked.length === 0) return undefined;
    const blocked = Promise.all(this.#blocked);
    this.#blocked = [];
    return blocked;
  }

  /**
   * Whether reading may go on past a full buffer: only while an
   * acknowledgement is awaited (it may sit behind the unread messages, and a
   * consumer that awaits a publish would otherwise wait forever), and only
   * until a buffer holds READ_AHEAD_FACTOR × `bufferSize`, so memory stays bounded.
   */
  mayReadAhead(): boolean {
    const state = this.#state;
    if (state.inflightCount + state.requestCount === 0) return false;
    if (this.#held.length >= this.#bufferSize * READ_AHEAD_FACTOR) return false;
    // Each subscription's own bufferSize bounds it, not the client's default.
    for (const sub of this.#subscriptions) {
      if (sub.buffered >= sub.bufferSize * READ_AHEAD_FACTOR) return false;
    }
    return true;
  }

  /**
   * A SUBSCRIBE for `filters` is about to go out: a reading stopped by held
   * messages looks again (while the SUBACK is awaited it may read ahead, to
   * READ_AHEAD_FACTOR × `bufferSize` held messages, so the bound holds at all
   * times), and the filters count from now on, so unsubscribing another
   * subscription of the same filter meanwhile does not UNSUBSCRIBE it at the
   * server under the new one.
   */
  subscribing(filters: readonly string[]): PendingSubscribe {
    this.#releaseHeld();
    for (const filter of filters) {
      this.#filterCounts.set(filter, (this.#filterCounts.get(filter) ?? 0) + 1);
    }
    const pending: PendingSubscribe = { filters, cancelled: undefined };
    this.#pending.add(pending);
    return pending;
  }

  /** The SUBSCRIBE announced by {@linkcode subscribing} was answered or failed. */
  subscribed(pending: PendingSubscribe): void {
    this.#pending.delete(pending);
    if (this.#pending.size === 0) this.#held.recheck();
  }

  /**
   * An UNSUBSCRIBE for `filters` goes out now: SUBSCRIBEs sent before it and
   * still awaiting their SUBACK will not be live at the server for these filters.
   */
  unsubscribing(filters: readonly string[]): void {
    for (const pending of this.#pending) {
      for (const filter of filters) {
        if (pending.filters.includes(filter)) (pending.cancelled ??= new Set()).add(filter);
      }
    }
  }

  /**
   * A connection was accepted; without a session at the server, the session
   * re-registered every filter without its Subscription Identifier.
   */
  connected(sessionPresent: boolean): void {
    if (!sessionPresent) this.#ids.resubscribed();
    this.#held.opened();
  }

  /** Adds a new subscription and moves the held messages it matches into it, in arrival order. */
  add(sub: Subscription): void {
    this.#subscriptions.add(sub);
    this.#ids.subscribed(sub);
    if (this.#held.length === 0) return;
    for (const message of this.#held.take((m) => sub.matches(m.topic))) this.#push(sub, message);
    this.#heldShrank();
  }

  /**
   * Removes a subscription; returns its filters that no other subscription
   * uses any more (to UNSUBSCRIBE), or undefined when it was not live.
   */
  remove(sub: Subscription): string[] | undefined {
    if (!this.#subscriptions.delete(sub)) return undefined;
    this.#ended(sub);
    return sub.filters.filter((f) => this.release(f));
  }

  /** Remembers the identifier of a subscription the application ended. */
  #ended(sub: Subscription): void {
    const id = sub.identifier;
    if (id === undefined) return;
    const ended = this.#endedIds;
    ended.add(id);
    if (ended.size > ENDED_IDS) ended.delete(ended.values().next().value!);
  }

  /** Decrements a filter's use count; true when no subscription uses it any more. */
  release(filter: string): boolean {
    const count = (this.#filterCounts.get(filter) ?? 0) - 1;
    if (count > 0) {
      this.#filterCounts.set(filter, count);
      return false;
    }
    this.#filterCounts.delete(filter);
    return true;
  }

  /**
   * Ends every subscription holding one of `filters` and forgets the filters
   * and their held messages; returns the filters to UNSUBSCRIBE: `filters`
   * and those of the ended subscriptions that no other one uses.
   */
  unsubscribe(filters: readonly string[]): string[] {
    const gone = new Set(filters);
    for (const sub of [...this.#subscriptions]) {
      if (!sub.filters.some((f) => gone.has(f))) continue;
      this.#subscriptions.delete(sub);
      this.#ended(sub);
      endSubscription(sub);
      for (const f of sub.filters) {
        if (!gone.has(f) && this.release(f)) gone.add(f);
      }
    }
    for (const f of filters) this.#filterCounts.delete(f);
    this.forgetHeld(filters);
    return [...gone];
  }

  /**
   * Drops held messages of filters being unsubscribed: nobody will take them,
   * and they would otherwise keep the reading stopped. Dropping them is the
   * application's decision (it unsubscribed their filter), so they are
   * acknowledged: unacknowledged they would hold the server's in-flight
   * window, and every later acknowledgement, until a reconnect, which would
   * get them again.
   */
  forgetHeld(filters: readonly string[]): void {
    if (this.#held.length === 0) return;
    const gone = this.#held.take((m) => filters.some((f) => topicMatches(localFilter(f), m.topic)));
    for (const message of gone) settleMessage(message, true);
    this.#heldShrank();
  }

  /**
   * The client is closing: messages held for no subscription are acknowledged
   * and dropped, and `unclaimed` is told. MQTT-4.5.0-2: a message is
   * acknowledged whether or not the application elects to process it, and
   * one that no subscription took before the close was not elected.
   * (Buffered ones, which the application did subscribe to, stay
   * unacknowledged: the broker sends them again.)
   */
  acknowledgeHeld(): void {
    this.#held.dropAll();
    this.#releaseHeld();
  }

  /** A filter the session re-registered was refused: ends the subscriptions using it. */
  refused(filter: string, error: MqttError): void {
    for (const sub of [...this.#subscriptions]) {
      if (!sub.filters.includes(filter)) continue;
      this.#subscriptions.delete(sub);
      for (const f of sub.filters) this.release(f);
      endSubscription(sub, error);
    }
  }

  /**
   * The client is closing (or its connection ended for good, with `error`):
   * ends every subscription and lets a stopped reading go. Their unconsumed
   * messages are declined, not acknowledged: a persistent session gets them
   * again on its next connection.
   */
  close(error: MqttError | undefined): void {
    for (const sub of this.#subscriptions) endSubscription(sub, error, true);
    this.#subscriptions.clear();
    this.#held.stop();
    this.#releaseHeld();
  }

  /** Lets a reading stopped by held messages go on once fewer than `bufferSize` remain. */
  #heldShrank(): void {
    if (this.#held.length < this.#bufferSize) this.#releaseHeld();
  }

  #releaseHeld(): void {
    this.#heldReady?.resolve();
    this.#heldReady = undefined;
  }
}
