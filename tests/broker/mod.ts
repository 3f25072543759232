/**
 * Test harness around a real Mosquitto: {@linkcode startMosquitto}, certificates, the
 * `mosquitto_pub`/`mosquitto_sub` peers and a fault-injection proxy.
 *
 * @example
 * ```ts
 * import { brokerTest, startMosquitto, startProxy } from "./broker/mod.ts";
 *
 * brokerTest("survives a cut link", async () => {
 *   await using broker = await startMosquitto({ persistence: true });
 *   await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
 *   // connect the client to proxy.url, then proxy.cut(), broker.kill("SIGKILL"), broker.restart()
 * });
 * ```
 *
 * @module
 */
export * from "./mosquitto.ts";
export * from "./dynsec.ts";
export * from "./certs.ts";
export * from "./cli.ts";
export * from "./ports.ts";
export * from "./proxy.ts";
export * from "./nats.ts";
export * from "./needs.ts";
