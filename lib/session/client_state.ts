/**
 * What only the client's side of a session keeps across connections: the
 * SUBSCRIBE and UNSUBSCRIBE requests awaiting their acknowledgement, and the
 * subscriptions the server granted, to register again when the server has
 * lost them. The broker's sessions never carry these tables.
 *
 * @module
 */
import type {
  QoS,
  SubscribePacket,
  SubscriptionRequest,
  UnsubscribePacket,
} from "../codec/packet.ts";
import { isFailure } from "../codec/reason_codes.ts";
import type { MqttError } from "../errors.ts";
import { SessionState, type SessionStateOptions } from "./state.ts";
import type { SubscriptionFlags } from "../store/store.ts";
import type { SubackCode, SubscribeCallback, UnsubscribeCallback } from "./types.ts";
import { emptyMap, emptySet, isEmptyStandIn } from "../util/empty.ts";

/**
 * A SUBSCRIBE or UNSUBSCRIBE sent and awaiting its SUBACK or UNSUBACK.
 *
 * @example
 * ```ts
 * import { PendingRequest } from "./client_state.ts";
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
  /** A SUBSCRIBE the session sent itself to re-register remembered subscriptions. */
  readonly resubscribe: boolean;
  /**
   * Filters of this SUBSCRIBE unsubscribed before its SUBACK: the server
   * handles the UNSUBSCRIBE after it, so the SUBACK must not revive them.
   */
  cancelled: Set<string> | undefined = undefined;

  /** Creates a pending request. */
  constructor(
    packet: SubscribePacket | UnsubscribePacket,
    done: SubscribeCallback | UnsubscribeCallback,
    resubscribe = false,
  ) {
    this.packet = packet;
    this.done = done;
    this.resubscribe = resubscribe;
  }
}

/**
 * The client's session state: the shared {@linkcode SessionState} plus the
 * pending SUBSCRIBE/UNSUBSCRIBE requests (their packet ids reserved in the
 * shared table, MQTT-2.3.1-2) and the granted subscriptions to re-register.
 *
 * @example
 * ```ts
 * import { ClientSessionState } from "./client_state.ts";
 * import { MqttError } from "../errors.ts";
 * const state = new ClientSessionState({ maxQueued: 100, overflow: "drop-oldest" });
 * console.log(state.requestCount, state.subscriptions.size); // 0 0
 * state.abandon(new MqttError("ABORTED", "client closed"));
 * ```
 */
export class ClientSessionState extends SessionState {
  /** SUBSCRIBE/UNSUBSCRIBE awaiting acknowledgement, by packet id. */
  #requests: Map<number, PendingRequest> = emptyMap();
  /** Live subscriptions, filter → granted QoS, in subscribe order. */
  #subscriptions: Map<string, QoS> = emptyMap();
  /** MQTT 5.0 options (No Local, Retain As Published, Retain Handling) of live subscriptions that set any. */
  #flags: Map<string, SubscriptionFlags> = emptyMap();
  /** Filters loaded from the store and not subscribed again by this process. */
  #restored: Set<string> = emptySet();
  /**
   * Re-registration SUBSCRIBEs sent and not yet acknowledged. Left non-zero
   * when the connection drops before their SUBACKs, so the next connection
   * re-registers even if the server reports a session present.
   */
  resubscribing = 0;

  /**
   * Creates an empty client state, or one loaded from `options.store`,
   * subscriptions included (a new process learns which filters its session holds).
   */
  constructor(options: SessionStateOptions = {}) {
    super(options);
    const stored = options.store?.load().subscriptions ?? [];
    if (stored.length !== 0) this.#subscriptionTables();
    for (const record of stored) {
      const { filter, qos } = record;
      this.#subscriptions.set(filter, qos);
      const flags = flagsOf(record);
      if (flags !== undefined) this.#flags.set(filter, flags);
      this.#restored.add(filter);
    }
  }

