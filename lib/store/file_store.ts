/**
 * A durable {@linkcode Store} in one file: an append-only journal of the
 * session's changes, compacted into a snapshot now and then.
 *
 * Durability: every change is written with a synchronous `write` before the
 * store method returns, so it is in the kernel before the session hands the
 * packet that depends on it to the driver. That survives the process being
 * killed (even `kill -9`), not a power loss or kernel crash; for those, open
 * with `{ fsync: true }` (each change is then also flushed to the disk, which
 * costs a disk round trip per change).
 *
 * The file format, and how loading reads on over damaged records, are
 * described in `./journal.ts`. {@linkcode FileStore.open} refuses a journal
 * with damaged records with a {@linkcode StoreCorruptionError} saying what was
 * skipped, unless given `onCorruption`; with it, it keeps a copy of the
 * damaged journal at `<path>.corrupt-<n>` before any compaction can drop the
 * damaged bytes.
 *
 * Compaction writes the live state as a fresh journal to `<path>.tmp` and
 * renames it over `<path>` (atomic), on open and whenever the journal has
 * grown past twice the live state (and at least `compactBytes`). When that
 * cannot be written (a full disk), the temporary file is removed and the
 * store goes on appending to the journal it has.
 *
 * One store at a time may use a file: `open` takes an exclusive advisory lock
 * on `<path>.lock` (released by `close`, or by the kernel when the process
 * dies) and fails with `STORE_ERROR` while another store holds it. `<path>` is
 * resolved first, so a symbolic link to a journal locks and compacts the
 * journal it points to, and stays a link.
 *
 * @module
 */
import { MqttError } from "../errors.ts";
import type { QoS } from "../codec/packet.ts";
import {
  type InflightRecord,
  type PublishRecord,
  type Store,
  type StoredSession,
  subscriptionByte,
  type SubscriptionFlags,
  subscriptionRecord,
} from "./store.ts";
import {
  CLEAR,
  Encoder,
  FLAG_DEQUEUED,
  Image,
  INCOMING_ADD,
  INCOMING_CLEAR,
  INCOMING_REMOVE,
  isJournalHeader,
  MAGIC,
  PUSH,
  PUT,
  RELEASE,
  REMOVE,
  replay,
  SHIFT,
  snapshot,
  StoreCorruptionError,
  SUB,
  UNSUB,
} from "./journal.ts";

import {
  DENO_FILE_SYSTEM,
  type JournalFile,
  type OpenFile,
  splitPath,
  syncDirectory,
  writeAll,
  writeSnapshot,
} from "./snapshot_file.ts";

export { type DamagedRegion, StoreCorruptionError } from "./journal.ts";
export { type JournalFile, writeAll } from "./snapshot_file.ts";

/** Options of {@linkcode FileStore.open}. */
export interface FileStoreOptions {
  /**
   * Flush every change to the disk (`fdatasync`) before returning, so records
   * survive a power loss too, not only a crashed process. @default {false}
   */
  fsync?: boolean;
  /** Journal size in bytes below which it is never compacted. @default {4 MiB} */
  compactBytes?: number;
  /**
   * Accepts a damaged journal. Without it, {@linkcode FileStore.open} throws
   * a {@linkcode StoreCorruptionError} when records in the journal cannot be
   * read, and leaves the files as they are. With it, `open` loads every record
   * it can read, keeps a copy of the damaged journal at `<path>.corrupt-<n>`
   * (the error's `keptAt`), calls this with the error, then compacts the
   * journal and returns the store. If no copy can be written, the store never
   * compacts, so the damaged bytes stay in the journal. If this throws, `open`
   * rejects with that exception and leaves the journal as it was (the copy
   * stays).
   *
   * What the skipped records did is missing from the loaded state, and later
   * records may refer to it: a `shiftWaiting` after a lost `pushWaiting`
   * drops the publish before it.
   */
  onCorruption?: (error: StoreCorruptionError) => void;
}

const DEFAULT_COMPACT_BYTES = 4 * 1024 * 1024;

/** A `STORE_ERROR` saying what could not be done and why (the file system's error). */
export function storeError(what: string, cause: unknown): MqttError {
  return new MqttError("STORE_ERROR", `${what}: ${(cause as Error)?.message ?? cause}`, { cause });
}

/**
 * Appends `data` to a journal file `size` bytes long, synced to disk when
 * `fsync`. When the write fails, the partly written record is cut off (so the
 * records written after it stay readable) and the write's error is thrown;
 * `tornTail` is called when the cut fails too.
 */
