/**
 * `sub`: subscribe and print messages, with the flags, output and exit codes
 * of `mosquitto_sub` 2.0.
 *
 * ```sh
 * deno run -A jsr:@mqtt/client/sub -h localhost -t 'sensors/#' -v -q 1
 * deno run -A jsr:@mqtt/client/sub -L mqtt://localhost/status/+ -C 1   # exit after one message
 * ```
 *
 * Exit codes, as mosquitto_sub's: 0 done (count reached, -E, --retained-only
 * or interrupted), 1 bad arguments or a connection error, the CONNACK return
 * code (1 to 5) when the broker refuses the connection, 27 when `-W` timed
 * out, 130 interrupted twice. A connection lost after it was accepted is
 * reconnected, as mosquitto_sub does. On Ctrl-C or SIGTERM it sends
 * DISCONNECT (so the broker discards the will) and exits 0; a second
 * interrupt exits at once.
 *
 * @module
 */
import {
  connect,
  type MqttClient,
  type MqttError,
  type PublishPacket,
  topicMatches,
} from "../../mod.ts";
import {
  COMMON_HELP,
  debugTrace,
  EXIT,
  parseArgs,
  type ParsedArgs,
  runtimeFailure,
  trapInterrupts,
  UsageError,
  usageFailure,
  versionLine,
} from "./args.ts";
import { concat, type Format, FormatError, parseFormat } from "./format.ts";
import { WireOrder } from "./wire_order.ts";

const TOOL = "sub";

const USAGE = `sub subscribes to topics and prints the messages it receives, as mosquitto_sub does.

Usage: sub {[-h host] [-p port] [-u username] [-P password] -t topic | -L URL [-t topic]}
           [-c] [-k keepalive] [-q qos] [-C msg_count] [-E] [-R] [--retained-only]
           [--remove-retained] [-T filter_out] [-U topic ...] [-F format] [-W timeout_secs]
           [-i id] [-I id_prefix] [-d] [-N] [--quiet] [-v]
           [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]
           [{--cafile file | --capath dir | --tls-use-os-certs} [--cert file] [--key file]
             [--insecure] [--insecure-servername name]]
           [--pw-file file]
       sub --help | --version

 -C : disconnect and exit after receiving 'msg_count' messages.
 -d : print the packets sent and received (to stdout, as mosquitto does).
 -E : exit once all subscriptions have been acknowledged by the broker.
 -F : output format: %t topic, %p payload, %l length, %q qos, %r retain, %m message id,
      %x/%X payload in hex, %j/%J JSON, %I ISO 8601 time, %U Unix time, @Y-@m-@d etc. time,
      width and precision as in printf (%-20t), escapes \\n \\t \\e \\\\.
 -L : mqtt(s)://[username[:password]@]host[:port]/topic (ws:// and wss:// too, without topic)
 -N : do not add an end of line character when printing the payload.
 -R : do not print stale messages (those with retain set).
 -T : topic filter to filter out of the results. May be repeated.
 -U : unsubscribe from a topic (of a session kept with -c). May be repeated.
 -v : print "topic payload"; an empty payload shows as (null).
 -W : exit after timeout_secs seconds, printing "Timed out" (exit code 27).
 --retained-only : only print retained messages; exit at the first that is not.
 --remove-retained : clear the retained messages received (publishes an empty retained
                     message to their topics); -T keeps some.
 --tls-use-os-certs : trust the operating system's CA bundle too.
 --insecure : Deno cannot skip only the host name check: pass the name the certificate
              holds with --insecure-servername, or run deno with
              --unsafely-ignore-certificate-errors=host (which skips every check).
 --quiet : do not print error messages.
${COMMON_HELP}`;

/** The flags of sub beyond the connection's. */
const SUB_FLAGS = [
  { name: "verbose", short: "v", value: false },
  { name: "count", short: "C", value: true },
  { name: "no-newline", short: "N", value: false },
  { name: "no-retained", short: "R", value: false },
  { name: "retained-only", value: false },
  { name: "remove-retained", value: false },
  { name: "filter-out", short: "T", value: true, repeat: true },
  { name: "unsubscribe", short: "U", value: true, repeat: true },
  { name: "exit-on-subscribe", short: "E", value: false },
  { name: "format", short: "F", value: true },
  { name: "timeout", short: "W", value: true },
];

