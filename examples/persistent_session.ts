/**
 * Persistent session: a client with a fixed client id and `clean: false` subscribes at QoS 1
 * and goes away; messages published meanwhile are kept by the broker and delivered when it
 * comes back (`sessionPresent` is then true). The queued messages may arrive before the
 * client subscribes again: the client holds them for the first matching subscription.
 *
 * ```sh
 * deno run -A examples/persistent_session.ts [mqtt://localhost:1883]
 * ```
 *
 * @module
 */
import { connect } from "../mod.ts";

const url = Deno.args[0] ?? "mqtt://localhost:1883";
const clientId = `durable-${crypto.randomUUID().slice(0, 8)}`;
const topic = `jobs/${clientId}`;

const first = await connect(url, { clientId, clean: false });
console.log(`first connection: sessionPresent=${first.sessionPresent}`);
await first.subscribe(topic, { qos: 1 });
await first.close();
console.log("worker offline");

{
  await using producer = await connect(url);
  for (let i = 1; i <= 3; i++) await producer.publish(topic, `job ${i}`, { qos: 1 });
  console.log("3 jobs published while the worker was offline");
}

const again = await connect(url, { clientId, clean: false });
console.log(`back online: sessionPresent=${again.sessionPresent}`);
const jobs = await again.subscribe(topic, { qos: 1 });
let done = 0;
for await (const job of jobs) {
  console.log(`processing ${job.text()}`);
  if (++done === 3) break;
}
await again.close();

// A clean session discards what the broker stored for this client id.
const cleanup = await connect(url, { clientId, clean: true });
console.log(`clean connection: sessionPresent=${cleanup.sessionPresent}`);
await cleanup.close();
