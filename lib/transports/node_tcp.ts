/**
 * TCP and TLS transports over `node:net` and `node:tls`, for Node and Bun.
 * `connectTcp` in `tcp.ts` loads this module by dynamic import when there is
 * no `Deno` global, so Deno never loads it.
 *
 * `node:net` and `node:tls` are imported when a connection is made, not
 * statically: a bundler inlines this module into a browser bundle (it cannot
 * know that browsers never take the `mqtt:` path), and a static import of
 * them would stop that bundle from loading at all.
 *
 * @module
 */
import type { Socket } from "node:net";
import { MqttError } from "../errors.ts";
import { abortError, transportError } from "./connect_errors.ts";
import type { TcpTlsOptions } from "./tcp.ts";
import type { Transport } from "./transport.ts";

/** Options of {@linkcode connectNodeTcp}: those of `connectTcp`, with `tls` resolved. */
export interface NodeTcpConnectOptions {
  /** Host name or IP address (IPv6 without brackets). */
  hostname: string;
  /** TCP port. */
  port: number;
  /** TLS settings; absent for plain TCP. */
  tls?: TcpTlsOptions;
  /** Aborts connecting; has no effect once the transport is returned. */
  signal?: AbortSignal;
}

type Builtins = [typeof import("node:net"), typeof import("node:tls")];

/** `node:net` and `node:tls`, loaded on the first connection. */
let builtins: Promise<Builtins> | undefined;

function loadBuiltins(where: string): Promise<Builtins> {
  builtins ??= Promise.all([import("node:net"), import("node:tls")]);
  return builtins.catch((error) => {
    builtins = undefined;
    throw new MqttError(
      "TRANSPORT_ERROR",
      `cannot connect to ${where}: mqtt:// and mqtts:// need TCP, which this runtime does not ` +
        "offer (Deno, Node and Bun do); in a browser, connect to the broker over ws:// or wss://",
      { cause: error },
    );
  });
}

/**
 * Bytes received and not yet read above which the socket is paused: the
 * consumer's backpressure reaches the peer once the kernel's buffer fills.
 */
const READ_HIGH_WATER_MARK = 64 * 1024;

/**
 * Opens a TCP connection with `node:net`, or with `node:tls` when `tls` is
 * set, and returns it as a {@linkcode Transport}: the same contract,
 * codes and messages as the `Deno.*` transport of `tcp.ts`. As there, the TLS
 * handshake completes before this resolves, `TCP_NODELAY` is set, and
 * `caCerts` are trusted in addition to the default roots. Unlike Deno, a
 * client certificate works together with a `serverName`.
 *
 * Nothing is left to keep the process alive once the transport is closed or
 * connecting failed.
 *
 * @example
 * ```ts ignore
 * import { connectNodeTcp } from "./node_tcp.ts";
 * const transport = await connectNodeTcp({ hostname: "localhost", port: 1883 });
 * transport.close();
 * ```
 */
export async function connectNodeTcp(options: NodeTcpConnectOptions): Promise<Transport> {
  const { hostname, port, tls, signal } = options;
  const where = `${hostname}:${port}`;
  if (signal?.aborted) throw abortError(signal);
  const [net, nodeTls] = await loadBuiltins(where);
  if (signal?.aborted) throw abortError(signal);

  const name = tls?.serverName ?? hostname;
  const socket = tls === undefined ? net.connect({ host: hostname, port }) : nodeTls.connect({
    host: hostname,
    port,
    // SNI carries host names only; an address is still verified below.
    servername: net.isIP(name) === 0 ? name : undefined,
    checkServerIdentity: (_host, cert) => nodeTls.checkServerIdentity(name, cert),
    // Node's `ca` replaces the default roots; Deno's `caCerts` add to them.
    ca: tls.caCerts === undefined ? undefined : [...nodeTls.rootCertificates, ...tls.caCerts],
    cert: tls.cert,
    key: tls.key,
  });
  try {
    // A TLS socket, too, says "connect" once TCP is up, before its handshake.
    await settled(socket, "connect", signal, `cannot connect to ${where}`);
    socket.setNoDelay(true);
    if (tls !== undefined) {
      await settled(socket, "secureConnect", signal, `TLS handshake with ${where} failed`);
    }
  } catch (error) {
    destroyQuietly(socket);
    throw error;
  }
  return wrap(socket, where);
}

