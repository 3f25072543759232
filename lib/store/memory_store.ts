/**
 * A {@linkcode Store} in memory: what survives a connection but not the
 * process. A `SessionState` without a store already keeps all of this in
 * memory at no extra cost; a `MemoryStore` is for handing session state from
 * one `SessionState` to a later one in the same process, and for tests.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import {
  type InflightRecord,
  type PublishRecord,
  type Store,
  type StoredSession,
  subscriptionByte,
  type SubscriptionFlags,
  subscriptionRecord,
} from "./store.ts";
import { Queue } from "../util/queue.ts";

/**
 * Keeps session records in memory.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./memory_store.ts";
 * const store = new MemoryStore();
 * store.addIncoming(7);
 * console.log(store.load().incoming); // [ 7 ]
 * ```
 */
export class MemoryStore implements Store {
  #inflight = new Map<number, InflightRecord>();
  #waiting = new Queue<PublishRecord>();
  #incoming = new Set<number>();
  #nextId = 1;
  /** Filter to its subscription options byte (QoS and the 5.0 options), in subscribe order. */
  #subscriptions = new Map<string, number>();

  /** Creates an empty store. */
  constructor() {}

  /** A copy of everything stored. */
  load(): StoredSession {
    return {
      inflight: [...this.#inflight.values()],
      waiting: [...this.#waiting],
      incoming: [...this.#incoming],
      nextPacketId: this.#nextId,
      subscriptions: [...this.#subscriptions].map(([filter, byte]) =>
        subscriptionRecord(filter, byte)!
      ),
    };
  }

  /** Records a publish entering flight, optionally leaving the waiting queue. */
  putInflight(packetId: number, record: PublishRecord, dequeued: boolean): void {
    if (dequeued) this.#waiting.shift();
    const { topic, payload, qos, retain, properties, publishedAt } = record;
    const r: InflightRecord = { packetId, topic, payload, qos, retain, released: false };
    // The 5.0 properties and publish time travel with it (MQTT-4.3.3-7: resent as it was).
    this.#inflight.set(
      packetId,
      properties === undefined
        ? r
        : publishedAt === undefined
        ? { ...r, properties }
        : { ...r, properties, publishedAt },
    );
    this.#nextId = packetId === 65535 ? 1 : packetId + 1;
  }

  /** Records PUBREC for a QoS 2 publish. */
  markReleased(packetId: number): void {
    const r = this.#inflight.get(packetId);
    if (r !== undefined && !r.released) this.#inflight.set(packetId, { ...r, released: true });
  }

  /** Records a completed flow. */
  removeInflight(packetId: number): void {
    this.#inflight.delete(packetId);
  }

  /** Records a publish joining the waiting queue. */
  pushWaiting(record: PublishRecord): void {
    this.#waiting.push(record);
  }

  /** Records the head of the waiting queue leaving it. */
  shiftWaiting(): void {
    this.#waiting.shift();
  }

  /** Records an incoming QoS 2 id. */
  addIncoming(packetId: number): void {
    this.#incoming.add(packetId);
  }

  /** Records PUBREL for an incoming QoS 2 id. */
  removeIncoming(packetId: number): void {
    this.#incoming.delete(packetId);
  }

  /** Forgets every incoming QoS 2 id. */
  clearIncoming(): void {
    this.#incoming.clear();
  }

  /** Records a subscription (a filter held already keeps its place). */
  putSubscription(filter: string, qos: QoS, flags?: SubscriptionFlags): void {
    this.#subscriptions.set(filter, subscriptionByte(qos, flags));
  }

  /** Records an unsubscription. */
  removeSubscription(filter: string): void {
    this.#subscriptions.delete(filter);
  }

  /** Forgets everything, subscriptions included. */
  clear(): void {
    this.#inflight.clear();
    this.#waiting.drain();
    this.#incoming.clear();
    this.#nextId = 1;
    this.#subscriptions.clear();
  }

  /** Nothing to release. */
  close(): void {}
}
