/**
 * Child of `bench/cold_start.ts`, MQTT.js edition: connect, publish one QoS 1
 * message, print "puback" once acknowledged, exit.
 *
 * @module
 */
// The peer under comparison; npm imports are allowed in bench/ only (issue 8).
// deno-lint-ignore no-import-prefix
import mqtt from "npm:mqtt@5";

const client = await mqtt.connectAsync(Deno.args[0], {
  clientId: `cold-${Deno.pid}`,
  protocolVersion: 4,
  reconnectPeriod: 0,
});
await client.publishAsync("cold/start", "hello", { qos: 1 });
console.log("puback");
await client.endAsync();
