/**
 * Unit tests of the session at MQTT 5.0: CONNECT and CONNACK with
 * properties, the server's limits, reason codes, DISCONNECT both ways. Driven
 * with packets and numeric times only (no sockets, no timers).
 */
import assert from "node:assert/strict";
import type { ConnackPacket, Packet, PublishPacket, QoS } from "../lib/codec/packet.ts";
import type { ConnackProperties } from "../lib/codec/properties.ts";
import {
  ConnectionRefusedError,
  MqttError,
  PublishRejectedError,
  ServerDisconnectError,
  type SubscribeError,
} from "../lib/errors.ts";
import { MemoryStore } from "../lib/store/memory_store.ts";
import { ClientSessionState, Session } from "../lib/session/session.ts";
import type { SessionOptions } from "../lib/session/types.ts";
import { msg, Recorder, sessionOptions } from "./session_helpers.ts";

function v5(overrides: Partial<SessionOptions> = {}): SessionOptions {
  return sessionOptions({ protocolVersion: 5, ...overrides });
}

function connack5(
  properties?: ConnackProperties,
  reasonCode = 0,
  sessionPresent = false,
): ConnackPacket {
  const p = { type: "connack", sessionPresent, reasonCode } as ConnackPacket;
  if (properties !== undefined) p.properties = properties;
  return p;
}

/** A 5.0 session connected with a CONNACK carrying `properties`; the sent log is cleared. */
function connected(
  properties?: ConnackProperties,
  overrides: Partial<SessionOptions> = {},
  state = new ClientSessionState(),
): { session: Session; h: Recorder; state: ClientSessionState } {
  const h = new Recorder();
  const session = new Session(v5(overrides), state, h);
  session.connect(0);
  session.receive(connack5(properties), 1);
  assert.equal(session.state, "connected");
  h.take();
  return { session, h, state };
}

function types(packets: Packet[]): string[] {
  return packets.map((p) => p.type);
}

// ---------------------------------------------------------------- CONNECT / CONNACK

Deno.test("5.0 CONNECT: protocol level 5 with the CONNECT properties (MQTT-3.1.2-1)", () => {
  const h = new Recorder();
  const properties = {
    sessionExpiryInterval: 60,
    receiveMaximum: 5,
    userProperties: [["a", "1"], ["a", "2"]] as [string, string][],
  };
  new Session(v5({ properties }), new ClientSessionState(), h).connect(0);
  const p = h.sent[0];
  assert.equal(p.type, "connect");
  assert.equal(p.protocolLevel, 5);
  assert.deepEqual(p.properties, properties);
});

Deno.test("3.1.1 CONNECT never carries properties, even when given", () => {
  const h = new Recorder();
  const options = sessionOptions({ properties: { sessionExpiryInterval: 60 } });
  new Session(options, new ClientSessionState(), h).connect(0);
  const p = h.sent[0];
  assert.equal(p.type, "connect");
  assert.equal(p.protocolLevel, 4);
  assert.ok(!("properties" in p));
});

Deno.test("5.0 CONNACK refused (0x87) closes with ConnectionRefusedError carrying reasonCode and reasonString", () => {
  const h = new Recorder();
  const session = new Session(v5(), new ClientSessionState(), h);
  session.connect(0);
  session.receive(connack5({ reasonString: "go away" }, 0x87), 1);
  assert.equal(session.state, "disconnected");
  const err = h.closes[0];
  assert.ok(err instanceof ConnectionRefusedError);
  assert.equal(err.code, "CONNECTION_REFUSED");
  assert.equal(err.reasonCode, 0x87);
  assert.equal(err.reasonString, "go away");
  assert.equal(err.returnCode, 5); // the 3.1.1 code meaning the same: not authorized
  assert.match(err.message, /not authorized \(go away\)/);
});

Deno.test("5.0 CONNECT refused by a 3.1.1-only server (3.1.1 CONNACK 0x01): says the broker does not speak MQTT 5.0", () => {
  const h = new Recorder();
  const session = new Session(v5(), new ClientSessionState(), h);
  session.connect(0);
  session.receive({ type: "connack", sessionPresent: false, returnCode: 1 }, 1);
  const err = h.closes[0];
  assert.ok(err instanceof ConnectionRefusedError);
  assert.equal(err.reasonCode, 0x84);
  assert.match(err.message, /does not speak MQTT 5\.0/);
});

