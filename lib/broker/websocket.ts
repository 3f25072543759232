/**
 * A server-side WebSocket (from `Deno.upgradeWebSocket`) as a byte
 * {@linkcode Transport}, for MQTT over WebSocket (MQTT 3.1.1 section 6).
 *
 * @module
 */
import type { Transport } from "../transports/transport.ts";

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

/**
 * Adapts a WebSocket to a {@linkcode Transport}: each binary message is one
 * chunk of bytes (MQTT packets may span messages or share one); each write
 * is sent as one binary message. A text message closes the connection
 * (MQTT-6.0.0-1).
 *
 * Backpressure: WebSocket has no way to pause the peer, so the connection is
 * closed if more than 32 MiB arrive unread; writes wait while more than 1 MiB
 * is buffered for sending.
 *
 * @example
 * ```ts ignore
 * Deno.serve((req) => {
 *   const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "mqtt" });
 *   broker.handle(websocketTransport(socket));
 *   return response;
 * });
 * ```
 */
export function websocketTransport(socket: WebSocket): Transport {
  socket.binaryType = "arraybuffer";
  let finished = false;
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      const finish = (error?: Error) => {
        if (finished) return;
        finished = true;
        if (error === undefined) controller.close();
        else controller.error(error);
      };
      socket.onmessage = (event: MessageEvent) => {
        if (finished) return;
        if (!(event.data instanceof ArrayBuffer)) {
          // MQTT-6.0.0-1: only binary frames carry MQTT.
          closeQuietly(socket, 1003, "MQTT needs binary frames");
          return finish(new TypeError("text frame received on an MQTT WebSocket"));
        }
        controller.enqueue(new Uint8Array(event.data));
        if ((controller.desiredSize ?? 0) < -MAX_UNREAD_BYTES) {
          closeQuietly(socket, 1008, "too much unread data");
          finish(new RangeError("WebSocket peer sent too much unread data"));
        }
      };
      socket.onclose = () => finish();
      socket.onerror = () => finish(new Error("WebSocket error"));
    },
    cancel() {
      finished = true;
      closeQuietly(socket);
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: 64 * 1024 }));
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (socket.readyState !== WebSocket.OPEN) throw new Error("WebSocket is not open");
      socket.send(chunk);
      while (socket.bufferedAmount > MAX_BUFFERED_BYTES && socket.readyState === WebSocket.OPEN) {
        await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
      }
    },
    close() {
      closeQuietly(socket);
    },
    abort() {
      closeQuietly(socket);
    },
  });
  return { readable, writable, close: () => closeQuietly(socket) };
}
