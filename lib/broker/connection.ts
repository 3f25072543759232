/**
 * One client connection of the embedded broker: the driver of a
 * {@linkcode ServerSession}. It reads packets into the machine, makes the
 * server's decisions (authentication, authorization, routing, subscriptions),
 * and writes answers and deliveries with backpressure.
 *
 * @module
 */
import { type CodecOptions, encodedLength, encodeInto, encodePacket } from "../codec/mod.ts";
import type {
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubackReturnCode,
  SubscribePacket,
  UnsubscribePacket,
  Will,
} from "../codec/packet.ts";
import type { ConnackProperties } from "../codec/properties.ts";
import type { SubackReasonCode, UnsubackReasonCode } from "../codec/reason_codes.ts";
import { OutgoingTopicAliases } from "../session/topic_aliases.ts";
import { sharedFilterError } from "./shared.ts";
import type { Grant } from "./subscriptions.ts";
import { type MqttError, ProtocolError } from "../errors.ts";
import {
  type ServerCloseReason,
  ServerSession,
  type ServerSessionHandler,
} from "../session/server_session.ts";
import { Queue } from "../util/queue.ts";
import { PacketFramer } from "../streams/packet_reader.ts";
import { ConnectIntake, MAX_CONNECT_SIZE } from "./intake.ts";
import type { Link } from "./link.ts";
import type { BrokerClient, EnhancedAuthResult, ResolvedBrokerOptions } from "./options.ts";
import { AuthExchange } from "./auth_exchange.ts";
import type { Deadline, Deadlines, Timed } from "./deadlines.ts";
import {
  clientPacketLimit,
  connackProperties,
  connectRefusal,
  negotiateKeepAlive,
  refusingConnack,
} from "./connack.ts";
import { RetainedFeed } from "./retained_feed.ts";
import type { Router } from "./router.ts";
import type { BrokerSession, SessionOwner } from "./session.ts";

/** What a connection needs from its broker. */
export interface ConnectionHost {
  readonly options: ResolvedBrokerOptions;
  readonly router: Router;
  /** The broker's one timer, for the CONNECT deadlines and keep-alives of its connections. */
  readonly deadlines: Deadlines;
  /** Settles once persistence is loaded; rejects when it cannot be. */
  readonly ready: Promise<void>;
  /** Writes a log line (the broker decides whether anyone listens). */
  log(line: string): void;
  /** Publishes a will on behalf of a client whose connection ended without DISCONNECT. */
  publishWill(will: Will, client: BrokerClient): void;
  /** The connection has ended. */
  closed(connection: Connection): void;
}

/** Stop reading from a client while this many answers wait to be written to it. */
const OUTBOX_HIGH = 256;
/** Bytes gathered into one write when several packets are ready at once. */
const BATCH_BYTES = 64 * 1024;
/** How long a refusing CONNACK may take to be written before the connection is cut. */
const FLUSH_TIMEOUT = 1000;
/** MQTT 5.0 DISCONNECT reason code the broker sends when it closes for `reason`. */
const DISCONNECT_REASON: Partial<Record<CloseReason, number>> = {
  keepalive: 0x8d, // Keep Alive timeout
  takeover: 0x8e, // Session taken over (MQTT-3.1.4-3)
  shutdown: 0x8b, // Server shutting down
  protocol: 0x82, // Protocol Error
};

/** Topics no client may publish to (as Mosquitto, which keeps `$SYS` for the broker). */
function reservedTopic(topic: string): boolean {
  return topic.startsWith("$SYS");
}

/** Why a connection ended, for the log line and for what happens to the will. */
type CloseReason =
  | "disconnect"
  | "peer"
  | "protocol"
  | "keepalive"
  | "connect-timeout"
  | "takeover"
  | "refused"
  | "shutdown"
  | "io";

/**
 * The clock of the protocol machines, read once per synchronous run of the
 * broker: a busy read loop asks for it three times per PUBLISH, and each
 * `performance.now()` is a call into the runtime (7 % of the broker's time at
 * 60,000 msg/s). Within one run of the event loop's job no timer can fire, so
 * the value is as good as a fresh one for keep-alive and expiry.
 */
let cachedNow = -1;
const forgetNow = (): void => {
  cachedNow = -1;
};
const now = (): number => {
  if (cachedNow < 0) {
    cachedNow = performance.now();
    queueMicrotask(forgetNow);
  }
  return cachedNow;
};

/** What {@linkcode Connection.#untilClosed} gives when the connection closed first. */
const CLOSED: unique symbol = Symbol("closed");

/**
 * The broker's side of one network connection.
 *
 * @example
 * ```ts ignore
 * const connection = new Connection(host, new SocketLink(conn), "127.0.0.1:50000");
 * connection.start();
 * await connection.done;
 * ```
 */
