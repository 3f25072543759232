import assert from "node:assert/strict";
import { type CodecOptions, encodedLength, encodePacket } from "../lib/codec/mod.ts";
import type { Packet, PublishPacket, QoS } from "../lib/codec/packet.ts";
import { ProtocolError, type ProtocolErrorCode } from "../lib/errors.ts";
import { PacketFramer, PacketReader } from "../lib/streams/packet_reader.ts";
import { PacketWriter } from "../lib/streams/packet_writer.ts";
import { mulberry32, randomPacket5 } from "./fuzz.ts";

// ---------------------------------------------------------------------------
// Helpers

const text = new TextEncoder();

function bytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

/** mulberry32: a small seeded PRNG, so a failing chunking can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Drops keys whose value is undefined, so an absent optional field equals an undefined one. */
function normalize(value: unknown): unknown {
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(normalize);
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    if (field !== undefined) out[key] = normalize(field);
  }
  return out;
}

function assertPackets(actual: Packet[], expected: Packet[], context = ""): void {
  assert.equal(actual.length, expected.length, `packet count ${context}`);
  for (let i = 0; i < expected.length; i++) {
    assert.deepStrictEqual(normalize(actual[i]), normalize(expected[i]), `packet ${i} ${context}`);
  }
}

function read(chunks: Iterable<Uint8Array>, options?: CodecOptions): Promise<Packet[]> {
  return Array.fromAsync(ReadableStream.from(chunks).pipeThrough(new PacketReader(options)));
}

function isProtocolError(code: ProtocolErrorCode): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof ProtocolError, `expected a ProtocolError, got ${err}`);
    assert.equal(err.code, code);
    return true;
  };
}

/** Cuts `data` into chunks at the given offsets (which may repeat, giving empty chunks). */
function cut(data: Uint8Array, offsets: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const to of offsets) {
    chunks.push(data.slice(from, to));
    from = to;
  }
  chunks.push(data.slice(from));
  return chunks;
}

// ---------------------------------------------------------------------------
// Sample packets: every one of the 14 control packet types, and Remaining
// Lengths of 1, 2, 3 and 4 bytes (MQTT 2.2.3).

const SAMPLES: Packet[] = [
  {
    type: "connect",
    protocolName: "MQTT",
    protocolLevel: 4,
    clientId: "client-1",
    clean: true,
    keepAlive: 60,
    username: "user",
    password: text.encode("secret"),
    will: { topic: "status/client-1", payload: text.encode("offline"), qos: 1, retain: true },
  },
  {
    type: "connect",
    protocolName: "MQTT",
    protocolLevel: 4,
    clientId: "",
    clean: true,
    keepAlive: 0,
  },
  { type: "connack", sessionPresent: true, returnCode: 0 },
  { type: "connack", sessionPresent: false, returnCode: 5 },
  {
    type: "publish",
    topic: "a/b",
    payload: text.encode("hello"),
    qos: 0,
    retain: false,
    dup: false,
  },
  {
    type: "publish",
    topic: "a",
    payload: new Uint8Array(0),
    qos: 1,
    retain: true,
    dup: false,
    packetId: 1,
  },
  {
    type: "publish",
    topic: "x/y/z",
    payload: bytes(200),
    qos: 2,
    retain: false,
    dup: true,
    packetId: 65535,
  },
  { type: "publish", topic: "big", payload: bytes(20_000, 2), qos: 0, retain: false, dup: false },
  { type: "puback", packetId: 7 },
  { type: "pubrec", packetId: 8 },
  { type: "pubrel", packetId: 9 },
  { type: "pubcomp", packetId: 10 },
  {
    type: "subscribe",
    packetId: 11,
    subscriptions: [
      { filter: "a/+", qos: 0 },
      { filter: "b/#", qos: 1 },
      { filter: "#", qos: 2 },
    ],
  },
  { type: "suback", packetId: 11, returnCodes: [0, 1, 2, 0x80] },
  { type: "unsubscribe", packetId: 12, filters: ["a/+", "b/#"] },
  { type: "unsuback", packetId: 12 },
  { type: "pingreq" },
  { type: "pingresp" },
  { type: "disconnect" },
];

