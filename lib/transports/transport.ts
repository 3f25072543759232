/**
 * The transport contract: a duplex of byte streams. Transports move bytes and
 * know nothing of MQTT; TCP, TLS, WebSocket and user-supplied duplexes all fit.
 *
 * @module
 */

/**
 * A connected byte duplex.
 *
 * @example
 * ```ts
 * import type { Transport } from "./transport.ts";
 * function wrap(conn: Deno.Conn): Transport {
 *   return { readable: conn.readable, writable: conn.writable, close: () => conn.close() };
 * }
 * ```
 */
export interface Transport {
  /** Bytes from the peer. Ends when the peer closes; errors when the link fails. */
  readonly readable: ReadableStream<Uint8Array>;
  /**
   * Bytes to the peer. Closing it flushes: the close settles once everything
   * written has left (or could not), so a process may exit right after it.
   */
  readonly writable: WritableStream<Uint8Array>;
  /**
   * Tears the link down at once. Safe to call more than once. Bytes a flush
   * under way has already handed on are not recalled.
   */
  close(): void;
}
