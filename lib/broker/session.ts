/**
 * The server side of one MQTT session: what the broker keeps for a client
 * identifier across its connections (MQTT 3.1.1 section 4.1).
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import type { PublishProperties } from "../codec/properties.ts";
import { MqttError } from "../errors.ts";
import { OutgoingPublish, SessionState } from "../session/state.ts";
import type { Store, StoredSession, SubscriptionRecord } from "../store/store.ts";
import { SessionJournal } from "./session_journal.ts";
import type { Grant } from "./subscriptions.ts";
import { emptyMap, isEmptyStandIn } from "../util/empty.ts";
import type { RetainedCursor } from "./retained_feed.ts";
import { utf8Length } from "../codec/utf8.ts";

/** An application message queued for one client, QoS already downgraded for it. */
export interface Delivery {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  /** True only for retained messages sent because of a new subscription (MQTT-3.3.1-8). */
  retain: boolean;
  /** MQTT 5.0 properties as the client gets them (Subscription Identifiers included). */
  properties?: PublishProperties;
  /** When its Message Expiry Interval ends (ms, `performance.now()`); dropped unsent after. */
  expiresAt?: number;
  /** The shared subscription group it was given to, for redelivery if this session ends. */
  share?: unknown;
}

/** Bounds of one session's queue of waiting messages. */
export interface QueueLimits {
  /** Most messages waiting. */
  maxQueued: number;
  /** Most topic plus payload bytes waiting. */
  maxQueuedBytes: number;
}

/** Something that can be told that a session has messages to send. */
export interface SessionOwner {
  /** Called after a message is queued. */
  wake(): void;
  /** Another connection takes this session over: close this one (MQTT-3.1.4-2). */
  evict(): void;
  /** A QoS flow to the client ended in error (a QoS 2 PUBLISH answered with PUBACK). */
  flowFailed(error: MqttError): void;
}

/**
 * The state the broker holds for one client identifier: its subscriptions,
 * outgoing QoS 1/2 messages in flight and the messages waiting for the window
 * (in a bounded queue), and the ids of incoming QoS 2 messages not yet released.
 *
 * Packet ids, the in-flight table and the incoming QoS 2 ids are the client
 * session's {@linkcode SessionState}: the rules for them live in one place.
 *
 * @example
 * ```ts
 * import { BrokerSession } from "./session.ts";
 * const session = new BrokerSession("sensor-1", false, { maxQueued: 2, maxQueuedBytes: 1024 });
 * for (const n of [1, 2, 3]) {
 *   session.enqueue({ topic: "t", payload: new Uint8Array([n]), qos: 1, retain: false });
 * }
 * console.log(session.queued, session.dropped); // 2 1
 * ```
 */
