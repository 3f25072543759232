/**
 * Options, hooks and reports of the embedded broker.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import { MqttError } from "../errors.ts";

/**
 * A connected client as the authorization hooks see it.
 *
 * @example
 * ```ts
 * import type { BrokerClient } from "./options.ts";
 * const canWrite = (client: BrokerClient, topic: string) => topic.startsWith(`${client.id}/`);
 * ```
 */
export interface BrokerClient {
  /** The client identifier (assigned by the broker when the client sent an empty one). */
  readonly id: string;
  /** The user name given in CONNECT, if any. */
  readonly username?: string;
  /** Where the client connects from, e.g. "127.0.0.1:54321", when the transport tells. */
  readonly remoteAddress?: string;
}

/**
 * What {@linkcode BrokerOptions.authenticate} is asked about.
 *
 * @example
 * ```ts
 * import type { AuthenticateContext } from "./options.ts";
 * const check = (ctx: AuthenticateContext) =>
 *   ctx.username === "admin" && new TextDecoder().decode(ctx.password) === "secret";
 * ```
 */
export interface AuthenticateContext {
  /** The client identifier from CONNECT (assigned when it was empty). */
  clientId: string;
  /** The user name from CONNECT, if any. */
  username?: string;
  /** The password from CONNECT, if any (binary data in MQTT 3.1.1). */
  password?: Uint8Array;
  /** Where the client connects from, when the transport tells. */
  remoteAddress?: string;
}

/**
 * One step of an MQTT 5.0 enhanced authentication (section 4.12), as
 * {@linkcode BrokerOptions.enhancedAuthenticate} is asked it.
 *
 * @example
 * ```ts
 * import type { EnhancedAuthContext } from "./options.ts";
 * const first = (ctx: EnhancedAuthContext) => ctx.step === 0 && !ctx.reauthenticate;
 * ```
 */
export interface EnhancedAuthContext {
  /** The Authentication Method of the CONNECT, e.g. "SCRAM-SHA-256". */
  method: string;
  /** The client's Authentication Data of this step (CONNECT's, then each AUTH's). */
  data?: Uint8Array;
  /** The client identifier (assigned when it was empty). */
  clientId: string;
  /** The user name from CONNECT, if any. */
  username?: string;
  /** Where the client connects from, when the transport tells. */
  remoteAddress?: string;
  /** Whether this exchange is a re-authentication of a connected client (AUTH 0x19). */
  reauthenticate: boolean;
  /** 0 for the first step of an exchange, then 1, 2, … */
  step: number;
  /** Kept across the steps of one exchange, for the hook's own state (a fresh object per exchange). */
  state: Record<string, unknown>;
}

/**
 * What a step of enhanced authentication decides: another challenge
 * (AUTH 0x18 with `data`), success (CONNACK 0x00, or AUTH 0x00 after a
 * re-authentication, with `data`), or failure (CONNACK, or DISCONNECT after a
 * re-authentication, with `reasonCode`, default 0x87 Not authorized).
 *
 * @example
 * ```ts
 * import type { EnhancedAuthResult } from "./options.ts";
 * const challenge: EnhancedAuthResult = { result: "continue", data: new Uint8Array([1]) };
 * ```
 */
export type EnhancedAuthResult =
  | { result: "continue"; data?: Uint8Array }
  | { result: "success"; data?: Uint8Array }
  | { result: "fail"; reasonCode?: number };

/**
 * Options of a {@linkcode Broker}. Every field is optional.
 *
 * @example
 * ```ts
 * import type { BrokerOptions } from "./options.ts";
 * const options: BrokerOptions = {
 *   authenticate: ({ username }) => username === "alice",
 *   authorizeSubscribe: (_client, filter, qos) => (filter.startsWith("admin/") ? false : qos),
 *   log: console.log,
 * };
 * ```
 */
