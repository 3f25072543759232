/**
 * The embedded broker against Mosquitto 2.0.11 and Aedes (issue 14), with the
 * same client (ours) in front of each.
 *
 * Run:    deno run -A bench/broker_compare.ts [--runs 3] [--messages 50000] [--qos 0,1,2]
 *         [--kinds embedded,mosquitto] (default: all; the broker process's CPU ms is printed too)
 * Memory: deno run -A bench/broker_compare.ts --memory [--connections 1000]
 * Aedes under Node.js too: npm install --prefix /tmp/aedes aedes@1.2.0, then
 *   add --aedes-node-dir /tmp/aedes to either
 * Another broker already running: deno run -A bench/broker_compare.ts --only mosquitto --url mqtt://127.0.0.1:1884 --qos 1
 *   (e.g. Aedes under Node.js; `--only` then only names the run)
 * Profile the embedded broker: deno run -A bench/broker_compare.ts --profile --qos 1 --runs 1
 *   (writes its CPU profile to ./broker-prof/)
 *
 * Throughput workload: one client process with a publisher and a subscriber,
 * 50,000 messages of 64 B at QoS 0, 1 and 2, at most 1,000 publishes
 * unresolved (QoS 0: written; 1: PUBACK; 2: PUBCOMP); the rate is the message
 * count divided by the time from the SUBACK to the last message received.
 * Each broker runs in a process of its own, the client in another, and every
 * (broker, QoS, run) is a fresh pair of processes; brokers alternate within a
 * run so machine noise falls on all of them. The best of the runs is printed.
 * `embedded (in-process)` also runs the broker inside the client's process, as
 * a test suite uses it.
 *
 * Brokers: the embedded one (`broker.ts`, limits lifted so nothing is dropped
 * or throttled, as Mosquitto's `max_inflight_messages 0`,
 * `max_queued_messages 0`), Mosquitto from `/usr/sbin/mosquitto`, and Aedes 1.2
 * (the Node.js embedded broker, in-memory persistence) from the npm registry,
 * run by Deno's npm support. Every message must arrive, or the run fails.
 *
 * Memory: `--connections` idle MQTT connections (raw CONNECT, keep-alive 0)
 * are opened to each broker; the growth of the broker process's RSS (from
 * `/proc`) and, for the embedded broker and Aedes, of its V8 heap after a GC,
 * divided by the count.
 *
 * @module
 */
import { Broker as EmbeddedBroker } from "../broker.ts";
import type { QoS } from "../lib/codec/packet.ts";
import { encodePacket } from "../lib/codec/mod.ts";
import { connectClient } from "./_clients.ts";
import { arg, fmt, startMosquitto } from "./_mosquitto.ts";

type Kind = "embedded" | "inprocess" | "mosquitto" | "aedes" | "aedes-node";
/** Where `node_modules/aedes` is for Aedes under Node.js (`--aedes-node-dir`), if anywhere. */
const AEDES_NODE_DIR = arg("aedes-node-dir");
const KINDS: Kind[] = ["embedded", "mosquitto", "aedes", "inprocess"];
if (AEDES_NODE_DIR !== undefined) KINDS.splice(3, 0, "aedes-node");
// `--kinds embedded,mosquitto`: only these brokers (comparing builds needs no Aedes).
const wanted = arg("kinds")?.split(",");
if (wanted !== undefined) KINDS.splice(0, KINDS.length, ...KINDS.filter((k) => wanted.includes(k)));
const NAMES: Record<Kind, string> = {
  embedded: "embedded",
  inprocess: "embedded (in-process)",
  mosquitto: "Mosquitto 2.0.11",
  aedes: "Aedes 1.2 (Deno npm)",
  "aedes-node": "Aedes 1.2 (Node.js)",
};
const PAYLOAD_SIZE = 64;
const WINDOW = 1000;
const STALL_MS = 15_000;

/** A broker under test: where it listens, its process id, how to stop it. */
interface Running {
  port: number;
  pid: number;
  /** Asks the broker process for `Deno.memoryUsage()` after a GC (not Mosquitto). */
  memory?: () => Promise<{ heapUsed: number; external: number; rss: number }>;
  stop(): Promise<void>;
}

