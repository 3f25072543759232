/**
 * Mutual TLS: the client verifies the broker with a custom CA and proves who it is with a
 * client certificate and key (PEM files).
 *
 * ```sh
 * deno run -A examples/mutual_tls.ts mqtts://localhost:8883 ca.pem client.pem client.key
 * ```
 *
 * Mosquitto needs a TLS listener that asks for client certificates, e.g.:
 *
 * ```
 * listener 8883
 * cafile ca.pem
 * certfile server.pem
 * keyfile server.key
 * require_certificate true
 * ```
 *
 * @module
 */
import { connect } from "../mod.ts";

const [url, caFile, certFile, keyFile] = Deno.args;
if (!url || !caFile || !certFile || !keyFile) {
  console.error("usage: deno run -A examples/mutual_tls.ts <mqtts://host:port> <ca> <cert> <key>");
  Deno.exit(2);
}

await using client = await connect(url, {
  tls: {
    caCerts: [await Deno.readTextFile(caFile)],
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
  },
});
console.log(`connected to ${url} with a client certificate as ${client.clientId}`);

const topic = `mtls-demo/${crypto.randomUUID().slice(0, 8)}`;
const sub = await client.subscribe(topic, { qos: 1 });
await client.publish(topic, "hello over mutual TLS", { qos: 1 });
for await (const msg of sub) {
  console.log(`received ${msg.topic}: ${msg.text()}`);
  break;
}
