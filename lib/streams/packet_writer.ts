/**
 * {@linkcode PacketWriter}: turns MQTT control packets into bytes.
 *
 * @module
 */
import { type CodecOptions, encodedLength, encodeInto, encodePacket } from "../codec/mod.ts";
import { DEFAULT_PROTOCOL_VERSION, protocolVersionOf } from "../codec/options.ts";
import type { Packet, ProtocolVersion } from "../codec/packet.ts";

/** The transformer behind {@linkcode PacketWriter}; a class so no closure is made per stream. */
class PacketWriterTransformer implements Transformer<Packet | readonly Packet[], Uint8Array> {
  #options: CodecOptions | undefined;

  constructor(options: CodecOptions | undefined) {
    this.#options = options;
  }

  get protocolVersion(): ProtocolVersion {
    return this.#options?.protocolVersion ?? DEFAULT_PROTOCOL_VERSION;
  }

  set protocolVersion(version: ProtocolVersion) {
    protocolVersionOf({ protocolVersion: version }); // refuses a level the codec does not speak
    this.#options = { ...this.#options, protocolVersion: version };
  }

  transform(
    chunk: Packet | readonly Packet[],
    controller: TransformStreamDefaultController<Uint8Array>,
  ): void {
    // A packet that breaks a rule throws a ProtocolError here, which errors the stream.
    if (!Array.isArray(chunk)) {
      controller.enqueue(encodePacket(chunk as Packet, this.#options));
      return;
    }
    controller.enqueue(encodeBatch(chunk, this.#options));
  }
}

/**
 * Encodes packets into one chunk of bytes, so a connection sees one write
 * instead of one per packet. Throws the codec's error for the first packet
 * that cannot be encoded (nothing is returned then).
 *
 * @example
 * ```ts
 * import { encodeBatch } from "./packet_writer.ts";
 * const bytes = encodeBatch([{ type: "pingreq" }, { type: "puback", packetId: 1 }]);
 * console.log(bytes); // Uint8Array(6) [ 192, 0, 64, 2, 0, 1 ]
 * ```
 */
export function encodeBatch(packets: readonly Packet[], options?: CodecOptions): Uint8Array {
  if (packets.length === 1) return encodePacket(packets[0], options);
  let total = 0;
  for (let i = 0; i < packets.length; i++) total += encodedLength(packets[i], options);
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (let i = 0; i < packets.length; i++) offset += encodeInto(packets[i], bytes, offset, options);
  return bytes;
}

/**
 * A `TransformStream` from MQTT control packets to bytes: pipe it into a
 * connection's `writable` and write one {@linkcode Packet} at a time, or an
 * array of packets to have them encoded into one chunk (one write to the
 * connection for many packets). Each chunk holds exactly the bytes of its
 * packets, and nothing writes to it again (a small one may be a view into a
 * buffer shared with other chunks, so use `chunk.byteOffset` and
 * `chunk.length`, not `chunk.buffer` alone).
 *
 * A packet that cannot be encoded (it breaks a rule of the specification, or
 * exceeds `maxPacketSize`) errors the stream with the codec's `ProtocolError`.
 *
 * Backpressure: the writable side holds at most one packet and the readable
 * side no encoded chunk nobody asked for, so `writer.ready` waits while the
 * connection is slow.
 *
 * @example Encode packets to bytes
 * ```ts
 * import { PacketWriter } from "./packet_writer.ts";
 *
 * const bytes = ReadableStream.from([{ type: "pingreq" } as const])
 *   .pipeThrough(new PacketWriter());
 * for await (const chunk of bytes) console.log(chunk); // Uint8Array(2) [ 192, 0 ]
 * ```
 *
 * @example Write packets to a TCP connection
 * ```ts ignore
 * import { PacketWriter } from "./packet_writer.ts";
 *
 * const conn = await Deno.connect({ hostname: "localhost", port: 1883 });
 * const packets = new PacketWriter();
 * packets.readable.pipeTo(conn.writable);
 * const writer = packets.writable.getWriter();
 * await writer.write({ type: "pingreq" });
 * ```
 */
export class PacketWriter extends TransformStream<Packet | readonly Packet[], Uint8Array> {
  /**
   * Creates a writer.
   *
   * @param options `maxPacketSize` refuses larger packets; `protocolVersion`
   * selects the wire format.
   */
  constructor(options?: CodecOptions) {
    const transformer = new PacketWriterTransformer(options);
    super(
      transformer,
      // Written out though they are the defaults: they are the backpressure contract.
      { highWaterMark: 1 },
      { highWaterMark: 0 },
    );
    this.#transformer = transformer;
  }

  readonly #transformer: PacketWriterTransformer;

  /**
   * Protocol level of the packets written from now on: a broker sets it to
   * the level of the CONNECT it read, before it writes the CONNACK.
   *
   * @example
   * ```ts
   * import { PacketWriter } from "./packet_writer.ts";
   * const writer = new PacketWriter();
   * writer.protocolVersion = 5;
   * console.log(writer.protocolVersion); // 5
   * ```
   */
  get protocolVersion(): ProtocolVersion {
    return this.#transformer.protocolVersion;
  }

  set protocolVersion(version: ProtocolVersion) {
    this.#transformer.protocolVersion = version;
  }
}
