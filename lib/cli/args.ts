/**
 * Flag parsing shared by `pub.ts` and `sub.ts`: the connection flags users
 * know from `mosquitto_pub` and `mosquitto_sub`, turned into `connect()`
 * arguments.
 *
 * @module
 */
import {
  ConnectionRefusedError,
  type ConnectOptions,
  MqttError,
  type PacketListener,
  type QoS,
} from "../../mod.ts";
import { urlCredentials } from "../client/url.ts";
import { traceLines } from "./trace.ts";
import config from "../../deno.json" with { type: "json" };
import {
  applyProperties,
  type CommandProperties,
  PropertyFlagError,
  readPropertyFlag,
} from "./properties.ts";

/**
 * A flag error: the CLI prints `Error: message` and, unless `showUsage` is
 * false, mosquitto's pointer to `--help`; it exits with code 1 as mosquitto does.
 */
export class UsageError extends Error {
  /** Whether the pointer to `--help` follows the message. */
  readonly showUsage: boolean;
  /** Creates a usage error. */
  constructor(message: string, options: { showUsage?: boolean } = {}) {
    super(message);
    this.name = "UsageError";
    this.showUsage = options.showUsage ?? true;
  }
}

/** Parsed command line: connection URL and options, and the tool-specific flags. */
export interface ParsedArgs {
  /** Broker URL (the first of `urls`). */
  url: string;
  /** Every broker URL, from each `-L`, or from each `-h` with `-p`; tried in order. */
  urls: string[];
  /** Options for `connect()`. */
  options: ConnectOptions;
  /** Topics given with `-t` (in order), and the topic of an `-L` URL's path. */
  topics: string[];
  /** QoS from `-q`. */
  qos: QoS;
  /** Flags not about the connection, by long name (e.g. `message`, `retain`, `count`). */
  flags: Map<string, string | true>;
  /** Values of the flags that may be repeated (`repeat: true`), by long name, in order. */
  lists: Map<string, string[]>;
  /** MQTT 5.0 properties from `-D command identifier value`, by command. */
  properties: CommandProperties;
}

/** A flag: its long name, short alias, whether it takes a value, and whether it may repeat. */
export interface FlagSpec {
  /** Long name, without `--`. */
  name: string;
  /** One-letter alias, without `-`. */
  short?: string;
  /** Whether a value follows. */
  value: boolean;
  /** May be given more than once; the values are collected in {@linkcode ParsedArgs.lists}. */
  repeat?: boolean;
}

/** Flags both tools take, as `mosquitto_pub` and `mosquitto_sub` name them. */
const CONNECTION_FLAGS: FlagSpec[] = [
  { name: "host", short: "h", value: true, repeat: true },
  { name: "port", short: "p", value: true },
  { name: "url", short: "L", value: true, repeat: true },
  { name: "topic", short: "t", value: true, repeat: true },
  { name: "qos", short: "q", value: true },
  { name: "id", short: "i", value: true },
  { name: "id-prefix", short: "I", value: true },
  { name: "disable-clean-session", short: "c", value: false },
  { name: "username", short: "u", value: true },
  { name: "pw", short: "P", value: true },
  { name: "pw-file", value: true },
  { name: "cafile", value: true },
  { name: "capath", value: true },
  { name: "tls-use-os-certs", value: false },
  { name: "cert", value: true },
  { name: "key", value: true },
  { name: "insecure", value: false },
  { name: "insecure-servername", value: true },
  { name: "keepalive", short: "k", value: true },
  { name: "will-topic", value: true },
  { name: "will-payload", value: true },
  { name: "will-qos", value: true },
  { name: "will-retain", value: false },
  { name: "debug", short: "d", value: false },
  { name: "quiet", value: false },
  { name: "protocol-version", short: "V", value: true },
  { name: "help", value: false },
  { name: "version", value: false },
];

/** Flags of the connection that the tools read too, so parsing leaves them in `flags`. */
const KEPT = new Set(["help", "version", "debug", "quiet", "qos"]);
/** Runs `fn`, turning a `-D`/`-V` error into a UsageError. */
function propertyFlags<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof PropertyFlagError) throw new UsageError(err.message);
    throw err;
  }
}

function toInt(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} needs an integer from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

