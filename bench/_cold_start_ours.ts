/**
 * Child of `bench/cold_start.ts`: connect, publish one QoS 1 message, print
 * "puback" once acknowledged, exit. What a serverless function does.
 *
 * @module
 */
// mod.ts, as a user imports it: its whole module graph is part of the cold start.
import { connect } from "../mod.ts";

const client = await connect(Deno.args[0], { clientId: `cold-${Deno.pid}` });
await client.publish("cold/start", "hello", { qos: 1 });
console.log("puback");
await client.close();
