/**
 * What an MQTT 5.0 client connection agreed with its server, and the rules
 * that follow from it: the CONNACK's limits (section 3.2.2.3), the Topic
 * Aliases of each direction (section 3.3.2.3.4), our Receive Maximum
 * (section 3.3.4) and the enhanced-authentication exchange (section 4.12).
 * The {@linkcode Session} holds one under 5.0 and none under 3.1.1, and
 * does the sending and closing these rules call for.
 *
 * @module
 */
import type {
  ConnackPacket,
  PublishPacket,
  SubscribePacket,
  UnsubscribePacket,
} from "../codec/packet.ts";
import type { ConnectProperties } from "../codec/properties.ts";
import { type MqttError, ProtocolError } from "../errors.ts";
import { EnhancedAuth } from "./auth.ts";
import type { ClientSessionState } from "./client_state.ts";
import {
  checkLimits,
  checkRequestSize,
  DEFAULT_LIMITS,
  limitsOf,
  type ServerLimits,
} from "./connack.ts";
import { ConnectionTopicAliases } from "./topic_aliases.ts";
import type { OutgoingMessage } from "./types.ts";

/**
 * The MQTT 5.0 side of a client's connections: made once per session from
 * the CONNECT properties, and {@linkcode V5Negotiation.start}ed anew for each
 * connection.
 *
 * @example
 * ```ts
 * import { V5Negotiation } from "./negotiation.ts";
 * const v5 = new V5Negotiation({ receiveMaximum: 10 });
 * v5.start();
 * v5.connected({ type: "connack", sessionPresent: false, reasonCode: 0, properties: { maximumQoS: 1 } });
 * const message = { topic: "a", payload: new Uint8Array(), qos: 2 as const, retain: false };
 * console.log(v5.limits.maximumQoS, v5.refuse(message)?.code); // 1 QOS_NOT_SUPPORTED
 * ```
 */
export class V5Negotiation {
  /** Most unreleased incoming QoS 1/2 the server may send us (our Receive Maximum). */
  readonly receiveMaximum: number;
  readonly #properties: ConnectProperties | undefined;
  #limits: Readonly<ServerLimits> = DEFAULT_LIMITS;
  #aliases = new ConnectionTopicAliases(0);
  #auth = new EnhancedAuth(undefined);

  /** The rules for connections whose CONNECT carries `properties`. */
  constructor(properties: ConnectProperties | undefined) {
    this.#properties = properties;
    this.receiveMaximum = properties?.receiveMaximum ?? 65535;
    this.start();
  }

  /** The server's limits from the latest CONNACK (the defaults before one). */
  get limits(): Readonly<ServerLimits> {
    return this.#limits;
  }

  /** The enhanced-authentication rules of the current connection. */
  get auth(): EnhancedAuth {
    return this.#auth;
  }

  /** A new connection: no limits known yet, no aliases in either direction (MQTT-3.3.2-7). */
  start(): void {
    const p = this.#properties;
    this.#aliases = new ConnectionTopicAliases(p?.topicAliasMaximum ?? 0);
    this.#auth = new EnhancedAuth(p?.authenticationMethod);
    this.#limits = DEFAULT_LIMITS;
  }

  /**
   * An accepted CONNACK: checks its Authentication Method (MQTT-4.12.0-5, -6;
   * throws `ProtocolError`), then its limits hold for this connection.
   */
  connected(packet: ConnackPacket): Readonly<ServerLimits> {
    this.#auth.checkConnack(packet);
    const limits = limitsOf(packet);
    this.#limits = limits;
    // MQTT-3.2.2-17, -18: aliases up to the server's Topic Alias Maximum, none when 0.
    this.#aliases.connected(limits.topicAliasMaximum);
    return limits;
  }

  /**
   * Why the server's limits forbid sending `message` (MQTT-3.2.2-11, -14,
   * -15), or undefined when they allow it.
   */
  refuse(message: OutgoingMessage): MqttError | undefined {
    return checkLimits(message, this.#limits, 5);
  }

  /** `PACKET_TOO_LARGE` when `packet` exceeds the server's Maximum Packet Size (MQTT-3.2.2-15). */
  checkRequest(packet: SubscribePacket | UnsubscribePacket): ProtocolError | undefined {
    return checkRequestSize(packet, this.#limits);
  }

  /** The PUBLISH to write: with a Topic Alias where one is due (the kept one is not changed). */
  outgoing(packet: PublishPacket): PublishPacket {
    return this.#aliases.outgoing(packet);
  }

  /** An incoming PUBLISH with its Topic Alias resolved; throws for an invalid or unknown alias. */
  incoming(packet: PublishPacket): PublishPacket {
    return this.#aliases.incoming(packet);
  }

  /**
   * `RECEIVE_MAXIMUM_EXCEEDED` when the incoming PUBLISH `packetId` is one
   * more than our Receive Maximum allows unacknowledged (section 3.3.4), else
   * undefined. A QoS 1 PUBLISH is acknowledged as it is delivered, so only
   * QoS 2 ones awaiting PUBREL count; with `deferAcks` the messages still
   * being consumed count too (QoS 1 included), and a resend of one of them
   * is no new message.
   */
  overReceiveMaximum(data: ClientSessionState, packetId: number): ProtocolError | undefined {
    const pending = data.acks.length;
    if (
      data.incomingCount + pending < this.receiveMaximum || data.hasIncoming(packetId) ||
      (pending !== 0 && data.acks.get(packetId) !== undefined)
    ) return undefined;
    return new ProtocolError(
      "RECEIVE_MAXIMUM_EXCEEDED",
      `the server sent more than our Receive Maximum of ${this.receiveMaximum} ` +
        "unacknowledged QoS 1/2 PUBLISH (section 3.3.4); DISCONNECT 0x93 sent",
      "publish",
    );
  }
}