/** A PUBLISH whose Remaining Length takes 4 bytes, and which is over the reader's 1 MiB preallocation limit. */
const HUGE: PublishPacket = {
  type: "publish",
  topic: "huge",
  payload: bytes(2_200_000, 3),
  qos: 1,
  retain: false,
  dup: false,
  packetId: 42,
};

const SAMPLE_BYTES = SAMPLES.map((packet) => encodePacket(packet));

// ---------------------------------------------------------------------------
// Framing

Deno.test("samples cover all 14 control packet types and 1- to 4-byte Remaining Lengths", () => {
  assert.equal(new Set(SAMPLES.map((p) => p.type)).size, 14);
  // Bits 7-6 of the last Remaining Length byte: 1..4 length bytes seen (MQTT 2.2.3).
  const lengthBytes = new Set(
    [...SAMPLE_BYTES, encodePacket(HUGE)].map((b) => {
      let n = 1;
      while (b[n] & 0x80) n++;
      return n;
    }),
  );
  assert.deepStrictEqual([...lengthBytes].sort(), [1, 2, 3, 4]);
});

Deno.test("PacketReader decodes each packet type split once at every byte boundary", async () => {
  for (let k = 0; k < SAMPLES.length; k++) {
    const data = SAMPLE_BYTES[k];
    // The big PUBLISH is checked at every boundary of its header and a stride through its body.
    const step = data.length > 1000 ? 97 : 1;
    for (let at = 0; at <= data.length; at += at < 8 ? 1 : step) {
      assertPackets(await read(cut(data, [at])), [SAMPLES[k]], `${SAMPLES[k].type} cut at ${at}`);
    }
  }
});

Deno.test("PacketReader decodes each packet type fed byte by byte", async () => {
  for (let k = 0; k < SAMPLES.length; k++) {
    const data = SAMPLE_BYTES[k];
    if (data.length > 1000) continue; // the big one: covered by the stride test above
    const offsets = Array.from({ length: data.length - 1 }, (_, i) => i + 1);
    assertPackets(await read(cut(data, offsets)), [SAMPLES[k]], SAMPLES[k].type);
  }
});

Deno.test("PacketReader decodes all samples in one chunk and cut once at every boundary", async () => {
  const small = SAMPLES.filter((_, k) => SAMPLE_BYTES[k].length < 1000);
  const data = concat(small.map((p) => encodePacket(p)));
  assertPackets(await read([data]), small, "one chunk");
  for (let at = 0; at <= data.length; at++) {
    assertPackets(await read(cut(data, [at])), small, `cut at ${at}`);
  }
});

Deno.test("PacketReader passes over empty chunks anywhere", async () => {
  const data = concat(SAMPLE_BYTES.slice(0, 6));
  const empty = new Uint8Array(0);
  assertPackets(await read([empty]), []);
  // Cut between every byte of the second packet's header, with empty chunks around each cut.
  const start = SAMPLE_BYTES[0].length;
  const chunks = [empty, data.slice(0, start + 1), empty, empty];
  chunks.push(data.slice(start + 1, start + 2), empty, data.slice(start + 2), empty);
  assertPackets(await read(chunks), SAMPLES.slice(0, 6));
});

Deno.test("PacketReader decodes thousands of random packets in random chunkings", async () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const random = prng(seed);
    const packets: Packet[] = [];
    for (let i = 0; i < 3000; i++) {
      const r = random();
      if (r < 0.6) {
        const qos = Math.floor(random() * 3) as QoS;
        // Mostly small payloads, some across the 2- and 3-byte Remaining Length edges.
        const size = random() < 0.9 ? Math.floor(random() * 140) : Math.floor(random() * 17_000);
        packets.push({
          type: "publish",
          topic: `t/${i % 17}/${Math.floor(random() * 1000)}`,
          payload: bytes(size, i),
          qos,
          retain: random() < 0.2,
          dup: qos > 0 && random() < 0.1,
          ...(qos > 0 ? { packetId: 1 + Math.floor(random() * 65535) } : {}),
        });
      } else {
        packets.push(SAMPLES[Math.floor(random() * SAMPLES.length)]);
      }
    }
    const data = concat(packets.map((p) => encodePacket(p)));
    const offsets: number[] = [];
    // Chunk sizes from 0 (empty chunks) to 64 KiB, skewed small so many cuts fall in headers.
    for (let at = 0; at < data.length;) {
      const r = random();
      at += r < 0.05 ? 0 : r < 0.5 ? Math.floor(random() * 8) : Math.floor(random() * 65_536);
      offsets.push(Math.min(at, data.length));
    }
    const chunks = cut(data, offsets);
    const copies = chunks.map((c) => c.slice());
    assertPackets(await read(chunks), packets, `seed ${seed}`);
    // The reader never writes into the chunks it is given.
    assert.deepStrictEqual(chunks, copies);
  }
});

