/**
 * MQTT 5.0 properties on the command line, as `mosquitto_pub` and
 * `mosquitto_sub` 2.0 take them: `-D command identifier value`, with
 * `-D command user-property name value`, and `-V` for the protocol version.
 *
 * @module
 */
import type { PublishProperties, WillProperties } from "../codec/properties.ts";
import type { ConnectOptions } from "../client/options.ts";

/** A flag error; `args.ts` turns it into its UsageError. */
export class PropertyFlagError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "PropertyFlagError";
  }
}

/** The packets `-D` may give properties to, by mosquitto's command names. */
export type PropertyCommand =
  | "connect"
  | "publish"
  | "subscribe"
  | "unsubscribe"
  | "disconnect"
  | "will";

/** Properties gathered from `-D` flags, per command, camelCase (as the client's options name them). */
export type CommandProperties = Partial<
  Record<
    PropertyCommand,
    Record<string, string | number | boolean | Uint8Array | [string, string][]>
  >
>;

type Kind = "string" | "binary" | "u8flag" | "u8" | "u16" | "u32" | "varint" | "pair";

/** mosquitto's identifier → [camelCase name, value kind, commands allowed (section 2.2.2.2)]. */
const IDENTIFIERS: Record<string, [string, Kind, PropertyCommand[]]> = {
  "payload-format-indicator": ["payloadFormatIndicator", "u8", ["publish", "will"]],
  "message-expiry-interval": ["messageExpiryInterval", "u32", ["publish", "will"]],
  "content-type": ["contentType", "string", ["publish", "will"]],
  "response-topic": ["responseTopic", "string", ["publish", "will"]],
  "correlation-data": ["correlationData", "binary", ["publish", "will"]],
  "subscription-identifier": ["subscriptionIdentifier", "varint", ["subscribe"]],
  "session-expiry-interval": ["sessionExpiryInterval", "u32", ["connect", "disconnect"]],
  "authentication-method": ["authenticationMethod", "string", ["connect"]],
  "authentication-data": ["authenticationData", "binary", ["connect"]],
  "request-problem-information": ["requestProblemInformation", "u8flag", ["connect"]],
  "will-delay-interval": ["willDelayInterval", "u32", ["will"]],
  "request-response-information": ["requestResponseInformation", "u8flag", ["connect"]],
  "receive-maximum": ["receiveMaximum", "u16", ["connect"]],
  "topic-alias-maximum": ["topicAliasMaximum", "u16", ["connect"]],
  "topic-alias": ["topicAlias", "u16", ["publish"]],
  "maximum-packet-size": ["maximumPacketSize", "u32", ["connect"]],
  "reason-string": ["reasonString", "string", ["disconnect"]],
  "user-property": [
    "userProperties",
    "pair",
    ["connect", "publish", "subscribe", "unsubscribe", "disconnect", "will"],
  ],
};

const COMMANDS = new Set<string>([
  "connect",
  "publish",
  "subscribe",
  "unsubscribe",
  "disconnect",
  "will",
]);
const MAX: Record<string, number> = { u8: 1, u16: 0xffff, u32: 0xffff_ffff, varint: 268_435_455 };

function number(identifier: string, kind: Kind, text: string): number {
  const n = Number(text);
  const min = kind === "varint" || (kind === "u16" && identifier !== "topic-alias-maximum") ? 1 : 0;
  if (text.trim() === "" || !Number.isInteger(n) || n < min || n > MAX[kind]) {
    throw new PropertyFlagError(
      `-D ${identifier} needs an integer from ${min} to ${MAX[kind]}, got "${text}"`,
    );
  }
  return n;
}

/**
 * Reads one `-D` flag's arguments from `argv` at `i` (the word after `-D`)
 * into `into`; returns how many words it took (3, or 4 for user-property).
 *
 * @example
 * ```ts
 * import { type CommandProperties, readPropertyFlag } from "./properties.ts";
 * const props: CommandProperties = {};
 * readPropertyFlag(["publish", "message-expiry-interval", "60"], 0, props);
 * readPropertyFlag(["publish", "user-property", "k", "v"], 0, props);
 * console.log(props.publish); // { messageExpiryInterval: 60, userProperties: [["k", "v"]] }
 * ```
 */
