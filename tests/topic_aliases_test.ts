/** Unit tests of the sans-IO Topic Alias tables (section 3.3.2.3.4). */
import assert from "node:assert/strict";
import type { ConnackPacket, Packet, PublishPacket, QoS } from "../lib/codec/packet.ts";
import { MqttError, ProtocolError } from "../lib/errors.ts";
import { ClientSessionState, Session } from "../lib/session/session.ts";
import { OutgoingPublish } from "../lib/session/state.ts";
import { msg, Recorder, sessionOptions } from "./session_helpers.ts";
import {
  aliasReasonCode,
  IncomingTopicAliases,
  OutgoingTopicAliases,
} from "../lib/session/topic_aliases.ts";

function pub(topic: string, qos: QoS = 0, alias?: number): PublishPacket {
  const p: PublishPacket = {
    type: "publish",
    topic,
    payload: new Uint8Array([1]),
    qos,
    retain: false,
    dup: false,
  };
  if (qos !== 0) p.packetId = 1;
  if (alias !== undefined) p.properties = { topicAlias: alias };
  return p;
}

/** What the server would resolve: replays the wire through an incoming table. */
function wire(out: OutgoingTopicAliases, topics: string[]): PublishPacket[] {
  return topics.map((t) => out.apply(pub(t)));
}

Deno.test("MQTT-3.2.2-18: a Topic Alias Maximum of 0 (or absent) sends no alias", () => {
  for (const max of [0, NaN, -1]) {
    const out = new OutgoingTopicAliases(max);
    const p = pub("a/b");
    assert.equal(out.apply(p), p);
    assert.equal(out.apply(p), p);
  }
});

Deno.test("topic alias: first PUBLISH carries topic and alias, later ones the alias and an empty topic, QoS 0 too", () => {
  const out = new OutgoingTopicAliases(5);
  const [first, second, third] = wire(out, ["long/topic", "long/topic", "long/topic"]);
  assert.equal(first.topic, "long/topic");
  assert.equal(first.properties?.topicAlias, 1);
  assert.equal(first.qos, 0);
  assert.equal(second.topic, "");
  assert.equal(second.properties?.topicAlias, 1);
  assert.equal(third.topic, "");
  const q2 = out.apply(pub("long/topic", 2));
  assert.equal(q2.topic, "");
  assert.equal(q2.properties?.topicAlias, 1);
  assert.equal(q2.packetId, 1);
});

Deno.test("topic alias: apply never changes the packet it is given (the stored message keeps its topic)", () => {
  const out = new OutgoingTopicAliases(2);
  const original = pub("t/1", 1);
  original.properties = { messageExpiryInterval: 60 };
  out.apply(original);
  const again = out.apply(original);
  assert.equal(again.topic, "");
  assert.equal(again.properties?.messageExpiryInterval, 60);
  assert.equal(original.topic, "t/1");
  assert.deepEqual(original.properties, { messageExpiryInterval: 60 });
});

Deno.test("MQTT-3.3.2-9, MQTT-3.2.2-17, MQTT-3.3.2-8: aliases are 1..maximum, never 0 and never above (off-by-one)", () => {
  for (const max of [1, 2, 3, 10]) {
    const out = new OutgoingTopicAliases(max);
    const seen = new Set<number>();
    for (let i = 0; i < max * 4; i++) {
      const p = out.apply(pub(`t/${i % (max + 2)}`));
      const alias = p.properties!.topicAlias!;
      assert.ok(alias >= 1 && alias <= max, `alias ${alias} with maximum ${max}`);
      seen.add(alias);
    }
    assert.equal(seen.size, max, "every alias 1..max is used");
    assert.ok(out.size <= max);
  }
});

Deno.test("topic alias: when all are taken the least recently used alias is given to the new topic", () => {
  const out = new OutgoingTopicAliases(2);
  const [a, b] = wire(out, ["a", "b"]);
  assert.equal(a.properties?.topicAlias, 1);
  assert.equal(b.properties?.topicAlias, 2);
  // "a" is used again, so "b" is now the least recently used.
  assert.equal(out.apply(pub("a")).topic, "");
  const c = out.apply(pub("c"));
  assert.equal(c.topic, "c", "a reassigned alias carries the full topic");
  assert.equal(c.properties?.topicAlias, 2);
  // "b" lost its alias: it is sent in full with a new mapping (taking the LRU "a"'s 1).
  const b2 = out.apply(pub("b"));
  assert.equal(b2.topic, "b");
  assert.equal(b2.properties?.topicAlias, 1);
});

