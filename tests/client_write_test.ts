/**
 * The client's write path: a QoS 0 publish settles on the transport's own write, so a write
 * that fails after the packet was handed over rejects the publish instead of resolving it as
 * if the message had left.
 *
 * @module
 */
import assert from "node:assert/strict";
import { hasCode, within } from "./client_helpers.ts";
import { openScripted as open, settle } from "./scripted_transport.ts";

Deno.test("QoS 0 publish: a transport write that fails rejects it with TRANSPORT_ERROR", async () => {
  const { client, script } = await open();
  try {
    script.failWrites(new Error("the link went down"));
    await within(
      assert.rejects(client.publish("a", "lost", { qos: 0 }), hasCode("TRANSPORT_ERROR")),
      "the QoS 0 publish to settle",
    );
    assert.equal(script.written.length, 0);
  } finally {
    script.release();
    await client.close();
  }
});

Deno.test("QoS 0 publish: a write that fails after being held rejects it too", async () => {
  const { client, script } = await open();
  try {
    script.holdWrites();
    let settled = false;
    const publishing = client.publish("a", "late", { qos: 0 }).finally(() => settled = true);
    await settle();
    assert.equal(settled, false, "resolved before the transport finished the write");
    script.failWrites(new Error("the link went down"));
    script.release();
    await within(assert.rejects(publishing, hasCode("TRANSPORT_ERROR")), "the QoS 0 publish");
  } finally {
    script.release();
    await client.close();
  }
});

Deno.test("QoS 0 publish: resolves once the transport has written it", async () => {
  const { client, script } = await open();
  try {
    script.holdWrites();
    let settled = false;
    const publishing = client.publish("a", "ok", { qos: 0 }).finally(() => settled = true);
    await settle();
    assert.equal(settled, false, "resolved before the transport finished the write");
    script.release();
    await within(publishing, "the QoS 0 publish");
    // PUBLISH "a" with payload "ok" (section 3.3): 30 05 00 01 61 6f 6b.
    assert.deepEqual([...script.written[0]], [0x30, 5, 0, 1, 0x61, 0x6f, 0x6b]);
  } finally {
    script.release();
    await client.close();
  }
});