Deno.test("5.0 CONNACK 0x84 unsupported protocol version: the same clear error", () => {
  const h = new Recorder();
  const session = new Session(v5(), new ClientSessionState(), h);
  session.connect(0);
  session.receive(connack5(undefined, 0x84), 1);
  const err = h.closes[0];
  assert.ok(err instanceof ConnectionRefusedError);
  assert.equal(err.reasonCode, 0x84);
  assert.match(err.message, /does not speak MQTT 5\.0/);
});

Deno.test("MQTT-3.2.2-21 / MQTT-3.1.2-21: the Server Keep Alive replaces ours", () => {
  const { session, h } = connected({ serverKeepAlive: 2 }, { keepAlive: 10 });
  // CONNECT went out at 0: the next PINGREQ is due 2 s later, not 10 s.
  assert.equal(session.deadline, 2000);
  session.tick(2000);
  assert.deepEqual(types(h.take()), ["pingreq"]);
});

Deno.test("Server Keep Alive holds for its connection only: the next CONNECT sends ours again", () => {
  const state = new ClientSessionState();
  const { session } = connected({ serverKeepAlive: 2 }, { keepAlive: 10 }, state);
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "gone"), 5);
  const h = new Recorder();
  const next = new Session(v5({ keepAlive: 10 }), state, h);
  next.connect(10);
  next.receive(connack5(), 11);
  assert.equal(next.deadline, 10 + 10_000);
  assert.equal((h.sent[0] as { keepAlive: number }).keepAlive, 10);
});

Deno.test("session.limits: the CONNACK's limits at 5.0, the defaults under 3.1.1", () => {
  const { session } = connected({
    receiveMaximum: 3,
    maximumQoS: 1,
    retainAvailable: false,
    maximumPacketSize: 100,
    topicAliasMaximum: 7,
    assignedClientIdentifier: "given",
  });
  assert.deepEqual(session.limits, {
    receiveMaximum: 3,
    maximumQoS: 1,
    retainAvailable: false,
    maximumPacketSize: 100,
    topicAliasMaximum: 7,
    serverKeepAlive: undefined,
    assignedClientIdentifier: "given",
  });
  const h = new Recorder();
  const old = new Session(sessionOptions(), new ClientSessionState(), h);
  old.connect(0);
  old.receive({ type: "connack", sessionPresent: false, returnCode: 0 }, 1);
  assert.equal(old.limits.receiveMaximum, 65535);
  assert.equal(old.limits.maximumQoS, 2);
});

// ---------------------------------------------------------------- flow control

Deno.test("MQTT-3.3.4-7: never more unacknowledged QoS 1/2 PUBLISH than the server's Receive Maximum", () => {
  const { session, h } = connected({ receiveMaximum: 2 }, { maxInflight: 10 });
  const done: string[] = [];
  for (let i = 1; i <= 4; i++) {
    session.publish(msg(`t/${i}`, 1), 2, (e) => done.push(`${i}:${e?.code ?? "ok"}`));
  }
  assert.deepEqual(types(h.take()), ["publish", "publish"]);
  session.receive({ type: "puback", packetId: 1, reasonCode: 0 }, 3);
  assert.deepEqual(types(h.take()), ["publish"]);
  // MQTT-3.3.4-7: a PUBACK with a failure code frees the slot as well.
  session.receive({ type: "puback", packetId: 2, reasonCode: 0x87 }, 4);
  assert.deepEqual(types(h.take()), ["publish"]);
});

Deno.test("MQTT-3.3.4-7: maxInflight still bounds the window when below the server's Receive Maximum", () => {
  const { session, h } = connected({ receiveMaximum: 50 }, { maxInflight: 1 });
  session.publish(msg("a", 1), 2, () => {});
  session.publish(msg("b", 1), 2, () => {});
  assert.deepEqual(types(h.take()), ["publish"]);
});

Deno.test("MQTT-3.2.2-11: a publish above the server's Maximum QoS rejects with QOS_NOT_SUPPORTED, nothing sent", () => {
  const { session, h } = connected({ maximumQoS: 0 });
  const errors: (MqttError | undefined)[] = [];
  session.publish(msg("a", 1), 2, (e) => errors.push(e));
  assert.equal(errors[0]?.code, "QOS_NOT_SUPPORTED");
  assert.deepEqual(h.take(), []);
  session.publish(msg("a", 0), 3, (e) => errors.push(e));
  assert.equal(errors[1], undefined);
  assert.deepEqual(types(h.take()), ["publish"]);
});