export interface BrokerOptions {
  /**
   * Largest packet accepted from a client, fixed header included; a larger one
   * closes that connection as soon as its fixed header is read. Default 16 MiB.
   */
  maxPacketSize?: number;
  /**
   * Highest QoS granted to a subscription (Mosquitto's `max_qos`); a client
   * publishing with a higher QoS is disconnected, as Mosquitto does. Default 2.
   */
  maxQoS?: QoS;
  /**
   * Most outgoing QoS 1/2 PUBLISH awaiting acknowledgement per client; later
   * messages wait in the client's queue, in order. Default 20 (as Mosquitto).
   */
  maxInflight?: number;
  /**
   * Most messages waiting per client (online behind a slow connection, or
   * offline with a persistent session). When full, the oldest is dropped and
   * counted in {@linkcode BrokerStats.droppedMessages}. Default 1000.
   */
  maxQueuedMessages?: number;
  /**
   * Most topic plus payload bytes waiting per client, with the same
   * drop-oldest rule as `maxQueuedMessages`. Default 16 MiB, or
   * `maxPacketSize` when that is larger (so one message always fits).
   */
  maxQueuedBytes?: number;
  /**
   * Most retained messages held. When full, a retained PUBLISH to a topic that
   * holds none is delivered but not retained, and a line is logged; updating or
   * clearing a held topic always works. So what is retained cannot be pushed
   * out by a flood of new topics. Default 100 000.
   */
  maxRetained?: number;
  /** Most topic plus payload bytes of retained messages, with the rule of `maxRetained`. Default 256 MiB. */
  maxRetainedBytes?: number;
  /**
   * Whether retained messages are supported (Mosquitto's `retain_available`).
   * When false, a client that sends a PUBLISH with RETAIN=1 is disconnected,
   * as Mosquitto does with 3.1.1 clients. Default true.
   */
  retainAvailable?: boolean;
  /**
   * Largest keep-alive, in seconds, a client may ask for (Mosquitto's
   * `max_keepalive`); 3.1.1 cannot tell a client to use less, so a CONNECT
   * asking for more, or for none (0) when this is below 65 535, is refused with
   * CONNACK 2, as Mosquitto does. Default 65 535 (no limit).
   */
  maxKeepAlive?: number;
  /**
   * MQTT 5.0: most Topic Aliases a client may use on one connection (the
   * CONNACK's Topic Alias Maximum, Mosquitto's `max_topic_alias`); 0 allows none.
   * The broker also sends aliases to clients whose CONNECT allows them. Default 10.
   */
  maxTopicAlias?: number;
  /**
   * MQTT 5.0 Response Information, sent in CONNACK to a client that asks for
   * it (Request Response Information 1): the base of its response topics. A
   * function gets the client (its identifier is known by then). Default: none sent.
   */
  responseInformation?: string | ((client: BrokerClient) => string);
  /** Most open connections (including ones that have not sent CONNECT yet). Default 10 000. */
  maxConnections?: number;
  /**
   * Milliseconds a new connection has to send CONNECT and be accepted (the
   * `authenticate` hook included) before it is closed. Default 10 000.
   */
  connectTimeout?: number;
  /**
   * Checks a client's credentials. Returning `false` refuses the connection
   * with CONNACK return code 4, "bad user name or password"; throwing (or a
   * rejected promise) refuses it with 3, "server unavailable". Default: everyone may connect.
   */
  authenticate?: (ctx: AuthenticateContext) => boolean | Promise<boolean>;
  /**
   * MQTT 5.0 enhanced authentication (section 4.12): called for each step of
   * the exchange a CONNECT with an Authentication Method starts, and of each
   * re-authentication (AUTH 0x19). Such a client is not asked to
   * `authenticate`. Throwing fails the exchange with 0x88 Server unavailable.
   * Without it, a CONNECT with an Authentication Method is refused with 0x8C
   * Bad authentication method. Default: none.
   */
  enhancedAuthenticate?: (
    ctx: EnhancedAuthContext,
  ) => EnhancedAuthResult | Promise<EnhancedAuthResult>;
  /**
   * May `client` publish to `topic`? When not, the message is dropped but still
   * acknowledged, as Mosquitto does, so the client cannot tell. Also asked for
   * a will when it is published. A throwing hook counts as `false`. Default: yes.
   */
  authorizePublish?: (client: BrokerClient, topic: string) => boolean | Promise<boolean>;
  /**
   * May `client` subscribe to `filter` at `qos`? Return the QoS to grant (the
   * broker grants at most the requested one) or `false` to refuse the filter
   * (return code 0x80 in SUBACK). A throwing hook counts as `false`. Default: grant.
   */
  authorizeSubscribe?: (
    client: BrokerClient,
    filter: string,
    qos: QoS,
  ) => QoS | false | Promise<QoS | false>;
  /** Receives one line per connection event, worded like Mosquitto's log. Default: silent. */
  log?: (line: string) => void;
  /**
   * A directory where retained messages and persistent sessions (clean
   * session 0: subscriptions, queued and in-flight messages) are kept across
   * a restart. Each change is written before the broker acknowledges what
   * caused it, so a killed process loses nothing acknowledged. Loaded by
   * {@linkcode Broker.listen} (or the first connection given to `handle`);
   * messages published with {@linkcode Broker.publish} before then are not
   * kept. Default: memory only.
   */
  persistence?: string;
  /**
   * With `persistence`, also flush each change to the disk (fsync), so it
   * survives a power loss, not only a killed process. Default false.
   */
  persistenceFsync?: boolean;
}

