/**
 * Malformed MQTT 5.0 input and illegal 5.0 packets: each case expects a
 * specific ProtocolError code and packet type, and its message must cite
 * the rule in the case's name. Also: 5.0-only fields under 3.1.1 throw.
 */
import assert from "node:assert/strict";
import { ProtocolError } from "../lib/errors.ts";
import {
  type CodecOptions,
  decodePacket,
  encodePacket,
  type Packet,
  packetLength,
  type Properties,
} from "../lib/codec/mod.ts";
import * as table from "./malformed_table.ts";

const V5: CodecOptions = { protocolVersion: 5 };
// "MQTT" at protocol level 5, flags 0x02 (Clean Start), keep alive 60.
const CONNECT5 = [0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x3c];

const CASES: table.DecodeCase[] = [
  // Properties (section 2.2.2).
  {
    name: "[section 2.2.2.2] PUBACK with a Topic Alias, a PUBLISH-only property",
    bytes: [0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01],
    code: "PROPERTY_NOT_ALLOWED",
    type: "puback",
  },
  {
    name: "[section 2.2.2.2] PUBLISH with the unknown property identifier 0x05",
    bytes: [0x30, 0x06, 0x00, 0x01, 0x74, 0x02, 0x05, 0x00],
    code: "PROPERTY_NOT_ALLOWED",
    type: "publish",
  },
  {
    name: "[section 2.2.2.2] CONNECT properties with the will-only Will Delay Interval",
    bytes: [0x10, 0x12, ...CONNECT5, 0x05, 0x18, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00],
    code: "PROPERTY_NOT_ALLOWED",
    type: "connect",
  },
  {
    name: "[section 2.2.2.2] will properties with a Topic Alias",
    bytes: [
      ...[0x10, 0x16, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05, 0x06, 0x00, 0x3c],
      ...[0x00, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, 0x00, 0x01, 0x77, 0x00, 0x00],
    ],
    code: "PROPERTY_NOT_ALLOWED",
    type: "connect",
  },
  {
    name: "[section 2.2.2.2] DISCONNECT with a Session Expiry Interval and a Topic Alias Maximum",
    bytes: [0xe0, 0x0a, 0x00, 0x08, 0x11, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x01],
    code: "PROPERTY_NOT_ALLOWED",
    type: "disconnect",
  },
  {
    name: "[section 2.2.2.2] AUTH with a User Property then a Reason String then Maximum QoS",
    bytes: [
      ...[0xf0, 0x0d, 0x18, 0x0b, 0x26, 0x00, 0x01, 0x61, 0x00, 0x00],
      ...[0x1f, 0x00, 0x00, 0x24, 0x01],
    ],
    code: "PROPERTY_NOT_ALLOWED",
    type: "auth",
  },
  {
    name: "[section 3.3.2.3.3] PUBLISH with Message Expiry Interval twice",
    bytes: [
      ...[0x30, 0x0e, 0x00, 0x01, 0x74, 0x0a],
      ...[0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x02],
    ],
    code: "DUPLICATE_PROPERTY",
    type: "publish",
  },
  {
    name: "[section 3.2.2.3.9] PUBACK with Reason String twice",
    bytes: [0x40, 0x0a, 0x00, 0x01, 0x80, 0x06, 0x1f, 0x00, 0x00, 0x1f, 0x00, 0x00],
    code: "DUPLICATE_PROPERTY",
    type: "puback",
  },
  {
    name: "[section 3.8.2.1.2] SUBSCRIBE with Subscription Identifier twice",
    bytes: [0x82, 0x0b, 0x00, 0x01, 0x04, 0x0b, 0x01, 0x0b, 0x02, 0x00, 0x01, 0x61, 0x00],
    code: "DUPLICATE_PROPERTY",
    type: "subscribe",
  },
  {
    name: "[section 3.1.2.11.9] CONNECT with Authentication Method twice",
    bytes: [
      0x10,
      0x15,
      ...CONNECT5,
      0x08,
      0x15,
      0x00,
      0x01,
      0x61,
      0x15,
      0x00,
      0x01,
      0x62,
      0x00,
      0x00,
    ],
    code: "DUPLICATE_PROPERTY",
    type: "connect",
  },
  {
    name: "[section 3.3.2.3.4, MQTT-3.3.2-8] PUBLISH with Topic Alias 0",
    bytes: [0x30, 0x07, 0x00, 0x01, 0x74, 0x03, 0x23, 0x00, 0x00],
    code: "INVALID_PROPERTY",
    type: "publish",
  },
  {
    name: "[section 3.3.2.3.8] PUBLISH with Subscription Identifier 0",
    bytes: [0x30, 0x06, 0x00, 0x01, 0x74, 0x02, 0x0b, 0x00],
    code: "INVALID_PROPERTY",
    type: "publish",
  },
  {
    name: "[section 3.8.2.1.2] SUBSCRIBE with Subscription Identifier 0",
    bytes: [0x82, 0x09, 0x00, 0x01, 0x02, 0x0b, 0x00, 0x00, 0x01, 0x61, 0x00],
    code: "INVALID_PROPERTY",
    type: "subscribe",
  },
  {
    name: "[section 3.1.2.11.3] CONNECT with Receive Maximum 0",
    bytes: [0x10, 0x10, ...CONNECT5, 0x03, 0x21, 0x00, 0x00, 0x00, 0x00],
    code: "INVALID_PROPERTY",
    type: "connect",
  },
  {
    name: "[section 3.1.2.11.4] CONNECT with Maximum Packet Size 0",
    bytes: [0x10, 0x12, ...CONNECT5, 0x05, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
    code: "INVALID_PROPERTY",
    type: "connect",
  },
  {
    name: "[section 3.1.2.11.6] CONNECT with Request Response Information 2",
    bytes: [0x10, 0x0f, ...CONNECT5, 0x02, 0x19, 0x02, 0x00, 0x00],
    code: "INVALID_PROPERTY",
    type: "connect",
  },
  {
    name: "[section 3.2.2.3.4] CONNACK with Maximum QoS 2",
    bytes: [0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02],
    code: "INVALID_PROPERTY",
    type: "connack",
  },
  {
    name: "[section 3.3.2.3.2] PUBLISH with Payload Format Indicator 2",
    bytes: [0x30, 0x06, 0x00, 0x01, 0x74, 0x02, 0x01, 0x02],
    code: "INVALID_PROPERTY",
    type: "publish",
  },
  {
    name: "[section 3.1.2.11.10] CONNECT with Authentication Data but no Authentication Method",
    bytes: [0x10, 0x11, ...CONNECT5, 0x04, 0x16, 0x00, 0x01, 0x61, 0x00, 0x00],
    code: "INVALID_PROPERTY",
    type: "connect",
  },
  {
    name: "[MQTT-3.3.2-2] PUBLISH with the Response Topic 'a/#' (5.0: MQTT-3.3.2-14)",
    bytes: [0x30, 0x09, 0x00, 0x01, 0x74, 0x05, 0x08, 0x00, 0x02, 0x61, 0x23],
    code: "INVALID_TOPIC",
    type: "publish",
  },
  {
    name: "[MQTT-1.5.3-1] User Property name with an overlong encoding (5.0: MQTT-1.5.7-1)",
    bytes: [0x40, 0x0c, 0x00, 0x01, 0x00, 0x08, 0x26, 0x00, 0x02, 0xc0, 0x80, 0x00, 0x01, 0x61],
    code: "INVALID_UTF8",
    type: "puback",
  },
  {
    name: "[MQTT-1.5.3-2] Reason String with U+0000 (5.0: MQTT-1.5.4-2)",
    bytes: [0xe0, 0x06, 0x80, 0x04, 0x1f, 0x00, 0x01, 0x00],
    code: "INVALID_UTF8",
    type: "disconnect",
  },
  {
    name: "[section 2.2.2] PUBACK whose property length is cut off",
    bytes: [0x40, 0x04, 0x00, 0x01, 0x00, 0x80],
    code: "TRUNCATED_PACKET",
    type: "puback",
  },
  {
    name: "[section 2.2.2] PUBACK whose property length runs past the remaining length",
    bytes: [0x40, 0x04, 0x00, 0x01, 0x00, 0x05],
    code: "TRUNCATED_PACKET",
    type: "puback",
  },
  {
    name: "[section 2.2.2] PUBLISH whose Topic Alias runs past the property length",
    bytes: [0x30, 0x07, 0x00, 0x01, 0x74, 0x02, 0x23, 0x00, 0x01],
    code: "TRUNCATED_PACKET",
    type: "publish",
  },
  {
    name: "[section 2.2.2] PUBLISH QoS 1 without the property length",
    bytes: [0x32, 0x05, 0x00, 0x01, 0x74, 0x00, 0x01],
    code: "TRUNCATED_PACKET",
    type: "publish",
  },
  {
    name: "[section 2.2.2] CONNACK without its property length",
    bytes: [0x20, 0x02, 0x00, 0x00],
    code: "TRUNCATED_PACKET",
    type: "connack",
  },
  {
    name: "[section 2.2.2] AUTH with a reason code but no property length",
    bytes: [0xf0, 0x01, 0x18],
    code: "TRUNCATED_PACKET",
    type: "auth",
  },
  {
    name: "[section 2.2.2] CONNACK with a string pair cut in its value",
    bytes: [0x20, 0x09, 0x00, 0x00, 0x06, 0x26, 0x00, 0x01, 0x61, 0x00, 0x02],
    code: "TRUNCATED_PACKET",
    type: "connack",
  },
  {
    name: "[MQTT-1.5.5-1] PUBACK property length 0 in two bytes",
    bytes: [0x40, 0x05, 0x00, 0x01, 0x00, 0x80, 0x00],
    code: "MALFORMED_VARIABLE_BYTE_INTEGER",
    type: "puback",
  },
  {
    name: "[section 1.5.5] PUBLISH Subscription Identifier of five bytes",
    bytes: [0x30, 0x0a, 0x00, 0x01, 0x74, 0x06, 0x0b, 0xff, 0xff, 0xff, 0xff, 0x7f],
    code: "MALFORMED_VARIABLE_BYTE_INTEGER",
    type: "publish",
  },
  {
    name: "[section 2.2.3] PUBACK with a byte after its properties",
    bytes: [0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0xff],
    code: "TRAILING_BYTES",
    type: "puback",
  },
  // Reason codes (section 2.4 and each packet's table).
  {
    name: "[MQTT-3.2.2-8] CONNACK reason code 0x04",
    bytes: [0x20, 0x03, 0x00, 0x04, 0x00],
    code: "INVALID_REASON_CODE",
    type: "connack",
  },
  {
    name: "[MQTT-3.4.2-1] PUBACK reason code 0x92",
    bytes: [0x40, 0x03, 0x00, 0x01, 0x92],
    code: "INVALID_REASON_CODE",
    type: "puback",
  },
  {
    name: "[MQTT-3.5.2-1] PUBREC reason code 0x01",
    bytes: [0x50, 0x03, 0x00, 0x01, 0x01],
    code: "INVALID_REASON_CODE",
    type: "pubrec",
  },
  {
    name: "[MQTT-3.6.2-1] PUBREL reason code 0x10",
    bytes: [0x62, 0x03, 0x00, 0x01, 0x10],
    code: "INVALID_REASON_CODE",
    type: "pubrel",
  },
  {
    name: "[MQTT-3.7.2-1] PUBCOMP reason code 0x80",
    bytes: [0x70, 0x03, 0x00, 0x01, 0x80],
    code: "INVALID_REASON_CODE",
    type: "pubcomp",
  },
  {
    name: "[MQTT-3.9.3-2] SUBACK reason code 0x11",
    bytes: [0x90, 0x05, 0x00, 0x01, 0x00, 0x00, 0x11],
    code: "INVALID_REASON_CODE",
    type: "suback",
  },
  {
    name: "[MQTT-3.11.3-2] UNSUBACK reason code 0x10",
    bytes: [0xb0, 0x04, 0x00, 0x01, 0x00, 0x10],
    code: "INVALID_REASON_CODE",
    type: "unsuback",
  },
  {
    name: "[MQTT-3.14.2-1] DISCONNECT reason code 0x10",
    bytes: [0xe0, 0x01, 0x10],
    code: "INVALID_REASON_CODE",
    type: "disconnect",
  },
  {
    name: "[MQTT-3.15.2-1] AUTH reason code 0x04",
    bytes: [0xf0, 0x02, 0x04, 0x00],
    code: "INVALID_REASON_CODE",
    type: "auth",
  },
  {
    name: "[MQTT-3.9.3-1] SUBACK without reason codes",
    bytes: [0x90, 0x03, 0x00, 0x01, 0x00],
    code: "EMPTY_SUBSCRIPTION",
    type: "suback",
  },
  {
    name: "[MQTT-3.11.3-1] UNSUBACK without reason codes",
    bytes: [0xb0, 0x03, 0x00, 0x01, 0x00],
    code: "EMPTY_SUBSCRIPTION",
    type: "unsuback",
  },
  // Packet rules.
  {
    name: "[section 3.3.2.1] PUBLISH with an empty topic name and no Topic Alias",
    bytes: [0x30, 0x03, 0x00, 0x00, 0x00],
    code: "INVALID_TOPIC",
    type: "publish",
  },
  {
    name: "[MQTT-3.8.3-5] SUBSCRIBE options with reserved bit 6 set",
    bytes: [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0x40],
    code: "INVALID_FLAGS",
    type: "subscribe",
  },
  {
    name: "[section 3.8.3.1] SUBSCRIBE options with Retain Handling 3",
    bytes: [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0x30],
    code: "INVALID_FLAGS",
    type: "subscribe",
  },
  {
    name: "[section 3.8.3.1] SUBSCRIBE options with Maximum QoS 3",
    bytes: [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0x03],
    code: "INVALID_QOS",
    type: "subscribe",
  },
  {
    name: "[MQTT-3.8.3-4] SUBSCRIBE with No Local on a shared subscription",
    bytes: [
      ...[0x82, 0x10, 0x00, 0x01, 0x00],
      ...[0x00, 0x0a, 0x24, 0x73, 0x68, 0x61, 0x72, 0x65, 0x2f, 0x67, 0x2f, 0x61, 0x04],
    ],
    code: "INVALID_FLAGS",
    type: "subscribe",
  },
  {
    name: "[MQTT-3.15.1-1] AUTH with fixed header flags 0x1",
    bytes: [0xf1, 0x00],
    code: "INVALID_FLAGS",
    type: "auth",
  },
  {
    name: "[MQTT-3.14.1-1] DISCONNECT with fixed header flags 0x2",
    bytes: [0xe2, 0x00],
    code: "INVALID_FLAGS",
    type: "disconnect",
  },
  {
    name: "[MQTT-3.1.2-2] CONNECT protocol level 6",
    bytes: [
      0x10,
      0x0d,
      0x00,
      0x04,
      0x4d,
      0x51,
      0x54,
      0x54,
      0x06,
      0x02,
      0x00,
      0x3c,
      0x00,
      0x01,
      0x61,
    ],
    code: "UNSUPPORTED_PROTOCOL",
    type: "connect",
  },
  {
    name: "[MQTT-3.1.2-3] CONNECT 5.0 reserved flag set",
    bytes: [
      0x10,
      0x0e,
      0x00,
      0x04,
      0x4d,
      0x51,
      0x54,
      0x54,
      0x05,
      0x03,
      0x00,
      0x3c,
      0x00,
      0x00,
      0x01,
      0x61,
    ],
    code: "INVALID_CONNECT_FLAGS",
    type: "connect",
  },
];

for (const c of CASES) {
  Deno.test(`malformed 5.0 ${c.name} -> ${c.code}`, () => table.assertDecodeRefuses(c, V5, true));
}

Deno.test("malformed 5.0 table has at least 50 cases, each rule named", () => {
  table.assertTable(CASES, 50);
});

Deno.test("[section 3.3.2.3.7, 3.3.2.3.8] repeated User Properties and PUBLISH Subscription Identifiers are legal", () => {
  const bytes = Uint8Array.from([
    ...[0x30, 0x16, 0x00, 0x01, 0x74, 0x12],
    ...[0x26, 0x00, 0x01, 0x61, 0x00, 0x01, 0x62, 0x26, 0x00, 0x01, 0x61, 0x00, 0x01, 0x62],
    ...[0x0b, 0x02, 0x0b, 0x02],
  ]);
  const p = decodePacket(bytes, 0, bytes.length, V5);
  assert(p.type === "publish");
  assert.deepStrictEqual(p.properties, {
    userProperties: [["a", "b"], ["a", "b"]],
    subscriptionIdentifiers: [2, 2],
  });
});

Deno.test("[section 2.1.2] packetLength refuses type 15 at 3.1.1 and frames AUTH at 5.0", () => {
  const auth = new Uint8Array([0xf0, 0x00]);
  assert.throws(
    () => packetLength(auth, 0, 2),
    (err: unknown) => err instanceof ProtocolError && err.code === "INVALID_PACKET_TYPE",
  );
  assert.throws(
    () => decodePacket(auth, 0, 2),
    (err: unknown) => err instanceof ProtocolError && err.code === "INVALID_PACKET_TYPE",
  );
  assert.equal(packetLength(auth, 0, 2, undefined, 5), 2);
  assert.equal(packetLength(auth, 0, 1, undefined, 5), -1);
});

// Encoding illegal 5.0 packets.

const publish = (properties: Properties, topic = "t"): Packet => ({
  type: "publish",
  topic,
  payload: new Uint8Array(0),
  qos: 0,
  retain: false,
  dup: false,
  properties,
});
const bigBytes = { length: 65_536 } as unknown as Uint8Array;

const ENCODE_CASES: table.EncodeCase[] = [
  {
    name: "[section 2.2.2.2] PUBACK with a Topic Alias",
    packet: { type: "puback", packetId: 1, properties: { topicAlias: 1 } as Properties },
    code: "PROPERTY_NOT_ALLOWED",
  },
  {
    name: "[section 2.2.2.2] PUBLISH with the Session Expiry Interval of a CONNECT",
    packet: publish({ sessionExpiryInterval: 1 } as Properties),
    code: "PROPERTY_NOT_ALLOWED",
  },
  {
    name: "[section 2.2.2.2] PUBLISH with the Subscription Identifier of a SUBSCRIBE",
    packet: publish({ subscriptionIdentifier: 1 } as Properties),
    code: "PROPERTY_NOT_ALLOWED",
  },
  {
    name: "[section 2.2.2.2] PUBLISH with the unknown property 'messageExpiry'",
    packet: publish({ messageExpiry: 1 } as Properties),
    code: "INVALID_PROPERTY",
  },
  {
    name: "[section 3.3.2.3.4, MQTT-3.3.2-8] PUBLISH with Topic Alias 0",
    packet: publish({ topicAlias: 0 }),
    code: "INVALID_PROPERTY",
  },
  {
    name: "[section 3.3.2.3.4, MQTT-3.3.2-8] PUBLISH with Topic Alias 65536",
    packet: publish({ topicAlias: 65_536 }),
    code: "INVALID_PROPERTY",
  },
  {
    name: "[section 3.3.2.3.8] PUBLISH with Subscription Identifier 0",
    packet: publish({ subscriptionIdentifiers: [3, 0] }),
    code: "INVALID_PROPERTY",
  },
  {
    name: "[section 3.8.2.1.2] SUBSCRIBE with Subscription Identifier 268435456",
    packet: {
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ filter: "a", qos: 0 }],
      properties: { subscriptionIdentifier: 268_435_456 },
    },
    code: "INVALID_PROPERTY",
  },
  {
    name: "[section 3.3.2.3.3] PUBLISH with Message Expiry Interval 2^32",
    packet: publish({ messageExpiryInterval: 2 ** 32 }),
    code: "INVALID_PROPERTY",
  },
  {
    name: "[section 3.3.2.3.3] PUBLISH with Message Expiry Interval 1.5",
    packet: publish({ messageExpiryInterval: 1.5 }),
    code: "INVALID_PROPERTY",
  },
  {
    name: "[section 3.3.2.3.2] PUBLISH with Payload Format Indicator 2",
    packet: publish({ payloadFormatIndicator: 2 as 1 }),
    code: "INVALID_PROPERTY",
  },
  {
    name: "[section 3.2.2.3.5] CONNACK with Retain Available 1 instead of true",
    packet: {
      type: "connack",
      sessionPresent: false,
      reasonCode: 0,
      properties: { retainAvailable: 1 as unknown as boolean },
    } as unknown as Packet,
    code: "INVALID_PROPERTY",
  },
  {
    name: "[section 3.1.2.11.3] CONNECT with Receive Maximum 0",
    packet: {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 5,
      clientId: "c",
      clean: true,
      keepAlive: 0,
      properties: { receiveMaximum: 0 },
    },
    code: "INVALID_PROPERTY",
  },
  {
    name: "[section 3.1.2.11.10] CONNECT with Authentication Data and no Authentication Method",
    packet: {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 5,
      clientId: "c",
      clean: true,
      keepAlive: 0,
      properties: { authenticationData: new Uint8Array(1) },
    },
    code: "INVALID_PROPERTY",
  },
  {
    name: "[section 3.1.2.11.8, MQTT-1.5.7-1] User Property without a value",
    packet: publish({ userProperties: [["a"]] as unknown as [string, string][] }),
    code: "INVALID_PROPERTY",
  },
  {
    name: "[MQTT-1.5.3-2] User Property value with U+0000 (5.0: MQTT-1.5.4-2)",
    packet: publish({ userProperties: [["a", "\u0000"]] }),
    code: "INVALID_UTF8",
  },
  {
    name: "[section 3.3.2.3.6] Correlation Data of 65536 bytes",
    packet: publish({ correlationData: bigBytes }),
    code: "INVALID_PROPERTY",
  },
  {
    name: "[MQTT-3.3.2-2] Response Topic 'a/#' (5.0: MQTT-3.3.2-14)",
    packet: publish({ responseTopic: "a/#" }),
    code: "INVALID_TOPIC",
  },
  {
    name: "[MQTT-4.7.3-1] PUBLISH with an empty topic and no Topic Alias",
    packet: publish({}, ""),
    code: "INVALID_TOPIC",
  },
  {
    name: "[MQTT-3.4.2-1] PUBACK with reason code 0x92",
    packet: { type: "puback", packetId: 1, reasonCode: 0x92 as 0 },
    code: "INVALID_REASON_CODE",
  },
  {
    name: "[MQTT-3.6.2-1] PUBREL with reason code 0x10",
    packet: { type: "pubrel", packetId: 1, reasonCode: 0x10 as 0 },
    code: "INVALID_REASON_CODE",
  },
  {
    name: "[MQTT-3.9.3-2] SUBACK with reason code 0x11",
    packet: { type: "suback", packetId: 1, reasonCodes: [0x11 as 0] } as unknown as Packet,
    code: "INVALID_REASON_CODE",
  },
  {
    name: "[MQTT-3.14.2-1] DISCONNECT with reason code 0x92",
    packet: { type: "disconnect", reasonCode: 0x92 as 0 },
    code: "INVALID_REASON_CODE",
  },
  {
    name: "[MQTT-3.15.2-1] AUTH with reason code 0x80",
    packet: { type: "auth", reasonCode: 0x80 as 0 },
    code: "INVALID_REASON_CODE",
  },
  {
    name: "[MQTT-3.2.2-8] 5.0 CONNACK with the 3.1.1 returnCode 5 and no reasonCode",
    packet: { type: "connack", sessionPresent: false, returnCode: 5 },
    code: "INVALID_REASON_CODE",
  },
  {
    name: "[MQTT-3.9.3-1] SUBACK without reason codes",
    packet: { type: "suback", packetId: 1, reasonCodes: [] } as unknown as Packet,
    code: "EMPTY_SUBSCRIPTION",
  },
  {
    name: "[MQTT-3.11.3-1] 5.0 UNSUBACK without reasonCodes",
    packet: { type: "unsuback", packetId: 1 },
    code: "EMPTY_SUBSCRIPTION",
  },
  {
    name: "[section 3.8.3.1] SUBSCRIBE with retainHandling 3",
    packet: {
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ filter: "a", qos: 0, retainHandling: 3 as 0 }],
    },
    code: "INVALID_FLAGS",
  },
  {
    name: "[MQTT-3.8.3-4] SUBSCRIBE with noLocal on a shared subscription",
    packet: {
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ filter: "$share/g/a", qos: 0, noLocal: true }],
    },
    code: "INVALID_FLAGS",
  },
];

