/**
 * {@linkcode PacketReader}: frames a byte stream into MQTT control packets.
 *
 * @module
 */
import { type CodecOptions, decodePacket, packetLength } from "../codec/mod.ts";
import { DEFAULT_PROTOCOL_VERSION, protocolVersionOf } from "../codec/options.ts";
import type { Packet, ProtocolVersion } from "../codec/packet.ts";
import { ProtocolError } from "../errors.ts";

/**
 * Largest packet whose buffer is allocated as soon as its fixed header is read.
 * A bigger one is gathered as views of the chunks it arrives in and copied once
 * it is complete, so a peer cannot make us reserve up to 256 MiB with 5 bytes.
 */
const PREALLOCATE_LIMIT = 1 << 20;

/** Longest fixed header: one type byte and a Remaining Length of up to 4 bytes (MQTT 2.2.3). */
const MAX_HEADER_LENGTH = 5;

/**
 * Called by {@linkcode PacketFramer} with each packet, in order. Returning
 * `false` stops the framing after this packet (see {@linkcode PacketFramer.resume}).
 */
export type PacketCallback = (packet: Packet) => boolean | void;

/**
 * Frames a byte stream into MQTT control packets, one chunk at a time: the
 * framing rules behind {@linkcode PacketReader}, for a caller that reads its
 * chunks itself and wants no stream between the bytes and the packets.
 *
 * Chunks may cut packets anywhere, hold many packets, or be empty. A packet
 * that lies whole inside one chunk is decoded in place, without a copy; only a
 * packet cut across chunks is copied, once, into a buffer of its exact size
 * (known from its fixed header). So a decoded PUBLISH `payload` may be a view
 * into the chunk it arrived in: do not reuse a chunk after pushing it.
 *
 * Backpressure: a callback that returns `false` stops the framing after its
 * packet; the rest of the chunk waits, unread, until {@linkcode PacketFramer.resume}.
 * So a consumer can stop at an exact packet even when one chunk holds many.
 *
 * Errors: {@linkcode PacketFramer.push} (and `resume`) throw the codec's
 * {@linkcode ProtocolError} for a malformed packet, and code
 * `PACKET_TOO_LARGE` for a packet over `maxPacketSize` as soon as its fixed
 * header is read; {@linkcode PacketFramer.end} throws `TRUNCATED_PACKET` when
 * the bytes stopped inside a packet. After an error the framer is unusable.
 *
 * @example Frame chunks read by hand
 * ```ts
 * import { PacketFramer } from "./packet_reader.ts";
 *
 * const framer = new PacketFramer();
 * const types: string[] = [];
 * // A PINGRESP (0xd0 0x00) cut in two, then a PUBACK for packet id 10.
 * framer.push(new Uint8Array([0xd0]), (packet) => void types.push(packet.type));
 * framer.push(new Uint8Array([0x00, 0x40, 0x02, 0x00, 0x0a]), (packet) => void types.push(packet.type));
 * framer.end();
 * console.log(types); // [ "pingresp", "puback" ]
 * ```
 *
 * @example Stop after each packet
 * ```ts
 * import { PacketFramer } from "./packet_reader.ts";
 *
 * const framer = new PacketFramer();
 * // Two PINGRESPs in one chunk.
 * let used = framer.push(new Uint8Array([0xd0, 0x00, 0xd0, 0x00]), () => false);
 * console.log(used); // false: the second packet waits
 * used = framer.resume(() => false);
 * console.log(used); // true: the chunk is used up
 * ```
 */
export class PacketFramer {
  #options: CodecOptions | undefined;
  readonly #maxPacketSize: number | undefined;
  #version: ProtocolVersion;
  /**
   * Bytes of a fixed header cut by a chunk end; never handed to the decoder, so reused. Made
   * the first time a header is cut: a broker's idle connections need none.
   */
  #head: Uint8Array | null = null;
  /** How many bytes of {@linkcode #head} are held; 0 when no header is pending. */
  #headLength = 0;
  /** Total length of the pending packet once its header is known; 0 when none is pending. */
  #total = 0;
  /** How many bytes of the pending packet are held. */
  #filled = 0;
  /** Buffer of the pending packet, allocated at its total length (small packets). */
  #body: Uint8Array | null = null;
  /** Views of the chunks holding the pending packet (packets over the preallocation limit). */
  #parts: Uint8Array[] | null = null;
  /** A chunk whose framing a callback stopped, and where its unframed bytes start. */
  #rest: Uint8Array | null = null;
  #restOffset = 0;

