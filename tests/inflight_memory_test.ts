import assert from "node:assert/strict";
import { Flows } from "../lib/session/flows.ts";
import { SessionState } from "../lib/session/state.ts";
import { topicNameLength } from "../lib/codec/topic.ts";
import type { OutgoingMessage } from "../lib/session/types.ts";

function flows(messageInPacket: boolean) {
  const state = new SessionState();
  const f = new Flows(state, 10, { send: () => {}, deliver: () => {} });
  f.messageInPacket = messageInPacket;
  return { state, f };
}

Deno.test("Flows.messageInPacket: an in-flight publish keeps one object, its PUBLISH (issue 18)", () => {
  const { state, f } = flows(true);
  const message: OutgoingMessage = {
    topic: "a",
    payload: new Uint8Array(1),
    qos: 1,
    retain: false,
  };
  f.publish(message, 0, () => {});
  const entry = state.getInflight(1)!;
  assert.equal(entry.message, entry.packet);
  assert.notEqual(entry.message, message);
  assert.equal(entry.message.topic, "a");
});

Deno.test("Flows.messageInPacket: a message with an expiry deadline, or the broker's flows, keep the message", () => {
  const expiring = flows(true);
  const withDeadline: OutgoingMessage = {
    topic: "a",
    payload: new Uint8Array(1),
    qos: 1,
    retain: false,
    properties: { messageExpiryInterval: 60 },
    expiresAt: 60_000,
  };
  expiring.f.publish(withDeadline, 0, () => {});
  assert.equal(expiring.state.getInflight(1)!.message, withDeadline);

  const broker = flows(false);
  const delivery: OutgoingMessage = {
    topic: "b",
    payload: new Uint8Array(1),
    qos: 1,
    retain: false,
  };
  broker.f.publish(delivery, 0, () => {});
  assert.equal(broker.state.getInflight(1)!.message, delivery);
});

Deno.test("topicNameLength: the remembered last valid name never lets an invalid one through", () => {
  assert.equal(topicNameLength("a/b", "publish"), 3);
  assert.equal(topicNameLength("a/b", "publish"), 3);
  // Same content, another string object.
  assert.equal(topicNameLength(["a", "b"].join("/"), "publish"), 3);
  assert.throws(() => topicNameLength("", "publish"), { code: "INVALID_TOPIC" });
  assert.throws(() => topicNameLength("a/+", "publish"), { code: "INVALID_TOPIC" });
  assert.equal(topicNameLength("é", "publish"), 2);
  assert.equal(topicNameLength("é", "publish"), 2);
});
