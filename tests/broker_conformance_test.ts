/**
 * The server statements of MQTT 3.1.1 (binds = server), each proven against
 * the embedded broker, and the check of docs/conformance_broker.md: every one
 * of the 69 statements has a row, and every test a row cites exists.
 */
import assert from "node:assert/strict";
import type { PublishPacket } from "../lib/codec/packet.ts";
import { bytes, RawClient, rawConnect, withBroker } from "./broker_helpers.ts";
import { SERVER_IDS } from "./conformance_ids.ts";

const decoder = new TextDecoder();
const text = (payload: Uint8Array) => decoder.decode(payload);

/** The connection is closed before any packet arrives. */
async function closedWithoutAnswer(client: RawClient): Promise<void> {
  const result = await client.read();
  assert.ok("closed" in result, `expected the connection closed, got ${JSON.stringify(result)}`);
}

Deno.test("[MQTT-2.3.1-4] outgoing QoS 1 and 2 PUBLISH carry non-zero ids unused while in flight", async () => {
  await withBroker(async (port, broker) => {
    const { client } = await RawClient.connect(port, { clientId: "ids" });
    await client.subscribe([["t/#", 2]]);
    for (let i = 0; i < 20; i++) broker.publish(`t/${i}`, "x", { qos: (1 + (i % 2)) as 1 | 2 });
    const ids = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const { packetId } = await client.expect("publish");
      assert.ok(packetId !== undefined && packetId > 0);
      ids.add(packetId);
    }
    assert.equal(ids.size, 20, "twenty flows in flight, twenty ids");
    client.close();
  });
});

Deno.test("[MQTT-2.3.1-7, MQTT-3.8.4-1, MQTT-3.8.4-2, MQTT-3.10.4-4] SUBACK and UNSUBACK carry the request's packet id", async () => {
  await withBroker(async (port) => {
    const { client } = await RawClient.connect(port, { clientId: "acks" });
    await client.send({
      type: "subscribe",
      packetId: 4242,
      subscriptions: [{ filter: "a", qos: 1 }],
    });
    assert.equal((await client.expect("suback")).packetId, 4242);
    await client.send({ type: "unsubscribe", packetId: 777, filters: ["a"] });
    assert.equal((await client.expect("unsuback")).packetId, 777);
    client.close();
  });
});

Deno.test("[MQTT-3.1.2-1] a CONNECT with another protocol name is not accepted: the client is disconnected", async () => {
  await withBroker(async (port, broker) => {
    using client = await RawClient.open(port);
    await client.sendBytes(rawConnect(4, "c", 0x02, "MQTX"));
    const result = await client.read();
    if ("packet" in result) {
      // A refusing CONNACK is allowed before the disconnect; an accepting one is not.
      assert.equal(result.packet.type, "connack");
      assert.notEqual((result.packet as { returnCode: number }).returnCode, 0);
      await client.expectClosed();
    }
    assert.equal(broker.stats().clients, 0);
  });
});

Deno.test("[MQTT-3.1.2-3] a CONNECT with the reserved flag set: disconnected without CONNACK", async () => {
  await withBroker(async (port) => {
    using client = await RawClient.open(port);
    await client.sendBytes(rawConnect(4, "c", 0x03));
    await closedWithoutAnswer(client);
  });
});

Deno.test("[MQTT-3.1.4-1, MQTT-3.2.2-6] a malformed CONNECT (will QoS without will flag): closed without CONNACK", async () => {
  await withBroker(async (port) => {
    using client = await RawClient.open(port);
    await client.sendBytes(rawConnect(4, "c", 0x02 | 0x08));
    await closedWithoutAnswer(client);
  });
});

Deno.test("[MQTT-3.1.2-7] retained messages outlive the session that published them", async () => {
  await withBroker(async (port) => {
    const { client: pub } = await RawClient.connect(port, { clientId: "gone", clean: true });
    await pub.send({
      type: "publish",
      topic: "kept",
      payload: bytes("still here"),
      qos: 1,
      retain: true,
      dup: false,
      packetId: 1,
    });
    await pub.expect("puback");
    await pub.send({ type: "disconnect" });
    await pub.expectClosed();
    pub.close();
    const { client } = await RawClient.connect(port, { clientId: "later" });
    await client.subscribe([["kept", 0]]);
    assert.equal(text((await client.expect("publish")).payload), "still here");
    client.close();
  });
});