function toQos(name: string, value: string): QoS {
  const n = Number(value);
  if (value === "" || !(n === 0 || n === 1 || n === 2)) {
    throw new UsageError(
      name === "qos" ? `Invalid QoS given: ${value}` : `Invalid will QoS ${value}.`,
    );
  }
  return n as QoS;
}

/** Environment variable read for the password when no flag or URL gives one. */
export const PASSWORD_ENV = "MQTT_PASSWORD";

/** Help text on the password sources and the signals, shared by both tools' usage. */
export const COMMON_HELP: string =
  `  -L url and -h host may be given several times (nodes of a cluster): they are tried
                  in order until one accepts the connection
  -V version      mqttv5 (or 5) for MQTT 5.0, mqttv311 (or 311, the default) for 3.1.1
  -D command identifier value
                  an MQTT 5.0 property, as mosquitto 2.0 takes it (needs -V mqttv5): command is
                  connect, publish or will; e.g. -D publish message-expiry-interval 60,
                  -D connect user-property name value (repeatable)
  --pw-file file  read the password from file (one trailing newline is ignored), so it
                  does not show in the process list as -P does
  Environment: ${PASSWORD_ENV}  the password, used with a user name (-u or in the URL)
                  when neither -P, --pw-file nor the URL gives one
  Ctrl-C or SIGTERM closes the connection cleanly (DISCONNECT: no will) and exits 0;
  a second one exits at once with 130.`;

async function readPasswordFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new UsageError(`cannot read --pw-file "${path}": ${(err as Error).message}`);
  }
  // Files written by editors and `echo` end in a newline that is not part of the password.
  return text.replace(/\r?\n$/, "");
}

function passwordFromEnv(): string | undefined {
  try {
    return Deno.env.get(PASSWORD_ENV) || undefined;
  } catch {
    return undefined; // without --allow-env the variable is simply not read
  }
}

/** The user name and password of `url`; none when it does not parse (connect() says why). */
function credentialsOf(url: string): { username?: string; password?: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return {};
  }
  try {
    return urlCredentials(parsed);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * User name and password from -u, -P, --pw-file, the URL and the environment. URL
 * credentials are left in the URL for connect(), unless a password given otherwise
 * needs the URL's user name.
 */
async function credentials(
  url: string,
  get: (name: string) => string | undefined,
): Promise<{ username?: string; password?: string }> {
  const pw = get("pw");
  const pwFile = get("pw-file");
  if (pw !== undefined && pwFile !== undefined) {
    throw new UsageError("give the password with -P or with --pw-file, not both");
  }
  let username = get("username");
  let password = pw ?? (pwFile === undefined ? undefined : await readPasswordFile(pwFile));
  const fromUrl = credentialsOf(url);
  if (password === undefined && (username ?? fromUrl.username) !== undefined) {
    if (username !== undefined || fromUrl.password === undefined) password = passwordFromEnv();
  }
  if (password !== undefined) username ??= fromUrl.username;
  return { username, password };
}

/** Reads a file a flag names; a failure is a one-line error, not a stack trace. */
async function readFlagFile(flag: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "file not found" : (err as Error).message;
    throw new UsageError(`Problem setting TLS options: cannot read --${flag} "${path}": ${why}.`, {
      showUsage: false,
    });
  }
}

/** The PEM certificates of the files in `dir` (as `c_rehash` leaves them, or `*.pem`, `*.crt`). */
async function readCertDir(dir: string): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) continue;
      const text = await Deno.readTextFile(`${dir}/${entry.name}`).catch(() => "");
      if (text.includes("-----BEGIN CERTIFICATE-----")) found.push(text);
    }
  } catch (err) {
    throw new UsageError(
      `Problem setting TLS options: cannot read --capath "${dir}": ${(err as Error).message}.`,
      { showUsage: false },
    );
  }
  return found;
}

/** Where Linux distributions and macOS keep the system's trusted roots as one PEM bundle. */
const OS_CA_BUNDLES = [
  "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
  "/etc/pki/tls/certs/ca-bundle.crt", // Fedora, RHEL
  "/etc/ssl/ca-bundle.pem", // openSUSE
  "/etc/ssl/cert.pem", // macOS, Alpine
];

