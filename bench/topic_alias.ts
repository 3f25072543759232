/**
 * Bytes on the wire per PUBLISH with and without MQTT 5.0 topic aliases,
 * through Mosquitto: a 100-byte topic, 64-byte payloads, QoS 0 and 1. The
 * client's transport counts what it writes; the broker's `max_topic_alias`
 * (0 or 10) decides whether aliases are used. Throughput is printed beside,
 * for a side-by-side look (one run on a shared machine is noisy).
 *
 * ```sh
 * deno run -A bench/topic_alias.ts [--count 20000]
 * ```
 *
 * @module
 */
import { connect } from "../mod.ts";
import { connectTcp, type Transport } from "../transports.ts";
import { arg, fmt, startMosquitto } from "./_mosquitto.ts";

const count = Number(arg("count") ?? 20_000);
const topic = "bench/".padEnd(100, "t");
const payload = new Uint8Array(64);

/** A TCP transport that counts the bytes the client writes. */
function counting(sent: { bytes: number }): (url: URL) => Promise<Transport> {
  return async (url) => {
    const inner = await connectTcp({ hostname: url.hostname, port: Number(url.port) });
    const counter = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        sent.bytes += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    counter.readable.pipeTo(inner.writable).catch(() => {});
    return { readable: inner.readable, writable: counter.writable, close: () => inner.close() };
  };
}

for (const [label, max] of [["without aliases", 0], ["with aliases", 10]] as const) {
  for (const qos of [0, 1] as const) {
    await using broker = await startMosquitto({ extraConfig: [`max_topic_alias ${max}`] });
    const sent = { bytes: 0 };
    await using client = await connect(broker.url, {
      protocolVersion: 5,
      transport: counting(sent),
      queue: { maxMessages: count },
    });
    const before = sent.bytes;
    const t0 = performance.now();
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < count; i++) all.push(client.publish(topic, payload, { qos }));
    await Promise.all(all);
    const ms = performance.now() - t0;
    console.log(
      `${label.padEnd(16)} QoS ${qos}: ${
        ((sent.bytes - before) / count).toFixed(1)
      } bytes/message, ` +
        `${fmt(count / ms * 1000)} msg/s`,
    );
  }
}
