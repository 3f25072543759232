/**
 * A 5.0 CONNECT against the real brokers of the interop matrix that speak only MQTT 3.1.1 (NATS
 * Server 2.9 refuses it with the 3.1.1 CONNACK 0x01; RabbitMQ 3.10 closes the connection without
 * a CONNACK): a clear error with `protocolVersion: 5`, 3.1.1 agreed with `protocolVersion:
 * "auto"`. A broker that is not installed is ignored, its reason printed. (The embedded broker
 * speaks 5.0 now: tests/broker_v5_test.ts.)
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, ConnectionRefusedError, MqttError } from "../mod.ts";
import { type BrokerName, startBroker, unavailable } from "./interop/brokers.ts";
import { fresh, take } from "./client_helpers.ts";

function fallbackTest(broker: BrokerName, refusal: "connack" | "close"): void {
  const why = unavailable(broker);
  if (why !== undefined) console.warn(`client_v5_fallback: ${broker} is skipped: ${why}`);
  Deno.test({
    name: `5.0 against ${broker} (3.1.1 only): a clear error at 5, 3.1.1 agreed with "auto"`,
    ignore: why !== undefined,
    fn: async () => {
      await using server = await startBroker(broker);
      const error = await connect(server.url, { protocolVersion: 5, reconnect: false }).then(
        () => undefined,
        (e) => e,
      );
      assert.ok(error instanceof MqttError, String(error));
      if (refusal === "connack") {
        assert.ok(error instanceof ConnectionRefusedError, String(error));
        assert.equal(error.reasonCode, 0x84);
        assert.match(error.message, /does not speak MQTT 5\.0/);
      } else {
        assert.equal(error.code, "CONNECTION_CLOSED");
        assert.match(error.message, /before CONNACK: the broker may not speak MQTT 5\.0/);
      }

      await using client = await connect(server.url, {
        protocolVersion: "auto",
        clientId: fresh("auto"),
        sessionExpiryInterval: 60, // a 5.0 option, left out of the 3.1.1 CONNECT
      });
      assert.equal(client.protocolVersion, 4);
      const topic = fresh("auto/t");
      const sub = await client.subscribe(topic, { qos: 1 });
      await client.publish(topic, "at 3.1.1", { qos: 1 });
      const [msg] = await take(sub, 1, "the message at 3.1.1");
      assert.equal(msg.text(), "at 3.1.1");
    },
  });
}

fallbackTest("nats", "connack");
fallbackTest("rabbitmq", "close");
