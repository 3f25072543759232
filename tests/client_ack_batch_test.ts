/**
 * Acknowledgements on consume share writes: a consumer working through buffered QoS 1
 * messages asks for each next one in a tick of its own, and a write per PUBACK cost a system
 * call each (a third of the client's time at QoS 1 end to end). They wait for the consumer
 * to run out of buffered messages, or for the next macrotask at most, never longer.
 *
 * @module
 */
import assert from "node:assert/strict";
import { within } from "./client_helpers.ts";
import { openScripted, settle } from "./scripted_transport.ts";
import type { ScriptedTransport } from "./scripted_transport.ts";
import type { MqttClient } from "../mod.ts";

/** PUBLISH QoS 1 to "t", packet id `id`, payload "x" (section 3.3): 32 06 00 01 74 00 id 78. */
function publish(id: number): number[] {
  return [0x32, 6, 0, 1, 0x74, 0, id, 0x78];
}

/** PUBACK for packet id `id` (section 3.4): 40 02 00 id. */
function puback(id: number): number[] {
  return [0x40, 2, 0, id];
}

/** Subscribes to "t" at QoS 1 and answers the SUBSCRIBE with a SUBACK granting QoS 1. */
async function subscribed(client: MqttClient, script: ScriptedTransport) {
  const subscribing = client.subscribe("t", { qos: 1 });
  await settle();
  const packet = script.written.shift();
  assert.equal(packet?.[0], 0x82, "SUBSCRIBE written");
  // SUBACK (section 3.9): 90 03, the SUBSCRIBE's packet id, granted QoS 1.
  script.deliver(new Uint8Array([0x90, 3, packet[2], packet[3], 1]));
  const sub = await within(subscribing, "SUBACK");
  return { sub, messages: sub[Symbol.asyncIterator]() };
}

Deno.test("ack on consume: a consumer working through a chunk's messages acknowledges them in one write", async () => {
  const { client, script } = await openScripted();
  try {
    const { messages } = await subscribed(client, script);
    script.deliver(new Uint8Array([...publish(1), ...publish(2), ...publish(3)]));
    for (let k = 0; k < 3; k++) await within(messages.next(), `message ${k + 1}`);
    const waiting = messages.next(); // nothing buffered: the third is consumed, all may go
    await settle();
    assert.deepEqual(script.written.map((chunk) => [...chunk]), [
      [...puback(1), ...puback(2), ...puback(3)],
    ]);
    await client.close();
    await waiting.catch(() => {});
  } finally {
    await client.close();
  }
});

Deno.test("ack on consume: a consumer that waits for the next message sends its acknowledgement without waiting for a timer", async () => {
  const { client, script } = await openScripted();
  try {
    const { messages } = await subscribed(client, script);
    script.deliver(new Uint8Array(publish(1)));
    await within(messages.next(), "message 1");
    const waiting = messages.next();
    // Microtasks only: a flush put off to a timer would not have run yet.
    for (let turn = 0; turn < 50 && script.written.length === 0; turn++) await null;
    assert.deepEqual(script.written.map((chunk) => [...chunk]), [puback(1)]);
    await client.close();
    await waiting.catch(() => {});
  } finally {
    await client.close();
  }
});

Deno.test("ack on consume: a consumer busy with a buffered message still gets the earlier acknowledgements out", async () => {
  const { client, script } = await openScripted();
  try {
    const { messages } = await subscribed(client, script);
    script.deliver(new Uint8Array([...publish(1), ...publish(2)]));
    await within(messages.next(), "message 1");
    await within(messages.next(), "message 2"); // consumes 1; 2 stays in hand
    await settle();
    assert.deepEqual(script.written.map((chunk) => [...chunk]), [puback(1)]);
  } finally {
    await client.close();
  }
});
