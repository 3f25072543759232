/**
 * MQTT 5.0 against Mosquitto 2.0.11: the Will Delay Interval (section 3.1.3.2.2) and the Message
 * Expiry Interval of retained messages (section 3.3.2.3.3), as the 5.0 client issue asks.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import { brokerTest, logged, startMosquitto, startProxy } from "./broker/mod.ts";
import { fresh, take } from "./client_helpers.ts";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

brokerTest(
  "5.0: a will with a Will Delay Interval is published after the delay, and not at all when the client is back within it",
  async () => {
    await using broker = await startMosquitto();
    const topic = fresh("will-delay");
    await using watcher = await connect(broker.url, { protocolVersion: 5 });
    const wills = await watcher.subscribe(`${topic}/#`, { qos: 1 });
    const got: { topic: string; at: number }[] = [];
    const watching = (async () => {
      for await (const msg of wills) got.push({ topic: msg.topic, at: performance.now() });
    })();
    const target = { hostname: broker.host, port: broker.port };
    const will = (name: string) => ({
      topic: `${topic}/${name}`,
      payload: name,
      qos: 1 as const,
      properties: { willDelayInterval: 1 },
    });
    const session = { protocolVersion: 5, clean: false, sessionExpiryInterval: 60 } as const;
    try {
      // Back within the delay: the new connection to the session cancels the will.
      {
        const clientId = fresh("wd-back");
        await using proxy = await startProxy({ target });
        const client = await connect(proxy.url, {
          ...session,
          clientId,
          will: will("back"),
          reconnect: false,
        });
        client.addEventListener("error", () => {});
        proxy.cut();
        // Only once the broker has seen the old connection go: a connection that finds it still
        // open takes the session over, and a takeover publishes the old connection's will.
        await logged(broker, `Client ${clientId} closed its connection`);
        await client.close();
        await using again = await connect(broker.url, { ...session, clientId, will: will("back") });
        assert.equal(again.sessionPresent, true);
      }
      // Gone for good: the will follows once the delay has passed, not at the cut.
      let cutAt = 0;
      {
        await using proxy = await startProxy({ target });
        await using client = await connect(proxy.url, {
          ...session,
          clientId: fresh("wd-gone"),
          will: will("gone"),
          reconnect: false,
        });
        cutAt = performance.now();
        proxy.cut();
        await sleep(400);
        assert.equal(got.length, 0, "no will before its delay");
        client.addEventListener("error", () => {});
      }
      const deadline = performance.now() + 10_000;
      while (got.length === 0 && performance.now() < deadline) await sleep(50);
      // Wait past the first client's delay too: its will must never come.
      await sleep(1500);
      assert.deepEqual(got.map((g) => g.topic), [`${topic}/gone`]);
      assert.ok(got[0].at - cutAt >= 400, "the will came after its delay");
    } finally {
      await wills.unsubscribe();
      await watching;
    }
  },
);

brokerTest(
  "5.0: a retained message expires with its Message Expiry Interval; one still valid is sent with what remains",
  async () => {
    await using broker = await startMosquitto();
    const topic = fresh("retained-expiry");
    await using publisher = await connect(broker.url, { protocolVersion: 5 });
    await publisher.publish(`${topic}/short`, "short", {
      qos: 1,
      retain: true,
      properties: { messageExpiryInterval: 1 },
    });
    await publisher.publish(`${topic}/kept`, "kept", {
      qos: 1,
      retain: true,
      properties: { messageExpiryInterval: 600 },
    });
    {
      await using early = await connect(broker.url, { protocolVersion: 5 });
      const sub = await early.subscribe(`${topic}/#`, { qos: 1 });
      const texts = (await take(sub, 2, "both retained messages")).map((m) => m.text()).sort();
      assert.deepEqual(texts, ["kept", "short"]);
      await sub.unsubscribe();
    }
    await sleep(2100);
    await using late = await connect(broker.url, { protocolVersion: 5 });
    const sub = await late.subscribe(`${topic}/#`, { qos: 1 });
    await publisher.publish(`${topic}/live`, "end", { qos: 1 });
    const messages = await take(sub, 2, "the valid retained message, then the live one");
    assert.deepEqual(messages.map((m) => m.text()), ["kept", "end"]);
    const remaining = messages[0].properties?.messageExpiryInterval;
    assert.ok(
      remaining !== undefined && remaining > 0 && remaining < 600,
      `remaining ${remaining}`,
    );
    await sub.unsubscribe();
  },
);
