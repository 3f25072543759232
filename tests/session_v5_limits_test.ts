/**
 * Session rules at MQTT 5.0 that hold across connections and for every
 * packet the client sends: Session Present checked against Clean Start,
 * publishes resent after a reconnect checked against the new connection's
 * limits, SUBSCRIBE/UNSUBSCRIBE within the server's Maximum Packet Size, and
 * the DISCONNECT reason sent before closing over a packet we refuse.
 */
import assert from "node:assert/strict";
import type { ConnackPacket, Packet } from "../lib/codec/packet.ts";
import { encodePacket } from "../lib/codec/encode.ts";
import type { ConnackProperties } from "../lib/codec/properties.ts";
import { MqttError, ProtocolError } from "../lib/errors.ts";
import { ClientSessionState, Session } from "../lib/session/session.ts";
import type { SessionOptions } from "../lib/session/types.ts";
import { msg, Recorder, sessionOptions } from "./session_helpers.ts";

function v5(overrides: Partial<SessionOptions> = {}): SessionOptions {
  return sessionOptions({ protocolVersion: 5, ...overrides });
}

function connack5(properties?: ConnackProperties, sessionPresent = false): ConnackPacket {
  const p = { type: "connack", sessionPresent, reasonCode: 0 } as ConnackPacket;
  if (properties !== undefined) p.properties = properties;
  return p;
}

function disconnects(packets: Packet[]): (number | undefined)[] {
  return packets.flatMap((p) => p.type === "disconnect" ? [p.reasonCode] : []);
}

// ---------------------------------------------------------------- Session Present

Deno.test("5.0 MQTT-3.2.2-4: Session Present 1 after Clean Start 1 sends DISCONNECT 0x82 and closes", () => {
  const h = new Recorder();
  const session = new Session(v5({ clean: true }), new ClientSessionState(), h);
  session.connect(0);
  h.take();
  session.receive(connack5(undefined, true), 1);
  assert.equal(session.state, "disconnected");
  assert.deepEqual(disconnects(h.take()), [0x82]);
  assert.equal(h.closes.length, 1);
  assert.equal(h.closes[0]?.code, "UNEXPECTED_PACKET");
  assert.match(h.closes[0]!.message, /MQTT-3\.2\.2-4/);
});

Deno.test("5.0 MQTT-3.2.2-4: Clean Start 0 takes Session Present 1 (the session may be another process's)", () => {
  const h = new Recorder();
  const session = new Session(v5({ clean: false }), new ClientSessionState(), h);
  session.connect(0);
  session.receive(connack5(undefined, true), 1);
  assert.equal(session.state, "connected");
});

// ---------------------------------------------------------------- resent publishes

/** A QoS `qos` publish left in flight by a connection that then dropped; the session reconnecting. */
function inflightThenReconnect(
  message: ReturnType<typeof msg> & { retain?: boolean },
): { session: Session; h: Recorder; results: unknown[] } {
  const h = new Recorder();
  const session = new Session(v5({ clean: false }), new ClientSessionState(), h);
  session.connect(0);
  session.receive(connack5(), 1);
  const results: unknown[] = [];
  session.publish(message, 2, (e) => results.push(e ?? "ok"));
  assert.equal(h.sent.filter((p) => p.type === "publish").length, 1);
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "gone"), 3);
  session.connect(4);
  h.take();
  return { session, h, results };
}

for (const [sessionPresent, what] of [[false, "without"], [true, "with"]] as const) {
  Deno.test(
    `5.0 MQTT-3.2.2-11: a QoS 2 publish in flight, resent ${what} session to a server of Maximum ` +
      "QoS 1, fails with QOS_NOT_SUPPORTED instead",
    () => {
      const { session, h, results } = inflightThenReconnect(msg("a", 2));
      session.receive(connack5({ maximumQoS: 1 }, sessionPresent), 5);
      assert.deepEqual(h.take().filter((p) => p.type === "publish"), []);
      assert.equal(results.length, 1);
      assert.equal((results[0] as MqttError).code, "QOS_NOT_SUPPORTED");
      // Its packet id is free again and nothing is left to resend.
      const again = inflightThenReconnectCount(session, h);
      assert.equal(again, 0);
    },
  );
}

/** Drops and resumes once more; the number of PUBLISH resent. */
function inflightThenReconnectCount(session: Session, h: Recorder): number {
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "gone"), 10);
  session.connect(11);
  session.receive(connack5(), 12);
  return h.take().filter((p) => p.type === "publish").length;
}

