/**
 * Unit tests of the session state machine: driven with packets and numeric
 * times only (no sockets, no timers).
 */
import assert from "node:assert/strict";
import type { Packet, PublishPacket, QoS, SubackReturnCode } from "../lib/codec/packet.ts";
import { ConnectionRefusedError, MqttError, ProtocolError } from "../lib/errors.ts";
import { ClientSessionState, Session } from "../lib/session/session.ts";
import type { SessionOptions } from "../lib/session/types.ts";
import { brief, connack, msg, Recorder, sessionOptions } from "./session_helpers.ts";

const enc = new TextEncoder();

const opts = sessionOptions;

function incoming(packetId: number | undefined, qos: QoS, dup = false): PublishPacket {
  const p: PublishPacket = {
    type: "publish",
    topic: "in/t",
    payload: enc.encode("x"),
    qos,
    retain: false,
    dup,
  };
  if (packetId !== undefined) p.packetId = packetId;
  return p;
}

/** A connected session: CONNECT at t=0, CONNACK at t=1; the sent log is cleared. */
function connected(
  overrides: Partial<SessionOptions> = {},
  state = new ClientSessionState(),
  sessionPresent = false,
): { session: Session; h: Recorder; state: ClientSessionState } {
  const h = new Recorder();
  const session = new Session(opts(overrides), state, h);
  session.connect(0);
  session.receive(connack(sessionPresent), 1);
  assert.equal(session.state, "connected");
  h.take();
  return { session, h, state };
}

function closeCode(h: Recorder): string | undefined {
  return h.closes[0]?.code;
}

function assertInvalidState(fn: () => void): void {
  assert.throws(fn, (e: unknown) => e instanceof MqttError && e.code === "INVALID_STATE");
}

