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
 * File format: the 8-byte magic `MQTTSJ2\n`, then records `[u32 body
 * length][body][u32 CRC-32 of body]` (little-endian). A body is a type byte
 * and the fields of that type:
 *
 * | type | written by           | fields after the type byte                                      |
 * | ---- | -------------------- | --------------------------------------------------------------- |
 * | 1    | `putInflight`        | flags u8, packet id u16, topic length u16, topic, payload (rest) |
 * | 2    | `markReleased`       | packet id u16                                                   |
 * | 3    | `removeInflight`     | packet id u16                                                   |
 * | 4    | `pushWaiting`        | flags u8, topic length u16, topic, payload (rest)               |
 * | 5    | `shiftWaiting`       | none                                                            |
 * | 6    | `addIncoming`        | packet id u16                                                   |
 * | 7    | `removeIncoming`     | packet id u16                                                   |
 * | 8    | `clearIncoming`      | none                                                            |
 * | 9    | `clear`              | none                                                            |
 * | 10   | next packet id       | packet id u16 (snapshots only)                                  |
 * | 11   | `putSubscription`    | options u8 (QoS in bits 0-1, bits 2-7 zero), filter (rest)      |
 * | 12   | `removeSubscription` | filter (rest)                                                   |
 *
 * Flags: bit 0 dequeued, bit 1 retain, bit 2 released, bits 4-5 QoS. Strings
 * are UTF-8. A filter is the rest of the body and must be valid UTF-8. The
 * options byte has the layout of MQTT 5's subscription options (3.8.3.1), so
 * their other bits can be stored later under the same type.
 *
 * Journals written before subscriptions were stored start with `MQTTSJ1\n`
 * and hold types 1 to 10 only; they load as they are, and the next compaction
 * rewrites them as `MQTTSJ2\n`. Older versions refuse a `MQTTSJ2\n` journal as
 * "not a session journal" rather than lose the records they cannot read.
 *
 * Damage: a record cut short at the end of the file (a crash mid-write), or a
 * zero-filled end (a power loss after the file grew), is a torn tail and is
 * dropped silently. Any other record that fails its CRC or does not parse is
 * damage: loading skips it, finds the next valid record (where the damaged
 * record's length says it ends, or else by scanning for a valid record
 * followed by another valid record or the end of the file) and goes on.
 * {@linkcode FileStore.open} then refuses the journal with a
 * {@linkcode StoreCorruptionError} saying what was skipped, unless given
 * `onCorruption`; with it, it keeps a copy of the damaged journal at
 * `<path>.corrupt-<n>` before any compaction can drop the damaged bytes.
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

/** One run of unreadable bytes in a journal, as {@linkcode StoreCorruptionError} reports it. */
export interface DamagedRegion {
  /** Offset of the first unreadable byte in the journal. */
  readonly offset: number;
  /** Number of unreadable bytes skipped. */
  readonly length: number;
  /**
   * Best guess at the record these bytes held, when their own length field
   * says they are one record: the store method that wrote it and its key,
   * e.g. `pushWaiting("orders/42")` or `addIncoming(7)` (the damaged bytes
   * may be in the key too). `undefined` when they do not look like one record.
   */
  readonly record: string | undefined;
}

