/**
 * The embedded broker at MQTT 5.0 (issue 14, "MQTT 5.0, server side"): CONNACK properties,
 * reason codes, server DISCONNECT, flow control, topic aliases, expiry, will delay,
 * subscription options and identifiers, shared subscriptions, 3.1.1 and 5.0 clients together.
 * Raw 5.0 packets where a client would not misbehave on purpose.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { QoS } from "../lib/codec/packet.ts";
import { bytes, connect5, delay, publishPacket, RawClient, withBroker } from "./broker_helpers.ts";

const decoder = new TextDecoder();

const publish = publishPacket;

/** Reads the next DISCONNECT and the close after it; returns its reason code. */
async function disconnectCode(client: RawClient): Promise<number> {
  const packet = await client.expect("disconnect");
  // MQTT-3.14.2-2: the server never sends a Session Expiry Interval in DISCONNECT.
  assert.equal(packet.properties?.sessionExpiryInterval, undefined);
  // MQTT-3.14.4-1/-2: nothing after it, and the connection is closed.
  const next = await client.read();
  assert.ok("closed" in next, `expected the close after DISCONNECT, got ${JSON.stringify(next)}`);
  return packet.reasonCode ?? 0;
}

Deno.test("[MQTT-3.2.2-16, MQTT-3.2.2-21, MQTT-3.1.2-28, MQTT-3.2.0-1] 5.0 CONNACK: reason 0 and the broker's limits as properties; an empty client id gets an Assigned Client Identifier", async () => {
  await withBroker(async (port, broker) => {
    const { client, connack } = await connect5(port, {
      clientId: "",
      keepAlive: 100,
      properties: { requestResponseInformation: true },
    });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, false);
    const p = connack.properties!;
    // MQTT-4.12.0-6: no Authentication Method without one in the CONNECT.
    assert.equal(p.authenticationMethod, undefined);
    assert.equal(p.receiveMaximum, 5);
    assert.equal(p.maximumQoS, 1);
    assert.equal(p.retainAvailable, false);
    assert.equal(p.maximumPacketSize, 1000);
    assert.equal(p.topicAliasMaximum, 4);
    assert.equal(p.serverKeepAlive, 30, "maxKeepAlive caps the 100 s asked for");
    assert.equal(p.wildcardSubscriptionAvailable, true);
    assert.equal(p.subscriptionIdentifiersAvailable, true);
    assert.equal(p.sharedSubscriptionAvailable, true);
    assert.equal(p.responseInformation, `resp/${p.assignedClientIdentifier}`);
    assert.match(p.assignedClientIdentifier!, /^auto-/);
    assert.equal(broker.stats().clients, 1);
    // Without Request Response Information, none is sent (MQTT-3.1.2-28).
    const second = await connect5(port, { clientId: "b" });
    assert.equal(second.connack.properties?.responseInformation, undefined);
    assert.equal(second.connack.properties?.assignedClientIdentifier, undefined);
    client.close();
    second.client.close();
  }, {
    maxInflight: 5,
    maxQoS: 1,
    retainAvailable: false,
    maxPacketSize: 1000,
    maxTopicAlias: 4,
    maxKeepAlive: 30,
    responseInformation: (client) => `resp/${client.id}`,
  });
});