async function readOsCerts(): Promise<string> {
  for (const path of OS_CA_BUNDLES) {
    const text = await Deno.readTextFile(path).catch(() => undefined);
    if (text !== undefined) return text;
  }
  throw new UsageError(
    `Problem setting TLS options: --tls-use-os-certs found no CA bundle (looked in ${
      OS_CA_BUNDLES.join(", ")
    }); give --cafile, or run deno with DENO_TLS_CA_STORE=system`,
    { showUsage: false },
  );
}

/**
 * Splits the topic off an `-L` URL, as mosquitto reads `mqtt://host:port/topic`:
 * everything after the authority's `/`, taken as written (`#` and `+` too).
 */
function splitUrlTopic(url: string): { url: string; topic?: string } {
  const scheme = /^(mqtts?):\/\//i.exec(url);
  if (!scheme) return { url };
  const slash = url.indexOf("/", scheme[0].length);
  if (slash === -1) return { url };
  const topic = url.slice(slash + 1);
  return { url: url.slice(0, slash), topic: topic === "" ? undefined : topic };
}

/** Reads argv against the flag table: values by long name, repeatable flags as lists. */
function readFlags(
  argv: string[],
  specs: FlagSpec[],
): {
  values: Map<string, string | true>;
  lists: Map<string, string[]>;
  properties: CommandProperties;
} {
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values = new Map<string, string | true>();
  const lists = new Map<string, string[]>();
  const properties: CommandProperties = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-D" || arg === "--property") {
      // mosquitto's -D command identifier value (user-property takes a name and a value).
      i += propertyFlags(() => readPropertyFlag(argv, i + 1, properties));
      continue;
    }
    let spec: FlagSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      if (eq !== -1) inline = arg.slice(eq + 1);
      spec = byName.get(name);
    } else if (arg.startsWith("-") && arg.length === 2) {
      spec = byShort.get(arg[1]);
    }
    if (!spec) throw new UsageError(`Unknown option '${arg}'.`);
    let value: string | true = true;
    if (spec.value) {
      value = inline ?? argv[++i];
      if (value === undefined) {
        throw new UsageError(`${arg} argument given but no value specified.`);
      }
    }
    if (spec.repeat) {
      const list = lists.get(spec.name) ?? [];
      list.push(value as string);
      lists.set(spec.name, list);
    } else {
      values.set(spec.name, value);
    }
  }
  return { values, lists, properties };
}

/**
 * Parses `argv` with the connection flags plus `extra` tool flags.
 *
 * @example
 * ```ts
 * import { parseArgs } from "./args.ts";
 * const parsed = await parseArgs(["-h", "localhost", "-t", "a/b", "-m", "hi"], [
 *   { name: "message", short: "m", value: true },
 * ]);
 * console.log(parsed.url, parsed.topics, parsed.flags.get("message")); // mqtt://localhost:1883 ["a/b"] hi
 * ```
 */