Deno.test("PacketReader reassembles a 2 MiB packet cut in its header and body", async () => {
  const data = concat([encodePacket(HUGE), SAMPLE_BYTES[16]]); // then a PINGREQ
  for (const headerCut of [1, 2, 3, 4, 5]) {
    const offsets = [headerCut];
    for (let at = 65_536; at < data.length; at += 65_536) offsets.push(at);
    const packets = await read(cut(data, offsets));
    assertPackets(packets, [HUGE, SAMPLES[16]], `header cut at ${headerCut}`);
    // Gathered and copied once into a buffer of exactly the packet's size.
    const payload = (packets[0] as PublishPacket).payload;
    assert.equal(payload.buffer.byteLength, encodedLength(HUGE));
  }
});

// ---------------------------------------------------------------------------
// Copies and aliasing

Deno.test("PacketReader decodes a packet lying whole in a chunk in place, without a copy", async () => {
  const chunk = concat([SAMPLE_BYTES[4], SAMPLE_BYTES[6]]);
  const [first, second] = (await read([chunk])) as PublishPacket[];
  assert.equal(first.payload.buffer, chunk.buffer);
  assert.equal(second.payload.buffer, chunk.buffer);
});

Deno.test("PacketReader copies a cut packet once into a buffer of its exact size", async () => {
  const data = SAMPLE_BYTES[6]; // PUBLISH with a 200-byte payload
  for (const at of [1, 2, 3, 50, data.length - 1]) {
    const chunks = cut(data, [at]);
    const [packet] = (await read(chunks)) as PublishPacket[];
    assert.equal(packet.payload.buffer.byteLength, data.length, `cut at ${at}`);
    assert.ok(chunks.every((c) => c.buffer !== packet.payload.buffer));
  }
});

// ---------------------------------------------------------------------------
// Errors

Deno.test("PacketReader errors with TRUNCATED_PACKET when the stream ends inside a packet", async () => {
  const data = SAMPLE_BYTES[6]; // 3-byte fixed header
  for (const at of [1, 2, 3, 10, data.length - 1]) {
    await assert.rejects(
      read([SAMPLE_BYTES[16], data.slice(0, at)]),
      isProtocolError("TRUNCATED_PACKET"),
      `${at}`,
    );
  }
  const huge = encodePacket(HUGE);
  await assert.rejects(read([huge.subarray(0, 1_500_000)]), isProtocolError("TRUNCATED_PACKET"));
  // The packets before the cut are still delivered.
  const packets: Packet[] = [];
  const stream = ReadableStream.from([SAMPLE_BYTES[16], data.slice(0, 5)]).pipeThrough(
    new PacketReader(),
  );
  await assert.rejects(async () => {
    for await (const packet of stream) packets.push(packet);
  }, isProtocolError("TRUNCATED_PACKET"));
  assertPackets(packets, [SAMPLES[16]]);
});

Deno.test("PacketReader rejects an oversized packet from its fixed header, before its body is sent", async () => {
  const reader = new PacketReader({ maxPacketSize: 1024 });
  const writer = reader.writable.getWriter();
  const packets = reader.readable.getReader();
  const result = packets.read();
  // Only the fixed header of a PUBLISH with Remaining Length 2,097,152 (0x80 0x80 0x80 0x01).
  // No byte of the body is ever written and the writable side stays open.
  const write = writer.write(new Uint8Array([0x30, 0x80, 0x80, 0x80, 0x01]));
  await assert.rejects(result, isProtocolError("PACKET_TOO_LARGE"));
  await assert.rejects(write, isProtocolError("PACKET_TOO_LARGE"));
});

