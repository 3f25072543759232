/**
 * The client's driver of one transport: its streams, its {@linkcode Session},
 * its read loop with backpressure, and the one timer the session's deadline
 * asks for. A new one is made for every connection; the session state outlives it.
 *
 * @module
 */
import type {
  AuthPacket,
  ConnackPacket,
  Packet,
  PublishPacket,
  SubscriptionRequest,
} from "../codec/packet.ts";
import { AuthExchange } from "./auth.ts";
import type { CodecOptions } from "../codec/options.ts";
import type { DisconnectReasonCode } from "../codec/reason_codes.ts";
import type { SubscribeProperties } from "../codec/properties.ts";
import { MqttError, ProtocolError } from "../errors.ts";
import type { ClientSessionState } from "../session/client_state.ts";
import { Session } from "../session/session.ts";
import { closedBeforeConnack } from "../session/connack.ts";
import type {
  OutgoingMessage,
  PublishCallback,
  SessionHandler,
  SubscribeCallback,
  UnsubscribeCallback,
} from "../session/types.ts";
import { PacketFramer } from "../streams/packet_reader.ts";
import { encodeBatch } from "../streams/packet_writer.ts";
import type { Transport } from "../transports/transport.ts";
import { type ByteReader, type ByteWriter, openDuplex } from "../transports/direct.ts";
import { QueuedDeadlineTimer } from "../util/timer_queue.ts";
import type { Inbox } from "./inbox.ts";
import { type AckFunction, createMessage } from "./message.ts";
import type { PendingAck } from "../session/acks.ts";
import { type PacketListener, tracer } from "./packet_trace.ts";
import { explainEarlyEnd, explainTlsError } from "./hints.ts";
import { type ResolvedOptions, sessionOptions } from "./options.ts";

const noop = () => {};
/** How long a DISCONNECT sent because of an error may take to leave before the teardown. */
const ERROR_FLUSH_MS = 1000;
/** The driver's clock. */
export const now = (): number => performance.now();

