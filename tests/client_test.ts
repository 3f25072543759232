/**
 * The client against a real Mosquitto: publish and subscribe at every QoS, wildcard and
 * overlapping subscriptions, unsubscribing, refused subscriptions, `mosquitto_pub` and
 * `mosquitto_sub` as independent peers, backpressure from a slow consumer, and the typed errors
 * of connect, publish and close.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  connect,
  type Message,
  MqttClient,
  ProtocolError,
  type QoS,
  SubscribeError,
} from "../mod.ts";
import {
  brokerTest,
  freePort,
  mosquittoPub,
  startMosquitto,
  startMosquittoSub,
} from "./broker/mod.ts";
import { assertNothingHeld, closed, fresh, hasCode, take, within } from "./client_helpers.ts";

const QOS: QoS[] = [0, 1, 2];

brokerTest("publish/subscribe: our publisher to our subscriber at QoS 0, 1 and 2", async () => {
  await using broker = await startMosquitto();
  await using sub = await connect(broker.url, { clientId: fresh("sub") });
  await using pub = await connect(broker.url, { clientId: fresh("pub") });
  const topic = fresh("pubsub");
  for (const qos of QOS) {
    const subscription = await sub.subscribe(`${topic}/${qos}`, { qos });
    assert.deepEqual(subscription.granted, [qos], "Mosquitto grants the QoS asked for");
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
});

brokerTest(
  "MQTT-3.8.4-6: a message is delivered at the lower of its publish QoS and the granted QoS",
  async () => {
    await using broker = await startMosquitto();
    await using client = await connect(broker.url, { clientId: fresh("minqos") });
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

brokerTest(
  "wildcards: + matches one level, # any number including the parent (4.7.1)",
  async () => {
    await using broker = await startMosquitto();
    await using sub = await connect(broker.url, { clientId: fresh("wild-sub") });
    await using pub = await connect(broker.url, { clientId: fresh("wild-pub") });
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

brokerTest(
  "overlapping subscriptions: two local subscriptions both receive each message",
  async () => {
    await using broker = await startMosquitto();
    await using client = await connect(broker.url, { clientId: fresh("overlap") });
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

brokerTest("unsubscribe stops delivery (MQTT-3.10.4-2)", async () => {
  await using broker = await startMosquitto();
  await using sub = await connect(broker.url, { clientId: fresh("unsub") });
  await using pub = await connect(broker.url, { clientId: fresh("unsub-pub") });
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

brokerTest("breaking out of for await unsubscribes", async () => {
  await using broker = await startMosquitto();
  await using sub = await connect(broker.url, { clientId: fresh("break") });
  await using pub = await connect(broker.url, { clientId: fresh("break-pub") });
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

/** Writes a dynamic-security config that lets anonymous clients subscribe to `open/#` only. */
async function dynsecBroker() {
  const plugin = [
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
  ].find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  });
  if (!plugin) throw new Error("Mosquitto's dynamic security plugin is not installed");
  // Mosquitto's acl_file cannot refuse a SUBSCRIBE (it filters at delivery); the dynamic
  // security plugin can, with return code 0x80.
  const dir = await Deno.makeTempDir({ prefix: "dynsec-" });
  await Deno.chmod(dir, 0o777);
  await Deno.writeTextFile(
    `${dir}/dynsec.json`,
    JSON.stringify({
      defaultACLAccess: {
        publishClientSend: true,
        publishClientReceive: true,
        subscribe: false,
        unsubscribe: true,
      },
      clients: [],
      groups: [{ groupname: "anonymous", roles: [{ rolename: "open" }] }],
      roles: [{
        rolename: "open",
        acls: [{ acltype: "subscribePattern", topic: "open/#", allow: true }],
      }],
      anonymousGroup: "anonymous",
    }),
    { mode: 0o666 },
  );
  const broker = await startMosquitto({
    extraConfig: `plugin ${plugin}\nplugin_opt_config_file ${dir}/dynsec.json`,
  });
  return {
    broker,
    async [Symbol.asyncDispose]() {
      await broker.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

brokerTest(
  "a subscription refused with 0x80 (3.9.3) rejects with SubscribeError",
  async () => {
    await using dynsec = await dynsecBroker();
    await using client = await connect(dynsec.broker.url, { clientId: fresh("refused") });
    const base = fresh("open/refused");
    await assert.rejects(client.subscribe("secret/#", { qos: 1 }), (err) => {
      assert.ok(err instanceof SubscribeError);
      assert.equal(err.code, "SUBSCRIBE_FAILED");
      assert.equal(err.filter, "secret/#");
      return true;
    });

    // Partly refused: the error names the refused filter, and the granted one is undone so that
    // nothing is delivered for it.
    await assert.rejects(
      client.subscribe([`${base}/granted`, "secret/x"], { qos: 1 }),
      (err) => err instanceof SubscribeError && err.filter === "secret/x",
    );
    const sentinel = await client.subscribe(`${base}/sentinel`, { qos: 1 });
    await client.publish(`${base}/granted`, "nobody wants this", { qos: 1 });
    await client.publish(`${base}/sentinel`, "sentinel", { qos: 1 });
    await take(sentinel, 1, "the sentinel");
    await assertNothingHeld(client, `${base}/granted`);
    assert.equal(client.connected, true, "a refused subscription leaves the connection up");
  },
);

brokerTest("MQTT-4.7.2-1: filters starting with a wildcard do not match $ topics", async () => {
  await using broker = await startMosquitto();
  await using client = await connect(broker.url, { clientId: fresh("dollar") });
  const all = await client.subscribe("#", { qos: 0 });
  const plus = await client.subscribe("+/broker/version", { qos: 0 });
  const sys = await client.subscribe("$SYS/broker/version", { qos: 0 });
  // Mosquitto sends the retained $SYS message to the new $SYS subscription only; locally, it
  // must not be routed to # or + either.
  const [version] = await take(sys, 1, "$SYS/broker/version");
  assert.equal(version.topic, "$SYS/broker/version");
  assert.match(version.text(), /mosquitto version/);
  await client.publish("x/broker/version", "sentinel", { qos: 1 });
  assert.equal((await take(all, 1, "the sentinel on #"))[0].topic, "x/broker/version");
  assert.equal((await take(plus, 1, "the sentinel on +"))[0].topic, "x/broker/version");
});

brokerTest("messages from mosquitto_pub are received at QoS 0, 1 and 2", async () => {
  await using broker = await startMosquitto();
  await using client = await connect(broker.url, { clientId: fresh("from-cli") });
  const base = fresh("from-cli");
  const subscription = await client.subscribe(`${base}/#`, { qos: 2 });
  for (const qos of QOS) {
    const result = await mosquittoPub([
      "-p",
      String(broker.port),
      "-t",
      `${base}/${qos}`,
      "-m",
      `from mosquitto_pub at QoS ${qos}`,
      "-q",
      String(qos),
    ]);
    assert.equal(result.code, 0, result.stderr);
  }
  const messages = await take(subscription, 3, "the mosquitto_pub messages");
  for (const qos of QOS) {
    const message = messages[qos];
    assert.equal(message.topic, `${base}/${qos}`);
    assert.equal(message.text(), `from mosquitto_pub at QoS ${qos}`);
    assert.equal(message.qos, qos);
  }
});

brokerTest("messages we publish at QoS 0, 1 and 2 reach mosquitto_sub", async () => {
  await using broker = await startMosquitto();
  await using client = await connect(broker.url, { clientId: fresh("to-cli") });
  const base = fresh("to-cli");
  await using cli = await startMosquittoSub(
    ["-p", String(broker.port), "-t", `${base}/#`, "-q", "2", "-v"],
    { count: 4 },
  );
  for (const qos of QOS) await client.publish(`${base}/${qos}`, `at QoS ${qos}`, { qos });
  await client.publish(`${base}/utf8`, "grüße ☃", { qos: 1 });
  const lines = await within(cli.done, "mosquitto_sub to receive 4 messages");
  // Order across QoS levels is not guaranteed: a QoS 2 message is handed over on PUBREL.
  assert.deepEqual(lines.toSorted(), [
    `${base}/0 at QoS 0`,
    `${base}/1 at QoS 1`,
    `${base}/2 at QoS 2`,
    `${base}/utf8 grüße ☃`,
  ]);
  assert.equal(cli.code, 0);
});

brokerTest(
  "a slow consumer: the client stops reading instead of buffering, and loses nothing",
  async () => {
    // flood lifts Mosquitto's queue limit (1000 by default), so the broker holds the backlog.
    await using broker = await startMosquitto({ flood: true });
    await using sub = await connect(broker.url, { clientId: fresh("slow") });
    await using pub = await connect(broker.url, { clientId: fresh("fast") });
    const topic = fresh("slow");
    const count = 2_000;
    const bufferSize = 10;
    const subscription = await sub.subscribe(topic, { qos: 1, bufferSize });
    const sent: Promise<void>[] = [];
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
);

brokerTest("close does not wait for a consumer that is behind (reading paused)", async () => {
  await using broker = await startMosquitto();
  const client = await connect(broker.url, { clientId: fresh("behind"), closeTimeout: 10_000 });
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
});

brokerTest(
  "maxPacketSize: a larger incoming packet ends the connection with PACKET_TOO_LARGE",
  async () => {
    await using broker = await startMosquitto();
    const client = await connect(broker.url, {
      clientId: fresh("small"),
      maxPacketSize: 1_000,
      reconnect: false,
    });
    await using pub = await connect(broker.url, { clientId: fresh("big") });
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

brokerTest(
  "MQTT-3.1.4-2: a second client with the same id takes over; the first is closed",
  async () => {
    await using broker = await startMosquitto();
    const clientId = fresh("twin");
    const first = await connect(broker.url, { clientId, reconnect: false });
    const ended = closed(first);
    await using second = await connect(broker.url, { clientId, reconnect: false });
    const error = await within(ended, "the first client to be disconnected");
    assert.ok(error !== undefined);
    assert.equal(error.code, "CONNECTION_CLOSED");
    assert.equal(first.closed, true);
    assert.equal(second.connected, true);
    await first.close();
  },
);

brokerTest("connect: a listener that never answers fails with CONNECT_TIMEOUT", async () => {
  await using silent = silentServer();
  const started = performance.now();
  await assert.rejects(
    connect(`mqtt://127.0.0.1:${silent.port}`, { connectTimeout: 300 }),
    hasCode("CONNECT_TIMEOUT"),
  );
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 290, `gave up after ${elapsed} ms, before the 300 ms timeout`);
  await silent.accepted;
});

brokerTest("connect: an abort signal fails it with ABORTED", async () => {
  await using silent = silentServer();
  const controller = new AbortController();
  const connecting = connect(`mqtt://127.0.0.1:${silent.port}`, { signal: controller.signal });
  await silent.accepted; // the TCP connection is up and CONNECT sent; no CONNACK will come
  controller.abort(new Error("user gave up"));
  await assert.rejects(connecting, hasCode("ABORTED"));

  // An already aborted signal never opens a connection.
  await assert.rejects(
    connect(`mqtt://127.0.0.1:${silent.port}`, { signal: AbortSignal.abort() }),
    hasCode("ABORTED"),
  );
});

brokerTest("an abort signal that fires after connecting closes the client", async () => {
  await using broker = await startMosquitto();
  const controller = new AbortController();
  const client = await connect(broker.url, {
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

brokerTest("connect: a closed port fails with TRANSPORT_ERROR", async () => {
  const port = freePort();
  await assert.rejects(connect(`mqtt://127.0.0.1:${port}`), hasCode("TRANSPORT_ERROR"));
});

brokerTest("connect: invalid options fail with INVALID_OPTION before any I/O", async () => {
  const url = "mqtt://127.0.0.1:1";
  const cases: [string, Parameters<typeof connect>][] = [
    ["unknown scheme", ["http://127.0.0.1:1883"]],
    ["path on mqtt:", ["mqtt://127.0.0.1:1883/path"]],
    ["keepAlive out of range", [url, { keepAlive: 70_000 }]],
    ["negative keepAlive", [url, { keepAlive: -1 }]],
    ["password without username (MQTT-3.1.2-22)", [url, { password: "p" }]],
    ["empty clientId with clean=false (MQTT-3.1.3-7)", [url, { clientId: "", clean: false }]],
    ["will QoS 3 (MQTT-3.1.2-14)", [url, { will: { topic: "w", payload: "x", qos: 3 as QoS } }]],
    ["wildcard will topic", [url, { will: { topic: "w/#", payload: "x" } }]],
    ["tls on mqtt:", [url, { tls: { caCerts: [] } }]],
    ["cert without key", ["mqtts://127.0.0.1:1", { tls: { cert: "PEM" } }]],
    ["zero connectTimeout", [url, { connectTimeout: 0 }]],
  ];
  for (const [what, args] of cases) {
    await assert.rejects(connect(...args), hasCode("INVALID_OPTION"), what);
  }
});

brokerTest(
  "publish and subscribe: invalid topics, filters and QoS are refused locally",
  async () => {
    await using broker = await startMosquitto();
    await using client = await connect(broker.url, { clientId: fresh("invalid") });
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

brokerTest(
  "after close: publish, subscribe and unsubscribe reject with CONNECTION_CLOSED",
  async () => {
    await using broker = await startMosquitto();
    const client = await connect(broker.url, { clientId: fresh("closed") });
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

brokerTest("close waits for in-flight QoS 1 and 2 publishes to complete", async () => {
  await using broker = await startMosquitto();
  await using watcher = await connect(broker.url, { clientId: fresh("watcher") });
  const topic = fresh("inflight");
  const subscription = await watcher.subscribe(topic, { qos: 2 });
  const client = await connect(broker.url, { clientId: fresh("closer") });
  const publishes = [1, 2].map((qos) => client.publish(topic, `qos ${qos}`, { qos: qos as QoS }));
  await client.close();
  await within(Promise.all(publishes), "the in-flight publishes to resolve");
  const messages = await take(subscription, 2, "the published messages");
  assert.deepEqual(messages.map((m) => m.text()), ["qos 1", "qos 2"]);
});

/** A TCP listener that accepts connections and never answers (nor reads). */
function silentServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepted = (async () => {
    const conn = await listener.accept();
    conns.push(conn);
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    accepted,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepted.catch(() => {});
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
    },
  };
}

brokerTest(
  "a consumer that publishes at QoS 1 per message of a burst of 4 × bufferSize does not deadlock",
  async () => {
    // The PUBACK of the consumer's publish sits in the socket behind unread messages; the client
    // reads ahead while an acknowledgement is awaited, up to 4 × bufferSize (so a burst of up to
    // that many is relayed; past it, bounded memory wins and reading waits for the consumer).
    await using broker = await startMosquitto({ flood: true });
    await using client = await connect(broker.url, { clientId: fresh("relay"), bufferSize: 5 });
    await using source = await connect(broker.url, { clientId: fresh("source") });
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
);
