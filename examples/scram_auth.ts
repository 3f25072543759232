/**
 * MQTT 5.0 enhanced authentication with SCRAM-SHA-256: the client proves it
 * knows the password without sending it, and checks that the server knows it
 * too; later it re-authenticates on the same connection.
 *
 * ```sh
 * deno run -A examples/scram_auth.ts mqtt://broker.example:1883 alice secret
 * ```
 *
 * The broker must implement the SCRAM-SHA-256 method (EMQX and HiveMQ can;
 * Mosquitto 2.0 implements none). `tests/client_v5_scripted_extras_test.ts`
 * runs the same exchange against a scripted server.
 *
 * @module
 */
import { connect } from "../mod.ts";
import { ScramClient } from "./scram.ts";

const [url = "mqtt://localhost:1883", user = "alice", password = "secret"] = Deno.args;

// One exchange per authentication: a fresh nonce each time.
let scram = new ScramClient(user, password);
await using client = await connect(url, {
  protocolVersion: 5,
  authenticationMethod: "SCRAM-SHA-256",
  authenticationData: scram.first(), // client-first-message
  onAuth: (serverFirst) => scram.final(serverFirst), // answers the server's challenge
});
// The CONNACK carries the server-final-message: it proves the server knows the password.
if (!scram.verify(client.connack.properties.authenticationData)) {
  throw new Error("the server's SCRAM signature is wrong: not the server we know");
}
console.log(`authenticated as ${user} with SCRAM-SHA-256; the server proved itself`);

// Re-authentication (for a credential that expires): same method, a new exchange.
scram = new ScramClient(user, password);
const serverFinal = await client.reauthenticate(scram.first());
console.log(`re-authenticated: server verified ${scram.verify(serverFinal)}`);