  /**
   * MQTT-3.1.2-6: a clean session discards the previous session's state, so
   * subscriptions loaded from a previous process's store are forgotten (this
   * process's own are kept and registered again).
   */
  discardRestoredSubscriptions(): void {
    if (this.#restored.size === 0) return;
    this.unsubscribed([...this.#restored]);
  }

  // Empty until first needed: an idle connection holds no tables (issue 18).
  #subscriptionTables(): void {
    if (!isEmptyStandIn(this.#subscriptions)) return;
    this.#subscriptions = new Map();
    this.#flags = new Map();
    this.#restored = new Set();
  }

  /** SUBSCRIBE/UNSUBSCRIBE sent and awaiting acknowledgement. */
  get requestCount(): number {
    return this.#requests.size;
  }

  /** Live subscriptions (filter → granted QoS) in subscribe order, to re-register when lost. */
  get subscriptions(): ReadonlyMap<string, QoS> {
    return this.#subscriptions;
  }

  /** Records a sent SUBSCRIBE/UNSUBSCRIBE under its packet id (taken with `allocatePacketId(true)`). */
  addRequest(request: PendingRequest): void {
    if (isEmptyStandIn(this.#requests)) this.#requests = new Map();
    this.#requests.set(request.packet.packetId, request);
  }

  /** The pending request with this id, if any. */
  getRequest(packetId: number): PendingRequest | undefined {
    return this.#requests.get(packetId);
  }

  /** Forgets an acknowledged request, freeing its packet id. */
  completeRequest(packetId: number): void {
    this.#requests.delete(packetId);
    this.freeId(packetId);
  }

  /**
   * Fails every pending SUBSCRIBE/UNSUBSCRIBE: they are not resent on a new
   * connection (re-registration covers the subscriptions already granted).
   */
  failRequests(error: MqttError): void {
    if (this.#requests.size === 0) return;
    const requests = [...this.#requests.values()];
    this.#requests.clear();
    for (const request of requests) {
      this.freeId(request.packet.packetId);
      request.done(error);
    }
  }

  /** Whether an UNSUBSCRIBE for a filter matching `matches` is awaiting its UNSUBACK. */
  unsubscribing(matches: (filter: string) => boolean): boolean {
    for (const request of this.#requests.values()) {
      if (request.packet.type === "unsubscribe" && request.packet.filters.some(matches)) {
        return true;
      }
    }
    return false;
  }

  /** Remembers the filters a SUBACK granted (a success code), in subscribe order. */
  subscribed(request: PendingRequest, returnCodes: readonly SubackCode[]): void {
    const subs = (request.packet as SubscribePacket).subscriptions;
    const cancelled = request.cancelled;
    this.#subscriptionTables();
    for (let i = 0; i < subs.length; i++) {
      const code = returnCodes[i];
      const filter = subs[i].filter;
      if (isFailure(code) || cancelled?.has(filter)) continue;
      const flags = flagsOf(subs[i]);
      // The store first, as everywhere: if it throws, memory is unchanged.
      this.store?.putSubscription(filter, code as QoS, flags);
      this.#subscriptions.set(filter, code as QoS);
      if (flags === undefined) this.#flags.delete(filter);
      else this.#flags.set(filter, flags);
      this.#restored.delete(filter);
    }
  }

  /** Forgets filters an UNSUBSCRIBE is being sent for, also ones whose SUBACK is still due. */
  unsubscribed(filters: readonly string[]): void {
    const store = this.store;
    for (const filter of filters) {
      if (!this.#subscriptions.has(filter)) continue;
      store?.removeSubscription(filter);
      this.#subscriptions.delete(filter);
      this.#flags.delete(filter);
      this.#restored.delete(filter);
    }
    for (const request of this.#requests.values()) {
      if (request.packet.type !== "subscribe") continue;
      for (const filter of filters) {
        if (request.packet.subscriptions.some((s) => s.filter === filter)) {
          (request.cancelled ??= new Set()).add(filter);
        }
      }
    }
  }

  /**
   * Re-registration SUBACK for one filter: keeps the new granted QoS, or
   * forgets the filter (the server refused it). Returns whether the filter was
   * still remembered (it may have been unsubscribed meanwhile).
   */
  resubscribed(filter: string, code: SubackCode | undefined): boolean {
    if (!this.#subscriptions.has(filter)) return false;
    const store = this.store;
    if (code === undefined || isFailure(code)) {
      store?.removeSubscription(filter);
      this.#subscriptions.delete(filter);
      this.#flags.delete(filter);
    } else {
      store?.putSubscription(filter, code as QoS, this.#flags.get(filter));
      this.#subscriptionTables();
      this.#subscriptions.set(filter, code as QoS);
    }
    return true;
  }

  /**
   * The remembered subscriptions as SUBSCRIBE entries, in subscribe order,
   * with the MQTT 5.0 options they were made with.
   */
  subscriptionRequests(): SubscriptionRequest[] {
    const out: SubscriptionRequest[] = [];
    const flags = this.#flags;
    for (const [filter, qos] of this.#subscriptions) {
      const f = flags.size === 0 ? undefined : flags.get(filter);
      out.push(f === undefined ? { filter, qos } : { filter, qos, ...f });
    }
    return out;
  }

  /**
   * Fails every pending publish, subscribe and unsubscribe callback with
   * `error` and empties the state; used when the client closes for good.
   */
  override abandon(error: MqttError): void {
    this.#subscriptions.clear();
    this.#flags.clear();
    this.#restored.clear();
    this.resubscribing = 0;
    this.failRequests(error);
    super.abandon(error);
  }
}

/** The MQTT 5.0 options a subscription sets (only those not false / 0), or undefined for none. */
function flagsOf(r: SubscriptionFlags): SubscriptionFlags | undefined {
  if (!r.noLocal && !r.retainAsPublished && !r.retainHandling) return undefined;
  const flags: { noLocal?: boolean; retainAsPublished?: boolean; retainHandling?: 0 | 1 | 2 } = {};
  if (r.noLocal) flags.noLocal = true;
  if (r.retainAsPublished) flags.retainAsPublished = true;
  if (r.retainHandling) flags.retainHandling = r.retainHandling;
  return flags;
}
