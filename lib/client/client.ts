/**
 * The client: the public object users hold. It opens a transport, pipes it
 * through the packet streams, feeds the session, carries out the session's
 * outputs, owns the one timer the session's deadline asks for, and routes
 * delivered messages to subscriptions.
 *
 * @module
 */
import type {
  ConnackPacket,
  Packet,
  PublishPacket,
  QoS,
  SubackReturnCode,
} from "../codec/packet.ts";
import { validateTopicFilter, validateTopicName } from "../codec/topic.ts";
import { encodedLength } from "../codec/encode.ts";
import { MAX_REMAINING_LENGTH } from "../codec/remaining_length.ts";
import { ConnectionRefusedError, MqttError, ProtocolError, SubscribeError } from "../errors.ts";
import { Session } from "../session/session.ts";
import { OutgoingPublish } from "../session/state.ts";
import { ClientSessionState } from "../session/client_state.ts";
import type { SessionHandler } from "../session/types.ts";
import { PacketFramer } from "../streams/packet_reader.ts";
import { PacketWriter } from "../streams/packet_writer.ts";
import type { Transport } from "../transports/transport.ts";
import { Message } from "./message.ts";
import { type ResolvedOptions, sessionOptions } from "./options.ts";
import { Subscription } from "./subscription.ts";
import { topicMatches } from "../util/topic_filter.ts";

/** Options of {@linkcode MqttClient.publish}. */
export interface PublishOptions {
  /** Quality of service. @default {0} */
  qos?: QoS;
  /** Ask the server to retain the message for future subscribers. @default {false} */
  retain?: boolean;
}

/** Options of {@linkcode MqttClient.subscribe}. */
export interface SubscribeOptions {
  /** Maximum QoS requested for every filter. @default {0} */
  qos?: QoS;
  /** Messages buffered for this subscription; defaults to the client's `bufferSize`. */
  bufferSize?: number;
}

/** Detail of the `connect` event. */
export interface ConnectEventDetail {
  /** CONNACK's session present flag. */
  sessionPresent: boolean;
  /** Whether this connection replaced a lost one. */
  reconnect: boolean;
}

/** Detail of the `reconnect` event: a new attempt is scheduled. */
export interface ReconnectEventDetail {
  /** 1 for the first attempt after a loss, counting up until one succeeds. */
  attempt: number;
  /** Milliseconds until the attempt. */
  delay: number;
}

/** Detail of the `close` and `disconnect` events: the error that ended the connection, if any. */
export interface CloseEventDetail {
  /** Undefined when the connection ended because the user closed it. */
  error: MqttError | undefined;
}

const encoder = new TextEncoder();
/** Topic length prefix and bytes (at most 65,535) plus packet identifier: a PUBLISH's overhead. */
const MAX_PUBLISH_OVERHEAD = 2 + 65_535 + 2;
/** How far past `bufferSize` a buffer may grow while an acknowledgement is awaited. */
const READ_AHEAD_FACTOR = 4;
const noop = () => {};
const now = () => performance.now();

