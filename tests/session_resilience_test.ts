/**
 * Unit tests of the session's resilience rules: topic re-registration after
 * a CONNACK without session present, and the bounded offline queue. Driven
 * with packets and numeric times only (no sockets, no timers).
 */
import assert from "node:assert/strict";
import type { Packet, QoS, SubackReturnCode } from "../lib/codec/packet.ts";
import { MqttError, SubscribeError } from "../lib/errors.ts";
import { RESUBSCRIBE_BATCH, Session } from "../lib/session/session.ts";
import { OutgoingPublish } from "../lib/session/state.ts";
import { ClientSessionState } from "../lib/session/client_state.ts";
import type { SessionOptions } from "../lib/session/types.ts";
import {
  brief as briefPackets,
  connack,
  msg,
  Recorder,
  sessionOptions,
} from "./session_helpers.ts";

function opts(overrides: Partial<SessionOptions> = {}): SessionOptions {
  return sessionOptions({ clean: false, ...overrides });
}

function brief(packets: Packet[]): string[] {
  return briefPackets(packets, { filters: true });
}

function start(
  state: ClientSessionState,
  overrides: Partial<SessionOptions> = {},
  now = 0,
): { session: Session; h: Recorder } {
  const h = new Recorder();
  const session = new Session(opts(overrides), state, h);
  session.connect(now);
  h.take();
  return { session, h };
}

/** Subscribes and answers with a SUBACK carrying `codes`. */
function subscribe(
  session: Session,
  h: Recorder,
  filters: [string, QoS][],
  codes: SubackReturnCode[],
): SubackReturnCode[] | undefined {
  let got: SubackReturnCode[] | undefined;
  session.subscribe(filters.map(([filter, qos]) => ({ filter, qos })), 1, (err, c) => {
    assert.equal(err, undefined);
    got = c as SubackReturnCode[] | undefined;
  });
  const [sent] = h.take();
  assert.equal(sent.type, "subscribe");
  session.receive({ type: "suback", packetId: sent.packetId, returnCodes: codes }, 1);
  return got;
}

/** Session 1 subscribed to a/#, b/+ (b refused), c; has publishes in flight and waiting; link lost. */
function live(): { state: ClientSessionState; done: string[] } {
  const state = new ClientSessionState();
  const { session, h } = start(state);
  session.receive(connack(false), 1);
  subscribe(session, h, [["a/#", 1], ["b/+", 2], ["c", 2]], [1, 0x80, 1]);
  const done: string[] = [];
  // maxInflight 10 is not reached: P1 and P2 are in flight.
  session.publish(msg("P1", 1), 2, (e) => done.push(`P1:${e?.code}`));
  session.publish(msg("P2", 2), 2, (e) => done.push(`P2:${e?.code}`));
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "link cut"), 3);
  return { state, done };
}

Deno.test("SUBACK grants are remembered in subscribe order, 0x80 codes are not", () => {
  const { state } = live();
  assert.deepEqual([...state.subscriptions], [["a/#", 1], ["c", 1]]);
});

Deno.test("re-registration: session present 0 sends SUBSCRIBE before resent and queued publishes", () => {
  const { state, done } = live();
  // Offline: the client queues directly into the state.
  state.enqueue(new OutgoingPublish(msg("Q", 1), (e) => done.push(`Q:${e?.code}`)));
  const { session, h } = start(state, {}, 10);
  session.publish(msg("R", 0), 10, (e) => done.push(`R:${e?.code}`)); // while connecting
  session.receive(connack(false), 11);
  assert.deepEqual(brief(h.take()), [
    "subscribe:4:a/#@1,c@1",
    "publish:2:q1:P1",
    "publish:3:q2:P2",
    "publish:5:q1:Q",
    "publish:-:q0:R",
  ]);
  // The re-registration SUBACK is handled inside: no callback, no failure report.
  session.receive({ type: "suback", packetId: 4, returnCodes: [1, 0] }, 12);
  assert.deepEqual(h.failed, []);
  assert.deepEqual([...state.subscriptions], [["a/#", 1], ["c", 0]]);
  assert.equal(state.requestCount, 0);
  assert.equal(session.state, "connected");
  assert.deepEqual(done, ["R:undefined"]);
});

Deno.test("re-registration: session present 1 re-sends no SUBSCRIBE (the broker kept them)", () => {
  const { state } = live();
  const { session, h } = start(state, {}, 10);
  session.receive(connack(true), 11);
  assert.deepEqual(brief(h.take()), ["publish:2:q1:dup:P1", "publish:3:q2:dup:P2"]);
});

Deno.test("re-registration: clean session (always session present 0) re-subscribes too", () => {
  const state = new ClientSessionState();
  const first = start(state, { clean: true });
  first.session.receive(connack(false), 1);
  subscribe(first.session, first.h, [["x", 0]], [0]);
  first.session.connectionLost(new MqttError("CONNECTION_CLOSED", "cut"), 2);
  const { session, h } = start(state, { clean: true }, 3);
  session.receive(connack(false), 4);
  assert.deepEqual(brief(h.take()), ["subscribe:2:x@0"]);
});

