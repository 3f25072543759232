/**
 * TCP and TLS transports over `Deno.connect`, `Deno.startTls` and
 * `Deno.connectTls`. The only module of the client that touches `Deno.*`.
 * Without a `Deno` global (Node, Bun) it hands over to `node_tcp.ts`, which
 * uses `node:net` and `node:tls`.
 *
 * @module
 */
import { MqttError } from "../errors.ts";
import { abortError, transportError } from "./connect_errors.ts";
import { ConnTransport } from "./conn_io.ts";
import type { Transport } from "./transport.ts";

/** TLS settings of {@linkcode connectTcp}; all PEM strings. */
export interface TcpTlsOptions {
  /** Root certificates trusted in addition to the default roots. */
  caCerts?: string[];
  /** Client certificate chain for mutual TLS; needs `key`. */
  cert?: string;
  /** Private key of `cert`; needs `cert`. */
  key?: string;
  /**
   * Name to verify the server certificate against (and send as SNI) instead
   * of `hostname`. In Deno not supported together with `cert`/`key`: Deno can
   * present a client certificate only when it verifies the host it connects
   * to. Node and Bun have no such limit.
   */
  serverName?: string;
}

/** Options of {@linkcode connectTcp}. */
export interface TcpConnectOptions {
  /** Host name or IP address (IPv6 without brackets). */
  hostname: string;
  /** TCP port. */
  port: number;
  /** TLS settings, or `true` for TLS with default settings; absent or `false` for plain TCP. */
  tls?: TcpTlsOptions | boolean;
  /** Aborts connecting; has no effect once the transport is returned. */
  signal?: AbortSignal;
}

function closeQuietly(conn: Deno.Conn | undefined): void {
  try {
    conn?.close();
  } catch {
    // Already closed: closing twice is not an error for a transport.
  }
}

/** Settles like `promise`, or rejects with `ABORTED` at once on abort, after calling `onAbort`. */
function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  onAbort: () => void,
): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    onAbort();
    return Promise.reject(abortError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort();
      reject(abortError(signal));
    };
    signal.addEventListener("abort", abort, { once: true });
    promise.then((value) => {
      signal.removeEventListener("abort", abort);
      resolve(value);
    }, (error) => {
      signal.removeEventListener("abort", abort);
      reject(error);
    });
  });
}

/**
 * Opens a TCP connection, with TLS when `tls` is set, and returns it as a
 * {@linkcode Transport}. The TLS handshake completes before this resolves, so
 * certificate and host name errors surface here.
 *
 * Plain TCP and TLS without a client certificate set `TCP_NODELAY` (MQTT's
 * small packets would otherwise wait on Nagle's algorithm). With a client
 * certificate Deno gives no access to the socket option, so Nagle stays on.
 *
 * Without a `Deno` global (Node, Bun) the connection is made with `node:net`
 * and `node:tls` instead (module `node_tcp.ts`, loaded only then), with the
 * same contract, codes and messages.
 *
 * Fails with `MqttError` code `TRANSPORT_ERROR` (refused, unreachable, TLS
 * handshake failure; the original error is the `cause`), `ABORTED`, or
 * `INVALID_OPTION` (incomplete or unsupported TLS settings).
 *
 * @example
 * ```ts ignore
 * import { connectTcp } from "./tcp.ts";
 * const transport = await connectTcp({
 *   hostname: "broker.example",
 *   port: 8883,
 *   tls: { caCerts: [await Deno.readTextFile("ca.pem")] },
 *   signal: AbortSignal.timeout(10_000),
 * });
 * transport.close();
 * ```
 */
export async function connectTcp(options: TcpConnectOptions): Promise<Transport> {
  const { hostname, port, signal } = options;
  const tls = options.tls === true ? {} : options.tls === false ? undefined : options.tls;
  if (tls !== undefined && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw new MqttError("INVALID_OPTION", "tls.cert and tls.key must be given together");
  }
  if (typeof Deno === "undefined") {
    const { connectNodeTcp } = await import("./node_tcp.ts");
    return await connectNodeTcp({ hostname, port, tls, signal });
  }
  return await connectDeno(hostname, port, tls, signal);
}

async function connectDeno(
  hostname: string,
  port: number,
  tls: TcpTlsOptions | undefined,
  signal: AbortSignal | undefined,
): Promise<Transport> {
  const where = `${hostname}:${port}`;
  if (tls !== undefined) {
    if (tls.cert !== undefined && tls.serverName !== undefined && tls.serverName !== hostname) {
      throw new MqttError(
        "INVALID_OPTION",
        `tls.serverName "${tls.serverName}" differs from the host "${hostname}", which Deno ` +
          "cannot do with a client certificate: connect to the server name itself",
      );
    }
  }

  let conn: Deno.Conn;
  if (tls?.cert !== undefined) {
    const connecting = Deno.connectTls({
      hostname,
      port,
      caCerts: tls.caCerts,
      cert: tls.cert,
      key: tls.key as string,
    });
    try {
      conn = await abortable(connecting, signal, () => {
        connecting.then(closeQuietly, () => {});
      });
    } catch (error) {
      throw transportError(error, `cannot connect to ${where}`);
    }
  } else {
    const connecting = Deno.connect({ hostname, port });
    let tcp: Deno.TcpConn;
    try {
      tcp = await abortable(connecting, signal, () => {
        connecting.then(closeQuietly, () => {});
      });
    } catch (error) {
      throw transportError(error, `cannot connect to ${where}`);
    }
    try {
      tcp.setNoDelay(true);
      // startTls (unlike connectTls) verifies a name other than the address dialled.
      conn = tls === undefined
        ? tcp
        : await Deno.startTls(tcp, { hostname: tls.serverName ?? hostname, caCerts: tls.caCerts });
    } catch (error) {
      closeQuietly(tcp);
      throw transportError(error, `cannot set up the connection to ${where}`);
    }
  }

  if (tls !== undefined) {
    const tlsConn = conn as Deno.TlsConn;
    try {
      await abortable(tlsConn.handshake(), signal, () => closeQuietly(conn));
    } catch (error) {
      closeQuietly(conn);
      throw transportError(error, `TLS handshake with ${where} failed`);
    }
  }

  return new ConnTransport(conn, where);
}
