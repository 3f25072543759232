/**
 * `pub`: publish messages, with the flags of `mosquitto_pub`.
 *
 * ```sh
 * deno task pub -h localhost -t sensors/1/temp -m 21.5 -q 1
 * echo -e "a\nb" | deno task pub -t lines -l      # one message per stdin line
 * ```
 *
 * Exit codes: 0 published, 1 connection or publish error, 2 bad arguments,
 * 130 interrupted twice. On Ctrl-C or SIGTERM it stops taking input (-l,
 * -s), lets the publishes under way finish (up to the client's
 * `closeTimeout`), sends DISCONNECT and exits 0, or 1 if a publish under way
 * failed or the message of -m, -n or -f was not published. A second
 * interrupt exits at once.
 *
 * @module
 */
import { connect, MqttError } from "../../mod.ts";
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
  `Usage: pub [-h host] [-p port] [-L url] -t topic (-m message | -n | -f file | -l | -s)
           [-q qos] [-r] [-i id] [-c] [-u user] [-P password | --pw-file file] [-k keepalive]
           [--cafile file] [--cert file --key file] [--insecure-servername name]
           [--will-topic t --will-payload p --will-qos q --will-retain] [-d]
  -m message   publish one message        -n   publish an empty message
  -f file      publish a file's content   -l   publish each stdin line as a message
  -s           publish all of stdin as one message
  -r           retain                     -d   print what is done to stderr
${COMMON_HELP}`;

/** Standard input in chunks, until its end or until `signal` aborts. */
async function* stdinChunks(signal: AbortSignal): AsyncGenerator<Uint8Array<ArrayBuffer>> {
  const reader = Deno.stdin.readable.getReader();
  // Cancelling ends a pending read at once, so an interrupt need not wait for more input.
  const stop = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", stop, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || signal.aborted) return;
      yield value;
    }
  } finally {
    signal.removeEventListener("abort", stop);
    reader.releaseLock();
  }
}

/**
 * Runs the tool with `args`; returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./pub.ts";
 * Deno.exit(await main(["-t", "a/b", "-m", "hello"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = await parseArgs(args, [
      { name: "message", short: "m", value: true },
      { name: "null-message", short: "n", value: false },
      { name: "file", short: "f", value: true },
      { name: "stdin-line", short: "l", value: false },
      { name: "stdin-file", short: "s", value: false },
      { name: "retain", short: "r", value: false },
      { name: "debug", short: "d", value: false },
    ]);
    if (parsed.flags.has("help")) {
      console.log(USAGE);
      return EXIT.ok;
    }
    if (parsed.topics.length !== 1) throw new UsageError("give exactly one topic with -t");
    const sources = ["message", "null-message", "file", "stdin-line", "stdin-file"]
      .filter((f) => parsed!.flags.has(f));
    if (sources.length !== 1) {
      throw new UsageError("give exactly one of -m, -n, -f, -l or -s");
    }
  } catch (err) {
    return usageFailure(err, USAGE);
  }
  const { url, options, topics, qos, flags } = parsed;
  const debug = flags.has("debug") ? (line: string) => console.error(line) : () => {};
  const retain = flags.has("retain");
  const topic = topics[0];
  // -m, -n and -f name their message up front: an interrupt cannot take it back.
  const streaming = flags.has("stdin-line") || flags.has("stdin-file");
  using interrupts = trapInterrupts(debug);
  const { signal } = interrupts;
  try {
    debug(`connecting to ${redactUrl(url)}`);
    // The signal makes the client close itself (DISCONNECT) on an interrupt.
    await using client = await connect(url, { ...options, signal });
    debug(`connected to ${redactUrl(url)} as ${client.clientId}`);
    const send = async (payload: string | Uint8Array) => {
      // Once interrupted, nothing more is taken from standard input, not even what was read.
      if (streaming && signal.aborted) return;
      const what = `${payload.length} bytes to ${topic} (q${qos}${retain ? ", r" : ""})`;
      debug(`sending ${what}`);
      await client.publish(topic, payload, { qos, retain, properties: parsed.properties.publish });
      debug(`published ${what}`);
    };
    if (flags.has("message")) await send(flags.get("message") as string);
    else if (flags.has("null-message")) await send(new Uint8Array());
    else if (flags.has("file")) await send(await Deno.readFile(flags.get("file") as string));
    else if (flags.has("stdin-file")) {
      const chunks: Uint8Array<ArrayBuffer>[] = [];
      for await (const chunk of stdinChunks(signal)) chunks.push(chunk);
      await send(new Uint8Array(await new Blob(chunks).arrayBuffer()));
    } else {
      const decoder = new TextDecoder();
      let rest = "";
      for await (const chunk of stdinChunks(signal)) {
        rest += decoder.decode(chunk, { stream: true });
        const parts = rest.split("\n");
        rest = parts.pop()!;
        for (const line of parts) await send(line.replace(/\r$/, ""));
      }
      rest += decoder.decode();
      if (rest !== "") await send(rest);
    }
    return EXIT.ok;
  } catch (err) {
    // Interrupted while connecting: no input had been taken, so nothing failed.
    const aborted = err instanceof MqttError && err.code === "ABORTED";
    if (streaming && signal.aborted && aborted) return EXIT.ok;
    return runtimeFailure(err);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
