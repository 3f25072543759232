/**
 * Ending a subscription by the application's choice (leaving its `for await`
 * loop, `sub.unsubscribe()`, `client.unsubscribe(filter)`) on a persistent
 * session, against the real Mosquitto (issue 15, found by review).
 *
 * The QoS 1/2 messages still buffered in the subscription were declined (never
 * acknowledged on this connection): each kept one of the broker's in-flight
 * slots until the next connection, so with the window full the client got no
 * QoS 1/2 message on any other filter again (0 of 10), and the next connection
 * got the declined messages again with no subscription for them. Now they are
 * acknowledged and dropped, like the held messages `client.unsubscribe()`
 * drops. Mosquitto runs with `max_inflight_messages 5` so that the window
 * fills with the messages of one loop; its default (20) only takes longer.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type Subscription } from "../mod.ts";
import { brokerTest, logged, startMosquitto } from "./broker/mod.ts";
import { fresh, take, within } from "./client_helpers.ts";

const WINDOW = "max_inflight_messages 5\n";

/** Resolves once `sub` has buffered `count` messages (the broker's window is then full). */
async function buffered(sub: Subscription, count: number): Promise<void> {
  while (sub.buffered < count) await new Promise((r) => setTimeout(r, 10));
}

const ENDS = {
  "leaving the loop": async (sub: Subscription) => {
    for await (const _ of sub) break;
  },
  "sub.unsubscribe()": async (sub: Subscription) => {
    await take(sub, 1, "the first message of a");
    await sub.unsubscribe();
  },
  "client.unsubscribe(filter)": async (
    sub: Subscription,
    client: { unsubscribe(f: string): Promise<void> },
  ) => {
    await take(sub, 1, "the first message of a");
    await client.unsubscribe("a");
  },
};

for (const protocolVersion of [4, 5] as const) {
  const session = protocolVersion === 5 ? { sessionExpiryInterval: 300 } : {};
  for (const [how, end] of Object.entries(ENDS)) {
    brokerTest(
      `${how} with QoS 1 messages buffered acknowledges them: other subscriptions go on, the next connection gets none again (v${protocolVersion})`,
      async () => {
        await using broker = await startMosquitto({ extraConfig: WINDOW });
        const id = fresh("leave");
        const options = { clientId: id, clean: false, protocolVersion, ...session } as const;
        const sub = await connect(broker.url, options);
        const pub = await connect(broker.url, { clientId: `${id}-p`, protocolVersion });
        try {
          const a = await sub.subscribe("a", { qos: 1, bufferSize: 100 });
          const b = await sub.subscribe("b", { qos: 1 });
          for (let i = 0; i < 10; i++) await pub.publish("a", `a${i}`, { qos: 1 });
          await within(buffered(a, 5), "a full window of a");
          await end(a, sub);
          for (let i = 0; i < 10; i++) await pub.publish("b", `b${i}`, { qos: 1 });
          const got = await take(b, 10, "the messages of b");
          assert.deepEqual(got.map((m) => m.text()), [...Array(10)].map((_, i) => `b${i}`));
        } finally {
          await sub.close();
        }
        // Only once the broker has read the DISCONNECT: a connection that finds the old one still
        // open takes the session over, and Mosquitto then drops the old connection's unread bytes
        // (the last acknowledgements among them), so their messages would come back.
        await logged(broker, `Client ${id} disconnected`);
        // The next connection of the session: the messages of a left behind do not come back.
        const again = await connect(broker.url, options);
        try {
          const a = await again.subscribe("a", { qos: 1 });
          await pub.publish("a", "end", { qos: 1 });
          const [first] = await take(a, 1, "the next message of a");
          assert.equal(first.text(), "end");
        } finally {
          await again.close();
          await pub.close();
        }
      },
    );
  }
}
