/**
 * A loopback TCP proxy between a client and a broker, for fault injection: cut every link,
 * stall it, black-hole it (half-open), or cut it after a given number of bytes.
 *
 * @module
 */

/** Which way bytes flow: `"up"` client → broker, `"down"` broker → client. */
export type Direction = "up" | "down" | "both";

/** Options of {@linkcode startProxy}. */
export interface ProxyOptions {
  /** Where to forward to, e.g. `{ hostname: broker.host, port: broker.port }`. */
  target: { hostname: string; port: number };
}

/** A running proxy, from {@linkcode startProxy}. */
export interface Proxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number;
  /** `mqtt://127.0.0.1:<port>`. */
  readonly url: string;
  /** Number of client connections currently open (black-holed ones included). */
  readonly connections: number;
  /** Number of client connections accepted since the start. */
  readonly accepted: number;
  /** Bytes forwarded so far, per direction. */
  readonly bytes: { readonly up: number; readonly down: number };
  /**
   * Closes every current connection, both sides, at once (the proxy keeps listening). Each side
   * sees its socket closed without any MQTT packet; a side with unread data gets a reset.
   */
  cut(): void;
  /**
   * Stops forwarding in both directions, keeping every socket open; data waits (TCP back
   * pressure) and flows again on {@linkcode Proxy.unstall} or after `ms` milliseconds.
   */
  stall(ms?: number): void;
  /** Ends a {@linkcode Proxy.stall}. */
  unstall(): void;
  /**
   * `true`: every current and new connection becomes a black hole, a half-open link: sockets
   * stay open and new connections are accepted, but nothing is forwarded either way (bytes are
   * read and dropped, new connections never reach the target). `false`: new connections work
   * again; black-holed ones stay dead until {@linkcode Proxy.cut} or close.
   */
  blackhole(on: boolean): void;
  /**
   * Forwards exactly `n` more bytes in `direction` (default `"both"`, counting both ways
   * together), then cuts all connections, possibly in the middle of a packet.
   */
  cutAfterBytes(n: number, direction?: Direction): void;
  /** Stops listening and closes every connection; resolves once all I/O has ended. */
  close(): Promise<void>;
  /** Same as {@linkcode Proxy.close}. */
  [Symbol.asyncDispose](): Promise<void>;
}

interface Link {
  client: Deno.Conn;
  server?: Deno.Conn;
  dead: boolean; // black-holed: read and drop
  closed: boolean;
  done: Promise<void>;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) written += await conn.write(data.subarray(written));
}

function closeQuietly(conn: Deno.Conn | undefined): void {
  try {
    conn?.close();
  } catch {
    // already closed
  }
}

/**
 * Starts a proxy on a free 127.0.0.1 port forwarding to `target`.
 *
 * @example
 * ```ts
 * await using proxy = await startProxy({ target: { hostname: "127.0.0.1", port: 1883 } });
 * // connect a client to proxy.url, then:
 * proxy.cut();
 * proxy.cutAfterBytes(100, "down");
 * proxy.blackhole(true);
 * ```
 */
export function startProxy(options: ProxyOptions): Promise<Proxy> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const links = new Set<Link>();
  const bytes = { up: 0, down: 0 };
  let accepted = 0;
  let closing = false;
  let blackholed = false;
  let gate: Promise<void> | undefined;
  let openGate: (() => void) | undefined;
  let stallTimer: ReturnType<typeof setTimeout> | undefined;
  let budget: { left: number; direction: Direction } | undefined;

  const closeLink = (link: Link) => {
    if (link.closed) return;
    link.closed = true;
    closeQuietly(link.client);
    closeQuietly(link.server);
  };

  const cut = () => {
    budget = undefined;
    for (const link of links) closeLink(link);
  };

  const unstall = () => {
    clearTimeout(stallTimer);
    stallTimer = undefined;
    const open = openGate;
    gate = undefined;
    openGate = undefined;
    open?.();
  };

  // Copies one direction. Reads are always pending (so a close is noticed at once); forwarding
  // waits at the stall gate after each read, which also stops further reads.
  const pump = async (link: Link, from: Deno.Conn, to: Deno.Conn, direction: "up" | "down") => {
    const buffer = new Uint8Array(16 * 1024);
    try {
      while (!link.closed) {
        const n = await from.read(buffer);
        if (n === null) break;
        while (gate && !link.closed) await gate;
        if (link.closed) break;
        if (link.dead) continue;
        let chunk = buffer.subarray(0, n);
        let cutNow = false;
        if (budget && (budget.direction === "both" || budget.direction === direction)) {
          if (chunk.length >= budget.left) {
            chunk = chunk.subarray(0, budget.left);
            cutNow = true;
          } else {
            budget.left -= chunk.length;
          }
        }
        if (chunk.length > 0) {
          await writeAll(to, chunk);
          bytes[direction] += chunk.length;
        }
        if (cutNow) {
          cut();
          break;
        }
      }
    } catch {
      // the link was cut or a side went away
    }
    if (link.dead && direction === "down" && !link.closed) {
      // Half-open: the broker gave up on the link (e.g. its keep-alive ran out), but the client
      // must not learn of it; it keeps an open socket that never answers.
      closeQuietly(link.server);
      return;
    }
    closeLink(link);
  };

  // A black-holed link only reads and drops, so the peer's writes never block.
  const drain = async (link: Link) => {
    const buffer = new Uint8Array(16 * 1024);
    try {
      while (!link.closed && await link.client.read(buffer) !== null) {
        // dropped
      }
    } catch {
      // closed
    }
    closeLink(link);
  };

  const serve = async (client: Deno.Conn): Promise<void> => {
    const link: Link = { client, dead: blackholed, closed: false, done: Promise.resolve() };
    links.add(link);
    try {
      if (link.dead) return await drain(link);
      let server: Deno.Conn;
      try {
        server = await Deno.connect(options.target);
      } catch {
        return closeLink(link);
      }
      link.server = server;
      if (link.closed || closing) return closeLink(link);
      await Promise.all([pump(link, client, server, "up"), pump(link, server, client, "down")]);
    } finally {
      closeLink(link);
      links.delete(link);
    }
  };

  const serving = new Set<Promise<void>>();
  const acceptLoop = (async () => {
    try {
      for await (const client of listener) {
        if (closing) {
          closeQuietly(client);
          break;
        }
        accepted++;
        const p = serve(client);
        serving.add(p);
        p.finally(() => serving.delete(p));
      }
    } catch {
      // listener closed
    }
  })();

  const close = async () => {
    if (closing) return;
    closing = true;
    try {
      listener.close();
    } catch {
      // already closed
    }
    unstall();
    cut();
    await acceptLoop;
    while (serving.size > 0) {
      cut();
      await Promise.all(serving);
    }
  };

  return Promise.resolve({
    port,
    url: `mqtt://127.0.0.1:${port}`,
    get connections() {
      return links.size;
    },
    get accepted() {
      return accepted;
    },
    bytes,
    cut,
    stall(ms?: number) {
      if (!gate) gate = new Promise((resolve) => openGate = resolve);
      clearTimeout(stallTimer);
      stallTimer = ms === undefined ? undefined : setTimeout(unstall, ms);
    },
    unstall,
    blackhole(on: boolean) {
      blackholed = on;
      if (on) { for (const link of links) link.dead = true; }
    },
    cutAfterBytes(n: number, direction: Direction = "both") {
      if (n <= 0) return cut();
      budget = { left: n, direction };
    },
    close,
    [Symbol.asyncDispose]: close,
  });
}