function assertProtocolClose(h: Recorder, code: string, packetType?: string): void {
  assert.equal(h.closes.length, 1);
  const err = h.closes[0];
  assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${err}`);
  assert.equal(err.code, code);
  if (packetType !== undefined) assert.equal(err.packetType, packetType);
}

// ---------------------------------------------------------------- connect

Deno.test("connect sends CONNECT built from the options (MQTT-3.1.2-1 protocol MQTT level 4)", () => {
  const h = new Recorder();
  const will = { topic: "status/c1", payload: enc.encode("offline"), qos: 1 as QoS, retain: true };
  const password = enc.encode("pw");
  const session = new Session(
    opts({ clean: false, keepAlive: 30, username: "u", password, will }),
    new ClientSessionState(),
    h,
  );
  assert.equal(session.state, "disconnected");
  assert.equal(session.deadline, Infinity);
  session.connect(100);
  assert.equal(session.state, "connecting");
  assert.deepEqual(h.take(), [{
    type: "connect",
    protocolName: "MQTT",
    protocolLevel: 4,
    clientId: "c1",
    clean: false,
    keepAlive: 30,
    username: "u",
    password,
    will,
  }]);
  assert.equal(session.deadline, 100 + 5000);
});

Deno.test("connect without credentials or will leaves those fields out", () => {
  const h = new Recorder();
  new Session(opts(), new ClientSessionState(), h).connect(0);
  const p = h.sent[0];
  assert.equal(p.type, "connect");
  assert.ok(!("username" in p) && !("password" in p) && !("will" in p));
});

Deno.test("CONNACK accepted: connected, handler.connected gets the CONNACK", () => {
  const h = new Recorder();
  const session = new Session(opts(), new ClientSessionState(), h);
  session.connect(0);
  const ack = connack(false, 0);
  session.receive(ack, 5);
  assert.equal(session.state, "connected");
  assert.deepEqual(h.connacks, [ack]);
  assert.deepEqual(h.closes, []);
  assert.deepEqual(h.take().map((p) => p.type), ["connect"]);
});

for (const code of [1, 2, 3, 4, 5] as const) {
  Deno.test(`CONNACK refused with return code ${code} closes with ConnectionRefusedError`, () => {
    const h = new Recorder();
    const state = new ClientSessionState();
    const session = new Session(opts(), state, h);
    session.connect(0);
    session.receive(connack(false, code), 5);
    assert.equal(session.state, "disconnected");
    assert.deepEqual(h.connacks, []);
    assert.equal(h.closes.length, 1);
    const err = h.closes[0];
    assert.ok(err instanceof ConnectionRefusedError);
    assert.equal(err.code, "CONNECTION_REFUSED");
    assert.equal(err.returnCode, code);
    assert.equal(session.deadline, Infinity);
    // The state is free for the next attempt.
    new Session(opts(), state, new Recorder()).connect(6);
  });
}

Deno.test("connect timeout: no CONNACK within connectTimeout closes with CONNECT_TIMEOUT", () => {
  const h = new Recorder();
  const session = new Session(opts({ connectTimeout: 5000 }), new ClientSessionState(), h);
  session.connect(1000);
  session.tick(5999);
  assert.deepEqual(h.closes, []);
  assert.equal(session.state, "connecting");
  session.tick(6000);
  assert.equal(session.state, "disconnected");
  assert.equal(h.closes.length, 1);
  assert.equal(closeCode(h), "CONNECT_TIMEOUT");
  // A late CONNACK is ignored.
  session.receive(connack(), 6001);
  assert.deepEqual(h.connacks, []);
});

Deno.test("MQTT-3.2.0-1: a packet other than CONNACK first closes with UNEXPECTED_PACKET", () => {
  const h = new Recorder();
  const session = new Session(opts(), new ClientSessionState(), h);
  session.connect(0);
  session.receive(incoming(undefined, 0), 1);
  assert.equal(session.state, "disconnected");
  assertProtocolClose(h, "UNEXPECTED_PACKET", "publish");
  assert.deepEqual(h.delivered, []);
});

Deno.test("MQTT-3.2.2-1: session present with clean session set closes with UNEXPECTED_PACKET", () => {
  const h = new Recorder();
  const session = new Session(opts({ clean: true }), new ClientSessionState(), h);
  session.connect(0);
  session.receive(connack(true), 1);
  assert.equal(session.state, "disconnected");
  assertProtocolClose(h, "UNEXPECTED_PACKET", "connack");
});

Deno.test("invalid options are rejected with INVALID_OPTION", () => {
  for (
    const bad of [{ maxInflight: 0 }, { maxInflight: 1.5 }, { keepAlive: -1 }, { keepAlive: 65536 }]
  ) {
    assert.throws(
      () => new Session(opts(bad), new ClientSessionState(), new Recorder()),
      (e: unknown) => e instanceof MqttError && e.code === "INVALID_OPTION",
    );
  }
});

// ---------------------------------------------------------------- outgoing publish

Deno.test("QoS 0 out: PUBLISH without packet id, done() at once", () => {
  const { session, h } = connected();
  const results: unknown[] = [];
  session.publish({ ...msg("a/b", 0), retain: true }, 2, (e) => results.push(e));
  assert.deepEqual(results, [undefined]);
  assert.deepEqual(h.take(), [{
    type: "publish",
    topic: "a/b",
    payload: enc.encode("a/b"),
    qos: 0,
    retain: true,
    dup: false,
  }]);
});

Deno.test("MQTT-4.3.2-1: QoS 1 out: PUBLISH DUP=0 with a packet id, done() on PUBACK", () => {
  const { session, h, state } = connected();
  const results: unknown[] = [];
  session.publish(msg("a", 1), 2, (e) => results.push(e));
  assert.deepEqual(h.take(), [{
    type: "publish",
    topic: "a",
    payload: enc.encode("a"),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 1,
  }]);
  assert.equal(state.inflightCount, 1);
  assert.deepEqual(results, []);
  session.receive({ type: "puback", packetId: 1 }, 3);
  assert.deepEqual(results, [undefined]);
  assert.equal(state.inflightCount, 0);
  assert.deepEqual(h.take(), []);
  // A duplicate PUBACK is ignored.
  session.receive({ type: "puback", packetId: 1 }, 4);
  assert.deepEqual(results, [undefined]);
});

Deno.test("MQTT-4.3.3-1: QoS 2 out: PUBLISH, PUBREC -> PUBREL, PUBCOMP -> done()", () => {
  const { session, h, state } = connected();
  const results: unknown[] = [];
  session.publish(msg("a", 2), 2, (e) => results.push(e));
  assert.deepEqual(brief(h.take()), ["publish:1:q2:a"]);
  // PUBCOMP before PUBREC is ignored.
  session.receive({ type: "pubcomp", packetId: 1 }, 3);
  assert.deepEqual(results, []);
  session.receive({ type: "pubrec", packetId: 1 }, 4);
  assert.deepEqual(h.take(), [{ type: "pubrel", packetId: 1 }]);
  // A repeated PUBREC is answered with PUBREL again.
  session.receive({ type: "pubrec", packetId: 1 }, 5);
  assert.deepEqual(h.take(), [{ type: "pubrel", packetId: 1 }]);
  assert.deepEqual(results, []);
  assert.equal(state.inflightCount, 1);
  session.receive({ type: "pubcomp", packetId: 1 }, 6);
  assert.deepEqual(results, [undefined]);
  assert.equal(state.inflightCount, 0);
  assert.deepEqual(h.take(), []);
});

Deno.test("MQTT-4.3.3-1: a QoS 2 PUBLISH answered by PUBACK ends with a typed error and frees its slot", () => {
  // RabbitMQ takes QoS 2 as QoS 1 and answers PUBACK; the flow must not wait forever.
  const { session, h, state } = connected({ maxInflight: 1 });
  const results: unknown[] = [];
  session.publish(msg("a", 2), 2, (e) => results.push(e));
  session.publish(msg("b", 1), 2, (e) => results.push(e));
  assert.deepEqual(brief(h.take()), ["publish:1:q2:a"]);
  session.receive({ type: "puback", packetId: 1 }, 3);
  assert.equal(results.length, 1);
  assert.ok(results[0] instanceof ProtocolError);
  assert.equal(results[0].code, "UNEXPECTED_PACKET");
  // The window slot went to the waiting QoS 1 publish.
  assert.deepEqual(brief(h.take()), ["publish:2:q1:b"]);
  session.receive({ type: "puback", packetId: 2 }, 4);
  assert.deepEqual(results.slice(1), [undefined]);
  assert.equal(state.inflightCount, 0);
  // Past PUBREC a stray PUBACK changes nothing.
  session.publish(msg("c", 2), 5, (e) => results.push(e));
  h.take();
  session.receive({ type: "pubrec", packetId: 3 }, 6);
  session.receive({ type: "puback", packetId: 3 }, 6);
  assert.equal(results.length, 2);
  assert.equal(state.inflightCount, 1);
});

Deno.test("PUBREC for a QoS 1 id is ignored", () => {
  const { session, h } = connected();
  const results: unknown[] = [];
  session.publish(msg("a", 1), 2, (e) => results.push(e));
  h.take();
  session.receive({ type: "pubrec", packetId: 1 }, 3);
  assert.deepEqual(h.take(), []);
  assert.deepEqual(h.closes, []);
});

Deno.test("MQTT-4.6.0: in-flight window limit; further publishes wait FIFO and go out as slots free", () => {
  const { session, h, state } = connected({ maxInflight: 2 });
  const done: string[] = [];
  for (const t of ["m1", "m2", "m3", "m4"]) session.publish(msg(t, 1), 2, () => done.push(t));
  // QoS 0 made while others wait keeps its place in line.
  session.publish(msg("m5", 0), 2, () => done.push("m5"));
  session.publish(msg("m6", 2), 2, () => done.push("m6"));
  assert.deepEqual(brief(h.take()), ["publish:1:q1:m1", "publish:2:q1:m2"]);
  assert.equal(state.inflightCount, 2);
  assert.equal(state.pendingCount, 4);
  session.receive({ type: "puback", packetId: 2 }, 3);
  assert.deepEqual(brief(h.take()), ["publish:3:q1:m3"]);
  assert.deepEqual(done, ["m2"]);
  session.receive({ type: "puback", packetId: 1 }, 4);
  assert.deepEqual(brief(h.take()), ["publish:4:q1:m4", "publish:-:q0:m5"]);
  assert.deepEqual(done, ["m2", "m5", "m1"]);
  session.receive({ type: "puback", packetId: 3 }, 5);
  // Ids keep counting up rather than reusing the lowest free one.
  assert.deepEqual(brief(h.take()), ["publish:5:q2:m6"]);
  assert.equal(state.pendingCount, 0);
  assert.equal(state.inflightCount, 2);
});

Deno.test("MQTT-4.6.0-1: a publish made from a done() callback queues behind waiting ones", () => {
  const { session, h } = connected({ maxInflight: 1 });
  session.publish(msg("a", 1), 2, () => session.publish(msg("from-done", 1), 3, () => {}));
  session.publish(msg("b", 1), 2, () => {});
  assert.deepEqual(brief(h.take()), ["publish:1:q1:a"]);
  session.receive({ type: "puback", packetId: 1 }, 3);
  assert.deepEqual(brief(h.take()), ["publish:2:q1:b"]);
  session.receive({ type: "puback", packetId: 2 }, 4);
  assert.deepEqual(brief(h.take()), ["publish:3:q1:from-done"]);
});

Deno.test("MQTT-2.3.1-2: packet ids wrap after 65535 and skip ids still in flight, shared with SUBSCRIBE", () => {
  const { session, h, state } = connected({ maxInflight: 65535 });
  for (let i = 0; i < 65535; i++) session.publish(msg("t", 1), 2, () => {});
  const ids = h.take().map((p) => (p as PublishPacket).packetId);
  assert.equal(ids.length, 65535);
  assert.equal(ids[0], 1);
  assert.equal(ids[65534], 65535);
  assert.equal(new Set(ids).size, 65535);
  // Every id in use: a subscribe cannot get one.
  assert.throws(
    () => session.subscribe([{ filter: "x", qos: 0 }], 3, () => {}),
    (e: unknown) => e instanceof MqttError && e.code === "QUEUE_FULL",
  );
  for (let id = 1; id <= 65535; id++) {
    if (id !== 1 && id !== 3) session.receive({ type: "puback", packetId: id }, 4);
  }
  assert.equal(state.inflightCount, 2);
  session.publish(msg("t", 2), 5, () => {});
  session.subscribe([{ filter: "x", qos: 0 }], 5, () => {});
  session.unsubscribe(["x"], 5, () => {});
  assert.deepEqual(brief(h.take()), ["publish:2:q2:t", "subscribe:4", "unsubscribe:5"]);
});

// ---------------------------------------------------------------- incoming publish

Deno.test("QoS 0 in: delivered, nothing sent", () => {
  const { session, h } = connected();
  const p = incoming(undefined, 0);
  session.receive(p, 2);
  assert.deepEqual(h.delivered, [p]);
  assert.deepEqual(h.take(), []);
});

Deno.test("MQTT-4.3.2-2: QoS 1 in: delivered, then PUBACK with its id (MQTT-4.6.0-2 in order)", () => {
  const { session, h } = connected();
  session.receive(incoming(7, 1), 2);
  session.receive(incoming(3, 1), 2);
  assert.deepEqual(h.delivered.map((p) => p.packetId), [7, 3]);
  assert.deepEqual(h.take(), [{ type: "puback", packetId: 7 }, { type: "puback", packetId: 3 }]);
});

Deno.test("MQTT-4.3.3-2: QoS 2 in delivered exactly once: a DUP resend gets PUBREC but no delivery", () => {
  const { session, h, state } = connected();
  session.receive(incoming(9, 2), 2);
  assert.equal(h.delivered.length, 1);
  assert.deepEqual(h.take(), [{ type: "pubrec", packetId: 9 }]);
  assert.equal(state.incomingCount, 1);
  session.receive(incoming(9, 2, true), 3);
  assert.equal(h.delivered.length, 1);
  assert.deepEqual(h.take(), [{ type: "pubrec", packetId: 9 }]);
  session.receive({ type: "pubrel", packetId: 9 }, 4);
  assert.deepEqual(h.take(), [{ type: "pubcomp", packetId: 9 }]);
  assert.equal(state.incomingCount, 0);
  // After PUBREL the id is free: a PUBLISH with it is a new message.
  session.receive(incoming(9, 2), 5);
  assert.equal(h.delivered.length, 2);
});

Deno.test("MQTT-4.3.3-2: PUBREL for an unknown id is answered with PUBCOMP", () => {
  const { session, h } = connected();
  session.receive({ type: "pubrel", packetId: 42 }, 2);
  assert.deepEqual(h.take(), [{ type: "pubcomp", packetId: 42 }]);
  assert.deepEqual(h.closes, []);
});

// ---------------------------------------------------------------- subscribe / unsubscribe

Deno.test("MQTT-3.8.4-5: SUBSCRIBE -> SUBACK gives the return codes in filter order", () => {
  const { session, h, state } = connected();
  const results: [unknown, SubackReturnCode[] | undefined][] = [];
  const requests = [{ filter: "a/+", qos: 1 as QoS }, { filter: "b/#", qos: 2 as QoS }];
  session.subscribe(requests, 2, (e, codes) => results.push([e, codes as SubackReturnCode[]]));
  assert.deepEqual(h.take(), [{ type: "subscribe", packetId: 1, subscriptions: requests }]);
  assert.equal(state.requestCount, 1);
  session.receive({ type: "suback", packetId: 1, returnCodes: [1, 0x80] }, 3);
  assert.deepEqual(results, [[undefined, [1, 0x80]]]);
  assert.equal(state.requestCount, 0);
});

Deno.test("UNSUBSCRIBE -> UNSUBACK calls done()", () => {
  const { session, h } = connected();
  const results: unknown[] = [];
  session.unsubscribe(["a/+", "b"], 2, (e) => results.push(e));
  assert.deepEqual(h.take(), [{ type: "unsubscribe", packetId: 1, filters: ["a/+", "b"] }]);
  session.receive({ type: "unsuback", packetId: 1 }, 3);
  assert.deepEqual(results, [undefined]);
});

Deno.test("MQTT-3.8.4-5: SUBACK with a return code count not matching the request closes", () => {
  const { session, h } = connected();
  const results: unknown[] = [];
  session.subscribe([{ filter: "a", qos: 0 }, { filter: "b", qos: 0 }], 2, (e) => results.push(e));
  session.receive({ type: "suback", packetId: 1, returnCodes: [0] }, 3);
  assert.equal(session.state, "disconnected");
  assertProtocolClose(h, "UNEXPECTED_PACKET", "suback");
  // The pending subscribe fails with the same error.
  assert.deepEqual(results, [h.closes[0]]);
});

Deno.test("SUBACK answering an UNSUBSCRIBE id, or UNSUBACK a SUBSCRIBE id, closes", () => {
  {
    const { session, h } = connected();
    session.unsubscribe(["a"], 2, () => {});
    session.receive({ type: "suback", packetId: 1, returnCodes: [0] }, 3);
    assertProtocolClose(h, "UNEXPECTED_PACKET", "suback");
  }
  {
    const { session, h } = connected();
    session.subscribe([{ filter: "a", qos: 0 }], 2, () => {});
    session.receive({ type: "unsuback", packetId: 1 }, 3);
    assertProtocolClose(h, "UNEXPECTED_PACKET", "unsuback");
  }
});

Deno.test("MQTT-3.8.3-3 / MQTT-3.10.3-2: empty SUBSCRIBE or UNSUBSCRIBE throws", () => {
  const { session, h } = connected();
  assert.throws(() => session.subscribe([], 2, () => {}), ProtocolError);
  assert.throws(() => session.unsubscribe([], 2, () => {}), ProtocolError);
  assert.deepEqual(h.take(), []);
});

Deno.test("publish and subscribe while connecting are queued and sent after CONNACK", () => {
  const h = new Recorder();
  const state = new ClientSessionState();
  const session = new Session(opts(), state, h);
  session.connect(0);
  h.take();
  const done: string[] = [];
  session.publish(msg("p0", 0), 1, () => done.push("p0"));
  session.publish(msg("p1", 1), 1, () => done.push("p1"));
  session.subscribe([{ filter: "s", qos: 1 }], 1, () => done.push("s"));
  session.unsubscribe(["u"], 1, () => done.push("u"));
  assert.deepEqual(h.take(), []);
  assert.equal(state.pendingCount, 2);
  session.receive(connack(), 2);
  // Subscriptions first (they reserved ids 1 and 2), then the publishes in order.
  assert.deepEqual(brief(h.take()), [
    "subscribe:1",
    "unsubscribe:2",
    "publish:-:q0:p0",
    "publish:3:q1:p1",
  ]);
  assert.deepEqual(done, ["p0"]);
});

// ---------------------------------------------------------------- keep-alive

Deno.test("MQTT-3.1.2-23: PINGREQ after keepAlive seconds with nothing sent", () => {
  const { session, h } = connected({ keepAlive: 10, pingTimeout: 3000 });
  // CONNECT was sent at 0, CONNACK received at 1.
  assert.equal(session.deadline, 10_000);
  session.tick(9_999);
  assert.deepEqual(h.take(), []);
  session.tick(10_000);
  assert.deepEqual(h.take(), [{ type: "pingreq" }]);
  assert.equal(session.deadline, 13_000);
  session.receive({ type: "pingresp" }, 10_500);
  assert.deepEqual(h.closes, []);
  assert.equal(session.deadline, 20_000);
  session.tick(20_000);
  assert.deepEqual(h.take(), [{ type: "pingreq" }]);
});

Deno.test("MQTT-3.1.2-23: no PINGREQ while packets flow both ways", () => {
  const { session, h } = connected({ keepAlive: 10 });
  for (let t = 4_000; t <= 40_000; t += 4_000) {
    session.publish(msg("a", 1), t, () => {});
    session.receive({ type: "puback", packetId: t / 4_000 }, t + 1);
    session.tick(t + 2);
  }
  assert.ok(!h.take().some((p) => p.type === "pingreq"));
  assert.equal(session.deadline, 50_000);
});

Deno.test("keep-alive probes a silent server with PINGREQ even while we keep sending (half-open link)", () => {
  const { session, h } = connected({ keepAlive: 10, pingTimeout: 3000 });
  for (let t = 2_000; t < 11_000; t += 2_000) {
    session.publish(msg("a", 0), t, () => {});
    session.tick(t);
  }
  assert.ok(!h.take().some((p) => p.type === "pingreq"));
  // Nothing received since CONNACK at 1: probe at 10_001.
  assert.equal(session.deadline, 10_001);
  session.tick(10_001);
  assert.deepEqual(h.take(), [{ type: "pingreq" }]);
  session.publish(msg("a", 0), 12_000, () => {});
  session.tick(13_001);
  assert.equal(closeCode(h), "KEEPALIVE_TIMEOUT");
});

Deno.test("ping timeout: no packet within pingTimeout after PINGREQ closes with KEEPALIVE_TIMEOUT", () => {
  const { session, h } = connected({ keepAlive: 10, pingTimeout: 3000 });
  const results: unknown[] = [];
  session.subscribe([{ filter: "a", qos: 0 }], 5_000, (e) => results.push(e));
  session.tick(15_000);
  assert.deepEqual(brief(h.take()), ["subscribe:1", "pingreq"]);
  session.tick(17_999);
  assert.deepEqual(h.closes, []);
  session.tick(18_000);
  assert.equal(session.state, "disconnected");
  assert.equal(h.closes.length, 1);
  assert.equal(closeCode(h), "KEEPALIVE_TIMEOUT");
  assert.deepEqual(results, [h.closes[0]]);
  assert.equal(session.deadline, Infinity);
});

Deno.test("any packet, not only PINGRESP, answers an outstanding PINGREQ", () => {
  const { session, h } = connected({ keepAlive: 10, pingTimeout: 3000 });
  session.tick(10_000);
  assert.deepEqual(h.take(), [{ type: "pingreq" }]);
  session.receive(incoming(undefined, 0), 11_000);
  session.tick(13_000);
  assert.deepEqual(h.closes, []);
  assert.equal(session.deadline, 20_000);
});

Deno.test("paused reads suspend the ping timeout; resuming restarts it", () => {
  const { session, h } = connected({ keepAlive: 10, pingTimeout: 3000 });
  session.tick(10_000);
  assert.deepEqual(h.take(), [{ type: "pingreq" }]);
  session.setReadPaused(true, 11_000);
  // Only the MQTT-3.1.2-23 send interval remains due.
  assert.equal(session.deadline, 20_000);
  session.tick(15_000);
  assert.deepEqual(h.closes, []);
  session.setReadPaused(false, 16_000);
  assert.equal(session.deadline, 19_000);
  session.tick(18_999);
  assert.deepEqual(h.closes, []);
  session.tick(19_000);
  assert.equal(closeCode(h), "KEEPALIVE_TIMEOUT");
});

Deno.test("MQTT-3.1.2-23: while paused, PINGREQ is still sent every keepAlive", () => {
  const { session, h } = connected({ keepAlive: 10, pingTimeout: 3000 });
  session.setReadPaused(true, 5_000);
  session.tick(10_000);
  session.tick(20_000);
  assert.deepEqual(brief(h.take()), ["pingreq", "pingreq"]);
  assert.deepEqual(h.closes, []);
});

Deno.test("keepAlive 0 disables keep-alive", () => {
  const { session, h } = connected({ keepAlive: 0 });
  assert.equal(session.deadline, Infinity);
  session.tick(1e9);
  assert.deepEqual(h.take(), []);
  assert.deepEqual(h.closes, []);
});

// ---------------------------------------------------------------- disconnect

Deno.test("MQTT-3.14.4-2: disconnect waits for in-flight QoS 1/2, then sends DISCONNECT last", () => {
  const { session, h, state } = connected({ maxInflight: 2 });
  session.publish(msg("a", 1), 2, () => {});
  session.publish(msg("b", 2), 2, () => {});
  session.publish(msg("c", 1), 2, () => {}); // waits for a slot
  h.take();
  session.disconnect(3);
  assert.equal(session.state, "disconnecting");
  assert.deepEqual(h.take(), []);
  assertInvalidState(() => session.publish(msg("x", 0), 3, () => {}));
  assertInvalidState(() => session.subscribe([{ filter: "x", qos: 0 }], 3, () => {}));
  assertInvalidState(() => session.disconnect(3));
  session.receive({ type: "puback", packetId: 1 }, 4);
  assert.deepEqual(brief(h.take()), ["publish:3:q1:c"]);
  session.receive({ type: "pubrec", packetId: 2 }, 5);
  session.receive({ type: "pubcomp", packetId: 2 }, 6);
  assert.deepEqual(brief(h.take()), ["pubrel:2"]);
  assert.deepEqual(h.closes, []);
  // Incoming messages are still handled while disconnecting.
  session.receive(incoming(5, 1), 6);
  assert.deepEqual(brief(h.take()), ["puback:5"]);
  session.receive({ type: "puback", packetId: 3 }, 7);
  assert.deepEqual(h.take(), [{ type: "disconnect" }]);
  assert.equal(session.state, "disconnected");
  assert.deepEqual(h.closes, [undefined]);
  assert.equal(state.inflightCount, 0);
  // The transport closing afterwards is a no-op.
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "closed"), 8);
  assert.deepEqual(h.closes, [undefined]);
});

Deno.test("disconnect with nothing in flight sends DISCONNECT at once", () => {
  const { session, h } = connected();
  session.disconnect(2);
  assert.deepEqual(h.take(), [{ type: "disconnect" }]);
  assert.equal(session.state, "disconnected");
  assert.deepEqual(h.closes, [undefined]);
  assert.equal(session.deadline, Infinity);
});

// ---------------------------------------------------------------- illegal states and packets

Deno.test("commands in a wrong state throw INVALID_STATE", () => {
  const h = new Recorder();
  const session = new Session(opts(), new ClientSessionState(), h);
  assertInvalidState(() => session.publish(msg("a", 0), 0, () => {}));
  assertInvalidState(() => session.subscribe([{ filter: "a", qos: 0 }], 0, () => {}));
  assertInvalidState(() => session.unsubscribe(["a"], 0, () => {}));
  assertInvalidState(() => session.disconnect(0));
  session.connect(0);
  assertInvalidState(() => session.connect(0));
  assertInvalidState(() => session.disconnect(0));
  session.receive(connack(), 1);
  assertInvalidState(() => session.connect(1));
});

Deno.test("two live sessions cannot share one SessionState", () => {
  const state = new ClientSessionState();
  const first = new Session(opts(), state, new Recorder());
  first.connect(0);
  const second = new Session(opts(), state, new Recorder());
  assertInvalidState(() => second.connect(0));
  first.connectionLost(new MqttError("CONNECTION_CLOSED", "gone"), 1);
  second.connect(2);
  assert.equal(second.state, "connecting");
});

for (
  const packet of [
    {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "x",
      clean: true,
      keepAlive: 0,
    },
    { type: "subscribe", packetId: 1, subscriptions: [{ filter: "a", qos: 0 }] },
    { type: "unsubscribe", packetId: 1, filters: ["a"] },
    { type: "pingreq" },
    { type: "disconnect" },
    { type: "connack", sessionPresent: false, returnCode: 0 },
  ] as Packet[]
) {
  Deno.test(`unexpected ${packet.type.toUpperCase()} from the server closes with UNEXPECTED_PACKET`, () => {
    const { session, h } = connected();
    session.receive(packet, 2);
    assert.equal(session.state, "disconnected");
    assertProtocolClose(h, "UNEXPECTED_PACKET", packet.type);
    assert.deepEqual(h.take(), []);
  });
}

Deno.test("acks for unknown packet ids are ignored", () => {
  const { session, h } = connected();
  session.receive({ type: "puback", packetId: 99 }, 2);
  session.receive({ type: "pubrec", packetId: 99 }, 2);
  session.receive({ type: "pubcomp", packetId: 99 }, 2);
  session.receive({ type: "suback", packetId: 99, returnCodes: [0] }, 2);
  session.receive({ type: "unsuback", packetId: 99 }, 2);
  session.receive({ type: "pingresp" }, 2);
  assert.deepEqual(h.take(), []);
  assert.deepEqual(h.closes, []);
  assert.equal(session.state, "connected");
});

// ---------------------------------------------------------------- connection loss and resume

/**
 * First connection: A q1 (id 1), B q2 (id 2, past PUBREC), C q2 (id 3),
 * D q1 (id 4) in flight; E q1 waiting (window 4); incoming QoS 2 id 7 not
 * yet released; then the link dies.
 */
function interrupted(): { state: ClientSessionState; done: string[]; subFailures: unknown[] } {
  const { session, h, state } = connected({ clean: false, maxInflight: 4 });
  const done: string[] = [];
  for (const [t, q] of [["A", 1], ["B", 2], ["C", 2], ["D", 1], ["E", 1]] as const) {
    session.publish(msg(t, q), 2, (e) => done.push(e ? `${t}:${e.code}` : t));
  }
  session.receive({ type: "pubrec", packetId: 2 }, 3);
  session.receive(incoming(7, 2), 3);
  const subFailures: unknown[] = [];
  session.subscribe([{ filter: "s", qos: 1 }], 3, (e) => subFailures.push(e));
  assert.deepEqual(brief(h.take()), [
    "publish:1:q1:A",
    "publish:2:q2:B",
    "publish:3:q2:C",
    "publish:4:q1:D",
    "pubrel:2",
    "pubrec:7",
    "subscribe:5",
  ]);
  const lost = new MqttError("CONNECTION_CLOSED", "link cut");
  session.connectionLost(lost, 4);
  assert.equal(session.state, "disconnected");
  assert.equal(session.deadline, Infinity);
  assert.deepEqual(subFailures, [lost]);
  assert.equal(state.inflightCount, 4);
  assert.equal(state.pendingCount, 1);
  assert.deepEqual(done, []);
  // Packets still buffered by the driver after the loss are ignored.
  session.receive({ type: "puback", packetId: 1 }, 5);
  assert.deepEqual(done, []);
  assertInvalidState(() => session.publish(msg("x", 1), 5, () => {}));
  return { state, done, subFailures };
}

/** A new Session over `state`: CONNECT at 10, CONNACK at 11; returns what CONNACK made it send. */
function reconnect(
  state: ClientSessionState,
  sessionPresent: boolean,
  overrides: Partial<SessionOptions> = { clean: false, maxInflight: 4 },
): { session: Session; h: Recorder; resent: string[] } {
  const h = new Recorder();
  const session = new Session(opts(overrides), state, h);
  session.connect(10);
  assert.equal(h.take()[0].type, "connect");
  session.receive(connack(sessionPresent), 11);
  assert.equal(session.state, "connected");
  return { session, h, resent: brief(h.take()) };
}

Deno.test("MQTT-4.4.0-1: resume with session present re-sends PUBLISH DUP=1 and PUBREL in original order", () => {
  const { state, done } = interrupted();
  const { session, h, resent } = reconnect(state, true);
  // MQTT-4.6.0-1, MQTT-3.3.1-1: original ids and order, PUBLISH with DUP=1;
  // the window is still full, so E keeps waiting.
  assert.deepEqual(resent, [
    "publish:1:q1:dup:A",
    "pubrel:2",
    "publish:3:q2:dup:C",
    "publish:4:q1:dup:D",
  ]);
  // The broker still has incoming id 7: its DUP resend is not delivered again.
  session.receive(incoming(7, 2, true), 12);
  assert.equal(h.delivered.length, 0);
  assert.deepEqual(brief(h.take()), ["pubrec:7"]);
  session.receive({ type: "pubcomp", packetId: 2 }, 13);
  // Id 5 went to the failed SUBSCRIBE; ids keep counting up.
  assert.deepEqual(brief(h.take()), ["publish:6:q1:E"]);
  session.receive({ type: "puback", packetId: 1 }, 14);
  session.receive({ type: "pubrec", packetId: 3 }, 14);
  assert.deepEqual(brief(h.take()), ["pubrel:3"]);
  session.receive({ type: "pubcomp", packetId: 3 }, 15);
  session.receive({ type: "puback", packetId: 4 }, 15);
  session.receive({ type: "puback", packetId: 6 }, 15);
  assert.deepEqual(done, ["B", "A", "C", "D", "E"]);
  assert.equal(state.inflightCount + state.pendingCount, 0);
});

Deno.test("resume without session present: fresh DUP=0 flows, QoS 2 past PUBREC too, incoming ids cleared", () => {
  const { state, done } = interrupted();
  const { session, h, resent } = reconnect(state, false);
  // The broker lost its session, so every flow starts again as new, B too although it had
  // reached PUBREC: Mosquitto forwards QoS 2 only on PUBREL, and B died with the session.
  assert.deepEqual(resent, [
    "publish:1:q1:A",
    "publish:2:q2:B",
    "publish:3:q2:C",
    "publish:4:q1:D",
  ]);
  assert.deepEqual(done, []);
  assert.equal(state.incomingCount, 0);
  // The broker forgot id 7; a PUBLISH with it now is a new message.
  session.receive(incoming(7, 2), 12);
  assert.equal(h.delivered.length, 1);
  h.take();
  session.receive({ type: "pubrec", packetId: 2 }, 13);
  assert.deepEqual(h.take(), [{ type: "pubrel", packetId: 2 }]);
  session.receive({ type: "pubcomp", packetId: 2 }, 13);
  // B's slot goes to E, waiting since the first connection.
  assert.deepEqual(brief(h.take()), ["publish:6:q1:E"]);
  session.receive({ type: "pubrec", packetId: 3 }, 14);
  session.receive({ type: "pubcomp", packetId: 3 }, 14);
  for (const id of [1, 4, 6]) session.receive({ type: "puback", packetId: id }, 15);
  assert.deepEqual(done, ["B", "C", "A", "D", "E"]);
});

Deno.test("resume: a publish made from handler.connected() queues behind the re-sent ones", () => {
  const { state } = interrupted();
  const h = new Recorder();
  const session = new Session(opts({ clean: false, maxInflight: 10 }), state, h);
  h.onConnected = () => session.publish(msg("F", 1), 11, () => {});
  session.connect(10);
  h.take();
  session.receive(connack(true), 11);
  assert.deepEqual(brief(h.take()), [
    "publish:1:q1:dup:A",
    "pubrel:2",
    "publish:3:q2:dup:C",
    "publish:4:q1:dup:D",
    "publish:6:q1:E",
    "publish:7:q1:F",
  ]);
});

Deno.test("a publish queued while connecting survives a lost connection and goes out on the next", () => {
  const state = new ClientSessionState();
  const h = new Recorder();
  const first = new Session(opts({ clean: false }), state, h);
  first.connect(0);
  const done: unknown[] = [];
  first.publish(msg("a", 1), 1, (e) => done.push(e));
  first.connectionLost(new MqttError("CONNECTION_CLOSED", "refused"), 2);
  assert.equal(state.pendingCount, 1);
  const { session, resent } = reconnect(state, false);
  assert.deepEqual(resent, ["publish:1:q1:a"]);
  session.receive({ type: "puback", packetId: 1 }, 12);
  assert.deepEqual(done, [undefined]);
});

Deno.test("abandon fails every pending publish, subscribe and unsubscribe callback", () => {
  const { session, state } = connected({ maxInflight: 1 });
  const results: string[] = [];
  session.publish(msg("a", 1), 2, (e) => results.push(`a:${e?.code}`));
  session.publish(msg("b", 2), 2, (e) => results.push(`b:${e?.code}`));
  session.subscribe([{ filter: "s", qos: 0 }], 2, (e) => results.push(`s:${e?.code}`));
  session.unsubscribe(["u"], 2, (e) => results.push(`u:${e?.code}`));
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "gone"), 3);
  state.abandon(new MqttError("ABORTED", "closed for good"));
  assert.deepEqual(results, [
    "s:CONNECTION_CLOSED",
    "u:CONNECTION_CLOSED",
    "a:ABORTED",
    "b:ABORTED",
  ]);
  assert.equal(state.inflightCount + state.pendingCount + state.requestCount, 0);
});
