/**
 * The session's contract with its driver (the client). The session is a
 * finite-state machine with no I/O and no clock: the driver feeds it packets,
 * commands and the current time; it answers through a {@linkcode SessionHandler}.
 *
 * @module
 */
import type {
  AuthPacket,
  ConnackPacket,
  Packet,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubackReturnCode,
  Will,
} from "../codec/packet.ts";
import type { AckProperties, ConnectProperties, PublishProperties } from "../codec/properties.ts";
import type { SubackReasonCode, UnsubackReasonCode } from "../codec/reason_codes.ts";
import type { MqttError } from "../errors.ts";
import type { PendingAck } from "./acks.ts";

/** Connection-level state of a {@linkcode Session}. */
export type SessionStateName = "disconnected" | "connecting" | "connected" | "disconnecting";

/** What the session needs to build CONNECT and run keep-alive and flow control. */
export interface SessionOptions {
  /** Client identifier sent in CONNECT. */
  clientId: string;
  /** Clean session flag of CONNECT. */
  clean: boolean;
  /** Seconds; 0 turns keep-alive off. */
  keepAlive: number;
  /** User name sent in CONNECT, if any. */
  username?: string;
  /** Password sent in CONNECT, if any. */
  password?: Uint8Array;
  /** Last Will sent in CONNECT, if any. */
  will?: Will;
  /** Most outgoing QoS 1/2 PUBLISH awaiting acknowledgement at once. */
  maxInflight: number;
  /** Milliseconds to wait for PINGRESP (or any packet) after a PINGREQ before the link is dead. */
  pingTimeout: number;
  /** Milliseconds to wait for CONNACK after CONNECT. */
  connectTimeout: number;
  /** Protocol level of CONNECT: 4 (MQTT 3.1.1, the default) or 5 (MQTT 5.0). */
  protocolVersion?: ProtocolVersion;
  /** MQTT 5.0 CONNECT properties. */
  properties?: ConnectProperties;
  /**
   * Drops in a row right after the same publish before it fails with
   * `PUBLISH_REFUSED`. Default 3 (`MAX_STRIKES`); a client with several
   * servers allows 3 per server, as each may drop it once in a failover.
   */
  maxStrikes?: number;
  /**
   * Acknowledge incoming QoS 1/2 messages when the driver says the
   * application consumed them (`Session.acknowledge` with the
   * {@linkcode PendingAck} given to `deliver`), not on delivery. @default {false}
   */
  deferAcks?: boolean;
}

/** An outgoing application message as the caller gives it. */
export interface OutgoingMessage {
  /** Topic name to publish to. */
  topic: string;
  /** Message body; the session keeps a reference until the flow completes. */
  payload: Uint8Array;
  /** Quality of service of the flow. */
  qos: QoS;
  /** Whether the server retains the message. */
  retain: boolean;
  /** MQTT 5.0 PUBLISH properties, if any. */
  properties?: PublishProperties;
  /**
   * MQTT 5.0: when its Message Expiry Interval ends, on the session's clock
   * (ms). A message still waiting then is not sent; one sent later carries
   * the interval that remains. Never stored: it is of this process's clock.
   */
  expiresAt?: number;
  /**
   * MQTT 5.0: wall-clock time (ms since the Unix epoch) the application
   * published it, for a message with a Message Expiry Interval. Stored with
   * it, so that a process loading it after a restart knows how much of the
   * interval is left (`SessionStateOptions.clock`).
   */
  publishedAt?: number;
}

/** MQTT 5.0: the server's answer to a QoS 1/2 publish (PUBACK, or PUBREC for QoS 2). */
export interface PublishAck {
  /** Reason code: 0x00 success, 0x10 no matching subscribers (also a success). */
  reasonCode: number;
  /** The acknowledgement's properties (reason string, user properties), if any. */
  properties?: AckProperties;
}

/**
 * Completion callback of a publish: `error` is undefined on success; `ack`
 * is the server's answer to a QoS 1/2 publish under MQTT 5.0.
 */
export type PublishCallback = (error?: MqttError, ack?: PublishAck) => void;
/** A SUBACK's code for one filter: 3.1.1 return code or 5.0 reason code (0x80 and up: refused). */
export type SubackCode = SubackReturnCode | SubackReasonCode;
/** Completion callback of a subscribe: the return codes in filter order, or an error. */
export type SubscribeCallback = (
  error: MqttError | undefined,
  returnCodes?: SubackCode[],
) => void;
/** Completion callback of an unsubscribe; `reasonCodes` of an MQTT 5.0 UNSUBACK, in filter order. */
export type UnsubscribeCallback = (error?: MqttError, reasonCodes?: UnsubackReasonCode[]) => void;

/** The session's outputs; the driver carries them out. */
export interface SessionHandler {
  /** Write this packet to the transport (the driver may coalesce writes per tick). */
  send(packet: Packet): void;
  /**
   * Hand this application message to the user; called exactly once per QoS 2
   * message. With `deferAcks`, a QoS 1/2 message comes with the
   * {@linkcode PendingAck} to pass to `Session.acknowledge` once consumed.
   */
  deliver(packet: PublishPacket, ack?: PendingAck): void;
  /** CONNACK accepted; the session is now connected. */
  connected(connack: ConnackPacket): void;
  /**
   * The connection must end: refused CONNACK, protocol violation, keep-alive or
   * connect timeout, or DISCONNECT sent (`error` undefined). The driver closes the transport.
   */
  closed(error: MqttError | undefined): void;
  /**
   * A subscription the session re-registered by itself failed: after a
   * CONNACK without session present, the session sends SUBSCRIBE again for
   * every remembered subscription (filters granted by an earlier SUBACK and not
   * unsubscribed since), before any publish; their SUBACKs never reach a
   * `SubscribeCallback`. Called once per filter the server refused (return
   * code 0x80: a `SubscribeError`, code `SUBSCRIBE_FAILED`) or answered with a
   * SUBACK of the wrong length (a `ProtocolError`, code `UNEXPECTED_PACKET`;
   * the connection is then closed as for any protocol violation,
   * MQTT-3.8.4-5). The filter is forgotten: it is not re-registered again. The
   * driver typically ends the matching local subscriptions with `error`.
   */
  resubscribeFailed?(filter: string, error: MqttError): void;
  /**
   * MQTT 5.0 enhanced authentication (section 4.12): the server sent AUTH.
   * A challenge (`finished` false, reason 0x18) is answered with
   * `session.answerAuth(data)` or abandoned with `session.authFailed(error)`;
   * `finished` true is the AUTH 0x00 that ends a re-authentication.
   */
  auth?(packet: AuthPacket, finished: boolean): void;
}
