/**
 * The broker's retained messages: the last retained PUBLISH of each topic,
 * in a topic tree, within bounds.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import type { PublishProperties } from "../codec/properties.ts";
import { TopicTree } from "../util/topic_tree.ts";
import { ExpiryQueue } from "./expiry_queue.ts";

/** One retained message. */
export interface RetainedMessage {
  /** Topic name it was published to. */
  readonly topic: string;
  /** Its payload (its own buffer, never empty). */
  readonly payload: Uint8Array;
  /** The QoS it was published with. */
  readonly qos: QoS;
  /** MQTT 5.0 properties it was published with (kept for later subscribers). */
  readonly properties?: PublishProperties;
  /** When its Message Expiry Interval ends (ms, `performance.now()`); it is dropped then. */
  readonly expiresAt?: number;
  /**
   * Wall-clock time it was published (ms since the Unix epoch), kept with 5.0
   * properties so that persistence can restart its expiry where it was.
   */
  readonly publishedAt?: number;
}

/** Bounds of a {@linkcode RetainedStore}. */
export interface RetainedLimits {
  /** Most messages held. */
  maxRetained: number;
  /** Most topic plus payload bytes held (topics counted as UTF-16 length). */
  maxRetainedBytes: number;
}

/** What {@linkcode RetainedStore.update} did. */
export type RetainedUpdate = "stored" | "cleared" | "full";

/**
 * Retained messages by topic name, bounded by count and bytes.
 *
 * The bound's policy: when full, a message for a topic that holds none is not
 * retained (`update` answers `"full"`); replacing or clearing a held topic
 * always works. So a flood of new topics cannot push out what is retained.
 *
 * @example
 * ```ts
 * import { RetainedStore } from "./retained.ts";
 * const store = new RetainedStore({ maxRetained: 2, maxRetainedBytes: 1024 });
 * store.update("a/b", new Uint8Array([1]), 1);
 * console.log([...store.match("a/+")].length); // 1
 * store.update("a/c", new Uint8Array([2]), 0);
 * console.log(store.update("a/d", new Uint8Array([3]), 0)); // "full"
 * store.update("a/b", new Uint8Array(0), 0); // an empty payload clears it
 * console.log(store.size); // 1
 * ```
 */
export class RetainedStore {
  readonly #messages = new TopicTree<RetainedMessage>();
  readonly #limits: RetainedLimits;
  /** The held messages that have an expiry, by when it ends (and stale entries). */
  readonly #expiring = new ExpiryQueue();
  /** Held messages with an expiry. */
  #expiringLive = 0;
  #bytes = 0;

  /** Creates an empty store holding at most `limits`. */
  constructor(limits: RetainedLimits) {
    this.#limits = limits;
  }

  /** Number of retained messages. */
  get size(): number {
    return this.#messages.size;
  }

  /** The message `topic` retains, if any. */
  get(topic: string): RetainedMessage | undefined {
    return this.#messages.get(topic);
  }

  /** Topic plus payload bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Stores a retained PUBLISH, replacing the topic's previous one
   * (MQTT-3.3.1-5); an empty payload removes it instead (MQTT-3.3.1-10/-11).
   * The payload is kept as it is: the caller hands over a buffer of its own.
   */
  update(
    topic: string,
    payload: Uint8Array,
    qos: QoS,
    extra?: Pick<RetainedMessage, "properties" | "expiresAt" | "publishedAt">,
  ): RetainedUpdate {
    const messages = this.#messages;
    const held = messages.get(topic);
    if (payload.length === 0) {
      if (held !== undefined) {
        messages.delete(topic);
        this.#bytes -= topic.length + held.payload.length;
        if (held.expiresAt !== undefined) this.#expiringLive--;
      }
      return "cleared";
    }
    const limits = this.#limits;
    const size = topic.length + payload.length;
    const freed = held === undefined ? 0 : topic.length + held.payload.length;
    if (
      (held === undefined && messages.size >= limits.maxRetained) ||
      this.#bytes - freed + size > limits.maxRetainedBytes
    ) return "full";
    const message: RetainedMessage = extra === undefined
      ? { topic, payload, qos }
      : { topic, payload, qos, ...extra };
    messages.set(topic, message);
    this.#bytes += size - freed;
    if (held?.expiresAt !== undefined) this.#expiringLive--;
    if (message.expiresAt !== undefined) {
      this.#expiringLive++;
      this.#expiring.add(message);
      // Replaced and cleared messages leave stale entries: keep them from outgrowing the live.
      if (this.#expiring.length > 2 * this.#expiringLive + 64) {
        this.#expiring.rebuild(this.#liveExpiring());
      }
    }
    return "stored";
  }

  /** When the earliest held expiry ends (ms, `performance.now()`), if any is held. */
  nextExpiry(): number | undefined {
    return this.#expiring.next();
  }

  /**
   * Up to `max` held messages whose Message Expiry Interval has ended by
   * `now`, earliest first; the caller drops them. Bounded work: at most `max`
   * entries are looked at.
   */
  takeExpired(now: number, max: number): RetainedMessage[] {
    return this.#expiring.take(now, max, (m) => this.#messages.get(m.topic) === m);
  }

  *#liveExpiring(): Generator<RetainedMessage, void, undefined> {
    for (const [, message] of this.#messages.entries()) {
      if (message.expiresAt !== undefined) yield message;
    }
  }

  /**
   * The retained messages whose topic matches `filter` (MQTT-3.3.1-6), lazily:
   * the caller takes them as fast as the subscriber takes them.
   */
  *match(filter: string): Generator<RetainedMessage, void, undefined> {
    for (const [, message] of this.#messages.select(filter)) yield message;
  }

  /**
   * {@linkcode RetainedStore.match} that also yields `undefined` after every
   * `steps` topic levels looked at without a match, for a caller to pause at.
   */
  *matchPaced(
    filter: string,
    steps: number,
  ): Generator<RetainedMessage | undefined, void, undefined> {
    for (const entry of this.#messages.selectPaced(filter, steps)) yield entry?.[1];
  }

  /** Every retained message. */
  *all(): Generator<RetainedMessage, void, undefined> {
    for (const [, message] of this.#messages.entries()) yield message;
  }

  /** Forgets every retained message. */
  clear(): void {
    this.#messages.clear();
    this.#expiring.clear();
    this.#expiringLive = 0;
    this.#bytes = 0;
  }
}
