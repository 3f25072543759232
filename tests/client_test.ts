/**
 * The client against a real Mosquitto, where Mosquitto itself matters: refused subscriptions
 * (its dynamic-security plugin), `$SYS` topics, `mosquitto_pub` and `mosquitto_sub` as
 * independent peers; and the typed errors of connect with no broker at all. The
 * broker-independent cases (publish/subscribe, wildcards, unsubscribing, backpressure, close)
 * run against Mosquitto and the embedded broker alike in `client_brokers_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type QoS, SubscribeError } from "../mod.ts";
import {
  brokerTest,
  dynsecBroker,
  freePort,
  mosquittoPub,
  startMosquitto,
  startMosquittoSub,
} from "./broker/mod.ts";
import { assertNothingHeld, fresh, hasCode, HOLD, take, within } from "./client_helpers.ts";

const QOS: QoS[] = [0, 1, 2];

brokerTest(
  "a subscription refused with 0x80 (3.9.3) rejects with SubscribeError",
  async () => {
    await using dynsec = await dynsecBroker();
    await using client = await connect(dynsec.broker.url, {
      clientId: fresh("refused"),
      ...HOLD,
    });
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

Deno.test("connect: a transport factory that never settles still fails with CONNECT_TIMEOUT", async () => {
  let opened = 0;
  await assert.rejects(
    connect("mqtt://unused.invalid", {
      connectTimeout: 100,
      transport: () => {
        opened++;
        return new Promise<never>(() => {});
      },
    }),
    hasCode("CONNECT_TIMEOUT"),
  );
  assert.equal(opened, 1);
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
