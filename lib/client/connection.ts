/**
 * The client's driver of one transport: its streams, its {@linkcode Session},
 * its read loop with backpressure, and the one timer the session's deadline
 * asks for. A new one is made for every connection; the session state outlives it.
 *
 * @module
 */
import type { ConnackPacket, Packet, PublishPacket, SubscriptionRequest } from "../codec/packet.ts";
import { MqttError } from "../errors.ts";
import type { ClientSessionState } from "../session/client_state.ts";
import { Session } from "../session/session.ts";
import type {
  OutgoingMessage,
  PublishCallback,
  SessionHandler,
  SubscribeCallback,
  UnsubscribeCallback,
} from "../session/types.ts";
import { PacketFramer } from "../streams/packet_reader.ts";
import { PacketWriter } from "../streams/packet_writer.ts";
import type { Transport } from "../transports/transport.ts";
import { DeadlineTimer } from "../util/deadline_timer.ts";
import type { Inbox } from "./inbox.ts";
import { Message } from "./message.ts";
import { type PacketListener, tracer } from "./packet_trace.ts";
import { explainEarlyEnd, explainTlsError } from "./hints.ts";
import { type ResolvedOptions, sessionOptions } from "./options.ts";

const noop = () => {};
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
  readonly #timer: DeadlineTimer;
  readonly #transport: Transport;
  readonly #writer: WritableStreamDefaultWriter<Packet | readonly Packet[]>;
  /** Settles once the transport's writable is closed: everything written has left. */
  readonly #piped: Promise<void>;
  /** DISCONNECT is queued: the server ending the connection now is the expected end. */
  #disconnecting = false;
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
  /** The first bytes read before CONNACK, to explain a failure there (an HTTP port…). */
  #firstChunk: Uint8Array | undefined;
  readonly #options: ResolvedOptions;
  /** The caller's `onPacket` hook, redacting; undefined when not tracing. */
  readonly #trace: PacketListener | undefined;
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
    const writer = new PacketWriter();
    this.#piped = writer.readable.pipeTo(transport.writable);
    this.#piped.catch((err) => {
      this.end(asMqttError(err, "writing to the connection failed"));
    });
    this.#writer = writer.writable.getWriter();
    this.#session = new Session(sessionOptions(options), state, this);
    this.#timer = new DeadlineTimer(now, () => {
      if (this.#ended) return;
      this.#session.tick(now());
      this.#armTimer();
    });
    this.#reader = transport.readable.getReader();
    this.finished = this.#readLoop(
      this.#reader,
      new PacketFramer({ maxPacketSize: options.maxPacketSize }),
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

  /** Whether the session can take commands (CONNECT sent, or accepted), so nothing is queued offline. */
  get live(): boolean {
    const state = this.#session.state;
    return state === "connected" || state === "connecting";
  }

  /** Publishes through the session (see `Session.publish`). */
  publish(message: OutgoingMessage, done: PublishCallback): void {
    this.#session.publish(message, now(), done);
    this.#armTimer();
  }

  /** Sends SUBSCRIBE through the session. */
  subscribe(requests: SubscriptionRequest[], done: SubscribeCallback): void {
    this.#session.subscribe(requests, now(), done);
    this.#armTimer();
  }

  /** Sends UNSUBSCRIBE through the session. */
  unsubscribe(filters: string[], done: UnsubscribeCallback): void {
    this.#session.unsubscribe(filters, now(), done);
    this.#armTimer();
  }

  /** Starts the clean close: DISCONNECT once everything in flight has completed. */
  disconnect(): void {
    if (this.#session.state !== "connected") return;
    this.#session.disconnect(now());
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
      write.then(() => waiting.resolve(), waiting.reject);
    }
  };

  /** @internal The session delivers a message. */
  deliver(packet: PublishPacket): void {
    this.#inbox.route(new Message(packet));
  }

  /** @internal CONNACK accepted the connection. */
  connected(connack: ConnackPacket): void {
    this.accepted = true;
    this.#connack.resolve(connack);
  }

  /** @internal A re-registered filter was refused. */
  resubscribeFailed(filter: string, error: MqttError): void {
    this.#host.resubscribeFailed(filter, error);
  }

  /** @internal The session ends the connection. */
  closed(error: MqttError | undefined): void {
    if (error) {
      this.end(error);
      return;
    }
    // A DISCONNECT was queued: the transport's writable closes only once everything written
    // has left (a WebSocket drains its buffer and closes its handshake), then the teardown.
    this.#disconnecting = true;
    this.#flush();
    this.#writer.close().then(() => this.#piped).catch(noop).finally(() => this.end(undefined));
  }

  /** Tears the transport down once; the session learns the connection is gone. */
  end(error: MqttError | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#timer.clear();
    this.#endSignal.resolve();
    // QoS 0 publishes waiting for this batch were never written: they fail.
    this.#batchWritten?.reject(error ?? new MqttError("CONNECTION_CLOSED", "connection closed"));
    this.#batchWritten = undefined;
    this.#transport.close();
    // A user transport's close() may leave its readable open: the read loop must end anyway.
    this.#reader.cancel().catch(noop);
    this.#writer.abort().catch(noop);
    if (this.#session.state !== "disconnected") {
      this.#session.connectionLost(
        error ?? new MqttError("CONNECTION_CLOSED", "connection closed"),
        now(),
      );
    }
    this.#connack.reject(error ?? new MqttError("CONNECTION_CLOSED", "connection closed"));
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
    reader: ReadableStreamDefaultReader<Uint8Array>,
    framer: PacketFramer,
  ): Promise<void> {
    let error: MqttError | undefined;
    try {
      while (!this.#ended) {
        const { value, done } = await reader.read();
        if (done) {
          framer.end(); // throws TRUNCATED_PACKET if the server stopped inside a packet
          if (!this.#disconnecting) {
            error = new MqttError("CONNECTION_CLOSED", "the server closed the connection");
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
    } finally {
      framer.reset();
      reader.releaseLock();
    }
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
    blocked.then(() => released = true, noop);
    this.#session.setReadPaused(true, now());
    while (!released && !this.#ended && !this.#inbox.mayReadAhead()) {
      this.#wake = Promise.withResolvers();
      await Promise.race([blocked, this.#endSignal.promise, this.#wake.promise]);
      this.#wake = undefined;
    }
    if (this.#ended) return;
    this.#session.setReadPaused(false, now());
    this.#armTimer();
  }
}
