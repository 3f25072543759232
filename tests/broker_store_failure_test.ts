/**
 * The embedded broker's persistence when a file cannot be written while the
 * broker runs: the failure is one session's (or the retained messages')
 * problem, said once, never the publisher's, and memory keeps what the file
 * could not (MQTT-4.5.0-1: the message is in the subscriber's Session State).
 */
import assert from "node:assert/strict";
import { Broker } from "../broker.ts";
import { MqttError } from "../lib/errors.ts";
import { SessionJournal } from "../lib/broker/session_journal.ts";
import { MemoryStore } from "../lib/store/memory_store.ts";
import { bytes, connect5, RawClient, until } from "./broker_helpers.ts";

const decoder = new TextDecoder();
const text = (payload: Uint8Array) => decoder.decode(payload);
/** A session's journal: `sessions/c<hex of the client id's UTF-8>.journal`. */
const journalOf = (dir: string, clientId: string) =>
  `${dir}/sessions/c${
    Array.from(bytes(clientId), (b) => b.toString(16).padStart(2, "0")).join("")
  }.journal`;

/** A persistent session subscribed to `filter` at QoS 1, left offline. */
async function offlineSubscriber(port: number, clientId: string, filter: string): Promise<void> {
  const { client } = await RawClient.connect(port, { clientId, clean: false });
  await client.subscribe([[filter, 1]]);
  await client.send({ type: "disconnect" });
  await client.expectClosed();
  client.close();
}

/** Receives `payloads` at QoS 1, in order, acknowledging each. */
async function receive(client: RawClient, payloads: string[]): Promise<void> {
  for (const payload of payloads) {
    const message = await client.expect("publish");
    assert.equal(text(message.payload), payload);
    await client.send({ type: "puback", packetId: message.packetId! });
  }
}

/**
 * Makes every synchronous file write in this process fail as a full disk
 * does, until the returned function is called (sockets are not files: the
 * clients' traffic goes on).
 */
function failFileWrites(): () => void {
  const proto = Deno.FsFile.prototype;
  const original = proto.writeSync;
  proto.writeSync = function (): number {
    throw new Error("No space left on device (os error 28)");
  };
  return () => {
    proto.writeSync = original;
  };
}

