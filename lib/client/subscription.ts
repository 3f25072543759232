/**
 * A subscription: the filters granted by one SUBSCRIBE and a bounded buffer
 * of the messages matching them, consumed with `for await`.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import { MqttError } from "../errors.ts";
import { type Message, messageSettled, settleMessage } from "./message.ts";
import { localFilter, topicMatches } from "../util/topic_filter.ts";

/**
 * When a subscription's QoS 1/2 messages are acknowledged (PUBACK / PUBREC):
 * - `"consume"`: once the consumer has taken the message and asks for the
 *   next one (the next `for await` step) or leaves the loop;
 * - `"manual"`: when the consumer calls `msg.ack()`;
 * - `"receive"`: when the message enters the subscription's buffer.
 *
 * See `SubscribeOptions.ack` for what each promises.
 */
export type AckMode = "consume" | "manual" | "receive";

/** How a {@linkcode Subscription} is wired to its client. */
export interface SubscriptionOptions {
  /**
   * Messages buffered before {@linkcode Subscription.push} asks the reader to
   * wait. An integer of at least 1.
   */
  bufferSize: number;
  /** When messages are acknowledged. @default {"consume"} */
  ack?: AckMode;
  /** Sends UNSUBSCRIBE for this subscription; called at most once. */
  unsubscribe: (sub: Subscription) => Promise<void>;
  /** MQTT 5.0 Subscription Identifier its SUBSCRIBE carried, if any. */
  identifier?: number;
}

const RESOLVED: Promise<void> = Promise.resolve();
const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });
const DONE_PROMISE: Promise<IteratorResult<Message, undefined>> = Promise.resolve(DONE);
const INITIAL_CAPACITY = 16; // a power of two: ring indexes wrap with a mask
/** With `ack: "manual"`: how many handed-out messages are tracked before the settled ones are swept. */
const HANDED_OUT_SWEEP = 64;

// Let the iterator and the client reach the subscription's private side without public methods.
let nextOf: (sub: Subscription) => Promise<IteratorResult<Message, undefined>>;
let make: (filters: string[], granted: QoS[], options: SubscriptionOptions) => Subscription;
let pushOf: (sub: Subscription, message: Message) => boolean;
let readyOf: (sub: Subscription) => Promise<void>;
let endOf: (sub: Subscription, error?: Error, closing?: boolean) => void;
let leaveOf: (sub: Subscription) => Promise<void>;

/**
 * The messages of one SUBSCRIBE, as an async iterable with backpressure.
 *
 * The client's read loop hands it each matching message; once the buffer
 * holds `bufferSize` messages the loop waits for the consumer before reading
 * more from the socket, so a slow consumer slows the connection instead of
 * growing memory or losing messages. Subscriptions are made by
 * `client.subscribe()`.
 *
 * Breaking out of `for await`, `await using`, or {@linkcode unsubscribe} sends
 * UNSUBSCRIBE and ends the iteration. One consumer at a time: a second
 * concurrent iterator throws `MqttError` with code `INVALID_STATE`.
 *
 * QoS 1/2 messages are acknowledged as its {@linkcode AckMode} says (by
 * default once the loop asks for the next message or is left); when the
 * application ends it, the buffered messages are acknowledged and dropped
 * (when the client closes they are not: a persistent session gets them
 * again). With
 * acknowledgement on consume, unacknowledged QoS 1/2 messages do not stop
 * the reading (the broker's in-flight window bounds them) until a buffer
 * holds 4 × `bufferSize`.
 *
 * @example
 * ```ts ignore
 * const sub = await client.subscribe("sensors/+/temp", { qos: 1 });
 * for await (const msg of sub) {
 *   console.log(msg.topic, msg.text());
 *   if (msg.text() === "stop") break; // unsubscribes
 * }
 * ```
 */
