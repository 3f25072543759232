/**
 * Free loopback ports and waiting for a port to accept connections.
 *
 * @module
 */

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it for a listener
 * on port 0, which is closed again at once. Another process may take it in between; callers that
 * bind it later retry on "address in use".
 *
 * @example
 * ```ts
 * const port = freePort();
 * ```
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    return (listener.addr as Deno.NetAddr).port;
  } finally {
    listener.close();
  }
}

/**
 * Returns `count` distinct free ports (see {@linkcode freePort}). All listeners stay open until
 * every port is known, so the kernel cannot hand out the same port twice.
 *
 * @example
 * ```ts
 * const [mqtt, mqtts] = freePorts(2);
 * ```
 */
export function freePorts(count: number): number[] {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** Options of {@linkcode waitForPort}. */
export interface WaitForPortOptions {
  /** Host to connect to. Default `127.0.0.1`. */
  hostname?: string;
  /** Give up after this many milliseconds. Default 5000. */
  timeoutMs?: number;
  /** Milliseconds between attempts. Default 20. */
  intervalMs?: number;
  /**
   * Called before every attempt; throwing from it (e.g. because the server process has already
   * exited) ends the wait with that error.
   */
  check?: () => void | Promise<void>;
}

/**
 * Resolves once a TCP connection to `port` succeeds (the connection is closed again at once);
 * rejects after the timeout.
 *
 * @example
 * ```ts
 * await waitForPort(1883, { timeoutMs: 2000 });
 * ```
 */
export async function waitForPort(port: number, options: WaitForPortOptions = {}): Promise<void> {
  const { hostname = "127.0.0.1", timeoutMs = 5000, intervalMs = 20, check } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (true) {
    await check?.();
    try {
      const conn = await Deno.connect({ hostname, port });
      conn.close();
      return;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`port ${hostname}:${port} did not accept connections in ${timeoutMs} ms`, {
        cause: lastError,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
