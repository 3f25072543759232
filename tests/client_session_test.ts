/**
 * Keep-alive against a real Mosquitto, where it needs Mosquitto itself: its log of PINGRESPs
 * and a paused (SIGSTOP) broker. The broker-independent session cases (wills, retained
 * messages, persistent sessions, QoS 2 across a cut link) run against Mosquitto and the
 * embedded broker alike in `client_brokers_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, MqttError } from "../mod.ts";
import { brokerTest, startMosquitto } from "./broker/mod.ts";
import { closed, disconnected, fresh, hasCode, take, within } from "./client_helpers.ts";

brokerTest("keep-alive: an idle client pings and stays connected (MQTT-3.1.2-23)", async () => {
  await using broker = await startMosquitto({ verbose: true });
  const clientId = fresh("pinger");
  await using client = await connect(broker.url, { clientId, keepAlive: 1, pingTimeout: 1000 });
  // Mosquitto drops a client silent for 1.5 keep-alive periods (MQTT-3.1.2-24); two answered
  // PINGREQs take about 2 s, longer than that.
  const pings = async () => {
    const log = await broker.log();
    return log.split("\n").filter((l) => l.includes(`Sending PINGRESP to ${clientId}`)).length;
  };
  await within(
    (async () => {
      while (await pings() < 2) await new Promise((resolve) => setTimeout(resolve, 100));
    })(),
    "two PINGREQs answered",
  );
  assert.equal(client.connected, true);
  await client.publish("still/up", "yes", { qos: 1 });
});

brokerTest(
  "keep-alive: a broker that stops answering is detected within keepAlive + pingTimeout",
  async () => {
    await using broker = await startMosquitto();
    const keepAlive = 1;
    const pingTimeout = 1_000;
    const client = await connect(broker.url, {
      clientId: fresh("paused"),
      keepAlive,
      pingTimeout,
      reconnect: false,
    });
    const subscription = await client.subscribe("paused/#", { qos: 1 });
    const ended = closed(client);
    const dropped = disconnected(client);
    const started = performance.now();
    await broker.pause();
    try {
      const error = await within(ended, "the keep-alive to fail", 5_000);
      const elapsed = performance.now() - started;
      assert.ok(error instanceof MqttError);
      assert.equal(error.code, "KEEPALIVE_TIMEOUT");
      assert.equal(await dropped, error, "the disconnect event came first, with the same error");
      // The PINGREQ goes out after keepAlive of silence at most; the timeout runs from there.
      assert.ok(
        elapsed <= keepAlive * 1000 + pingTimeout + 500,
        `detected after ${Math.round(elapsed)} ms`,
      );
      assert.equal(client.connected, false);
      assert.equal(client.closed, true);
      // The subscription's consumer learns why it ended.
      await assert.rejects(take(subscription, 1, "the end"), hasCode("KEEPALIVE_TIMEOUT"));
      await assert.rejects(client.publish("a", "b", { qos: 1 }), hasCode("CONNECTION_CLOSED"));
    } finally {
      await broker.resume();
    }
    await client.close();
  },
);
