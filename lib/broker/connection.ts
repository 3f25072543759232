/**
 * One client connection of the embedded broker: the driver of a
 * {@linkcode ServerSession}. It reads packets into the machine, makes the
 * server's decisions (authentication, authorization, routing, subscriptions),
 * and writes answers and deliveries with backpressure.
 *
 * @module
 */
import { encodedLength, encodeInto, encodePacket } from "../codec/mod.ts";
import {
  CONNACK_RETURN_CODE_NAMES,
  type ConnackReturnCode,
  type ConnectPacket,
  type Packet,
  type PublishPacket,
  type QoS,
  type SubackReturnCode,
  type SubscribePacket,
  type UnsubscribePacket,
  type Will,
} from "../codec/packet.ts";
import { type MqttError, ProtocolError } from "../errors.ts";
import {
  type ServerCloseReason,
  ServerSession,
  type ServerSessionHandler,
} from "../session/server_session.ts";
import { DeadlineTimer } from "../util/deadline_timer.ts";
import { Queue } from "../util/queue.ts";
import { PacketReader } from "../streams/packet_reader.ts";
import type { Transport } from "../transports/transport.ts";
import { connectIntake, MAX_CONNECT_SIZE } from "./intake.ts";
import type { BrokerClient, ResolvedBrokerOptions } from "./options.ts";
import type { RetainedMessage } from "./retained.ts";
import type { Router } from "./router.ts";
import type { BrokerSession, SessionOwner } from "./session.ts";

/** What a connection needs from its broker. */
export interface ConnectionHost {
  readonly options: ResolvedBrokerOptions;
  readonly router: Router;
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
/** Retained messages moved into a session's queue at a time, when it has room. */
const RETAINED_BATCH = 32;
/** Topic levels a retained-message search looks at before it may pause. */
const RETAINED_STEPS = 1024;
/** Pauses allowed per write: past this many steps without a match, others run first. */
const RETAINED_PAUSES = 16;

/** Retained messages still to send for one granted filter. */
interface RetainedCursor {
  readonly messages: Iterator<RetainedMessage | undefined>;
  readonly granted: QoS;
}

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

const NOOP = (): void => {};
const now = (): number => performance.now();

/** What {@linkcode Connection.#untilClosed} gives when the connection closed first. */
const CLOSED: unique symbol = Symbol("closed");

/**
 * The broker's side of one network connection.
 *
 * @example
 * ```ts ignore
 * const connection = new Connection(host, transport, "127.0.0.1:50000");
 * connection.start();
 * await connection.done;
 * ```
 */
export class Connection implements SessionOwner, BrokerClient, ServerSessionHandler {
  /** Peer address, when the transport told it. */
  readonly remoteAddress: string | undefined;
  /** Settles once the connection is closed and its loops have stopped. */
  readonly done: Promise<void>;
  /** The client identifier; empty until CONNECT is accepted. */
  id = "";
  /** The user name from CONNECT, if any. */
  username: string | undefined = undefined;

  readonly #host: ConnectionHost;
  readonly #options: ResolvedBrokerOptions;
  readonly #transport: Transport;
  readonly #reader: ReadableStreamDefaultReader<Packet>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #outbox = new Queue<Packet>();
  readonly #machine: ServerSession;
  readonly #timer: DeadlineTimer;
  #session: BrokerSession | undefined = undefined;
  #will: Will | undefined = undefined;
  #closed = false;
  #connected = false;
  #wakeup: (() => void) | undefined = undefined;
  #drained: PromiseWithResolvers<void> | undefined = undefined;
  #loops: Promise<unknown> | undefined = undefined;
  #resolveDone!: () => void;
  /**
   * Settles the hook answer being awaited with {@linkcode CLOSED}, so a hook that never answers
   * cannot hold a loop once the connection closes. One at a time: packets are handled in order.
   */
  #abandonHook: ((closed: typeof CLOSED) => void) | undefined = undefined;
  /** Retained messages to send for new subscriptions, paced by the client's window. */
  readonly #retained: RetainedCursor[] = [];
  /** Resumes a retained-message search that paused to let other connections run. */
  #resumeTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  #droppingLogged = false;

