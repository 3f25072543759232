/**
 * Options of `connect()`: what the caller may give, the defaults, and the
 * validation that turns them into {@linkcode ResolvedOptions}.
 *
 * @module
 */
import type { QoS, Will } from "../codec/packet.ts";
import { MAX_PACKET_SIZE } from "../codec/remaining_length.ts";
import { validateTopicName } from "../codec/topic.ts";
import { MqttError } from "../errors.ts";
import type { SessionOptions } from "../session/types.ts";
import type { Store } from "../store/store.ts";
import { type BrokerUrl, DEFAULT_WS_PATH, parseBrokerUrl, urlCredentials } from "./url.ts";
import type { Transport } from "../transports/transport.ts";
import type { PacketListener } from "./packet_trace.ts";
import { checkForeignOptions } from "./hints.ts";
import { checkBoolean, checkInteger, checkString, invalid } from "./checks.ts";
import type { ConnectProperties, WillProperties } from "../codec/properties.ts";
import {
  checkWillProperties,
  type ProtocolVersionOption,
  resolveV5Options,
  type V5ConnectOptions,
} from "./v5_options.ts";
import { type AuthHandler, type AuthOptions, resolveAuthOptions } from "./auth.ts";

/** Last Will as the caller gives it; see {@linkcode ConnectOptions.will}. */
export interface WillOptions {
  /** Topic name the will is published to. */
  topic: string;
  /** Will message body; a string is sent as UTF-8. */
  payload: string | Uint8Array;
  /** QoS of the will message. @default {0} */
  qos?: QoS;
  /** Whether the will message is retained. @default {false} */
  retain?: boolean;
  /** MQTT 5.0 Will Properties (will delay, message expiry, content type, ...). */
  properties?: WillProperties;
}

/** TLS settings for `mqtts://` (and, where the runtime allows, `wss://`). */
export interface TlsOptions {
  /** PEM root certificates trusted in addition to the default roots. */
  caCerts?: string[];
  /** PEM client certificate chain, for mutual TLS; needs `key`. */
  cert?: string;
  /** PEM private key of `cert`, for mutual TLS; needs `cert`. */
  key?: string;
  /**
   * Name the server certificate is verified against (and sent as SNI) when it
   * differs from the URL's host, e.g. when connecting to an IP address.
   * @default {the URL's hostname}
   */
  serverName?: string;
}

/**
 * Options of `connect()`. Every field is optional; defaults are listed per field.
 *
 * For `ws://` and `wss://` URLs the URL's path is the WebSocket path (default
 * `/mqtt`). A user name and password in the URL (`mqtt://user:pass@host`) are
 * used when `username`/`password` are not given.
 *
 * @example
 * ```ts
 * import type { ConnectOptions } from "./options.ts";
 * const options: ConnectOptions = {
 *   clientId: "sensor-1",
 *   clean: false,
 *   keepAlive: 30,
 *   will: { topic: "status/sensor-1", payload: "offline", qos: 1, retain: true },
 * };
 * ```
 */