// ---- Serving: `--serve embedded|aedes` runs one broker until stdin closes. ----

async function serveEmbedded(): Promise<number> {
  const broker = new EmbeddedBroker({
    maxInflight: 65_535,
    maxQueuedMessages: 10_000_000,
    maxQueuedBytes: 2 ** 40,
  });
  const { port } = await broker.listen({ port: 0 });
  return port;
}

async function serveAedes(): Promise<number> {
  // The peer under comparison; npm imports are allowed in bench/ only.
  // deno-lint-ignore no-import-prefix
  const { Aedes } = await import("npm:aedes@1.2.0");
  const { createServer } = await import("node:net");
  const aedes = await Aedes.createBroker();
  const server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as { port: number }).port;
}

async function serve(kind: "embedded" | "aedes"): Promise<void> {
  const port = kind === "embedded" ? await serveEmbedded() : await serveAedes();
  const gc = (globalThis as { gc?: () => void }).gc;
  console.log(`PORT ${port}`);
  // Each line on stdin asks for memory figures; the end of stdin stops the broker.
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  for await (const chunk of lines) {
    for (let i = 0; i < chunk.split("\n").length - 1; i++) {
      for (let j = 0; j < 3; j++) gc?.();
      const { heapUsed, external, rss } = Deno.memoryUsage();
      console.log(`MEM ${JSON.stringify({ heapUsed, external, rss })}`);
    }
  }
  Deno.exit(0);
}

async function startChild(kind: "embedded" | "aedes", profile: boolean): Promise<Running> {
  const args = ["run", "-A", "--v8-flags=--expose-gc"];
  if (profile) args.push("--cpu-prof", "--cpu-prof-dir=broker-prof");
  args.push(import.meta.filename!, "--serve", kind);
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  return await attach(child, kind);
}

/** Talks to a broker child that prints `PORT <n>` and answers a line on stdin with `MEM {…}`. */
async function attach(child: Deno.ChildProcess, kind: string): Promise<Running> {
  const writer = child.stdin.getWriter();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const line = async (): Promise<string> => {
    while (!buffered.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`${kind} broker exited`);
      buffered += value;
    }
    const at = buffered.indexOf("\n");
    const out = buffered.slice(0, at);
    buffered = buffered.slice(at + 1);
    return out;
  };
  const first = await line();
  const port = Number(first.replace("PORT ", ""));
  return {
    port,
    pid: child.pid,
    async memory() {
      await writer.write(new TextEncoder().encode("mem\n"));
      return JSON.parse((await line()).replace("MEM ", ""));
    },
    async stop() {
      await writer.close();
      await child.status;
      await reader.cancel();
    },
  };
}

/** Aedes under Node.js, from `node_modules` in `dir`; prints its port and runs until stdin ends. */
const AEDES_NODE_SCRIPT = `
import { Aedes } from "aedes";
import { createServer } from "node:net";
const aedes = await Aedes.createBroker();
const server = createServer(aedes.handle);
server.listen(0, "127.0.0.1", () => console.log("PORT " + server.address().port));
process.stdin.on("data", () => {
  globalThis.gc?.();
  const { heapUsed, external, rss } = process.memoryUsage();
  console.log("MEM " + JSON.stringify({ heapUsed, external, rss }));
});
process.stdin.on("end", () => process.exit(0));
`;

