/**
 * Server-side options of the embedded broker that mirror Mosquitto's
 * (`max_qos`, `retain_available`, `max_keepalive`); what Mosquitto 2.0.11 does
 * with each was checked against the real binary (see docs/broker.md).
 */
import assert from "node:assert/strict";
import { RawClient, startBroker } from "./broker_helpers.ts";
import { bytes } from "./broker_helpers.ts";

Deno.test("maxQoS: grants capped, a PUBLISH above it disconnects the client (as Mosquitto's max_qos)", async () => {
  const { broker, port } = await startBroker({ maxQoS: 1 });
  try {
    const { client } = await RawClient.connect(port, { clientId: "q" });
    assert.deepEqual(await client.subscribe([["t", 2]]), [1]);
    await client.publish("t", "one", 1);
    assert.equal((await client.expect("publish")).qos, 1); // its own message, before the PUBACK
    await client.expect("puback");
    await client.publish("t", "two", 2);
    await client.expectClosed();
    client.close();
  } finally {
    await broker.close();
  }
});

Deno.test("retainAvailable false: a retained PUBLISH disconnects the client, nothing is retained", async () => {
  const { broker, port } = await startBroker({ retainAvailable: false });
  try {
    const { client } = await RawClient.connect(port, { clientId: "r" });
    await client.publish("plain", "x", 1);
    await client.expect("puback");
    await client.send({
      type: "publish",
      topic: "t",
      payload: bytes("x"),
      qos: 1,
      retain: true,
      dup: false,
      packetId: 2,
    });
    await client.expectClosed();
    client.close();
    assert.equal(broker.stats().retained, 0);
  } finally {
    await broker.close();
  }
});

Deno.test("maxKeepAlive: a keep-alive above it, or none, is refused with CONNACK 2", async () => {
  const { broker, port } = await startBroker({ maxKeepAlive: 60 });
  try {
    for (const [keepAlive, code] of [[60, 0], [30, 0], [61, 2], [0, 2]]) {
      const { client, returnCode } = await RawClient.connect(port, {
        clientId: `k${keepAlive}`,
        keepAlive,
      });
      assert.equal(returnCode, code, `keep-alive ${keepAlive}`);
      client.close();
    }
  } finally {
    await broker.close();
  }
});
