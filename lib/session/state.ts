/**
 * The MQTT session state that outlives one network connection, the same for
 * the client's and the broker's side: packet identifiers, outgoing QoS 1/2
 * messages in flight or waiting for a window slot (with their completion
 * callbacks), and the identifiers of incoming QoS 2 messages not yet released.
 * What only a client keeps (pending SUBSCRIBE/UNSUBSCRIBE, the subscriptions
 * to re-register) is in `client_state.ts`.
 *
 * Every change to state that must survive a restart goes through a method
 * here (`addInflight`, `release`, `complete`, `addIncoming`, ...), so a
 * durable store can later observe each change in one place.
 *
 * @module
 */
import type { PublishPacket } from "../codec/packet.ts";
import { utf8Length } from "../codec/utf8.ts";
import { MqttError } from "../errors.ts";
import type { InflightRecord, PublishRecord, Store, StoredSession } from "../store/store.ts";
import { emptyMap, emptySet, isEmptyStandIn } from "../util/empty.ts";
import { Queue } from "../util/queue.ts";
import { AckQueue } from "./acks.ts";
import type { OutgoingMessage, PublishAck, PublishCallback } from "./types.ts";

/** Largest packet identifier (identifiers are 16-bit and non-zero, MQTT-2.3.1-1). */
export const MAX_PACKET_ID = 65535;

/**
 * One outgoing publish: waiting for a window slot (`packet` undefined), or in
 * flight (`packet` set) and, for QoS 2, `released` once PUBREC arrived and PUBREL was sent.
 *
 * @example
 * ```ts
 * import { OutgoingPublish } from "./state.ts";
 * const entry = new OutgoingPublish(
 *   { topic: "a/b", payload: new Uint8Array([1]), qos: 1, retain: false },
 *   (err) => console.log("done", err),
 * );
 * console.log(entry.packet === undefined); // true: not yet in flight
 * ```
 */
export class OutgoingPublish {
  /**
   * The message as the caller gave it; once in flight, its PUBLISH (the same
   * fields) when the flows say so (`Flows.messageInPacket`, the client's) and
   * the message has no expiry deadline, so that an in-flight publish does not
   * hold both (issue 18).
   */
  message: OutgoingMessage;
  /** Called once when the QoS flow completes (or fails). */
  readonly done: PublishCallback;
  /** The PUBLISH as first sent (DUP=0); set when the message enters the in-flight window. */
  packet: PublishPacket | undefined = undefined;
  /** QoS 2 only: PUBREC received and PUBREL sent; the PUBLISH must not be sent again (MQTT-4.3.3-1). */
  released = false;
  /** Topic plus payload bytes, counted against `maxQueuedBytes` while waiting. */
  size = 0;
  /** MQTT 5.0, QoS 2: the PUBREC's reason code and properties, the flow's result at PUBCOMP. */
  ack: PublishAck | undefined = undefined;
  /** When its latest PUBLISH or PUBREL went out, in the flows' send order (`Flows`). */
  sentOrder = 0;
  /** Connections in a row the peer dropped right after this PUBLISH (`Flows.connectionDropped`). */
  strikes = 0;

  /** Creates a waiting entry. */
  constructor(message: OutgoingMessage, done: PublishCallback) {
    this.message = message;
    this.done = done;
  }
}

/** Bounds and persistence of a {@linkcode SessionState}. */
export interface SessionStateOptions {
  /**
   * Where state that must survive a restart is recorded. Without one, the
   * state lives in memory only (and costs nothing extra). When given, the
   * stored in-flight, waiting and incoming entries are loaded at construction.
   * The state never closes the store: whoever opened it closes it after
   * `abandon`. A store method that throws (`STORE_ERROR` from a failed write)
   * propagates out of the session call that made the change.
   */
  store?: Store;
  /** Most publishes waiting for a window slot or a connection. @default {10_000} */
  maxQueued?: number;
  /** Most topic (UTF-8) plus payload bytes of waiting publishes. @default {16 MiB} */
  maxQueuedBytes?: number;
  /**
   * What a full queue does with a new publish: `"reject"` throws
   * `MqttError("QUEUE_FULL")`; `"drop-oldest"` fails the oldest waiting
   * publish with `QUEUE_FULL` and accepts the new one. @default {"reject"}
   */
  overflow?: "reject" | "drop-oldest";
  /**
   * The time now on the session's clock (`now`, the `now` the session is
   * driven with) and on the wall clock (`wall`, ms since the Unix epoch), for
   * loading from `store`: a stored MQTT 5.0 message with a Message Expiry
   * Interval and a publish time (`publishedAt`) gets the deadline that is
   * left of it on the session's clock, so one that expired while the process
   * was down is not sent, and one sent late carries what remains. Without a
   * clock, loaded messages have no deadline.
   */
  clock?: { now: number; wall: number };
}