/** What sub does with each message, from its flags. */
interface Plan {
  count: number;
  timeout?: number;
  format?: Format;
  verbose: boolean;
  newline: string;
  noRetained: boolean;
  retainedOnly: boolean;
  removeRetained: boolean;
  filterOut: string[];
  unsubscribe: string[];
  exitOnSubscribe: boolean;
}

function plan(parsed: ParsedArgs): Plan {
  const { flags, lists } = parsed;
  if (parsed.topics.length === 0) {
    throw new UsageError("You must specify a topic to subscribe to.");
  }
  const result: Plan = {
    count: Infinity,
    verbose: flags.has("verbose"),
    newline: flags.has("no-newline") ? "" : "\n",
    noRetained: flags.has("no-retained"),
    retainedOnly: flags.has("retained-only"),
    removeRetained: flags.has("remove-retained"),
    filterOut: lists.get("filter-out") ?? [],
    unsubscribe: lists.get("unsubscribe") ?? [],
    exitOnSubscribe: flags.has("exit-on-subscribe"),
  };
  const c = flags.get("count");
  if (c !== undefined) {
    result.count = Number(c);
    if (!Number.isInteger(result.count) || result.count < 1) {
      throw new UsageError(`Invalid message count "${c}".`);
    }
  }
  const w = flags.get("timeout");
  if (w !== undefined) {
    result.timeout = Number(w);
    if (!Number.isFinite(result.timeout) || result.timeout <= 0) {
      throw new UsageError(`Invalid timeout "${w}".`);
    }
  }
  const f = flags.get("format");
  if (f !== undefined) {
    try {
      result.format = parseFormat(f as string);
    } catch (err) {
      if (err instanceof FormatError) throw new UsageError(err.message);
      throw err;
    }
  }
  return result;
}

const encoder = new TextEncoder();

/** A message as `mosquitto_sub` prints it: -F, else payload (-v: topic first, `(null)` if empty). */
function render(
  msg: PublishPacket,
  p: Plan,
  warn: (line: string) => void,
): Uint8Array | undefined {
  if (p.format) {
    const body = p.format.print(msg, new Date(), warn);
    return concat([body, encoder.encode(p.newline)]);
  }
  if (p.verbose) {
    const payload = msg.payload.length === 0 ? encoder.encode("(null)") : msg.payload;
    return concat([encoder.encode(`${msg.topic} `), payload, encoder.encode(p.newline)]);
  }
  // Without -v an empty payload prints nothing at all, not even the newline.
  if (msg.payload.length === 0) return undefined;
  return concat([msg.payload, encoder.encode(p.newline)]);
}

