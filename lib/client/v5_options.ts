/**
 * The MQTT 5.0 options of `connect()` and `publish()`: their types, their
 * validation (a 5.0-only option under 3.1.1 is refused, never ignored) and
 * the CONNECT properties built from them.
 *
 * @module
 */
import type { ConnectProperties, PublishProperties, WillProperties } from "../codec/properties.ts";
import { validateTopicName } from "../codec/topic.ts";
import { MqttError } from "../errors.ts";
import { checkBoolean, checkInteger, checkString, invalid } from "./checks.ts";

/** Protocol version of `connect()`: 4 is MQTT 3.1.1, 5 is MQTT 5.0, `"auto"` tries 5.0 then 3.1.1. */
export type ProtocolVersionOption = 4 | 5 | "auto";

/** Ordered `[name, value]` pairs; a name may repeat (MQTT 5.0 User Properties). */
export type UserProperties = [string, string][];

/** The MQTT 5.0 options of {@linkcode ConnectOptions}; every one but `protocolVersion` is 5.0-only. */
export interface V5ConnectOptions {
  /**
   * 4 = MQTT 3.1.1, 5 = MQTT 5.0, `"auto"` = try 5.0 and, when the broker
   * refuses it as an unsupported protocol version, connect with 3.1.1 (and
   * keep to 3.1.1 on reconnects). `client.protocolVersion` tells which was agreed.
   * The 5.0-only options are left out of the 3.1.1 CONNECT, except enhanced
   * authentication (`authenticationMethod`, `onAuth`): with it there is no
   * fallback, and the broker's refusal of 5.0 rejects `connect()`.
   * @default {4}
   */
  protocolVersion?: ProtocolVersionOption;
  /**
   * 5.0: seconds the server keeps the session after the connection ends (0:
   * not at all; 4294967295: for ever, what a 3.1.1 `clean: false` session is).
   * @default {0}
   */
  sessionExpiryInterval?: number;
  /** 5.0: most QoS 1/2 messages the server may have in flight to us, 1..65535. @default {65535} */
  receiveMaximum?: number;
  /** 5.0: most topic aliases the server may use towards us, 0..65535. @default {0} */
  topicAliasMaximum?: number;
  /** 5.0: ask the server for Response Information in CONNACK. @default {false} */
  requestResponseInformation?: boolean;
  /** 5.0: whether the server may send Reason Strings and User Properties on failures. @default {true} */
  requestProblemInformation?: boolean;
  /** 5.0: User Properties of CONNECT, in order, duplicates allowed. */
  userProperties?: UserProperties;
}

/** The MQTT 5.0 part of the resolved options. */
export interface V5Resolved {
  /** The version asked for. */
  protocolVersion: ProtocolVersionOption;
  /** CONNECT properties at 5.0; undefined when there are none. */
  connectProperties?: ConnectProperties;
}

const V5_ONLY = [
  "sessionExpiryInterval",
  "receiveMaximum",
  "topicAliasMaximum",
  "requestResponseInformation",
  "requestProblemInformation",
  "userProperties",
] as const;

/**
 * Checks User Properties: an array of `[name, value]` string pairs. Returns a
 * copy, so a later change by the caller does not change what is sent.
 *
 * @example
 * ```ts
 * import { checkUserProperties } from "./v5_options.ts";
 * console.log(checkUserProperties("userProperties", [["a", "1"], ["a", "2"]])); // [ [ "a", "1" ], [ "a", "2" ] ]
 * ```
 */
export function checkUserProperties(name: string, value: unknown): UserProperties {
  if (!Array.isArray(value)) throw invalid(`${name} must be an array of [name, value] pairs`);
  return value.map((pair, i) => {
    if (
      !Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" ||
      typeof pair[1] !== "string"
    ) {
      throw invalid(`${name}[${i}] must be a [name, value] pair of strings`);
    }
    return [pair[0], pair[1]] as [string, string];
  });
}

const U32 = 0xffff_ffff;

/**
 * Checks the application-message properties a caller may give a publish or
 * a will (section 3.3.2.3), and returns a copy with only the known keys.
 * Topic Alias and Subscription Identifiers are not the caller's to set.
 *
 * @example
 * ```ts
 * import { checkMessageProperties } from "./v5_options.ts";
 * const p = checkMessageProperties("properties", { contentType: "text/plain", messageExpiryInterval: 60 });
 * console.log(p); // { messageExpiryInterval: 60, contentType: "text/plain" }
 * ```
 */
