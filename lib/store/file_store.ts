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
 * File format: an 8-byte magic, then records `[u32 body length][body][u32
 * CRC-32 of body]` (little-endian). A record cut short by a crash, or one
 * whose CRC does not match, ends the journal: it and anything after it are
 * ignored on load. Compaction writes the live state as a fresh journal to
 * `<path>.tmp` and renames it over `<path>` (atomic), on open and whenever the
 * journal has grown past twice the live state (and at least `compactBytes`).
 *
 * One store at a time may use a file: `open` takes an exclusive advisory lock
 * on `<path>.lock` (released by `close`, or by the kernel when the process
 * dies) and fails with `STORE_ERROR` while another store holds it.
 *
 * @module
 */
import { MqttError } from "../errors.ts";
import type { QoS } from "../codec/packet.ts";
import { Queue } from "../util/queue.ts";
import type { InflightRecord, PublishRecord, Store, StoredSession } from "./store.ts";

/** Options of {@linkcode FileStore.open}. */
export interface FileStoreOptions {
  /**
   * Flush every change to the disk (`fdatasync`) before returning, so records
   * survive a power loss too, not only a crashed process. @default {false}
   */
  fsync?: boolean;
  /** Journal size in bytes below which it is never compacted. @default {4 MiB} */
  compactBytes?: number;
}

const MAGIC = new TextEncoder().encode("MQTTSJ1\n");
const DEFAULT_COMPACT_BYTES = 4 * 1024 * 1024;

const PUT = 1;
const RELEASE = 2;
const REMOVE = 3;
const PUSH = 4;
const SHIFT = 5;
const INCOMING_ADD = 6;
const INCOMING_REMOVE = 7;
const INCOMING_CLEAR = 8;
const CLEAR = 9;
const NEXT_ID = 10;

const FLAG_DEQUEUED = 0x01;
const FLAG_RETAIN = 0x02;
const FLAG_RELEASED = 0x04;
const QOS_SHIFT = 4;

/** Bytes around a record's body: length before, CRC after. */
const FRAME = 8;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE 802.3) of `buf[start..end)`. */
function crc32(buf: Uint8Array, start: number, end: number): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function storeError(what: string, cause: unknown): MqttError {
  return new MqttError("STORE_ERROR", `${what}: ${(cause as Error)?.message ?? cause}`, { cause });
}

interface MutableInflight {
  packetId: number;
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  released: boolean;
}

/** The live state a journal describes; replaying records onto it is loading. */
class Image {
  inflight = new Map<number, MutableInflight>();
  waiting = new Queue<PublishRecord>();
  incoming = new Set<number>();
  nextId = 1;
  /** Bytes the state takes as a snapshot, roughly (drives compaction). */
  liveBytes = 0;

  put(packetId: number, record: PublishRecord, dequeued: boolean): void {
    if (dequeued) this.shift();
    const { topic, payload, qos, retain } = record;
    const old = this.inflight.get(packetId);
    if (old !== undefined) this.liveBytes -= recordSize(old);
    const r = { packetId, topic, payload, qos, retain, released: false };
    this.inflight.set(packetId, r);
    this.liveBytes += recordSize(r);
    this.nextId = packetId === 65535 ? 1 : packetId + 1;
  }

  remove(packetId: number): void {
    const r = this.inflight.get(packetId);
    if (r === undefined) return;
    this.liveBytes -= recordSize(r);
    this.inflight.delete(packetId);
  }

  push(record: PublishRecord): void {
    this.waiting.push(record);
    this.liveBytes += recordSize(record);
  }

  shift(): void {
    const r = this.waiting.shift();
    if (r !== undefined) this.liveBytes -= recordSize(r);
  }

  clear(): void {
    this.inflight.clear();
    this.waiting.drain();
    this.incoming.clear();
    this.nextId = 1;
    this.liveBytes = 0;
  }
}

/** Upper bound of a publish record's encoded size (topic counted at 3 bytes a UTF-16 unit). */
function recordSize(r: PublishRecord): number {
  return FRAME + 6 + r.topic.length * 3 + r.payload.byteLength;
}

const decoder = new TextDecoder();

/**
 * Replays the records of `buf` (after the magic) onto `image`; returns the
 * offset where the valid journal ends (a torn or corrupt record stops it).
 */
function replay(buf: Uint8Array, image: Image): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = MAGIC.length;
  while (pos + FRAME <= buf.length) {
    const len = view.getUint32(pos, true);
    const start = pos + 4;
    const end = start + len;
    if (len === 0 || end + 4 > buf.length) break; // torn: the crash came mid-write
    if (crc32(buf, start, end) !== view.getUint32(end, true)) break;
    if (!apply(buf, view, start, end, image)) break;
    pos = end + 4;
  }
  return pos;
}

