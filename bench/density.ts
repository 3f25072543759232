/**
 * Connection density (issue 18): idle connections to one Mosquitto from one
 * Deno process, ours or MQTT.js: resident memory and heap per connection,
 * connection setup rate, and the CPU the keep-alive traffic of all of them
 * costs.
 *
 * Run: deno task bench:density [--connections 10000] [--keepalive 10] [--window 30] [--only ours]
 *
 * Each client runs in a child started through `sh -c "ulimit -n …"`, so the
 * open-file limit fits the connections (Mosquitto, started by the child,
 * inherits it; its `max_connections` is -1). The child connects `--connections`
 * clients, 100 at a time (setup rate = connections / time to connect them
 * all), waits a second, forces a GC and takes RSS and heap against a
 * baseline taken after one warm-up connection. Then it sits idle for
 * `--window` seconds with every client's keep-alive at `--keepalive` seconds
 * (PINGREQ every keep-alive period) and reads its own CPU time from /proc:
 * the keep-alive cost, also scaled to a 60 s keep-alive. The scaled figure
 * leaves out what does not follow the ping rate (a timer that fires for
 * nothing, GC of a larger heap): measure a 60 s keep-alive itself with
 * `--keepalive 60 --window 120` (main before issue 18's density work: 1.7 %
 * scaled, 3.3 % measured).
 *
 * @module
 */
import { connectClient, type Impl, IMPL_NAMES, IMPLS } from "./_clients.ts";
import { arg, fmt, startMosquitto } from "./_mosquitto.ts";

const gc = (globalThis as { gc?: () => void }).gc;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function collect(): void {
  if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");
  for (let i = 0; i < 3; i++) gc();
}

function cpuMillis(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

interface Result {
  rssKiB: number;
  heapKiB: number;
  setupPerSecond: number;
  keepAliveCpuPercent: number;
}

async function child(impl: Impl, count: number, keepAlive: number, window: number) {
  await using broker = await startMosquitto({ extraConfig: ["max_connections -1"] });
  const warm = await connectClient(impl, broker.url, { clientId: `warm-${impl}`, keepAlive });
  await sleep(100);
  collect();
  const before = Deno.memoryUsage();
  const clients: unknown[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 100); j++) {
      batch.push(connectClient(impl, broker.url, { clientId: `idle-${impl}-${j}`, keepAlive }));
    }
    clients.push(...await Promise.all(batch));
  }
  const setup = performance.now() - start;
  await sleep(1000);
  collect();
  const after = Deno.memoryUsage();
  const cpu0 = cpuMillis();
  const t0 = performance.now();
  await sleep(window * 1000);
  const cpu = cpuMillis() - cpu0;
  const elapsed = performance.now() - t0;
  const result: Result = {
    rssKiB: (after.rss - before.rss) / count / 1024,
    heapKiB: (after.heapUsed - before.heapUsed) / count / 1024,
    setupPerSecond: count / (setup / 1000),
    keepAliveCpuPercent: (cpu / elapsed) * 100,
  };
  console.log(JSON.stringify(result));
  // Closing 10,000 clients cleanly takes long and measures nothing: the process just ends.
  Deno.exit(0);
  return [warm, clients];
}

async function runChild(impl: Impl, count: number, keepAlive: number, window: number) {
  const command = [
    `ulimit -n ${count + 1024}`,
    [
      Deno.execPath(),
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      import.meta.filename!,
      "--child",
      impl,
      "--connections",
      String(count),
      "--keepalive",
      String(keepAlive),
      "--window",
      String(window),
    ].map((a) => `'${a}'`).join(" "),
  ].join(" && exec ");
  const { code, stdout, stderr } = await new Deno.Command("sh", {
    args: ["-c", command],
    stdin: "null",
  }).output();
  const out = new TextDecoder().decode(stdout).trim();
  if (code !== 0) {
    throw new Error(`${IMPL_NAMES[impl]}: exit ${code}\n${new TextDecoder().decode(stderr)}`);
  }
  return JSON.parse(out.slice(out.lastIndexOf("\n") + 1)) as Result;
}

const count = Number(arg("connections") ?? 10_000);
const keepAlive = Number(arg("keepalive") ?? 10);
const window = Number(arg("window") ?? 30);
const childImpl = arg("child") as Impl | undefined;
if (childImpl !== undefined) {
  await child(childImpl, count, keepAlive, window);
} else {
  const only = arg("only") as Impl | undefined;
  const impls = only === undefined ? [...IMPLS] : [only];
  const rows = [[
    "client",
    "RSS/conn",
    "heap/conn",
    "setup conn/s",
    `CPU, keep-alive ${keepAlive} s`,
    "scaled to 60 s",
  ]];
  for (const impl of impls) {
    const r = await runChild(impl, count, keepAlive, window);
    rows.push([
      IMPL_NAMES[impl],
      `${r.rssKiB.toFixed(1)} KiB`,
      `${r.heapKiB.toFixed(1)} KiB`,
      fmt(r.setupPerSecond),
      `${r.keepAliveCpuPercent.toFixed(2)} %`,
      `${(r.keepAliveCpuPercent * keepAlive / 60).toFixed(2)} %`,
    ]);
  }
  const load = Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
  console.log(
    `Density: ${fmt(count)} idle connections via Mosquitto from one process; idle ${window} s; ` +
      `CPU in % of one core; load average ${load}`,
  );
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padStart(widths[c])).join("  "));
}
