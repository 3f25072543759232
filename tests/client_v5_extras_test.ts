/**
 * MQTT 5.0 beyond the core against a real Mosquitto 2.0.11: outgoing topic aliases, request/
 * response, shared subscriptions across two clients, Subscription Identifiers, message expiry of
 * queued messages. (Mosquitto never sends topic aliases to clients, and does not implement
 * enhanced authentication: incoming aliases and AUTH are tested against a scripted server in
 * `client_v5_scripted_extras_test.ts`.)
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type Message, type MqttClient } from "../mod.ts";
import { encodePacket } from "../lib/codec/encode.ts";
import type { QoS } from "../lib/codec/packet.ts";
import { brokerTest, startMosquitto, startProxy } from "./broker/mod.ts";
import { fresh, hasCode, take, within } from "./client_helpers.ts";

/** Resolves on the client's next `connect` event. */
function reconnected(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    client.addEventListener("connect", () => resolve(), { once: true });
  });
}

/** Six 100-byte topics; the publishes below favour the first two, so aliases are reused and replaced. */
const TOPICS = Array.from({ length: 6 }, (_, i) => `alias/${i}/`.padEnd(100, "x"));

function topicOf(i: number): string {
  // Deterministic skew: 3 of 4 publishes go to the two hot topics.
  return TOPICS[i % 4 !== 3 ? i % 2 : 2 + ((i * 7) % 4)];
}

brokerTest(
  "5.0: 1,000 publishes through outgoing topic aliases reach a subscriber with their topics, across a reconnect (MQTT-3.2.2-17, MQTT-3.3.2-7, MQTT-3.3.2-9)",
  async () => {
    // Mosquitto disconnects a client that sends an alias above max_topic_alias (0x94) or an
    // empty topic with an alias it does not know (0x82): both would lose messages here.
    await using broker = await startMosquitto({ extraConfig: "max_topic_alias 3" });
    await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
    await using subscriber = await connect(broker.url, { protocolVersion: 5 });
    const sub = await subscriber.subscribe("alias/#", { qos: 1, bufferSize: 2000 });
    await using publisher = await connect(proxy.url, {
      protocolVersion: 5,
      clientId: fresh("aliases"),
      reconnect: { minDelay: 10, maxDelay: 50 },
    });
    assert.equal(publisher.connack.properties.topicAliasMaximum, 3);

    // First 500: QoS 0, 1 and 2 mixed, all in flight at once.
    const first: Promise<unknown>[] = [];
    for (let i = 0; i < 500; i++) {
      first.push(publisher.publish(topicOf(i), String(i), { qos: (i % 3) as QoS }));
    }
    await within(Promise.all(first), "the first 500 publishes");
    const upBefore = proxy.bytes.up;

    // Cut the link: the next 500 (QoS 1) go to the dying connection or wait in the queue, and
    // are sent on the new connection, whose alias table starts empty.
    const back = reconnected(publisher);
    proxy.cut();
    const second: Promise<unknown>[] = [];
    for (let i = 500; i < 1000; i++) {
      second.push(publisher.publish(topicOf(i), String(i), { qos: 1 }));
    }
    await within(back, "the reconnect");
    await within(Promise.all(second), "the last 500 publishes");

    const received = await take(sub, 1000, "1,000 aliased messages");
    const seen = new Set<number>();
    for (const msg of received) {
      const i = Number(msg.text());
      assert.equal(msg.topic, topicOf(i), `message ${i} arrived on the topic it was published to`);
      seen.add(i);
    }
    assert.equal(seen.size, 1000, "each of the 1,000 arrived");
    assert.ok(publisher.connected);

    // Without aliases the first 500 PUBLISH would take this many bytes: aliases saved at least half.
    let plain = 0;
    for (let i = 0; i < 500; i++) {
      const qos = (i % 3) as QoS;
      plain += encodePacket(
        {
          type: "publish",
          topic: topicOf(i),
          payload: new TextEncoder().encode(String(i)),
          qos,
          retain: false,
          dup: false,
          packetId: qos === 0 ? undefined : 1,
        },
        { protocolVersion: 5 },
      ).length;
    }
    assert.ok(upBefore < plain / 2, `${upBefore} bytes up with aliases, ${plain} without`);
  },
);

brokerTest(
  "5.0: request() gets the reply respond() sends, routed by correlation data (section 4.10)",
  async () => {
    await using broker = await startMosquitto();
    await using server = await connect(broker.url, { protocolVersion: 5 });
    const requests = await server.subscribe("svc/double", { qos: 1 });
    const serving = (async () => {
      for await (const req of requests) {
        await server.respond(req, String(2 * Number(req.text())));
      }
    })();
    await using client = await connect(broker.url, { protocolVersion: 5 });
    const replies = await within(
      Promise.all([1, 2, 3].map((n) => client.request("svc/double", String(n), { timeout: 5000 }))),
      "three replies",
    );
    assert.deepEqual(replies.map((m: Message) => m.text()), ["2", "4", "6"]);
    for (const reply of replies) assert.equal(reply.properties?.correlationData?.length, 16);
    // Nobody answers on this topic: the request times out with its typed error.
    await assert.rejects(
      client.request("svc/nobody", "x", { timeout: 200 }),
      hasCode("REQUEST_TIMEOUT"),
    );
    await server.close();
    await serving;
  },
);

