/**
 * A transport's stream-free fast path. The client's driver reads and writes
 * a {@linkcode Transport} through a {@linkcode ByteReader} and a
 * {@linkcode ByteWriter}: for any transport those are the reader and writer
 * of its web streams; a transport of this package may offer its own instead
 * ({@linkcode DIRECT}), which hold no stream, queue, or promise per
 * connection while it sits idle. Ten thousand idle connections in one
 * process should not each carry a pair of web streams (issue 18).
 *
 * @module
 */
import type { Transport } from "./transport.ts";

/** What the driver needs of the reading end: a subset of `ReadableStreamDefaultReader`. */
export interface ByteReader {
  /** The next chunk, or `done` at the end of the stream; rejects when the link fails. */
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
  /** Stops reading; a pending `read` resolves with `done`. */
  cancel(): Promise<void>;
  /** Lets go of the reading end. */
  releaseLock(): void;
}

/** What the driver needs of the writing end: a subset of `WritableStreamDefaultWriter`. */
export interface ByteWriter {
  /** Writes after the writes before it; settles once the transport took the bytes (or failed). */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Settles once everything written before has left (or could not); where
   * the link can, also tells the peer no more bytes come (see `Transport.writable`).
   */
  close(): Promise<void>;
  /** Writes not yet started fail with `reason`. */
  abort(reason?: unknown): Promise<void>;
}

/** The reading and writing ends of one transport. */
export interface ByteDuplex {
  /** The reading end. */
  readonly reader: ByteReader;
  /** The writing end. */
  readonly writer: ByteWriter;
}

/**
 * Key of a transport's fast path: a method returning its {@linkcode ByteDuplex},
 * or `undefined` once its streams are in use. Taking the fast path locks the
 * streams, as a reader and a writer would.
 */
export const DIRECT: unique symbol = Symbol("mqtt.transport.direct");

/** A {@linkcode Transport} that may offer a stream-free fast path. */
export interface DirectTransport extends Transport {
  /** The fast path, taken once; `undefined` when the streams are in use already. */
  [DIRECT]?(): ByteDuplex | undefined;
}

/**
 * The reading and writing ends of `transport`: its fast path where it has
 * one, else a reader and a writer of its streams (user transports).
 *
 * @example
 * ```ts ignore
 * import { openDuplex } from "./direct.ts";
 * const { reader, writer } = openDuplex(transport);
 * await writer.write(new Uint8Array([0xc0, 0]));
 * ```
 */
export function openDuplex(transport: Transport): ByteDuplex {
  const direct = (transport as DirectTransport)[DIRECT]?.();
  if (direct !== undefined) return direct;
  const writer = transport.writable.getWriter();
  return { reader: transport.readable.getReader(), writer };
}
