/**
 * MQTT control packets as plain objects: a discriminated union on `type`.
 *
 * The shapes are protocol-version neutral where they can be; MQTT 5.0 will add
 * optional `properties` and reason codes to these same objects.
 *
 * @module
 */

/** Quality of service level of a PUBLISH or a subscription. */
export type QoS = 0 | 1 | 2;

/** Protocol level carried in CONNECT: 4 is MQTT 3.1.1 (5 is reserved for MQTT 5.0, not built yet). */
export type ProtocolVersion = 4;

/** Name of a control packet type, the discriminant of {@linkcode Packet}. */
export type PacketTypeName =
  | "connect"
  | "connack"
  | "publish"
  | "puback"
  | "pubrec"
  | "pubrel"
  | "pubcomp"
  | "subscribe"
  | "suback"
  | "unsubscribe"
  | "unsuback"
  | "pingreq"
  | "pingresp"
  | "disconnect";

/** The Last Will message a CONNECT asks the server to publish if the client vanishes. */
export interface Will {
  /** Topic name the will is published to. */
  topic: string;
  /** Will message body. */
  payload: Uint8Array;
  /** QoS the will is published with. */
  qos: QoS;
  /** Whether the will is retained. */
  retain: boolean;
}

/** CONNECT: client asks to open a session. */
export interface ConnectPacket {
  type: "connect";
  /** "MQTT" for 3.1.1. */
  protocolName: string;
  /** 4 for 3.1.1. */
  protocolLevel: number;
  clientId: string;
  clean: boolean;
  /** Keep-alive interval in seconds, 0..65535; 0 turns keep-alive off. */
  keepAlive: number;
  username?: string;
  password?: Uint8Array;
  will?: Will;
}

/** CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3). */
export type ConnackReturnCode = 0 | 1 | 2 | 3 | 4 | 5;

/** CONNACK: server answers a CONNECT. */
export interface ConnackPacket {
  type: "connack";
  sessionPresent: boolean;
  returnCode: ConnackReturnCode;
}

/** PUBLISH: an application message. */
export interface PublishPacket {
  type: "publish";
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  /** Present (1..65535) when qos > 0; absent for QoS 0. */
  packetId?: number;
}

/** PUBACK: QoS 1 acknowledgement. */
export interface PubackPacket {
  type: "puback";
  packetId: number;
}

/** PUBREC: QoS 2, part 1. */
export interface PubrecPacket {
  type: "pubrec";
  packetId: number;
}

/** PUBREL: QoS 2, part 2. */
export interface PubrelPacket {
  type: "pubrel";
  packetId: number;
}

/** PUBCOMP: QoS 2, part 3. */
export interface PubcompPacket {
  type: "pubcomp";
  packetId: number;
}

/** One topic filter with its requested QoS in a SUBSCRIBE. */
export interface SubscriptionRequest {
  filter: string;
  qos: QoS;
}

/** SUBSCRIBE: client asks for one or more topic filters. */
export interface SubscribePacket {
  type: "subscribe";
  packetId: number;
  subscriptions: SubscriptionRequest[];
}

/** SUBACK return code: the granted QoS, or 0x80 for failure. */
export type SubackReturnCode = 0 | 1 | 2 | 0x80;

/** SUBACK: server answers a SUBSCRIBE, one return code per filter, in order. */
export interface SubackPacket {
  type: "suback";
  packetId: number;
  returnCodes: SubackReturnCode[];
}

/** UNSUBSCRIBE: client removes one or more topic filters. */
export interface UnsubscribePacket {
  type: "unsubscribe";
  packetId: number;
  filters: string[];
}

/** UNSUBACK: server answers an UNSUBSCRIBE. */
export interface UnsubackPacket {
  type: "unsuback";
  packetId: number;
}

/** PINGREQ: keep-alive probe. */
export interface PingreqPacket {
  type: "pingreq";
}

/** PINGRESP: answer to PINGREQ. */
export interface PingrespPacket {
  type: "pingresp";
}

/** DISCONNECT: client closes the session cleanly. */
export interface DisconnectPacket {
  type: "disconnect";
}

/** Any MQTT control packet. */
export type Packet =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | PubackPacket
  | PubrecPacket
  | PubrelPacket
  | PubcompPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingreqPacket
  | PingrespPacket
  | DisconnectPacket;

/** Names of the CONNACK return codes, indexed by code (section 3.2.2.3). */
export const CONNACK_RETURN_CODE_NAMES: readonly string[] = [
  "connection accepted",
  "unacceptable protocol version",
  "identifier rejected",
  "server unavailable",
  "bad user name or password",
  "not authorized",
];
