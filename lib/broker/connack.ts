/**
 * What the broker answers a CONNECT with: the refusals (a 3.1.1 return code,
 * or a 5.0 reason code), the keep-alive it holds the client to, and the
 * properties of an accepting 5.0 CONNACK (section 3.2.2.3) with the
 * client's own limits they answer.
 *
 * @module
 */
import {
  CONNACK_RETURN_CODE_NAMES,
  type ConnackPacket,
  type ConnackReturnCode,
  type ConnectPacket,
  type ProtocolVersion,
} from "../codec/packet.ts";
import type { ConnackProperties } from "../codec/properties.ts";
import { MqttError } from "../errors.ts";
import { publishSize } from "../session/connack.ts";
import type { OutgoingMessage } from "../session/types.ts";
import type { BrokerClient, ResolvedBrokerOptions } from "./options.ts";

/** MQTT 5.0 CONNACK reason codes for the 3.1.1 return codes the broker refuses with. */
const REASON_OF_RETURN_CODE = [0x00, 0x84, 0x85, 0x88, 0x86, 0x87] as const;

/**
 * The CONNACK refusing a CONNECT (MQTT-3.2.2-5), and the name of its code
 * for the log: a 3.1.1 return code, or a 5.0 reason code (0x80 and up) for
 * a 5.0 CONNECT; a 3.1.1 code is translated for a 5.0 client.
 *
 * @example
 * ```ts
 * import { refusingConnack } from "./connack.ts";
 * const { packet, name } = refusingConnack(4, 5);
 * console.log(packet.reasonCode, name); // 134 bad user name or password
 * ```
 */
export function refusingConnack(
  code: number,
  version: ProtocolVersion,
): { packet: ConnackPacket; name: string } {
  const reasonCode = code >= 0x80 ? code : REASON_OF_RETURN_CODE[code];
  const name = code < 0x80 ? CONNACK_RETURN_CODE_NAMES[code] : `reason 0x${code.toString(16)}`;
  const packet: ConnackPacket = version === 5
    ? { type: "connack", sessionPresent: false, reasonCode: reasonCode as 0x80 }
    : { type: "connack", sessionPresent: false, returnCode: code as ConnackReturnCode };
  return { packet, name };
}

/**
 * Why a 5.0 CONNECT is refused before any authentication, as a reason code
 * and a reason for the log, or undefined when nothing in it is refused: an
 * Authentication Method without `enhancedAuthenticate` (0x8C), a will above
 * `maxQoS` (0x9B, MQTT-3.2.2-12) or retained without `retainAvailable` (0x9A,
 * MQTT-3.2.2-13).
 *
 * @example
 * ```ts ignore
 * const refused = connectRefusal(packet, options);
 * if (refused !== undefined) console.log(refused.code, refused.why);
 * ```
 */
export function connectRefusal(
  packet: ConnectPacket,
  options: ResolvedBrokerOptions,
): { code: number; why: string } | undefined {
  if (
    packet.properties?.authenticationMethod !== undefined &&
    options.enhancedAuthenticate === undefined
  ) {
    // Enhanced authentication is not offered: 0x8C Bad authentication method.
    return { code: 0x8c, why: "no enhanced authentication" };
  }
  const will = packet.will;
  if (will !== undefined && will.qos > options.maxQoS) {
    return { code: 0x9b, why: `will QoS ${will.qos} over maxQoS` }; // MQTT-3.2.2-12
  }
  if (will?.retain && !options.retainAvailable) {
    return { code: 0x9a, why: "will retain while retainAvailable is false" }; // MQTT-3.2.2-13
  }
  return undefined;
}

/**
 * The keep-alive the broker holds a client to under `maxKeepAlive`, or
 * undefined when the CONNECT is refused for it. A 5.0 client whose
 * keep-alive is above the maximum (or 0, none) is told the maximum as
 * Server Keep Alive (MQTT-3.2.2-21, -22); a 3.1.1 client cannot be told, so
 * it is refused (as Mosquitto's max_keepalive does).
 *
 * @example
 * ```ts
 * import { negotiateKeepAlive } from "./connack.ts";
 * console.log(negotiateKeepAlive(0, 5, 60)); // { keepAlive: 60, serverKeepAlive: 60 }
 * console.log(negotiateKeepAlive(0, 4, 60)); // undefined
 * ```
 */
export function negotiateKeepAlive(
  keepAlive: number,
  version: ProtocolVersion,
  maxKeepAlive: number,
): { keepAlive: number; serverKeepAlive?: number } | undefined {
  if (maxKeepAlive >= 65_535 || (keepAlive <= maxKeepAlive && keepAlive !== 0)) {
    return { keepAlive };
  }
  if (version === 5) return { keepAlive: maxKeepAlive, serverKeepAlive: maxKeepAlive };
  return undefined;
}

/**
 * The properties of a CONNACK accepting the 5.0 CONNECT `packet` of
 * `client` (section 3.2.2.3), each only when it differs from what an absent
 * property means.
 *
 * @example
 * ```ts ignore
 * const properties = connackProperties(options, packet, client, assigned, serverKeepAlive);
 * ```
 */
export function connackProperties(
  options: ResolvedBrokerOptions,
  packet: ConnectPacket,
  client: BrokerClient,
  assigned: boolean,
  serverKeepAlive: number | undefined,
): ConnackProperties {
  const properties: ConnackProperties = {};
  if (options.maxInflight < 65_535) properties.receiveMaximum = options.maxInflight;
  if (options.maxQoS < 2) properties.maximumQoS = options.maxQoS as 0 | 1;
  if (!options.retainAvailable) properties.retainAvailable = false;
  properties.maximumPacketSize = options.maxPacketSize;
  if (options.maxTopicAlias > 0) properties.topicAliasMaximum = options.maxTopicAlias;
  if (assigned) properties.assignedClientIdentifier = client.id; // MQTT-3.2.2-16
  if (serverKeepAlive !== undefined) properties.serverKeepAlive = serverKeepAlive;
  properties.wildcardSubscriptionAvailable = true;
  properties.subscriptionIdentifiersAvailable = true;
  properties.sharedSubscriptionAvailable = true;
  const info = options.responseInformation;
  if (packet.properties?.requestResponseInformation && info !== undefined) {
    // MQTT-3.1.2-28: only when asked.
    properties.responseInformation = typeof info === "string" ? info : info(client);
  }
  return properties;
}

/**
 * The rule a 5.0 client's Maximum Packet Size `max` sets on what is sent to
 * it (MQTT-3.1.2-24, -25): a PUBLISH larger is not sent, `PACKET_TOO_LARGE`.
 *
 * @example
 * ```ts
 * import { clientPacketLimit } from "./connack.ts";
 * const refuse = clientPacketLimit(20);
 * const message = { topic: "t", payload: new Uint8Array(100), qos: 0, retain: false } as const;
 * console.log(refuse(message)?.code); // PACKET_TOO_LARGE
 * ```
 */
export function clientPacketLimit(
  max: number,
): (message: OutgoingMessage) => MqttError | undefined {
  return (message) => {
    const size = publishSize(message, 5);
    if (size <= max) return undefined;
    return new MqttError(
      "PACKET_TOO_LARGE",
      `a PUBLISH of ${size} bytes to "${message.topic}" is over the client's Maximum ` +
        `Packet Size ${max}: not sent (MQTT-3.1.2-25)`,
    );
  };
}
