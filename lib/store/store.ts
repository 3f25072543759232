/**
 * The contract between the session state and a store that keeps what must
 * survive a process restart: outgoing publishes in flight and waiting, the
 * ids of incoming QoS 2 messages awaiting PUBREL, and the subscriptions the
 * session holds on the server.
 *
 * The session is synchronous and sans-IO, so the store is too: the
 * {@linkcode SessionState} calls one method per change, at the moment of the
 * change and before the packet that depends on it is handed to the driver.
 * A store therefore must have the change recorded (for a durable store: in
 * the kernel at least) when the call returns.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import type { PublishProperties } from "../codec/properties.ts";

/**
 * An outgoing application message as stored (structurally an
 * `OutgoingMessage`, so the session passes its own object without copying).
 */
export interface PublishRecord {
  /** Topic name. */
  readonly topic: string;
  /** Message body. */
  readonly payload: Uint8Array;
  /** Quality of service. */
  readonly qos: QoS;
  /** Retain flag. */
  readonly retain: boolean;
  /** MQTT 5.0 PUBLISH properties, if any. */
  readonly properties?: PublishProperties;
  /**
   * MQTT 5.0: wall-clock time (ms since the Unix epoch) the message was
   * published, kept for a message with properties, so that its Message Expiry
   * Interval counts from then after a restart.
   */
  readonly publishedAt?: number;
}

/** An outgoing QoS 1/2 publish in flight under a packet id. */
export interface InflightRecord extends PublishRecord {
  /** Packet identifier the PUBLISH was sent with. */
  readonly packetId: number;
  /** QoS 2 only: PUBREC received and PUBREL sent; only PUBREL is re-sent on resume. */
  readonly released: boolean;
}

/**
 * A subscription the session holds on the server. A process restarting with
 * `clean: false` learns from these which filters its session still has, so it
 * can recreate their `Subscription` objects (the broker kept them,
 * MQTT-3.1.2-4).
 */
export interface SubscriptionRecord extends SubscriptionFlags {
  /** Topic filter as subscribed. */
  readonly filter: string;
  /** Maximum QoS requested for it. */
  readonly qos: QoS;
}

/**
 * MQTT 5.0 subscription options besides the QoS (section 3.8.3.1), kept so
 * that a re-subscription asks for the same; absent means false / 0.
 */
export interface SubscriptionFlags {
  /** No Local: the server does not send us our own publications. */
  readonly noLocal?: boolean;
  /** Retain As Published: forwarded messages keep the RETAIN flag they were published with. */
  readonly retainAsPublished?: boolean;
  /** Retain Handling: 0 send retained messages, 1 only for a new subscription, 2 never. */
  readonly retainHandling?: 0 | 1 | 2;
}

/**
 * The subscription options byte of MQTT 5.0 (section 3.8.3.1): QoS in bits
 * 0-1, No Local bit 2, Retain As Published bit 3, Retain Handling bits 4-5.
 * Stores keep a subscription as this byte.
 *
 * @example
 * ```ts
 * import { subscriptionByte } from "./store.ts";
 * console.log(subscriptionByte(1, { noLocal: true, retainHandling: 2 })); // 37
 * ```
 */
export function subscriptionByte(qos: QoS, flags?: SubscriptionFlags): number {
  if (flags === undefined) return qos;
  return qos | (flags.noLocal ? 4 : 0) | (flags.retainAsPublished ? 8 : 0) |
    ((flags.retainHandling ?? 0) << 4);
}

/**
 * The record of a subscription options byte (see {@linkcode subscriptionByte}),
 * with only the options that are set; undefined when the byte is not valid
 * (QoS 3, Retain Handling 3, reserved bits 6-7 set).
 *
 * @example
 * ```ts
 * import { subscriptionRecord } from "./store.ts";
 * console.log(subscriptionRecord("a/#", 37)); // { filter: "a/#", qos: 1, noLocal: true, retainHandling: 2 }
 * ```
 */