Deno.test("[MQTT-3.1.2-8, MQTT-3.1.2-12, MQTT-3.1.2-16, MQTT-3.1.2-17] wills: none without the flag, retained only with will retain", async () => {
  await withBroker(async (port, broker) => {
    const { client: watcher } = await RawClient.connect(port, { clientId: "watcher" });
    await watcher.subscribe([["will/#", 1]]);
    const will = (topic: string, retain: boolean) => ({
      topic,
      payload: bytes(topic),
      qos: 1 as const,
      retain,
    });
    for (
      const [clientId, w] of [
        ["plain", will("will/plain", false)],
        ["kept", will("will/kept", true)],
        ["none", undefined],
      ] as const
    ) {
      const { client } = await RawClient.connect(port, { clientId, will: w });
      client.close(); // no DISCONNECT
    }
    const got = new Map<string, PublishPacket>();
    for (let i = 0; i < 2; i++) {
      const message = await watcher.expect("publish");
      got.set(message.topic, message);
      await watcher.send({ type: "puback", packetId: message.packetId! });
    }
    await watcher.expectSilence(200); // no will for the client without one
    assert.deepEqual([...got.keys()].sort(), ["will/kept", "will/plain"]);
    // Live deliveries have RETAIN 0 (MQTT-3.3.1-9); only the will-retain one is stored.
    assert.equal(broker.stats().retained, 1);
    const { client: late } = await RawClient.connect(port, { clientId: "late" });
    await late.subscribe([["will/#", 0]]);
    const stored = await late.expect("publish");
    assert.equal(stored.topic, "will/kept");
    assert.equal(stored.retain, true);
    await late.expectSilence(100);
    late.close();
    watcher.close();
  });
});

Deno.test("[MQTT-3.1.3-5] client ids of 1 to 23 letters and digits are accepted", async () => {
  await withBroker(async (port) => {
    for (const clientId of ["a", "Z9", "abcdefghijklmnopqrstuvw", "0123456789ABCDEFGHIJKLM"]) {
      const { client, returnCode } = await RawClient.connect(port, { clientId });
      assert.equal(returnCode, 0, clientId);
      client.close();
    }
  });
});

Deno.test("[MQTT-3.1.3-9, MQTT-3.2.2-4, MQTT-3.2.2-5] a rejected identifier: CONNACK 2, session present 0, then closed", async () => {
  await withBroker(async (port) => {
    using client = await RawClient.open(port);
    await client.sendBytes(rawConnect(4, "", 0x00)); // empty id with clean session 0
    const connack = await client.expect("connack");
    assert.equal(connack.returnCode, 2);
    assert.equal(connack.sessionPresent, false);
    await client.expectClosed();
  });
});

Deno.test("[MQTT-3.1.4-3, MQTT-3.1.4-4, MQTT-3.2.0-1, MQTT-3.2.2-1, MQTT-3.2.2-2, MQTT-3.2.2-3] CONNACK first, code 0, session present as clean session decides", async () => {
  await withBroker(async (port) => {
    const connect = async (clean: boolean) => {
      using client = await RawClient.open(port);
      await client.send({
        type: "connect",
        protocolName: "MQTT",
        protocolLevel: 4,
        clientId: "sp",
        clean,
        keepAlive: 0,
      });
      const first = await client.read();
      assert.ok("packet" in first && first.packet.type === "connack", "CONNACK comes first");
      assert.equal(first.packet.returnCode, 0);
      if (!clean) {
        await client.send({
          type: "subscribe",
          packetId: 1,
          subscriptions: [{ filter: "x", qos: 1 }],
        });
        await client.expect("suback");
      }
      await client.send({ type: "disconnect" });
      await client.expectClosed();
      return first.packet.sessionPresent;
    };
    assert.equal(await connect(true), false, "clean session 1: session present 0");
    assert.equal(await connect(false), false, "no session held: session present 0");
    assert.equal(await connect(false), true, "a session held: session present 1");
    assert.equal(await connect(true), false, "clean session 1 discards it");
    assert.equal(await connect(false), false, "so none is held afterwards");
  });
});

