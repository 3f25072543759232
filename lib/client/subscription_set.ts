/**
 * The client's live subscriptions, indexed by topic filter so that routing an
 * incoming message costs what the topic's levels cost, not what the number of
 * subscriptions costs (issue 18).
 *
 * @module
 */
import { TopicTree } from "../util/topic_tree.ts";
import { localFilter } from "../util/topic_filter.ts";
import type { Subscription } from "./subscription.ts";

/** Up to this many subscriptions, matching scans them (cheaper than the tree's walk). */
const SCAN_LIMIT = 16;

/**
 * A `Set` of subscriptions that also answers which of them match a topic
 * name, through a {@linkcode TopicTree} of their filters (a shared
 * subscription's by the part after `$share/{ShareName}/`, as
 * `Subscription.matches` does). Matches come back in the order the
 * subscriptions were added, as a scan of the set would find them.
 *
 * @example
 * ```ts
 * import { SubscriptionSet } from "./subscription_set.ts";
 * import { createSubscription } from "./subscription.ts";
 *
 * const subs = new SubscriptionSet();
 * const sport = createSubscription(["sport/#"], [0], {
 *   bufferSize: 10,
 *   unsubscribe: () => Promise.resolve(),
 * });
 * subs.add(sport);
 * console.log(subs.match("sport/tennis").length); // 1
 * console.log(subs.match("news").length); // 0
 * ```
 */
export class SubscriptionSet extends Set<Subscription> {
  /** Subscriptions by local filter; a filter several subscriptions hold lists each once. */
  readonly #tree: TopicTree<Subscription[]> = new TopicTree();
  /** Insertion order, to return matches in the order a scan of the set gives. */
  readonly #order: Map<Subscription, number> = new Map();
  #next = 0;

  /** Adds a subscription and indexes its filters. */
  override add(sub: Subscription): this {
    // The Set constructor calls add before the fields exist; it is never given values here.
    if (this.#order === undefined || this.#order.has(sub)) return super.add(sub);
    this.#order.set(sub, this.#next++);
    for (const filter of sub.filters) {
      const key = localFilter(filter);
      const list = this.#tree.get(key);
      if (list === undefined) this.#tree.set(key, [sub]);
      else if (!list.includes(sub)) list.push(sub);
    }
    return super.add(sub);
  }

  /** Removes a subscription and its filters from the index. */
  override delete(sub: Subscription): boolean {
    if (!this.#order.delete(sub)) return false;
    for (const filter of sub.filters) {
      const key = localFilter(filter);
      const list = this.#tree.get(key);
      if (list === undefined) continue;
      const i = list.indexOf(sub);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.#tree.delete(key);
    }
    return super.delete(sub);
  }

  /** Removes every subscription. */
  override clear(): void {
    this.#tree.clear();
    this.#order.clear();
    super.clear();
  }

  /**
   * The subscriptions with a filter matching the topic name `topic` (section
   * 4.7, MQTT-4.7.2-1 included), each once, in the order they were added.
   */
  match(topic: string): Subscription[] {
    const found: Subscription[] = [];
    // A few subscriptions are scanned faster than the tree is walked.
    if (this.size <= SCAN_LIMIT) {
      for (const sub of this) if (sub.matches(topic)) found.push(sub);
      return found;
    }
    this.#tree.match(topic, (list) => {
      for (let i = 0; i < list.length; i++) found.push(list[i]);
    });
    if (found.length < 2) return found;
    // Insertion sort by age (few are found), dropping a subscription found
    // again through another of its filters.
    const order = this.#order;
    let n = 1;
    for (let i = 1; i < found.length; i++) {
      const sub = found[i];
      const age = order.get(sub)!;
      let j = n - 1;
      while (j >= 0 && order.get(found[j])! > age) j--;
      if (j >= 0 && found[j] === sub) continue;
      for (let k = n; k > j + 1; k--) found[k] = found[k - 1];
      found[j + 1] = sub;
      n++;
    }
    found.length = n;
    return found;
  }
}
