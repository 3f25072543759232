/**
 * The sans-IO protocol machines, for tools that drive MQTT themselves (a
 * simulator, a bridge, a test peer): packets, commands and the current time go
 * in; packets to send, delivered messages and the next deadline come out. No
 * sockets, no timers, no clock. The client's {@linkcode Session} and the
 * server's {@linkcode ServerSession} share the QoS flows ({@linkcode Flows}).
 *
 * ```ts
 * import { ClientSessionState, Session } from "./session.ts";
 * import type { Packet } from "./mod.ts";
 *
 * const sent: Packet[] = [];
 * const session = new Session(
 *   { clientId: "c1", clean: true, keepAlive: 30, maxInflight: 10, pingTimeout: 5000, connectTimeout: 10000 },
 *   new ClientSessionState(),
 *   {
 *     send: (p) => sent.push(p),
 *     deliver: (p) => console.log("message on", p.topic),
 *     connected: () => {},
 *     closed: (err) => console.log("closed", err),
 *   },
 * );
 * session.connect(0);
 * session.receive({ type: "connack", sessionPresent: false, returnCode: 0 }, 5);
 * session.publish({ topic: "a", payload: new Uint8Array([1]), qos: 1, retain: false }, 6, () => console.log("acked"));
 * session.receive({ type: "puback", packetId: 1 }, 7);
 * console.log(sent.map((p) => p.type)); // [ "connect", "publish" ]
 * ```
 *
 * @module
 */
export { RESUBSCRIBE_BATCH, Session } from "./lib/session/session.ts";
export { ClientSessionState, PendingRequest } from "./lib/session/client_state.ts";
export { type AckPacket, type FlowOptions, type FlowOutput, Flows } from "./lib/session/flows.ts";
export { AckQueue, type AckStatus, PendingAck, settleAck } from "./lib/session/acks.ts";
export {
  type ServerCloseReason,
  type ServerConnectionLimits,
  ServerSession,
  type ServerSessionHandler,
  type ServerSessionOptions,
} from "./lib/session/server_session.ts";
export {
  DEFAULT_MAX_QUEUED,
  DEFAULT_MAX_QUEUED_BYTES,
  MAX_PACKET_ID,
  OutgoingPublish,
  SessionState,
  type SessionStateOptions,
} from "./lib/session/state.ts";
export { DEFAULT_LIMITS, type ServerLimits } from "./lib/session/connack.ts";
export type {
  OutgoingMessage,
  PublishAck,
  PublishCallback,
  SessionHandler,
  SessionOptions,
  SessionStateName,
  SubackCode,
  SubscribeCallback,
  UnsubscribeCallback,
} from "./lib/session/types.ts";
