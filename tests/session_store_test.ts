/**
 * The session over a store: every change is recorded before the packet that
 * depends on it, a new process resumes from a FileStore, and clean sessions
 * discard the previous session state (MQTT-3.1.2-6). Packets and times only.
 */
import assert from "node:assert/strict";
import type { PublishPacket, QoS } from "../lib/codec/packet.ts";
import { MqttError } from "../lib/errors.ts";
import { Session } from "../lib/session/session.ts";
import { OutgoingPublish } from "../lib/session/state.ts";
import { ClientSessionState } from "../lib/session/client_state.ts";
import type { SessionOptions } from "../lib/session/types.ts";
import { brief, msg as message, Recorder, sessionOptions } from "./session_helpers.ts";
import { FileStore, MemoryStore, type PublishRecord } from "../lib/store/mod.ts";

/** A MemoryStore that logs each call into a log shared with the handler. */
class LoggingStore extends MemoryStore {
  constructor(readonly log: string[]) {
    super();
  }
  override putInflight(packetId: number, record: PublishRecord, dequeued: boolean): void {
    this.log.push(`store:putInflight:${packetId}${dequeued ? ":dequeued" : ""}`);
    super.putInflight(packetId, record, dequeued);
  }
  override markReleased(packetId: number): void {
    this.log.push(`store:markReleased:${packetId}`);
    super.markReleased(packetId);
  }
  override removeInflight(packetId: number): void {
    this.log.push(`store:removeInflight:${packetId}`);
    super.removeInflight(packetId);
  }
  override pushWaiting(record: PublishRecord): void {
    this.log.push(`store:pushWaiting:${record.topic}`);
    super.pushWaiting(record);
  }
  override shiftWaiting(): void {
    this.log.push(`store:shiftWaiting`);
    super.shiftWaiting();
  }
  override addIncoming(packetId: number): void {
    this.log.push(`store:addIncoming:${packetId}`);
    super.addIncoming(packetId);
  }
  override removeIncoming(packetId: number): void {
    this.log.push(`store:removeIncoming:${packetId}`);
    super.removeIncoming(packetId);
  }
  override clearIncoming(): void {
    this.log.push(`store:clearIncoming`);
    super.clearIncoming();
  }
  override clear(): void {
    this.log.push(`store:clear`);
    super.clear();
  }
}

const enc = new TextEncoder();

function opts(overrides: Partial<SessionOptions> = {}): SessionOptions {
  return sessionOptions({ clean: false, ...overrides });
}

function msg(topic: string, qos: QoS) {
  return message(topic, qos, `${topic}-payload`);
}

function incoming(packetId: number, dup = false): PublishPacket {
  return {
    type: "publish",
    topic: "in",
    payload: enc.encode("x"),
    qos: 2,
    retain: false,
    dup,
    packetId,
  };
}

function start(
  state: ClientSessionState,
  sessionPresent: boolean | undefined,
  overrides: Partial<SessionOptions> = {},
  log?: string[],
): { session: Session; h: Recorder } {
  const h = new Recorder(log);
  const session = new Session(opts(overrides), state, h);
  session.connect(0);
  if (sessionPresent !== undefined) {
    session.receive({ type: "connack", sessionPresent, returnCode: 0 }, 1);
  }
  brief(h.take());
  log?.splice(0);
  return { session, h };
}

