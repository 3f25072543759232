/**
 * What outlives one packet exchange, against a real Mosquitto: the Last Will, retained
 * messages, persistent sessions and keep-alive.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type Message, type MqttClient, MqttError, type QoS } from "../mod.ts";
// Not exported from mod.ts yet.
import type { ConnectEventDetail } from "../lib/client/client.ts";
import {
  brokerTest,
  mosquittoPub,
  mosquittoSub,
  startMosquitto,
  startProxy,
} from "./broker/mod.ts";
import {
  assertNothingHeld,
  closed,
  disconnected,
  fresh,
  hasCode,
  take,
  within,
} from "./client_helpers.ts";

brokerTest(
  "MQTT-3.1.2-8: the will is published when the socket dies without DISCONNECT",
  async () => {
    await using broker = await startMosquitto();
    await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
    await using watcher = await connect(broker.url, { clientId: fresh("watcher") });
    const topic = fresh("will/dropped");
    const wills = await watcher.subscribe(topic, { qos: 2 });

    const victim = await connect(proxy.url, {
      clientId: fresh("victim"),
      will: { topic, payload: "gone without a word", qos: 2, retain: false },
      reconnect: false,
    });
    const ended = closed(victim);
    proxy.cut();
    const error = await within(ended, "the victim to see its connection end");
    assert.ok(error instanceof MqttError, "a lost connection ends the client with an error");
    assert.equal(victim.connected, false);
    await victim.close();

    const [will] = await take(wills, 1, "the will");
    assert.equal(will.topic, topic);
    assert.equal(will.text(), "gone without a word");
    assert.equal(will.qos, 2);
    assert.equal(will.retain, false);
  },
);

brokerTest("MQTT-3.1.2-10: no will after a clean close (DISCONNECT)", async () => {
  await using broker = await startMosquitto();
  await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
  await using watcher = await connect(broker.url, { clientId: fresh("watcher") });
  const base = fresh("will/clean");
  const wills = await watcher.subscribe(`${base}/#`, { qos: 1 });

  // Connected straight to the broker, so its DISCONNECT surely gets there before the socket
  // closes (through the proxy, a cut could overtake it).
  const polite = await connect(broker.url, {
    clientId: fresh("polite"),
    will: { topic: `${base}/polite`, payload: "must not appear", qos: 1 },
    reconnect: false,
  });
  const ended = closed(polite);
  await polite.close();
  assert.equal(await ended, undefined, "a clean close has no error");

  // A second client dies abruptly: its will arrives, and the polite one never came before it.
  const victim = await connect(proxy.url, {
    clientId: fresh("victim"),
    will: { topic: `${base}/victim`, payload: "dropped", qos: 1 },
    reconnect: false,
  });
  const victimEnded = closed(victim);
  proxy.cut();
  await within(victimEnded, "the victim's connection to end");
  await victim.close();
  const [will] = await take(wills, 1, "the victim's will");
  assert.equal(will.topic, `${base}/victim`);
  assert.equal(will.text(), "dropped");
});

brokerTest("MQTT-3.1.2-17: a retained will is kept for later subscribers", async () => {
  await using broker = await startMosquitto();
  await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
  const topic = fresh("will/retained");
  await using watcher = await connect(broker.url, { clientId: fresh("watcher") });
  const live = await watcher.subscribe(topic, { qos: 1 });
  const victim = await connect(proxy.url, {
    clientId: fresh("victim"),
    will: { topic, payload: "offline", qos: 1, retain: true },
    reconnect: false,
  });
  const ended = closed(victim);
  proxy.cut();
  await within(ended, "the victim's connection to end");
  await victim.close();
  // Once a subscriber has it, the broker has published (and retained) the will.
  const [published] = await take(live, 1, "the will");
  assert.equal(published.retain, false, "MQTT-3.3.1-9: live copies are not flagged retained");
  await using late = await connect(broker.url, { clientId: fresh("late") });
  const sub = await late.subscribe(topic, { qos: 1 });
  const [will] = await take(sub, 1, "the retained will");
  assert.equal(will.text(), "offline");
  assert.equal(will.retain, true);
});

brokerTest(
  "MQTT-3.3.1-6, -8: a late subscriber gets the retained message flagged retain",
  async () => {
    await using broker = await startMosquitto();
    await using pub = await connect(broker.url, { clientId: fresh("pub") });
    await using sub = await connect(broker.url, { clientId: fresh("sub") });
    const topic = fresh("retained");
    const live = await sub.subscribe(topic, { qos: 1 });
    await pub.publish(topic, "first", { qos: 1, retain: true });
    await pub.publish(topic, "kept", { qos: 1, retain: true }); // replaces "first" (MQTT-3.3.1-5)
    // MQTT-3.3.1-9: an existing subscriber gets them as normal messages.
    const current = await take(live, 2, "the live copies");
    assert.deepEqual(current.map((m) => [m.text(), m.retain]), [["first", false], ["kept", false]]);
    await live.unsubscribe();

    const late = await sub.subscribe(topic, { qos: 1 });
    const [retained] = await take(late, 1, "the retained message");
    assert.equal(retained.text(), "kept");
    assert.equal(retained.retain, true);
    assert.equal(retained.qos, 1);

    // mosquitto_sub, an independent client, sees it retained too (-v prints topic and payload).
    const lines = await mosquittoSub(["-p", String(broker.port), "-t", topic, "-v"], { count: 1 });
    assert.deepEqual(lines, [`${topic} kept`]);
  },
);

brokerTest(
  "MQTT-3.3.1-10, -11: an empty retained publish clears the retained message",
  async () => {
    await using broker = await startMosquitto();
    await using client = await connect(broker.url, { clientId: fresh("clear") });
    const topic = fresh("retained/clear");
    await client.publish(topic, "stale", { qos: 1, retain: true });
    await client.publish(topic, new Uint8Array(0), { qos: 1, retain: true });
    const sub = await client.subscribe(topic, { qos: 1 });
    // Nothing retained: the first message is the live one published after subscribing.
    await client.publish(topic, "live", { qos: 1 });
    const [first] = await take(sub, 1, "the live message");
    assert.equal(first.text(), "live");
    assert.equal(first.retain, false);

    // Cleared for mosquitto_pub's retained message as well.
    const r = await mosquittoPub(["-p", String(broker.port), "-t", topic, "-m", "cli", "-r"]);
    assert.equal(r.code, 0, r.stderr);
    await client.publish(topic, "", { qos: 1, retain: true });
    await sub.unsubscribe();
    const again = await client.subscribe(topic, { qos: 1 });
    await client.publish(topic, "live again", { qos: 1 });
    assert.equal((await take(again, 1, "the second live message"))[0].text(), "live again");
  },
);

brokerTest(
  "MQTT-3.1.2-4, 3.2.2-2: a persistent session keeps QoS 1 and 2 messages sent while offline",
  async () => {
    await using broker = await startMosquitto();
    const clientId = fresh("durable");
    const base = fresh("session");
    const first = await connect(broker.url, { clientId, clean: false });
    assert.equal(first.sessionPresent, false, "a new client id has no session");
    await first.subscribe(`${base}/q1`, { qos: 1 });
    await first.subscribe(`${base}/q2`, { qos: 2 });
    await first.close();

    // While it is away: QoS 2 first (they will wait, held, for a subscription), then QoS 1,
    // from another client and from mosquitto_pub.
    await using other = await connect(broker.url, { clientId: fresh("other") });
    for (let i = 0; i < 3; i++) await other.publish(`${base}/q2`, `q2 #${i}`, { qos: 2 });
    const cli = await mosquittoPub(
      ["-p", String(broker.port), "-t", `${base}/q2`, "-m", "q2 cli", "-q", "2"],
    );
    assert.equal(cli.code, 0, cli.stderr);
    for (let i = 0; i < 3; i++) await other.publish(`${base}/q1`, `q1 #${i}`, { qos: 1 });
    // MQTT-3.8.4-6 applies to queued messages too: QoS 2 to a QoS 1 subscription arrives at 1.
    await other.publish(`${base}/q1`, "q1 at qos 2", { qos: 2 });

    await using again = await connect(broker.url, { clientId, clean: false });
    assert.equal(again.sessionPresent, true, "the stored session is resumed");
    // The queued messages arrive right after CONNACK, before any SUBSCRIBE. Subscribing to q1
    // first and reading all of it means every q2 message (queued earlier) has arrived and is
    // held: none may be lost.
    const q1 = await again.subscribe(`${base}/q1`, { qos: 1 });
    const q1Messages = await take(q1, 4, "the queued QoS 1 messages");
    assert.deepEqual(q1Messages.map((m) => m.text()), ["q1 #0", "q1 #1", "q1 #2", "q1 at qos 2"]);
    assert.ok(q1Messages.every((m) => m.qos === 1));
    const q2 = await again.subscribe(`${base}/q2`, { qos: 2 });
    assert.equal(q2.buffered, 4, "the held messages went to the new subscription at once");
    const q2Messages = await take(q2, 4, "the queued QoS 2 messages");
    assert.deepEqual(q2Messages.map((m) => m.text()), ["q2 #0", "q2 #1", "q2 #2", "q2 cli"]);
    assert.ok(q2Messages.every((m) => m.qos === 2));
  },
);

brokerTest(
  "MQTT-3.1.2-6, 3.2.2-1: a clean session reports no session and gets nothing queued",
  async () => {
    await using broker = await startMosquitto();
    const clientId = fresh("forgetful");
    const topic = fresh("session/clean");
    const first = await connect(broker.url, { clientId, clean: false });
    await first.subscribe(topic, { qos: 1 });
    await first.close();
    await using other = await connect(broker.url, { clientId: fresh("other") });
    for (const qos of [1, 2] as QoS[]) await other.publish(topic, `offline ${qos}`, { qos });

    await using again = await connect(broker.url, { clientId, clean: true });
    assert.equal(again.sessionPresent, false, "a clean session is never present");
    const sub = await again.subscribe(topic, { qos: 1 });
    await other.publish(topic, "sentinel", { qos: 1 });
    const [message] = await take(sub, 1, "the sentinel");
    assert.equal(message.text(), "sentinel", "an offline message was delivered");

    // The discarded session is gone for good: a later clean=false connection starts afresh.
    await again.close();
    await using fresh2 = await connect(broker.url, { clientId, clean: false });
    assert.equal(fresh2.sessionPresent, false);
  },
);

brokerTest(
  "held messages: nothing is lost when a resumed session delivers before SUBSCRIBE",
  async () => {
    await using broker = await startMosquitto();
    const clientId = fresh("holder");
    const base = fresh("held");
    const first = await connect(broker.url, { clientId, clean: false });
    await first.subscribe(`${base}/#`, { qos: 1 });
    await first.close();
    await using other = await connect(broker.url, { clientId: fresh("other") });
    const count = 50;
    for (let i = 0; i < count; i++) await other.publish(`${base}/${i % 3}`, String(i), { qos: 1 });
    await other.publish(`${base}/sentinel`, "sentinel", { qos: 1 });

    await using again = await connect(broker.url, { clientId, clean: false });
    assert.equal(again.sessionPresent, true);
    // Read the sentinel first: everything queued before it has then arrived and is held.
    const sentinel = await again.subscribe(`${base}/sentinel`, { qos: 1 });
    assert.equal((await take(sentinel, 1, "the sentinel"))[0].text(), "sentinel");
    const received: Message[] = [];
    for (const level of ["0", "1", "2"]) {
      const sub = await again.subscribe(`${base}/${level}`, { qos: 1 });
      received.push(...await take(sub, sub.buffered, `the held messages of ${level}`));
      await sub.unsubscribe();
    }
    assert.deepEqual(
      received.map((m) => Number(m.text())).sort((a, b) => a - b),
      Array.from({ length: count }, (_, i) => i),
    );
    await assertNothingHeld(again, `${base}/#`);
  },
);

brokerTest(
  "held messages: more than bufferSize held do not block the SUBSCRIBE that takes them",
  async () => {
    await using broker = await startMosquitto();
    const clientId = fresh("overflow");
    const topic = fresh("held/overflow");
    const first = await connect(broker.url, { clientId, clean: false });
    await first.subscribe(topic, { qos: 1 });
    await first.close();
    await using other = await connect(broker.url, { clientId: fresh("other") });
    const count = 20;
    for (let i = 0; i < count; i++) await other.publish(topic, String(i), { qos: 1 });

    const bufferSize = 5;
    await using again = await connect(broker.url, { clientId, clean: false, bufferSize });
    assert.equal(again.sessionPresent, true);
    // Let the queued messages arrive: the client holds bufferSize of them and stops reading.
    // (Before the fix, the SUBSCRIBE below then waited forever for its SUBACK.)
    await new Promise((resolve) => setTimeout(resolve, 100));
    const sub = await within(again.subscribe(topic, { qos: 1 }), "the SUBACK");
    const messages = await take(sub, count, "the held and queued messages");
    assert.deepEqual(
      messages.map((m) => m.text()),
      Array.from({ length: count }, (_, i) => String(i)),
    );
  },
);

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
  "keep-alive: a consumer behind for longer than keep-alive keeps the connection",
  async () => {
    await using broker = await startMosquitto({ flood: true });
    await using client = await connect(broker.url, {
      clientId: fresh("behind"),
      keepAlive: 1,
      pingTimeout: 1_000,
      reconnect: false,
    });
    await using pub = await connect(broker.url, { clientId: fresh("pub") });
    const topic = fresh("behind");
    const count = 100;
    const subscription = await client.subscribe(topic, { qos: 1, bufferSize: 2 });
    for (let i = 0; i < count; i++) await pub.publish(topic, String(i), { qos: 1 });
    let dropped: unknown = "no disconnect";
    client.addEventListener("disconnect", (e) => dropped = (e as CustomEvent).detail.error);
    // Reading is paused all along. PINGREQs must still go out (Mosquitto drops a client silent
    // for 1.5 keep-alive periods, MQTT-3.1.2-24) and the unread PINGRESP must not count as
    // missing (the wait outlasts keepAlive + pingTimeout).
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    assert.equal(dropped, "no disconnect");
    assert.equal(client.connected, true);
    const messages = await take(subscription, count, "the backlog");
    assert.deepEqual(
      messages.map((m) => m.text()),
      Array.from({ length: count }, (_, i) => `${i}`),
    );
  },
);

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

/** Resolves on the client's next `connect` event that is a reconnect. */
function reconnected(client: MqttClient): Promise<boolean> {
  return new Promise((resolve) => {
    const listener = (event: Event) => {
      const detail = (event as CustomEvent<ConnectEventDetail>).detail;
      if (!detail.reconnect) return;
      client.removeEventListener("connect", listener);
      resolve(detail.sessionPresent);
    };
    client.addEventListener("connect", listener);
  });
}