/**
 * Where {@linkcode Broker.listen} listens.
 *
 * @example
 * ```ts
 * import type { ListenOptions } from "./options.ts";
 * const options: ListenOptions = { port: 0, wsPort: 0 }; // free ports for both
 * ```
 */
export interface ListenOptions {
  /** TCP port; 0 picks a free one. Default 1883. */
  port?: number;
  /** Interface to bind. Default "127.0.0.1". */
  hostname?: string;
  /** WebSocket port (path-agnostic, subprotocol "mqtt"); 0 picks a free one. Default: no WebSocket. */
  wsPort?: number;
  /**
   * Browser origins allowed on the WebSocket listener, e.g. `["https://app.example"]`.
   * An upgrade request with any other `Origin` header gets 403, so a web page
   * elsewhere cannot make its visitors' browsers talk to the broker; a request
   * without `Origin` (not from a browser) is served. Default: every origin.
   */
  allowedOrigins?: string[];
  /**
   * Serve TLS on these listeners (mqtts:// and wss://) with this certificate.
   * See {@linkcode TlsListenOptions}.
   */
  tls?: TlsListenOptions;
}

/**
 * The certificate of a TLS listener, and whether clients must present one.
 *
 * @example
 * ```ts ignore
 * const tls: TlsListenOptions = {
 *   cert: await Deno.readTextFile("server.crt"),
 *   key: await Deno.readTextFile("server.key"),
 *   caCerts: [await Deno.readTextFile("ca.crt")],
 *   requireClientCert: true,
 * };
 * ```
 */
export interface TlsListenOptions {
  /** The server's certificate chain, PEM. */
  cert: string;
  /** Its private key, PEM. */
  key: string;
  /** CAs that sign client certificates, PEM (Mosquitto's `cafile`). */
  caCerts?: string[];
  /**
   * Refuse clients without a certificate signed by one of `caCerts`
   * (Mosquitto's `require_certificate`). Default false.
   */
  requireClientCert?: boolean;
}

/**
 * The addresses {@linkcode Broker.listen} bound.
 *
 * @example
 * ```ts ignore
 * const { port, wsPort } = await broker.listen({ port: 0, wsPort: 0 });
 * console.log(`mqtt://localhost:${port}`, `ws://localhost:${wsPort}`);
 * ```
 */
export interface ListenAddress {
  /** The interface bound. */
  hostname: string;
  /** The TCP port bound. */
  port: number;
  /** The WebSocket port bound, when one was asked for. */
  wsPort?: number;
  /** Whether the listeners serve TLS. */
  tls?: boolean;
}

/**
 * What {@linkcode Broker.handle} may be told about a connection.
 *
 * @example
 * ```ts
 * import type { ConnectionInfo } from "./options.ts";
 * const info: ConnectionInfo = { remoteAddress: "10.0.0.7:50211" };
 * ```
 */
export interface ConnectionInfo {
  /** Peer address for logs and hooks, e.g. "127.0.0.1:54321". */
  remoteAddress?: string;
}

/**
 * A snapshot of the broker's counters.
 *
 * @example
 * ```ts ignore
 * const { clients, subscriptions, droppedMessages } = broker.stats();
 * ```
 */
export interface BrokerStats {
  /** Open network connections, connected or not yet. */
  connections: number;
  /** Clients that completed CONNECT and are still connected. */
  clients: number;
  /** Sessions held, connected or offline (persistent). */
  sessions: number;
  /** Subscriptions over every session. */
  subscriptions: number;
  /** Retained messages held. */
  retained: number;
  /** Messages waiting in client queues. */
  queuedMessages: number;
  /** Messages dropped because a client's queue was full, since the broker started. */
  droppedMessages: number;
  /** Application messages received from clients (and `publish`), since the broker started. */
  messagesReceived: number;
}

/** {@linkcode BrokerOptions} with every default applied. */
export interface ResolvedBrokerOptions {
  maxPacketSize: number;
  maxQoS: QoS;
  maxInflight: number;
  maxQueuedMessages: number;
  maxQueuedBytes: number;
  maxRetained: number;
  maxRetainedBytes: number;
  retainAvailable: boolean;
  maxKeepAlive: number;
  maxTopicAlias: number;
  responseInformation: BrokerOptions["responseInformation"];
  maxConnections: number;
  connectTimeout: number;
  authenticate: BrokerOptions["authenticate"];
  enhancedAuthenticate: BrokerOptions["enhancedAuthenticate"];
  authorizePublish: BrokerOptions["authorizePublish"];
  authorizeSubscribe: BrokerOptions["authorizeSubscribe"];
  log: ((line: string) => void) | undefined;
  persistence: string | undefined;
  persistenceFsync: boolean;
}

