/**
 * Child of `bench/cold_start.ts`: connect, publish one QoS 1 message, print
 * "puback" once acknowledged, exit. What a serverless function does.
 *
 * @module
 */
import { connect } from "../lib/client/connect.ts";

const client = await connect(Deno.args[0], { clientId: `cold-${Deno.pid}` });
await client.publish("cold/start", "hello", { qos: 1 });
console.log("puback");
await client.close();