Deno.test("3.1.1 and 5.0 clients on one broker: properties reach 5.0 subscribers unaltered, a 3.1.1 subscriber gets the message without them [MQTT-3.3.2-4, MQTT-3.3.2-15, MQTT-3.3.2-16, MQTT-3.3.2-17, MQTT-3.3.2-18, MQTT-3.3.2-20]", async () => {
  await withBroker(async (port) => {
    const { client: sub5 } = await connect5(port, { clientId: "sub5" });
    const { client: sub4 } = await RawClient.connect(port, { clientId: "sub4" });
    const { client: pub5 } = await connect5(port, { clientId: "pub5" });
    const { client: pub4 } = await RawClient.connect(port, { clientId: "pub4" });
    await sub5.subscribe([["x/#", 1]]);
    await sub4.subscribe([["x/#", 1]]);
    const properties = {
      payloadFormatIndicator: 1 as const,
      contentType: "text/plain",
      responseTopic: "reply/here",
      correlationData: new Uint8Array([1, 2, 3]),
      userProperties: [["b", "2"], ["a", "1"], ["b", "3"]] as [string, string][],
    };
    await pub5.send(publish("x/5", "from five", 1, { properties }));
    assert.equal((await pub5.expect("puback")).reasonCode, 0);
    const at5 = await sub5.expect("publish");
    assert.equal(decoder.decode(at5.payload), "from five");
    assert.deepEqual(
      at5.properties,
      properties,
      "every property as published, user properties in order",
    );
    await sub5.send({ type: "puback", packetId: at5.packetId! });
    const at4 = await sub4.expect("publish");
    assert.equal(decoder.decode(at4.payload), "from five");
    assert.equal(at4.properties, undefined);
    await sub4.send({ type: "puback", packetId: at4.packetId! });
    // And the other way round: a 3.1.1 message reaches the 5.0 client without properties.
    await pub4.publish("x/4", "from four", 1);
    await pub4.expect("puback");
    const from4 = await sub5.expect("publish");
    assert.equal(decoder.decode(from4.payload), "from four");
    assert.equal(from4.properties, undefined);
    for (const c of [sub5, sub4, pub5, pub4]) c.close();
  });
});

Deno.test("5.0 reason codes: PUBACK/PUBREC 0x10 no matching subscribers and 0x87 not authorized, SUBACK per filter, UNSUBACK 0x11 [MQTT-3.9.3-1, MQTT-3.11.3-1, MQTT-3.4.2-1, MQTT-3.5.2-1]", async () => {
  await withBroker(async (port) => {
    const { client } = await connect5(port, { clientId: "codes" });
    await client.send(publish("nobody", "x", 1));
    assert.equal((await client.expect("puback")).reasonCode, 0x10);
    await client.send(publish("secret/a", "x", 1));
    assert.equal((await client.expect("puback")).reasonCode, 0x87);
    await client.send(publish("secret/a", "x", 2, { packetId: 9 }));
    const pubrec = await client.expect("pubrec");
    assert.deepEqual([pubrec.packetId, pubrec.reasonCode], [9, 0x87]);
    await client.send({
      type: "subscribe",
      packetId: 3,
      subscriptions: [{ filter: "ok/#", qos: 2 }, { filter: "secret/#", qos: 1 }, {
        filter: "low",
        qos: 2,
      }],
    });
    const suback = await client.expect("suback");
    assert.deepEqual(suback.reasonCodes, [2, 0x87, 1]);
    await client.send(publish("ok/1", "x", 1, { packetId: 4 }));
    // The subscriber is the publisher: its delivery comes first, then PUBACK 0 (a subscriber).
    const delivered = await client.expect("publish");
    assert.equal(delivered.topic, "ok/1");
    assert.equal((await client.expect("puback")).reasonCode, 0);
    await client.send({ type: "unsubscribe", packetId: 5, filters: ["ok/#", "never"] });
    assert.deepEqual((await client.expect("unsuback")).reasonCodes, [0x00, 0x11]);
    client.close();
  }, {
    authorizePublish: (_c, topic) => !topic.startsWith("secret/"),
    authorizeSubscribe: (_c, filter, qos) =>
      filter.startsWith("secret/") ? false : filter === "low" ? 1 : qos,
  });
});

