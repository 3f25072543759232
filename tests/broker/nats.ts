/**
 * Starts a real NATS Server cluster for failover tests: `size` nodes on free loopback ports, each
 * with its `server_name`, a `cluster { routes }` block naming every node, JetStream with its own
 * store directory, an MQTT listener, and the MQTT session streams and consumers replicated on
 * every node (`mqtt { stream_replicas, consumer_replicas }`). Nodes can be killed (SIGKILL) and
 * restarted with the same ports and store, as a crashed cluster member would be.
 *
 * Install NATS with `apt-get install nats-server` (Debian 12 ships 2.9.10).
 *
 * @module
 */
import { findExecutable } from "./mosquitto.ts";
import { freePorts, waitForPort } from "./ports.ts";

/** Options of {@linkcode startNatsCluster}. */
export interface NatsClusterOptions {
  /** Number of nodes. Default 3. */
  size?: number;
  /**
   * Replicas of the MQTT streams (sessions, messages, retained) and of the MQTT consumers.
   * Default: `size` (at most 3, NATS's limit for MQTT).
   */
  replicas?: number;
  /**
   * How long an MQTT consumer waits for the PUBACK of a message it delivered before sending it
   * again (`mqtt { ack_wait }`), in NATS duration syntax. Default `"5s"` (NATS's own is `30s`):
   * the messages a killed node had delivered unacknowledged (up to `max_ack_pending`, 1024)
   * hold up the subscriber's consumer until then, wherever the subscriber reconnects.
   */
  ackWait?: string;
  /** How long to wait for the cluster to be healthy, in milliseconds. Default 20000. */
  startTimeoutMs?: number;
}

/** One node of a {@linkcode NatsCluster}. */
export interface NatsNode {
  /** Its `server_name`: `n1`, `n2`, ... */
  readonly name: string;
  /** Its MQTT port on 127.0.0.1. */
  readonly mqttPort: number;
  /** `mqtt://127.0.0.1:<mqttPort>`. */
  readonly url: string;
  /** Its monitoring (HTTP) port, for `/healthz` and `/jsz`. */
  readonly httpPort: number;
  /** Its log file (`log_file`). */
  readonly logFile: string;
  /** Whether the process is alive. */
  readonly running: boolean;
  /** Its log so far. */
  log(): Promise<string>;
  /** Sends `signal` (default SIGTERM) and waits until the process has exited. */
  kill(signal?: Deno.Signal): Promise<void>;
  /** Starts it again (same config, ports and store) and waits until it is healthy. */
  restart(): Promise<void>;
  /**
   * Resolves once `/healthz` answers 200: the node has a JetStream meta leader and its streams
   * and consumers are current. Rejects after `timeoutMs` with the last answer.
   */
  healthy(timeoutMs?: number): Promise<void>;
}