Deno.test("PacketReader rejects an oversized packet whose fixed header is cut across chunks", async () => {
  const reader = new PacketReader({ maxPacketSize: 1024 });
  const writer = reader.writable.getWriter();
  const packets = reader.readable.getReader();
  const result = packets.read();
  await writer.write(new Uint8Array([0x30, 0x80]));
  await writer.write(new Uint8Array([0x80]));
  const write = writer.write(new Uint8Array([0x01]));
  await assert.rejects(result, isProtocolError("PACKET_TOO_LARGE"));
  await assert.rejects(write, isProtocolError("PACKET_TOO_LARGE"));
});

Deno.test("PacketReader maxPacketSize counts the whole packet: equal passes, one more fails", async () => {
  const packet = SAMPLES[6];
  const size = encodedLength(packet);
  const data = SAMPLE_BYTES[6];
  assertPackets(await read(cut(data, [2]), { maxPacketSize: size }), [packet]);
  await assert.rejects(
    read(cut(data, [2]), { maxPacketSize: size - 1 }),
    isProtocolError("PACKET_TOO_LARGE"),
  );
  await assert.rejects(
    read([data], { maxPacketSize: size - 1 }),
    isProtocolError("PACKET_TOO_LARGE"),
  );
});

Deno.test("PacketReader errors with the codec's ProtocolError on malformed bytes", async () => {
  const cases: [string, number[], ProtocolErrorCode][] = [
    // MQTT 2.2.3: at most 4 Remaining Length bytes.
    ["5-byte Remaining Length", [0x30, 0xff, 0xff, 0xff, 0xff, 0x01], "MALFORMED_REMAINING_LENGTH"],
    // MQTT 2.2.1: types 0 and 15 are reserved.
    ["packet type 0", [0x00, 0x00], "INVALID_PACKET_TYPE"],
    ["packet type 15", [0xf0, 0x00], "INVALID_PACKET_TYPE"],
    // MQTT-3.6.1-1: PUBREL flags must be 0b0010.
    ["PUBREL flags 0", [0x60, 0x02, 0x00, 0x01], "INVALID_FLAGS"],
    // MQTT-3.3.1-4: QoS 3 is forbidden.
    ["PUBLISH QoS 3", [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01], "INVALID_QOS"],
    // MQTT-2.3.1-1: packet identifiers are non-zero.
    ["PUBACK packet id 0", [0x40, 0x02, 0x00, 0x00], "INVALID_PACKET_ID"],
  ];
  for (const [name, input, code] of cases) {
    const data = new Uint8Array(input);
    // Preceded by a good packet (delivered first), whole and cut at every boundary.
    const whole = concat([SAMPLE_BYTES[17], data]);
    for (let at = 0; at <= whole.length; at++) {
      const packets: Packet[] = [];
      const stream = ReadableStream.from(cut(whole, [at])).pipeThrough(new PacketReader());
      await assert.rejects(
        async () => {
          for await (const packet of stream) packets.push(packet);
        },
        isProtocolError(code),
        `${name} cut at ${at}`,
      );
      assertPackets(packets, [SAMPLES[17]], name);
    }
  }
});

// ---------------------------------------------------------------------------
// PacketFramer (the framing behind PacketReader, used without a stream)

Deno.test("PacketFramer hands over each packet during the push that completes it", () => {
  // ends[k]: offset just past sample k in the concatenation.
  const ends: number[] = [];
  const offsets: number[] = [];
  let at = 0;
  for (const data of SAMPLE_BYTES) {
    // One cut inside the sample's fixed header and one inside its body.
    offsets.push(at + 1, at + data.length - 1);
    at += data.length;
    ends.push(at);
  }
  const framer = new PacketFramer();
  const packets: Packet[] = [];
  let pushed = 0;
  for (const chunk of cut(concat(SAMPLE_BYTES), offsets)) {
    assert.equal(framer.push(chunk, (packet) => void packets.push(packet)), true);
    pushed += chunk.length;
    const complete = ends.filter((end) => end <= pushed).length;
    assert.equal(packets.length, complete, `after ${pushed} bytes`);
    assert.equal(framer.pending, pushed !== (complete === 0 ? 0 : ends[complete - 1]));
  }
  framer.end();
  assertPackets(packets, SAMPLES);
});

