/**
 * An application message delivered to a subscription.
 *
 * @module
 */
import type { PublishPacket, QoS } from "../codec/packet.ts";
import type { PendingAck } from "../session/acks.ts";
import type { PublishProperties } from "../codec/properties.ts";

const decoder = new TextDecoder();

/**
 * One incoming QoS 1/2 message as the client tracks it: the session's
 * pending acknowledgement, the copies handed to subscriptions (one per
 * matching subscription) not yet settled, and whether any copy was consumed.
 * Acknowledged once every copy is settled and one was consumed; declined when
 * every copy was declined.
 */
class Delivery {
  readonly ack: PendingAck;
  readonly settle: AckFunction;
  copies = 1;
  consumed = false;

  constructor(ack: PendingAck, settle: AckFunction) {
    this.ack = ack;
    this.settle = settle;
  }
}

/**
 * Tells the session a message's acknowledgement may go (`consumed`), or that
 * nobody will consume it. `batched`: the consumer takes a buffered message at
 * once, so this acknowledgement may wait a moment to share a write with the
 * next ones. Not part of the public API.
 */
export type AckFunction = (ack: PendingAck, consumed: boolean, batched?: boolean) => void;

// Let the client's modules reach a message's private side without public methods.
let makeOf: (packet: PublishPacket, ack: PendingAck | undefined, settle: AckFunction) => Message;
let copyOf: (message: Message) => Message;
let settleOf: (message: Message, consumed: boolean, batched: boolean) => void;
let settledOf: (message: Message) => boolean;

/**
 * A received application message: topic, payload bytes, and PUBLISH flags.
 *
 * @example
 * ```ts
 * import { Message } from "./message.ts";
 * const msg = new Message({
 *   type: "publish", topic: "sensors/1/temp", payload: new TextEncoder().encode("21.5"),
 *   qos: 1, retain: false, dup: false, packetId: 7,
 * });
 * console.log(msg.topic, msg.text(), msg.json<number>());
 * ```
 */
export class Message {
  /** Topic name the message was published to. */
  readonly topic: string;
  /** Message body, as received (not copied). */
  readonly payload: Uint8Array;
  /** QoS the message was delivered with (the lower of publish and granted QoS). */
  readonly qos: QoS;
  /** Set when this is a retained message sent because of a new subscription. */
  readonly retain: boolean;
  /** Set when the server says this may be a re-delivery of an earlier attempt. */
  readonly dup: boolean;
  /**
   * MQTT 5.0 PUBLISH properties (message expiry, content type, response
   * topic, correlation data, user properties, subscription identifiers ...);
   * `undefined` when there are none and under MQTT 3.1.1.
   */
  readonly properties: PublishProperties | undefined;
  #delivery: Delivery | undefined = undefined;
  #settled = false;

  static {
    makeOf = (packet, ack, settle) => {
      const message = new Message(packet);
      if (ack !== undefined) message.#delivery = new Delivery(ack, settle);
      return message;
    };
    copyOf = (message) => {
      const { topic, payload, qos, retain, dup, properties } = message;
      const copy = new Message({ type: "publish", topic, payload, qos, retain, dup, properties });
      const delivery = message.#delivery;
      copy.#delivery = delivery;
      if (delivery !== undefined) delivery.copies++;
      return copy;
    };
    settleOf = (message, consumed, batched) => message.#settle(consumed, batched);
    settledOf = (message) => message.#settled;
  }

  /** Wraps a received PUBLISH; copies only the fields, never the payload. */
  constructor(packet: PublishPacket) {
    this.topic = packet.topic;
    this.payload = packet.payload;
    this.qos = packet.qos;
    this.retain = packet.retain;
    this.dup = packet.dup;
    this.properties = packet.properties;
  }

