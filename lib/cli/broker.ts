/**
 * `broker`: runs the embedded MQTT broker and logs connections like
 * Mosquitto does.
 *
 * ```sh
 * deno run --allow-net jsr:@mqtt/client/broker-cli              # TCP on 1883
 * deno run --allow-net jsr:@mqtt/client/broker-cli -p 1884 --ws-port 8080
 * deno task broker -p 1884                                       # in this repository
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import config from "../../deno.json" with { type: "json" };
import { Broker } from "../../broker.ts";

const USAGE = `Usage: broker [options]

  -p, --port <port>      TCP port to listen on (default 1883; 0 picks a free port)
      --ws-port <port>   also listen for MQTT over WebSocket on this port
  -H, --host <address>   interface to bind (default 127.0.0.1; 0.0.0.0 for every interface)
  -q, --quiet            do not log connections
  -h, --help             show this help
      --version          print the version
`;

function parsePort(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`Error: ${name} must be a port number (0-65535), got "${value}".`);
    Deno.exit(2);
  }
  return port;
}

function timestamp(): string {
  return `${Math.floor(Date.now() / 1000)}`;
}

let args;
try {
  args = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", short: "p" },
      "ws-port": { type: "string" },
      host: { type: "string", short: "H" },
      quiet: { type: "boolean", short: "q" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean" },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (err) {
  console.error(`Error: ${(err as Error).message}\n\n${USAGE}`);
  Deno.exit(2);
}
if (args.help) {
  console.log(USAGE);
  Deno.exit(0);
}
if (args.version) {
  console.log(`broker version ${config.version} (${config.name}, MQTT 3.1.1 embedded broker).`);
  Deno.exit(0);
}

const log = args.quiet ? undefined : (line: string) => console.log(`${timestamp()}: ${line}`);
const broker = new Broker({ log });
let address;
try {
  address = await broker.listen({
    port: parsePort("--port", args.port) ?? 1883,
    wsPort: parsePort("--ws-port", args["ws-port"]),
    hostname: args.host ?? "127.0.0.1",
  });
} catch (err) {
  console.error(`Error: cannot listen: ${(err as Error).message}`);
  Deno.exit(1);
}
console.log(`${timestamp()}: mqtt broker (embedded, MQTT 3.1.1) starting`);
console.log(`${timestamp()}: Opening ipv4 listen socket on ${address.hostname}:${address.port}.`);
if (address.wsPort !== undefined) {
  console.log(
    `${timestamp()}: Opening websockets listen socket on ${address.hostname}:${address.wsPort}.`,
  );
}

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log(`${timestamp()}: mqtt broker terminating`);
  await broker.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
