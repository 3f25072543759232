/**
 * `pub`: publish messages, with the flags, output and exit codes of
 * `mosquitto_pub` 2.0.
 *
 * ```sh
 * deno run -A jsr:@mqtt/client/pub -h localhost -t sensors/1/temp -m 21.5 -q 1
 * echo -e "a\nb" | deno run -A jsr:@mqtt/client/pub -t lines -l   # one message per line
 * ```
 *
 * Exit codes, as mosquitto_pub's: 0 published, 1 bad arguments or a
 * connection or publish error, the CONNACK return code (1 to 5) when the
 * broker refuses the connection, 130 interrupted twice. On Ctrl-C or SIGTERM it stops taking input (-l,
 * -s), lets the publishes under way finish (up to the client's
 * `closeTimeout`), sends DISCONNECT and exits 0, or 1 if a publish under way
 * failed or the message of -m, -n or -f was not published. A second
 * interrupt exits at once.
 *
 * @module
 */
import { connect, ConnectionRefusedError, MqttError } from "../../mod.ts";
import {
  COMMON_HELP,
  debugTrace,
  EXIT,
  parseArgs,
  runtimeFailure,
  trapInterrupts,
  UsageError,
  usageFailure,
  versionLine,
} from "./args.ts";

const TOOL = "pub";

const USAGE = `pub publishes a message to a topic and exits, as mosquitto_pub does.

Usage: pub {[-h host] [-p port] [-u username] [-P password] -t topic | -L URL}
           {-f file | -l | -n | -m message | -s}
           [-c] [-k keepalive] [-q qos] [-r] [--repeat N] [--repeat-delay time] [-M max_inflight]
           [-i id] [-I id_prefix] [-d] [--quiet]
           [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]
           [{--cafile file | --capath dir | --tls-use-os-certs} [--cert file] [--key file]
             [--insecure] [--insecure-servername name]]
           [--pw-file file]
       pub --help | --version

 -d : print the packets sent and received (to stdout, as mosquitto does).
 -f : send the contents of a file as the message.
 -l : read messages from stdin, sending a separate message for each line.
 -L : mqtt(s)://[username[:password]@]host[:port]/topic (ws:// and wss:// too, without topic)
 -m : message payload to send.
 -M : the maximum inflight messages for QoS 1/2.
 -n : send a null (zero length) message.
 -r : message should be retained.
 -s : read message from stdin, sending the entire input as a message.
 --repeat : publish the message N times.
 --repeat-delay : wait this many seconds (e.g. 0.5) between the repeated messages.
 --quiet : do not print error messages.
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
  let repeat = 1;
  let repeatDelay = 0;
  try {
    parsed = await parseArgs(args, [
      { name: "message", short: "m", value: true },
      { name: "null-message", short: "n", value: false },
      { name: "file", short: "f", value: true },
      { name: "stdin-line", short: "l", value: false },
      { name: "stdin-file", short: "s", value: false },
      { name: "retain", short: "r", value: false },
      { name: "max-inflight", short: "M", value: true },
      { name: "repeat", value: true },
      { name: "repeat-delay", value: true },
    ]);
    if (parsed.flags.has("help")) {
      console.log(USAGE);
      return EXIT.ok;
    }
    if (parsed.flags.has("version")) {
      console.log(versionLine(TOOL));
      return EXIT.ok;
    }
    const sources = ["message", "null-message", "file", "stdin-line", "stdin-file"]
      .filter((f) => parsed!.flags.has(f));
    if (parsed.topics.length === 0 || sources.length === 0) {
      throw new UsageError("Both topic and message must be supplied.");
    }
    if (parsed.topics.length > 1) throw new UsageError("Only one topic may be given.");
    if (sources.length > 1) throw new UsageError("Only one type of message can be sent at once.");
    const inflight = parsed.flags.get("max-inflight");
    if (inflight !== undefined) {
      const n = Number(inflight);
      if (!Number.isInteger(n) || n < 1 || n > 65535) {
        throw new UsageError(`Invalid max inflight "${inflight}".`);
      }
      parsed.options.maxInflight = n;
    }
    const r = parsed.flags.get("repeat");
    if (r !== undefined) {
      repeat = Number(r);
      if (!Number.isInteger(repeat) || repeat < 1) {
        throw new UsageError("--repeat argument must be an integer of at least 1.");
      }
    }
    const d = parsed.flags.get("repeat-delay");
    if (d !== undefined) {
      repeatDelay = Number(d);
      if (!Number.isFinite(repeatDelay) || repeatDelay < 0) {
        throw new UsageError("--repeat-delay argument must be a number of seconds, at least 0.");
      }
    }
  } catch (err) {
    return usageFailure(err, TOOL, args.includes("--quiet"));
  }
  const { urls, options, topics, qos, flags } = parsed;
  const quiet = flags.has("quiet");
  const debug = flags.has("debug");
  const encoder = new TextEncoder();
  const trace = debug
    ? debugTrace(
      options.clientId ?? "",
      (line) => Deno.stdout.writeSync(encoder.encode(`${line}\n`)),
    )
    : undefined;
  const retain = flags.has("retain");
  const topic = topics[0];
  // -m, -n and -f name their message up front: an interrupt cannot take it back.
  const streaming = flags.has("stdin-line") || flags.has("stdin-file");
  using interrupts = trapInterrupts(debug && !quiet ? (line) => console.error(line) : () => {});
  const { signal } = interrupts;
  try {
    // The signal makes the client close itself (DISCONNECT) on an interrupt.
    await using client = await connect(urls, { ...options, signal, onPacket: trace });
    const send = async (payload: string | Uint8Array) => {
      // Once interrupted, nothing more is taken from standard input, not even what was read.
      if (streaming && signal.aborted) return;
      await client.publish(topic, payload, { qos, retain, properties: parsed.properties.publish });
    };
    const sendRepeated = async (payload: string | Uint8Array) => {
      for (let i = 0; i < repeat && !signal.aborted; i++) {
        if (i > 0 && repeatDelay > 0) await delay(repeatDelay * 1000, signal);
        await send(payload);
      }
    };
    if (flags.has("message")) await sendRepeated(flags.get("message") as string);
    else if (flags.has("null-message")) await sendRepeated(new Uint8Array());
    else if (flags.has("file")) {
      await sendRepeated(await Deno.readFile(flags.get("file") as string));
    } else if (flags.has("stdin-file")) {
      const chunks: Uint8Array<ArrayBuffer>[] = [];
      for await (const chunk of stdinChunks(signal)) chunks.push(chunk);
      await sendRepeated(new Uint8Array(await new Blob(chunks).arrayBuffer()));
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
    const code = runtimeFailure(err, quiet);
    // mosquitto_pub adds this line after a refused CONNECT's own.
    if (err instanceof ConnectionRefusedError && !quiet) {
      console.error("Error: The connection was refused.");
    }
    return code;
  }
}

/** Waits `ms`, or less if `signal` aborts. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