/**
 * Runs the tool with `args`, writing messages (and the `-d` trace) to `out`;
 * returns the exit code.
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
  let parsed: ParsedArgs;
  let p: Plan;
  const quietAsked = args.includes("--quiet");
  try {
    parsed = await parseArgs(args, SUB_FLAGS);
    if (parsed.flags.has("help")) {
      console.log(USAGE);
      return EXIT.ok;
    }
    if (parsed.flags.has("version")) {
      console.log(versionLine(TOOL));
      return EXIT.ok;
    }
    p = plan(parsed);
  } catch (err) {
    return usageFailure(err, TOOL, quietAsked);
  }
  const { urls, options, topics, qos, flags } = parsed;
  const quiet = flags.has("quiet");
  const warn = quiet ? () => {} : (line: string) => console.error(line);
  const writer = out.getWriter();
  // Trace lines and messages share stdout, in order, as mosquitto_sub writes them.
  let writing = Promise.resolve();
  const write = (bytes: Uint8Array) => {
    writing = writing.then(() => writer.write(bytes)).catch(() => {});
  };
  const debug = flags.has("debug");
  const trace = debug
    ? debugTrace(options.clientId ?? "", (line) => write(encoder.encode(`${line}\n`)))
    : undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  // mosquitto_sub's process_messages: once false, messages are no longer handled.
  let handling = true;
  let received = 0;
  let client: MqttClient | undefined;
  // Work on the client from the packet hook waits for connect() (a resumed session's messages
  // come before it resolves), and always for a microtask: the session is mid-packet there.
  const later: ((c: MqttClient) => void)[] = [];
  const withClient = (fn: (c: MqttClient) => void) => {
    if (client === undefined) later.push(fn);
    else queueMicrotask(() => fn(client!));
  };
  const stop = () => {
    handling = false;
    withClient((c) => void c.close());
  };
  const handle = (msg: PublishPacket) => {
    if (!handling) return;
    if (p.retainedOnly && !msg.retain) return stop();
    if (msg.retain && p.noRetained) return;
    if (p.filterOut.some((filter) => topicMatches(filter, msg.topic))) return;
    if (p.removeRetained && msg.retain) {
      // close() waits for these, as mosquitto_sub waits for its last mid before DISCONNECT.
      withClient((c) =>
        c.publish(msg.topic, new Uint8Array(), { qos: 1, retain: true })
          .catch((err) => runtimeFailure(err, quiet))
      );
    }
    const line = render(msg, p, warn);
    if (line) write(line);
    if (++received >= p.count) stop();
  };
  const order = new WireOrder();
  using interrupts = trapInterrupts(debug ? warn : () => {});
  try {
    client = await connect(urls, {
      ...options,
      signal: interrupts.signal,
      // mosquitto_sub reconnects after losing an accepted connection, about once a second.
      reconnect: { minDelay: 1000, maxDelay: 1000 },
      // Messages are printed from here, where mosquitto_sub prints them: in the trace's order.
      onPacket: (direction, packet) => {
        if (trace) {
          trace(direction, packet);
          if (direction === "received" && packet.type === "suback") {
            write(encoder.encode(
              `Subscribed (mid: ${packet.packetId}): ${
                (packet.returnCodes ?? packet.reasonCodes ?? []).join(", ")
              }\n`,
            ));
          }
        }
        const message = order.see(direction, packet);
        if (message) handle(message);
      },
    });
    const connected = client;
    for (const fn of later.splice(0)) queueMicrotask(() => fn(connected));
    const closed = new Promise<MqttError | undefined>((resolve) => {
      connected.addEventListener("close", (event) => resolve(event.detail.error), { once: true });
    });
    try {
      if (p.timeout !== undefined) {
        timer = setTimeout(() => {
          timedOut = true;
          stop();
        }, p.timeout * 1000);
      }
      // SUBSCRIBE and UNSUBSCRIBE leave together, as mosquitto_sub sends them.
      // Acknowledged on receipt, as mosquitto_sub does (its -d trace shows each PUBACK before the
      // message is printed): each message is printed as it arrives, so little is ever buffered.
      const subscribing = connected.subscribe(topics, { qos, ack: "receive" });
      const unsubscribing = p.unsubscribe.length > 0
        ? connected.unsubscribe(p.unsubscribe)
        : undefined;
      // mosquitto_sub does not wait for the UNSUBACK before going on (or exiting with -E).
      unsubscribing?.catch((err) => handling && runtimeFailure(err, quiet));
      // Stopped meanwhile (-W, -C with a resumed session's messages): closing ends the SUBSCRIBE.
      const sub = await subscribing.catch((err) => {
        if (handling) throw err;
      });
      if (p.exitOnSubscribe && handling) return EXIT.ok;
      // The subscription's messages were printed by the hook; taking them keeps the buffer
      // moving, and waiting for the output lets a slow stdout hold the socket back.
      if (sub) {
        (async () => {
          for await (const _ of sub) await writing;
        })().catch(() => {});
      }
      const error = await closed;
      if (timedOut) {
        warn("Timed out");
        return EXIT.timedOut;
      }
      return error === undefined ? EXIT.ok : runtimeFailure(error, quiet);
    } finally {
      await connected.close();
    }
  } catch (err) {
    // Closing on an interrupt ends a connect or subscribe under way: the way out, not a failure.
    if (interrupts.signal.aborted) return EXIT.ok;
    return runtimeFailure(err, quiet);
  } finally {
    clearTimeout(timer);
    await writing;
    writer.releaseLock();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