async function startAedesNode(dir: string): Promise<Running> {
  const child = new Deno.Command("node", {
    args: ["--expose-gc", "--input-type=module", "-e", AEDES_NODE_SCRIPT],
    cwd: dir,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  return await attach(child, "aedes-node");
}

async function start(kind: Kind, profile = false): Promise<Running> {
  if (kind === "aedes-node") return await startAedesNode(AEDES_NODE_DIR!);
  if (kind === "mosquitto") {
    const broker = await startMosquitto();
    return { port: broker.port, pid: broker.pid, stop: () => broker.stop() };
  }
  if (kind === "inprocess") {
    const broker = new EmbeddedBroker({
      maxInflight: 65_535,
      maxQueuedMessages: 10_000_000,
      maxQueuedBytes: 2 ** 40,
    });
    const { port } = await broker.listen({ port: 0 });
    return { port, pid: Deno.pid, stop: () => broker.close() };
  }
  return await startChild(kind, profile);
}

// ---- Throughput ----

interface RunResult {
  kind: Kind;
  qos: QoS;
  rate: number;
  /** CPU time (user + system, ms) of the broker's process over the run. */
  cpu: number;
}

/** CPU milliseconds (user + system) process `pid` has spent so far, from `/proc`. */
function cpuMillisOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 1000 / 100;
}

async function runOnce(kind: Kind, qos: QoS, messages: number, profile: boolean) {
  const external = arg("url");
  const broker = external === undefined
    ? await start(kind, profile)
    : { port: 0, pid: 0, stop: () => Promise.resolve() };
  const url = external ?? `mqtt://127.0.0.1:${broker.port}`;
  let cpu = NaN;
  const tag = `${kind}-${qos}-${Deno.pid}`;
  let received = 0;
  let last = 0;
  const allIn = Promise.withResolvers<void>();
  const subscriber = await connectClient("ours", url, { clientId: `sub-${tag}` });
  const publisher = await connectClient("ours", url, {
    clientId: `pub-${tag}`,
    maxInflight: WINDOW,
  });
  await subscriber.subscribe("bench/#", qos, () => {
    if (++received === messages) {
      last = performance.now();
      allIn.resolve();
    }
  });
  const subscribed = performance.now();

  const payload = new Uint8Array(PAYLOAD_SIZE).fill(0x61);
  let outstanding = 0;
  let wake: (() => void) | undefined;
  const done = (error?: unknown) => {
    if (error !== undefined) allIn.reject(error);
    outstanding--;
    const w = wake;
    wake = undefined;
    w?.();
  };
  let seen = -1;
  const watchdog = setInterval(() => {
    if (received === seen) {
      allIn.reject(new Error(`${NAMES[kind]} QoS ${qos}: stalled at ${received}/${messages}`));
    }
    seen = received;
  }, STALL_MS);
  try {
    for (let i = 0; i < messages; i++) {
      while (outstanding >= WINDOW) await new Promise<void>((r) => wake = r);
      outstanding++;
      publisher.publish(`bench/${tag}`, payload, qos, done);
    }
    await allIn.promise;
  } finally {
    clearInterval(watchdog);
    if (broker.pid !== 0) cpu = cpuMillisOf(broker.pid);
    const deadline = performance.now() + 2000;
    while (outstanding > 0 && performance.now() < deadline) {
      await new Promise<void>((r) => setTimeout(r, 5));
    }
    await Promise.allSettled([publisher.close(), subscriber.close()]);
    await broker.stop();
  }
  return { rate: messages / ((last - subscribed) / 1000), cpu };
}

async function runChild(kind: Kind, qos: QoS, messages: number): Promise<RunResult> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      import.meta.filename!,
      "--only",
      kind,
      "--qos",
      String(qos),
      "--messages",
      String(messages),
      ...(AEDES_NODE_DIR === undefined ? [] : ["--aedes-node-dir", AEDES_NODE_DIR]),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  if (code !== 0) {
    throw new Error(`${NAMES[kind]} QoS ${qos} failed:\n${new TextDecoder().decode(stderr)}`);
  }
  const [rate, cpu] = text.trim().split("\n").at(-1)!.split(" ").map(Number);
  return { kind, qos, rate, cpu };
}

// ---- Idle connections' memory ----

function rssOf(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
  return kb * 1024;
}

async function idleMemory(kind: Kind, count: number) {
  const broker = await start(kind);
  const connect = encodePacket({
    type: "connect",
    protocolName: "MQTT",
    protocolLevel: 4,
    clientId: "",
    clean: true,
    keepAlive: 0,
  });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const conns: Deno.TcpConn[] = [];
  const open = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: broker.port });
    await conn.write(connect);
    const buf = new Uint8Array(4);
    await conn.read(buf); // CONNACK
    conns.push(conn);
  };
  await open(); // warm-up: modules and first-connection costs
  await sleep(500);
  const rss0 = rssOf(broker.pid);
  const mem0 = await broker.memory?.();
  for (let i = 1; i <= count; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, count - i + 1) }, open));
  }
  await sleep(1000);
  const rss1 = rssOf(broker.pid);
  const mem1 = await broker.memory?.();
  for (const conn of conns) conn.close();
  await broker.stop();
  return {
    kind,
    rss: (rss1 - rss0) / count,
    heap: mem0 && mem1 ? (mem1.heapUsed - mem0.heapUsed) / count : NaN,
    external: mem0 && mem1 ? (mem1.external - mem0.external) / count : NaN,
  };
}

