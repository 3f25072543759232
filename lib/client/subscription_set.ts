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
  /**
   * Subscriptions by local filter (a filter several subscriptions hold lists
   * each once) and their insertion order, to return matches in the order a
   * scan of the set gives. Built once the set outgrows SCAN_LIMIT: most
   * clients hold a few subscriptions and pay nothing for the index.
   */
  #index: { tree: TopicTree<Subscription[]>; order: Map<Subscription, number> } | undefined =
    undefined;
  #next = 0;

  /** Adds a subscription and indexes its filters. */
  override add(sub: Subscription): this {
    if (this.has(sub)) return this;
    super.add(sub);
    if (this.#index !== undefined) this.#indexOne(this.#index, sub);
    else if (this.size > SCAN_LIMIT) {
      const index = this.#index = { tree: new TopicTree(), order: new Map() };
      for (const each of this) this.#indexOne(index, each);
    }
    return this;
  }

  #indexOne(
    index: { tree: TopicTree<Subscription[]>; order: Map<Subscription, number> },
    sub: Subscription,
  ): void {
    index.order.set(sub, this.#next++);
    for (const filter of sub.filters) {
      const key = localFilter(filter);
      const list = index.tree.get(key);
      if (list === undefined) index.tree.set(key, [sub]);
      else if (!list.includes(sub)) list.push(sub);
    }
  }

  /** Removes a subscription and its filters from the index. */
  override delete(sub: Subscription): boolean {
    if (!super.delete(sub)) return false;
    const index = this.#index;
    if (index === undefined) return true;
    index.order.delete(sub);
    for (const filter of sub.filters) {
      const key = localFilter(filter);
      const list = index.tree.get(key);
      if (list === undefined) continue;
      const i = list.indexOf(sub);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) index.tree.delete(key);
    }
    return true;
  }

  /** Removes every subscription. */
  override clear(): void {
    this.#index = undefined;
    super.clear();
  }

  /**
   * The subscriptions with a filter matching the topic name `topic` (section
   * 4.7, MQTT-4.7.2-1 included), each once, in the order they were added.
   */
  match(topic: string): Subscription[] {
    const found: Subscription[] = [];
    const index = this.#index;
    // A few subscriptions are scanned faster than the tree is walked.
    if (index === undefined || this.size <= SCAN_LIMIT) {
      for (const sub of this) if (sub.matches(topic)) found.push(sub);
      return found;
    }
    index.tree.match(topic, (list) => {
      for (let i = 0; i < list.length; i++) found.push(list[i]);
    });
    if (found.length < 2) return found;
    // Insertion sort by age (few are found), dropping a subscription found
    // again through another of its filters.
    const order = index.order;
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
