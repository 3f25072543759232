/**
 * A connection with `read`/`write`/`close` (a `Deno.Conn`) as a
 * {@linkcode Transport} whose reads and writes go straight
 * to the connection: the client's driver takes them through the transport's
 * fast path ({@linkcode DIRECT}); web streams are made only for a caller
 * that asks for `readable` or `writable`. An idle connection then holds one
 * pending read, a small read buffer and this object (issue 18).
 *
 * @module
 */
import { transportError } from "./connect_errors.ts";
import { type ByteDuplex, type ByteReader, type ByteWriter, DIRECT } from "./direct.ts";
import type { Transport } from "./transport.ts";
import { nextReadSize } from "./read_size.ts";

/**
 * Size of a connection's first read buffer: an idle connection reads only
 * CONNACK, PINGRESP and the odd small message, and 10,000 of them must not
 * hold kilobytes each for a flood that may never come (issue 18).
 */
export const READ_BUFFER_MIN = 256;
/** Largest read buffer: reads that fill the buffer double it up to this (see `nextReadSize`). */
export const READ_BUFFER_MAX = 64 * 1024;

const DONE: ReadableStreamReadResult<Uint8Array> = Object.freeze({ done: true, value: undefined });
const RESOLVED: Promise<void> = Promise.resolve();
const noop = () => {};

/**
 * What this module needs of a connection: the reading, writing and closing of
 * a `Deno.Conn` (named structurally, so the module itself stays runtime-neutral).
 */
export interface ByteConn {
  /** Reads into `buffer`; resolves with the count, or `null` at the end. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `bytes`; resolves with how many. */
  write(bytes: Uint8Array): Promise<number>;
  /** Closes the connection; throws when already closed. */
  close(): void;
  /** Half-closes: no more bytes go to the peer, which may still answer. */
  closeWrite(): Promise<void>;
}

function closeQuietly(conn: ByteConn): void {
  try {
    conn.close();
  } catch {
    // Already closed: closing twice is not an error for a transport.
  }
}

/**
 * The transport of one connection, and its fast path.
 *
 * Reads go into one buffer reused for the connection's life, and each chunk
 * is a copy of just the bytes read: `conn.readable` would allocate and zero a
 * fresh 64 KiB buffer per read, hold one per idle connection, and every
 * payload view would keep a whole one alive. The buffer starts small, doubles
 * whenever a read fills it and halves after reads that use little of it
 * (`nextReadSize`), so a busy connection reads in large chunks and an idle
 * one holds little, also after a burst. The end of the stream, a failed read
 * and `cancel` close the connection; after a local close, reads end cleanly
 * instead of failing. Failures are `TRANSPORT_ERROR`s.
 *
 * Writes go to `conn.write` one after another (looping over partial
 * writes), so two batches never interleave.
 *
 * @example
 * ```ts ignore
 * import { ConnTransport } from "./conn_io.ts";
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 1883 });
 * const transport = new ConnTransport(conn, "127.0.0.1:1883");
 * ```
 */
export class ConnTransport implements Transport, ByteReader {
  readonly #conn: ByteConn;
  /** `host:port`, for error messages. */
  readonly #where: string;
  #buffer = new Uint8Array(READ_BUFFER_MIN);
  /** Closed by us (`close`, `cancel`): a read failing now is the expected end. */
  #closed = false;
  /** Reads are over: each resolves with `done`. */
  #readEnded = false;
  /** Writes started and not yet settled; `#lastWrite` is the latest of them. */
  #writes = 0;
  #lastWrite: Promise<void> | undefined;
  /** Set once a write failed or the writing end was aborted: later writes fail with it. */
  #writeFailed = false;
  #writeFailure: unknown;
  /** 0: unused; 1: the fast path is taken; 2: the streams are in use. */
  #mode = 0;
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;

  /** Wraps `conn`; `where` (`host:port`) names it in error messages. */
  constructor(conn: ByteConn, where: string) {
    this.#conn = conn;
    this.#where = where;
  }

