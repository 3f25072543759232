/** MQTT 5.0 Message Expiry of outgoing messages (section 3.3.2.3.3), sans-IO. */
import assert from "node:assert/strict";
import type { Packet, PublishPacket } from "../lib/codec/packet.ts";
import type { MqttError } from "../lib/errors.ts";
import {
  expiredError,
  expiryDeadline,
  isExpired,
  remainingSeconds,
  withRemainingExpiry,
} from "../lib/session/expiry.ts";
import { Flows } from "../lib/session/flows.ts";
import { OutgoingPublish, SessionState } from "../lib/session/state.ts";
import type { OutgoingMessage } from "../lib/session/types.ts";

function message(topic: string, qos: 0 | 1, interval?: number, at = 0): OutgoingMessage {
  const m: OutgoingMessage = { topic, payload: new Uint8Array([1]), qos, retain: false };
  if (interval !== undefined) {
    m.properties = { messageExpiryInterval: interval };
    m.expiresAt = expiryDeadline(interval, at);
  }
  return m;
}

Deno.test("message expiry: deadline, expired at the deadline, remaining seconds rounded up", () => {
  assert.equal(expiryDeadline(undefined, 5), Infinity);
  assert.equal(expiryDeadline(10, 500), 10_500);
  assert.ok(!isExpired(10_500, 10_499));
  assert.ok(isExpired(10_500, 10_500));
  assert.ok(!isExpired(undefined, 1e12));
  assert.equal(remainingSeconds(10_500, 500), 10);
  assert.equal(remainingSeconds(10_500, 501), 10, "9.999 s left goes out as 10");
  assert.equal(remainingSeconds(10_500, 10_499), 1, "never 0 before the deadline");
  assert.equal(remainingSeconds(10_500, 20_000), 0);
});

Deno.test("message expiry: a message sent late carries the remaining interval, on a copy", () => {
  const packet: PublishPacket = {
    type: "publish",
    topic: "t",
    payload: new Uint8Array(),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 1,
    properties: { messageExpiryInterval: 60, contentType: "x" },
  };
  assert.equal(withRemainingExpiry(packet, 60_000, 0), packet, "not late: the packet as it is");
  const late = withRemainingExpiry(packet, 60_000, 15_000);
  assert.deepEqual(late.properties, { messageExpiryInterval: 45, contentType: "x" });
  assert.equal(packet.properties!.messageExpiryInterval, 60);
  const plain = { ...packet, properties: undefined };
  assert.equal(withRemainingExpiry(plain, undefined, 15_000), plain);
});

Deno.test("message expiry: queued messages past their interval fail with MESSAGE_EXPIRED and are not sent; the rest carry what remains", () => {
  const state = new SessionState();
  const sent: Packet[] = [];
  const flows = new Flows(state, 10, { send: (p) => sent.push(p), deliver: () => {} });
  const results: string[] = [];
  const done = (name: string) => (error?: MqttError) =>
    results.push(`${name}:${error?.code ?? "ok"}`);
  // Offline at t=0: four messages wait in the state's queue.
  for (
    const [name, m] of [
      ["short-q1", message("a", 1, 2)],
      ["long-q1", message("b", 1, 60)],
      ["short-q0", message("c", 0, 2)],
      ["none-q0", message("d", 0)],
    ] as const
  ) {
    state.enqueue(new OutgoingPublish(m, done(name)));
  }
  // Connected at t=5 s.
  flows.fillWindow(5000);
  assert.deepEqual(
    sent.map((p) => p.type === "publish" && [p.topic, p.properties?.messageExpiryInterval]),
    [["b", 55], ["d", undefined]],
  );
  assert.deepEqual(results, ["short-q1:MESSAGE_EXPIRED", "short-q0:MESSAGE_EXPIRED", "none-q0:ok"]);
  // MQTT-4.3.3-7: once sent, no expiry: the in-flight PUBLISH is resent as it was sent.
  const entry = [...state.inflight()][0];
  assert.equal(entry.packet!.properties?.messageExpiryInterval, 55);
  assert.equal(entry.message.properties?.messageExpiryInterval, 60, "the message is unchanged");
  flows.resume(true, 100_000);
  const resent = sent.at(-1) as PublishPacket;
  assert.deepEqual([resent.topic, resent.dup, resent.properties?.messageExpiryInterval], [
    "b",
    true,
    55,
  ]);
});

Deno.test("message expiry: expiredError names the code and only applies with a clock", () => {
  const m = message("t", 1, 1, 0);
  assert.equal(expiredError(m, undefined), undefined);
  assert.equal(expiredError(m, 999), undefined);
  assert.equal(expiredError(m, 1000)?.code, "MESSAGE_EXPIRED");
  assert.equal(expiredError(message("t", 1), 1e12), undefined);
});