Deno.test("persistence: an offline subscriber's journal that cannot be written fails neither the publisher nor other subscribers; memory keeps the messages for its resume; said once (MQTT-4.5.0-1)", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "broker-store-failure-" }));
  const lines: string[] = [];
  try {
    {
      await using broker = new Broker({ persistence: dir, log: (line) => lines.push(line) });
      const { port } = await broker.listen({ port: 0 });
      await offlineSubscriber(port, "victim", "t");
      await offlineSubscriber(port, "bystander", "t");
      const { client: online } = await RawClient.connect(port, { clientId: "online" });
      await online.subscribe([["t", 1]]);
      // The victim's journal is closed while it is offline: a directory where it should be
      // makes reopening it fail with EISDIR.
      const journal = journalOf(dir, "victim");
      await Deno.remove(journal);
      await Deno.mkdir(journal);
      const { client: pub } = await connect5(port, { clientId: "pub" });
      for (let i = 1; i <= 3; i++) {
        await pub.publish("t", `m${i}`, 1, i);
        const puback = await pub.expect("puback");
        assert.equal(puback.packetId, i);
        // Taken and delivered: the publisher is told so (no 0x80, which says "not accepted").
        assert.equal(puback.reasonCode ?? 0, 0);
      }
      // The publisher is still connected (before: "Socket error on client pub … Is a directory").
      await pub.send({ type: "pingreq" });
      await pub.expect("pingresp");
      await receive(online, ["m1", "m2", "m3"]);
      assert.equal(broker.stats().queuedMessages, 6, "3 for the victim, 3 for the bystander");
      const said = lines.filter((line) => line.startsWith("Persistence: cannot store"));
      assert.equal(said.length, 1, said.join("\n"));
      assert.match(said[0], /client victim/);
      assert.ok(said[0].includes(journal), said[0]);
      assert.match(said[0], /os error 21|Is a directory/);
      assert.ok(!lines.some((line) => line.includes("Socket error")), lines.join("\n"));

      // The victim resumes while the broker runs (its journal still in the way): memory has
      // its messages.
      const { client: victim, sessionPresent } = await RawClient.connect(port, {
        clientId: "victim",
        clean: false,
      });
      assert.equal(sessionPresent, true);
      await receive(victim, ["m1", "m2", "m3"]);
      await victim.send({ type: "disconnect" });
      await victim.expectClosed();
      victim.close();
      await until(() => broker.stats().clients === 2, "the victim to be gone");
      // More for the offline victim: still in memory only, and not said again.
      await pub.publish("t", "m4", 1, 4);
      await pub.expect("puback");
      await receive(online, ["m4"]);
      assert.equal(
        lines.filter((line) => line.startsWith("Persistence: cannot store")).length,
        1,
        lines.join("\n"),
      );
      pub.close();
      online.close();
      // Out of the way again: the broker's shutdown rewrites the journal from memory.
      await Deno.remove(journal);
    }
    assert.ok(
      lines.some((line) => /client victim is stored again/.test(line)),
      lines.join("\n"),
    );
    await using broker = new Broker({ persistence: dir, log: () => {} });
    const { port } = await broker.listen({ port: 0 });
    // The bystander's journal was never in trouble: it has all four.
    const { client: bystander } = await RawClient.connect(port, {
      clientId: "bystander",
      clean: false,
    });
    await receive(bystander, ["m1", "m2", "m3", "m4"]);
    bystander.close();
    // The victim's rewritten journal holds its subscription and the one message it had not
    // received, not the three it acknowledged.
    const { client: victim, sessionPresent } = await RawClient.connect(port, {
      clientId: "victim",
      clean: false,
    });
    assert.equal(sessionPresent, true);
    await receive(victim, ["m4"]);
    broker.publish("t", "m5", { qos: 1 });
    await receive(victim, ["m5"]);
    victim.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("persistence: an online persistent subscriber whose journal cannot be written gets its QoS 1 and 2 messages; the publisher is acknowledged; said once", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "broker-store-online-" }));
  const lines: string[] = [];
  let restore: (() => void) | undefined;
  try {
    await using broker = new Broker({ persistence: dir, log: (line) => lines.push(line) });
    const { port } = await broker.listen({ port: 0 });
    const { client: sub } = await RawClient.connect(port, { clientId: "sub", clean: false });
    await sub.subscribe([["t", 2]]);
    // The publisher has a persistent session too: its incoming QoS 2 id cannot be written.
    const { client: pub } = await RawClient.connect(port, { clientId: "pub", clean: false });
    restore = failFileWrites();
    // QoS 1: the in-flight record cannot be written.
    await pub.publish("t", "one", 1, 1);
    await pub.expect("puback");
    const one = await sub.expect("publish");
    assert.equal(text(one.payload), "one");
    await sub.send({ type: "puback", packetId: one.packetId! });
    // QoS 2 from the publisher (its incoming id held in memory only, until PUBREL) and to the
    // subscriber (in flight, released, completed: none written).
    await pub.publish("t", "two", 2, 2);
    await pub.expect("pubrec");
    await pub.send({ type: "pubrel", packetId: 2 });
    await pub.expect("pubcomp");
    const two = await sub.expect("publish");
    assert.equal(text(two.payload), "two");
    assert.equal(two.qos, 2);
    await sub.send({ type: "pubrec", packetId: two.packetId! });
    await sub.expect("pubrel");
    await sub.send({ type: "pubcomp", packetId: two.packetId! });
    // Both still connected.
    for (const client of [pub, sub]) {
      await client.send({ type: "pingreq" });
      await client.expect("pingresp");
    }
    restore();
    restore = undefined;
    const said = lines.filter((line) => line.includes("client sub"));
    assert.equal(said.length, 1, lines.join("\n"));
    assert.equal(lines.filter((line) => line.includes("client pub:")).length, 1, lines.join("\n"));
    assert.match(said[0], /No space left on device/);
    assert.ok(said[0].includes(journalOf(dir, "sub")), said[0]);
    // Resuming rewrites the journal from memory.
    sub.close();
    await until(() => broker.stats().clients === 1, "the subscriber to be gone");
    const { client: again, sessionPresent } = await RawClient.connect(port, {
      clientId: "sub",
      clean: false,
    });
    assert.equal(sessionPresent, true);
    assert.ok(lines.some((line) => /client sub is stored again/.test(line)), lines.join("\n"));
    await again.expectSilence(); // nothing left over: both flows completed
    again.close();
    pub.close();
  } finally {
    restore?.();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("persistence: a retained journal that cannot be written keeps the retained messages in memory, fails no publisher, is said once and rewritten at shutdown", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "broker-store-retained-" }));
  const lines: string[] = [];
  let restore: (() => void) | undefined;
  try {
    {
      await using broker = new Broker({ persistence: dir, log: (line) => lines.push(line) });
      const { port } = await broker.listen({ port: 0 });
      const { client: pub } = await RawClient.connect(port, { clientId: "pub" });
      restore = failFileWrites();
      for (const [n, topic] of ["r/1", "r/2"].entries()) {
        await pub.send({
          type: "publish",
          topic,
          payload: bytes(`kept ${topic}`),
          qos: 1,
          retain: true,
          dup: false,
          packetId: n + 1,
        });
        await pub.expect("puback");
      }
      await pub.send({ type: "pingreq" });
      await pub.expect("pingresp");
      const said = lines.filter((line) => line.includes("retained"));
      assert.equal(said.length, 1, lines.join("\n"));
      assert.ok(said[0].includes(`${dir}/retained.journal`), said[0]);
      // A subscriber gets them from memory.
      const { client: sub } = await RawClient.connect(port, { clientId: "sub" });
      await sub.subscribe([["r/#", 0]]);
      const got = [await sub.expect("publish"), await sub.expect("publish")].map((p) =>
        text(p.payload)
      ).sort();
      assert.deepEqual(got, ["kept r/1", "kept r/2"]);
      sub.close();
      pub.close();
      restore();
      restore = undefined;
    }
    assert.ok(lines.some((line) => /retained messages are stored again/.test(line)));
    await using broker = new Broker({ persistence: dir, log: () => {} });
    await broker.listen({ port: 0 });
    assert.equal(broker.stats().retained, 2);
  } finally {
    restore?.();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("persistence: a session .json that cannot be rewritten at resume or SUBSCRIBE neither refuses the client nor fails the SUBSCRIBE; said once, written with the next change", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "broker-store-meta-" }));
  const lines: string[] = [];
  try {
    await using broker = new Broker({ persistence: dir, log: (line) => lines.push(line) });
    const { port } = await broker.listen({ port: 0 });
    const session = { clientId: "m", clean: false, properties: { sessionExpiryInterval: 60 } };
    const { client: first } = await connect5(port, session);
    await first.send({ type: "disconnect" });
    await first.expectClosed();
    first.close();
    await until(() => broker.stats().clients === 0, "the client to be gone");
    // The .json is replaced through `<name>.tmp`: a directory there makes that fail.
    const blocker = `${journalOf(dir, "m").slice(0, -".journal".length)}.json.tmp`;
    await Deno.mkdir(`${blocker}/x`, { recursive: true });
    const { client, sessionPresent, returnCode } = await connect5(port, session);
    assert.equal(returnCode, 0, "before: refused (the broker cannot keep the session)");
    assert.equal(sessionPresent, true);
    await client.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ filter: "s", qos: 1 }],
      properties: { subscriptionIdentifier: 7 },
    });
    assert.deepEqual((await client.expect("suback")).reasonCodes, [1]);
    const said = lines.filter((line) => line.startsWith("Persistence: cannot store"));
    assert.equal(said.length, 1, lines.join("\n"));
    assert.match(said[0], /client m\b/);
    await Deno.remove(blocker, { recursive: true });
    broker.publish("s", "x", { qos: 1 });
    const message = await client.expect("publish");
    assert.deepEqual(message.properties?.subscriptionIdentifiers, [7]);
    await client.send({ type: "puback", packetId: message.packetId! });
    await client.send({ type: "disconnect" });
    await client.expectClosed();
    client.close();
    await until(() => broker.stats().clients === 0, "the client to be gone");
    assert.ok(
      lines.some((line) => /state of client m is stored again/.test(line)),
      lines.join("\n"),
    );
    const meta = JSON.parse(await Deno.readTextFile(blocker.slice(0, -".tmp".length)));
    assert.deepEqual(meta.identifiers, { s: 7 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SessionJournal: after a failure, changes wait for a retry that rewrites the whole state; other errors are thrown", () => {
  const lines: string[] = [];
  let failing = true;
  const failingStore = new MemoryStore();
  failingStore.pushWaiting = () => {
    throw new MqttError("STORE_ERROR", "cannot write j: disk full");
  };
  const rewrites: number[] = [];
  let rewritten: MemoryStore | undefined;
  const journal = new SessionJournal(failingStore, {
    clientId: "c",
    path: "j",
    log: (line) => lines.push(line),
    retryMs: 0,
    rewrite: (state) => {
      if (failing) throw new MqttError("STORE_ERROR", "cannot compact j: disk full");
      rewrites.push(state.waiting.length);
      const store = new MemoryStore();
      for (const record of state.waiting) store.pushWaiting(record);
      rewritten = store;
      return store;
    },
  });
  const record = (n: number) => ({
    topic: "t",
    payload: new Uint8Array([n]),
    qos: 1 as const,
    retain: false,
  });
  const memory = [record(1)];
  journal.source = () => ({
    inflight: [],
    waiting: [...memory],
    incoming: [],
    nextPacketId: 1,
    subscriptions: [],
  });
  journal.pushWaiting(record(1)); // fails: memory has it
  assert.equal(journal.failed, true);
  journal.pushWaiting(record(2)); // retried (retryMs 0), fails again: not said again
  memory.push(record(2));
  assert.equal(lines.length, 1);
  failing = false;
  journal.pushWaiting(record(3)); // retried: rewritten from memory (2), then the change
  assert.deepEqual(rewrites, [2]);
  assert.equal(journal.failed, false);
  assert.equal(journal.load().waiting.length, 3);
  assert.equal(lines.length, 2);
  assert.match(lines[1], /stored again/);
  // A bug, not a full disk: thrown at whoever made the change.
  const current = journal.load();
  assert.equal(current.waiting.length, 3);
  rewritten!.addIncoming = () => {
    throw new RangeError("a bug");
  };
  assert.throws(() => journal.addIncoming(1), RangeError);
  assert.equal(journal.failed, false);
});
