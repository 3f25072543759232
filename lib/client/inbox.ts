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
import type { Message } from "./message.ts";
import { SubscriptionIds } from "./identifiers.ts";
import { SubscriptionSet } from "./subscription_set.ts";
import { endSubscription, pushMessage, type Subscription, whenReady } from "./subscription.ts";

/** How far past `bufferSize` a buffer may grow while an acknowledgement is awaited. */
const READ_AHEAD_FACTOR = 4;

/**
 * The client's subscriptions and the messages waiting for them.
 *
 * Messages that arrive for no subscription (a resumed session's queued
 * messages arrive right after CONNACK, before the user subscribes again) are
 * held, never dropped, and handed to the first subscription that matches
 * them; while `bufferSize` of them are held, `backpressure()` stops the
 * reading. Messages for filters being unsubscribed are dropped: nobody will
 * take them.
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
  #held: Message[] = [];
  #heldReady: PromiseWithResolvers<void> | undefined = undefined;
  /** SUBSCRIBEs awaiting their SUBACK; while any is, held messages do not stop the reading. */
  #subscribing = 0;
  #blocked: Promise<void>[] = [];
  readonly #ids = new SubscriptionIds();

  /** An empty inbox; `bufferSize` bounds the held messages as it bounds each subscription. */
  constructor(state: ClientSessionState, bufferSize: number) {
    this.#state = state;
    this.#bufferSize = bufferSize;
  }

  /** Messages held for no subscription. */
  get heldCount(): number {
    return this.#held.length;
  }

  /** Hands a delivered message to every matching subscription, or holds it. */
  route(message: Message): void {
    let matched = false;
    const topic = message.topic;
    // MQTT 5.0: Subscription Identifiers say exactly which subscriptions matched.
    const ids = message.properties?.subscriptionIdentifiers;
    // Otherwise the topic tree finds the matching filters, whatever their number (issue 18).
    for (const sub of ids !== undefined ? this.#subscriptions : this.#subscriptions.match(topic)) {
      if (ids !== undefined && !this.#ids.routes(sub, topic, ids)) continue;
      matched = true;
      if (!pushMessage(sub, message)) this.#blocked.push(whenReady(sub));
    }
    if (matched) return;
    // Late messages of a filter whose UNSUBSCRIBE awaits its UNSUBACK.
    if (this.#state.unsubscribing((f) => topicMatches(localFilter(f), topic))) return;
    this.#held.push(message);
    if (this.#held.length >= this.#bufferSize && this.#subscribing === 0) {
      this.#heldReady ??= Promise.withResolvers();
      this.#blocked.push(this.#heldReady.promise);
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
    const limit = this.#bufferSize * READ_AHEAD_FACTOR;
    if (this.#held.length >= limit) return false;
    for (const sub of this.#subscriptions) if (sub.buffered >= limit) return false;
    return true;
  }

  /**
   * A SUBSCRIBE for `filters` is about to go out: held messages no longer stop
   * the reading (else its SUBACK could never be read), and the filters count
   * from now on, so unsubscribing another subscription of the same filter
   * meanwhile does not UNSUBSCRIBE it at the server under the new one.
   */
  subscribing(filters: readonly string[]): void {
    this.#subscribing++;
    this.#releaseHeld();
    for (const filter of filters) {
      this.#filterCounts.set(filter, (this.#filterCounts.get(filter) ?? 0) + 1);
    }
  }

  /** The SUBSCRIBE announced by {@linkcode subscribing} was answered or failed. */
  subscribed(): void {
    this.#subscribing--;
  }

  /**
   * A connection was accepted; without a session at the server, the session
   * re-registered every filter without its Subscription Identifier.
   */
  connected(sessionPresent: boolean): void {
    if (!sessionPresent) this.#ids.resubscribed();
  }

  /** Adds a new subscription and moves the held messages it matches into it, in arrival order. */
  add(sub: Subscription): void {
    this.#subscriptions.add(sub);
    this.#ids.subscribed(sub);
    if (this.#held.length === 0) return;
    const keep: Message[] = [];
    for (const message of this.#held) {
      if (sub.matches(message.topic)) pushMessage(sub, message);
      else keep.push(message);
    }
    this.#held = keep;
    this.#heldShrank();
  }

  /**
   * Removes a subscription; returns its filters that no other subscription
   * uses any more (to UNSUBSCRIBE), or undefined when it was not live.
   */
  remove(sub: Subscription): string[] | undefined {
    if (!this.#subscriptions.delete(sub)) return undefined;
    return sub.filters.filter((f) => this.release(f));
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
   * and they would otherwise keep the reading stopped.
   */
  forgetHeld(filters: readonly string[]): void {
    if (this.#held.length === 0) return;
    this.#held = this.#held.filter((m) =>
      !filters.some((f) => topicMatches(localFilter(f), m.topic))
    );
    this.#heldShrank();
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

  /** Ends every subscription (with `error`, if any) and lets a stopped reading go. */
  close(error: MqttError | undefined): void {
    for (const sub of this.#subscriptions) endSubscription(sub, error);
    this.#subscriptions.clear();
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