Deno.test("5.0 server DISCONNECT reason codes: 0x8E takeover, 0x82 protocol error, 0x81 malformed, 0x95 packet too large, 0x94 topic alias invalid, 0x93 receive maximum exceeded [MQTT-3.1.4-3, MQTT-3.14.0-1, MQTT-4.13.1-1]", async () => {
  await withBroker(async (port) => {
    const { client: first } = await connect5(port, { clientId: "same" });
    const { client: second } = await connect5(port, { clientId: "same" });
    assert.equal(await disconnectCode(first), 0x8e);

    await second.send({
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 5,
      clientId: "same",
      clean: true,
      keepAlive: 0,
    });
    assert.equal(await disconnectCode(second), 0x82, "a second CONNECT");

    const { client: malformed } = await connect5(port, { clientId: "m" });
    await malformed.sendBytes(new Uint8Array([0x36, 0x03, 0x00, 0x01, 0x74])); // PUBLISH QoS 3
    assert.equal(await disconnectCode(malformed), 0x81);

    const { client: large } = await connect5(port, { clientId: "l" });
    await large.send(publish("t", "x".repeat(300)));
    assert.equal(await disconnectCode(large), 0x95);

    const { client: alias } = await connect5(port, { clientId: "a" });
    await alias.send(publish("t", "x", 0, { properties: { topicAlias: 5 } }));
    assert.equal(await disconnectCode(alias), 0x94, "alias 5 over Topic Alias Maximum 4");

    const { client: unknown } = await connect5(port, { clientId: "u" });
    await unknown.send(publish("", "x", 0, { properties: { topicAlias: 2 } }));
    assert.equal(await disconnectCode(unknown), 0x82, "an alias never mapped");

    const { client: eager } = await connect5(port, { clientId: "e" });
    for (const id of [1, 2]) {
      await eager.send(publish("t", "x", 2, { packetId: id }));
      await eager.expect("pubrec");
    }
    await eager.send(publish("t", "x", 2, { packetId: 3 }));
    assert.equal(await disconnectCode(eager), 0x93, "a third QoS 2 PUBLISH without PUBREL");
  }, { maxPacketSize: 200, maxTopicAlias: 4, maxInflight: 2 });
});

Deno.test("5.0 server DISCONNECT 0x8D on keep-alive timeout, after which the will is published", async () => {
  await withBroker(async (port) => {
    const { client: watcher } = await connect5(port, { clientId: "w" });
    await watcher.subscribe([["will/#", 0]]);
    const { client } = await connect5(port, {
      clientId: "silent",
      keepAlive: 1,
      will: { topic: "will/silent", payload: bytes("gone"), qos: 0, retain: false },
    });
    assert.equal(await disconnectCode(client), 0x8d);
    assert.equal((await watcher.expect("publish")).topic, "will/silent");
    watcher.close();
  });
});

Deno.test("5.0 client DISCONNECT: reason 0x04 publishes the will, 0x00 does not [MQTT-3.1.2-10, MQTT-3.14.4-3, MQTT-3.1.3-10]", async () => {
  await withBroker(async (port) => {
    const { client: watcher } = await connect5(port, { clientId: "w" });
    await watcher.subscribe([["will/#", 0]]);
    for (const [id, code] of [["keep", 0x04], ["drop", 0x00]] as const) {
      const { client } = await connect5(port, {
        clientId: id,
        will: {
          topic: `will/${id}`,
          payload: bytes(id),
          qos: 0,
          retain: false,
          properties: {
            contentType: "text/plain",
            userProperties: [["k", "v"], ["a", "b"], ["k", "w"]],
          },
        },
      });
      await client.send({ type: "disconnect", reasonCode: code });
      await client.expectClosed();
    }
    const will = await watcher.expect("publish");
    assert.equal(will.topic, "will/keep");
    // MQTT-3.1.3-10: the will's user properties in their order.
    assert.deepEqual(will.properties, {
      contentType: "text/plain",
      userProperties: [["k", "v"], ["a", "b"], ["k", "w"]],
    });
    await watcher.expectSilence(200);
    watcher.close();
  });
});

Deno.test("5.0 flow control: never more QoS 1 in flight to a client than its Receive Maximum; a message over its Maximum Packet Size is dropped for it, the rest go on [MQTT-3.3.4-9, MQTT-3.3.4-10, MQTT-3.1.2-24, MQTT-3.1.2-25]", async () => {
  await withBroker(async (port, broker) => {
    const { client } = await connect5(port, {
      clientId: "slow",
      properties: { receiveMaximum: 2, maximumPacketSize: 100 },
    });
    await client.subscribe([["f/#", 1]]);
    for (let i = 0; i < 5; i++) broker.publish(`f/${i}`, "x", { qos: 1 });
    const first = [await client.expect("publish"), await client.expect("publish")];
    assert.deepEqual(first.map((p) => p.topic), ["f/0", "f/1"]);
    await client.expectSilence(150);
    // MQTT-3.3.4-10, MQTT-4.9.0-3: with the window full, other packets are still answered.
    await client.send({ type: "pingreq" });
    await client.expect("pingresp");
    await client.send({ type: "puback", packetId: first[0].packetId! });
    const f2 = await client.expect("publish");
    assert.equal(f2.topic, "f/2");
    await client.expectSilence(150);
    await client.send({ type: "puback", packetId: first[1].packetId! });
    const f3 = await client.expect("publish");
    assert.equal(f3.topic, "f/3");
    await client.send({ type: "puback", packetId: f2.packetId! });
    await client.send({ type: "puback", packetId: f3.packetId! });
    assert.equal((await client.expect("publish")).topic, "f/4");

    // Too large for this client: dropped, as if sent (MQTT-3.1.2-25); the next one arrives.
    await client.subscribe([["big/#", 0]], 2);
    broker.publish("big/1", "y".repeat(200), { qos: 1 });
    broker.publish("big/2", "z", { qos: 0 });
    assert.equal((await client.expect("publish")).topic, "big/2");
    client.close();
  });
});

