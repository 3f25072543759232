/**
 * The on-disk format of `FileStore`'s journal (see `./file_store.ts`): the
 * records, their encoding and CRC framing, and reading them back over damage.
 * The live state a journal describes is an {@linkcode Image}; {@linkcode replay}
 * loads a journal onto one and {@linkcode snapshot} writes one out as a journal.
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
 * | 11   | `putSubscription`    | options u8 (MQTT 5 subscription options), filter (rest)         |
 * | 12   | `removeSubscription` | filter (rest)                                                   |
 * | 13   | `putInflight` (5.0)  | as 1, then MQTT 5.0 PUBLISH properties, then payload (rest)     |
 * | 14   | `pushWaiting` (5.0)  | as 4, then MQTT 5.0 PUBLISH properties, then payload (rest)     |
 * | 15   | `putInflight` (5.0)  | as 13, with the publish time (f64 ms since the epoch) before the properties |
 * | 16   | `pushWaiting` (5.0)  | as 14, with the publish time (f64 ms since the epoch) before the properties |
 *
 * Flags: bit 0 dequeued, bit 1 retain, bit 2 released, bits 4-5 QoS. Strings
 * are UTF-8. A filter is the rest of the body and must be valid UTF-8. The
 * options byte has the layout of MQTT 5's subscription options (3.8.3.1):
 * QoS in bits 0-1, No Local bit 2, Retain As Published bit 3, Retain Handling
 * bits 4-5, bits 6-7 zero. A 3.1.1 subscription has bits 2-7 zero, so the
 * journals written before the 5.0 options were stored read as they are.
 *
 * Journals written before subscriptions were stored start with `MQTTSJ1\n`
 * and hold types 1 to 10 only; they load as they are, and the next compaction
 * rewrites them as `MQTTSJ2\n`. Older versions refuse a `MQTTSJ2\n` journal as
 * "not a session journal" rather than lose the records they cannot read.
 * Types 13 and 14 appear only for publishes with MQTT 5.0 properties, so a
 * 3.1.1 client's journal keeps to types 1 to 12; a version before them reports
 * such a record as damage (a `StoreCorruptionError`), never as a wrong payload.
 * Types 15 and 16 replace them for a publish that carries its publish time
 * (`publishedAt`, so a Message Expiry Interval counts from then after a
 * restart); journals written before them hold 13 and 14 and read unchanged,
 * their publishes without a publish time, and versions before them report
 * 15 and 16 as damage in the same way.
 *
 * Damage: a record cut short at the end of the file (a crash mid-write), or a
 * zero-filled end (a power loss after the file grew), is a torn tail and is
 * dropped silently. Any other record that fails its CRC or does not parse is
 * damage: loading skips it, finds the next valid record (where the damaged
 * record's length says it ends, or else by scanning for a valid record
 * followed by another valid record or the end of the file) and goes on,
 * reporting each skipped run as a {@linkcode DamagedRegion}.
 *
 * @module
 */
import { MqttError } from "../errors.ts";
import type { QoS } from "../codec/packet.ts";
import { Queue } from "../util/queue.ts";
import { type PublishRecord, subscriptionRecord } from "./store.ts";
import {
  hasProperties,
  propertiesLength,
  type PublishProperties,
  readEnd,
  readProperties,
  varIntSize,
  writeProperties,
} from "../codec/properties.ts";

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
/** Written by this version: record types 1 to 16. */
export const MAGIC = text.encode("MQTTSJ2\n");
/** Written before subscriptions were stored: record types 1 to 10. */
const MAGIC_V1 = text.encode("MQTTSJ1\n");

// Record types (the first byte of a record's body).
export const PUT = 1;
export const RELEASE = 2;
export const REMOVE = 3;
export const PUSH = 4;
export const SHIFT = 5;
export const INCOMING_ADD = 6;
export const INCOMING_REMOVE = 7;
export const INCOMING_CLEAR = 8;
export const CLEAR = 9;
const NEXT_ID = 10;
export const SUB = 11;
export const UNSUB = 12;
/** PUT and PUSH of a publish with MQTT 5.0 properties: a property block follows the topic. */
const PUT_PROPS = 13;
const PUSH_PROPS = 14;
/** PUT_PROPS and PUSH_PROPS with the publish time (a float64) between the topic and the properties. */
const PUT_TIMED = 15;
const PUSH_TIMED = 16;
/** Bytes of the publish time in PUT_TIMED and PUSH_TIMED. */
const TIME_SIZE = 8;

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
  "putInflight",
  "pushWaiting",
  "putInflight",
  "pushWaiting",
];