/** A running NATS cluster, from {@linkcode startNatsCluster}. */
export interface NatsCluster {
  /** The nodes, in order. */
  readonly nodes: readonly NatsNode[];
  /** Every node's MQTT URL, in node order. */
  readonly urls: readonly string[];
  /** The temp directory with configs, logs and stores. */
  readonly dir: string;
  /** `nats-server --version`. */
  readonly version: string;
  /** Milliseconds from spawning the nodes to the whole cluster being healthy. */
  readonly startupMs: number;
  /** The node whose MQTT URL (or port) this is; `undefined` for none. */
  nodeOf(url: string): NatsNode | undefined;
  /** Stops every node (SIGTERM, SIGKILL after 5 s) and removes `dir` (kept if `NATS_KEEP`). */
  stop(): Promise<void>;
  /** Same as {@linkcode NatsCluster.stop}. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Whether `nats-server` is installed. Env `NATS_DISABLE=1` makes it say no.
 *
 * @example
 * ```ts
 * if (!natsAvailable()) console.log("no NATS cluster tests");
 * ```
 */
export function natsAvailable(): boolean {
  const disabled = Deno.env.get("NATS_DISABLE");
  if (disabled !== undefined && disabled !== "" && disabled !== "0") return false;
  return findExecutable("nats-server") !== undefined;
}

function inCi(): boolean {
  const ci = Deno.env.get("CI");
  return ci !== undefined && ci !== "" && ci !== "0" && ci !== "false";
}

/**
 * `Deno.test` for tests that need `nats-server`: ignored with a warning when it is missing
 * locally, failing when it is missing and env `CI` is set (as `brokerTest` does for Mosquitto).
 *
 * @example
 * ```ts
 * natsTest("fails over", async () => {
 *   await using cluster = await startNatsCluster();
 * });
 * ```
 */
export function natsTest(name: string, fn: (t: Deno.TestContext) => void | Promise<void>): void {
  const ignore = !natsAvailable() && !inCi();
  if (ignore) {
    console.warn(
      `nats-server is not installed: "${name}" is ignored (apt-get install nats-server)`,
    );
  }
  Deno.test({
    name,
    ignore,
    fn: (t) => {
      if (!natsAvailable()) {
        throw new Error("nats-server is not installed and CI is set: NATS tests must not skip");
      }
      return fn(t);
    },
  });
}

interface NodePorts {
  mqtt: number;
  client: number;
  cluster: number;
  http: number;
}

function renderConfig(
  name: string,
  dir: string,
  own: NodePorts,
  all: readonly NodePorts[],
  replicas: number,
  ackWait: string,
): string {
  return [
    "# Generated by tests/broker/nats.ts",
    `server_name: ${name}`,
    `listen: 127.0.0.1:${own.client}`,
    `http: 127.0.0.1:${own.http}`,
    `log_file: "${dir}/${name}.log"`,
    `jetstream { store_dir: "${dir}/${name}-store" }`,
    "cluster {",
    "  name: failover",
    `  listen: 127.0.0.1:${own.cluster}`,
    `  routes: [${all.map((p) => `nats-route://127.0.0.1:${p.cluster}`).join(", ")}]`,
    "}",
    // Sessions (and their consumers) on every node, so any node can resume any session.
    "mqtt {",
    "  host: 127.0.0.1",
    `  port: ${own.mqtt}`,
    `  stream_replicas: ${replicas}`,
    `  consumer_replicas: ${replicas}`,
    `  ack_wait: "${ackWait}"`,
    "}",
    ...(Deno.env.get("NATS_TRACE") ? ["debug: true", "trace: true"] : []),
    "",
  ].join("\n");
}

async function readOr(file: string, fallback = ""): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch {
    return fallback;
  }
}

/**
 * A `/healthz` complaint a restarted node of NATS 2.9.10 can keep making (seen for the whole
 * 20 s waited, in 3 of 3 runs): every node has its own consumer of the retained-messages stream
 * (`$MQTT_rmsgs_<server>`), and while no retained message is published the restarted node's
 * copy of another node's idle consumer stays "not current" (`/jsz` shows followers of such
 * consumers with `current: false, lag: 1` even on nodes never restarted). It holds nothing else
 * up, so it counts as healthy here.
 */
const IDLE_RETAINED_CONSUMER =
  /JetStream consumer '\$G \\u003e \$MQTT_rmsgs \\u003e \$MQTT_rmsgs_\w+' is not current/;

class Node implements NatsNode {
  readonly name: string;
  readonly mqttPort: number;
  readonly url: string;
  readonly httpPort: number;
  readonly logFile: string;
  readonly #bin: string;
  readonly #configFile: string;
  #child?: Deno.ChildProcess;
  #status?: Promise<Deno.CommandStatus>;
  #stderr?: Promise<string>;
  #exited = true;

  constructor(bin: string, name: string, dir: string, ports: NodePorts) {
    this.#bin = bin;
    this.name = name;
    this.mqttPort = ports.mqtt;
    this.url = `mqtt://127.0.0.1:${ports.mqtt}`;
    this.httpPort = ports.http;
    this.logFile = `${dir}/${name}.log`;
    this.#configFile = `${dir}/${name}.conf`;
  }

  get configFile(): string {
    return this.#configFile;
  }

  get running(): boolean {
    return !this.#exited;
  }

  log(): Promise<string> {
    return readOr(this.logFile);
  }

