/**
 * MQTT 5.0 session rules proven with packets and times: what the client's own packets never
 * carry, and what a full send quota must not hold back.
 */
import assert from "node:assert/strict";
import type { ConnackPacket, Packet } from "../lib/codec/packet.ts";
import { MqttError } from "../lib/errors.ts";
import { publishProperties } from "../lib/client/v5_client.ts";
import { ClientSessionState, Session } from "../lib/session/session.ts";
import { msg, Recorder, sessionOptions } from "./session_helpers.ts";

function connected(properties: ConnackPacket["properties"], auth = false) {
  const h = new Recorder();
  const session = new Session(
    sessionOptions({
      protocolVersion: 5,
      keepAlive: 10,
      properties: auth ? { authenticationMethod: "M" } : undefined,
    }),
    new ClientSessionState(),
    h,
  );
  session.connect(0);
  const connack = { type: "connack", sessionPresent: false, reasonCode: 0 } as ConnackPacket;
  connack.properties = { ...properties, ...(auth ? { authenticationMethod: "M" } : {}) };
  session.receive(connack, 1);
  h.take();
  return { session, h };
}

Deno.test("MQTT-3.3.4-8, MQTT-4.9.0-3: with the send quota at zero, SUBSCRIBE, acknowledgements and PINGREQ still go out", () => {
  const { session, h } = connected({ receiveMaximum: 1 });
  session.publish(msg("a", 1), 2, () => {});
  session.publish(msg("b", 1), 2, () => {});
  assert.deepEqual(h.take().map((p) => p.type), ["publish"], "the quota of 1 is used");
  session.subscribe([{ filter: "f", qos: 1 }], 3, () => {});
  session.receive(
    {
      type: "publish",
      topic: "in",
      payload: new Uint8Array(),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 9,
    },
    4,
  );
  session.tick(10_004);
  assert.deepEqual(h.take().map((p) => p.type), ["subscribe", "puback", "pingreq"]);
  session.receive({ type: "puback", packetId: 1, reasonCode: 0 }, 10_005);
  assert.deepEqual(
    h.take().map((p) => p.type),
    ["publish"],
    "the freed slot takes the waiting one",
  );
});

Deno.test("MQTT-3.4.2-2 to MQTT-3.15.2-3: the client's PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT and AUTH carry no Reason String or User Property", () => {
  const { session, h } = connected({}, true);
  const sent: Packet[] = [];
  const incoming = (qos: 1 | 2, packetId: number) => ({
    type: "publish" as const,
    topic: "in",
    payload: new Uint8Array(),
    qos,
    retain: false,
    dup: false,
    packetId,
  });
  session.receive(incoming(1, 1), 2); // PUBACK
  session.receive(incoming(2, 2), 3); // PUBREC
  session.receive({ type: "pubrel", packetId: 2, reasonCode: 0 }, 4); // PUBCOMP
  session.publish(msg("out", 2), 5, () => {});
  session.receive({ type: "pubrec", packetId: 1, reasonCode: 0 }, 6); // PUBREL
  session.reauthenticate(new Uint8Array([1]), 7); // AUTH 0x19
  session.receive(
    { type: "auth", reasonCode: 0x18, properties: { authenticationMethod: "M" } },
    8,
  );
  session.answerAuth(new Uint8Array([2]), 9); // AUTH 0x18
  session.receive({ type: "pubcomp", packetId: 1, reasonCode: 0 }, 10);
  session.disconnect(11, 0x04); // DISCONNECT
  sent.push(...h.take());
  assert.deepEqual(sent.map((p) => p.type), [
    "puback",
    "pubrec",
    "pubcomp",
    "publish",
    "pubrel",
    "auth",
    "auth",
    "disconnect",
  ]);
  for (const p of sent) {
    if (p.type === "publish") continue;
    const props = (p as { properties?: Record<string, unknown> }).properties ?? {};
    assert.equal(props.reasonString, undefined, `${p.type} carries no Reason String`);
    assert.equal(props.userProperties, undefined, `${p.type} carries no User Property`);
  }
});

Deno.test("MQTT-3.3.4-6: a client PUBLISH never carries a Subscription Identifier (nor a Topic Alias the user sets)", () => {
  for (const properties of [{ subscriptionIdentifiers: [1] }, { topicAlias: 1 }]) {
    assert.throws(
      () => publishProperties(properties, 5),
      (e: unknown) => e instanceof MqttError && e.code === "INVALID_OPTION",
    );
  }
});