Deno.test("[MQTT-3.1.4-5] after a refused CONNECT nothing the client sent after it is processed", async () => {
  await withBroker(async (port, broker) => {
    using client = await RawClient.open(port);
    const connect = rawConnect(4, "refused", 0x02);
    const { encodePacket } = await import("../lib/codec/mod.ts");
    const publish = encodePacket({
      type: "publish",
      topic: "sneaked",
      payload: bytes("in"),
      qos: 0,
      retain: true,
      dup: false,
    });
    await client.sendBytes(new Uint8Array([...connect, ...publish]));
    assert.equal((await client.expect("connack")).returnCode, 4);
    await client.expectClosed();
    assert.equal(broker.stats().messagesReceived, 0);
    assert.equal(broker.stats().retained, 0);
  }, { authenticate: () => false });
});

Deno.test("[MQTT-3.3.1-3] the DUP flag of an incoming PUBLISH is not passed on", async () => {
  await withBroker(async (port) => {
    const { client: sub } = await RawClient.connect(port, { clientId: "sub" });
    await sub.subscribe([["d", 1]]);
    const { client: pub } = await RawClient.connect(port, { clientId: "pub" });
    await pub.send({
      type: "publish",
      topic: "d",
      payload: bytes("resent"),
      qos: 1,
      retain: false,
      dup: true,
      packetId: 5,
    });
    await pub.expect("puback");
    assert.equal((await sub.expect("publish")).dup, false);
    pub.close();
    sub.close();
  });
});

Deno.test("[MQTT-3.3.1-5, MQTT-3.3.1-6, MQTT-3.3.1-8, MQTT-3.3.1-9, MQTT-3.3.1-12] retained with its QoS, sent on subscribe with RETAIN 1; a non-retained PUBLISH replaces nothing", async () => {
  await withBroker(async (port) => {
    const { client: pub } = await RawClient.connect(port, { clientId: "pub" });
    await pub.send({
      type: "publish",
      topic: "r",
      payload: bytes("retained"),
      qos: 1,
      retain: true,
      dup: false,
      packetId: 1,
    });
    await pub.expect("puback");
    const { client: live } = await RawClient.connect(port, { clientId: "live" });
    await live.subscribe([["r", 2]]);
    const first = await live.expect("publish");
    assert.equal(first.retain, true, "sent because of the new subscription");
    assert.equal(first.qos, 1, "at the QoS it was stored with");
    await live.send({ type: "puback", packetId: first.packetId! });
    await pub.send({
      type: "publish",
      topic: "r",
      payload: bytes("not retained"),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 2,
    });
    await pub.expect("puback");
    const second = await live.expect("publish");
    assert.equal(text(second.payload), "not retained");
    assert.equal(second.retain, false, "an established subscription gets RETAIN 0");
    const { client: late } = await RawClient.connect(port, { clientId: "late" });
    await late.subscribe([["r", 2]]);
    assert.equal(text((await late.expect("publish")).payload), "retained");
    for (const c of [pub, live, late]) c.close();
  });
});

Deno.test("[MQTT-3.3.1-7] a QoS 0 retained message replaces the retained one", async () => {
  await withBroker(async (port, broker) => {
    broker.publish("r", "first", { qos: 1, retain: true });
    broker.publish("r", "second", { qos: 0, retain: true });
    const { client } = await RawClient.connect(port, { clientId: "c" });
    await client.subscribe([["r", 1]]);
    const message = await client.expect("publish");
    assert.equal(text(message.payload), "second");
    assert.equal(message.qos, 0);
    await client.expectSilence(100);
    client.close();
  });
});

Deno.test("[MQTT-3.3.1-10, MQTT-3.3.1-11] an empty retained PUBLISH is delivered, clears the topic, and is not stored", async () => {
  await withBroker(async (port, broker) => {
    broker.publish("r", "old", { retain: true });
    const { client: live } = await RawClient.connect(port, { clientId: "live" });
    await live.subscribe([["r", 0]]);
    assert.equal(text((await live.expect("publish")).payload), "old");
    const { client: pub } = await RawClient.connect(port, { clientId: "pub" });
    await pub.send({
      type: "publish",
      topic: "r",
      payload: new Uint8Array(0),
      qos: 1,
      retain: true,
      dup: false,
      packetId: 1,
    });
    await pub.expect("puback");
    assert.equal((await live.expect("publish")).payload.length, 0, "delivered as normal");
    assert.equal(broker.stats().retained, 0);
    const { client: late } = await RawClient.connect(port, { clientId: "late" });
    await late.subscribe([["r", 0]]);
    await late.expectSilence(100);
    for (const c of [pub, live, late]) c.close();
  });
});