Deno.test("each change reaches the store before the packet that depends on it (MQTT-4.3.3-2)", () => {
  const log: string[] = [];
  const state = new ClientSessionState({ store: new LoggingStore(log) });
  const { session } = start(state, false, { maxInflight: 1 }, log);
  session.publish(msg("a", 2), 2, () => {});
  session.publish(msg("b", 1), 2, () => {});
  session.receive({ type: "pubrec", packetId: 1 }, 3);
  session.receive({ type: "pubcomp", packetId: 1 }, 3);
  session.receive(incoming(7), 4);
  session.receive({ type: "pubrel", packetId: 7 }, 4);
  session.receive({ type: "puback", packetId: 2 }, 5);
  assert.deepEqual(log, [
    "store:putInflight:1",
    "send:publish:1:q2:a",
    "store:pushWaiting:b",
    "store:markReleased:1",
    "send:pubrel:1",
    "store:removeInflight:1",
    "store:putInflight:2:dequeued",
    "send:publish:2:q1:b",
    "store:addIncoming:7",
    "send:pubrec:7",
    "store:removeIncoming:7",
    "send:pubcomp:7",
    "store:removeInflight:2",
  ]);
});

Deno.test("drop-oldest records the dropped publish leaving the stored queue", () => {
  const log: string[] = [];
  const store = new LoggingStore(log);
  const state = new ClientSessionState({ store, maxQueued: 1, overflow: "drop-oldest" });
  state.enqueue(new OutgoingPublish(msg("a", 1), () => {}));
  state.enqueue(new OutgoingPublish(msg("b", 1), () => {}));
  assert.deepEqual(log, ["store:pushWaiting:a", "store:shiftWaiting", "store:pushWaiting:b"]);
  assert.deepEqual(store.load().waiting.map((r) => r.topic), ["b"]);
});

Deno.test("a rejected publish leaves the store untouched", () => {
  const log: string[] = [];
  const state = new ClientSessionState({ store: new LoggingStore(log), maxQueued: 1 });
  state.enqueue(new OutgoingPublish(msg("a", 1), () => {}));
  assert.throws(() => state.enqueue(new OutgoingPublish(msg("b", 1), () => {})));
  assert.deepEqual(log, ["store:pushWaiting:a"]);
});