// 5.0-only fields under 3.1.1 are refused, not dropped.
const V4_CASES: [string, Packet][] = [
  ["PUBLISH properties", publish({ messageExpiryInterval: 5 })],
  ["PUBACK reasonCode", { type: "puback", packetId: 1, reasonCode: 0x10 }],
  ["PUBREC properties", { type: "pubrec", packetId: 1, properties: { reasonString: "x" } }],
  ["PUBREL reasonCode", { type: "pubrel", packetId: 1, reasonCode: 0x92 }],
  ["PUBCOMP reasonCode", { type: "pubcomp", packetId: 1, reasonCode: 0x92 }],
  [
    "CONNACK reasonCode",
    { type: "connack", sessionPresent: false, returnCode: 0, reasonCode: 0x80 },
  ],
  [
    "CONNACK properties",
    { type: "connack", sessionPresent: false, returnCode: 0, properties: { receiveMaximum: 1 } },
  ],
  [
    "SUBSCRIBE noLocal",
    { type: "subscribe", packetId: 1, subscriptions: [{ filter: "a", qos: 0, noLocal: true }] },
  ],
  [
    "SUBSCRIBE retainAsPublished",
    {
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ filter: "a", qos: 0, retainAsPublished: true }],
    },
  ],
  [
    "SUBSCRIBE retainHandling",
    {
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ filter: "a", qos: 0, retainHandling: 2 }],
    },
  ],
  [
    "SUBSCRIBE properties",
    {
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ filter: "a", qos: 0 }],
      properties: { subscriptionIdentifier: 1 },
    },
  ],
  ["SUBACK reasonCodes", { type: "suback", packetId: 1, returnCodes: [0], reasonCodes: [0] }],
  [
    "UNSUBSCRIBE properties",
    { type: "unsubscribe", packetId: 1, filters: ["a"], properties: { userProperties: [] } },
  ],
  ["UNSUBACK reasonCodes", { type: "unsuback", packetId: 1, reasonCodes: [0] }],
  ["DISCONNECT reasonCode", { type: "disconnect", reasonCode: 0x04 }],
  [
    "CONNECT properties",
    {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "c",
      clean: true,
      keepAlive: 0,
      properties: { sessionExpiryInterval: 1 },
    },
  ],
  [
    "CONNECT will properties",
    {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "c",
      clean: true,
      keepAlive: 0,
      will: {
        topic: "w",
        payload: new Uint8Array(0),
        qos: 0,
        retain: false,
        properties: { willDelayInterval: 1 },
      },
    },
  ],
];
for (const [what, packet] of V4_CASES) {
  ENCODE_CASES.push({
    name: `[protocolVersion 5] ${what} under protocolVersion 4`,
    packet,
    code: "PROTOCOL_VERSION_MISMATCH",
    options: { protocolVersion: 4 },
  });
}