Deno.test("5.0 topic aliases: the client's are resolved; the broker sends aliases up to the client's Topic Alias Maximum, fresh on each connection [MQTT-3.3.2-7, MQTT-3.3.2-10, MQTT-3.3.2-12, MQTT-3.2.2-18, MQTT-3.1.2-26, MQTT-3.1.2-27]", async () => {
  await withBroker(async (port) => {
    const receive = async () => {
      const { client } = await connect5(port, {
        clientId: "aliased",
        properties: { topicAliasMaximum: 1 },
      });
      return client;
    };
    let sub = await receive();
    await sub.subscribe([["long/#", 0]]);
    const { client: pub } = await connect5(port, { clientId: "pub" });
    await pub.send(publish("long/topic/name", "1", 0, { properties: { topicAlias: 3 } }));
    await pub.send(publish("", "2", 0, { properties: { topicAlias: 3 } }));
    await pub.send(publish("long/other", "3"));
    const got = [
      await sub.expect("publish"),
      await sub.expect("publish"),
      await sub.expect("publish"),
    ];
    assert.deepEqual(
      got.map((p) => [p.topic, p.properties?.topicAlias, decoder.decode(p.payload)]),
      [
        ["long/topic/name", 1, "1"],
        ["", 1, "2"],
        ["long/other", 1, "3"], // the only alias, given to the new topic
      ],
    );
    sub.close();
    // A new connection starts with no aliases: the topic is sent again with its alias.
    sub = await receive();
    await sub.subscribe([["long/#", 0]]);
    await pub.send(publish("long/other", "4"));
    const again = await sub.expect("publish");
    assert.deepEqual([again.topic, again.properties?.topicAlias], ["long/other", 1]);
    // A client that allows none gets none (MQTT-3.1.2-27).
    const { client: none } = await connect5(port, { clientId: "none" });
    await none.subscribe([["long/#", 0]]);
    await pub.send(publish("long/other", "5"));
    await sub.expect("publish");
    const plain = await none.expect("publish");
    assert.deepEqual([plain.topic, plain.properties?.topicAlias], ["long/other", undefined]);
    for (const c of [sub, pub, none]) c.close();
  });
});

Deno.test("5.0 Session Expiry Interval: the session outlives its connection for the interval, then is dropped; 0 ends it with the connection [MQTT-3.1.2-23, MQTT-4.1.0-2, MQTT-3.1.2-4]", async () => {
  await withBroker(async (port, broker) => {
    const open = (expiry: number | undefined, clean = false) =>
      connect5(port, {
        clientId: "exp",
        clean,
        properties: expiry === undefined ? undefined : { sessionExpiryInterval: expiry },
      });
    let { client, sessionPresent } = await open(1);
    assert.equal(sessionPresent, false);
    await client.subscribe([["e/#", 1]]);
    client.close();
    await delay(100);
    broker.publish("e/1", "kept", { qos: 1 });
    ({ client, sessionPresent } = await open(1));
    assert.equal(sessionPresent, true, "resumed within the interval");
    assert.equal(decoder.decode((await client.expect("publish")).payload), "kept");
    client.close();
    await delay(1300);
    assert.equal(broker.stats().sessions, 0, "dropped once the interval passed");
    ({ client, sessionPresent } = await open(undefined));
    assert.equal(sessionPresent, false);
    client.close();
    await delay(50);
    assert.equal(broker.stats().sessions, 0, "absent interval: ends with the connection");
    ({ client } = await open(60));
    client.close();
    await delay(50);
    ({ client, sessionPresent } = await open(60, true));
    assert.equal(sessionPresent, false, "Clean Start discards the held session");
    client.close();
  });
});

