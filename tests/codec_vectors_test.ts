/**
 * Byte-exact vectors for every MQTT 3.1.1 packet type, both directions,
 * worked out by hand from the specification (section numbers in comments).
 */
import assert from "node:assert/strict";
import {
  decodePacket,
  encodedLength,
  encodeInto,
  encodePacket,
  type Packet,
  packetLength,
} from "../lib/codec/mod.ts";
import {
  readRemainingLength,
  remainingLengthSize,
  writeRemainingLength,
} from "../lib/codec/remaining_length.ts";

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

interface Vector {
  name: string;
  packet: Packet;
  bytes: number[];
}

const VECTORS: Vector[] = [
  {
    // Section 3.1.2.11, Figure 3.6: the spec's variable header example
    // (user name, password, will QoS 1, will flag, clean session, keep alive 10),
    // completed with a payload in the order of MQTT-3.1.3-1.
    name: "CONNECT: spec variable header example 3.1.2.11 with full payload",
    packet: {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "c1",
      clean: true,
      keepAlive: 10,
      will: { topic: "w/t", payload: ascii("bye"), qos: 1, retain: false },
      username: "u",
      password: new Uint8Array([0x70, 0x77]),
    },
    bytes: [
      0x10,
      0x1f, // CONNECT, remaining length 31
      0x00,
      0x04,
      0x4d,
      0x51,
      0x54,
      0x54, // protocol name "MQTT" (bytes 1-6)
      0x04, // protocol level 4 (byte 7)
      0xce, // flags 1100 1110: user name, password, will QoS 01, will, clean (byte 8)
      0x00,
      0x0a, // keep alive 10 (bytes 9-10)
      0x00,
      0x02,
      0x63,
      0x31, // client id "c1"
      0x00,
      0x03,
      0x77,
      0x2f,
      0x74, // will topic "w/t"
      0x00,
      0x03,
      0x62,
      0x79,
      0x65, // will message "bye"
      0x00,
      0x01,
      0x75, // user name "u"
      0x00,
      0x02,
      0x70,
      0x77, // password "pw"
    ],
  },
  {
    // Section 3.1: zero-byte client id with clean session (MQTT-3.1.3-6/-7).
    name: "CONNECT: minimal, empty client id, keep alive off",
    packet: {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "",
      clean: true,
      keepAlive: 0,
    },
    bytes: [
      0x10,
      0x0c, // CONNECT, remaining length 12
      0x00,
      0x04,
      0x4d,
      0x51,
      0x54,
      0x54,
      0x04, // "MQTT", level 4
      0x02, // clean session only
      0x00,
      0x00, // keep alive 0
      0x00,
      0x00, // client id ""
    ],
  },
  {
    name: "CONNECT: will retain QoS 2, no clean session, keep alive 65535",
    packet: {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "id",
      clean: false,
      keepAlive: 65535,
      will: { topic: "t", payload: new Uint8Array(0), qos: 2, retain: true },
    },
    bytes: [
      0x10,
      0x13, // CONNECT, remaining length 19
      0x00,
      0x04,
      0x4d,
      0x51,
      0x54,
      0x54,
      0x04, // "MQTT", level 4
      0x34, // 0011 0100: will retain, will QoS 10, will flag
      0xff,
      0xff, // keep alive 65535
      0x00,
      0x02,
      0x69,
      0x64, // client id "id"
      0x00,
      0x01,
      0x74, // will topic "t"
      0x00,
      0x00, // empty will message
    ],
  },
  {
    name: "CONNECT: user name only, UTF-8 (MQTT-3.1.3-11)",
    packet: {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "a",
      clean: true,
      keepAlive: 60,
      username: "ñ",
    },
    bytes: [
      0x10,
      0x11, // CONNECT, remaining length 17
      0x00,
      0x04,
      0x4d,
      0x51,
      0x54,
      0x54,
      0x04, // "MQTT", level 4
      0x82, // user name flag, clean session
      0x00,
      0x3c, // keep alive 60
      0x00,
      0x01,
      0x61, // client id "a"
      0x00,
      0x02,
      0xc3,
      0xb1, // user name "ñ" (U+00F1)
    ],
  },
  {
    // Section 3.2: session present, accepted.
    name: "CONNACK: session present, accepted",
    packet: { type: "connack", sessionPresent: true, returnCode: 0 },
    bytes: [0x20, 0x02, 0x01, 0x00],
  },
  {
    name: "CONNACK: refused, not authorized (return code 5)",
    packet: { type: "connack", sessionPresent: false, returnCode: 5 },
    bytes: [0x20, 0x02, 0x00, 0x05],
  },
  {
    // Section 3.3: QoS 0 has no packet identifier (MQTT-2.3.1-5).
    name: "PUBLISH: QoS 0 'a/b' payload 'hi'",
    packet: {
      type: "publish",
      topic: "a/b",
      payload: ascii("hi"),
      qos: 0,
      retain: false,
      dup: false,
      packetId: undefined,
    },
    bytes: [0x30, 0x07, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x68, 0x69],
  },
  {
    // Section 3.3.2.3, Table 3.3: topic "a/b", packet identifier 10.
    name: "PUBLISH: spec example 3.3.2.3, QoS 1, DUP, RETAIN",
    packet: {
      type: "publish",
      topic: "a/b",
      payload: ascii("hi"),
      qos: 1,
      retain: true,
      dup: true,
      packetId: 10,
    },
    bytes: [
      0x3b,
      0x09, // PUBLISH 1011: DUP, QoS 01, RETAIN; remaining length 9
      0x00,
      0x03,
      0x61,
      0x2f,
      0x62, // topic "a/b"
      0x00,
      0x0a, // packet identifier 10
      0x68,
      0x69, // payload "hi"
    ],
  },
  {
    name: "PUBLISH: QoS 2, RETAIN, 3-byte UTF-8 topic, empty payload",
    packet: {
      type: "publish",
      topic: "€",
      payload: new Uint8Array(0),
      qos: 2,
      retain: true,
      dup: false,
      packetId: 0x1234,
    },
    bytes: [
      0x35,
      0x07, // PUBLISH 0101: QoS 10, RETAIN; remaining length 7
      0x00,
      0x03,
      0xe2,
      0x82,
      0xac, // topic "€" (U+20AC)
      0x12,
      0x34, // packet identifier 0x1234
    ],
  },
  {
    name: "PUBLISH: 4-byte UTF-8 topic and a BOM kept as U+FEFF (MQTT-1.5.3-3)",
    packet: {
      type: "publish",
      topic: "\uFEFF\u{1F600}",
      payload: new Uint8Array([0x00]),
      qos: 0,
      retain: false,
      dup: false,
      packetId: undefined,
    },
    bytes: [
      0x30,
      0x0a, // PUBLISH QoS 0, remaining length 10
      0x00,
      0x07,
      0xef,
      0xbb,
      0xbf,
      0xf0,
      0x9f,
      0x98,
      0x80, // U+FEFF U+1F600
      0x00, // payload: one zero byte (payloads are binary)
    ],
  },
  {
    name: "PUBACK: packet identifier 10",
    packet: { type: "puback", packetId: 10 },
    bytes: [0x40, 0x02, 0x00, 0x0a],
  },
  {
    name: "PUBREC: packet identifier 65535",
    packet: { type: "pubrec", packetId: 65535 },
    bytes: [0x50, 0x02, 0xff, 0xff],
  },
  {
    // MQTT-3.6.1-1: flags 0010.
    name: "PUBREL: packet identifier 1, flags 0010",
    packet: { type: "pubrel", packetId: 1 },
    bytes: [0x62, 0x02, 0x00, 0x01],
  },
  {
    name: "PUBCOMP: packet identifier 0x1234",
    packet: { type: "pubcomp", packetId: 0x1234 },
    bytes: [0x70, 0x02, 0x12, 0x34],
  },
  {
    // Section 3.8.2.1 (packet identifier 10) and 3.8.3.1, Figure 3.23
    // ("a/b" QoS 1, "c/d" QoS 2); flags 0010 (MQTT-3.8.1-1).
    name: "SUBSCRIBE: spec example 3.8.3.1",
    packet: {
      type: "subscribe",
      packetId: 10,
      subscriptions: [{ filter: "a/b", qos: 1 }, { filter: "c/d", qos: 2 }],
    },
    bytes: [
      0x82,
      0x0e, // SUBSCRIBE 0010, remaining length 14
      0x00,
      0x0a, // packet identifier 10
      0x00,
      0x03,
      0x61,
      0x2f,
      0x62,
      0x01, // "a/b" QoS 1
      0x00,
      0x03,
      0x63,
      0x2f,
      0x64,
      0x02, // "c/d" QoS 2
    ],
  },
  {
    name: "SUBSCRIBE: wildcards '+/#' and '#', QoS 0",
    packet: {
      type: "subscribe",
      packetId: 2,
      subscriptions: [{ filter: "+/#", qos: 0 }, { filter: "#", qos: 0 }],
    },
    bytes: [
      0x82,
      0x0c, // SUBSCRIBE, remaining length 12
      0x00,
      0x02, // packet identifier 2
      0x00,
      0x03,
      0x2b,
      0x2f,
      0x23,
      0x00, // "+/#" QoS 0
      0x00,
      0x01,
      0x23,
      0x00, // "#" QoS 0
    ],
  },
  {
    // Section 3.9.3.1, Figure 3.27: return codes 0, 2 and 0x80 (failure).
    name: "SUBACK: spec example 3.9.3.1",
    packet: { type: "suback", packetId: 10, returnCodes: [0, 2, 0x80] },
    bytes: [0x90, 0x05, 0x00, 0x0a, 0x00, 0x02, 0x80],
  },
  {
    // Section 3.10.3.1, Figure 3.30: "a/b" and "c/d"; flags 0010 (MQTT-3.10.1-1).
    name: "UNSUBSCRIBE: spec example 3.10.3.1",
    packet: { type: "unsubscribe", packetId: 10, filters: ["a/b", "c/d"] },
    bytes: [
      0xa2,
      0x0c, // UNSUBSCRIBE 0010, remaining length 12
      0x00,
      0x0a, // packet identifier 10
      0x00,
      0x03,
      0x61,
      0x2f,
      0x62, // "a/b"
      0x00,
      0x03,
      0x63,
      0x2f,
      0x64, // "c/d"
    ],
  },
  {
    name: "UNSUBACK: packet identifier 10",
    packet: { type: "unsuback", packetId: 10 },
    bytes: [0xb0, 0x02, 0x00, 0x0a],
  },
  { name: "PINGREQ", packet: { type: "pingreq" }, bytes: [0xc0, 0x00] },
  { name: "PINGRESP", packet: { type: "pingresp" }, bytes: [0xd0, 0x00] },
  { name: "DISCONNECT", packet: { type: "disconnect" }, bytes: [0xe0, 0x00] },
];