Deno.test("[MQTT-3.3.2-3, MQTT-4.7.2-1, MQTT-4.7.3-4, MQTT-3.8.3-2] delivered topics match the filter: wildcards, no normalization, no $-topics for wildcard-led filters", async () => {
  await withBroker(async (port, broker) => {
    const subscribers = new Map<string, RawClient>();
    const filters = ["a/b", "A/b", "a/b/", "a//b", "a/+", "#", "caf\u00e9", "$SYS/#"];
    for (const [i, filter] of filters.entries()) {
      const { client } = await RawClient.connect(port, { clientId: `s${i}` });
      await client.subscribe([[filter, 0]]);
      subscribers.set(filter, client);
    }
    const expected: Record<string, string[]> = {
      "a/b": ["a/b", "a/+", "#"],
      "cafe\u0301": ["#"], // decomposed: not the filter's precomposed é
      "$SYS/x": ["$SYS/#"], // not "#"
    };
    for (const [topic, receivers] of Object.entries(expected)) {
      broker.publish(topic, topic);
      for (const [filter, client] of subscribers) {
        if (receivers.includes(filter)) {
          const message = await client.expect("publish");
          assert.equal(message.topic, topic, `${filter} gets ${topic} as published`);
        }
      }
    }
    for (const client of subscribers.values()) {
      await client.expectSilence(50);
      client.close();
    }
  });
});

Deno.test("[MQTT-3.8.3-4] a SUBSCRIBE with QoS 3 or reserved option bits is malformed: closed", async () => {
  await withBroker(async (port) => {
    for (const options of [0x03, 0x05]) {
      const { client } = await RawClient.connect(port, { clientId: `bad${options}` });
      // SUBSCRIBE, packet id 1, filter "a", then the options byte.
      await client.sendBytes(new Uint8Array([0x82, 6, 0, 1, 0, 1, 0x61, options]));
      await closedWithoutAnswer(client);
      client.close();
    }
  });
});

Deno.test("[MQTT-3.8.4-3] a SUBSCRIBE to a held filter replaces it: new QoS, retained sent again, one delivery", async () => {
  await withBroker(async (port, broker) => {
    broker.publish("t", "retained", { qos: 1, retain: true });
    const { client } = await RawClient.connect(port, { clientId: "c" });
    await client.subscribe([["t", 0]]);
    assert.equal((await client.expect("publish")).qos, 0);
    await client.subscribe([["t", 1]], 2);
    const again = await client.expect("publish");
    assert.equal(again.retain, true);
    assert.equal(again.qos, 1);
    await client.send({ type: "puback", packetId: again.packetId! });
    broker.publish("t", "live", { qos: 1 });
    const live = await client.expect("publish");
    assert.equal(live.qos, 1, "the new QoS");
    await client.send({ type: "puback", packetId: live.packetId! });
    await client.expectSilence(100); // one subscription, one delivery
    assert.equal(broker.stats().subscriptions, 1);
    client.close();
  });
});

Deno.test("[MQTT-3.8.4-4, MQTT-3.8.4-5, MQTT-3.9.3-1, MQTT-3.9.3-2] several filters: one SUBACK, a code per filter in order, only 0, 1, 2 or 0x80", async () => {
  await withBroker(async (port) => {
    const { client } = await RawClient.connect(port, { clientId: "multi" });
    const codes = await client.subscribe([["a", 2], ["deny/x", 1], ["b", 0], ["c", 1]]);
    assert.deepEqual(codes, [2, 0x80, 0, 1]);
    await client.expectSilence(50); // no second SUBACK
    client.close();
  }, { authorizeSubscribe: (_client, filter, qos) => (filter.startsWith("deny/") ? false : qos) });
});

