/**
 * Byte-exact vectors for all 15 MQTT 5.0 packet types, both directions,
 * worked out by hand from the 5.0 specification (section numbers in
 * comments), with properties of every value type: Byte, Two and Four Byte
 * Integer, Variable Byte Integer, UTF-8 string, string pair, Binary Data.
 */
import assert from "node:assert/strict";
import {
  type CodecOptions,
  decodePacket,
  encodedLength,
  encodeInto,
  encodePacket,
  isFailure,
  isReasonCodeOf,
  type Packet,
  packetLength,
  REASON_CODE,
  reasonCodeName,
} from "../lib/codec/mod.ts";

const V5: CodecOptions = { protocolVersion: 5 };
const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
// "MQTT" at protocol level 5 (section 3.1.2.1, 3.1.2.2).
const MQTT5 = [0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05];

interface Vector {
  name: string;
  /** What is encoded. */
  packet: Packet;
  /** What decoding `bytes` gives, when it differs from `packet` (defaults filled in). */
  decoded?: Packet;
  bytes: number[];
}

const VECTORS: Vector[] = [
  {
    // Section 3.1.2.12, Figure 3-6: the spec's variable header example (user name,
    // password, will QoS 1, will flag, Clean Start, keep alive 10, Session Expiry
    // Interval 10), completed with a payload in the order of MQTT-3.1.3-1.
    name: "CONNECT: spec example 3.1.2.12 with will properties and full payload",
    packet: {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 5,
      clientId: "c1",
      clean: true,
      keepAlive: 10,
      properties: { sessionExpiryInterval: 10 },
      will: {
        topic: "w/t",
        payload: ascii("bye"),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 30 },
      },
      username: "u",
      password: ascii("pw"),
    },
    bytes: [
      ...[0x10, 0x2b], // CONNECT, remaining length 43
      ...MQTT5, // protocol name and version 5 (bytes 1-7)
      0xce, // flags 1100 1110: user name, password, will QoS 01, will, Clean Start
      ...[0x00, 0x0a], // keep alive 10
      0x05, // property length 5
      ...[0x11, 0x00, 0x00, 0x00, 0x0a], // 0x11 Session Expiry Interval 10 (four byte integer)
      ...[0x00, 0x02, 0x63, 0x31], // client id "c1"
      0x05, // will property length 5 (section 3.1.3.2)
      ...[0x18, 0x00, 0x00, 0x00, 0x1e], // 0x18 Will Delay Interval 30
      ...[0x00, 0x03, 0x77, 0x2f, 0x74], // will topic "w/t"
      ...[0x00, 0x03, 0x62, 0x79, 0x65], // will payload "bye"
      ...[0x00, 0x01, 0x75], // user name "u"
      ...[0x00, 0x02, 0x70, 0x77], // password "pw"
    ],
  },
  {
    // Section 3.1.2.11: every CONNECT property; section 3.1.2.9: 5.0 allows a
    // password without a user name.
    name: "CONNECT: every CONNECT property, password without user name",
    packet: {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 5,
      clientId: "",
      clean: true,
      keepAlive: 60,
      properties: {
        receiveMaximum: 20,
        maximumPacketSize: 1024,
        topicAliasMaximum: 10,
        requestResponseInformation: true,
        requestProblemInformation: false,
        userProperties: [["a", "1"]],
        authenticationMethod: "m",
        authenticationData: new Uint8Array([1, 2]),
      },
      password: ascii("p"),
    },
    bytes: [
      ...[0x10, 0x2f], // CONNECT, remaining length 47
      ...MQTT5,
      0x42, // flags 0100 0010: password, Clean Start
      ...[0x00, 0x3c], // keep alive 60
      0x1f, // property length 31
      ...[0x21, 0x00, 0x14], // 0x21 Receive Maximum 20 (two byte integer)
      ...[0x27, 0x00, 0x00, 0x04, 0x00], // 0x27 Maximum Packet Size 1024
      ...[0x22, 0x00, 0x0a], // 0x22 Topic Alias Maximum 10
      ...[0x19, 0x01], // 0x19 Request Response Information 1 (byte)
      ...[0x17, 0x00], // 0x17 Request Problem Information 0
      ...[0x26, 0x00, 0x01, 0x61, 0x00, 0x01, 0x31], // 0x26 User Property "a" = "1" (string pair)
      ...[0x15, 0x00, 0x01, 0x6d], // 0x15 Authentication Method "m"
      ...[0x16, 0x00, 0x02, 0x01, 0x02], // 0x16 Authentication Data 01 02 (binary data)
      ...[0x00, 0x00], // client id ""
      ...[0x00, 0x01, 0x70], // password "p"
    ],
  },
  {
    // Section 3.2.2.3: every CONNACK property but the authentication pair.
    name: "CONNACK: success with the server's properties",
    packet: {
      type: "connack",
      sessionPresent: false,
      reasonCode: 0,
      properties: {
        sessionExpiryInterval: 0xffff_ffff,
        receiveMaximum: 100,
        maximumQoS: 1,
        retainAvailable: false,
        maximumPacketSize: 65_536,
        assignedClientIdentifier: "id",
        topicAliasMaximum: 5,
        reasonString: "ok",
        wildcardSubscriptionAvailable: true,
        subscriptionIdentifiersAvailable: false,
        sharedSubscriptionAvailable: true,
        serverKeepAlive: 30,
        responseInformation: "r",
        serverReference: "s",
      },
    } as unknown as Packet,
    bytes: [
      ...[0x20, 0x32], // CONNACK, remaining length 50
      0x00, // acknowledge flags: no session present
      0x00, // reason code 0x00 Success
      0x2f, // property length 47
      ...[0x11, 0xff, 0xff, 0xff, 0xff], // Session Expiry Interval 0xFFFFFFFF (never)
      ...[0x21, 0x00, 0x64], // Receive Maximum 100
      ...[0x24, 0x01], // Maximum QoS 1
      ...[0x25, 0x00], // Retain Available 0
      ...[0x27, 0x00, 0x01, 0x00, 0x00], // Maximum Packet Size 65536
      ...[0x12, 0x00, 0x02, 0x69, 0x64], // Assigned Client Identifier "id"
      ...[0x22, 0x00, 0x05], // Topic Alias Maximum 5
      ...[0x1f, 0x00, 0x02, 0x6f, 0x6b], // Reason String "ok"
      ...[0x28, 0x01], // Wildcard Subscription Available 1
      ...[0x29, 0x00], // Subscription Identifier Available 0
      ...[0x2a, 0x01], // Shared Subscription Available 1
      ...[0x13, 0x00, 0x1e], // Server Keep Alive 30
      ...[0x1a, 0x00, 0x01, 0x72], // Response Information "r"
      ...[0x1c, 0x00, 0x01, 0x73], // Server Reference "s"
    ],
  },
  {
    // Section 3.2.2.2: 0x87 Not authorized, properties length 0 (MQTT-2.2.2-1).
    name: "CONNACK: refused with 0x87 and no properties",
    packet: { type: "connack", sessionPresent: false, reasonCode: 0x87 } as unknown as Packet,
    bytes: [0x20, 0x03, 0x00, 0x87, 0x00],
  },
  {
    // Section 3.3.2.3.1: no properties is a property length of 0.
    name: "PUBLISH: QoS 0 without properties",
    packet: {
      type: "publish",
      topic: "a/b",
      payload: ascii("hi"),
      qos: 0,
      retain: false,
      dup: false,
      packetId: undefined,
      properties: undefined,
    },
    bytes: [0x30, 0x08, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x00, 0x68, 0x69],
  },
  {
    // Section 3.3.2.3: every PUBLISH property; User Property and Subscription
    // Identifier repeat; 16384 is a 3-byte Variable Byte Integer (section 1.5.5).
    name: "PUBLISH: QoS 1 retained with every PUBLISH property",
    packet: {
      type: "publish",
      topic: "t",
      payload: ascii("x"),
      qos: 1,
      retain: true,
      dup: false,
      packetId: 10,
      properties: {
        payloadFormatIndicator: 1,
        messageExpiryInterval: 3600,
        contentType: "json",
        responseTopic: "r/1",
        correlationData: new Uint8Array([0xab, 0xcd]),
        userProperties: [["k", "v"], ["k", "w"]],
        subscriptionIdentifiers: [1, 16_384],
        topicAlias: 2,
      },
    },
    bytes: [
      ...[0x33, 0x37], // PUBLISH QoS 1 RETAIN, remaining length 55
      ...[0x00, 0x01, 0x74], // topic "t"
      ...[0x00, 0x0a], // packet id 10
      0x30, // property length 48
      ...[0x01, 0x01], // Payload Format Indicator 1 (UTF-8)
      ...[0x02, 0x00, 0x00, 0x0e, 0x10], // Message Expiry Interval 3600
      ...[0x03, 0x00, 0x04, 0x6a, 0x73, 0x6f, 0x6e], // Content Type "json"
      ...[0x08, 0x00, 0x03, 0x72, 0x2f, 0x31], // Response Topic "r/1"
      ...[0x09, 0x00, 0x02, 0xab, 0xcd], // Correlation Data ab cd
      ...[0x26, 0x00, 0x01, 0x6b, 0x00, 0x01, 0x76], // User Property k = v
      ...[0x26, 0x00, 0x01, 0x6b, 0x00, 0x01, 0x77], // User Property k = w (same name again)
      ...[0x0b, 0x01], // Subscription Identifier 1
      ...[0x0b, 0x80, 0x80, 0x01], // Subscription Identifier 16384
      ...[0x23, 0x00, 0x02], // Topic Alias 2
      0x78, // payload "x"
    ],
  },
  {
    // Section 3.3.2.1 and 3.3.2.3.4: an empty topic name with a Topic Alias.
    name: "PUBLISH: empty topic name with a Topic Alias",
    packet: {
      type: "publish",
      topic: "",
      payload: ascii("z"),
      qos: 0,
      retain: false,
      dup: false,
      packetId: undefined,
      properties: { topicAlias: 5 },
    },
    bytes: [0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x05, 0x7a],
  },
  {
    // Section 1.5.5: a property length of 136 takes two bytes (0x88 0x01) and the
    // remaining length of 141 too (0x8d 0x01).
    name: "PUBLISH: two-byte property length",
    packet: {
      type: "publish",
      topic: "t",
      payload: new Uint8Array(0),
      qos: 0,
      retain: false,
      dup: false,
      packetId: undefined,
      properties: { userProperties: [["k", "x".repeat(130)]] },
    },
    bytes: [
      ...[0x30, 0x8d, 0x01], // remaining length 141
      ...[0x00, 0x01, 0x74], // topic "t"
      ...[0x88, 0x01], // property length 136
      ...[0x26, 0x00, 0x01, 0x6b, 0x00, 0x82, ...new Array(130).fill(0x78)],
    ],
  },
  {
    // Section 3.4.2.1: Remaining Length 2 is Success without properties.
    name: "PUBACK: success, reason code and properties omitted",
    packet: { type: "puback", packetId: 1 },
    decoded: { type: "puback", packetId: 1, reasonCode: 0 },
    bytes: [0x40, 0x02, 0x00, 0x01],
  },
  {
    // Section 3.4.2.2.1: Remaining Length 3 has a reason code and no property length.
    name: "PUBACK: 0x10 no matching subscribers without properties",
    packet: { type: "puback", packetId: 1, reasonCode: 0x10 },
    bytes: [0x40, 0x03, 0x00, 0x01, 0x10],
  },
  {
    name: "PUBREC: 0x80 with a Reason String and a User Property",
    packet: {
      type: "pubrec",
      packetId: 2,
      reasonCode: 0x80,
      properties: { reasonString: "quota", userProperties: [["a", "b"]] },
    },
    bytes: [
      ...[0x50, 0x13], // PUBREC, remaining length 19
      ...[0x00, 0x02], // packet id 2
      0x80, // Unspecified error
      0x0f, // property length 15
      ...[0x1f, 0x00, 0x05, 0x71, 0x75, 0x6f, 0x74, 0x61], // Reason String "quota"
      ...[0x26, 0x00, 0x01, 0x61, 0x00, 0x01, 0x62], // User Property a = b
    ],
  },
  {
    // Section 3.6.2.1: 0x92 Packet Identifier not found.
    name: "PUBREL: 0x92 packet identifier not found",
    packet: { type: "pubrel", packetId: 3, reasonCode: 0x92 },
    bytes: [0x62, 0x03, 0x00, 0x03, 0x92],
  },
  {
    // Success is written because properties follow it (section 3.7.2.1).
    name: "PUBCOMP: success with a Reason String",
    packet: { type: "pubcomp", packetId: 4, reasonCode: 0, properties: { reasonString: "x" } },
    bytes: [0x70, 0x08, 0x00, 0x04, 0x00, 0x04, 0x1f, 0x00, 0x01, 0x78],
  },
  {
    // Section 3.8.2.1.2: Subscription Identifier 268,435,455 (the largest, 4 bytes);
    // section 3.8.3.1: subscription options.
    name: "SUBSCRIBE: Subscription Identifier and every subscription option",
    packet: {
      type: "subscribe",
      packetId: 5,
      subscriptions: [
        { filter: "a/+", qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 },
        {
          filter: "$share/g/x",
          qos: 0,
          noLocal: false,
          retainAsPublished: false,
          retainHandling: 1,
        },
      ],
      properties: { subscriptionIdentifier: 268_435_455 },
    },
    bytes: [
      ...[0x82, 0x1b], // SUBSCRIBE, remaining length 27
      ...[0x00, 0x05], // packet id 5
      0x05, // property length 5
      ...[0x0b, 0xff, 0xff, 0xff, 0x7f], // Subscription Identifier 268435455
      ...[0x00, 0x03, 0x61, 0x2f, 0x2b], // "a/+"
      0x2d, // 00 10 1 1 01: Retain Handling 2, Retain As Published, No Local, QoS 1
      ...[0x00, 0x0a, 0x24, 0x73, 0x68, 0x61, 0x72, 0x65, 0x2f, 0x67, 0x2f, 0x78], // "$share/g/x"
      0x10, // 00 01 0 0 00: Retain Handling 1, QoS 0
    ],
  },
  {
    // Section 3.9.3: one reason code per filter, after the properties.
    name: "SUBACK: granted QoS 1, granted QoS 0, 0x9E shared subscriptions not supported",
    packet: {
      type: "suback",
      packetId: 5,
      reasonCodes: [0x01, 0x00, 0x9e],
      properties: { reasonString: "s" },
    } as unknown as Packet,
    bytes: [0x90, 0x0a, 0x00, 0x05, 0x04, 0x1f, 0x00, 0x01, 0x73, 0x01, 0x00, 0x9e],
  },
  {
    // Section 3.10.2.1: a User Property whose value is the empty string.
    name: "UNSUBSCRIBE: with a User Property",
    packet: {
      type: "unsubscribe",
      packetId: 6,
      filters: ["a/#"],
      properties: { userProperties: [["k", ""]] },
    },
    bytes: [
      ...[0xa2, 0x0e], // UNSUBSCRIBE, remaining length 14
      ...[0x00, 0x06], // packet id 6
      0x06, // property length 6
      ...[0x26, 0x00, 0x01, 0x6b, 0x00, 0x00], // User Property k = ""
      ...[0x00, 0x03, 0x61, 0x2f, 0x23], // "a/#"
    ],
  },
  {
    // Section 3.11.3: Success and 0x11 No subscription existed.
    name: "UNSUBACK: success and 0x11 no subscription existed",
    packet: { type: "unsuback", packetId: 6, reasonCodes: [0x00, 0x11] },
    bytes: [0xb0, 0x05, 0x00, 0x06, 0x00, 0x00, 0x11],
  },
  {
    name: "PINGREQ at 5.0",
    packet: { type: "pingreq" },
    bytes: [0xc0, 0x00],
  },
  {
    name: "PINGRESP at 5.0",
    packet: { type: "pingresp" },
    bytes: [0xd0, 0x00],
  },
  {
    // Section 3.14.2.1: Remaining Length 0 is Normal disconnection.
    name: "DISCONNECT: normal, reason code omitted",
    packet: { type: "disconnect" },
    decoded: { type: "disconnect", reasonCode: 0 },
    bytes: [0xe0, 0x00],
  },
  {
    // Section 3.14.2.2.1: Remaining Length 1 has no property length.
    name: "DISCONNECT: 0x8E session taken over without properties",
    packet: { type: "disconnect", reasonCode: 0x8e },
    bytes: [0xe0, 0x01, 0x8e],
  },
  {
    name: "DISCONNECT: 0x04 with will, Session Expiry Interval and Server Reference",
    packet: {
      type: "disconnect",
      reasonCode: 0x04,
      properties: { sessionExpiryInterval: 120, serverReference: "x" },
    },
    bytes: [
      ...[0xe0, 0x0b], // DISCONNECT, remaining length 11
      0x04, // Disconnect with Will Message
      0x09, // property length 9
      ...[0x11, 0x00, 0x00, 0x00, 0x78], // Session Expiry Interval 120
      ...[0x1c, 0x00, 0x01, 0x78], // Server Reference "x"
    ],
  },
  {
    // Section 3.15.2.1: Remaining Length 0 is Success.
    name: "AUTH: success, reason code omitted",
    packet: { type: "auth" },
    decoded: { type: "auth", reasonCode: 0 },
    bytes: [0xf0, 0x00],
  },
  {
    // Section 3.15: 0x18 Continue authentication with method and data.
    name: "AUTH: 0x18 continue authentication with method and data",
    packet: {
      type: "auth",
      reasonCode: 0x18,
      properties: { authenticationMethod: "SCRAM", authenticationData: new Uint8Array([1, 2, 3]) },
    },
    bytes: [
      ...[0xf0, 0x10], // AUTH, remaining length 16
      0x18, // Continue authentication
      0x0e, // property length 14
      ...[0x15, 0x00, 0x05, 0x53, 0x43, 0x52, 0x41, 0x4d], // Authentication Method "SCRAM"
      ...[0x16, 0x00, 0x03, 0x01, 0x02, 0x03], // Authentication Data 01 02 03
    ],
  },
];