/** Default of {@linkcode SessionStateOptions.maxQueued}. */
export const DEFAULT_MAX_QUEUED = 10_000;
/** Default of {@linkcode SessionStateOptions.maxQueuedBytes}: 16 MiB. */
export const DEFAULT_MAX_QUEUED_BYTES: number = 16 * 1024 * 1024;

/**
 * The message of a stored record (its MQTT 5.0 properties with it, when it
 * has any), its expiry deadline moved onto the session's clock by `clock`.
 */
function messageOf(r: PublishRecord, clock: SessionStateOptions["clock"]): OutgoingMessage {
  const { topic, payload, qos, retain, properties, publishedAt } = r;
  if (properties === undefined) return { topic, payload, qos, retain };
  const message: OutgoingMessage = { topic, payload, qos, retain, properties };
  if (publishedAt === undefined) return message;
  message.publishedAt = publishedAt;
  const interval = properties.messageExpiryInterval;
  if (interval !== undefined && clock !== undefined) {
    // Section 3.3.2.3.3: the interval counts from the publish, however long the process was down.
    message.expiresAt = clock.now + (publishedAt + interval * 1000 - clock.wall);
  }
  return message;
}

/** Callback of entries loaded from a store: nobody in this process awaits them. */
const RESTORED: PublishCallback = () => {};

function checkBound(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(value >= 0) || (!Number.isInteger(value) && value !== Infinity)) {
    throw new MqttError("INVALID_OPTION", `${name} must be a non-negative integer, got ${value}`);
  }
  return value;
}

/**
 * The MQTT session state that survives connections (packet ids, outgoing
 * in-flight and waiting publishes with their callbacks, incoming QoS 2 ids).
 * One per client session, on either side; each connection's protocol machine
 * borrows it. The client's side extends it with its own tables
 * (`ClientSessionState`).
 *
 * The methods other than `enqueue`, `abandon` and the getters are the
 * protocol machine's interface; application code has no reason to call them.
 *
 * With a {@linkcode Store}, every change to the in-flight window, the waiting
 * queue and the incoming QoS 2 ids is recorded in it when it happens, so a
 * new process over the same store resumes where this one stopped. Entries
 * loaded from a store complete silently (nobody in this process awaits them).
 *
 * @example
 * ```ts
 * import { SessionState } from "./state.ts";
 * import { MqttError } from "../errors.ts";
 * const state = new SessionState({ maxQueued: 100, overflow: "drop-oldest" });
 * console.log(state.inflightCount, state.pendingCount); // 0 0
 * state.abandon(new MqttError("ABORTED", "client closed"));
 * ```
 */
export class SessionState {
  /** In-flight outgoing QoS 1/2 by packet id; insertion order is send order (MQTT-4.6.0-1). */
  #inflight: Map<number, OutgoingPublish> = emptyMap();
  /** Publishes waiting for a window slot, FIFO. */
  #waiting = new Queue<OutgoingPublish>();
  #queuedBytes = 0;
  /** Packet ids held by something other than a publish (a client's SUBSCRIBE/UNSUBSCRIBE). */
  #reserved: Set<number> = emptySet();
  /** Ids of incoming QoS 2 PUBLISH delivered but not yet released by PUBREL (MQTT-4.3.3-2). */
  #incoming: Set<number> = emptySet();
  #nextId = 1;
  #owner: object | undefined = undefined;
  /** Clean session flag of the latest connection; undefined before the first one. */
  #clean: boolean | undefined = undefined;
  readonly #store: Store | undefined;
  readonly #maxQueued: number;
  readonly #maxQueuedBytes: number;
  readonly #dropOldest: boolean;
  /**
   * Incoming QoS 1/2 messages handed to the application and not yet
   * acknowledged, in arrival order (used by flows that defer acknowledgements).
   * Memory only: after a restart the server's resend delivers them again.
   */
  readonly acks: AckQueue = new AckQueue();