Deno.test("[MQTT-3.8.4-6] a delivery's QoS is the lower of the published and the granted QoS", async () => {
  await withBroker(async (port, broker) => {
    const { client: one } = await RawClient.connect(port, { clientId: "one" });
    await one.subscribe([["q", 1]]);
    const { client: two } = await RawClient.connect(port, { clientId: "two" });
    await two.subscribe([["q", 2]]);
    broker.publish("q", "x", { qos: 2 });
    assert.equal((await one.expect("publish")).qos, 1);
    assert.equal((await two.expect("publish")).qos, 2);
    broker.publish("q", "y", { qos: 0 });
    assert.equal((await one.expect("publish")).qos, 0);
    assert.equal((await two.expect("publish")).qos, 0);
    one.close();
    two.close();
  });
});

Deno.test("[MQTT-3.10.4-1, MQTT-3.10.4-2, MQTT-3.10.4-6] UNSUBSCRIBE compares filters character by character; several in one, one UNSUBACK", async () => {
  await withBroker(async (port, broker) => {
    const { client } = await RawClient.connect(port, { clientId: "u" });
    await client.subscribe([["a/+", 0], ["b", 0]]);
    await client.send({ type: "unsubscribe", packetId: 3, filters: ["a/x", "b"] });
    assert.equal((await client.expect("unsuback")).packetId, 3);
    await client.expectSilence(50);
    broker.publish("b", "gone");
    broker.publish("a/x", "kept");
    assert.equal((await client.expect("publish")).topic, "a/x", "a/x is not the filter a/+");
    await client.expectSilence(100);
    client.close();
  });
});

Deno.test("[MQTT-3.10.4-3] a QoS 1 delivery started before UNSUBSCRIBE is completed: resent on resume", async () => {
  await withBroker(async (port, broker) => {
    const first = await RawClient.connect(port, { clientId: "u", clean: false });
    await first.client.subscribe([["t", 1]]);
    broker.publish("t", "in flight", { qos: 1 });
    const sent = await first.client.expect("publish");
    await first.client.send({ type: "unsubscribe", packetId: 9, filters: ["t"] });
    await first.client.expect("unsuback");
    first.client.close(); // never acknowledged
    const again = await RawClient.connect(port, { clientId: "u", clean: false });
    const resent = await again.client.expect("publish");
    assert.equal(text(resent.payload), "in flight");
    assert.equal(resent.dup, true);
    assert.equal(resent.packetId, sent.packetId);
    await again.client.send({ type: "puback", packetId: resent.packetId! });
    again.client.close();
  });
});

Deno.test("[MQTT-3.12.4-1] PINGREQ is answered with PINGRESP", async () => {
  await withBroker(async (port) => {
    const { client } = await RawClient.connect(port, { clientId: "ping" });
    await client.send({ type: "pingreq" });
    await client.expect("pingresp");
    client.close();
  });
});

Deno.test("[MQTT-3.14.1-1] a DISCONNECT with reserved bits set disconnects the client, as a violation: the will is published", async () => {
  await withBroker(async (port) => {
    const { client: watcher } = await RawClient.connect(port, { clientId: "watcher" });
    await watcher.subscribe([["w", 0]]);
    const { client } = await RawClient.connect(port, {
      clientId: "c",
      will: { topic: "w", payload: bytes("will"), qos: 0, retain: false },
    });
    await client.sendBytes(new Uint8Array([0xe1, 0x00]));
    await client.expectClosed();
    client.close();
    assert.equal(text((await watcher.expect("publish")).payload), "will");
    watcher.close();
  });
});

// ---------------------------------------------------------------- docs/conformance_broker.md

const DOC = new URL("../docs/conformance_broker.md", import.meta.url);
const SPEC = "/work/shared/spec/mqtt-v3.1.1-normative.tsv";
const CITATION = /`([\w./-]+\.ts) › (.+?)`/g;

/** The rows of the table: id, cited tests, and the reason when none is cited. */
async function docRows(
  doc: URL = DOC,
): Promise<{ id: string; tests: [string, string][]; reason: string }[]> {
  const rows = [];
  for (const line of (await Deno.readTextFile(doc)).split("\n")) {
    const id = line.match(/^\| (MQTT-[\d.]+-\d+) +\|/)?.[1];
    if (id === undefined) continue;
    const last = line.slice(line.lastIndexOf("|", line.length - 2) + 1, -1).trim();
    const tests = [...last.matchAll(CITATION)].map((m): [string, string] => [m[1], m[2]]);
    rows.push({ id, tests, reason: tests.length === 0 ? last : "" });
  }
  return rows;
}

