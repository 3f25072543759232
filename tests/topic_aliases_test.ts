/** Unit tests of the sans-IO Topic Alias tables (section 3.3.2.3.4). */
import assert from "node:assert/strict";
import type { PublishPacket, QoS } from "../lib/codec/packet.ts";
import { ProtocolError } from "../lib/errors.ts";
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
