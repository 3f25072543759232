/**
 * Starts a real Mosquitto broker for tests: free loopback ports, a generated config in a fresh
 * temp directory, and a handle to stop, kill, restart, pause and resume it.
 *
 * @module
 */
import { type Certs, sharedCerts } from "./certs.ts";
import { freePorts, waitForPort } from "./ports.ts";
import { signalAndWait } from "./process.ts";
import { envFlag, ignoreWithout, type TestFn, type Tool, toolTest } from "./needs.ts";

/** Options of {@linkcode startMosquitto}. All default to off. */
export interface MosquittoOptions {
  /**
   * `"anonymous"` (default): anyone may connect. `"password"`: only `users`, checked against a
   * password file made with `mosquitto_passwd`.
   */
  auth?: "anonymous" | "password";
  /** User names and passwords for `auth: "password"`. Default `{ user: "secret" }`. */
  users?: Record<string, string>;
  /** Add a TLS listener (`tlsPort`, `tlsUrl`). */
  tls?: boolean;
  /** The TLS listeners require a client certificate signed by `certs.ca`. Implies `tls`. */
  requireClientCert?: boolean;
  /** Add a WebSocket listener (`wsPort`, `wsUrl`). */
  websockets?: boolean;
  /** Add a WebSocket-over-TLS listener (`wssPort`, `wssUrl`). */
  wsTls?: boolean;
  /**
   * Keep sessions, queued and retained messages in `dir/mosquitto.db` across
   * {@linkcode Mosquitto.restart}. `true` writes the database every second (and on SIGTERM); see
   * {@linkcode PersistenceOptions} and the notes of {@linkcode startMosquitto} for what survives
   * SIGKILL.
   */
  persistence?: boolean | PersistenceOptions;
  /** Lift Mosquitto's per-client limits: `max_inflight_messages 0`, `max_queued_messages 0`. */
  flood?: boolean;
  /** `log_type all` (every packet) instead of errors, warnings, notices and information. */
  verbose?: boolean;
  /**
   * Which certificate the TLS listeners present: `"localhost"` (default, valid for localhost and
   * 127.0.0.1) or `"wrongHost"` (signed by the right CA, but for `wrong.example` only).
   */
  serverCert?: "localhost" | "wrongHost";
  /** Certificates to use; default {@linkcode sharedCerts} (made once per process). */
  certs?: Certs;
  /** Appended verbatim to the generated config (after the listeners). */
  extraConfig?: string;
  /** How long to wait for the listeners, in milliseconds. Default 10000. */
  startTimeoutMs?: number;
}

/**
 * When Mosquitto writes its database (it always does on a clean SIGTERM shutdown). Give one of
 * the two; the default is `{ autosaveSeconds: 1 }`.
 */
export interface PersistenceOptions {
  /** Write the whole database every this many seconds (`autosave_interval`). */
  autosaveSeconds?: number;
  /**
   * Write the whole database after this many changes (`autosave_on_changes true`), at the next
   * turn of Mosquitto's event loop. `1` loses the least on SIGKILL but costs a full rewrite per
   * message: 10,000 QoS 1 messages queued for an offline client took 70 s instead of 0.7 s.
   */
  autosaveChanges?: number;
}

/** A running (or stopped, or killed) Mosquitto, from {@linkcode startMosquitto}. */
export interface Mosquitto {
  /** Always `127.0.0.1`. */
  readonly host: string;
  /** Plain MQTT port. */
  readonly port: number;
  /** TLS port, with `tls` or `requireClientCert`. */
  readonly tlsPort?: number;
  /** WebSocket port, with `websockets`. */
  readonly wsPort?: number;
  /** WebSocket-over-TLS port, with `wsTls`. */
  readonly wssPort?: number;
  /** `mqtt://127.0.0.1:<port>`. */
  readonly url: string;
  /** `mqtts://localhost:<tlsPort>` (localhost, so the server certificate matches). */
  readonly tlsUrl?: string;
  /** `ws://127.0.0.1:<wsPort>/mqtt`. */
  readonly wsUrl?: string;
  /** `wss://localhost:<wssPort>/mqtt`. */
  readonly wssUrl?: string;
  /** The certificates, when a TLS listener exists. */
  readonly certs?: Certs;
  /** Users of `auth: "password"`. */
  readonly users?: Readonly<Record<string, string>>;
  /** The temp directory with config, log, password file and persistence database. */
  readonly dir: string;
  /** The generated config file. */
  readonly configFile: string;
  /** The broker's log file. */
  readonly logFile: string;
  /** Process id of the current broker process. */
  readonly pid: number;
  /** Whether the broker process is alive (a paused broker is alive). */
  readonly running: boolean;
  /** The broker's log so far. */
  log(): Promise<string>;
  /**
   * Stops the broker for good: SIGTERM (Mosquitto saves its database), SIGKILL after 5 s, then
   * removes `dir` (kept if env `MOSQUITTO_KEEP` is set). Safe to call more than once.
   */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGTERM) and waits until the process has exited. Keeps `dir`. */
  kill(signal?: Deno.Signal): Promise<void>;
  /**
   * Starts the broker again with the same ports, config and database (terminating it with
   * SIGTERM first if it still runs). For broker-crash tests: `kill("SIGKILL")`, then `restart()`.
   */
  restart(): Promise<void>;
  /** SIGSTOP: the broker keeps its sockets open but answers nothing (keep-alive tests). */
  pause(): Promise<void>;
  /** SIGCONT after {@linkcode Mosquitto.pause}. */
  resume(): Promise<void>;
  /** Same as {@linkcode Mosquitto.stop}. */
  [Symbol.asyncDispose](): Promise<void>;
}

