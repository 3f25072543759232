/**
 * The embedded broker's `persistence` keeps MQTT 5.0 state across a restart:
 * a retained message's properties (and the rest of its Message Expiry
 * Interval), subscription options and Subscription Identifiers, and a
 * session's expiry interval, which goes on running from the end of its last
 * connection. Session files written before 5.0 state was kept still load.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Broker } from "../broker.ts";
import { bytes, connect5, delay, RawClient } from "./broker_helpers.ts";

const decoder = new TextDecoder();

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "broker-persistence-v5-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("persistence 5.0: a retained message keeps its properties and the rest of its expiry across a restart", async () => {
  await withDir(async (dir) => {
    {
      await using broker = new Broker({ persistence: dir });
      const { port } = await broker.listen({ port: 0 });
      const { client } = await connect5(port, { clientId: "pub" });
      for (const [packetId, topic, expiry] of [[1, "r/long", 3600], [2, "r/short", 1]] as const) {
        await client.send({
          type: "publish",
          topic,
          payload: bytes(topic),
          qos: 1,
          retain: true,
          dup: false,
          packetId,
          properties: {
            messageExpiryInterval: expiry,
            contentType: "text/plain",
            userProperties: [["k", "v"]],
          },
        });
        await client.expect("puback");
      }
      client.close();
    }
    await delay(1100); // r/short's interval ends while the broker is down
    await using broker = new Broker({ persistence: dir });
    const { port } = await broker.listen({ port: 0 });
    const { client } = await connect5(port, { clientId: "sub" });
    await client.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ filter: "r/#", qos: 1 }],
    });
    await client.expect("suback");
    const message = await client.expect("publish");
    assert.equal(message.topic, "r/long");
    assert.equal(message.retain, true);
    assert.equal(message.properties?.contentType, "text/plain");
    assert.deepEqual(message.properties?.userProperties, [["k", "v"]]);
    // MQTT-3.3.2-6: the remaining interval, counted across the restart.
    const left = message.properties?.messageExpiryInterval ?? 0;
    assert.ok(left <= 3599 && left > 3500, `remaining interval ${left}`);
    await client.send({ type: "puback", packetId: message.packetId! });
    await client.expectSilence(); // r/short expired while the broker was down
    assert.equal(broker.stats().retained, 1);
    client.close();
  });
});

Deno.test("persistence 5.0: subscription options and Subscription Identifiers survive a restart", async () => {
  await withDir(async (dir) => {
    const session = { clientId: "opts", clean: false, properties: { sessionExpiryInterval: 600 } };
    {
      await using broker = new Broker({ persistence: dir });
      const { port } = await broker.listen({ port: 0 });
      const { client } = await connect5(port, session);
      await client.send({
        type: "subscribe",
        packetId: 1,
        subscriptions: [{ filter: "o/#", qos: 1, noLocal: true, retainAsPublished: true }],
        properties: { subscriptionIdentifier: 42 },
      });
      await client.expect("suback");
      await client.send({
        type: "subscribe",
        packetId: 2,
        subscriptions: [{ filter: "o/+", qos: 0 }],
        properties: { subscriptionIdentifier: 7 },
      });
      await client.expect("suback");
      // Unsubscribing forgets its identifier too.
      await client.send({ type: "unsubscribe", packetId: 3, filters: ["o/+"] });
      await client.expect("unsuback");
      await client.send({ type: "disconnect" });
      client.close();
    }
    await using broker = new Broker({ persistence: dir });
    const { port } = await broker.listen({ port: 0 });
    const { client, sessionPresent } = await connect5(port, session);
    assert.equal(sessionPresent, true);
    // No Local: its own message does not come back.
    await client.send({
      type: "publish",
      topic: "o/self",
      payload: bytes("mine"),
      qos: 0,
      retain: false,
      dup: false,
    });
    await client.expectSilence();
    broker.publish("o/x", "theirs", { qos: 1, retain: true });
    const message = await client.expect("publish");
    assert.equal(decoder.decode(message.payload), "theirs");
    assert.equal(message.retain, true); // Retain As Published
    assert.deepEqual(message.properties?.subscriptionIdentifiers, [42]);
    await client.send({ type: "puback", packetId: message.packetId! });
    client.close();
  });
});

Deno.test("persistence 5.0: a session's expiry interval survives a restart and runs from its disconnect", async () => {
  await withDir(async (dir) => {
    const connect = (clientId: string, sessionExpiryInterval: number) => ({
      clientId,
      clean: false,
      properties: { sessionExpiryInterval },
    });
    {
      await using broker = new Broker({ persistence: dir });
      const { port } = await broker.listen({ port: 0 });
      for (const [clientId, interval] of [["brief", 1], ["lasting", 3600]] as const) {
        const { client } = await connect5(port, connect(clientId, interval));
        await client.send({ type: "disconnect" });
        client.close();
      }
      await delay(50);
    }
    await delay(1100); // "brief"'s interval ends while the broker is down
    await using broker = new Broker({ persistence: dir });
    const { port } = await broker.listen({ port: 0 });
    await delay(20); // the restored "brief" ends at once
    const brief = await connect5(port, connect("brief", 60));
    assert.equal(brief.sessionPresent, false);
    brief.client.close();
    const lasting = await connect5(port, connect("lasting", 3600));
    assert.equal(lasting.sessionPresent, true);
    lasting.client.close();
  });
});

Deno.test("persistence 5.0: a session file written before 5.0 state was kept still loads", async () => {
  await withDir(async (dir) => {
    {
      await using broker = new Broker({ persistence: dir });
      const { port } = await broker.listen({ port: 0 });
      const { client } = await RawClient.connect(port, { clientId: "old", clean: false });
      await client.subscribe([["old/#", 1]]);
      client.close();
    }
    // Rewrite the session's .json as an older broker wrote it: name and user only.
    for await (const entry of Deno.readDir(`${dir}/sessions`)) {
      if (!entry.name.endsWith(".json")) continue;
      await Deno.writeTextFile(
        `${dir}/sessions/${entry.name}`,
        JSON.stringify({ clientId: "old" }),
      );
    }
    await using broker = new Broker({ persistence: dir });
    const { port } = await broker.listen({ port: 0 });
    const { client, sessionPresent } = await RawClient.connect(port, {
      clientId: "old",
      clean: false,
    });
    assert.equal(sessionPresent, true);
    broker.publish("old/x", "still", { qos: 1 });
    assert.equal(decoder.decode((await client.expect("publish")).payload), "still");
    client.close();
  });
});

Deno.test("persistence 5.0: a session opened with Clean Start and a Session Expiry Interval survives a restart", async () => {
  await withDir(async (dir) => {
    // MQTT 5.0 section 3.1.2.4: Clean Start discards any existing session and starts a new one;
    // its Session Expiry Interval (section 3.1.2.11.2), not Clean Start, says whether it outlives
    // the connection. So this session is as persistent as one resumed with Clean Start 0.
    const start = (clientId: string, clean: boolean, sessionExpiryInterval: number) => ({
      clientId,
      clean,
      properties: { sessionExpiryInterval },
    });
    {
      await using broker = new Broker({ persistence: dir });
      const { port } = await broker.listen({ port: 0 });
      for (const [clientId, interval] of [["fresh", 3600], ["short", 1]] as const) {
        const { client, sessionPresent } = await connect5(port, start(clientId, true, interval));
        assert.equal(sessionPresent, false);
        await client.send({
          type: "subscribe",
          packetId: 1,
          subscriptions: [{ filter: `${clientId}/#`, qos: 1 }],
        });
        await client.expect("suback");
        await client.send({ type: "disconnect" });
        client.close();
      }
      await delay(50);
      broker.publish("fresh/x", "queued while offline", { qos: 1 });
    }
    await delay(1100); // "short"'s interval ends while the broker is down
    await using broker = new Broker({ persistence: dir });
    const { port } = await broker.listen({ port: 0 });
    await delay(20); // the restored "short" ends at once
    const short = await connect5(port, start("short", false, 60));
    assert.equal(short.sessionPresent, false, "its expiry counted the time the broker was down");
    short.client.close();
    const { client, sessionPresent } = await connect5(port, start("fresh", false, 3600));
    assert.equal(sessionPresent, true, "the session survived the restart");
    const message = await client.expect("publish");
    assert.equal(decoder.decode(message.payload), "queued while offline");
    await client.send({ type: "puback", packetId: message.packetId! });
    // Its subscription survived too.
    broker.publish("fresh/y", "live", { qos: 1 });
    const live = await client.expect("publish");
    assert.equal(decoder.decode(live.payload), "live");
    await client.send({ type: "puback", packetId: live.packetId! });
    client.close();
  });
});
