/**
 * The retained messages a connection owes its new subscriptions
 * (MQTT-3.3.1-6), fed into the client's session queue as its window allows
 * rather than all at once into a queue that drops when full, and searched in
 * slices so that a long search does not hold the event loop.
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
/** Pauses allowed per write: past this many steps without a match, others run first. */
const RETAINED_PAUSES = 16;

/** Retained messages still to send for one granted filter. */
interface RetainedCursor {
  readonly messages: Iterator<RetainedMessage | undefined>;
  readonly granted: Grant;
}

/**
 * One connection's retained messages still to send, filter by filter in the
 * order the subscriptions were granted (MQTT-3.8.4-4).
 *
 * @example
 * ```ts ignore
 * const feed = new RetainedFeed(router, options.maxQueuedMessages, () => connection.wake());
 * feed.add("sensors/#", { qos: 1 });
 * while (feed.fill(session, performance.now())) sendWhatTheSessionHas();
 * ```
 */
export class RetainedFeed {
  readonly #cursors: RetainedCursor[] = [];
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

  /** Whether retained messages may still be owed. */
  get pending(): boolean {
    return this.#cursors.length > 0;
  }

  /** The retained messages matching `filter` are owed, at most at the QoS of `granted`. */
  add(filter: string, granted: Grant): void {
    this.#cursors.push({ messages: this.#router.retainedFor(filter, RETAINED_STEPS), granted });
  }

  /**
   * Moves retained messages still to send into the session's queue while it holds fewer than a
   * batch; returns whether any moved. Called when nothing else can be sent, so retained
   * messages go out as fast as the client acknowledges them and never overflow its queue.
   */
  fill(session: BrokerSession, now: number): boolean {
    const cursors = this.#cursors;
    const room = Math.min(RETAINED_BATCH, this.#maxQueued) - session.queued;
    let moved = 0;
    let pauses = 0;
    while (cursors.length > 0 && moved < room) {
      const cursor = cursors[0];
      const next = cursor.messages.next();
      if (next.done) {
        cursors.shift();
        continue;
      }
      const message = next.value;
      if (message === undefined) {
        // A long search (say 2,000 filters like "r/+/x" over 100,000 retained topics "r/…")
        // must not hold the event loop: let the other connections run, then go on.
        if (++pauses < RETAINED_PAUSES) continue;
        this.#resumeTimer ??= setTimeout(() => {
          this.#resumeTimer = undefined;
          this.#wake();
        }, 0);
        break;
      }
      if (isExpired(message.expiresAt, now)) {
        this.#router.expireRetained(message); // MQTT 5.0 section 3.3.2.3.3
        continue;
      }
      // MQTT-3.3.1-8: RETAIN set; QoS the lower of the message's and the grant's.
      const granted = cursor.granted;
      const qos = (message.qos < granted.qos ? message.qos : granted.qos) as QoS;
      const delivery: Delivery = {
        topic: message.topic,
        payload: message.payload,
        qos,
        retain: true,
      };
      const properties = deliveredProperties(message.properties, granted);
      if (properties !== undefined) delivery.properties = properties;
      if (message.expiresAt !== undefined) delivery.expiresAt = message.expiresAt;
      session.enqueue(delivery);
      moved++;
    }
    return moved > 0;
  }

  /** Owes nothing more: the connection closed. */
  stop(): void {
    this.#cursors.length = 0;
    clearTimeout(this.#resumeTimer);
  }
}
