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

/** Protocol level carried in CONNECT: 4 is MQTT 3.1.1, 5 is MQTT 5.0. */
export type ProtocolVersion = 4 | 5;

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
  | "disconnect"
  | "auth";

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
  /** Discriminant: CONNECT. */
  type: "connect";
  /** "MQTT" for 3.1.1. */
  protocolName: string;
  /** 4 for 3.1.1. */
  protocolLevel: number;
  /** Client identifier; may be empty only with `clean` (MQTT-3.1.3-7). */
  clientId: string;
  /** CleanSession flag: start a fresh session and discard it at the end. */
  clean: boolean;
  /** Keep-alive interval in seconds, 0..65535; 0 turns keep-alive off. */
  keepAlive: number;
  /** User name, if any. */
  username?: string;
  /** Password, only with `username` in 3.1.1 (MQTT-3.1.2-22); decoded: aliases the input. */
  password?: Uint8Array;
  /** Last Will to publish if the connection ends without DISCONNECT. */
  will?: Will;
}

/** CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3). */
export type ConnackReturnCode = 0 | 1 | 2 | 3 | 4 | 5;

/** CONNACK: server answers a CONNECT. */
export interface ConnackPacket {
  /** Discriminant: CONNACK. */
  type: "connack";
  /** Whether the server resumed a stored session. */
  sessionPresent: boolean;
  /** 0 accepted, 1..5 refused (see {@linkcode CONNACK_RETURN_CODE_NAMES}). */
  returnCode: ConnackReturnCode;
}

/** PUBLISH: an application message. */
export interface PublishPacket {
  /** Discriminant: PUBLISH. */
  type: "publish";
  /** Topic name, without wildcards. */
  topic: string;
  /** Application message. Decoded: a view aliasing the input bytes, not a copy. */
  payload: Uint8Array;
  /** Quality of service. */
  qos: QoS;
  /** RETAIN flag. */
  retain: boolean;
  /** DUP flag: a re-delivery; always false for QoS 0 (MQTT-3.3.1-2). */
  dup: boolean;
  /** 1..65535 when qos > 0; `undefined` for QoS 0 (a decoded PUBLISH always has the key). */
  packetId?: number;
}

/** PUBACK: QoS 1 acknowledgement. */
export interface PubackPacket {
  /** Discriminant: PUBACK. */
  type: "puback";
  /** Packet identifier, 1..65535. */
  packetId: number;
}

/** PUBREC: QoS 2, part 1. */
export interface PubrecPacket {
  /** Discriminant: PUBREC. */
  type: "pubrec";
  /** Packet identifier, 1..65535. */
  packetId: number;
}

/** PUBREL: QoS 2, part 2. */
export interface PubrelPacket {
  /** Discriminant: PUBREL. */
  type: "pubrel";
  /** Packet identifier, 1..65535. */
  packetId: number;
}

/** PUBCOMP: QoS 2, part 3. */
export interface PubcompPacket {
  /** Discriminant: PUBCOMP. */
  type: "pubcomp";
  /** Packet identifier, 1..65535. */
  packetId: number;
}

/** One topic filter with its requested QoS in a SUBSCRIBE. */
export interface SubscriptionRequest {
  /** Topic filter, may contain `+` and `#`. */
  filter: string;
  /** Quality of service. */
  qos: QoS;
}

/** SUBSCRIBE: client asks for one or more topic filters. */
export interface SubscribePacket {
  /** Discriminant: SUBSCRIBE. */
  type: "subscribe";
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** Requested filters, at least one (MQTT-3.8.3-3). */
  subscriptions: SubscriptionRequest[];
}

/** SUBACK return code: the granted QoS, or 0x80 for failure. */
export type SubackReturnCode = 0 | 1 | 2 | 0x80;

/** SUBACK: server answers a SUBSCRIBE, one return code per filter, in order. */
export interface SubackPacket {
  /** Discriminant: SUBACK. */
  type: "suback";
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** One code per filter of the SUBSCRIBE, in order (MQTT-3.9.3-1). */
  returnCodes: SubackReturnCode[];
}

/** UNSUBSCRIBE: client removes one or more topic filters. */
export interface UnsubscribePacket {
  /** Discriminant: UNSUBSCRIBE. */
  type: "unsubscribe";
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** Topic filters to remove, at least one (MQTT-3.10.3-2). */
  filters: string[];
}

/** UNSUBACK: server answers an UNSUBSCRIBE. */
export interface UnsubackPacket {
  /** Discriminant: UNSUBACK. */
  type: "unsuback";
  /** Packet identifier, 1..65535. */
  packetId: number;
}

/** PINGREQ: keep-alive probe. */
export interface PingreqPacket {
  /** Discriminant: PINGREQ. */
  type: "pingreq";
}

/** PINGRESP: answer to PINGREQ. */
export interface PingrespPacket {
  /** Discriminant: PINGRESP. */
  type: "pingresp";
}

/** DISCONNECT: client closes the session cleanly. */
export interface DisconnectPacket {
  /** Discriminant: DISCONNECT. */
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
