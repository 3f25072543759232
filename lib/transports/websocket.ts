/**
 * MQTT over WebSocket (MQTT 3.1.1 section 6) with the web-standard
 * `WebSocket`: runs in Deno, browsers and edge runtimes. Imports nothing
 * from `Deno.*`.
 *
 * @module
 */
import { MqttError } from "../errors.ts";
import type { Transport } from "./transport.ts";

/** Options of {@linkcode connectWebSocket}. */
export interface WebSocketConnectOptions {
  /** Subprotocols to offer; "mqtt" is always offered first. @default {["mqtt"]} */
  protocols?: string[];
  /**
   * Extra handshake headers. The web-standard `WebSocket` cannot send any, so
   * a non-empty object fails with `INVALID_OPTION` rather than being ignored.
   */
  headers?: Record<string, string>;
  /**
   * TLS settings. The web-standard `WebSocket` takes none (it trusts the
   * runtime's roots), so any setting fails with `INVALID_OPTION`.
   */
  tls?: unknown;
  /** Aborts connecting; has no effect once the transport is returned. */
  signal?: AbortSignal;
  /**
   * Most received bytes held for a reader that has stopped reading. A
   * WebSocket cannot be told to stop receiving, so past this limit the
   * readable errors with `TRANSPORT_ERROR` and the socket is closed, instead of
   * memory growing without bound. A single frame larger than the limit is
   * still accepted when nothing else is queued.
   * @default {67108864} (64 MiB)
   */
  maxReceiveBuffer?: number;
  /**
   * Bytes queued in the socket (`bufferedAmount`) above which writes wait.
   * @default {1048576} (1 MiB)
   */
  maxSendBuffer?: number;
  /**
   * Milliseconds closing the writable may wait twice over: for queued bytes
   * to leave (counted from the last byte that left, so a slow link still
   * drains) and then for the peer's answer to the close handshake.
   * @default {3000}
   */
  closeTimeout?: number;
}

const DEFAULT_MAX_RECEIVE_BUFFER = 64 * 1024 * 1024;
const DEFAULT_MAX_SEND_BUFFER = 1024 * 1024;
const DEFAULT_CLOSE_TIMEOUT = 3_000;
// There is no event for bufferedAmount draining, so a blocked writer polls.
const DRAIN_POLL_MS = 5;
// Closing polls faster: a peer that hangs up on our last packet (a broker on
// DISCONNECT) must not beat the poll that sees the bytes leave.
const CLOSE_POLL_MS = 1;
const OPEN = 1;
const CLOSED = 3;

function invalid(message: string): MqttError {
  return new MqttError("INVALID_OPTION", message);
}

function hasSettings(value: unknown): boolean {
  if (value === undefined || value === null || value === false) return false;
  if (typeof value !== "object") return true;
  return Object.values(value).some((v) => v !== undefined);
}

function eventMessage(event: Event): string {
  const message = (event as ErrorEvent).message;
  return typeof message === "string" && message !== "" ? message : "connection failed";
}

/**
 * Opens a WebSocket to an MQTT broker (`ws:` or `wss:` URL with its path, e.g.
 * `wss://broker.example/mqtt`) with the "mqtt" subprotocol and binary frames,
 * and returns it as a {@linkcode Transport}.
 *
 * Writes wait while more than `maxSendBuffer` bytes are queued in the socket.
 * Reads cannot push back on the peer; see `maxReceiveBuffer`.
 *
 * Closing the writable flushes: it waits until every byte written has left
 * (`bufferedAmount` is 0), then closes with code 1000 and resolves when the
 * peer answers the close handshake or after `closeTimeout`. A runtime such as
 * Deno only queues what `send()` is given, so a process that exits without
 * this wait loses what is still queued. The transport's `close()` ends the
 * readable and closes the socket at once; a flush under way still gets its
 * close event or timeout, and bytes queued before are still sent first.
 *
 * Fails with `MqttError` code `TRANSPORT_ERROR` (cannot connect, connection
 * lost, text frame received: MQTT-6.0.0-1), `ABORTED`, or `INVALID_OPTION`
 * (headers or TLS settings the web-standard WebSocket cannot take).
 *
 * @example
 * ```ts ignore
 * import { connectWebSocket } from "./websocket.ts";
 * const transport = await connectWebSocket(new URL("wss://broker.example/mqtt"), {
 *   signal: AbortSignal.timeout(10_000),
 * });
 * transport.close();
 * ```
 */
