/**
 * The broker's shared state and message routing: sessions by client
 * identifier, the subscription index and the retained messages.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import { type RetainedLimits, type RetainedMessage, RetainedStore } from "./retained.ts";
import type { Store } from "../store/store.ts";
import type { Persistence } from "./persistence.ts";
import { BrokerSession, type Delivery, type QueueLimits } from "./session.ts";
import { SubscriptionIndex } from "./subscriptions.ts";

/** An application message entering the broker. */
export interface RoutedMessage {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
}

/** What a {@linkcode Router} is built with. */
export interface RouterOptions extends QueueLimits, RetainedLimits {
  /** Writes a log line. */
  log?: (line: string) => void;
}

/**
 * A payload the broker keeps (queued, retained): its own buffer of its size.
 * A decoded payload is usually a view of the network read it arrived in, and
 * Deno reads into 64 KiB buffers: kept as a view, 16 bytes would hold 64 KiB.
 */
function kept(payload: Uint8Array): Uint8Array {
  return payload.byteLength === payload.buffer.byteLength ? payload : payload.slice();
}

/**
 * Sessions, subscriptions and retained messages, and the rules that tie them:
 * routing with QoS downgrade, retained storage, session creation and discard.
 *
 * @example
 * ```ts
 * import { Router } from "./router.ts";
 * const router = new Router({
 *   maxQueued: 1000,
 *   maxQueuedBytes: 1 << 20,
 *   maxRetained: 1000,
 *   maxRetainedBytes: 1 << 20,
 * });
 * const { session } = router.openSession("c1", true, undefined);
 * router.subscribe(session, "a/#", 1);
 * router.publish({ topic: "a/b", payload: new Uint8Array([1]), qos: 2, retain: false });
 * console.log(session.queued); // 1: queued at QoS 1 while the session is offline
 * ```
 */
export class Router {
  /** Sessions by client identifier. */
  readonly sessions: Map<string, BrokerSession> = new Map();
  /** Retained messages. */
  readonly retained: RetainedStore;
  readonly #index: SubscriptionIndex<BrokerSession> = new SubscriptionIndex();
  readonly #limits: QueueLimits;
  readonly #log: (line: string) => void;
  /** Whether the retained store's "full" line was logged since it last had room. */
  #fullLogged = false;
  /** Where retained messages and persistent sessions are kept, once loaded. */
  #persistence: Persistence | undefined = undefined;

  /** Where retained messages and persistent sessions are kept, once loaded. */
  get persistence(): Persistence | undefined {
    return this.#persistence;
  }
  /** Messages dropped from full client queues, over all sessions past and present. */
  dropped = 0;
  /** Application messages routed. */
  received = 0;

  /** Creates an empty router whose sessions' queues and retained store are bounded by `options`. */
  constructor(options: RouterOptions) {
    this.#limits = options;
    this.retained = new RetainedStore(options);
    this.#log = options.log ?? (() => {});
  }

  /** Subscriptions over every session. */
  get subscriptionCount(): number {
    return this.#index.size;
  }

  /**
   * The session for a connecting client. With `clean`, or when none is held,
   * a new empty session replaces any old one (MQTT-3.1.2-4/-6); otherwise the
   * held one is resumed and `present` is true (MQTT-3.2.2-2). The caller has
   * already closed any connection still using the old session (MQTT-3.1.4-2).
   * The session records the `username` that opened it.
   */
  openSession(
    clientId: string,
    clean: boolean,
    username: string | undefined,
    store?: Store,
  ): { session: BrokerSession; present: boolean } {
    const held = this.sessions.get(clientId);
    if (held !== undefined && !clean) {
      held.clean = false;
      return { session: held, present: true };
    }
    if (held !== undefined) this.discard(held);
    const session = new BrokerSession(
      clientId,
      clean,
      this.#limits,
      username,
      clean ? undefined : store,
    );
    this.sessions.set(clientId, session);
    return { session, present: false };
  }

  /** Forgets a session: its subscriptions and queued messages go with it. */
  discard(session: BrokerSession): void {
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
    for (const filter of session.subscriptions.keys()) this.#index.remove(filter, session);
    session.subscriptions.clear();
    if (session.store !== undefined) {
      this.#persistence?.dropSession(session.clientId);
      return;
    }
    while (session.state.shiftWaiting() !== undefined);
  }

