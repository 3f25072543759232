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
   * Where the link can, it also tells the peer no more bytes come (TCP's
   * half-close, WebSocket's close handshake); the readable stays open for
   * the peer's last bytes and its own close, which the client waits for
   * after its DISCONNECT (at most `closeTimeout`).
   */
  readonly writable: WritableStream<Uint8Array>;
  /**
   * Tears the link down at once. Safe to call more than once. Bytes a flush
   * under way has already handed on are not recalled.
   */
  close(): void;
}
