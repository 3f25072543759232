/**
 * Shared helpers of the benchmarks: a throwaway Mosquitto broker on a free
 * loopback port, and small statistics helpers.
 *
 * Not a benchmark itself (the leading underscore keeps `deno bench` off it).
 *
 * @module
 */

/** Where Debian installs the broker. */
export const MOSQUITTO_PATH = "/usr/sbin/mosquitto";

/** A running broker; stop it with {@linkcode Broker.stop} or `await using`. */
export interface Broker extends AsyncDisposable {
  /** The loopback port it listens on. */
  readonly port: number;
  /** `mqtt://127.0.0.1:<port>`. */
  readonly url: string;
  /** The broker's process id (for `ps`-style measurements). */
  readonly pid: number;
  /** Stops the broker and removes its temporary directory. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startMosquitto}. */
export interface MosquittoOptions {
  /** Extra `mosquitto.conf` lines, appended after the defaults. */
  extraConfig?: string[];
  /** Milliseconds to wait for the broker to accept connections. @default {5000} */
  startTimeout?: number;
}

/**
 * A free TCP port on 127.0.0.1, found by binding port 0 and letting it go.
 *
 * @example
 * ```ts ignore
 * const port = freePort();
 * ```
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Starts Mosquitto on a free loopback port with a generated configuration
 * that neither drops nor throttles: `max_inflight_messages 0` and
 * `max_queued_messages 0` (both mean "no limit"), anonymous access allowed.
 * Resolves once the port accepts a TCP connection.
 *
 * @example
 * ```ts ignore
 * await using broker = await startMosquitto();
 * console.log(broker.url);
 * ```
 */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<Broker> {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-bench-" });
  let lastError: unknown;
  // A freed port can be taken again before the broker binds it: retry on a new one.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = freePort();
    const config = [
      "per_listener_settings false",
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "max_inflight_messages 0",
      "max_queued_messages 0",
      "persistence false",
      "log_dest none",
      "set_tcp_nodelay true",
      ...(options.extraConfig ?? []),
      "",
    ].join("\n");
    const confPath = `${dir}/mosquitto.conf`;
    await Deno.writeTextFile(confPath, config);
    const child = new Deno.Command(MOSQUITTO_PATH, {
      args: ["-c", confPath],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    try {
      await waitForPort(port, child.status, options.startTimeout ?? 5000);
    } catch (err) {
      lastError = new Error(`mosquitto did not start: ${await stderrOf(child, stderr)}`, {
        cause: err,
      });
      continue;
    }
    let stopped: Promise<void> | undefined;
    const stop = () => {
      stopped ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch {
          // already gone
        }
        await child.status;
        await stderr.catch(() => "");
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      })();
      return stopped;
    };
    return {
      port,
      url: `mqtt://127.0.0.1:${port}`,
      pid: child.pid,
      stop,
      [Symbol.asyncDispose]: stop,
    };
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  throw lastError;
}

async function stderrOf(child: Deno.ChildProcess, stderr: Promise<string>): Promise<string> {
  try {
    child.kill("SIGKILL");
  } catch {
    // already gone
  }
  await child.status;
  return (await stderr.catch(() => "")).trim() || "(no output)";
}

async function waitForPort(
  port: number,
  exited: Promise<Deno.CommandStatus>,
  timeout: number,
): Promise<void> {
  let gone = false;
  exited.then(() => gone = true);
  const deadline = performance.now() + timeout;
  while (performance.now() < deadline) {
    if (gone) throw new Error("mosquitto exited");
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  throw new Error(`port ${port} not open after ${timeout} ms`);
}

/**
 * The q-quantile (0..1) of already sorted numbers, by nearest rank.
 *
 * @example
 * ```ts ignore
 * quantile([1, 2, 3, 4], 0.5); // 2
 * ```
 */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1];
}

/**
 * The median of some numbers (does not modify the input).
 *
 * @example
 * ```ts ignore
 * median([3, 1, 2]); // 2
 * ```
 */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Reads a `--name value` or `--name=value` command-line option.
 *
 * @example
 * ```ts ignore
 * const qos = arg("qos"); // "1" for `--qos 1`
 * ```
 */
export function arg(name: string, args: string[] = Deno.args): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === `--${name}`) return args[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

/**
 * Formats a number with thousands separators and no decimals.
 *
 * @example
 * ```ts ignore
 * fmt(214567.8); // "214,568"
 * ```
 */
export function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}
