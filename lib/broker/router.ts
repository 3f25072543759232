/**
 * The broker's shared state and message routing: sessions by client
 * identifier, the subscription index and the retained messages.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import type { PublishProperties } from "../codec/properties.ts";
import { type RetainedLimits, type RetainedMessage, RetainedStore } from "./retained.ts";
import type { Persistence } from "./persistence.ts";
import { BrokerSession, type Delivery, type QueueLimits } from "./session.ts";
import { type Grant, identifiersOf, type Match, SubscriptionIndex } from "./subscriptions.ts";
import { SharedSubscriptions } from "./shared.ts";
import { queueRetained } from "./retained_feed.ts";

/** Most expired retained messages dropped per turn of the event loop. */
const SWEEP_BATCH = 1000;

/** An application message entering the broker. */
export interface RoutedMessage {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  /** MQTT 5.0 properties as published (no Topic Alias, no Subscription Identifier). */
  properties?: PublishProperties;
  /** The session of the client that published it, for No Local (MQTT-3.8.3-3). */
  publisher?: BrokerSession;
}

/** Largest Session Expiry Interval, seconds: 0xFFFFFFFF means the session does not expire. */
const NEVER_EXPIRES = 0xffff_ffff;

/** The properties a subscriber gets: the message's, with the Subscription Identifiers that matched. */
export function deliveredProperties(
  properties: PublishProperties | undefined,
  match: Match,
): PublishProperties | undefined {
  const ids = identifiersOf(match);
  if (ids === undefined) return properties;
  return { ...properties, subscriptionIdentifiers: ids };
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
  readonly #shared: SharedSubscriptions<BrokerSession> = new SharedSubscriptions();
  readonly #limits: QueueLimits;
  readonly #log: (line: string) => void;
  /** Whether the retained store's "full" line was logged since it last had room. */
  #fullLogged = false;
  /** Where retained messages and persistent sessions are kept, once loaded. */
  #persistence: Persistence | undefined = undefined;
  /** The sweep of expired retained messages, while one is held, and when it fires. */
  #sweepTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  #sweepAt = 0;

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
    return this.#index.size + this.#shared.size;
  }

  /**
   * The session for a connecting client. With `clean`, or when none is held,
   * a new empty session replaces any old one (MQTT-3.1.2-4/-6); otherwise the
   * held one is resumed and `present` is true (MQTT-3.2.2-2). The caller has
   * already closed any connection still using the old session (MQTT-3.1.4-2).
   * The session records the `username` that opened it. With persistence, a
   * new session with an expiry interval other than 0 is kept on disk; throws
   * `STORE_ERROR` when it cannot be (nothing is then held for `clientId`).
   */
  openSession(
    clientId: string,
    clean: boolean,
    username: string | undefined,
    expiryInterval: number = clean ? 0 : Infinity,
  ): { session: BrokerSession; present: boolean } {
    const held = this.sessions.get(clientId);
    if (held !== undefined) {
      // A new connection for the session: its delayed will is not sent (MQTT-3.1.3-9) and it
      // no longer expires while connected.
      held.cancelWill();
      clearTimeout(held.expiryTimer);
      held.expiryTimer = undefined;
      // Its connection takes what retained messages are left from here, as its window allows.
      clearTimeout(held.retainedTimer);
      held.retainedTimer = undefined;
    }
    const interval = expiryInterval >= NEVER_EXPIRES ? Infinity : expiryInterval;
    if (held !== undefined && !clean) {
      held.clean = interval === 0;
      held.expiryInterval = interval;
      this.#recordExpiry(held);
      if (held.store !== undefined) this.#persistence?.setIdle(clientId, false);
      return { session: held, present: true };
    }
    if (held !== undefined) this.discard(held);
    // MQTT 5.0 section 3.1.2.11.2: the Session Expiry Interval, not Clean Start, says whether
    // the session outlives its connection (and so a restart).
    const store = interval === 0
      ? undefined
      : this.#persistence?.createSession(clientId, username, interval);
    const session = new BrokerSession(clientId, interval === 0, this.#limits, username, store);
    session.expiryInterval = interval;
    this.sessions.set(clientId, session);
    return { session, present: false };
  }

  /** A persistent session's expiry interval, and that it is connected now, go to its `.json`. */
  #recordExpiry(session: BrokerSession): void {
    if (session.store === undefined || session.clean) return;
    this.#persistence?.updateSession(session.clientId, {
      expiryInterval: session.expiryInterval,
      disconnectedAt: undefined,
    });
  }

  /**
   * The session's connection ended: a session with expiry interval 0 ends now
   * (MQTT-3.1.2-6), one with a finite interval ends that many seconds later
   * unless a connection resumes it first (MQTT 5.0 section 3.1.2.11.2).
   * `takenOver`: a new connection of the client ended it (MQTT-3.1.4-2) and
   * resumes or discards the session in the same step (`openSession`): it is
   * never offline, so nothing is done for an offline session, and the
   * retained messages still owed, QoS 0 ones too, go on over the new connection.
   */
  connectionEnded(session: BrokerSession, takenOver = false): void {
    if (session.clean) return this.discard(session);
    if (takenOver) return;
    // Offline, its journal holds no open file (each change opens and closes it).
    if (session.store !== undefined) this.#persistence?.setIdle(session.clientId, true);
    this.#queueRetainedOffline(session);
    const interval = session.expiryInterval;
    if (interval === Infinity) return;
    if (session.store !== undefined) {
      this.#persistence?.updateSession(session.clientId, { disconnectedAt: Date.now() });
    }
    this.#expireAfter(session, interval * 1000);
  }

  /**
   * Queues the retained messages its new subscriptions had still to send for a session without
   * a connection: QoS 1 and 2 ones (QoS 0 is not kept for an offline session), in order, while
   * its queue has room, so they are delivered when it resumes (and, with persistence, after a
   * restart). A long search goes on at the next turn of the event loop. What does not fit waits
   * for the session to resume, when its connection goes on from there.
   */
  #queueRetainedOffline(session: BrokerSession): void {
    session.retainedTimer = undefined;
    if (session.owner !== undefined || this.sessions.get(session.clientId) !== session) return;
    const before = session.dropped;
    const { paused } = queueRetained(
      session,
      (delivery) => session.hasRoomFor(delivery),
      true,
      performance.now(),
      (message) => this.expireRetained(message),
    );
    this.dropped += session.dropped - before;
    if (paused) session.retainedTimer = setTimeout(() => this.#queueRetainedOffline(session), 0);
  }

  /** Ends a session without a connection `ms` from now, unless one resumes it first. */
  #expireAfter(session: BrokerSession, ms: number): void {
    clearTimeout(session.expiryTimer);
    session.expiryTimer = setTimeout(() => {
      session.expiryTimer = undefined;
      if (session.owner === undefined) this.discard(session);
    }, ms);
  }

  /**
   * Forgets a session: its subscriptions and queued messages go with it; a
   * will still delayed is published, and messages given to it through a shared
   * subscription and not yet acknowledged go to another member of the group.
   */
  discard(session: BrokerSession): void {
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
    clearTimeout(session.expiryTimer);
    session.expiryTimer = undefined;
    for (const filter of session.subscriptions.keys()) {
      if (!this.#shared.remove(filter, session)) this.#index.remove(filter, session);
    }
    session.clearSubscriptions();
    session.retained.length = 0;
    clearTimeout(session.retainedTimer);
    session.retainedTimer = undefined;
    const leftovers: Delivery[] = [];
    for (const entry of session.state.inflight()) {
      const message = entry.message as Delivery;
      // QoS 1 goes to another member (MQTT 5.0 section 4.8.2); a QoS 2 delivery once started
      // must not (MQTT-4.8.2-5): only its own session could complete it.
      if (message.share !== undefined && message.qos === 1) leftovers.push(message);
    }
    if (session.store !== undefined) {
      this.#persistence?.dropSession(session.clientId);
    } else {
      for (
        let e = session.state.shiftWaiting();
        e !== undefined;
        e = session.state.shiftWaiting()
      ) {
        const message = e.message as Delivery;
        if (message.share !== undefined) leftovers.push(message);
      }
    }
    for (const message of leftovers) {
      const next = this.#shared.redeliverTarget(message.share, session);
      if (next === undefined) continue;
      const qos = (next.qos < message.qos ? next.qos : message.qos) as QoS;
      this.#deliver(next.session, { ...message, qos });
    }
    session.flushWill();
  }

  /**
   * Takes over what `persistence` loaded (retained messages, persistent
   * sessions and their subscriptions) and records every later change in it.
   */
  restore(persistence: Persistence): void {
    const wallNow = Date.now();
    for (const { clientId, username, store, meta } of persistence.sessions) {
      const session = new BrokerSession(clientId, false, this.#limits, username, store);
      this.sessions.set(clientId, session);
      const ids = meta.identifiers ?? {};
      for (
        const { filter, qos, noLocal, retainAsPublished, retainHandling } of store.load()
          .subscriptions
      ) {
        const grant: Grant = { qos, noLocal, retainAsPublished, retainHandling };
        const identifier = Object.hasOwn(ids, filter) ? ids[filter] : undefined;
        this.#add(session, filter, identifier === undefined ? grant : { ...grant, identifier });
      }
      // MQTT 5.0 section 3.1.2.11.2: the Session Expiry Interval runs from the end of the
      // session's last connection (or from now, when the broker stopped while it was connected).
      if (meta.expiryInterval !== undefined) {
        session.expiryInterval = meta.expiryInterval;
        const gone = wallNow - (meta.disconnectedAt ?? wallNow);
        this.#expireAfter(session, Math.max(0, meta.expiryInterval * 1000 - gone));
      }
    }
    persistence.sessions.length = 0;
    for (const message of persistence.retained.values()) {
      const { topic, payload, qos, properties, expiresAt, publishedAt } = message;
      this.#retain(
        topic,
        payload,
        qos,
        properties === undefined ? undefined : { properties, expiresAt, publishedAt },
      );
    }
    persistence.retained.clear();
    persistence.retainedSource = () => this.retained.all();
    this.#persistence = persistence;
  }

  /**
   * Adds or replaces a subscription (MQTT-3.8.4-3); returns whether one
   * existed. A filter `$share/{group}/{filter}` joins a shared subscription.
   */
  subscribe(session: BrokerSession, filter: string, grant: Grant | QoS): boolean {
    const g: Grant = typeof grant === "number" ? { qos: grant } : grant;
    // Before SUBACK says it is held.
    session.store?.putSubscription(filter, g.qos, g);
    const before = session.subscriptions.get(filter)?.identifier;
    if (session.store !== undefined && before !== g.identifier) {
      this.#persistence?.updateSession(session.clientId, {
        identifier: { filter, id: g.identifier },
      });
    }
    return this.#add(session, filter, g);
  }

  #add(session: BrokerSession, filter: string, grant: Grant): boolean {
    session.setSubscription(filter, grant);
    return this.#shared.add(filter, session, grant) ?? this.#index.add(filter, session, grant);
  }

  /** Removes a subscription if there is one (MQTT-3.10.4-1); returns whether there was. */
  unsubscribe(session: BrokerSession, filter: string): boolean {
    if (!session.subscriptions.has(filter)) return false;
    session.store?.removeSubscription(filter);
    if (
      session.store !== undefined && session.subscriptions.get(filter)?.identifier !== undefined
    ) {
      this.#persistence?.updateSession(session.clientId, { identifier: { filter, id: undefined } });
    }
    session.deleteSubscription(filter);
    if (!this.#shared.remove(filter, session)) this.#index.remove(filter, session);
    return true;
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
  publish(message: RoutedMessage): number {
    this.received++;
    const topic = message.topic;
    const payload = kept(message.payload);
    const properties = message.properties;
    const interval = properties?.messageExpiryInterval;
    // MQTT-3.3.2-6: the interval runs from now; what remains is sent on.
    const expiresAt = interval === undefined ? undefined : performance.now() + interval * 1000;
    if (message.retain) {
      this.#retain(
        topic,
        payload === message.payload ? payload.slice() : payload,
        message.qos,
        properties === undefined ? undefined : { properties, expiresAt, publishedAt: Date.now() },
      );
    }
    const matches = this.#index.match(topic, message.publisher);
    let routed = 0;
    for (const [session, match] of matches) {
      routed++;
      const qos = (match.qos < message.qos ? match.qos : message.qos) as QoS;
      if (qos === 0 && session.owner === undefined) continue;
      const delivery: Delivery = {
        topic,
        payload,
        qos,
        // MQTT 5.0 section 3.3.1.3: Retain As Published keeps the flag, else it is cleared.
        retain: match.retainAsPublished === true && message.retain,
      };
      const props = deliveredProperties(properties, match);
      if (props !== undefined) delivery.properties = props;
      if (expiresAt !== undefined) delivery.expiresAt = expiresAt;
      this.#deliver(session, delivery);
    }
    // Shared subscriptions: one member of each matching group (MQTT 5.0 section 4.8.2).
    this.#shared.match(topic, (share, session, match) => {
      routed++;
      const qos = (match.qos < message.qos ? match.qos : message.qos) as QoS;
      const delivery: Delivery = { topic, payload, qos, retain: false, share };
      const props = deliveredProperties(properties, match);
      if (props !== undefined) delivery.properties = props;
      if (expiresAt !== undefined) delivery.expiresAt = expiresAt;
      this.#deliver(session, delivery);
    });
    return routed;
  }

  /** Drops a retained message whose Message Expiry Interval has passed. */
  expireRetained(message: RetainedMessage): void {
    if (this.retained.get(message.topic) === message) {
      this.#retain(message.topic, new Uint8Array(0), message.qos);
    }
  }

  /**
   * Arms the sweep of expired retained messages for the earliest expiry held:
   * one timer, only while a retained message has an expiry, so an idle broker
   * (and a test) has none.
   */
  #armSweep(): void {
    const next = this.retained.nextExpiry();
    if (next === undefined || (this.#sweepTimer !== undefined && this.#sweepAt <= next)) return;
    clearTimeout(this.#sweepTimer);
    this.#sweepAt = next;
    this.#sweepTimer = setTimeout(() => {
      this.#sweepTimer = undefined;
      // MQTT 5.0 section 3.3.2.3.3: expired messages leave retained storage, at most
      // SWEEP_BATCH per turn of the event loop; the rest at the next turn.
      for (const message of this.retained.takeExpired(performance.now(), SWEEP_BATCH)) {
        this.expireRetained(message);
      }
      this.#armSweep();
    }, Math.max(0, Math.ceil(next - performance.now())));
  }

  #retain(
    topic: string,
    payload: Uint8Array,
    qos: QoS,
    extra?: Pick<RetainedMessage, "properties" | "expiresAt" | "publishedAt">,
  ): void {
    const retained = this.retained;
    const persistence = this.#persistence;
    const before = persistence === undefined ? undefined : retained.get(topic)?.payload;
    const result = retained.update(topic, payload, qos, extra);
    if (result === "stored" && extra?.expiresAt !== undefined) this.#armSweep();
    if (result !== "full") {
      this.#fullLogged = false;
      // Written before the PUBLISH is acknowledged (the caller acknowledges after routing).
      if (persistence !== undefined && (result === "stored" || before !== undefined)) {
        persistence.retain(topic, payload, qos, before, extra);
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
    // Files whose writes failed get what memory holds, while it still holds it.
    persistence?.retryFailed();
    this.#persistence = undefined;
    for (const session of [...this.sessions.values()]) {
      session.stopTimers(); // no will is published because the broker stops
      this.discard(session);
    }
    clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    this.retained.clear();
    persistence?.close();
  }
}
