/**
 * Broker URLs: parsing and checking them for `connect()`, reading their
 * credentials, and redacting their passwords for messages and logs.
 *
 * @module
 */
import { invalid } from "./checks.ts";
import { schemeHint } from "./hints.ts";

/** URL schemes `connect()` understands. */
export type BrokerProtocol = "mqtt" | "mqtts" | "ws" | "wss";

/** A parsed broker URL with default port and path applied. */
export interface BrokerUrl {
  /** URL scheme without the colon. */
  protocol: BrokerProtocol;
  /** Host name or IP address; IPv6 without brackets (as `Deno.connect` wants it). */
  hostname: string;
  /** TCP port: the URL's, or 1883 (mqtt), 8883 (mqtts), 80 (ws), 443 (wss). */
  port: number;
  /** WebSocket path with query, default `/mqtt`; `""` for mqtt and mqtts. */
  path: string;
  /** The whole URL with port and path filled in, credentials removed. */
  href: URL;
}

/** WebSocket path of `ws:` and `wss:` URLs that give none. */
export const DEFAULT_WS_PATH = "/mqtt";
const DEFAULT_PORTS: Record<BrokerProtocol, number> = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 };

/**
 * The URL as text with its password replaced by `***`, for error messages and
 * logs. Text that does not parse as a URL is redacted too: everything between
 * the scheme and the last `@` that could be a password is hidden.
 *
 * @example
 * ```ts
 * import { redactUrl } from "./url.ts";
 * console.log(redactUrl("mqtt://alice:S3CRET@broker:1883")); // "mqtt://alice:***@broker:1883"
 * console.log(redactUrl("mqtt://alice:S3CRET@broker:99999")); // "mqtt://alice:***@broker:99999"
 * ```
 */
export function redactUrl(url: string | URL): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    // Not a URL: fall through to the textual redaction.
  }
  // An "@" after the host means a password with an unescaped "/", "?" or "#" may have been
  // split off into the path; only the textual redaction catches that.
  if (
    parsed && parsed.host !== "" && !(parsed.pathname + parsed.search + parsed.hash).includes("@")
  ) {
    if (parsed.password !== "") parsed.password = "***";
    return parsed.href;
  }
  const text = String(url);
  const at = text.lastIndexOf("@");
  if (at === -1) return text;
  const start = /^[a-z][a-z\d+.-]*:[/\\]*/i.exec(text)?.[0] ?? "";
  const userinfo = text.slice(start.length, at);
  const colon = userinfo.indexOf(":");
  // Without "//", "alice:pw@host" parses as scheme "alice": the whole user info is the password.
  if (colon === -1 && /[/\\]$/.test(start)) return text;
  return `${start}${colon === -1 ? "" : userinfo.slice(0, colon + 1)}***${text.slice(at)}`;
}

/**
 * The user name and password of a URL, percent-decoded; an empty one is
 * `undefined`. Throws `INVALID_OPTION` naming the field (never its value) when
 * its `%` escapes are not valid percent-encoded UTF-8.
 *
 * @example
 * ```ts
 * import { urlCredentials } from "./url.ts";
 * const { username, password } = urlCredentials(new URL("mqtt://us%40er:p%3Ass@broker"));
 * console.log(username, password); // "us@er" "p:ss"
 * ```
 */
export function urlCredentials(url: URL): { username?: string; password?: string } {
  const decode = (field: string, value: string): string | undefined => {
    if (value === "") return undefined;
    try {
      return decodeURIComponent(value);
    } catch {
      // The URIError would only repeat the value; the cause is left out so it cannot leak.
      throw invalid(
        `the ${field} in broker URL "${redactUrl(url)}" has a malformed % escape: ` +
          `write "%" as %25 and each other escape as % and two hex digits of UTF-8`,
      );
    }
  };
  return {
    username: decode("user name", url.username),
    password: decode("password", url.password),
  };
}

/**
 * Parses and checks a broker URL: scheme, host, port, path. Error messages
 * show the URL with its password redacted.
 *
 * @example
 * ```ts
 * import { parseBrokerUrl } from "./url.ts";
 * const url = parseBrokerUrl("wss://broker.example");
 * console.log(url.port, url.path); // 443 "/mqtt"
 * ```
 */
export function parseBrokerUrl(url: string | URL): BrokerUrl {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The URL parser's error repeats the input, password included: it is not passed on.
    const hint = schemeHint(redactUrl(url));
    throw invalid(
      `invalid broker URL "${redactUrl(url)}": ${
        hint ??
          "it does not parse as a URL (expected e.g. mqtt://host:1883, with a port up to 65535)"
      }`,
    );
  }
  const shown = redactUrl(parsed);
  const scheme = parsed.protocol.slice(0, -1);
  if (scheme !== "mqtt" && scheme !== "mqtts" && scheme !== "ws" && scheme !== "wss") {
    throw invalid(
      `unsupported URL scheme "${parsed.protocol}" in "${redactUrl(url)}": ${
        schemeHint(redactUrl(url)) ?? "use mqtt:, mqtts:, ws: or wss:"
      }`,
    );
  }
  // Non-special schemes (mqtt:, mqtts:) keep the host's case; host names are case-insensitive.
  let hostname = parsed.hostname.toLowerCase();
  if (hostname.startsWith("[") && hostname.endsWith("]")) hostname = hostname.slice(1, -1);
  if (hostname === "") throw invalid(`broker URL "${shown}" has no host`);
  const port = parsed.port === "" ? DEFAULT_PORTS[scheme] : Number(parsed.port);
  if (port < 1 || port > 65535) {
    throw invalid(`broker URL "${shown}" has port ${port}; use 1..65535`);
  }
  let path = "";
  if (scheme === "ws" || scheme === "wss") {
    const pathname = parsed.pathname === "" || parsed.pathname === "/"
      ? DEFAULT_WS_PATH
      : parsed.pathname;
    path = pathname + parsed.search;
  } else if ((parsed.pathname !== "" && parsed.pathname !== "/") || parsed.search !== "") {
    throw invalid(
      `broker URL "${shown}" has a path; ${scheme}: URLs take none (paths are for ws: and wss:)`,
    );
  }
  const href = new URL(parsed.href);
  href.username = "";
  href.password = "";
  href.hash = "";
  href.port = String(port); // dropped again by URL when it is the scheme's default
  if (path !== "") href.pathname = path.split("?")[0];
  return { protocol: scheme, hostname, port, path, href };
}