export async function parseArgs(argv: string[], extra: FlagSpec[]): Promise<ParsedArgs> {
  const { values, lists, properties } = readFlags(argv, [...CONNECTION_FLAGS, ...extra]);
  const get = (name: string) => values.get(name) as string | undefined;
  const topics = lists.get("topic") ?? [];
  const urlList = lists.get("url") ?? [];
  const hostList = lists.get("host") ?? [];
  for (const name of ["topic", "url", "host"]) lists.delete(name);
  if (values.has("help") || values.has("version")) {
    return { url: "", urls: [], options: {}, topics, qos: 0, flags: values, lists, properties };
  }
  const cafile = get("cafile");
  const capath = get("capath");
  const osCerts = values.has("tls-use-os-certs");
  const cert = get("cert");
  const key = get("key");
  const tlsWanted = cafile !== undefined || capath !== undefined || osCerts || cert !== undefined;
  let urls: string[];
  if (urlList.length === 0) {
    const port = get("port") ?? (tlsWanted ? "8883" : "1883");
    toInt("port", port, 1, 65535);
    urls = (hostList.length === 0 ? ["localhost"] : hostList).map((host) =>
      `${tlsWanted ? "mqtts" : "mqtt"}://${host.includes(":") ? `[${host}]` : host}:${port}`
    );
  } else {
    // Several -L name the nodes of one cluster: the topic is the first URL's.
    const splits = urlList.map(splitUrlTopic);
    urls = splits.map((split) => split.url);
    const topic = splits.find((split) => split.topic !== undefined)?.topic;
    if (topic !== undefined) topics.unshift(topic);
  }
  const url = urls[0];
  const options: ConnectOptions = { reconnect: false };
  const id = get("id");
  const prefix = get("id-prefix");
  if (id !== undefined && prefix !== undefined) {
    throw new UsageError("-i and -I argument cannot be used together.");
  }
  // As mosquitto 2.0 does for 3.1.1: no -i, no -I: the broker assigns an identifier.
  options.clientId = id ?? (prefix === undefined ? "" : `${prefix}${Deno.pid}`);
  if (values.has("disable-clean-session")) {
    if (options.clientId === "") {
      throw new UsageError("You must provide a client id if you are using the -c option.");
    }
    options.clean = false;
  }
  const keepalive = get("keepalive");
  if (keepalive !== undefined) options.keepAlive = toInt("keepalive", keepalive, 0, 65535);
  const { username, password } = await credentials(url, get);
  if (username !== undefined) options.username = username;
  if (password !== undefined) options.password = password;
  if (tlsWanted || get("insecure-servername") !== undefined) {
    options.tls = {};
    const caCerts: string[] = [];
    if (cafile !== undefined) caCerts.push(await readFlagFile("cafile", cafile));
    if (capath !== undefined) caCerts.push(...await readCertDir(capath));
    if (osCerts) caCerts.push(await readOsCerts());
    if (caCerts.length > 0) options.tls.caCerts = caCerts;
    if (cert !== undefined) options.tls.cert = await readFlagFile("cert", cert);
    if (key !== undefined) options.tls.key = await readFlagFile("key", key);
    const serverName = get("insecure-servername");
    if (serverName !== undefined) options.tls.serverName = serverName;
  }
  const willTopic = get("will-topic");
  if (willTopic !== undefined) {
    options.will = {
      topic: willTopic,
      payload: get("will-payload") ?? "",
      qos: toQos("will-qos", get("will-qos") ?? "0"),
      retain: values.has("will-retain"),
    };
  }
  propertyFlags(() => applyProperties(options, properties, get("protocol-version")));
  const qos = toQos("qos", get("qos") ?? "0");
  for (const spec of CONNECTION_FLAGS) {
    if (!KEPT.has(spec.name) && spec.name !== "insecure") values.delete(spec.name);
  }
  return { url, urls, options, topics, qos, flags: values, lists, properties };
}

/** Exit codes of the CLI tools; `interrupted` is the shell's 128 + SIGINT. */
export const EXIT: {
  readonly ok: 0;
  readonly error: 1;
  readonly usage: 1;
  readonly tls: 8;
  readonly timedOut: 27;
  readonly interrupted: 130;
} = {
  ok: 0,
  error: 1,
  usage: 1, // mosquitto_pub and mosquitto_sub exit 1 on a bad argument
  tls: 8, // libmosquitto's MOSQ_ERR_TLS, what a failed TLS handshake mostly exits with
  timedOut: 27, // libmosquitto's MOSQ_ERR_TIMEOUT, what mosquitto_sub -W exits with
  interrupted: 130,
};

/** What {@linkcode trapInterrupts} returns: the signal to close on, and the handlers' removal. */
export interface Interrupts extends Disposable {
  /** Aborted by the first SIGINT or SIGTERM. */
  readonly signal: AbortSignal;
}

/**
 * Handles SIGINT (Ctrl-C) and SIGTERM as `mosquitto_sub` does: the first aborts
 * `signal`, so the tool closes its client cleanly (DISCONNECT, so the broker
 * discards the will) and exits 0; a second exits at once with 130, for when
 * closing hangs. `notice` is told of the first. Disposing removes the handlers.
 *
 * @example
 * ```ts ignore
 * import { trapInterrupts } from "./args.ts";
 * import { connect } from "../../mod.ts";
 * using interrupts = trapInterrupts();
 * await using client = await connect("mqtt://localhost", { signal: interrupts.signal });
 * ```
 */
