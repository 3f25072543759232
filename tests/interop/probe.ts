/**
 * A raw MQTT peer for collecting a broker's own answer when a feature does not work: it speaks
 * bytes through the codec (no session, no client), so what it reports is exactly what the broker
 * sent back, or that it closed the connection.
 *
 * @module
 */
import { encodePacket } from "../../lib/codec/encode.ts";
import type { Packet } from "../../lib/codec/packet.ts";
import { PacketFramer } from "../../lib/streams/packet_reader.ts";

/** What came back: a packet, the end of the connection, or nothing in time. */
export type Reply = Packet | "closed" | "timeout";

/** A connection to a broker that sends packets and reads replies. */
export class Probe {
  readonly #conn: Deno.Conn;
  readonly #framer = new PacketFramer();
  readonly #packets: Packet[] = [];
  readonly #take = (packet: Packet): boolean => {
    this.#packets.push(packet);
    return true;
  };
  #closed = false;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /**
   * Opens a TCP connection to `url` and sends CONNECT with `clientId` (a clean session unless
   * `clean` is false, keep-alive off); resolves with the probe and the broker's first reply.
   *
   * @example
   * ```ts ignore
   * const { probe, reply } = await Probe.open("mqtt://127.0.0.1:1883", "probe-1");
   * ```
   */
  static async open(
    url: string,
    clientId: string,
    clean = true,
  ): Promise<{ probe: Probe; reply: Reply }> {
    const { hostname, port } = new URL(url);
    const probe = new Probe(await Deno.connect({ hostname, port: Number(port) }));
    await probe.send({
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId,
      clean,
      keepAlive: 0,
    });
    return { probe, reply: await probe.reply() };
  }

  /** Writes one packet. */
  async send(packet: Packet): Promise<void> {
    const bytes = encodePacket(packet);
    let off = 0;
    while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
  }

  /** The next packet from the broker, `"closed"`, or `"timeout"` after `ms`. */
  async reply(ms = 3000): Promise<Reply> {
    const deadline = Date.now() + ms;
    while (true) {
      const packet = this.#packets.shift();
      if (packet !== undefined) return packet;
      if (this.#closed) return "closed";
      const chunk = new Uint8Array(4096);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
      });
      let n: number | null | "timeout";
      try {
        n = await Promise.race([this.#conn.read(chunk), late]);
      } catch {
        n = null; // reset by the peer
      } finally {
        clearTimeout(timer);
      }
      if (n === "timeout") return "timeout";
      if (n === null) {
        this.#closed = true;
        continue;
      }
      this.#framer.push(chunk.subarray(0, n), this.#take);
    }
  }

  /** Closes the connection (a pending read then ends). */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/**
 * Describes a reply for a report, e.g. `PUBACK (packet id 1)` or `closing the connection`.
 *
 * @example
 * ```ts
 * describe({ type: "puback", packetId: 1 }); // "PUBACK (packet id 1)"
 * ```
 */
export function describe(reply: Reply): string {
  if (reply === "closed") return "closing the connection";
  if (reply === "timeout") return "no answer within 3 s";
  switch (reply.type) {
    case "connack":
      return `CONNACK (return code ${reply.returnCode})`;
    case "suback":
      return `SUBACK (return codes ${reply.returnCodes!.join(", ")})`;
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
    case "unsuback":
      return `${reply.type.toUpperCase()} (packet id ${reply.packetId})`;
    default:
      return reply.type.toUpperCase();
  }
}