export class Subscription implements AsyncIterable<Message>, AsyncDisposable {
  /** The topic filters of this subscription, in SUBSCRIBE order. */
  readonly filters: readonly string[];
  /** The QoS granted by the server for each filter, in the same order. */
  readonly granted: readonly QoS[];
  /** When this subscription's QoS 1/2 messages are acknowledged (see {@linkcode AckMode}). */
  readonly ack: AckMode;
  /**
   * MQTT 5.0 Subscription Identifier of its SUBSCRIBE (when the server
   * supports them): messages carrying it are routed here exactly.
   */
  readonly identifier: number | undefined;

  /** The filters local matching uses: a shared subscription's without `$share/{ShareName}/`. */
  readonly #matchFilters: readonly string[];
  #bufferSize: number;
  #unsubscribeFn: (sub: Subscription) => Promise<void>;
  #ring: (Message | undefined)[] = new Array(INITIAL_CAPACITY);
  #head = 0;
  #length = 0;
  #ended = false;
  #error: Error | undefined;
  #consumer: SubscriptionIterator | undefined;
  #waiting: PromiseWithResolvers<IteratorResult<Message, undefined>> | undefined;
  #readyWaiter: PromiseWithResolvers<void> | undefined;
  #unsubscribed: Promise<void> | undefined;
  /** With `ack: "consume"`: the message last handed to the consumer, acknowledged when it asks again. */
  #inHand: Message | undefined;
  /**
   * With `ack: "manual"`: QoS 1/2 messages handed to the consumer, some not yet
   * `ack()`ed (the settled ones are swept when the list doubles).
   */
  #handedOut: Message[] = [];
  #sweepAt = HANDED_OUT_SWEEP;
  /**
   * Ended because the client is closing or its connection ended for good: the
   * messages left unconsumed are declined (a persistent session gets them
   * again), not acknowledged as when the application ends the subscription.
   */
  #closing = false;

  static {
    nextOf = (sub) => sub.#next();
    make = (filters, granted, options) => new Subscription(filters, granted, options);
    pushOf = (sub, message) => sub.#push(message);
    readyOf = (sub) => sub.#ready();
    endOf = (sub, error, closing) => sub.#end(error, closing);
    leaveOf = (sub) => sub.#leave();
  }

  /** Made by the client after a successful SUBACK; see {@linkcode createSubscription}. */
  private constructor(filters: string[], granted: QoS[], options: SubscriptionOptions) {
    const { bufferSize } = options;
    if (!Number.isInteger(bufferSize) || bufferSize < 1) {
      throw new MqttError(
        "INVALID_OPTION",
        `bufferSize must be an integer of at least 1, got ${bufferSize}`,
      );
    }
    this.filters = Object.freeze([...filters]);
    this.granted = Object.freeze([...granted]);
    this.ack = checkAckMode(options.ack);
    this.#matchFilters = filters.map(localFilter);
    this.identifier = options.identifier;
    this.#bufferSize = bufferSize;
    this.#unsubscribeFn = options.unsubscribe;
  }

  /** Messages buffered and not yet consumed. */
  get buffered(): number {
    return this.#length;
  }

  /** How many buffered messages make the reading wait for the consumer (`bufferSize`). */
  get bufferSize(): number {
    return this.#bufferSize;
  }

  /** Whether the subscription has ended: no more messages will be accepted. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Whether `topic` matches any of this subscription's filters (section 4.7);
   * a shared subscription's filter matches by the part after `$share/{ShareName}/`.
   *
   * @example
   * ```ts
   * import { createSubscription } from "./subscription.ts";
   * const sub = createSubscription(["a/#", "b/+"], [0, 0], { bufferSize: 1, unsubscribe: async () => {} });
   * console.log(sub.matches("a"), sub.matches("b/c/d")); // true false
   * ```
   */
  matches(topic: string): boolean {
    const filters = this.#matchFilters;
    for (let i = 0; i < filters.length; i++) {
      if (topicMatches(filters[i], topic)) return true;
    }
    return false;
  }

