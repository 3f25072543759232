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
 * A read chunk as the broker keeps it. Deno hands each read over as a view
 * of a fresh 64 KiB buffer, so a one-byte read kept as it is would hold 64 KiB:
 * a view that uses less than half of its buffer is copied to its own size.
 */
function exact(chunk: Uint8Array): Uint8Array {
  return chunk.byteLength * 2 < chunk.buffer.byteLength ? chunk.slice() : chunk;
}

/**
 * A stream of a client's bytes, to be put in front of the packet framer.
 *
 * Until its first packet (the CONNECT, MQTT-3.1.0-1) is complete, the bytes
 * are gathered into one buffer that grows with what arrived (never to the
 * size the packet's header claims) and the packet may be at most `maxConnectSize`:
 * an unauthenticated client can make the broker hold at most twice what it
 * sent, and never more than a CONNECT can be. A larger claim errors the
 * stream with the codec's `PACKET_TOO_LARGE` as soon as the header is read.
 * Afterwards chunks pass through, copied to their size when they are mostly
 * empty views (see {@linkcode exact}).
 *
 * @example
 * ```ts ignore
 * const packets = transport.readable
 *   .pipeThrough(connectIntake(MAX_CONNECT_SIZE))
 *   .pipeThrough(new PacketReader({ maxPacketSize }));
 * ```
 */
export function connectIntake(maxConnectSize: number): TransformStream<Uint8Array, Uint8Array> {
  let gathering = true;
  let buffer = new Uint8Array(0);
  let filled = 0;
  let total = -1;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      if (!gathering) {
        controller.enqueue(exact(chunk));
        return;
      }
      const needed = filled + chunk.byteLength;
      if (needed > buffer.length) {
        // Doubling: gathering a CONNECT sent a byte at a time copies each byte a bounded
        // number of times, and the buffer is at most twice the bytes received.
        const grown = new Uint8Array(Math.max(FIRST_CAPACITY, needed, buffer.length * 2));
        grown.set(buffer.subarray(0, filled));
        buffer = grown;
      }
      buffer.set(chunk, filled);
      filled = needed;
      // Throws PACKET_TOO_LARGE (the stream errors) once the header shows a bigger packet.
      if (total < 0) total = packetLength(buffer, 0, filled, maxConnectSize);
      if (total < 0 || filled < total) return;
      gathering = false;
      controller.enqueue(buffer.slice(0, filled));
      buffer = new Uint8Array(0);
    },
  });
}
