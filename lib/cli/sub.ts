/**
 * `sub`: subscribe and print messages, with the flags of `mosquitto_sub`.
 *
 * ```sh
 * deno task sub -h localhost -t 'sensors/#' -v -q 1
 * deno task sub -t status/+ -C 1        # exit after one message
 * ```
 *
 * Exit codes: 0 done (count reached, or interrupted), 1 connection or
 * subscription error, 2 bad arguments, 130 interrupted twice. On Ctrl-C or
 * SIGTERM it sends DISCONNECT (so the broker discards the will) and exits 0,
 * as `mosquitto_sub` does; a second interrupt exits at once.
 *
 * @module
 */
import { connect } from "../../mod.ts";
import { redactUrl } from "../client/url.ts";
import {
  COMMON_HELP,
  EXIT,
  parseArgs,
  runtimeFailure,
  trapInterrupts,
  UsageError,
  usageFailure,
} from "./args.ts";

const USAGE =
  `Usage: sub [-h host] [-p port] [-L url] -t topic [-t topic ...] [-q qos] [-v] [-C count]
           [-i id] [-c] [-u user] [-P password | --pw-file file] [-k keepalive]
           [-N] [-R] [-W seconds]
           [--cafile file] [--cert file --key file] [--insecure-servername name]
           [--will-topic t --will-payload p --will-qos q --will-retain] [-d]
  -v         print "topic payload"        -C count   exit after count messages
  -N         no newline after payloads    -R         skip retained messages
  -W secs    exit after secs seconds      -d         print what is done to stderr
${COMMON_HELP}`;

/**
 * Runs the tool with `args`, writing messages to `out`; returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./sub.ts";
 * Deno.exit(await main(["-t", "a/#", "-v", "-C", "1"]));
 * ```
 */
export async function main(
  args: string[],
  out: WritableStream<Uint8Array> = Deno.stdout.writable,
): Promise<number> {
  let parsed;
  let count = Infinity;
  let timeout: number | undefined;
  try {
    parsed = await parseArgs(args, [
      { name: "verbose", short: "v", value: false },
      { name: "count", short: "C", value: true },
      { name: "no-newline", short: "N", value: false },
      { name: "remove-retained", short: "R", value: false },
      { name: "timeout", short: "W", value: true },
      { name: "debug", short: "d", value: false },
    ]);
    if (parsed.flags.has("help")) {
      console.log(USAGE);
      return EXIT.ok;
    }
    if (parsed.topics.length === 0) throw new UsageError("give at least one topic with -t");
    const c = parsed.flags.get("count");
    if (c !== undefined) {
      count = Number(c);
      if (!Number.isInteger(count) || count < 1) throw new UsageError("-C needs a count >= 1");
    }
    const w = parsed.flags.get("timeout");
    if (w !== undefined) {
      timeout = Number(w);
      if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError("-W needs seconds > 0");
    }
  } catch (err) {
    return usageFailure(err, USAGE);
  }
  const { urls, options, topics, qos, flags } = parsed;
  const debug = flags.has("debug") ? (line: string) => console.error(line) : () => {};
  const verbose = flags.has("verbose");
  const newline = flags.has("no-newline") ? "" : "\n";
  const skipRetained = flags.has("remove-retained");
  const encoder = new TextEncoder();
  const writer = out.getWriter();
  let timer: ReturnType<typeof setTimeout> | undefined;
  using interrupts = trapInterrupts(debug);
  try {
    debug(`connecting to ${urls.map((url) => redactUrl(url)).join(", ")}`);
    // The signal makes the client close itself (DISCONNECT) on an interrupt, which ends the loop.
    await using client = await connect(urls, { ...options, signal: interrupts.signal });
    debug(`connected to ${client.url} as ${client.clientId}`);
    const sub = await client.subscribe(topics, { qos });
    debug(`subscribed to ${topics.join(", ")} (granted ${sub.granted.join(", ")})`);
    if (timeout !== undefined) timer = setTimeout(() => void sub.unsubscribe(), timeout * 1000);
    let received = 0;
    for await (const msg of sub) {
      if (skipRetained && msg.retain) continue;
      const head = verbose ? encoder.encode(`${msg.topic} `) : new Uint8Array();
      const tail = encoder.encode(newline);
      const line = new Uint8Array(head.length + msg.payload.length + tail.length);
      line.set(head);
      line.set(msg.payload, head.length);
      line.set(tail, head.length + msg.payload.length);
      await writer.write(line);
      if (++received >= count) break;
    }
    return EXIT.ok;
  } catch (err) {
    // Closing on an interrupt ends a connect or subscribe under way: the way out, not a failure.
    if (interrupts.signal.aborted) return EXIT.ok;
    return runtimeFailure(err);
  } finally {
    clearTimeout(timer);
    writer.releaseLock();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
