/**
 * The MQTT session state that outlives one network connection: packet
 * identifiers, outgoing QoS 1/2 messages in flight or waiting for a window
 * slot (with their completion callbacks), pending SUBSCRIBE/UNSUBSCRIBE, and
 * the identifiers of incoming QoS 2 messages not yet released.
 *
 * Every change to state that must survive a restart goes through a method
 * here (`addInflight`, `release`, `complete`, `addIncoming`, ...), so a
 * durable store can later observe each change in one place.
 *
 * @module
 */
import type { PublishPacket, SubscribePacket, UnsubscribePacket } from "../codec/packet.ts";
import { MqttError } from "../errors.ts";
import { Queue } from "./queue.ts";
import type {
  OutgoingMessage,
  PublishCallback,
  SubscribeCallback,
  UnsubscribeCallback,
} from "./types.ts";

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
  /** The message as the caller gave it. */
  readonly message: OutgoingMessage;
  /** Called once when the QoS flow completes (or fails). */
  readonly done: PublishCallback;
  /** The PUBLISH as first sent (DUP=0); set when the message enters the in-flight window. */
  packet: PublishPacket | undefined = undefined;
  /** QoS 2 only: PUBREC received and PUBREL sent; the PUBLISH must not be sent again (MQTT-4.3.3-1). */
  released = false;

  /** Creates a waiting entry. */
  constructor(message: OutgoingMessage, done: PublishCallback) {
    this.message = message;
    this.done = done;
  }
}

/**
 * A SUBSCRIBE or UNSUBSCRIBE sent and awaiting its SUBACK or UNSUBACK.
 *
 * @example
 * ```ts
 * import { PendingRequest } from "./state.ts";
 * import type { MqttError } from "../errors.ts";
 * const req = new PendingRequest(
 *   { type: "unsubscribe", packetId: 1, filters: ["a/#"] },
 *   (err?: MqttError) => console.log("unsubscribed", err),
 * );
 * console.log(req.packet.type); // unsubscribe
 * ```
 */
export class PendingRequest {
  /** The packet sent. */
  readonly packet: SubscribePacket | UnsubscribePacket;
  /** Its completion callback (a SubscribeCallback for SUBSCRIBE). */
  readonly done: SubscribeCallback | UnsubscribeCallback;

  /** Creates a pending request. */
  constructor(
    packet: SubscribePacket | UnsubscribePacket,
    done: SubscribeCallback | UnsubscribeCallback,
  ) {
    this.packet = packet;
    this.done = done;
  }
}

/**
 * The MQTT session state that survives connections (packet ids, outgoing
 * in-flight and waiting publishes with their callbacks, incoming QoS 2 ids).
 * One per client; each connection's {@linkcode Session} borrows it.
 *
 * The methods other than `abandon` and the counters are the session
 * machine's interface; application code has no reason to call them.
 *
 * @example
 * ```ts
 * import { SessionState } from "./state.ts";
 * import { MqttError } from "../errors.ts";
 * const state = new SessionState();
 * console.log(state.inflightCount, state.pendingCount); // 0 0
 * state.abandon(new MqttError("ABORTED", "client closed"));
 * ```
 */
export class SessionState {
  /** In-flight outgoing QoS 1/2 by packet id; insertion order is send order (MQTT-4.6.0-1). */
  #inflight = new Map<number, OutgoingPublish>();
  /** Publishes waiting for a window slot, FIFO. */
  #waiting = new Queue<OutgoingPublish>();
  /** SUBSCRIBE/UNSUBSCRIBE awaiting acknowledgement, by packet id. */
  #requests = new Map<number, PendingRequest>();
  /** Ids of incoming QoS 2 PUBLISH delivered but not yet released by PUBREL (MQTT-4.3.3-2). */
  #incoming = new Set<number>();
  #nextId = 1;
  #owner: object | undefined = undefined;

  /** Creates an empty session state. */
  constructor() {}

  /** Outgoing QoS 1/2 publishes sent and not yet completed. */
  get inflightCount(): number {
    return this.#inflight.size;
  }

  /** Publishes waiting for an in-flight window slot (or for the connection). */
  get pendingCount(): number {
    return this.#waiting.length;
  }

  /** SUBSCRIBE/UNSUBSCRIBE sent and awaiting acknowledgement. */
  get requestCount(): number {
    return this.#requests.size;
  }

  /** Incoming QoS 2 ids remembered until their PUBREL. */
  get incomingCount(): number {
    return this.#incoming.size;
  }

