/**
 * Starts the brokers of the interoperability suite: NATS Server in MQTT mode, RabbitMQ with its
 * MQTT plugin, and Mosquitto (through `tests/broker/`), each on free loopback ports with its own
 * temp directory, behind one {@linkcode InteropBroker} interface.
 *
 * Install them with `apt-get install nats-server rabbitmq-server` (Debian 12 ships NATS 2.9 and
 * RabbitMQ 3.10 with the `rabbitmq_mqtt` plugin). Nothing here touches the system services the
 * packages install: every broker runs as a child process of the test with its own config, data
 * directory, node name, Erlang cookie and epmd.
 *
 * @module
 */
import { Broker } from "../../broker.ts";
import { findExecutable, mosquittoAvailable, startMosquitto } from "../broker/mosquitto.ts";
import { freePorts, waitForPort } from "../broker/ports.ts";
import { envFlag } from "../broker/needs.ts";
import { signalAndWait } from "../broker/process.ts";

/** The brokers of the suite. */
export type BrokerName = "mosquitto" | "nats" | "rabbitmq" | "embedded";

/** A running broker of the interoperability suite. */
export interface InteropBroker {
  /** Which broker. */
  readonly name: BrokerName;
  /** `mqtt://127.0.0.1:<port>`. */
  readonly url: string;
  /** Its version, as it reports it (e.g. `nats-server: v2.9.10`). */
  readonly version: string;
  /** Milliseconds from spawning it to its MQTT port accepting connections. */
  readonly startupMs: number;
  /** Its log so far. */
  log(): Promise<string>;
  /** Stops it and removes its directory. Safe to call more than once. */
  stop(): Promise<void>;
  /** Same as {@linkcode InteropBroker.stop}. */
  [Symbol.asyncDispose](): Promise<void>;
}

const RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const RABBITMQ_LIB = "/usr/lib/rabbitmq/lib";

/** The directory of the installed `rabbitmq_mqtt` plugin, if any. */
function rabbitMqttPlugin(): string | undefined {
  try {
    for (const server of Deno.readDirSync(RABBITMQ_LIB)) {
      const plugins = `${RABBITMQ_LIB}/${server.name}/plugins`;
      try {
        for (const plugin of Deno.readDirSync(plugins)) {
          if (/^rabbitmq_mqtt-\d/.test(plugin.name)) return `${plugins}/${plugin.name}`;
        }
      } catch {
        // not a server directory
      }
    }
  } catch {
    // RabbitMQ is not installed
  }
  return undefined;
}

/**
 * Why `name` cannot run here, or undefined when it can: the broker (or its MQTT plugin) is not
 * installed, or env `<NAME>_DISABLE` is set (`NATS_DISABLE=1`, `RABBITMQ_DISABLE=1`,
 * `MOSQUITTO_DISABLE=1`).
 *
 * @example
 * ```ts
 * const why = unavailable("nats");
 * if (why) console.warn(`skipping NATS: ${why}`);
 * ```
 */
export function unavailable(name: BrokerName): string | undefined {
  if (envFlag(`${name.toUpperCase()}_DISABLE`)) return `${name.toUpperCase()}_DISABLE is set`;
  switch (name) {
    case "embedded":
      return undefined; // part of this package
    case "mosquitto":
      return mosquittoAvailable()
        ? undefined
        : "mosquitto is not installed (apt-get install mosquitto mosquitto-clients)";
    case "nats":
      return findExecutable("nats-server")
        ? undefined
        : "nats-server is not installed (apt-get install nats-server)";
    case "rabbitmq": {
      const missing = ["epmd"].filter((bin) => !findExecutable(bin));
      try {
        Deno.statSync(RABBITMQ_SERVER);
      } catch {
        missing.unshift("rabbitmq-server");
      }
      if (missing.length === 0 && !rabbitMqttPlugin()) missing.push("the rabbitmq_mqtt plugin");
      return missing.length === 0
        ? undefined
        : `${missing.join(", ")} not installed (apt-get install rabbitmq-server)`;
    }
  }
}