  /** See {@linkcode pushMessage}. */
  #push(message: Message): boolean {
    if (this.#ended) {
      // Nobody will consume it here: acknowledged when the application ended the subscription.
      settleMessage(message, !this.#closing);
      return true;
    }
    if (this.ack === "receive") settleMessage(message, true);
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      // The consumer is parked on an empty buffer: hand over directly.
      this.#waiting = undefined;
      this.#handOut(message);
      waiting.resolve({ done: false, value: message });
      return true;
    }
    let ring = this.#ring;
    if (this.#length === ring.length) ring = this.#grow();
    ring[(this.#head + this.#length) & (ring.length - 1)] = message;
    this.#length++;
    return this.#length < this.#bufferSize;
  }

  /** See {@linkcode whenReady}. */
  #ready(): Promise<void> {
    if (this.#ended || this.#length < this.#bufferSize) return RESOLVED;
    this.#readyWaiter ??= Promise.withResolvers<void>();
    return this.#readyWaiter.promise;
  }

  /** See {@linkcode endSubscription}. */
  #end(error?: Error, closing = false): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#closing = closing;
    // Ended by an unsubscribe: the consumer may never ask again, and its message
    // in hand must not hold back every later acknowledgement.
    if (error === undefined) this.#consumed();
    // Ended by the application (client.unsubscribe): the consumer may still read the
    // buffered messages, but it need not, so they are acknowledged now; left
    // unacknowledged, each would keep one of the server's in-flight slots.
    if (error === undefined && !closing) this.#settleAll();
    this.#releaseReady();
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      // A parked consumer means the buffer is empty: finish it now.
      this.#waiting = undefined;
      if (error !== undefined) {
        this.#error = undefined;
        waiting.reject(error);
      } else {
        waiting.resolve(DONE);
      }
    }
  }

  /**
   * Sends UNSUBSCRIBE (once) and ends the iteration at once, discarding
   * buffered messages. The message last handed to the consumer counts as
   * consumed (with `ack: "consume"`); the buffered ones, those arriving
   * until the UNSUBACK, and (with `ack: "manual"`) those handed out and never
   * `ack()`ed are acknowledged: the application chose not to consume them
   * (see `SubscribeOptions.ack`). Every call returns the same promise.
   *
   * @example
   * ```ts ignore
   * await sub.unsubscribe();
   * ```
   */
  unsubscribe(): Promise<void> {
    if (this.#unsubscribed !== undefined) return this.#unsubscribed;
    this.#consumed(); // leaving: the message in hand counts as consumed
    if (!this.#closing) this.#settleAll();
    this.#clear();
    this.#error = undefined; // the caller asked to stop: an earlier end(error) is moot
    this.#end();
    try {
      this.#unsubscribed = this.#unsubscribeFn(this);
    } catch (error) {
      this.#unsubscribed = Promise.reject(error);
    }
    return this.#unsubscribed;
  }

  /**
   * Unsubscribes, for `await using`.
   *
   * @example
   * ```ts ignore
   * await using sub = await client.subscribe("a/b");
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.unsubscribe();
  }

  /**
   * The iterator of `for await`. Its `return()` (on `break`, `throw` or
   * `return` out of the loop) unsubscribes; a failed UNSUBSCRIBE does not
   * throw out of the loop, `await sub.unsubscribe()` reports it.
   *
   * @example
   * ```ts ignore
   * for await (const msg of sub) console.log(msg.text());
   * ```
   */
  [Symbol.asyncIterator](): AsyncIterator<Message, undefined> {
    const drained = this.#ended && this.#length === 0 && this.#error === undefined;
    if (this.#consumer !== undefined && !this.#consumer.finished && !drained) {
      throw new MqttError(
        "INVALID_STATE",
        `subscription to ${this.filters.join(", ")} already has a consumer; iterate it once`,
      );
    }
    this.#consumer = new SubscriptionIterator(this);
    return this.#consumer;
  }

  /** The consumer left its loop: the message in hand counts as consumed, then UNSUBSCRIBE. */
  #leave(): Promise<void> {
    this.#consumed();
    return this.unsubscribe();
  }

  /**
   * With `ack: "consume"`: the consumer is done with the message in hand.
   * `batched` when it takes a buffered message next: its acknowledgement can
   * share a write with the next ones (one write per message would cost a
   * system call each; a consumer that waits next flushes them at once).
   */
  #consumed(batched = false): void {
    const inHand = this.#inHand;
    if (inHand === undefined) return;
    this.#inHand = undefined;
    settleMessage(inHand, true, batched);
  }