brokerTest(
  "5.0: a shared subscription splits messages between two clients, each reaching its Subscription (section 4.8.2)",
  async () => {
    await using broker = await startMosquitto();
    await using a = await connect(broker.url, { protocolVersion: 5 });
    await using b = await connect(broker.url, { protocolVersion: 5 });
    const subA = await a.subscribe("$share/workers/jobs/+", { qos: 1, bufferSize: 200 });
    const subB = await b.subscribe("$share/workers/jobs/+", { qos: 1, bufferSize: 200 });
    await using producer = await connect(broker.url, { protocolVersion: 5 });
    for (let i = 0; i < 40; i++) await producer.publish(`jobs/${i}`, String(i), { qos: 1 });
    // Mosquitto 2.0.11 shares round-robin: each member gets half.
    const fromA = await take(subA, 20, "client a's share");
    const fromB = await take(subB, 20, "client b's share");
    const all = [...fromA, ...fromB].map((m) => Number(m.text())).sort((x, y) => x - y);
    assert.deepEqual(all, Array.from({ length: 40 }, (_, i) => i), "each job went to one worker");
    assert.equal(a.sessionSubscriptions.get("$share/workers/jobs/+"), 1);
  },
);

brokerTest(
  "5.0: Subscription Identifiers route overlapping subscriptions' messages exactly (MQTT-3.3.4-3)",
  async () => {
    await using broker = await startMosquitto();
    await using client = await connect(broker.url, { protocolVersion: 5 });
    assert.notEqual(client.connack.properties.subscriptionIdentifiersAvailable, false);
    const wide = await client.subscribe("ids/#", { qos: 1 });
    const narrow = await client.subscribe("ids/a", { qos: 1 });
    assert.ok(wide.identifier !== undefined && narrow.identifier !== undefined);
    assert.notEqual(wide.identifier, narrow.identifier);
    // Mosquitto sends one copy per matching subscription, each with its identifier: matched by
    // filter alone, each subscription would take both copies of "both".
    await client.publish("ids/a", "both", { qos: 1 });
    await client.publish("ids/b", "wide only", { qos: 1 });
    const [w1, w2] = await take(wide, 2, "the wide subscription's messages");
    const [n1] = await take(narrow, 1, "the narrow subscription's message");
    assert.deepEqual([w1.text(), w2.text(), n1.text()], ["both", "wide only", "both"]);
    assert.ok(w1.properties?.subscriptionIdentifiers?.includes(wide.identifier!));
    assert.ok(n1.properties?.subscriptionIdentifiers?.includes(narrow.identifier!));
    assert.equal(narrow.buffered, 0, "ids/b did not reach the narrow subscription");
  },
);

brokerTest(
  "5.0: a queued publish whose Message Expiry Interval passed offline is not sent; one still valid carries what remains",
  async () => {
    await using broker = await startMosquitto();
    await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
    await using subscriber = await connect(broker.url, { protocolVersion: 5 });
    const sub = await subscriber.subscribe("expiry/#", { qos: 1 });
    await using client = await connect(proxy.url, {
      protocolVersion: 5,
      connectTimeout: 300,
      reconnect: { minDelay: 20, maxDelay: 50 },
    });
    client.addEventListener("error", () => {}); // the black-holed attempts time out
    const lost = new Promise<void>((resolve) =>
      client.addEventListener("disconnect", () => resolve(), { once: true })
    );
    // Offline, with every reconnect attempt swallowed until the short interval has passed.
    proxy.blackhole(true);
    proxy.cut();
    await within(lost, "the client to notice the cut");
    const expired = client.publish("expiry/short", "late", {
      qos: 1,
      properties: { messageExpiryInterval: 1 },
    });
    const kept = client.publish("expiry/long", "on time", {
      qos: 1,
      properties: { messageExpiryInterval: 60 },
    });
    assert.equal(client.queued, 2);
    await new Promise((resolve) => setTimeout(resolve, 1300));
    const back = reconnected(client);
    proxy.blackhole(false);
    await within(back, "the reconnect");
    await assert.rejects(expired, hasCode("MESSAGE_EXPIRED"));
    await kept;
    const [msg] = await take(sub, 1, "the message that did not expire");
    assert.equal(msg.text(), "on time");
    const remaining = msg.properties?.messageExpiryInterval!;
    assert.ok(remaining < 60 && remaining >= 50, `remaining interval ${remaining}`);
    assert.equal(sub.buffered, 0, "the expired message never arrived");
  },
);