export function trapInterrupts(notice: (line: string) => void = () => {}): Interrupts {
  const controller = new AbortController();
  const handler = () => {
    if (controller.signal.aborted) Deno.exit(EXIT.interrupted);
    notice("interrupted: closing the connection (interrupt again to exit at once)");
    controller.abort(new MqttError("ABORTED", "interrupted by a signal"));
  };
  const installed: Deno.Signal[] = [];
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, handler);
      installed.push(signal);
    } catch {
      // Windows has no SIGTERM; Ctrl-C is still handled.
    }
  }
  return {
    signal: controller.signal,
    [Symbol.dispose]() {
      for (const signal of installed) Deno.removeSignalListener(signal, handler);
    },
  };
}

/**
 * Prints a usage error as mosquitto does (`Error: …`, then where the usage is)
 * and returns exit code 1; rethrows anything that is not a {@linkcode UsageError}.
 * `quiet` (`--quiet`) prints nothing.
 *
 * @example
 * ```ts
 * import { usageFailure, UsageError } from "./args.ts";
 * console.log(usageFailure(new UsageError("give a topic"), "pub")); // 1
 * ```
 */
export function usageFailure(err: unknown, tool: string, quiet = false): number {
  if (!(err instanceof UsageError)) throw err;
  if (!quiet) {
    console.error(`Error: ${err.message}`);
    if (err.showUsage) console.error(`\nUse '${tool} --help' to see usage.`);
  }
  return EXIT.usage;
}

/** libmosquitto's words for CONNACK return codes 1 to 5 (`mosquitto_connack_string`). */
const CONNACK_STRINGS = [
  "Connection Accepted.",
  "Connection Refused: unacceptable protocol version.",
  "Connection Refused: identifier rejected.",
  "Connection Refused: broker unavailable.",
  "Connection Refused: bad user name or password.",
  "Connection Refused: not authorised.",
];

/**
 * Prints a connection or protocol error and returns the exit code: a refused
 * CONNECT prints mosquitto's `Connection error: …` line and exits with the
 * return code, as mosquitto does; a failed TLS handshake exits 8 (mosquitto's
 * usual code for it); anything else prints its stable code and exits 1.
 * `quiet` prints nothing.
 *
 * @example
 * ```ts
 * import { runtimeFailure } from "./args.ts";
 * console.log(runtimeFailure(new Error("refused"))); // 1
 * ```
 */
export function runtimeFailure(err: unknown, quiet = false): number {
  if (err instanceof ConnectionRefusedError) {
    // Under 5.0 mosquitto exits with the reason code and prints its name.
    const v5 = err.reasonCode !== undefined;
    const text = v5
      ? `${err.reason[0].toUpperCase()}${err.reason.slice(1)}`
      : CONNACK_STRINGS[err.returnCode] ?? `Connection Refused: ${err.reason}.`;
    if (!quiet) console.error(`Connection error: ${text}`);
    return (v5 ? err.reasonCode : err.returnCode) || EXIT.error;
  }
  if (!quiet) {
    const code = err instanceof MqttError ? ` [${err.code}]` : "";
    console.error(`Error${code}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const tls = err instanceof MqttError && err.code === "TRANSPORT_ERROR" &&
    /TLS handshake|peer certificate/.test(err.message);
  return tls ? EXIT.tls : EXIT.error;
}

/** The version line of `--version`. */
export function versionLine(tool: string): string {
  return `${tool} version ${config.version} (${config.name}, MQTT 3.1.1) running on Deno ${
    globalThis.Deno?.version?.deno ?? "?"
  }.`;
}

/**
 * A `connect()` `onPacket` hook printing the `-d` trace lines of
 * `mosquitto_pub`/`mosquitto_sub` to `print`. libmosquitto numbers QoS 0
 * publishes from the same counter as other packets, so they are given the
 * next number too.
 *
 * @example
 * ```ts
 * import { debugTrace } from "./args.ts";
 * const hook = debugTrace("c1", console.log);
 * hook("sent", { type: "pingreq" }); // Client c1 sending PINGREQ
 * ```
 */
export function debugTrace(clientId: string, print: (line: string) => void): PacketListener {
  let lastId = 0;
  return (direction, packet) => {
    if (direction === "sent" && "packetId" in packet && packet.packetId !== undefined) {
      lastId = packet.packetId;
    } else if (direction === "sent" && packet.type === "publish") {
      packet = { ...packet, packetId: ++lastId };
    }
    for (const line of traceLines(clientId, direction, packet)) print(line);
  };
}