  /**
   * Creates a framer.
   *
   * @param options `maxPacketSize` bounds the packets accepted (and so the
   * memory one packet can take); `protocolVersion` selects the wire format.
   */
  constructor(options?: CodecOptions) {
    this.#options = options;
    this.#maxPacketSize = options?.maxPacketSize;
    this.#version = options?.protocolVersion ?? DEFAULT_PROTOCOL_VERSION;
  }

  /**
   * Protocol level the following packets are framed with. A broker learns it
   * from the CONNECT (whose decoder reads the level from the packet itself)
   * and sets it here before the next packet; a packet already held whole
   * waits in its chunk and is decoded with the new level.
   *
   * @example
   * ```ts
   * import { PacketFramer } from "./packet_reader.ts";
   * const framer = new PacketFramer({ protocolVersion: 5 }); // accepts level 4 and 5 CONNECTs
   * framer.push(
   *   new Uint8Array([0x10, 0x0d, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60, 0, 1, 0x61]),
   *   (packet) => {
   *     if (packet.type === "connect") framer.protocolVersion = packet.protocolLevel as 4 | 5;
   *   },
   * );
   * console.log(framer.protocolVersion); // 4
   * ```
   */
  get protocolVersion(): ProtocolVersion {
    return this.#version;
  }

  set protocolVersion(version: ProtocolVersion) {
    protocolVersionOf({ protocolVersion: version }); // refuses a level the codec does not speak
    this.#version = version;
    this.#options = { ...this.#options, protocolVersion: version };
  }

  /** Whether bytes are held: the start of a packet, or the rest of a stopped chunk. */
  get pending(): boolean {
    return this.#headLength !== 0 || this.#total !== 0 || this.#rest !== null;
  }