  spawn(): void {
    const child = new Deno.Command(this.#bin, {
      args: ["-c", this.#configFile],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#exited = false;
    this.#stderr = new Response(child.stderr).text();
    this.#status = child.status.then((status) => {
      if (this.#child === child) this.#exited = true;
      return status;
    });
  }

  async #failure(what: string): Promise<Error> {
    const stderr = this.#exited ? await this.#stderr : "";
    return new Error(
      `nats-server ${this.name} ${what}\n--- stderr ---\n${stderr}\n` +
        `--- ${this.logFile} (end) ---\n${(await this.log()).slice(-4000)}`,
    );
  }

  async healthy(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await waitForPort(this.mqttPort, {
      timeoutMs,
      intervalMs: 25,
      check: async () => {
        if (this.#exited) throw await this.#failure("exited while starting");
      },
    }).catch(async (err) => {
      throw err instanceof Error && err.message.startsWith("nats-server")
        ? err
        : await this.#failure(`did not listen: ${String(err)}`);
    });
    let last = "";
    while (true) {
      if (this.#exited) throw await this.#failure("exited while starting");
      try {
        const response = await fetch(`http://127.0.0.1:${this.httpPort}/healthz`);
        const body = await response.text();
        last = `${response.status} ${body}`;
        if (response.status === 200 || IDLE_RETAINED_CONSUMER.test(body)) return;
      } catch (err) {
        last = String(err);
      }
      if (Date.now() > deadline) {
        throw await this.#failure(`not healthy within ${timeoutMs} ms: /healthz said ${last}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async kill(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    const child = this.#child;
    if (!child || this.#exited) return;
    child.kill(signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), 5000);
    });
    const result = await Promise.race([this.#status!, late]);
    clearTimeout(timer);
    if (result === "late") child.kill("SIGKILL");
    await this.#status;
    await this.#stderr;
    this.#exited = true;
  }

  async restart(): Promise<void> {
    await this.kill("SIGTERM");
    this.spawn();
    await this.healthy();
  }
}

/**
 * Starts a NATS cluster on free 127.0.0.1 ports in a fresh temp directory and resolves once
 * every node is healthy (`/healthz` 200: routes up, JetStream meta leader elected). Rejects with
 * the failing node's stderr and log when one exits or stays unhealthy.
 *
 * @example
 * ```ts
 * await using cluster = await startNatsCluster();
 * const client = await connect([...cluster.urls], { clean: false });
 * await cluster.nodeOf(client.url)!.kill("SIGKILL");
 * ```
 */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const bin = findExecutable("nats-server");
  if (!bin) throw new Error("nats-server is not installed (apt-get install nats-server)");
  const size = options.size ?? 3;
  const replicas = options.replicas ?? Math.min(size, 3);
  const dir = await Deno.makeTempDir({ prefix: "nats-cluster-" });
  const free = freePorts(4 * size);
  const ports = Array.from({ length: size }, (_, i) => ({
    mqtt: free[4 * i],
    client: free[4 * i + 1],
    cluster: free[4 * i + 2],
    http: free[4 * i + 3],
  }));
  const nodes = ports.map((p, i) => new Node(bin, `n${i + 1}`, dir, p));
  const version = new TextDecoder().decode(
    (await new Deno.Command(bin, { args: ["--version"], stdout: "piped" }).output()).stdout,
  ).trim();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(nodes.map((n) => n.kill("SIGTERM")));
    if (Deno.env.get("NATS_KEEP")) {
      console.warn(`NATS_KEEP: kept ${dir}`);
      return;
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const started = performance.now();
  try {
    for (const [i, node] of nodes.entries()) {
      await Deno.writeTextFile(
        node.configFile,
        renderConfig(node.name, dir, ports[i], ports, replicas, options.ackWait ?? "5s"),
      );
    }
    for (const node of nodes) node.spawn();
    await Promise.all(nodes.map((n) => n.healthy(options.startTimeoutMs ?? 20_000)));
  } catch (err) {
    await stop();
    throw err;
  }
  const startupMs = performance.now() - started;
  return {
    nodes,
    urls: nodes.map((n) => n.url),
    dir,
    version,
    startupMs,
    nodeOf: (url) => nodes.find((n) => n.url === url || url.endsWith(`:${n.mqttPort}`)),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