/**
 * A journal holds records that cannot be read (code `STORE_CORRUPT`): a
 * record that fails its CRC or does not parse, anywhere but a torn last
 * record. Thrown by {@linkcode FileStore.open} without `onCorruption` (the
 * files are left untouched), or handed to `onCorruption`.
 *
 * @example
 * ```ts
 * import { FileStore, StoreCorruptionError } from "./file_store.ts";
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/session.journal`;
 * const store = await FileStore.open(path);
 * store.addIncoming(1);
 * store.addIncoming(2);
 * store.close();
 * const bytes = await Deno.readFile(path);
 * bytes[bytes.length - 15] ^= 0xff; // a byte of the CRC of the record adding 1
 * await Deno.writeFile(path, bytes);
 * try {
 *   await FileStore.open(path);
 * } catch (err) {
 *   if (err instanceof StoreCorruptionError) console.log(err.damaged[0].record); // addIncoming(1)
 * }
 * const repaired = await FileStore.open(path, { onCorruption: (err) => console.warn(err.message) });
 * console.log(repaired.load().incoming); // [ 2 ]
 * repaired.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class StoreCorruptionError extends MqttError {
  /** The journal's resolved path. */
  readonly path: string;
  /** The unreadable runs of bytes, in file order. */
  readonly damaged: readonly DamagedRegion[];
  /** Unreadable bytes in all. */
  readonly lostBytes: number;
  /**
   * Where the damaged journal was copied to before the store could compact it
   * (`<path>.corrupt-<n>`); `undefined` when thrown by `open` (nothing was
   * changed) or when the copy could not be written (then nothing is compacted).
   */
  readonly keptAt: string | undefined;

  /** Creates the report; `keepFailure` is why no copy could be kept, if one was tried. */
  constructor(
    path: string,
    damaged: readonly DamagedRegion[],
    keptAt?: string,
    keepFailure?: unknown,
  ) {
    const lostBytes = damaged.reduce((n, d) => n + d.length, 0);
    const regions = damaged.map((d) =>
      `${d.length} at offset ${d.offset}` +
      (d.record === undefined ? "" : `, probably ${d.record}`)
    );
    const after = keptAt !== undefined
      ? `the damaged journal is kept at ${keptAt}`
      : keepFailure !== undefined
      ? `no copy of it could be kept (${
        (keepFailure as Error)?.message ?? keepFailure
      }), so the journal is not compacted`
      : "the journal is untouched; open it with onCorruption to go on with the readable records";
    super(
      "STORE_CORRUPT",
      `${path}: skipped ${lostBytes} damaged bytes (${regions.join("; ")}); ` +
        `the records before and after them were read; ${after}`,
      keepFailure === undefined ? undefined : { cause: keepFailure },
    );
    this.name = "StoreCorruptionError";
    this.path = path;
    this.damaged = damaged;
    this.lostBytes = lostBytes;
    this.keptAt = keptAt;
  }
}

const text = new TextEncoder();
/** Written by this version: record types 1 to 12. */
const MAGIC = text.encode("MQTTSJ2\n");
/** Written before subscriptions were stored: record types 1 to 10. */
const MAGIC_V1 = text.encode("MQTTSJ1\n");
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
const SUB = 11;
const UNSUB = 12;

/** What wrote each record type, for describing a damaged record. */
const RECORD_NAMES = [
  "",
  "putInflight",
  "markReleased",
  "removeInflight",
  "pushWaiting",
  "shiftWaiting",
  "addIncoming",
  "removeIncoming",
  "clearIncoming",
  "clear",
  "nextPacketId",
  "putSubscription",
  "removeSubscription",
];

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
  /** Filter to QoS, in subscription order. */
  subscriptions = new Map<string, QoS>();
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

  subscribe(filter: string, qos: QoS): void {
    if (!this.subscriptions.has(filter)) this.liveBytes += filterSize(filter);
    this.subscriptions.set(filter, qos);
  }

  unsubscribe(filter: string): void {
    if (this.subscriptions.delete(filter)) this.liveBytes -= filterSize(filter);
  }

  clear(): void {
    this.inflight.clear();
    this.waiting.drain();
    this.incoming.clear();
    this.subscriptions.clear();
    this.nextId = 1;
    this.liveBytes = 0;
  }
}

/** Upper bound of a publish record's encoded size (topic counted at 3 bytes a UTF-16 unit). */
function recordSize(r: PublishRecord): number {
  return FRAME + 6 + r.topic.length * 3 + r.payload.byteLength;
}

/** Upper bound of a subscription record's encoded size. */
function filterSize(filter: string): number {
  return FRAME + 2 + filter.length * 3;
}

const decoder = new TextDecoder();
/** Filters are checked: a filter that is not UTF-8 is a damaged record. */
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** What loading a journal found. */
interface Replayed {
  /** Offset where the readable journal ends: the start of a torn tail, else the file's end. */
  end: number;
  /** Runs of bytes skipped as damaged. */
  damaged: DamagedRegion[];
}

/**
 * Replays the records of `buf` (after the magic) onto `image`, skipping
 * damaged records and resuming at the next valid one.
 */
function replay(buf: Uint8Array, image: Image): Replayed {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const damaged: DamagedRegion[] = [];
  let pos = MAGIC.length;
  while (pos < buf.length) {
    const next = recordEnd(buf, view, pos);
    if (next >= 0) {
      apply(buf, view, pos + 4, next - 4, image);
      pos = next;
      continue;
    }
    const resume = resync(buf, view, pos);
    if (resume < 0) {
      if (isTorn(buf, view, pos)) return { end: pos, damaged };
      damaged.push(describe(buf, view, pos, buf.length));
      break;
    }
    damaged.push(describe(buf, view, pos, resume));
    pos = resume;
  }
  return { end: buf.length, damaged };
}

