/**
 * Memory: resident memory and heap per idle connection, and heap per
 * in-flight message, ours against MQTT.js.
 *
 * Run: deno run -A bench/memory.ts [--connections 1000] [--inflight 10000] [--only ours]
 * or: deno run -A bench/memory.ts --paused 4000000
 *
 * Each measurement runs in a fresh child process (`--v8-flags=--expose-gc`)
 * so one client's garbage never shows in the other's figures.
 *
 * - Idle connections: one warm-up connection loads the client's modules, then
 *   after a GC the baseline is taken; `--connections` clients connect to a
 *   fresh Mosquitto (50 at a time), sit idle for a second, a GC runs, and the
 *   growth of RSS, of the V8 heap and of external memory (ArrayBuffers outside
 *   the heap, such as pending read buffers) is divided by the connection count. The
 *   open file limit (`ulimit -n`) must allow the connections on both sides:
 *   Mosquitto inherits ours, and its `max_connections` is -1 (no limit).
 * - In-flight messages: a scripted broker on loopback answers CONNECT with
 *   CONNACK and then never acknowledges, so `--inflight` QoS 1 publishes of
 *   64 B (one shared payload: the client's own cost, not the caller's bytes)
 *   stay in flight (`maxInflight` 65535). Once all are on the wire and a GC
 *   has run, heap growth / count is the cost of one in-flight message.
 *
 * - Pausing consumer (ours only, with `--paused <count>`, e.g. 4000000): a
 *   publisher sends `count` QoS 0 messages of 16 B through Mosquitto, paced so
 *   that at most 20,000 are on their way, to a subscription with `bufferSize`
 *   8 whose consumer yields to the event loop every 64 messages, so the read
 *   loop pauses for it over and over. The heap after a GC is printed every
 *   500,000 messages: it must stay flat (a per-pause leak shows as steady growth).
 *
 * @module
 */
import { connect } from "../mod.ts";
import { connectClient, type Impl, IMPL_NAMES, IMPLS } from "./_clients.ts";
import { arg, fmt, startMosquitto } from "./_mosquitto.ts";

const gc = (globalThis as { gc?: () => void }).gc;

function collect(): void {
  if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");
  for (let i = 0; i < 3; i++) gc();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Bytes per idle connection: RSS and heap growth divided by the count. */
async function idleConnections(impl: Impl, count: number) {
  const limit = openFileLimit();
  if (limit !== undefined && limit < count + 64) {
    throw new Error(`ulimit -n is ${limit}; ${count} connections need at least ${count + 64}`);
  }
  await using broker = await startMosquitto({ extraConfig: ["max_connections -1"] });
  const warm = await connectClient(impl, broker.url, { clientId: `warm-${impl}`, keepAlive: 600 });
  await sleep(100);
  collect();
  const before = Deno.memoryUsage();
  const clients = [];
  for (let i = 0; i < count; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 50); j++) {
      batch.push(
        connectClient(impl, broker.url, { clientId: `idle-${impl}-${j}`, keepAlive: 600 }),
      );
    }
    clients.push(...await Promise.all(batch));
  }
  await sleep(1000);
  collect();
  const after = Deno.memoryUsage();
  for (let i = 0; i < clients.length; i += 50) {
    await Promise.all(clients.slice(i, i + 50).map((c) => c.close()));
  }
  await warm.close();
  return {
    rss: (after.rss - before.rss) / count,
    heap: (after.heapUsed - before.heapUsed) / count,
    heapTotal: (after.heapTotal - before.heapTotal) / count,
    external: (after.external - before.external) / count,
  };
}

/** Bytes of heap per unacknowledged QoS 1 publish. */
async function inflightMessages(impl: Impl, count: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  let bytes = 0;
  const conns: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      (async () => {
        const buf = new Uint8Array(64 * 1024);
        let answered = false;
        try {
          while (true) {
            const n = await conn.read(buf);
            if (n === null) break;
            bytes += n;
            if (!answered) {
              answered = true;
              // CONNACK, session present 0, return code 0; then silence: nothing is acknowledged.
              await conn.write(new Uint8Array([0x20, 0x02, 0x00, 0x00]));
            }
          }
        } catch {
          // the client went away
        }
      })();
    }
  })();

  const client = await connectClient(impl, `mqtt://127.0.0.1:${port}`, {
    clientId: `inflight-${impl}`,
    maxInflight: 65535,
    keepAlive: 600,
  });
  const payload = new Uint8Array(64).fill(0x61);
  // Warm the publish path, then take the baseline.
  await sleep(100);
  collect();
  const before = Deno.memoryUsage();
  const start = bytes;
  const noop = () => {};
  for (let i = 0; i < count; i++) client.publish("mem/x", payload, 1, noop);
  // 2 B fixed header + 2 + 5 topic + 2 packet id + 64 payload per PUBLISH.
  const expected = start + count * (2 + 2 + 5 + 2 + 64);
  const deadline = performance.now() + 30_000;
  while (bytes < expected && performance.now() < deadline) await sleep(10);
  if (bytes < expected) {
    throw new Error(`only ${bytes - start} of ${expected - start} bytes written`);
  }
  collect();
  const after = Deno.memoryUsage();
  for (const conn of conns) {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
  listener.close();
  await serving.catch(() => {});
  await Promise.race([client.close().catch(() => {}), sleep(1000)]);
  return { heap: (after.heapUsed - before.heapUsed) / count };
}

