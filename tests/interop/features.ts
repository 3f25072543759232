/**
 * The broker-independent client test bodies of the interoperability suite. Each takes a running
 * broker and either passes, fails (an assertion throws), or finds a limit of the broker: a
 * feature the broker does not offer, shown by the broker itself (a SUBACK granting less, an
 * acknowledgement of the wrong kind, a closed connection with its log line). Limits throw
 * {@linkcode BrokerLimit} with that evidence; anything else that goes wrong is a failure.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../../lib/client/connect.ts";
import type { MqttClient } from "../../lib/client/client.ts";
import type { ConnectOptions } from "../../lib/client/options.ts";
import type { Subscription } from "../../lib/client/subscription.ts";
import type { QoS } from "../../lib/codec/packet.ts";
import { MqttError } from "../../lib/errors.ts";
import { connectTcp } from "../../lib/transports/tcp.ts";
import type { Transport } from "../../lib/transports/transport.ts";
import { assertNothingHeld, closed, fresh, take, within } from "../client_helpers.ts";
import type { InteropBroker } from "./brokers.ts";
import { describe, Probe } from "./probe.ts";

/** A feature the broker does not offer, with the broker's own evidence. */
export class BrokerLimit extends Error {
  /**
   * @example
   * ```ts
   * throw new BrokerLimit("SUBACK granted QoS 1 for a QoS 2 request");
   * ```
   */
  constructor(reason: string) {
    super(reason);
    this.name = "BrokerLimit";
  }
}

/** One feature of the matrix. */
export interface Feature {
  /** Short key, used in test step names and the results file. */
  key: string;
  /** What the matrix row says. */
  title: string;
  /** The test body. */
  run(broker: InteropBroker): Promise<void>;
}

/** A client for one feature; no reconnects (a broker closing on us must show, not be hidden). */
function client(broker: InteropBroker, options: ConnectOptions = {}): Promise<MqttClient> {
  return connect(broker.url, {
    clientId: fresh("interop"),
    reconnect: false,
    closeTimeout: 1000,
    ...options,
  });
}

