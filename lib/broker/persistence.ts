/**
 * The embedded broker's optional persistence: retained messages and
 * persistent sessions in a directory, kept across a restart.
 *
 * Layout of the directory:
 * - `broker.lock`: held (advisory, exclusive) while a broker uses the directory.
 * - `retained.journal`: the retained messages, a journal in the format of
 *   `../store/journal.ts` (each retained PUBLISH a `pushWaiting` record with
 *   RETAIN set; a clear is one with an empty payload and RETAIN clear), compacted
 *   into a snapshot once it grows past twice what is live.
 * - `sessions/<key>.journal`: one {@linkcode FileStore} per persistent session
 *   (subscriptions, in-flight and queued messages, incoming QoS 2 ids), and
 *   `sessions/<key>.json`: its client identifier, user name and 5.0 state.
 *   The journals take no lock of their own (`broker.lock` covers them), and
 *   the journal of an offline session is closed (but for the few most recently
 *   written to), so offline sessions hold no file descriptors.
 *
 * Every snapshot (the compacted journals, each `.json`) is written by
 * `../store/snapshot_file.ts`: a `.tmp` file, flushed, renamed over the old
 * one, the directory flushed.
 *
 * Durability is `FileStore`'s: every change is written synchronously before
 * the broker acknowledges what caused it (PUBACK, PUBREC, SUBACK), so a
 * killed process (SIGKILL) loses nothing acknowledged; `fsync` adds a flush to
 * the disk per change, for power loss. A torn tail is ignored; damaged records
 * are skipped, a copy of the damaged file is kept (`<file>.corrupt-<n>`) and
 * the damage is logged, never dropped silently.
 *
 * A write that fails once the broker runs (a full disk, an I/O error, a
 * directory in the way) fails nobody's request: what it was for stays in
 * memory, one line says which client's session (or the retained messages)
 * and which file, and the file is rewritten whole from memory when retried
 * (see `./session_journal.ts`; the retained journal at its next change after
 * the retry interval, the `.json` at its next change).
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import { MqttError } from "../errors.ts";
import {
  appendToJournal,
  createUnlockedStore,
  type FileStore,
  lockWithin,
  openUnlockedStore,
  rewriteUnlockedStore,
  setStoreIdle,
  storeError,
} from "../store/file_store.ts";
import { RETRY_MS, SessionJournal } from "./session_journal.ts";
import { DENO_FILE_SYSTEM, type OpenFile, writeSnapshot } from "../store/snapshot_file.ts";
import {
  Encoder,
  Image,
  isJournalHeader,
  MAGIC,
  PUSH,
  replay,
  StoreCorruptionError,
} from "../store/journal.ts";
import type { PublishRecord } from "../store/store.ts";
import type { RetainedMessage } from "./retained.ts";

/**
 * What a session's `.json` holds besides its journal: its name and owner, and
 * the MQTT 5.0 state the journal format has no record for. Files written
 * before 5.0 state was kept hold only `clientId` and `username`, and load as
 * a session that never expires, without Subscription Identifiers.
 */
export interface SessionMeta {
  clientId: string;
  username?: string;
  /** Session Expiry Interval, seconds; absent: never expires (3.1.1, or 0xFFFFFFFF). */
  expiryInterval?: number;
  /** Wall-clock ms when its last connection ended; absent: connected when last written. */
  disconnectedAt?: number;
  /** Subscription Identifier by topic filter (MQTT 5.0 section 3.8.2.1.2). */
  identifiers?: Record<string, number>;
}

/** A persistent session found in the directory. */
export interface PersistedSession {
  clientId: string;
  username: string | undefined;
  store: SessionJournal<FileStore>;
  /** Its 5.0 state, as last written. */
  meta: SessionMeta;
}

/** Journal size below which the retained journal is never compacted. */
const COMPACT_BYTES = 4 * 1024 * 1024;
const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

/**
 * A file name for a client identifier: its UTF-8 bytes in hex when short,
 * else a prefix and a 64-bit FNV-1a hash (the `.json` beside it names the
 * identifier, so a collision is noticed).
 */
function keyOf(clientId: string): string {
  const bytes = utf8.encode(clientId);
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  if (bytes.length <= 96) return `c${hex(bytes)}`;
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return `h${hex(bytes.subarray(0, 32))}-${h.toString(16)}`;
}