Deno.test("process restart with a FileStore: resume re-sends DUP PUBLISH and PUBREL in order, no QoS 2 twice", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-session-store-" });
  const path = `${dir}/c1.journal`;
  try {
    // ---- process A ----
    const storeA = await FileStore.open(path);
    const a = new ClientSessionState({ store: storeA });
    const { session: sa, h: ha } = start(a, false, { maxInflight: 3 });
    sa.publish(msg("P1", 1), 2, () => {});
    sa.publish(msg("P2", 2), 2, () => {});
    sa.publish(msg("P3", 2), 2, () => {});
    sa.publish(msg("P4", 1), 2, () => {}); // window full: waits
    sa.publish(msg("P5", 0), 2, () => {}); // waits behind P4
    sa.receive({ type: "pubrec", packetId: 2 }, 3); // P2 released
    sa.receive(incoming(7), 4); // delivered, PUBREL still due
    sa.receive(incoming(8), 4);
    sa.receive({ type: "pubrel", packetId: 8 }, 4); // released: forgotten
    assert.equal(ha.delivered.length, 2);
    // The process dies here: no abandon, no DISCONNECT. Closing the store
    // only releases the descriptors and the lock, as the kernel would for a
    // dead process; every record was already written.
    storeA.close();

    // ---- process B: same clientId and store ----
    const storeB = await FileStore.open(path);
    const b = new ClientSessionState({ store: storeB });
    assert.equal(b.inflightCount, 3);
    assert.equal(b.pendingCount, 2);
    assert.equal(b.incomingCount, 1);
    const h = new Recorder();
    const sb = new Session(opts({ maxInflight: 3 }), b, h);
    sb.connect(10);
    brief(h.take());
    sb.receive({ type: "connack", sessionPresent: true, returnCode: 0 }, 11);
    // MQTT-4.4.0-1, MQTT-4.6.0-1, MQTT-3.3.1-1: original ids and order, DUP=1.
    assert.deepEqual(brief(h.take()), ["publish:1:q1:dup:P1", "pubrel:2", "publish:3:q2:dup:P3"]);
    // MQTT-4.3.3-2: the broker re-sends id 7; B remembers it was delivered by A.
    sb.receive(incoming(7, true), 12);
    assert.equal(h.delivered.length, 0);
    assert.deepEqual(brief(h.take()), ["pubrec:7"]);
    sb.receive({ type: "pubrel", packetId: 7 }, 12);
    assert.deepEqual(brief(h.take()), ["pubcomp:7"]);
    // Id 8 was released in A: a new PUBLISH with it is a new message.
    sb.receive(incoming(8), 12);
    assert.equal(h.delivered.length, 1);
    sb.receive({ type: "pubrel", packetId: 8 }, 12);
    brief(h.take());
    sb.receive({ type: "pubcomp", packetId: 2 }, 13);
    assert.deepEqual(brief(h.take()), ["publish:4:q1:P4", "publish:-:q0:P5"]);
    sb.receive({ type: "puback", packetId: 1 }, 14);
    sb.receive({ type: "pubrec", packetId: 3 }, 14);
    sb.receive({ type: "pubcomp", packetId: 3 }, 14);
    sb.receive({ type: "puback", packetId: 4 }, 14);
    assert.equal(b.inflightCount + b.pendingCount + b.incomingCount, 0);
    storeB.close();

    // ---- process C: nothing left to resume ----
    const storeC = await FileStore.open(path);
    const loaded = storeC.load();
    storeC.close();
    assert.deepEqual([loaded.inflight, loaded.waiting, loaded.incoming], [[], [], []]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("restart with a broker that lost the session: stored publishes go out as fresh flows", () => {
  const store = new MemoryStore();
  const a = new ClientSessionState({ store });
  const { session: sa } = start(a, false, { maxInflight: 2 });
  sa.publish(msg("P1", 1), 2, () => {});
  sa.publish(msg("P2", 2), 2, () => {});
  sa.publish(msg("P3", 1), 2, () => {});
  sa.receive({ type: "pubrec", packetId: 2 }, 3);
  sa.receive(incoming(7), 3);
  const b = new ClientSessionState({ store });
  assert.equal(b.incomingCount, 1);
  const h = new Recorder();
  const sb = new Session(opts({ maxInflight: 2 }), b, h);
  sb.connect(10);
  brief(h.take());
  sb.receive({ type: "connack", sessionPresent: false, returnCode: 0 }, 11);
  // P1 starts again (DUP=0), and so does P2 although it was past PUBREC: the broker may
  // forward QoS 2 only on PUBREL (Mosquitto does) and lost it with the session.
  assert.deepEqual(brief(h.take()), ["publish:1:q1:P1", "publish:2:q2:P2"]);
  const s = store.load();
  assert.deepEqual(s.inflight.map((r) => `${r.packetId}:${r.topic}:${r.released}`), [
    "1:P1:false",
    "2:P2:false",
  ]);
  assert.deepEqual(s.waiting.map((r) => r.topic), ["P3"]);
  assert.deepEqual(s.incoming, []);
});

Deno.test("abandon keeps stored records for a persistent session and clears them after a clean one", () => {
  for (const clean of [false, true]) {
    const store = new MemoryStore();
    const state = new ClientSessionState({ store });
    const { session } = start(state, false, { clean });
    const errors: (string | undefined)[] = [];
    session.publish(msg("a", 1), 2, (e) => errors.push(e?.code));
    session.connectionLost(new MqttError("CONNECTION_CLOSED", "gone"), 3);
    state.abandon(new MqttError("ABORTED", "closed"));
    assert.deepEqual(errors, ["ABORTED"]);
    assert.equal(store.load().inflight.length, clean ? 0 : 1, `clean=${clean}`);
  }
  // Never connected: nothing says the session is clean, so a previous process's records stay.
  const store = new MemoryStore();
  store.pushWaiting(msg("old", 1));
  new ClientSessionState({ store }).abandon(new MqttError("ABORTED", "connect failed"));
  assert.equal(store.load().waiting.length, 1);
});

Deno.test("MQTT-3.1.2-6: clean session discards a previous process's in-flight and incoming ids, keeps queued publishes", () => {
  const store = new MemoryStore();
  store.putInflight(1, msg("old-inflight", 1), false);
  store.putInflight(2, msg("old-released", 2), false);
  store.markReleased(2);
  store.pushWaiting(msg("old-queued", 1));
  store.addIncoming(7);
  const state = new ClientSessionState({ store });
  const h = new Recorder();
  const session = new Session(opts({ clean: true }), state, h);
  session.connect(0);
  // This process's own publish made while connecting is kept.
  const done: (string | undefined)[] = [];
  session.publish(msg("mine", 1), 0, (e) => done.push(e?.code));
  brief(h.take());
  session.receive({ type: "connack", sessionPresent: false, returnCode: 0 }, 1);
  assert.deepEqual(brief(h.take()), ["publish:3:q1:old-queued", "publish:4:q1:mine"]);
  const s = store.load();
  assert.deepEqual(s.inflight.map((r) => r.topic), ["old-queued", "mine"]);
  assert.deepEqual(s.incoming, []);
  // Id 7 is a new message now.
  session.receive(incoming(7), 2);
  assert.equal(h.delivered.length, 1);
});

Deno.test("clean session keeps this process's own in-flight publishes as fresh flows", () => {
  const store = new MemoryStore();
  const state = new ClientSessionState({ store });
  const first = start(state, false, { clean: true });
  const done: (string | undefined)[] = [];
  first.session.publish(msg("a", 1), 2, (e) => done.push(e?.code));
  first.session.connectionLost(new MqttError("CONNECTION_CLOSED", "cut"), 3);
  const h = new Recorder();
  const session = new Session(opts({ clean: true }), state, h);
  session.connect(4);
  brief(h.take());
  session.receive({ type: "connack", sessionPresent: false, returnCode: 0 }, 5);
  assert.deepEqual(brief(h.take()), ["publish:1:q1:a"]);
  session.receive({ type: "puback", packetId: 1 }, 6);
  assert.deepEqual(done, [undefined]);
  assert.equal(store.load().inflight.length, 0);
});

/** A store whose next write of a given kind fails, as a full disk would make it. */
class FailingStore extends MemoryStore {
  failPut = false;
  override putInflight(packetId: number, record: PublishRecord, dequeued: boolean): void {
    if (this.failPut) throw new MqttError("STORE_ERROR", "disk full");
    super.putInflight(packetId, record, dequeued);
  }
}

Deno.test("a store write that fails leaves the session state unchanged and settles what completed", () => {
  const store = new FailingStore();
  const state = new ClientSessionState({ store });
  const { session, h } = start(state, false, { maxInflight: 1 });
  const results: (string | undefined)[] = [];
  session.publish(msg("a", 1), 2, (e) => results.push(e?.code ?? "a"));
  session.publish(msg("b", 1), 2, (e) => results.push(e?.code ?? "b"));
  brief(h.take());
  store.failPut = true;
  // PUBACK completes a; moving b into flight fails in the store: a is still settled, b waits.
  assert.throws(() => session.receive({ type: "puback", packetId: 1 }, 3), /disk full/);
  assert.deepEqual(results, ["a"]);
  assert.equal(state.inflightCount, 0);
  assert.equal(state.pendingCount, 1);
  assert.deepEqual(store.load().waiting.map((r) => r.topic), ["b"]);
  // A publish the store refused is not in flight either: it never goes out.
  const refusing = new FailingStore();
  refusing.failPut = true;
  const fresh = new ClientSessionState({ store: refusing });
  const second = start(fresh, false, { maxInflight: 5 });
  assert.throws(() => second.session.publish(msg("c", 1), 4, () => {}), /disk full/);
  assert.equal(fresh.inflightCount, 0);
  assert.deepEqual(brief(second.h.take()), []);
});