Deno.test("PacketFramer stops after the packet whose callback returns false, resume() goes on", () => {
  // Cut inside the second sample, so one stop falls on a packet completed across chunks.
  const all = concat([...SAMPLE_BYTES, ...SAMPLE_BYTES]);
  const chunks = cut(all, [SAMPLE_BYTES[0].length + 2, Math.floor(all.length / 2)]);
  const framer = new PacketFramer();
  const packets: Packet[] = [];
  const one = (packet: Packet) => {
    packets.push(packet);
    return false;
  };
  for (const chunk of chunks) {
    let before = packets.length;
    let used = framer.push(chunk, one);
    while (!used) {
      assert.equal(packets.length, before + 1, "one packet per push or resume");
      assert.equal(framer.pending, true);
      before = packets.length;
      used = framer.resume(one);
    }
  }
  assert.equal(framer.resume(one), true, "nothing left to resume");
  framer.end();
  assertPackets(packets, [...SAMPLES, ...SAMPLES]);
});

Deno.test("PacketFramer end() throws TRUNCATED_PACKET inside a packet; reset() drops it", () => {
  const framer = new PacketFramer();
  const packets: Packet[] = [];
  const collect = (packet: Packet) => void packets.push(packet);
  framer.push(SAMPLE_BYTES[6].subarray(0, 2), collect);
  assert.equal(framer.pending, true);
  assert.throws(() => framer.end(), isProtocolError("TRUNCATED_PACKET"));
  assert.equal(framer.pending, false);
  framer.push(SAMPLE_BYTES[6].subarray(0, 10), collect);
  framer.reset();
  assert.equal(framer.pending, false);
  // After reset() the next byte starts a new packet.
  framer.push(concat([SAMPLE_BYTES[16], SAMPLE_BYTES[4]]), collect);
  framer.end();
  assertPackets(packets, [SAMPLES[16], SAMPLES[4]]);
});

// ---------------------------------------------------------------------------
// PacketWriter

Deno.test("PacketWriter encodes each packet to one chunk, the codec's bytes", async () => {
  const chunks = await Array.fromAsync(
    ReadableStream.from(SAMPLES).pipeThrough(new PacketWriter()),
  );
  assert.deepStrictEqual(chunks, SAMPLE_BYTES);
});

Deno.test("PacketWriter and PacketReader round trip every sample and a 2 MiB packet", async () => {
  const packets = [...SAMPLES, HUGE, ...SAMPLES];
  const decoded = await Array.fromAsync(
    ReadableStream.from(packets).pipeThrough(new PacketWriter()).pipeThrough(new PacketReader()),
  );
  assertPackets(decoded, packets);
});

Deno.test("PacketWriter errors with the codec's ProtocolError on a packet it cannot encode", async () => {
  // MQTT-3.3.2-2: a topic name must not contain wildcards.
  const bad: Packet = {
    type: "publish",
    topic: "a/+",
    payload: new Uint8Array(0),
    qos: 0,
    retain: false,
    dup: false,
  };
  await assert.rejects(
    Array.fromAsync(ReadableStream.from([SAMPLES[16], bad]).pipeThrough(new PacketWriter())),
    isProtocolError("INVALID_TOPIC"),
  );
  const big = SAMPLES[7];
  await assert.rejects(
    Array.fromAsync(
      ReadableStream.from([big]).pipeThrough(new PacketWriter({ maxPacketSize: 1000 })),
    ),
    isProtocolError("PACKET_TOO_LARGE"),
  );
});

// ---------------------------------------------------------------------------
// Backpressure

function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 5));
}