Deno.test("re-registration: many subscriptions go out in order in batches", () => {
  const state = new ClientSessionState();
  const first = start(state);
  first.session.receive(connack(false), 1);
  const n = RESUBSCRIBE_BATCH * 2 + 3;
  const filters: [string, QoS][] = [];
  for (let i = 0; i < n; i++) filters.push([`t/${i}`, 1]);
  subscribe(first.session, first.h, filters, filters.map(() => 1));
  first.session.connectionLost(new MqttError("CONNECTION_CLOSED", "cut"), 2);
  const { session, h } = start(state, {}, 3);
  session.receive(connack(false), 4);
  const sent = h.take();
  assert.equal(sent.length, 3);
  const order = sent.flatMap((p) => p.type === "subscribe" ? p.subscriptions : []);
  assert.deepEqual(order.map((s) => s.filter), filters.map(([f]) => f));
  for (const p of sent) {
    session.receive({
      type: "suback",
      packetId: (p as { packetId: number }).packetId,
      returnCodes: (p as { subscriptions: unknown[] }).subscriptions.map(() => 1 as const),
    }, 5);
  }
  assert.equal(state.requestCount, 0);
  assert.equal(state.resubscribing, 0);
});

Deno.test("resubscribeFailed: a 0x80 on re-registration is reported and the filter forgotten", () => {
  const { state } = live();
  const { session, h } = start(state, {}, 10);
  session.receive(connack(false), 11);
  h.take();
  session.receive({ type: "suback", packetId: 4, returnCodes: [0x80, 1] }, 12);
  assert.deepEqual(h.failed, ["a/#:SUBSCRIBE_FAILED"]);
  assert.ok(h.errors[0] instanceof SubscribeError && h.errors[0].filter === "a/#");
  assert.deepEqual([...state.subscriptions], [["c", 1]]);
  assert.equal(session.state, "connected");
});

Deno.test("resubscribeFailed: MQTT-3.8.4-5 a SUBACK of the wrong length on re-registration reports every filter and closes", () => {
  const { state } = live();
  const { session, h } = start(state, {}, 10);
  session.receive(connack(false), 11);
  h.take();
  session.receive({ type: "suback", packetId: 4, returnCodes: [1] }, 12);
  assert.deepEqual(h.failed, ["a/#:UNEXPECTED_PACKET", "c:UNEXPECTED_PACKET"]);
  assert.equal(h.closes[0]?.code, "UNEXPECTED_PACKET");
  assert.equal(session.state, "disconnected");
  assert.equal(state.subscriptions.size, 0);
});

Deno.test("re-registration whose SUBACK was lost is repeated even when the broker reports a session", () => {
  const { state } = live();
  const second = start(state, {}, 10);
  second.session.receive(connack(false), 11);
  second.session.connectionLost(new MqttError("CONNECTION_CLOSED", "cut again"), 12);
  assert.equal(state.resubscribing, 1);
  const { session, h } = start(state, {}, 13);
  session.receive(connack(true), 14);
  const sent = brief(h.take());
  assert.equal(sent[0], "subscribe:5:a/#@1,c@1");
  assert.deepEqual(sent.slice(1), ["publish:2:q1:dup:P1", "publish:3:q2:dup:P2"]);
  session.receive({ type: "suback", packetId: 5, returnCodes: [1, 1] }, 15);
  assert.equal(state.resubscribing, 0);
});

Deno.test("UNSUBSCRIBE removes filters from re-registration, also before its UNSUBACK", () => {
  const { state } = live();
  const { session, h } = start(state, {}, 10);
  session.receive(connack(true), 11);
  h.take();
  session.unsubscribe(["a/#"], 12, () => {});
  assert.deepEqual([...state.subscriptions], [["c", 1]]);
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "cut before UNSUBACK"), 13);
  const third = start(state, {}, 14);
  third.session.receive(connack(false), 15);
  assert.equal(brief(third.h.take())[0], "subscribe:5:c@1");
});

Deno.test("an UNSUBSCRIBE sent before the SUBACK of the same filter keeps it forgotten", () => {
  const state = new ClientSessionState();
  const { session, h } = start(state);
  session.receive(connack(false), 1);
  session.subscribe([{ filter: "x", qos: 1 }, { filter: "y", qos: 1 }], 2, () => {});
  session.unsubscribe(["x"], 2, () => {});
  const [sub, unsub] = h.take();
  session.receive({
    type: "suback",
    packetId: (sub as { packetId: number }).packetId,
    returnCodes: [1, 1],
  }, 3);
  session.receive({ type: "unsuback", packetId: (unsub as { packetId: number }).packetId }, 3);
  assert.deepEqual([...state.subscriptions], [["y", 1]]);
});

Deno.test("an UNSUBSCRIBE while a re-registration SUBACK is due keeps the filter forgotten", () => {
  const { state } = live();
  const { session, h } = start(state, {}, 10);
  session.receive(connack(false), 11);
  h.take();
  session.unsubscribe(["c"], 12, () => {});
  session.receive({ type: "suback", packetId: 4, returnCodes: [1, 0x80] }, 13);
  assert.deepEqual(h.failed, []);
  assert.deepEqual([...state.subscriptions], [["a/#", 1]]);
});