  /**
   * Acknowledges the message now: the application is done with it. Needed
   * with `ack: "manual"` subscriptions, which acknowledge nothing by
   * themselves; with the default `ack: "consume"` it acknowledges earlier than
   * asking for the next message would. Acknowledgements still go out in the
   * order the messages arrived, so this one may wait for earlier ones. Calling
   * it again, or on a QoS 0 message, does nothing.
   *
   * @example
   * ```ts ignore
   * const sub = await client.subscribe("jobs/#", { qos: 1, ack: "manual" });
   * for await (const msg of sub) {
   *   handle(msg).then(() => msg.ack()); // finish in any order
   * }
   * ```
   */
  ack(): void {
    this.#settle(true, false);
  }

  #settle(consumed: boolean, batched: boolean): void {
    if (this.#settled) return;
    this.#settled = true;
    const delivery = this.#delivery;
    if (delivery === undefined) return;
    if (consumed) delivery.consumed = true;
    if (--delivery.copies === 0) delivery.settle(delivery.ack, delivery.consumed, batched);
  }

  /**
   * The payload decoded as UTF-8 (invalid sequences become U+FFFD).
   *
   * @example
   * ```ts
   * import { Message } from "./message.ts";
   * const payload = new TextEncoder().encode("on");
   * const msg = new Message({ type: "publish", topic: "t", payload, qos: 0, retain: false, dup: false });
   * console.log(msg.text()); // "on"
   * ```
   */
  text(): string {
    return decoder.decode(this.payload);
  }

  /**
   * The payload parsed as JSON. Throws the `SyntaxError` of `JSON.parse` when it is not JSON.
   *
   * @example
   * ```ts
   * import { Message } from "./message.ts";
   * const payload = new TextEncoder().encode('{"t":21.5}');
   * const msg = new Message({ type: "publish", topic: "t", payload, qos: 0, retain: false, dup: false });
   * console.log(msg.json<{ t: number }>().t); // 21.5
   * ```
   */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}

/**
 * Makes the message of a delivered PUBLISH; `ack` (QoS 1/2 with
 * acknowledgement on consume) goes to `settle` once the message is consumed
 * or declined. Not part of the public API.
 *
 * @example
 * ```ts
 * import { createMessage } from "./message.ts";
 * const msg = createMessage(
 *   { type: "publish", topic: "a", payload: new Uint8Array(), qos: 0, retain: false, dup: false },
 *   undefined,
 *   () => {},
 * );
 * console.log(msg.topic); // a
 * ```
 */
export function createMessage(
  packet: PublishPacket,
  ack: PendingAck | undefined,
  settle: AckFunction,
): Message {
  return makeOf(packet, ack, settle);
}

/**
 * A copy of a message for one more subscription: the message is acknowledged
 * once every copy is settled. Not part of the public API.
 *
 * @example
 * ```ts
 * import { copyMessage, Message } from "./message.ts";
 * const msg = new Message({ type: "publish", topic: "a", payload: new Uint8Array(), qos: 0, retain: false, dup: false });
 * console.log(copyMessage(msg).topic); // a
 * ```
 */
export function copyMessage(message: Message): Message {
  return copyOf(message);
}

/**
 * Settles one copy of a message: consumed (acknowledge) or declined (nobody
 * will consume this copy). Only the first call per copy counts. Not part of
 * the public API.
 *
 * @example
 * ```ts
 * import { Message, settleMessage } from "./message.ts";
 * const msg = new Message({ type: "publish", topic: "a", payload: new Uint8Array(), qos: 0, retain: false, dup: false });
 * settleMessage(msg, true); // QoS 0: nothing to acknowledge
 * ```
 */
export function settleMessage(message: Message, consumed: boolean, batched = false): void {
  settleOf(message, consumed, batched);
}

/**
 * Whether this copy of a message was settled (acknowledged by `msg.ack()`,
 * consumed or declined). Not part of the public API.
 *
 * @example
 * ```ts
 * import { Message, messageSettled } from "./message.ts";
 * const msg = new Message({ type: "publish", topic: "a", payload: new Uint8Array(), qos: 0, retain: false, dup: false });
 * msg.ack();
 * console.log(messageSettled(msg)); // true
 * ```
 */
export function messageSettled(message: Message): boolean {
  return settledOf(message);
}
