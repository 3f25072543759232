/**
 * Errors that say what to do: the hints added to the messages of failures a
 * newcomer meets first (an untrusted certificate, the wrong port or scheme, a
 * URL without a scheme, options spelled as in MQTT.js). The error's class and
 * code stay as they are; only the message grows.
 *
 * @module
 */
import { MqttError } from "../errors.ts";
import type { BrokerUrl } from "./url.ts";

/** Appends `hint` to `error`'s message and returns it. */
function withHint<E extends Error>(error: E, hint: string): E {
  error.message = `${error.message}: ${hint}`;
  return error;
}

/**
 * Adds a hint to a failed TLS handshake or certificate load: an untrusted
 * server certificate names `tls.caCerts` (and `--cafile`), a name mismatch
 * names `tls.serverName`, an X.509 v1 certificate says which side's it is.
 *
 * @example
 * ```ts
 * import { MqttError } from "../errors.ts";
 * import { explainTlsError } from "./hints.ts";
 * const err = new MqttError("TRANSPORT_ERROR", "invalid peer certificate: UnknownIssuer");
 * console.log(explainTlsError(err, false).message.includes("tls.caCerts")); // true
 * ```
 */
export function explainTlsError(error: MqttError, clientCert: boolean): MqttError {
  const text = error.message;
  if (text.includes("UnknownIssuer")) {
    return withHint(
      error,
      "the server's certificate is not trusted (no CA this runtime trusts signed it); " +
        "give the PEM text of the CA that signed it in tls.caCerts (pub/sub: --cafile ca.pem)",
    );
  }
  if (/NotValidForName|not valid for name/i.test(text)) {
    return withHint(
      error,
      "the server's certificate is not issued for this host name; connect by a name it " +
        "holds, or give that name in tls.serverName (pub/sub: --insecure-servername name)",
    );
  }
  if (/UnsupportedCertVersion/i.test(text)) {
    return withHint(
      error,
      clientCert
        ? 'despite the words "peer certificate", it is most likely OUR certificate (tls.cert, ' +
          "pub/sub --cert) that the TLS library (rustls) refuses: it is an " +
          "X.509 version 1 certificate and rustls accepts only version 3; " +
          "issue it again as v3 (e.g. openssl x509 -req ... -extfile with basicConstraints=CA:FALSE)"
        : "the server's certificate is an X.509 version 1 certificate, which rustls refuses; " +
          "the server needs a version 3 certificate",
    );
  }
  return error;
}

const HTTP = [0x48, 0x54, 0x54, 0x50, 0x2f]; // "HTTP/"

/**
 * Adds a hint to a connection that failed before CONNACK, from the first
 * bytes the server sent (if any): an HTTP answer means the port speaks HTTP
 * or WebSocket (try `ws://`); a TLS record, or a hang-up without a word, on
 * an `mqtt://` URL suggests a TLS port (try `mqtts://`).
 *
 * @example
 * ```ts
 * import { MqttError } from "../errors.ts";
 * import { explainEarlyEnd } from "./hints.ts";
 * import { parseBrokerUrl } from "./url.ts";
 * const err = new MqttError("TRANSPORT_ERROR", "bad flags");
 * const http = new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n");
 * console.log(explainEarlyEnd(err, http, parseBrokerUrl("mqtt://h:8080")).message);
 * // bad flags: the server answered in HTTP ("HTTP/1.1 400 Bad Request"): ... try ws://h:8080/mqtt
 * ```
 */