// ---- offline queue bounds ----

function queued(state: ClientSessionState, topic: string, bytes: number, log: string[]): void {
  state.enqueue(
    new OutgoingPublish(
      { topic, payload: new Uint8Array(bytes), qos: 1, retain: false },
      (e) => log.push(`${topic}:${e?.code}`),
    ),
  );
}

function assertQueueFull(fn: () => void): void {
  assert.throws(fn, (e: unknown) => e instanceof MqttError && e.code === "QUEUE_FULL");
}

Deno.test("queue bound by count: reject throws QUEUE_FULL and leaves the queue intact", () => {
  const state = new ClientSessionState({ maxQueued: 2 });
  const log: string[] = [];
  queued(state, "a", 1, log);
  queued(state, "b", 1, log);
  assertQueueFull(() => queued(state, "c", 1, log));
  assert.equal(state.pendingCount, 2);
  assert.equal(state.queuedBytes, 4);
  assert.deepEqual(log, []);
  assert.equal(state.peekWaiting()?.message.topic, "a");
});

Deno.test("queue bound by bytes counts topic UTF-8 and payload bytes", () => {
  const state = new ClientSessionState({ maxQueuedBytes: 20 });
  const log: string[] = [];
  queued(state, "é", 8, log); // 2 + 8
  queued(state, "ab", 8, log); // 2 + 8
  assert.equal(state.queuedBytes, 20);
  assertQueueFull(() => queued(state, "c", 0, log));
  assert.equal(state.pendingCount, 2);
  state.shiftWaiting();
  assert.equal(state.queuedBytes, 10);
  queued(state, "c", 9, log);
  assert.equal(state.queuedBytes, 20);
});

Deno.test("drop-oldest fails the oldest waiting publishes with QUEUE_FULL and accepts the new one", () => {
  const state = new ClientSessionState({
    maxQueued: 3,
    maxQueuedBytes: 100,
    overflow: "drop-oldest",
  });
  const log: string[] = [];
  queued(state, "a", 9, log);
  queued(state, "b", 9, log);
  queued(state, "c", 9, log);
  queued(state, "d", 9, log); // count: drops a
  assert.deepEqual(log, ["a:QUEUE_FULL"]);
  queued(state, "e", 89, log); // bytes: 90 fits only after dropping b and c
  assert.deepEqual(log, ["a:QUEUE_FULL", "b:QUEUE_FULL", "c:QUEUE_FULL"]);
  assert.deepEqual([...drain(state)], ["d", "e"]);
  // A publish larger than the whole byte bound is rejected without dropping anything.
  queued(state, "f", 1, log);
  assertQueueFull(() => queued(state, "g", 100, log));
  assert.equal(state.pendingCount, 1);
});

function* drain(state: ClientSessionState): Generator<string> {
  for (let e = state.shiftWaiting(); e !== undefined; e = state.shiftWaiting()) {
    yield e.message.topic;
  }
}

Deno.test("Session.publish throws QUEUE_FULL synchronously and the session keeps working", () => {
  const state = new ClientSessionState({ maxQueued: 1 });
  const { session, h } = start(state, { maxInflight: 1 });
  session.receive(connack(false), 1);
  const done: string[] = [];
  session.publish(msg("a", 1), 2, (e) => done.push(`a:${e?.code}`)); // in flight
  session.publish(msg("b", 1), 2, (e) => done.push(`b:${e?.code}`)); // waiting
  assertQueueFull(() => session.publish(msg("c", 1), 2, (e) => done.push(`c:${e?.code}`)));
  assertQueueFull(() => session.publish(msg("d", 0), 2, (e) => done.push(`d:${e?.code}`)));
  assert.deepEqual(brief(h.take()), ["publish:1:q1:a"]);
  session.receive({ type: "puback", packetId: 1 }, 3);
  assert.deepEqual(brief(h.take()), ["publish:2:q1:b"]);
  session.receive({ type: "puback", packetId: 2 }, 4);
  assert.deepEqual(done, ["a:undefined", "b:undefined"]);
  assert.equal(state.pendingCount + state.inflightCount + state.queuedBytes, 0);
});

Deno.test("publish while connecting is bounded by the same queue", () => {
  const state = new ClientSessionState({ maxQueued: 1 });
  const { session } = start(state);
  session.publish(msg("a", 1), 1, () => {});
  assertQueueFull(() => session.publish(msg("b", 1), 1, () => {}));
  assert.equal(state.pendingCount, 1);
});

Deno.test("invalid queue bounds are rejected with INVALID_OPTION", () => {
  for (const o of [{ maxQueued: -1 }, { maxQueuedBytes: 1.5 }, { overflow: "drop" as "reject" }]) {
    assert.throws(
      () => new ClientSessionState(o),
      (e: unknown) => e instanceof MqttError && e.code === "INVALID_OPTION",
    );
  }
});