  /**
   * Creates a session state, empty or loaded from `options.store`.
   * Throws `MqttError("INVALID_OPTION")` for a bad bound.
   */
  constructor(options: SessionStateOptions = {}) {
    this.#maxQueued = checkBound("maxQueued", options.maxQueued, DEFAULT_MAX_QUEUED);
    this.#maxQueuedBytes = checkBound(
      "maxQueuedBytes",
      options.maxQueuedBytes,
      DEFAULT_MAX_QUEUED_BYTES,
    );
    const overflow = options.overflow ?? "reject";
    if (overflow !== "reject" && overflow !== "drop-oldest") {
      throw new MqttError("INVALID_OPTION", `overflow must be "reject" or "drop-oldest"`);
    }
    this.#dropOldest = overflow === "drop-oldest";
    this.#store = options.store;
    if (options.store !== undefined) this.#load(options.store, options.clock);
  }

  #load(store: Store, clock: SessionStateOptions["clock"]): void {
    const stored = store.load();
    for (const r of stored.inflight) {
      const { topic, payload, qos, retain, packetId, properties } = r;
      const entry = new OutgoingPublish(messageOf(r, clock), RESTORED);
      entry.packet = { type: "publish", topic, payload, qos, retain, dup: false, packetId };
      if (properties !== undefined) entry.packet.properties = properties;
      entry.released = r.released;
      this.#ownInflight().set(packetId, entry);
    }
    // Loaded entries are accepted whatever the bounds: they were accepted once.
    for (const r of stored.waiting) {
      const { topic, payload } = r;
      const entry = new OutgoingPublish(messageOf(r, clock), RESTORED);
      entry.size = utf8Length(topic) + payload.byteLength;
      this.#queuedBytes += entry.size;
      this.#waiting.push(entry);
    }
    for (const id of stored.incoming) this.#ownIncoming().add(id);
    const next = stored.nextPacketId;
    this.#nextId = Number.isInteger(next) && next >= 1 && next <= MAX_PACKET_ID ? next : 1;
  }

  /** The store changes are recorded in, if any. */
  protected get store(): Store | undefined {
    return this.#store;
  }

  /** Outgoing QoS 1/2 publishes sent and not yet completed. */
  get inflightCount(): number {
    return this.#inflight.size;
  }

  /** Publishes waiting for an in-flight window slot (or for the connection). */
  get pendingCount(): number {
    return this.#waiting.length;
  }

  /** Topic plus payload bytes of the waiting publishes. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Incoming QoS 2 ids remembered until their PUBREL. */
  get incomingCount(): number {
    return this.#incoming.size;
  }

  /**
   * Claims the state for one live connection; a second claim while the first
   * holds it throws INVALID_STATE (two connections must never share a session at once).
   * `clean` is the connection's clean session flag.
   */
  attach(owner: object, clean?: boolean): void {
    if (this.#owner !== undefined && this.#owner !== owner) {
      throw new MqttError("INVALID_STATE", "session state is already used by a live connection");
    }
    this.#owner = owner;
    if (clean !== undefined) this.#clean = clean;
  }

  /** Releases the claim taken by {@linkcode SessionState.prototype.attach}. */
  detach(owner: object): void {
    if (this.#owner === owner) this.#owner = undefined;
  }

  /**
   * Returns a packet id that no in-flight PUBLISH and no reserved id
   * (a SUBSCRIBE or UNSUBSCRIBE) holds (MQTT-2.3.1-2), counting 1..65535 and
   * wrapping around. With `reserve`, the id stays taken until {@linkcode freeId}.
   */
  allocatePacketId(reserve = false): number {
    const inflight = this.#inflight;
    const reserved = this.#reserved;
    if (inflight.size + reserved.size >= MAX_PACKET_ID) {
      throw new MqttError("QUEUE_FULL", "all 65535 packet identifiers are in use");
    }
    let id = this.#nextId;
    while (inflight.has(id) || reserved.has(id)) id = id === MAX_PACKET_ID ? 1 : id + 1;
    this.#nextId = id === MAX_PACKET_ID ? 1 : id + 1;
    if (reserve) (isEmptyStandIn(reserved) ? (this.#reserved = new Set()) : reserved).add(id);
    return id;
  }

  /** Frees an id taken with `allocatePacketId(true)`. */
  freeId(packetId: number): void {
    this.#reserved.delete(packetId);
  }

  // ---- outgoing publishes ----

  /**
   * Appends a publish to the waiting queue, within the bounds. A full queue
   * throws `MqttError("QUEUE_FULL")` and changes nothing ("reject", or a
   * publish larger than `maxQueuedBytes` alone), or fails the oldest waiting
   * publishes with `QUEUE_FULL` until the new one fits ("drop-oldest").
   * A topic that is not valid UTF-8 (MQTT-1.5.3-1, -2) throws its ProtocolError here.
   */
  enqueue(entry: OutgoingPublish): void {
    const m = entry.message;
    const size = utf8Length(m.topic) + m.payload.byteLength;
    const waiting = this.#waiting;
    const maxBytes = this.#maxQueuedBytes;
    let dropped: OutgoingPublish[] | undefined;
    if (waiting.length >= this.#maxQueued || this.#queuedBytes + size > maxBytes) {
      if (!this.#dropOldest || size > maxBytes || this.#maxQueued === 0) {
        throw new MqttError(
          "QUEUE_FULL",
          `offline queue is full (${waiting.length} publishes, ${this.#queuedBytes} bytes; ` +
            `limits ${this.#maxQueued} and ${maxBytes})`,
        );
      }
      dropped = [];
      try {
        while (waiting.length >= this.#maxQueued || this.#queuedBytes + size > maxBytes) {
          dropped.push(this.shiftWaiting()!);
        }
        this.#store?.pushWaiting(m);
      } finally {
        // Dropped ones are settled even when the store failed part way (and the new one is not queued).
        for (const old of dropped) {
          old.done(
            new MqttError("QUEUE_FULL", "dropped from the full offline queue for a newer publish"),
          );
        }
      }
    } else {
      this.#store?.pushWaiting(m);
    }
    entry.size = size;
    this.#queuedBytes += size;
    waiting.push(entry);
  }

  /** The oldest waiting publish, without removing it. */
  peekWaiting(): OutgoingPublish | undefined {
    return this.#waiting.peek();
  }

  /** Removes and returns the oldest waiting publish. */
  shiftWaiting(): OutgoingPublish | undefined {
    if (this.#waiting.length === 0) return undefined;
    // The store first, here and in every mutator: if it throws, memory is unchanged.
    this.#store?.shiftWaiting();
    const entry = this.#waiting.shift()!;
    this.#queuedBytes -= entry.size;
    return entry;
  }

  /**
   * Records a publish as in flight under its packet id. With `dequeued`, the
   * entry is the head of the waiting queue and leaves it in the same step (one
   * store record, so a crash cannot lose or duplicate it).
   */
  addInflight(entry: OutgoingPublish, dequeued = false): void {
    const id = entry.packet!.packetId!;
    const store = this.#store;
    if (store !== undefined) store.putInflight(id, entry.message, dequeued);
    if (dequeued) {
      this.#waiting.shift();
      this.#queuedBytes -= entry.size;
    }
    this.#ownInflight().set(id, entry);
  }

  /** The in-flight publishes' map, made on first use: a broker's idle sessions hold no tables. */
  #ownInflight(): Map<number, OutgoingPublish> {
    if (isEmptyStandIn(this.#inflight)) this.#inflight = new Map();
    return this.#inflight;
  }

  /** The incoming QoS 2 ids' set, made on first use. */
  #ownIncoming(): Set<number> {
    if (isEmptyStandIn(this.#incoming)) this.#incoming = new Set();
    return this.#incoming;
  }

  /** The in-flight publish with this id, if any. */
  getInflight(packetId: number): OutgoingPublish | undefined {
    return this.#inflight.get(packetId);
  }

  /** Marks a QoS 2 publish as past PUBREC (PUBREL sent); its payload is no longer needed. */
  release(entry: OutgoingPublish): void {
    const store = this.#store;
    if (store !== undefined) store.markReleased(entry.packet!.packetId!);
    entry.released = true;
  }

  /**
   * Puts a QoS 2 publish back before PUBREC: the broker lost the session that
   * held it, so its flow starts again with a fresh PUBLISH.
   */
  unrelease(entry: OutgoingPublish): void {
    const store = this.#store;
    if (store !== undefined) store.putInflight(entry.packet!.packetId!, entry.message, false);
    entry.released = false;
  }

  /** Removes a completed in-flight publish, freeing its packet id. Does not call `done`. */
  complete(packetId: number): void {
    const store = this.#store;
    if (store !== undefined) store.removeInflight(packetId);
    this.#inflight.delete(packetId);
  }

  /** In-flight publishes in send order (for resending on resume). */
  inflight(): IterableIterator<OutgoingPublish> {
    return this.#inflight.values();
  }

  /**
   * MQTT-3.1.2-6: with clean session the client discards its previous session
   * state too. In-flight publishes loaded from a store belong to a previous
   * process (nobody awaits them) and are discarded; this process's own
   * in-flight publishes are kept (the application awaits them) and re-sent as
   * fresh flows. Waiting publishes were never sent, so they are not session
   * state (section 4.1) and stay.
   */
  discardRestoredInflight(): void {
    for (const [id, entry] of this.#inflight) {
      if (entry.done === RESTORED) this.complete(id);
    }
  }

  // ---- incoming QoS 2 ----

  /** Whether an incoming QoS 2 id was delivered and awaits PUBREL. */
  hasIncoming(packetId: number): boolean {
    return this.#incoming.has(packetId);
  }

  /** Remembers an incoming QoS 2 id until its PUBREL (stored before PUBREC goes out). */
  addIncoming(packetId: number): void {
    const store = this.#store;
    if (store !== undefined) store.addIncoming(packetId);
    this.#ownIncoming().add(packetId);
  }

  /** Forgets an incoming QoS 2 id (PUBREL received). */
  releaseIncoming(packetId: number): void {
    if (!this.#incoming.has(packetId)) return;
    const store = this.#store;
    if (store !== undefined) store.removeIncoming(packetId);
    this.#incoming.delete(packetId);
  }

  /** Forgets every incoming QoS 2 id (the peer has no session for us). */
  clearIncoming(): void {
    if (this.#incoming.size === 0) return;
    // The store first, as everywhere: if it throws, memory still holds the ids.
    this.#store?.clearIncoming();
    this.#incoming.clear();
  }

  /**
   * The state as a store holding it would load it (subscriptions aside, which
   * the state does not keep): for rewriting a store that missed changes.
   */
  stored(): Omit<StoredSession, "subscriptions"> {
    const inflight: InflightRecord[] = [];
    for (const [packetId, entry] of this.#inflight) {
      inflight.push({ ...entry.message, packetId, released: entry.released });
    }
    return {
      inflight,
      waiting: Array.from(this.#waiting, (entry): PublishRecord => entry.message),
      incoming: [...this.#incoming],
      nextPacketId: this.#nextId,
    };
  }

  /**
   * Fails every pending publish callback with `error` and empties the
   * state; used when the session ends for good.
   * The store keeps its records when the session is persistent (the latest
   * connection had `clean: false`, or there was none yet), so a later process
   * resumes them; after a clean session it is cleared.
   */
  abandon(error: MqttError): void {
    const entries = [...this.#inflight.values(), ...this.#waiting.drain()];
    this.#inflight.clear();
    this.#queuedBytes = 0;
    this.#incoming.clear();
    this.#reserved.clear();
    this.acks.clear();
    if (this.#clean === true) this.#store?.clear();
    for (const entry of entries) entry.done(error);
  }
}