export interface ConnectOptions extends V5ConnectOptions, AuthOptions {
  /**
   * Client identifier. The empty string asks the server to assign one and is
   * allowed only with `clean: true` (MQTT-3.1.3-7).
   * @default {"deno-mqtt-" followed by 12 random letters and digits}
   */
  clientId?: string;
  /**
   * Start a clean session (CleanSession flag; Clean Start in MQTT 5.0);
   * `false` resumes a stored session. Under 5.0 the server keeps a session
   * after the connection only for `sessionExpiryInterval` seconds (default 0:
   * not at all), so `clean: false` needs that option too.
   * @default {true}
   */
  clean?: boolean;
  /** Keep-alive interval in seconds, 0..65535; 0 turns keep-alive off. @default {60} */
  keepAlive?: number;
  /** User name sent in CONNECT. */
  username?: string;
  /** Password sent in CONNECT; a string is sent as UTF-8. Needs `username` (MQTT-3.1.2-22). */
  password?: string | Uint8Array;
  /** Last Will, published by the server if the connection ends without DISCONNECT. */
  will?: WillOptions;
  /** TLS settings; only for `mqtts://` and `wss://` URLs. */
  tls?: TlsOptions;
  /** Milliseconds from opening the transport to CONNACK before failing with `CONNECT_TIMEOUT`. @default {10000} */
  connectTimeout?: number;
  /**
   * Milliseconds to wait for PINGRESP (or any packet) after a PINGREQ before
   * the connection is declared dead with `KEEPALIVE_TIMEOUT`. The default is
   * the keep-alive interval, at most 10 s, so a dead link is noticed within
   * about two keep-alive periods.
   * @default {min(keepAlive × 1000, 10000)}
   */
  pingTimeout?: number;
  /**
   * Most outgoing QoS 1 and 2 messages awaiting acknowledgement at once,
   * 1..65535; under MQTT 5.0 also at most the server's Receive Maximum. The
   * default is Mosquitto's `max_inflight_messages`: under MQTT 3.1.1, which
   * has no Receive Maximum, Mosquitto discards the QoS 2 PUBLISH beyond it
   * after answering PUBREC, so a larger window loses messages there.
   * @default {20}
   */
  maxInflight?: number;
  /**
   * Largest incoming packet accepted, in bytes including the fixed header;
   * a larger one fails the connection with `PACKET_TOO_LARGE`.
   * @default {268435460} (the protocol maximum: 1 + 4 + 268435455)
   */
  maxPacketSize?: number;
  /**
   * Messages buffered per subscription before the client stops reading the
   * socket until the consumer catches up. No message is ever dropped.
   * @default {1000}
   */
  bufferSize?: number;
  /**
   * Milliseconds after each connection is accepted during which a message
   * that matches no subscription is held for one: a resumed session's queued
   * messages (`clean: false`) arrive right after CONNACK, before your
   * `subscribe()` calls, and the first subscription that matches takes them.
   * After it (and once no SUBSCRIBE awaits its SUBACK), held messages and any
   * later one that matches no subscription are acknowledged and dropped
   * (MQTT-4.5.0-2), and the client's `unclaimed` event lists them (with no
   * listener for it, `console.warn` says so once per client); so does
   * `close()` for those still held. A held QoS 1/2 message holds back the
   * acknowledgement of every later one (they go out in arrival order), so
   * holding for good would stop all QoS 1/2 delivery once the broker's
   * in-flight window is full: subscribe within this time. `Infinity` holds
   * them until claimed, `unsubscribe()` or `close()`.
   * @default {1000}
   */
  holdTimeout?: number;
  /**
   * Milliseconds `close()` waits for in-flight messages to complete and then
   * for the server to close the connection after reading the DISCONNECT,
   * before closing anyway. @default {5000}
   */
  closeTimeout?: number;
  /** Aborts connecting (and closes the connection if it aborts later). */
  signal?: AbortSignal;
  /**
   * Opens the byte duplex to use instead of the built-in TCP, TLS or WebSocket
   * transport, e.g. a tunnel or an in-memory pipe. Receives the parsed URL.
   */
  transport?: (url: URL) => Promise<Transport>;
  /**
   * MQTT 5.0 server redirection: follow a CONNACK or DISCONNECT with 0x9C
   * (use another server) or 0x9D (server moved) to its Server Reference,
   * sending the same CONNECT there, credentials included, so it is off by
   * default. `true` follows up to 3 redirections in a row, a number up to
   * that many. A reference is never followed from TLS to plain text.
   * @default {false}
   */
  followRedirects?: boolean | number;
  /**
   * Reconnect automatically when an established connection is lost, with
   * exponential backoff and full jitter: attempt n waits a random time in
   * `[0, min(maxDelay, minDelay × 2^n))`. `false` turns it off: a lost
   * connection then closes the client. The first `connect()` is never retried.
   * @default {{ minDelay: 100, maxDelay: 30000 }}
   */
  reconnect?: boolean | ReconnectOptions;
  /**
   * Bounds of the queue of publishes waiting for the connection or for an
   * in-flight window slot (the offline queue).
   */
  queue?: QueueOptions;
  /**
   * Where in-flight and queued publishes and received QoS 2 identifiers are
   * kept. A durable store (`await FileStore.open(path)`) lets a new process
   * with the same `clientId` and `clean: false` resume without loss and
   * without delivering a QoS 2 message twice. One store per client identifier.
   * @default {in memory}
   */
  store?: Store;
  /**
   * Debug hook: called with every packet sent and received, e.g. to print a
   * trace as `mosquitto_sub -d` does. A CONNECT's password shows as `***`.
   *
   * @example
   * ```ts ignore
   * import { connect } from "../../mod.ts";
   * await using client = await connect("mqtt://localhost", {
   *   onPacket: (direction, packet) => console.debug(direction, packet.type),
   * }); // sent connect, received connack
   * ```
   */
  onPacket?: PacketListener;
}

