/**
 * MQTT control packets as plain objects: a discriminated union on `type`.
 *
 * The shapes are protocol-version neutral where they can be: MQTT 5.0 adds
 * optional `properties` and reason codes to the 3.1.1 objects, which keep
 * their shape. Encoding a 5.0-only field under 3.1.1 throws a
 * `PROTOCOL_VERSION_MISMATCH` error rather than dropping it.
 *
 * @module
 */
import type {
  AckProperties,
  AuthProperties,
  ConnackProperties,
  ConnectProperties,
  DisconnectProperties,
  PublishProperties,
  SubscribeProperties,
  UnsubscribeProperties,
  WillProperties,
} from "./properties.ts";
import type {
  AuthReasonCode,
  ConnectReasonCode,
  DisconnectReasonCode,
  PubackReasonCode,
  PubrelReasonCode,
  SubackReasonCode,
  UnsubackReasonCode,
} from "./reason_codes.ts";

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
  /** MQTT 5.0 Will Properties. */
  properties?: WillProperties;
}

/** CONNECT: client asks to open a session. */
export interface ConnectPacket {
  /** Discriminant: CONNECT. */
  type: "connect";
  /** "MQTT" for 3.1.1 and 5.0. */
  protocolName: string;
  /** 4 for 3.1.1, 5 for 5.0: the packet is encoded and decoded by this level. */
  protocolLevel: number;
  /** Client identifier; may be empty only with `clean` in 3.1.1 (MQTT-3.1.3-7). */
  clientId: string;
  /** CleanSession flag (3.1.1), Clean Start (5.0): start a fresh session. */
  clean: boolean;
  /** Keep-alive interval in seconds, 0..65535; 0 turns keep-alive off. */
  keepAlive: number;
  /** User name, if any. */
  username?: string;
  /** Password, only with `username` in 3.1.1 (MQTT-3.1.2-22); decoded: aliases the input. */
  password?: Uint8Array;
  /** Last Will to publish if the connection ends without DISCONNECT. */
  will?: Will;
  /** MQTT 5.0 CONNECT properties; absent when there are none. */
  properties?: ConnectProperties;
}

/** CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3). */
export type ConnackReturnCode = 0 | 1 | 2 | 3 | 4 | 5;

/** CONNACK: server answers a CONNECT. */
export interface ConnackPacket {
  /** Discriminant: CONNACK. */
  type: "connack";
  /** Whether the server resumed a stored session. */
  sessionPresent: boolean;
  /**
   * MQTT 3.1.1: 0 accepted, 1..5 refused (see {@linkcode CONNACK_RETURN_CODE_NAMES}).
   * A decoded 5.0 CONNACK has `reasonCode` instead, and this key is absent
   * (except for a 3.1.1-only server's refusal of a 5.0 CONNECT, which is
   * decoded in its 3.1.1 shape).
   */
  returnCode?: ConnackReturnCode;
  /** MQTT 5.0 Connect Reason Code (section 3.2.2.2); 0x80 and above refuse. */
  reasonCode?: ConnectReasonCode;
  /** MQTT 5.0 CONNACK properties; absent when there are none. */
  properties?: ConnackProperties;
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
  /**
   * MQTT 5.0 PUBLISH properties. A PUBLISH decoded at 5.0 always has the key,
   * `undefined` when there are none; one decoded at 3.1.1 never has it. With a
   * `topicAlias`, `topic` may be "" (section 3.3.2.3.4).
   */
  properties?: PublishProperties;
}

/** PUBACK: QoS 1 acknowledgement. */
export interface PubackPacket {
  /** Discriminant: PUBACK. */
  type: "puback";
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** MQTT 5.0 reason code; a decoded 5.0 packet always has it (0 when omitted). */
  reasonCode?: PubackReasonCode;
  /** MQTT 5.0 properties; absent when there are none. */
  properties?: AckProperties;
}

/** PUBREC: QoS 2, part 1. */
export interface PubrecPacket {
  /** Discriminant: PUBREC. */
  type: "pubrec";
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** MQTT 5.0 reason code; a decoded 5.0 packet always has it (0 when omitted). */
  reasonCode?: PubackReasonCode;
  /** MQTT 5.0 properties; absent when there are none. */
  properties?: AckProperties;
}

/** PUBREL: QoS 2, part 2. */
export interface PubrelPacket {
  /** Discriminant: PUBREL. */
  type: "pubrel";
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** MQTT 5.0 reason code; a decoded 5.0 packet always has it (0 when omitted). */
  reasonCode?: PubrelReasonCode;
  /** MQTT 5.0 properties; absent when there are none. */
  properties?: AckProperties;
}

