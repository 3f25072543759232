/**
 * A Deno-native MQTT client with zero dependencies.
 *
 * @module
 */
export * from "./lib/codec/packet.ts";
export * from "./lib/errors.ts";
export type { Transport } from "./lib/transports/transport.ts";