/** Backoff of {@linkcode ConnectOptions.reconnect}, in milliseconds. */
export interface ReconnectOptions {
  /** Upper bound of the first retry's delay. @default {100} */
  minDelay?: number;
  /** Upper bound of any retry's delay. @default {30000} */
  maxDelay?: number;
}

/** Bounds of the publish queue; see {@linkcode ConnectOptions.queue}. */
export interface QueueOptions {
  /** Most publishes waiting at once. @default {10000} */
  maxMessages?: number;
  /** Most topic and payload bytes waiting at once. @default {16777216} (16 MiB) */
  maxBytes?: number;
  /**
   * What a publish meets when the queue is full: `"reject"` fails it with
   * `QUEUE_FULL`; `"drop-oldest"` fails the oldest waiting publish with
   * `QUEUE_FULL` and queues the new one.
   * @default {"reject"}
   */
  overflow?: "reject" | "drop-oldest";
  /**
   * Whether QoS 0 publishes made while disconnected wait in the queue; when
   * `false` they reject at once with `CONNECTION_CLOSED`.
   * @default {true}
   */
  qos0WhenOffline?: boolean;
}

/** {@linkcode ConnectOptions} validated, with every default applied. */
export interface ResolvedOptions {
  /** Where to connect. */
  url: BrokerUrl;
  /** Client identifier (generated when not given). */
  clientId: string;
  /** CleanSession flag. */
  clean: boolean;
  /** Keep-alive in seconds. */
  keepAlive: number;
  /** User name, if any. */
  username?: string;
  /** Password bytes, if any. */
  password?: Uint8Array;
  /** Last Will with its payload as bytes, if any. */
  will?: Will;
  /** TLS settings, if any were given. */
  tls?: TlsOptions;
  /** Milliseconds. */
  connectTimeout: number;
  /** Milliseconds. */
  pingTimeout: number;
  /** Outgoing QoS 1/2 window. */
  maxInflight: number;
  /** Incoming packet size limit in bytes. */
  maxPacketSize: number;
  /** Per-subscription message buffer. */
  bufferSize: number;
  /** Milliseconds, or `Infinity`. */
  holdTimeout: number;
  /** Milliseconds. */
  closeTimeout: number;
  /** Caller's abort signal, if any. */
  signal?: AbortSignal;
  /** Caller's transport factory, if any. */
  transport?: (url: URL) => Promise<Transport>;
  /** Reconnect backoff, or `false` when reconnecting is off. */
  reconnect: Required<ReconnectOptions> | false;
  /** Publish queue bounds, with defaults applied. */
  queue: Required<QueueOptions>;
  /** The caller's store, if any. */
  store?: Store;
  /** Set by the server list: drops in a row before a publish is given up (session default 3). */
  maxStrikes?: number;
  /** The caller's packet trace hook, if any. */
  onPacket?: PacketListener;
  /** 4 (MQTT 3.1.1), 5 (MQTT 5.0) or "auto". */
  protocolVersion: ProtocolVersionOption;
  /** MQTT 5.0 CONNECT properties, if any. */
  connectProperties?: ConnectProperties;
  /** MQTT 5.0 enhanced authentication: answers the server's AUTH challenges. */
  onAuth?: AuthHandler;
}