for (const v of VECTORS) {
  Deno.test(`5.0 vector encode: ${v.name}`, () => {
    const bytes = encodePacket(v.packet, V5);
    assert.deepEqual(Array.from(bytes), v.bytes);
    assert.equal(encodedLength(v.packet, V5), v.bytes.length);
    const target = new Uint8Array(v.bytes.length + 3);
    assert.equal(encodeInto(v.packet, target, 3, V5), v.bytes.length);
    assert.deepEqual(Array.from(target.subarray(3)), v.bytes);
  });

  Deno.test(`5.0 vector decode: ${v.name}`, () => {
    const bytes = Uint8Array.from(v.bytes);
    assert.equal(packetLength(bytes, 0, bytes.length, undefined, 5), bytes.length);
    assert.deepStrictEqual(decodePacket(bytes, 0, bytes.length, V5), v.decoded ?? v.packet);
  });
}

Deno.test("5.0 vectors cover all 15 packet types and every property of Table 2-4", () => {
  assert.equal(new Set(VECTORS.map((v) => v.packet.type)).size, 15);
  const names = new Set<string>();
  for (const v of VECTORS) {
    const p = v.packet as { properties?: object; will?: { properties?: object } };
    for (const k of Object.keys(p.properties ?? {})) names.add(k);
    for (const k of Object.keys(p.will?.properties ?? {})) names.add(k);
  }
  // 27 identifiers; 0x0B has two names (repeated in PUBLISH, single in SUBSCRIBE).
  assert.equal(names.size, 28, [...names].join(", "));
});