/**
 * The broker's directory: the retained journal and the session stores.
 *
 * @example
 * ```ts ignore
 * const persistence = await Persistence.open("./broker-data", { log: console.log });
 * for (const message of persistence.retained) console.log(message.topic);
 * persistence.close();
 * ```
 */
export class Persistence {
  readonly #dir: string;
  readonly #fsync: boolean;
  readonly #log: (line: string) => void;
  readonly #lock: Deno.FsFile;
  /** The retained messages as loaded, by topic (the broker's store takes them at start). */
  readonly retained: Map<string, RetainedMessage>;
  /** The persistent sessions as loaded. */
  readonly sessions: PersistedSession[];
  /** Open session stores by client identifier. */
  readonly #stores = new Map<string, SessionJournal<FileStore>>();
  /** Each open session's `.json` contents, by client identifier. */
  readonly #meta = new Map<string, SessionMeta>();
  /** Clients whose `.json` could not be written last time (said once until it is again). */
  readonly #metaFailed = new Set<string>();
  /** The retained journal's write error, while it misses changes; when to try it again. */
  #retainedFailure: unknown = undefined;
  #retainedRetryAt = 0;
  /** Size below which the retained journal is not compacted again after compacting failed. */
  #compactFloor = 0;
  readonly #enc = new Encoder();
  #file: OpenFile | undefined;
  #size = 0;
  #liveBytes = 0;
  /**
   * Where compaction reads the live retained messages: the loaded ones until the broker
   * takes them over and points this at its own store.
   */
  retainedSource: () => Iterable<RetainedMessage> = () => this.retained.values();

  private constructor(
    dir: string,
    fsync: boolean,
    log: (line: string) => void,
    lock: Deno.FsFile,
    retained: Map<string, RetainedMessage>,
    sessions: PersistedSession[],
  ) {
    this.#dir = dir;
    this.#fsync = fsync;
    this.#log = log;
    this.#lock = lock;
    this.retained = retained;
    this.sessions = sessions;
    for (const session of sessions) {
      this.#stores.set(session.clientId, session.store);
      this.#meta.set(session.clientId, session.meta);
    }
  }

  /**
   * Opens (or creates) the directory and loads it. Throws `STORE_ERROR` when
   * it cannot be read or written, or another broker uses it.
   */
  static async open(
    dir: string,
    options: { fsync?: boolean; log: (line: string) => void },
  ): Promise<Persistence> {
    const { log } = options;
    const fsync = options.fsync ?? false;
    try {
      await Deno.mkdir(`${dir}/sessions`, { recursive: true });
      // Session stores are created by synchronous calls later: their paths must not depend on
      // the working directory then.
      dir = await Deno.realPath(dir);
    } catch (err) {
      throw storeError(`cannot create ${dir}`, err);
    }
    let lock: Deno.FsFile;
    try {
      lock = await Deno.open(`${dir}/broker.lock`, { write: true, create: true });
    } catch (err) {
      throw storeError(`cannot open ${dir}/broker.lock`, err);
    }
    if (!(await lockWithin(lock))) {
      lock.close();
      throw new MqttError("STORE_ERROR", `${dir} is in use by another broker`);
    }
    const sessions: PersistedSession[] = [];
    try {
      const journalOf = (clientId: string, path: string, store: FileStore) =>
        sessionJournal(clientId, path, store, fsync, log);
      const retained = await loadRetained(`${dir}/retained.journal`, log);
      for await (const entry of Deno.readDir(`${dir}/sessions`)) {
        if (!entry.isFile || !entry.name.endsWith(".json")) continue;
        const key = entry.name.slice(0, -5);
        let meta: SessionMeta;
        try {
          meta = JSON.parse(await Deno.readTextFile(`${dir}/sessions/${entry.name}`));
        } catch (err) {
          log(`Persistence: skipping session ${key}: unreadable ${entry.name} (${err}).`);
          continue;
        }
        // No lock file per session (broker.lock covers them), and no open file while offline.
        const path = `${dir}/sessions/${key}.journal`;
        const store = await openUnlockedStore(path, {
          fsync,
          onCorruption: (error) => log(`Persistence: ${error.message}.`),
        });
        const journal = journalOf(meta.clientId, path, store);
        journal.setIdle(true);
        sessions.push({ clientId: meta.clientId, username: meta.username, store: journal, meta });
      }
      const persistence = new Persistence(dir, fsync, log, lock, retained, sessions);
      persistence.#compactRetained();
      return persistence;
    } catch (err) {
      for (const session of sessions) session.store.close();
      lock.close();
      throw err;
    }
  }

