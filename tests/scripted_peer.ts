/**
 * A scripted MQTT server for client tests where no real broker can play the
 * part (incoming topic aliases, enhanced authentication): a loopback TCP
 * listener whose connections are read and written packet by packet with the
 * codec, at MQTT 5.0 by default.
 *
 * @module
 */
import assert from "node:assert/strict";
import { encodePacket } from "../lib/codec/encode.ts";
import type { Packet, ProtocolVersion } from "../lib/codec/packet.ts";
import { PacketFramer } from "../lib/streams/packet_reader.ts";
import { within } from "./client_helpers.ts";

/** One accepted TCP connection, read packet by packet. */
export class ScriptedPeer {
  readonly #conn: Deno.Conn;
  readonly #version: ProtocolVersion;
  readonly #framer: PacketFramer;
  readonly #packets: Packet[] = [];
  readonly #take = (packet: Packet): boolean => {
    this.#packets.push(packet);
    return true;
  };
  #eof = false;

  constructor(conn: Deno.Conn, version: ProtocolVersion) {
    this.#conn = conn;
    this.#version = version;
    this.#framer = new PacketFramer({ protocolVersion: version });
  }

  /** The next packet the client sent, or `"eof"` once it closed the connection. */
  async next(what = "a packet from the client"): Promise<Packet | "eof"> {
    while (true) {
      const packet = this.#packets.shift();
      if (packet !== undefined) return packet;
      if (this.#eof) return "eof";
      const chunk = new Uint8Array(4096);
      let n: number | null;
      try {
        n = await within(this.#conn.read(chunk), what);
      } catch (err) {
        if (err instanceof Deno.errors.ConnectionReset) n = null;
        else throw err;
      }
      if (n === null) {
        // The client closed its side (after its DISCONNECT): hang up, as a broker does.
        this.#eof = true;
        this.close();
        continue;
      }
      this.#framer.push(chunk.subarray(0, n), this.#take);
    }
  }

  /** The next packet, which must be of `type`. */
  async expect<T extends Packet["type"]>(type: T): Promise<Extract<Packet, { type: T }>> {
    const packet = await this.next(`a ${type.toUpperCase()}`);
    assert.ok(packet !== "eof", `expected ${type}, the client closed the connection`);
    assert.equal(packet.type, type, `expected ${type}, got ${JSON.stringify(packet)}`);
    return packet as Extract<Packet, { type: T }>;
  }

  /** Skips packets until the client closes the connection; returns the last one it sent. */
  async untilEof(): Promise<Packet | undefined> {
    let last: Packet | undefined;
    while (true) {
      const packet = await this.next("the client to close the connection");
      if (packet === "eof") return last;
      last = packet;
    }
  }

  /** Writes a packet (encoded at the peer's version) or raw bytes. */
  async write(bytes: ArrayLike<number> | Packet): Promise<void> {
    const data = "type" in bytes
      ? encodePacket(bytes as Packet, { protocolVersion: this.#version })
      : Uint8Array.from(bytes);
    let off = 0;
    while (off < data.length) off += await this.#conn.write(data.subarray(off));
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/** A scripted server on a free loopback port; `accept()` waits for the client's connection. */
export interface ScriptedServer extends Disposable {
  /** `mqtt://127.0.0.1:port`. */
  readonly url: string;
  /** The next connection. */
  accept(): Promise<ScriptedPeer>;
  /** Closes every connection and the listener. */
  close(): void;
}

/** Starts a scripted server speaking `version` (5.0 unless told). */
export function scriptedServer(version: ProtocolVersion = 5): ScriptedServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peers: ScriptedPeer[] = [];
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    for (const peer of peers) peer.close();
    listener.close();
  };
  return {
    url: `mqtt://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    async accept() {
      const peer = new ScriptedPeer(
        await within(listener.accept(), "the client to connect"),
        version,
      );
      peers.push(peer);
      return peer;
    },
    close,
    [Symbol.dispose]: close,
  };
}
