/**
 * The bytes of one broker connection, read and written without web streams.
 *
 * A broker holds many idle connections, and whatever each one keeps while it
 * waits is multiplied by their number. A TCP connection served through
 * `conn.readable`, two `TransformStream`s (CONNECT intake, packet framing) and
 * `conn.writable` kept six streams, their controllers, readers, writers, pipe
 * loops and about 45 promises per connection, about 27 KB of heap while idle
 * (issue 14). A {@linkcode SocketLink} keeps one pending read: its buffer and
 * promise.
 *
 * @module
 */
import type { Transport } from "../transports/transport.ts";
import { nextReadSize } from "../transports/read_size.ts";

/**
 * What a broker connection reads from and writes to.
 *
 * @example
 * ```ts ignore
 * const link: Link = new SocketLink(await Deno.connect({ port: 1883 }));
 * await link.write(new Uint8Array([0xc0, 0x00])); // PINGREQ
 * console.log(await link.read()); // the PINGRESP, or null at the end
 * link.close();
 * ```
 */
export interface Link {
  /**
   * The next bytes from the peer, or `null` once it closed. Each chunk is a
   * buffer of its own, never reused, and at least half of that buffer: the
   * connection may keep views of it. Rejects when the link fails.
   */
  read(): Promise<Uint8Array | null>;
  /** Writes all of `chunk`; settles once it was handed on. Rejects when the link fails. */
  write(chunk: Uint8Array): Promise<void>;
  /** Tears the link down at once; a pending read or write then settles. Safe to call twice. */
  close(): void;
}

/** The part of `Deno.Conn` (TCP or TLS) a {@linkcode SocketLink} uses. */
export interface Socket {
  /** Reads into `buffer`; resolves to the byte count, or `null` at the end. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes from `buffer`; resolves to the byte count written, perhaps fewer than all. */
  write(buffer: Uint8Array): Promise<number>;
  /** Closes the connection. */
  close(): void;
}

/** Smallest read buffer: what a quiet connection keeps pending. */
export const MIN_READ = 512;
/** Largest read buffer, as `conn.readable`'s. */
export const MAX_READ = 64 * 1024;

/**
 * A kept chunk at its exact size when it uses less than half of its buffer:
 * a one-byte read must not keep a large buffer alive through a payload view.
 */
export function exact(chunk: Uint8Array): Uint8Array {
  return chunk.byteLength * 2 < chunk.buffer.byteLength ? chunk.slice() : chunk;
}

/**
 * A TCP or TLS connection as a {@linkcode Link}. Reads go into a fresh buffer
 * that doubles after each read that fills it (up to {@linkcode MAX_READ}) and
 * halves after each read that uses less than a quarter of it (down to
 * {@linkcode MIN_READ}): small while the connection is quiet, large while it
 * is busy. Writes go straight to the socket, looping over partial writes.
 *
 * @example
 * ```ts ignore
 * const link = new SocketLink(await listener.accept());
 * for (let chunk = await link.read(); chunk !== null; chunk = await link.read()) {
 *   console.log(chunk.length);
 * }
 * ```
 */
export class SocketLink implements Link {
  readonly #socket: Socket;
  #size = MIN_READ;
  /** The buffer of the read under way (one at a time). */
  #buffer: Uint8Array | undefined = undefined;
  #closed = false;

  /** Reads and writes `socket`, and closes it on {@linkcode SocketLink.close}. */
  constructor(socket: Socket) {
    this.#socket = socket;
  }

  /** See {@linkcode Link.read}. */
  read(): Promise<Uint8Array | null> {
    const buffer = new Uint8Array(this.#size);
    this.#buffer = buffer;
    // Not an async function: a pending read then holds a promise, not a suspended generator.
    return this.#socket.read(buffer).then(this.#took);
  }

  /** What the read into {@linkcode #buffer} gives, and the next read's size. Made once. */
  readonly #took = (n: number | null): Uint8Array | null => {
    const buffer = this.#buffer!;
    this.#buffer = undefined;
    if (n === null) return null;
    const size = buffer.length;
    this.#size = nextReadSize(size, n, MIN_READ, MAX_READ);
    if (n === size) return buffer;
    // Mostly empty: a copy of its own size, so views of it do not keep the whole buffer.
    return n * 2 < size ? buffer.slice(0, n) : buffer.subarray(0, n);
  };

  /** See {@linkcode Link.write}. */
  async write(chunk: Uint8Array): Promise<void> {
    const socket = this.#socket;
    let written = await socket.write(chunk);
    while (written < chunk.length) written += await socket.write(chunk.subarray(written));
  }

  /** See {@linkcode Link.close}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#socket.close();
    } catch {
      // Already closed by the peer: nothing left to release.
    }
  }
}

const NOOP = (): void => {};

/**
 * Any byte duplex ({@linkcode Transport}: what `Broker.handle` is given, a
 * `node:tls` socket, an in-memory pair in a test) as a {@linkcode Link}.
 * Chunks that use less than half of their buffer are copied to their size
 * (see {@linkcode exact}).
 *
 * @example
 * ```ts ignore
 * const link = new StreamLink({ readable, writable, close: () => socket.destroy() });
 * ```
 */
export class StreamLink implements Link {
  readonly #transport: Transport;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #closed = false;

  /** Reads and writes `transport`, and closes it on {@linkcode StreamLink.close}. */
  constructor(transport: Transport) {
    this.#transport = transport;
    this.#reader = transport.readable.getReader();
    this.#writer = transport.writable.getWriter();
  }

  /** See {@linkcode Link.read}. */
  async read(): Promise<Uint8Array | null> {
    const { value, done } = await this.#reader.read();
    return done ? null : exact(value);
  }

  /** See {@linkcode Link.write}. */
  write(chunk: Uint8Array): Promise<void> {
    return this.#writer.write(chunk);
  }

  /** See {@linkcode Link.close}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#transport.close();
    } catch {
      // Already closed by the peer: nothing left to release.
    }
    this.#reader.cancel().catch(NOOP);
    this.#writer.abort().catch(NOOP);
  }
}
