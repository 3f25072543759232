/**
 * Acknowledgements of incoming QoS 1/2 messages that wait for the
 * application: one {@linkcode PendingAck} per PUBLISH handed over and not yet
 * acknowledged, in arrival order, in an {@linkcode AckQueue} that outlives the
 * connection (it is part of the session state). The rules that use it live in
 * `flows.ts`.
 *
 * @module
 */
import { Queue } from "../util/queue.ts";

/**
 * Where an incoming message's acknowledgement stands:
 * - `"waiting"`: handed to the application, which has not finished with it;
 * - `"consumed"`: the application is done; PUBACK / PUBREC goes out once every
 *   earlier message's has (MQTT-4.6.0-2/3);
 * - `"declined"`: nobody will consume it on this connection (the client
 *   closed with it unconsumed); on a persistent session it is never
 *   acknowledged, so the server sends it again on the next connection
 *   (MQTT-4.4.0-1);
 * - `"done"`: acknowledged, skipped, or forgotten with the server's session:
 *   nothing more happens, whatever the application calls.
 */
export type AckStatus = "waiting" | "consumed" | "declined" | "done";

/**
 * An incoming QoS 1/2 PUBLISH whose acknowledgement waits for the
 * application. The driver hands it back to `Session.acknowledge` once the
 * application has consumed (or declined) the message.
 *
 * @example
 * ```ts
 * import { PendingAck } from "./acks.ts";
 * const ack = new PendingAck(7, 1);
 * console.log(ack.status); // waiting
 * ```
 */
export class PendingAck {
  /** The PUBLISH's packet identifier. */
  readonly packetId: number;
  /** The PUBLISH's QoS: 1 is answered by PUBACK, 2 by PUBREC. */
  readonly qos: 1 | 2;
  /** See {@linkcode AckStatus}. */
  status: AckStatus;
  /**
   * QoS 2 only: the id is already recorded as received (a resend of a message
   * acknowledged before), so its PUBREC records nothing again.
   */
  readonly recorded: boolean;

  /** A pending acknowledgement, `"waiting"` unless given. */
  constructor(packetId: number, qos: 1 | 2, status: AckStatus = "waiting", recorded = false) {
    this.packetId = packetId;
    this.qos = qos;
    this.status = status;
    this.recorded = recorded;
  }
}

/**
 * The pending acknowledgements of a session, in the order their PUBLISH
 * arrived, with those not yet acknowledged also found by packet id (a resend
 * of one of them after a reconnect must not reach the application again).
 *
 * @example
 * ```ts
 * import { AckQueue, PendingAck } from "./acks.ts";
 * const acks = new AckQueue();
 * acks.push(new PendingAck(1, 1));
 * console.log(acks.length, acks.get(1)?.status); // 1 waiting
 * ```
 */
export class AckQueue {
  #queue = new Queue<PendingAck>();
  /** Made on the first push: a broker's idle sessions need none. */
  #byId: Map<number, PendingAck> | undefined = undefined;

  /** Acknowledgements not yet sent (or skipped). */
  get length(): number {
    return this.#queue.length;
  }

  /** Appends one, in arrival order. */
  push(ack: PendingAck): void {
    this.#queue.push(ack);
    (this.#byId ??= new Map()).set(ack.packetId, ack);
  }

  /** The unacknowledged message with this packet id, if any. */
  get(packetId: number): PendingAck | undefined {
    return this.#byId?.get(packetId);
  }

  /** The oldest pending acknowledgement. */
  peek(): PendingAck | undefined {
    return this.#queue.peek();
  }

  /** Removes the oldest and marks it `"done"`. */
  shift(): PendingAck | undefined {
    const ack = this.#queue.shift();
    if (ack === undefined) return undefined;
    const byId = this.#byId!; // `push` made it
    if (byId.get(ack.packetId) === ack) byId.delete(ack.packetId);
    ack.status = "done";
    return ack;
  }

  /** Forgets every pending acknowledgement (the server's session is gone): they become `"done"`. */
  clear(): void {
    for (const ack of this.#queue.drain()) ack.status = "done";
    this.#byId?.clear();
  }
}

/**
 * Marks a waiting acknowledgement `"consumed"` or `"declined"`; returns
 * false when it was no longer waiting (settled before, or forgotten).
 *
 * @example
 * ```ts
 * import { PendingAck, settleAck } from "./acks.ts";
 * const ack = new PendingAck(1, 1);
 * console.log(settleAck(ack, true), settleAck(ack, true), ack.status); // true false consumed
 * ```
 */
export function settleAck(ack: PendingAck, consumed: boolean): boolean {
  if (ack.status !== "waiting") return false;
  ack.status = consumed ? "consumed" : "declined";
  return true;
}