Deno.test("broker conformance doc: every server statement has one row, each with tests or an n/a reason", async () => {
  const rows = await docRows();
  assert.deepEqual(rows.map((r) => r.id), [...SERVER_IDS]);
  for (const row of rows) {
    if (row.tests.length === 0) assert.match(row.reason, /^n\/a: /, `${row.id} cites no test`);
  }
  const proven = rows.filter((r) => r.tests.length > 0).length;
  const summary = (await Deno.readTextFile(DOC)).match(
    /of the 69 server statements, (\d+) are proven by broker tests and (\d+) (?:is|are) not applicable/,
  );
  assert.ok(summary, "the summary line");
  assert.deepEqual([Number(summary[1]), Number(summary[2])], [proven, rows.length - proven]);
});

Deno.test("broker conformance doc: every cited test exists", async () => {
  const sources = new Map<string, string>();
  for (const { id, tests } of [...await docRows(), ...await docRows(DOC_5)]) {
    for (const [file, name] of tests) {
      if (!sources.has(file)) {
        sources.set(file, await Deno.readTextFile(new URL(file, import.meta.url)));
      }
      assert.ok(
        sources.get(file)!.includes(`Deno.test(${JSON.stringify(name)}`) ||
          sources.get(file)!.includes(`Deno.test(\n  ${JSON.stringify(name)}`),
        `${id}: ${file} › ${name} does not exist`,
      );
    }
  }
});

Deno.test("broker conformance ids: the copy matches the spec table where it is present", async (t) => {
  let tsv: string;
  try {
    tsv = await Deno.readTextFile(SPEC);
  } catch {
    await t.step({ name: "the spec table is absent here", ignore: true, fn() {} });
    return;
  }
  const ids = tsv.split("\n").slice(1).map((line) => line.split("\t"))
    .filter((cols) => cols[2] === "server").map((cols) => cols[0]);
  assert.deepEqual(ids, [...SERVER_IDS]);
});

// ---------------------------------------------------------------- docs/conformance_broker_5.md