Deno.test("5.0 Message Expiry: the remaining interval is sent on; expired messages are dropped from queues and retained storage [MQTT-3.3.2-5, MQTT-3.3.2-6]", async () => {
  await withBroker(async (port, broker) => {
    const { client: sub } = await connect5(port, {
      clientId: "late",
      properties: { sessionExpiryInterval: 60 },
    });
    await sub.subscribe([["m/#", 1]]);
    sub.close();
    const { client: pub } = await connect5(port, { clientId: "pub" });
    await pub.send(publish("m/short", "s", 1, { properties: { messageExpiryInterval: 1 } }));
    await pub.expect("puback");
    await pub.send(
      publish("m/long", "l", 1, { packetId: 2, properties: { messageExpiryInterval: 30 } }),
    );
    await pub.expect("puback");
    await pub.send(
      publish("r/short", "r", 0, { retain: true, properties: { messageExpiryInterval: 1 } }),
    );
    await delay(1200);
    const { client: back } = await connect5(port, {
      clientId: "late",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    const got = await back.expect("publish");
    assert.equal(got.topic, "m/long", "the expired one was dropped from the queue");
    const remaining = got.properties!.messageExpiryInterval!;
    assert.ok(remaining <= 29 && remaining >= 27, `remaining ${remaining}`);
    await back.send({ type: "puback", packetId: got.packetId! });
    await back.subscribe([["r/#", 0]], 2);
    await back.expectSilence(150);
    assert.equal(broker.stats().retained, 0, "the expired retained message is gone");
    back.close();
    pub.close();
  });
});

Deno.test("5.0 Will Delay Interval: the will is published after the delay, not at all when the client returns within it [MQTT-3.1.3-9, MQTT-3.1.2-8]", async () => {
  await withBroker(async (port) => {
    const { client: watcher } = await connect5(port, { clientId: "w" });
    await watcher.subscribe([["will/#", 0]]);
    const open = () =>
      connect5(port, {
        clientId: "delayed",
        clean: false,
        properties: { sessionExpiryInterval: 60 },
        will: {
          topic: "will/delayed",
          payload: bytes("gone"),
          qos: 0,
          retain: false,
          properties: { willDelayInterval: 1 },
        },
      });
    let { client } = await open();
    client.close();
    await delay(300);
    ({ client } = await open()); // back within the delay: no will
    await watcher.expectSilence(1200);
    client.close();
    const closedAt = Date.now();
    const will = await watcher.expect("publish", 3000);
    assert.equal(will.topic, "will/delayed");
    assert.ok(Date.now() - closedAt >= 900, "not before the delay");
    watcher.close();
  });
});

Deno.test("5.0 subscription options: No Local, Retain As Published, Retain Handling 0/1/2 [MQTT-3.8.3-3, MQTT-3.3.1-9, MQTT-3.3.1-10, MQTT-3.3.1-11, MQTT-3.3.1-12, MQTT-3.3.1-13]", async () => {
  await withBroker(async (port, broker) => {
    broker.publish("r/t", "held", { retain: true });
    const { client } = await connect5(port, { clientId: "opts" });
    const sub = async (packetId: number, options: Record<string, unknown>, filter = "r/#") => {
      await client.send({
        type: "subscribe",
        packetId,
        subscriptions: [{ filter, qos: 0, ...options }],
      });
      await client.expect("suback");
    };
    await sub(1, { retainHandling: 0 });
    assert.equal((await client.expect("publish")).retain, true, "handling 0: sent");
    await sub(2, { retainHandling: 1 });
    await client.expectSilence(150); // handling 1 on an existing subscription: not sent
    await sub(3, { retainHandling: 1 }, "r/+");
    assert.equal((await client.expect("publish")).topic, "r/t", "handling 1, new: sent");
    await sub(4, { retainHandling: 2 }, "r/t");
    await client.expectSilence(150); // handling 2: never
    await client.send({ type: "unsubscribe", packetId: 5, filters: ["r/+", "r/t"] });
    await client.expect("unsuback");
    // No Local: not sent its own publications; Retain As Published keeps RETAIN.
    await sub(6, { noLocal: true }, "n/#");
    await client.send(publish("n/1", "mine"));
    await client.expectSilence(150);
    broker.publish("n/2", "other");
    assert.equal((await client.expect("publish")).topic, "n/2");
    await sub(7, { retainAsPublished: true, retainHandling: 2 });
    broker.publish("r/live", "x", { retain: true });
    assert.equal((await client.expect("publish")).retain, true, "as published");
    await sub(8, { retainAsPublished: false, retainHandling: 2 });
    broker.publish("r/live", "y", { retain: true });
    assert.equal((await client.expect("publish")).retain, false, "cleared without the option");
    client.close();
  });
});

Deno.test("5.0 Subscription Identifiers are sent with each matching message, all of them for overlapping subscriptions [MQTT-3.3.4-3, MQTT-3.3.4-4, MQTT-3.3.4-5]", async () => {
  await withBroker(async (port, broker) => {
    const { client } = await connect5(port, { clientId: "ids" });
    for (const [packetId, filter, id] of [[1, "s/#", 7], [2, "s/+", 300]] as const) {
      await client.send({
        type: "subscribe",
        packetId,
        subscriptions: [{ filter, qos: 0 }],
        properties: { subscriptionIdentifier: id },
      });
      await client.expect("suback");
    }
    broker.publish("s/x", "both");
    assert.deepEqual(
      (await client.expect("publish")).properties?.subscriptionIdentifiers?.sort((x, y) => x - y),
      [
        7,
        300,
      ],
    );
    broker.publish("s/x/y", "one");
    assert.deepEqual((await client.expect("publish")).properties?.subscriptionIdentifiers, [7]);
    client.close();
  });
});

Deno.test("5.0 shared subscriptions: one delivery per group; a leaving member's unacknowledged QoS 1 messages go to another member, a started QoS 2 one does not [MQTT-4.8.2-1, MQTT-4.8.2-2, MQTT-4.8.2-3, MQTT-4.8.2-5]", async () => {
  await withBroker(async (port, broker) => {
    const { client: a } = await connect5(port, { clientId: "a" });
    const { client: b } = await connect5(port, { clientId: "b" });
    const { client: plain } = await connect5(port, { clientId: "plain" });
    await a.subscribe([["$share/g/jobs/#", 1]]);
    await b.subscribe([["$share/g/jobs/#", 1]]);
    await plain.subscribe([["jobs/#", 0]]);
    for (let i = 0; i < 4; i++) broker.publish(`jobs/${i}`, String(i), { qos: 1 });
    const atA = [await a.expect("publish"), await a.expect("publish")];
    const atB = [await b.expect("publish"), await b.expect("publish")];
    const topics = [...atA, ...atB].map((p) => p.topic).sort();
    assert.deepEqual(topics, ["jobs/0", "jobs/1", "jobs/2", "jobs/3"], "each once over the group");
    for (let i = 0; i < 4; i++) await plain.expect("publish"); // a plain subscriber gets all
    for (const p of atB) await b.send({ type: "puback", packetId: p.packetId! });
    // a leaves without acknowledging its two: b gets them.
    a.close();
    const redelivered = [await b.expect("publish"), await b.expect("publish")];
    assert.deepEqual(redelivered.map((p) => p.topic).sort(), atA.map((p) => p.topic).sort());
    for (const p of redelivered) await b.send({ type: "puback", packetId: p.packetId! });
    // A QoS 2 delivery started to a member whose session ends goes to nobody else (MQTT-4.8.2-5).
    const { client: c } = await connect5(port, { clientId: "c" });
    await c.subscribe([["$share/g/jobs/#", 2]]);
    await b.subscribe([["$share/g/jobs/#", 2]], 2);
    broker.publish("jobs/q2", "a", { qos: 2 });
    broker.publish("jobs/q2", "b", { qos: 2 });
    const started = await c.expect("publish");
    assert.equal(started.qos, 2);
    const other = await b.expect("publish");
    assert.notEqual(decoder.decode(other.payload), decoder.decode(started.payload));
    c.close(); // its session ends with the connection: the started QoS 2 message is not passed on
    await b.expectSilence(200);
    // A ShareName without a Topic Filter after it is a protocol error (MQTT-4.8.2-2).
    await b.send({
      type: "subscribe",
      packetId: 9,
      subscriptions: [{ filter: "$share/g", qos: 0 }],
    });
    assert.equal(await disconnectCode(b), 0x82);
    b.close();
    plain.close();
  });
});

Deno.test("5.0 CONNECT refusals: a will over maxQoS gets 0x9B, a retained will without retainAvailable 0x9A, session present 0, then closed; SUBSCRIBE at QoS 2 is still granted [MQTT-3.2.2-6, MQTT-3.2.2-7, MQTT-3.2.2-9, MQTT-3.2.2-10, MQTT-3.2.2-12, MQTT-3.2.2-13]", async () => {
  await withBroker(async (port) => {
    const will = (qos: QoS, retain: boolean) => ({
      topic: "w",
      payload: bytes("x"),
      qos,
      retain,
    });
    for (const [w, code] of [[will(2, false), 0x9b], [will(0, true), 0x9a]] as const) {
      const { client, connack } = await connect5(port, { clientId: "refused", will: w });
      assert.deepEqual([connack.reasonCode, connack.sessionPresent], [code, false]);
      await client.expectClosed();
      client.close();
    }
    const { client, connack } = await connect5(port, { clientId: "ok" });
    assert.equal(connack.properties?.maximumQoS, 1);
    assert.deepEqual(await client.subscribe([["t", 2]]), [1]);
    client.close();
  }, { maxQoS: 1, retainAvailable: false });
});

Deno.test("5.0 session resumed: unacknowledged QoS 1 resent with DUP and its id, PUBREL resent for QoS 2 past PUBREC [MQTT-4.4.0-1, MQTT-3.1.2-5, MQTT-3.2.2-3, MQTT-3.3.1-1, MQTT-4.8.2-4]", async () => {
  await withBroker(async (port, broker) => {
    const open = (clean: boolean) =>
      connect5(port, { clientId: "resume", clean, properties: { sessionExpiryInterval: 60 } });
    let { client } = await open(true);
    await client.subscribe([["q/#", 2]]);
    broker.publish("q/1", "one", { qos: 1 });
    broker.publish("q/2", "two", { qos: 2 });
    const p1 = await client.expect("publish");
    const p2 = await client.expect("publish");
    await client.send({ type: "pubrec", packetId: p2.packetId! });
    await client.expect("pubrel");
    client.close();
    let sessionPresent;
    ({ client, sessionPresent } = await open(false));
    assert.equal(sessionPresent, true);
    const again = await client.expect("publish");
    assert.deepEqual([again.topic, again.packetId, again.dup], ["q/1", p1.packetId, true]);
    const pubrel = await client.expect("pubrel");
    assert.equal(pubrel.packetId, p2.packetId);
    client.close();
  });
});

Deno.test("5.0 a PUBACK of 0x80 or more from the client ends the delivery: not resent, not given to another member of its group [MQTT-4.8.2-6, MQTT-4.4.0-2]", async () => {
  await withBroker(async (port, broker) => {
    const { client: a } = await connect5(port, {
      clientId: "a",
      properties: { sessionExpiryInterval: 60 },
    });
    const { client: b } = await connect5(port, { clientId: "b" });
    await a.subscribe([["$share/g/r/#", 1]]);
    await b.subscribe([["$share/g/r/#", 1]]);
    broker.publish("r/1", "x", { qos: 1 });
    // Members take turns in the order they joined: the first message goes to a.
    const got = await a.expect("publish");
    await a.send({ type: "puback", packetId: got.packetId!, reasonCode: 0x80 });
    await b.expectSilence(200);
    a.close();
    await b.expectSilence(200); // not when a's connection ends either
    const { client: back } = await connect5(port, {
      clientId: "a",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    await back.expectSilence(200); // and not resent to a
    back.close();
    b.close();
  });
});
