/**
 * A publish the broker cannot take, against a real Mosquitto with `max_packet_size 1024`:
 * Mosquitto drops the connection on a larger PUBLISH without a word (MQTT 3.1.1 has none), so
 * the client would resend it after every reconnect, forever, with everything queued behind it
 * waiting. The client gives it up with `PUBLISH_REFUSED` after three drops in a row right after
 * it, and goes on with the rest.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type QoS } from "../mod.ts";
import { brokerTest, startMosquitto } from "./broker/mod.ts";
import { fresh, hasCode, take, within } from "./client_helpers.ts";

for (const qos of [1, 2] as QoS[]) {
  brokerTest(
    `PUBLISH_REFUSED: a QoS ${qos} publish over the broker's max_packet_size settles, the rest arrive`,
    async () => {
      await using broker = await startMosquitto({ extraConfig: "max_packet_size 1024" });
      const topic = fresh("refused");
      const subscriber = await connect(broker.url);
      const publisher = await connect(broker.url, { reconnect: { minDelay: 10, maxDelay: 200 } });
      try {
        const sub = await subscriber.subscribe(topic, { qos });
        const reconnects: number[] = [];
        publisher.addEventListener("reconnect", (e) => reconnects.push(e.detail.attempt));
        const big = publisher.publish(topic, new Uint8Array(4096), { qos });
        // Queued right behind it, in the same write: it must not wait forever.
        const behind = publisher.publish(topic, "behind", { qos });
        await within(
          assert.rejects(big, hasCode("PUBLISH_REFUSED")),
          "the 4 KiB publish to settle",
          10_000,
        );
        await within(behind, "the publish queued behind it", 10_000);
        // A later small publish goes through on the same client.
        await within(publisher.publish(topic, "later", { qos }), "a later publish", 10_000);
        const messages = await take(sub, 2, "the small messages");
        assert.deepEqual(messages.map((m) => m.text()), ["behind", "later"]);
        // Three drops, and no endless reconnecting afterwards.
        assert.equal(reconnects.length, 3, `reconnects: ${reconnects}`);
        // Mosquitto's own account: it dropped the publisher three times, for this packet.
        const drops = (await broker.log()).match(/disconnected due to oversize packet/g) ?? [];
        assert.equal(drops.length, 3);
      } finally {
        await publisher.close();
        await subscriber.close();
      }
    },
  );
}
