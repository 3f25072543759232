/**
 * What the client does with MQTT 5.0 beyond one connection: the CONNACK it
 * shows as `client.connack`, the options the next CONNECT carries once the
 * server assigned an identifier or `"auto"` fell back to 3.1.1, and which
 * server reasons end the client instead of a reconnect.
 *
 * @module
 */
import type { ConnackPacket, SubscriptionRequest } from "../codec/packet.ts";
import { isFailure, isReasonCodeOf, reasonCodeName } from "../codec/reason_codes.ts";
import type { ConnackProperties, PublishProperties } from "../codec/properties.ts";
import { MqttError, ServerDisconnectError } from "../errors.ts";
import { checkMessageProperties } from "./v5_options.ts";
import type { ResolvedOptions } from "./options.ts";

/** `client.connack`: the latest CONNACK. */
export interface ConnackInfo {
  /** Whether the server resumed a stored session. */
  sessionPresent: boolean;
  /** The Connect Reason Code (5.0) or return code (3.1.1): 0 once connected. */
  reasonCode: number;
  /** The CONNACK's properties under MQTT 5.0; `{}` when none and under 3.1.1. */
  properties: ConnackProperties;
}

/**
 * The {@linkcode ConnackInfo} of an accepted CONNACK.
 *
 * @example
 * ```ts
 * import { connackInfo } from "./v5_client.ts";
 * console.log(connackInfo({ type: "connack", sessionPresent: true, returnCode: 0 }));
 * // { sessionPresent: true, reasonCode: 0, properties: {} }
 * ```
 */
export function connackInfo(packet: ConnackPacket): ConnackInfo {
  return {
    sessionPresent: packet.sessionPresent,
    reasonCode: packet.reasonCode ?? packet.returnCode ?? 0,
    properties: packet.properties ?? {},
  };
}

/**
 * The options later connections use after this CONNACK: the server's
 * Assigned Client Identifier replaces an empty one (so a reconnect resumes
 * the same session), and `"auto"` that got 5.0 stays at 5.0.
 *
 * @example
 * ```ts
 * import { agreed } from "./v5_client.ts";
 * import { resolveOptions } from "./options.ts";
 * const options = resolveOptions("mqtt://localhost", { clientId: "", protocolVersion: 5 });
 * const next = agreed(options, {
 *   type: "connack", sessionPresent: false, reasonCode: 0,
 *   properties: { assignedClientIdentifier: "auto-1" },
 * });
 * console.log(next.clientId); // auto-1
 * ```
 */
export function agreed(options: ResolvedOptions, packet: ConnackPacket): ResolvedOptions {
  const assigned = packet.properties?.assignedClientIdentifier;
  const auto = options.protocolVersion === "auto";
  if (assigned === undefined && !auto) return options;
  const next = { ...options };
  if (assigned !== undefined) next.clientId = assigned;
  if (auto) next.protocolVersion = 5;
  return next;
}

/**
 * Options for a 3.1.1 CONNECT after a broker refused 5.0 (`"auto"`): the 5.0
 * CONNECT and will properties are left out. Enhanced authentication
 * (`authenticationMethod`, `onAuth`) is not: 3.1.1 has no way to carry it,
 * and connecting without the authentication asked for is not what the
 * caller meant, so `refusal` (the broker's refusal of 5.0) is thrown instead,
 * its message saying so.
 *
 * @example
 * ```ts
 * import { fallBackTo311 } from "./v5_client.ts";
 * import { resolveOptions } from "./options.ts";
 * const options = resolveOptions("mqtt://localhost", { protocolVersion: "auto", sessionExpiryInterval: 60 });
 * console.log(fallBackTo311(options).protocolVersion, fallBackTo311(options).connectProperties); // 4 undefined
 * ```
 */
export function fallBackTo311(options: ResolvedOptions, refusal?: unknown): ResolvedOptions {
  if (options.connectProperties?.authenticationMethod !== undefined || options.onAuth) {
    const error = refusal instanceof Error
      ? refusal
      : new MqttError("CONNECTION_REFUSED", "the broker refused MQTT 5.0");
    error.message += "; not falling back to MQTT 3.1.1: enhanced authentication " +
      "(authenticationMethod, onAuth) needs MQTT 5.0, and 3.1.1 would connect without it";
    throw error;
  }
  const next = { ...options, protocolVersion: 4 as const };
  delete next.connectProperties;
  if (next.will?.properties !== undefined) {
    const { properties: _, ...will } = next.will;
    next.will = will;
  }
  return next;
}