// Legal input the encoder does not produce (it leaves out what it may).
const DECODE_ONLY: [string, number[], Packet][] = [
  [
    "[section 3.4.2.2.1] PUBACK with success written and no property length",
    [0x40, 0x03, 0x00, 0x01, 0x00],
    { type: "puback", packetId: 1, reasonCode: 0 },
  ],
  [
    "[MQTT-2.2.2-1] PUBACK with success and a property length of 0",
    [0x40, 0x04, 0x00, 0x01, 0x00, 0x00],
    { type: "puback", packetId: 1, reasonCode: 0 },
  ],
  [
    "[section 3.14.2.2.1] DISCONNECT 0x00 without property length",
    [0xe0, 0x01, 0x00],
    { type: "disconnect", reasonCode: 0 },
  ],
  [
    "[section 2.2.2.2] properties in any order: Topic Alias before Message Expiry Interval",
    [0x30, 0x0c, 0x00, 0x01, 0x74, 0x08, 0x23, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x05],
    {
      type: "publish",
      topic: "t",
      payload: new Uint8Array(0),
      qos: 0,
      retain: false,
      dup: false,
      packetId: undefined,
      properties: { topicAlias: 1, messageExpiryInterval: 5 },
    },
  ],
  [
    "[section 3.3.2.3.7] User Properties keep their order, repeated names included",
    [
      ...[0x30, 0x19, 0x00, 0x01, 0x74, 0x15],
      ...[0x26, 0x00, 0x01, 0x62, 0x00, 0x01, 0x31],
      ...[0x26, 0x00, 0x01, 0x61, 0x00, 0x01, 0x32],
      ...[0x26, 0x00, 0x01, 0x62, 0x00, 0x01, 0x33],
    ],
    {
      type: "publish",
      topic: "t",
      payload: new Uint8Array(0),
      qos: 0,
      retain: false,
      dup: false,
      packetId: undefined,
      properties: { userProperties: [["b", "1"], ["a", "2"], ["b", "3"]] },
    },
  ],
  [
    "[MQTT-3.1.2-2] a 3.1.1 CONNECT read by a 5.0 codec keeps the 3.1.1 format",
    [0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61],
    {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "a",
      clean: true,
      keepAlive: 60,
    },
  ],
];

