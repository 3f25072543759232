/**
 * The embedded broker, against raw codec packets over TCP (protocol rules)
 * and against `mosquitto_pub`/`mosquitto_sub` (an independent client).
 */
import { mulberry32 as prng } from "./fuzz.ts";
import assert from "node:assert/strict";
import { Broker } from "../broker.ts";
import { encodePacket } from "../lib/codec/mod.ts";
import type { PublishPacket, QoS } from "../lib/codec/packet.ts";
import { MqttError } from "../lib/errors.ts";
import { PacketReader } from "../lib/streams/packet_reader.ts";
import { bytes, delay, RawClient, rawConnect, startBroker, until } from "./broker_helpers.ts";

const decoder = new TextDecoder();
const text = (bytes: Uint8Array) => decoder.decode(bytes);

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function mosquittoPub(port: number, args: string[]): Promise<CliResult> {
  const out = await new Deno.Command("mosquitto_pub", {
    args: ["-h", "127.0.0.1", "-p", String(port), ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** A running `mosquitto_sub`; `result()` waits for it to exit (it gives up after `-W 5`). */
function mosquittoSub(port: number, args: string[]) {
  const child = new Deno.Command("mosquitto_sub", {
    args: ["-h", "127.0.0.1", "-p", String(port), "-W", "5", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  return {
    child,
    async result(): Promise<CliResult> {
      const out = await output;
      return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
    },
  };
}

// ---------------------------------------------------------------- mosquitto clients

Deno.test("mosquitto_pub/sub: QoS 0/1/2 through wildcards, QoS downgraded per subscription", async () => {
  const { broker, port } = await startBroker();
  try {
    const sub = mosquittoSub(port, [
      "-t",
      "a/+/c",
      "-t",
      "b/#",
      "-q",
      "2",
      "-C",
      "4",
      "-F",
      "%q %t %p",
    ]);
    const low = mosquittoSub(port, ["-t", "b/#", "-q", "1", "-C", "1", "-F", "%q %t %p"]);
    await until(() => broker.stats().subscriptions === 3, "3 subscriptions");
    assert.equal((await mosquittoPub(port, ["-t", "a/x/d", "-m", "no", "-q", "1"])).code, 0);
    assert.equal((await mosquittoPub(port, ["-t", "a/x/c", "-m", "zero", "-q", "0"])).code, 0);
    assert.equal((await mosquittoPub(port, ["-t", "b", "-m", "one", "-q", "1"])).code, 0);
    assert.equal((await mosquittoPub(port, ["-t", "b/y/z", "-m", "two", "-q", "2"])).code, 0);
    assert.equal(
      (await mosquittoPub(port, ["-t", "a//c", "-m", "empty-level", "-q", "2"])).code,
      0,
    );
    const out = await sub.result();
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(out.stdout.trim().split("\n"), [
      "0 a/x/c zero",
      "1 b one",
      "2 b/y/z two",
      "2 a//c empty-level",
    ]);
    // The QoS 1 subscriber got the first b/# message at QoS 1 (MQTT-3.8.4-6).
    assert.equal((await low.result()).stdout.trim(), "1 b one");
  } finally {
    await broker.close();
  }
});

Deno.test("mosquitto_pub/sub: retained messages reach late subscribers with RETAIN=1, live ones with 0 (MQTT-3.3.1-8/-9)", async () => {
  const { broker, port } = await startBroker();
  try {
    assert.equal((await mosquittoPub(port, ["-t", "r/x", "-m", "keep", "-q", "1", "-r"])).code, 0);
    assert.equal((await mosquittoPub(port, ["-t", "r/x", "-m", "newer", "-q", "2", "-r"])).code, 0);
    const sub = mosquittoSub(port, ["-t", "r/#", "-q", "2", "-C", "2", "-F", "%r %q %t %p"]);
    await until(() => broker.stats().subscriptions === 1, "subscription");
    assert.equal((await mosquittoPub(port, ["-t", "r/y", "-m", "live", "-r"])).code, 0);
    const out = await sub.result();
    assert.deepEqual(out.stdout.trim().split("\n"), ["1 2 r/x newer", "0 0 r/y live"]);
    assert.equal(broker.stats().retained, 2);
    // MQTT-3.3.1-10/-11: an empty retained payload clears the topic.
    assert.equal((await mosquittoPub(port, ["-t", "r/x", "-n", "-r"])).code, 0);
    assert.equal(broker.stats().retained, 1);
    const late = mosquittoSub(port, ["-t", "r/#", "-C", "1", "-F", "%r %t %p"]);
    assert.equal((await late.result()).stdout.trim(), "1 r/y live");
  } finally {
    await broker.close();
  }
});

Deno.test("mosquitto_sub: a will is published when the client is killed (MQTT-3.1.2-8)", async () => {
  const { broker, port } = await startBroker();
  try {
    const watcher = mosquittoSub(port, ["-t", "will/#", "-q", "1", "-C", "1", "-F", "%q %t %p"]);
    const victim = mosquittoSub(port, [
      "-i",
      "victim",
      "-t",
      "x",
      "--will-topic",
      "will/victim",
      "--will-payload",
      "gone",
      "--will-qos",
      "1",
    ]);
    await until(() => broker.stats().subscriptions === 2, "2 subscriptions");
    victim.child.kill("SIGKILL");
    await victim.result();
    const out = await watcher.result();
    assert.equal(out.stdout.trim(), "1 will/victim gone");
  } finally {
    await broker.close();
  }
});

Deno.test("mosquitto_sub: persistent session queues QoS 1/2 while offline, not QoS 0 (MQTT-3.1.2-5)", async () => {
  const { broker, port } = await startBroker();
  try {
    const first = mosquittoSub(port, ["-i", "keeper", "-c", "-q", "2", "-t", "q/#", "-E"]);
    assert.equal((await first.result()).code, 0);
    assert.equal(broker.stats().clients, 0);
    assert.equal(broker.stats().sessions, 1);
    await mosquittoPub(port, ["-t", "q/1", "-m", "one", "-q", "1"]);
    await mosquittoPub(port, ["-t", "q/0", "-m", "zero", "-q", "0"]);
    await mosquittoPub(port, ["-t", "q/2", "-m", "two", "-q", "2"]);
    assert.equal(broker.stats().queuedMessages, 2);
    const again = mosquittoSub(port, [
      "-i",
      "keeper",
      "-c",
      "-q",
      "2",
      "-t",
      "q/#",
      "-C",
      "2",
      "-F",
      "%q %t %p",
    ]);
    const out = await again.result();
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(out.stdout.trim().split("\n"), ["1 q/1 one", "2 q/2 two"]);
  } finally {
    await broker.close();
  }
});

Deno.test("mosquitto_pub: authenticate hook refuses bad credentials with CONNACK 4", async () => {
  const seen: string[] = [];
  const { broker, port } = await startBroker({
    authenticate: ({ clientId, username, password }) => {
      seen.push(clientId);
      return username === "alice" && password !== undefined && text(password) === "secret";
    },
  });
  try {
    const bad = await mosquittoPub(port, [
      "-i",
      "p1",
      "-u",
      "alice",
      "-P",
      "wrong",
      "-t",
      "t",
      "-m",
      "x",
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /bad user name or password|Connection Refused/i);
    const good = await mosquittoPub(port, [
      "-i",
      "p2",
      "-u",
      "alice",
      "-P",
      "secret",
      "-t",
      "t",
      "-m",
      "x",
    ]);
    assert.equal(good.code, 0, good.stderr);
    assert.deepEqual(seen, ["p1", "p2"]);
    const { client, returnCode } = await RawClient.connect(port, { clientId: "raw" });
    assert.equal(returnCode, 4);
    await client.expectClosed();
    client.close();
  } finally {
    await broker.close();
  }
});

Deno.test("authorization hooks: denied PUBLISH is acked and dropped, denied filter gets 0x80", async () => {
  const { broker, port } = await startBroker({
    authorizePublish: (client, topic) => !topic.startsWith("secret/") || client.username === "root",
    authorizeSubscribe: async (_client, filter, qos) => {
      await delay(1);
      if (filter.startsWith("secret/")) return false;
      return filter.startsWith("low/") ? 0 : qos;
    },
  });
  try {
    const { client: sub } = await RawClient.connect(port, { clientId: "sub" });
    assert.deepEqual(await sub.subscribe([["secret/#", 1], ["low/#", 2], ["#", 1]]), [0x80, 0, 1]);
    const denied = await mosquittoPub(port, ["-t", "secret/x", "-m", "s", "-q", "1"]);
    assert.equal(denied.code, 0, "a denied QoS 1 publish is still acknowledged");
    assert.equal(
      (await mosquittoPub(port, ["-u", "root", "-t", "secret/y", "-m", "ok", "-q", "1"])).code,
      0,
    );
    const got = await sub.expect("publish");
    assert.equal(got.topic, "secret/y");
    assert.equal(text(got.payload), "ok");
    sub.close();
  } finally {
    await broker.close();
  }
});

Deno.test("mosquitto_sub keeps working while bad connections are closed: garbage, oversized, no CONNECT", async () => {
  const lines: string[] = [];
  const { broker, port } = await startBroker({
    maxPacketSize: 1024,
    connectTimeout: 300,
    log: (line) => lines.push(line),
  });
  try {
    const sub = mosquittoSub(port, ["-t", "ok", "-C", "1"]);
    await until(() => broker.stats().subscriptions === 1, "subscription");

    const garbage = await RawClient.open(port);
    await garbage.sendBytes(new Uint8Array([0x00, 0x02, 0xff, 0xff])); // reserved type 0
    await garbage.expectClosed();

    const badLength = await RawClient.open(port);
    await badLength.sendBytes(new Uint8Array([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])); // 5-byte length
    await badLength.expectClosed();

    const { client: big } = await RawClient.connect(port, { clientId: "big" });
    await big.publish("ok", "x".repeat(2000));
    await big.expectClosed();

    const silent = await RawClient.open(port);
    await silent.expectClosed();
    assert.ok(lines.includes("Client <unknown> has exceeded timeout, disconnecting."));

    const notConnect = await RawClient.open(port);
    await notConnect.send({ type: "pingreq" }); // MQTT-3.1.0-1
    await notConnect.expectClosed();

    for (const c of [garbage, badLength, big, silent, notConnect]) c.close();
    assert.equal(broker.stats().clients, 1);
    assert.equal((await mosquittoPub(port, ["-t", "ok", "-m", "still here"])).code, 0);
    assert.equal((await sub.result()).stdout.trim(), "still here");
  } finally {
    await broker.close();
  }
});

// ---------------------------------------------------------------- raw protocol

Deno.test("CONNECT: protocol level, client id rules (MQTT-3.1.2-2, MQTT-3.1.3-6/-8)", async () => {
  const { broker, port } = await startBroker();
  try {
    const old = await RawClient.open(port);
    await old.sendBytes(rawConnect(3, "c", 0x02));
    assert.equal((await old.expect("connack")).returnCode, 1);
    await old.expectClosed();
    old.close();

    const anonymous = await RawClient.open(port);
    await anonymous.sendBytes(rawConnect(4, "", 0x00)); // empty id with clean session 0
    assert.equal((await anonymous.expect("connack")).returnCode, 2);
    await anonymous.expectClosed();
    anonymous.close();

    const { client, returnCode, sessionPresent } = await RawClient.connect(port, { clientId: "" });
    assert.equal(returnCode, 0);
    assert.equal(sessionPresent, false);
    await client.send({ type: "pingreq" });
    await client.expect("pingresp");
    assert.equal(broker.stats().clients, 1);
    client.close();
  } finally {
    await broker.close();
  }
});

Deno.test("a second CONNECT on one connection is a protocol violation (MQTT-3.1.0-2)", async () => {
  const { broker, port } = await startBroker();
  try {
    const { client } = await RawClient.connect(port, { clientId: "twice" });
    await client.send({
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "twice",
      clean: true,
      keepAlive: 0,
    });
    await client.expectClosed();
    client.close();
  } finally {
    await broker.close();
  }
});

Deno.test("take-over: a second connection with the same client id closes the first (MQTT-3.1.4-2)", async () => {
  const { broker, port } = await startBroker();
  try {
    const { client: watcher } = await RawClient.connect(port, { clientId: "watcher" });
    await watcher.subscribe([["will/#", 0]]);
    const { client: first } = await RawClient.connect(port, {
      clientId: "dup",
      will: { topic: "will/dup", payload: bytes("first gone"), qos: 0, retain: false },
    });
    const { client: second } = await RawClient.connect(port, { clientId: "dup" });
    await first.expectClosed();
    // The first connection ended without DISCONNECT, so its will goes out.
    assert.equal(text((await watcher.expect("publish")).payload), "first gone");
    await second.send({ type: "pingreq" });
    await second.expect("pingresp");
    assert.equal(broker.stats().clients, 2);
    for (const c of [watcher, first, second]) c.close();
  } finally {
    await broker.close();
  }
});

Deno.test("will: discarded on DISCONNECT (MQTT-3.1.2-10), published on keep-alive timeout (MQTT-3.1.2-24)", async () => {
  const { broker, port } = await startBroker();
  try {
    const { client: watcher } = await RawClient.connect(port, { clientId: "watcher" });
    await watcher.subscribe([["will/#", 1]]);
    const will = (payload: string) => ({
      topic: "will/x",
      payload: bytes(payload),
      qos: 1 as QoS,
      retain: false,
    });
    const { client: polite } = await RawClient.connect(port, {
      clientId: "polite",
      will: will("polite"),
    });
    await polite.send({ type: "disconnect" });
    await polite.expectClosed();
    broker.publish("will/marker", "marker");
    assert.equal((await watcher.expect("publish")).topic, "will/marker");

    const { client: sleepy } = await RawClient.connect(port, {
      clientId: "sleepy",
      keepAlive: 1,
      will: will("sleepy"),
    });
    const started = Date.now();
    await sleepy.expectClosed(8000);
    const elapsed = Date.now() - started;
    // Not before 1.5 x keepAlive; the upper bound is loose for loaded CI machines.
    assert.ok(elapsed >= 1400 && elapsed < 6000, `closed after ${elapsed} ms, not about 1.5 s`);
    const fired = await watcher.expect("publish");
    assert.equal(text(fired.payload), "sleepy");
    for (const c of [watcher, polite, sleepy]) c.close();
  } finally {
    await broker.close();
  }
});

Deno.test("keep-alive: packets within 1.5 x keepAlive keep the connection open", async () => {
  const { broker, port } = await startBroker();
  try {
    const { client } = await RawClient.connect(port, { clientId: "pinger", keepAlive: 1 });
    for (let i = 0; i < 3; i++) {
      await delay(700);
      await client.send({ type: "pingreq" });
      await client.expect("pingresp");
    }
    client.close();
  } finally {
    await broker.close();
  }
});

Deno.test("QoS 2 inbound: delivered once despite a DUP resend, PUBREL answered by PUBCOMP (MQTT-4.3.3-2)", async () => {
  const { broker, port } = await startBroker();
  try {
    const { client: sub } = await RawClient.connect(port, { clientId: "sub" });
    assert.deepEqual(await sub.subscribe([["q2", 2]]), [2]);
    const { client: pub } = await RawClient.connect(port, { clientId: "pub" });
    const packet: PublishPacket = {
      type: "publish",
      topic: "q2",
      payload: bytes("once"),
      qos: 2,
      retain: false,
      dup: false,
      packetId: 7,
    };
    await pub.send(packet);
    assert.equal((await pub.expect("pubrec")).packetId, 7);
    await pub.send({ ...packet, dup: true });
    assert.equal((await pub.expect("pubrec")).packetId, 7);
    await pub.send({ type: "pubrel", packetId: 7 });
    assert.equal((await pub.expect("pubcomp")).packetId, 7);
    // Outbound QoS 2 to the subscriber: PUBLISH, PUBREC, PUBREL, PUBCOMP.
    const got = await sub.expect("publish");
    assert.equal(got.qos, 2);
    assert.equal(text(got.payload), "once");
    await sub.send({ type: "pubrec", packetId: got.packetId! });
    assert.equal((await sub.expect("pubrel")).packetId, got.packetId);
    await sub.send({ type: "pubcomp", packetId: got.packetId! });
    // Same id again after PUBREL: a new message.
    await pub.send(packet);
    await pub.expect("pubrec");
    const second = await sub.expect("publish");
    assert.equal(text(second.payload), "once");
    await sub.expectSilence();
    pub.close();
    sub.close();
  } finally {
    await broker.close();
  }
});

Deno.test("overlapping subscriptions: one delivery at the highest granted QoS; maxQoS caps grants", async () => {
  const { broker, port } = await startBroker({ maxQoS: 1 });
  try {
    const { client } = await RawClient.connect(port, { clientId: "o" });
    assert.deepEqual(await client.subscribe([["o/#", 0], ["o/+", 2]]), [0, 1]);
    broker.publish("o/a", "x", { qos: 2 });
    const got = await client.expect("publish");
    assert.equal(got.qos, 1);
    await client.send({ type: "puback", packetId: got.packetId! });
    await client.expectSilence();
    // $-topics are not matched by wildcard-led filters (MQTT-4.7.2-1).
    broker.publish("$SYS/x", "sys");
    await client.expectSilence();
    assert.deepEqual(await client.subscribe([["$SYS/#", 0]], 2), [0]);
    broker.publish("$SYS/x", "sys");
    assert.equal((await client.expect("publish")).topic, "$SYS/x");
    client.close();
  } finally {
    await broker.close();
  }
});

Deno.test("UNSUBSCRIBE stops deliveries and is answered by UNSUBACK (MQTT-3.10.4-4/-5)", async () => {
  const { broker, port } = await startBroker();
  try {
    const { client } = await RawClient.connect(port, { clientId: "u" });
    await client.subscribe([["u/#", 0]]);
    await client.send({ type: "unsubscribe", packetId: 9, filters: ["u/#", "never/subscribed"] });
    assert.equal((await client.expect("unsuback")).packetId, 9);
    broker.publish("u/1", "x");
    await client.expectSilence();
    assert.equal(broker.stats().subscriptions, 0);
    client.close();
  } finally {
    await broker.close();
  }
});

Deno.test("a client subscribed to its own topic gets the delivery before PUBACK/PUBREC, as from Mosquitto", async () => {
  // Regression: acknowledgements used to overtake the deliveries routed before them, so a client
  // that ended its subscription as soon as its publish resolved got the message afterwards.
  const { broker, port } = await startBroker();
  try {
    const { client } = await RawClient.connect(port, { clientId: "self" });
    assert.deepEqual(await client.subscribe([["self/#", 2]]), [2]);
    for (const qos of [1, 2] as QoS[]) {
      await client.publish(`self/${qos}`, `at ${qos}`, qos, 7);
      const delivery = await client.expect("publish");
      assert.equal(delivery.topic, `self/${qos}`);
      assert.equal(text(delivery.payload), `at ${qos}`);
      if (qos === 1) {
        assert.equal((await client.expect("puback")).packetId, 7);
        await client.send({ type: "puback", packetId: delivery.packetId! });
      } else {
        assert.equal((await client.expect("pubrec")).packetId, 7);
        await client.send({ type: "pubrel", packetId: 7 });
        assert.equal((await client.expect("pubcomp")).packetId, 7);
        await client.send({ type: "pubrec", packetId: delivery.packetId! });
        assert.equal((await client.expect("pubrel")).packetId, delivery.packetId);
        await client.send({ type: "pubcomp", packetId: delivery.packetId! });
      }
    }
    await client.expectSilence();
    client.close();
  } finally {
    await broker.close();
  }
});

Deno.test("persistent session: session present, unacked QoS 1 resent with DUP=1 on resume (MQTT-4.4.0-1)", async () => {
  const { broker, port } = await startBroker();
  try {
    const first = await RawClient.connect(port, { clientId: "p", clean: false });
    assert.equal(first.sessionPresent, false); // MQTT-3.2.2-3: no session held yet
    await first.client.subscribe([["p/#", 1]]);
    broker.publish("p/1", "one", { qos: 1 });
    const sent = await first.client.expect("publish");
    assert.equal(sent.dup, false);
    first.client.close(); // no PUBACK
    await until(() => broker.stats().clients === 0, "disconnect");
    broker.publish("p/2", "two", { qos: 1 });

    const again = await RawClient.connect(port, { clientId: "p", clean: false });
    assert.equal(again.sessionPresent, true); // MQTT-3.2.2-2
    const resent = await again.client.expect("publish");
    assert.equal(resent.dup, true);
    assert.equal(resent.packetId, sent.packetId);
    assert.equal(text(resent.payload), "one");
    await again.client.send({ type: "puback", packetId: resent.packetId! });
    const queued = await again.client.expect("publish");
    assert.equal(text(queued.payload), "two");
    assert.equal(queued.dup, false);
    await again.client.send({ type: "puback", packetId: queued.packetId! });
    again.client.close();
    await until(() => broker.stats().clients === 0, "disconnect");

    // MQTT-3.2.2-1: clean session 1 discards the held session.
    const clean = await RawClient.connect(port, { clientId: "p", clean: true });
    assert.equal(clean.sessionPresent, false);
    broker.publish("p/3", "three", { qos: 1 });
    await clean.client.expectSilence();
    clean.client.close();
    await until(() => broker.stats().sessions === 0, "clean session discarded");
  } finally {
    await broker.close();
  }
});

Deno.test("offline queue is bounded by maxQueuedMessages, dropping the oldest", async () => {
  const { broker, port } = await startBroker({ maxQueuedMessages: 3 });
  try {
    const first = await RawClient.connect(port, { clientId: "slow", clean: false });
    await first.client.subscribe([["s", 1]]);
    first.client.close();
    await until(() => broker.stats().clients === 0, "disconnect");
    for (let i = 1; i <= 5; i++) broker.publish("s", `m${i}`, { qos: 1 });
    assert.equal(broker.stats().queuedMessages, 3);
    assert.equal(broker.stats().droppedMessages, 2);
    const again = await RawClient.connect(port, { clientId: "slow", clean: false });
    const got: string[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await again.client.expect("publish");
      got.push(text(p.payload));
      await again.client.send({ type: "puback", packetId: p.packetId! });
    }
    assert.deepEqual(got, ["m3", "m4", "m5"]);
    again.client.close();
    await until(() => broker.stats().clients === 0, "disconnect");
  } finally {
    await broker.close();
  }
});

Deno.test("offline queue is bounded by maxQueuedBytes too; a message bigger than the bound is dropped", async () => {
  const { broker, port } = await startBroker({ maxQueuedBytes: 100 });
  try {
    const first = await RawClient.connect(port, { clientId: "bytes", clean: false });
    await first.client.subscribe([["b", 1]]);
    first.client.close();
    await until(() => broker.stats().clients === 0, "disconnect");
    for (let i = 1; i <= 4; i++) broker.publish("b", `${i}`.repeat(39), { qos: 1 }); // 40 bytes each
    broker.publish("b", "x".repeat(200), { qos: 1 });
    assert.equal(broker.stats().queuedMessages, 2);
    assert.equal(broker.stats().droppedMessages, 3);
    const again = await RawClient.connect(port, { clientId: "bytes", clean: false });
    for (const expected of ["3", "4"]) {
      const p = await again.client.expect("publish");
      assert.equal(text(p.payload)[0], expected);
      await again.client.send({ type: "puback", packetId: p.packetId! });
    }
    again.client.close();
  } finally {
    await broker.close();
  }
});

Deno.test("in-flight window: at most maxInflight unacked QoS 1 messages, delivered in order", async () => {
  const { broker, port } = await startBroker({ maxInflight: 2 });
  try {
    const { client } = await RawClient.connect(port, { clientId: "w" });
    await client.subscribe([["w", 1]]);
    for (let i = 1; i <= 4; i++) broker.publish("w", `m${i}`, { qos: i === 3 ? 0 : 1 });
    const a = await client.expect("publish");
    const b = await client.expect("publish");
    const c = await client.expect("publish");
    assert.deepEqual([a, b, c].map((p) => text(p.payload)), ["m1", "m2", "m3"]);
    await client.expectSilence(); // m4 (QoS 1) waits for a window slot
    await client.send({ type: "puback", packetId: a.packetId! });
    const d = await client.expect("publish");
    assert.equal(text(d.payload), "m4");
    assert.notEqual(d.packetId, b.packetId);
    client.close();
  } finally {
    await broker.close();
  }
});

Deno.test("a subscriber that never reads gets a bounded queue; others are not held up", async () => {
  const { broker, port } = await startBroker({ maxQueuedMessages: 10 });
  try {
    const { client: stuck } = await RawClient.connect(port, { clientId: "stuck" });
    await stuck.subscribe([["big", 0]]);
    const { client: other } = await RawClient.connect(port, { clientId: "other" });
    await other.subscribe([["small", 0]]);
    const payload = new Uint8Array(64 * 1024);
    for (let i = 0; i < 400; i++) {
      broker.publish("big", payload);
      if (i % 50 === 0) await delay(1); // let the writer fill the socket buffers
    }
    await delay(50);
    const stats = broker.stats();
    assert.ok(stats.droppedMessages > 0, "messages were dropped");
    assert.ok(stats.queuedMessages <= 10);
    broker.publish("small", "hi");
    assert.equal(text((await other.expect("publish")).payload), "hi");
    stuck.close();
    other.close();
  } finally {
    await broker.close();
  }
});

Deno.test("CONNECT flood: connections beyond maxConnections are closed, the rest served", async () => {
  const { broker, port } = await startBroker({ maxConnections: 20 });
  try {
    const clients = await Promise.all(
      Array.from({ length: 30 }, () => RawClient.open(port)),
    );
    const results = await Promise.all(clients.map(async (c, i) => {
      await c.send({
        type: "connect",
        protocolName: "MQTT",
        protocolLevel: 4,
        clientId: `flood-${i}`,
        clean: true,
        keepAlive: 0,
      }).catch(() => {});
      return await c.read();
    }));
    const accepted = results.filter((r) => "packet" in r && r.packet.type === "connack").length;
    assert.equal(accepted, 20);
    assert.equal(results.filter((r) => "closed" in r).length, 10);
    for (const c of clients) c.close();
    await until(() => broker.stats().connections === 0, "all closed");
    const { client, returnCode } = await RawClient.connect(port, { clientId: "after" });
    assert.equal(returnCode, 0);
    client.close();
  } finally {
    await broker.close();
  }
});

Deno.test("WebSocket listener: subprotocol mqtt, binary frames, routed to TCP clients", async () => {
  const broker = new Broker();
  const { port, wsPort } = await broker.listen({ port: 0, wsPort: 0 });
  try {
    assert.ok(wsPort !== undefined && wsPort > 0);
    const { client: sub } = await RawClient.connect(port, { clientId: "tcp-sub" });
    await sub.subscribe([["ws/#", 0]]);
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/mqtt`, "mqtt");
    ws.binaryType = "arraybuffer";
    const packets = new PacketReader();
    const writer = packets.writable.getWriter();
    const reader = packets.readable.getReader();
    ws.onmessage = (e) => writer.write(new Uint8Array(e.data as ArrayBuffer));
    const closed = new Promise((resolve) => (ws.onclose = resolve));
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    assert.equal(ws.protocol, "mqtt");
    ws.send(encodePacket({
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "ws-client",
      clean: true,
      keepAlive: 30,
    }));
    const connack = (await reader.read()).value!;
    assert.deepEqual(connack, { type: "connack", sessionPresent: false, returnCode: 0 });
    ws.send(encodePacket({
      type: "publish",
      topic: "ws/hello",
      payload: bytes("from ws"),
      qos: 0,
      retain: false,
      dup: false,
    }));
    const got = await sub.expect("publish");
    assert.equal(text(got.payload), "from ws");
    ws.close();
    await closed;
    await writer.close();
    reader.releaseLock();
    sub.close();
  } finally {
    await broker.close();
  }
});

Deno.test("Broker API: options are checked, publish validates topics, close is idempotent", async () => {
  assert.throws(
    () => new Broker({ maxInflight: 0 }),
    (e) => e instanceof MqttError && e.code === "INVALID_OPTION",
  );
  assert.throws(() => new Broker({ maxQoS: 3 as QoS }), MqttError);
  assert.throws(() => new Broker({ maxInflight: 65_536 }), MqttError);
  const broker = new Broker();
  assert.throws(
    () => broker.publish("a/+", "x"),
    (e) => e instanceof MqttError && e.code === "INVALID_TOPIC",
  );
  broker.publish("kept", "x", { retain: true });
  assert.equal(broker.stats().retained, 1);
  const first = await broker.listen({ port: 0 });
  const second = await broker.listen({ port: 0 }); // a second listener, e.g. TLS next to TCP
  assert.notEqual(first.port, second.port);
  await broker.close();
  await broker.close();
  await assert.rejects(broker.listen({ port: 0 }), MqttError);
});

Deno.test("log hook: connection lines worded like Mosquitto", async () => {
  const lines: string[] = [];
  const { broker, port } = await startBroker({ log: (line) => lines.push(line) });
  try {
    const { client } = await RawClient.connect(port, { clientId: "sensor-1", keepAlive: 60 });
    await client.send({ type: "disconnect" });
    await client.expectClosed();
    client.close();
    await until(() => lines.some((l) => l.startsWith("Client sensor-1 disconnected")), "log");
    assert.match(lines.join("\n"), /New connection from 127\.0\.0\.1:\d+ on port \d+\./);
    assert.match(
      lines.join("\n"),
      /New client connected from 127\.0\.0\.1:\d+ as sensor-1 \(c1, k60\)\./,
    );
  } finally {
    await broker.close();
  }
});

Deno.test("handle(): random bytes over in-memory transports never throw out of the broker", async () => {
  const { broker, port } = await startBroker({ maxPacketSize: 4096, connectTimeout: 1000 });
  try {
    const { client: good } = await RawClient.connect(port, { clientId: "good" });
    await good.subscribe([["#", 2]]);
    const random = prng(20261127);
    const connect = encodePacket({
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "",
      clean: true,
      keepAlive: 0,
    });
    const sessions: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      const chunks: Uint8Array[] = i % 2 === 0 ? [connect] : [];
      const n = 1 + Math.floor(random() * 4);
      for (let j = 0; j < n; j++) {
        const chunk = new Uint8Array(Math.floor(random() * 64));
        for (let k = 0; k < chunk.length; k++) chunk[k] = Math.floor(random() * 256);
        // Sometimes a plausible header, so decoding goes past the first byte.
        if (chunk.length > 2 && random() < 0.5) {
          chunk[0] = (Math.floor(random() * 16) << 4) | (random() < 0.5 ? 0 : 2);
          chunk[1] = chunk.length - 2;
        }
        chunks.push(chunk);
      }
      sessions.push(broker.handle({
        readable: ReadableStream.from(chunks),
        writable: new WritableStream(),
        close: () => {},
      }));
    }
    await Promise.all(sessions); // every connection ended: input ran out or was refused
    assert.equal(broker.stats().connections, 1);
    broker.publish("after/fuzz", "alive");
    let got: PublishPacket;
    do got = await good.expect("publish"); while (got.topic !== "after/fuzz");
    assert.equal(text(got.payload), "alive");
    good.close();
  } finally {
    await broker.close();
  }
});

Deno.test("WebSocket listener: a text frame closes the connection (MQTT-6.0.0-1)", async () => {
  const broker = new Broker();
  const { wsPort } = await broker.listen({ port: 0, wsPort: 0 });
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}`, "mqtt");
    const closed = new Promise((resolve) => (ws.onclose = resolve));
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    ws.send("not mqtt");
    await closed;
    await until(() => broker.stats().connections === 0, "connection closed");
  } finally {
    await broker.close();
  }
});

Deno.test("a hook that never answers does not stop close(); a throwing hook refuses", async () => {
  const { broker, port } = await startBroker({
    authenticate: ({ username }) => {
      if (username === "boom") throw new Error("hook failed");
      return true;
    },
    authorizeSubscribe: () => new Promise<QoS | false>(() => {}),
  });
  const boom = await RawClient.connect(port, { clientId: "b", username: "boom" });
  assert.equal(boom.returnCode, 3); // server unavailable
  boom.client.close();
  const { client } = await RawClient.connect(port, { clientId: "stuck" });
  await client.send({ type: "subscribe", packetId: 1, subscriptions: [{ filter: "x", qos: 0 }] });
  await client.expectSilence(50);
  await broker.close();
  await client.expectClosed();
  client.close();
});