  /**
   * A new, empty store for `clientId`'s persistent session (which expires
   * `expiryInterval` seconds after its connection ends; `Infinity`: never),
   * replacing any it had on disk (the caller has dropped a session it held). Its `.json` is
   * written first, so a crash leaves no journal without a name. Synchronous,
   * so the session is created in the same step as the broker decides it.
   * Throws `STORE_ERROR`.
   */
  createSession(
    clientId: string,
    username: string | undefined,
    expiryInterval: number,
  ): SessionJournal<FileStore> {
    const base = `${this.#dir}/sessions/${keyOf(clientId)}`;
    const meta: SessionMeta = { clientId };
    if (username !== undefined) meta.username = username;
    if (expiryInterval !== Infinity) meta.expiryInterval = expiryInterval;
    this.#writeMeta(`${base}.json`, meta);
    let store: FileStore;
    try {
      store = createUnlockedStore(`${base}.journal`, this.#fsync);
    } catch (err) {
      // The session is refused: its name must not bring it back at the next start.
      this.#removeFiles(base);
      throw err;
    }
    const journal = sessionJournal(clientId, `${base}.journal`, store, this.#fsync, this.#log);
    this.#stores.set(clientId, journal);
    this.#meta.set(clientId, meta);
    this.#metaFailed.delete(clientId);
    return journal;
  }

  /**
   * A session's connection came (`false`) or went (`true`): the store of an
   * offline session keeps its journal closed between changes. A session that
   * comes back has its journal rewritten if writing it had failed.
   */
  setIdle(clientId: string, idle: boolean): void {
    const store = this.#stores.get(clientId);
    if (store === undefined) return;
    store.setIdle(idle);
    if (!idle) store.retry();
  }

  /**
   * Records a change of `clientId`'s 5.0 session state (expiry interval, end of
   * its connection, a Subscription Identifier set or removed) in its `.json`,
   * synchronously, so it is on disk before the broker answers what caused it.
   * `undefined` removes a field. When it cannot be written, the change is kept
   * in memory (and written with the next one) and logged once.
   */
  updateSession(
    clientId: string,
    change: {
      expiryInterval?: number;
      disconnectedAt?: number;
      identifier?: { filter: string; id: number | undefined };
    },
  ): void {
    const meta = this.#meta.get(clientId);
    if (meta === undefined) return;
    const next: SessionMeta = { ...meta };
    if ("expiryInterval" in change) {
      const interval = change.expiryInterval;
      if (interval === undefined || interval === Infinity) delete next.expiryInterval;
      else next.expiryInterval = interval;
    }
    if ("disconnectedAt" in change) {
      if (change.disconnectedAt === undefined) delete next.disconnectedAt;
      else next.disconnectedAt = change.disconnectedAt;
    }
    if (change.identifier !== undefined) {
      const { filter, id } = change.identifier;
      const ids = { ...next.identifiers };
      if (id === undefined) delete ids[filter];
      else ids[filter] = id;
      if (Object.keys(ids).length === 0) delete next.identifiers;
      else next.identifiers = ids;
    }
    this.#meta.set(clientId, next);
    const path = `${this.#dir}/sessions/${keyOf(clientId)}.json`;
    try {
      this.#writeMeta(path, next);
    } catch (err) {
      if (this.#metaFailed.has(clientId)) return;
      this.#metaFailed.add(clientId);
      return this.#log(
        `Persistence: cannot store the session state of client ${clientId}: ` +
          `${(err as Error).message}; kept in memory, written with its next change.`,
      );
    }
    if (this.#metaFailed.delete(clientId)) {
      this.#log(`Persistence: the session state of client ${clientId} is stored again in ${path}.`);
    }
  }

  /** Replaces a session's `.json` (atomically; durably with `fsync`). */
  #writeMeta(path: string, meta: SessionMeta): void {
    try {
      writeSnapshot(path, utf8.encode(JSON.stringify(meta)), this.#fsync, DENO_FILE_SYSTEM).close();
    } catch (err) {
      throw storeError(`cannot write ${path}`, err);
    }
  }

  /** Forgets `clientId`'s persistent session: closes its store and removes its files. */
  dropSession(clientId: string): void {
    const store = this.#stores.get(clientId);
    if (store === undefined) return;
    this.#stores.delete(clientId);
    this.#meta.delete(clientId);
    this.#metaFailed.delete(clientId);
    store.close();
    this.#removeFiles(`${this.#dir}/sessions/${keyOf(clientId)}`);
  }

  /** Removes a session's files (`base` + `.json`, …), logging what cannot be. */
  #removeFiles(base: string): void {
    // The name first: a journal without one is never loaded.
    for (const path of [`${base}.json`, `${base}.journal`, `${base}.journal.lock`]) {
      try {
        Deno.removeSync(path);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) {
          this.#log(`Persistence: cannot remove ${path}: ${err}.`);
        }
      }
    }
  }