/** Heap (after a GC) every 500,000 QoS 0 messages taken by a consumer that makes the client pause. */
async function pausingConsumer(count: number) {
  await using broker = await startMosquitto();
  const sub = await connect(broker.url, { clientId: "paused-sub", keepAlive: 600 });
  const pub = await connect(broker.url, { clientId: "paused-pub", keepAlive: 600 });
  const subscription = await sub.subscribe("mem/paused", { bufferSize: 8 });
  const payload = new Uint8Array(16).fill(0x61);
  let received = 0;
  let pauses = 0;
  const samples: { messages: number; heapMiB: number; pauses: number }[] = [];
  const sample = () => {
    collect();
    samples.push({ messages: received, heapMiB: Deno.memoryUsage().heapUsed / 2 ** 20, pauses });
  };
  const consuming = (async () => {
    for await (const _ of subscription) {
      received++;
      // Yield to the event loop now and then, so the buffer fills and the read loop pauses.
      if (received % 64 === 0) {
        pauses++;
        await sleep(0);
      }
      if (received % 500_000 === 0) sample();
      if (received === count) break;
    }
  })();
  await sleep(100);
  sample();
  for (let sent = 0; sent < count;) {
    // Pace the publisher: Mosquitto queues QoS 0 for a slow subscriber without bound here.
    while (sent - received > 20_000) await sleep(1);
    const n = Math.min(1000, count - sent);
    const batch = [];
    for (let i = 0; i < n; i++) batch.push(pub.publish("mem/paused", payload));
    await Promise.all(batch);
    sent += n;
  }
  await consuming;
  await pub.close();
  await sub.close();
  return { samples };
}

function openFileLimit(): number | undefined {
  try {
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const line = limits.split("\n").find((l) => l.startsWith("Max open files"));
    return line ? Number(line.split(/\s+/)[3]) : undefined;
  } catch {
    return undefined;
  }
}

async function child(impl: Impl, what: string, count: number): Promise<void> {
  const result = what === "idle"
    ? await idleConnections(impl, count)
    : what === "paused"
    ? await pausingConsumer(count)
    : await inflightMessages(impl, count);
  console.log(JSON.stringify(result));
  // MQTT.js may leave a socket or timer behind after close; the figures are taken.
  Deno.exit(0);
}

async function runChild(impl: Impl, what: string, count: number) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      import.meta.filename!,
      "--child",
      impl,
      "--what",
      what,
      "--count",
      String(count),
    ],
    stdin: "null",
  }).output();
  const out = new TextDecoder().decode(stdout).trim();
  if (code !== 0) {
    throw new Error(
      `${IMPL_NAMES[impl]} ${what}: exit ${code}\n${new TextDecoder().decode(stderr)}`,
    );
  }
  return JSON.parse(out.slice(out.lastIndexOf("\n") + 1));
}

async function main(): Promise<number> {
  const childImpl = arg("child") as Impl | undefined;
  if (childImpl !== undefined) {
    await child(childImpl, arg("what")!, Number(arg("count")));
    return 0;
  }
  const connections = Number(arg("connections") ?? 1000);
  const inflight = Number(arg("inflight") ?? 10_000);
  const paused = arg("paused");
  if (paused !== undefined) {
    const { samples } = await runChild("ours", "paused", Number(paused));
    console.log(
      `Memory: ${paused} QoS 0 messages via Mosquitto to a consumer that pauses the reading`,
    );
    console.log("messages  heap (MiB)  consumer yields");
    for (const s of samples as { messages: number; heapMiB: number; pauses: number }[]) {
      console.log(
        `${String(s.messages).padStart(8)}  ${s.heapMiB.toFixed(1).padStart(10)}  ` +
          String(s.pauses).padStart(15),
      );
    }
    return 0;
  }
  const only = arg("only") as Impl | undefined;
  const impls = only === undefined ? [...IMPLS] : [only];
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  const rows = [[
    "client",
    "RSS/idle conn",
    "heap/idle conn",
    "external/idle conn",
    "heap/in-flight msg",
  ]];
  let failed = false;
  for (const impl of impls) {
    try {
      const idle = await runChild(impl, "idle", connections);
      const flight = await runChild(impl, "inflight", inflight);
      rows.push([
        IMPL_NAMES[impl],
        kib(idle.rss),
        kib(idle.heap),
        kib(idle.external),
        `${fmt(flight.heap)} B`,
      ]);
    } catch (err) {
      failed = true;
      console.error(err instanceof Error ? err.message : err);
    }
  }
  console.log(
    `Memory: ${connections} idle connections via Mosquitto; ${inflight} unacknowledged QoS 1 ` +
      `publishes of 64 B`,
  );
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padStart(widths[c])).join("  "));
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
