/**
 * `deno task broker`: runs the embedded MQTT broker and logs connections like
 * Mosquitto does. Flags are named after Mosquitto's settings where one exists.
 *
 * ```sh
 * deno task broker                                  # TCP on 1883
 * deno task broker -p 1884 --ws-port 8080
 * deno task broker --tls-port 8883 --cert server.crt --key server.key \
 *   --cafile ca.crt --require-certificate
 * deno task broker --max-qos 1 --max-queued-messages 100 --max-keepalive 300
 * deno task broker --persistence ./broker-data
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Broker, type BrokerOptions, type ListenAddress } from "../broker.ts";
import type { QoS } from "../lib/codec/packet.ts";

const USAGE = `Usage: deno task broker [options]

Listeners:
  -p, --port <port>             TCP port (default 1883; 0 picks a free port)
      --ws-port <port>          also MQTT over WebSocket on this port
  -H, --host <address>          interface to bind (default 127.0.0.1; 0.0.0.0 for every one)
      --allowed-origin <origin> WebSocket: browser origin allowed (repeatable; default any)
TLS (Mosquitto's names):
      --tls-port <port>         also MQTT over TLS on this port (needs --cert and --key)
      --wss-port <port>         also MQTT over secure WebSocket on this port (with --tls-port)
      --cert <file>             server certificate, PEM (certfile)
      --key <file>              its private key, PEM (keyfile)
      --cafile <file>           CA that signs client certificates, PEM
      --require-certificate     TLS clients must present a certificate signed by --cafile
Limits (Mosquitto's names):
      --max-qos <0|1|2>         highest QoS granted; a client publishing above it is disconnected
      --retain-available <bool> false: a client publishing a retained message is disconnected
      --max-packet-size <bytes> largest packet accepted from a client
      --max-inflight <n>        outgoing QoS 1/2 messages in flight per client (max_inflight_messages)
      --max-queued-messages <n> messages waiting per client
      --max-queued-bytes <n>    bytes waiting per client
      --max-keepalive <s>       largest keep-alive a client may ask for
      --max-connections <n>     open connections
      --max-retained <n>        retained messages held (new topics refused beyond)
      --max-topic-alias <n>     MQTT 5.0 topic aliases a client may use (default 10; 0: none)
      --response-information <s> MQTT 5.0 Response Information for clients that ask
Persistence:
      --persistence <dir>       keep retained messages and persistent sessions in <dir>
      --fsync                   with --persistence, flush each change to the disk
Other:
  -q, --quiet                   do not log connections
  -h, --help                    show this help
`;

function fail(message: string): never {
  console.error(`Error: ${message}`);
  Deno.exit(2);
}

function parseInteger(name: string, value: string | undefined, min: number, max: number) {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    fail(`${name} must be an integer from ${min} to ${max}, got "${value}".`);
  }
  return n;
}

const parsePort = (name: string, value: string | undefined) => parseInteger(name, value, 0, 65535);
const count = (name: string, value: string | undefined) =>
  parseInteger(name, value, 1, Number.MAX_SAFE_INTEGER);

function parseBoolean(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === "true") return true;
  if (value === "false") return false;
  fail(`${name} must be true or false, got "${value}".`);
}

function readPem(name: string, path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    fail(`cannot read ${name} ${path}: ${(err as Error).message}`);
  }
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
      "allowed-origin": { type: "string", multiple: true },
      "tls-port": { type: "string" },
      "wss-port": { type: "string" },
      cert: { type: "string" },
      key: { type: "string" },
      cafile: { type: "string" },
      "require-certificate": { type: "boolean" },
      "max-qos": { type: "string" },
      "retain-available": { type: "string" },
      "max-packet-size": { type: "string" },
      "max-inflight": { type: "string" },
      "max-queued-messages": { type: "string" },
      "max-queued-bytes": { type: "string" },
      "max-keepalive": { type: "string" },
      "max-connections": { type: "string" },
      "max-retained": { type: "string" },
      "max-topic-alias": { type: "string" },
      "response-information": { type: "string" },
      persistence: { type: "string" },
      fsync: { type: "boolean" },
      quiet: { type: "boolean", short: "q" },
      help: { type: "boolean", short: "h" },
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

const tlsPort = parsePort("--tls-port", args["tls-port"]);
const wssPort = parsePort("--wss-port", args["wss-port"]);
const cert = readPem("--cert", args.cert);
const key = readPem("--key", args.key);
const cafile = readPem("--cafile", args.cafile);
const secure = tlsPort !== undefined || wssPort !== undefined;
if (secure && (cert === undefined || key === undefined)) {
  fail("--tls-port and --wss-port need --cert and --key.");
}
if (args["require-certificate"] && cafile === undefined) {
  fail("--require-certificate needs --cafile, the CA that signs client certificates.");
}
if (wssPort !== undefined && tlsPort === undefined) fail("--wss-port needs --tls-port.");
if (wssPort !== undefined && args["require-certificate"]) {
  // Deno.serve cannot ask for a client certificate.
  fail("--wss-port cannot be combined with --require-certificate.");
}

const log = args.quiet ? undefined : (line: string) => console.log(`${timestamp()}: ${line}`);
const options: BrokerOptions = {
  log,
  maxQoS: parseInteger("--max-qos", args["max-qos"], 0, 2) as QoS | undefined,
  retainAvailable: parseBoolean("--retain-available", args["retain-available"]),
  maxPacketSize: count("--max-packet-size", args["max-packet-size"]),
  maxInflight: count("--max-inflight", args["max-inflight"]),
  maxQueuedMessages: count("--max-queued-messages", args["max-queued-messages"]),
  maxQueuedBytes: count("--max-queued-bytes", args["max-queued-bytes"]),
  maxKeepAlive: parseInteger("--max-keepalive", args["max-keepalive"], 1, 65535),
  maxConnections: count("--max-connections", args["max-connections"]),
  maxRetained: count("--max-retained", args["max-retained"]),
  maxTopicAlias: parseInteger("--max-topic-alias", args["max-topic-alias"], 0, 65535),
  responseInformation: args["response-information"],
  persistence: args.persistence,
  persistenceFsync: args.fsync,
};
let broker: Broker;
try {
  broker = new Broker(options);
} catch (err) {
  fail((err as Error).message);
}
const hostname = args.host ?? "127.0.0.1";
const allowedOrigins = args["allowed-origin"];
const addresses: ListenAddress[] = [];
try {
  addresses.push(
    await broker.listen({
      port: parsePort("--port", args.port) ?? 1883,
      wsPort: parsePort("--ws-port", args["ws-port"]),
      hostname,
      allowedOrigins,
    }),
  );
  const tls = {
    cert: cert!,
    key: key!,
    caCerts: cafile === undefined ? undefined : [cafile],
    requireClientCert: args["require-certificate"] ?? false,
  };
  if (tlsPort !== undefined) {
    addresses.push(
      await broker.listen({ port: tlsPort, wsPort: wssPort, hostname, allowedOrigins, tls }),
    );
  }
} catch (err) {
  await broker.close();
  console.error(`Error: cannot listen: ${(err as Error).message}`);
  Deno.exit(1);
}
console.log(`${timestamp()}: mqtt broker (embedded, MQTT 3.1.1) starting`);
for (const address of addresses) {
  const what = address.tls ? "TLS " : "";
  console.log(
    `${timestamp()}: Opening ipv4 ${what}listen socket on ${address.hostname}:${address.port}.`,
  );
  if (address.wsPort !== undefined) {
    console.log(
      `${timestamp()}: Opening ${address.tls ? "secure " : ""}websockets listen socket on ` +
        `${address.hostname}:${address.wsPort}.`,
    );
  }
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
