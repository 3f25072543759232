/**
 * A persistent session's store that a failing disk cannot turn into a failure
 * of someone else's request.
 *
 * A change to a session's journal is made while serving whoever caused it:
 * a message queued for a subscriber is written while the PUBLISHER's packet is
 * handled. Were the write's error thrown, it would end the publisher's
 * connection for a disk that is full, a file the system cannot write, or a
 * directory where the journal should be. So the session keeps running in
 * memory (where its messages stay until delivered, as MQTT-4.5.0-1 asks: the
 * message is added to its Session State), the failure is logged once, and the
 * journal is rewritten from the session's live state when it is retried.
 *
 * @module
 */
import { MqttError } from "../errors.ts";
import type { PublishRecord, Store, StoredSession, SubscriptionFlags } from "../store/store.ts";
import type { QoS } from "../codec/packet.ts";

/** A store the journal writes to, which it closes when it replaces it. */
export type InnerStore = Store & { close(): void };

/** What a {@linkcode SessionJournal} is built with. */
export interface SessionJournalOptions<S extends InnerStore> {
  /** The client identifier, for the log line. */
  clientId: string;
  /** Where the journal is, for the log line. */
  path: string;
  /** Writes a log line. */
  log: (line: string) => void;
  /** A fresh store at `path` holding `state`; throws `STORE_ERROR` when it cannot be written. */
  rewrite: (state: StoredSession) => S;
  /** Makes a store idle or active (see `setStoreIdle`). */
  setIdle?: (store: S, idle: boolean) => void;
  /** Least time between two attempts to rewrite a failed journal, ms. @default {10_000} */
  retryMs?: number;
}

/** Default of {@linkcode SessionJournalOptions.retryMs}. */
export const RETRY_MS = 10_000;

/**
 * A session's store that never throws `STORE_ERROR` at whoever changed the
 * session: the first failed write marks it failed and logs one line naming
 * the client, the path and the error; later changes are kept in memory only
 * (by the session, whose live state is read back through `source`) until a
 * retry rewrites the whole journal from that state. A retry happens at the
 * first change at least `retryMs` after the last attempt, and whenever
 * {@linkcode SessionJournal.retry} is called (the session resumes, the broker
 * shuts down: before it lets go of the session's state). Errors other than `STORE_ERROR` (a bad argument) are thrown.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "../store/memory_store.ts";
 * import { SessionJournal } from "./session_journal.ts";
 * const journal = new SessionJournal(new MemoryStore(), {
 *   clientId: "c1",
 *   path: "sessions/c1.journal",
 *   log: console.log,
 *   rewrite: (state) => {
 *     const store = new MemoryStore();
 *     for (const record of state.waiting) store.pushWaiting(record);
 *     return store;
 *   },
 * });
 * journal.pushWaiting({ topic: "t", payload: new Uint8Array([1]), qos: 1, retain: false });
 * console.log(journal.failed); // false
 * ```
 */
export class SessionJournal<S extends InnerStore = InnerStore> implements Store {
  #store: S;
  readonly #options: SessionJournalOptions<S>;
  readonly #retryMs: number;
  #idle = false;
  /** The error of the failed write, while the journal misses changes. */
  #failure: MqttError | undefined = undefined;
  #retryAt = 0;
  /**
   * The session's live state, read to rewrite the journal after a failure (set by the session
   * once it holds the state; until then a retry rewrites what the store last held).
   */
  source: (() => StoredSession) | undefined = undefined;

  /** Wraps `store`, replaced through `options.rewrite` after a failure. */
  constructor(store: S, options: SessionJournalOptions<S>) {
    this.#store = store;
    this.#options = options;
    this.#retryMs = options.retryMs ?? RETRY_MS;
  }

  /** Whether the journal missed changes that only memory holds. */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /** Everything stored (as loaded: call before the session changes anything). */
  load(): StoredSession {
    return this.#store.load();
  }

