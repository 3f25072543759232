/**
 * The client's API boundary against careless or hostile input from plain JavaScript: every bad
 * argument of `publish`, `subscribe` and `unsubscribe` rejects with a typed `MqttError` before
 * anything is sent, and nothing can poison the encoder's shared buffer pool.
 *
 * @module
 */
import assert from "node:assert/strict";
import { encodeInto, encodePacket, MqttError, type MqttErrorCode, type Packet } from "../mod.ts";
import { hasCode } from "./client_helpers.ts";
import { openScripted, settle } from "./scripted_transport.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

const PUBLISH_A: Packet = {
  type: "publish",
  topic: "a",
  payload: new Uint8Array([7]),
  qos: 0,
  retain: false,
  dup: false,
};

Deno.test("encode pool: a packet that fails to encode leaves later packets intact", () => {
  const bad: Any[] = [
    { ...PUBLISH_A, topic: 7 },
    { ...PUBLISH_A, topic: { length: 1.5 } },
    { ...PUBLISH_A, payload: { length: NaN } },
    { ...PUBLISH_A, payload: 42 },
    { type: "subscribe", packetId: 1, subscriptions: [{ filter: 7, qos: 0 }] },
    { type: "unsubscribe", packetId: 1, filters: [null] },
  ];
  for (const packet of bad) {
    assert.throws(() => encodePacket(packet), MqttError, JSON.stringify(packet));
    // Every later small packet still encodes to its bytes (section 3.12: C0 00; 3.3: 30 04 0 1 a 7).
    assert.deepEqual([...encodePacket({ type: "pingreq" })], [0xc0, 0]);
    assert.deepEqual([...encodePacket(PUBLISH_A)], [0x30, 4, 0, 1, 0x61, 7]);
  }
});

Deno.test("encodeInto: an offset that is not a whole number is INVALID_OPTION", () => {
  const target = new Uint8Array(8);
  for (const offset of [1.5, NaN, -1, "1" as Any]) {
    assert.throws(() => encodeInto(PUBLISH_A, target, offset), hasCode("INVALID_OPTION"));
  }
  assert.deepEqual([...target], [0, 0, 0, 0, 0, 0, 0, 0], "nothing was written");
});

Deno.test("encode: a topic that is not a string is INVALID_TOPIC (MQTT-4.7.3-1)", () => {
  assert.throws(() => encodePacket({ ...PUBLISH_A, topic: 7 as Any }), hasCode("INVALID_TOPIC"));
  assert.throws(
    () => encodePacket({ type: "unsubscribe", packetId: 1, filters: [7 as Any] }),
    hasCode("INVALID_TOPIC_FILTER"),
  );
});

Deno.test("publish: bad arguments reject with a typed error and send nothing", async () => {
  const { client, script: { written } } = await openScripted();
  try {
    const cases: [unknown[], MqttErrorCode][] = [
      [[7, "x"], "INVALID_TOPIC"],
      [[undefined, "x"], "INVALID_TOPIC"],
      [[["a"], "x"], "INVALID_TOPIC"],
      [["a/+", "x"], "INVALID_TOPIC"],
      [["a", 42], "INVALID_OPTION"],
      [["a", { length: 3 }], "INVALID_OPTION"],
      [["a", null], "INVALID_OPTION"],
      [["a", "x", null], "INVALID_OPTION"],
      [["a", "x", 1], "INVALID_OPTION"],
      [["a", "x", { qos: 3 }], "INVALID_OPTION"],
      [["a", "x", { qos: "1" }], "INVALID_OPTION"],
      [["a", "x", { qos: 1.5 }], "INVALID_OPTION"],
      [["a", "x", { retain: "yes" }], "INVALID_OPTION"],
    ];
    for (const [args, code] of cases) {
      await assert.rejects(
        (client.publish as (...a: unknown[]) => Promise<void>)(...args),
        hasCode(code),
        `publish(${args.map((a) => JSON.stringify(a)).join(", ")})`,
      );
    }
    await settle();
    assert.equal(written.length, 0, "nothing was written for the refused publishes");
    // The client still works and its packets still have their bytes: "a" with payload "ok".
    await client.publish("a", "ok");
    assert.deepEqual([...written.at(-1)!], [0x30, 5, 0, 1, 0x61, 0x6f, 0x6b]);
    // A Uint8Array subclass (Node's Buffer is one) is a Uint8Array and is taken.
    class Bytes extends Uint8Array {}
    await client.publish("a", new Bytes([1]));
    assert.deepEqual([...written.at(-1)!], [0x30, 4, 0, 1, 0x61, 1]);
  } finally {
    await client.close();
  }
});

Deno.test("subscribe/unsubscribe: bad arguments reject with a typed error and send nothing", async () => {
  const { client, script: { written } } = await openScripted();
  try {
    const subscribe = client.subscribe as (...a: unknown[]) => Promise<unknown>;
    const unsubscribe = client.unsubscribe as (...a: unknown[]) => Promise<unknown>;
    const cases: [() => Promise<unknown>, MqttErrorCode][] = [
      [() => subscribe(123), "INVALID_TOPIC_FILTER"],
      [() => subscribe(undefined), "INVALID_TOPIC_FILTER"],
      [() => subscribe(["a", 7]), "INVALID_TOPIC_FILTER"],
      [() => subscribe({ length: 1, 0: "a" }), "INVALID_TOPIC_FILTER"],
      [() => subscribe("a/#/b"), "INVALID_TOPIC_FILTER"],
      [() => subscribe([]), "INVALID_OPTION"],
      [() => subscribe("a", null), "INVALID_OPTION"],
      [() => subscribe("a", { qos: 3 }), "INVALID_OPTION"],
      [() => subscribe("a", { bufferSize: 0 }), "INVALID_OPTION"],
      [() => subscribe("a", { bufferSize: -1 }), "INVALID_OPTION"],
      [() => subscribe("a", { bufferSize: 1.5 }), "INVALID_OPTION"],
      [() => subscribe("a", { bufferSize: NaN }), "INVALID_OPTION"],
      [() => subscribe("a", { bufferSize: "10" }), "INVALID_OPTION"],
      [() => unsubscribe(123), "INVALID_TOPIC_FILTER"],
      [() => unsubscribe([null]), "INVALID_TOPIC_FILTER"],
      [() => unsubscribe("a/b#"), "INVALID_TOPIC_FILTER"],
    ];
    for (const [call, code] of cases) {
      let result: unknown;
      try {
        result = call();
      } catch (err) {
        assert.fail(`threw synchronously instead of rejecting: ${err}`);
      }
      await assert.rejects(result as Promise<unknown>, hasCode(code), call.toString());
    }
    await settle();
    assert.equal(written.length, 0, "nothing was written for the refused commands");
    assert.equal(client.connected, true, "the client is still open");
  } finally {
    await client.close();
  }
});