/** Turns anything thrown by a transport or stream into a typed error. */
function asMqttError(err: unknown, fallback: string): MqttError {
  if (err instanceof MqttError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new MqttError("TRANSPORT_ERROR", `${fallback}: ${message}`, { cause: err });
}

function checkQos(qos: unknown): QoS {
  if (qos !== 0 && qos !== 1 && qos !== 2) {
    throw new MqttError("INVALID_OPTION", `qos must be 0, 1 or 2, got ${String(qos)}`);
  }
  return qos;
}

/** Opens the byte duplex the URL asks for; the TCP and WebSocket modules load only when used. */
async function openTransport(options: ResolvedOptions, signal: AbortSignal): Promise<Transport> {
  const { url } = options;
  if (options.transport) return await options.transport(url.href);
  if (url.protocol === "mqtt" || url.protocol === "mqtts") {
    const { connectTcp } = await import("../transports/tcp.ts");
    return await connectTcp({
      hostname: url.hostname,
      port: url.port,
      tls: url.protocol === "mqtts" ? (options.tls ?? true) : undefined,
      signal,
    });
  }
  const { connectWebSocket } = await import("../transports/websocket.ts");
  return await connectWebSocket(url.href, { tls: options.tls, signal });
}

/**
 * One transport's life: its streams, its session and its read loop. A new one
 * is made for every connection; the {@linkcode ClientSessionState} outlives it.
 */
class Connection implements SessionHandler {
  readonly session: Session;
  readonly #client: MqttClient;
  readonly #transport: Transport;
  readonly #writer: WritableStreamDefaultWriter<Packet | readonly Packet[]>;
  readonly #connack: PromiseWithResolvers<ConnackPacket> = Promise.withResolvers();
  #lastWrite: Promise<void> = Promise.resolve();
  /** Packets sent this tick, written together by `#flush`. */
  #batch: Packet[] = [];
  /** Settles when the pending batch is written (made only when a QoS 0 publish asks). */
  #batchWritten: PromiseWithResolvers<void> | undefined;
  #ended = false;
  /** Resolves on end(): wakes a read loop waiting for a slow consumer, so it can finish. */
  readonly #endSignal: PromiseWithResolvers<void> = Promise.withResolvers();
  /** Set while the read loop is paused for a slow consumer; `send` wakes it. */
  #wake: PromiseWithResolvers<void> | undefined;
  /** When the chunk being framed was read: one clock reading serves all its packets. */
  #readAt = 0;
  /** What the consumer that stopped the framing waits on, for the read loop to await. */
  #blocked: Promise<unknown> | undefined;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Set once CONNACK accepted this connection. */
  accepted = false;
  /** Resolves once the transport is torn down and the read loop has stopped. */
  readonly finished: Promise<void>;

  constructor(
    client: MqttClient,
    transport: Transport,
    options: ResolvedOptions,
    state: ClientSessionState,
  ) {
    this.#client = client;
    this.#transport = transport;
    const writer = new PacketWriter();
    writer.readable.pipeTo(transport.writable).catch((err) => {
      this.end(asMqttError(err, "writing to the connection failed"));
    });
    this.#writer = writer.writable.getWriter();
    this.session = new Session(sessionOptions(options), state, this);
    this.#reader = transport.readable.getReader();
    this.finished = this.#readLoop(
      this.#reader,
      new PacketFramer({ maxPacketSize: options.maxPacketSize }),
    );
  }

  /** Sends CONNECT and waits for the CONNACK (or the connection's end). */
  start(): Promise<ConnackPacket> {
    this.session.connect(now());
    this.#client.armTimer();
    return this.#connack.promise;
  }

  /** Settles once the latest packet sent is written, for QoS 0 publishes that resolve then. */
  get lastWrite(): Promise<void> {
    if (this.#batch.length === 0) return this.#lastWrite;
    this.#batchWritten ??= Promise.withResolvers();
    return this.#batchWritten.promise;
  }

  get ended(): boolean {
    return this.#ended;
  }

  send(packet: Packet): void {
    if (this.#ended) return;
    // Packets sent in one tick go out as one write: far fewer system calls under load.
    if (this.#batch.length === 0) queueMicrotask(this.#flush);
    this.#batch.push(packet);
    // A paused read loop must look again: this packet's answer has to be read.
    if (this.#wake !== undefined) {
      this.#wake.resolve();
      this.#wake = undefined;
    }
  }

  /** Hands the packets of this tick to the writer as one batch. */
  readonly #flush = (): void => {
    const batch = this.#batch;
    if (batch.length === 0 || this.#ended) return;
    this.#batch = [];
    const write = this.#writer.write(batch.length === 1 ? batch[0] : batch);
    write.catch(noop); // a failed write ends the connection through the pipe's error
    this.#lastWrite = write;
    const waiting = this.#batchWritten;
    if (waiting !== undefined) {
      this.#batchWritten = undefined;
      write.then(waiting.resolve, waiting.resolve);
    }
  };

  deliver(packet: PublishPacket): void {
    this.#client.route(new Message(packet));
  }

  connected(connack: ConnackPacket): void {
    this.accepted = true;
    this.#connack.resolve(connack);
  }

  resubscribeFailed(filter: string, error: MqttError): void {
    this.#client.resubscribeFailed(filter, error);
  }

  closed(error: MqttError | undefined): void {
    if (error) {
      this.end(error);
      return;
    }
    // A DISCONNECT was queued: let it reach the wire before tearing down.
    this.#flush();
    this.#writer.close().catch(noop).finally(() => this.end(undefined));
  }

  /** Tears the transport down once; the session learns the connection is gone. */
  end(error: MqttError | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endSignal.resolve();
    this.#batchWritten?.resolve();
    this.#batchWritten = undefined;
    this.#transport.close();
    // A user transport's close() may leave its readable open: the read loop must end anyway.
    this.#reader.cancel().catch(noop);
    this.#writer.abort().catch(noop);
    if (this.session.state !== "disconnected") {
      this.session.connectionLost(
        error ?? new MqttError("CONNECTION_CLOSED", "connection closed"),
        now(),
      );
    }
    this.#connack.reject(error ?? new MqttError("CONNECTION_CLOSED", "connection closed"));
    this.#connack.promise.catch(noop);
    this.#client.connectionEnded(this, error);
  }

  /**
   * Hands one framed packet to the session. Stops the framing (returns false)
   * once the connection ended or a consumer fell behind, so a buffer never
   * takes more than `bufferSize` messages because a chunk happened to hold more.
   */
  readonly #receive = (packet: Packet): boolean => {
    if (this.#ended) return false;
    this.session.receive(packet, this.#readAt);
    const blocked = this.#client.backpressure();
    if (blocked === undefined) return true;
    this.#blocked = blocked;
    return false;
  };

  /**
   * Reads chunks and frames them here rather than through a `PacketReader`:
   * one read per chunk instead of one per packet, one clock reading per chunk.
   */
  async #readLoop(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    framer: PacketFramer,
  ): Promise<void> {
    let error: MqttError | undefined;
    try {
      while (!this.#ended) {
        const { value, done } = await reader.read();
        if (done) {
          framer.end(); // throws TRUNCATED_PACKET if the server stopped inside a packet
          error = new MqttError("CONNECTION_CLOSED", "the server closed the connection");
          break;
        }
        this.#readAt = now();
        let used = framer.push(value, this.#receive);
        while (!this.#ended) {
          this.#client.armTimer();
          const blocked = this.#blocked;
          this.#blocked = undefined;
          if (blocked && !this.#client.mayReadAhead()) await this.#pause(blocked);
          if (used || this.#ended) break;
          // The rest of the chunk, after a pause or while reading ahead is allowed.
          this.#readAt = now();
          used = framer.resume(this.#receive);
        }
      }
    } catch (err) {
      error = asMqttError(err, "reading from the connection failed");
    } finally {
      framer.reset();
      reader.releaseLock();
    }
    this.end(error);
  }

  /** Waits while a consumer is behind: the socket, not memory, holds the backlog. */
  async #pause(blocked: Promise<unknown>): Promise<void> {
    let released = false;
    blocked.then(() => released = true, noop);
    this.session.setReadPaused(true, now());
    while (!released && !this.#ended && !this.#client.mayReadAhead()) {
      this.#wake = Promise.withResolvers();
      await Promise.race([blocked, this.#endSignal.promise, this.#wake.promise]);
      this.#wake = undefined;
    }
    if (this.#ended) return;
    this.session.setReadPaused(false, now());
    this.#client.armTimer();
  }
}

/** How long a connection must last before the reconnect backoff starts over. */
function stableAfter(backoff: { minDelay: number; maxDelay: number }): number {
  return Math.min(backoff.maxDelay, Math.max(1000, 10 * backoff.minDelay));
}

/** Errors after which reconnecting cannot help: the broker refused who we are. */
function isFatal(error: MqttError | undefined): boolean {
  if (error instanceof ConnectionRefusedError) return error.returnCode !== 3; // 3: server unavailable
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
 *
 * After a lost connection the client reconnects (unless `reconnect: false`).
 * Subscriptions keep working across reconnects: when the broker kept no
 * session, the session subscribes again before queued publishes flow.
 * Publishes made while disconnected wait in a bounded queue.
 *
 * Messages that arrive for no subscription (a resumed session's queued
 * messages arrive right after CONNACK, before the user subscribes again) are
 * held, never dropped, and handed to the first subscription that matches them.
 * While `bufferSize` such messages are held the client stops reading.
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
  /** The client identifier sent in CONNECT. */
  readonly clientId: string;
  readonly #options: ResolvedOptions;
  readonly #state: ClientSessionState;
  #connection: Connection | undefined;
  #sessionPresent = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #attempt = 0;
  /** When the current connection was accepted (the driver's clock). */
  #connectedAt = 0;
  #attemptController: AbortController | undefined;
  #online: PromiseWithResolvers<void> | undefined;
  readonly #subscriptions = new Set<Subscription>();
  readonly #filterCounts = new Map<string, number>();
  #held: Message[] = [];
  /** Filters given to `unsubscribe()` whose UNSUBACK has not come yet. */
  readonly #unsubscribing = new Set<string>();
  #heldReady: PromiseWithResolvers<void> | undefined;
  /** SUBSCRIBEs awaiting their SUBACK; while any is, held messages do not stop the reading. */
  #subscribing = 0;
  #blocked: Promise<void>[] = [];
  #abortListener: (() => void) | undefined;

  /** @internal Use {@linkcode connect}. */
  constructor(options: ResolvedOptions) {
    super();
    this.#options = options;
    this.clientId = options.clientId;
    const { maxMessages, maxBytes, overflow } = options.queue;
    this.#state = new ClientSessionState({
      maxQueued: maxMessages,
      maxQueuedBytes: maxBytes,
      overflow,
      store: options.store,
    });
  }

  /** Whether the server had a session for this client (CONNACK's session present flag, latest connection). */
  get sessionPresent(): boolean {
    return this.#sessionPresent;
  }

  /** Whether the client currently has an accepted connection. */
  get connected(): boolean {
    return this.#connection?.session.state === "connected";
  }

  /** Whether {@linkcode close} was called or the client ended for good. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Publishes waiting for the connection or for an in-flight window slot. */
  get queued(): number {
    return this.#state.pendingCount;
  }

  /** @internal Opens the first connection; `connect()` calls it once. */
  async open(): Promise<void> {
    try {
      await this.#connectOnce();
    } catch (err) {
      const error = asMqttError(err, "connect failed");
      this.#closed = true;
      this.#shutdown(error, error);
      throw error;
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
        detail: { sessionPresent: this.#sessionPresent, reconnect: false },
      }),
    );
  }

  /**
   * One connection attempt: opens the transport and waits for CONNACK, within
   * `connectTimeout` and the user's signal. Leaves no connection behind on failure.
   */
  async #connectOnce(): Promise<void> {
    const options = this.#options;
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
      const connection = new Connection(this, transport, options, this.#state);
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

  /** Schedules the next reconnect attempt: exponential backoff with full jitter. */
  #scheduleReconnect(backoff: { minDelay: number; maxDelay: number }): void {
    const cap = Math.min(backoff.maxDelay, backoff.minDelay * 2 ** Math.min(this.#attempt, 30));
    const delay = Math.random() * cap;
    this.#attempt++;
    this.dispatchEvent(
      new CustomEvent<ReconnectEventDetail>("reconnect", {
        detail: { attempt: this.#attempt, delay },
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
      if (isFatal(error)) this.#finish(error);
      else this.#scheduleReconnect(backoff);
      return;
    }
    if (this.#closed) return;
    this.dispatchEvent(
      new CustomEvent<ConnectEventDetail>("connect", {
        detail: { sessionPresent: this.#sessionPresent, reconnect: true },
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
  ): Promise<void> {
    try {
      validateTopicName(topic);
      const qos = options.qos === undefined ? 0 : checkQos(options.qos);
      const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
      if (!(bytes instanceof Uint8Array)) {
        throw new MqttError("INVALID_OPTION", "payload must be a string or a Uint8Array");
      }
      if (this.#closed) throw new MqttError("CONNECTION_CLOSED", "the client is closed");
      const message = { topic, payload: bytes, qos, retain: options.retain === true };
      // Only a payload near the protocol's limit can fail to encode: ask the codec then, here,
      // rather than let the writer fail the connection over it (and again after every reconnect).
      if (bytes.length > MAX_REMAINING_LENGTH - MAX_PUBLISH_OVERHEAD) {
        encodedLength({ type: "publish", dup: false, packetId: qos ? 1 : undefined, ...message });
      }
      const connection = this.#connection;
      if (connection === undefined || connection.ended || !connection.accepted) {
        if (qos === 0 && !this.#options.queue.qos0WhenOffline) {
          throw new MqttError("CONNECTION_CLOSED", "offline, and QoS 0 publishes are not queued");
        }
        return new Promise<void>((resolve, reject) => {
          this.#state.enqueue(
            new OutgoingPublish(message, (error) => error ? reject(error) : resolve()),
          );
        });
      }
      return new Promise<void>((resolve, reject) => {
        connection.session.publish(
          message,
          now(),
          (error) =>
            error
              ? reject(error)
              : qos === 0
              ? connection.lastWrite.then(resolve, resolve)
              : resolve(),
        );
        this.armTimer();
      });
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
    const list = typeof filters === "string" ? [filters] : [...filters];
    if (list.length === 0) {
      throw new MqttError("INVALID_OPTION", "subscribe needs at least one topic filter");
    }
    for (const filter of list) validateTopicFilter(filter);
    const qos = options.qos === undefined ? 0 : checkQos(options.qos);
    const bufferSize = options.bufferSize ?? this.#options.bufferSize;
    const connection = await this.#whenOnline();
    // Held messages wait for a subscription to take them; with the reading stopped because of
    // them, the SUBACK of that very subscription would never be read.
    this.#subscribing++;
    this.#heldReady?.resolve();
    this.#heldReady = undefined;
    // Counted from the SUBSCRIBE on, so that unsubscribing another subscription with the same
    // filter meanwhile does not UNSUBSCRIBE it at the broker under the new one.
    for (const filter of list) {
      this.#filterCounts.set(filter, (this.#filterCounts.get(filter) ?? 0) + 1);
    }
    const make = (codes: SubackReturnCode[]) =>
      new Subscription(list, codes as QoS[], { bufferSize, unsubscribe: (s) => this.#release(s) });
    let sub: Subscription | undefined;
    let codes: SubackReturnCode[];
    try {
      codes = await new Promise<SubackReturnCode[]>((resolve, reject) => {
        connection.session.subscribe(
          list.map((filter) => ({ filter, qos })),
          now(),
          (error, returnCodes) => {
            if (error) return reject(error);
            // Made in the SUBACK's own turn: a retained message right behind the SUBACK, in
            // the same chunk, must reach this subscription, not only an older overlapping one.
            if (!returnCodes!.includes(0x80) && !this.#closed) {
              sub = make(returnCodes!);
              this.#subscriptions.add(sub);
              this.#drainHeld(sub);
            }
            resolve(returnCodes!);
          },
        );
        this.armTimer();
      });
    } catch (err) {
      for (const filter of list) this.#decrement(filter);
      throw err;
    } finally {
      this.#subscribing--;
    }
    const refused = codes.indexOf(0x80);
    if (refused !== -1) {
      // The granted filters of a partly refused SUBSCRIBE would deliver to no one.
      const unused = list.filter((f, i) => this.#decrement(f) && codes[i] !== 0x80);
      if (unused.length > 0) await this.#sendUnsubscribe(unused).catch(noop);
      throw new SubscribeError(list[refused]);
    }
    if (sub === undefined) {
      // The client closed while the SUBACK was on its way.
      const ended = make(codes);
      ended.end();
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
    const list = typeof filters === "string" ? [filters] : [...filters];
    for (const filter of list) validateTopicFilter(filter);
    const gone = new Set(list);
    for (const sub of [...this.#subscriptions]) {
      if (sub.filters.some((f) => gone.has(f))) {
        this.#subscriptions.delete(sub);
        sub.end();
        for (const f of sub.filters) {
          if (!gone.has(f) && this.#decrement(f)) gone.add(f);
        }
      }
    }
    for (const f of list) this.#filterCounts.delete(f);
    for (const f of list) this.#unsubscribing.add(f);
    this.#forgetHeld(list);
    try {
      await this.#sendUnsubscribe([...gone]);
    } finally {
      for (const f of list) this.#unsubscribing.delete(f);
    }
  }

  /**
   * Drops held messages of filters the user unsubscribes from (and, in
   * `route`, those that still arrive until the UNSUBACK): nobody will take
   * them, and they would otherwise keep the reading stopped.
   */
  #forgetHeld(filters: string[]): void {
    if (this.#held.length === 0) return;
    this.#held = this.#held.filter((m) => !filters.some((f) => topicMatches(f, m.topic)));
    this.#heldShrank();
  }

  /**
   * Closes the client: waits (up to `closeTimeout`) for in-flight and queued
   * messages to complete, sends DISCONNECT and closes the transport. Publishes
   * still unfinished then reject with `CLOSE_TIMEOUT`. Stops reconnecting.
   *
   * @example
   * ```ts ignore
   * await client.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    const wasClosed = this.#closed;
    this.#closed = true;
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#attemptController?.abort(new MqttError("ABORTED", "the client was closed"));
    const connection = this.#connection;
    if (connection && !connection.ended) {
      if (connection.session.state === "connected") {
        connection.session.disconnect(now());
        this.armTimer();
      }
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
    this.dispatchEvent(new CustomEvent<CloseEventDetail>("close", { detail: { error } }));
  }

  /** Ends everything: pending work fails, subscriptions finish, timers stop. */
  #shutdown(error: MqttError | undefined, pendingError: MqttError): void {
    this.#clearTimer();
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#state.abandon(pendingError);
    for (const sub of this.#subscriptions) sub.end(error);
    this.#subscriptions.clear();
    this.#heldReady?.resolve();
    this.#online?.reject(pendingError);
    this.#online?.promise.catch(noop);
    this.#online = undefined;
    if (this.#abortListener) {
      this.#options.signal?.removeEventListener("abort", this.#abortListener);
      this.#abortListener = undefined;
    }
  }

  /** @internal Called by a connection once its transport is gone. */
  connectionEnded(connection: Connection, error: MqttError | undefined): void {
    if (connection !== this.#connection) return;
    this.#clearTimer();
    // A connection CONNACK never accepted is a failed attempt; its caller reports it.
    if (!connection.accepted) return;
    if (error) this.dispatchEvent(new CustomEvent("error", { detail: error }));
    this.dispatchEvent(new CustomEvent<CloseEventDetail>("disconnect", { detail: { error } }));
    if (this.#closed) return; // close() is under way and finishes the job
    const backoff = this.#options.reconnect;
    // The backoff starts over only after a connection that lasted: a broker that accepts and
    // then drops us at once (NATS on a QoS 2 PUBLISH) must not be hammered in a tight loop.
    if (backoff !== false && now() - this.#connectedAt >= stableAfter(backoff)) this.#attempt = 0;
    if (backoff === false || isFatal(error)) {
      this.#finish(error ?? new MqttError("CONNECTION_CLOSED", "the connection closed"));
    } else {
      this.#scheduleReconnect(backoff);
    }
  }

  /** @internal The session could not subscribe again after a reconnect. */
  resubscribeFailed(filter: string, error: MqttError): void {
    for (const sub of [...this.#subscriptions]) {
      if (!sub.filters.includes(filter)) continue;
      this.#subscriptions.delete(sub);
      for (const f of sub.filters) this.#decrement(f);
      sub.end(error);
    }
    this.dispatchEvent(new CustomEvent("error", { detail: error }));
  }

  /** @internal Hands a delivered message to every matching subscription, or holds it. */
  route(message: Message): void {
    let matched = false;
    for (const sub of this.#subscriptions) {
      if (!sub.matches(message.topic)) continue;
      matched = true;
      if (!sub.push(message)) this.#blocked.push(sub.ready());
    }
    if (matched) return;
    if (this.#unsubscribing.size !== 0) {
      for (const f of this.#unsubscribing) if (topicMatches(f, message.topic)) return;
    }
    this.#held.push(message);
    if (this.#held.length >= this.#options.bufferSize && this.#subscribing === 0) {
      this.#heldReady ??= Promise.withResolvers();
      this.#blocked.push(this.#heldReady.promise);
    }
  }

  /**
   * @internal Whether reading may go on past a full buffer: only while an
   * acknowledgement is awaited (it may sit behind the unread messages, and a
   * consumer that awaits a publish would otherwise wait forever), and only
   * until a buffer holds READ_AHEAD_FACTOR × `bufferSize`, so memory stays bounded.
   */
  mayReadAhead(): boolean {
    const state = this.#state;
    if (state.inflightCount + state.requestCount === 0) return false;
    const limit = this.#options.bufferSize * READ_AHEAD_FACTOR;
    if (this.#held.length >= limit) return false;
    for (const sub of this.#subscriptions) if (sub.buffered >= limit) return false;
    return true;
  }

  /** @internal A promise to await before reading on, when a consumer is behind. */
  backpressure(): Promise<unknown> | undefined {
    if (this.#blocked.length === 0) return undefined;
    const blocked = Promise.all(this.#blocked);
    this.#blocked = [];
    return blocked;
  }

  /** @internal Keeps one timer armed for the session's next deadline. */
  armTimer(): void {
    const connection = this.#connection;
    if (!connection || connection.ended) return;
    const deadline = connection.session.deadline;
    // A later deadline needs no new timer: the earlier one fires, ticks, and re-arms.
    if (deadline === Infinity || deadline >= this.#timerAt) return;
    this.#clearTimer();
    this.#timerAt = deadline;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      const current = this.#connection;
      if (!current || current.ended) return;
      current.session.tick(now());
      this.armTimer();
    }, Math.max(0, deadline - now()));
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  /** The accepted connection, waiting for the next one while reconnecting. */
  #whenOnline(): Promise<Connection> | Connection {
    if (this.#closed) throw new MqttError("CONNECTION_CLOSED", "the client is closed");
    const connection = this.#connection;
    if (connection && !connection.ended && connection.accepted) return connection;
    this.#online ??= Promise.withResolvers();
    return this.#online.promise.then(() => this.#whenOnline());
  }

  /** Moves held messages that match a new subscription into it, in arrival order. */
  #drainHeld(sub: Subscription): void {
    if (this.#held.length === 0) return;
    const keep: Message[] = [];
    for (const message of this.#held) {
      if (sub.matches(message.topic)) sub.push(message);
      else keep.push(message);
    }
    this.#held = keep;
    this.#heldShrank();
  }

  /** Lets a read loop stopped by held messages go on once fewer than `bufferSize` remain. */
  #heldShrank(): void {
    if (this.#held.length < this.#options.bufferSize && this.#heldReady) {
      this.#heldReady.resolve();
      this.#heldReady = undefined;
    }
  }

  /** Decrements a filter's use count; true when no subscription uses it any more. */
  #decrement(filter: string): boolean {
    const count = (this.#filterCounts.get(filter) ?? 0) - 1;
    if (count > 0) {
      this.#filterCounts.set(filter, count);
      return false;
    }
    this.#filterCounts.delete(filter);
    return true;
  }

  /** A subscription ended by its user: UNSUBSCRIBE the filters no other subscription uses. */
  async #release(sub: Subscription): Promise<void> {
    if (!this.#subscriptions.delete(sub)) return;
    const unused = sub.filters.filter((f) => this.#decrement(f));
    if (unused.length === 0 || this.#closed) return;
    const sending = this.#sendUnsubscribe(unused);
    if (this.connected) return await sending;
    // Offline, the UNSUBSCRIBE goes out after the reconnect; leaving a `for await` loop or
    // disposing the subscription must not wait for that.
    sending.catch(noop);
  }

  async #sendUnsubscribe(filters: string[]): Promise<void> {
    if (filters.length === 0) return;
    const connection = await this.#whenOnline();
    await new Promise<void>((resolve, reject) => {
      connection.session.unsubscribe(filters, now(), (error) => error ? reject(error) : resolve());
      this.armTimer();
    });
  }
}