Deno.test("PacketReader holds back writes while nobody reads", async () => {
  const reader = new PacketReader();
  const writer = reader.writable.getWriter();
  assert.equal(writer.desiredSize, 1);
  let settled = 0;
  const three = concat([SAMPLE_BYTES[16], SAMPLE_BYTES[17], SAMPLE_BYTES[18]]);
  const writes = [];
  for (let i = 0; i < 10; i++) writes.push(writer.write(three).then(() => settled++));
  await tick();
  // Nothing was transformed: every chunk waits in the writable queue, whose size is reported.
  assert.equal(settled, 0);
  assert.equal(writer.desiredSize, -9);
  // One read lets one chunk through, whose three packets are queued; the rest still wait.
  const packets = reader.readable.getReader();
  assert.equal((await packets.read()).value?.type, "pingreq");
  await tick();
  assert.equal(settled, 1);
  assert.ok(writer.desiredSize! <= -8);
  // Draining reads everything.
  const close = writer.close();
  let count = 1;
  while (!(await packets.read()).done) count++;
  await Promise.all([...writes, close]);
  assert.equal(count, 30);
  assert.equal(settled, 10);
});

Deno.test("PacketWriter holds back writes while nobody reads", async () => {
  const stream = new PacketWriter();
  const writer = stream.writable.getWriter();
  assert.equal(writer.desiredSize, 1);
  let settled = 0;
  const writes = [];
  for (let i = 0; i < 5; i++) writes.push(writer.write(SAMPLES[16]).then(() => settled++));
  await tick();
  assert.equal(settled, 0);
  assert.equal(writer.desiredSize, -4);
  const chunks = stream.readable.getReader();
  const close = writer.close();
  let count = 0;
  while (!(await chunks.read()).done) count++;
  await Promise.all([...writes, close]);
  assert.equal(count, 5);
});

// ---------------------------------------------------------------------------
// Over TCP: the zero-copy decode relies on Deno.Conn.readable handing out a
// fresh buffer per chunk. If it ever reused one, payloads decoded from earlier
// chunks would change under the caller; this test would see it.

Deno.test("PacketReader over a TCP connection: payloads from earlier chunks stay intact", async () => {
  const random = prng(99);
  const packets: Packet[] = [];
  for (let i = 0; i < 2000; i++) {
    packets.push({
      type: "publish",
      topic: `tcp/${i % 7}`,
      payload: bytes(Math.floor(random() * 3000), i),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 1 + i,
    });
  }
  const data = concat(packets.map((p) => encodePacket(p)));
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  using server = await listener.accept();
  const sending = (async () => {
    // Writes of odd sizes, so packets are cut at many places.
    for (let at = 0; at < data.length;) {
      const size = 1 + Math.floor(random() * 9000);
      await client.write(data.subarray(at, at + size));
      at += size;
    }
    client.close();
  })();
  const buffers = new Set<ArrayBufferLike>();
  let chunks = 0;
  const tap = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      chunks++;
      buffers.add(chunk.buffer);
      controller.enqueue(chunk);
    },
  });
  const received = await Array.fromAsync(
    server.readable.pipeThrough(tap).pipeThrough(new PacketReader()),
  );
  await sending;
  assertPackets(received, packets);
  assert.equal(buffers.size, chunks, "every chunk has its own buffer");
});

Deno.test("PacketReader: a reserved packet type fails on its first byte, before any body (section 2.2.1)", async () => {
  for (const first of [0x00, 0xf0]) {
    const reader = new PacketReader();
    const writer = reader.writable.getWriter();
    const read = reader.readable.getReader().read();
    // Only the first byte: a length-driven reader would wait for up to 256 MiB here.
    writer.write(new Uint8Array([first])).catch(() => {});
    await assert.rejects(read, (err: unknown) => {
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.code, "INVALID_PACKET_TYPE");
      return true;
    });
  }
});

