/**
 * The embedded broker's `persistence`: retained messages and persistent
 * sessions across a restart, a clean one, and one after SIGKILL mid-stream.
 */
import assert from "node:assert/strict";
import { Broker } from "../broker.ts";
import type { PublishPacket } from "../lib/codec/packet.ts";
import type { ConnectPacket } from "../lib/codec/packet.ts";
import { bytes, RawClient, until } from "./broker_helpers.ts";

const MAIN = new URL("../examples/broker_main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();
const text = (payload: Uint8Array) => decoder.decode(payload);

Deno.test("persistence: retained messages, subscriptions and queued messages survive close and reopen", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-persistence-" });
  try {
    {
      await using broker = new Broker({ persistence: dir });
      const { port } = await broker.listen({ port: 0 });
      const { client: durable } = await RawClient.connect(port, {
        clientId: "durable",
        clean: false,
        username: "alice",
      });
      await durable.subscribe([["d/#", 1]]);
      await durable.send({ type: "disconnect" });
      await durable.expectClosed();
      durable.close();
      const { client: pub } = await RawClient.connect(port, { clientId: "pub" });
      for (let i = 1; i <= 3; i++) {
        await pub.publish("d/x", `queued ${i}`, 1, i);
        await pub.expect("puback");
      }
      await pub.send({
        type: "publish",
        topic: "status",
        payload: bytes("kept"),
        qos: 1,
        retain: true,
        dup: false,
        packetId: 9,
      });
      await pub.expect("puback");
      pub.close();
    }
    await using broker = new Broker({ persistence: dir });
    const { port } = await broker.listen({ port: 0 });
    assert.equal(broker.stats().retained, 1);
    assert.equal(broker.stats().sessions, 1);
    // Another user cannot have the restored session either.
    const bob = await RawClient.connect(port, {
      clientId: "durable",
      clean: false,
      username: "bob",
    });
    assert.equal(bob.returnCode, 5);
    bob.client.close();
    const { client, sessionPresent } = await RawClient.connect(port, {
      clientId: "durable",
      clean: false,
      username: "alice",
    });
    assert.equal(sessionPresent, true);
    for (let i = 1; i <= 3; i++) {
      const message = await client.expect("publish");
      assert.equal(text(message.payload), `queued ${i}`);
      await client.send({ type: "puback", packetId: message.packetId! });
    }
    // The restored subscription routes new messages.
    broker.publish("d/y", "live", { qos: 1 });
    const live = await client.expect("publish");
    assert.equal(text(live.payload), "live");
    await client.send({ type: "puback", packetId: live.packetId! });
    assert.deepEqual(await client.subscribe([["status", 0]]), [0]);
    assert.equal(text((await client.expect("publish")).payload), "kept");
    client.close();
    // A clean connection ends the stored session, on disk too.
    const cleaned = await RawClient.connect(port, {
      clientId: "durable",
      clean: true,
      username: "alice",
    });
    cleaned.client.close();
    const names: string[] = [];
    for await (const entry of Deno.readDir(`${dir}/sessions`)) names.push(entry.name);
    assert.deepEqual(names.filter((n) => !n.endsWith(".lock")), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Starts `deno task broker --persistence dir` on a free port; resolves with the port. */
async function startBrokerProcess(dir: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "-q", "-p", "0", "--persistence", dir],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  let port: number | undefined;
  while (port === undefined) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the broker exited: ${out}`);
    out += value;
    const match = out.match(/listen socket on [^:]+:(\d+)\./);
    if (match) port = Number(match[1]);
  }
  return {
    port,
    async kill(signal: Deno.Signal) {
      child.kill(signal);
      await reader.cancel().catch(() => {});
      return await child.status;
    },
  };
}

Deno.test("persistence: SIGKILL mid-stream, restart: every acknowledged message and subscription is kept", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-sigkill-" });
  try {
    let broker = await startBrokerProcess(dir);
    // A durable subscriber that takes messages but never acknowledges them: some are in
    // flight (maxInflight 20), the rest queued, when the broker dies.
    const { client: durable } = await RawClient.connect(broker.port, {
      clientId: "durable",
      clean: false,
    });
    await durable.subscribe([["s/#", 1]]);
    const { client: pub } = await RawClient.connect(broker.port, { clientId: "pub" });
    await pub.send({
      type: "publish",
      topic: "s/retained",
      payload: bytes("kept"),
      qos: 1,
      retain: true,
      dup: false,
      packetId: 1,
    });
    await pub.expect("puback");
    const acked = new Set<string>();
    // Ten PUBLISH in flight at a time; the broker is killed after the 300th PUBACK.
    let sent = 0;
    const window = 10;
    for (; sent < window; sent++) await pub.publish("s/x", `m${sent}`, 1, 2 + sent);
    let killed = false;
    while (!killed) {
      const result = await pub.read();
      if ("closed" in result) break;
      assert.equal(result.packet.type, "puback");
      const id = (result.packet as { packetId: number }).packetId;
      acked.add(`m${id - 2}`);
      if (acked.size === 300) {
        const status = await broker.kill("SIGKILL");
        assert.equal(status.signal, "SIGKILL");
        killed = true;
        break;
      }
      await pub.publish("s/x", `m${sent}`, 1, 2 + (sent % 60000));
      sent++;
    }
    pub.close();
    durable.close();
    assert.ok(killed);

    broker = await startBrokerProcess(dir);
    try {
      const { client, sessionPresent } = await RawClient.connect(broker.port, {
        clientId: "durable",
        clean: false,
      });
      assert.equal(sessionPresent, true, "the session survived");
      const received = new Set<string>();
      while (true) {
        let result;
        try {
          result = await client.read(1000);
        } catch {
          break; // a second of silence: everything queued has arrived
        }
        if ("closed" in result) break;
        const message = result.packet as PublishPacket;
        received.add(text(message.payload));
        await client.send({ type: "puback", packetId: message.packetId! });
      }
      for (const id of acked) assert.ok(received.has(id), `acknowledged ${id} was lost`);
      // The subscription itself survived: a new message is routed to it.
      const { client: again } = await RawClient.connect(broker.port, { clientId: "pub2" });
      await again.publish("s/after", "after", 1);
      await again.expect("puback");
      assert.equal(text((await client.expect("publish")).payload), "after");
      assert.deepEqual(await again.subscribe([["s/retained", 0]]), [0]);
      assert.equal(text((await again.expect("publish")).payload), "kept");
      again.close();
      client.close();
    } finally {
      await broker.kill("SIGTERM");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("persistence: a torn tail of the retained journal is ignored; a damaged record is skipped, kept and logged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-damage-" });
  try {
    {
      await using broker = new Broker({ persistence: dir });
      await broker.listen({ port: 0 });
      for (const topic of ["a", "b", "c"]) {
        broker.publish(topic, `payload of ${topic}`, { retain: true });
      }
    }
    const path = `${dir}/retained.journal`;
    const journal = await Deno.readFile(path);
    // A torn tail: the start of a record (its length says 100 bytes; 3 are there).
    await Deno.writeFile(path, new Uint8Array([...journal, 100, 0, 0, 0, 4, 0, 0]));
    {
      const lines: string[] = [];
      await using broker = new Broker({ persistence: dir, log: (line) => lines.push(line) });
      await broker.listen({ port: 0 });
      assert.equal(broker.stats().retained, 3);
      assert.deepEqual(lines.filter((l) => l.includes("damaged")), []);
    }
    // Damage inside the record of "b": its CRC no longer matches.
    const now = await Deno.readFile(path);
    const at = new TextDecoder().decode(now).indexOf("payload of b");
    now[at + 3] ^= 0xff;
    await Deno.writeFile(path, now);
    const lines: string[] = [];
    await using broker = new Broker({ persistence: dir, log: (line) => lines.push(line) });
    const { port } = await broker.listen({ port: 0 });
    assert.equal(broker.stats().retained, 2, "a and c are read past the damage");
    const report = lines.find((l) => l.includes("damaged bytes"));
    assert.ok(report, lines.join("\n"));
    assert.match(report, /retained\.journal\.corrupt-1/);
    await Deno.stat(`${path}.corrupt-1`);
    const { client } = await RawClient.connect(port, { clientId: "reader" });
    await client.subscribe([["+", 0]]);
    const topics = [
      text((await client.expect("publish")).payload),
      text((await client.expect("publish")).payload),
    ];
    assert.deepEqual(topics.sort(), ["payload of a", "payload of c"]);
    client.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Retains `n` messages on `r/000`, `r/001`, …: QoS 1 on even numbers, QoS 0 on odd ones. */
async function retainMany(port: number, n: number): Promise<Set<string>> {
  const { client } = await RawClient.connect(port, { clientId: "retainer" });
  const qos1 = new Set<string>();
  for (let i = 0; i < n; i++) {
    const topic = `r/${String(i).padStart(3, "0")}`;
    const qos = i % 2 === 0 ? 1 : 0;
    if (qos === 1) qos1.add(topic);
    await client.send({
      type: "publish",
      topic,
      payload: bytes(`q${qos}`),
      qos,
      retain: true,
      dup: false,
      packetId: qos === 1 ? 1 : undefined,
    });
    if (qos === 1) await client.expect("puback");
  }
  client.close();
  return qos1;
}

/** Reads PUBLISH packets until `ms` of silence; acknowledges them when `ack`. */
async function drain(client: RawClient, ack: boolean, ms = 300): Promise<PublishPacket[]> {
  const got: PublishPacket[] = [];
  while (true) {
    let result;
    try {
      result = await client.read(ms);
    } catch {
      return got; // silence
    }
    if ("closed" in result) return got;
    const message = result.packet as PublishPacket;
    got.push(message);
    if (ack && message.qos === 1) {
      await client.send({ type: "puback", packetId: message.packetId! });
    }
  }
}

for (
  const [version, connect] of [
    ["3.1.1", { clientId: "sub", clean: false }],
    ["5.0", {
      clientId: "sub",
      clean: false,
      protocolLevel: 5,
      properties: { sessionExpiryInterval: 600 },
    }],
  ] as [string, Partial<ConnectPacket>][]
) {
  Deno.test(`retained messages not yet sent when the connection ends are delivered when the session resumes (${version}, queue limit 10)`, async () => {
    // 100 retained messages; the subscriber takes none of them (no PUBACK), so the window of
    // 20 fills and the rest are still to send when its connection ends. The QoS 1 ones go into
    // the session's queue as far as its limit of 10 allows; the rest wait for the resume.
    await using broker = new Broker({ maxQueuedMessages: 10 });
    const { port } = await broker.listen({ port: 0 });
    const qos1 = await retainMany(port, 100);
    const first = await RawClient.connect(port, connect);
    await first.client.subscribe([["r/#", 1]]);
    const before = await drain(first.client, false);
    first.client.close();
    await until(() => broker.stats().clients === 0, "the broker to see the connection end");
    assert.ok(broker.stats().queuedMessages <= 10, `${broker.stats().queuedMessages} queued`);
    const again = await RawClient.connect(port, connect);
    assert.equal(again.sessionPresent, true);
    const after = await drain(again.client, true);
    again.client.close();
    const received = new Set([...before, ...after].filter((m) => m.qos === 1).map((m) => m.topic));
    assert.deepEqual([...qos1].filter((t) => !received.has(t)), [], "QoS 1 retained messages lost");
    for (const message of after) assert.equal(message.retain, true); // MQTT-3.3.1-8
  });

  Deno.test(`retained messages not yet sent are all delivered, QoS 0 too, when a new connection takes the session over (${version})`, async () => {
    // The session is never without a connection: the new one goes on with what the old one
    // had still to send. Before, the takeover ended the old connection as any end, so the
    // QoS 0 ones still owed were dropped "as for an offline session" (13 of 50 lost).
    await using broker = new Broker();
    const { port } = await broker.listen({ port: 0 });
    await retainMany(port, 100);
    const first = await RawClient.connect(port, connect);
    await first.client.subscribe([["r/#", 1]]);
    // No PUBACK: the window of 20 fills, and what comes after the 20th QoS 1 waits.
    const before = await drain(first.client, false);
    const again = await RawClient.connect(port, connect); // while the first is still open
    assert.equal(again.sessionPresent, true);
    const after = await drain(again.client, true);
    first.client.close();
    again.client.close();
    const received = new Set([...before, ...after].map((m) => m.topic));
    const all = [...Array(100)].map((_, i) => `r/${String(i).padStart(3, "0")}`);
    assert.deepEqual(all.filter((t) => !received.has(t)), [], "retained messages lost");
  });
}

Deno.test("persistence: retained messages not yet sent when the connection ends are kept in the session across a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-retained-resume-" });
  const connect: Partial<ConnectPacket> = {
    clientId: "sub",
    clean: false,
    protocolLevel: 5,
    properties: { sessionExpiryInterval: 600 },
  };
  try {
    let qos1: Set<string>;
    let before: PublishPacket[];
    {
      await using broker = new Broker({ persistence: dir });
      const { port } = await broker.listen({ port: 0 });
      qos1 = await retainMany(port, 100);
      const { client } = await RawClient.connect(port, connect);
      await client.subscribe([["r/#", 1]]);
      before = await drain(client, false);
      client.close();
      await until(() => broker.stats().clients === 0, "the broker to see the connection end");
    }
    await using broker = new Broker({ persistence: dir });
    const { port } = await broker.listen({ port: 0 });
    const { client, sessionPresent } = await RawClient.connect(port, connect);
    assert.equal(sessionPresent, true);
    const after = await drain(client, true);
    client.close();
    const received = new Set([...before, ...after].filter((m) => m.qos === 1).map((m) => m.topic));
    assert.deepEqual([...qos1].filter((t) => !received.has(t)), [], "QoS 1 retained messages lost");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Open file descriptors of this process on files in `dir`, once the count has settled (closes
 * may lag a moment). Only those: `deno test --parallel` runs other test files in this process,
 * and their sockets and files come and go meanwhile.
 */
async function openFiles(dir: string, atMost: number): Promise<number> {
  const count = () => {
    let n = 0;
    for (const { name } of Deno.readDirSync("/proc/self/fd")) {
      try {
        if (Deno.readLinkSync(`/proc/self/fd/${name}`).startsWith(`${dir}/`)) n++;
      } catch {
        // Closed since the directory was read.
      }
    }
    return n;
  };
  const deadline = Date.now() + 1000;
  while (count() > atMost && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return count();
}

Deno.test({
  name: "persistence: offline persistent sessions hold no open files, idle or storing messages",
  ignore: Deno.build.os !== "linux", // counts /proc/self/fd
  async fn() {
    const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "broker-descriptors-" }));
    const openOffline = async (port: number, from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const { client } = await RawClient.connect(port, { clientId: `c${i}`, clean: false });
        await client.subscribe([["all", 1]]);
        await client.send({ type: "disconnect" });
        await client.expectClosed();
        client.close();
      }
    };
    try {
      {
        await using broker = new Broker({ persistence: dir });
        const { port } = await broker.listen({ port: 0 });
        await openOffline(port, 0, 5);
        await until(() => broker.stats().clients === 0, "the clients to be gone");
        const five = await openFiles(dir, 0);
        await openOffline(port, 5, 50);
        await until(() => broker.stats().clients === 0, "the clients to be gone");
        // Two files per offline session before (a journal and its lock): 90 more here.
        const fifty = await openFiles(dir, five);
        assert.ok(fifty <= five, `5 offline sessions: ${five} files open, 50: ${fifty}`);
        // A message stored for each opens its journal and appends; only the 16 most recently
        // written stay open.
        broker.publish("all", "stored while offline", { qos: 1 });
        broker.publish("all", "and another", { qos: 1 });
        assert.equal(broker.stats().queuedMessages, 100);
        const stored = await openFiles(dir, five + 16);
        assert.ok(stored <= five + 16, `after storing messages for each: ${stored} files open`);
      }
      const closed = await openFiles(dir, 0);
      // Restored offline, the sessions open no file either.
      await using broker = new Broker({ persistence: dir });
      const { port } = await broker.listen({ port: 0 });
      assert.equal(broker.stats().sessions, 50);
      const restored = await openFiles(dir, closed + 2); // the lock, the retained journal
      assert.ok(restored <= closed + 2, `restored: ${restored} files open, ${closed} before`);
      // What an idle journal stored is there (and its journal opens again for the session).
      const { client, sessionPresent } = await RawClient.connect(port, {
        clientId: "c49",
        clean: false,
      });
      assert.equal(sessionPresent, true);
      for (const payload of ["stored while offline", "and another"]) {
        const message = await client.expect("publish");
        assert.equal(text(message.payload), payload);
        await client.send({ type: "puback", packetId: message.packetId! });
      }
      broker.publish("all", "live", { qos: 1 });
      const live = await client.expect("publish");
      assert.equal(text(live.payload), "live");
      await client.send({ type: "puback", packetId: live.packetId! });
      client.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("persistence: a session whose journal cannot be created is refused and leaves nothing on disk to come back after a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-session-create-" });
  try {
    // The journal's snapshot goes through `<key>.journal.tmp`: a directory there makes its
    // creation fail after the session's .json was written. Key of "ph": "c" + hex of its bytes.
    const blocker = `${dir}/sessions/c7068.journal.tmp`;
    {
      await using broker = new Broker({ persistence: dir, log: () => {} });
      const { port } = await broker.listen({ port: 0 });
      await Deno.mkdir(`${blocker}/x`, { recursive: true });
      const { client, returnCode } = await RawClient.connect(port, {
        clientId: "ph",
        clean: false,
      });
      assert.equal(returnCode, 3, "the broker cannot keep the session");
      client.close();
      assert.equal(broker.stats().sessions, 0);
    }
    await Deno.remove(blocker, { recursive: true });
    // Before, its .json stayed: the refused session came back, present and never to expire.
    await using broker = new Broker({ persistence: dir });
    await broker.listen({ port: 0 });
    assert.equal(broker.stats().sessions, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
