/**
 * `mosquitto_pub` and `mosquitto_sub` as independent MQTT peers in tests. Every process is
 * waited for, and killed on timeout or disposal.
 *
 * @module
 */
import { findExecutable } from "./mosquitto.ts";

/** What {@linkcode mosquittoPub} returns. */
export interface CliResult {
  /** Exit code (0: published; 5 for example: connection refused). */
  code: number;
  /** Whether the exit code was 0. */
  success: boolean;
  /** Standard output. */
  stdout: string;
  /** Standard error (connection errors are printed here). */
  stderr: string;
  /** Whether the process was killed because it ran past the timeout. */
  timedOut: boolean;
}

/** Options of {@linkcode mosquittoPub}. */
export interface PubOptions {
  /** Kill the process after this many milliseconds. Default 10000. */
  timeoutMs?: number;
  /** Written to standard input (for `-s` or `-l`). */
  stdin?: string | Uint8Array;
}

function bin(name: string): string {
  const found = findExecutable(name);
  if (!found) throw new Error(`${name} is not installed (apt-get install mosquitto-clients)`);
  return found;
}

/**
 * Runs `mosquitto_pub` with `args` (e.g. `["-p", String(broker.port), "-t", "a/b", "-m", "hi",
 * "-q", "1"]`) and resolves with its exit code and output; it does not throw on a non-zero exit,
 * so tests can assert refusals.
 *
 * @example
 * ```ts
 * const r = await mosquittoPub(["-p", "1883", "-t", "t", "-m", "x", "-u", "u", "-P", "bad"]);
 * if (r.code !== 0) console.log(r.stderr); // "Connection error: Connection Refused: not authorised."
 * ```
 */
export async function mosquittoPub(args: string[], options: PubOptions = {}): Promise<CliResult> {
  const child = new Deno.Command(bin("mosquitto_pub"), {
    args,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    const data = typeof options.stdin === "string"
      ? new TextEncoder().encode(options.stdin)
      : options.stdin;
    await writer.write(data).catch(() => {});
    await writer.close().catch(() => {});
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, options.timeoutMs ?? 10_000);
  try {
    const out = await child.output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      success: out.success,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      timedOut,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@linkcode startMosquittoSub} and {@linkcode mosquittoSub}. */
export interface SubOptions {
  /** Stop after this many messages (`-C count`). Default: until killed or timed out. */
  count?: number;
  /**
   * Kill the process after this many milliseconds (from the start); the lines received so far
   * are still returned. Default 10000.
   */
  timeoutMs?: number;
}

/** A running `mosquitto_sub`, from {@linkcode startMosquittoSub}. */
export interface SubProcess {
  /** Message lines received so far (in `-v` format if `-v` was given). */
  readonly lines: readonly string[];
  /**
   * Resolves with all message lines once the process has ended: after `count` messages, on
   * timeout (with what arrived by then), on {@linkcode SubProcess.kill}, or on error.
   */
  readonly done: Promise<string[]>;
  /** Exit code, once `done` resolved. */
  readonly code: number | undefined;
  /** Standard error, once `done` resolved. */
  readonly stderr: string;
  /** Kills the process and waits for `done`. */
  kill(): Promise<string[]>;
  /** Same as {@linkcode SubProcess.kill}. */
  [Symbol.asyncDispose](): Promise<void>;
}

// `-d` debug lines, which tell us when the subscription is in place; never message lines.
const DEBUG_LINE = /^(Client \S* (sending|received) [A-Z]+\b.*|Subscribed \(mid: \d+\):.*)$/;

/**
 * Starts `mosquitto_sub` with `args` and resolves once the broker has acknowledged the
 * subscription (SUBACK), so that messages published afterwards are sure to be received. Uses
 * `-d` internally to see the SUBACK; debug lines are filtered out, so message payloads must not
 * look like `Client <id> received PUBLISH ...`. Rejects (after killing it) if the process ends
 * before subscribing, e.g. because the connection was refused.
 *
 * @example
 * ```ts
 * await using sub = await startMosquittoSub(["-p", "1883", "-t", "a/#", "-v"], { count: 2 });
 * // publish two messages, then:
 * const lines = await sub.done; // ["a/b hello", "a/c world"]
 * ```
 */
export async function startMosquittoSub(
  args: string[],
  options: SubOptions = {},
): Promise<SubProcess> {
  const fullArgs = ["-d", ...args];
  if (options.count !== undefined) fullArgs.push("-C", String(options.count));
  // mosquitto_sub flushes stdout after each message but not after debug lines, so without a
  // line-buffered stdout the SUBACK line would only show up at exit.
  const stdbuf = findExecutable("stdbuf");
  const child = new Deno.Command(stdbuf ?? bin("mosquitto_sub"), {
    args: stdbuf ? ["-oL", bin("mosquitto_sub"), ...fullArgs] : fullArgs,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  let code: number | undefined;
  let stderr = "";
  let subscribed!: () => void;
  const ready = new Promise<void>((resolve) => subscribed = resolve);
  const stderrText = new Response(child.stderr).text();
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 10_000);

  const readStdout = async () => {
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        if (DEBUG_LINE.test(line)) {
          if (/ received SUBACK\b/.test(line)) subscribed();
        } else {
          lines.push(line);
        }
      }
    }
    if (rest !== "" && !DEBUG_LINE.test(rest)) lines.push(rest);
  };

  const done = (async () => {
    try {
      await readStdout();
      code = (await child.status).code;
      stderr = await stderrText;
    } finally {
      clearTimeout(timer);
    }
    return [...lines];
  })();

  const kill = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    return await done;
  };

  if (!stdbuf) {
    // No way to see the SUBACK in time: give the subscription a moment instead.
    setTimeout(subscribed, 500);
  }
  const ended = done.then(() => "ended" as const);
  if (await Promise.race([ready.then(() => "ready" as const), ended]) === "ended") {
    throw new Error(`mosquitto_sub ended before subscribing (exit code ${code}): ${stderr}`);
  }
  return {
    get lines() {
      return lines;
    },
    done,
    get code() {
      return code;
    },
    get stderr() {
      return stderr;
    },
    kill,
    async [Symbol.asyncDispose]() {
      await kill();
    },
  };
}

/**
 * Runs `mosquitto_sub` with `args` until `count` messages arrived or `timeoutMs` passed, and
 * resolves with the message lines (with `-v`: `"topic payload"`). Use
 * {@linkcode startMosquittoSub} when messages are published after subscribing.
 *
 * @example
 * ```ts
 * // Retained messages arrive right after subscribing:
 * const lines = await mosquittoSub(["-p", "1883", "-t", "status/#", "-v"], { count: 1 });
 * ```
 */
export async function mosquittoSub(args: string[], options: SubOptions = {}): Promise<string[]> {
  const sub = await startMosquittoSub(args, options);
  return await sub.done;
}
