/**
 * `pub`: publish messages, with the flags of `mosquitto_pub`.
 *
 * ```sh
 * deno task pub -h localhost -t sensors/1/temp -m 21.5 -q 1
 * echo -e "a\nb" | deno task pub -t lines -l      # one message per stdin line
 * ```
 *
 * Exit codes: 0 published, 1 connection or publish error, 2 bad arguments.
 *
 * @module
 */
import { connect } from "../../mod.ts";
import { EXIT, parseArgs, runtimeFailure, UsageError, usageFailure } from "./args.ts";

const USAGE =
  `Usage: pub [-h host] [-p port] [-L url] -t topic (-m message | -n | -f file | -l | -s)
           [-q qos] [-r] [-i id] [-c] [-u user] [-P password] [-k keepalive]
           [--cafile file] [--cert file --key file] [--insecure-servername name]
           [--will-topic t --will-payload p --will-qos q --will-retain] [-d]
  -m message   publish one message        -n   publish an empty message
  -f file      publish a file's content   -l   publish each stdin line as a message
  -s           publish all of stdin as one message
  -r           retain                     -d   print what is done to stderr`;

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
  try {
    await using client = await connect(url, options);
    debug(`connected to ${url} as ${client.clientId}`);
    const send = async (payload: string | Uint8Array) => {
      await client.publish(topic, payload, { qos, retain });
      debug(`published ${payload.length} bytes to ${topic} (q${qos}${retain ? ", r" : ""})`);
    };
    if (flags.has("message")) await send(flags.get("message") as string);
    else if (flags.has("null-message")) await send(new Uint8Array());
    else if (flags.has("file")) await send(await Deno.readFile(flags.get("file") as string));
    else if (flags.has("stdin-file")) {
      await send(new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer()));
    } else {
      const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
      let rest = "";
      for await (const chunk of lines) {
        rest += chunk;
        const parts = rest.split("\n");
        rest = parts.pop()!;
        for (const line of parts) await send(line.replace(/\r$/, ""));
      }
      if (rest !== "") await send(rest);
    }
    return EXIT.ok;
  } catch (err) {
    return runtimeFailure(err);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