  /** Bytes from the peer, as a stream (made on first use; the driver reads without it). */
  get readable(): ReadableStream<Uint8Array> {
    if (this.#readable === undefined) {
      // A high-water mark of 0 reads from the socket only when the consumer asks, so the
      // consumer's backpressure reaches the socket.
      this.#readable = new ReadableStream<Uint8Array>({
        pull: (controller) =>
          this.read().then(
            (result) => result.done ? controller.close() : controller.enqueue(result.value),
            (error) => controller.error(error),
          ),
        cancel: () => this.cancel(),
      }, { highWaterMark: 0 });
      if (this.#mode === 1) this.#readable.getReader();
      else this.#mode = 2;
    }
    return this.#readable;
  }

  /** Bytes to the peer, as a stream (made on first use; the driver writes without it). */
  get writable(): WritableStream<Uint8Array> {
    if (this.#writable === undefined) {
      // Closing waits for the writes before it (the stream does that), then half-closes.
      this.#writable = new WritableStream<Uint8Array>({
        write: (chunk) => this.write(chunk),
        close: () => this.#closeWrite(),
      });
      if (this.#mode === 1) this.#writable.getWriter();
      else this.#mode = 2;
    }
    return this.#writable;
  }

  /**
   * The fast path: this object is its reader. Once taken, streams made later
   * start locked, as if the driver held them.
   */
  [DIRECT](): ByteDuplex | undefined {
    if (this.#mode !== 0) return undefined;
    this.#mode = 1;
    return { reader: this, writer: new ConnWriter(this) };
  }

  /** Tears the connection down; a pending read then ends cleanly. Safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#conn);
  }

  /** The next chunk (a copy of just the bytes read), or `done` at the end. */
  read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    if (this.#readEnded) return Promise.resolve(DONE);
    return this.#conn.read(this.#buffer).then(this.#received, this.#readFailed);
  }

  readonly #received = (count: number | null): ReadableStreamReadResult<Uint8Array> => {
    if (count === null) {
      this.#endReads();
      return DONE;
    }
    const buffer = this.#buffer;
    const chunk = buffer.slice(0, count);
    const size = nextReadSize(buffer.length, count, READ_BUFFER_MIN, READ_BUFFER_MAX);
    if (size !== buffer.length) this.#buffer = new Uint8Array(size);
    return { done: false, value: chunk };
  };

  readonly #readFailed = (error: unknown): ReadableStreamReadResult<Uint8Array> => {
    this.#endReads();
    if (this.#closed) return DONE;
    throw transportError(error, `connection to ${this.#where} failed`);
  };

  #endReads(): void {
    this.#readEnded = true;
    closeQuietly(this.#conn);
  }

  /** Stops reading and closes the connection; a pending read ends cleanly. */
  cancel(): Promise<void> {
    this.#readEnded = true;
    this.close();
    return RESOLVED;
  }

  /** Nothing to let go of: the driver is the only reader. */
  releaseLock(): void {}

  /** Writes `chunk` after the writes before it; rejects with `TRANSPORT_ERROR` when it fails. */
  write(chunk: Uint8Array): Promise<void> {
    const before = this.#writes === 0 ? undefined : this.#lastWrite;
    this.#writes++;
    const write = this.#write(before, chunk);
    if (this.#writes !== 0) this.#lastWrite = write;
    return write;
  }

  async #write(before: Promise<void> | undefined, chunk: Uint8Array): Promise<void> {
    try {
      if (before !== undefined) await before;
      if (this.#writeFailed) throw this.#writeFailure;
      const conn = this.#conn;
      let written = await conn.write(chunk);
      while (written < chunk.length) written += await conn.write(chunk.subarray(written));
    } catch (error) {
      if (!this.#writeFailed) {
        this.#writeFailed = true;
        this.#writeFailure = transportError(error, `writing to ${this.#where} failed`);
      }
      throw this.#writeFailure;
    } finally {
      if (--this.#writes === 0) this.#lastWrite = undefined;
    }
  }

  /** Settles once every write so far has settled; rejects if one failed. */
  flush(): Promise<void> {
    return this.#lastWrite?.then(noop) ?? (this.#writeFailed ? this.#failedWrite() : RESOLVED);
  }

  #failedWrite(): Promise<void> {
    return Promise.reject(this.#writeFailure);
  }

  /**
   * Settles once every write so far has settled (rejects if one failed),
   * then half-closes: the peer reads everything written, then the end of the
   * stream, and may still answer. The connection itself is closed by close().
   */
  end(): Promise<void> {
    return this.flush().then(() => this.#closeWrite());
  }

  async #closeWrite(): Promise<void> {
    try {
      await this.#conn.closeWrite();
    } catch {
      // Already closed: the transport's close() or the peer got there first.
    }
  }

  /** Writes not yet started fail with `reason`. */
  abort(reason?: unknown): Promise<void> {
    if (!this.#writeFailed) {
      this.#writeFailed = true;
      this.#writeFailure = reason;
    }
    return RESOLVED;
  }
}

/** The writing end of a {@linkcode ConnTransport}'s fast path. */
class ConnWriter implements ByteWriter {
  readonly #io: ConnTransport;
  constructor(io: ConnTransport) {
    this.#io = io;
  }
  write(chunk: Uint8Array): Promise<void> {
    return this.#io.write(chunk);
  }
  /** Flushes, then half-closes; the connection itself is closed by the transport's close(). */
  close(): Promise<void> {
    return this.#io.end();
  }
  abort(reason?: unknown): Promise<void> {
    return this.#io.abort(reason);
  }
}
