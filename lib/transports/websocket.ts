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
}

const DEFAULT_MAX_RECEIVE_BUFFER = 64 * 1024 * 1024;
const DEFAULT_MAX_SEND_BUFFER = 1024 * 1024;
// There is no event for bufferedAmount draining, so a blocked writer polls.
const DRAIN_POLL_MS = 5;
const OPEN = 1;

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
  let readableDone = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  let drainWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;

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
  const stopDrainWait = (error?: MqttError) => {
    if (drainTimer !== undefined) clearTimeout(drainTimer);
    drainTimer = undefined;
    const waiter = drainWaiter;
    drainWaiter = undefined;
    if (waiter !== undefined) {
      if (error === undefined) waiter.resolve();
      else waiter.reject(error);
    }
  };
  const shutdown = () => {
    if (closed) return;
    closed = true;
    stopDrainWait(new MqttError("TRANSPORT_ERROR", "WebSocket closed while writing"));
    try {
      ws.close();
    } catch {
      // Already closing.
    }
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

  const waitForDrain = (): Promise<void> =>
    new Promise((resolve, reject) => {
      drainWaiter = { resolve, reject };
      const poll = () => {
        drainTimer = undefined;
        if (closed || ws.readyState !== OPEN) {
          stopDrainWait(new MqttError("TRANSPORT_ERROR", "WebSocket closed while writing"));
        } else if (ws.bufferedAmount <= maxSendBuffer) {
          stopDrainWait();
        } else {
          drainTimer = setTimeout(poll, DRAIN_POLL_MS);
        }
      };
      drainTimer = setTimeout(poll, DRAIN_POLL_MS);
    });

  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (closed || ws.readyState !== OPEN) {
        throw new MqttError("TRANSPORT_ERROR", "WebSocket is closed");
      }
      ws.send(chunk); // MQTT-6.0.0-1: binary frames only
      if (ws.bufferedAmount > maxSendBuffer) await waitForDrain();
    },
    close() {
      shutdown();
    },
    abort() {
      shutdown();
    },
  });

  ws.addEventListener("message", (event: MessageEvent) => {
    if (readableDone) return;
    const data = event.data;
    if (!(data instanceof ArrayBuffer)) {
      failRead(
        new MqttError(
          "TRANSPORT_ERROR",
          "received a WebSocket text frame; MQTT uses binary frames only (MQTT-6.0.0-1)",
        ),
      );
      shutdown();
      return;
    }
    const queued = maxReceiveBuffer - (controller.desiredSize ?? 0);
    if (queued > 0 && queued + data.byteLength > maxReceiveBuffer) {
      failRead(
        new MqttError(
          "TRANSPORT_ERROR",
          `more than ${maxReceiveBuffer} received bytes are waiting to be read; a WebSocket ` +
            "cannot apply backpressure, so the connection is dropped",
        ),
      );
      shutdown();
      return;
    }
    controller.enqueue(new Uint8Array(data));
  });

  return new Promise<Transport>((resolve, reject) => {
    let opened = false;
    const onAbort = () => {
      reject(new MqttError("ABORTED", "connect aborted", { cause: signal?.reason }));
      failRead(new MqttError("ABORTED", "connect aborted", { cause: signal?.reason }));
      shutdown();
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
      failRead(error);
      closed = true;
      stopDrainWait(error);
    });
    ws.addEventListener("close", (event: CloseEvent) => {
      closed = true;
      stopDrainWait(new MqttError("TRANSPORT_ERROR", "WebSocket closed while writing"));
      if (!opened) {
        signal?.removeEventListener("abort", onAbort);
        const error = new MqttError(
          "TRANSPORT_ERROR",
          `cannot connect to WebSocket ${url.href}: closed with code ${event.code}`,
        );
        reject(error);
        failRead(error);
        return;
      }
      if (event.wasClean) {
        endRead();
      } else {
        failRead(
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