export class Connection implements SessionOwner, BrokerClient, ServerSessionHandler, Timed {
  /** Peer address, when the transport told it. */
  readonly remoteAddress: string | undefined;
  /** Settles once the connection is closed and its loops have stopped. */
  /** The client identifier; empty until CONNECT is accepted. */
  id = "";
  /** The user name from CONNECT, if any. */
  username: string | undefined = undefined;

  readonly #host: ConnectionHost;
  readonly #options: ResolvedBrokerOptions;
  readonly #link: Link;
  /** Gathers the CONNECT; afterwards passes chunks through. */
  readonly #intake: ConnectIntake;
  readonly #framer: PacketFramer;
  /** The client's protocol level, from its CONNECT: 4 (MQTT 3.1.1) or 5 (MQTT 5.0). */
  #version: ProtocolVersion = 4;
  #codec: CodecOptions = { protocolVersion: 4 };
  /** MQTT 5.0: the Topic Aliases we send this client, per its Topic Alias Maximum. */
  #aliases: OutgoingTopicAliases | undefined = undefined;
  /** Set once CONNACK is written: only then may a 5.0 DISCONNECT be sent (MQTT-3.14.0-1). */
  #connackSent = false;
  /** The reason code of the DISCONNECT to send before closing (MQTT 5.0), if any. */
  #disconnectCode: number | undefined = undefined;
  /** MQTT 5.0 enhanced authentication of this connection: its method and the current exchange. */
  #exchange: AuthExchange | undefined = undefined;
  /** A CONNECT waiting for its enhanced authentication to succeed. */
  #pendingConnect: { packet: ConnectPacket; clientId: string; assigned: boolean } | undefined =
    undefined;
  readonly #outbox = new Queue<Packet>();
  readonly #machine: ServerSession;
  readonly #timer: Deadline;
  #session: BrokerSession | undefined = undefined;
  #will: Will | undefined = undefined;
  #closed = false;
  #connected = false;
  /** Set while a write is under way or one is scheduled: a wake then asks for nothing more. */
  #flushing = false;
  #drained: PromiseWithResolvers<void> | undefined = undefined;
  /** The read loop, which `done` waits for. */
  #reading: Promise<void> | undefined = undefined;
  /** The answer of the packet being handled asynchronously, which the reading waits for. */
  #pending: Promise<void> | undefined = undefined;
  /** The write loop's write under way: a last packet is written after it, never into it. */
  #writing: Promise<void> | undefined = undefined;
  /** `done`, once asked for: most connections' are never awaited (only at shutdown). */
  #done: PromiseWithResolvers<void> | undefined = undefined;
  /** Set once the connection is closed and its loops have stopped. */
  #finished = false;
  /**
   * Settles the hook answer being awaited with {@linkcode CLOSED}, so a hook that never answers
   * cannot hold a loop once the connection closes. One at a time: packets are handled in order.
   */
  #abandonHook: ((closed: typeof CLOSED) => void) | undefined = undefined;
  /** Retained messages to send for new subscriptions, paced by the client's window. */
  readonly #retained: RetainedFeed;
  #droppingLogged = false;