  /**
   * Claims the state for one live connection; a second claim while the first
   * holds it throws INVALID_STATE (two connections must never share a session at once).
   */
  attach(owner: object): void {
    if (this.#owner !== undefined && this.#owner !== owner) {
      throw new MqttError("INVALID_STATE", "session state is already used by a live connection");
    }
    this.#owner = owner;
  }

  /** Releases the claim taken by {@linkcode SessionState.prototype.attach}. */
  detach(owner: object): void {
    if (this.#owner === owner) this.#owner = undefined;
  }

  /**
   * Returns a packet id that no in-flight PUBLISH, SUBSCRIBE or UNSUBSCRIBE
   * holds (MQTT-2.3.1-2), counting 1..65535 and wrapping around.
   */
  allocatePacketId(): number {
    const inflight = this.#inflight;
    const requests = this.#requests;
    if (inflight.size + requests.size >= MAX_PACKET_ID) {
      throw new MqttError("QUEUE_FULL", "all 65535 packet identifiers are in use");
    }
    let id = this.#nextId;
    while (inflight.has(id) || requests.has(id)) id = id === MAX_PACKET_ID ? 1 : id + 1;
    this.#nextId = id === MAX_PACKET_ID ? 1 : id + 1;
    return id;
  }

  // ---- outgoing publishes ----

  /** Appends a publish to the waiting queue. */
  enqueue(entry: OutgoingPublish): void {
    this.#waiting.push(entry);
  }

  /** The oldest waiting publish, without removing it. */
  peekWaiting(): OutgoingPublish | undefined {
    return this.#waiting.peek();
  }

  /** Removes and returns the oldest waiting publish. */
  shiftWaiting(): OutgoingPublish | undefined {
    return this.#waiting.shift();
  }

  /** Records a publish as in flight under `entry.packet.packetId`. */
  addInflight(entry: OutgoingPublish): void {
    this.#inflight.set(entry.packet!.packetId!, entry);
  }

  /** The in-flight publish with this id, if any. */
  getInflight(packetId: number): OutgoingPublish | undefined {
    return this.#inflight.get(packetId);
  }

  /** Marks a QoS 2 publish as past PUBREC (PUBREL sent); its payload is no longer needed. */
  release(entry: OutgoingPublish): void {
    entry.released = true;
  }

  /** Removes a completed in-flight publish, freeing its packet id. Does not call `done`. */
  complete(packetId: number): void {
    this.#inflight.delete(packetId);
  }

  /** In-flight publishes in send order (for resending on resume). */
  inflight(): IterableIterator<OutgoingPublish> {
    return this.#inflight.values();
  }

  // ---- subscribe / unsubscribe ----

  /** Records a sent SUBSCRIBE/UNSUBSCRIBE under its packet id. */
  addRequest(request: PendingRequest): void {
    this.#requests.set(request.packet.packetId, request);
  }

  /** The pending request with this id, if any. */
  getRequest(packetId: number): PendingRequest | undefined {
    return this.#requests.get(packetId);
  }

  /** Forgets an acknowledged request, freeing its packet id. */
  completeRequest(packetId: number): void {
    this.#requests.delete(packetId);
  }

  /**
   * Fails every pending SUBSCRIBE/UNSUBSCRIBE: they are not resent on a new
   * connection (the client re-subscribes from its own subscription list).
   */
  failRequests(error: MqttError): void {
    if (this.#requests.size === 0) return;
    const requests = [...this.#requests.values()];
    this.#requests.clear();
    for (const request of requests) request.done(error);
  }

  // ---- incoming QoS 2 ----

  /** Whether an incoming QoS 2 id was delivered and awaits PUBREL. */
  hasIncoming(packetId: number): boolean {
    return this.#incoming.has(packetId);
  }

  /** Remembers an incoming QoS 2 id until its PUBREL. */
  addIncoming(packetId: number): void {
    this.#incoming.add(packetId);
  }

  /** Forgets an incoming QoS 2 id (PUBREL received). */
  releaseIncoming(packetId: number): void {
    this.#incoming.delete(packetId);
  }

  /** Forgets every incoming QoS 2 id (the broker has no session for us). */
  clearIncoming(): void {
    this.#incoming.clear();
  }

  /**
   * Fails every pending publish, subscribe and unsubscribe callback with
   * `error` and empties the state; used when the client closes for good.
   */
  abandon(error: MqttError): void {
    const entries = [...this.#inflight.values(), ...this.#waiting.drain()];
    this.#inflight.clear();
    this.#incoming.clear();
    this.failRequests(error);
    for (const entry of entries) entry.done(error);
  }
}
