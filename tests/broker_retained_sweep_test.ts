/**
 * Expired retained messages leave retained storage on a timer of their own
 * (MQTT 5.0 section 3.3.2.3.3), not only when a subscriber meets them, a
 * bounded batch at a time; the timer exists only while an expiring retained
 * message is held, and closing the broker ends it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { RetainedStore } from "../lib/broker/retained.ts";
import { bytes, connect5, delay, withBroker } from "./broker_helpers.ts";

Deno.test("retained sweep: a retained message whose expiry ends is dropped without a subscriber meeting it", async () => {
  await withBroker(async (port, broker) => {
    const { client } = await connect5(port, { clientId: "pub" });
    for (
      const [topic, properties] of [["s/short", { messageExpiryInterval: 1 }], [
        "s/kept",
        {},
      ]] as const
    ) {
      await client.send({
        type: "publish",
        topic,
        payload: bytes(topic),
        qos: 1,
        retain: true,
        dup: false,
        packetId: 1,
        properties,
      });
      await client.expect("puback");
    }
    assert.equal(broker.stats().retained, 2);
    await delay(1300);
    assert.equal(broker.stats().retained, 1);
    client.close();
  });
});

Deno.test("retained sweep: closing the broker ends the timer of a retained message that expires later", async () => {
  // Deno's sanitizers do not see a pending timer here, so a child process shows it: one
  // left armed by close() would keep the child running for the message's hour.
  const code = `
    import { Broker } from ${JSON.stringify(new URL("../broker.ts", import.meta.url).href)};
    import { bytes, connect5 } from ${
    JSON.stringify(new URL("./broker_helpers.ts", import.meta.url).href)
  };
    const broker = new Broker();
    const { port } = await broker.listen({ port: 0 });
    const { client } = await connect5(port, { clientId: "pub" });
    await client.send({
      type: "publish", topic: "later", payload: bytes("x"), qos: 1, retain: true, dup: false,
      packetId: 1, properties: { messageExpiryInterval: 3600 },
    });
    await client.expect("puback");
    if (broker.stats().retained !== 1) throw new Error("not retained");
    client.close();
    await broker.close();
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), 20_000);
  });
  const outcome = await Promise.race([child.output(), timedOut]);
  clearTimeout(timer);
  if (outcome === "timeout") {
    child.kill("SIGKILL");
    await child.output();
    assert.fail("the process did not end after broker.close(): a timer is left");
  }
  assert.equal(outcome.code, 0, new TextDecoder().decode(outcome.stderr));
});

Deno.test("retained sweep: one batch takes at most its bound, earliest first, and skips replaced messages", () => {
  const store = new RetainedStore({ maxRetained: 10_000, maxRetainedBytes: 1 << 20 });
  const payload = new Uint8Array([1]);
  for (let i = 0; i < 2500; i++) store.update(`t/${i}`, payload, 0, { expiresAt: 1000 + i });
  // Replaced with a later expiry: its first entry is stale.
  store.update("t/0", payload, 0, { expiresAt: 9000 });
  assert.equal(store.nextExpiry(), 1000);
  const batch = store.takeExpired(5000, 1000);
  assert.equal(batch.length, 999); // 1,000 looked at, the stale t/0 among them
  assert.equal(batch[0].topic, "t/1");
  assert.equal(batch.at(-1)!.topic, "t/999");
  assert.equal(store.takeExpired(1500, 1000).length, 0); // t/1000 ends at 2000
  assert.equal(store.takeExpired(9000, 10_000).length, 1501); // the rest and t/0
});