for (const [name, bytes, packet] of DECODE_ONLY) {
  Deno.test(`5.0 decode: ${name}`, () => {
    const buf = Uint8Array.from(bytes);
    assert.deepStrictEqual(decodePacket(buf, 0, buf.length, V5), packet);
  });
}

Deno.test("5.0 decode: Correlation Data and Authentication Data alias the input", () => {
  const bytes = encodePacket(VECTORS[5].packet, V5).slice();
  const p = decodePacket(bytes, 0, bytes.length, V5);
  assert(p.type === "publish");
  assert.equal(p.properties?.correlationData?.buffer, bytes.buffer);
});

Deno.test("5.0 encode: defaults are left out as the spec permits", () => {
  // Section 3.4.2.1: success without properties is Remaining Length 2, also
  // when the defaults are written out; an empty properties object is none.
  const shapes: Packet[] = [
    { type: "puback", packetId: 9 },
    { type: "puback", packetId: 9, reasonCode: 0 },
    { type: "puback", packetId: 9, reasonCode: 0, properties: {} },
    { type: "puback", packetId: 9, properties: { reasonString: undefined } },
  ];
  for (const p of shapes) assert.deepEqual(Array.from(encodePacket(p, V5)), [0x40, 2, 0, 9]);
  assert.deepEqual(Array.from(encodePacket({ type: "disconnect", reasonCode: 0 }, V5)), [0xe0, 0]);
  assert.deepEqual(Array.from(encodePacket({ type: "auth", properties: {} }, V5)), [0xf0, 0]);
  // A 3.1.1-shaped CONNACK and SUBACK mean the same at 5.0 (0 is success,
  // 0..2 and 0x80 are the same SUBACK codes in both versions).
  assert.deepEqual(
    Array.from(encodePacket({ type: "connack", sessionPresent: true, returnCode: 0 }, V5)),
    [0x20, 3, 1, 0, 0],
  );
  assert.deepEqual(
    Array.from(encodePacket({ type: "suback", packetId: 1, returnCodes: [2, 0x80] }, V5)),
    [0x90, 5, 0, 1, 0, 2, 0x80],
  );
});