/** Default values of {@linkcode ConnectOptions}. */
export const DEFAULTS: {
  readonly clean: true;
  readonly keepAlive: 60;
  readonly connectTimeout: 10_000;
  readonly pingTimeout: 10_000;
  readonly maxInflight: 20;
  readonly maxPacketSize: 268_435_460;
  readonly bufferSize: 1000;
  readonly holdTimeout: 1000;
  readonly closeTimeout: 5_000;
  readonly wsPath: "/mqtt";
  readonly reconnect: { readonly minDelay: 100; readonly maxDelay: 30_000 };
  readonly queue: {
    readonly maxMessages: 10_000;
    readonly maxBytes: 16_777_216;
    readonly overflow: "reject";
    readonly qos0WhenOffline: true;
  };
} = Object.freeze({
  clean: true,
  keepAlive: 60,
  connectTimeout: 10_000,
  pingTimeout: 10_000,
  maxInflight: 20,
  maxPacketSize: 268_435_460,
  bufferSize: 1000,
  holdTimeout: 1000,
  closeTimeout: 5_000,
  wsPath: DEFAULT_WS_PATH,
  reconnect: Object.freeze({ minDelay: 100, maxDelay: 30_000 } as const),
  queue: Object.freeze(
    {
      maxMessages: 10_000,
      maxBytes: 16_777_216,
      overflow: "reject",
      qos0WhenOffline: true,
    } as const,
  ),
});

// setTimeout fires at once for delays above 2^31 - 1 ms, so longer ones are refused.
const MAX_TIMER_MS = 2 ** 31 - 1;
const encoder = new TextEncoder();

function checkMillis(name: string, value: unknown, min: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > MAX_TIMER_MS) {
    throw invalid(
      `${name} must be a number of milliseconds from ${min} to ${MAX_TIMER_MS}, got ${
        String(value)
      }`,
    );
  }
  return value;
}

/** `holdTimeout`: milliseconds, or `Infinity` (held until claimed), else throws `INVALID_OPTION`. */
function checkHoldTimeout(value: unknown): number {
  if (value === Infinity) return value;
  if (typeof value !== "number" || !(value >= 0 && value <= MAX_TIMER_MS)) {
    throw invalid(
      `holdTimeout must be a number of milliseconds from 0 to ${MAX_TIMER_MS}, or Infinity to ` +
        `hold messages for no subscription until one claims them, got ${String(value)}`,
    );
  }
  return value;
}

/** A PEM option given a file's path instead of its content: the mistake is named. */
function checkPem(name: string, value: string): void {
  if (value.includes("-----BEGIN")) return;
  if (!/[/\\]|\.(pem|crt|cer|key)$/i.test(value)) return; // not PEM either, but TLS will say
  throw invalid(
    `${name} is not PEM text but looks like a file path (${JSON.stringify(value)}): ` +
      `pass the file's content, not its path (read the file first)`,
  );
}

/**
 * A string as its UTF-8 bytes, a `Uint8Array` as it is; anything else throws `INVALID_OPTION`.
 *
 * @example
 * ```ts
 * import { toBytes } from "./options.ts";
 * console.log(toBytes("payload", "hi")); // Uint8Array(2) [ 104, 105 ]
 * ```
 */
export function toBytes(name: string, value: unknown): Uint8Array {
  if (typeof value === "string") return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  throw invalid(`${name} must be a string or a Uint8Array, got ${typeof value}`);
}

/**
 * Returns `value` if it is a QoS (0, 1 or 2), else throws `INVALID_OPTION`.
 *
 * @example
 * ```ts
 * import { checkQos } from "./options.ts";
 * console.log(checkQos("qos", 1)); // 1
 * ```
 */
export function checkQos(name: string, value: unknown): QoS {
  if (value !== 0 && value !== 1 && value !== 2) {
    throw invalid(`${name} must be 0, 1 or 2, got ${String(value)}`);
  }
  return value;
}

const ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/**
 * A fresh client identifier, `deno-mqtt-` and 12 random letters and digits
 * (22 characters: within the 23 every server must accept, MQTT-3.1.3-5,
 * though the hyphens are outside the character set every server must accept).
 *
 * @example
 * ```ts
 * import { generateClientId } from "./options.ts";
 * console.log(generateClientId()); // e.g. "deno-mqtt-3fK9xQ0aLm2Z"
 * ```
 */
export function generateClientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  let id = "deno-mqtt-";
  // 62 does not divide 256 evenly; the slight bias is harmless for uniqueness.
  for (const b of bytes) id += ID_ALPHABET[b % 62];
  return id;
}

/**
 * Validates `connect()` options and applies every default. Throws
 * `MqttError` with code `INVALID_OPTION` and a message naming the bad option.
 *
 * The will topic is checked with the codec's `validateTopicName`. Not checked
 * here: the encoded length of the client id, user name and password (the codec
 * refuses them when CONNECT is encoded).
 *
 * @example
 * ```ts
 * import { resolveOptions } from "./options.ts";
 * const resolved = resolveOptions("mqtts://broker.example", { username: "u", password: "p" });
 * console.log(resolved.url.port, resolved.keepAlive, resolved.password); // 8883 60 Uint8Array(1)
 * ```
 */
