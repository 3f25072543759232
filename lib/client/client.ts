/**
 * The client: the public object users hold, its API and its life across
 * connections (connect, reconnect with backoff, close). Each connection's
 * driver is a {@linkcode Connection}; delivered messages go through the
 * {@linkcode Inbox} to the subscriptions.
 *
 * @module
 */
import type { ConnackPacket, QoS } from "../codec/packet.ts";
import type { AckProperties, PublishProperties } from "../codec/properties.ts";
import type { DisconnectReasonCode } from "../codec/reason_codes.ts";
import type { SubackCode } from "../session/types.ts";
import { encodedLength } from "../codec/encode.ts";
import { MAX_PACKET_SIZE } from "../codec/remaining_length.ts";
import {
  ConnectionRefusedError,
  MqttError,
  ProtocolError,
  ServerDisconnectError,
  SubscribeError,
} from "../errors.ts";
import { refusedVersion5 } from "../session/connack.ts";
import {
  agreed,
  checkDisconnectReason,
  closeDetail,
  type ConnackInfo,
  connackInfo,
  fallBackTo311,
  isFatalReason,
  publishProperties,
  subscriptionFlags,
  unsubackError,
} from "./v5_client.ts";
import { OutgoingPublish } from "../session/state.ts";
import { isFailure } from "../codec/reason_codes.ts";
import { ClientSessionState } from "../session/client_state.ts";
import { expiryDeadline } from "../session/expiry.ts";
import type { OutgoingMessage, PublishAck, PublishCallback } from "../session/types.ts";
import { asMqttError, Connection, type ConnectionHost, now, openTransport } from "./connection.ts";
import { Inbox } from "./inbox.ts";
import { type UnclaimedEventDetail, warnUnclaimed } from "./held.ts";
import type { ResolvedOptions } from "./options.ts";
import { ServerList } from "./servers.ts";
import type { Redirect } from "./redirect.ts";
import {
  type AckMode,
  checkAckMode,
  createSubscription,
  endSubscription,
  type Subscription,
} from "./subscription.ts";
import type { Message } from "./message.ts";
import { type RequestOptions, Requests, type RespondOptions, respondTo } from "./request.ts";
import { checkFilters, checkPublish, checkSubscribeOptions } from "./validate.ts";
import { parseSharedFilter } from "../util/topic_filter.ts";

/** Options of {@linkcode MqttClient.publish}. */
export interface PublishOptions {
  /** Quality of service. @default {0} */
  qos?: QoS;
  /** Ask the server to retain the message for future subscribers. @default {false} */
  retain?: boolean;
  /**
   * MQTT 5.0 PUBLISH properties: messageExpiryInterval, contentType,
   * responseTopic, correlationData, payloadFormatIndicator, userProperties.
   * Refused with `INVALID_OPTION` under MQTT 3.1.1.
   */
  properties?: PublishProperties;
}

/**
 * What a QoS 1 or 2 publish resolves with: the server's reason code (0x00
 * success, 0x10 no matching subscribers, also a success) and the
 * acknowledgement's properties (`{}` when none, and always under MQTT 3.1.1).
 * A reason code of 0x80 or more rejects with `PublishRejectedError` instead.
 */
export interface PublishResult {
  /** The PUBACK's (QoS 1) or PUBREC's (QoS 2) reason code, below 0x80. */
  reasonCode: number;
  /** Its properties: reasonString, userProperties. */
  properties: AckProperties;
}

/**
 * Options of {@linkcode MqttClient.subscribe}.
 *
 * @example
 * ```ts ignore
 * // Default: a message is acknowledged once the loop asks for the next one.
 * const orders = await client.subscribe("orders/#", { qos: 1 });
 * for await (const msg of orders) await save(msg); // killed mid-save: the broker sends it again
 *
 * // Finish out of order: acknowledge each message when its work is done.
 * const jobs = await client.subscribe("jobs/#", { qos: 2, ack: "manual" });
 * for await (const msg of jobs) run(msg).then(() => msg.ack());
 *
 * // Acknowledge on arrival, as most clients do.
 * const ticks = await client.subscribe("ticks", { qos: 1, ack: "receive" });
 * ```
 */