Deno.test("MQTT-3.2.2-14: Retain Available 0: a retained publish rejects with RETAIN_NOT_SUPPORTED, nothing sent", () => {
  const { session, h } = connected({ retainAvailable: false });
  const errors: (MqttError | undefined)[] = [];
  session.publish({ ...msg("a", 0), retain: true }, 2, (e) => errors.push(e));
  assert.equal(errors[0]?.code, "RETAIN_NOT_SUPPORTED");
  assert.deepEqual(h.take(), []);
});

Deno.test("MQTT-3.2.2-15: a PUBLISH above the server's Maximum Packet Size rejects with PACKET_TOO_LARGE, nothing sent", () => {
  // PUBLISH QoS 1 to "t": 1 + 1 (remaining length) + 3 (topic) + 2 (id) + 1 (property length) + payload.
  const { session, h } = connected({ maximumPacketSize: 20 });
  const errors: (MqttError | undefined)[] = [];
  session.publish(msg("t", 1, "x".repeat(12)), 2, (e) => errors.push(e)); // 20 bytes: fits
  session.publish(msg("t", 1, "x".repeat(13)), 2, (e) => errors.push(e)); // 21 bytes
  assert.deepEqual(types(h.take()), ["publish"]);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]?.code, "PACKET_TOO_LARGE");
});

Deno.test("server limits apply to publishes queued while connecting, before anything is written", () => {
  const h = new Recorder();
  const session = new Session(v5(), new ClientSessionState(), h);
  session.connect(0);
  const errors: string[] = [];
  session.publish(msg("a", 2), 0, (e) => errors.push(`a:${e?.code ?? "ok"}`));
  session.publish(msg("b", 1), 0, (e) => errors.push(`b:${e?.code ?? "ok"}`));
  h.take();
  session.receive(connack5({ maximumQoS: 1 }), 1);
  assert.deepEqual(errors, ["a:QOS_NOT_SUPPORTED"]);
  const sent = h.take() as PublishPacket[];
  assert.deepEqual(sent.map((p) => p.topic), ["b"]);
});

Deno.test("incoming: a QoS 2 PUBLISH beyond our Receive Maximum is a protocol error: DISCONNECT 0x93", () => {
  const { session, h } = connected(undefined, { properties: { receiveMaximum: 2 } });
  const pub = (packetId: number, qos: QoS): PublishPacket => ({
    type: "publish",
    topic: "in",
    payload: new Uint8Array(),
    qos,
    retain: false,
    dup: false,
    packetId,
  });
  session.receive(pub(1, 2), 2);
  session.receive(pub(2, 2), 2);
  // A resend of an id already held is not a new message.
  session.receive({ ...pub(2, 2), dup: true }, 2);
  assert.deepEqual(types(h.take()), ["pubrec", "pubrec", "pubrec"]);
  session.receive(pub(3, 2), 3);
  assert.deepEqual(h.take(), [{ type: "disconnect", reasonCode: 0x93 }]);
  assert.equal(session.state, "disconnected");
  assert.equal(h.closes[0]?.code, "RECEIVE_MAXIMUM_EXCEEDED");
});

// ---------------------------------------------------------------- publish acknowledgements

Deno.test("5.0 QoS 1: done gets the PUBACK's reason code and properties; 0x10 no matching subscribers is a success", () => {
  const { session, h } = connected();
  const results: unknown[] = [];
  session.publish(msg("a", 1), 2, (error, ack) => results.push({ error, ack }));
  session.publish(msg("b", 1), 2, (error, ack) => results.push({ error, ack }));
  assert.deepEqual(types(h.take()), ["publish", "publish"]);
  session.receive({ type: "puback", packetId: 1, reasonCode: 0 }, 3);
  session.receive({
    type: "puback",
    packetId: 2,
    reasonCode: 0x10,
    properties: { userProperties: [["k", "v"]] },
  }, 3);
  assert.deepEqual(results, [
    { error: undefined, ack: { reasonCode: 0, properties: {} } },
    { error: undefined, ack: { reasonCode: 0x10, properties: { userProperties: [["k", "v"]] } } },
  ]);
});