/** Offset just past the valid record starting at `pos`, or -1 when none starts there. */
function recordEnd(buf: Uint8Array, view: DataView, pos: number): number {
  if (pos + FRAME > buf.length) return -1;
  const len = view.getUint32(pos, true);
  const start = pos + 4;
  const end = start + len;
  if (len === 0 || end + 4 > buf.length) return -1;
  // The cheap structural checks first: a scan for the next record tries every offset.
  if (!apply(buf, view, start, end, undefined)) return -1;
  if (crc32(buf, start, end) !== view.getUint32(end, true)) return -1;
  return end + 4;
}

/**
 * Where reading can go on after the unreadable record at `pos`: where its
 * length field says it ends, if a valid record starts there; else the first
 * offset where a valid record starts and is followed by another or by the end
 * of the file (one lone match may be a record's image inside a payload).
 * -1 when no valid record follows.
 */
function resync(buf: Uint8Array, view: DataView, pos: number): number {
  if (pos + 4 <= buf.length) {
    const declared = pos + FRAME + view.getUint32(pos, true);
    if (declared > pos + FRAME && recordEnd(buf, view, declared) >= 0) return declared;
  }
  for (let at = pos + 1; at + FRAME <= buf.length; at++) {
    const end = recordEnd(buf, view, at);
    if (end >= 0 && (end === buf.length || recordEnd(buf, view, end) >= 0)) return at;
  }
  return -1;
}

/**
 * Whether the unreadable end of the journal from `pos` is torn by a crash: a
 * record cut short (its length runs past the end of the file), or zeros (a
 * power loss after the file grew but before its data was written).
 */
function isTorn(buf: Uint8Array, view: DataView, pos: number): boolean {
  if (pos + 4 > buf.length || pos + FRAME + view.getUint32(pos, true) > buf.length) return true;
  return buf.subarray(pos).every((b) => b === 0);
}

/** The report of the damaged bytes `buf[from..to)`, with a guess at the record they held. */
function describe(buf: Uint8Array, view: DataView, from: number, to: number): DamagedRegion {
  const region = { offset: from, length: to - from, record: undefined };
  if (to - from <= FRAME || view.getUint32(from, true) !== to - from - FRAME) return region;
  const start = from + 4;
  const type = buf[start];
  const name = RECORD_NAMES[type];
  if (name === undefined || name === "") return region;
  let key = "";
  if (type === PUT || type === PUSH) {
    const head = type === PUT ? 6 : 4;
    if (to - from < FRAME + head) return region;
    const topicLen = view.getUint16(start + head - 2, true);
    const topic = decoder.decode(
      buf.subarray(start + head, Math.min(start + head + topicLen, to - 4)),
    );
    key = JSON.stringify(topic);
  } else if (type === SUB || type === UNSUB) {
    key = JSON.stringify(decoder.decode(buf.subarray(start + (type === SUB ? 2 : 1), to - 4)));
  } else if (to - from === FRAME + 3) {
    key = String(view.getUint16(start + 1, true));
  }
  return { ...region, record: `${name}(${key})` };
}

/**
 * Applies one record's body to `image`, or with no image only checks it.
 * False when it does not parse; nothing is changed then.
 */
function apply(
  buf: Uint8Array,
  view: DataView,
  start: number,
  end: number,
  image: Image | undefined,
): boolean {
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
      const id = type === PUT ? view.getUint16(start + 2, true) : 0;
      if (type === PUT && id === 0) return false;
      if (image === undefined) return true;
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
      if (image === undefined) return true;
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
      if (image === undefined) return true;
      if (type === SHIFT) image.shift();
      else if (type === INCOMING_CLEAR) image.incoming.clear();
      else image.clear();
      return true;
    case SUB:
    case UNSUB: {
      const head = type === SUB ? 2 : 1;
      if (len < head) return false;
      const qos = type === SUB ? buf[start + 1] : 0;
      if (qos > 2) return false; // also bits 2-7, which must be zero
      let filter: string;
      try {
        filter = strictDecoder.decode(buf.subarray(start + head, end));
      } catch {
        return false;
      }
      if (image === undefined) return true;
      if (type === SUB) image.subscribe(filter, qos as QoS);
      else image.unsubscribe(filter);
      return true;
    }
    default:
      return false;
  }
}