  /** Wraps a transport; nothing is read until {@linkcode start}. */
  constructor(host: ConnectionHost, transport: Transport, remoteAddress?: string) {
    this.#host = host;
    this.#options = host.options;
    this.#transport = transport;
    this.remoteAddress = remoteAddress;
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
    const maxPacketSize = this.#options.maxPacketSize;
    this.#reader = transport.readable
      // Before CONNECT is accepted a client may make the broker hold only what it sent.
      .pipeThrough(connectIntake(Math.min(maxPacketSize, MAX_CONNECT_SIZE)))
      .pipeThrough(new PacketReader({ maxPacketSize }))
      .getReader();
    this.#writer = transport.writable.getWriter();
    this.#machine = new ServerSession(this.#options, this);
    this.#timer = new DeadlineTimer(now, () => {
      this.#machine.tick(now());
      this.#armTimer();
    });
  }

  /** Whether CONNECT was accepted and the connection is still open. */
  get connected(): boolean {
    return this.#connected && !this.#closed;
  }

  /** Starts the read and write loops and the CONNECT deadline. */
  start(): void {
    this.#machine.start(now());
    this.#armTimer();
    this.#loops = Promise.all([this.#readLoop(), this.#writeLoop()]);
  }

  /** Tells the write loop that the session has messages to send. */
  wake(): void {
    const wakeup = this.#wakeup;
    if (wakeup !== undefined) {
      this.#wakeup = undefined;
      wakeup();
    }
  }

  /** Another connection took over this client identifier (MQTT-3.1.4-2). */
  evict(): void {
    this.close("takeover");
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
    this.wake();
    this.#drained?.resolve();
    this.#abandonHook?.(CLOSED);
    this.#retained.length = 0;
    clearTimeout(this.#resumeTimer);
    try {
      this.#transport.close();
    } catch {
      // Already closed by the peer: nothing left to release.
    }
    this.#reader.cancel().catch(NOOP);
    this.#writer.abort().catch(NOOP);
    const session = this.#session;
    if (session !== undefined && session.owner === this) {
      session.owner = undefined;
      if (session.clean) this.#host.router.discard(session); // MQTT-3.1.2-6
    }
    this.#log(reason, error);
    const will = this.#will;
    this.#will = undefined;
    if (will !== undefined && reason !== "disconnect" && reason !== "shutdown") {
      this.#host.publishWill(will, this);
    }
    this.#host.closed(this);
    const finish = () => this.#resolveDone();
    if (this.#loops === undefined) finish();
    else this.#loops.then(finish, finish);
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

  #protocolError(message: string): void {
    const name = this.#connected ? this.id : "<unknown>";
    this.#host.log(`Client ${name} disconnected due to protocol error: ${message}.`);
    this.close("protocol");
  }

  // ---- reading ----

  async #readLoop(): Promise<void> {
    const reader = this.#reader;
    try {
      while (!this.#closed) {
        const { value, done } = await reader.read();
        if (done) return this.close("peer");
        if (this.#closed) return;
        const pending = this.#machine.receive(value, now());
        if (pending !== undefined) await pending;
        this.#armTimer();
        // An acknowledgement may have opened the window for retained messages still to send.
        if (this.#retained.length > 0) this.wake();
        if (this.#outbox.length >= OUTBOX_HIGH && !this.#closed) {
          // The client does not read its acknowledgements: stop reading its requests.
          this.#drained = Promise.withResolvers();
          await this.#drained.promise;
          this.#drained = undefined;
        }
      }
    } catch (err) {
      if (this.#closed) return;
      if (err instanceof ProtocolError) return this.#onDecodeError(err);
      this.close("io", err);
    }
  }

  #onDecodeError(err: ProtocolError): void | Promise<void> {
    if (!this.#connected && this.#session === undefined && err.packetType === "connect") {
      // The CONNECT was read but is refused with a return code.
      if (err.code === "UNSUPPORTED_PROTOCOL") return this.#refuse(1, err.message); // MQTT-3.1.2-2
      if (err.code === "INVALID_CLIENT_ID") return this.#refuse(2, err.message); // MQTT-3.1.3-8
    }
    this.#protocolError(`${err.code}, ${err.message}`);
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
      return this.#protocolError(`QoS ${packet.qos} PUBLISH over maxQoS ${options.maxQoS}`);
    }
    if (packet.retain && !options.retainAvailable) {
      return this.#protocolError("retained PUBLISH while retainAvailable is false");
    }
    if (reservedTopic(packet.topic)) {
      this.#host.log(`Denied PUBLISH from ${this.id} to "${packet.topic}".`);
      return this.#machine.acceptPublish(packet, false, now());
    }
    const hook = options.authorizePublish;
    if (hook === undefined) return this.#machine.acceptPublish(packet, true, now());
    return this.#authorizePublish(packet, hook);
  }

  /** @internal Routes an accepted application message. */
  deliver(packet: PublishPacket): void {
    this.#host.router.publish({
      topic: packet.topic,
      payload: packet.payload,
      qos: packet.qos,
      retain: packet.retain,
    });
  }

  /** @internal A SUBSCRIBE arrived. */
  subscribe(packet: SubscribePacket): Promise<void> {
    return this.#onSubscribe(packet);
  }

  /** @internal An UNSUBSCRIBE arrived. */
  unsubscribe(packet: UnsubscribePacket): void {
    const session = this.#session!;
    for (const filter of packet.filters) this.#host.router.unsubscribe(session, filter);
    // MQTT-3.10.4-4/-5: UNSUBACK even when nothing matched.
    this.send({ type: "unsuback", packetId: packet.packetId });
  }

  /** @internal The client sent DISCONNECT. */
  disconnected(): void {
    this.#will = undefined; // MQTT-3.1.2-10
    this.close("disconnect");
  }

  /** @internal The machine ends the connection. */
  abort(reason: ServerCloseReason, message: string): void {
    if (reason === "protocol") this.#protocolError(message);
    else this.close(reason);
  }

  /** @internal A QoS flow to this client failed (it answered a QoS 2 PUBLISH with PUBACK). */
  flowFailed(error: MqttError): void {
    this.#host.log(`Client ${this.id}: ${error.message}.`);
  }

  #armTimer(): void {
    if (!this.#closed) this.#timer.arm(this.#machine.deadline);
  }

  async #onConnect(packet: ConnectPacket): Promise<void> {
    const options = this.#options;
    let clientId = packet.clientId;
    // MQTT-3.1.3-6: an empty identifier (with clean session, checked by the codec) gets one.
    if (clientId.length === 0) clientId = `auto-${crypto.randomUUID()}`;
    if (options.authenticate !== undefined) {
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
    const keepAlive = packet.keepAlive;
    if (
      options.maxKeepAlive < 65_535 && (keepAlive > options.maxKeepAlive || keepAlive === 0)
    ) {
      // Mosquitto's max_keepalive: 3.1.1 cannot tell the client a lower value, so refuse.
      return this.#refuse(2, `keep-alive ${keepAlive} s over maxKeepAlive`, clientId);
    }
    const router = this.#host.router;
    let store;
    try {
      await this.#host.ready;
      if (this.#closed) return;
      const persistence = router.persistence;
      if (!packet.clean && persistence !== undefined) {
        const opened = await persistence.sessionStore(clientId, packet.username);
        const other = router.sessions.get(clientId);
        if (this.#closed || (other !== undefined && other.username !== packet.username)) {
          if (opened.created) persistence.dropSession(clientId);
          if (this.#closed) return;
        }
        store = opened.store;
      }
    } catch (err) {
      this.#host.log(`Persistence failed for client ${clientId}: ${err}`);
      return this.#refuse(3, "the broker cannot keep the session", clientId);
    }
    const held = router.sessions.get(clientId);
    if (held !== undefined && held.username !== packet.username) {
      // A session belongs to the user who opened it: another user may neither resume it nor
      // end it (and its connection) by taking its client identifier.
      return this.#refuse(5, "client identifier in use by another user", clientId);
    }
    if (held?.owner !== undefined) held.owner.evict(); // MQTT-3.1.4-2
    const { session, present } = router.openSession(
      clientId,
      packet.clean,
      packet.username,
      store,
    );
    this.id = clientId;
    this.username = packet.username;
    const will = packet.will;
    // Kept for the connection's lifetime: its own buffer, not a view of a network read.
    this.#will = will === undefined ? undefined : { ...will, payload: will.payload.slice() };
    this.#session = session;
    this.#connected = true;
    // MQTT-3.2.2-1/-2/-3: session present only when a held session is resumed. The machine
    // sends CONNACK, then resends what was in flight (MQTT-4.4.0-1).
    const connack = { type: "connack", sessionPresent: present, returnCode: 0 } as const;
    this.#machine.accept(session.state, connack, packet.keepAlive, now());
    const user = packet.username === undefined ? "" : `, u'${packet.username}'`;
    this.#host.log(
      `New client connected from ${this.remoteAddress ?? "unknown"} as ${clientId} ` +
        `(c${packet.clean ? 1 : 0}, k${packet.keepAlive}${user}).`,
    );
    session.owner = this;
    this.wake();
  }

  /** Refuses the CONNECT with a return code, then closes (MQTT-3.2.2-5). */
  async #refuse(code: ConnackReturnCode, why: string, clientId = "<unknown>"): Promise<void> {
    this.#host.log(
      `Client ${clientId} refused: ${CONNACK_RETURN_CODE_NAMES[code]} (CONNACK ${code}, ${why}).`,
    );
    const written = this.#writer.write(
      encodePacket({ type: "connack", sessionPresent: false, returnCode: code }),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, FLUSH_TIMEOUT)));
    try {
      await Promise.race([written, timeout]);
    } catch {
      // The peer is gone already.
    } finally {
      clearTimeout(timer);
    }
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
    this.#machine.acceptPublish(packet, allowed, now());
  }

  async #onSubscribe(packet: SubscribePacket): Promise<void> {
    const options = this.#options;
    const hook = options.authorizeSubscribe;
    const returnCodes: SubackReturnCode[] = [];
    const granted = new Map<string, QoS>();
    for (const { filter, qos: requested } of packet.subscriptions) {
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
        continue;
      }
      returnCodes.push(qos);
      granted.set(filter, qos);
    }
    const session = this.#session!;
    const router = this.#host.router;
    for (const [filter, qos] of granted) router.subscribe(session, filter, qos);
    // MQTT-3.8.4-1/-5: one return code per filter, in order.
    this.send({ type: "suback", packetId: packet.packetId, returnCodes });
    // MQTT-3.3.1-6: each granted filter's retained messages, after the SUBACK, taken as the
    // client's window allows instead of all at once into a queue that drops when full.
    // MQTT-3.8.4-4: as a sequence of SUBSCRIBEs, so overlapping filters each send theirs.
    for (const [filter, qos] of granted) {
      this.#retained.push({ messages: router.retainedFor(filter, RETAINED_STEPS), granted: qos });
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

  async #writeLoop(): Promise<void> {
    const writer = this.#writer;
    try {
      while (!this.#closed) {
        await writer.ready;
        if (this.#closed) return;
        const chunk = this.#nextChunk();
        if (chunk === undefined) {
          await new Promise<void>((resolve) => (this.#wakeup = resolve));
          continue;
        }
        writer.write(chunk).catch(NOOP); // a failed write rejects `ready` next time round
      }
    } catch (err) {
      this.close("io", err);
    }
  }

  /** Encodes the next answers and deliveries into one chunk, or undefined when idle. */
  #nextChunk(): Uint8Array | undefined {
    const packets: Packet[] = [];
    let bytes = 0;
    const outbox = this.#outbox;
    let deliveredFirst = false;
    while (bytes < BATCH_BYTES) {
      const packet = outbox.peek();
      if (packet === undefined) break;
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
      bytes += encodedLength(packet);
    }
    if (this.#drained !== undefined && outbox.length < OUTBOX_HIGH / 2) this.#drained.resolve();
    bytes = this.#takeDeliveries(packets, bytes);
    if (packets.length === 0) return undefined;
    if (packets.length === 1) return encodePacket(packets[0]);
    const chunk = new Uint8Array(bytes);
    let offset = 0;
    for (const packet of packets) offset += encodeInto(packet, chunk, offset);
    return chunk;
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
      const entry = flows.takeNext();
      if (entry === undefined) {
        if (this.#queueRetained(session)) continue;
        break;
      }
      const packet = entry.packet!;
      packets.push(packet);
      bytes += encodedLength(packet);
    }
    if (session.dropped > 0 && !this.#droppingLogged) {
      this.#droppingLogged = true;
      this.#host.log(`Outgoing messages are being dropped for client ${this.id}.`);
    }
    return bytes;
  }

  /**
   * Moves retained messages still to send into the session's queue while it holds fewer than a
   * batch; returns whether any moved. Called when nothing else can be sent, so retained
   * messages go out as fast as the client acknowledges them and never overflow its queue.
   */
  #queueRetained(session: BrokerSession): boolean {
    const cursors = this.#retained;
    const room = Math.min(RETAINED_BATCH, this.#options.maxQueuedMessages) - session.queued;
    let moved = 0;
    let pauses = 0;
    while (cursors.length > 0 && moved < room) {
      const cursor = cursors[0];
      const next = cursor.messages.next();
      if (next.done) {
        cursors.shift();
        continue;
      }
      const message = next.value;
      if (message === undefined) {
        // A long search (say 2,000 filters like "r/+/x" over 100,000 retained topics "r/…")
        // must not hold the event loop: let the other connections run, then go on.
        if (++pauses < RETAINED_PAUSES) continue;
        this.#resumeTimer ??= setTimeout(() => {
          this.#resumeTimer = undefined;
          this.wake();
        }, 0);
        break;
      }
      // MQTT-3.3.1-8: RETAIN set; QoS the lower of the message's and the grant's.
      const qos = (message.qos < cursor.granted ? message.qos : cursor.granted) as QoS;
      session.enqueue({ topic: message.topic, payload: message.payload, qos, retain: true });
      moved++;
    }
    return moved > 0;
  }
}
