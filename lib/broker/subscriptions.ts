/**
 * The broker's subscription index: which sessions want a topic, at what QoS,
 * with which MQTT 5.0 options.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import { TopicTree } from "../util/topic_tree.ts";

/** One subscription as granted: its QoS and, under MQTT 5.0, its options (section 3.8.3.1). */
export interface Grant {
  /** The granted QoS: messages go out at the lower of theirs and this. */
  readonly qos: QoS;
  /** No Local: not sent messages its own client published (MQTT-3.8.3-3). */
  readonly noLocal?: boolean;
  /** Retain As Published: forwarded with the RETAIN flag they were published with. */
  readonly retainAsPublished?: boolean;
  /** Retain Handling at subscription time: kept so a persisted subscription says the same. */
  readonly retainHandling?: 0 | 1 | 2;
  /** The Subscription Identifier of the SUBSCRIBE, sent with each message it matches. */
  readonly identifier?: number;
}

/** What matched a topic for one subscriber, merged over its overlapping subscriptions. */
export interface Match {
  /** The highest QoS among its matching subscriptions. */
  readonly qos: QoS;
  /** Whether any matching subscription has Retain As Published. */
  readonly retainAsPublished?: boolean;
  /** The Subscription Identifier of a single matching subscription. */
  readonly identifier?: number;
  /** The Subscription Identifiers of several matching subscriptions (MQTT-3.3.4-3). */
  readonly identifiers?: number[];
}

/** The Subscription Identifiers a match carries, in the order its subscriptions matched. */
export function identifiersOf(match: Match): number[] | undefined {
  if (match.identifiers !== undefined) return match.identifiers;
  return match.identifier === undefined ? undefined : [match.identifier];
}

function merge(a: Match, b: Match): Match {
  const ids = [...(identifiersOf(a) ?? []), ...(identifiersOf(b) ?? [])];
  const merged: { qos: QoS; retainAsPublished?: boolean; identifiers?: number[] } = {
    qos: a.qos < b.qos ? b.qos : a.qos,
  };
  if (a.retainAsPublished || b.retainAsPublished) merged.retainAsPublished = true;
  if (ids.length > 0) merged.identifiers = ids;
  return merged;
}

/**
 * Topic filters of every session, in a {@linkcode TopicTree}: a PUBLISH costs
 * the filters along its topic's levels, not every wildcard filter held.
 *
 * @example
 * ```ts
 * import { SubscriptionIndex } from "./subscriptions.ts";
 * const index = new SubscriptionIndex<string>();
 * index.add("a/+", "s1", { qos: 1 });
 * index.add("a/b", "s1", { qos: 2 });
 * index.add("#", "s2", { qos: 0, noLocal: true });
 * console.log(index.match("a/b", "s2")); // Map { "s1" => { qos: 2 } }
 * ```
 */
export class SubscriptionIndex<S> {
  readonly #tree = new TopicTree<Map<S, Grant>>();
  #size = 0;

  /** Number of (filter, subscriber) pairs. */
  get size(): number {
    return this.#size;
  }

  /** Adds or replaces `subscriber`'s subscription to `filter` (MQTT-3.8.4-3); returns whether it existed. */
  add(filter: string, subscriber: S, grant: Grant): boolean {
    let entry = this.#tree.get(filter);
    if (entry === undefined) {
      entry = new Map();
      this.#tree.set(filter, entry);
    }
    const existed = entry.has(subscriber);
    if (!existed) this.#size++;
    entry.set(subscriber, grant);
    return existed;
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
   * delivery at the maximum QoS, which MQTT 3.1.1 section 3.3.5 and MQTT 5.0
   * section 3.3.4 allow, carrying every matching Subscription Identifier).
   * A No Local subscription of `publisher` does not match (MQTT-3.8.3-3).
   */
  match(topic: string, publisher?: S): Map<S, Match> {
    const result = new Map<S, Match>();
    this.#tree.match(topic, (entry) => {
      for (const [subscriber, grant] of entry) {
        if (grant.noLocal && subscriber === publisher) continue;
        const known = result.get(subscriber);
        result.set(subscriber, known === undefined ? grant : merge(known, grant));
      }
    });
    return result;
  }
}