  /** Gives a message to the consumer: in hand (`ack: "consume"`) or tracked until `ack()` (`"manual"`). */
  #handOut(message: Message): void {
    if (this.ack === "consume") {
      this.#inHand = message;
    } else if (this.ack === "manual" && message.qos > 0) {
      let list = this.#handedOut;
      if (list.length >= this.#sweepAt) {
        list = this.#handedOut = list.filter((m) => !messageSettled(m));
        this.#sweepAt = Math.max(HANDED_OUT_SWEEP, list.length * 2);
      }
      list.push(message);
    }
  }

  /**
   * The application ended the subscription: every message it holds, buffered or
   * handed out and never `ack()`ed, is acknowledged (MQTT-4.5.0-2: acknowledged
   * whether or not the application processes it). Declined, each would keep one
   * of the server's in-flight slots (stopping QoS 1/2 delivery on every filter
   * once the window is full), and the next connection would get it again with no
   * subscription for it. Acknowledgements still leave in arrival order.
   */
  #settleAll(): void {
    const ring = this.#ring;
    for (let k = 0; k < this.#length; k++) {
      settleMessage(ring[(this.#head + k) & (ring.length - 1)] as Message, true);
    }
    const handedOut = this.#handedOut;
    this.#handedOut = [];
    for (const message of handedOut) settleMessage(message, true);
  }

  #next(): Promise<IteratorResult<Message, undefined>> {
    // Asking for the next message is what says the last one was consumed.
    this.#consumed(this.#length > 0);
    if (this.#length > 0) {
      const ring = this.#ring;
      const message = ring[this.#head] as Message;
      ring[this.#head] = undefined;
      this.#head = (this.#head + 1) & (ring.length - 1);
      this.#length--;
      if (this.#readyWaiter !== undefined && this.#length < this.#bufferSize) this.#releaseReady();
      this.#handOut(message);
      return Promise.resolve({ done: false, value: message });
    }
    if (this.#ended) {
      const error = this.#error;
      if (error !== undefined) {
        this.#error = undefined; // thrown once; the iteration is over after it
        return Promise.reject(error);
      }
      return DONE_PROMISE;
    }
    if (this.#waiting !== undefined) {
      return Promise.reject(
        new MqttError("INVALID_STATE", "next() called again before the previous call settled"),
      );
    }
    this.#waiting = Promise.withResolvers();
    return this.#waiting.promise;
  }

  #grow(): (Message | undefined)[] {
    const old = this.#ring;
    const ring: (Message | undefined)[] = new Array(old.length * 2);
    for (let k = 0; k < this.#length; k++) ring[k] = old[(this.#head + k) & (old.length - 1)];
    this.#ring = ring;
    this.#head = 0;
    return ring;
  }

  /**
   * Discards the buffered messages; those not settled before (the client is
   * closing) are declined, so that a persistent session gets them again.
   */
  #clear(): void {
    if (this.#length > 0) {
      const ring = this.#ring;
      for (let k = 0; k < this.#length; k++) {
        settleMessage(ring[(this.#head + k) & (ring.length - 1)] as Message, false);
      }
      this.#ring = new Array(INITIAL_CAPACITY);
    }
    this.#head = 0;
    this.#length = 0;
  }

  #releaseReady(): void {
    const ready = this.#readyWaiter;
    if (ready !== undefined) {
      this.#readyWaiter = undefined;
      ready.resolve();
    }
  }
}

/** The single-consumer iterator of a {@linkcode Subscription}. */
class SubscriptionIterator implements AsyncIterator<Message, undefined> {
  finished = false;
  #sub: Subscription;

  constructor(sub: Subscription) {
    this.#sub = sub;
  }

  next(): Promise<IteratorResult<Message, undefined>> {
    return this.finished ? DONE_PROMISE : nextOf(this.#sub);
  }

  async return(): Promise<IteratorResult<Message, undefined>> {
    this.finished = true;
    try {
      await leaveOf(this.#sub);
    } catch {
      // Leaving a loop must not throw because UNSUBSCRIBE failed (say the
      // connection is gone): the caller sees that error from sub.unsubscribe().
    }
    return DONE;
  }
}

/**
 * Creates a subscription; the client does this after a successful SUBACK.
 * Not part of the public API.
 *
 * @example
 * ```ts
 * import { createSubscription } from "./subscription.ts";
 * const sub = createSubscription(["a/+"], [1], { bufferSize: 100, unsubscribe: async () => {} });
 * console.log(sub.matches("a/b")); // true
 * ```
 */
export function createSubscription(
  filters: string[],
  granted: QoS[],
  options: SubscriptionOptions,
): Subscription {
  return make(filters, granted, options);
}

/**
 * Hands a message to the subscription's consumer. Never drops it: the buffer
 * may exceed `bufferSize`; the return value is the backpressure signal.
 * Returns `false` when the buffer is full, and the caller must then await
 * {@linkcode whenReady} before reading more. A message pushed after the
 * subscription ended is discarded (nobody will consume it) and `true` is returned.
 *
 * @example
 * ```ts
 * import { createSubscription, pushMessage } from "./subscription.ts";
 * import { Message } from "./message.ts";
 * const sub = createSubscription(["a"], [0], { bufferSize: 1, unsubscribe: async () => {} });
 * const msg = new Message({ type: "publish", topic: "a", payload: new Uint8Array(), qos: 0, retain: false, dup: false });
 * console.log(pushMessage(sub, msg)); // false: the buffer of 1 is full
 * ```
 */
export function pushMessage(sub: Subscription, message: Message): boolean {
  return pushOf(sub, message);
}

/**
 * Resolves once the subscription's buffer is below `bufferSize` or it has
 * ended; one shared, already-resolved promise when that is already so.
 *
 * @example
 * ```ts
 * import { createSubscription, whenReady } from "./subscription.ts";
 * const sub = createSubscription(["a"], [0], { bufferSize: 1, unsubscribe: async () => {} });
 * await whenReady(sub); // empty: ready at once
 * ```
 */
export function whenReady(sub: Subscription): Promise<void> {
  return readyOf(sub);
}

/**
 * Ends a subscription: no more messages are accepted; the consumer gets the
 * buffered ones, then the iteration finishes, or throws `error` if one is
 * given (for example the connection was lost). Without `error` and
 * `closing` (the application unsubscribed), the buffered QoS 1/2 messages are
 * acknowledged at once, read or not; with `closing` (the client is closing)
 * those the consumer does not read are declined, so a persistent session gets
 * them again. Idempotent: the first call wins.
 *
 * @example
 * ```ts
 * import { createSubscription, endSubscription } from "./subscription.ts";
 * const sub = createSubscription(["a"], [0], { bufferSize: 1, unsubscribe: async () => {} });
 * endSubscription(sub);
 * console.log(sub.ended); // true
 * ```
 */
export function endSubscription(sub: Subscription, error?: Error, closing = false): void {
  endOf(sub, error, closing);
}

/**
 * Checks a subscription's `ack` option: its {@linkcode AckMode}, `"consume"`
 * when undefined; anything else throws `MqttError` with code `INVALID_OPTION`.
 *
 * @example
 * ```ts
 * import { checkAckMode } from "./subscription.ts";
 * console.log(checkAckMode(undefined), checkAckMode("manual")); // consume manual
 * ```
 */
export function checkAckMode(ack: unknown): AckMode {
  if (ack === undefined) return "consume";
  if (ack !== "consume" && ack !== "manual" && ack !== "receive") {
    throw new MqttError(
      "INVALID_OPTION",
      `ack must be "consume", "manual" or "receive", got ${String(ack)}`,
    );
  }
  return ack;
}