Deno.test("5.0 MQTT-3.2.2-14: a retained publish in flight is not resent to a server without Retain Available", () => {
  const { session, h, results } = inflightThenReconnect({ ...msg("a", 1), retain: true });
  session.receive(connack5({ retainAvailable: false }), 5);
  assert.deepEqual(h.take().filter((p) => p.type === "publish"), []);
  assert.equal((results[0] as MqttError).code, "RETAIN_NOT_SUPPORTED");
});

Deno.test("5.0 MQTT-3.2.2-15: a publish in flight larger than the new server's Maximum Packet Size fails with PACKET_TOO_LARGE", () => {
  const { session, h, results } = inflightThenReconnect(msg("a", 1, "x".repeat(100)));
  session.receive(connack5({ maximumPacketSize: 64 }), 5);
  assert.deepEqual(h.take().filter((p) => p.type === "publish"), []);
  assert.equal((results[0] as MqttError).code, "PACKET_TOO_LARGE");
});

Deno.test("5.0: resent publishes the new limits allow still go, in order, around one refused", () => {
  const h = new Recorder();
  const session = new Session(v5({ clean: false }), new ClientSessionState(), h);
  session.connect(0);
  session.receive(connack5(), 1);
  const results: string[] = [];
  for (const [topic, qos] of [["a", 1], ["b", 2], ["c", 1]] as const) {
    session.publish(msg(topic, qos), 2, (e) => results.push(`${topic}:${e?.code ?? "ok"}`));
  }
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "gone"), 3);
  session.connect(4);
  h.take();
  session.receive(connack5({ maximumQoS: 1 }, true), 5);
  const resent = h.take().flatMap((p) => p.type === "publish" ? [`${p.topic}:${p.dup}`] : []);
  assert.deepEqual(resent, ["a:true", "c:true"]);
  assert.deepEqual(results, ["b:QOS_NOT_SUPPORTED"]);
});

// ---------------------------------------------------------------- SUBSCRIBE / UNSUBSCRIBE size

const LONG_FILTER = `long/${"x".repeat(80)}`;

Deno.test("5.0 MQTT-3.2.2-15: a SUBSCRIBE above the server's Maximum Packet Size throws PACKET_TOO_LARGE, nothing sent", () => {
  const h = new Recorder();
  const session = new Session(v5(), new ClientSessionState(), h);
  session.connect(0);
  session.receive(connack5({ maximumPacketSize: 64 }), 1);
  h.take();
  let called = false;
  assert.throws(
    () => session.subscribe([{ filter: LONG_FILTER, qos: 1 }], 2, () => called = true),
    (e: unknown) => e instanceof ProtocolError && e.code === "PACKET_TOO_LARGE",
  );
  assert.throws(
    () => session.unsubscribe([LONG_FILTER], 2, () => called = true),
    (e: unknown) => e instanceof ProtocolError && e.code === "PACKET_TOO_LARGE",
  );
  assert.deepEqual(h.take(), []);
  assert.equal(called, false);
  // A short one still goes, with the first packet id (none was used up).
  session.subscribe([{ filter: "a", qos: 1 }], 3, () => {});
  const [sub] = h.take();
  assert.equal(sub.type === "subscribe" && sub.packetId, 1);
});

Deno.test("5.0 MQTT-3.2.2-15: a SUBSCRIBE made while connecting, too large for the CONNACK's maximum, fails and is not sent", () => {
  const h = new Recorder();
  const session = new Session(v5(), new ClientSessionState(), h);
  session.connect(0);
  h.take();
  const results: string[] = [];
  session.subscribe([{ filter: LONG_FILTER, qos: 1 }], 1, (e) => results.push(e?.code ?? "ok"));
  session.unsubscribe([LONG_FILTER], 1, (e) => results.push(e?.code ?? "ok"));
  session.subscribe([{ filter: "a", qos: 1 }], 1, (e) => results.push(e?.code ?? "ok"));
  session.receive(connack5({ maximumPacketSize: 64 }), 2);
  assert.deepEqual(results, ["PACKET_TOO_LARGE", "PACKET_TOO_LARGE"]);
  assert.deepEqual(h.take().map((p) => p.type), ["subscribe"]);
  assert.equal(session.state, "connected");
});

// ---------------------------------------------------------------- DISCONNECT reasons