export function checkMessageProperties(name: string, value: unknown): PublishProperties {
  if (typeof value !== "object" || value === null) throw invalid(`${name} must be an object`);
  const v = value as Record<string, unknown>;
  const out: PublishProperties = {};
  for (const key of Object.keys(v)) {
    if (v[key] === undefined) continue;
    switch (key) {
      case "payloadFormatIndicator":
        if (v[key] !== 0 && v[key] !== 1) throw invalid(`${name}.${key} must be 0 or 1`);
        out.payloadFormatIndicator = v[key] as 0 | 1;
        break;
      case "messageExpiryInterval":
        out.messageExpiryInterval = checkInteger(`${name}.${key} (seconds)`, v[key], 0, U32);
        break;
      case "contentType":
        out.contentType = checkString(`${name}.${key}`, v[key]);
        break;
      case "responseTopic": {
        const topic = checkString(`${name}.${key}`, v[key]);
        try {
          validateTopicName(topic); // MQTT-3.3.2-14: a Topic Name, no wildcards
        } catch (cause) {
          throw new MqttError("INVALID_OPTION", `${name}.${key}: ${(cause as Error).message}`, {
            cause,
          });
        }
        out.responseTopic = topic;
        break;
      }
      case "correlationData":
        if (!(v[key] instanceof Uint8Array)) throw invalid(`${name}.${key} must be a Uint8Array`);
        out.correlationData = v[key] as Uint8Array;
        break;
      case "userProperties":
        out.userProperties = checkUserProperties(`${name}.${key}`, v[key]);
        break;
      default:
        if (key === "willDelayInterval" && name.startsWith("will")) continue;
        throw invalid(`${name}.${key} is not a property a client may set here`);
    }
  }
  return out;
}

/**
 * Checks a will's properties: those of a message plus `willDelayInterval`.
 *
 * @example
 * ```ts
 * import { checkWillProperties } from "./v5_options.ts";
 * console.log(checkWillProperties({ willDelayInterval: 5 })); // { willDelayInterval: 5 }
 * ```
 */
export function checkWillProperties(value: unknown): WillProperties {
  const out: WillProperties = checkMessageProperties("will.properties", value);
  const delay = (value as WillProperties).willDelayInterval;
  if (delay !== undefined) {
    out.willDelayInterval = checkInteger(
      "will.properties.willDelayInterval (seconds)",
      delay,
      0,
      U32,
    );
  }
  return out;
}

/**
 * Validates the 5.0 options of `connect()` and builds the CONNECT
 * properties. Under 3.1.1 (`protocolVersion` 4, the default) a 5.0-only
 * option is refused with `INVALID_OPTION` naming it, rather than ignored.
 * `maxPacketSize`, a limit under both versions, is sent as Maximum Packet
 * Size at 5.0 when given.
 *
 * @example
 * ```ts
 * import { resolveV5Options } from "./v5_options.ts";
 * const v5 = resolveV5Options({ protocolVersion: 5, sessionExpiryInterval: 60 }, undefined);
 * console.log(v5); // { protocolVersion: 5, connectProperties: { sessionExpiryInterval: 60 } }
 * ```
 */
export function resolveV5Options(
  options: V5ConnectOptions & { will?: { properties?: unknown } },
  maxPacketSize: number | undefined,
): V5Resolved {
  const version = options.protocolVersion ?? 4;
  if (version !== 4 && version !== 5 && version !== "auto") {
    throw invalid(`protocolVersion must be 4, 5 or "auto", got ${String(version)}`);
  }
  if (version === 4) {
    for (const name of V5_ONLY) {
      if (options[name] !== undefined) {
        throw invalid(`${name} is an MQTT 5.0 option; set protocolVersion: 5 to use it`);
      }
    }
    if (options.will?.properties !== undefined) {
      throw invalid(`will.properties is an MQTT 5.0 option; set protocolVersion: 5 to use it`);
    }
    return { protocolVersion: 4 };
  }
  const props: ConnectProperties = {};
  const o = options;
  if (o.sessionExpiryInterval !== undefined) {
    props.sessionExpiryInterval = checkInteger(
      "sessionExpiryInterval (seconds)",
      o.sessionExpiryInterval,
      0,
      U32,
    );
  }
  if (o.receiveMaximum !== undefined) {
    // Section 3.1.2.11.3: a Receive Maximum of 0 is a Protocol Error.
    props.receiveMaximum = checkInteger("receiveMaximum", o.receiveMaximum, 1, 65535);
  }
  if (maxPacketSize !== undefined) props.maximumPacketSize = maxPacketSize;
  if (o.topicAliasMaximum !== undefined) {
    props.topicAliasMaximum = checkInteger("topicAliasMaximum", o.topicAliasMaximum, 0, 65535);
  }
  if (o.requestResponseInformation !== undefined) {
    props.requestResponseInformation = checkBoolean(
      "requestResponseInformation",
      o.requestResponseInformation,
    );
  }
  if (o.requestProblemInformation !== undefined) {
    props.requestProblemInformation = checkBoolean(
      "requestProblemInformation",
      o.requestProblemInformation,
    );
  }
  if (o.userProperties !== undefined) {
    props.userProperties = checkUserProperties("userProperties", o.userProperties);
  }
  const resolved: V5Resolved = { protocolVersion: version };
  if (Object.keys(props).length !== 0) resolved.connectProperties = props;
  return resolved;
}
