/**
 * An embedded MQTT 3.1.1 broker, in-process, for development, tests and small
 * deployments (the role Aedes plays for MQTT.js): TCP, WebSocket and TLS
 * listeners, wildcard routing, QoS 0/1/2, retained messages, wills, clean and
 * persistent sessions (optionally kept on disk), keep-alive enforcement,
 * authentication and authorization hooks, and limits named after Mosquitto's.
 * See docs/broker.md.
 *
 * @example
 * ```ts
 * import { Broker } from "./broker.ts";
 *
 * await using broker = new Broker({
 *   authenticate: ({ username }) => username !== "mallory",
 *   log: console.log,
 * });
 * const { port } = await broker.listen({ port: 0 });
 * console.log(`listening on mqtt://127.0.0.1:${port}`);
 * ```
 *
 * @module
 */
export { Broker, type BrokerPublishOptions } from "./lib/broker/broker.ts";
export type {
  AuthenticateContext,
  BrokerClient,
  BrokerOptions,
  BrokerStats,
  ConnectionInfo,
  EnhancedAuthContext,
  EnhancedAuthResult,
  ListenAddress,
  ListenOptions,
  TlsListenOptions,
} from "./lib/broker/options.ts";
export type { Transport } from "./lib/transports/transport.ts";
export type { QoS } from "./lib/codec/packet.ts";