/** A copy of the 203 server and both ids of the 5.0 spec table, in its order (without "MQTT-"). */
const SERVER_IDS_5: readonly string[] = [
  "1.5.4-1 1.5.4-2 1.5.4-3 1.5.5-1 1.5.7-1 2.1.3-1 2.2.1-2 2.2.1-4 2.2.1-5 2.2.1-6 2.2.2-1",
  "3.1.0-2 3.1.2-2 3.1.2-3 3.1.2-4 3.1.2-5 3.1.2-6 3.1.2-7 3.1.2-8 3.1.2-10 3.1.2-14",
  "3.1.2-15 3.1.2-22 3.1.2-23 3.1.2-24 3.1.2-25 3.1.2-26 3.1.2-27 3.1.2-28 3.1.2-29 3.1.3-2",
  "3.1.3-5 3.1.3-6 3.1.3-7 3.1.3-8 3.1.3-9 3.1.3-10 3.1.4-1 3.1.4-2 3.1.4-3 3.1.4-4 3.1.4-5",
  "3.1.4-6 3.2.0-1 3.2.0-2 3.2.2-1 3.2.2-2 3.2.2-3 3.2.2-6 3.2.2-7 3.2.2-8 3.2.2-9 3.2.2-10",
  "3.2.2-12 3.2.2-13 3.2.2-16 3.2.2-19 3.2.2-20 3.2.2-22 3.3.1-1 3.3.1-2 3.3.1-3 3.3.1-4",
  "3.3.1-5 3.3.1-6 3.3.1-7 3.3.1-8 3.3.1-9 3.3.1-10 3.3.1-11 3.3.1-12 3.3.1-13 3.3.2-1",
  "3.3.2-2 3.3.2-3 3.3.2-4 3.3.2-5 3.3.2-6 3.3.2-7 3.3.2-8 3.3.2-11 3.3.2-12 3.3.2-13",
  "3.3.2-14 3.3.2-15 3.3.2-16 3.3.2-17 3.3.2-18 3.3.2-19 3.3.2-20 3.3.4-1 3.3.4-2 3.3.4-3",
  "3.3.4-4 3.3.4-5 3.3.4-9 3.3.4-10 3.4.2-1 3.4.2-2 3.4.2-3 3.5.2-1 3.5.2-2 3.5.2-3 3.6.1-1",
  "3.6.2-1 3.6.2-2 3.6.2-3 3.7.2-1 3.7.2-2 3.7.2-3 3.8.3-3 3.8.3-5 3.8.4-1 3.8.4-2 3.8.4-3",
  "3.8.4-4 3.8.4-5 3.8.4-6 3.8.4-7 3.8.4-8 3.9.2-1 3.9.2-2 3.9.3-1 3.9.3-2 3.10.4-1",
  "3.10.4-2 3.10.4-3 3.10.4-4 3.10.4-5 3.10.4-6 3.11.2-1 3.11.2-2 3.11.3-1 3.11.3-2",
  "3.12.4-1 3.14.0-1 3.14.1-1 3.14.2-1 3.14.2-2 3.14.2-3 3.14.2-4 3.14.4-1 3.14.4-2",
  "3.14.4-3 3.15.1-1 3.15.2-1 3.15.2-2 3.15.2-3 4.1.0-1 4.2.0-1 4.1.0-2 4.3.1-1 4.3.2-1",
  "4.3.2-2 4.3.2-3 4.3.2-4 4.3.2-5 4.3.3-1 4.3.3-2 4.3.3-3 4.3.3-4 4.3.3-5 4.3.3-6 4.3.3-7",
  "4.3.3-8 4.3.3-9 4.3.3-10 4.3.3-11 4.3.3-12 4.3.3-13 4.4.0-1 4.4.0-2 4.5.0-1 4.6.0-5",
  "4.6.0-6 4.7.0-1 4.7.1-1 4.7.1-2 4.7.2-1 4.7.3-1 4.7.3-2 4.7.3-3 4.7.3-4 4.8.2-1 4.8.2-2",
  "4.8.2-3 4.8.2-4 4.8.2-5 4.8.2-6 4.9.0-1 4.9.0-2 4.9.0-3 4.12.0-1 4.12.0-2 4.12.0-4",
  "4.12.0-5 4.12.0-6 4.12.1-2 4.13.1-1 4.13.2-1 6.0.0-1 6.0.0-2 6.0.0-4",
].join(" ").split(" ").map((id) => `MQTT-${id}`);

const DOC_5 = new URL("../docs/conformance_broker_5.md", import.meta.url);
const SPEC_5 = "/work/shared/spec/mqtt-v5.0-normative.tsv";

Deno.test("broker 5.0 conformance doc: every server and both statement has one row, each with tests or an n/a or open reason", async () => {
  const rows = await docRows(DOC_5);
  assert.deepEqual(rows.map((r) => r.id), [...SERVER_IDS_5]);
  for (const row of rows) {
    if (row.tests.length === 0) {
      assert.match(row.reason, /^(n\/a|open): /, `${row.id} cites no test and gives no reason`);
    }
  }
  const proven = rows.filter((r) => r.tests.length > 0).length;
  const na = rows.filter((r) => r.reason.startsWith("n/a: ")).length;
  // The summary sentence may be wrapped: compare it with its whitespace collapsed.
  const summary = (await Deno.readTextFile(DOC_5)).replace(/\s+/g, " ").match(
    /of the 203 server and both statements, (\d+) are proven by broker tests, (\d+) are not applicable and (\d+) are open/,
  );
  assert.ok(summary, "the summary line");
  assert.deepEqual(
    [Number(summary[1]), Number(summary[2]), Number(summary[3])],
    [proven, na, rows.length - proven - na],
  );
});

Deno.test("broker 5.0 conformance ids: the copy matches the spec table where it is present", async (t) => {
  let tsv: string;
  try {
    tsv = await Deno.readTextFile(SPEC_5);
  } catch {
    await t.step({ name: "the spec table is absent here", ignore: true, fn() {} });
    return;
  }
  const ids = tsv.split("\n").slice(1).map((line) => line.split("\t"))
    .filter((cols) => cols[2] === "server" || cols[2] === "both").map((cols) => cols[0]);
  assert.deepEqual(ids, [...SERVER_IDS_5]);
});