Deno.test("PacketWriter: an array of packets becomes one chunk with each packet's bytes in order", async () => {
  const batch: Packet[] = [
    { type: "pingreq" },
    { type: "puback", packetId: 7 },
    {
      type: "publish",
      topic: "a/b",
      payload: new Uint8Array([1, 2]),
      qos: 0,
      retain: false,
      dup: false,
    },
  ];
  const chunks = await Array.fromAsync(
    ReadableStream.from<Packet | readonly Packet[]>([batch]).pipeThrough(new PacketWriter()),
  );
  assert.equal(chunks.length, 1);
  // PINGREQ, PUBACK 7, PUBLISH "a/b" [1, 2], each encoded by hand from sections 3.12, 3.4, 3.3.
  assert.deepEqual(
    [...chunks[0]],
    [0xc0, 0x00, 0x40, 0x02, 0x00, 0x07, 0x30, 0x07, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x01, 0x02],
  );
});

// ---------------------------------------------------------------------------
// MQTT 5.0: framing at 5.0, and a version switched after the CONNECT

const V5: CodecOptions = { protocolVersion: 5 };

/** One random 5.0 packet of each of the 15 types (seeded), with properties where they go. */
function samples5(): Packet[] {
  const rng = mulberry32(0x5);
  const byType = new Map<string, Packet>();
  while (byType.size < 15) {
    const p = randomPacket5(rng, 40);
    const props = (p as { properties?: object }).properties;
    // Prefer samples that carry properties (PINGs have none to carry).
    if (!byType.has(p.type) || (props !== undefined && !hasProps(byType.get(p.type)!))) {
      byType.set(p.type, p);
    }
  }
  return [...byType.values()];
}

function hasProps(p: Packet): boolean {
  return (p as { properties?: object }).properties !== undefined;
}

const SAMPLES5 = samples5();
const SAMPLE_BYTES5 = SAMPLES5.map((p) => encodePacket(p, V5));

Deno.test("5.0: PacketReader decodes each of the 15 packet types split once at every byte boundary", async () => {
  assert.equal(new Set(SAMPLES5.map((p) => p.type)).size, 15);
  for (let k = 0; k < SAMPLES5.length; k++) {
    const data = SAMPLE_BYTES5[k];
    for (let at = 0; at <= data.length; at++) {
      assertPackets(await read(cut(data, [at]), V5), [SAMPLES5[k]], `${SAMPLES5[k].type} at ${at}`);
    }
  }
});

Deno.test("5.0: PacketReader decodes all 15 types in one stream cut at every boundary and byte by byte", async () => {
  const data = concat(SAMPLE_BYTES5);
  for (let at = 0; at <= data.length; at++) {
    assertPackets(await read(cut(data, [at]), V5), SAMPLES5, `cut at ${at}`);
  }
  const offsets = Array.from({ length: data.length - 1 }, (_, i) => i + 1);
  assertPackets(await read(cut(data, offsets), V5), SAMPLES5, "byte by byte");
});

Deno.test("5.0: a PUBLISH with a 2-byte property length reassembles across chunks", async () => {
  const packet: Packet = {
    type: "publish",
    topic: "t",
    payload: bytes(300),
    qos: 2,
    retain: false,
    dup: true,
    packetId: 77,
    properties: { userProperties: [["k", "v".repeat(200)]], subscriptionIdentifiers: [16_384] },
  };
  const data = encodePacket(packet, V5);
  for (let at = 0; at <= 20; at++) assertPackets(await read(cut(data, [at]), V5), [packet]);
});

Deno.test("5.0: PacketFramer at 5.0 accepts a 3.1.1 CONNECT, then frames 3.1.1 after switching to 4", () => {
  // A broker that speaks both versions learns the version from the CONNECT
  // (MQTT-3.1.2-2): the PUBLISH after it in the same chunk is 3.1.1, whose
  // payload byte 0x68 would be read as a property length at 5.0.
  const connect: Packet = {
    type: "connect",
    protocolName: "MQTT",
    protocolLevel: 4,
    clientId: "c",
    clean: true,
    keepAlive: 60,
  };
  const publish: Packet = {
    type: "publish",
    topic: "t",
    payload: text.encode("hi"),
    qos: 0,
    retain: false,
    dup: false,
    packetId: undefined,
  };
  const chunk = concat([encodePacket(connect), encodePacket(publish)]);
  const framer = new PacketFramer(V5);
  const packets: Packet[] = [];
  framer.push(chunk, (packet) => {
    packets.push(packet);
    if (packet.type === "connect") framer.protocolVersion = packet.protocolLevel as 4 | 5;
  });
  framer.end();
  assert.equal(framer.protocolVersion, 4);
  assert.deepStrictEqual(packets, [connect, publish]);
  // Without the switch, the same bytes are not a 5.0 PUBLISH.
  const stale = new PacketFramer(V5);
  assert.throws(() => stale.push(chunk, () => {}), isProtocolError("TRUNCATED_PACKET"));
});