Deno.test("[section 2.4] reason codes by name, per packet, and isFailure", () => {
  assert.equal(REASON_CODE.Success, 0);
  assert.equal(REASON_CODE.NoMatchingSubscribers, 0x10);
  assert.equal(REASON_CODE.SessionTakenOver, 0x8e);
  assert.equal(REASON_CODE.WildcardSubscriptionsNotSupported, 0xa2);
  assert.equal(new Set(Object.values(REASON_CODE)).size, 43);
  assert.equal(reasonCodeName(0x97), "quota exceeded");
  assert.equal(reasonCodeName(0, "disconnect"), "normal disconnection");
  assert.equal(reasonCodeName(0, "suback"), "granted QoS 0");
  assert.equal(reasonCodeName(0x03), "unknown reason code 0x3");
  // Table 2-6, column "Packets".
  assert(isReasonCodeOf(0x10, "puback") && isReasonCodeOf(0x10, "pubrec"));
  assert(!isReasonCodeOf(0x10, "pubrel") && !isReasonCodeOf(0x10, "disconnect"));
  assert(isReasonCodeOf(0x92, "pubcomp") && !isReasonCodeOf(0x92, "puback"));
  assert(isReasonCodeOf(0x04, "disconnect") && !isReasonCodeOf(0x04, "connack"));
  assert(isReasonCodeOf(0x19, "auth") && !isReasonCodeOf(0x80, "auth"));
  assert(!isReasonCodeOf(0x80, "publish") && !isReasonCodeOf(256, "puback"));
  // Section 2.4: 0x80 and above is failure, in both versions' SUBACK codes too.
  for (let code = 0; code < 256; code++) assert.equal(isFailure(code), code >= 0x80);
});
