/**
 * A TCP or TLS connection's bytes as a stream whose read buffer follows the
 * traffic: small while the connection is quiet, up to 64 KiB while it is busy.
 *
 * `conn.readable` keeps a 64 KiB buffer in every pending read, so each idle
 * connection costs 64 KiB of external memory as long as it stays open; a
 * broker holds many idle connections.
 *
 * @module
 */

/** The part of `Deno.Conn` this module reads from. */
export interface Readable {
  /** Reads into `buffer`; resolves to the byte count, or `null` at the end. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/** Smallest read buffer: what a quiet connection keeps pending. */
export const MIN_READ = 512;
/** Largest read buffer, as `conn.readable`'s. */
export const MAX_READ = 64 * 1024;

/**
 * The bytes of `conn`, read with a buffer that doubles after each read that
 * fills it (up to {@linkcode MAX_READ}) and halves after each read that uses
 * less than a quarter of it (down to {@linkcode MIN_READ}). Each chunk is a
 * view of a buffer of its own, never reused. Errors of the read end the
 * stream with that error; cancelling it leaves closing `conn` to the caller.
 *
 * @example
 * ```ts ignore
 * const conn = await Deno.connect({ port: 1883 });
 * for await (const chunk of adaptiveReadable(conn)) console.log(chunk.length);
 * ```
 */
export function adaptiveReadable(conn: Readable): ReadableStream<Uint8Array> {
  let size = MIN_READ;
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buffer = new Uint8Array(size);
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch (err) {
        if (!cancelled) controller.error(err);
        return;
      }
      if (cancelled) return;
      if (n === null) {
        controller.close();
        return;
      }
      if (n === size && size < MAX_READ) size *= 2;
      else if (n < size / 4 && size > MIN_READ) size /= 2;
      controller.enqueue(n === buffer.length ? buffer : buffer.subarray(0, n));
    },
    cancel() {
      cancelled = true;
    },
  });
}