export function explainEarlyEnd(
  error: MqttError,
  first: Uint8Array | undefined,
  url: BrokerUrl,
): MqttError {
  const hostPort = `${url.hostname.includes(":") ? `[${url.hostname}]` : url.hostname}:${url.port}`;
  if (first !== undefined && HTTP.every((byte, i) => first[i] === byte)) {
    const line = new TextDecoder().decode(first.subarray(0, 80)).split("\r\n")[0];
    const scheme = url.protocol === "mqtts" || url.protocol === "wss" ? "wss" : "ws";
    return withHint(
      error,
      `the server answered in HTTP ("${line}"): this port speaks HTTP or WebSocket, not MQTT ` +
        `over TCP; try ${scheme}://${hostPort}/mqtt`,
    );
  }
  const tlsRecord = first !== undefined && first.length >= 2 && first[1] === 0x03 &&
    (first[0] === 0x15 || first[0] === 0x16);
  if ((url.protocol === "mqtt" || url.protocol === "ws") && (tlsRecord || first === undefined)) {
    const secure = url.protocol === "mqtt" ? "mqtts" : "wss";
    return withHint(
      error,
      `the server ${
        tlsRecord ? "answered with TLS" : "ended the connection before answering CONNECT"
      }; if this port expects TLS, use ${secure}://${hostPort}`,
    );
  }
  return error;
}

/**
 * The `connect()` URL hint for text without a scheme, such as `"localhost"`
 * or `"broker:1883"`; `undefined` when the text has one.
 *
 * @example
 * ```ts
 * import { schemeHint } from "./hints.ts";
 * console.log(schemeHint("localhost:1883")); // ...did you mean "mqtt://localhost:1883"?
 * ```
 */
export function schemeHint(text: string): string | undefined {
  if (text.includes("://")) return undefined;
  return `a broker URL needs a scheme: did you mean "mqtt://${text}"? ` +
    `(mqtts:// for TLS, ws:// or wss:// for WebSocket)`;
}

/** Options of MQTT.js (and Paho) and what this module calls them. */
const FOREIGN_OPTIONS: Record<string, string> = {
  host: 'the host in the URL: connect("mqtt://host:1883")',
  hostname: 'the host in the URL: connect("mqtt://host:1883")',
  port: 'the port in the URL: connect("mqtt://host:1883")',
  protocol: 'the scheme of the URL: connect("mqtts://host")',
  path: 'the path of a ws:// or wss:// URL: connect("ws://host/mqtt")',
  ca: "tls.caCerts (an array of PEM strings)",
  cert: "tls.cert (PEM text)",
  key: "tls.key (PEM text)",
  servername: "tls.serverName",
  rejectUnauthorized: "tls.caCerts (trust the server's CA) or tls.serverName; " +
    "certificate checks cannot be turned off",
  reconnectPeriod: "reconnect: { minDelay, maxDelay } in milliseconds, or reconnect: false " +
    "(for reconnectPeriod: 0)",
  keepalive: "keepAlive (seconds)",
  clientID: "clientId",
};

/**
 * Throws `INVALID_OPTION` naming our equivalent when `options` has a key this
 * module does not know but MQTT.js does (`host`, `ca`, `reconnectPeriod`…), and
 * when the URL is an MQTT.js-style object instead of a URL. Other unknown keys
 * are left alone.
 *
 * @example
 * ```ts
 * import { checkForeignOptions } from "./hints.ts";
 * try {
 *   checkForeignOptions("mqtt://localhost", { reconnectPeriod: 1000 });
 * } catch (err) {
 *   console.log((err as Error).message); // options.reconnectPeriod is MQTT.js's name; here it is reconnect: ...
 * }
 * ```
 */
export function checkForeignOptions(url: unknown, options: object): void {
  if (typeof url === "object" && url !== null && !(url instanceof URL)) {
    const o = url as Record<string, unknown>;
    const guess = `${o.protocol ?? "mqtt"}://${o.host ?? o.hostname ?? "localhost"}${
      o.port === undefined ? "" : `:${o.port}`
    }`.replace(/:\/\/\/?/, "://").replace(/^(\w+):?:\/\//, "$1://");
    throw new MqttError(
      "INVALID_OPTION",
      `connect() takes the broker URL first and the options second, not an MQTT.js-style ` +
        `{ host, port, protocol } object: write connect("${guess}", options)`,
    );
  }
  for (const key of Object.keys(options)) {
    const ours = Object.hasOwn(FOREIGN_OPTIONS, key) ? FOREIGN_OPTIONS[key] : undefined;
    if (ours !== undefined) {
      throw new MqttError(
        "INVALID_OPTION",
        `options.${key} is MQTT.js's name; here it is ${ours}`,
      );
    }
  }
}