export function resolveOptions(url: string | URL, options: ConnectOptions = {}): ResolvedOptions {
  if (typeof options !== "object" || options === null) {
    throw invalid(`options must be an object, got ${options === null ? "null" : typeof options}`);
  }
  checkForeignOptions(url, options);
  const broker = parseBrokerUrl(url);
  const parsed = url instanceof URL ? url : new URL(url);

  const clean = options.clean === undefined ? DEFAULTS.clean : checkBoolean("clean", options.clean);
  let clientId: string;
  if (options.clientId === undefined) {
    clientId = generateClientId();
  } else {
    clientId = checkString("clientId", options.clientId);
    // MQTT 5.0 lifts the rule: the server assigns an identifier whatever Clean Start says.
    if (clientId === "" && !clean && options.protocolVersion !== 5) {
      throw invalid("an empty clientId requires clean: true (MQTT-3.1.3-7)");
    }
  }
  const keepAlive = options.keepAlive === undefined
    ? DEFAULTS.keepAlive
    : checkInteger("keepAlive (seconds)", options.keepAlive, 0, 65535);

  let username = options.username === undefined
    ? undefined
    : checkString("username", options.username);
  let password = options.password === undefined ? undefined : toBytes("password", options.password);
  if (username === undefined && password === undefined) {
    const fromUrl = urlCredentials(parsed);
    username = fromUrl.username;
    if (fromUrl.password !== undefined) password = encoder.encode(fromUrl.password);
  }
  if (password !== undefined && username === undefined) {
    throw invalid("a password needs a username (MQTT-3.1.2-22)");
  }

  let will: Will | undefined;
  if (options.will !== undefined) {
    const w = options.will;
    if (typeof w !== "object" || w === null) throw invalid("will must be an object");
    const topic = checkString("will.topic", w.topic);
    try {
      validateTopicName(topic);
    } catch (cause) {
      throw new MqttError("INVALID_OPTION", `will.topic: ${(cause as Error).message}`, { cause });
    }
    will = {
      topic,
      payload: toBytes("will.payload", w.payload),
      qos: w.qos === undefined ? 0 : checkQos("will.qos", w.qos), // MQTT-3.1.2-14
      retain: w.retain === undefined ? false : checkBoolean("will.retain", w.retain),
    };
    // Under 3.1.1 resolveV5Options below refuses will.properties.
    const v5 = options.protocolVersion === 5 || options.protocolVersion === "auto";
    if (w.properties !== undefined && v5) will.properties = checkWillProperties(w.properties);
  }

  let tls: TlsOptions | undefined;
  if (options.tls !== undefined) {
    if (broker.protocol !== "mqtts" && broker.protocol !== "wss") {
      throw invalid(
        `tls options were given for a ${broker.protocol}: URL; use mqtts: or wss: for TLS`,
      );
    }
    const t = options.tls;
    if (typeof t !== "object" || t === null) throw invalid("tls must be an object");
    if (t.caCerts !== undefined) {
      if (!Array.isArray(t.caCerts) || t.caCerts.some((c) => typeof c !== "string")) {
        throw invalid("tls.caCerts must be an array of PEM strings");
      }
      t.caCerts.forEach((pem, i) => checkPem(`tls.caCerts[${i}]`, pem));
    }
    if (t.cert !== undefined) checkPem("tls.cert", checkString("tls.cert", t.cert));
    if (t.key !== undefined) checkPem("tls.key", checkString("tls.key", t.key));
    if ((t.cert === undefined) !== (t.key === undefined)) {
      throw invalid("tls.cert and tls.key must be given together (mutual TLS needs both)");
    }
    if (t.serverName !== undefined && checkString("tls.serverName", t.serverName) === "") {
      throw invalid("tls.serverName must not be empty");
    }
    tls = {
      caCerts: t.caCerts === undefined ? undefined : [...t.caCerts],
      cert: t.cert,
      key: t.key,
      serverName: t.serverName,
    };
  }

  const connectTimeout = options.connectTimeout === undefined
    ? DEFAULTS.connectTimeout
    : checkMillis("connectTimeout", options.connectTimeout, 1);
  // A dead link is noticed within about two keep-alive periods, as with other clients.
  const pingTimeout = options.pingTimeout === undefined
    ? (keepAlive === 0 ? DEFAULTS.pingTimeout : Math.min(keepAlive * 1000, DEFAULTS.pingTimeout))
    : checkMillis("pingTimeout", options.pingTimeout, 1);
  const closeTimeout = options.closeTimeout === undefined
    ? DEFAULTS.closeTimeout
    : checkMillis("closeTimeout", options.closeTimeout, 0);
  const holdTimeout = options.holdTimeout === undefined
    ? DEFAULTS.holdTimeout
    : checkHoldTimeout(options.holdTimeout);
  const maxInflight = options.maxInflight === undefined
    ? DEFAULTS.maxInflight
    : checkInteger("maxInflight", options.maxInflight, 1, 65535);
  const maxPacketSize = options.maxPacketSize === undefined
    ? DEFAULTS.maxPacketSize
    : checkInteger("maxPacketSize", options.maxPacketSize, 2, MAX_PACKET_SIZE);
  const bufferSize = options.bufferSize === undefined
    ? DEFAULTS.bufferSize
    : checkInteger("bufferSize", options.bufferSize, 1, Number.MAX_SAFE_INTEGER);

  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw invalid("signal must be an AbortSignal");
  }
  if (options.transport !== undefined && typeof options.transport !== "function") {
    throw invalid("transport must be a function (url: URL) => Promise<Transport>");
  }

  const v5 = resolveV5Options(
    options,
    options.maxPacketSize === undefined ? undefined : maxPacketSize,
  );
  const reconnect = resolveReconnect(options.reconnect);
  const queue = resolveQueue(options.queue);

  const resolved: ResolvedOptions = {
    reconnect,
    queue,
    url: broker,
    clientId,
    clean,
    keepAlive,
    connectTimeout,
    pingTimeout,
    maxInflight,
    maxPacketSize,
    bufferSize,
    holdTimeout,
    closeTimeout,
    protocolVersion: v5.protocolVersion,
  };
  if (v5.connectProperties !== undefined) resolved.connectProperties = v5.connectProperties;
  const auth = resolveAuthOptions(options, v5.protocolVersion);
  if (auth !== undefined) {
    resolved.connectProperties = { ...resolved.connectProperties, ...auth.properties };
    if (auth.onAuth !== undefined) resolved.onAuth = auth.onAuth;
  }
  if (username !== undefined) resolved.username = username;
  if (password !== undefined) resolved.password = password;
  if (will !== undefined) resolved.will = will;
  if (tls !== undefined) resolved.tls = tls;
  if (options.signal !== undefined) resolved.signal = options.signal;
  if (options.transport !== undefined) resolved.transport = options.transport;
  if (options.onPacket !== undefined) {
    if (typeof options.onPacket !== "function") {
      throw invalid("onPacket must be a function (direction, packet) => void");
    }
    resolved.onPacket = options.onPacket;
  }
  if (options.store !== undefined) {
    if (typeof options.store !== "object" || options.store === null) {
      throw invalid("store must be a Store (e.g. await FileStore.open(path))");
    }
    resolved.store = options.store;
  }
  return resolved;
}