Deno.test("MQTT-3.3.2-7: a new connection's table starts empty, so a resent message carries its full topic", () => {
  const stored = pub("x/y", 1);
  const first = new OutgoingTopicAliases(4);
  first.apply(stored);
  assert.equal(first.apply(stored).topic, "");
  const next = new OutgoingTopicAliases(4);
  const resent = next.apply({ ...stored, dup: true });
  assert.equal(resent.topic, "x/y");
  assert.equal(resent.properties?.topicAlias, 1);
});

Deno.test("topic alias: the outgoing stream resolves to the original topics at a receiver", () => {
  const out = new OutgoingTopicAliases(3);
  const incoming = new IncomingTopicAliases(3);
  const topics = Array.from({ length: 200 }, (_, i) => `s/${(i * 7) % 5}`);
  const resolved = wire(out, topics).map((p) => incoming.resolve(p).topic);
  assert.deepEqual(resolved, topics);
});

Deno.test("MQTT-3.3.2-10: every incoming alias 1..maximum is accepted and resolved", () => {
  const incoming = new IncomingTopicAliases(65535);
  for (const alias of [1, 2, 1000, 65535]) {
    assert.equal(incoming.resolve(pub(`t/${alias}`, 0, alias)).topic, `t/${alias}`);
    assert.equal(incoming.resolve(pub("", 1, alias)).topic, `t/${alias}`);
  }
});

Deno.test("section 3.3.2.3.4: a non-empty topic with a known alias replaces its mapping", () => {
  const incoming = new IncomingTopicAliases(2);
  incoming.resolve(pub("old", 0, 1));
  assert.equal(incoming.resolve(pub("new", 0, 1)).topic, "new");
  assert.equal(incoming.resolve(pub("", 0, 1)).topic, "new");
});

Deno.test("MQTT-3.3.2-11: an incoming alias above our maximum (or 0) is TOPIC_ALIAS_INVALID, reason 0x94", () => {
  for (const [max, alias] of [[0, 1], [5, 6], [5, 0]]) {
    const incoming = new IncomingTopicAliases(max);
    assert.throws(
      () => incoming.resolve(pub("t", 0, alias)),
      (e: unknown) => {
        assert.ok(e instanceof ProtocolError);
        assert.equal(e.code, "TOPIC_ALIAS_INVALID");
        assert.equal(e.packetType, "publish");
        assert.equal(aliasReasonCode(e), 0x94);
        return true;
      },
    );
  }
});

Deno.test("section 3.3.2.3.4: an empty topic with an unmapped alias is UNKNOWN_TOPIC_ALIAS, reason 0x82", () => {
  const incoming = new IncomingTopicAliases(5);
  assert.throws(
    () => incoming.resolve(pub("", 0, 2)),
    (e: unknown) => {
      assert.ok(e instanceof ProtocolError);
      assert.equal(e.code, "UNKNOWN_TOPIC_ALIAS");
      assert.equal(aliasReasonCode(e), 0x82);
      return true;
    },
  );
  assert.equal(aliasReasonCode(new Error("x")), undefined);
});

Deno.test("MQTT-3.3.2-7: incoming mappings do not carry over to a new connection's table", () => {
  const first = new IncomingTopicAliases(5);
  first.resolve(pub("t", 0, 1));
  const next = new IncomingTopicAliases(5);
  assert.throws(() => next.resolve(pub("", 0, 1)), /UNKNOWN|before mapping/);
});

// ---------------------------------------------------------------- in the session

function v5Session(
  ours: number | undefined,
  servers: number | undefined,
  state = new ClientSessionState(),
  clean = true,
): { session: Session; h: Recorder } {
  const h = new Recorder();
  const properties = ours === undefined ? undefined : { topicAliasMaximum: ours };
  const session = new Session(
    sessionOptions({ protocolVersion: 5, properties, clean }),
    state,
    h,
  );
  session.connect(0);
  const connack = { type: "connack", sessionPresent: false, reasonCode: 0 } as ConnackPacket;
  if (servers !== undefined) connack.properties = { topicAliasMaximum: servers };
  session.receive(connack, 1);
  h.take();
  return { session, h };
}

