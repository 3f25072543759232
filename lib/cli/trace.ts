/**
 * `-d`: the packet trace `mosquitto_pub -d` and `mosquitto_sub -d` print,
 * line for line, made from the client's `onPacket` hook.
 *
 * @module
 */
import type { Packet } from "../codec/packet.ts";
import type { PacketDirection } from "../client/packet_trace.ts";

/**
 * The trace lines of one packet, as libmosquitto words them; a SUBSCRIBE or
 * UNSUBSCRIBE gives one line per topic. `clientId` `""` shows as `(null)`.
 *
 * @example
 * ```ts
 * import { traceLines } from "./trace.ts";
 * console.log(traceLines("s1", "received", { type: "connack", sessionPresent: false, returnCode: 0 }));
 * // ["Client s1 received CONNACK (0)"]
 * ```
 */
export function traceLines(clientId: string, direction: PacketDirection, packet: Packet): string[] {
  const who = `Client ${clientId === "" ? "(null)" : clientId} ${
    direction === "sent" ? "sending" : "received"
  } ${packet.type.toUpperCase()}`;
  const sent = direction === "sent";
  switch (packet.type) {
    case "connack":
      return [`${who} (${packet.returnCode ?? packet.reasonCode ?? 0})`];
    case "publish":
      return [
        `${who} (d${Number(packet.dup)}, q${packet.qos}, r${Number(packet.retain)}, m${
          packet.packetId ?? 0
        }, '${packet.topic}', ... (${packet.payload.length} bytes))`,
      ];
    case "puback":
    case "pubrec":
      if (sent) return [`${who} (m${packet.packetId}, rc${packet.reasonCode ?? 0})`];
      return [
        packet.type === "puback"
          ? `${who} (Mid: ${packet.packetId}, RC:${packet.reasonCode ?? 0})`
          : `${who} (Mid: ${packet.packetId})`,
      ];
    case "pubrel":
      return [sent ? `${who} (m${packet.packetId})` : `${who} (Mid: ${packet.packetId})`];
    case "pubcomp":
      return [
        sent
          ? `${who} (m${packet.packetId})`
          : `${who} (Mid: ${packet.packetId}, RC:${packet.reasonCode ?? 0})`,
      ];
    case "subscribe":
      return packet.subscriptions.map((s) =>
        `${who} (Mid: ${packet.packetId}, Topic: ${s.filter}, QoS: ${s.qos}, Options: 0x00)`
      );
    case "unsubscribe":
      return packet.filters.map((f) => `${who} (Mid: ${packet.packetId}, Topic: ${f})`);
    default:
      return [who];
  }
}