/** Turns anything thrown by a transport or stream into a typed error. */
export function asMqttError(err: unknown, fallback: string): MqttError {
  if (err instanceof MqttError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new MqttError("TRANSPORT_ERROR", `${fallback}: ${message}`, { cause: err });
}

/** Opens the byte duplex the URL asks for; the TCP and WebSocket modules load only when used. */
export async function openTransport(
  options: ResolvedOptions,
  signal: AbortSignal,
): Promise<Transport> {
  const { url } = options;
  if (options.transport) return await options.transport(url.href);
  if (url.protocol === "mqtt" || url.protocol === "mqtts") {
    const { connectTcp } = await import("../transports/tcp.ts");
    try {
      return await connectTcp({
        hostname: url.hostname,
        port: url.port,
        tls: url.protocol === "mqtts" ? (options.tls ?? true) : undefined,
        signal,
      });
    } catch (err) {
      throw err instanceof MqttError ? explainTlsError(err, options.tls?.cert !== undefined) : err;
    }
  }
  const { connectWebSocket } = await import("../transports/websocket.ts");
  return await connectWebSocket(url.href, { tls: options.tls, signal });
}

/** What a {@linkcode Connection} needs from its client. */
export interface ConnectionHost {
  /** Where delivered messages go, and whether the reading must wait for a consumer. */
  readonly inbox: Inbox;
  /** A delivered message was consumed (or declined): see `Session.acknowledge`. */
  readonly acknowledge: AckFunction;
  /** The transport is gone (`error` undefined after a clean DISCONNECT). */
  connectionEnded(connection: Connection, error: MqttError | undefined): void;
  /** A subscription the session re-registered by itself was refused. */
  resubscribeFailed(filter: string, error: MqttError): void;
}

/**
 * One transport's life: its streams, its session, its read loop and its
 * timer. The client talks to the session only through it.
 *
 * @example
 * ```ts ignore
 * const connection = new Connection(host, transport, options, state);
 * const connack = await connection.start();
 * connection.publish({ topic: "a", payload, qos: 1, retain: false }, (err) => {});
 * ```
 */
export class Connection implements SessionHandler {
  readonly #session: Session;
  readonly #host: ConnectionHost;
  readonly #inbox: Inbox;
  /** On the shared timer queue: one `setTimeout` serves every connection of the process. */
  readonly #timer: QueuedDeadlineTimer;
  readonly #transport: Transport;
  /**
   * The transport's own writer (its stream's, or its fast path: see
   * `openDuplex`): each batch is encoded here and written straight to it, so
   * a QoS 0 publish settles on the transport's answer to its write, not on a
   * stream in between having taken it.
   */
  readonly #writer: ByteWriter;
  /** The session's protocol version, which every batch is encoded at. */
  readonly #codec: CodecOptions;
  /** DISCONNECT is queued: the server ending the connection now is the expected end. */
  #disconnecting = false;
  /** DISCONNECT has left: the server reads it, then hangs up (see `closed`). */
  #disconnected = false;
  /** Bounds the wait for the server to hang up after our DISCONNECT. */
  #hangUpTimer: ReturnType<typeof setTimeout> | undefined;
  /** The session failed and a DISCONNECT saying why is being written: the connection's end. */
  #failing: MqttError | undefined;
  readonly #connack: PromiseWithResolvers<ConnackPacket> = Promise.withResolvers();
  #lastWrite: Promise<void> = Promise.resolve();
  /** Packets sent this tick, written together by `#flush`. */
  #batch: Packet[] = [];
  /** `#flush` is queued as a microtask. */
  #flushQueued = false;
  /** `#flush` is due as a macrotask: the batch holds only batched acknowledgements. */
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** What the session sends now answers a batched acknowledgement. */
  #batching = false;
  /** The clock as read for the pending batch (see `#now`). */
  #clock: number | undefined;
  /** Settles when the pending batch is written (made only when a QoS 0 publish asks). */
  #batchWritten: PromiseWithResolvers<void> | undefined;
  #ended = false;
  /** Why the connection ended (set by `end`): what writes still pending then fail with. */
  #endError: MqttError | undefined;
  /**
   * Resolver of the current pause of the read loop (set only while paused):
   * the consumer catching up, `send` and `end` call it. One per pause, and no
   * promise that lives as long as the connection is raced against, so a
   * pause leaves nothing behind (racing against a connection-long promise
   * kept one reaction per pause until the connection ended: ~370 bytes each).
   */
  #wake: (() => void) | undefined;
  /** When the chunk being framed was read: one clock reading serves all its packets. */
  #readAt = 0;
  /** What the consumer that stopped the framing waits on, for the read loop to await. */
  #blocked: Promise<unknown> | undefined;
  readonly #reader: ByteReader;
  /** The first bytes read before CONNACK, to explain a failure there (an HTTP port…). */
  #firstChunk: Uint8Array | undefined;
  readonly #options: ResolvedOptions;
  /** The caller's `onPacket` hook, redacting; undefined when not tracing. */
  readonly #trace: PacketListener | undefined;
  /** MQTT 5.0 enhanced authentication: challenges answered by `onAuth`. */
  readonly #auth: AuthExchange;
  /** Set once CONNACK accepted this connection. */
  accepted = false;
  /** Resolves once the transport is torn down and the read loop has stopped. */
  readonly finished: Promise<void>;

  constructor(
    host: ConnectionHost,
    transport: Transport,
    options: ResolvedOptions,
    state: ClientSessionState,
  ) {
    this.#host = host;
    this.#inbox = host.inbox;
    this.#transport = transport;
    this.#trace = tracer(options.onPacket);
    this.#options = options;
    const { reader, writer } = openDuplex(transport);
    this.#writer = writer;
    this.#session = new Session(sessionOptions(options), state, this);
    this.#auth = new AuthExchange(options.onAuth, {
      answer: (data) => {
        this.#session.answerAuth(data, now());
        this.#armTimer();
      },
      fail: (error) => this.#session.authFailed(error, now()),
    });
    // The reader and writer speak the session's protocol version from the CONNECT on.
    const protocolVersion = this.#session.protocolVersion;
    this.#codec = { protocolVersion };
    this.#timer = new QueuedDeadlineTimer((time) => {
      if (this.#ended) return;
      this.#session.tick(time);
      this.#armTimer();
    });
    this.#reader = reader;
    this.finished = this.#readLoop(
      reader,
      new PacketFramer({ maxPacketSize: options.maxPacketSize, protocolVersion }),
    );
  }

  /** Sends CONNECT and waits for the CONNACK (or the connection's end). */
  start(): Promise<ConnackPacket> {
    this.#session.connect(now());
    this.#armTimer();
    return this.#connack.promise;
  }

  /** Whether CONNACK accepted this connection and it is still up. */
  get online(): boolean {
    return this.#session.state === "connected";
  }

  /** The session's protocol version and the server's limits from CONNACK. */
  get session(): Pick<Session, "protocolVersion" | "limits"> {
    return this.#session;
  }

  /** Whether the session can take commands (CONNECT sent, or accepted), so nothing is queued offline. */
  get live(): boolean {
    const state = this.#session.state;
    return state === "connected" || state === "connecting";
  }

  /** Publishes through the session (see `Session.publish`). */
  publish(message: OutgoingMessage, done: PublishCallback): void {
    this.#session.publish(message, this.#now(), done);
    this.#armTimer();
  }

  /** Sends SUBSCRIBE through the session. */
  subscribe(
    requests: SubscriptionRequest[],
    done: SubscribeCallback,
    properties?: SubscribeProperties,
  ): void {
    this.#session.subscribe(requests, this.#now(), done, properties);
    this.#armTimer();
  }

  /** Sends UNSUBSCRIBE through the session. */
  unsubscribe(filters: string[], done: UnsubscribeCallback): void {
    this.#session.unsubscribe(filters, this.#now(), done);
    this.#armTimer();
  }

  /**
   * Acknowledges a consumed (or declined) message through the session (see
   * `Session.acknowledge`). `batched`: more acknowledgements follow at once,
   * so what this one sends waits for them (see {@linkcode AckFunction}).
   */
  acknowledge(ack: PendingAck, consumed: boolean, batched = false): void {
    this.#batching = batched;
    try {
      this.#session.acknowledge(ack, consumed, this.#now());
    } finally {
      this.#batching = false;
    }
    this.#armTimer();
  }

  /**
   * MQTT 5.0: re-authenticates (AUTH 0x19 with `data`); resolves with the
   * Authentication Data of the server's AUTH 0x00 (see {@linkcode AuthExchange}).
   */
  reauthenticate(data: Uint8Array | undefined): Promise<Uint8Array | undefined> {
    return this.#auth.reauthenticate(() => {
      this.#session.reauthenticate(data, now());
      this.#armTimer();
    });
  }

  /** @internal The session hands over an AUTH from the server. */
  auth(packet: AuthPacket, finished: boolean): void {
    this.#auth.received(packet, finished);
  }

  /** Starts the clean close: DISCONNECT once everything in flight has completed. */
  disconnect(reasonCode?: DisconnectReasonCode): void {
    if (this.#session.state !== "connected") return;
    this.#session.disconnect(now(), reasonCode);
    this.#armTimer();
  }

  #armTimer(): void {
    if (!this.#ended) this.#timer.arm(this.#session.deadline);
  }

  /** Settles once the latest packet sent is written, for QoS 0 publishes that resolve then. */
  get lastWrite(): Promise<void> {
    if (this.#batch.length === 0) return this.#lastWrite;
    this.#batchWritten ??= Promise.withResolvers();
    return this.#batchWritten.promise;
  }

  /** Whether the transport is torn down. */
  get ended(): boolean {
    return this.#ended;
  }

  /** @internal The session's output: queues a packet for this tick's write. */
  send(packet: Packet): void {
    if (this.#ended) return;
    this.#trace?.("sent", packet);
    this.#batch.push(packet);
    // Packets sent in one tick go out as one write: far fewer system calls under load.
    // Acknowledgements of a consumer working through its buffer wait for the next
    // macrotask at most: each message is consumed in a tick of its own, and one write
    // per acknowledgement cost a third of the client's time at QoS 1.
    if (!this.#batching) {
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        queueMicrotask(this.#flush);
      }
    } else if (!this.#flushQueued && this.#flushTimer === undefined) {
      this.#flushTimer = setTimeout(this.#flush, 0);
    }
    // A paused read loop must look again: this packet's answer has to be read.
    this.#wakeReader();
  }

  /** Ends the current pause of the read loop, if any, so it looks again. */
  #wakeReader(): void {
    const wake = this.#wake;
    if (wake === undefined) return;
    this.#wake = undefined;
    wake();
  }

  /**
   * The session's clock for sends: read once per batch. A busy client
   * publishes or acknowledges a message per microtask, and each
   * `performance.now()` is a call into the runtime (6 % of the client's time
   * at QoS 1). Until the batch is written the value is at most that long old
   * (a macrotask for batched acknowledgements): keep-alive and expiry, in
   * seconds, cannot tell.
   */
  #now(): number {
    let clock = this.#clock;
    if (clock === undefined) {
      clock = this.#clock = now();
      if (!this.#flushQueued && this.#flushTimer === undefined) queueMicrotask(this.#forgetClock);
    }
    return clock;
  }

  readonly #forgetClock = (): void => {
    if (!this.#flushQueued && this.#flushTimer === undefined) this.#clock = undefined;
  };

  /**
   * Encodes the packets of this tick and writes them to the transport as one
   * chunk. The QoS 0 publishes of the batch settle with that write: resolved
   * once the transport took the bytes, rejected when it failed (which also
   * ends the connection).
   */
  readonly #flush = (): void => {
    this.#flushQueued = false;
    this.#clock = undefined;
    if (this.#flushTimer !== undefined) {
      clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
    }
    const batch = this.#batch;
    if (batch.length === 0 || this.#ended) return;
    this.#batch = [];
    const waiting = this.#batchWritten;
    this.#batchWritten = undefined;
    let bytes: Uint8Array;
    try {
      bytes = encodeBatch(batch, this.#codec);
    } catch (err) {
      // The session and the client validate what they send; a packet that still fails to
      // encode ends the connection rather than leave its peer waiting for it.
      const error = asMqttError(err, "a packet could not be encoded");
      waiting?.reject(error);
      this.end(error);
      return;
    }
    const write = this.#writer.write(bytes).then(noop, (err) => {
      const error = this.#endError ?? asMqttError(err, "writing to the connection failed");
      this.end(error);
      throw error;
    });
    write.catch(noop);
    this.#lastWrite = write;
    if (waiting !== undefined) write.then(waiting.resolve, waiting.reject);
  };

  /** @internal The session delivers a message. */
  deliver(packet: PublishPacket, ack?: PendingAck): void {
    this.#inbox.route(createMessage(packet, ack, this.#host.acknowledge));
  }

  /** @internal CONNACK accepted the connection. */
  connected(connack: ConnackPacket): void {
    this.accepted = true;
    this.#firstChunk = undefined; // explains only failures before CONNACK
    this.#inbox.connected(connack.sessionPresent);
    this.#connack.resolve(connack);
  }

  /** @internal A re-registered filter was refused. */
  resubscribeFailed(filter: string, error: MqttError): void {
    this.#host.resubscribeFailed(filter, error);
  }

  /** @internal The session ends the connection. */
  closed(error: MqttError | undefined): void {
    // MQTT 5.0: a session ending the connection over an error may have queued a DISCONNECT
    // saying why (0x93 Receive Maximum exceeded); it must leave before the teardown too.
    if (error && this.#batch.at(-1)?.type !== "disconnect") {
      this.end(error);
      return;
    }
    // A DISCONNECT was queued: the transport's writable closes only once everything written
    // has left (a WebSocket drains its buffer and closes its handshake), then the teardown.
    // The server may hang up on a DISCONNECT we sent for an error first: `end` keeps the error.
    this.#failing = error;
    this.#disconnecting = true;
    this.#flush();
    // Once the write holding our DISCONNECT has left, the server may end the connection any
    // way it likes: a WebSocket server dropping the socket without its close frame (Mosquitto
    // does) is its hang-up, not a failure. The writable's close may settle only after that.
    if (error === undefined) this.#lastWrite.then(() => this.#disconnected = true, noop);
    // A read loop paused for a consumer must read on: the server's hang-up is what ends it.
    this.#wakeReader();
    // After an error the peer may not be reading: the DISCONNECT gets a moment, not forever.
    const timer = error ? setTimeout(() => this.end(error), ERROR_FLUSH_MS) : undefined;
    this.#writer.close().catch(noop).finally(() => {
      clearTimeout(timer);
      if (error !== undefined || this.#ended) {
        this.end(error);
        return;
      }
      // A clean close ends when the server hangs up (section 3.14.4: it SHOULD close the
      // connection on DISCONNECT; the writable's close began ours, MQTT-3.14.4-1), so the
      // server has read the DISCONNECT and every acknowledgement before it.
      // Torn down at once, a reconnect of the same session could reach the server first:
      // Mosquitto then takes the session over and drops the old connection's unread bytes,
      // and the acknowledged messages come back. A server that never hangs up gets `closeTimeout`.
      this.#disconnected = true;
      this.#hangUpTimer = setTimeout(() => this.end(undefined), this.#options.closeTimeout);
    });
  }

  /** Tears the transport down once; the session learns the connection is gone. */
  end(error: MqttError | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    // The server may hang up on the DISCONNECT we sent for an error: that error is the reason.
    error = this.#failing ?? error;
    const reason = error ?? new MqttError("CONNECTION_CLOSED", "connection closed");
    this.#endError = reason;
    this.#auth.end(reason);
    this.#timer.clear();
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    clearTimeout(this.#hangUpTimer);
    this.#wakeReader();
    // QoS 0 publishes waiting for this batch were never written: they fail.
    this.#batchWritten?.reject(reason);
    this.#batchWritten = undefined;
    this.#transport.close();
    // A user transport's close() may leave its readable open: the read loop must end anyway.
    this.#reader.cancel().catch(noop);
    // Writes still queued fail with the reason, and so do their QoS 0 publishes.
    this.#writer.abort(reason).catch(noop);
    if (this.#session.state !== "disconnected") {
      // The server closing or resetting the link (not a timeout or a close of ours) counts
      // against the publish sent right before it (a server that cannot take it drops us).
      const dropped = error?.code === "CONNECTION_CLOSED" || error?.code === "TRANSPORT_ERROR";
      this.#session.connectionLost(reason, now(), dropped);
    }
    this.#connack.reject(reason);
    this.#connack.promise.catch(noop);
    this.#host.connectionEnded(this, error);
  }

  /**
   * Hands one framed packet to the session. Stops the framing (returns false)
   * once the connection ended or a consumer fell behind, so a buffer never
   * takes more than `bufferSize` messages because a chunk happened to hold more.
   */
  readonly #receive = (packet: Packet): boolean => {
    if (this.#ended) return false;
    this.#trace?.("received", packet);
    this.#session.receive(packet, this.#readAt);
    const blocked = this.#inbox.backpressure();
    if (blocked === undefined) return true;
    this.#blocked = blocked;
    return false;
  };

  /**
   * Reads chunks and frames them here rather than through a `PacketReader`:
   * one read per chunk instead of one per packet, one clock reading per chunk.
   */
  async #readLoop(
    reader: ByteReader,
    framer: PacketFramer,
  ): Promise<void> {
    let error: MqttError | undefined;
    let eof = false;
    let refused = false;
    try {
      while (!this.#ended) {
        const { value, done } = await reader.read();
        if (done) {
          eof = true;
          framer.end(); // throws TRUNCATED_PACKET if the server stopped inside a packet
          if (!this.#disconnecting) {
            error = this.#session.state === "connecting"
              ? closedBeforeConnack(this.#session.protocolVersion)
              : new MqttError("CONNECTION_CLOSED", "the server closed the connection");
          }
          break;
        }
        this.#readAt = now();
        if (!this.accepted) this.#firstChunk ??= value.slice(0, 80);
        let used = framer.push(value, this.#receive);
        while (!this.#ended) {
          this.#armTimer();
          const blocked = this.#blocked;
          this.#blocked = undefined;
          if (blocked && !this.#inbox.mayReadAhead()) await this.#pause(blocked);
          if (used || this.#ended) break;
          // The rest of the chunk, after a pause or while reading ahead is allowed.
          this.#readAt = now();
          used = framer.resume(this.#receive);
        }
      }
    } catch (err) {
      error = asMqttError(err, "reading from the connection failed");
      // Our DISCONNECT has left: however the server ends the connection now, it ends cleanly.
      if (this.#disconnected) error = undefined;
      // MQTT 5.0: the session tells the server why (DISCONNECT 0x81/0x95) and closes us after.
      // Before CONNACK the peer may not speak MQTT at all: the error is explained below instead.
      refused = err instanceof ProtocolError && !eof && this.accepted &&
        this.#session.refuseIncoming(err, now());
    } finally {
      framer.reset();
      reader.releaseLock();
    }
    if (refused) return;
    if (error !== undefined && !this.accepted) {
      const options = this.#options;
      error = explainEarlyEnd(
        explainTlsError(error, options.tls?.cert !== undefined),
        this.#firstChunk,
        options.url,
      );
    }
    this.end(error);
  }

  /** Waits while a consumer is behind: the socket, not memory, holds the backlog. */
  async #pause(blocked: Promise<unknown>): Promise<void> {
    let released = false;
    // Once per pause; `blocked` is this pause's own promise and settles when the consumer is
    // back, so this reaction does not outlive it. A late one may wake a later pause: harmless.
    blocked.then(() => {
      released = true;
      this.#wakeReader();
    }, noop);
    this.#session.setReadPaused(true, now());
    while (!released && !this.#ended && !this.#disconnecting && !this.#inbox.mayReadAhead()) {
      const woken = Promise.withResolvers<void>();
      this.#wake = woken.resolve;
      await woken.promise;
    }
    if (this.#ended) return;
    this.#session.setReadPaused(false, now());
    this.#armTimer();
  }
}