for (const v of VECTORS) {
  Deno.test(`vector encode: ${v.name}`, () => {
    const bytes = encodePacket(v.packet);
    assert.deepEqual(Array.from(bytes), v.bytes);
    assert.equal(encodedLength(v.packet), v.bytes.length);
    // encodeInto at an offset writes the same bytes and nothing else.
    const target = new Uint8Array(v.bytes.length + 6).fill(0xee);
    assert.equal(encodeInto(v.packet, target, 3), v.bytes.length);
    assert.deepEqual(Array.from(target.subarray(3, 3 + v.bytes.length)), v.bytes);
    assert.deepEqual(Array.from(target.subarray(0, 3)), [0xee, 0xee, 0xee]);
    assert.deepEqual(Array.from(target.subarray(3 + v.bytes.length)), [0xee, 0xee, 0xee]);
  });
  Deno.test(`vector decode: ${v.name}`, () => {
    // Surrounded by other bytes: the decoder must stay within [offset, end).
    const buf = new Uint8Array([0xff, 0xff, ...v.bytes, 0xff]);
    const end = 2 + v.bytes.length;
    assert.equal(packetLength(buf, 2, end + 1), v.bytes.length);
    assert.deepStrictEqual(decodePacket(buf, 2, end), v.packet);
  });
}