/** Applies one record's body; false when it does not parse (treated like a torn record). */
function apply(buf: Uint8Array, view: DataView, start: number, end: number, image: Image): boolean {
  const type = buf[start];
  const len = end - start;
  switch (type) {
    case PUT:
    case PUSH: {
      const head = type === PUT ? 6 : 4;
      if (len < head) return false;
      const flags = buf[start + 1];
      const qos = (flags >> QOS_SHIFT) & 3;
      if (qos > 2 || (type === PUT && qos === 0)) return false;
      const topicLen = view.getUint16(start + head - 2, true);
      const topicEnd = start + head + topicLen;
      if (topicEnd > end) return false;
      const record = {
        topic: decoder.decode(buf.subarray(start + head, topicEnd)),
        // A copy: the record must not pin the whole file buffer.
        payload: buf.slice(topicEnd, end),
        qos: qos as QoS,
        retain: (flags & FLAG_RETAIN) !== 0,
      };
      if (type === PUSH) {
        image.push(record);
      } else {
        const id = view.getUint16(start + 2, true);
        if (id === 0) return false;
        image.put(id, record, (flags & FLAG_DEQUEUED) !== 0);
        if ((flags & FLAG_RELEASED) !== 0) image.inflight.get(id)!.released = true;
      }
      return true;
    }
    case RELEASE:
    case REMOVE:
    case INCOMING_ADD:
    case INCOMING_REMOVE:
    case NEXT_ID: {
      if (len !== 3) return false;
      const id = view.getUint16(start + 1, true);
      if (id === 0) return false;
      if (type === RELEASE) {
        const r = image.inflight.get(id);
        if (r !== undefined) r.released = true;
      } else if (type === REMOVE) image.remove(id);
      else if (type === INCOMING_ADD) image.incoming.add(id);
      else if (type === INCOMING_REMOVE) image.incoming.delete(id);
      else image.nextId = id;
      return true;
    }
    case SHIFT:
    case INCOMING_CLEAR:
    case CLEAR:
      if (len !== 1) return false;
      if (type === SHIFT) image.shift();
      else if (type === INCOMING_CLEAR) image.incoming.clear();
      else image.clear();
      return true;
    default:
      return false;
  }
}

/** Encodes records into a growable buffer. */
class Encoder {
  buf = new Uint8Array(4096);
  view = new DataView(this.buf.buffer);
  length = 0;
  readonly #text = new TextEncoder();

  reserve(extra: number): void {
    const need = this.length + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** A record with a 16-bit id, or none (`id` undefined). */
  small(type: number, id?: number): void {
    this.reserve(FRAME + 3);
    const start = this.length + 4;
    this.buf[start] = type;
    let end = start + 1;
    if (id !== undefined) {
      this.view.setUint16(end, id, true);
      end += 2;
    }
    this.#seal(start, end);
  }

  /** A PUT (with `packetId`) or PUSH record. */
  publish(type: number, packetId: number, r: PublishRecord, flags: number): void {
    const head = type === PUT ? 6 : 4;
    this.reserve(FRAME + head + r.topic.length * 3 + r.payload.byteLength);
    const buf = this.buf;
    const start = this.length + 4;
    buf[start] = type;
    buf[start + 1] = flags | (r.qos << QOS_SHIFT) | (r.retain ? FLAG_RETAIN : 0);
    if (type === PUT) this.view.setUint16(start + 2, packetId, true);
    const topicAt = start + head;
    const { written } = this.#text.encodeInto(r.topic, buf.subarray(topicAt));
    if (written > 0xffff) throw new MqttError("STORE_ERROR", "topic longer than 65535 bytes");
    this.view.setUint16(topicAt - 2, written, true);
    const payloadAt = topicAt + written;
    buf.set(r.payload, payloadAt);
    this.#seal(start, payloadAt + r.payload.byteLength);
  }

  #seal(start: number, end: number): void {
    this.view.setUint32(start - 4, end - start, true);
    this.view.setUint32(end, crc32(this.buf, start, end), true);
    this.length = end + 4;
  }
}

/** Writes all of `data` with synchronous writes (a write may be partial). */
function writeAll(file: Deno.FsFile, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += file.writeSync(data.subarray(off));
}

