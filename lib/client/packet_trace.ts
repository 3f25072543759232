/**
 * The debug hook of `connect()`: every packet a connection sends or receives,
 * handed to {@linkcode ConnectOptions.onPacket} with the password taken out.
 *
 * @module
 */
import type { Packet } from "../codec/packet.ts";

/** Which way a traced packet went. */
export type PacketDirection = "sent" | "received";

/**
 * Called with each packet sent (when it is queued for the transport, in
 * order) and each packet received (when it is read, before it is acted on).
 * A CONNECT's password and the MQTT 5.0 authentication data of CONNECT and
 * AUTH are replaced by the three bytes `***`, so a trace can be logged as it is. The callback must not change the packet; an exception it
 * throws is ignored, so a broken logger cannot break the connection.
 *
 * @example
 * ```ts
 * import type { PacketListener } from "./packet_trace.ts";
 * const log: PacketListener = (direction, packet) => console.log(direction, packet.type);
 * log("sent", { type: "pingreq" }); // sent pingreq
 * ```
 */
export type PacketListener = (direction: PacketDirection, packet: Packet) => void;

const REDACTED: Uint8Array = new TextEncoder().encode("***");

/** The packet with its secrets as `***`: a CONNECT's password, 5.0 authentication data. */
function redacted(packet: Packet): Packet {
  let shown = packet;
  if (shown.type === "connect" && shown.password !== undefined) {
    shown = { ...shown, password: REDACTED };
  }
  if (
    (shown.type === "connect" || shown.type === "auth") &&
    shown.properties?.authenticationData !== undefined
  ) {
    shown = { ...shown, properties: { ...shown.properties, authenticationData: REDACTED } };
  }
  return shown;
}

/**
 * Wraps `listener` so it sees redacted packets and cannot throw into the
 * connection; `undefined` stays `undefined`, so an untraced connection pays nothing.
 *
 * @example
 * ```ts
 * import { tracer } from "./packet_trace.ts";
 * const trace = tracer((dir, p) => console.log(dir, p.type === "connect" && p.password));
 * trace?.("sent", {
 *   type: "connect", protocolName: "MQTT", protocolLevel: 4, clientId: "a", clean: true,
 *   keepAlive: 60, username: "u", password: new Uint8Array([1, 2]),
 * }); // sent Uint8Array(3) [ 42, 42, 42 ]
 * ```
 */
export function tracer(
  listener: PacketListener | undefined,
): PacketListener | undefined {
  if (listener === undefined) return undefined;
  return (direction, packet) => {
    const shown = redacted(packet);
    try {
      listener(direction, shown);
    } catch {
      // A tracing callback's failure is its own; the connection goes on.
    }
  };
}