  /**
   * Records that `topic` retains `payload` (empty: retains nothing any more),
   * with its MQTT 5.0 properties and publish time when it has them. Never
   * throws: when the journal cannot be written, the retained store in memory
   * (`retainedSource`) holds the change, one line is logged, and the journal
   * is rewritten from memory at a change at least {@linkcode RETRY_MS} later,
   * or by `retryFailed`.
   */
  retain(
    topic: string,
    payload: Uint8Array,
    qos: QoS,
    before: Uint8Array | undefined,
    extra?: Pick<RetainedMessage, "properties" | "publishedAt">,
  ): void {
    if (this.#retainedFailure !== undefined) {
      // Memory holds the change; a rewrite from memory takes it with the rest.
      if (performance.now() >= this.#retainedRetryAt) this.#retryRetained();
      return;
    }
    const record: PublishRecord = payload.length === 0
      ? { topic, payload: EMPTY, qos: 0, retain: false }
      : extra?.properties === undefined
      ? { topic, payload, qos, retain: true }
      : { topic, payload, qos, retain: true, ...timedProperties(extra) };
    this.#enc.publish(PUSH, 0, record, 0);
    try {
      this.#append();
    } catch (err) {
      this.#retainedFailure = err;
      this.#retainedRetryAt = performance.now() + RETRY_MS;
      return this.#log(
        `Persistence: ${(err as Error).message}; retained messages are kept in memory only ` +
          `(lost if the broker stops) until the journal can be rewritten (tried again at a ` +
          `change after ${RETRY_MS / 1000} s, and at shutdown).`,
      );
    }
    this.#liveBytes += (payload.length === 0 ? 0 : topic.length * 3 + payload.length + 14) -
      (before === undefined ? 0 : topic.length * 3 + before.length + 14);
    if (this.#size > Math.max(COMPACT_BYTES, 2 * this.#liveBytes, this.#compactFloor)) {
      try {
        this.#compactRetained();
      } catch (err) {
        // The journal stays valid: try again once it has grown some more, not at every change
        // (one line per message on a full disk).
        this.#compactFloor = this.#size + COMPACT_BYTES;
        this.#log(`Persistence: cannot compact the retained journal: ${err}.`);
      }
    }
  }

