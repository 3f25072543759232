/**
 * Review finding: under MQTT 3.1.1 Mosquitto (2.0, default config) takes at
 * most `max_inflight_messages` (20) QoS 2 PUBLISH in flight from a client; it
 * answers the ones beyond with a PUBREC (its 5.0 reason 0x97 Quota exceeded,
 * which 3.1.1 cannot carry) and discards them, then completes the flow with
 * PUBCOMP. A 3.1.1 client cannot learn the limit (no Receive Maximum), so
 * with a window of 100 the publishes resolved and 80 % of a burst was lost.
 * The default window is now 20, what Mosquitto takes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import { brokerTest, startMosquitto } from "./broker/mod.ts";
import { fresh, take, within } from "./client_helpers.ts";

brokerTest(
  "review: a burst of QoS 2 publishes with the default window all reach Mosquitto's subscribers (3.1.1)",
  async () => {
    await using broker = await startMosquitto();
    const topic = fresh("rv-qos2-burst");
    const sub = await connect(broker.url, { protocolVersion: 4 });
    const pub = await connect(broker.url, { protocolVersion: 4 });
    try {
      const messages = await sub.subscribe(topic, { qos: 2 });
      const count = 200;
      const sent = [];
      for (let i = 0; i < count; i++) sent.push(pub.publish(topic, String(i), { qos: 2 }));
      await within(Promise.all(sent), "the publishes to settle");
      const got = await take(messages, count, "every published message");
      assert.deepEqual(got.map((m) => Number(m.text())), [...Array(count).keys()]);
    } finally {
      await sub.close();
      await pub.close();
    }
  },
);
