/**
 * The bytes a broker connection reads, before they are framed: what a client
 * can make the broker hold stays proportional to what it sent.
 *
 * @module
 */
import { packetLength } from "../codec/mod.ts";

/**
 * The largest CONNECT of MQTT 3.1.1: a 5-byte fixed header, a 10-byte
 * variable header and five length-prefixed fields of at most 65,535 bytes
 * (client id, will topic, will message, user name, password; section 3.1.3).
 */
export const MAX_CONNECT_SIZE: number = 5 + 10 + 5 * (2 + 65_535);

/** First capacity of the buffer gathering a CONNECT. */
const FIRST_CAPACITY = 256;

/**
 * A client's bytes on their way to the packet framer.
 *
 * Until its first packet (the CONNECT, MQTT-3.1.0-1) is complete, the bytes
 * are gathered into one buffer that grows with what arrived (never to the
 * size the packet's header claims) and the packet may be at most `maxConnectSize`:
 * an unauthenticated client can make the broker hold at most twice what it
 * sent, and never more than a CONNECT can be. A larger claim throws the
 * codec's `PACKET_TOO_LARGE` as soon as the header is read. Afterwards chunks
 * pass through as they are (the connection's `Link` already sized them).
 *
 * Synchronous, and nothing allocated before the first byte: an idle
 * connection holds only this object.
 *
 * @example
 * ```ts ignore
 * const intake = new ConnectIntake(MAX_CONNECT_SIZE);
 * const bytes = intake.push(chunk); // undefined while the CONNECT is incomplete
 * if (bytes !== undefined) framer.push(bytes, onPacket);
 * ```
 */
export class ConnectIntake {
  readonly #maxConnectSize: number;
  #gathering = true;
  #buffer: Uint8Array | undefined = undefined;
  #filled = 0;
  #total = -1;

  /** An intake refusing a CONNECT over `maxConnectSize` bytes. */
  constructor(maxConnectSize: number) {
    this.#maxConnectSize = maxConnectSize;
  }

  /**
   * Takes the next chunk read; returns the bytes to frame now: the chunk
   * itself once the CONNECT is complete, the whole CONNECT (with what followed
   * it) when this chunk completes it, `undefined` while it is incomplete.
   */
  push(chunk: Uint8Array): Uint8Array | undefined {
    if (!this.#gathering) return chunk;
    const filled = this.#filled;
    const needed = filled + chunk.byteLength;
    let buffer = this.#buffer;
    if (buffer === undefined || needed > buffer.length) {
      // Doubling: gathering a CONNECT sent a byte at a time copies each byte a bounded
      // number of times, and the buffer is at most twice the bytes received.
      const grown = new Uint8Array(Math.max(FIRST_CAPACITY, needed, (buffer?.length ?? 0) * 2));
      if (buffer !== undefined) grown.set(buffer.subarray(0, filled));
      this.#buffer = buffer = grown;
    }
    buffer.set(chunk, filled);
    this.#filled = needed;
    // Throws PACKET_TOO_LARGE once the header shows a bigger packet.
    if (this.#total < 0) this.#total = packetLength(buffer, 0, needed, this.#maxConnectSize);
    if (this.#total < 0 || needed < this.#total) return undefined;
    this.#gathering = false;
    this.#buffer = undefined;
    return buffer.slice(0, needed);
  }
}
