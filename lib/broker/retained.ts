/**
 * The broker's retained messages: the last retained PUBLISH of each topic.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import { topicMatches } from "../util/topic_filter.ts";

/** One retained message. */
export interface RetainedMessage {
  /** Topic name it was published to. */
  readonly topic: string;
  /** Its payload (a private copy, never empty). */
  readonly payload: Uint8Array;
  /** The QoS it was published with. */
  readonly qos: QoS;
}

/**
 * Retained messages by topic name.
 *
 * @example
 * ```ts
 * import { RetainedStore } from "./retained.ts";
 * const store = new RetainedStore();
 * store.update("a/b", new Uint8Array([1]), 1);
 * console.log([...store.match("a/+")].length); // 1
 * store.update("a/b", new Uint8Array(0), 0); // an empty payload clears it
 * console.log(store.size); // 0
 * ```
 */
export class RetainedStore {
  #messages = new Map<string, RetainedMessage>();

  /** Number of retained messages. */
  get size(): number {
    return this.#messages.size;
  }

  /**
   * Stores a retained PUBLISH, replacing the topic's previous one
   * (MQTT-3.3.1-5); an empty payload removes it instead (MQTT-3.3.1-10/-11).
   */
  update(topic: string, payload: Uint8Array, qos: QoS): void {
    if (payload.length === 0) {
      this.#messages.delete(topic);
      return;
    }
    // A copy: a decoded payload may be a view of a whole network chunk that
    // would otherwise stay alive as long as the message is retained.
    this.#messages.set(topic, { topic, payload: payload.slice(), qos });
  }

  /** The retained messages whose topic matches `filter` (MQTT-3.3.1-6). */
  *match(filter: string): IterableIterator<RetainedMessage> {
    const exact = !filter.includes("+") && !filter.includes("#");
    if (exact) {
      const message = this.#messages.get(filter);
      if (message !== undefined) yield message;
      return;
    }
    for (const message of this.#messages.values()) {
      if (topicMatches(filter, message.topic)) yield message;
    }
  }

  /** Forgets every retained message. */
  clear(): void {
    this.#messages.clear();
  }
}