/** The broker log lines matching `pattern`, timestamps and all, at most `max` of them. */
async function logLines(broker: InteropBroker, pattern: RegExp, max = 2): Promise<string[]> {
  // ANSI colours (RabbitMQ's console log) would only clutter the report.
  // deno-lint-ignore no-control-regex
  const log = (await broker.log()).replace(/\x1b\[[0-9;]*m/g, "");
  return log.split("\n").filter((line) => pattern.test(line)).slice(-max).map(stableLine);
}

/**
 * A log line without what changes from run to run (process id, time, port, connection number,
 * client id), so the generated matrix stays the same between runs.
 */
function stableLine(line: string): string {
  return line.trim()
    .replace(/^\[\d+\] \S+ \S+ /, "") // NATS: "[pid] date time "
    .replace(/^\d{4}-\d\d-\d\d \S+ /, "") // RabbitMQ: "date time+zone "
    .replace(/127\.0\.0\.1:\d+/g, "127.0.0.1")
    .replace(/ - mid:\d+/g, "")
    .replace(/ - "[^"]*" - /g, " - ");
}

/** Requires `granted` to equal `requested`; a lower grant is the broker's limit (MQTT-3.8.4-6). */
function requireGrant(sub: Subscription, requested: QoS): void {
  const granted = sub.granted[0];
  if (granted < requested) {
    throw new BrokerLimit(`SUBACK granted QoS ${granted} for a QoS ${requested} subscription`);
  }
  assert.equal(granted, requested);
}

async function pubsub(broker: InteropBroker, qos: QoS): Promise<void> {
  const topic = fresh(`interop/qos${qos}`);
  const sub = await client(broker);
  const pub = await client(broker);
  try {
    const subscription = await sub.subscribe(`${topic}/#`, { qos });
    requireGrant(subscription, qos);
    const count = 10;
    const sent = [];
    for (let i = 0; i < count; i++) sent.push(pub.publish(`${topic}/${i}`, `m${i}`, { qos }));
    await within(Promise.all(sent), `the QoS ${qos} publishes to complete`);
    const received = await take(subscription, count, `the QoS ${qos} messages`);
    assert.deepEqual(received.map((m) => m.text()), sent.map((_, i) => `m${i}`));
    for (const [i, m] of received.entries()) {
      assert.equal(m.topic, `${topic}/${i}`);
      assert.equal(m.qos, qos);
      assert.equal(m.retain, false);
    }
  } finally {
    await pub.close();
    await sub.close();
  }
}

/**
 * QoS 2 end to end. When the QoS 2 publish does not complete, a raw probe sends one QoS 2 PUBLISH
 * and reports what the broker answered, with any log line it wrote about it.
 */
async function qos2(broker: InteropBroker): Promise<void> {
  const topic = fresh("interop/qos2");
  const sub = await client(broker);
  const pub = await client(broker);
  let outcome: "published" | MqttError | "timeout";
  let granted: QoS;
  try {
    const subscription = await sub.subscribe(topic, { qos: 2 });
    granted = subscription.granted[0];
    const ended = closed(pub);
    outcome = await within(
      Promise.race([
        pub.publish(topic, "exactly once", { qos: 2 }).then(() => "published" as const),
        ended.then((e) => e ?? new MqttError("CONNECTION_CLOSED", "closed")),
      ]),
      "the QoS 2 publish",
      3000,
    ).catch((e) => (e instanceof MqttError ? e : "timeout" as const));
    if (outcome === "published") {
      const [message] = await take(subscription, 1, "the QoS 2 message");
      assert.equal(message.text(), "exactly once");
      assert.equal(message.qos, Math.min(2, granted));
      if (granted < 2) {
        throw new BrokerLimit(
          `QoS 2 publish completed, but SUBACK granted QoS ${granted} for a QoS 2 subscription ` +
            `and the message arrived at QoS ${message.qos}`,
        );
      }
      return;
    }
  } finally {
    await pub.close();
    await sub.close();
  }
  // The publish did not complete: ask the broker directly what it does with QoS 2.
  const { probe, reply: connack } = await Probe.open(broker.url, fresh("probe"));
  let answer: string;
  try {
    assert.ok(connack !== "closed" && connack !== "timeout" && connack.type === "connack");
    await probe.send({
      type: "publish",
      topic,
      payload: new TextEncoder().encode("probe"),
      qos: 2,
      retain: false,
      dup: false,
      packetId: 1,
    });
    const reply = await probe.reply();
    if (reply !== "closed" && reply !== "timeout" && reply.type === "pubrec") {
      throw new Error(
        `the broker answers a raw QoS 2 PUBLISH with PUBREC, yet the client's QoS 2 publish ` +
          `ended with ${outcome instanceof MqttError ? outcome.code : outcome}`,
      );
    }
    answer = describe(reply);
  } finally {
    probe.close();
  }
  await new Promise((resolve) => setTimeout(resolve, 200)); // let the log line be written
  const lines = await logLines(broker, /qos ?=? ?2|qos2/i);
  throw new BrokerLimit(
    `a QoS 2 PUBLISH is answered by ${answer}, not by PUBREC` +
      (granted! < 2 ? `; SUBACK grants QoS ${granted!} for QoS 2 subscriptions` : "") +
      (lines.length > 0 ? `; broker log: "${lines.at(-1)}"` : ""),
  );
}

async function connectAndClose(broker: InteropBroker): Promise<void> {
  const c = await client(broker, { clean: true });
  assert.equal(c.connected, true);
  assert.equal(c.sessionPresent, false, "MQTT-3.2.2-1: clean session, session present 0");
  const ended = closed(c);
  await c.close();
  assert.equal(await within(ended, "the close event"), undefined, "a clean close has no error");
}

async function wildcards(broker: InteropBroker): Promise<void> {
  const topic = fresh("interop/wild");
  // One client per filter: how a broker treats overlapping filters is the `overlap` row.
  const plusClient = await client(broker);
  const hashClient = await client(broker);
  const pub = await client(broker);
  try {
    const plus = await plusClient.subscribe(`${topic}/+/x`, { qos: 1 });
    const hash = await hashClient.subscribe(`${topic}/#`, { qos: 1 });
    for (const t of [`${topic}/a/x`, `${topic}/a/b/x`, `${topic}/b/y`, topic]) {
      await pub.publish(t, t, { qos: 1 });
    }
    const viaHash = await take(hash, 4, "the messages matching #");
    // Sorted: MQTT orders deliveries per topic only (4.6), and these are four topics. NATS
    // serves `t/#` as two subscriptions (`t.>` and `t`), so the parent level's message can
    // overtake the others.
    assert.deepEqual(
      viaHash.map((m) => m.topic).sort(),
      [`${topic}/a/x`, `${topic}/a/b/x`, `${topic}/b/y`, topic].sort(),
      "# matches every level below and the parent level itself (4.7.1.2)",
    );
    const [viaPlus] = await take(plus, 1, "the message matching +");
    assert.equal(viaPlus.topic, `${topic}/a/x`);
    // Sent after the others: had + matched any of them, it would come first.
    await pub.publish(`${topic}/z/x`, "sentinel", { qos: 1 });
    const [sentinel] = await take(plus, 1, "the sentinel matching +");
    assert.equal(sentinel.text(), "sentinel", `+ matched ${sentinel.topic}`);
  } finally {
    await pub.close();
    await hashClient.close();
    await plusClient.close();
  }
}

/**
 * Two overlapping filters of one client: MQTT 3.1.1 (3.3.5) wants the message delivered once per
 * client at the highest QoS granted; a broker that sends one copy per matching subscription makes
 * the client see duplicates.
 */
async function overlap(broker: InteropBroker): Promise<void> {
  const topic = fresh("interop/overlap");
  const sub = await client(broker);
  const pub = await client(broker);
  try {
    const wide = await sub.subscribe(`${topic}/#`, { qos: 1 });
    await sub.subscribe(`${topic}/+`, { qos: 0 });
    await pub.publish(`${topic}/a`, "once", { qos: 1 });
    await pub.publish(`${topic}/b/c`, "sentinel", { qos: 1 }); // matches # only
    const copies: { qos: QoS }[] = [];
    while (true) {
      const [m] = await take(wide, 1, "the message and the sentinel");
      if (m.text() === "sentinel") break;
      copies.push(m);
    }
    if (copies.length > 1) {
      throw new BrokerLimit(
        `one PUBLISH matching 2 overlapping subscriptions of a client arrived ${copies.length} ` +
          `times (QoS ${copies.map((m) => m.qos).join(" and ")}): one copy per subscription`,
      );
    }
    assert.equal(copies.length, 1, "the message did not arrive");
    if (copies[0].qos < 1) {
      throw new BrokerLimit(
        `one PUBLISH matching 2 overlapping subscriptions (granted QoS 1 and 0) arrived once at ` +
          `QoS ${copies[0].qos}, not at the highest granted QoS 1 (MQTT-3.3.5-1)`,
      );
    }
  } finally {
    await pub.close();
    await sub.close();
  }
}

async function retained(broker: InteropBroker): Promise<void> {
  const topic = fresh("interop/retained");
  const pub = await client(broker);
  const late = await client(broker);
  try {
    await pub.publish(topic, "kept", { qos: 1, retain: true });
    const first = await late.subscribe(topic, { qos: 1 });
    const [kept] = await take(first, 1, "the retained message").catch((err) => {
      throw err instanceof Error && /timed out/.test(err.message)
        ? new Error(`no retained message for a new exact-topic subscription: ${err.message}`)
        : err;
    });
    assert.equal(kept.text(), "kept");
    assert.equal(kept.retain, true, "MQTT-3.3.1-8: RETAIN 1 for a new subscription");
    await first.unsubscribe();

    // An empty retained message clears it: the next subscription gets only a live message.
    await pub.publish(topic, new Uint8Array(0), { qos: 1, retain: true });
    const second = await late.subscribe(topic, { qos: 1 });
    await pub.publish(topic, "live", { qos: 1 });
    const [next] = await take(second, 1, "the live message");
    assert.equal(next.text(), "live", "the cleared retained message was delivered");
    assert.equal(next.retain, false, "MQTT-3.3.1-9: RETAIN 0 on an established subscription");
  } finally {
    await late.close();
    await pub.close();
    // Leave nothing retained behind.
  }
}

async function will(broker: InteropBroker): Promise<void> {
  const topic = fresh("interop/will");
  const watcher = await client(broker);
  try {
    const wills = await watcher.subscribe(topic, { qos: 1 });
    // DISCONNECT first: this will must be discarded (MQTT-3.1.2-10).
    const polite = await client(broker, { will: { topic, payload: "polite", qos: 1 } });
    await polite.close();
    // No DISCONNECT: the link just dies, so the will is published (MQTT-3.1.2-8).
    let transport: Transport | undefined;
    const victim = await client(broker, {
      will: { topic, payload: "dropped", qos: 1 },
      transport: async (url) => {
        transport = await connectTcp({ hostname: url.hostname, port: Number(url.port) });
        return transport;
      },
    });
    const ended = closed(victim);
    transport!.close();
    await within(ended, "the victim to see its link end");
    await victim.close();
    const [message] = await take(wills, 1, "the will");
    assert.equal(message.text(), "dropped", "the will of the client that sent DISCONNECT came");
    assert.equal(message.topic, topic);
    assert.equal(message.qos, 1);
  } finally {
    await watcher.close();
  }
}

async function persistentSession(broker: InteropBroker): Promise<void> {
  const topic = fresh("interop/session");
  const clientId = fresh("durable");
  // The session is set up by a raw peer that waits for the broker to end the connection after
  // DISCONNECT: a client's close() is done once DISCONNECT is written, and the broker may read
  // it later. NATS 2.9 did, after the messages below: it sent them down the dying connection,
  // and did not resend them when the session was resumed (MQTT-4.4.0-1), only, it seems, once
  // its ack wait runs out: the test saw 1 or 2 of 3 messages in 5 s (2 of 90 runs under load).
  const { probe, reply: connack } = await Probe.open(broker.url, clientId, false);
  try {
    assert.ok(connack !== "closed" && connack !== "timeout" && connack.type === "connack");
    assert.equal(connack.sessionPresent, false, "a new client id has no session (MQTT-3.2.2-3)");
    await probe.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ filter: topic, qos: 1 }],
    });
    const suback = await probe.reply();
    assert.ok(suback !== "closed" && suback !== "timeout" && suback.type === "suback");
    const granted = suback.returnCodes![0];
    if (granted === 0 || granted === 0x80) {
      throw new BrokerLimit(`SUBACK granted ${granted} for a QoS 1 subscription`);
    }
    assert.equal(granted, 1);
    await probe.send({ type: "disconnect" });
    // A server SHOULD close the connection on DISCONNECT (3.14.4); the session is offline then.
    assert.equal(
      await probe.reply(5000),
      "closed",
      "the broker closes the connection on DISCONNECT",
    );
  } finally {
    probe.close();
  }
  const pub = await client(broker);
  try {
    for (let i = 0; i < 3; i++) await pub.publish(topic, `offline ${i}`, { qos: 1 });
  } finally {
    await pub.close();
  }
  const again = await client(broker, { clientId, clean: false });
  try {
    assert.equal(again.sessionPresent, true, "the stored session is resumed (MQTT-3.2.2-2)");
    const sub = await again.subscribe(topic, { qos: 1 });
    const messages = await take(sub, 3, "the messages queued while offline");
    assert.deepEqual(messages.map((m) => m.text()), ["offline 0", "offline 1", "offline 2"]);
  } finally {
    await again.close();
  }
  const cleanup = await client(broker, { clientId, clean: true });
  assert.equal(cleanup.sessionPresent, false, "a clean session discards it (MQTT-3.1.2-6)");
  await cleanup.close();
}

