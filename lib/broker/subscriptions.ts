/**
 * The broker's subscription index: which sessions want a topic, at what QoS.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import { TopicTree } from "../util/topic_tree.ts";

/**
 * Topic filters of every session, in a {@linkcode TopicTree}: a PUBLISH costs
 * the filters along its topic's levels, not every wildcard filter held.
 *
 * @example
 * ```ts
 * import { SubscriptionIndex } from "./subscriptions.ts";
 * const index = new SubscriptionIndex<string>();
 * index.add("a/+", "s1", 1);
 * index.add("a/b", "s1", 2);
 * index.add("#", "s2", 0);
 * console.log(index.match("a/b")); // Map { "s1" => 2, "s2" => 0 }
 * ```
 */
export class SubscriptionIndex<S> {
  readonly #tree = new TopicTree<Map<S, QoS>>();
  #size = 0;

  /** Number of (filter, subscriber) pairs. */
  get size(): number {
    return this.#size;
  }

  /** Adds or replaces `subscriber`'s subscription to `filter` (MQTT-3.8.4-3). */
  add(filter: string, subscriber: S, qos: QoS): void {
    let entry = this.#tree.get(filter);
    if (entry === undefined) {
      entry = new Map();
      this.#tree.set(filter, entry);
    }
    if (!entry.has(subscriber)) this.#size++;
    entry.set(subscriber, qos);
  }

  /** Removes `subscriber`'s subscription to `filter`; returns whether there was one. */
  remove(filter: string, subscriber: S): boolean {
    const entry = this.#tree.get(filter);
    if (entry === undefined || !entry.delete(subscriber)) return false;
    if (entry.size === 0) this.#tree.delete(filter);
    this.#size--;
    return true;
  }

  /**
   * Every subscriber with a filter matching `topic`, each once, with the
   * highest QoS among its matching filters (overlapping subscriptions give one
   * delivery at the maximum QoS, which MQTT 3.1.1 section 3.3.5 allows).
   */
  match(topic: string): Map<S, QoS> {
    const result = new Map<S, QoS>();
    this.#tree.match(topic, (entry) => {
      for (const [subscriber, qos] of entry) {
        const known = result.get(subscriber);
        if (known === undefined || known < qos) result.set(subscriber, qos);
      }
    });
    return result;
  }
}