/** The whole live state as a journal: magic, then one record per live entry. */
function snapshot(image: Image): Uint8Array {
  const enc = new Encoder();
  enc.reserve(MAGIC.length + image.liveBytes + image.incoming.size * (FRAME + 3) + 64);
  enc.buf.set(MAGIC, 0);
  enc.length = MAGIC.length;
  for (const r of image.inflight.values()) {
    enc.publish(PUT, r.packetId, r, r.released ? FLAG_RELEASED : 0);
  }
  for (const r of image.waiting) enc.publish(PUSH, 0, r, 0);
  for (const id of image.incoming) enc.small(INCOMING_ADD, id);
  enc.small(NEXT_ID, image.nextId);
  return enc.buf.subarray(0, enc.length);
}

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
 * store.close();
 * const again = await FileStore.open(`${dir}/session.journal`);
 * console.log(again.load().incoming); // [ 42 ]
 * again.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class FileStore implements Store {
  readonly #path: string;
  readonly #fsync: boolean;
  readonly #compactBytes: number;
  readonly #image: Image;
  readonly #enc = new Encoder();
  #file: Deno.FsFile | undefined;
  #lock: Deno.FsFile | undefined;
  /** Bytes in the file now. */
  #size = 0;
  /** Compact when the file grows past this. */
  #compactAt = 0;

  private constructor(
    path: string,
    image: Image,
    fsync: boolean,
    compactBytes: number,
  ) {
    this.#path = path;
    this.#image = image;
    this.#fsync = fsync;
    this.#compactBytes = compactBytes;
  }

  /**
   * Opens (or creates) the journal at `path`, loads it (ignoring a torn last
   * record) and compacts it. Throws `MqttError("STORE_ERROR")` when the file
   * cannot be read or written, or is not a journal of this store.
   */
  static async open(path: string, options: FileStoreOptions = {}): Promise<FileStore> {
    const compactBytes = options.compactBytes ?? DEFAULT_COMPACT_BYTES;
    if (!(compactBytes >= 0)) {
      throw new MqttError("INVALID_OPTION", `compactBytes must be >= 0, got ${compactBytes}`);
    }
    const lock = await lockFile(path);
    let buf: Uint8Array;
    try {
      buf = await Deno.readFile(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        lock.close();
        throw storeError(`cannot read ${path}`, err);
      }
      buf = new Uint8Array(0);
    }
    const image = new Image();
    const header = buf.subarray(0, MAGIC.length);
    if (!header.every((b, i) => b === MAGIC[i])) {
      // Only a file we never finished creating may lack the magic; refuse to clobber others.
      lock.close();
      throw new MqttError("STORE_ERROR", `${path} is not a session journal`);
    }
    if (buf.length >= MAGIC.length) replay(buf, image);
    const store = new FileStore(path, image, options.fsync ?? false, compactBytes);
    store.#lock = lock;
    try {
      store.#compact();
    } catch (err) {
      store.close();
      throw err;
    }
    return store;
  }

  /** Everything stored, copied. */
  load(): StoredSession {
    const image = this.#image;
    return {
      inflight: [...image.inflight.values()].map((r): InflightRecord => ({ ...r })),
      waiting: [...image.waiting],
      incoming: [...image.incoming],
      nextPacketId: image.nextId,
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

  /** Forgets everything. */
  clear(): void {
    this.#small(CLEAR);
    this.#image.clear();
    this.#maybeCompact();
  }

  /** Closes the file. The journal stays for the next {@linkcode FileStore.open}. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
    const lock = this.#lock;
    this.#lock = undefined;
    if (lock !== undefined) {
      // Unlock first: closing alone may release the lock late, when the runtime
      // defers closing the descriptor, and a reopen right after would find it held.
      try {
        lock.unlockSync();
      } finally {
        lock.close();
      }
    }
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
    const file = this.#file;
    if (file === undefined) throw new MqttError("STORE_ERROR", "the store is closed");
    try {
      writeAll(file, data);
      if (this.#fsync) file.syncDataSync();
    } catch (err) {
      // Cut a partly written record off, so later records stay readable.
      try {
        file.truncateSync(this.#size);
        file.seekSync(this.#size, Deno.SeekMode.Start);
      } catch {
        // A torn tail that cannot be cut would hide every later record: write a
        // fresh snapshot at the next change instead of appending after it.
        this.#compactAt = 0;
      }
      throw storeError(`cannot write ${this.#path}`, err);
    }
    this.#size += data.length;
  }

  /** Compacts once the journal has grown enough (called after the image took the change). */
  #maybeCompact(): void {
    if (this.#size <= this.#compactAt) return;
    try {
      this.#compact();
    } catch {
      // The change is already in the journal, which stays valid: try again
      // after it has grown some more rather than fail a recorded change.
      this.#compactAt = this.#size + Math.max(this.#compactBytes, this.#size);
    }
  }

  /** Writes the live state to `<path>.tmp` and renames it over the journal (atomic). */
  #compact(): void {
    const path = this.#path;
    const tmp = `${path}.tmp`;
    const data = snapshot(this.#image);
    let file: Deno.FsFile | undefined;
    try {
      file = Deno.openSync(tmp, { write: true, create: true, truncate: true });
      writeAll(file, data);
      // Power-loss safety needs the data on disk before the rename is.
      if (this.#fsync) file.syncSync();
      Deno.renameSync(tmp, path);
      if (this.#fsync) syncDirectory(path);
    } catch (err) {
      file?.close();
      throw storeError(`cannot compact ${path}`, err);
    }
    this.#file?.close();
    this.#file = file;
    this.#size = data.length;
    this.#compactAt = Math.max(this.#compactBytes, 2 * data.length);
  }
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
    locked = await file.tryLock(true);
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

/** Flushes the directory entry of `path` (the rename) to disk, where the platform allows it. */
function syncDirectory(path: string): void {
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
  let handle: Deno.FsFile | undefined;
  try {
    handle = Deno.openSync(dir, { read: true });
    handle.syncSync();
  } catch {
    // Not every platform can open or sync a directory; the rename is still atomic.
  } finally {
    handle?.close();
  }
}