// ---- Main ----

const serveKind = arg("serve");
const only = arg("only") as Kind | undefined;
const qosList = (arg("qos") ?? "0,1,2").split(",").map(Number) as QoS[];
const messages = Number(arg("messages") ?? 50_000);
const runs = Number(arg("runs") ?? 3);

if (serveKind === "embedded" || serveKind === "aedes") {
  await serve(serveKind);
} else if (only !== undefined) {
  const { rate, cpu } = await runOnce(only, qosList[0], messages, false);
  console.log(`${rate} ${cpu}`);
} else if (Deno.args.includes("--profile")) {
  for (const qos of qosList) {
    console.log(`QoS ${qos}: ${fmt((await runOnce("embedded", qos, messages, true)).rate)} msg/s`);
  }
} else if (Deno.args.includes("--memory")) {
  const count = Number(arg("connections") ?? 1000);
  console.log(`${count} idle connections, growth per connection (bytes):`);
  console.log("broker                  RSS     V8 heap  external");
  for (const kind of KINDS.filter((k) => k !== "inprocess")) {
    const m = await idleMemory(kind, count);
    console.log(
      `${NAMES[kind].padEnd(22)} ${fmt(m.rss).padStart(7)} ${fmt(m.heap).padStart(9)} ${
        fmt(m.external).padStart(9)
      }`,
    );
  }
} else {
  const best = new Map<string, number>();
  const all = new Map<string, number[]>();
  const leastCpu = new Map<string, number>();
  for (let run = 1; run <= runs; run++) {
    for (const qos of qosList) {
      // Rotate the order each run so no broker always goes first.
      const order = KINDS.map((_, i) => KINDS[(i + run) % KINDS.length]);
      for (const kind of order) {
        const { rate, cpu } = await runChild(kind, qos, messages);
        const key = `${kind}/${qos}`;
        best.set(key, Math.max(best.get(key) ?? 0, rate));
        all.set(key, [...(all.get(key) ?? []), rate]);
        leastCpu.set(key, Math.min(leastCpu.get(key) ?? Infinity, cpu));
        console.error(
          `run ${run} QoS ${qos} ${NAMES[kind]}: ${fmt(rate)} msg/s, broker CPU ${fmt(cpu)} ms`,
        );
      }
    }
  }
  console.log(`\n${messages} × ${PAYLOAD_SIZE} B, best of ${runs}, msg/s (client: ours)`);
  console.log(
    `QoS  ${
      KINDS.map((k) => NAMES[k].padStart(22)).join("")
    }  embedded/Mosquitto  embedded/best Aedes`,
  );
  for (const qos of qosList) {
    const rate = (k: Kind) => best.get(`${k}/${qos}`)!;
    console.log(
      `${String(qos).padEnd(5)}${KINDS.map((k) => fmt(rate(k)).padStart(22)).join("")}  ${
        (rate("embedded") / rate("mosquitto")).toFixed(2).padStart(18)
      }  ${
        (rate("embedded") / Math.max(rate("aedes"), best.get(`aedes-node/${qos}`) ?? 0))
          .toFixed(2).padStart(19)
      }`,
    );
  }
  console.log("\nbroker process CPU ms (user + system), least of the runs:");
  for (const qos of qosList) {
    console.log(
      `${String(qos).padEnd(5)}${
        KINDS.map((k) => fmt(leastCpu.get(`${k}/${qos}`) ?? NaN).padStart(22)).join("")
      }`,
    );
  }
  console.log("\nall runs:");
  for (const [key, rates] of all) console.log(`  ${key}: ${rates.map(fmt).join(", ")}`);
}