/** The defaults of {@linkcode BrokerOptions}. */
export const BROKER_DEFAULTS: {
  readonly maxPacketSize: number;
  readonly maxQoS: QoS;
  readonly maxInflight: number;
  readonly maxQueuedMessages: number;
  readonly maxQueuedBytes: number;
  readonly maxRetained: number;
  readonly maxRetainedBytes: number;
  readonly maxKeepAlive: number;
  readonly maxTopicAlias: number;
  readonly maxConnections: number;
  readonly connectTimeout: number;
} = Object.freeze({
  maxPacketSize: 16 * 1024 * 1024,
  maxQoS: 2,
  maxInflight: 20,
  maxQueuedMessages: 1000,
  maxQueuedBytes: 16 * 1024 * 1024,
  maxRetained: 100_000,
  maxRetainedBytes: 256 * 1024 * 1024,
  maxKeepAlive: 65_535,
  maxTopicAlias: 10,
  maxConnections: 10_000,
  connectTimeout: 10_000,
});

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new MqttError("INVALID_OPTION", `broker option ${name} must be a positive integer`);
  }
  return value;
}

/**
 * Applies the defaults and checks the values; a bad one throws `MqttError`
 * with code `INVALID_OPTION`.
 *
 * @example
 * ```ts
 * import { resolveBrokerOptions } from "./options.ts";
 * console.log(resolveBrokerOptions({ maxInflight: 5 }).maxQueuedMessages); // 1000
 * ```
 */
export function resolveBrokerOptions(options: BrokerOptions = {}): ResolvedBrokerOptions {
  const maxQoS = options.maxQoS ?? BROKER_DEFAULTS.maxQoS;
  if (maxQoS !== 0 && maxQoS !== 1 && maxQoS !== 2) {
    throw new MqttError("INVALID_OPTION", "broker option maxQoS must be 0, 1 or 2");
  }
  const maxPacketSize = positiveInteger(
    "maxPacketSize",
    options.maxPacketSize,
    BROKER_DEFAULTS.maxPacketSize,
  );
  if (maxPacketSize < 2) {
    throw new MqttError("INVALID_OPTION", "broker option maxPacketSize must be at least 2");
  }
  const maxInflight = positiveInteger(
    "maxInflight",
    options.maxInflight,
    BROKER_DEFAULTS.maxInflight,
  );
  if (maxInflight > 65_535) {
    // Packet identifiers are 16-bit (MQTT-2.3.1-1).
    throw new MqttError("INVALID_OPTION", "broker option maxInflight must be at most 65535");
  }
  const maxKeepAlive = positiveInteger(
    "maxKeepAlive",
    options.maxKeepAlive,
    BROKER_DEFAULTS.maxKeepAlive,
  );
  if (maxKeepAlive > 65_535) {
    throw new MqttError("INVALID_OPTION", "broker option maxKeepAlive must be at most 65535");
  }
  const maxTopicAlias = options.maxTopicAlias ?? BROKER_DEFAULTS.maxTopicAlias;
  if (!Number.isInteger(maxTopicAlias) || maxTopicAlias < 0 || maxTopicAlias > 65_535) {
    throw new MqttError("INVALID_OPTION", "broker option maxTopicAlias must be 0..65535");
  }
  return {
    maxPacketSize,
    maxQoS,
    maxTopicAlias,
    responseInformation: options.responseInformation,
    maxInflight,
    maxRetained: positiveInteger("maxRetained", options.maxRetained, BROKER_DEFAULTS.maxRetained),
    maxRetainedBytes: positiveInteger(
      "maxRetainedBytes",
      options.maxRetainedBytes,
      BROKER_DEFAULTS.maxRetainedBytes,
    ),
    retainAvailable: options.retainAvailable ?? true,
    maxKeepAlive,
    maxQueuedMessages: positiveInteger(
      "maxQueuedMessages",
      options.maxQueuedMessages,
      BROKER_DEFAULTS.maxQueuedMessages,
    ),
    maxQueuedBytes: positiveInteger(
      "maxQueuedBytes",
      options.maxQueuedBytes,
      Math.max(BROKER_DEFAULTS.maxQueuedBytes, maxPacketSize),
    ),
    maxConnections: positiveInteger(
      "maxConnections",
      options.maxConnections,
      BROKER_DEFAULTS.maxConnections,
    ),
    connectTimeout: positiveInteger(
      "connectTimeout",
      options.connectTimeout,
      BROKER_DEFAULTS.connectTimeout,
    ),
    authenticate: options.authenticate,
    enhancedAuthenticate: options.enhancedAuthenticate,
    authorizePublish: options.authorizePublish,
    authorizeSubscribe: options.authorizeSubscribe,
    log: options.log,
    persistence: options.persistence,
    persistenceFsync: options.persistenceFsync ?? false,
  };
}