  /** Rewrites the failed retained journal from memory; logs when it succeeds. */
  #retryRetained(): void {
    this.#retainedRetryAt = performance.now() + RETRY_MS;
    try {
      this.#compactRetained();
    } catch {
      return; // still failing: said once already
    }
    this.#retainedFailure = undefined;
    this.#log(
      `Persistence: the retained messages are stored again in ${this.#dir}/retained.journal.`,
    );
  }

  /**
   * Rewrites every file whose writes failed from what the broker holds in
   * memory (the broker shuts down: call it before letting go of its state).
   */
  retryFailed(): void {
    if (this.#retainedFailure !== undefined) this.#retryRetained();
    for (const clientId of [...this.#metaFailed]) this.updateSession(clientId, {});
    for (const store of this.#stores.values()) store.retry();
  }

  /** Closes every file; what is written stays. */
  close(): void {
    for (const store of this.#stores.values()) store.close();
    this.#stores.clear();
    this.#file?.close();
    this.#file = undefined;
    try {
      this.#lock.close();
    } catch {
      // Closed already.
    }
  }

  #append(): void {
    const enc = this.#enc;
    const data = enc.buf.subarray(0, enc.length);
    enc.length = 0;
    const file = this.#file;
    if (file === undefined) throw new MqttError("STORE_ERROR", "the broker's store is closed");
    try {
      // A torn tail that cannot be cut is left: loading ignores it.
      appendToJournal(file, data, this.#size, this.#fsync);
    } catch (err) {
      throw storeError(`cannot write ${this.#dir}/retained.journal`, err);
    }
    this.#size += data.length;
  }

  /** Writes the retained messages as a fresh journal and renames it over the old one. */
  #compactRetained(): void {
    const path = `${this.#dir}/retained.journal`;
    const enc = new Encoder();
    enc.reserve(MAGIC.length);
    enc.buf.set(MAGIC, 0);
    enc.length = MAGIC.length;
    let live = 0;
    for (const message of this.retainedSource()) {
      const { topic, payload, qos } = message;
      enc.publish(PUSH, 0, { topic, payload, qos, retain: true, ...timedProperties(message) }, 0);
      live += message.topic.length * 3 + message.payload.length + 14;
    }
    const data = enc.buf.subarray(0, enc.length);
    let file: OpenFile;
    try {
      file = writeSnapshot(path, data, this.#fsync, DENO_FILE_SYSTEM);
    } catch (err) {
      throw storeError(`cannot compact ${path}`, err);
    }
    this.#file?.close();
    this.#file = file;
    this.#size = data.length;
    this.#liveBytes = live;
  }
}

/** A session's store at `path` that logs its write failures and rewrites itself from memory. */
function sessionJournal(
  clientId: string,
  path: string,
  store: FileStore,
  fsync: boolean,
  log: (line: string) => void,
): SessionJournal<FileStore> {
  return new SessionJournal(store, {
    clientId,
    path,
    log,
    rewrite: (state) => rewriteUnlockedStore(path, fsync, state),
    setIdle: setStoreIdle,
  });
}

/** A retained message's 5.0 properties and publish time, as a journal record keeps them. */
function timedProperties(
  message: Pick<RetainedMessage, "properties" | "publishedAt">,
): Pick<PublishRecord, "properties" | "publishedAt"> {
  const { properties, publishedAt } = message;
  if (properties === undefined) return {};
  return publishedAt === undefined ? { properties } : { properties, publishedAt };
}

/** Reads the retained journal at `path` (none: no retained messages). */
async function loadRetained(
  path: string,
  log: (line: string) => void,
): Promise<Map<string, RetainedMessage>> {
  const retained = new Map<string, RetainedMessage>();
  let buf: Uint8Array;
  try {
    buf = await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return retained;
    throw storeError(`cannot read ${path}`, err);
  }
  if (buf.length < MAGIC.length) return retained; // created, never written
  if (!isJournalHeader(buf.subarray(0, MAGIC.length))) {
    throw new MqttError("STORE_ERROR", `${path} is not a journal`);
  }
  const image = new Image();
  const { damaged } = replay(buf, image);
  if (damaged.length > 0) {
    let keptAt: string | undefined;
    for (let n = 1; keptAt === undefined; n++) {
      const copy = `${path}.corrupt-${n}`;
      try {
        await Deno.writeFile(copy, buf, { createNew: true });
        keptAt = copy;
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) {
          throw storeError(`cannot keep a copy of the damaged ${path}`, err);
        }
      }
    }
    log(`Persistence: ${new StoreCorruptionError(path, damaged, keptAt).message}.`);
  }
  const wallNow = Date.now();
  const monoNow = performance.now();
  for (const record of image.waiting) {
    if (!record.retain) {
      retained.delete(record.topic);
      continue;
    }
    const { topic, payload, qos, properties, publishedAt } = record;
    const interval = properties?.messageExpiryInterval;
    if (interval === undefined) {
      retained.set(
        topic,
        properties === undefined ? { topic, payload, qos } : {
          topic,
          payload,
          qos,
          properties,
          publishedAt,
        },
      );
      continue;
    }
    // The Message Expiry Interval runs on across the restart (MQTT 5.0 section 3.3.2.3.3):
    // from the publish time, in wall-clock time, since the monotonic clock restarted.
    const left = (publishedAt ?? wallNow) + interval * 1000 - wallNow;
    if (left <= 0) retained.delete(topic);
    else {
      retained.set(topic, {
        topic,
        payload,
        qos,
        properties,
        publishedAt,
        expiresAt: monoNow + left,
      });
    }
  }
  return retained;
}
