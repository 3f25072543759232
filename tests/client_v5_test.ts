/**
 * The client at MQTT 5.0 against a real Mosquitto 2.0.11 (`protocolVersion: 5`): CONNACK
 * properties from a configured broker, assigned client identifiers, sessions, user properties,
 * subscription options, reason codes, the will on DISCONNECT 0x04, the server's limits.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, ConnectionRefusedError, type MqttClient } from "../mod.ts";
import { brokerTest, startMosquitto, startProxy } from "./broker/mod.ts";
import { fresh, hasCode, take, within } from "./client_helpers.ts";

/** Resolves on the client's next `connect` event. */
function reconnected(client: MqttClient): Promise<boolean> {
  return new Promise((resolve) => {
    client.addEventListener("connect", (e) => resolve(e.detail.sessionPresent), { once: true });
  });
}

brokerTest(
  "5.0: CONNACK properties of a configured Mosquitto reach client.connack (MQTT-3.2.2-9..21)",
  async () => {
    await using broker = await startMosquitto({
      extraConfig: [
        "max_qos 1",
        "max_inflight_messages 5",
        "max_packet_size 1000",
        "max_topic_alias 4",
        "retain_available false",
        "max_keepalive 30",
      ].join("\n"),
    });
    await using client = await connect(broker.url, { protocolVersion: 5, keepAlive: 100 });
    assert.equal(client.protocolVersion, 5);
    const { sessionPresent, reasonCode, properties } = client.connack;
    assert.equal(sessionPresent, false);
    assert.equal(reasonCode, 0);
    assert.equal(properties.maximumQoS, 1);
    assert.equal(properties.receiveMaximum, 5);
    assert.equal(properties.maximumPacketSize, 1000);
    assert.equal(properties.topicAliasMaximum, 4);
    assert.equal(properties.retainAvailable, false);
    // Mosquitto caps our keep-alive of 100 s at its max_keepalive, as a Server Keep Alive.
    assert.equal(properties.serverKeepAlive, 30);

    // MQTT-3.2.2-11, -14, -15: the limits hold before anything is written.
    await assert.rejects(client.publish("t", "x", { qos: 2 }), hasCode("QOS_NOT_SUPPORTED"));
    await assert.rejects(
      client.publish("t", "x", { retain: true }),
      hasCode("RETAIN_NOT_SUPPORTED"),
    );
    await assert.rejects(
      client.publish("t", new Uint8Array(1000), { qos: 1 }),
      hasCode("PACKET_TOO_LARGE"),
    );
    // The connection is fine: nothing was sent.
    const sub = await client.subscribe("t", { qos: 1 });
    await client.publish("t", "fits", { qos: 1 });
    const [msg] = await take(sub, 1, "the publish that fits");
    assert.equal(msg.text(), "fits");
    assert.ok(client.connected);
  },
);

brokerTest(
  "5.0: an empty clientId gets the server's Assigned Client Identifier, which reconnects resume (MQTT-3.2.2-16)",
  async () => {
    await using broker = await startMosquitto();
    await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
    await using client = await connect(proxy.url, {
      protocolVersion: 5,
      clientId: "",
      clean: false,
      sessionExpiryInterval: 60,
      reconnect: { minDelay: 10, maxDelay: 50 },
    });
    const assigned = client.clientId;
    assert.match(assigned, /^auto-/);
    assert.equal(client.connack.properties.assignedClientIdentifier, assigned);
    const back = reconnected(client);
    proxy.cut();
    // The session is found again: the reconnect sent the assigned identifier.
    assert.equal(await within(back, "the reconnect"), true);
    assert.equal(client.clientId, assigned);
    assert.equal(client.connack.properties.assignedClientIdentifier, undefined);
  },
);

brokerTest(
  "5.0: a refused CONNECT is a ConnectionRefusedError with the 5.0 reason code (a wrong password: Mosquitto 2.0.11 says 0x87)",
  async () => {
    await using broker = await startMosquitto({ auth: "password" });
    const error = await connect(broker.url, {
      protocolVersion: 5,
      username: "user",
      password: "wrong",
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof ConnectionRefusedError, String(error));
    // Mosquitto 2.0.11 answers a wrong password with 0x87 not authorized, not 0x86.
    assert.equal(error.reasonCode, 0x87);
    assert.equal(error.returnCode, 5);
    assert.match(error.message, /not authorized/);
  },
);

brokerTest("protocolVersion auto against a 5.0 broker agrees on 5.0", async () => {
  await using broker = await startMosquitto();
  await using client = await connect(broker.url, {
    protocolVersion: "auto",
    clientId: fresh("auto"),
  });
  assert.equal(client.protocolVersion, 5);
});

brokerTest(
  "3.1.1 stays the default: client.protocolVersion is 4 and client.connack has no properties",
  async () => {
    await using broker = await startMosquitto();
    await using client = await connect(broker.url);
    assert.equal(client.protocolVersion, 4);
    assert.deepEqual(client.connack, { sessionPresent: false, reasonCode: 0, properties: {} });
  },
);