async function unsubscribe(broker: InteropBroker): Promise<void> {
  const topic = fresh("interop/unsub");
  const sub = await client(broker);
  const pub = await client(broker);
  try {
    const gone = await sub.subscribe(`${topic}/gone`, { qos: 1 });
    const stays = await sub.subscribe(`${topic}/stays`, { qos: 1 });
    await pub.publish(`${topic}/gone`, "before", { qos: 1 });
    assert.equal((await take(gone, 1, "the message before UNSUBSCRIBE"))[0].text(), "before");
    await sub.unsubscribe(`${topic}/gone`);
    await pub.publish(`${topic}/gone`, "after", { qos: 1 });
    await pub.publish(`${topic}/stays`, "sentinel", { qos: 1 });
    await take(stays, 1, "the sentinel");
    await assertNothingHeld(sub, `${topic}/gone`);
  } finally {
    await pub.close();
    await sub.close();
  }
}

async function keepAlive(broker: InteropBroker): Promise<void> {
  // keepAlive 2 s: idle for 5 s, the client must ping (MQTT-3.1.2-23) and the broker answer
  // (MQTT-3.12.4-1), or one of them drops the link (pingTimeout 1.5 s, or the broker's 1.5 x).
  // Not 1 s: NATS 2.9.10 then drops the link 1.0 s after the last packet instead of 1.5 s
  // (its log: "Client connection closed: Read Error"), racing the client's PINGREQ.
  const c = await client(broker, { keepAlive: 2, pingTimeout: 1500 });
  try {
    let lost: MqttError | undefined | "none" = "none";
    c.addEventListener("disconnect", (e) => {
      lost = (e as CustomEvent<{ error: MqttError | undefined }>).detail.error;
    });
    await new Promise((resolve) => setTimeout(resolve, 5000));
    assert.equal(lost, "none", `the connection was lost while idle: ${String(lost)}`);
    assert.equal(c.connected, true);
    const topic = fresh("interop/alive");
    const sub = await c.subscribe(topic, { qos: 1 });
    await c.publish(topic, "still here", { qos: 1 });
    assert.equal((await take(sub, 1, "a message after the idle time"))[0].text(), "still here");
  } finally {
    await c.close();
  }
}

/** The features of the matrix, in row order. */
export const FEATURES: readonly Feature[] = [
  { key: "connect", title: "connect, CONNACK, clean close", run: connectAndClose },
  { key: "qos0", title: "QoS 0 publish / subscribe", run: (b) => pubsub(b, 0) },
  { key: "qos1", title: "QoS 1 publish / subscribe", run: (b) => pubsub(b, 1) },
  { key: "qos2", title: "QoS 2 publish / subscribe", run: qos2 },
  { key: "wildcards", title: "wildcards `+` and `#`", run: wildcards },
  { key: "overlap", title: "overlapping subscriptions: one copy per message", run: overlap },
  { key: "retained", title: "retained messages (set, flag, clear)", run: retained },
  { key: "will", title: "will message (abrupt drop vs DISCONNECT)", run: will },
  { key: "session", title: "persistent session (offline QoS 1 queue)", run: persistentSession },
  { key: "unsubscribe", title: "unsubscribe stops delivery", run: unsubscribe },
  { key: "keepalive", title: "keep-alive PINGREQ / PINGRESP", run: keepAlive },
];