  /**
   * Takes over what `persistence` loaded (retained messages, persistent
   * sessions and their subscriptions) and records every later change in it.
   */
  restore(persistence: Persistence): void {
    for (const { clientId, username, store } of persistence.sessions) {
      const session = new BrokerSession(clientId, false, this.#limits, username, store);
      this.sessions.set(clientId, session);
      for (const { filter, qos } of store.load().subscriptions) {
        session.subscriptions.set(filter, qos);
        this.#index.add(filter, session, qos);
      }
    }
    persistence.sessions.length = 0;
    for (const message of persistence.retained.values()) {
      this.#retain(message.topic, message.payload, message.qos);
    }
    persistence.retained.clear();
    persistence.retainedSource = () => this.retained.all();
    this.#persistence = persistence;
  }

  /** Adds or replaces a subscription (MQTT-3.8.4-3). */
  subscribe(session: BrokerSession, filter: string, qos: QoS): void {
    session.store?.putSubscription(filter, qos); // before SUBACK says it is held
    session.subscriptions.set(filter, qos);
    this.#index.add(filter, session, qos);
  }

  /** Removes a subscription if there is one (MQTT-3.10.4-1). */
  unsubscribe(session: BrokerSession, filter: string): void {
    if (!session.subscriptions.has(filter)) return;
    session.store?.removeSubscription(filter);
    session.subscriptions.delete(filter);
    this.#index.remove(filter, session);
  }

  /**
   * The retained messages matching a newly granted filter (MQTT-3.3.1-6),
   * lazily: the connection takes them as its client's window allows. Yields
   * `undefined` after every `steps` topic levels looked at without a match, so
   * the connection can let others run during a long search.
   */
  retainedFor(filter: string, steps: number): Iterator<RetainedMessage | undefined> {
    return this.retained.matchPaced(filter, steps);
  }

  /**
   * Routes a message: stores or clears it when retained (MQTT-3.3.1-5/-10/-11),
   * then queues it for each matching session once, at the lower of its QoS and
   * the highest matching subscription's QoS (MQTT-3.8.4-6), with RETAIN clear
   * (MQTT-3.3.1-9). Offline sessions queue QoS 1 and 2 only.
   */
  publish(message: RoutedMessage): void {
    this.received++;
    const topic = message.topic;
    const payload = kept(message.payload);
    if (message.retain) {
      this.#retain(topic, payload === message.payload ? payload.slice() : payload, message.qos);
    }
    const matches = this.#index.match(topic);
    for (const [session, granted] of matches) {
      const qos = (granted < message.qos ? granted : message.qos) as QoS;
      if (qos === 0 && session.owner === undefined) continue;
      this.#deliver(session, { topic, payload, qos, retain: false });
    }
  }

  #retain(topic: string, payload: Uint8Array, qos: QoS): void {
    const retained = this.retained;
    const persistence = this.#persistence;
    const before = persistence === undefined ? undefined : retained.get(topic)?.payload;
    const result = retained.update(topic, payload, qos);
    if (result !== "full") {
      this.#fullLogged = false;
      // Written before the PUBLISH is acknowledged (the caller acknowledges after routing).
      if (persistence !== undefined && (result === "stored" || before !== undefined)) {
        persistence.retain(topic, payload, qos, before);
      }
      return;
    }
    if (this.#fullLogged) return;
    this.#fullLogged = true;
    this.#log(
      `Retained message store full (${retained.size} messages, ${retained.bytes} bytes): ` +
        `not retaining new topics such as "${topic}" (maxRetained, maxRetainedBytes).`,
    );
  }

  #deliver(session: BrokerSession, delivery: Delivery): void {
    const before = session.dropped;
    session.enqueue(delivery);
    this.dropped += session.dropped - before;
  }

  /** Messages waiting in every session's queue. */
  queuedCount(): number {
    let n = 0;
    for (const session of this.sessions.values()) n += session.queued;
    return n;
  }

  /** Forgets everything held in memory; what persistence keeps stays on disk. */
  clear(): void {
    const persistence = this.#persistence;
    this.#persistence = undefined;
    for (const session of [...this.sessions.values()]) this.discard(session);
    this.retained.clear();
    persistence?.close();
  }
}
