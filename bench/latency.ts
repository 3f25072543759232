/**
 * Publish-to-receive latency at a fixed moderate rate, ours against MQTT.js.
 *
 * Run: deno run -A bench/latency.ts [--rate 2000] [--messages 10000] [--qos 1,2] [--only ours]
 *
 * One publishing and one subscribing client in this process (one clock, so
 * no skew), through a fresh local Mosquitto per run. The publisher sends 64 B
 * messages at `--rate` msg/s (paced on a 1 ms timer, so in bursts of
 * rate/1000), each stamped with `performance.now()` just before `publish()`;
 * the subscriber takes the difference on arrival. The first 5 % of messages
 * (warm-up: JIT, socket buffers) are left out. Printed per client and QoS:
 * p50, p99 and max publish-to-receive, and p50/p99 publish-to-acknowledgement
 * (PUBACK at QoS 1, PUBCOMP at QoS 2). Every message must arrive, or the run
 * fails (exit code 1).
 *
 * @module
 */
import type { QoS } from "../lib/codec/packet.ts";
import { connectClient, type Impl, IMPL_NAMES, IMPLS } from "./_clients.ts";
import { arg, quantile, startMosquitto } from "./_mosquitto.ts";

const PAYLOAD_SIZE = 64;
const WARMUP_FRACTION = 0.05;

/** Latency quantiles of one run, in milliseconds. */
export interface LatencyResult {
  impl: Impl;
  qos: QoS;
  receive: { p50: number; p99: number; max: number };
  ack: { p50: number; p99: number };
}

/**
 * Runs one latency measurement against a fresh broker.
 *
 * @example
 * ```ts ignore
 * const { receive } = await measure("ours", 1, 2000, 10_000);
 * console.log(receive.p99);
 * ```
 */
export async function measure(
  impl: Impl,
  qos: QoS,
  rate: number,
  messages: number,
): Promise<LatencyResult> {
  await using broker = await startMosquitto();
  const tag = `${impl}-${qos}-${Deno.pid}`;
  const receiveLatency = new Float64Array(messages);
  const ackLatency = new Float64Array(messages);
  let received = 0;
  let acked = 0;
  const allIn = Promise.withResolvers<void>();
  const subscriber = await connectClient(impl, broker.url, { clientId: `sub-${tag}` });
  await subscriber.subscribe("lat/#", qos, (_topic, payload) => {
    const now = performance.now();
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const index = view.getUint32(8);
    receiveLatency[index] = now - view.getFloat64(0);
    if (++received === messages && acked === messages) allIn.resolve();
  });
  const publisher = await connectClient(impl, broker.url, {
    clientId: `pub-${tag}`,
    maxInflight: 1000,
  });
  const topic = `lat/${tag}`;

  const publishOne = (index: number) => {
    const payload = new Uint8Array(PAYLOAD_SIZE);
    const view = new DataView(payload.buffer);
    view.setUint32(8, index);
    const sent = performance.now();
    view.setFloat64(0, sent);
    publisher.publish(topic, payload, qos, (error) => {
      if (error !== undefined) allIn.reject(error);
      ackLatency[index] = performance.now() - sent;
      if (++acked === messages && received === messages) allIn.resolve();
    });
  };

  // Pace on a 1 ms timer: send however many messages are due by now.
  let sent = 0;
  const start = performance.now();
  const pacer = setInterval(() => {
    const due = Math.min(messages, Math.floor(((performance.now() - start) * rate) / 1000));
    while (sent < due) publishOne(sent++);
    if (sent === messages) clearInterval(pacer);
  }, 1);
  const expected = (messages / rate) * 1000;
  const timeout = setTimeout(
    () =>
      allIn.reject(
        new Error(
          `${IMPL_NAMES[impl]} QoS ${qos}: ${received}/${messages} received, ${acked} acknowledged`,
        ),
      ),
    expected + 15_000,
  );
  try {
    await allIn.promise;
  } finally {
    clearInterval(pacer);
    clearTimeout(timeout);
    await Promise.allSettled([publisher.close(), subscriber.close()]);
  }

  const skip = Math.floor(messages * WARMUP_FRACTION);
  const rx = receiveLatency.slice(skip).sort();
  const ack = ackLatency.slice(skip).sort();
  return {
    impl,
    qos,
    receive: { p50: quantile(rx, 0.5), p99: quantile(rx, 0.99), max: rx[rx.length - 1] },
    ack: { p50: quantile(ack, 0.5), p99: quantile(ack, 0.99) },
  };
}

async function main(): Promise<number> {
  const rate = Number(arg("rate") ?? 2000);
  const messages = Number(arg("messages") ?? 10_000);
  const qosList = (arg("qos") ?? "1,2").split(",").map(Number) as QoS[];
  const only = arg("only") as Impl | undefined;
  const impls = only === undefined ? [...IMPLS] : [only];
  const ms = (n: number) => n.toFixed(3);

  console.log(
    `Publish-to-receive latency via Mosquitto: ${messages} × ${PAYLOAD_SIZE} B at ${rate} msg/s, ` +
      `first ${WARMUP_FRACTION * 100} % left out, milliseconds`,
  );
  const rows = [["client", "QoS", "p50", "p99", "max", "ack p50", "ack p99"]];
  let failed = false;
  for (const qos of qosList) {
    for (const impl of impls) {
      try {
        const r = await measure(impl, qos, rate, messages);
        rows.push([
          IMPL_NAMES[impl],
          String(qos),
          ms(r.receive.p50),
          ms(r.receive.p99),
          ms(r.receive.max),
          ms(r.ack.p50),
          ms(r.ack.p99),
        ]);
      } catch (err) {
        failed = true;
        console.error(err instanceof Error ? err.message : err);
      }
    }
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padStart(widths[c])).join("  "));
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