export function appendToJournal(
  file: JournalFile,
  data: Uint8Array,
  size: number,
  fsync: boolean,
  tornTail?: () => void,
): void {
  try {
    writeAll(file, data);
    if (fsync) file.syncDataSync();
  } catch (err) {
    try {
      file.truncateSync(size);
      file.seekSync(size, 0);
    } catch {
      tornTail?.();
    }
    throw err;
  }
}

/** What the broker's persistence opens its session journals with (see the functions below). */
interface UnlockedJournals {
  create(path: string, fsync: boolean, state?: StoredSession): FileStore;
  open(
    path: string,
    options: { fsync: boolean; onCorruption: (error: StoreCorruptionError) => void },
  ): Promise<FileStore>;
  setIdle(store: FileStore, idle: boolean): void;
}

/** Set by {@linkcode FileStore}'s static block, which can reach its private parts. */
let unlocked: UnlockedJournals;

/** Idle stores whose journals are open yet, least recently written first. */
const recentIdle = new Set<FileStore>();
/**
 * How many idle journals stay open after a change: a stream of messages for one offline
 * session then costs no open and close each (20-35 µs against 3 µs for the write alone).
 */
const IDLE_OPEN_FILES = 16;

/**
 * A durable store in one journal file. Open it with
 * {@linkcode FileStore.open}; close it when the client is closed.
 *
 * @example
 * ```ts
 * import { FileStore } from "./file_store.ts";
 * const dir = await Deno.makeTempDir();
 * const store = await FileStore.open(`${dir}/session.journal`);
 * store.addIncoming(42);
 * store.putSubscription("sensors/+/temp", 1);
 * store.close();
 * const again = await FileStore.open(`${dir}/session.journal`);
 * console.log(again.load().incoming); // [ 42 ]
 * console.log(again.load().subscriptions); // [ { filter: "sensors/+/temp", qos: 1 } ]
 * again.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class FileStore implements Store {
  readonly #path: string;
  readonly #fsync: boolean;
  readonly #compactBytes: number;
  readonly #image: Image;
  /** False while the journal holds damaged bytes that no copy keeps: compacting would drop them. */
  readonly #mayCompact: boolean;
  readonly #enc = new Encoder();
  #file: OpenFile | undefined;
  #lock: Deno.FsFile | undefined;
  /**
   * Whether the journal is kept closed between changes (see `setStoreIdle`), so that a store
   * nobody uses holds no file descriptor.
   */
  #idle = false;
  #closed = false;
  /** Bytes in the file now. */
  #size = 0;
  /** Compact when the file grows past this. */
  #compactAt = 0;

  private constructor(
    path: string,
    image: Image,
    fsync: boolean,
    compactBytes: number,
    mayCompact: boolean,
  ) {
    this.#path = path;
    this.#image = image;
    this.#fsync = fsync;
    this.#compactBytes = compactBytes;
    this.#mayCompact = mayCompact;
  }

  /**
   * Opens (or creates) the journal at `path` (a symbolic link is followed),
   * loads it (ignoring a torn last record) and compacts it; when compaction
   * cannot be written (a full disk), it appends to the journal as it is.
   * Throws {@linkcode StoreCorruptionError} (`STORE_CORRUPT`) when records
   * cannot be read, unless `options.onCorruption` accepts that, and
   * `MqttError("STORE_ERROR")` when the file cannot be read or written, is not
   * a journal of this store, or is in use by another store.
   */
  static async open(path: string, options: FileStoreOptions = {}): Promise<FileStore> {
    const compactBytes = options.compactBytes ?? DEFAULT_COMPACT_BYTES;
    if (!(compactBytes >= 0)) {
      throw new MqttError("INVALID_OPTION", `compactBytes must be >= 0, got ${compactBytes}`);
    }
    const { onCorruption } = options;
    if (onCorruption !== undefined && typeof onCorruption !== "function") {
      throw new MqttError("INVALID_OPTION", "onCorruption must be a function");
    }
    const fsync = options.fsync ?? false;
    // Two names of one file must meet at one lock, and compaction must replace the file, not a link.
    const real = await resolvePath(path);
    const lock = await lockFile(real);
    return await FileStore.#load(real, fsync, compactBytes, onCorruption, lock);
  }

  /**
   * Loads the journal at `real` (a resolved path) and compacts it, or appends
   * to it as it is when no snapshot can be written. Holds `lock` until closed
   * (none: the caller's own lock covers the file); releases it on failure.
   */
  static async #load(
    real: string,
    fsync: boolean,
    compactBytes: number,
    onCorruption: FileStoreOptions["onCorruption"],
    lock: Deno.FsFile | undefined,
  ): Promise<FileStore> {
    let store: FileStore | undefined;
    try {
      let buf: Uint8Array;
      try {
        buf = await Deno.readFile(real);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw storeError(`cannot read ${real}`, err);
        buf = new Uint8Array(0);
      }
      // Only a file we never finished creating may lack the magic; refuse to clobber others.
      if (!isJournalHeader(buf.subarray(0, MAGIC.length))) {
        throw new MqttError("STORE_ERROR", `${real} is not a session journal`);
      }
      const image = new Image();
      const { end, damaged } = buf.length >= MAGIC.length
        ? replay(buf, image)
        : { end: buf.length, damaged: [] };
      let corruption: StoreCorruptionError | undefined;
      if (damaged.length > 0) {
        if (onCorruption === undefined) throw new StoreCorruptionError(real, damaged);
        let keptAt: string | undefined;
        let failure: unknown;
        try {
          keptAt = keepCopy(real, buf, fsync);
        } catch (err) {
          failure = err;
        }
        corruption = new StoreCorruptionError(real, damaged, keptAt, failure);
        // Before any compaction: a callback that refuses leaves the journal as it was.
        onCorruption(corruption);
      }
      const mayCompact = corruption === undefined || corruption.keptAt !== undefined;
      store = new FileStore(real, image, fsync, compactBytes, mayCompact);
      store.#lock = lock;
      store.#idle = lock === undefined;
      let compacted = false;
      if (mayCompact) {
        try {
          store.#compact();
          compacted = true;
        } catch {
          // No room for a snapshot: the journal as it is serves as well.
        }
      }
      if (!compacted) store.#appendTo(buf, end);
      return store;
    } catch (err) {
      if (store !== undefined) store.close();
      else if (lock !== undefined) releaseLock(lock);
      throw err;
    }
  }

  static {
    // The broker's persistence: its directory lock covers the journals in it, so they need
    // no lock file, and an offline session's journal holds no open file.
    unlocked = {
      create(path, fsync, state) {
        const store = new FileStore(path, imageOf(state), fsync, DEFAULT_COMPACT_BYTES, true);
        store.#compact(); // a fresh journal replaces whatever was at `path`, atomically
        return store;
      },
      async open(path, options) {
        const store = await FileStore.#load(
          path,
          options.fsync,
          DEFAULT_COMPACT_BYTES,
          options.onCorruption,
          undefined,
        );
        store.#release(); // loaded for an offline session
        return store;
      },
      setIdle(store, idle) {
        store.#idle = idle;
        // Going offline closes the journal; coming back keeps it open from its next change on.
        if (idle) store.#release();
        else recentIdle.delete(store);
      },
    };
  }

  /** Everything stored, copied. */
  load(): StoredSession {
    const image = this.#image;
    return {
      inflight: [...image.inflight.values()].map((r): InflightRecord => ({ ...r })),
      waiting: [...image.waiting],
      incoming: [...image.incoming],
      nextPacketId: image.nextId,
      subscriptions: [...image.subscriptions].map(([filter, options]) =>
        subscriptionRecord(filter, options)!
      ),
    };
  }

  // Every mutator writes its journal record first and changes the in-memory image only
  // once the write succeeded: a failed write leaves image and journal alike, so a later
  // compaction cannot record a change the session never made.

  /** Records a publish entering flight, optionally leaving the waiting queue in the same record. */
  putInflight(packetId: number, record: PublishRecord, dequeued: boolean): void {
    this.#enc.publish(PUT, packetId, record, dequeued ? FLAG_DEQUEUED : 0);
    this.#append();
    this.#image.put(packetId, record, dequeued);
    this.#maybeCompact();
  }

  /** Records PUBREC for a QoS 2 publish. */
  markReleased(packetId: number): void {
    const r = this.#image.inflight.get(packetId);
    if (r === undefined || r.released) return;
    this.#small(RELEASE, packetId);
    r.released = true;
    this.#maybeCompact();
  }

  /** Records a completed flow. */
  removeInflight(packetId: number): void {
    if (!this.#image.inflight.has(packetId)) return;
    this.#small(REMOVE, packetId);
    this.#image.remove(packetId);
    this.#maybeCompact();
  }

  /** Records a publish joining the waiting queue. */
  pushWaiting(record: PublishRecord): void {
    this.#enc.publish(PUSH, 0, record, 0);
    this.#append();
    this.#image.push(record);
    this.#maybeCompact();
  }

  /** Records the head of the waiting queue leaving it. */
  shiftWaiting(): void {
    if (this.#image.waiting.length === 0) return;
    this.#small(SHIFT);
    this.#image.shift();
    this.#maybeCompact();
  }

  /** Records an incoming QoS 2 id. */
  addIncoming(packetId: number): void {
    this.#small(INCOMING_ADD, packetId);
    this.#image.incoming.add(packetId);
    this.#maybeCompact();
  }

  /** Records PUBREL for an incoming QoS 2 id. */
  removeIncoming(packetId: number): void {
    if (!this.#image.incoming.has(packetId)) return;
    this.#small(INCOMING_REMOVE, packetId);
    this.#image.incoming.delete(packetId);
    this.#maybeCompact();
  }

  /** Forgets every incoming QoS 2 id. */
  clearIncoming(): void {
    if (this.#image.incoming.size === 0) return;
    this.#small(INCOMING_CLEAR);
    this.#image.incoming.clear();
    this.#maybeCompact();
  }

  /**
   * Records a subscription (a filter held already keeps its place). Throws
   * `INVALID_QOS` for a QoS other than 0, 1 or 2.
   */
  putSubscription(filter: string, qos: QoS, flags?: SubscriptionFlags): void {
    if (qos !== 0 && qos !== 1 && qos !== 2) {
      throw new MqttError("INVALID_QOS", `a subscription's QoS must be 0, 1 or 2, got ${qos}`);
    }
    const options = subscriptionByte(qos, flags);
    if (this.#image.subscriptions.get(filter) === options) return;
    this.#enc.subscription(SUB, filter, options);
    this.#append();
    this.#image.subscribe(filter, options);
    this.#maybeCompact();
  }

  /** Records an unsubscription. */
  removeSubscription(filter: string): void {
    if (!this.#image.subscriptions.has(filter)) return;
    this.#enc.subscription(UNSUB, filter, 0);
    this.#append();
    this.#image.unsubscribe(filter);
    this.#maybeCompact();
  }

  /** Forgets everything, subscriptions included. */
  clear(): void {
    this.#small(CLEAR);
    this.#image.clear();
    this.#maybeCompact();
  }

  /** Closes the file. The journal stays for the next {@linkcode FileStore.open}. */
  close(): void {
    this.#closed = true;
    this.#release();
    const lock = this.#lock;
    this.#lock = undefined;
    if (lock !== undefined) releaseLock(lock);
  }

  #small(type: number, id?: number): void {
    this.#enc.small(type, id);
    this.#append();
  }

  /** Appends the encoded record(s) to the journal; throws STORE_ERROR and changes nothing on failure. */
  #append(): void {
    const enc = this.#enc;
    const data = enc.buf.subarray(0, enc.length);
    enc.length = 0;
    if (this.#closed) throw new MqttError("STORE_ERROR", "the store is closed");
    try {
      const file = this.#file ?? this.#reopen();
      // A torn tail that cannot be cut would make the records after it damage
      // to skip: write a fresh snapshot at the next change instead.
      appendToJournal(file, data, this.#size, this.#fsync, () => this.#compactAt = 0);
    } catch (err) {
      if (this.#idle) this.#release();
      throw storeError(`cannot write ${this.#path}`, err);
    }
    if (this.#idle) this.#keepIdle();
    this.#size += data.length;
  }

  /**
   * An idle store that has just written keeps its journal open among the
   * {@linkcode IDLE_OPEN_FILES} most recently written; the least recently
   * written one beyond them is closed.
   */
  #keepIdle(): void {
    if (this.#file === undefined) return;
    recentIdle.delete(this);
    recentIdle.add(this);
    if (recentIdle.size <= IDLE_OPEN_FILES) return;
    for (const oldest of recentIdle) {
      oldest.#release();
      break;
    }
  }

  /** Opens the journal to append to it, at the end of what this store wrote. */
  #reopen(): OpenFile {
    const file = Deno.openSync(this.#path, { write: true });
    try {
      file.seekSync(this.#size, Deno.SeekMode.Start);
    } catch (err) {
      file.close();
      throw err;
    }
    this.#file = file;
    return file;
  }

  /** Closes the journal's file, if open; what is written stays. */
  #release(): void {
    recentIdle.delete(this);
    this.#file?.close();
    this.#file = undefined;
  }

  /** Compacts once the journal has grown enough (called after the image took the change). */
  #maybeCompact(): void {
    if (this.#size <= this.#compactAt || !this.#mayCompact) return;
    try {
      this.#compact();
    } catch {
      // The change is already in the journal, which stays valid: try again
      // after it has grown some more rather than fail a recorded change.
      this.#compactAt = this.#size + Math.max(this.#compactBytes, this.#size);
    }
  }

  /**
   * Writes the live state to `<path>.tmp` and renames it over the journal
   * (atomic). On failure the journal is untouched and the temporary file gone.
   */
  #compact(): void {
    const path = this.#path;
    const data = snapshot(this.#image);
    let file: OpenFile;
    try {
      file = writeSnapshot(path, data, this.#fsync, DENO_FILE_SYSTEM);
    } catch (err) {
      throw storeError(`cannot compact ${path}`, err);
    }
    this.#release();
    this.#file = file;
    if (this.#idle) this.#keepIdle();
    this.#size = data.length;
    this.#compactAt = Math.max(this.#compactBytes, 2 * data.length);
  }

  /**
   * Opens the journal (read as `buf`) to append to it without compacting:
   * writes the magic into a file that lacks it, cuts a torn tail at `end` (or
   * a record appended after it would be read as part of it) and upgrades a
   * `MQTTSJ1` header, since records of the new types may follow.
   */
  #appendTo(buf: Uint8Array, end: number): void {
    const path = this.#path;
    let file: OpenFile | undefined;
    let size = end;
    try {
      file = Deno.openSync(path, { write: true, create: true });
      if (buf.length < MAGIC.length) {
        file.truncateSync(0);
        writeAll(file, MAGIC);
        size = MAGIC.length;
        if (this.#fsync) {
          file.syncSync();
          syncDirectory(path);
        }
      } else {
        if (end < buf.length) file.truncateSync(end);
        if (buf[MAGIC.length - 2] !== MAGIC[MAGIC.length - 2]) writeAll(file, MAGIC);
        file.seekSync(end, Deno.SeekMode.Start);
      }
    } catch (err) {
      file?.close();
      throw storeError(`cannot write ${path}`, err);
    }
    this.#file = file;
    if (this.#idle) this.#release();
    this.#size = size;
    this.#compactAt = this.#mayCompact ? size + Math.max(this.#compactBytes, size) : Infinity;
  }
}

/**
 * The journal's real path: `path` with every symbolic link resolved. A
 * journal that does not exist yet is resolved through its directory (and
 * through a dangling link to it, which names where the journal will be).
 */
async function resolvePath(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw storeError(`cannot resolve ${path}`, err);
  }
  let target = path;
  for (let hops = 0; hops < 40; hops++) {
    let link: string;
    try {
      link = await Deno.readLink(target);
    } catch {
      break; // not a link (or not there): target is the journal's own name
    }
    target = isAbsolute(link) ? link : joinPath(splitPath(target)[0], link);
  }
  const [dir, name] = splitPath(target);
  try {
    return joinPath(await Deno.realPath(dir), name);
  } catch (err) {
    throw storeError(`cannot open ${path}`, err);
  }
}

function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") || dir.endsWith("\\") ? dir + name : `${dir}/${name}`;
}

function isAbsolute(path: string): boolean {
  return path.startsWith("/") ||
    (Deno.build.os === "windows" && /^([A-Za-z]:)?[\\/]/.test(path));
}

/**
 * Copies the damaged journal `buf` to the first free `<path>.corrupt-<n>`
 * before a compaction can drop its damaged bytes; returns that path, or
 * throws STORE_ERROR (leaving no partial copy).
 */
function keepCopy(path: string, buf: Uint8Array, fsync: boolean): string {
  for (let n = 1;; n++) {
    const aside = `${path}.corrupt-${n}`;
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(aside, { write: true, createNew: true });
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists && n < 1000) continue;
      throw storeError(`cannot keep a copy of ${path} at ${aside}`, err);
    }
    try {
      writeAll(file, buf);
      if (fsync) file.syncSync();
    } catch (err) {
      file.close();
      try {
        Deno.removeSync(aside);
      } catch {
        // Nothing more to do: the journal itself stays uncompacted.
      }
      throw storeError(`cannot keep a copy of ${path} at ${aside}`, err);
    }
    file.close();
    if (fsync) syncDirectory(aside);
    return aside;
  }
}

/** Unlocks and closes a lock file. */
function releaseLock(lock: Deno.FsFile): void {
  // Unlock first: closing alone may release the lock late, when the runtime
  // defers closing the descriptor, and a reopen right after would find it held.
  try {
    lock.unlockSync();
  } finally {
    lock.close();
  }
}

/** How long a lock held elsewhere is waited for before the holder counts as another owner. */
export const LOCK_WAIT_MS = 2000;

/**
 * Takes an exclusive lock on `file`, waiting up to `ms` for it; false if it is
 * still held then. A lock released by its owner can stay held a moment longer:
 * a process spawned meanwhile (by any thread) has a copy of the descriptor from
 * `fork` until its `exec` closes it, and until then the lock is still held.
 *
 * @example
 * ```ts ignore
 * const file = await Deno.open("dir/broker.lock", { write: true, create: true });
 * if (!(await lockWithin(file))) throw new Error("in use");
 * ```
 */
export async function lockWithin(
  // The one method used, so the declarations of this module name no Deno type (npm package).
  file: { tryLock(exclusive?: boolean): Promise<boolean> },
  ms: number = LOCK_WAIT_MS,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await file.tryLock(true))) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

/** Opens `<path>.lock` and takes an exclusive lock on it, or throws STORE_ERROR. */
async function lockFile(path: string): Promise<Deno.FsFile> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(`${path}.lock`, { write: true, create: true });
  } catch (err) {
    throw storeError(`cannot open ${path}.lock`, err);
  }
  let locked = false;
  try {
    locked = await lockWithin(file);
  } catch (err) {
    file.close();
    throw storeError(`cannot lock ${path}.lock`, err);
  }
  if (!locked) {
    file.close();
    throw new MqttError("STORE_ERROR", `${path} is in use by another store (process)`);
  }
  return file;
}

/**
 * A new, empty journal at `path` (an absolute path), replacing whatever is
 * there atomically, synchronously, without a lock file of its own: for the
 * broker's persistence, whose directory lock covers it. Throws `STORE_ERROR`.
 */
export function createUnlockedStore(path: string, fsync: boolean): FileStore {
  return unlocked.create(path, fsync);
}

/**
 * A journal at `path` (an absolute path) holding `state`, replacing whatever
 * is there atomically, as {@linkcode createUnlockedStore} does: for the
 * broker's persistence, to rewrite a session's journal from the session's
 * live state after writes to it failed. Throws `STORE_ERROR`.
 */
export function rewriteUnlockedStore(
  path: string,
  fsync: boolean,
  state: StoredSession,
): FileStore {
  return unlocked.create(path, fsync, state);
}

/** The image of `state` (none: empty), as replaying a journal of it would build it. */
function imageOf(state: StoredSession | undefined): Image {
  const image = new Image();
  if (state === undefined) return image;
  for (const { packetId, released, ...record } of state.inflight) {
    image.put(packetId, record, false);
    if (released) image.inflight.get(packetId)!.released = true;
  }
  for (const record of state.waiting) image.push(record);
  for (const id of state.incoming) image.incoming.add(id);
  image.nextId = state.nextPacketId;
  for (const { filter, qos, ...flags } of state.subscriptions) {
    image.subscribe(filter, subscriptionByte(qos, flags));
  }
  return image;
}

/**
 * {@linkcode FileStore.open} of a journal at `path` (an absolute path)
 * without a lock file of its own (the broker's directory lock covers it),
 * accepting damage through `onCorruption`. The store is idle (see
 * {@linkcode setStoreIdle}).
 */
export function openUnlockedStore(
  path: string,
  options: { fsync: boolean; onCorruption: (error: StoreCorruptionError) => void },
): Promise<FileStore> {
  return unlocked.open(path, options);
}

/**
 * Makes a store idle (its journal closed between changes: a change opens it
 * and appends with the same writes and flushes, and it stays open only while
 * among the {@linkcode IDLE_OPEN_FILES} idle journals most recently written)
 * or active (kept open once a change opened it). An offline session's store
 * is idle, so offline sessions hold a bounded number of file descriptors,
 * however many there are.
 */
export function setStoreIdle(store: FileStore, idle: boolean): void {
  unlocked.setIdle(store, idle);
}