Deno.test("5.0 QoS 1: a PUBACK reason code >= 0x80 rejects with PUBLISH_REJECTED carrying .reasonCode", () => {
  const { session, h } = connected();
  const errors: (MqttError | undefined)[] = [];
  session.publish(msg("secret", 1), 2, (e) => errors.push(e));
  h.take();
  session.receive({
    type: "puback",
    packetId: 1,
    reasonCode: 0x87,
    properties: { reasonString: "no" },
  }, 3);
  const err = errors[0];
  assert.ok(err instanceof PublishRejectedError);
  assert.equal(err.code, "PUBLISH_REJECTED");
  assert.equal(err.reasonCode, 0x87);
  assert.equal(err.reasonString, "no");
  assert.equal(err.topic, "secret");
});

Deno.test("MQTT-4.3.3-4: 5.0 QoS 2: a PUBREC reason code >= 0x80 ends the flow without PUBREL and rejects", () => {
  const { session, h, state } = connected();
  const errors: (MqttError | undefined)[] = [];
  session.publish(msg("q2", 2), 2, (e) => errors.push(e));
  h.take();
  session.receive({ type: "pubrec", packetId: 1, reasonCode: 0x97 }, 3);
  assert.deepEqual(h.take(), []); // no PUBREL
  assert.equal(state.inflightCount, 0);
  assert.ok(errors[0] instanceof PublishRejectedError);
  assert.equal((errors[0] as PublishRejectedError).reasonCode, 0x97);
  // The id is free again: the next publish may use it.
  session.publish(msg("next", 2), 4, () => {});
  assert.equal((h.take()[0] as PublishPacket).packetId, 2);
});

Deno.test("5.0 QoS 2: a successful flow resolves with the PUBREC's reason code at PUBCOMP", () => {
  const { session, h } = connected();
  const results: unknown[] = [];
  session.publish(msg("q2", 2), 2, (error, ack) => results.push({ error, ack }));
  h.take();
  session.receive({ type: "pubrec", packetId: 1, reasonCode: 0x10 }, 3);
  assert.deepEqual(h.take(), [{ type: "pubrel", packetId: 1 }]);
  assert.deepEqual(results, []);
  session.receive({ type: "pubcomp", packetId: 1, reasonCode: 0 }, 4);
  assert.deepEqual(results, [{ error: undefined, ack: { reasonCode: 0x10, properties: {} } }]);
});

Deno.test("5.0 publish properties travel in the PUBLISH, QoS 0 and QoS 1 alike", () => {
  const { session, h } = connected();
  const properties = {
    contentType: "text/plain",
    userProperties: [["a", "1"]] as [string, string][],
  };
  session.publish({ ...msg("a", 0), properties }, 2, () => {});
  session.publish({ ...msg("b", 1), properties }, 2, () => {});
  const sent = h.take() as PublishPacket[];
  assert.deepEqual(sent.map((p) => p.properties), [properties, properties]);
});

// ---------------------------------------------------------------- subscribe / unsubscribe

Deno.test("MQTT-3.9.3-1: a 5.0 SUBACK's reason codes reach the callback in filter order", () => {
  const { session, h } = connected();
  const results: unknown[] = [];
  const requests = [{ filter: "a", qos: 1 as QoS }, { filter: "b", qos: 2 as QoS }];
  session.subscribe(requests, 2, (e, codes) => results.push([e, codes]));
  h.take();
  session.receive({ type: "suback", packetId: 1, reasonCodes: [1, 0x87] }, 3);
  assert.deepEqual(results, [[undefined, [1, 0x87]]]);
});