/** PUBCOMP: QoS 2, part 3. */
export interface PubcompPacket {
  /** Discriminant: PUBCOMP. */
  type: "pubcomp";
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** MQTT 5.0 reason code; a decoded 5.0 packet always has it (0 when omitted). */
  reasonCode?: PubrelReasonCode;
  /** MQTT 5.0 properties; absent when there are none. */
  properties?: AckProperties;
}

/** One topic filter with its requested QoS in a SUBSCRIBE. */
export interface SubscriptionRequest {
  /** Topic filter, may contain `+` and `#`. */
  filter: string;
  /** Quality of service (3.1.1: requested QoS; 5.0: Maximum QoS). */
  qos: QoS;
  /** MQTT 5.0 No Local: not sent our own publications (MQTT-3.8.3-3). */
  noLocal?: boolean;
  /** MQTT 5.0 Retain As Published: forwarded with the RETAIN flag as published. */
  retainAsPublished?: boolean;
  /** MQTT 5.0 Retain Handling: 0 send retained, 1 only for a new subscription, 2 never. */
  retainHandling?: 0 | 1 | 2;
}

/** SUBSCRIBE: client asks for one or more topic filters. */
export interface SubscribePacket {
  /** Discriminant: SUBSCRIBE. */
  type: "subscribe";
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** Requested filters, at least one (MQTT-3.8.3-3). */
  subscriptions: SubscriptionRequest[];
  /** MQTT 5.0 SUBSCRIBE properties; absent when there are none. */
  properties?: SubscribeProperties;
}

/** SUBACK return code: the granted QoS, or 0x80 for failure. */
export type SubackReturnCode = 0 | 1 | 2 | 0x80;

/** SUBACK: server answers a SUBSCRIBE, one return code per filter, in order. */
export interface SubackPacket {
  /** Discriminant: SUBACK. */
  type: "suback";
  /** Packet identifier, 1..65535. */
  packetId: number;
  /**
   * MQTT 3.1.1: one code per filter of the SUBSCRIBE, in order (MQTT-3.9.3-1).
   * A decoded 5.0 SUBACK has `reasonCodes` instead, and this key is absent.
   */
  returnCodes?: SubackReturnCode[];
  /** MQTT 5.0: one reason code per filter, in order (5.0 MQTT-3.9.3-1). */
  reasonCodes?: SubackReasonCode[];
  /** MQTT 5.0 properties; absent when there are none. */
  properties?: AckProperties;
}

/** UNSUBSCRIBE: client removes one or more topic filters. */
export interface UnsubscribePacket {
  /** Discriminant: UNSUBSCRIBE. */
  type: "unsubscribe";
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** Topic filters to remove, at least one (MQTT-3.10.3-2). */
  filters: string[];
  /** MQTT 5.0 UNSUBSCRIBE properties; absent when there are none. */
  properties?: UnsubscribeProperties;
}

/** UNSUBACK: server answers an UNSUBSCRIBE. */
export interface UnsubackPacket {
  /** Discriminant: UNSUBACK. */
  type: "unsuback";
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** MQTT 5.0: one reason code per filter, in order (MQTT-3.11.3-1); required at 5.0. */
  reasonCodes?: UnsubackReasonCode[];
  /** MQTT 5.0 properties; absent when there are none. */
  properties?: AckProperties;
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

/** DISCONNECT: client closes the session cleanly (5.0: either side, with a reason). */
export interface DisconnectPacket {
  /** Discriminant: DISCONNECT. */
  type: "disconnect";
  /** MQTT 5.0 Disconnect Reason Code; a decoded 5.0 DISCONNECT always has it. */
  reasonCode?: DisconnectReasonCode;
  /** MQTT 5.0 properties; absent when there are none. */
  properties?: DisconnectProperties;
}

/** AUTH (MQTT 5.0 only): a step of enhanced authentication (section 3.15). */
export interface AuthPacket {
  /** Discriminant: AUTH. */
  type: "auth";
  /** Authenticate Reason Code; a decoded AUTH always has it (0 when omitted). */
  reasonCode?: AuthReasonCode;
  /** Properties; absent when there are none. */
  properties?: AuthProperties;
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
  | DisconnectPacket
  | AuthPacket;

/** Names of the CONNACK return codes, indexed by code (section 3.2.2.3). */
export const CONNACK_RETURN_CODE_NAMES: readonly string[] = [
  "connection accepted",
  "unacceptable protocol version",
  "identifier rejected",
  "server unavailable",
  "bad user name or password",
  "not authorized",
];