  /** Records a publish entering flight. */
  putInflight(packetId: number, record: PublishRecord, dequeued: boolean): void {
    this.#write((store) => store.putInflight(packetId, record, dequeued));
  }

  /** Records PUBREC for a QoS 2 publish. */
  markReleased(packetId: number): void {
    this.#write((store) => store.markReleased(packetId));
  }

  /** Records a completed flow. */
  removeInflight(packetId: number): void {
    this.#write((store) => store.removeInflight(packetId));
  }

  /** Records a publish joining the waiting queue. */
  pushWaiting(record: PublishRecord): void {
    this.#write((store) => store.pushWaiting(record));
  }

  /** Records the head of the waiting queue leaving it. */
  shiftWaiting(): void {
    this.#write((store) => store.shiftWaiting());
  }

  /** Records an incoming QoS 2 id. */
  addIncoming(packetId: number): void {
    this.#write((store) => store.addIncoming(packetId));
  }

  /** Records PUBREL for an incoming QoS 2 id. */
  removeIncoming(packetId: number): void {
    this.#write((store) => store.removeIncoming(packetId));
  }

  /** Forgets every incoming QoS 2 id. */
  clearIncoming(): void {
    this.#write((store) => store.clearIncoming());
  }

  /** Records a subscription. */
  putSubscription(filter: string, qos: QoS, flags?: SubscriptionFlags): void {
    this.#write((store) => store.putSubscription(filter, qos, flags));
  }

  /** Records an unsubscription. */
  removeSubscription(filter: string): void {
    this.#write((store) => store.removeSubscription(filter));
  }

  /** Forgets everything. */
  clear(): void {
    this.#write((store) => store.clear());
  }

  /** The session went offline (`true`) or came back: passed on to the store. */
  setIdle(idle: boolean): void {
    this.#idle = idle;
    this.#options.setIdle?.(this.#store, idle);
  }

  /**
   * Rewrites a failed journal from the session's live state now; returns
   * whether the journal holds the session's state (true when it never failed).
   */
  retry(): boolean {
    const failure = this.#failure;
    if (failure === undefined) return true;
    const { rewrite, setIdle, log, clientId, path } = this.#options;
    this.#retryAt = performance.now() + this.#retryMs;
    let store: S;
    try {
      store = rewrite(this.source?.() ?? this.#store.load());
    } catch (err) {
      if (!isStoreError(err)) throw err;
      return false; // still failing: said once already
    }
    if (this.#idle) setIdle?.(store, true);
    this.#store.close();
    this.#store = store;
    this.#failure = undefined;
    log(`Persistence: the session of client ${clientId} is stored again in ${path}.`);
    return true;
  }

  /** Closes the store (a failed journal stays as it was: `retry` first to rewrite it). */
  close(): void {
    this.#store.close();
  }

  /** Makes a change in the journal, unless it failed and a retry is not due or fails again. */
  #write(change: (store: S) => void): void {
    if (this.#failure !== undefined) {
      if (performance.now() < this.#retryAt || !this.retry()) return;
    }
    try {
      change(this.#store);
    } catch (err) {
      if (!isStoreError(err)) throw err;
      this.#fail(err);
    }
  }

  #fail(error: MqttError): void {
    this.#failure = error;
    this.#retryAt = performance.now() + this.#retryMs;
    const { log, clientId, path } = this.#options;
    // The store's errors name the file; one that does not gets the path added.
    const where = error.message.includes(path) ? "" : ` (${path})`;
    log(
      `Persistence: cannot store the session of client ${clientId}: ${error.message}${where}; ` +
        `its messages are kept in memory only (lost if the broker stops) until its journal ` +
        `can be rewritten (tried when the client reconnects, at a change after ` +
        `${this.#retryMs / 1000} s, and at shutdown).`,
    );
  }
}

function isStoreError(err: unknown): err is MqttError {
  return err instanceof MqttError && err.code === "STORE_ERROR";
}
