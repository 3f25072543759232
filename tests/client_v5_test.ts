/**
 * The client at MQTT 5.0 against a real Mosquitto 2.0.11 (`protocolVersion: 5`): CONNACK
 * properties from a configured broker, assigned client identifiers, sessions, user properties,
 * subscription options, reason codes, the will on DISCONNECT 0x04, the server's limits.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  connect,
  ConnectionRefusedError,
  type MqttClient,
  PublishRejectedError,
  SubscribeError,
} from "../mod.ts";
import { brokerTest, dynsecBroker, startMosquitto, startProxy } from "./broker/mod.ts";
import { fresh, hasCode, take, within } from "./client_helpers.ts";

/** Resolves on the client's next `connect` event. */
function reconnected(client: MqttClient): Promise<boolean> {
  return new Promise((resolve) => {
    client.addEventListener("connect", (e) => resolve(e.detail.sessionPresent), { once: true });
  });
}

brokerTest(
  "5.0: CONNACK properties of a configured Mosquitto reach client.connack (MQTT-3.2.2-11, MQTT-3.2.2-14, MQTT-3.2.2-15, MQTT-3.2.2-21)",
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

brokerTest(
  "5.0: publish properties reach the subscriber; user properties keep their order and duplicates",
  async () => {
    await using broker = await startMosquitto();
    await using client = await connect(broker.url, {
      protocolVersion: 5,
      clientId: fresh("props"),
    });
    const topic = fresh("v5/props");
    const sub = await client.subscribe(topic, { qos: 1 });
    const userProperties: [string, string][] = [["b", "1"], ["a", "2"], ["b", "3"], ["b", "1"]];
    const correlationData = new Uint8Array([1, 2, 3]);
    const result = await client.publish(topic, "hello", {
      qos: 1,
      properties: {
        contentType: "text/plain",
        payloadFormatIndicator: 1,
        responseTopic: `${topic}/reply`,
        correlationData,
        userProperties,
      },
    });
    assert.deepEqual(result, { reasonCode: 0, properties: {} });
    const [msg] = await take(sub, 1, "the message with properties");
    assert.equal(msg.properties?.contentType, "text/plain");
    assert.equal(msg.properties?.payloadFormatIndicator, 1);
    assert.equal(msg.properties?.responseTopic, `${topic}/reply`);
    assert.deepEqual(msg.properties?.correlationData, correlationData);
    assert.deepEqual(msg.properties?.userProperties, userProperties);
  },
);

brokerTest(
  "5.0: QoS 1 to a topic nobody subscribes to resolves with 0x10 no matching subscribers (QoS 2: 0x00)",
  async () => {
    await using broker = await startMosquitto();
    await using client = await connect(broker.url, {
      protocolVersion: 5,
      clientId: fresh("nomatch"),
    });
    const topic = fresh("v5/nobody");
    assert.equal((await client.publish(topic, "x", { qos: 1 }))?.reasonCode, 0x10);
    // Mosquitto 2.0.11 says 0x10 in a PUBACK only; its PUBREC says 0x00.
    assert.deepEqual(await client.publish(topic, "x", { qos: 2 }), {
      reasonCode: 0,
      properties: {},
    });
    assert.equal(await client.publish(topic, "x", { qos: 0 }), undefined);
  },
);

brokerTest("5.0 MQTT-3.8.3-3: noLocal: our own publications are not sent back to us", async () => {
  await using broker = await startMosquitto();
  await using client = await connect(broker.url, {
    protocolVersion: 5,
    clientId: fresh("nolocal"),
  });
  await using other = await connect(broker.url, { protocolVersion: 5, clientId: fresh("other") });
  const topic = fresh("v5/nolocal");
  const sub = await client.subscribe(topic, { qos: 1, noLocal: true });
  await client.publish(topic, "mine", { qos: 1 });
  await other.publish(topic, "theirs", { qos: 1 });
  const [first] = await take(sub, 1, "the other client's message");
  assert.equal(first.text(), "theirs");
});

brokerTest(
  "5.0: retainAsPublished keeps the RETAIN flag of a live retained publish; without it the flag is 0 (MQTT-3.3.1-12, MQTT-3.3.1-13)",
  async () => {
    await using broker = await startMosquitto();
    await using a = await connect(broker.url, { protocolVersion: 5, clientId: fresh("rap") });
    await using b = await connect(broker.url, { protocolVersion: 5, clientId: fresh("norap") });
    const topic = fresh("v5/rap");
    const kept = await a.subscribe(topic, { qos: 1, retainAsPublished: true });
    const cleared = await b.subscribe(topic, { qos: 1 });
    await a.publish(topic, "retained", { qos: 1, retain: true });
    const [[k], [c]] = await Promise.all([take(kept, 1, "rap"), take(cleared, 1, "no rap")]);
    assert.equal(k.retain, true);
    assert.equal(c.retain, false); // MQTT-3.3.1-12/13
    await a.publish(topic, "", { qos: 1, retain: true }); // clear the retained message
  },
);

brokerTest(
  "5.0: retainHandling 1 sends retained messages for a new subscription only; 2 never",
  async () => {
    await using broker = await startMosquitto();
    await using client = await connect(broker.url, { protocolVersion: 5, clientId: fresh("rh") });
    const topic = fresh("v5/rh");
    await client.publish(topic, "retained", { qos: 1, retain: true });

    // 2: never, even for a new subscription.
    const never = await client.subscribe(`${topic}/+`, { qos: 1, retainHandling: 2 });
    await client.publish(`${topic}/x`, "live-2", { qos: 1 });
    await client.publish(`${topic}/x`, "", { qos: 1, retain: true });
    void never;

    // 1: the new subscription gets the retained message ...
    const first = await client.subscribe(topic, { qos: 1, retainHandling: 1 });
    const [retained] = await take(first, 1, "the retained message");
    assert.equal(retained.text(), "retained");
    assert.equal(retained.retain, true);
    // ... subscribing again while it exists does not.
    const again = await client.subscribe(topic, { qos: 1, retainHandling: 1 });
    await client.publish(topic, "live-1", { qos: 1 });
    const [next] = await take(again, 1, "the live message");
    assert.equal(next.text(), "live-1");
    await client.publish(topic, "", { qos: 1, retain: true });
  },
);

brokerTest(
  "5.0: retainHandling 2 on a topic with a retained message: only live messages arrive",
  async () => {
    await using broker = await startMosquitto();
    await using client = await connect(broker.url, { protocolVersion: 5, clientId: fresh("rh2") });
    const topic = fresh("v5/rh2");
    await client.publish(topic, "retained", { qos: 1, retain: true });
    const sub = await client.subscribe(topic, { qos: 1, retainHandling: 2 });
    await client.publish(topic, "live", { qos: 1 });
    const [first] = await take(sub, 1, "the live message");
    assert.equal(first.text(), "live");
    await client.publish(topic, "", { qos: 1, retain: true });
  },
);

brokerTest(
  "5.0: subscription options are kept when the session subscribes again after a reconnect",
  async () => {
    await using broker = await startMosquitto();
    await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
    await using client = await connect(proxy.url, {
      protocolVersion: 5,
      clientId: fresh("resub"),
      reconnect: { minDelay: 10, maxDelay: 50 },
    });
    await using other = await connect(broker.url, { protocolVersion: 5, clientId: fresh("o") });
    const topic = fresh("v5/resub");
    const sub = await client.subscribe(topic, { qos: 1, noLocal: true });
    const back = reconnected(client);
    proxy.cut();
    assert.equal(await within(back, "the reconnect"), false); // clean: the session re-subscribed
    await client.publish(topic, "mine", { qos: 1 });
    await other.publish(topic, "theirs", { qos: 1 });
    const [first] = await take(sub, 1, "the other client's message");
    assert.equal(first.text(), "theirs", "noLocal was lost on re-subscription");
  },
);

brokerTest(
  "5.0: close({ reasonCode: 0x04 }) sends DISCONNECT with will message: the will is published",
  async () => {
    await using broker = await startMosquitto();
    await using watcher = await connect(broker.url, { protocolVersion: 5, clientId: fresh("w") });
    const topic = fresh("v5/will");
    const wills = await watcher.subscribe(topic, { qos: 1 });
    const quiet = await connect(broker.url, {
      protocolVersion: 5,
      clientId: fresh("quiet"),
      will: { topic, payload: "quiet's will", qos: 1 },
    });
    await quiet.close(); // 0x00: the will is discarded
    const willing = await connect(broker.url, {
      protocolVersion: 5,
      clientId: fresh("willing"),
      will: { topic, payload: "willing's will", qos: 1, properties: { contentType: "text/plain" } },
    });
    await willing.close({ reasonCode: 0x04 });
    const [will] = await take(wills, 1, "the will");
    assert.equal(will.text(), "willing's will");
    assert.equal(will.properties?.contentType, "text/plain");
  },
);

brokerTest(
  "5.0: close({ reasonCode }) is refused under 3.1.1 and for a code DISCONNECT cannot carry",
  async () => {
    await using broker = await startMosquitto();
    const old = await connect(broker.url, { clientId: fresh("old") });
    await assert.rejects(old.close({ reasonCode: 0x04 }), hasCode("INVALID_OPTION", /MQTT 5\.0/));
    await old.close();
    const client = await connect(broker.url, { protocolVersion: 5, clientId: fresh("bad") });
    await assert.rejects(client.close({ reasonCode: 0x10 as 0 }), hasCode("INVALID_OPTION"));
    await client.close();
  },
);

brokerTest(
  "5.0: a subscription refused by the broker (dynamic security: 0x87) rejects with SubscribeError carrying .reasonCode",
  async () => {
    await using dynsec = await dynsecBroker();
    await using client = await connect(dynsec.broker.url, {
      protocolVersion: 5,
      clientId: fresh("refused"),
    });
    await assert.rejects(client.subscribe("secret/#", { qos: 1 }), (err) => {
      assert.ok(err instanceof SubscribeError);
      assert.equal(err.code, "SUBSCRIBE_FAILED");
      assert.equal(err.filter, "secret/#");
      assert.equal(err.reasonCode, 0x87);
      return true;
    });
    assert.ok(client.connected);
  },
);

for (const qos of [1, 2] as const) {
  brokerTest(
    `5.0: a QoS ${qos} publish refused by the broker's acl_file rejects with PublishRejectedError 0x87`,
    async () => {
      const dir = await Deno.makeTempDir({ prefix: "acl-" });
      await Deno.chmod(dir, 0o777);
      try {
        await Deno.writeTextFile(`${dir}/acl`, "topic readwrite open/#\n", { mode: 0o666 });
        await using broker = await startMosquitto({ extraConfig: `acl_file ${dir}/acl` });
        await using client = await connect(broker.url, {
          protocolVersion: 5,
          clientId: fresh("denied"),
          reconnect: { minDelay: 10, maxDelay: 50 },
        });
        const sub = await client.subscribe("open/#", { qos: 1 });
        await assert.rejects(client.publish("closed/x", "no", { qos }), (err) => {
          assert.ok(err instanceof PublishRejectedError, String(err));
          assert.equal(err.code, "PUBLISH_REJECTED");
          assert.equal(err.reasonCode, 0x87);
          assert.equal(err.topic, "closed/x");
          return true;
        });
        // At 5.0 Mosquitto 2.0.11 keeps the connection after the PUBACK/PUBREC 0x87 (its log:
        // "Denied PUBLISH", "Sending PUBACK (rc135)"), and the flow is over: the next one works.
        assert.ok(client.connected);
        await client.publish("open/x", "yes", { qos });
        const [msg] = await take(sub, 1, "the allowed publish");
        assert.equal(msg.text(), "yes");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}

brokerTest(
  "5.0 MQTT-3.1.2-23: session expiry: the session is present after a short gap, gone after the interval",
  async () => {
    await using broker = await startMosquitto();
    const clientId = fresh("expiry");
    const topic = fresh("v5/expiry");
    const options = {
      protocolVersion: 5 as const,
      clientId,
      clean: false,
      sessionExpiryInterval: 1,
    };
    const first = await connect(broker.url, options);
    await first.subscribe(topic, { qos: 1 });
    await first.close();
    await using other = await connect(broker.url, { protocolVersion: 5, clientId: fresh("pub") });
    await other.publish(topic, "while away", { qos: 1 });
    // Back within the interval: the session and the message queued for it are there.
    const second = await connect(broker.url, options);
    assert.equal(second.sessionPresent, true);
    const [queued] = await take(await second.subscribe(topic, { qos: 1 }), 1, "the queued message");
    assert.equal(queued.text(), "while away");
    await second.close();
    // Mosquitto expires sessions on a timer of about a second: wait well past the interval.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const third = await connect(broker.url, options);
    assert.equal(third.sessionPresent, false);
    await third.close();
  },
);

brokerTest(
  "5.0 MQTT-3.1.2-24/25: the server learns our maxPacketSize and discards larger messages for us",
  async () => {
    await using broker = await startMosquitto();
    await using client = await connect(broker.url, {
      protocolVersion: 5,
      clientId: fresh("small"),
      maxPacketSize: 100,
    });
    await using other = await connect(broker.url, { protocolVersion: 5, clientId: fresh("big") });
    const topic = fresh("v5/size");
    const sub = await client.subscribe(topic, { qos: 1 });
    await other.publish(topic, "x".repeat(200), { qos: 1 });
    await other.publish(topic, "small", { qos: 1 });
    const [first] = await take(sub, 1, "the small message");
    assert.equal(first.text(), "small");
    assert.ok(client.connected);
  },
);