Deno.test("decode: PUBLISH payload, will message and password alias the input", () => {
  const publish = new Uint8Array(VECTORS[7].bytes);
  const p = decodePacket(publish, 0, publish.length);
  assert(p.type === "publish");
  assert.equal(p.payload.buffer, publish.buffer);
  assert.equal(p.payload.byteOffset, 9);
  const connect = new Uint8Array(VECTORS[0].bytes);
  const c = decodePacket(connect, 0, connect.length);
  assert(c.type === "connect" && c.will && c.password);
  assert.equal(c.will.payload.buffer, connect.buffer);
  assert.equal(c.password.buffer, connect.buffer);
});

Deno.test("decode: QoS 0 PUBLISH has a packetId key set to undefined (one object shape)", () => {
  const bytes = new Uint8Array(VECTORS[6].bytes);
  const p = decodePacket(bytes, 0, bytes.length);
  assert(Object.hasOwn(p, "packetId"));
  assert.deepEqual(Object.keys(p), [
    "type",
    "topic",
    "payload",
    "qos",
    "retain",
    "dup",
    "packetId",
  ]);
});

Deno.test("decode: CONNECT omits absent optional fields", () => {
  const bytes = new Uint8Array(VECTORS[1].bytes);
  const c = decodePacket(bytes, 0, bytes.length);
  assert.deepEqual(Object.keys(c).sort(), [
    "clean",
    "clientId",
    "keepAlive",
    "protocolLevel",
    "protocolName",
    "type",
  ]);
});

