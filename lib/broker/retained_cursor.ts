/**
 * Retained messages on their way to a new subscription (MQTT-3.3.1-6): taken
 * from the retained store lazily, into the session's queue as there is room,
 * so a subscription to many retained messages neither floods the client nor
 * overflows its queue. The cursors belong to the session, not the connection:
 * what is not yet sent when the connection ends is queued for the session
 * (QoS 1 and 2, as far as its queue limits allow) and goes on when it resumes.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import { isExpired } from "../session/expiry.ts";
import { deliveredProperties } from "./router.ts";
import type { RetainedMessage } from "./retained.ts";
import type { BrokerSession, Delivery } from "./session.ts";
import type { Grant } from "./subscriptions.ts";

/** Retained messages still to send for one granted filter. */
export interface RetainedCursor {
  /** The matching retained messages; `undefined` marks a point where a long search may pause. */
  readonly messages: Iterator<RetainedMessage | undefined>;
  /** The subscription they are sent for (its QoS and 5.0 options). */
  readonly granted: Grant;
  /** A message taken from `messages` that did not fit in the queue yet: the next to go. */
  held?: Delivery;
}

/** Pauses allowed per call: past this many steps without a match, others run first. */
const PAUSES = 16;

/** How {@linkcode queueRetained} went. */
export interface QueuedRetained {
  /** Messages moved into the session's queue. */
  moved: number;
  /** A long search paused: call again later (from a timer) to go on. */
  paused: boolean;
}

/**
 * Moves the session's retained messages still to send into its queue, in
 * order, while `fits` says the next one has room. Offline (`offline`), QoS 0
 * ones are dropped as for any offline session. An expired message is handed
 * to `expire` (MQTT 5.0 section 3.3.2.3.3) instead.
 *
 * @example
 * ```ts ignore
 * const { moved, paused } = queueRetained(session, (_, n) => n < 32, false, performance.now(), expire);
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
        if (++pauses < PAUSES) continue;
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