Deno.test("5.0 subscription options (section 3.8.3.1) are sent, kept in the store, and sent again on re-registration", () => {
  const store = new MemoryStore();
  const state = new ClientSessionState({ store });
  const { session, h } = connected(undefined, {}, state);
  const request = {
    filter: "a/#",
    qos: 1 as QoS,
    noLocal: true,
    retainAsPublished: true,
    retainHandling: 2 as const,
  };
  session.subscribe([request], 2, () => {});
  assert.deepEqual(h.take(), [{ type: "subscribe", packetId: 1, subscriptions: [request] }]);
  session.receive({ type: "suback", packetId: 1, reasonCodes: [1] }, 3);
  // The store's record carries them, for a new process.
  assert.deepEqual(store.load().subscriptions, [{
    filter: "a/#",
    qos: 1,
    noLocal: true,
    retainAsPublished: true,
    retainHandling: 2,
  }]);
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "gone"), 4);
  // A new connection without a session: the re-registration asks for the same options.
  const h2 = new Recorder();
  const next = new Session(v5(), state, h2);
  next.connect(5);
  next.receive(connack5(), 6);
  const resub = h2.sent.find((p) => p.type === "subscribe");
  assert.deepEqual(resub?.type === "subscribe" && resub.subscriptions, [request]);
  // And so does a new process over the same store (clean: false keeps what the store holds).
  const h3 = new Recorder();
  const restarted = new Session(v5({ clean: false }), new ClientSessionState({ store }), h3);
  restarted.connect(7);
  restarted.receive(connack5(), 8);
  const again = h3.sent.find((p) => p.type === "subscribe");
  assert.deepEqual(again?.type === "subscribe" && again.subscriptions, [request]);
});

Deno.test("a refused re-registration (5.0 reason code 0x87) reports a SubscribeError carrying it", () => {
  const state = new ClientSessionState();
  const { session } = connected(undefined, {}, state);
  session.subscribe([{ filter: "a", qos: 1 }], 2, () => {});
  session.receive({ type: "suback", packetId: 1, reasonCodes: [1] }, 3);
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "gone"), 4);
  const h = new Recorder();
  const next = new Session(v5(), state, h);
  next.connect(5);
  next.receive(connack5(), 6);
  const resub = h.sent.find((p) => p.type === "subscribe")!;
  next.receive({
    type: "suback",
    packetId: (resub as { packetId: number }).packetId,
    reasonCodes: [0x87],
  }, 7);
  assert.deepEqual(h.failed, ["a:SUBSCRIBE_FAILED"]);
  assert.equal((h.errors[0] as SubscribeError).reasonCode, 0x87);
});

Deno.test("MQTT-3.11.3-1: a 5.0 UNSUBACK's reason codes reach the callback", () => {
  const { session, h } = connected();
  const results: unknown[] = [];
  session.unsubscribe(["a", "b"], 2, (e, codes) => results.push([e, codes]));
  h.take();
  session.receive({ type: "unsuback", packetId: 1, reasonCodes: [0, 0x11] }, 3);
  assert.deepEqual(results, [[undefined, [0, 0x11]]]);
});

// ---------------------------------------------------------------- DISCONNECT

Deno.test("5.0 server DISCONNECT ends the connection with a ServerDisconnectError carrying its reason", () => {
  const { session, h } = connected();
  session.receive({
    type: "disconnect",
    reasonCode: 0x9c,
    properties: { reasonString: "moving", serverReference: "other:1883" },
  }, 2);
  assert.equal(session.state, "disconnected");
  const err = h.closes[0];
  assert.ok(err instanceof ServerDisconnectError);
  assert.equal(err.code, "SERVER_DISCONNECT");
  assert.equal(err.reasonCode, 0x9c);
  assert.equal(err.reasonString, "moving");
  assert.equal(err.serverReference, "other:1883");
  assert.deepEqual(h.take(), []); // nothing is sent after the server's DISCONNECT
});

Deno.test("3.1.1: a DISCONNECT from the server stays a protocol violation", () => {
  const h = new Recorder();
  const session = new Session(sessionOptions(), new ClientSessionState(), h);
  session.connect(0);
  session.receive({ type: "connack", sessionPresent: false, returnCode: 0 }, 1);
  session.receive({ type: "disconnect" }, 2);
  assert.equal(h.closes[0]?.code, "UNEXPECTED_PACKET");
});

Deno.test("5.0 disconnect(now, 0x04): the DISCONNECT carries the reason (disconnect with will message)", () => {
  const { session, h } = connected();
  session.disconnect(2, 0x04);
  assert.deepEqual(h.take(), [{ type: "disconnect", reasonCode: 0x04 }]);
  assert.deepEqual(h.closes, [undefined]);
});

Deno.test("5.0 disconnect without a reason sends a bare DISCONNECT (0x00 normal disconnection)", () => {
  const { session, h } = connected();
  session.disconnect(2);
  assert.deepEqual(h.take(), [{ type: "disconnect" }]);
});