  /**
   * Frames the next chunk of the stream, calling `onPacket` for each packet it
   * completes, in order, before returning. Bytes of a packet the chunk does
   * not complete are kept for the next call.
   *
   * Returns `true` once the chunk is used up, or `false` when `onPacket`
   * returned `false` before the chunk's last packet: then call
   * {@linkcode PacketFramer.resume} (until it returns `true`) before pushing
   * the next chunk.
   */
  push(chunk: Uint8Array, onPacket: PacketCallback): boolean {
    let offset = 0;
    if (this.#headLength !== 0 || this.#total !== 0) {
      offset = this.#resume(chunk, chunk.length);
      if (offset < 0) return true;
      const total = this.#total;
      const bytes = this.#body ?? this.#join();
      this.#release();
      if (onPacket(decodePacket(bytes, 0, total, this.#options)) === false) {
        return this.#stop(chunk, offset);
      }
    }
    return this.#frame(chunk, offset, onPacket);
  }

  /**
   * Goes on framing the chunk a callback stopped, like {@linkcode PacketFramer.push}
   * from where it stopped. Returns `true` at once when nothing was stopped.
   */
  resume(onPacket: PacketCallback): boolean {
    const chunk = this.#rest;
    if (chunk === null) return true;
    this.#rest = null;
    return this.#frame(chunk, this.#restOffset, onPacket);
  }

  /**
   * Marks the end of the stream: throws `TRUNCATED_PACKET` if it ended inside
   * a packet. Either way the framer holds no bytes afterwards.
   */
  end(): void {
    this.#rest = null;
    if (this.#headLength !== 0 || this.#total !== 0) {
      const held = this.#total !== 0 ? this.#filled : this.#headLength;
      const wanted = this.#total !== 0 ? `${this.#total}` : "an unknown number of";
      this.#release();
      throw new ProtocolError(
        "TRUNCATED_PACKET",
        `stream ended inside a packet: ${held} of ${wanted} bytes received`,
      );
    }
  }

  /** Drops every byte held, for a stream given up early. */
  reset(): void {
    this.#rest = null;
    this.#release();
  }

  /** Frames `chunk` from `offset`; see {@linkcode PacketFramer.push}. */
  #frame(chunk: Uint8Array, offset: number, onPacket: PacketCallback): boolean {
    const end = chunk.length;
    const maxPacketSize = this.#maxPacketSize;
    while (offset < end) {
      // Throws PACKET_TOO_LARGE before any byte of the body is held.
      const length = packetLength(chunk, offset, end, maxPacketSize, this.#version);
      if (length < 0 || length > end - offset) {
        this.#hold(chunk, offset, end, length);
        return true;
      }
      // Whole packet in this chunk: decode in place; its payload aliases the chunk.
      // Read per packet: a callback may switch the version after a CONNECT.
      const packet = decodePacket(chunk, offset, offset + length, this.#options);
      offset += length;
      if (onPacket(packet) === false) return this.#stop(chunk, offset);
    }
    return true;
  }

  /** Keeps what is left of a chunk whose framing a callback stopped; true if nothing is. */
  #stop(chunk: Uint8Array, offset: number): boolean {
    if (offset >= chunk.length) return true;
    this.#rest = chunk;
    this.#restOffset = offset;
    return false;
  }

  /** Keeps the tail `chunk[offset..end)`, the start of a packet that does not end in this chunk. */
  #hold(chunk: Uint8Array, offset: number, end: number, length: number): void {
    const count = end - offset;
    if (length < 0) {
      // Fewer than 5 bytes: the Remaining Length is not complete yet.
      const head = this.#head ??= new Uint8Array(MAX_HEADER_LENGTH);
      for (let i = 0; i < count; i++) head[i] = chunk[offset + i];
      this.#headLength = count;
      return;
    }
    this.#total = length;
    this.#filled = count;
    if (length <= PREALLOCATE_LIMIT) {
      const body = new Uint8Array(length);
      body.set(chunk.subarray(offset, end));
      this.#body = body;
    } else {
      // The caller hands over chunks it no longer touches, so a view is as good as a copy.
      this.#parts = [chunk.subarray(offset, end)];
    }
  }

  /**
   * Feeds the start of `chunk` to the pending packet. Returns the offset where
   * the next packet starts once the pending one is complete (its bytes are then
   * all held), or -1 when the whole chunk was taken.
   */
  #resume(chunk: Uint8Array, end: number): number {
    if (this.#total === 0) {
      // A header is pending: complete it with at most the bytes it can still need.
      const head = this.#head!; // held bytes of a header: #hold made it
      const held = this.#headLength;
      const take = Math.min(MAX_HEADER_LENGTH - held, end);
      for (let i = 0; i < take; i++) head[held + i] = chunk[i];
      const length = packetLength(head, 0, held + take, this.#maxPacketSize, this.#version);
      if (length < 0) {
        this.#headLength = held + take;
        return -1;
      }
      this.#headLength = 0;
      this.#total = length;
      this.#filled = held;
      if (length <= PREALLOCATE_LIMIT) {
        const body = new Uint8Array(length);
        for (let i = 0; i < held; i++) body[i] = head[i];
        this.#body = body;
      } else {
        this.#parts = [head.slice(0, held)];
      }
    }
    const total = this.#total;
    const take = Math.min(total - this.#filled, end);
    const part = take === end ? chunk : chunk.subarray(0, take);
    const body = this.#body;
    if (body !== null) body.set(part, this.#filled);
    else this.#parts!.push(part);
    this.#filled += take;
    return this.#filled < total ? -1 : take;
  }

  /** Copies the gathered parts of a large packet into one buffer, the only copy it gets. */
  #join(): Uint8Array {
    const packet = new Uint8Array(this.#total);
    let at = 0;
    for (const part of this.#parts!) {
      packet.set(part, at);
      at += part.length;
    }
    return packet;
  }

  #release(): void {
    this.#headLength = 0;
    this.#total = 0;
    this.#filled = 0;
    this.#body = null;
    this.#parts = null;
  }
}

/**
 * The transformer behind {@linkcode PacketReader}: a {@linkcode PacketFramer}
 * whose packets go to the stream. A class rather than closures, and the
 * enqueue callback made once per stream, so the per-chunk path allocates
 * nothing of its own.
 */
class PacketReaderTransformer implements Transformer<Uint8Array, Packet> {
  readonly framer: PacketFramer;
  #enqueue: (packet: Packet) => void = noop;

  constructor(options: CodecOptions | undefined) {
    this.framer = new PacketFramer(options);
  }

  start(controller: TransformStreamDefaultController<Packet>): void {
    this.#enqueue = (packet) => controller.enqueue(packet);
  }

  transform(chunk: Uint8Array): void {
    this.framer.push(chunk, this.#enqueue);
  }

  flush(): void {
    this.framer.end();
  }

  cancel(): void {
    this.framer.reset();
  }
}

const noop = (): void => {};

/**
 * A `TransformStream` from bytes to MQTT control packets: pipe a connection's
 * `readable` through it to get one {@linkcode Packet} per read.
 *
 * Chunks may cut packets anywhere, hold many packets, or be empty. A packet
 * that lies whole inside one chunk is decoded in place, without a copy; only a
 * packet cut across chunks is copied, once, into a buffer of its exact size
 * (known from its fixed header).
 *
 * **Aliasing:** a decoded PUBLISH `payload` (and a CONNECT will payload or
 * password) may be a view into the chunk it arrived in. Do not mutate or reuse
 * a chunk after writing it to the reader. `Deno.Conn.readable` hands out a
 * fresh buffer per chunk, so piping a connection straight in is safe; copy the
 * payload (`payload.slice()`) if you keep it long and want the rest of the chunk
 * to be garbage collected.
 *
 * Errors: a malformed packet errors the stream with the codec's
 * {@linkcode ProtocolError}; with `maxPacketSize` set, a larger packet errors it
 * with code `PACKET_TOO_LARGE` as soon as its fixed header is read, before its
 * body is buffered; a stream that ends inside a packet errors with code
 * `TRUNCATED_PACKET`.
 *
 * Backpressure: the writable side holds at most one chunk and the readable side
 * no packets beyond those decoded from the last chunk, so a reader that stops
 * reading stops the connection being read.
 *
 * @example Decode packets from bytes
 * ```ts
 * import { PacketReader } from "./packet_reader.ts";
 *
 * // A PINGRESP (0xd0 0x00) cut in two, then a PUBACK for packet id 10.
 * const bytes = ReadableStream.from([
 *   new Uint8Array([0xd0]),
 *   new Uint8Array([0x00, 0x40, 0x02, 0x00, 0x0a]),
 * ]);
 * for await (const packet of bytes.pipeThrough(new PacketReader())) {
 *   console.log(packet.type); // "pingresp", then "puback"
 * }
 * ```
 *
 * @example Read packets from a TCP connection
 * ```ts ignore
 * import { PacketReader } from "./packet_reader.ts";
 *
 * const conn = await Deno.connect({ hostname: "localhost", port: 1883 });
 * const packets = conn.readable.pipeThrough(new PacketReader({ maxPacketSize: 1 << 20 }));
 * ```
 */
export class PacketReader extends TransformStream<Uint8Array, Packet> {
  readonly #framer: PacketFramer;

  /**
   * Creates a reader.
   *
   * @param options `maxPacketSize` bounds the packets accepted (and so the
   * memory one packet can take); `protocolVersion` selects the wire format.
   */
  constructor(options?: CodecOptions) {
    const transformer = new PacketReaderTransformer(options);
    super(
      transformer,
      // Written out though they are the defaults: they are the backpressure contract.
      { highWaterMark: 1 },
      { highWaterMark: 0 },
    );
    this.#framer = transformer.framer;
  }

  /**
   * Protocol level of the packets read from now on (see
   * {@linkcode PacketFramer.protocolVersion}): set it once the CONNECT is
   * read. Packets already decoded into the readable side keep theirs.
   *
   * @example
   * ```ts
   * import { PacketReader } from "./packet_reader.ts";
   * const reader = new PacketReader({ protocolVersion: 5 });
   * reader.protocolVersion = 4; // the CONNECT said 3.1.1
   * console.log(reader.protocolVersion); // 4
   * ```
   */
  get protocolVersion(): ProtocolVersion {
    return this.#framer.protocolVersion;
  }

  set protocolVersion(version: ProtocolVersion) {
    this.#framer.protocolVersion = version;
  }
}