const SEARCH_DIRS = ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin", "/sbin"];

/**
 * Finds an executable on PATH or in the usual sbin/bin directories (Mosquitto lives in
 * /usr/sbin, which is often not on PATH). Returns `undefined` when there is none.
 *
 * @example
 * ```ts
 * const mosquitto = findExecutable("mosquitto"); // "/usr/sbin/mosquitto"
 * ```
 */
export function findExecutable(name: string): string | undefined {
  const path = Deno.env.get("PATH") ?? "";
  for (const dir of [...path.split(":").filter(Boolean), ...SEARCH_DIRS]) {
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && (info.mode === null || (info.mode & 0o111) !== 0)) return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

function requireExecutable(name: string): string {
  const found = findExecutable(name);
  if (!found) {
    throw new Error(
      `${name} is not installed (apt-get install mosquitto mosquitto-clients); ` +
        "tests needing a broker are ignored locally but fail when CI is set",
    );
  }
  return found;
}

/**
 * Whether the Mosquitto broker and its clients (`mosquitto_pub`, `mosquitto_sub`,
 * `mosquitto_passwd`) are installed. Env `MOSQUITTO_DISABLE=1` makes it say no.
 *
 * @example
 * ```ts
 * if (!mosquittoAvailable()) console.log("no broker tests");
 * ```
 */
export function mosquittoAvailable(): boolean {
  // Lets the skip/fail rules be exercised (and a broker-less run be tried) on a machine with it.
  if (envFlag("MOSQUITTO_DISABLE")) return false;
  return ["mosquitto", "mosquitto_pub", "mosquitto_sub", "mosquitto_passwd"]
    .every((name) => findExecutable(name) !== undefined);
}

/**
 * Mosquitto (broker and clients) as a {@linkcode Tool} tests need.
 *
 * @example
 * ```ts
 * import { toolTest } from "./needs.ts";
 *
 * toolTest(MOSQUITTO, "publishes", async () => {});
 * ```
 */
export const MOSQUITTO: Tool = Object.freeze({
  name: "Mosquitto",
  install: "apt-get install mosquitto mosquitto-clients",
  available: mosquittoAvailable,
});

/**
 * `true` when tests needing Mosquitto should be ignored: it is missing and env `CI` is not set
 * (a warning saying so is printed once). With `CI` set, a missing broker is never skipped: the
 * test runs and fails. Use as `Deno.test({ name, ignore: ignoreWithoutMosquitto(), fn })`.
 *
 * @example
 * ```ts
 * Deno.test({ name: "talks to a broker", ignore: ignoreWithoutMosquitto(), fn: async () => {} });
 * ```
 */
export function ignoreWithoutMosquitto(): boolean {
  return ignoreWithout(MOSQUITTO);
}

/**
 * `Deno.test` for tests that need Mosquitto: ignored with a warning when it is missing locally,
 * failing when it is missing and env `CI` is set.
 *
 * @example
 * ```ts
 * brokerTest("publishes", async () => {
 *   await using broker = await startMosquitto();
 * });
 * ```
 */
export function brokerTest(name: string, fn: TestFn): void;
/**
 * `Deno.test` with a definition (sanitizer switches etc.); `ignore` is decided here.
 *
 * @example
 * ```ts
 * brokerTest({ name: "publishes", sanitizeOps: false, fn: async () => {} });
 * ```
 */
export function brokerTest(definition: Omit<Deno.TestDefinition, "ignore">): void;
export function brokerTest(
  nameOrDefinition: string | Omit<Deno.TestDefinition, "ignore">,
  maybeFn?: TestFn,
): void {
  toolTest(MOSQUITTO, nameOrDefinition, maybeFn);
}

interface Ports {
  port: number;
  tlsPort?: number;
  wsPort?: number;
  wssPort?: number;
}

function listenerLines(port: number, protocol: "mqtt" | "websockets", tls?: TlsConfig): string[] {
  const lines = [`listener ${port} 127.0.0.1`, `protocol ${protocol}`];
  if (tls) {
    lines.push(
      `cafile ${tls.certs.ca.certFile}`,
      `certfile ${tls.cert.certFile}`,
      `keyfile ${tls.cert.keyFile}`,
      `require_certificate ${tls.requireClientCert}`,
    );
  }
  return lines;
}

interface TlsConfig {
  certs: Certs;
  cert: Certs["server"];
  requireClientCert: boolean;
}

function renderConfig(
  options: MosquittoOptions,
  ports: Ports,
  dir: string,
  tls: TlsConfig | undefined,
): string {
  const lines = [
    "# Generated by tests/broker/mosquitto.ts",
    // Settings below are global, not per listener.
    "per_listener_settings false",
  ];
  // Started as root, Mosquitto switches to user `mosquitto` unless told to stay root; staying
  // root means the temp dir needs no ownership changes (it warns, harmlessly). A `user` line in
  // extraConfig wins (Mosquitto refuses two).
  if (Deno.uid() === 0 && !/^\s*user\s/m.test(options.extraConfig ?? "")) lines.push("user root");
  lines.push(
    `log_dest file ${dir}/mosquitto.log`,
    ...(options.verbose
      ? ["log_type all"]
      : ["log_type error", "log_type warning", "log_type notice", "log_type information"]),
    "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    "connection_messages true",
  );
  if (options.persistence) {
    lines.push(
      "persistence true",
      `persistence_location ${dir}/`, // the trailing slash is needed: it is a path prefix
      "persistence_file mosquitto.db",
    );
    const p = typeof options.persistence === "object" ? options.persistence : {};
    if (p.autosaveChanges !== undefined) {
      lines.push("autosave_on_changes true", `autosave_interval ${p.autosaveChanges}`);
    } else {
      // Mosquitto's default is every 30 minutes; a SIGKILL then loses everything.
      lines.push("autosave_on_changes false", `autosave_interval ${p.autosaveSeconds ?? 1}`);
    }
  } else {
    lines.push("persistence false");
  }
  if (options.flood) lines.push("max_inflight_messages 0", "max_queued_messages 0");
  lines.push("");
  lines.push(...listenerLines(ports.port, "mqtt"));
  if (ports.tlsPort) lines.push(...listenerLines(ports.tlsPort, "mqtt", tls));
  if (ports.wsPort) lines.push(...listenerLines(ports.wsPort, "websockets"));
  if (ports.wssPort) lines.push(...listenerLines(ports.wssPort, "websockets", tls));
  lines.push("");
  if (options.auth === "password") {
    lines.push("allow_anonymous false", `password_file ${dir}/passwd`);
  } else {
    lines.push("allow_anonymous true");
  }
  if (options.extraConfig) lines.push("", options.extraConfig);
  return lines.join("\n") + "\n";
}

async function writePasswordFile(file: string, users: Record<string, string>): Promise<void> {
  const passwd = requireExecutable("mosquitto_passwd");
  let first = true;
  for (const [user, password] of Object.entries(users)) {
    const args = first ? ["-b", "-c", file, user, password] : ["-b", file, user, password];
    first = false;
    const out = await new Deno.Command(passwd, { args, stdout: "piped", stderr: "piped" }).output();
    if (!out.success) {
      throw new Error(`mosquitto_passwd failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  }
  // Mosquitto 2.0.11 reads it whatever the mode; later versions warn when it is world readable.
  // Readable by all keeps it working should the broker run as user `mosquitto`.
  await Deno.chmod(file, 0o644);
}

async function readOr(file: string, fallback: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch {
    return fallback;
  }
}

class Broker implements Mosquitto {
  readonly host = "127.0.0.1";
  readonly port: number;
  readonly tlsPort?: number;
  readonly wsPort?: number;
  readonly wssPort?: number;
  readonly url: string;
  readonly tlsUrl?: string;
  readonly wsUrl?: string;
  readonly wssUrl?: string;
  readonly certs?: Certs;
  readonly users?: Readonly<Record<string, string>>;
  readonly dir: string;
  readonly configFile: string;
  readonly logFile: string;
  #bin: string;
  #child?: Deno.ChildProcess;
  #exited = true;
  #status?: Promise<Deno.CommandStatus>;
  #stderr?: Promise<string>;
  #paused = false;
  #removed = false;
  #startTimeoutMs: number;

  constructor(
    bin: string,
    dir: string,
    ports: Ports,
    certs: Certs | undefined,
    users: Record<string, string> | undefined,
    startTimeoutMs: number,
  ) {
    this.#bin = bin;
    this.dir = dir;
    this.configFile = `${dir}/mosquitto.conf`;
    this.logFile = `${dir}/mosquitto.log`;
    this.port = ports.port;
    this.url = `mqtt://127.0.0.1:${ports.port}`;
    if (ports.tlsPort) {
      this.tlsPort = ports.tlsPort;
      this.tlsUrl = `mqtts://localhost:${ports.tlsPort}`;
    }
    if (ports.wsPort) {
      this.wsPort = ports.wsPort;
      this.wsUrl = `ws://127.0.0.1:${ports.wsPort}/mqtt`;
    }
    if (ports.wssPort) {
      this.wssPort = ports.wssPort;
      this.wssUrl = `wss://localhost:${ports.wssPort}/mqtt`;
    }
    this.certs = certs;
    this.users = users;
    this.#startTimeoutMs = startTimeoutMs;
  }

  get pid(): number {
    return this.#child?.pid ?? -1;
  }

  get running(): boolean {
    return !this.#exited;
  }

  log(): Promise<string> {
    return readOr(this.logFile, "");
  }

  /** Spawns the process and waits for every listener; throws with stderr and log on failure. */
  async spawn(): Promise<void> {
    const child = new Deno.Command(this.#bin, {
      args: ["-c", this.configFile],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#exited = false;
    this.#paused = false;
    this.#stderr = new Response(child.stderr).text();
    this.#status = child.status.then((status) => {
      if (this.#child === child) this.#exited = true;
      return status;
    });
    const ports = [this.port, this.tlsPort, this.wsPort, this.wssPort]
      .filter((p): p is number => p !== undefined);
    const deadline = Date.now() + this.#startTimeoutMs;
    try {
      for (const port of ports) {
        await waitForPort(port, {
          timeoutMs: Math.max(0, deadline - Date.now()),
          check: async () => {
            if (this.#exited) throw await this.#failure("exited while starting");
          },
        });
      }
    } catch (e) {
      if (!this.#exited) await this.kill("SIGKILL");
      throw e instanceof BrokerStartError ? e : await this.#failure(String(e));
    }
  }

  async #failure(what: string): Promise<BrokerStartError> {
    const status = this.#exited ? await this.#status : undefined;
    const stderr = this.#exited ? await this.#stderr : "";
    const log = await this.log();
    return new BrokerStartError(
      `mosquitto ${what}${status ? ` (exit code ${status.code})` : ""}\n` +
        `--- stderr ---\n${stderr}\n--- ${this.logFile} ---\n${log}`,
      log + stderr,
    );
  }

  async kill(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    const child = this.#child;
    if (!child || this.#exited) return;
    if (this.#paused && signal !== "SIGKILL") {
      // A stopped process would not act on SIGTERM until continued.
      child.kill("SIGCONT");
      this.#paused = false;
    }
    await signalAndWait(child, this.#status!, signal);
    await this.#stderr;
    this.#exited = true;
    this.#paused = false;
  }

  async restart(): Promise<void> {
    await this.kill("SIGTERM");
    await this.spawn();
  }

  pause(): Promise<void> {
    if (!this.#exited && !this.#paused) {
      this.#child!.kill("SIGSTOP");
      this.#paused = true;
    }
    return Promise.resolve();
  }

  resume(): Promise<void> {
    if (!this.#exited && this.#paused) {
      this.#child!.kill("SIGCONT");
      this.#paused = false;
    }
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    await this.kill("SIGTERM");
    if (this.#removed) return;
    this.#removed = true;
    if (Deno.env.get("MOSQUITTO_KEEP")) {
      console.warn(`MOSQUITTO_KEEP: kept ${this.dir}`);
      return;
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** Mosquitto failed to start; `output` holds its stderr and log. */
export class BrokerStartError extends Error {
  /** The broker's log and stderr. */
  readonly output: string;
  /**
   * @example
   * ```ts
   * const e = new BrokerStartError("mosquitto exited", "Error: Address already in use");
   * ```
   */
  constructor(message: string, output: string) {
    super(message);
    this.name = "BrokerStartError";
    this.output = output;
  }
}

/**
 * Starts Mosquitto on free 127.0.0.1 ports with a config generated from `options` in a fresh
 * temp directory (mode 755, files 644), and resolves once every listener accepts connections.
 * Rejects with a {@linkcode BrokerStartError} carrying stderr and the broker log if it exits or
 * does not listen in time. A port taken by someone else between choosing and binding it is
 * retried with new ports.
 *
 * Notes:
 * - Run as root, the config says `user root` (Mosquitto warns in its log, harmlessly);
 *   otherwise it drops to user `mosquitto`. With `extraConfig: "user mosquitto"` it still reads
 *   the config, certificates, keys and password file (all 644, directories 755) but cannot
 *   write its log or database into the root-owned directory, and says nothing about it.
 * - WebSocket listeners bind every interface, not just 127.0.0.1 (libwebsockets in 2.0.11
 *   ignores the address); the MQTT and TLS listeners bind 127.0.0.1 only, so use `host` or
 *   `localhost` (which may resolve to ::1 first; clients must fall back to 127.0.0.1).
 * - Mosquitto checks client keep-alive coarsely: a client with keep-alive 1 s that goes
 *   silent was dropped after about 6 s, not 1.5 s.
 * - Persistence: Mosquitto keeps everything in memory and writes the whole database to
 *   `dir/mosquitto.db` (a new file, then renamed) on clean shutdown and on autosave: every
 *   second by default here, or after N changes ({@linkcode PersistenceOptions}). It never saves
 *   before acknowledging, so SIGKILL loses the changes since the last save, including messages
 *   it already answered with PUBACK or PUBREC, and sessions or subscriptions made since. Tests
 *   that kill the broker must allow for that window (or wait a save out, or use SIGTERM).
 * - Mosquitto binds its listeners with SO_REUSEADDR, so `restart()` gets the same ports back.
 *
 * @example
 * ```ts
 * await using broker = await startMosquitto({ auth: "password", users: { alice: "pw" }, tls: true });
 * console.log(broker.url, broker.tlsUrl, broker.certs!.ca.cert);
 * ```
 */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  const bin = requireExecutable("mosquitto");
  const tlsWanted = !!(options.tls || options.requireClientCert);
  const certs = tlsWanted || options.wsTls ? (options.certs ?? await sharedCerts()) : undefined;
  const users = options.auth === "password" ? (options.users ?? { user: "secret" }) : undefined;
  const attempts = 3;
  for (let attempt = 1;; attempt++) {
    const dir = await Deno.makeTempDir({ prefix: "mosquitto-test-" });
    await Deno.chmod(dir, 0o755);
    const count = 1 + (tlsWanted ? 1 : 0) + (options.websockets ? 1 : 0) + (options.wsTls ? 1 : 0);
    const free = freePorts(count);
    const ports: Ports = { port: free.shift()! };
    if (tlsWanted) ports.tlsPort = free.shift();
    if (options.websockets) ports.wsPort = free.shift();
    if (options.wsTls) ports.wssPort = free.shift();
    const tls = certs
      ? {
        certs,
        cert: options.serverCert === "wrongHost" ? certs.wrongHost : certs.server,
        requireClientCert: !!options.requireClientCert,
      }
      : undefined;
    const broker = new Broker(bin, dir, ports, certs, users, options.startTimeoutMs ?? 10_000);
    try {
      if (users) await writePasswordFile(`${dir}/passwd`, users);
      await Deno.writeTextFile(broker.configFile, renderConfig(options, ports, dir, tls), {
        mode: 0o644,
      });
      await broker.spawn();
      return broker;
    } catch (e) {
      await broker.stop();
      const inUse = e instanceof BrokerStartError && /address already in use/i.test(e.output);
      if (!inUse || attempt >= attempts) throw e;
    }
  }
}

/**
 * Resolves once the broker's log has a line containing `text`; throws after `ms`. Tests that
 * reconnect a client id wait for `Client <id> disconnected` (or `closed its connection`) first:
 * a connection that finds the old one still open takes its session over, and Mosquitto then
 * drops what it had not yet read from the old one.
 *
 * @example
 * ```ts ignore
 * await logged(broker, `Client ${clientId} disconnected`);
 * ```
 */
export async function logged(broker: Mosquitto, text: string, ms = 5_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await broker.log()).includes(text)) {
    if (performance.now() > deadline) throw new Error(`no "${text}" in Mosquitto's log`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
