/**
 * MQTT 5.0 server redirection (section 4.11): which errors ask the client to
 * use another server, and where a Server Reference points.
 *
 * @module
 */
import { ConnectionRefusedError, MqttError, ServerDisconnectError } from "../errors.ts";
import { type BrokerUrl, parseBrokerUrl } from "./url.ts";

/** 0x9C Use another server: switch temporarily (section 4.11). */
export const USE_ANOTHER_SERVER = 0x9c;
/** 0x9D Server moved: switch for good (section 4.11). */
export const SERVER_MOVED = 0x9d;

/** Hops followed in a row at most with `followRedirects: true`. */
export const DEFAULT_REDIRECT_HOPS = 3;

/** A redirection the client followed, as its `connect` event reports it. */
export interface Redirect {
  /** The server that sent it (password shown as `***`). */
  from: string;
  /** Where the client went: the Server Reference as a URL. */
  to: string;
  /** 0x9C use another server (for now) or 0x9D server moved (for good). */
  reasonCode: number;
  /** The Server Reference property as the server sent it. */
  serverReference: string;
}

/**
 * The reason code and Server Reference of a CONNACK refusal or a server
 * DISCONNECT that asks the client to go elsewhere; `undefined` for any other
 * error, and for one without a Server Reference (there is then nowhere known
 * to go but the client's own list).
 *
 * @example
 * ```ts
 * import { redirectOf } from "./redirect.ts";
 * import { ServerDisconnectError } from "../errors.ts";
 * const error = new ServerDisconnectError(0x9d, { serverReference: "new.example:1883" });
 * console.log(redirectOf(error)); // { reasonCode: 157, serverReference: "new.example:1883" }
 * ```
 */
export function redirectOf(
  error: MqttError | undefined,
): { reasonCode: number; serverReference: string } | undefined {
  if (!(error instanceof ConnectionRefusedError) && !(error instanceof ServerDisconnectError)) {
    return undefined;
  }
  const { reasonCode, serverReference } = error;
  if (reasonCode !== USE_ANOTHER_SERVER && reasonCode !== SERVER_MOVED) return undefined;
  if (serverReference === undefined || serverReference.trim() === "") return undefined;
  return { reasonCode, serverReference };
}

const AUTHORITY = /^(\[[^\]\s]+\]|[^\s:[\]/]+)(?::(\d{1,5}))?$/;

/**
 * Where a Server Reference points, seen from the server that sent it: its
 * first reference (the specification leaves the choice among several to the
 * client) as a broker URL. A reference may be a whole URL (`mqtts://host:8883`)
 * or, as the specification recommends, `host`, `host:port` or `[v6]:port`,
 * which keeps the scheme (and WebSocket path) of `from`; without a port the
 * scheme's default applies. `undefined` when it does not parse, and when it
 * would leave TLS for plain text: a redirect must not expose what TLS protected.
 *
 * @example
 * ```ts
 * import { referenceUrl } from "./redirect.ts";
 * import { parseBrokerUrl } from "./url.ts";
 * const from = parseBrokerUrl("wss://a.example/mqtt");
 * console.log(referenceUrl("b.example:8443 c.example", from)?.href.href); // "wss://b.example:8443/mqtt"
 * console.log(referenceUrl("mqtt://c.example", from)); // undefined (TLS to plain text)
 * ```
 */
export function referenceUrl(serverReference: string, from: BrokerUrl): BrokerUrl | undefined {
  const first = serverReference.trim().split(/\s+/)[0];
  let text: string;
  if (/^[a-z][a-z\d+.-]*:\/\//i.test(first)) {
    text = first;
  } else {
    const match = AUTHORITY.exec(first);
    if (!match) return undefined;
    const port = match[2] === undefined ? "" : `:${match[2]}`;
    text = `${from.protocol}://${match[1]}${port}${from.path}`;
  }
  let target: BrokerUrl;
  try {
    target = parseBrokerUrl(text);
  } catch {
    return undefined;
  }
  const secure = (url: BrokerUrl) => url.protocol === "mqtts" || url.protocol === "wss";
  if (secure(from) && !secure(target)) return undefined;
  return target;
}

/**
 * Checks the `followRedirects` option: how many redirections in a row the
 * client follows (0: none, the default).
 *
 * @example
 * ```ts
 * import { redirectHops } from "./redirect.ts";
 * console.log(redirectHops(undefined), redirectHops(true), redirectHops(5)); // 0 3 5
 * ```
 */
export function redirectHops(value: unknown): number {
  if (value === undefined || value === false) return 0;
  if (value === true) return DEFAULT_REDIRECT_HOPS;
  if (typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 100) {
    return value;
  }
  throw new MqttError(
    "INVALID_OPTION",
    `followRedirects must be a boolean or a number of hops from 1 to 100, got ${String(value)}`,
  );
}