export interface SubscribeOptions {
  /** Maximum QoS requested for every filter. @default {0} */
  qos?: QoS;
  /** Messages buffered for this subscription; defaults to the client's `bufferSize`. */
  bufferSize?: number;
  /** MQTT 5.0 No Local: the server does not send us what we publish ourselves. @default {false} */
  noLocal?: boolean;
  /** MQTT 5.0 Retain As Published: messages keep the RETAIN flag they were published with. @default {false} */
  retainAsPublished?: boolean;
  /**
   * MQTT 5.0 Retain Handling: 0 the server sends retained messages on
   * subscribing, 1 only if the subscription did not exist yet, 2 never.
   * @default {0}
   */
  retainHandling?: 0 | 1 | 2;
  /**
   * When a QoS 1/2 message is acknowledged to the broker (PUBACK for QoS 1,
   * PUBREC for QoS 2). Until then the broker keeps it: with `clean: false`
   * it sends it again after a reconnect or a restart of the process.
   *
   * - `"consume"` (default): once your code has taken the message and asks for
   *   the next one (the next `for await` step) or leaves the loop (`break`,
   *   `return`, `throw`: the message in hand counts as consumed). A process
   *   killed while handling a message, or with messages still buffered, gets
   *   them again on its next connection with `clean: false` (at least once;
   *   with QoS 2 and a `FileStore` only the message whose handling was cut
   *   short can arrive twice).
   * - `"manual"`: when you call `msg.ack()`, for consumers that finish
   *   messages out of order. While the subscription lives, a message never
   *   acknowledged holds back the acknowledgement of every later one (they go
   *   out in arrival order, MQTT-4.6.0-2/3), and the broker stops sending once
   *   its in-flight window is full. Ending the subscription acknowledges the
   *   messages handed out and not yet acknowledged: finish (or give up on)
   *   them before you leave the loop.
   * - `"receive"`: when the message enters the subscription's buffer, as
   *   before: a process that dies loses what it had buffered.
   *
   * Ending a subscription yourself (leaving the loop, `sub.unsubscribe()`,
   * `client.unsubscribe(filter)`) acknowledges its buffered messages (a loop
   * still running after `client.unsubscribe()` may read them; leaving it
   * drops them) and drops those arriving until the UNSUBACK: you chose not
   * to consume them, and unacknowledged they would keep the broker's in-flight window
   * (stopping QoS 1/2 delivery on every filter once it is full) and come
   * back on the next connection with no subscription for them. `close()`,
   * or a connection that ends for good, does not acknowledge them: with
   * `clean: false` the broker sends them again on the next connection. A
   * message delivered to several overlapping subscriptions is acknowledged
   * once each has consumed it or ended.
   * @default {"consume"}
   */
  ack?: AckMode;
}

/** Detail of the `connect` event. */
export interface ConnectEventDetail {
  /** CONNACK's session present flag. */
  sessionPresent: boolean;
  /** Whether this connection replaced a lost one. */
  reconnect: boolean;
  /** The server's URL as given to `connect()`, its password replaced by `***`. */
  url: string;
  /** MQTT 5.0: the redirection (`followRedirects`) that led to this server, if one did. */
  redirect?: Redirect;
}

/** Detail of the `reconnect` event: a new attempt is scheduled. */
export interface ReconnectEventDetail {
  /**
   * 1 for the first attempt after a loss, counting up until one succeeds; with
   * several servers it counts rounds through the list.
   */
  attempt: number;
  /** Milliseconds until the attempt. */
  delay: number;
  /** The server the attempt goes to, its password replaced by `***`. */
  url: string;
}

/** Detail of the `close` and `disconnect` events: the error that ended the connection, if any. */
export interface CloseEventDetail {
  /** Undefined when the connection ended because the user closed it. */
  error: MqttError | undefined;
  /** MQTT 5.0: the reason code of the server's DISCONNECT, when the server sent one. */
  reasonCode?: number;
  /** MQTT 5.0: its Reason String, if any. */
  reasonString?: string;
  /** MQTT 5.0: its Server Reference (another server to use), if any. */
  serverReference?: string;
}

/** Options of {@linkcode MqttClient.close}. */
export interface CloseOptions {
  /**
   * MQTT 5.0 reason code of the DISCONNECT: 0x00 normal disconnection
   * (the default: the server discards the will), 0x04 disconnect with will
   * message (the server publishes the will). Refused under MQTT 3.1.1.
   */
  reasonCode?: DisconnectReasonCode;
}

/**
 * The events of an {@linkcode MqttClient}, by name, so that
 * `client.addEventListener("connect", (e) => e.detail.sessionPresent)` type-checks.
 *
 * @example
 * ```ts ignore
 * client.addEventListener("reconnect", (e) => console.log(`attempt ${e.detail.attempt} in ${e.detail.delay} ms`));
 * client.addEventListener("error", (e) => console.error(e.detail.code, e.detail.message));
 * ```
 */
export interface MqttClientEventMap {
  /** CONNACK accepted a connection (the first and every reconnect). */
  connect: CustomEvent<ConnectEventDetail>;
  /** An accepted connection ended. */
  disconnect: CustomEvent<CloseEventDetail>;
  /** A reconnect attempt is scheduled. */
  reconnect: CustomEvent<ReconnectEventDetail>;
  /** A connection or a reconnect attempt failed. */
  error: CustomEvent<MqttError>;
  /** The client is closed for good. */
  close: CustomEvent<CloseEventDetail>;
  /** Messages that matched no subscription were acknowledged and dropped (see `holdTimeout`). */
  unclaimed: CustomEvent<UnclaimedEventDetail>;
}

/** A listener of one of the {@linkcode MqttClientEventMap} events. */
export type MqttClientListener<K extends keyof MqttClientEventMap> = (
  event: MqttClientEventMap[K],
) => void;

/** Fixed header, topic length prefix and bytes, packet identifier: a 3.1.1 PUBLISH's most overhead. */
const MAX_PUBLISH_OVERHEAD = 5 + 2 + 65_535 + 2;
const noop = () => {};
// Lets connect() make and open a client without a public method for it.
let open: (options: ResolvedOptions, servers: ServerList) => Promise<MqttClient>;

/** How long a connection must last before the reconnect backoff starts over. */
function stableAfter(backoff: { minDelay: number; maxDelay: number }): number {
  return Math.min(backoff.maxDelay, Math.max(1000, 10 * backoff.minDelay));
}

