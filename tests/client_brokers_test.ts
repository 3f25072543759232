/**
 * The client's broker-independent integration tests, each body written once and run against
 * both brokers: a real Mosquitto (`[mosquitto] ...`) and the embedded broker of `broker.ts`
 * (`[embedded] ...`). Publish and subscribe at every QoS, wildcard and overlapping
 * subscriptions, unsubscribing, backpressure, close and abort, wills, retained messages,
 * persistent sessions, keep-alive with a consumer behind, and QoS 2 exactly-once across a cut
 * link.
 *
 * What needs Mosquitto itself (its `$SYS` topics, its log, SIGSTOP, the dynamic-security plugin,
 * password files, TLS) stays in `client_test.ts`, `client_session_test.ts` and the other
 * `client_*_test.ts` files. Bodies that use `mosquitto_pub`/`mosquitto_sub` as an independent
 * peer run against both brokers too, and are ignored like any Mosquitto test where the clients
 * are not installed.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Message,
  MqttClient,
  MqttError,
  ProtocolError,
  type QoS,
  ServerDisconnectError,
} from "../mod.ts";
// Not exported from mod.ts yet.
import type { ConnectEventDetail } from "../lib/client/client.ts";
import { mosquittoPub, mosquittoSub, startProxy } from "./broker/mod.ts";
import { assertNothingHeld, closed, fresh, hasCode, HOLD, take, within } from "./client_helpers.ts";
// connect() at the protocol version of the body: 3.1.1, and 5.0 in the "[MQTT 5.0]" runs.
import { brokersTest, connect } from "./targets.ts";

const QOS: QoS[] = [0, 1, 2];

brokersTest(
  "publish/subscribe: our publisher to our subscriber at QoS 0, 1 and 2",
  async (target) => {
    await using sub = await connect(target.url, { clientId: fresh("sub") });
    await using pub = await connect(target.url, { clientId: fresh("pub") });
    const topic = fresh("pubsub");
    for (const qos of QOS) {
      const subscription = await sub.subscribe(`${topic}/${qos}`, { qos });
      assert.deepEqual(subscription.granted, [qos], "the broker grants the QoS asked for");
      await pub.publish(`${topic}/${qos}`, `hello at QoS ${qos}`, { qos });
      await pub.publish(`${topic}/${qos}`, new Uint8Array([0, 1, 2, 255]), { qos });
      const [text, binary] = await take(subscription, 2, `the QoS ${qos} messages`);
      assert.equal(text.topic, `${topic}/${qos}`);
      assert.equal(text.text(), `hello at QoS ${qos}`);
      assert.equal(text.qos, qos);
      assert.equal(text.retain, false);
      assert.equal(text.dup, false);
      assert.deepEqual(binary.payload, new Uint8Array([0, 1, 2, 255]));
      await subscription.unsubscribe();
    }
  },
);

brokersTest(
  "MQTT-3.8.4-6: a message is delivered at the lower of its publish QoS and the granted QoS",
  async (target) => {
    await using client = await connect(target.url, { clientId: fresh("minqos") });
    const topic = fresh("minqos");
    const subs = [];
    for (const subQos of QOS) {
      subs.push(await client.subscribe(`${topic}/sub${subQos}/+`, { qos: subQos }));
    }
    for (const subQos of QOS) {
      for (const pubQos of QOS) {
        await client.publish(`${topic}/sub${subQos}/pub${pubQos}`, `${pubQos}`, { qos: pubQos });
      }
    }
    for (const subQos of QOS) {
      const messages = await take(subs[subQos], 3, `messages for the QoS ${subQos} subscription`);
      for (const message of messages) {
        const pubQos = Number(message.text());
        assert.equal(message.topic, `${topic}/sub${subQos}/pub${pubQos}`);
        assert.equal(message.qos, Math.min(pubQos, subQos), message.topic);
      }
      assert.deepEqual(messages.map((m) => m.text()).sort(), ["0", "1", "2"]);
    }
  },
);

brokersTest(
  "wildcards: + matches one level, # any number including the parent (4.7.1)",
  async (target) => {
    await using sub = await connect(target.url, { clientId: fresh("wild-sub"), ...HOLD });
    await using pub = await connect(target.url, { clientId: fresh("wild-pub") });
    const base = fresh("wild");
    const plus = await sub.subscribe(`${base}/+/temp`, { qos: 1 });
    const hash = await sub.subscribe(`${base}/room/#`, { qos: 1 });
    const topics = [
      `${base}/kitchen/temp`, // +
      `${base}/kitchen/hum`, // neither
      `${base}/a/b/temp`, // neither: + is one level
      `${base}/room`, // #: the parent level too (4.7.1.2)
      `${base}/room/temp`, // both
      `${base}/room/1/2/3`, // #
      `${base}/end`, // sentinel for the + subscription
    ];
    for (const topic of topics) await pub.publish(topic, topic, { qos: 1 });
    await pub.publish(`${base}/end/temp`, "end", { qos: 1 });
    await pub.publish(`${base}/room/end`, "end", { qos: 1 });
    const viaPlus = await take(plus, 3, "messages matching +");
    assert.deepEqual(viaPlus.map((m) => m.topic), [
      `${base}/kitchen/temp`,
      `${base}/room/temp`,
      `${base}/end/temp`,
    ]);
    const viaHash = await take(hash, 4, "messages matching #");
    assert.deepEqual(viaHash.map((m) => m.topic), [
      `${base}/room`,
      `${base}/room/temp`,
      `${base}/room/1/2/3`,
      `${base}/room/end`,
    ]);
    // Topics that matched no subscription never reached the client.
    await assertNothingHeld(sub, `${base}/#`);
  },
);

brokersTest(
  "overlapping subscriptions: two local subscriptions both receive each message",
  async (target) => {
    await using client = await connect(target.url, { clientId: fresh("overlap") });
    const base = fresh("overlap");
    const same1 = await client.subscribe(`${base}/t`, { qos: 1 });
    const same2 = await client.subscribe(`${base}/t`, { qos: 1 });
    const wide = await client.subscribe(`${base}/#`, { qos: 1 });
    await client.publish(`${base}/t`, "one", { qos: 1 });
    await client.publish(`${base}/u`, "two", { qos: 1 });
    assert.deepEqual((await take(same1, 1, "first same-filter sub")).map((m) => m.text()), ["one"]);
    assert.deepEqual((await take(same2, 1, "second same-filter sub")).map((m) => m.text()), [
      "one",
    ]);
    assert.deepEqual((await take(wide, 2, "the # sub")).map((m) => m.text()), ["one", "two"]);

    // Ending one of two subscriptions on the same filter keeps the server subscription for the other.
    await same1.unsubscribe();
    await client.publish(`${base}/t`, "three", { qos: 1 });
    assert.equal((await take(same2, 1, "the remaining sub"))[0].text(), "three");
    assert.equal((await take(wide, 1, "the # sub"))[0].text(), "three");
    assert.equal(same1.ended, true);
  },
);

brokersTest("unsubscribe stops delivery (MQTT-3.10.4-2)", async (target) => {
  await using sub = await connect(target.url, { clientId: fresh("unsub"), ...HOLD });
  await using pub = await connect(target.url, { clientId: fresh("unsub-pub") });
  const base = fresh("unsub");
  const gone = await sub.subscribe(`${base}/gone`, { qos: 1 });
  const sentinel = await sub.subscribe(`${base}/sentinel`, { qos: 1 });
  await pub.publish(`${base}/gone`, "before", { qos: 1 });
  assert.equal((await take(gone, 1, "the message before unsubscribing"))[0].text(), "before");

  await sub.unsubscribe(`${base}/gone`);
  assert.equal(gone.ended, true, "client.unsubscribe ends the local subscription");
  await pub.publish(`${base}/gone`, "after", { qos: 1 });
  await pub.publish(`${base}/sentinel`, "sentinel", { qos: 1 });
  await take(sentinel, 1, "the sentinel");
  await assertNothingHeld(sub, `${base}/gone`);
});

brokersTest("breaking out of for await unsubscribes", async (target) => {
  await using sub = await connect(target.url, { clientId: fresh("break"), ...HOLD });
  await using pub = await connect(target.url, { clientId: fresh("break-pub") });
  const base = fresh("break");
  const subscription = await sub.subscribe(`${base}/loop`, { qos: 1 });
  const sentinel = await sub.subscribe(`${base}/sentinel`, { qos: 1 });
  await pub.publish(`${base}/loop`, "first", { qos: 1 });
  const seen: string[] = [];
  for await (const message of subscription) {
    seen.push(message.text());
    break;
  }
  assert.deepEqual(seen, ["first"]);
  assert.equal(subscription.ended, true);
  await pub.publish(`${base}/loop`, "after the loop", { qos: 1 });
  await pub.publish(`${base}/sentinel`, "sentinel", { qos: 1 });
  await take(sentinel, 1, "the sentinel");
  await assertNothingHeld(sub, `${base}/loop`);
});

brokersTest(
  "a slow consumer: the client stops reading instead of buffering, and loses nothing",
  async (target) => {
    // flood lifts the broker's queue limit (1000 by default in both), so it holds the backlog.
    await using sub = await connect(target.url, { clientId: fresh("slow") });
    await using pub = await connect(target.url, { clientId: fresh("fast") });
    const topic = fresh("slow");
    const count = 2_000;
    const bufferSize = 10;
    // Acknowledged on receipt: with the default acknowledgement on consume the broker's
    // in-flight window bounds the unacknowledged QoS 1 messages (with `flood`, none does, and
    // the client reads on to 4 × bufferSize; see "a consumer behind" below).
    const subscription = await sub.subscribe(topic, { qos: 1, bufferSize, ack: "receive" });
    const sent: Promise<unknown>[] = [];
    for (let i = 0; i < count; i++) sent.push(pub.publish(topic, String(i), { qos: 1 }));
    await within(Promise.all(sent), "all publishes to be acknowledged", 20_000);
    // Every message is now with the broker; had the client kept reading, its buffer would hold
    // far more than bufferSize of them after a moment.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(
      subscription.buffered <= bufferSize,
      `the subscription buffered ${subscription.buffered} messages, more than ${bufferSize}`,
    );
    assert.ok(subscription.buffered > 0, "the consumer's buffer filled");
    const received: Message[] = [];
    for await (const message of subscription) {
      received.push(message);
      assert.ok(subscription.buffered <= bufferSize, "the buffer stays bounded while draining");
      if (received.length === count) break;
    }
    assert.equal(received.length, count);
    received.forEach((message, i) => assert.equal(message.text(), String(i), "in order"));
  },
  { target: { flood: true } },
);

brokersTest(
  "close does not wait for a consumer that is behind (reading paused)",
  async (target) => {
    const client = await connect(target.url, { clientId: fresh("behind"), closeTimeout: 10_000 });
    const topic = fresh("behind");
    const bufferSize = 2;
    const subscription = await client.subscribe(topic, { qos: 1, bufferSize });
    for (let i = 0; i < 10; i++) await client.publish(topic, String(i), { qos: 0 });
    // QoS 0: they resolve once written, which does not need the (soon paused) reading.
    await within(
      (async () => {
        while (subscription.buffered < bufferSize) await new Promise((r) => setTimeout(r, 10));
      })(),
      "the subscription's buffer to fill",
    );
    // Before the fix, close() waited forever for the paused read loop (closeTimeout included).
    await within(client.close(), "close() with a consumer behind", 3_000);
    // The buffered messages can still be read; then the iteration ends.
    const rest: string[] = [];
    for await (const message of subscription) rest.push(message.text());
    assert.deepEqual(rest, ["0", "1"]);
  },
);

brokersTest(
  "maxPacketSize: a larger incoming packet ends the connection with PACKET_TOO_LARGE",
  async (target) => {
    const client = await connect(target.url, {
      clientId: fresh("small"),
      maxPacketSize: 1_000,
      reconnect: false,
    });
    await using pub = await connect(target.url, { clientId: fresh("big") });
    const topic = fresh("big");
    const subscription = await client.subscribe(topic, { qos: 1 });
    const ended = closed(client);
    await pub.publish(topic, new Uint8Array(900), { qos: 1 }); // fits
    await pub.publish(topic, new Uint8Array(2_000), { qos: 1 }); // does not
    assert.equal((await take(subscription, 1, "the small message"))[0].payload.length, 900);
    const error = await within(ended, "the connection to end");
    assert.ok(error instanceof ProtocolError, String(error));
    assert.equal(error.code, "PACKET_TOO_LARGE");
    await client.close();
  },
);

brokersTest(
  "MQTT-3.1.4-2: a second client with the same id takes over; the first is closed",
  async (target) => {
    const clientId = fresh("twin");
    const first = await connect(target.url, { clientId, reconnect: false });
    const ended = closed(first);
    await using second = await connect(target.url, { clientId, reconnect: false });
    const error = await within(ended, "the first client to be disconnected");
    assert.ok(error !== undefined);
    if (error instanceof ServerDisconnectError) {
      // 5.0, the embedded broker: DISCONNECT 0x8E Session taken over first (MQTT-3.1.4-3);
      // Mosquitto 2.0.11 closes the connection without one.
      assert.equal(error.reasonCode, 0x8e);
    } else assert.equal(error.code, "CONNECTION_CLOSED");
    assert.equal(first.closed, true);
    assert.equal(second.connected, true);
    await first.close();
  },
);

brokersTest("an abort signal that fires after connecting closes the client", async (target) => {
  const controller = new AbortController();
  const client = await connect(target.url, {
    clientId: fresh("aborted"),
    signal: controller.signal,
  });
  const subscription = await client.subscribe(fresh("aborted"), { qos: 1 });
  const ended = closed(client);
  controller.abort();
  assert.equal(await within(ended, "the close event"), undefined, "a clean close");
  assert.equal(client.closed, true);
  assert.equal(subscription.ended, true);
});

brokersTest(
  "publish and subscribe: invalid topics, filters and QoS are refused locally",
  async (target) => {
    await using client = await connect(target.url, { clientId: fresh("invalid") });
    for (const topic of ["a/+", "a/#", "#", ""]) {
      // MQTT-3.3.2-2: a topic name has no wildcards; MQTT-4.7.3-1: it is not empty.
      await assert.rejects(client.publish(topic, "x"), (err) => {
        assert.ok(err instanceof ProtocolError, `${topic}: ${String(err)}`);
        assert.equal(err.code, "INVALID_TOPIC");
        return true;
      });
    }
    // MQTT-4.7.1-2: # only last and alone in its level; MQTT-4.7.1-3: + alone in its level.
    for (const filter of ["a/#/b", "a#", "a/b+"]) {
      await assert.rejects(client.subscribe(filter), hasCode("INVALID_TOPIC_FILTER"), filter);
    }
    await assert.rejects(client.publish("a", "x", { qos: 3 as QoS }), hasCode("INVALID_OPTION"));
    await assert.rejects(client.subscribe([]), hasCode("INVALID_OPTION"));
    assert.equal(client.connected, true, "local refusals leave the connection up");
    await client.publish("still/works", "yes", { qos: 1 });
  },
);

brokersTest(
  "after close: publish, subscribe and unsubscribe reject with CONNECTION_CLOSED",
  async (target) => {
    const client = await connect(target.url, { clientId: fresh("closed") });
    assert.ok(client instanceof MqttClient);
    const subscription = await client.subscribe("after/close", { qos: 1 });
    let closeEvents = 0;
    client.addEventListener("close", () => closeEvents++);
    await client.close();
    await client.close(); // idempotent
    assert.equal(closeEvents, 1);
    assert.equal(client.closed, true);
    assert.equal(client.connected, false);
    assert.equal(subscription.ended, true, "close ends the subscriptions");
    await assert.rejects(
      client.publish("after/close", "x", { qos: 1 }),
      hasCode("CONNECTION_CLOSED"),
    );
    await assert.rejects(client.publish("after/close", "x"), hasCode("CONNECTION_CLOSED"));
    await assert.rejects(client.subscribe("after/close"), hasCode("CONNECTION_CLOSED"));
    await assert.rejects(client.unsubscribe("after/close"), hasCode("CONNECTION_CLOSED"));
  },
);

brokersTest("close waits for in-flight QoS 1 and 2 publishes to complete", async (target) => {
  await using watcher = await connect(target.url, { clientId: fresh("watcher") });
  const topic = fresh("inflight");
  const subscription = await watcher.subscribe(topic, { qos: 2 });
  const client = await connect(target.url, { clientId: fresh("closer") });
  const publishes = [1, 2].map((qos) => client.publish(topic, `qos ${qos}`, { qos: qos as QoS }));
  await client.close();
  await within(Promise.all(publishes), "the in-flight publishes to resolve");
  const messages = await take(subscription, 2, "the published messages");
  assert.deepEqual(messages.map((m) => m.text()), ["qos 1", "qos 2"]);
});

brokersTest(
  "a consumer that publishes at QoS 1 per message of a burst of 4 × bufferSize does not deadlock",
  async (target) => {
    // The PUBACK of the consumer's publish sits in the socket behind unread messages; the client
    // reads ahead while an acknowledgement is awaited, up to 4 × bufferSize (so a burst of up to
    // that many is relayed; past it, bounded memory wins and reading waits for the consumer).
    await using client = await connect(target.url, { clientId: fresh("relay"), bufferSize: 5 });
    await using source = await connect(target.url, { clientId: fresh("source") });
    const topic = fresh("burst");
    const subscription = await client.subscribe(`${topic}/in`, { qos: 1 });
    const burst = 19;
    await Promise.all(
      Array.from({ length: burst }, (_, i) => source.publish(`${topic}/in`, String(i), { qos: 1 })),
    );
    const relayed: string[] = [];
    await within(
      (async () => {
        for await (const msg of subscription) {
          await client.publish(`${topic}/out`, msg.payload, { qos: 1 });
          relayed.push(msg.text());
          assert.ok(subscription.buffered <= 4 * 5, `buffer grew to ${subscription.buffered}`);
          if (relayed.length === burst) break;
        }
      })(),
      "the relay loop to finish",
      10_000,
    );
    assert.deepEqual(relayed, Array.from({ length: burst }, (_, i) => String(i)));
  },
  { target: { flood: true } },
);

brokersTest(
  "MQTT-3.1.2-8: the will is published when the socket dies without DISCONNECT",
  async (target) => {
    await using proxy = await startProxy({ target: { hostname: target.host, port: target.port } });
    await using watcher = await connect(target.url, { clientId: fresh("watcher") });
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

brokersTest("MQTT-3.1.2-10: no will after a clean close (DISCONNECT)", async (target) => {
  await using proxy = await startProxy({ target: { hostname: target.host, port: target.port } });
  await using watcher = await connect(target.url, { clientId: fresh("watcher") });
  const base = fresh("will/clean");
  const wills = await watcher.subscribe(`${base}/#`, { qos: 1 });

  // Connected straight to the broker, so its DISCONNECT surely gets there before the socket
  // closes (through the proxy, a cut could overtake it).
  const polite = await connect(target.url, {
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

brokersTest("MQTT-3.1.2-17: a retained will is kept for later subscribers", async (target) => {
  await using proxy = await startProxy({ target: { hostname: target.host, port: target.port } });
  const topic = fresh("will/retained");
  await using watcher = await connect(target.url, { clientId: fresh("watcher") });
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
  await using late = await connect(target.url, { clientId: fresh("late") });
  const sub = await late.subscribe(topic, { qos: 1 });
  const [will] = await take(sub, 1, "the retained will");
  assert.equal(will.text(), "offline");
  assert.equal(will.retain, true);
});

brokersTest(
  "MQTT-3.3.1-6, -8: a late subscriber gets the retained message flagged retain",
  async (target) => {
    await using pub = await connect(target.url, { clientId: fresh("pub") });
    await using sub = await connect(target.url, { clientId: fresh("sub") });
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
    const lines = await mosquittoSub(["-p", String(target.port), "-t", topic, "-v"], { count: 1 });
    assert.deepEqual(lines, [`${topic} kept`]);
  },
  { cli: true },
);

brokersTest(
  "MQTT-3.3.1-10, -11: an empty retained publish clears the retained message",
  async (target) => {
    await using client = await connect(target.url, { clientId: fresh("clear") });
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
    const r = await mosquittoPub(["-p", String(target.port), "-t", topic, "-m", "cli", "-r"]);
    assert.equal(r.code, 0, r.stderr);
    await client.publish(topic, "", { qos: 1, retain: true });
    await sub.unsubscribe();
    const again = await client.subscribe(topic, { qos: 1 });
    await client.publish(topic, "live again", { qos: 1 });
    assert.equal((await take(again, 1, "the second live message"))[0].text(), "live again");
  },
  { cli: true },
);

brokersTest(
  "MQTT-3.1.2-4, 3.2.2-2: a persistent session keeps QoS 1 and 2 messages sent while offline",
  async (target) => {
    const clientId = fresh("durable");
    const base = fresh("session");
    const first = await connect(target.url, { clientId, clean: false });
    assert.equal(first.sessionPresent, false, "a new client id has no session");
    await first.subscribe(`${base}/q1`, { qos: 1 });
    await first.subscribe(`${base}/q2`, { qos: 2 });
    await first.close();

    // While it is away: QoS 2 first (they will wait, held, for a subscription), then QoS 1,
    // from another client and from mosquitto_pub.
    await using other = await connect(target.url, { clientId: fresh("other") });
    for (let i = 0; i < 3; i++) await other.publish(`${base}/q2`, `q2 #${i}`, { qos: 2 });
    const cli = await mosquittoPub(
      ["-p", String(target.port), "-t", `${base}/q2`, "-m", "q2 cli", "-q", "2"],
    );
    assert.equal(cli.code, 0, cli.stderr);
    for (let i = 0; i < 3; i++) await other.publish(`${base}/q1`, `q1 #${i}`, { qos: 1 });
    // MQTT-3.8.4-6 applies to queued messages too: QoS 2 to a QoS 1 subscription arrives at 1.
    await other.publish(`${base}/q1`, "q1 at qos 2", { qos: 2 });

    await using again = await connect(target.url, { clientId, clean: false });
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
  { cli: true },
);

brokersTest(
  "MQTT-3.1.2-6, 3.2.2-1: a clean session reports no session and gets nothing queued",
  async (target) => {
    const clientId = fresh("forgetful");
    const topic = fresh("session/clean");
    const first = await connect(target.url, { clientId, clean: false });
    await first.subscribe(topic, { qos: 1 });
    await first.close();
    await using other = await connect(target.url, { clientId: fresh("other") });
    for (const qos of [1, 2] as QoS[]) await other.publish(topic, `offline ${qos}`, { qos });

    await using again = await connect(target.url, { clientId, clean: true });
    assert.equal(again.sessionPresent, false, "a clean session is never present");
    const sub = await again.subscribe(topic, { qos: 1 });
    await other.publish(topic, "sentinel", { qos: 1 });
    const [message] = await take(sub, 1, "the sentinel");
    assert.equal(message.text(), "sentinel", "an offline message was delivered");

    // The discarded session is gone for good: a later clean=false connection starts afresh.
    await again.close();
    await using fresh2 = await connect(target.url, { clientId, clean: false });
    assert.equal(fresh2.sessionPresent, false);
  },
);

brokersTest(
  "held messages: nothing is lost when a resumed session delivers before SUBSCRIBE",
  async (target) => {
    const clientId = fresh("holder");
    const base = fresh("held");
    const first = await connect(target.url, { clientId, clean: false });
    await first.subscribe(`${base}/#`, { qos: 1 });
    await first.close();
    await using other = await connect(target.url, { clientId: fresh("other") });
    const count = 50;
    for (let i = 0; i < count; i++) await other.publish(`${base}/${i % 3}`, String(i), { qos: 1 });
    await other.publish(`${base}/sentinel`, "sentinel", { qos: 1 });

    await using again = await connect(target.url, { clientId, clean: false });
    assert.equal(again.sessionPresent, true);
    // The queued messages arrive right after CONNACK and are held until a subscription takes
    // them. They are acknowledged once consumed, in arrival order (MQTT-4.6.0-2), so the
    // broker's in-flight window (20) moves only as they are: subscribe to every filter, then
    // consume them all, the sentinel last.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const subs = [];
    for (const level of ["0", "1", "2"]) {
      subs.push(await again.subscribe(`${base}/${level}`, { qos: 1 }));
    }
    const sentinel = await again.subscribe(`${base}/sentinel`, { qos: 1 });
    const received: Message[] = [];
    const perLevel = [17, 17, 16];
    await Promise.all(subs.map(async (sub, i) => {
      received.push(...await take(sub, perLevel[i], `the held and queued messages of ${i}`));
      await sub.unsubscribe();
    }));
    assert.equal((await take(sentinel, 1, "the sentinel"))[0].text(), "sentinel");
    assert.deepEqual(
      received.map((m) => Number(m.text())).sort((a, b) => a - b),
      Array.from({ length: count }, (_, i) => i),
    );
    await assertNothingHeld(again, `${base}/#`);
  },
);

brokersTest(
  "held messages: more than bufferSize held do not block the SUBSCRIBE that takes them",
  async (target) => {
    const clientId = fresh("overflow");
    const topic = fresh("held/overflow");
    const first = await connect(target.url, { clientId, clean: false });
    await first.subscribe(topic, { qos: 1 });
    await first.close();
    await using other = await connect(target.url, { clientId: fresh("other") });
    const count = 20;
    for (let i = 0; i < count; i++) await other.publish(topic, String(i), { qos: 1 });

    const bufferSize = 5;
    await using again = await connect(target.url, { clientId, clean: false, bufferSize });
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

brokersTest(
  "keep-alive: a consumer behind for longer than keep-alive keeps the connection",
  async (target) => {
    await using client = await connect(target.url, {
      clientId: fresh("behind"),
      keepAlive: 1,
      pingTimeout: 1_000,
      reconnect: false,
    });
    await using pub = await connect(target.url, { clientId: fresh("pub") });
    const topic = fresh("behind");
    const count = 100;
    const subscription = await client.subscribe(topic, { qos: 1, bufferSize: 2 });
    for (let i = 0; i < count; i++) await pub.publish(topic, String(i), { qos: 1 });
    let dropped: unknown = "no disconnect";
    client.addEventListener("disconnect", (e) => dropped = (e as CustomEvent).detail.error);
    // Reading is paused all along. PINGREQs must still go out (both brokers drop a client silent
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
  { target: { flood: true } },
);

/** Resolves on the client's next `connect` event that is a reconnect. */
function reconnected(client: MqttClient): Promise<boolean> {
  return new Promise((resolve) => {
    // Typed by the listener parameter, not as `Event`: `deno check` of the whole repository
    // also loads Node's types (bench/), whose global `Event` differs from the DOM one.
    const listener: Parameters<MqttClient["addEventListener"]>[1] = (event) => {
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
  brokersTest(
    `MQTT-4.3.3-2: an incoming QoS 2 message cut ${when} is delivered exactly once`,
    async (target) => {
      await using proxy = await startProxy({
        target: { hostname: target.host, port: target.port },
      });
      const topic = fresh("exactly-once");
      await using client = await connect(proxy.url, {
        clientId: fresh("once"),
        clean: false,
        reconnect: { minDelay: 10, maxDelay: 50 },
      });
      const sub = await client.subscribe(topic, { qos: 2 });
      await using pub = await connect(target.url, { clientId: fresh("pub") });

      // The client answers the PUBLISH with PUBREC (4 bytes up); the link dies after `upBytes`
      // of them, and the client reconnects to the same session.
      proxy.cutAfterBytes(upBytes, "up");
      const back = reconnected(client);
      // PUBREC goes out once the message is consumed: when the loop asks for the next one.
      const taking = take(sub, 2, "the message and the sentinel");
      await pub.publish(topic, "once", { qos: 2 });
      assert.equal(await within(back, "the reconnect"), true, "the session was resumed");
      await pub.publish(topic, "sentinel", { qos: 2 });
      const messages = await taking;
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
  brokersTest(
    `an outgoing QoS 2 publish cut ${when} completes, delivered exactly once`,
    async (target) => {
      await using proxy = await startProxy({
        target: { hostname: target.host, port: target.port },
      });
      const topic = fresh("exactly-once-out");
      await using watcher = await connect(target.url, { clientId: fresh("watcher") });
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
