/**
 * An application message delivered to a subscription.
 *
 * @module
 */
import type { PublishPacket, QoS } from "../codec/packet.ts";
import type { PublishProperties } from "../codec/properties.ts";

const decoder = new TextDecoder();

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