/** Encodes records into a growable buffer. */
class Encoder {
  buf = new Uint8Array(4096);
  view = new DataView(this.buf.buffer);
  length = 0;

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
    const { written } = text.encodeInto(r.topic, buf.subarray(topicAt));
    if (written > 0xffff) throw new MqttError("STORE_ERROR", "topic longer than 65535 bytes");
    this.view.setUint16(topicAt - 2, written, true);
    const payloadAt = topicAt + written;
    buf.set(r.payload, payloadAt);
    this.#seal(start, payloadAt + r.payload.byteLength);
  }

  /** A SUB (with `qos`) or UNSUB record. */
  subscription(type: number, filter: string, qos: QoS): void {
    if (type === SUB && qos !== 0 && qos !== 1 && qos !== 2) {
      throw new MqttError("INVALID_QOS", `a subscription's QoS must be 0, 1 or 2, got ${qos}`);
    }
    const head = type === SUB ? 2 : 1;
    this.reserve(FRAME + head + filter.length * 3);
    const start = this.length + 4;
    this.buf[start] = type;
    if (type === SUB) this.buf[start + 1] = qos;
    const { written } = text.encodeInto(filter, this.buf.subarray(start + head));
    if (written > 0xffff) {
      throw new MqttError("STORE_ERROR", "topic filter longer than 65535 bytes");
    }
    this.#seal(start, start + head + written);
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
  for (const [filter, qos] of image.subscriptions) enc.subscription(SUB, filter, qos);
  return enc.buf.subarray(0, enc.length);
}

/** Whether `header` (the file's first bytes) starts a journal this version reads. */
function isJournalHeader(header: Uint8Array): boolean {
  return [MAGIC, MAGIC_V1].some((magic) => header.every((b, i) => b === magic[i]));
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
      else releaseLock(lock);
      throw err;
    }
  }

  /** Everything stored, copied. */
  load(): StoredSession {
    const image = this.#image;
    return {
      inflight: [...image.inflight.values()].map((r): InflightRecord => ({ ...r })),
      waiting: [...image.waiting],
      incoming: [...image.incoming],
      nextPacketId: image.nextId,
      subscriptions: [...image.subscriptions].map(([filter, qos]) => ({ filter, qos })),
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
  putSubscription(filter: string, qos: QoS): void {
    if (this.#image.subscriptions.get(filter) === qos) return;
    this.#enc.subscription(SUB, filter, qos);
    this.#append();
    this.#image.subscribe(filter, qos);
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
    this.#file?.close();
    this.#file = undefined;
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
        // A torn tail that cannot be cut would make the records after it damage
        // to skip: write a fresh snapshot at the next change instead.
        this.#compactAt = 0;
      }
      throw storeError(`cannot write ${this.#path}`, err);
    }
    this.#size += data.length;
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
    const tmp = `${path}.tmp`;
    const data = snapshot(this.#image);
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(tmp, { write: true, create: true, truncate: true });
    } catch (err) {
      // Nothing of ours is there to remove (it may be a directory of someone else's).
      throw storeError(`cannot compact ${path}`, err);
    }
    try {
      writeAll(file, data);
      // Power-loss safety needs the data on disk before the rename is.
      if (this.#fsync) file.syncSync();
      Deno.renameSync(tmp, path);
    } catch (err) {
      file.close();
      // A partial snapshot must not fill the disk that made it fail.
      try {
        Deno.removeSync(tmp);
      } catch {
        // Gone already, or the directory forbids it; the next compaction truncates it.
      }
      throw storeError(`cannot compact ${path}`, err);
    }
    if (this.#fsync) syncDirectory(path);
    this.#file?.close();
    this.#file = file;
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
    let file: Deno.FsFile | undefined;
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

/** `path` split at its last separator into the directory ("." when none) and the name. */
function splitPath(path: string): [dir: string, name: string] {
  const windows = Deno.build.os === "windows";
  let i = path.length - 1;
  while (i >= 0 && path[i] !== "/" && !(windows && path[i] === "\\")) i--;
  if (i < 0) return [".", path];
  // Keep the separator of a root ("/", "C:\\"): without it the root is another directory.
  const root = i === 0 || (windows && path[i - 1] === ":");
  return [path.slice(0, root ? i + 1 : i), path.slice(i + 1)];
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

/** Flushes the directory entry of `path` (a rename or a new file) to disk, where the platform allows it. */
function syncDirectory(path: string): void {
  let handle: Deno.FsFile | undefined;
  try {
    handle = Deno.openSync(splitPath(path)[0], { read: true });
    handle.syncSync();
  } catch {
    // Not every platform can open or sync a directory; the rename is still atomic.
  } finally {
    handle?.close();
  }
}
