/**
 * End-to-end throughput through a local Mosquitto, ours against MQTT.js.
 *
 * Run:   deno run -A bench/e2e.ts [--runs 3] [--messages 50000] [--qos 0,1,2]
 * One:   deno run -A bench/e2e.ts --only ours --qos 1        (in this process)
 * Ceiling: deno run -A bench/e2e.ts --ceiling   (adds the calibration client of _raw_client.ts)
 * 5.0:   deno run -A bench/e2e.ts --protocol 5       (both clients at MQTT 5.0)
 * Both:  deno run -A bench/e2e.ts --only ours --protocol 4,5   (3.1.1 and 5.0 interleaved, compared)
 * Profile: deno run --cpu-prof -A bench/e2e.ts --only ours --qos 1
 *
 * Workload (issue 8): one publishing and one subscribing client, 50,000
 * messages of 64 B at QoS 0, 1 and 2; the publisher keeps up to 1,000
 * publishes outstanding (completed on write at QoS 0, PUBACK at 1, PUBCOMP at
 * 2); messages/s are measured at the subscriber from the first message to the
 * last. Every message must arrive, or the run fails (exit code 1).
 *
 * Without `--only`, every (client, QoS, run) pair runs in a fresh child
 * process against a fresh broker, clients alternating so machine noise falls
 * on both; the median of the runs is printed with the ratio ours / MQTT.js and
 * the bars: ≥ 1.5× MQTT.js and ≥ libmosquitto's 251k / 85k / 31.5k msg/s.
 * A second table holds diagnostics. msg/s from the first publish call to
 * the last message received: at QoS 0 MQTT.js calls back as soon as a packet
 * is in its socket's user-space buffer, so its publisher runs far ahead and
 * the subscriber sees one late burst, which flatters the first-to-last
 * measure. CPU time per message of the client process and of the broker (from
 * /proc): when the broker's CPU is what limits the rate, client CPU per
 * message is the figure that still tells clients apart. `--ceiling` adds a
 * near-zero-cost client (`_raw_client.ts`), the most this broker delivers here.
 *
 * @module
 */
import type { QoS } from "../lib/codec/packet.ts";
import { connectClient, type Impl, IMPL_NAMES, IMPLS } from "./_clients.ts";
import { arg, fmt, median, startMosquitto } from "./_mosquitto.ts";

/** libmosquitto's figures on this machine, msg/s, by QoS (issue 8). */
const LIBMOSQUITTO: Record<QoS, number> = { 0: 251_000, 1: 85_000, 2: 31_500 };
/** Ours must be at least this many times MQTT.js. */
const RATIO_BAR = 1.5;
const PAYLOAD_SIZE = 64;
const WINDOW = 1000;
/** A run with no message received for this long has failed. */
const STALL_MS = 15_000;

/** The outcome of one run. */
export interface RunResult {
  impl: Impl;
  /** Protocol level: 4 (MQTT 3.1.1) or 5 (MQTT 5.0). */
  protocol: 4 | 5;
  qos: QoS;
  messages: number;
  /** Messages per second at the subscriber, first to last message. */
  rate: number;
  /** Milliseconds from the first publish call to the last message received. */
  elapsed: number;
  /** CPU milliseconds (user + system) this process spent over `elapsed`. */
  clientCpu: number;
  /** CPU milliseconds the broker spent over `elapsed`. */
  brokerCpu: number;
}

/** CPU time (user + system) of a process, in ms, from `/proc` (NaN where there is none). */
function cpuMillis(pid: number | "self"): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

/**
 * Runs the workload once in this process against a fresh broker.
 *
 * @example
 * ```ts ignore
 * const { rate } = await runOnce("ours", 1, 50_000);
 * ```
 */
