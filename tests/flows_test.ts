/**
 * The QoS flows shared by both roles, and the server's connection machine:
 * exactly once survives a failing store on either side, the store is written
 * before memory, and the server's CONNECT deadline and keep-alive follow the
 * deadline/tick model. Packets and times only.
 */
import assert from "node:assert/strict";
import type { Packet, PublishPacket } from "../lib/codec/packet.ts";
import { MqttError } from "../lib/errors.ts";
import { ClientSessionState } from "../lib/session/client_state.ts";
import { Flows } from "../lib/session/flows.ts";
import { ServerSession, type ServerSessionHandler } from "../lib/session/server_session.ts";
import { Session } from "../lib/session/session.ts";
import { SessionState } from "../lib/session/state.ts";
import { MemoryStore } from "../lib/store/mod.ts";
import { brief, connack, msg, Recorder, sessionOptions } from "./session_helpers.ts";

/** A store whose `addIncoming` fails the first time, as a full disk would. */
class FlakyStore extends MemoryStore {
  failures = 1;
  override addIncoming(packetId: number): void {
    if (this.failures-- > 0) throw new MqttError("STORE_ERROR", "disk full");
    super.addIncoming(packetId);
  }
}

/** A store whose `clearIncoming` always fails. */
class NoClearStore extends MemoryStore {
  override clearIncoming(): void {
    throw new MqttError("STORE_ERROR", "disk full");
  }
}

function qos2(packetId: number, dup = false, topic = "in"): PublishPacket {
  const payload = new TextEncoder().encode(topic);
  return { type: "publish", topic, payload, qos: 2, retain: false, dup, packetId };
}

function isStoreError(error: unknown): boolean {
  return error instanceof MqttError && error.code === "STORE_ERROR";
}

Deno.test("client: an incoming QoS 2 id whose store write fails is not delivered; the resend is, once (MQTT-4.3.3-2)", () => {
  const state = new ClientSessionState({ store: new FlakyStore() });
  const options = sessionOptions({ clean: false });
  const first = new Recorder();
  const a = new Session(options, state, first);
  a.connect(0);
  a.receive(connack(false), 1);
  first.take();
  assert.throws(() => a.receive(qos2(7), 2), isStoreError);
  assert.equal(first.delivered.length, 0, "nothing delivered before the id was recorded");
  assert.deepEqual(brief(first.take()), [], "no PUBREC for a message not taken");
  // The driver ends the connection; the broker resends with DUP on the next one.
  a.connectionLost(new MqttError("STORE_ERROR", "disk full"), 3);
  const second = new Recorder();
  const b = new Session(options, state, second);
  b.connect(4);
  b.receive(connack(true), 5);
  b.receive(qos2(7, true), 6);
  b.receive(qos2(7, true), 7); // a second resend before PUBREL: answered, not delivered
  b.receive({ type: "pubrel", packetId: 7 }, 8);
  assert.equal(first.delivered.length + second.delivered.length, 1, "delivered exactly once");
  assert.deepEqual(brief(second.take()), ["connect", "pubrec:7", "pubrec:7", "pubcomp:7"]);
  assert.equal(state.incomingCount, 0);
});

Deno.test("server: an incoming QoS 2 id whose store write fails is not routed; the resend is, once (MQTT-4.3.3-2)", () => {
  const state = new SessionState({ store: new FlakyStore() });
  const routed: string[] = [];
  const sent: Packet[] = [];
  const handler = serverHandler(sent, routed, state);
  const first = new ServerSession({ connectTimeout: 1000, maxInflight: 10 }, handler);
  handler.machine = first;
  first.start(0);
  first.receive(connectPacket(), 1);
  assert.throws(() => first.receive(qos2(9, false, "t/1"), 2), isStoreError);
  assert.deepEqual(routed, [], "nothing routed before the id was recorded");
  first.closed();
  sent.length = 0;
  const second = new ServerSession({ connectTimeout: 1000, maxInflight: 10 }, handler);
  handler.machine = second;
  second.start(3);
  second.receive(connectPacket(), 4);
  second.receive(qos2(9, true, "t/1"), 5);
  second.receive(qos2(9, true, "t/1"), 6);
  second.receive({ type: "pubrel", packetId: 9 }, 7);
  assert.deepEqual(routed, ["t/1"], "routed exactly once");
  assert.deepEqual(brief(sent), ["connack", "pubrec:9", "pubrec:9", "pubcomp:9"]);
});

Deno.test("clearIncoming writes the store first: a failing store leaves the ids in memory", () => {
  const state = new SessionState({ store: new NoClearStore() });
  state.addIncoming(3);
  assert.throws(() => state.clearIncoming(), isStoreError);
  assert.equal(state.hasIncoming(3), true);
});

