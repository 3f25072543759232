/**
 * Publish and subscribe: one client subscribes to `demo/+/temp`, publishes three readings at
 * QoS 1 and prints them as they come back, then leaves the loop (which unsubscribes) and
 * closes.
 *
 * ```sh
 * deno run -A examples/pub_sub.ts                        # mqtt://localhost:1883
 * deno run -A examples/pub_sub.ts mqtt://broker.example:1883
 * ```
 *
 * @module
 */
import { connect } from "../mod.ts";

const url = Deno.args[0] ?? "mqtt://localhost:1883";
await using client = await connect(url);
console.log(`connected to ${url} as ${client.clientId}`);

// A per-run topic stem, so that two runs against a shared broker do not see each other.
const stem = `demo-${crypto.randomUUID().slice(0, 8)}`;
const sub = await client.subscribe(`${stem}/+/temp`, { qos: 1 });
console.log(`subscribed to ${sub.filters[0]} (granted QoS ${sub.granted[0]})`);

const readings = [["kitchen", "21.5"], ["garage", "12.0"], ["attic", "27.25"]];
for (const [room, value] of readings) {
  // Resolves once the broker acknowledged it (PUBACK).
  await client.publish(`${stem}/${room}/temp`, value, { qos: 1 });
}

let received = 0;
for await (const msg of sub) {
  console.log(`received ${msg.topic} = ${msg.text()} (QoS ${msg.qos})`);
  if (++received === readings.length) break; // leaving the loop unsubscribes
}
console.log("done");