export async function runOnce(
  impl: Impl,
  qos: QoS,
  messages: number,
  protocol: 4 | 5 = 4,
): Promise<RunResult> {
  await using broker = await startMosquitto();
  const tag = `${impl}-${qos}-${Deno.pid}`;
  const topic = `bench/${tag}/x`;

  let received = 0;
  let first = 0;
  let last = 0;
  const allIn = Promise.withResolvers<void>();
  const subscriber = await connectClient(impl, broker.url, {
    clientId: `sub-${tag}`,
    bufferSize: WINDOW,
    protocolVersion: protocol,
  });
  await subscriber.subscribe("bench/#", qos, () => {
    const t = performance.now();
    if (received === 0) first = t;
    if (++received === messages) {
      last = t;
      allIn.resolve();
    }
  });
  const publisher = await connectClient(impl, broker.url, {
    clientId: `pub-${tag}`,
    maxInflight: WINDOW,
    protocolVersion: protocol,
  });

  const payload = new Uint8Array(PAYLOAD_SIZE).fill(0x61);
  let outstanding = 0;
  let wake: (() => void) | undefined;
  let failure: unknown;
  const done = (error?: unknown) => {
    if (error !== undefined && failure === undefined) {
      failure = error;
      allIn.reject(error);
    }
    outstanding--;
    if (wake !== undefined) {
      const w = wake;
      wake = undefined;
      w();
    }
  };

  // Stall watchdog: fail when the subscriber sees nothing new for STALL_MS.
  let seen = -1;
  const watchdog = setInterval(() => {
    if (received === seen) {
      allIn.reject(
        new Error(`${IMPL_NAMES[impl]} QoS ${qos}: stalled at ${received}/${messages} messages`),
      );
    }
    seen = received;
  }, STALL_MS);

  const start = performance.now();
  const cpu0 = cpuMillis("self");
  const brokerCpu0 = cpuMillis(broker.pid);
  let cpu1 = NaN;
  let brokerCpu1 = NaN;
  try {
    for (let i = 0; i < messages && failure === undefined; i++) {
      while (outstanding >= WINDOW) await new Promise<void>((r) => wake = r);
      outstanding++;
      publisher.publish(topic, payload, qos, done);
    }
    await allIn.promise;
    cpu1 = cpuMillis("self");
    brokerCpu1 = cpuMillis(broker.pid);
  } finally {
    clearInterval(watchdog);
    // Let the last acknowledgements complete before closing; a stalled run does not wait.
    const drainDeadline = performance.now() + 2000;
    while (outstanding > 0 && performance.now() < drainDeadline) {
      await new Promise<void>((r) => setTimeout(r, 5));
    }
    await Promise.allSettled([publisher.close(), subscriber.close()]);
  }
  if (received !== messages) {
    throw new Error(`${IMPL_NAMES[impl]} QoS ${qos}: received ${received} of ${messages}`);
  }
  return {
    impl,
    protocol,
    qos,
    messages,
    rate: messages / ((last - first) / 1000),
    elapsed: last - start,
    clientCpu: cpu1 - cpu0,
    brokerCpu: brokerCpu1 - brokerCpu0,
  };
}

async function runChild(
  impl: Impl,
  qos: QoS,
  messages: number,
  protocol: 4 | 5,
): Promise<RunResult> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      import.meta.filename!,
      "--only",
      impl,
      "--qos",
      String(qos),
      "--messages",
      String(messages),
      "--protocol",
      String(protocol),
      "--json",
    ],
    stdin: "null",
  }).output();
  const out = new TextDecoder().decode(stdout).trim();
  if (code !== 0) {
    throw new Error(
      `${IMPL_NAMES[impl]} QoS ${qos} failed (exit ${code}):\n${new TextDecoder().decode(stderr)}`,
    );
  }
  return JSON.parse(out.slice(out.lastIndexOf("\n") + 1)) as RunResult;
}

function parseQos(text: string | undefined): QoS[] {
  if (text === undefined) return [0, 1, 2];
  return text.split(",").map((q) => {
    const n = Number(q);
    if (n !== 0 && n !== 1 && n !== 2) throw new Error(`bad --qos ${q}`);
    return n;
  });
}

function parseProtocols(text: string | undefined): (4 | 5)[] {
  if (text === undefined) return [4];
  return text.split(",").map((p) => {
    const n = Number(p);
    if (n !== 4 && n !== 5) throw new Error(`bad --protocol ${p} (4 or 5)`);
    return n;
  });
}

const VERSION_NAMES = { 4: "3.1.1", 5: "5.0" } as const;