/**
 * Starts `name` on free loopback ports.
 *
 * @example
 * ```ts ignore
 * await using broker = await startBroker("nats");
 * console.log(broker.url, broker.version);
 * ```
 */
export function startBroker(name: BrokerName): Promise<InteropBroker> {
  switch (name) {
    case "mosquitto":
      return startMosquittoBroker();
    case "nats":
      return startNats();
    case "rabbitmq":
      return startRabbitMq();
    case "embedded":
      return startEmbedded();
  }
}

async function output(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

async function readOr(file: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch {
    return "";
  }
}

/** A child process with a bounded, escalating stop: SIGTERM, then SIGKILL after `graceMs`. */
class Child {
  readonly process: Deno.ChildProcess;
  readonly status: Promise<Deno.CommandStatus>;
  #exited = false;

  constructor(cmd: string, args: string[], env: Record<string, string>, logFile: string) {
    this.process = new Deno.Command(cmd, {
      args,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Both streams go to the log file, so nothing is lost if it dies early.
    const file = Deno.openSync(logFile, { append: true, create: true });
    const sink = () =>
      new WritableStream<Uint8Array>({
        write: async (chunk) => {
          let off = 0;
          while (off < chunk.length) off += await file.write(chunk.subarray(off));
        },
      });
    const piped = Promise.all([
      this.process.stdout.pipeTo(sink()),
      this.process.stderr.pipeTo(sink()),
    ]).finally(() => file.close());
    this.status = this.process.status.then(async (status) => {
      this.#exited = true;
      await piped.catch(() => {});
      return status;
    });
  }

  get exited(): boolean {
    return this.#exited;
  }

  async stop(graceMs = 10_000): Promise<void> {
    if (this.#exited) {
      await this.status;
      return;
    }
    await signalAndWait(this.process, this.status, "SIGTERM", graceMs);
  }
}

/** Waits for `port`, failing early (with the log) when `child` exits first. */
async function waitUntilListening(
  what: string,
  port: number,
  child: Child,
  logFile: string,
  timeoutMs: number,
): Promise<void> {
  try {
    await waitForPort(port, {
      timeoutMs,
      intervalMs: 50,
      check: () => {
        if (child.exited) throw new Error(`${what} exited while starting`);
      },
    });
  } catch (err) {
    const log = await readOr(logFile);
    throw new Error(`${what} did not start: ${(err as Error).message}\n--- ${logFile} ---\n${log}`);
  }
}

/** This package's own broker (`broker.ts`), in this process. */
async function startEmbedded(): Promise<InteropBroker> {
  const started = performance.now();
  const lines: string[] = [];
  const broker = new Broker({ log: (line) => lines.push(line) });
  const { port } = await broker.listen({ port: 0 });
  const stop = () => broker.close();
  return {
    name: "embedded",
    url: `mqtt://127.0.0.1:${port}`,
    version: "embedded broker of this package (broker.ts)",
    startupMs: performance.now() - started,
    log: () => Promise.resolve(lines.join("\n")),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

async function startMosquittoBroker(): Promise<InteropBroker> {
  const started = performance.now();
  const broker = await startMosquitto();
  const startupMs = performance.now() - started;
  const version = (await output(findExecutable("mosquitto")!, ["-h"])).split("\n")[0].trim();
  return {
    name: "mosquitto",
    url: broker.url,
    version,
    startupMs,
    log: () => broker.log(),
    stop: () => broker.stop(),
    [Symbol.asyncDispose]: () => broker.stop(),
  };
}

/**
 * NATS Server with JetStream (which its MQTT support needs) and an MQTT listener. The NATS client
 * port is bound too (NATS always listens for its own protocol), on another free port.
 */
async function startNats(): Promise<InteropBroker> {
  const bin = findExecutable("nats-server");
  if (!bin) throw new Error(unavailable("nats"));
  const dir = await Deno.makeTempDir({ prefix: "nats-interop-" });
  const [mqttPort, clientPort] = freePorts(2);
  const logFile = `${dir}/nats.log`;
  const config = [
    "# Generated by tests/interop/brokers.ts",
    `server_name: interop_${mqttPort}`,
    `listen: 127.0.0.1:${clientPort}`,
    `jetstream { store_dir: "${dir}/jetstream" }`,
    `mqtt { host: 127.0.0.1, port: ${mqttPort} }`,
    // Env NATS_TRACE=1 logs every MQTT packet, for finding out what a broker did.
    ...(Deno.env.get("NATS_TRACE") ? ["debug: true", "trace: true"] : []),
    "",
  ].join("\n");
  await Deno.writeTextFile(`${dir}/nats.conf`, config);
  const version = (await output(bin, ["--version"])).trim();
  const started = performance.now();
  const child = new Child(bin, ["-c", `${dir}/nats.conf`], {}, logFile);
  const stop = async () => {
    await child.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await waitUntilListening("nats-server", mqttPort, child, logFile, 20_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    name: "nats",
    url: `mqtt://127.0.0.1:${mqttPort}`,
    version,
    startupMs: performance.now() - started,
    log: () => readOr(logFile),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * RabbitMQ with only the MQTT plugin, no AMQP listener, anonymous MQTT logins (as `guest`, which
 * may then log in from anywhere). It runs as the current user with `HOME` in its temp directory
 * (where Erlang writes a fresh cookie) and its own epmd on a free port, so neither the system's
 * RabbitMQ service nor its cookie is involved. `RUNNING_UNDER_SYSTEMD` makes the start script
 * `exec` the Erlang VM, so SIGTERM reaches the VM itself and stops the node gracefully.
 */
async function startRabbitMq(): Promise<InteropBroker> {
  const why = unavailable("rabbitmq");
  if (why) throw new Error(why);
  const dir = await Deno.makeTempDir({ prefix: "rabbitmq-interop-" });
  const [mqttPort, epmdPort, distPort] = freePorts(3);
  const logFile = `${dir}/rabbitmq.log`;
  await Deno.mkdir(`${dir}/home`);
  await Deno.writeTextFile(
    `${dir}/rabbitmq.conf`,
    [
      "# Generated by tests/interop/brokers.ts",
      "listeners.tcp = none",
      `mqtt.listeners.tcp.default = 127.0.0.1:${mqttPort}`,
      "mqtt.allow_anonymous = true",
      "loopback_users = none",
      "log.console = true",
      "log.console.level = info",
      "log.file = false",
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(`${dir}/enabled_plugins`, "[rabbitmq_mqtt].\n");
  const epmd = new Child(
    findExecutable("epmd")!,
    ["-port", String(epmdPort)],
    {},
    `${dir}/epmd.log`,
  );
  const env = {
    HOME: `${dir}/home`,
    ERL_EPMD_PORT: String(epmdPort),
    RABBITMQ_NODENAME: `interop${mqttPort}@localhost`,
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: `${dir}/mnesia`,
    RABBITMQ_LOG_BASE: `${dir}/log`,
    RABBITMQ_CONFIG_FILE: `${dir}/rabbitmq.conf`,
    RABBITMQ_ENABLED_PLUGINS_FILE: `${dir}/enabled_plugins`,
    RABBITMQ_PID_FILE: `${dir}/rabbitmq.pid`,
    RUNNING_UNDER_SYSTEMD: "true",
  };
  const started = performance.now();
  let server: Child | undefined;
  const stop = async () => {
    await server?.stop();
    await epmd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await waitForPort(epmdPort, { timeoutMs: 5_000 });
    server = new Child(RABBITMQ_SERVER, [], env, logFile);
    await waitUntilListening("rabbitmq-server", mqttPort, server, logFile, 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  const startupMs = performance.now() - started;
  const log = await readOr(logFile);
  const plugin = rabbitMqttPlugin()!.split("/").pop();
  const version = /Starting RabbitMQ (\S+)/.exec(log)?.[1];
  return {
    name: "rabbitmq",
    url: `mqtt://127.0.0.1:${mqttPort}`,
    version: `RabbitMQ ${version ?? "(version not in its log)"}, ${plugin}`,
    startupMs,
    log: () => readOr(logFile),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
