/**
 * Long run (issue 18): millions of QoS 1 messages through one local
 * Mosquitto, publisher and subscriber in this process, to a consumer that
 * pauses; heap (after a forced GC) and resident memory are sampled as the
 * messages go, and must stay flat after the warm-up.
 *
 * Run: deno task bench:long [--messages 10000000] [--every 1000000]
 *
 * The publisher keeps at most 1,000 publishes unresolved (PUBACK); the
 * subscription's `bufferSize` is 64, and the consumer yields to the event
 * loop every 64 messages and sleeps 20 ms every 50,000, so the read loop stops
 * for it again and again (with QoS 1 the server's in-flight window then holds
 * the messages back).
 *
 * @module
 */
import { connect } from "../lib/client/connect.ts";
import { arg, fmt, startMosquitto } from "./_mosquitto.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  // Restart with a GC to call.
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", import.meta.filename!, ...Deno.args],
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(code);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const messages = Number(arg("messages") ?? 10_000_000);
const every = Number(arg("every") ?? 1_000_000);
const WINDOW = 1000;

await using broker = await startMosquitto();
const sub = await connect(broker.url, { clientId: "long-sub", keepAlive: 60 });
const pub = await connect(broker.url, { clientId: "long-pub", keepAlive: 60, maxInflight: WINDOW });
const subscription = await sub.subscribe("long/run", { qos: 1, bufferSize: 64 });
const payload = new Uint8Array(64).fill(0x61);

const rows: string[][] = [["messages", "heap MiB", "RSS MiB", "msg/s (last interval)", "pauses"]];
let received = 0;
let pauses = 0;
let lastT = performance.now();
let lastN = 0;
const sample = () => {
  gc!();
  gc!();
  const { heapUsed, rss } = Deno.memoryUsage();
  const t = performance.now();
  const rate = received === 0 ? 0 : (received - lastN) / ((t - lastT) / 1000);
  lastT = t;
  lastN = received;
  const row = [
    fmt(received),
    (heapUsed / 2 ** 20).toFixed(1),
    (rss / 2 ** 20).toFixed(1),
    fmt(rate),
    fmt(pauses),
  ];
  rows.push(row);
  console.error(row.join("  "));
};
sample();
const consuming = (async () => {
  for await (const _ of subscription) {
    received++;
    if (received % 64 === 0) {
      pauses++;
      await sleep(0);
    }
    if (received % 50_000 === 0) await sleep(20);
    if (received % every === 0) sample();
    if (received === messages) break;
  }
})();

let outstanding = 0;
let wake: (() => void) | undefined;
const done = () => {
  outstanding--;
  const w = wake;
  wake = undefined;
  w?.();
};
const fail = (error: unknown) => {
  console.error(error);
  Deno.exit(1);
};
for (let i = 0; i < messages; i++) {
  while (outstanding >= WINDOW) await new Promise<void>((r) => wake = r);
  outstanding++;
  pub.publish("long/run", payload, { qos: 1 }).then(done, fail);
}
await consuming;
await pub.close();
await sub.close();
const load = Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
console.log(
  `Long run: ${fmt(messages)} QoS 1 × 64 B via Mosquitto to a pausing consumer; ` +
    `heap after GC; load average ${load}`,
);
const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
for (const row of rows) console.log(row.map((cell, c) => cell.padStart(widths[c])).join("  "));