/**
 * CONNACK refusals worth retrying: the server is unavailable or busy (0x88,
 * 0x89), over a quota or a connection rate (0x97, 0x9F), or did not say
 * (0x80). Every other refusal is about who we are or what we sent (bad
 * credentials, banned, not authorized, unsupported version or option, use
 * another server), and the same CONNECT would be refused again.
 */
const TRANSIENT_REFUSALS = new Set([0x80, 0x88, 0x89, 0x97, 0x9f]);

/**
 * Server DISCONNECTs after which reconnecting is wrong: 0x87 not authorized
 * (our rights were revoked), 0x8E session taken over (another connection
 * with our client id: reconnecting would take it back, and the two would
 * evict each other for ever), 0x98 administrative action (an operator
 * removed us), 0x9C use another server and 0x9D server moved (this server
 * will not have us; the error's `serverReference` says where to go, which
 * the client does not follow by itself). Every other reason (shutting down,
 * busy, keep-alive timeout, quota, a protocol error) reconnects with backoff,
 * as a dropped connection does.
 */
const FATAL_DISCONNECTS = new Set([0x87, 0x8e, 0x98, 0x9c, 0x9d]);

/**
 * Whether a 5.0 CONNACK refusal (`packet` "connack") or server DISCONNECT
 * (`packet` "disconnect") with this reason code ends the client rather than
 * being retried.
 *
 * @example
 * ```ts
 * import { isFatalReason } from "./v5_client.ts";
 * console.log(isFatalReason(0x86, "connack"), isFatalReason(0x89, "connack")); // true false
 * console.log(isFatalReason(0x8e, "disconnect"), isFatalReason(0x8b, "disconnect")); // true false
 * ```
 */
export function isFatalReason(code: number, packet: "connack" | "disconnect"): boolean {
  return packet === "connack" ? !TRANSIENT_REFUSALS.has(code) : FATAL_DISCONNECTS.has(code);
}

/**
 * Checks a publish's `properties` option: refused under MQTT 3.1.1 (there is
 * nowhere to put them), validated and copied at 5.0.
 *
 * @example
 * ```ts
 * import { publishProperties } from "./v5_client.ts";
 * console.log(publishProperties({ contentType: "text/plain" }, 5)); // { contentType: "text/plain" }
 * ```
 */
export function publishProperties(properties: unknown, version: 4 | 5): PublishProperties {
  if (version === 4) {
    throw new MqttError(
      "INVALID_OPTION",
      "properties is an MQTT 5.0 option of publish; connect with protocolVersion: 5 to use it",
    );
  }
  return checkMessageProperties("properties", properties);
}

/**
 * The MQTT 5.0 options of a subscribe (`noLocal`, `retainAsPublished`,
 * `retainHandling`) that are set, checked; undefined when none is. Under
 * MQTT 3.1.1 a set one is refused with `INVALID_OPTION` naming it.
 *
 * @example
 * ```ts
 * import { subscriptionFlags } from "./v5_client.ts";
 * console.log(subscriptionFlags({ noLocal: true, retainHandling: 0 }, 5)); // { noLocal: true }
 * ```
 */