/** Errors after which reconnecting cannot help: the broker refused who we are. */
function isFatal(error: MqttError | undefined): boolean {
  if (error instanceof ConnectionRefusedError) {
    if (error.reasonCode !== undefined) return isFatalReason(error.reasonCode, "connack");
    return error.returnCode !== 3; // 3: server unavailable
  }
  if (error instanceof ServerDisconnectError) return isFatalReason(error.reasonCode, "disconnect");
  return error?.code === "INVALID_OPTION" ||
    (error instanceof ProtocolError && error.packetType === "connect");
}

/**
 * A connected MQTT client. Create one with {@linkcode connect}.
 *
 * Events (an `EventTarget`):
 * - `connect`: CONNACK accepted a connection (the first and every reconnect);
 *   a `CustomEvent<ConnectEventDetail>`.
 * - `disconnect`: an accepted connection ended; `CustomEvent<CloseEventDetail>`.
 * - `reconnect`: a reconnect attempt is scheduled; `CustomEvent<ReconnectEventDetail>`.
 * - `error`: a connection or a reconnect attempt failed; `CustomEvent<MqttError>`.
 * - `close`: the client is closed for good; `CustomEvent<CloseEventDetail>`.
 * - `unclaimed`: messages that matched no subscription were acknowledged and
 *   dropped; `CustomEvent<UnclaimedEventDetail>`.
 *
 * After a lost connection the client reconnects (unless `reconnect: false`).
 * Subscriptions keep working across reconnects: when the broker kept no
 * session, the session subscribes again before queued publishes flow.
 * Publishes made while disconnected wait in a bounded queue.
 *
 * Messages that arrive for no subscription (a resumed session's queued
 * messages arrive right after CONNACK, before the user subscribes again) are
 * held and handed to the first subscription that matches them, for
 * `holdTimeout` (1 s) after each connection is accepted; then acknowledged and
 * dropped, with an `unclaimed` event. While `bufferSize` such messages are
 * held the client stops reading.
 *
 * @example
 * ```ts ignore
 * import { connect } from "./connect.ts";
 * await using client = await connect("mqtt://localhost:1883", { clientId: "sensor-1" });
 * const sub = await client.subscribe("sensors/+/temp", { qos: 1 });
 * await client.publish("sensors/1/temp", "21.5", { qos: 1 });
 * for await (const msg of sub) {
 *   console.log(msg.topic, msg.text());
 *   break;
 * }
 * ```
 */
export class MqttClient extends EventTarget implements AsyncDisposable {
  /**
   * The options of the next CONNECT (the assigned client id and the agreed version set in),
   * the server's own (URL, credentials, TLS) laid over them by {@linkcode ServerList.apply}.
   */
  #options: ResolvedOptions;
  /** An `unclaimed` listener was added or the console was told once already. */
  #unclaimedHeard = false;
  readonly #servers: ServerList;
  #connack: ConnackInfo | undefined;
  readonly #state: ClientSessionState;
  #connection: Connection | undefined;
  #sessionPresent = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #attempt = 0;
  /** When the current connection was accepted (the driver's clock). */
  #connectedAt = 0;
  #attemptController: AbortController | undefined;
  #online: PromiseWithResolvers<void> | undefined;
  readonly #inbox: Inbox;
  /** MQTT 5.0 request/response, made by the first `request()`. */
  #requests: Requests<Message> | undefined;
  /**
   * The last Subscription Identifier given out. A client starts at a random point: a resumed
   * session may still deliver messages carrying the identifiers an earlier process gave out,
   * which must not name this client's subscriptions (one it ended would drop them, see Inbox).
   */
  #subscriptionIds = crypto.getRandomValues(new Uint32Array(1))[0] % 268_435_455;
  /** What each connection may call back: kept off the public surface. */
  readonly #host: ConnectionHost;
  #abortListener: (() => void) | undefined;

  static {
    open = async (options, servers) => {
      const client = new MqttClient(options, servers);
      await client.#open();
      return client;
    };
  }