for (
  const [when, upBytes] of [
    ["after PUBREC reached the broker (it resends PUBREL)", 4],
    ["before PUBREC reached the broker (it resends PUBLISH with DUP)", 1],
  ] as const
) {
  brokerTest(
    `MQTT-4.3.3-2: an incoming QoS 2 message cut ${when} is delivered exactly once`,
    async () => {
      await using broker = await startMosquitto();
      await using proxy = await startProxy({
        target: { hostname: broker.host, port: broker.port },
      });
      const topic = fresh("exactly-once");
      await using client = await connect(proxy.url, {
        clientId: fresh("once"),
        clean: false,
        reconnect: { minDelay: 10, maxDelay: 50 },
      });
      const sub = await client.subscribe(topic, { qos: 2 });
      await using pub = await connect(broker.url, { clientId: fresh("pub") });

      // The client answers the PUBLISH with PUBREC (4 bytes up); the link dies after `upBytes`
      // of them, and the client reconnects to the same session.
      proxy.cutAfterBytes(upBytes, "up");
      const back = reconnected(client);
      await pub.publish(topic, "once", { qos: 2 });
      assert.equal(await within(back, "the reconnect"), true, "the session was resumed");
      await pub.publish(topic, "sentinel", { qos: 2 });
      const messages = await take(sub, 2, "the message and the sentinel");
      assert.deepEqual(messages.map((m) => m.text()), ["once", "sentinel"]);
      assert.equal(sub.buffered, 0);
      // The session ends without leftovers on the broker.
      await client.unsubscribe(topic);
    },
  );
}