Deno.test("server: a QoS 2 PUBLISH the client answers with PUBACK ends its flow with UNEXPECTED_PACKET (MQTT-4.3.3-1)", () => {
  const sent: Packet[] = [];
  const results: (string | undefined)[] = [];
  const flows = new Flows(new SessionState(), 10, { send: (p) => sent.push(p), deliver: () => {} });
  flows.publish(msg("a", 2), 0, (error) => results.push(error?.code));
  flows.publish(msg("b", 1), 0, (error) => results.push(error?.code));
  flows.receiveAck({ type: "puback", packetId: 1 }, 1);
  flows.receiveAck({ type: "puback", packetId: 2 }, 2);
  assert.deepEqual(results, ["UNEXPECTED_PACKET", undefined]);
  assert.equal(flows.state.inflightCount, 0, "the slot and the id are free again");
});

Deno.test("flows: takeNext hands out waiting publishes in order within the window (MQTT-4.6.0-6)", () => {
  const state = new SessionState();
  const flows = new Flows(state, 1, { send: () => {}, deliver: () => {} });
  flows.holding = true; // queue everything, as a broker does for an offline client
  for (const [topic, qos] of [["a", 1], ["b", 0], ["c", 1], ["d", 0]] as const) {
    flows.publish(msg(topic, qos), 0, () => {});
  }
  flows.holding = false;
  const taken = () => flows.takeNext()?.packet;
  assert.deepEqual(brief([taken()!, taken()!]), ["publish:1:q1:a", "publish:-:q0:b"]);
  assert.equal(taken(), undefined, "c waits for a window slot, and d behind it");
  flows.receiveAck({ type: "puback", packetId: 1 }, 1);
  // The completed flow refilled the window itself (fillWindow sends through the output).
  assert.equal(state.inflightCount, 1);
  assert.equal(state.pendingCount, 0);
});

Deno.test("server session: no CONNECT within connectTimeout closes with connect-timeout", () => {
  const sent: Packet[] = [];
  const handler = serverHandler(sent, []);
  const session = new ServerSession({ connectTimeout: 500, maxInflight: 10 }, handler);
  handler.machine = session;
  session.start(100);
  assert.equal(session.deadline, 600);
  session.tick(599);
  assert.deepEqual(handler.aborts, []);
  session.tick(600);
  assert.deepEqual(handler.aborts, ["connect-timeout"]);
  assert.equal(session.deadline, Infinity);
});

Deno.test("server session: silence for 1.5 × keep-alive closes with keepalive (MQTT-3.1.2-24); PINGREQ is answered (MQTT-3.12.4-1)", () => {
  const sent: Packet[] = [];
  const handler = serverHandler(sent, []);
  const session = new ServerSession({ connectTimeout: 500, maxInflight: 10 }, handler);
  handler.machine = session;
  session.start(0);
  session.receive(connectPacket(2), 10);
  assert.equal(session.deadline, 3000, "1.5 × 2 s from the CONNECT's acceptance");
  session.receive({ type: "pingreq" }, 2000);
  assert.equal(session.deadline, 5000, "any packet moves the deadline");
  session.tick(4999);
  assert.deepEqual(handler.aborts, []);
  session.tick(5000);
  assert.deepEqual(handler.aborts, ["keepalive"]);
  assert.deepEqual(brief(sent), ["connack", "pingresp"]);
});

Deno.test("server session: the first packet must be CONNECT (MQTT-3.1.0-1), a second CONNECT is a violation (MQTT-3.1.0-2)", () => {
  const handler = serverHandler([], []);
  const a = new ServerSession({ connectTimeout: 500, maxInflight: 10 }, handler);
  handler.machine = a;
  a.start(0);
  a.receive({ type: "pingreq" }, 1);
  const b = new ServerSession({ connectTimeout: 500, maxInflight: 10 }, handler);
  handler.machine = b;
  b.start(0);
  b.receive(connectPacket(), 1);
  b.receive(connectPacket(), 2);
  assert.deepEqual(handler.aborts, ["protocol", "protocol"]);
});

function connectPacket(keepAlive = 0): Packet {
  return {
    type: "connect",
    protocolName: "MQTT",
    protocolLevel: 4,
    clientId: "c",
    clean: false,
    keepAlive,
  };
}

/** A server handler that accepts every CONNECT over one state and routes every publish. */
function serverHandler(
  sent: Packet[],
  routed: string[],
  state: SessionState = new SessionState(),
): ServerSessionHandler & { machine?: ServerSession; aborts: string[] } {
  const handler = {
    machine: undefined as ServerSession | undefined,
    aborts: [] as string[],
    send: (p: Packet) => void sent.push(p),
    connect: (p: Packet & { type: "connect" }) =>
      handler.machine!.accept(
        state,
        { type: "connack", sessionPresent: false, returnCode: 0 },
        p.keepAlive,
        0,
      ),
    publish: (p: PublishPacket) => handler.machine!.acceptPublish(p, true, 0),
    deliver: (p: PublishPacket) => void routed.push(p.topic),
    subscribe: () => {},
    unsubscribe: () => {},
    disconnected: () => {},
    abort: (reason: string) => void handler.aborts.push(reason),
  };
  return handler;
}
