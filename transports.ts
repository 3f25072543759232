/**
 * The built-in transports, for users who write a custom `transport` for
 * `connect()` (a proxy, a tunnel, a test harness) on top of them. Plain TCP
 * and TLS use the runtime's sockets; WebSocket uses the web-standard global.
 *
 * ```ts ignore
 * import { connect } from "./mod.ts";
 * import { connectTcp } from "./transports.ts";
 *
 * const client = await connect("mqtt://broker.internal:1883", {
 *   transport: () => connectTcp({ hostname: "127.0.0.1", port: 11883 }), // through a local tunnel
 * });
 * ```
 *
 * @module
 */
export { connectTcp, type TcpConnectOptions, type TcpTlsOptions } from "./lib/transports/tcp.ts";
export { connectWebSocket, type WebSocketConnectOptions } from "./lib/transports/websocket.ts";
export type { Transport } from "./lib/transports/transport.ts";