export class BrokerSession {
  /** The client identifier. */
  readonly clientId: string;
  /** Whether the session ends with its connection (MQTT-3.1.2-6). */
  clean: boolean;
  /** Made on the first subscription: an idle session holds no table. */
  #subscriptions: Map<string, Grant> = emptyMap();
  /** Packet ids, in-flight outgoing messages, waiting queue, incoming QoS 2 ids. */
  readonly state: SessionState;
  /** The user name of the client that opened the session; only it may resume the session. */
  readonly username: string | undefined;
  /** Where a persistent session is kept across restarts (the broker's `persistence`), if anywhere. */
  readonly store: Store | undefined;
  /** The live connection using this session, if any. */
  owner: SessionOwner | undefined = undefined;
  /** Messages dropped from this session's full queue. */
  dropped = 0;
  /**
   * MQTT 5.0 Session Expiry Interval, seconds: how long the session outlives its
   * connection (0: it ends with it; `Infinity`: never, as a 3.1.1 persistent session).
   */
  expiryInterval: number;
  /** Ends the session once its expiry interval has passed without a connection. */
  expiryTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  /**
   * Retained messages still to send for its new subscriptions (MQTT-3.3.1-6), taken as the
   * client's window allows; kept across connections, so none is lost when one ends.
   */
  readonly retained: RetainedCursor[] = [];
  /** Goes on queueing retained messages for the session while it has no connection. */
  retainedTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  readonly #limits: QueueLimits;
  /** A will waiting for its Will Delay Interval (MQTT 5.0 section 3.1.3.2.2), and its timer. */
  #delayedWill: { publish: () => void; timer: ReturnType<typeof setTimeout> } | undefined =
    undefined;
  /** Called when a message's flow ends: counts those dropped to make room, reports failed flows. */
  readonly #onDone = (error?: MqttError): void => {
    if (error === undefined) return;
    if (error.code === "QUEUE_FULL") this.dropped++;
    else this.owner?.flowFailed(error);
  };

  /**
   * Creates a session whose queue holds at most `limits` messages and bytes;
   * with a `store`, loaded from it and recorded in it.
   */
  constructor(
    clientId: string,
    clean: boolean,
    limits: QueueLimits,
    username?: string,
    store?: Store,
  ) {
    this.clientId = clientId;
    this.username = username;
    this.clean = clean;
    this.expiryInterval = clean ? 0 : Infinity;
    this.store = store;
    this.#limits = limits;
    this.state = new SessionState({
      maxQueued: limits.maxQueued,
      maxQueuedBytes: limits.maxQueuedBytes,
      overflow: "drop-oldest",
      store,
    });
    // A journal that failed is rewritten from what the session holds in memory.
    if (store instanceof SessionJournal) store.source = () => this.#stored();
  }

  /** The session as a store would load it: its state and its subscriptions. */
  #stored(): StoredSession {
    const subscriptions: SubscriptionRecord[] = [];
    for (
      const [filter, { qos, noLocal, retainAsPublished, retainHandling }] of this.subscriptions
    ) {
      subscriptions.push({ filter, qos, noLocal, retainAsPublished, retainHandling });
    }
    return { ...this.state.stored(), subscriptions };
  }

  /** Topic filter to granted QoS. */
  get subscriptions(): ReadonlyMap<string, Grant> {
    return this.#subscriptions;
  }

  /** Adds or replaces the subscription to `filter`. */
  setSubscription(filter: string, grant: Grant): void {
    if (isEmptyStandIn(this.#subscriptions)) this.#subscriptions = new Map();
    this.#subscriptions.set(filter, grant);
  }

  /** Removes the subscription to `filter`; returns whether there was one. */
  deleteSubscription(filter: string): boolean {
    return this.#subscriptions.delete(filter);
  }

  /** Forgets every subscription, and their table. */
  clearSubscriptions(): void {
    this.#subscriptions = emptyMap();
  }

  /** Publishes `publish` (the will) after `ms`, unless the client comes back first. */
  delayWill(publish: () => void, ms: number): void {
    this.cancelWill();
    const timer = setTimeout(() => {
      this.#delayedWill = undefined;
      publish();
    }, ms);
    this.#delayedWill = { publish, timer };
  }

  /** A new connection for this session: its delayed will is not published (MQTT-3.1.3-9). */
  cancelWill(): void {
    if (this.#delayedWill === undefined) return;
    clearTimeout(this.#delayedWill.timer);
    this.#delayedWill = undefined;
  }

  /** The session ends: a will still delayed is published now (MQTT 5.0 section 3.1.2.5). */
  flushWill(): void {
    const will = this.#delayedWill;
    if (will === undefined) return;
    this.cancelWill();
    will.publish();
  }

  /** Stops the session's timers without publishing anything (the broker shuts down). */
  stopTimers(): void {
    this.cancelWill();
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    clearTimeout(this.retainedTimer);
    this.retainedTimer = undefined;
  }

  /** Messages waiting for the connection or a window slot. */
  get queued(): number {
    return this.state.pendingCount;
  }

  /** Whether `delivery` can join the queue without pushing an older message out of it. */
  hasRoomFor(delivery: Delivery): boolean {
    const { maxQueued, maxQueuedBytes } = this.#limits;
    const size = utf8Length(delivery.topic) + delivery.payload.byteLength;
    // One that could never fit is queued all the same, to be dropped and counted as any other.
    return this.queued < maxQueued &&
      (this.state.queuedBytes + size <= maxQueuedBytes || size > maxQueuedBytes);
  }

  /**
   * Queues a message for this client; when the queue is full its oldest
   * waiting messages are dropped (and counted) to make room. A message larger
   * than the byte limit alone is dropped itself.
   */
  enqueue(delivery: Delivery): void {
    try {
      this.state.enqueue(new OutgoingPublish(delivery, this.#onDone));
    } catch (err) {
      if (!(err instanceof MqttError && err.code === "QUEUE_FULL")) throw err;
      this.dropped++;
    }
    this.owner?.wake();
  }
}