  /** Wraps a link; nothing is read until {@linkcode start}. */
  constructor(host: ConnectionHost, link: Link, remoteAddress?: string) {
    this.#host = host;
    this.#options = host.options;
    this.#link = link;
    this.remoteAddress = remoteAddress;
    const maxPacketSize = this.#options.maxPacketSize;
    // Before CONNECT is accepted a client may make the broker hold only what it sent.
    this.#intake = new ConnectIntake(Math.min(maxPacketSize, MAX_CONNECT_SIZE));
    // Level 5 reads a CONNECT of level 4 or 5; the CONNECT then sets the level of what follows.
    this.#framer = new PacketFramer({ maxPacketSize, protocolVersion: 5 });
    this.#retained = new RetainedFeed(
      host.router,
      this.#options.maxQueuedMessages,
      () => this.wake(),
    );
    this.#machine = new ServerSession(this.#options, this);
    this.#timer = host.deadlines.for(this);
  }

  /** Settles once the connection is closed and its loops have stopped. */
  get done(): Promise<void> {
    if (this.#finished) return Promise.resolve();
    return (this.#done ??= Promise.withResolvers()).promise;
  }

  /** Whether CONNECT was accepted and the connection is still open. */
  get connected(): boolean {
    return this.#connected && !this.#closed;
  }

  /** Starts the read and write loops and the CONNECT deadline. */
  start(): void {
    this.#machine.start(now());
    this.#armTimer();
    this.#reading = this.#readLoop();
  }

  /** @internal The CONNECT deadline or the keep-alive is due (the broker's {@linkcode Deadlines}). */
  onDeadline(): void {
    this.#machine.tick(now());
    this.#armTimer();
  }

  /** Tells the write loop that the session has messages to send. */
  wake(): void {
    if (this.#flushing || this.#closed) return;
    this.#flushing = true;
    // In a microtask: what the current job queues goes out in one write.
    queueMicrotask(this.#flush);
  }

  /** Another connection took over this client identifier (MQTT-3.1.4-2; 5.0: DISCONNECT 0x8E). */
  evict(): void {
    this.close("takeover");
  }

  /** The protocol level the client connected with: 4 (MQTT 3.1.1) or 5 (MQTT 5.0). */
  get protocolVersion(): ProtocolVersion {
    return this.#version;
  }

  /**
   * Ends the connection at once. The will is published unless the client sent
   * DISCONNECT (MQTT-3.1.2-8/-10) or the broker is shutting down.
   */
  close(reason: CloseReason, error?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer.clear();
    this.#machine.closed();
    this.#drained?.resolve();
    this.#abandonHook?.(CLOSED);
    this.#retained.stop();
    const code = this.#disconnectCode ?? DISCONNECT_REASON[reason];
    const teardown = this.#version === 5 && this.#connackSent && code !== undefined &&
        reason !== "disconnect" && reason !== "peer" && reason !== "io"
      ? this.#sendDisconnect(code).then(() => this.#teardown())
      : this.#teardown();
    const session = this.#session;
    this.#log(reason, error);
    const will = this.#will;
    this.#will = undefined;
    if (session !== undefined && session.owner === this) {
      session.owner = undefined;
      const delay = will?.properties?.willDelayInterval ?? 0;
      if (will !== undefined && delay > 0 && !session.clean && reason !== "shutdown") {
        // MQTT 5.0 section 3.1.3.2.2: after the delay, or when the session ends if sooner.
        session.delayWill(() => this.#host.publishWill(will, this), delay * 1000);
        this.#host.router.connectionEnded(session, reason === "takeover");
        return this.#finish(teardown);
      }
      // MQTT-3.1.2-6; MQTT 5.0: a session with expiry 0 ends now, others when they expire.
      this.#host.router.connectionEnded(session, reason === "takeover");
    }
    // After DISCONNECT the will is left only when its reason code was 0x04 (MQTT 5.0).
    if (will !== undefined && reason !== "shutdown") {
      this.#host.publishWill(will, this);
    }
    this.#finish(teardown);
  }

  #finish(teardown: Promise<void> | void): void {
    this.#host.closed(this);
    const finish = () => {
      this.#finished = true;
      this.#done?.resolve();
    };
    // A write failing as the link closes must not settle `done` before the read loop has stopped.
    const writing = this.#writing?.catch(() => {});
    const all = Promise.all([this.#reading, writing, teardown]);
    all.then(finish, finish);
  }

  #teardown(): void {
    this.#framer.reset();
    this.#link.close();
  }

  /** Writes a 5.0 DISCONNECT with `code` (MQTT-3.14.2-1), waiting at most FLUSH_TIMEOUT. */
  #sendDisconnect(code: number): Promise<void> {
    return this.#writeLast({ type: "disconnect", reasonCode: code } as DisconnectPacket);
  }

  /** Writes the last packet of the connection, waiting at most FLUSH_TIMEOUT for it to go. */
  async #writeLast(packet: Packet): Promise<void> {
    const bytes = encodePacket(packet, this.#codec);
    const link = this.#link;
    const writing = this.#writing;
    // A socket write may be partial: the rest of the write under way must go first.
    const written = writing === undefined
      ? link.write(bytes)
      : writing.then(() => link.write(bytes), () => link.write(bytes));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, FLUSH_TIMEOUT)));
    try {
      await Promise.race([written, timeout]);
    } catch {
      // The peer is gone already.
    } finally {
      clearTimeout(timer);
    }
  }

  #log(reason: CloseReason, error: unknown): void {
    const name = this.#connected ? this.id : "<unknown>";
    switch (reason) {
      case "disconnect":
        return this.#host.log(`Client ${name} disconnected.`);
      case "peer":
        return this.#host.log(`Client ${name} closed its connection.`);
      case "keepalive":
      case "connect-timeout":
        return this.#host.log(`Client ${name} has exceeded timeout, disconnecting.`);
      case "takeover":
        return this.#host.log(`Client ${name} already connected, closing old connection.`);
      case "io":
        return this.#host.log(`Socket error on client ${name}, disconnecting: ${error}`);
      case "protocol":
      case "refused":
      case "shutdown":
        return; // logged where the cause is known
    }
  }

  /** Closes for a protocol error; under 5.0 with DISCONNECT `code` (0x82 Protocol Error unless told). */
  #protocolError(message: string, code?: number): void {
    const name = this.#connected ? this.id : "<unknown>";
    this.#host.log(`Client ${name} disconnected due to protocol error: ${message}.`);
    this.#disconnectCode = code;
    this.close("protocol");
  }

  // ---- reading ----

  /**
   * Reads chunks and frames them here rather than through streams: an idle
   * connection then holds one pending read, not a pipeline of streams.
   */
  async #readLoop(): Promise<void> {
    const link = this.#link;
    const intake = this.#intake;
    const framer = this.#framer;
    try {
      while (!this.#closed) {
        const chunk = await link.read();
        if (this.#closed) return;
        if (chunk === null) {
          framer.end(); // TRUNCATED_PACKET when the client stopped inside a packet
          return this.close("peer");
        }
        const bytes = intake.push(chunk);
        if (bytes === undefined) continue; // the CONNECT is not complete yet
        let used = framer.push(bytes, this.#receive);
        while (true) {
          const pending = this.#pending;
          if (pending !== undefined) {
            // Packets are handled in order: the next waits for this one's hook to answer.
            this.#pending = undefined;
            await pending;
          }
          if (this.#closed) return;
          this.#armTimer();
          // An acknowledgement may have opened the window for retained messages still to send.
          if (this.#session !== undefined && this.#retained.pending(this.#session)) this.wake();
          if (this.#outbox.length >= OUTBOX_HIGH) {
            // The client does not read its acknowledgements: stop reading its requests.
            this.#drained = Promise.withResolvers();
            await this.#drained.promise;
            this.#drained = undefined;
            if (this.#closed) return;
          }
          if (used) break;
          used = framer.resume(this.#receive);
        }
      }
    } catch (err) {
      if (this.#closed) return;
      if (err instanceof ProtocolError) return this.#onDecodeError(err);
      this.close("io", err);
    }
  }

  /**
   * Hands one framed packet to the machine. Stops the framing (returns false)
   * while the machine's answer is pending (a hook), once the client has too
   * many answers unread, or once the connection closed.
   */
  readonly #receive = (packet: Packet): boolean => {
    if (this.#closed) return false;
    const pending = this.#machine.receive(packet, now());
    if (pending !== undefined) {
      this.#pending = pending;
      return false;
    }
    return this.#outbox.length < OUTBOX_HIGH;
  };

  #onDecodeError(err: ProtocolError): void | Promise<void> {
    if (!this.#connected && this.#session === undefined && err.packetType === "connect") {
      // The CONNECT was read but is refused with a return code.
      if (err.code === "UNSUPPORTED_PROTOCOL") return this.#refuse(1, err.message); // MQTT-3.1.2-2
      if (err.code === "INVALID_CLIENT_ID") return this.#refuse(2, err.message); // MQTT-3.1.3-8
    }
    // MQTT 5.0 section 4.13: 0x95 Packet too large; any other decoding error is 0x81 Malformed.
    this.#protocolError(
      `${err.code}, ${err.message}`,
      err.code === "PACKET_TOO_LARGE" ? 0x95 : 0x81,
    );
  }

  // ---- the machine's handler: what the server decides ----

  /** @internal The machine's output: queues a packet for the write loop. */
  send(packet: Packet): void {
    this.#outbox.push(packet);
    this.wake();
  }

  /** @internal CONNECT arrived. */
  connect(packet: ConnectPacket): Promise<void> {
    return this.#onConnect(packet);
  }

  /** @internal A PUBLISH arrived: authorize it, then let the machine acknowledge it. */
  publish(packet: PublishPacket): void | Promise<void> {
    const options = this.#options;
    if (packet.qos > options.maxQoS) {
      // MQTT-3.2.2-12 (5.0): 0x9B QoS not supported.
      return this.#protocolError(`QoS ${packet.qos} PUBLISH over maxQoS ${options.maxQoS}`, 0x9b);
    }
    if (packet.retain && !options.retainAvailable) {
      // MQTT-3.2.2-15 (5.0): 0x9A Retain not supported.
      return this.#protocolError("retained PUBLISH while retainAvailable is false", 0x9a);
    }
    if (reservedTopic(packet.topic)) {
      this.#host.log(`Denied PUBLISH from ${this.id} to "${packet.topic}".`);
      return this.#machine.acceptPublish(packet, false, now(), this.#notAuthorized);
    }
    const hook = options.authorizePublish;
    if (hook === undefined) return this.#machine.acceptPublish(packet, true, now());
    return this.#authorizePublish(packet, hook);
  }

  /** @internal Routes an accepted application message; under 5.0, 0x10 when nobody subscribed. */
  deliver(packet: PublishPacket): number | void {
    const routed = this.#host.router.publish({
      topic: packet.topic,
      payload: packet.payload,
      qos: packet.qos,
      retain: packet.retain,
      properties: packet.properties,
      publisher: this.#session,
    });
    if (routed === 0 && this.#version === 5) return 0x10; // No matching subscribers
  }

  /** The reason code of a refused PUBLISH's acknowledgement: 0x87 Not authorized under 5.0. */
  get #notAuthorized(): number | undefined {
    return this.#version === 5 ? 0x87 : undefined;
  }

  /** @internal A SUBSCRIBE arrived. */
  subscribe(packet: SubscribePacket): Promise<void> {
    return this.#onSubscribe(packet);
  }

  /** @internal An UNSUBSCRIBE arrived. */
  unsubscribe(packet: UnsubscribePacket): void {
    const session = this.#session!;
    const codes: UnsubackReasonCode[] = [];
    for (const filter of packet.filters) {
      // MQTT 5.0: 0x11 No subscription existed (MQTT-3.11.3-1: one per filter, in order).
      codes.push(this.#host.router.unsubscribe(session, filter) ? 0x00 : 0x11);
    }
    // MQTT-3.10.4-4/-5: UNSUBACK even when nothing matched.
    if (this.#version === 5) {
      this.send({ type: "unsuback", packetId: packet.packetId, reasonCodes: codes });
    } else this.send({ type: "unsuback", packetId: packet.packetId });
  }

  /** @internal The client sent DISCONNECT. */
  disconnected(packet: DisconnectPacket): void {
    const session = this.#session;
    const expiry = packet.properties?.sessionExpiryInterval;
    if (expiry !== undefined && session !== undefined) {
      if (session.expiryInterval === 0 && expiry !== 0) {
        // MQTT-3.14.2-2 (5.0): a session that ends with its connection cannot be kept now.
        return this.#protocolError("DISCONNECT sets a Session Expiry Interval after 0", 0x82);
      }
      session.expiryInterval = expiry >= 0xffff_ffff ? Infinity : expiry;
      session.clean = expiry === 0;
    }
    // MQTT-3.1.2-10; MQTT 5.0: reason 0x04 Disconnect with Will Message keeps the will.
    if (packet.reasonCode !== 0x04) this.#will = undefined;
    this.close("disconnect");
  }

  /** @internal The machine ends the connection. */
  abort(reason: ServerCloseReason, message: string, code?: number): void {
    if (reason === "protocol") this.#protocolError(message, code);
    else this.close(reason);
  }

  /** @internal A QoS flow to this client failed (it answered a QoS 2 PUBLISH with PUBACK). */
  flowFailed(error: MqttError): void {
    this.#host.log(`Client ${this.id}: ${error.message}.`);
  }

  #armTimer(): void {
    if (!this.#closed) this.#timer.arm(this.#machine.deadline);
  }

  #onConnect(packet: ConnectPacket): Promise<void> {
    const version = packet.protocolLevel === 5 ? 5 : 4;
    // What follows the CONNECT is read and written at its level.
    this.#version = version;
    this.#codec = { protocolVersion: version };
    this.#framer.protocolVersion = version;
    const props = packet.properties;
    let clientId = packet.clientId;
    // MQTT-3.1.3-6: an empty identifier (with clean session, checked by the codec) gets one;
    // 5.0 (MQTT-3.1.3-6/-7): unique, and told to the client as Assigned Client Identifier.
    const assigned = clientId.length === 0;
    if (assigned) clientId = `auto-${crypto.randomUUID()}`;
    if (version === 5) {
      const refused = connectRefusal(packet, this.#options);
      if (refused !== undefined) return this.#refuse(refused.code, refused.why, clientId);
      const method = props?.authenticationMethod;
      if (method !== undefined) {
        // MQTT 5.0 section 4.12: the exchange runs before CONNACK; `#admit` follows its success.
        this.#exchange = new AuthExchange(method);
        this.#pendingConnect = { packet, clientId, assigned };
        return this.#authStep(props?.authenticationData);
      }
    }
    return this.#admit(packet, clientId, assigned);
  }

  /** Admits an authenticated CONNECT (`auth`: the CONNACK properties of an enhanced exchange). */
  async #admit(
    packet: ConnectPacket,
    clientId: string,
    assigned: boolean,
    auth?: ConnackProperties,
  ): Promise<void> {
    const options = this.#options;
    const version = this.#version;
    const props = packet.properties;
    if (options.authenticate !== undefined && auth === undefined) {
      let ok: boolean;
      try {
        const answer = await this.#untilClosed(options.authenticate({
          clientId,
          username: packet.username,
          password: packet.password,
          remoteAddress: this.remoteAddress,
        }));
        if (answer === CLOSED) return;
        ok = answer;
      } catch (err) {
        this.#host.log(`Authentication hook failed for client ${clientId}: ${err}`);
        return this.#refuse(3, "authentication hook failed", clientId);
      }
      if (this.#closed) return;
      if (ok !== true) return this.#refuse(4, "authenticate hook said no", clientId);
    }
    // MQTT-3.2.2-21/-22: 5.0 can tell the client the keep-alive to use instead; 3.1.1 cannot.
    const agreed = negotiateKeepAlive(packet.keepAlive, version, options.maxKeepAlive);
    if (agreed === undefined) {
      return this.#refuse(2, `keep-alive ${packet.keepAlive} s over maxKeepAlive`, clientId);
    }
    const { keepAlive, serverKeepAlive } = agreed;
    const router = this.#host.router;
    try {
      await this.#host.ready;
    } catch (err) {
      this.#host.log(`Persistence failed for client ${clientId}: ${err}`);
      return this.#refuse(3, "the broker cannot keep the session", clientId);
    }
    if (this.#closed) return;
    const held = router.sessions.get(clientId);
    if (held !== undefined && held.username !== packet.username) {
      // A session belongs to the user who opened it: another user may neither resume it nor
      // end it (and its connection) by taking its client identifier.
      return this.#refuse(5, "client identifier in use by another user", clientId);
    }
    if (held?.owner !== undefined) held.owner.evict(); // MQTT-3.1.4-2
    // 3.1.1: clean session decides both; 5.0: Clean Start, and the Session Expiry Interval
    // (absent is 0: the session ends with the connection, MQTT 5.0 section 3.1.2.11.2).
    const expiry = version === 4
      ? (packet.clean ? 0 : Infinity)
      : (props?.sessionExpiryInterval ?? 0);
    let opened;
    try {
      // With persistence, a session that outlives its connection is kept on disk (whatever
      // Clean Start said: it only decides whether a held session is resumed).
      opened = router.openSession(clientId, packet.clean, packet.username, expiry);
    } catch (err) {
      this.#host.log(`Persistence failed for client ${clientId}: ${err}`);
      return this.#refuse(3, "the broker cannot keep the session", clientId);
    }
    const { session, present } = opened;
    this.id = clientId;
    this.username = packet.username;
    const will = packet.will;
    // Kept for the connection's lifetime: its own buffer, not a view of a network read.
    this.#will = will === undefined ? undefined : { ...will, payload: will.payload.slice() };
    this.#session = session;
    this.#connected = true;
    // MQTT-3.2.2-1/-2/-3: session present only when a held session is resumed. The machine
    // sends CONNACK, then resends what was in flight (MQTT-4.4.0-1).
    if (version === 4) {
      const connack = { type: "connack", sessionPresent: present, returnCode: 0 } as const;
      this.#machine.accept(session.state, connack, keepAlive, now());
    } else {
      const connack: ConnackPacket = { type: "connack", sessionPresent: present, reasonCode: 0 };
      const properties = {
        ...connackProperties(options, packet, this, assigned, serverKeepAlive),
        ...auth,
      };
      if (Object.keys(properties).length > 0) connack.properties = properties;
      // MQTT-3.1.2-26/-27 (5.0): aliases only up to the client's maximum, none when absent.
      this.#aliases = new OutgoingTopicAliases(props?.topicAliasMaximum ?? 0);
      this.#machine.accept(session.state, connack, keepAlive, now(), {
        sendQuota: props?.receiveMaximum ?? 65_535, // MQTT-3.3.4-9
        receiveMaximum: options.maxInflight,
        topicAliasMaximum: options.maxTopicAlias,
      });
      // MQTT-3.1.2-24 (5.0): a message larger than the client's maximum is dropped for it.
      const max = props?.maximumPacketSize;
      if (max !== undefined) this.#machine.flows!.refuse = clientPacketLimit(max);
    }
    this.#connackSent = true;
    const user = packet.username === undefined ? "" : `, u'${packet.username}'`;
    this.#host.log(
      `New client connected from ${this.remoteAddress ?? "unknown"} as ${clientId} ` +
        `(c${packet.clean ? 1 : 0}, k${packet.keepAlive}${user}).`,
    );
    session.owner = this;
    this.wake();
  }

  /** @internal MQTT 5.0 AUTH from the client: a step of the exchange, or a re-authentication. */
  auth(packet: AuthPacket): void | Promise<void> {
    const exchange = this.#exchange;
    // MQTT-4.12.0-1 / section 4.12.1: the method of the CONNECT, and only with one.
    const wrong = exchange === undefined
      ? `AUTH with method ${packet.properties?.authenticationMethod}, not that of the CONNECT`
      : exchange.receive(packet, this.#connected);
    if (wrong !== undefined) return this.#protocolError(wrong, 0x82);
    return this.#authStep(packet.properties?.authenticationData);
  }

  /** Runs one step of the exchange through `enhancedAuthenticate` and answers it. */
  async #authStep(data: Uint8Array | undefined): Promise<void> {
    const exchange = this.#exchange!;
    const hook = this.#options.enhancedAuthenticate!;
    const pending = this.#pendingConnect;
    let answer: EnhancedAuthResult | typeof CLOSED;
    try {
      answer = await this.#untilClosed(hook(exchange.context(data, {
        clientId: pending?.clientId ?? this.id,
        username: pending?.packet.username ?? this.username,
        remoteAddress: this.remoteAddress,
      })));
    } catch (err) {
      this.#host.log(`Enhanced authentication hook failed for client ${this.id}: ${err}`);
      answer = { result: "fail", reasonCode: 0x88 };
    }
    if (answer === CLOSED || this.#closed) return;
    const outcome = exchange.settle(answer);
    if (outcome.next === "challenge") {
      this.send(outcome.packet); // section 4.12
      return;
    }
    if (outcome.next === "success") {
      const properties = outcome.properties;
      if (pending === undefined) {
        this.send({ type: "auth", reasonCode: 0x00, properties }); // re-authenticated
        return;
      }
      this.#pendingConnect = undefined;
      return this.#admit(pending.packet, pending.clientId, pending.assigned, properties);
    }
    const code = outcome.reasonCode;
    if (pending !== undefined) {
      // MQTT-4.12.0-4: a CONNACK of 0x80 or more, then close.
      return this.#refuse(code, "enhanced authentication failed", pending.clientId);
    }
    // Section 4.12.1: a failed re-authentication ends the connection with DISCONNECT.
    this.#host.log(`Client ${this.id} failed re-authentication.`);
    this.#disconnectCode = code;
    this.close("protocol");
  }

  /**
   * Refuses the CONNECT, then closes (MQTT-3.2.2-5): a 3.1.1 return code, or
   * a 5.0 reason code (0x80 and up) for a 5.0 CONNECT; a 3.1.1 code is
   * translated for a 5.0 client.
   */
  async #refuse(code: number, why: string, clientId = "<unknown>"): Promise<void> {
    const { packet, name } = refusingConnack(code, this.#version);
    this.#host.log(`Client ${clientId} refused: ${name} (CONNACK ${code}, ${why}).`);
    await this.#writeLast(packet);
    this.close("refused");
  }

  async #authorizePublish(
    packet: PublishPacket,
    hook: NonNullable<ResolvedBrokerOptions["authorizePublish"]>,
  ): Promise<void> {
    let allowed = false;
    try {
      allowed = (await this.#untilClosed(hook(this, packet.topic))) === true;
    } catch (err) {
      this.#host.log(`Publish authorization hook failed for client ${this.id}: ${err}`);
    }
    if (this.#closed) return;
    if (!allowed) this.#host.log(`Denied PUBLISH from ${this.id} to "${packet.topic}".`);
    this.#machine.acceptPublish(packet, allowed, now(), this.#notAuthorized);
  }

  async #onSubscribe(packet: SubscribePacket): Promise<void> {
    const options = this.#options;
    const hook = options.authorizeSubscribe;
    const returnCodes: SubackReturnCode[] = [];
    const reasonCodes: SubackReasonCode[] = [];
    const granted = new Map<string, { grant: Grant; retainHandling: 0 | 1 | 2 }>();
    const identifier = packet.properties?.subscriptionIdentifier;
    for (const request of packet.subscriptions) {
      const { filter, qos: requested } = request;
      if (this.#version === 5) {
        const shareError = sharedFilterError(filter);
        if (shareError !== undefined) {
          return this.#protocolError(shareError, 0x82);
        }
        if (request.noLocal && filter.startsWith("$share/")) {
          // MQTT-3.8.3-4: No Local on a shared subscription is a protocol error.
          return this.#protocolError(`No Local on the shared subscription "${filter}"`, 0x82);
        }
      }
      let qos: QoS | false = requested < options.maxQoS ? requested : options.maxQoS;
      if (hook !== undefined) {
        try {
          const answer = await this.#untilClosed(hook(this, filter, qos));
          if (answer === CLOSED) return;
          qos = answer === false ? false : (Math.min(answer, qos) as QoS);
        } catch (err) {
          this.#host.log(`Subscribe authorization hook failed for client ${this.id}: ${err}`);
          qos = false;
        }
        if (this.#closed) return;
      }
      if (qos === false || !(qos === 0 || qos === 1 || qos === 2)) {
        this.#host.log(`Denied SUBSCRIBE from ${this.id} to "${filter}".`);
        returnCodes.push(0x80);
        reasonCodes.push(0x87); // 5.0: Not authorized
        continue;
      }
      returnCodes.push(qos);
      reasonCodes.push(qos);
      const grant: { -readonly [K in keyof Grant]: Grant[K] } = { qos };
      if (request.noLocal) grant.noLocal = true;
      if (request.retainAsPublished) grant.retainAsPublished = true;
      if (request.retainHandling) grant.retainHandling = request.retainHandling;
      if (identifier !== undefined) grant.identifier = identifier;
      granted.set(filter, { grant, retainHandling: request.retainHandling ?? 0 });
    }
    const session = this.#session!;
    const router = this.#host.router;
    const send: [string, Grant][] = [];
    for (const [filter, { grant, retainHandling }] of granted) {
      const existed = router.subscribe(session, filter, grant);
      // MQTT 5.0 section 3.3.1.3: Retain Handling 1 sends them for a new subscription only,
      // 2 never; shared subscriptions get none (section 4.8.2).
      if (retainHandling === 2 || (retainHandling === 1 && existed)) continue;
      if (filter.startsWith("$share/") && this.#version === 5) continue;
      send.push([filter, grant]);
    }
    // MQTT-3.8.4-1/-5: one return code per filter, in order.
    if (this.#version === 5) this.send({ type: "suback", packetId: packet.packetId, reasonCodes });
    else this.send({ type: "suback", packetId: packet.packetId, returnCodes });
    // MQTT-3.3.1-6: each granted filter's retained messages, after the SUBACK, taken as the
    // client's window allows instead of all at once into a queue that drops when full.
    // MQTT-3.8.4-4: as a sequence of SUBSCRIBEs, so overlapping filters each send theirs.
    for (const [filter, grant] of send) {
      this.#retained.add(session, filter, grant);
    }
  }

  /** A hook's answer, or {@linkcode CLOSED} if the connection closes first. */
  #untilClosed<T>(answer: T | Promise<T>): T | Promise<T | typeof CLOSED> {
    if (!(answer instanceof Promise)) return answer;
    // Not Promise.race against a promise that lives as long as the connection: each race would
    // leave a reaction on it, a leak per hook call until the connection ends.
    return new Promise<T | typeof CLOSED>((resolve, reject) => {
      this.#abandonHook = resolve;
      answer.then(
        (value) => {
          this.#abandonHook = undefined;
          resolve(value);
        },
        (err) => {
          this.#abandonHook = undefined;
          reject(err);
        },
      );
    });
  }

  // ---- writing ----

  /** Runs {@linkcode #writeOut}; made once, as `wake` schedules it often. */
  readonly #flush = (): void => void this.#writeOut();

  /**
   * Writes what is ready, a chunk at a time, until nothing is: started by
   * {@linkcode wake} rather than waiting in a loop, so an idle connection
   * holds no suspended writer.
   */
  async #writeOut(): Promise<void> {
    const link = this.#link;
    try {
      while (!this.#closed) {
        const chunk = this.#nextChunk();
        if (chunk === undefined) break;
        // One write at a time: what is routed meanwhile goes into the next chunk.
        const written = link.write(chunk);
        this.#writing = written;
        await written;
        this.#writing = undefined;
      }
    } catch (err) {
      this.close("io", err);
    }
    this.#flushing = false;
  }

  /** Encodes the next answers and deliveries into one chunk, or undefined when idle. */
  #nextChunk(): Uint8Array | undefined {
    const packets: Packet[] = [];
    let bytes = 0;
    const outbox = this.#outbox;
    let deliveredFirst = false;
    while (bytes < BATCH_BYTES) {
      let packet = outbox.peek();
      if (packet === undefined) break;
      if (packet.type === "publish") packet = this.#wire(packet);
      if (!deliveredFirst && (packet.type === "puback" || packet.type === "pubrec")) {
        // Deliveries routed before this acknowledgement of an incoming PUBLISH go out first, as
        // Mosquitto does: a client subscribed to its own topic has the message by the time its
        // publish is acknowledged (else a subscription ended right after the publish resolved
        // could miss it, and the client would hold it for the next one). Once per chunk, so a
        // stream of deliveries cannot hold acknowledgements back.
        deliveredFirst = true;
        bytes = this.#takeDeliveries(packets, bytes);
      }
      outbox.shift();
      packets.push(packet);
      bytes += encodedLength(packet, this.#codec);
    }
    if (this.#drained !== undefined && outbox.length < OUTBOX_HIGH / 2) this.#drained.resolve();
    bytes = this.#takeDeliveries(packets, bytes);
    if (packets.length === 0) return undefined;
    const codec = this.#codec;
    if (packets.length === 1) return encodePacket(packets[0], codec);
    const chunk = new Uint8Array(bytes);
    let offset = 0;
    for (const packet of packets) offset += encodeInto(packet, chunk, offset, codec);
    return chunk;
  }

  /**
   * A PUBLISH as this client gets it on the wire: without properties for a
   * 3.1.1 client (a message from a 5.0 client loses them), with a Topic Alias
   * for a 5.0 client that allows them. The message kept for resending keeps
   * its topic (MQTT-3.3.2-7: aliases are of this connection only).
   */
  #wire(packet: PublishPacket): PublishPacket {
    if (this.#version === 4) {
      if (packet.properties === undefined) return packet;
      const { properties: _, ...bare } = packet;
      return bare;
    }
    return this.#aliases?.apply(packet) ?? packet;
  }

  /**
   * Appends the session's waiting messages that may be sent now (in order, within the in-flight
   * window, up to the batch size) to `packets`; returns the new byte count.
   */
  #takeDeliveries(packets: Packet[], bytes: number): number {
    const session = this.#session;
    const flows = this.#machine.flows;
    if (session === undefined || session.owner !== this || flows === undefined) return bytes;
    while (bytes < BATCH_BYTES) {
      // In order and within the window (MQTT-4.6.0-6): a QoS 1/2 message at the head waiting
      // for a window slot holds back everything behind it.
      const entry = flows.takeNext(now());
      if (entry === undefined) {
        if (this.#retained.fill(session, now())) continue;
        break;
      }
      const packet = this.#wire(entry.packet!);
      packets.push(packet);
      bytes += encodedLength(packet, this.#codec);
    }
    if (session.dropped > 0 && !this.#droppingLogged) {
      this.#droppingLogged = true;
      this.#host.log(`Outgoing messages are being dropped for client ${this.id}.`);
    }
    return bytes;
  }
}