Deno.test("5.0: PacketFramer switched to 5 after a 5.0 CONNECT frames AUTH and properties, also cut", () => {
  const connect: Packet = {
    type: "connect",
    protocolName: "MQTT",
    protocolLevel: 5,
    clientId: "c",
    clean: true,
    keepAlive: 60,
    properties: { authenticationMethod: "SCRAM-SHA-256" },
  };
  const auth: Packet = {
    type: "auth",
    reasonCode: 0x18,
    properties: { authenticationMethod: "SCRAM-SHA-256", authenticationData: bytes(5) },
  };
  const puback: Packet = { type: "puback", packetId: 3, reasonCode: 0x10 };
  const data = concat([
    encodePacket(connect, V5),
    encodePacket(auth, V5),
    encodePacket(puback, V5),
  ]);
  const first = encodePacket(connect, V5).length;
  // Every cut in the AUTH's fixed header, where only the switched version tells 0xf0 is legal.
  for (let at = first; at <= first + 3; at++) {
    const framer = new PacketFramer(V5);
    const packets: Packet[] = [];
    for (const chunk of cut(data, [at])) {
      framer.push(chunk, (packet) => {
        packets.push(packet);
        if (packet.type === "connect") framer.protocolVersion = packet.protocolLevel as 4 | 5;
      });
    }
    framer.end();
    assertPackets(packets, [connect, auth, puback], `cut at ${at}`);
  }
  // At 3.1.1 the same AUTH byte is a reserved packet type, refused from the first byte.
  const v4 = new PacketFramer();
  assert.throws(
    () => v4.push(encodePacket(auth, V5).subarray(0, 1), () => {}),
    isProtocolError("INVALID_PACKET_TYPE"),
  );
});

Deno.test("5.0: the protocolVersion setters refuse a level the codec does not speak", () => {
  const framer = new PacketFramer();
  assert.throws(() => {
    framer.protocolVersion = 3 as 4;
  }, isProtocolError("UNSUPPORTED_PROTOCOL"));
  assert.equal(framer.protocolVersion, 4);
  const writer = new PacketWriter();
  assert.throws(() => {
    writer.protocolVersion = 6 as 5;
  }, isProtocolError("UNSUPPORTED_PROTOCOL"));
  assert.equal(writer.protocolVersion, 4);
});

Deno.test("5.0: PacketReader and PacketWriter switch version between packets", async () => {
  const writer = new PacketWriter();
  const reader = new PacketReader();
  const done = writer.readable.pipeTo(reader.writable);
  const out = reader.readable.getReader();
  const w = writer.writable.getWriter();
  await w.write({ type: "puback", packetId: 1 });
  assert.deepStrictEqual((await out.read()).value, { type: "puback", packetId: 1 });
  writer.protocolVersion = 5;
  reader.protocolVersion = 5;
  assert.equal(reader.protocolVersion, 5);
  const puback: Packet = {
    type: "puback",
    packetId: 2,
    reasonCode: 0x97,
    properties: { reasonString: "quota" },
  };
  await w.write(puback);
  assert.deepStrictEqual((await out.read()).value, puback);
  await w.write([{ type: "auth", reasonCode: 0x19 }, { type: "disconnect", reasonCode: 0x8e }]);
  assert.deepStrictEqual((await out.read()).value, { type: "auth", reasonCode: 0x19 });
  assert.deepStrictEqual((await out.read()).value, { type: "disconnect", reasonCode: 0x8e });
  await w.close();
  assert.equal((await out.read()).done, true);
  await done;
});