/** Destroys `socket`, and swallows what it may still emit: nothing is listening any more. */
function destroyQuietly(socket: Socket): void {
  socket.on("error", () => {});
  socket.destroy();
}

/**
 * Resolves on `event`; rejects with `TRANSPORT_ERROR` (saying `context`) on an
 * error or an early close, or with `ABORTED` on abort. Removes its listeners
 * either way, so none outlives connecting.
 */
function settled(
  socket: Socket,
  event: "connect" | "secureConnect",
  signal: AbortSignal | undefined,
  context: string,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onEvent = () => finish();
    const onError = (error: Error) => finish(transportError(error, context));
    const onClose = () => finish(transportError(new Error("the connection was closed"), context));
    const onAbort = () => finish(abortError(signal as AbortSignal));
    function finish(error?: Error): void {
      socket.off(event, onEvent).off("error", onError).off("close", onClose);
      signal?.removeEventListener("abort", onAbort);
      if (error === undefined) resolve();
      else reject(error);
    }
    socket.once(event, onEvent).once("error", onError).once("close", onClose);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * A plain `Uint8Array` of the chunk's bytes. A `Buffer`'s `slice` makes a
 * view, not a copy, which readers of a `Uint8Array` do not expect; and a chunk
 * that shares a larger buffer is copied, so a kept payload view pins no more
 * memory than its bytes (as the `Deno.*` transport does).
 */
function ownBytes(chunk: Uint8Array): Uint8Array {
  if (chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength) {
    return new Uint8Array(chunk.buffer, 0, chunk.byteLength);
  }
  return new Uint8Array(chunk);
}

/**
 * The connected socket as a {@linkcode Transport}. The readable pauses the
 * socket while `READ_HIGH_WATER_MARK` bytes wait for the consumer, ends when
 * the peer closes (or at once on `close()`), and errors with
 * `TRANSPORT_ERROR` when the connection fails. A write resolves when Node has
 * handed the chunk to the kernel (its callback), so a peer that stops reading
 * holds the writer back.
 */
function wrap(socket: Socket, where: string): Transport {
  let closedLocally = false;
  let ended = false;
  const writeError = (error: unknown) => transportError(error, `writing to ${where} failed`);
  const closedError = () => writeError(new Error("the connection is closed"));
  // Rejecters of pending writes: some runtimes drop the callbacks of writes
  // pending when the socket is destroyed, and a writer must not wait forever.
  const pending = new Set<(error: Error) => void>();
  socket.once("close", () => {
    for (const reject of pending) reject(closedError());
    pending.clear();
  });
  const whenWritten = (start: (done: (error?: Error | null) => void) => void) => {
    if (socket.destroyed || !socket.writable) return Promise.reject(closedError());
    return new Promise<void>((resolve, reject) => {
      pending.add(reject);
      start((error) => {
        pending.delete(reject);
        if (error) reject(writeError(error));
        else resolve();
      });
    });
  };

  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      const end = (error?: Error) => {
        if (ended) return;
        ended = true;
        if (error === undefined || closedLocally) controller.close();
        else controller.error(transportError(error, `connection to ${where} failed`));
      };
      socket.on("data", (chunk: Uint8Array) => {
        if (ended) return;
        controller.enqueue(ownBytes(chunk));
        if ((controller.desiredSize ?? 0) <= 0) socket.pause();
      });
      // Like the Deno transport, the peer's end of the stream closes the whole connection.
      socket.on("end", () => {
        end();
        socket.destroy();
      });
      socket.on("error", (error: Error) => end(error));
      socket.on("close", () => end());
    },
    pull() {
      socket.resume();
    },
    cancel() {
      ended = true;
      socket.destroy();
    },
  }, { highWaterMark: READ_HIGH_WATER_MARK, size: (chunk) => chunk.byteLength });

  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      return whenWritten((done) => socket.write(chunk, done));
    },
    close() {
      return whenWritten((done) => socket.end(() => done()));
    },
    abort() {
      socket.destroy();
    },
  });

  return {
    readable,
    writable,
    close() {
      if (closedLocally) return;
      closedLocally = true;
      socket.destroy();
    },
  };
}
