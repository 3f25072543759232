/**
 * A Deno-native MQTT 3.1.1 client with zero dependencies: publish and
 * subscribe at QoS 0, 1 and 2, Last Will, retained messages, clean and
 * persistent sessions, username/password, TLS with client certificates, over
 * TCP, TLS or WebSocket.
 *
 * ```ts ignore
 * import { connect } from "./mod.ts";
 *
 * await using client = await connect("mqtt://localhost:1883", { clientId: "sensor-1" });
 * const sub = await client.subscribe("sensors/+/temp", { qos: 1 });
 * await client.publish("sensors/1/temp", "21.5", { qos: 2 });
 * for await (const msg of sub) {
 *   console.log(msg.topic, msg.text(), msg.qos, msg.retain);
 *   break; // leaving the loop unsubscribes
 * }
 * ```
 *
 * The packet codec and the Web-Streams packet reader and writer are exported
 * too, for tools that speak MQTT at the packet level.
 *
 * @module
 */
export { connect } from "./lib/client/connect.ts";
export {
  type CloseEventDetail,
  type CloseOptions,
  type ConnectEventDetail,
  MqttClient,
  type MqttClientEventMap,
  type MqttClientListener,
  type PublishOptions,
  type PublishResult,
  type ReconnectEventDetail,
  type SubscribeOptions,
} from "./lib/client/client.ts";
export type { BrokerProtocol } from "./lib/client/url.ts";
export type { BrokerUrls } from "./lib/client/servers.ts";
export type { Redirect } from "./lib/client/redirect.ts";
export type { UnclaimedEventDetail } from "./lib/client/held.ts";
export {
  type ConnectOptions,
  DEFAULTS,
  type QueueOptions,
  type ReconnectOptions,
  type TlsOptions,
  type WillOptions,
} from "./lib/client/options.ts";
export type {
  ProtocolVersionOption,
  UserProperties,
  V5ConnectOptions,
} from "./lib/client/v5_options.ts";
export type { ConnackInfo } from "./lib/client/v5_client.ts";
export * from "./lib/store/mod.ts";
export { Message } from "./lib/client/message.ts";
export type { PacketDirection, PacketListener } from "./lib/client/packet_trace.ts";
export type { RequestOptions, RespondOptions } from "./lib/client/request.ts";
export type { AuthHandler, AuthOptions } from "./lib/client/auth.ts";
export { type AckMode, Subscription, type SubscriptionOptions } from "./lib/client/subscription.ts";
export { topicMatches } from "./lib/util/topic_filter.ts";
export * from "./lib/errors.ts";
export * from "./lib/codec/mod.ts";
export { type PacketCallback, PacketFramer, PacketReader } from "./lib/streams/packet_reader.ts";
export { PacketWriter } from "./lib/streams/packet_writer.ts";
export type { Transport } from "./lib/transports/transport.ts";
