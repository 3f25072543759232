/**
 * When `mosquitto_sub` hands a message over, seen through the client's packet
 * hook: a QoS 0 message as it is read, a QoS 1 message once its PUBACK is
 * sent, a QoS 2 message once its PUBCOMP is sent (a resent PUBLISH of an id
 * not yet released is the same message). Printing at those points gives its
 * output in the order of its `-d` trace.
 *
 * @module
 */
import type { Packet, PublishPacket } from "../codec/packet.ts";
import type { PacketDirection } from "../client/packet_trace.ts";

/**
 * Follows the packets of one client and says which message, if any, is
 * handed over after each.
 *
 * @example
 * ```ts
 * import { WireOrder } from "./wire_order.ts";
 * const order = new WireOrder();
 * const publish = {
 *   type: "publish", topic: "a", payload: new Uint8Array(), qos: 1, retain: false, dup: false,
 *   packetId: 7,
 * } as const;
 * console.log(order.see("received", publish)); // undefined: not acknowledged yet
 * console.log(order.see("sent", { type: "puback", packetId: 7 })?.topic); // "a"
 * ```
 */
export class WireOrder {
  readonly #atLeastOnce = new Map<number, PublishPacket>();
  readonly #exactlyOnce = new Map<number, PublishPacket>();

  /** The message handed over once `packet` went `direction`, if one is. */
  see(direction: PacketDirection, packet: Packet): PublishPacket | undefined {
    if (direction === "received" && packet.type === "publish") {
      if (packet.qos === 0) return packet;
      const held = packet.qos === 1 ? this.#atLeastOnce : this.#exactlyOnce;
      // MQTT-4.3.3-2: until PUBREL, a PUBLISH with the same id is the same message.
      if (packet.qos === 1 || !held.has(packet.packetId!)) held.set(packet.packetId!, packet);
      return undefined;
    }
    if (direction !== "sent" || (packet.type !== "puback" && packet.type !== "pubcomp")) {
      return undefined;
    }
    const held = packet.type === "puback" ? this.#atLeastOnce : this.#exactlyOnce;
    const message = held.get(packet.packetId);
    held.delete(packet.packetId);
    return message;
  }
}
