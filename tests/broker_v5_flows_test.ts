/**
 * The embedded broker at MQTT 5.0: the last open statements of
 * docs/conformance_broker_5.md, on reserved subscription-option bits, a
 * session kept while connected, packet identifiers reused after a flow ends,
 * and Message Expiry against QoS 2 flows already under way.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { QoS } from "../lib/codec/packet.ts";
import { bytes, connect5, delay, publishPacket, withBroker } from "./broker_helpers.ts";

const decoder = new TextDecoder();

const publish = publishPacket;

async function subscriber(port: number, filter: string, qos: QoS, clientId = "sub") {
  const { client } = await connect5(port, { clientId });
  await client.send({ type: "subscribe", packetId: 1, subscriptions: [{ filter, qos }] });
  await client.expect("suback");
  return client;
}

Deno.test("[MQTT-3.8.3-5] 5.0 SUBSCRIBE with reserved bits 6-7 of the subscription options set is malformed: DISCONNECT 0x81", async () => {
  await withBroker(async (port, broker) => {
    const { client } = await connect5(port, { clientId: "reserved" });
    const filter = bytes("r/x");
    // SUBSCRIBE: id 1, no properties, filter "r/x", options 0xC1 (QoS 1, bits 6 and 7 set).
    const body = [0, 1, 0, 0, filter.length, ...filter, 0xc1];
    await client.sendBytes(new Uint8Array([0x82, body.length, ...body]));
    const packet = await client.expect("disconnect");
    assert.equal(packet.reasonCode, 0x81);
    await client.expectClosed();
    assert.equal(broker.stats().subscriptions, 0);
    client.close();
  });
});

Deno.test("[MQTT-4.1.0-1] 5.0 a session is kept past its expiry interval while its connection is open", async () => {
  await withBroker(async (port, broker) => {
    const { client } = await connect5(port, {
      clientId: "kept",
      clean: false,
      properties: { sessionExpiryInterval: 1 },
    });
    await client.send({ type: "subscribe", packetId: 1, subscriptions: [{ filter: "k", qos: 1 }] });
    await client.expect("suback");
    await delay(1300);
    assert.equal(broker.stats().sessions, 1);
    broker.publish("k", "still subscribed", { qos: 1 });
    const message = await client.expect("publish");
    assert.equal(decoder.decode(message.payload), "still subscribed");
    await client.send({ type: "puback", packetId: message.packetId! });
    client.close();
  });
});

Deno.test("[MQTT-4.3.2-5] 5.0 after PUBACK a QoS 1 PUBLISH with the same packet id is a new message, DUP or not", async () => {
  await withBroker(async (port) => {
    const sub = await subscriber(port, "q1", 1);
    const { client: pub } = await connect5(port, { clientId: "pub" });
    await pub.send(publish("q1", "first", 1, { packetId: 4 }));
    assert.equal((await pub.expect("puback")).packetId, 4);
    await pub.send(publish("q1", "second", 1, { packetId: 4, dup: true }));
    assert.equal((await pub.expect("puback")).packetId, 4);
    for (const expected of ["first", "second"]) {
      const message = await sub.expect("publish");
      assert.equal(decoder.decode(message.payload), expected);
      await sub.send({ type: "puback", packetId: message.packetId! });
    }
    pub.close();
    sub.close();
  });
});

Deno.test("[MQTT-4.3.3-9] 5.0 after PUBREC 0x87 a PUBLISH with the same packet id is a new message", async () => {
  await withBroker(async (port) => {
    const sub = await subscriber(port, "#", 2);
    const { client: pub } = await connect5(port, { clientId: "pub" });
    await pub.send(publish("deny/x", "refused", 2, { packetId: 5 }));
    const refused = await pub.expect("pubrec");
    assert.equal(refused.reasonCode, 0x87);
    // MQTT-4.3.3-9: the id is free again; no PUBREL is needed for it.
    await pub.send(publish("ok/x", "accepted", 2, { packetId: 5 }));
    const accepted = await pub.expect("pubrec");
    assert.equal(accepted.packetId, 5);
    assert.equal(accepted.reasonCode ?? 0, 0);
    await pub.send({ type: "pubrel", packetId: 5 });
    assert.equal((await pub.expect("pubcomp")).packetId, 5);
    const message = await sub.expect("publish");
    assert.equal(decoder.decode(message.payload), "accepted");
    pub.close();
    sub.close();
  }, { authorizePublish: (_client, topic) => !topic.startsWith("deny/") });
});

Deno.test("[MQTT-4.3.3-12] 5.0 after PUBCOMP a QoS 2 PUBLISH with the same packet id is a new message", async () => {
  await withBroker(async (port) => {
    const sub = await subscriber(port, "q2", 0);
    const { client: pub } = await connect5(port, { clientId: "pub" });
    for (const payload of ["first", "second"]) {
      await pub.send(publish("q2", payload, 2, { packetId: 6, dup: payload === "second" }));
      assert.equal((await pub.expect("pubrec")).packetId, 6);
      await pub.send({ type: "pubrel", packetId: 6 });
      assert.equal((await pub.expect("pubcomp")).packetId, 6);
      assert.equal(decoder.decode((await sub.expect("publish")).payload), payload);
    }
    pub.close();
    sub.close();
  });
});

Deno.test("[MQTT-4.3.3-7] 5.0 a QoS 2 message sent before its expiry is resent after it, on resume", async () => {
  await withBroker(async (port) => {
    const session = { clientId: "slow", clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = await connect5(port, session);
    await first.client.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ filter: "e", qos: 2 }],
    });
    await first.client.expect("suback");
    const { client: pub } = await connect5(port, { clientId: "pub" });
    await pub.send(
      publish("e", "short-lived", 2, { packetId: 1, properties: { messageExpiryInterval: 1 } }),
    );
    await pub.expect("pubrec");
    await pub.send({ type: "pubrel", packetId: 1 });
    await pub.expect("pubcomp");
    const sent = await first.client.expect("publish");
    first.client.close(); // no PUBREC: the flow is under way
    await delay(1300); // its interval ends
    const { client, sessionPresent } = await connect5(port, session);
    assert.equal(sessionPresent, true);
    const again = await client.expect("publish");
    assert.equal(again.packetId, sent.packetId);
    assert.equal(again.dup, true);
    assert.equal(decoder.decode(again.payload), "short-lived");
    await client.send({ type: "pubrec", packetId: again.packetId! });
    assert.equal((await client.expect("pubrel")).packetId, again.packetId);
    await client.send({ type: "pubcomp", packetId: again.packetId! });
    client.close();
    pub.close();
  });
});

Deno.test("[MQTT-4.3.3-13] 5.0 QoS 2 acknowledgements go on after a message's expiry: PUBCOMP to a late PUBREL, PUBREL to a late PUBREC", async () => {
  await withBroker(async (port) => {
    const sub = await subscriber(port, "late", 2);
    const { client: pub } = await connect5(port, { clientId: "pub" });
    const expiring = { properties: { messageExpiryInterval: 1 } };
    // The broker as receiver.
    await pub.send(publish("late", "expiring", 2, { packetId: 8, ...expiring }));
    assert.equal((await pub.expect("pubrec")).packetId, 8);
    // The broker as sender: the subscriber holds back its PUBREC.
    const message = await sub.expect("publish");
    await delay(1300);
    await pub.send({ type: "pubrel", packetId: 8 });
    const pubcomp = await pub.expect("pubcomp");
    assert.equal(pubcomp.packetId, 8);
    assert.equal(pubcomp.reasonCode ?? 0, 0);
    await sub.send({ type: "pubrec", packetId: message.packetId! });
    const pubrel = await sub.expect("pubrel");
    assert.equal(pubrel.packetId, message.packetId);
    assert.equal(pubrel.reasonCode ?? 0, 0);
    await sub.send({ type: "pubcomp", packetId: message.packetId! });
    await sub.expectSilence();
    pub.close();
    sub.close();
  });
});
