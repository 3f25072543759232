/**
 * Flag parsing shared by `pub.ts` and `sub.ts`: the connection flags users
 * know from `mosquitto_pub` and `mosquitto_sub`, turned into `connect()`
 * arguments.
 *
 * @module
 */
import { type ConnectOptions, MqttError, type QoS } from "../../mod.ts";
import { urlCredentials } from "../client/url.ts";
import {
  applyProperties,
  type CommandProperties,
  PropertyFlagError,
  readPropertyFlag,
} from "./properties.ts";

/** A flag error: the CLI prints it with the usage and exits with code 2. */
export class UsageError extends Error {
  /** Creates a usage error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parsed command line: connection URL and options, and the tool-specific flags. */
export interface ParsedArgs {
  /** Broker URL. */
  url: string;
  /** Options for `connect()`. */
  options: ConnectOptions;
  /** Topics given with `-t` (in order). */
  topics: string[];
  /** QoS from `-q`. */
  qos: QoS;
  /** Flags not about the connection, by long name (e.g. `message`, `retain`, `count`). */
  flags: Map<string, string | true>;
  /** MQTT 5.0 properties from `-D command identifier value`, by command. */
  properties: CommandProperties;
}

/** A flag: its long name, short alias, and whether it takes a value. */
interface FlagSpec {
  name: string;
  short?: string;
  value: boolean;
}

const CONNECTION_FLAGS: FlagSpec[] = [
  { name: "host", short: "h", value: true },
  { name: "port", short: "p", value: true },
  { name: "url", short: "L", value: true },
  { name: "topic", short: "t", value: true },
  { name: "qos", short: "q", value: true },
  { name: "id", short: "i", value: true },
  { name: "disable-clean-session", short: "c", value: false },
  { name: "username", short: "u", value: true },
  { name: "pw", short: "P", value: true },
  { name: "pw-file", value: true },
  { name: "cafile", value: true },
  { name: "cert", value: true },
  { name: "key", value: true },
  { name: "insecure-servername", value: true },
  { name: "keepalive", short: "k", value: true },
  { name: "will-topic", value: true },
  { name: "will-payload", value: true },
  { name: "will-qos", value: true },
  { name: "will-retain", value: false },
  { name: "protocol-version", short: "V", value: true },
  { name: "help", value: false },
];

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
  return toInt(name, value, 0, 2) as QoS;
}

/** Environment variable read for the password when no flag or URL gives one. */
export const PASSWORD_ENV = "MQTT_PASSWORD";

/** Help text on the password sources and the signals, shared by both tools' usage. */
export const COMMON_HELP: string =
  `  -V version      mqttv5 (or 5) for MQTT 5.0, mqttv311 (or 311, the default) for 3.1.1
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
  const specs = [...CONNECTION_FLAGS, ...extra];
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values = new Map<string, string | true>();
  const topics: string[] = [];
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
    if (!spec) throw new UsageError(`unknown argument "${arg}"`);
    let value: string | true = true;
    if (spec.value) {
      value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`--${spec.name} needs a value`);
    }
    if (spec.name === "topic") topics.push(value as string);
    else values.set(spec.name, value);
  }

  const get = (name: string) => values.get(name) as string | undefined;
  const cafile = get("cafile");
  const cert = get("cert");
  const key = get("key");
  const tlsWanted = cafile !== undefined || cert !== undefined;
  let url = get("url");
  if (url === undefined) {
    const host = get("host") ?? "localhost";
    const port = get("port") ?? (tlsWanted ? "8883" : "1883");
    toInt("port", port, 1, 65535);
    url = `${tlsWanted ? "mqtts" : "mqtt"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
  }
  const options: ConnectOptions = { reconnect: false };
  const id = get("id");
  if (id !== undefined) options.clientId = id;
  if (values.has("disable-clean-session")) options.clean = false;
  const keepalive = get("keepalive");
  if (keepalive !== undefined) options.keepAlive = toInt("keepalive", keepalive, 0, 65535);
  const { username, password } = await credentials(url, get);
  if (username !== undefined) options.username = username;
  if (password !== undefined) options.password = password;
  if (tlsWanted || get("insecure-servername") !== undefined) {
    options.tls = {};
    if (cafile !== undefined) options.tls.caCerts = [await Deno.readTextFile(cafile)];
    if (cert !== undefined) options.tls.cert = await Deno.readTextFile(cert);
    if (key !== undefined) options.tls.key = await Deno.readTextFile(key);
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
  for (const name of CONNECTION_FLAGS) {
    if (name.name !== "help" && name.name !== "qos") values.delete(name.name);
  }
  return { url, options, topics, qos, flags: values, properties };
}

/** Exit codes of the CLI tools; `interrupted` is the shell's 128 + SIGINT. */
export const EXIT: {
  readonly ok: 0;
  readonly error: 1;
  readonly usage: 2;
  readonly interrupted: 130;
} = {
  ok: 0,
  error: 1,
  usage: 2,
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
 * Prints a usage error with the usage text and returns exit code 2; rethrows
 * anything that is not a {@linkcode UsageError}.
 *
 * @example
 * ```ts
 * import { usageFailure, UsageError } from "./args.ts";
 * console.log(usageFailure(new UsageError("give a topic"), "Usage: pub -t topic")); // 2
 * ```
 */
export function usageFailure(err: unknown, usage: string): number {
  if (!(err instanceof UsageError)) throw err;
  console.error(`Error: ${err.message}\n${usage}`);
  return EXIT.usage;
}

/**
 * Prints a connection or protocol error with its stable code and returns exit code 1.
 *
 * @example
 * ```ts
 * import { runtimeFailure } from "./args.ts";
 * console.log(runtimeFailure(new Error("refused"))); // 1
 * ```
 */
export function runtimeFailure(err: unknown): number {
  const code = err instanceof MqttError ? ` [${err.code}]` : "";
  console.error(`Error${code}: ${err instanceof Error ? err.message : String(err)}`);
  return EXIT.error;
}