export function readPropertyFlag(argv: string[], i: number, into: CommandProperties): number {
  const [command, identifier] = [argv[i], argv[i + 1]];
  if (command === undefined || identifier === undefined) {
    throw new PropertyFlagError("-D needs a command, a property identifier and a value");
  }
  if (!COMMANDS.has(command)) {
    throw new PropertyFlagError(
      `-D: unknown command "${command}"; one of ${[...COMMANDS].join(", ")}`,
    );
  }
  const known = IDENTIFIERS[identifier];
  if (known === undefined) {
    throw new PropertyFlagError(
      `-D: unknown property "${identifier}"; one of ${Object.keys(IDENTIFIERS).join(", ")}`,
    );
  }
  const [name, kind, allowed] = known;
  if (!allowed.includes(command as PropertyCommand)) {
    throw new PropertyFlagError(
      `-D: ${identifier} is not allowed on ${command}; only on ${allowed.join(", ")}`,
    );
  }
  const props = into[command as PropertyCommand] ??= {};
  if (kind === "pair") {
    const [key, value] = [argv[i + 2], argv[i + 3]];
    if (key === undefined || value === undefined) {
      throw new PropertyFlagError("-D ... user-property needs a name and a value");
    }
    ((props[name] ??= []) as [string, string][]).push([key, value]);
    return 4;
  }
  const text = argv[i + 2];
  if (text === undefined) throw new PropertyFlagError(`-D ${command} ${identifier} needs a value`);
  if (name in props) {
    throw new PropertyFlagError(`-D ${command} ${identifier} given twice; it may appear once`);
  }
  if (kind === "string") props[name] = text;
  else if (kind === "binary") props[name] = new TextEncoder().encode(text);
  else if (kind === "u8flag") props[name] = number(identifier, "u8", text) === 1;
  else props[name] = number(identifier, kind, text);
  return 3;
}

/**
 * The protocol version of a `-V` value as mosquitto takes it: `5` or
 * `mqttv5` is 5 (MQTT 5.0), `311` or `mqttv311` is 4 (MQTT 3.1.1).
 *
 * @example
 * ```ts
 * import { protocolVersionFlag } from "./properties.ts";
 * console.log(protocolVersionFlag("mqttv5"), protocolVersionFlag("311")); // 5 4
 * ```
 */
export function protocolVersionFlag(value: string): 4 | 5 {
  switch (value.toLowerCase()) {
    case "5":
    case "mqttv5":
      return 5;
    case "311":
    case "mqttv311":
      return 4;
    default:
      throw new PropertyFlagError(
        `-V needs mqttv5 (or 5) or mqttv311 (or 311), got "${value}" (MQTT 3.1 is not supported)`,
      );
  }
}

/**
 * Publish properties of `-D publish ...` for `client.publish()`.
 *
 * @example
 * ```ts
 * import { publishProperties } from "./properties.ts";
 * console.log(publishProperties({ publish: { contentType: "text/plain" } })); // { contentType: "text/plain" }
 * ```
 */
export function publishProperties(props: CommandProperties): PublishProperties | undefined {
  return props.publish as PublishProperties | undefined;
}

/**
 * Applies `-V` and the `-D connect` and `-D will` properties to `options`
 * (with mosquitto's rule that properties need `-V 5`). `-D subscribe`,
 * `unsubscribe` and `disconnect` properties are refused: the client does not
 * send them.
 *
 * @example
 * ```ts
 * import { applyProperties } from "./properties.ts";
 * import type { ConnectOptions } from "../client/options.ts";
 * const options: ConnectOptions = {};
 * applyProperties(options, { connect: { sessionExpiryInterval: 60 } }, "mqttv5");
 * console.log(options); // { protocolVersion: 5, sessionExpiryInterval: 60 }
 * ```
 */
export function applyProperties(
  options: ConnectOptions,
  props: CommandProperties,
  version: string | undefined,
): void {
  if (version !== undefined) options.protocolVersion = protocolVersionFlag(version);
  const commands = Object.keys(props) as PropertyCommand[];
  if (commands.length === 0) return;
  if (options.protocolVersion !== 5) {
    throw new PropertyFlagError("-D properties need MQTT 5.0: add -V mqttv5");
  }
  for (const command of commands) {
    if (command !== "connect" && command !== "publish" && command !== "will") {
      throw new PropertyFlagError(`-D ${command} properties are not supported by this client`);
    }
  }
  const connect = props.connect ?? {};
  for (const [name, value] of Object.entries(connect)) {
    const key = name === "maximumPacketSize" ? "maxPacketSize" : name;
    (options as Record<string, unknown>)[key] = value;
  }
  if (props.will !== undefined) {
    if (options.will === undefined) {
      throw new PropertyFlagError("-D will properties need a will: give --will-topic");
    }
    options.will.properties = props.will as WillProperties;
  }
}
