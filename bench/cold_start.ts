/**
 * Cold start: process start to first PUBACK, what a serverless function pays.
 *
 * Run: deno run -A bench/cold_start.ts [--runs 15] [--only ours]
 *
 * Spawns `deno run -A bench/_cold_start_<client>.ts <url>` `--runs` times
 * per client against one local Mosquitto. The child connects, publishes one
 * QoS 1 message and prints "puback" when it is acknowledged; the time from
 * spawning the process to reading that line is one sample (the child's
 * `close()` and exit are not counted). One unmeasured run first fills Deno's
 * module cache, as a deployed function would have it. Prints the median and
 * the fastest run per client, and the machine's load average before and
 * after. The child imports `mod.ts`, as a user does.
 *
 * @module
 */
import { type Impl, IMPL_NAMES } from "./_clients.ts";
import { arg, median, startMosquitto } from "./_mosquitto.ts";

type Contender = Exclude<Impl, "raw">;

const CHILD: Record<Contender, string> = {
  ours: new URL("./_cold_start_ours.ts", import.meta.url).pathname,
  mqttjs: new URL("./_cold_start_mqttjs.ts", import.meta.url).pathname,
};

/**
 * Milliseconds from spawning the child to its "puback" line.
 *
 * @example
 * ```ts ignore
 * const ms = await coldStart("ours", "mqtt://127.0.0.1:1883");
 * ```
 */
export async function coldStart(impl: Contender, url: string): Promise<number> {
  const start = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD[impl], url],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let elapsed = NaN;
  let out = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    out += decoder.decode(chunk, { stream: true });
    if (Number.isNaN(elapsed) && out.includes("puback\n")) elapsed = performance.now() - start;
  }
  const status = await child.status;
  if (!status.success || Number.isNaN(elapsed)) {
    throw new Error(`${IMPL_NAMES[impl]} child failed (exit ${status.code}): ${await stderr}`);
  }
  await stderr;
  return elapsed;
}

async function main(): Promise<number> {
  const runs = Number(arg("runs") ?? 15);
  const only = arg("only") as Contender | undefined;
  const impls: Contender[] = only === undefined ? ["ours", "mqttjs"] : [only];
  await using broker = await startMosquitto();
  // The machine is shared: its load says how far the medians can be trusted.
  const loadBefore = Deno.loadavg();
  const samples = new Map<Contender, number[]>(impls.map((i) => [i, []]));
  for (const impl of impls) await coldStart(impl, broker.url); // fill the module cache
  for (let r = 0; r < runs; r++) {
    for (const impl of impls) samples.get(impl)!.push(await coldStart(impl, broker.url));
  }
  const load = (avg: number[]) => avg.map((n) => n.toFixed(2)).join(" ");
  console.log(`Cold start, process spawn to first PUBACK (QoS 1), ${runs} runs, milliseconds`);
  console.log(
    `load average (1, 5, 15 min): ${load(loadBefore)} before, ${load(Deno.loadavg())} after`,
  );
  const rows = [["client", "median", "fastest"]];
  for (const impl of impls) {
    const list = samples.get(impl)!;
    rows.push([IMPL_NAMES[impl], median(list).toFixed(1), Math.min(...list).toFixed(1)]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padStart(widths[c])).join("  "));
  return 0;
}

if (import.meta.main) Deno.exit(await main());
