/**
 * QoS 2, exactly once: publishes numbered messages at QoS 2 and checks that each arrives once
 * and in order. `publish` resolves only when the four-step flow (PUBLISH, PUBREC, PUBREL,
 * PUBCOMP) is complete; `maxInflight` bounds how many flows run at once.
 *
 * ```sh
 * deno run -A examples/qos2.ts [mqtt://localhost:1883] [count]
 * ```
 *
 * @module
 */
import { connect } from "../mod.ts";

const url = Deno.args[0] ?? "mqtt://localhost:1883";
const count = Number(Deno.args[1] ?? 100);
await using subscriber = await connect(url);
await using publisher = await connect(url, { maxInflight: 20 });

const topic = `qos2-demo/${crypto.randomUUID().slice(0, 8)}`;
const sub = await subscriber.subscribe(topic, { qos: 2 });

const started = performance.now();
// Started together: the client keeps at most maxInflight flows open and queues the rest.
await Promise.all(
  Array.from({ length: count }, (_, i) => publisher.publish(topic, String(i), { qos: 2 })),
);
console.log(`${count} QoS 2 publishes completed in ${Math.round(performance.now() - started)} ms`);

let expected = 0;
for await (const msg of sub) {
  const n = Number(msg.text());
  if (n !== expected || msg.qos !== 2) {
    throw new Error(`expected message ${expected} at QoS 2, got ${n} at QoS ${msg.qos}`);
  }
  if (++expected === count) break;
}
console.log(`received all ${count} exactly once, in order, at QoS 2`);
