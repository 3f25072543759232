/**
 * Acknowledgement on consume, where its rules live: the client's sans-IO
 * {@linkcode Session} with `deferAcks` (PUBACK / PUBREC wait for the
 * application, leave in arrival order, QoS 2 ids recorded at PUBREC, pending
 * acknowledgements across reconnects), then the client's side of it (the
 * subscriptions' ack modes, overlapping subscriptions, leaving the loop)
 * through a scripted server, and the Inbox defects of issue 15.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, MqttError } from "../mod.ts";
import type { PublishPacket } from "../lib/codec/packet.ts";
import { ClientSessionState, Session } from "../lib/session/session.ts";
import type { PendingAck } from "../lib/session/acks.ts";
import { MemoryStore } from "../lib/store/memory_store.ts";
import type { Store } from "../lib/store/store.ts";
import { brief, connack, Recorder, sessionOptions } from "./session_helpers.ts";
import { publish, ScriptedServer, turn } from "./scripted_server.ts";

/** A recorder that keeps each delivery's pending acknowledgement. */
class AckRecorder extends Recorder {
  acks: (PendingAck | undefined)[] = [];
  override deliver(packet: PublishPacket, ack?: PendingAck): void {
    super.deliver(packet);
    this.acks.push(ack);
  }
}

/** A store whose incoming-id records are written into `log`, next to the packets sent. */
function loggingStore(log: string[], failAddIncoming = false): Store {
  const inner = new MemoryStore();
  return new Proxy(inner, {
    get(target, key, receiver) {
      if (key === "addIncoming") {
        return (id: number) => {
          if (failAddIncoming) throw new MqttError("STORE_ERROR", "disk full");
          log.push(`store:addIncoming:${id}`);
          target.addIncoming(id);
        };
      }
      const value = Reflect.get(target, key, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A connected session with deferred acknowledgements over `state`. */
function connected(
  state = new ClientSessionState(),
  clean = false,
  log?: string[],
): { session: Session; rec: AckRecorder; state: ClientSessionState } {
  const rec = new AckRecorder(log);
  const session = new Session(sessionOptions({ clean, deferAcks: true }), state, rec);
  session.connect(0);
  session.receive(connack(false), 1);
  rec.take();
  log?.splice(0);
  return { session, rec, state };
}

function reconnect(session: Session, rec: Recorder, sessionPresent: boolean): void {
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "cut"), 10);
  session.connect(11);
  session.receive(connack(sessionPresent), 12);
  rec.take().shift(); // CONNECT
}

Deno.test("ack on consume: PUBACK waits for the application and leaves in arrival order (MQTT-4.6.0-2)", () => {
  const { session, rec } = connected();
  for (const id of [1, 2, 3]) session.receive(publish(id, 1), 2);
  assert.equal(rec.delivered.length, 3, "delivered at once");
  assert.deepEqual(brief(rec.take()), [], "nothing acknowledged before the application consumed");
  // Consumed out of order (a manual consumer): 3 and 2 wait for 1.
  session.acknowledge(rec.acks[2]!, true, 3);
  session.acknowledge(rec.acks[1]!, true, 3);
  assert.deepEqual(brief(rec.take()), []);
  session.acknowledge(rec.acks[0]!, true, 4);
  assert.deepEqual(brief(rec.take()), ["puback:1", "puback:2", "puback:3"]);
  // A second acknowledgement of the same message does nothing.
  session.acknowledge(rec.acks[0]!, true, 5);
  assert.deepEqual(brief(rec.take()), []);
});

Deno.test("ack on consume: QoS 1 and 2 acknowledgements share the arrival order (MQTT-4.6.0-2, MQTT-4.6.0-3)", () => {
  const log: string[] = [];
  const { session, rec } = connected(
    new ClientSessionState({ store: loggingStore(log) }),
    false,
    log,
  );
  session.receive(publish(1, 2), 2);
  session.receive(publish(2, 1), 2);
  session.receive(publish(3, 2), 2);
  session.acknowledge(rec.acks[2]!, true, 3);
  session.acknowledge(rec.acks[1]!, true, 3);
  assert.deepEqual(log, [], "nothing recorded or sent while the first is being consumed");
  session.acknowledge(rec.acks[0]!, true, 4);
  assert.deepEqual(log, [
    "store:addIncoming:1",
    "send:pubrec:1",
    "send:puback:2",
    "store:addIncoming:3",
    "send:pubrec:3",
  ]);
});

Deno.test("ack on consume: a QoS 2 id is recorded when PUBREC goes out, not on arrival (MQTT-4.3.3-2)", () => {
  const log: string[] = [];
  const store = loggingStore(log);
  const { session, rec, state } = connected(new ClientSessionState({ store }), false, log);
  session.receive(publish(7, 2), 2);
  assert.equal(rec.delivered.length, 1);
  // A process that dies now has nothing recorded: the server's DUP resend after
  // the restart is delivered again, so the unconsumed message is not lost.
  assert.deepEqual(store.load().incoming, []);
  assert.equal(state.incomingCount, 0);
  assert.deepEqual(log, []);
  session.acknowledge(rec.acks[0]!, true, 3);
  assert.deepEqual(log, ["store:addIncoming:7", "send:pubrec:7"], "the store first, then PUBREC");
  assert.deepEqual(store.load().incoming, [7]);
  // A resend now (our PUBREC lost) is answered, not delivered again.
  session.receive(publish(7, 2, "t", true), 4);
  assert.equal(rec.delivered.length, 1);
  session.receive({ type: "pubrel", packetId: 7 }, 5);
  assert.deepEqual(log.slice(2), ["send:pubrec:7", "send:pubcomp:7"]);
  assert.deepEqual(store.load().incoming, []);
});

Deno.test("ack on consume: a failing store sends no PUBREC and closes the connection with its error", () => {
  const log: string[] = [];
  const store = loggingStore(log, true);
  const { session, rec } = connected(new ClientSessionState({ store }), false, log);
  session.receive(publish(4, 2), 2);
  session.acknowledge(rec.acks[0]!, true, 3);
  assert.deepEqual(log, [], "no PUBREC for an id that could not be recorded");
  assert.equal(session.state, "disconnected");
  assert.equal(rec.closes[0]?.code, "STORE_ERROR");
});

Deno.test("ack on consume: a DUP resend after a reconnect is not delivered twice; its pending ack answers it (MQTT-4.4.0-1)", () => {
  for (const qos of [1, 2] as const) {
    const { session, rec } = connected();
    session.receive(publish(5, qos), 2);
    session.receive(publish(6, qos), 2);
    assert.equal(rec.delivered.length, 2);
    reconnect(session, rec, true);
    // The broker resends both, in order, with DUP set.
    session.receive(publish(5, qos, "t", true), 13);
    session.receive(publish(6, qos, "t", true), 13);
    assert.equal(rec.delivered.length, 2, `QoS ${qos}: the resends reached the application`);
    assert.deepEqual(brief(rec.take()), []);
    const kind = qos === 1 ? "puback" : "pubrec";
    session.acknowledge(rec.acks[0]!, true, 14);
    session.acknowledge(rec.acks[1]!, true, 14);
    assert.deepEqual(brief(rec.take()), [`${kind}:5`, `${kind}:6`], `QoS ${qos}`);
  }
});

Deno.test("ack on consume: consumed while offline, acknowledged on the next connection in order", () => {
  const { session, rec } = connected();
  session.receive(publish(1, 1), 2);
  session.receive(publish(2, 2), 2);
  session.receive(publish(3, 1), 2);
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "cut"), 3);
  session.acknowledge(rec.acks[0]!, true, 4);
  session.acknowledge(rec.acks[1]!, true, 4);
  assert.deepEqual(brief(rec.take()), [], "nothing can be sent while disconnected");
  session.connect(5);
  session.receive(connack(true), 6);
  assert.deepEqual(brief(rec.take()), ["connect", "puback:1", "pubrec:2"]);
  session.acknowledge(rec.acks[2]!, true, 7);
  assert.deepEqual(brief(rec.take()), ["puback:3"]);
});

Deno.test("ack on consume: without a session on the broker, pending acknowledgements are dropped", () => {
  const { session, rec } = connected();
  session.receive(publish(1, 1), 2);
  session.receive(publish(2, 2), 2);
  reconnect(session, rec, false);
  session.acknowledge(rec.acks[0]!, true, 13);
  session.acknowledge(rec.acks[1]!, true, 13);
  assert.deepEqual(brief(rec.take()), [], "no acknowledgement for a session the broker lost");
  // The same ids are new messages now.
  session.receive(publish(1, 1), 14);
  assert.equal(rec.delivered.length, 3);
  session.acknowledge(rec.acks[2]!, true, 15);
  assert.deepEqual(brief(rec.take()), ["puback:1"]);
});

Deno.test("ack on consume: a declined message is never acknowledged on a persistent session, and is on a clean one", () => {
  for (const clean of [false, true]) {
    const { session, rec } = connected(new ClientSessionState(), clean);
    session.receive(publish(1, 1), 2);
    session.receive(publish(2, 2), 2);
    session.receive(publish(3, 1), 2);
    session.acknowledge(rec.acks[0]!, false, 3); // the client closed before consuming it
    session.acknowledge(rec.acks[1]!, false, 3);
    session.acknowledge(rec.acks[2]!, true, 3);
    assert.deepEqual(
      brief(rec.take()),
      clean ? ["puback:1", "pubrec:2", "puback:3"] : ["puback:3"],
      // Persistent: the broker keeps 1 and 2 and sends them again on the next connection.
      `clean ${clean}`,
    );
  }
});

Deno.test("ack on consume: a QoS 2 resend of an id already acknowledged keeps its PUBREC in arrival order (MQTT-4.6.0-3)", () => {
  const { session, rec } = connected();
  session.receive(publish(9, 2), 2);
  session.acknowledge(rec.acks[0]!, true, 3);
  assert.deepEqual(brief(rec.take()), ["pubrec:9"]);
  session.receive(publish(1, 2), 4); // being consumed
  session.receive(publish(9, 2, "t", true), 4); // our PUBREC for 9 was lost
  assert.equal(rec.delivered.length, 2, "the resend of 9 is not delivered again");
  assert.deepEqual(brief(rec.take()), [], "PUBREC 9 waits for the earlier PUBLISH 1");
  session.acknowledge(rec.acks[1]!, true, 5);
  assert.deepEqual(brief(rec.take()), ["pubrec:1", "pubrec:9"]);
});

Deno.test("ack on consume: the session without deferAcks acknowledges on delivery, as before", () => {
  const rec = new AckRecorder();
  const session = new Session(sessionOptions(), new ClientSessionState(), rec);
  session.connect(0);
  session.receive(connack(false), 1);
  rec.take();
  session.receive(publish(1, 1), 2);
  session.receive(publish(2, 2), 2);
  assert.deepEqual(rec.acks, [undefined, undefined]);
  assert.deepEqual(brief(rec.take()), ["puback:1", "pubrec:2"]);
});

// ---- the client's side, through a scripted server ----

Deno.test('client: ack "consume" acknowledges a message when the loop asks for the next one', async () => {
  const server = new ScriptedServer();
  const client = await connect("mqtt://scripted.invalid", {
    transport: server.open,
    clientId: "ack-consume",
    clean: false,
  });
  try {
    const sub = await client.subscribe("t", { qos: 1 });
    for (const id of [1, 2, 3]) server.send(publish(id, 1));
    const it = sub[Symbol.asyncIterator]();
    assert.equal((await it.next()).value?.text(), "t#1");
    await turn();
    assert.deepEqual(server.acks(), [], "the message in hand is not acknowledged");
    assert.equal((await it.next()).value?.text(), "t#2");
    await server.until(() => server.acks().length === 1, "PUBACK 1");
    assert.deepEqual(server.acks(), ["puback:1"]);
    // Leaving the loop: the message in hand (2) counts as consumed; 3, buffered, is
    // dropped and acknowledged too (the application chose to end the subscription).
    await it.return!();
    await turn();
    assert.deepEqual(server.acks(), ["puback:1", "puback:2", "puback:3"]);
  } finally {
    await client.close();
  }
});

Deno.test('client: ack "manual" acknowledges on msg.ack(), in arrival order; "receive" on arrival', async () => {
  const server = new ScriptedServer();
  const client = await connect("mqtt://scripted.invalid", { transport: server.open });
  try {
    const manual = await client.subscribe("m", { qos: 1, ack: "manual" });
    for (const id of [1, 2, 3]) server.send(publish(id, 1, "m"));
    const it = manual[Symbol.asyncIterator]();
    const msgs = [(await it.next()).value!, (await it.next()).value!, (await it.next()).value!];
    await turn();
    assert.deepEqual(server.acks(), [], "asking for the next one acknowledges nothing");
    msgs[2].ack();
    msgs[1].ack();
    await turn();
    assert.deepEqual(server.acks(), [], "2 and 3 wait for 1 (MQTT-4.6.0-2)");
    msgs[0].ack();
    await server.until(() => server.acks().length === 3, "three PUBACKs");
    assert.deepEqual(server.acks(), ["puback:1", "puback:2", "puback:3"]);

    const receive = await client.subscribe("r", { qos: 2, ack: "receive" });
    server.send(publish(4, 2, "r"));
    await server.until(() => server.acks().length === 4, "PUBREC on arrival");
    assert.deepEqual(server.acks().at(-1), "pubrec:4");
    await receive.unsubscribe();
    await manual.unsubscribe();
  } finally {
    await client.close();
  }
});

Deno.test("client: a message on overlapping subscriptions is acknowledged once both consumed it", async () => {
  const server = new ScriptedServer();
  const client = await connect("mqtt://scripted.invalid", { transport: server.open });
  try {
    const a = await client.subscribe("o/+", { qos: 1, ack: "manual" });
    const b = await client.subscribe("o/#", { qos: 1, ack: "manual" });
    server.send(publish(1, 1, "o/x"));
    const fromA = (await a[Symbol.asyncIterator]().next()).value!;
    const fromB = (await b[Symbol.asyncIterator]().next()).value!;
    assert.notEqual(fromA, fromB, "each subscription has its own copy");
    fromA.ack();
    fromA.ack(); // once per copy: a second call must not stand in for b
    await turn();
    assert.deepEqual(server.acks(), []);
    fromB.ack();
    await server.until(() => server.acks().length === 1, "PUBACK");
    assert.deepEqual(server.acks(), ["puback:1"]);
    await a.unsubscribe();
    await b.unsubscribe();
  } finally {
    await client.close();
  }
});

Deno.test("client: leaving the loop on a persistent session acknowledges and drops buffered and late messages", async () => {
  const server = new ScriptedServer();
  const client = await connect("mqtt://scripted.invalid", {
    transport: server.open,
    clientId: "ack-leave",
    clean: false,
  });
  try {
    const sub = await client.subscribe("t", { qos: 1 });
    for (const id of [1, 2, 3]) server.send(publish(id, 1));
    for await (const msg of sub) {
      assert.equal(msg.text(), "t#1");
      server.send(publish(4, 2)); // arrives while the UNSUBSCRIBE is on its way
      break; // 1 consumed; 2 and 3 buffered
    }
    await server.until(() => server.acks().length === 4, "PUBACK 1 to 3 and PUBREC 4");
    // In arrival order (MQTT-4.6.0-2/3); the broker's window is free again.
    assert.deepEqual(server.acks(), ["puback:1", "puback:2", "puback:3", "pubrec:4"]);
  } finally {
    await client.close();
  }
});

Deno.test('client: ack "manual": ending the subscription acknowledges messages handed out and never ack()ed, and buffered ones, in order', async () => {
  const server = new ScriptedServer();
  const client = await connect("mqtt://scripted.invalid", { transport: server.open });
  try {
    const sub = await client.subscribe("m", { qos: 1, ack: "manual" });
    for (const id of [1, 2, 3]) server.send(publish(id, 1, "m"));
    const it = sub[Symbol.asyncIterator]();
    const first = (await it.next()).value!;
    (await it.next()).value!; // 2: handed out, never ack()ed
    await turn();
    assert.deepEqual(server.acks(), []);
    await sub.unsubscribe();
    await server.until(() => server.acks().length === 3, "three PUBACKs");
    assert.deepEqual(server.acks(), ["puback:1", "puback:2", "puback:3"]);
    first.ack(); // too late: does nothing
    await turn();
    assert.equal(server.acks().length, 3);
  } finally {
    await client.close();
  }
});