for (const c of ENCODE_CASES) {
  Deno.test(`encode 5.0 rejects ${c.name} -> ${c.code}`, () => table.assertEncodeRefuses(c, V5));
}

Deno.test("[section 2.1.2] encoding AUTH under protocolVersion 4 names MQTT 5.0", () => {
  assert.throws(
    () => encodePacket({ type: "auth", reasonCode: 0x18 }),
    (err: unknown) =>
      err instanceof ProtocolError && err.code === "INVALID_PACKET_TYPE" &&
      err.message.includes("MQTT 5.0"),
  );
});

Deno.test("[MQTT-3.1.2-2] a 5.0 CONNECT is refused by a 3.1.1 codec on both sides", () => {
  const connect: Packet = {
    type: "connect",
    protocolName: "MQTT",
    protocolLevel: 5,
    clientId: "c",
    clean: true,
    keepAlive: 0,
  };
  const bytes = encodePacket(connect, V5);
  for (
    const run of [() => encodePacket(connect), () => decodePacket(bytes, 0, bytes.length)]
  ) {
    assert.throws(
      run,
      (err: unknown) => err instanceof ProtocolError && err.code === "UNSUPPORTED_PROTOCOL",
    );
  }
});

Deno.test("3.1.1 defaults of the 5.0 fields encode under protocolVersion 4", () => {
  // Success codes, false options and empty properties carry nothing 3.1.1 lacks.
  const packets: Packet[] = [
    { type: "puback", packetId: 1, reasonCode: 0, properties: {} },
    {
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        filter: "a",
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
    },
    { type: "disconnect", reasonCode: 0 },
    {
      type: "publish",
      topic: "t",
      payload: new Uint8Array(0),
      qos: 0,
      retain: false,
      dup: false,
      properties: undefined,
    },
  ];
  const expected = [
    [0x40, 2, 0, 1],
    [0x82, 6, 0, 1, 0, 1, 0x61, 1],
    [0xe0, 0],
    [0x30, 3, 0, 1, 0x74],
  ];
  packets.forEach((p, i) => assert.deepEqual(Array.from(encodePacket(p)), expected[i]));
});