export function subscriptionRecord(filter: string, byte: number): SubscriptionRecord | undefined {
  const qos = byte & 3;
  const retainHandling = (byte >> 4) & 3;
  if (qos > 2 || retainHandling > 2 || byte > 0x3f) return undefined;
  const record: {
    filter: string;
    qos: QoS;
    noLocal?: boolean;
    retainAsPublished?: boolean;
    retainHandling?: 0 | 1 | 2;
  } = { filter, qos: qos as QoS };
  if (byte & 4) record.noLocal = true;
  if (byte & 8) record.retainAsPublished = true;
  if (retainHandling !== 0) record.retainHandling = retainHandling as 1 | 2;
  return record;
}

/** Everything a store holds, as {@linkcode Store.load} returns it. */
export interface StoredSession {
  /** In-flight publishes in send order (the order they must be re-sent in, MQTT-4.6.0-1). */
  inflight: InflightRecord[];
  /** Publishes waiting for a window slot or a connection, oldest first. */
  waiting: PublishRecord[];
  /** Ids of incoming QoS 2 messages delivered but not yet released (MQTT-4.3.3-2). */
  incoming: number[];
  /** Packet id to try next (1..65535). */
  nextPacketId: number;
  /**
   * Subscriptions held, in the order they were first subscribed (a filter
   * subscribed again keeps its place and takes the new QoS).
   */
  subscriptions: SubscriptionRecord[];
}

/**
 * Synchronous persistence of session state. Each method records one change;
 * when it returns, the change must be as durable as the store promises.
 * Methods that name an id the store does not hold are no-ops (never throw):
 * the session may complete a flow that was never stored.
 *
 * @example
 * ```ts
 * import type { Store } from "./store.ts";
 * import { MemoryStore } from "./memory_store.ts";
 * const store: Store = new MemoryStore();
 * const msg = { topic: "a", payload: new Uint8Array([1]), qos: 1 as const, retain: false };
 * store.pushWaiting(msg);
 * store.putInflight(1, msg, true); // leaves the queue and enters flight in one step
 * store.putSubscription("sensors/#", 1);
 * console.log(store.load().inflight.length, store.load().waiting.length); // 1 0
 * console.log(store.load().subscriptions); // [ { filter: "sensors/#", qos: 1 } ]
 * ```
 */
export interface Store {
  /** Everything stored, read once when a `SessionState` is created over the store. */
  load(): StoredSession;
  /**
   * A publish entered the in-flight window under `packetId` (not released).
   * With `dequeued`, it is the head of the waiting queue leaving it in the
   * same atomic step, so a crash can neither lose nor duplicate it.
   */
  putInflight(packetId: number, record: PublishRecord, dequeued: boolean): void;
  /** The QoS 2 publish `packetId` got PUBREC; PUBREL is about to be sent. */
  markReleased(packetId: number): void;
  /** The flow of `packetId` completed (or was discarded). */
  removeInflight(packetId: number): void;
  /** A publish joined the tail of the waiting queue. */
  pushWaiting(record: PublishRecord): void;
  /** The head of the waiting queue left it (sent as QoS 0, or dropped). */
  shiftWaiting(): void;
  /** An incoming QoS 2 id was delivered; PUBREC is about to be sent. */
  addIncoming(packetId: number): void;
  /** PUBREL for an incoming QoS 2 id arrived. */
  removeIncoming(packetId: number): void;
  /** The server has no session for us: every incoming QoS 2 id is forgotten. */
  clearIncoming(): void;
  /**
   * The session subscribed to `filter` with maximum QoS `qos`, or changed the
   * QoS of a filter it holds (a SUBSCRIBE to the same filter replaces the
   * subscription, MQTT-3.8.4-3). `flags` are its MQTT 5.0 options, if any.
   */
  putSubscription(filter: string, qos: QoS, flags?: SubscriptionFlags): void;
  /** The session unsubscribed from `filter`. */
  removeSubscription(filter: string): void;
  /** Forgets everything, subscriptions included. */
  clear(): void;
  /** Releases the store's resources; no method may be called afterwards. */
  close(): void;
}