export const FLAG_DEQUEUED = 0x01;
const FLAG_RETAIN = 0x02;
const FLAG_RELEASED = 0x04;
const QOS_SHIFT = 4;

/** Bytes around a record's body: length before, CRC after. */
const FRAME = 8;

/**
 * Built on the first CRC, not at import: every importer of `mod.ts` loads
 * this module, few open a FileStore, and building the table at import cost a
 * client's cold start about 0.3–3 ms (issue 18).
 */
let crcTable: Uint32Array | undefined;

function buildCrcTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/** CRC-32 (IEEE 802.3) of `buf[start..end)`. */
function crc32(buf: Uint8Array, start: number, end: number): number {
  const table = crcTable ??= buildCrcTable();
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = table[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface MutableInflight {
  packetId: number;
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  released: boolean;
  properties?: PublishProperties;
  publishedAt?: number;
}

/** The live state a journal describes; replaying records onto it is loading. */
export class Image {
  inflight = new Map<number, MutableInflight>();
  waiting = new Queue<PublishRecord>();
  incoming = new Set<number>();
  nextId = 1;
  /** Filter to its subscription options byte (QoS and 5.0 options), in subscription order. */
  subscriptions = new Map<string, number>();
  /** Bytes the state takes as a snapshot, roughly (drives compaction). */
  liveBytes = 0;

  put(packetId: number, record: PublishRecord, dequeued: boolean): void {
    if (dequeued) this.shift();
    const { topic, payload, qos, retain, properties, publishedAt } = record;
    const old = this.inflight.get(packetId);
    if (old !== undefined) this.liveBytes -= recordSize(old);
    const r: MutableInflight = { packetId, topic, payload, qos, retain, released: false };
    if (properties !== undefined) r.properties = properties;
    if (publishedAt !== undefined) r.publishedAt = publishedAt;
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

  subscribe(filter: string, options: number): void {
    if (!this.subscriptions.has(filter)) this.liveBytes += filterSize(filter);
    this.subscriptions.set(filter, options);
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
  return FRAME + 6 + r.topic.length * 3 + r.payload.byteLength + propsSize(r) +
    (timed(r) ? TIME_SIZE : 0);
}

/** Bytes of a record's MQTT 5.0 property block (Property Length included); 0 when it has none. */
function propsSize(r: PublishRecord): number {
  if (!hasProperties(r.properties)) return 0;
  const length = propertiesLength(r.properties, PUBLISH_CONTEXT, "publish");
  return varIntSize(length) + length;
}

/** Whether a record is written with its publish time (types 15 and 16). */
function timed(r: PublishRecord): boolean {
  return r.publishedAt !== undefined && Number.isFinite(r.publishedAt) &&
    hasProperties(r.properties);
}

/** Properties are those of a PUBLISH (packet type 3) in the journal. */
const PUBLISH_CONTEXT = 3;

/** Upper bound of a subscription record's encoded size. */
function filterSize(filter: string): number {
  return FRAME + 2 + filter.length * 3;
}

const decoder = new TextDecoder();
/** Filters are checked: a filter that is not UTF-8 is a damaged record. */
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** What loading a journal found. */
export interface Replayed {
  /** Offset where the readable journal ends: the start of a torn tail, else the file's end. */
  end: number;
  /** Runs of bytes skipped as damaged. */
  damaged: DamagedRegion[];
}

/**
 * Replays the records of `buf` (after the magic) onto `image`, skipping
 * damaged records and resuming at the next valid one.
 */
export function replay(buf: Uint8Array, image: Image): Replayed {
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
  if (type === PUT || type === PUSH || (type >= PUT_PROPS && type <= PUSH_TIMED)) {
    const head = type === PUT || type === PUT_PROPS || type === PUT_TIMED ? 6 : 4;
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
    case PUSH:
    case PUT_PROPS:
    case PUSH_PROPS:
    case PUT_TIMED:
    case PUSH_TIMED: {
      const put = type === PUT || type === PUT_PROPS || type === PUT_TIMED;
      const head = put ? 6 : 4;
      if (len < head) return false;
      const flags = buf[start + 1];
      const qos = (flags >> QOS_SHIFT) & 3;
      if (qos > 2 || (put && qos === 0)) return false;
      const topicLen = view.getUint16(start + head - 2, true);
      const topicEnd = start + head + topicLen;
      if (topicEnd > end) return false;
      const id = put ? view.getUint16(start + 2, true) : 0;
      if (put && id === 0) return false;
      // A copy: the record must not pin the whole file buffer.
      const rest = buf.slice(topicEnd, end);
      let properties: PublishProperties | undefined;
      let payloadAt = 0;
      let publishedAt: number | undefined;
      if (type === PUT_TIMED || type === PUSH_TIMED) {
        if (rest.length < TIME_SIZE) return false;
        publishedAt = new DataView(rest.buffer, rest.byteOffset).getFloat64(0, true);
        if (!Number.isFinite(publishedAt)) return false;
        payloadAt = TIME_SIZE;
      }
      if (type >= PUT_PROPS) {
        try {
          properties = readProperties(rest, payloadAt, rest.length, PUBLISH_CONTEXT, "publish");
        } catch {
          return false;
        }
        payloadAt = readEnd();
        if (properties === undefined) return false; // written only when there are some
      }
      if (image === undefined) return true;
      const record: {
        topic: string;
        payload: Uint8Array;
        qos: QoS;
        retain: boolean;
        properties?: PublishProperties;
        publishedAt?: number;
      } = {
        topic: decoder.decode(buf.subarray(start + head, topicEnd)),
        payload: rest.subarray(payloadAt),
        qos: qos as QoS,
        retain: (flags & FLAG_RETAIN) !== 0,
      };
      if (properties !== undefined) record.properties = properties;
      if (publishedAt !== undefined) record.publishedAt = publishedAt;
      if (!put) {
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
      const options = type === SUB ? buf[start + 1] : 0;
      // QoS 3, Retain Handling 3 and the reserved bits 6-7 are damage.
      if (type === SUB && subscriptionRecord("", options) === undefined) return false;
      let filter: string;
      try {
        filter = strictDecoder.decode(buf.subarray(start + head, end));
      } catch {
        return false;
      }
      if (image === undefined) return true;
      if (type === SUB) image.subscribe(filter, options);
      else image.unsubscribe(filter);
      return true;
    }
    default:
      return false;
  }
}

/** Encodes records into a growable buffer. */
export class Encoder {
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

  /**
   * A PUT (with `packetId`) or PUSH record; for a publish with MQTT 5.0
   * properties, a PUT_PROPS or PUSH_PROPS with the property block after the topic.
   */
  publish(type: number, packetId: number, r: PublishRecord, flags: number): void {
    const head = type === PUT ? 6 : 4;
    let propsLength = -1;
    const withTime = timed(r);
    if (hasProperties(r.properties)) {
      propsLength = propertiesLength(r.properties, PUBLISH_CONTEXT, "publish");
      type = type === PUT ? (withTime ? PUT_TIMED : PUT_PROPS) : withTime ? PUSH_TIMED : PUSH_PROPS;
    }
    this.reserve(
      FRAME + head + r.topic.length * 3 + r.payload.byteLength + propsSize(r) + TIME_SIZE,
    );
    const buf = this.buf;
    const start = this.length + 4;
    buf[start] = type;
    buf[start + 1] = flags | (r.qos << QOS_SHIFT) | (r.retain ? FLAG_RETAIN : 0);
    if (head === 6) this.view.setUint16(start + 2, packetId, true);
    const topicAt = start + head;
    const { written } = text.encodeInto(r.topic, buf.subarray(topicAt));
    if (written > 0xffff) throw new MqttError("STORE_ERROR", "topic longer than 65535 bytes");
    this.view.setUint16(topicAt - 2, written, true);
    let payloadAt = topicAt + written;
    if (withTime) {
      this.view.setFloat64(payloadAt, r.publishedAt!, true);
      payloadAt += TIME_SIZE;
    }
    if (propsLength >= 0) payloadAt = writeProperties(r.properties, propsLength, buf, payloadAt);
    buf.set(r.payload, payloadAt);
    this.#seal(start, payloadAt + r.payload.byteLength);
  }

  /** A SUB (with its subscription options byte) or UNSUB record. */
  subscription(type: number, filter: string, options: number): void {
    const qos = options & 3;
    if (type === SUB && (qos === 3 || !(options >= 0 && options <= 0x3f))) {
      throw new MqttError("INVALID_QOS", `a subscription's QoS must be 0, 1 or 2, got ${qos}`);
    }
    const head = type === SUB ? 2 : 1;
    this.reserve(FRAME + head + filter.length * 3);
    const start = this.length + 4;
    this.buf[start] = type;
    if (type === SUB) this.buf[start + 1] = options;
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

/** The whole live state as a journal: magic, then one record per live entry. */
export function snapshot(image: Image): Uint8Array {
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
  for (const [filter, options] of image.subscriptions) enc.subscription(SUB, filter, options);
  return enc.buf.subarray(0, enc.length);
}

/** Whether `header` (the file's first bytes) starts a journal this version reads. */
export function isJournalHeader(header: Uint8Array): boolean {
  return [MAGIC, MAGIC_V1].some((magic) => header.every((b, i) => b === magic[i]));
}