  /** Made by `connect()`, which opens it. */
  private constructor(options: ResolvedOptions, servers: ServerList) {
    super();
    this.#options = options;
    this.#servers = servers;
    const { maxMessages, maxBytes, overflow } = options.queue;
    this.#state = new ClientSessionState({
      maxQueued: maxMessages,
      maxQueuedBytes: maxBytes,
      overflow,
      store: options.store,
      clock: { now: now(), wall: Date.now() },
    });
    this.#inbox = new Inbox(this.#state, options.bufferSize, {
      holdTimeout: options.holdTimeout,
      unclaimed: (messages) => {
        // Dropping messages nobody hears about would be a silent loss: say it once.
        if (!this.#unclaimedHeard) warnUnclaimed(messages.length, options.holdTimeout);
        this.#unclaimedHeard = true;
        this.dispatchEvent(
          new CustomEvent<UnclaimedEventDetail>("unclaimed", { detail: { messages } }),
        );
      },
    });
    this.#host = {
      inbox: this.#inbox,
      // Acknowledgements go to the latest connection's session: it sends them,
      // or, between connections, marks them for the next one.
      acknowledge: (ack, consumed, batched) =>
        this.#connection?.acknowledge(ack, consumed, batched),
      connectionEnded: (connection, error) => this.#connectionEnded(connection, error),
      resubscribeFailed: (filter, error) => {
        this.#inbox.refused(filter, error);
        this.dispatchEvent(new CustomEvent("error", { detail: error }));
      },
    };
  }

  /**
   * Listens to a client event; the listener's event is typed by its name
   * (see {@linkcode MqttClientEventMap}).
   *
   * @example
   * ```ts ignore
   * client.addEventListener("connect", (e) => console.log("session present:", e.detail.sessionPresent));
   * ```
   */
  override addEventListener<K extends keyof MqttClientEventMap>(
    type: K,
    listener: MqttClientListener<K> | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Listens to any event, as on every `EventTarget`. */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    if (type === "unclaimed" && listener !== null) this.#unclaimedHeard = true;
    super.addEventListener(type, listener, options);
  }

  /**
   * Removes a listener added with {@linkcode addEventListener}.
   *
   * @example
   * ```ts ignore
   * const onError = (e: CustomEvent<MqttError>) => console.error(e.detail);
   * client.addEventListener("error", onError);
   * client.removeEventListener("error", onError);
   * ```
   */
  override removeEventListener<K extends keyof MqttClientEventMap>(
    type: K,
    listener: MqttClientListener<K> | null,
    options?: boolean | EventListenerOptions,
  ): void;
  /** Removes any listener, as on every `EventTarget`. */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener, options);
  }

  /**
   * The client identifier: the one sent in CONNECT, or under MQTT 5.0 the one
   * the server assigned (Assigned Client Identifier, when `clientId` was ""),
   * which later reconnects send.
   */
  get clientId(): string {
    return this.#options.clientId;
  }

  /**
   * The protocol version agreed with the server: 4 (MQTT 3.1.1) or 5 (MQTT
   * 5.0); with `protocolVersion: "auto"`, the one the broker accepted.
   */
  get protocolVersion(): 4 | 5 {
    return this.#options.protocolVersion === 4 ? 4 : 5;
  }

  /**
   * The latest CONNACK: session present, reason code (the 3.1.1 return code,
   * 0, under MQTT 3.1.1) and, under MQTT 5.0, its properties (`{}` when none).
   *
   * @example
   * ```ts ignore
   * const client = await connect(url, { protocolVersion: 5 });
   * console.log(client.connack.properties.receiveMaximum, client.connack.properties.maximumQoS);
   * ```
   */
  get connack(): ConnackInfo {
    return this.#connack ?? { sessionPresent: false, reasonCode: 0, properties: {} };
  }

  /** Whether the server had a session for this client (CONNACK's session present flag, latest connection). */
  get sessionPresent(): boolean {
    return this.#sessionPresent;
  }

  /**
   * The server the client is on (or, while reconnecting, tries next): its URL
   * as given to `connect()`, the password replaced by `***`.
   */
  get url(): string {
    return this.#servers.url;
  }

  /** Whether the client currently has an accepted connection. */
  get connected(): boolean {
    return this.#connection?.online === true;
  }

  /** Whether {@linkcode close} was called or the client ended for good. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The topic filters the session holds at the server, with their granted
   * QoS, in subscribe order: those granted on this client, and, with a
   * `store` and `clean: false`, those a previous process left in the store.
   * Messages for a filter with no live {@linkcode Subscription} are held for
   * `subscribe()` to be called for it again, for `holdTimeout` after CONNACK.
   *
   * @example
   * ```ts ignore
   * const client = await connect(url, { clean: false, store: await FileStore.open("session.journal") });
   * for (const [filter, qos] of client.sessionSubscriptions) await client.subscribe(filter, { qos });
   * ```
   */
  get sessionSubscriptions(): ReadonlyMap<string, QoS> {
    return this.#state.subscriptions;
  }

  /** Publishes waiting for the connection or for an in-flight window slot. */
  get queued(): number {
    return this.#state.pendingCount;
  }

  /** Opens the first connection: each server in turn, once, until one accepts. */
  async #open(): Promise<void> {
    for (;;) {
      try {
        try {
          await this.#connectOnce();
        } catch (err) {
          // "auto": a broker that does not speak 5.0 gets a 3.1.1 CONNECT, on this and every
          // reconnect.
          if (this.#options.protocolVersion !== "auto" || !refusedVersion5(err)) throw err;
          this.#options = fallBackTo311(this.#options, err);
          await this.#connectOnce();
        }
        break;
      } catch (err) {
        const error = asMqttError(err, "connect failed");
        if (this.#servers.follow(error)) continue; // 5.0 redirection, with followRedirects
        if (error.code === "ABORTED" || isFatal(error) || this.#servers.failed()) {
          this.#closed = true;
          this.#shutdown(error, error);
          throw error;
        }
      }
    }
    if (this.#closed) {
      // Accepted, then lost before connect() could return (reconnect off): say so.
      throw new MqttError("CONNECTION_CLOSED", "the connection closed right after CONNACK");
    }
    const userSignal = this.#options.signal;
    if (userSignal) {
      this.#abortListener = () => void this.close().catch(noop);
      userSignal.addEventListener("abort", this.#abortListener, { once: true });
    }
    this.dispatchEvent(
      new CustomEvent<ConnectEventDetail>("connect", {
        detail: this.#connectDetail(false),
      }),
    );
  }

  /**
   * One connection attempt: opens the transport and waits for CONNACK, within
   * `connectTimeout` and the user's signal. Leaves no connection behind on failure.
   */
  async #connectOnce(): Promise<void> {
    const options = this.#servers.apply(this.#options);
    const controller = new AbortController();
    this.#attemptController = controller;
    const userSignal = options.signal;
    const onAbort = () =>
      controller.abort(
        new MqttError("ABORTED", "connect was aborted", { cause: userSignal?.reason }),
      );
    userSignal?.addEventListener("abort", onAbort, { once: true });
    // The connect timeout covers opening the transport as well as waiting for CONNACK.
    const timer = setTimeout(
      () =>
        controller.abort(
          new MqttError(
            "CONNECT_TIMEOUT",
            `no connection to ${options.url.href} within ${options.connectTimeout} ms`,
          ),
        ),
      options.connectTimeout,
    );
    try {
      if (userSignal?.aborted) onAbort();
      controller.signal.throwIfAborted();
      const aborted = new Promise<never>((_, reject) => {
        controller.signal.addEventListener("abort", () => reject(controller.signal.reason), {
          once: true,
        });
      });
      aborted.catch(noop);
      // A user's transport factory may ignore the signal: the timeout must still win.
      const opening = openTransport(options, controller.signal);
      const transport = await Promise.race([opening, aborted]).catch((err) => {
        opening.then((late) => late.close(), noop);
        throw err;
      });
      if (controller.signal.aborted) {
        transport.close();
        controller.signal.throwIfAborted();
      }
      const connection = new Connection(this.#host, transport, options, this.#state);
      this.#connection = connection;
      let connack: ConnackPacket;
      try {
        connack = await Promise.race([connection.start(), aborted]);
      } catch (err) {
        const error = asMqttError(err, "connect failed");
        connection.end(error);
        await connection.finished;
        throw error;
      }
      this.#sessionPresent = connack.sessionPresent;
      this.#servers.connected();
      this.#connack = connackInfo(connack);
      this.#options = agreed(this.#options, connack);
      this.#connectedAt = now();
      this.#online?.resolve();
      this.#online = undefined;
    } catch (err) {
      throw asMqttError(controller.signal.reason ?? err, "connect failed");
    } finally {
      clearTimeout(timer);
      userSignal?.removeEventListener("abort", onAbort);
      if (this.#attemptController === controller) this.#attemptController = undefined;
    }
  }

  /** The `connect` event's detail for the connection just accepted. */
  #connectDetail(reconnect: boolean): ConnectEventDetail {
    const detail: ConnectEventDetail = {
      sessionPresent: this.#sessionPresent,
      reconnect,
      url: this.url,
    };
    const redirect = this.#servers.redirect;
    if (redirect !== undefined) detail.redirect = redirect;
    return detail;
  }

  /**
   * Schedules the next reconnect attempt: exponential backoff with full jitter
   * per round through the servers; the next server of a round goes at once.
   */
  #scheduleReconnect(backoff: { minDelay: number; maxDelay: number }, inRound = false): void {
    let delay = 0;
    if (!inRound) {
      const cap = Math.min(backoff.maxDelay, backoff.minDelay * 2 ** Math.min(this.#attempt, 30));
      delay = Math.random() * cap;
      this.#attempt++;
    }
    this.dispatchEvent(
      new CustomEvent<ReconnectEventDetail>("reconnect", {
        detail: { attempt: this.#attempt, delay, url: this.url },
      }),
    );
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#reconnect(backoff);
    }, delay);
  }

  async #reconnect(backoff: { minDelay: number; maxDelay: number }): Promise<void> {
    try {
      await this.#connectOnce();
    } catch (err) {
      if (this.#closed) return;
      const error = asMqttError(err, "reconnect failed");
      this.dispatchEvent(new CustomEvent("error", { detail: error }));
      if (this.#servers.follow(error)) this.#scheduleReconnect(backoff, true);
      else if (isFatal(error)) this.#finish(error);
      else this.#scheduleReconnect(backoff, !this.#servers.failed());
      return;
    }
    if (this.#closed) return;
    this.dispatchEvent(
      new CustomEvent<ConnectEventDetail>("connect", {
        detail: this.#connectDetail(true),
      }),
    );
  }

  /**
   * Publishes a message. Resolves when its QoS flow completes: once written
   * for QoS 0, on PUBACK for QoS 1, on PUBCOMP for QoS 2. While disconnected
   * the message waits in the bounded queue (see `queue` in the options); a
   * full queue rejects with `QUEUE_FULL`.
   *
   * @example
   * ```ts ignore
   * await client.publish("sensors/1/temp", "21.5", { qos: 2, retain: false });
   * ```
   */
  publish(
    topic: string,
    payload: string | Uint8Array,
    options: PublishOptions = {},
  ): Promise<PublishResult | undefined> {
    try {
      const message: OutgoingMessage = checkPublish(topic, payload, options);
      const { qos, payload: bytes } = message;
      if (this.#closed) throw new MqttError("CONNECTION_CLOSED", "the client is closed");
      if (options.properties !== undefined) {
        message.properties = publishProperties(options.properties, this.protocolVersion);
        const interval = message.properties.messageExpiryInterval;
        if (interval !== undefined) {
          message.expiresAt = expiryDeadline(interval, now());
          message.publishedAt = Date.now(); // stored: the interval survives a restart
        }
      }
      const connection = this.#connection;
      // Only a payload near the protocol's limit, or 5.0 properties, can fail to encode: ask the
      // codec here rather than let the writer fail the connection over it (and again after
      // every reconnect). The server's own Maximum Packet Size (5.0) is the session's rule.
      if (
        message.properties !== undefined ||
        bytes.length > MAX_PACKET_SIZE - MAX_PUBLISH_OVERHEAD
      ) {
        encodedLength(
          { type: "publish", dup: false, packetId: qos ? 1 : undefined, ...message },
          { protocolVersion: this.protocolVersion },
        );
      }
      if (qos === 0 && connection?.online !== true && !this.#options.queue.qos0WhenOffline) {
        throw new MqttError("CONNECTION_CLOSED", "offline, and QoS 0 publishes are not queued");
      }
      let resolve!: (result: PublishResult | Promise<never> | undefined) => void;
      const promise = new Promise<PublishResult | undefined>((r) => resolve = r);
      this.#publish(message, MqttClient.#settlePublish(this, resolve, qos));
      return promise;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Subscribes to one or more topic filters. Resolves with a
   * {@linkcode Subscription} once the server grants every filter; a filter
   * refused with 0x80 rejects with {@linkcode SubscribeError}. While
   * disconnected it waits for the next connection.
   *
   * @example
   * ```ts ignore
   * const sub = await client.subscribe(["a/+", "b/#"], { qos: 1 });
   * console.log(sub.granted); // e.g. [1, 1]
   * ```
   */
  async subscribe(
    filters: string | string[],
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    const list = checkFilters(filters, "subscribe");
    for (const filter of list) parseSharedFilter(filter); // MQTT-4.8.2-1, -2: $share/{ShareName}/{filter}
    const checked = checkSubscribeOptions(options);
    const qos = checked.qos;
    const flags = subscriptionFlags(options, this.protocolVersion, list);
    const bufferSize = checked.bufferSize ?? this.#options.bufferSize;
    const ack = checkAckMode(options.ack);
    const connection = await this.#whenOnline();
    const identifier = this.#subscriptionIdentifier();
    const inbox = this.#inbox;
    const pending = inbox.subscribing(list);
    const make = (codes: SubackCode[]) =>
      createSubscription(list, codes as QoS[], {
        bufferSize,
        ack,
        unsubscribe: (s) => this.#release(s),
        identifier,
      });
    let sub: Subscription | undefined;
    let codes: SubackCode[];
    try {
      codes = await new Promise<SubackCode[]>((resolve, reject) => {
        const properties = identifier === undefined ? undefined : {
          subscriptionIdentifier: identifier,
        };
        const requests = list.map((filter) => flags ? { filter, qos, ...flags } : { filter, qos });
        connection.subscribe(requests, (error, returnCodes) => {
          if (error) return reject(error);
          // Made in the SUBACK's own turn: a retained message right behind the SUBACK, in
          // the same chunk, must reach this subscription, not only an older overlapping one.
          if (!returnCodes!.some(isFailure) && !this.#closed && pending.cancelled === undefined) {
            sub = make(returnCodes!);
            inbox.add(sub);
          }
          resolve(returnCodes!);
        }, properties);
      });
    } catch (err) {
      for (const filter of list) inbox.release(filter);
      throw err;
    } finally {
      inbox.subscribed(pending);
    }
    const refused = codes.findIndex(isFailure);
    if (refused !== -1) {
      // The granted filters of a partly refused SUBSCRIBE would deliver to no one.
      const unused = list.filter((f, i) => inbox.release(f) && !isFailure(codes[i]));
      if (unused.length > 0) await this.#sendUnsubscribe(unused).catch(noop);
      throw new SubscribeError(list[refused], { reasonCode: codes[refused] });
    }
    const cancelled = pending.cancelled;
    if (cancelled !== undefined) {
      // An UNSUBSCRIBE went out after this SUBSCRIBE, so the server is not
      // subscribed to those filters: end the subscription rather than let it
      // wait for nothing. Its other filters are let go as by unsubscribe().
      const unused = list.filter((f) => !cancelled.has(f) && inbox.release(f));
      if (unused.length > 0) await this.#sendUnsubscribe(unused).catch(noop);
    }
    if (sub === undefined) {
      // The client closed while the SUBACK was on its way, or it was unsubscribed meanwhile.
      const ended = make(codes);
      endSubscription(ended);
      return ended;
    }
    return sub;
  }

  /**
   * Unsubscribes from topic filters and ends every local subscription that
   * holds one of them.
   *
   * @example
   * ```ts ignore
   * await client.unsubscribe("sensors/+/temp");
   * ```
   */
  async unsubscribe(filters: string | string[]): Promise<void> {
    const list = checkFilters(filters, "unsubscribe");
    await this.#sendUnsubscribe(this.#inbox.unsubscribe(list));
  }

  /**
   * Closes the client: waits (up to `closeTimeout`) for in-flight and queued
   * messages to complete, sends DISCONNECT, and waits (within the same
   * `closeTimeout`) for the server to close the connection, so that it has
   * read everything sent before (a reconnect of the same session right after
   * loses no acknowledgement); then closes the transport. Publishes still
   * unfinished then reject with `CLOSE_TIMEOUT`. Stops reconnecting.
   *
   * @example
   * ```ts ignore
   * await client.close();
   * ```
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.#closing === undefined) {
      const reasonCode = options.reasonCode;
      if (reasonCode !== undefined) {
        try {
          checkDisconnectReason(reasonCode, this.protocolVersion);
        } catch (err) {
          return Promise.reject(err);
        }
      }
      this.#closing = this.#close(reasonCode);
    }
    return this.#closing;
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(reasonCode: DisconnectReasonCode | undefined): Promise<void> {
    const wasClosed = this.#closed;
    this.#closed = true;
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#attemptController?.abort(new MqttError("ABORTED", "the client was closed"));
    const connection = this.#connection;
    if (connection && !connection.ended) {
      if (connection.online) this.#inbox.acknowledgeHeld();
      connection.disconnect(reasonCode);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#options.closeTimeout);
      });
      await Promise.race([connection.finished, timedOut]);
      clearTimeout(timer);
      connection.end(undefined);
      await connection.finished;
    }
    this.#shutdown(
      undefined,
      new MqttError("CLOSE_TIMEOUT", "the client closed before this completed"),
    );
    if (!wasClosed) {
      this.dispatchEvent(
        new CustomEvent<CloseEventDetail>("close", { detail: { error: undefined } }),
      );
    }
  }

  /** Closes for good after an error nothing can recover from. */
  #finish(error: MqttError | undefined): void {
    this.#closed = true;
    this.#shutdown(error, error ?? new MqttError("CONNECTION_CLOSED", "connection closed"));
    this.dispatchEvent(new CustomEvent<CloseEventDetail>("close", { detail: closeDetail(error) }));
  }

  /** Ends everything: pending work fails, subscriptions finish, timers stop. */
  #shutdown(error: MqttError | undefined, pendingError: MqttError): void {
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#state.abandon(pendingError);
    this.#inbox.close(error);
    this.#online?.reject(pendingError);
    this.#online?.promise.catch(noop);
    this.#online = undefined;
    if (this.#abortListener) {
      this.#options.signal?.removeEventListener("abort", this.#abortListener);
      this.#abortListener = undefined;
    }
  }

  /** A connection's transport is gone. */
  #connectionEnded(connection: Connection, error: MqttError | undefined): void {
    if (connection !== this.#connection) return;
    // A connection CONNACK never accepted is a failed attempt; its caller reports it.
    if (!connection.accepted) return;
    if (error) this.dispatchEvent(new CustomEvent("error", { detail: error }));
    this.dispatchEvent(
      new CustomEvent<CloseEventDetail>("disconnect", { detail: closeDetail(error) }),
    );
    if (this.#closed) return; // close() is under way and finishes the job
    const backoff = this.#options.reconnect;
    // The backoff starts over only after a connection that lasted: a broker that accepts and
    // then drops us at once (NATS on a QoS 2 PUBLISH) must not be hammered in a tight loop.
    if (backoff !== false && now() - this.#connectedAt >= stableAfter(backoff)) this.#attempt = 0;
    if (backoff !== false && this.#servers.follow(error)) {
      this.#scheduleReconnect(backoff);
    } else if (backoff === false || isFatal(error)) {
      this.#finish(error ?? new MqttError("CONNECTION_CLOSED", "the connection closed"));
    } else {
      this.#servers.lost();
      this.#scheduleReconnect(backoff);
    }
  }

  /** The accepted connection, waiting for the next one while reconnecting. */
  #whenOnline(): Promise<Connection> | Connection {
    if (this.#closed) throw new MqttError("CONNECTION_CLOSED", "the client is closed");
    const connection = this.#connection;
    if (connection?.online) return connection;
    this.#online ??= Promise.withResolvers();
    return this.#online.promise.then(() => this.#whenOnline());
  }

  /** A subscription ended by its user: UNSUBSCRIBE the filters no other subscription uses. */
  async #release(sub: Subscription): Promise<void> {
    const unused = this.#inbox.remove(sub);
    if (unused === undefined || unused.length === 0 || this.#closed) return;
    const sending = this.#sendUnsubscribe(unused);
    if (this.connected) return await sending;
    // Offline, the UNSUBSCRIBE goes out after the reconnect; leaving a `for await` loop or
    // disposing the subscription must not wait for that.
    sending.catch(noop);
  }

  async #sendUnsubscribe(filters: string[]): Promise<void> {
    if (filters.length === 0) return;
    const connection = await this.#whenOnline();
    this.#inbox.unsubscribing(filters);
    const done = new Promise<void>((resolve, reject) => {
      connection.unsubscribe(filters, (error, codes) => {
        error ??= unsubackError(filters, codes);
        if (error) reject(error);
        else resolve();
      });
    });
    // Messages held while the UNSUBSCRIBE waited for the connection: nobody will take them.
    this.#inbox.forgetHeld(filters);
    await done;
  }

  /**
   * MQTT 5.0 request/response (section 4.10): publishes a request with a
   * Response Topic and fresh Correlation Data, and resolves with the reply.
   * The response topic is subscribed once, below the server's Response
   * Information when it gave one (`requestResponseInformation: true`).
   * Rejects with `REQUEST_TIMEOUT` when no reply comes within `timeout`.
   *
   * @example
   * ```ts ignore
   * const reply = await client.request("svc/time", "now?", { timeout: 5000, qos: 1 });
   * console.log(reply.text());
   * ```
   */
  request(
    topic: string,
    payload: string | Uint8Array,
    options?: RequestOptions,
  ): Promise<Message> {
    if (this.protocolVersion !== 5) {
      return Promise.reject(
        new MqttError(
          "INVALID_OPTION",
          "request() needs MQTT 5.0: connect with protocolVersion: 5",
        ),
      );
    }
    this.#requests ??= new Requests<Message>({
      publish: (t, p, qos, properties) => this.publish(t, p, { qos, properties }),
      subscribe: (t, qos) => this.subscribe(t, { qos }),
      responseInformation: () => this.connack.properties.responseInformation,
    });
    return this.#requests.request(topic, payload, options);
  }

  /**
   * Answers a request (section 4.10.2): publishes `payload` to the message's
   * Response Topic with its Correlation Data. A message without Response
   * Topic rejects with `INVALID_OPTION`.
   *
   * @example
   * ```ts ignore
   * for await (const req of await client.subscribe("svc/time")) await client.respond(req, new Date().toISOString());
   * ```
   */
  respond(
    request: Message,
    payload: string | Uint8Array,
    options?: RespondOptions,
  ): Promise<unknown> {
    const publish = (t: string, p: string | Uint8Array, qos: QoS, properties: PublishProperties) =>
      this.publish(t, p, { qos, properties });
    return respondTo(publish, request, payload, options);
  }

  /**
   * MQTT 5.0 re-authentication (section 4.12.1): sends AUTH 0x19 with the
   * `authenticationMethod` of the options and `data` (the method's first
   * step); the server's challenges go to `onAuth`. Resolves with the
   * Authentication Data of the server's final AUTH (for the method to check
   * the server). A server that refuses ends the connection with DISCONNECT.
   *
   * @example
   * ```ts ignore
   * const scram = new ScramClient("alice", "secret");
   * const final = await client.reauthenticate(scram.first()); // onAuth answers with scram.final()
   * ```
   */
  async reauthenticate(data?: Uint8Array): Promise<Uint8Array | undefined> {
    if (
      this.protocolVersion !== 5 ||
      this.#options.connectProperties?.authenticationMethod === undefined
    ) {
      throw new MqttError(
        "INVALID_STATE",
        "reauthenticate() needs MQTT 5.0 and the authenticationMethod option (MQTT-4.12.0-7)",
      );
    }
    const connection = await this.#whenOnline();
    return await connection.reauthenticate(data);
  }

  /** MQTT 5.0: the next Subscription Identifier, when the server takes them (MQTT-3.3.4-3). */
  #subscriptionIdentifier(): number | undefined {
    if (this.protocolVersion !== 5) return undefined;
    if (this.connack.properties.subscriptionIdentifiersAvailable === false) return undefined;
    // 1..268,435,455 (a Variable Byte Integer, never 0); wraps after that many SUBSCRIBEs.
    this.#subscriptionIds = (this.#subscriptionIds % 268_435_455) + 1;
    return this.#subscriptionIds;
  }

  /**
   * The callback that settles a publish's promise when its flow completes,
   * made outside `publish` so that it keeps only what it uses: every
   * in-flight QoS 1/2 publish holds one (issue 18). QoS 0 settles with the
   * transport's write of its batch, on the connection that sent it (a publish
   * queued offline goes out on a later one): rejected when the write fails or
   * the connection ends first.
   */
  static #settlePublish(
    client: MqttClient,
    resolve: (result: PublishResult | Promise<never> | undefined) => void,
    qos: QoS,
  ): PublishCallback {
    // Only `resolve` is kept (a rejected promise rejects it): the reject function is not.
    // A bound function holds it in less memory than a closure and its context.
    if (qos !== 0) return settleAcked.bind(resolve);
    return (error) => {
      if (error) return resolve(Promise.reject(error));
      const sender = client.#connection;
      if (sender !== undefined && !sender.ended) {
        sender.lastWrite.then(() => resolve(undefined), (e) => resolve(Promise.reject(e)));
      } else resolve(undefined);
    };
  }

  /** Publishes through the live connection, or queues for the next one (one queue, the state's). */
  #publish(message: OutgoingMessage, done: PublishCallback): void {
    const connection = this.#connection;
    if (connection?.live) {
      connection.publish(message, done);
    } else {
      this.#state.enqueue(new OutgoingPublish(message, done));
    }
  }
}

/** Settles a QoS 1/2 publish's promise (`this` is its resolve function) when its flow completes. */
function settleAcked(
  this: (result: PublishResult | Promise<never>) => void,
  error?: MqttError,
  ack?: PublishAck,
): void {
  this(error ? Promise.reject(error) : ack as PublishResult);
}

/**
 * Makes a client over resolved options and opens its first connection; what
 * `connect()` does after resolving its options. `servers` are those to try
 * (default: the one of `options`); `options` is what they share (the first's).
 * Not part of the public API.
 *
 * @example
 * ```ts ignore
 * import { openClient } from "./client.ts";
 * import { resolveOptions } from "./options.ts";
 * const client = await openClient(resolveOptions("mqtt://localhost"));
 * ```
 */
export function openClient(
  options: ResolvedOptions,
  servers: ServerList = ServerList.of(options),
): Promise<MqttClient> {
  return open(options, servers);
}