function wireOf(packets: Packet[]): string[] {
  return packets.map((p) =>
    p.type === "publish" ? `${p.topic || "-"}@${p.properties?.topicAlias ?? "none"}` : p.type
  );
}

Deno.test("MQTT-3.2.2-17: the session aliases QoS 0, 1 and 2 publishes up to the CONNACK's Topic Alias Maximum", () => {
  const { session, h } = v5Session(undefined, 2);
  for (const [topic, qos] of [["a", 0], ["a", 1], ["b", 2], ["c", 0], ["a", 0]] as const) {
    session.publish(msg(topic, qos), 2, () => {});
  }
  // "c" takes the least recently used alias (1, of "a"); "a" then needs a new mapping.
  assert.deepEqual(wireOf(h.take()), ["a@1", "-@1", "b@2", "c@1", "a@2"]);
});

Deno.test("MQTT-3.2.2-18: without a Topic Alias Maximum in CONNACK no alias is sent", () => {
  const { session, h } = v5Session(10, undefined);
  session.publish(msg("a", 0), 2, () => {});
  session.publish(msg("a", 0), 2, () => {});
  assert.deepEqual(wireOf(h.take()), ["a@none", "a@none"]);
});

Deno.test("MQTT-3.3.2-7: after a reconnect the resent PUBLISH carries its full topic and the table starts empty", () => {
  const state = new ClientSessionState();
  const first = v5Session(undefined, 4, state);
  first.session.publish(msg("x/y", 1), 2, () => {});
  first.session.publish(msg("x/y", 1), 2, () => {});
  assert.deepEqual(wireOf(first.h.take()), ["x/y@1", "-@1"]);
  first.session.connectionLost(new MqttError("CONNECTION_CLOSED", "cut"), 3);
  // Published while offline: queued in the state, sent after the resends.
  state.enqueue(new OutgoingPublish(msg("x/y", 0), () => {}));
  const stored = [...state.inflight()].map((e) => e.packet!);
  assert.deepEqual(stored.map((p) => [p.topic, p.properties?.topicAlias]), [
    ["x/y", undefined],
    ["x/y", undefined],
  ], "the stored PUBLISH never holds an alias");
  const h = new Recorder();
  const second = new Session(sessionOptions({ protocolVersion: 5 }), state, h);
  second.connect(10);
  second.receive(
    {
      type: "connack",
      sessionPresent: false,
      reasonCode: 0,
      properties: { topicAliasMaximum: 4 },
    } as ConnackPacket,
    11,
  );
  // The resends set alias 1 afresh with the full topic; the queued QoS 0 then uses it.
  assert.deepEqual(wireOf(h.take()), ["connect", "x/y@1", "-@1", "-@1"]);
});

Deno.test("MQTT-3.3.2-10: the session resolves incoming aliases up to our Topic Alias Maximum", () => {
  const { session, h } = v5Session(3, undefined);
  session.receive(pub("long/topic/name", 0, 3), 2);
  session.receive(pub("", 1, 3), 3);
  assert.deepEqual(h.delivered.map((p) => p.topic), ["long/topic/name", "long/topic/name"]);
  assert.equal(h.closes.length, 0);
});

Deno.test("MQTT-3.1.2-26: an incoming alias above our maximum ends the session with DISCONNECT 0x94", () => {
  const { session, h } = v5Session(3, undefined);
  session.receive(pub("t", 0, 4), 2);
  assert.deepEqual(h.take().map((p) => [p.type, (p as { reasonCode?: number }).reasonCode]), [
    ["disconnect", 0x94],
  ]);
  assert.equal(h.closes[0]?.code, "TOPIC_ALIAS_INVALID");
  assert.equal(session.state, "disconnected");
  assert.equal(h.delivered.length, 0);
});

Deno.test("section 3.3.2.3.4: an unknown incoming alias ends the session with DISCONNECT 0x82", () => {
  const { session, h } = v5Session(3, undefined);
  session.receive(pub("", 1, 2), 2);
  assert.deepEqual(h.take().map((p) => [p.type, (p as { reasonCode?: number }).reasonCode]), [
    ["disconnect", 0x82],
  ]);
  assert.equal(h.closes[0]?.code, "UNKNOWN_TOPIC_ALIAS");
  assert.equal(h.delivered.length, 0);
});
