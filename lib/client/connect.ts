/**
 * `connect()`: the entry point of the client API.
 *
 * @module
 */
import { type MqttClient, openClient } from "./client.ts";
import type { ConnectOptions } from "./options.ts";
import { type BrokerUrls, resolveServers } from "./servers.ts";

/**
 * Connects to an MQTT broker and resolves once the broker accepts the
 * connection (CONNACK return code 0).
 *
 * Several URLs (nodes of a cluster, or independent brokers; schemes may be
 * mixed) are tried in order until one accepts; the first `connect()` fails
 * with the last server's error when none does. A lost connection moves on to
 * the next server, and the reconnect backoff applies per round through the
 * list. `client.url` and the `connect` event say which server the client is
 * on. With `clean: false` a cluster that shares sessions resumes the session
 * on the new node; a server without it (`sessionPresent` false) gets the
 * subscriptions again, and in-flight messages are sent again.
 *
 * URLs: `mqtt://host[:1883]`, `mqtts://host[:8883]` (TLS), `ws://host[:80]/mqtt`
 * and `wss://host[:443]/mqtt` (WebSocket). Rejects with
 * `ConnectionRefusedError` when the broker refuses (its `returnCode` and
 * `reason` name why; under MQTT 5.0 its `reasonCode` and `reasonString` too,
 * and a broker that does not speak 5.0 is named as such), `MqttError` with
 * code `CONNECT_TIMEOUT` after
 * `connectTimeout`, `ABORTED` when `signal` aborts, `TRANSPORT_ERROR` when the
 * network or TLS fails, and `INVALID_OPTION` for bad options.
 *
 * @example
 * ```ts ignore
 * import { connect } from "./connect.ts";
 * await using client = await connect("mqtt://localhost:1883", {
 *   clientId: "sensor-1",
 *   keepAlive: 30,
 *   will: { topic: "status/sensor-1", payload: "offline", qos: 1, retain: true },
 * });
 * console.log(client.sessionPresent);
 * await client.publish("status/sensor-1", "online", { qos: 1, retain: true });
 *
 * // MQTT 5.0: properties, reason codes and the server's limits.
 * await using v5 = await connect("mqtt://localhost:1883", {
 *   protocolVersion: 5,
 *   sessionExpiryInterval: 3600,
 *   userProperties: [["app", "demo"]],
 * });
 * console.log(v5.connack.properties.receiveMaximum);
 * const { reasonCode } = (await v5.publish("a/b", "hi", { qos: 1 }))!;
 * ```
 *
 * @example A cluster: the client fails over between its nodes
 * ```ts ignore
 * import { connect } from "./connect.ts";
 * await using client = await connect(
 *   ["mqtt://node1:1883", "mqtt://node2:1883", "wss://node3/mqtt"],
 *   { clientId: "sensor-1", clean: false },
 * );
 * client.addEventListener("connect", (e) => console.log("on", e.detail.url));
 * ```
 */
export async function connect(
  url: BrokerUrls,
  options: ConnectOptions = {},
): Promise<MqttClient> {
  const servers = resolveServers(url, options);
  return await openClient(servers.current, servers);
}
