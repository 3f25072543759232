/**
 * The retained messages owed to new subscriptions (MQTT-3.3.1-6), fed into
 * the client's session queue as its window allows rather than all at once
 * into a queue that drops when full, and searched in slices so that a long
 * search does not hold the event loop.
 *
 * What is owed belongs to the session, not the connection: what is not yet
 * sent when the connection ends is queued for a session that outlives it
 * (QoS 1 and 2, as far as its queue limits allow, by the router) and the rest
 * goes on when the session resumes.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import { isExpired } from "../session/expiry.ts";
import type { RetainedMessage } from "./retained.ts";
import { deliveredProperties, type Router } from "./router.ts";
import type { BrokerSession, Delivery } from "./session.ts";
import type { Grant } from "./subscriptions.ts";

/** Retained messages moved into a session's queue at a time, when it has room. */
const RETAINED_BATCH = 32;
/** Topic levels a retained-message search looks at before it may pause. */
const RETAINED_STEPS = 1024;
/** Pauses allowed per call: past this many steps without a match, others run first. */
const RETAINED_PAUSES = 16;

/** Retained messages still to send for one granted filter. */
export interface RetainedCursor {
  /** The matching retained messages; `undefined` marks a point where a long search may pause. */
  readonly messages: Iterator<RetainedMessage | undefined>;
  /** The subscription they are sent for (its QoS and 5.0 options). */
  readonly granted: Grant;
  /** A message taken from `messages` that had no room in the queue yet: the next to go. */
  held?: Delivery;
}

/** How {@linkcode queueRetained} went. */
export interface QueuedRetained {
  /** Messages moved into the session's queue. */
  moved: number;
  /** A long search paused: call again later (from a timer) to go on. */
  paused: boolean;
}

/**
 * Moves the retained messages the session is owed into its queue, in order
 * (filter by filter as the subscriptions were granted, MQTT-3.8.4-4), while
 * `fits` says the next one has room. With `offline`, QoS 0 ones are dropped
 * as for any offline session. An expired one is handed to `expire` (MQTT 5.0
 * section 3.3.2.3.3) instead.
 *
 * @example
 * ```ts ignore
 * const { moved, paused } = queueRetained(session, (_, n) => n < 32, false, now, expire);
 * ```
 */
export function queueRetained(
  session: BrokerSession,
  fits: (delivery: Delivery, moved: number) => boolean,
  offline: boolean,
  now: number,
  expire: (message: RetainedMessage) => void,
): QueuedRetained {
  const cursors = session.retained;
  let moved = 0;
  let pauses = 0;
  while (cursors.length > 0) {
    const cursor = cursors[0];
    let delivery = cursor.held;
    cursor.held = undefined;
    if (delivery === undefined) {
      const next = cursor.messages.next();
      if (next.done) {
        cursors.shift();
        continue;
      }
      const message = next.value;
      if (message === undefined) {
        // A long search (say 2,000 filters like "r/+/x" over 100,000 retained topics "r/…")
        // must not hold the event loop: let the others run, then go on.
        if (++pauses < RETAINED_PAUSES) continue;
        return { moved, paused: true };
      }
      if (isExpired(message.expiresAt, now)) {
        expire(message);
        continue;
      }
      delivery = retainedDelivery(message, cursor.granted);
    }
    if (offline && delivery.qos === 0) continue;
    if (!fits(delivery, moved)) {
      cursor.held = delivery;
      break;
    }
    session.enqueue(delivery);
    moved++;
  }
  return { moved, paused: false };
}

/** A retained message as a subscriber gets it for a new subscription. */
function retainedDelivery(message: RetainedMessage, granted: Grant): Delivery {
  // MQTT-3.3.1-8: RETAIN set; QoS the lower of the message's and the grant's.
  const qos = (message.qos < granted.qos ? message.qos : granted.qos) as QoS;
  const delivery: Delivery = { topic: message.topic, payload: message.payload, qos, retain: true };
  const properties = deliveredProperties(message.properties, granted);
  if (properties !== undefined) delivery.properties = properties;
  if (message.expiresAt !== undefined) delivery.expiresAt = message.expiresAt;
  return delivery;
}

/**
 * A connection's side of the retained messages its session is owed: it adds
 * what a SUBSCRIBE grants and feeds the session's queue as the client's
 * window allows.
 *
 * @example
 * ```ts ignore
 * const feed = new RetainedFeed(router, options.maxQueuedMessages, () => connection.wake());
 * feed.add(session, "sensors/#", { qos: 1 });
 * while (feed.fill(session, performance.now())) sendWhatTheSessionHas();
 * ```
 */
export class RetainedFeed {
  readonly #router: Router;
  readonly #maxQueued: number;
  readonly #wake: () => void;
  /** Resumes a retained-message search that paused to let other connections run. */
  #resumeTimer: ReturnType<typeof setTimeout> | undefined = undefined;

  /** A feed of `router`'s retained messages; `wake` is called when a paused search may go on. */
  constructor(router: Router, maxQueuedMessages: number, wake: () => void) {
    this.#router = router;
    this.#maxQueued = maxQueuedMessages;
    this.#wake = wake;
  }

  /** Whether retained messages may still be owed to `session`. */
  pending(session: BrokerSession): boolean {
    return session.retained.length > 0;
  }

  /** The retained messages matching `filter` are owed to `session`, at most at the QoS of `granted`. */
  add(session: BrokerSession, filter: string, granted: Grant): void {
    session.retained.push({ messages: this.#router.retainedFor(filter, RETAINED_STEPS), granted });
  }

  /**
   * Moves retained messages still to send into the session's queue while it holds fewer than a
   * batch; returns whether any moved. Called when nothing else can be sent, so retained
   * messages go out as fast as the client acknowledges them and never overflow its queue.
   */
  fill(session: BrokerSession, now: number): boolean {
    const room = Math.min(RETAINED_BATCH, this.#maxQueued) - session.queued;
    const router = this.#router;
    const { moved, paused } = queueRetained(
      session,
      (_, moved) => moved < room,
      false,
      now,
      (message) => router.expireRetained(message), // MQTT 5.0 section 3.3.2.3.3
    );
    if (paused) {
      this.#resumeTimer ??= setTimeout(() => {
        this.#resumeTimer = undefined;
        this.#wake();
      }, 0);
    }
    return moved > 0;
  }

  /**
   * The connection closed: it feeds nothing more. What is still owed stays with the session
   * (the router queues it if the session outlives the connection).
   */
  stop(): void {
    clearTimeout(this.#resumeTimer);
  }
}