// Section 2.2.3, Table 2.4: the boundaries of each field size.
const LENGTHS: [number, number[]][] = [
  [0, [0x00]],
  [127, [0x7f]],
  [128, [0x80, 0x01]],
  [16_383, [0xff, 0x7f]],
  [16_384, [0x80, 0x80, 0x01]],
  [2_097_151, [0xff, 0xff, 0x7f]],
  [2_097_152, [0x80, 0x80, 0x80, 0x01]],
  [268_435_455, [0xff, 0xff, 0xff, 0x7f]],
];

for (const [value, field] of LENGTHS) {
  Deno.test(`remaining length ${value} is ${field.map((b) => b.toString(16)).join(" ")}`, () => {
    assert.equal(remainingLengthSize(value), field.length);
    const buf = new Uint8Array(4);
    assert.equal(writeRemainingLength(buf, 0, value), field.length);
    assert.deepEqual(Array.from(buf.subarray(0, field.length)), field);
    const r = readRemainingLength(new Uint8Array(field), 0, field.length);
    assert.equal(r >>> 2, value);
    assert.equal((r & 3) + 1, field.length);
    // Each shorter prefix is incomplete.
    for (let n = 0; n < field.length; n++) {
      assert.equal(readRemainingLength(new Uint8Array(field), 0, n), -1);
    }
    // packetLength from the header alone, before any body byte.
    const header = new Uint8Array([0x30, ...field]);
    assert.equal(packetLength(header, 0, header.length), 1 + field.length + value);
  });
}

Deno.test("remaining length boundaries through whole PUBLISH packets", () => {
  // Topic "t" (3 bytes) + QoS 0: remaining length = 3 + payload.
  for (const [value, field] of LENGTHS) {
    if (value < 3 || value > 2_097_152) continue;
    const packet: Packet = {
      type: "publish",
      topic: "t",
      payload: new Uint8Array(value - 3).fill(0x5a),
      qos: 0,
      retain: false,
      dup: false,
      packetId: undefined,
    };
    const bytes = encodePacket(packet);
    assert.equal(bytes.length, 1 + field.length + value);
    assert.deepEqual(Array.from(bytes.subarray(0, 1 + field.length)), [0x30, ...field]);
    assert.deepEqual(Array.from(bytes.subarray(1 + field.length, 4 + field.length)), [0, 1, 0x74]);
    assert.equal(packetLength(bytes, 0, 1 + field.length), bytes.length);
    assert.deepStrictEqual(decodePacket(bytes, 0, bytes.length), packet);
  }
});

Deno.test("remaining length 268435455 measured without allocating it", () => {
  // A stand-in payload with the right length: encodedLength reads only `length`.
  const payload = { length: 268_435_455 - 3 } as unknown as Uint8Array;
  const packet: Packet = {
    type: "publish",
    topic: "t",
    payload,
    qos: 0,
    retain: false,
    dup: false,
  };
  assert.equal(encodedLength(packet), 268_435_460);
});

Deno.test("packetLength: -1 until the fixed header is complete", () => {
  assert.equal(packetLength(new Uint8Array(0), 0, 0), -1);
  assert.equal(packetLength(new Uint8Array([0x30]), 0, 1), -1);
  assert.equal(packetLength(new Uint8Array([0x30, 0x80]), 0, 2), -1);
  assert.equal(packetLength(new Uint8Array([0x30, 0x80, 0x80, 0x80]), 0, 4), -1);
  // The end bound is respected even when the array holds more.
  assert.equal(packetLength(new Uint8Array([0x30, 0x80, 0x01]), 0, 2), -1);
  assert.equal(packetLength(new Uint8Array([0x30, 0x80, 0x01]), 0, 3), 131);
});