function resolveReconnect(value: ConnectOptions["reconnect"]): ResolvedOptions["reconnect"] {
  if (value === false) return false;
  if (value === undefined || value === true) return { ...DEFAULTS.reconnect };
  if (typeof value !== "object" || value === null) {
    throw invalid("reconnect must be a boolean or { minDelay, maxDelay }");
  }
  const minDelay = value.minDelay === undefined
    ? DEFAULTS.reconnect.minDelay
    : checkMillis("reconnect.minDelay", value.minDelay, 1);
  const maxDelay = value.maxDelay === undefined
    ? Math.max(minDelay, DEFAULTS.reconnect.maxDelay)
    : checkMillis("reconnect.maxDelay", value.maxDelay, 1);
  if (maxDelay < minDelay) {
    throw invalid(`reconnect.maxDelay (${maxDelay}) is below reconnect.minDelay (${minDelay})`);
  }
  return { minDelay, maxDelay };
}

function resolveQueue(value: QueueOptions | undefined): Required<QueueOptions> {
  const d = DEFAULTS.queue;
  if (value === undefined) return { ...d };
  if (typeof value !== "object" || value === null) throw invalid("queue must be an object");
  const overflow = value.overflow ?? d.overflow;
  if (overflow !== "reject" && overflow !== "drop-oldest") {
    throw invalid(`queue.overflow must be "reject" or "drop-oldest", got ${String(overflow)}`);
  }
  return {
    maxMessages: value.maxMessages === undefined
      ? d.maxMessages
      : checkInteger("queue.maxMessages", value.maxMessages, 0, Number.MAX_SAFE_INTEGER),
    maxBytes: value.maxBytes === undefined
      ? d.maxBytes
      : checkInteger("queue.maxBytes", value.maxBytes, 0, Number.MAX_SAFE_INTEGER),
    overflow,
    qos0WhenOffline: value.qos0WhenOffline === undefined
      ? d.qos0WhenOffline
      : checkBoolean("queue.qos0WhenOffline", value.qos0WhenOffline),
  };
}

/**
 * The part of resolved options the session needs.
 *
 * @example
 * ```ts
 * import { resolveOptions, sessionOptions } from "./options.ts";
 * const session = sessionOptions(resolveOptions("mqtt://localhost", { clientId: "a" }));
 * console.log(session.clientId, session.keepAlive); // "a" 60
 * ```
 */
export function sessionOptions(resolved: ResolvedOptions): SessionOptions {
  const options: SessionOptions = {
    clientId: resolved.clientId,
    clean: resolved.clean,
    keepAlive: resolved.keepAlive,
    maxInflight: resolved.maxInflight,
    pingTimeout: resolved.pingTimeout,
    connectTimeout: resolved.connectTimeout,
    // Acknowledged when the application has the message (SubscribeOptions.ack).
    deferAcks: true,
  };
  if (resolved.username !== undefined) options.username = resolved.username;
  if (resolved.password !== undefined) options.password = resolved.password;
  if (resolved.will !== undefined) options.will = resolved.will;
  if (resolved.maxStrikes !== undefined) options.maxStrikes = resolved.maxStrikes;
  if (resolved.protocolVersion !== 4) {
    // "auto" starts at 5.0; the client asks for 4 itself after a refusal.
    options.protocolVersion = 5;
    if (resolved.connectProperties !== undefined) options.properties = resolved.connectProperties;
  }
  return options;
}