export function connectWebSocket(
  url: URL,
  options: WebSocketConnectOptions = {},
): Promise<Transport> {
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    return Promise.reject(invalid(`WebSocket URL must be ws: or wss:, got "${url.href}"`));
  }
  if (hasSettings(options.headers)) {
    return Promise.reject(invalid(
      "custom WebSocket headers are not supported: the web-standard WebSocket cannot send them " +
        "(pass credentials as username/password or in the URL's query instead)",
    ));
  }
  if (hasSettings(options.tls)) {
    return Promise.reject(invalid(
      "TLS options are not supported for wss: the web-standard WebSocket takes none and trusts " +
        "the runtime's root certificates (in Deno, add a CA with --cert or DENO_CERT)",
    ));
  }
  const maxReceiveBuffer = options.maxReceiveBuffer ?? DEFAULT_MAX_RECEIVE_BUFFER;
  const maxSendBuffer = options.maxSendBuffer ?? DEFAULT_MAX_SEND_BUFFER;
  const closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT;
  if (typeof closeTimeout !== "number" || !(closeTimeout >= 0) || closeTimeout === Infinity) {
    return Promise.reject(
      invalid(`closeTimeout must be a finite number of milliseconds >= 0, got ${closeTimeout}`),
    );
  }
  const signal = options.signal;
  if (signal?.aborted) {
    return Promise.reject(new MqttError("ABORTED", "connect aborted", { cause: signal.reason }));
  }
  const protocols = ["mqtt", ...(options.protocols ?? []).filter((p) => p !== "mqtt")];

  let ws: WebSocket;
  try {
    ws = new WebSocket(url, protocols);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    return Promise.reject(
      new MqttError("TRANSPORT_ERROR", `cannot open WebSocket ${url.href}: ${reason}`, { cause }),
    );
  }
  ws.binaryType = "arraybuffer";

  let closed = false; // close() called, or the link is gone
  let failure: MqttError | undefined; // why the link failed, for writes and a flush under way
  let readableDone = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let writableController!: WritableStreamDefaultController;
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  let stopDrain: (() => void) | undefined;

  const failRead = (error: MqttError) => {
    if (readableDone) return;
    readableDone = true;
    controller.error(error);
  };
  const endRead = () => {
    if (readableDone) return;
    readableDone = true;
    controller.close();
  };
  const shutdown = () => {
    if (closed) return;
    closed = true;
    stopDrain?.();
    try {
      ws.close(1000);
    } catch {
      // Already closing.
    }
  };
  /** The link failed: both streams error with the same cause, so no write is silently lost. */
  const fail = (error: MqttError) => {
    failure ??= error;
    failRead(failure);
    // Errors a writable still open (a pending write or flush rejects); no-op otherwise.
    writableController.error(failure);
    shutdown();
  };

  /**
   * Resolves once at most `limit` bytes wait in the socket, or once it is no
   * longer open (the caller looks at why). There is no event for
   * `bufferedAmount` going down, so this polls. Rejects when no byte has left
   * for `stallMs`: a peer that stopped reading.
   */
  const drain = (limit: number, pollMs: number, stallMs = Infinity): Promise<void> =>
    new Promise((resolve, reject) => {
      let left = Infinity;
      let movedAt = Date.now();
      const finish = (error?: MqttError) => {
        if (drainTimer !== undefined) clearTimeout(drainTimer);
        drainTimer = undefined;
        stopDrain = undefined;
        if (error === undefined) resolve();
        else reject(error);
      };
      const poll = () => {
        drainTimer = undefined;
        const buffered = ws.bufferedAmount;
        if (closed || ws.readyState !== OPEN || buffered <= limit) return finish();
        if (buffered < left) {
          left = buffered;
          movedAt = Date.now();
        } else if (Date.now() - movedAt >= stallMs) {
          return finish(
            new MqttError(
              "TRANSPORT_ERROR",
              `WebSocket ${url.href}: ${buffered} bytes still unsent after none left for ` +
                `${stallMs} ms`,
            ),
          );
        }
        drainTimer = setTimeout(poll, pollMs);
      };
      stopDrain = () => finish();
      poll();
    });

  /** Resolves on the socket's close event, or after `ms`; leaves no timer behind. */
  const closeEvent = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (ws.readyState === CLOSED) return resolve();
      const done = () => {
        clearTimeout(timer);
        ws.removeEventListener("close", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      ws.addEventListener("close", done);
    });

  /**
   * Closing the writable: every byte written leaves first, then the close
   * handshake. Without the wait, Deno's `send()` (which only queues) would
   * still hold the bytes when a process exits right after.
   */
  const flush = async (): Promise<void> => {
    if (failure) throw failure;
    try {
      await drain(0, CLOSE_POLL_MS, closeTimeout);
    } catch (error) {
      shutdown(); // the bytes cannot leave: give up on them
      throw error;
    }
    // The link failed before the bytes were seen to leave: they may be lost.
    if (failure) throw failure;
    shutdown(); // starts the handshake; a no-op if transport.close() already did
    await closeEvent(closeTimeout);
  };

  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      readableDone = true;
      shutdown();
    },
  }, { highWaterMark: maxReceiveBuffer, size: (chunk) => chunk.byteLength });

  const writable = new WritableStream<Uint8Array>({
    start(c) {
      writableController = c;
    },
    async write(chunk) {
      if (failure) throw failure;
      if (closed || ws.readyState !== OPEN) {
        throw new MqttError("TRANSPORT_ERROR", "WebSocket is closed");
      }
      try {
        ws.send(chunk); // MQTT-6.0.0-1: binary frames only
      } catch (cause) {
        const reason = cause instanceof Error ? cause.message : String(cause);
        fail(
          new MqttError("TRANSPORT_ERROR", `sending on WebSocket ${url.href} failed: ${reason}`, {
            cause,
          }),
        );
        throw failure;
      }
      if (ws.bufferedAmount <= maxSendBuffer) return;
      await drain(maxSendBuffer, DRAIN_POLL_MS);
      if (ws.readyState !== OPEN) {
        throw failure ?? new MqttError("TRANSPORT_ERROR", "WebSocket closed while writing");
      }
    },
    close: flush,
    abort() {
      shutdown();
    },
  });

  ws.addEventListener("message", (event: MessageEvent) => {
    if (readableDone) return;
    const data = event.data;
    if (!(data instanceof ArrayBuffer)) {
      fail(
        new MqttError(
          "TRANSPORT_ERROR",
          "received a WebSocket text frame; MQTT uses binary frames only (MQTT-6.0.0-1)",
        ),
      );
      return;
    }
    const queued = maxReceiveBuffer - (controller.desiredSize ?? 0);
    if (queued > 0 && queued + data.byteLength > maxReceiveBuffer) {
      fail(
        new MqttError(
          "TRANSPORT_ERROR",
          `more than ${maxReceiveBuffer} received bytes are waiting to be read; a WebSocket ` +
            "cannot apply backpressure, so the connection is dropped",
        ),
      );
      return;
    }
    controller.enqueue(new Uint8Array(data));
  });

  return new Promise<Transport>((resolve, reject) => {
    let opened = false;
    const onAbort = () => {
      reject(new MqttError("ABORTED", "connect aborted", { cause: signal?.reason }));
      fail(new MqttError("ABORTED", "connect aborted", { cause: signal?.reason }));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    ws.addEventListener("open", () => {
      opened = true;
      signal?.removeEventListener("abort", onAbort);
      resolve({
        readable,
        writable,
        close() {
          shutdown();
          endRead();
        },
      });
    });
    ws.addEventListener("error", (event) => {
      const error = new MqttError(
        "TRANSPORT_ERROR",
        opened
          ? `WebSocket ${url.href} failed: ${eventMessage(event)}`
          : `cannot connect to WebSocket ${url.href}: ${eventMessage(event)}`,
      );
      if (!opened) {
        signal?.removeEventListener("abort", onAbort);
        reject(error);
      }
      fail(error);
    });
    ws.addEventListener("close", (event: CloseEvent) => {
      closed = true;
      stopDrain?.();
      if (!opened) {
        signal?.removeEventListener("abort", onAbort);
        const error = new MqttError(
          "TRANSPORT_ERROR",
          `cannot connect to WebSocket ${url.href}: closed with code ${event.code}`,
        );
        reject(error);
        fail(error);
        return;
      }
      if (event.wasClean) {
        endRead();
      } else {
        fail(
          new MqttError(
            "TRANSPORT_ERROR",
            `WebSocket ${url.href} closed abnormally (code ${event.code}${
              event.reason ? `: ${event.reason}` : ""
            })`,
          ),
        );
      }
    });
  });
}