async function main(): Promise<number> {
  const messages = Number(arg("messages") ?? 50_000);
  const protocols = parseProtocols(arg("protocol"));
  const qosList = parseQos(arg("qos"));
  const only = arg("only") as Impl | undefined;
  if (only !== undefined && !IMPLS.includes(only) && only !== "raw") {
    throw new Error(`bad --only ${only}`);
  }

  if (only !== undefined && qosList.length === 1 && protocols.length === 1) {
    const result = await runOnce(only, qosList[0], messages, protocols[0]);
    if (Deno.args.includes("--json")) console.log(JSON.stringify(result));
    else {
      console.log(
        `${IMPL_NAMES[only]} ${VERSION_NAMES[result.protocol]} QoS ${result.qos}: ` +
          `${fmt(result.rate)} msg/s ` +
          `(${result.messages} messages in ${result.elapsed.toFixed(0)} ms; CPU: client ` +
          `${result.clientCpu} ms, broker ${result.brokerCpu} ms)`,
      );
    }
    return 0;
  }

  const runs = Number(arg("runs") ?? 3);
  const impls: Impl[] = only === undefined ? [...IMPLS] : [only];
  if (Deno.args.includes("--ceiling") && !impls.includes("raw")) impls.push("raw");
  const results = new Map<string, RunResult[]>();
  let failed = false;
  // Each (client, protocol) pair; with one protocol the keys are those of one client.
  const pairs = impls.flatMap((impl) => protocols.map((protocol) => ({ impl, protocol })));
  const keyOf = (impl: Impl, protocol: 4 | 5, qos: QoS) =>
    `${impl}/${qos}${protocols.length > 1 ? `@${protocol}` : ""}`;
  for (let r = 0; r < runs; r++) {
    for (const qos of qosList) {
      // Alternate which client (and protocol) goes first so drift in machine load falls on all.
      const order = r % 2 === 0 ? pairs : [...pairs].reverse();
      for (const { impl, protocol } of order) {
        try {
          const result = await runChild(impl, qos, messages, protocol);
          const key = keyOf(impl, protocol, qos);
          results.set(key, [...(results.get(key) ?? []), result]);
          console.error(
            `run ${r + 1}/${runs}  ${IMPL_NAMES[impl]} ${VERSION_NAMES[protocol]} QoS ${qos}: ` +
              `${fmt(result.rate)} msg/s, ` +
              `CPU client ${result.clientCpu} ms, broker ${result.brokerCpu} ms`,
          );
        } catch (err) {
          failed = true;
          console.error(String(err instanceof Error ? err.message : err));
        }
      }
    }
  }

  if (protocols.length > 1) {
    printVersions(results, impls, qosList, runs, messages);
    return failed ? 1 : 0;
  }
  console.log(
    `\nEnd to end via Mosquitto: ${fmt(messages)} × ${PAYLOAD_SIZE} B, window ${WINDOW}, ` +
      `median of ${runs} run(s); msg/s at the subscriber, first to last message`,
  );
  const main = [["QoS", ...impls.map((i) => IMPL_NAMES[i]), "ratio", "libmosquitto", "bars"]];
  const detail = [[
    "QoS",
    ...impls.map((i) => `${IMPL_NAMES[i]} msg/s`),
    ...impls.map((i) => `${IMPL_NAMES[i]} µs`),
    "broker µs",
  ]];
  for (const qos of qosList) {
    const med = (impl: Impl, f: (r: RunResult) => number) => {
      const list = results.get(`${impl}/${qos}`);
      return list && list.length === runs ? median(list.map(f)) : NaN;
    };
    const rate = (impl: Impl) => med(impl, (r) => r.rate);
    const ours = rate("ours");
    const ratio = ours / rate("mqttjs");
    const bars = !impls.includes("ours") || !impls.includes("mqttjs")
      ? "-"
      : ratio >= RATIO_BAR && ours >= LIBMOSQUITTO[qos]
      ? "met"
      : `MISSED (${
        [
          ratio >= RATIO_BAR ? "" : `< ${RATIO_BAR}x`,
          ours >= LIBMOSQUITTO[qos] ? "" : "< libmosquitto",
        ].filter(Boolean).join(", ")
      })`;
    main.push([
      String(qos),
      ...impls.map((i) => fmt(rate(i))),
      Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "-",
      fmt(LIBMOSQUITTO[qos]),
      bars,
    ]);
    const brokerCpu = median(
      impls.flatMap((i) => results.get(`${i}/${qos}`) ?? []).map((r) =>
        (r.brokerCpu * 1000) / r.messages
      ),
    );
    detail.push([
      String(qos),
      ...impls.map((i) => fmt(med(i, (r) => r.messages / (r.elapsed / 1000)))),
      ...impls.map((i) => med(i, (r) => (r.clientCpu * 1000) / r.messages).toFixed(1)),
      brokerCpu.toFixed(1),
    ]);
  }
  printTable(main);
  console.log(
    "\nDiagnostics: msg/s from the first publish call to the last message received; CPU µs " +
      "per message of the client process (publisher + subscriber) and of the broker",
  );
  printTable(detail);
  return failed ? 1 : 0;
}

/** MQTT 5.0 against 3.1.1 per client and QoS: best and median of the runs, and their ratios. */
function printVersions(
  results: Map<string, RunResult[]>,
  impls: Impl[],
  qosList: QoS[],
  runs: number,
  messages: number,
): void {
  console.log(
    `\nEnd to end via Mosquitto, MQTT 5.0 against 3.1.1: ${fmt(messages)} × ${PAYLOAD_SIZE} B, ` +
      `window ${WINDOW}, ${runs} interleaved run(s); msg/s at the subscriber, first to last ` +
      "message; best (median)",
  );
  const rows = [["client", "QoS", "3.1.1", "5.0", "5.0 / 3.1.1 best", "(median)"]];
  for (const impl of impls) {
    for (const qos of qosList) {
      const rates = (p: 4 | 5) => (results.get(`${impl}/${qos}@${p}`) ?? []).map((r) => r.rate);
      const best = (p: 4 | 5) => rates(p).length === runs ? Math.max(...rates(p)) : NaN;
      const med = (p: 4 | 5) => rates(p).length === runs ? median(rates(p)) : NaN;
      rows.push([
        IMPL_NAMES[impl],
        String(qos),
        `${fmt(best(4))} (${fmt(med(4))})`,
        `${fmt(best(5))} (${fmt(med(5))})`,
        `${(best(5) / best(4)).toFixed(3)}`,
        `(${(med(5) / med(4)).toFixed(3)})`,
      ]);
    }
  }
  printTable(rows);
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padStart(widths[c])).join("  "));
}

if (import.meta.main) Deno.exit(await main());