for (
  const [error, reason] of [
    [new ProtocolError("INVALID_FLAGS", "bad flags", "publish"), 0x81],
    [new ProtocolError("DUPLICATE_PROPERTY", "twice", "publish"), 0x82],
    [new ProtocolError("PACKET_TOO_LARGE", "too large", "publish"), 0x95],
  ] as const
) {
  Deno.test(
    `5.0 section 4.13: an incoming packet refused with ${error.code} sends DISCONNECT ` +
      `0x${reason.toString(16)} before closing`,
    () => {
      const h = new Recorder();
      const session = new Session(v5(), new ClientSessionState(), h);
      session.connect(0);
      session.receive(connack5(), 1);
      h.take();
      assert.equal(session.refuseIncoming(error, 2), true);
      assert.deepEqual(disconnects(h.take()), [reason]);
      assert.equal(session.state, "disconnected");
      assert.deepEqual(h.closes, [error]);
    },
  );
}

Deno.test("3.1.1: an incoming packet refused is left to the driver (no DISCONNECT has a reason there)", () => {
  const h = new Recorder();
  const session = new Session(sessionOptions(), new ClientSessionState(), h);
  session.connect(0);
  session.receive({ type: "connack", sessionPresent: false, returnCode: 0 }, 1);
  h.take();
  assert.equal(
    session.refuseIncoming(new ProtocolError("INVALID_FLAGS", "x", "publish"), 2),
    false,
  );
  assert.deepEqual(h.take(), []);
  assert.equal(session.state, "connected");
});

Deno.test("5.0 section 4.13: a packet a server never sends (SUBSCRIBE) gets DISCONNECT 0x82", () => {
  const h = new Recorder();
  const session = new Session(v5(), new ClientSessionState(), h);
  session.connect(0);
  session.receive(connack5(), 1);
  h.take();
  session.receive({ type: "subscribe", packetId: 1, subscriptions: [{ filter: "a", qos: 0 }] }, 2);
  assert.deepEqual(disconnects(h.take()), [0x82]);
  assert.equal(h.closes[0]?.code, "UNEXPECTED_PACKET");
});

/** A state holding `filters` (subscribed and granted QoS 1 on an earlier connection). */
function subscribedState(filters: string[]): ClientSessionState {
  const state = new ClientSessionState();
  const h = new Recorder();
  const session = new Session(v5({ clean: false }), state, h);
  session.connect(0);
  session.receive(connack5(), 1);
  session.subscribe(filters.map((filter) => ({ filter, qos: 1 })), 2, () => {});
  const sent = h.take().find((p) => p.type === "subscribe")!;
  session.receive(
    { type: "suback", packetId: sent.packetId, reasonCodes: filters.map(() => 1 as const) },
    3,
  );
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "gone"), 4);
  return state;
}

Deno.test("5.0 MQTT-3.2.2-15: re-registration after a reconnect splits its SUBSCRIBE to fit the new server's Maximum Packet Size", () => {
  const filters = ["f/".padEnd(30, "a"), "f/".padEnd(30, "b"), "f/".padEnd(30, "c")];
  const state = subscribedState(filters);
  const h = new Recorder();
  const session = new Session(v5({ clean: false }), state, h);
  session.connect(10);
  h.take();
  session.receive(connack5({ maximumPacketSize: 80 }), 11);
  const subs = h.take().flatMap((p) => p.type === "subscribe" ? [p] : []);
  assert.deepEqual(subs.flatMap((p) => p.subscriptions.map((s) => s.filter)), filters);
  assert.ok(subs.length > 1, "split");
  for (const p of subs) {
    assert.ok(encodePacket(p, { protocolVersion: 5 }).length <= 80);
  }
  assert.deepEqual(h.failed, []);
});

Deno.test("5.0 MQTT-3.2.2-15: a remembered filter too large on its own for the new server is reported, not sent; the rest are", () => {
  const long = "f/".padEnd(100, "x");
  const state = subscribedState(["a", long, "b"]);
  const h = new Recorder();
  const session = new Session(v5({ clean: false }), state, h);
  session.connect(10);
  h.take();
  session.receive(connack5({ maximumPacketSize: 60 }), 11);
  const filters = h.take().flatMap((p) =>
    p.type === "subscribe" ? p.subscriptions.map((s) => s.filter) : []
  );
  assert.deepEqual(filters, ["a", "b"]);
  assert.deepEqual(h.failed, [`${long}:PACKET_TOO_LARGE`]);
  assert.equal(state.subscriptions.has(long), false);
  assert.equal(session.state, "connected");
});