export function subscriptionFlags(
  options: Pick<SubscriptionRequest, "noLocal" | "retainAsPublished" | "retainHandling">,
  version: 4 | 5,
  filters: readonly string[] = [],
): Pick<SubscriptionRequest, "noLocal" | "retainAsPublished" | "retainHandling"> | undefined {
  const { noLocal, retainAsPublished, retainHandling } = options;
  if (noLocal === undefined && retainAsPublished === undefined && retainHandling === undefined) {
    return undefined;
  }
  for (const [name, value] of [["noLocal", noLocal], ["retainAsPublished", retainAsPublished]]) {
    if (value !== undefined && typeof value !== "boolean") {
      throw new MqttError("INVALID_OPTION", `${name} must be a boolean, got ${typeof value}`);
    }
  }
  if (
    retainHandling !== undefined && retainHandling !== 0 && retainHandling !== 1 &&
    retainHandling !== 2
  ) {
    throw new MqttError(
      "INVALID_OPTION",
      `retainHandling must be 0, 1 or 2, got ${String(retainHandling)}`,
    );
  }
  if (version === 4) {
    const name = noLocal !== undefined
      ? "noLocal"
      : retainAsPublished !== undefined
      ? "retainAsPublished"
      : "retainHandling";
    throw new MqttError(
      "INVALID_OPTION",
      `${name} is an MQTT 5.0 subscribe option; connect with protocolVersion: 5 to use it`,
    );
  }
  const flags: Pick<SubscriptionRequest, "noLocal" | "retainAsPublished" | "retainHandling"> = {};
  if (noLocal) {
    const shared = filters.find((f) => f.startsWith("$share/"));
    if (shared !== undefined) {
      throw new MqttError(
        "INVALID_OPTION",
        `noLocal on the shared subscription "${shared}" is a Protocol Error (MQTT-3.8.3-4)`,
      );
    }
    flags.noLocal = true;
  }
  if (retainAsPublished) flags.retainAsPublished = true;
  if (retainHandling) flags.retainHandling = retainHandling;
  return Object.keys(flags).length === 0 ? undefined : flags;
}

/**
 * The error of an MQTT 5.0 UNSUBACK that refuses a filter (a reason code of
 * 0x80 or more; 0x11 "no subscription existed" is a success), or undefined.
 *
 * @example
 * ```ts
 * import { unsubackError } from "./v5_client.ts";
 * console.log(unsubackError(["a", "b"], [0x11, 0x87])?.message); // unsubscribe from "b" refused by the server: not authorized
 * ```
 */
export function unsubackError(
  filters: readonly string[],
  codes: readonly number[] | undefined,
): MqttError | undefined {
  if (codes === undefined) return undefined;
  const i = codes.findIndex(isFailure);
  if (i === -1) return undefined;
  const error = new MqttError(
    "UNSUBSCRIBE_FAILED",
    `unsubscribe from "${filters[i]}" refused by the server: ${
      reasonCodeName(codes[i], "unsuback")
    }`,
  );
  return Object.assign(error, { reasonCode: codes[i], filter: filters[i] });
}

/**
 * Checks the reason code `close()` is to send in DISCONNECT: MQTT 5.0 only,
 * and one of the DISCONNECT reason codes (section 3.14.2.1).
 *
 * @example
 * ```ts
 * import { checkDisconnectReason } from "./v5_client.ts";
 * checkDisconnectReason(0x04, 5); // fine: disconnect with will message
 * ```
 */
export function checkDisconnectReason(code: unknown, version: 4 | 5): void {
  if (version === 4) {
    throw new MqttError(
      "INVALID_OPTION",
      "reasonCode is an MQTT 5.0 option of close; under 3.1.1 a DISCONNECT has no reason",
    );
  }
  if (typeof code !== "number" || !isReasonCodeOf(code, "disconnect")) {
    throw new MqttError(
      "INVALID_OPTION",
      `reasonCode ${String(code)} is not a DISCONNECT reason code (section 3.14.2.1)`,
    );
  }
}

/**
 * The detail of a `disconnect` or `close` event: the error, and the reason
 * of the server's DISCONNECT when that is what ended the connection.
 *
 * @example
 * ```ts
 * import { closeDetail } from "./v5_client.ts";
 * import { ServerDisconnectError } from "../errors.ts";
 * const detail = closeDetail(new ServerDisconnectError(0x8b, { reasonString: "bye" }));
 * console.log(detail.reasonCode, detail.reasonString); // 139 bye
 * ```
 */
export function closeDetail(error: MqttError | undefined): {
  error: MqttError | undefined;
  reasonCode?: number;
  reasonString?: string;
  serverReference?: string;
} {
  if (!(error instanceof ServerDisconnectError)) return { error };
  const detail: {
    error: MqttError;
    reasonCode: number;
    reasonString?: string;
    serverReference?: string;
  } = { error, reasonCode: error.reasonCode };
  if (error.reasonString !== undefined) detail.reasonString = error.reasonString;
  if (error.serverReference !== undefined) detail.serverReference = error.serverReference;
  return detail;
}