for (
  const [when, downBytes] of [
    ["after PUBREC reached the client (it resends PUBREL, MQTT-4.4.0-1)", 4],
    ["before PUBREC reached the client (it resends PUBLISH with DUP, MQTT-3.3.1-1)", 1],
  ] as const
) {
  brokerTest(
    `an outgoing QoS 2 publish cut ${when} completes, delivered exactly once`,
    async () => {
      await using broker = await startMosquitto();
      await using proxy = await startProxy({
        target: { hostname: broker.host, port: broker.port },
      });
      const topic = fresh("exactly-once-out");
      await using watcher = await connect(broker.url, { clientId: fresh("watcher") });
      const sub = await watcher.subscribe(topic, { qos: 2 });
      await using client = await connect(proxy.url, {
        clientId: fresh("sender"),
        clean: false,
        reconnect: { minDelay: 10, maxDelay: 50 },
      });

      // The broker answers the PUBLISH with PUBREC (4 bytes down); the link dies after
      // `downBytes` of them, and the client reconnects to the same session to finish the flow.
      proxy.cutAfterBytes(downBytes, "down");
      const back = reconnected(client);
      const published = client.publish(topic, "once", { qos: 2 });
      assert.equal(await within(back, "the reconnect"), true, "the session was resumed");
      await within(published, "the QoS 2 flow to complete after the reconnect");
      await client.publish(topic, "sentinel", { qos: 2 });
      const messages = await take(sub, 2, "the message and the sentinel");
      assert.deepEqual(messages.map((m) => m.text()), ["once", "sentinel"]);
    },
  );
}
