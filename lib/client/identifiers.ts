/**
 * MQTT 5.0 Subscription Identifiers on the receiving side: which local
 * subscriptions a message carrying identifiers belongs to.
 *
 * The server keeps one subscription per topic filter, with the identifier of
 * the latest SUBSCRIBE of that filter (MQTT-3.8.4-3 replaces it), and a
 * message carries the identifiers of the server subscriptions it matched
 * (MQTT-3.3.4-3). A local subscription takes the message when one of its
 * filters is such a server subscription: it matches the topic and, when it
 * has an identifier (its latest SUBSCRIBE's), the message carries it. So two
 * overlapping subscriptions of different filters are told apart.
 *
 * @module
 */
import { localFilter, topicMatches } from "../util/topic_filter.ts";
import { emptyMap, isEmptyStandIn } from "../util/empty.ts";

/** What routing needs of a subscription. */
export interface IdentifiedSubscription {
  /** Its topic filters. */
  readonly filters: readonly string[];
  /** The Subscription Identifier its SUBSCRIBE carried, if any. */
  readonly identifier: number | undefined;
}

/**
 * The latest Subscription Identifier of each topic filter.
 *
 * @example
 * ```ts
 * import { SubscriptionIds } from "./identifiers.ts";
 * const ids = new SubscriptionIds();
 * const older = { filters: ["a/#"], identifier: 1 };
 * const newer = { filters: ["a/#"], identifier: 2 };
 * ids.subscribed(older);
 * ids.subscribed(newer);
 * console.log(ids.routes(older, "a/b", [2]), ids.routes(older, "a/b", [1])); // true false
 * ```
 */
export class SubscriptionIds {
  /** Empty until first needed: an idle connection holds no table (issue 18). */
  #latest: Map<string, number | undefined> = emptyMap();

  /** A SUBSCRIBE was granted: its filters now have its identifier (or none). */
  subscribed(sub: IdentifiedSubscription): void {
    if (isEmptyStandIn(this.#latest)) this.#latest = new Map();
    for (const filter of sub.filters) this.#latest.set(filter, sub.identifier);
  }

  /**
   * The server lost our session: the session subscribed every filter again,
   * without identifiers, so none of them has one any more.
   */
  resubscribed(): void {
    for (const filter of this.#latest.keys()) this.#latest.set(filter, undefined);
  }

  /** Whether a message on `topic` carrying `ids` belongs to `sub`. */
  routes(sub: IdentifiedSubscription, topic: string, ids: readonly number[]): boolean {
    const latest = this.#latest;
    for (const filter of sub.filters) {
      const id = latest.has(filter) ? latest.get(filter) : sub.identifier;
      // The identifier says the server subscription matched; the filter must match as well,
      // so an identifier reused after wrapping around never misroutes.
      if ((id === undefined || ids.includes(id)) && topicMatches(localFilter(filter), topic)) {
        return true;
      }
    }
    return false;
  }
}
