/**
 * A server-side WebSocket (from `Deno.upgradeWebSocket`) as a broker
 * connection's {@linkcode Link}, for MQTT over WebSocket (MQTT 3.1.1 section 6).
 *
 * @module
 */
import type { Link } from "./link.ts";

/** Bytes received but not yet read by the broker before the peer is cut off. */
const MAX_UNREAD_BYTES = 32 * 1024 * 1024;
/** Bytes handed to the socket but not yet sent before writes wait. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** How often a waiting write checks whether the socket has drained. */
const DRAIN_POLL_MS = 5;

function closeQuietly(socket: WebSocket, code?: number, reason?: string): void {
  try {
    socket.close(code, reason);
  } catch {
    // Closing an already closing socket is fine.
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A WebSocket as a {@linkcode Link}: each binary message is one chunk of bytes
 * (MQTT packets may span messages or share one); each write is sent as one
 * binary message. A text message closes the connection (MQTT-6.0.0-1). No web
 * streams: an idle connection holds the socket's handlers and one pending read.
 *
 * Backpressure: WebSocket has no way to pause the peer, so the connection is
 * closed if more than 32 MiB arrive unread; writes wait while more than 1 MiB
 * is buffered for sending.
 *
 * @example
 * ```ts ignore
 * Deno.serve((req) => {
 *   const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "mqtt" });
 *   const link = new WebSocketLink(socket);
 *   return response;
 * });
 * ```
 */
export class WebSocketLink implements Link {
  readonly #socket: WebSocket;
  /** Messages received and not yet read (a queue only while the broker is behind). */
  #unread: Uint8Array[] = [];
  #unreadBytes = 0;
  /** The read waiting for a message, if any. */
  #waiting: PromiseWithResolvers<Uint8Array | null> | undefined = undefined;
  /** Set once no more messages come: `null` at the end, or the error that ended it. */
  #ended: Error | null | undefined = undefined;

  /** Reads and writes `socket`, and closes it on {@linkcode WebSocketLink.close}. */
  constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event: MessageEvent) => this.#message(event.data);
    socket.onclose = () => this.#end(null);
    socket.onerror = () => this.#end(new Error("WebSocket error"));
  }

  /** See {@linkcode Link.read}. */
  read(): Promise<Uint8Array | null> {
    const chunk = this.#unread.shift();
    if (chunk !== undefined) {
      this.#unreadBytes -= chunk.byteLength;
      return Promise.resolve(chunk);
    }
    const ended = this.#ended;
    if (ended === null) return Promise.resolve(null);
    if (ended !== undefined) return Promise.reject(ended);
    this.#waiting = Promise.withResolvers();
    return this.#waiting.promise;
  }

  /** See {@linkcode Link.write}. */
  async write(chunk: Uint8Array): Promise<void> {
    const socket = this.#socket;
    if (socket.readyState !== WebSocket.OPEN) throw new Error("WebSocket is not open");
    socket.send(chunk);
    while (socket.bufferedAmount > MAX_BUFFERED_BYTES && socket.readyState === WebSocket.OPEN) {
      await sleep(DRAIN_POLL_MS);
    }
  }

  /** See {@linkcode Link.close}. */
  close(): void {
    this.#end(null);
    this.#unread = [];
    this.#unreadBytes = 0;
    closeQuietly(this.#socket);
  }

  #message(data: unknown): void {
    if (this.#ended !== undefined) return;
    if (!(data instanceof ArrayBuffer)) {
      // MQTT-6.0.0-1: only binary frames carry MQTT.
      closeQuietly(this.#socket, 1003, "MQTT needs binary frames");
      return this.#end(new TypeError("text frame received on an MQTT WebSocket"));
    }
    const chunk = new Uint8Array(data);
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      this.#waiting = undefined;
      waiting.resolve(chunk);
      return;
    }
    this.#unread.push(chunk);
    this.#unreadBytes += chunk.byteLength;
    if (this.#unreadBytes > MAX_UNREAD_BYTES) {
      closeQuietly(this.#socket, 1008, "too much unread data");
      this.#end(new RangeError("WebSocket peer sent too much unread data"));
    }
  }

  /** No more messages: a waiting read gets `null` (or `error`); messages unread are still read. */
  #end(error: Error | null): void {
    if (this.#ended !== undefined) return;
    this.#ended = error;
    if (error !== null) {
      // Cut off: what is unread is not handed on.
      this.#unread = [];
      this.#unreadBytes = 0;
    }
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (waiting === undefined) return;
    if (error === null) waiting.resolve(null);
    else waiting.reject(error);
  }
}
