/**
 * Malformed input: each case expects a specific ProtocolError code and
 * packet type, and its message must cite the rule in the case's name.
 */
import assert from "node:assert/strict";
import { MqttError, ProtocolError, type ProtocolErrorCode } from "../lib/errors.ts";
import {
  type CodecOptions,
  type ConnectPacket,
  decodePacket,
  encodeInto,
  encodePacket,
  type Packet,
  packetLength,
  type PublishPacket,
  type QoS,
  validateTopicFilter,
  validateTopicName,
} from "../lib/codec/mod.ts";
import * as table from "./malformed_table.ts";

// "MQTT" at protocol level 4: the start of every 3.1.1 CONNECT body.
const MQTT4 = [0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04];

const CASES: table.DecodeCase[] = [
  // Fixed header: type, remaining length, whole-packet bounds.
  {
    name: "[section 2.2.1] packet type 0 is reserved",
    bytes: [0x00, 0x00],
    code: "INVALID_PACKET_TYPE",
    type: undefined,
  },
  {
    name: "[section 2.2.1] packet type 15 is reserved",
    bytes: [0xf0, 0x00],
    code: "INVALID_PACKET_TYPE",
    type: undefined,
  },
  {
    name: "[section 2.2.3] remaining length needs a 5th byte",
    bytes: [0x30, 0xff, 0xff, 0xff, 0xff, 0x7f],
    code: "MALFORMED_REMAINING_LENGTH",
    type: "publish",
  },
  {
    name: "[section 2.2.3] 4th length byte has the continuation bit",
    bytes: [0xc0, 0x80, 0x80, 0x80, 0x80],
    code: "MALFORMED_REMAINING_LENGTH",
    type: "pingreq",
  },
  { name: "[section 2.2.3] empty input", bytes: [], code: "TRUNCATED_PACKET", type: undefined },
  {
    name: "[section 2.2.3] remaining length field cut off",
    bytes: [0x30, 0x80],
    code: "TRUNCATED_PACKET",
    type: "publish",
  },
  {
    name: "[section 2.2.3] body shorter than the remaining length",
    bytes: [0x40, 0x02, 0x00],
    code: "TRUNCATED_PACKET",
    type: "puback",
  },
  {
    name: "[section 2.2.3] bytes after the remaining length",
    bytes: [0xe0, 0x00, 0x00],
    code: "TRAILING_BYTES",
    type: "disconnect",
  },

  // Reserved fixed-header flags, Table 2.2.
  {
    name: "[MQTT-2.2.2-1] CONNECT flags 0001",
    bytes: [0x11, 0x0d, ...MQTT4, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61],
    code: "INVALID_FLAGS",
    type: "connect",
  },
  {
    name: "[MQTT-2.2.2-1] CONNACK flags 0001",
    bytes: [0x21, 0x02, 0x00, 0x00],
    code: "INVALID_FLAGS",
    type: "connack",
  },
  {
    name: "[MQTT-2.2.2-1] PUBACK flags 0001",
    bytes: [0x41, 0x02, 0x00, 0x01],
    code: "INVALID_FLAGS",
    type: "puback",
  },
  {
    name: "[MQTT-2.2.2-1] PUBREC flags 1000",
    bytes: [0x58, 0x02, 0x00, 0x01],
    code: "INVALID_FLAGS",
    type: "pubrec",
  },
  {
    name: "[MQTT-3.6.1-1] PUBREL flags 0000",
    bytes: [0x60, 0x02, 0x00, 0x01],
    code: "INVALID_FLAGS",
    type: "pubrel",
  },
  {
    name: "[MQTT-3.6.1-1] PUBREL flags 0011",
    bytes: [0x63, 0x02, 0x00, 0x01],
    code: "INVALID_FLAGS",
    type: "pubrel",
  },
  {
    name: "[MQTT-2.2.2-1] PUBCOMP flags 0010",
    bytes: [0x72, 0x02, 0x00, 0x01],
    code: "INVALID_FLAGS",
    type: "pubcomp",
  },
  {
    name: "[MQTT-3.8.1-1] SUBSCRIBE flags 0000",
    bytes: [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00],
    code: "INVALID_FLAGS",
    type: "subscribe",
  },
  {
    name: "[MQTT-2.2.2-1] SUBACK flags 0010",
    bytes: [0x92, 0x03, 0x00, 0x01, 0x00],
    code: "INVALID_FLAGS",
    type: "suback",
  },
  {
    name: "[MQTT-3.10.1-1] UNSUBSCRIBE flags 0000",
    bytes: [0xa0, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61],
    code: "INVALID_FLAGS",
    type: "unsubscribe",
  },
  {
    name: "[MQTT-2.2.2-1] UNSUBACK flags 0001",
    bytes: [0xb1, 0x02, 0x00, 0x01],
    code: "INVALID_FLAGS",
    type: "unsuback",
  },
  {
    name: "[MQTT-2.2.2-1] PINGREQ flags 0010",
    bytes: [0xc2, 0x00],
    code: "INVALID_FLAGS",
    type: "pingreq",
  },
  {
    name: "[MQTT-2.2.2-1] PINGRESP flags 0001",
    bytes: [0xd1, 0x00],
    code: "INVALID_FLAGS",
    type: "pingresp",
  },
  {
    name: "[MQTT-3.14.1-1] DISCONNECT flags 0100",
    bytes: [0xe4, 0x00],
    code: "INVALID_FLAGS",
    type: "disconnect",
  },

  // PUBLISH.
  {
    name: "[MQTT-3.3.1-4] PUBLISH QoS 3",
    bytes: [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01],
    code: "INVALID_QOS",
    type: "publish",
  },
  {
    name: "[MQTT-3.3.1-2] PUBLISH DUP with QoS 0",
    bytes: [0x38, 0x03, 0x00, 0x01, 0x61],
    code: "INVALID_FLAGS",
    type: "publish",
  },
  {
    name: "[MQTT-2.3.1-1] PUBLISH QoS 1 packet identifier 0",
    bytes: [0x32, 0x05, 0x00, 0x01, 0x61, 0x00, 0x00],
    code: "INVALID_PACKET_ID",
    type: "publish",
  },
  {
    name: "[MQTT-3.3.2-2] PUBLISH topic name with '+'",
    bytes: [0x30, 0x05, 0x00, 0x03, 0x61, 0x2f, 0x2b],
    code: "INVALID_TOPIC",
    type: "publish",
  },
  {
    name: "[MQTT-3.3.2-2] PUBLISH topic name with '#'",
    bytes: [0x30, 0x03, 0x00, 0x01, 0x23],
    code: "INVALID_TOPIC",
    type: "publish",
  },
  {
    name: "[MQTT-4.7.3-1] PUBLISH empty topic name",
    bytes: [0x30, 0x03, 0x00, 0x00, 0x68],
    code: "INVALID_TOPIC",
    type: "publish",
  },
  {
    name: "[MQTT-1.5.3-2] PUBLISH topic name with U+0000",
    bytes: [0x30, 0x04, 0x00, 0x02, 0x61, 0x00],
    code: "INVALID_UTF8",
    type: "publish",
  },
  {
    name: "[MQTT-1.5.3-1] PUBLISH topic name byte 0xFF",
    bytes: [0x30, 0x03, 0x00, 0x01, 0xff],
    code: "INVALID_UTF8",
    type: "publish",
  },
  {
    name: "[MQTT-1.5.3-1] PUBLISH topic name with an encoded surrogate U+D800",
    bytes: [0x30, 0x05, 0x00, 0x03, 0xed, 0xa0, 0x80],
    code: "INVALID_UTF8",
    type: "publish",
  },
  {
    name: "[MQTT-1.5.3-1] PUBLISH topic name overlong '/' (C0 AF)",
    bytes: [0x30, 0x04, 0x00, 0x02, 0xc0, 0xaf],
    code: "INVALID_UTF8",
    type: "publish",
  },
  {
    name: "[MQTT-1.5.3-1] PUBLISH topic name ends inside a 3-byte sequence",
    bytes: [0x30, 0x04, 0x00, 0x02, 0xe2, 0x82],
    code: "INVALID_UTF8",
    type: "publish",
  },
  {
    name: "[MQTT-1.5.3-1] PUBLISH topic name overlong U+0000 (C0 80)",
    bytes: [0x30, 0x04, 0x00, 0x02, 0xc0, 0x80],
    code: "INVALID_UTF8",
    type: "publish",
  },
  {
    name: "[section 2.2.3] PUBLISH topic length beyond the packet",
    bytes: [0x30, 0x03, 0x00, 0x05, 0x61],
    code: "TRUNCATED_PACKET",
    type: "publish",
  },
  {
    name: "[section 2.2.3] PUBLISH topic length prefix cut",
    bytes: [0x30, 0x01, 0x00],
    code: "TRUNCATED_PACKET",
    type: "publish",
  },
  {
    name: "[section 2.2.3] PUBLISH QoS 1 without packet identifier",
    bytes: [0x32, 0x03, 0x00, 0x01, 0x61],
    code: "TRUNCATED_PACKET",
    type: "publish",
  },
  {
    name: "[section 2.2.3] PUBLISH QoS 2 with half a packet identifier",
    bytes: [0x34, 0x04, 0x00, 0x01, 0x61, 0x01],
    code: "TRUNCATED_PACKET",
    type: "publish",
  },

  // Acknowledgements with a fixed length.
  {
    name: "[MQTT-2.3.1-1] PUBACK packet identifier 0",
    bytes: [0x40, 0x02, 0x00, 0x00],
    code: "INVALID_PACKET_ID",
    type: "puback",
  },
  {
    name: "[MQTT-2.3.1-1] PUBREL packet identifier 0",
    bytes: [0x62, 0x02, 0x00, 0x00],
    code: "INVALID_PACKET_ID",
    type: "pubrel",
  },
  {
    name: "[section 2.2.3] PUBACK remaining length 3",
    bytes: [0x40, 0x03, 0x00, 0x01, 0x00],
    code: "TRAILING_BYTES",
    type: "puback",
  },
  {
    name: "[section 2.2.3] PUBCOMP remaining length 1",
    bytes: [0x70, 0x01, 0x01],
    code: "TRUNCATED_PACKET",
    type: "pubcomp",
  },
  {
    name: "[section 2.2.3] UNSUBACK remaining length 0",
    bytes: [0xb0, 0x00],
    code: "TRUNCATED_PACKET",
    type: "unsuback",
  },
  {
    name: "[section 2.2.3] PINGREQ remaining length 1",
    bytes: [0xc0, 0x01, 0x00],
    code: "TRAILING_BYTES",
    type: "pingreq",
  },
  {
    name: "[section 2.2.3] PINGRESP remaining length 2",
    bytes: [0xd0, 0x02, 0x00, 0x00],
    code: "TRAILING_BYTES",
    type: "pingresp",
  },

  // CONNACK.
  {
    name: "[section 2.2.3] CONNACK remaining length 3",
    bytes: [0x20, 0x03, 0x00, 0x00, 0x00],
    code: "TRAILING_BYTES",
    type: "connack",
  },
  {
    name: "[section 2.2.3] CONNACK remaining length 1",
    bytes: [0x20, 0x01, 0x00],
    code: "TRUNCATED_PACKET",
    type: "connack",
  },
  {
    name: "[section 3.2.2.1] CONNACK reserved acknowledge flag bit 1",
    bytes: [0x20, 0x02, 0x02, 0x00],
    code: "INVALID_FLAGS",
    type: "connack",
  },
  {
    name: "[section 3.2.2.3] CONNACK return code 6",
    bytes: [0x20, 0x02, 0x00, 0x06],
    code: "INVALID_RETURN_CODE",
    type: "connack",
  },
  {
    name: "[section 3.2.2.3] CONNACK return code 255",
    bytes: [0x20, 0x02, 0x00, 0xff],
    code: "INVALID_RETURN_CODE",
    type: "connack",
  },

  // SUBSCRIBE, SUBACK, UNSUBSCRIBE.
  {
    name: "[MQTT-2.3.1-1] SUBSCRIBE packet identifier 0",
    bytes: [0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00],
    code: "INVALID_PACKET_ID",
    type: "subscribe",
  },
  {
    name: "[MQTT-3.8.3-3] SUBSCRIBE without a topic filter",
    bytes: [0x82, 0x02, 0x00, 0x01],
    code: "EMPTY_SUBSCRIPTION",
    type: "subscribe",
  },
  {
    name: "[MQTT-3.8.3-4] SUBSCRIBE requested QoS 3",
    bytes: [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x03],
    code: "INVALID_QOS",
    type: "subscribe",
  },
  {
    name: "[MQTT-3.8.3-4] SUBSCRIBE reserved bits in requested QoS",
    bytes: [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x41],
    code: "INVALID_QOS",
    type: "subscribe",
  },
  {
    name: "[section 2.2.3] SUBSCRIBE filter without its QoS byte",
    bytes: [0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61],
    code: "TRUNCATED_PACKET",
    type: "subscribe",
  },
  {
    name: "[section 2.2.3] SUBSCRIBE filter length beyond the packet",
    bytes: [0x82, 0x06, 0x00, 0x01, 0x00, 0x09, 0x61, 0x00],
    code: "TRUNCATED_PACKET",
    type: "subscribe",
  },
  {
    name: "[MQTT-4.7.1-2] SUBSCRIBE filter 'a/#/b'",
    bytes: [0x82, 0x0a, 0x00, 0x01, 0x00, 0x05, 0x61, 0x2f, 0x23, 0x2f, 0x62, 0x00],
    code: "INVALID_TOPIC_FILTER",
    type: "subscribe",
  },
  {
    name: "[MQTT-4.7.1-2] SUBSCRIBE filter 'a#'",
    bytes: [0x82, 0x07, 0x00, 0x01, 0x00, 0x02, 0x61, 0x23, 0x00],
    code: "INVALID_TOPIC_FILTER",
    type: "subscribe",
  },
  {
    name: "[MQTT-4.7.1-3] SUBSCRIBE filter 'a+'",
    bytes: [0x82, 0x07, 0x00, 0x01, 0x00, 0x02, 0x61, 0x2b, 0x00],
    code: "INVALID_TOPIC_FILTER",
    type: "subscribe",
  },
  {
    name: "[MQTT-4.7.3-1] SUBSCRIBE empty topic filter",
    bytes: [0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00],
    code: "INVALID_TOPIC_FILTER",
    type: "subscribe",
  },
  {
    name: "[MQTT-1.5.3-2] SUBSCRIBE topic filter with U+0000",
    bytes: [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00],
    code: "INVALID_UTF8",
    type: "subscribe",
  },
  {
    name: "[MQTT-3.9.3-2] SUBACK return code 3",
    bytes: [0x90, 0x03, 0x00, 0x01, 0x03],
    code: "INVALID_RETURN_CODE",
    type: "suback",
  },
  {
    name: "[MQTT-3.9.3-2] SUBACK return code 0x81",
    bytes: [0x90, 0x04, 0x00, 0x01, 0x00, 0x81],
    code: "INVALID_RETURN_CODE",
    type: "suback",
  },
  {
    name: "[MQTT-3.9.3-1] SUBACK without return codes",
    bytes: [0x90, 0x02, 0x00, 0x01],
    code: "EMPTY_SUBSCRIPTION",
    type: "suback",
  },
  {
    name: "[MQTT-3.10.3-2] UNSUBSCRIBE without a topic filter",
    bytes: [0xa2, 0x02, 0x00, 0x01],
    code: "EMPTY_SUBSCRIPTION",
    type: "unsubscribe",
  },
  {
    name: "[MQTT-2.3.1-1] UNSUBSCRIBE packet identifier 0",
    bytes: [0xa2, 0x05, 0x00, 0x00, 0x00, 0x01, 0x61],
    code: "INVALID_PACKET_ID",
    type: "unsubscribe",
  },
  {
    name: "[MQTT-4.7.1-2] UNSUBSCRIBE filter '#/a'",
    bytes: [0xa2, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x2f, 0x61],
    code: "INVALID_TOPIC_FILTER",
    type: "unsubscribe",
  },
  {
    name: "[section 2.2.3] UNSUBSCRIBE half a length prefix",
    bytes: [0xa2, 0x03, 0x00, 0x01, 0x00],
    code: "TRUNCATED_PACKET",
    type: "unsubscribe",
  },

  // CONNECT.
  {
    name: "[MQTT-3.1.2-1] CONNECT protocol name 'MQIsdp' level 3 (MQTT 3.1)",
    bytes: [
      0x10,
      0x0f,
      0x00,
      0x06,
      0x4d,
      0x51,
      0x49,
      0x73,
      0x64,
      0x70,
      0x03,
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
    name: "[MQTT-3.1.2-2] CONNECT protocol level 5",
    bytes: [
      0x10,
      0x0d,
      0x00,
      0x04,
      0x4d,
      0x51,
      0x54,
      0x54,
      0x05,
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
    name: "[MQTT-3.1.2-3] CONNECT reserved flag set",
    bytes: [0x10, 0x0d, ...MQTT4, 0x03, 0x00, 0x3c, 0x00, 0x01, 0x61],
    code: "INVALID_CONNECT_FLAGS",
    type: "connect",
  },
  {
    name: "[MQTT-3.1.2-13] CONNECT will QoS 1 without will flag",
    bytes: [0x10, 0x0d, ...MQTT4, 0x0a, 0x00, 0x3c, 0x00, 0x01, 0x61],
    code: "INVALID_CONNECT_FLAGS",
    type: "connect",
  },
  {
    name: "[MQTT-3.1.2-15] CONNECT will retain without will flag",
    bytes: [0x10, 0x0d, ...MQTT4, 0x22, 0x00, 0x3c, 0x00, 0x01, 0x61],
    code: "INVALID_CONNECT_FLAGS",
    type: "connect",
  },
  {
    name: "[MQTT-3.1.2-14] CONNECT will QoS 3",
    bytes: [0x10, 0x12, ...MQTT4, 0x1e, 0x00, 0x3c, 0x00, 0x01, 0x61, 0x00, 0x01, 0x74, 0x00, 0x00],
    code: "INVALID_CONNECT_FLAGS",
    type: "connect",
  },
  {
    name: "[MQTT-3.1.2-22] CONNECT password without user name",
    bytes: [0x10, 0x10, ...MQTT4, 0x42, 0x00, 0x3c, 0x00, 0x01, 0x61, 0x00, 0x01, 0x70],
    code: "INVALID_CONNECT_FLAGS",
    type: "connect",
  },
  {
    name: "[MQTT-3.1.3-7] CONNECT empty client id without clean session",
    bytes: [0x10, 0x0c, ...MQTT4, 0x00, 0x00, 0x3c, 0x00, 0x00],
    code: "INVALID_CLIENT_ID",
    type: "connect",
  },
  {
    name: "[MQTT-1.5.3-2] CONNECT client id with U+0000",
    bytes: [0x10, 0x0e, ...MQTT4, 0x02, 0x00, 0x3c, 0x00, 0x02, 0x61, 0x00],
    code: "INVALID_UTF8",
    type: "connect",
  },
  {
    name: "[MQTT-1.5.3-1] CONNECT user name ends inside a 2-byte sequence",
    bytes: [0x10, 0x10, ...MQTT4, 0x82, 0x00, 0x3c, 0x00, 0x01, 0x61, 0x00, 0x01, 0xc3],
    code: "INVALID_UTF8",
    type: "connect",
  },
  {
    name: "[MQTT-3.3.2-2] CONNECT will topic with '#'",
    bytes: [0x10, 0x12, ...MQTT4, 0x06, 0x00, 0x3c, 0x00, 0x01, 0x61, 0x00, 0x01, 0x23, 0x00, 0x00],
    code: "INVALID_TOPIC",
    type: "connect",
  },
  {
    name: "[section 2.2.3] CONNECT without client id",
    bytes: [0x10, 0x0a, ...MQTT4, 0x02, 0x00, 0x3c],
    code: "TRUNCATED_PACKET",
    type: "connect",
  },
  {
    name: "[section 2.2.3] CONNECT user name flag without user name",
    bytes: [0x10, 0x0d, ...MQTT4, 0x82, 0x00, 0x3c, 0x00, 0x01, 0x61],
    code: "TRUNCATED_PACKET",
    type: "connect",
  },
  {
    name: "[section 2.2.3] CONNECT will flag without will message",
    bytes: [0x10, 0x10, ...MQTT4, 0x06, 0x00, 0x3c, 0x00, 0x01, 0x61, 0x00, 0x01, 0x74],
    code: "TRUNCATED_PACKET",
    type: "connect",
  },
  {
    name: "[section 2.2.3] CONNECT protocol name longer than the packet",
    bytes: [0x10, 0x04, 0x00, 0x09, 0x4d, 0x51],
    code: "TRUNCATED_PACKET",
    type: "connect",
  },
  {
    name: "[section 2.2.3] CONNECT without protocol level",
    bytes: [0x10, 0x06, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54],
    code: "TRUNCATED_PACKET",
    type: "connect",
  },
  {
    name: "[section 2.2.3] CONNECT with a byte after the last field",
    bytes: [0x10, 0x0e, ...MQTT4, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61, 0x00],
    code: "TRAILING_BYTES",
    type: "connect",
  },
];

for (const c of CASES) {
  Deno.test(`malformed ${c.name} -> ${c.code}`, () => table.assertDecodeRefuses(c));
}

Deno.test("malformed table has at least 40 cases, each rule named", () =>
  table.assertTable(CASES, 40));

Deno.test("[section 2.2.3] packetLength rejects a 5-byte remaining length from its header", () => {
  const header = new Uint8Array([0x30, 0x80, 0x80, 0x80, 0x80]);
  assert.throws(
    () => packetLength(header, 0, header.length),
    (err: unknown) =>
      err instanceof ProtocolError && err.code === "MALFORMED_REMAINING_LENGTH" &&
      err.packetType === "publish",
  );
});

Deno.test("maxPacketSize: packetLength rejects a large packet from its header alone", () => {
  // PUBLISH announcing 16384 bytes of body; only the header has arrived.
  const header = new Uint8Array([0x30, 0x80, 0x80, 0x01]);
  assert.equal(packetLength(header, 0, header.length), 16388);
  assert.equal(packetLength(header, 0, header.length, 16388), 16388);
  assert.throws(
    () => packetLength(header, 0, header.length, 16387),
    (err: unknown) =>
      err instanceof ProtocolError && err.code === "PACKET_TOO_LARGE" &&
      err.packetType === "publish",
  );
});

Deno.test("maxPacketSize: decodePacket rejects a packet above the limit", () => {
  const bytes = new Uint8Array([0x30, 0x05, 0x00, 0x01, 0x61, 0x68, 0x69]);
  assert.equal(decodePacket(bytes, 0, 7, { maxPacketSize: 7 }).type, "publish");
  assert.throws(
    () => decodePacket(bytes, 0, 7, { maxPacketSize: 6 }),
    (err: unknown) => err instanceof ProtocolError && err.code === "PACKET_TOO_LARGE",
  );
});

Deno.test("decode accepts the edge cases that are legal", () => {
  const ok = (bytes: number[]) => decodePacket(new Uint8Array(bytes), 0, bytes.length);
  // A non-minimal remaining length (0x82 0x00 = 2): 3.1.1 does not forbid it.
  assert.deepStrictEqual(ok([0x40, 0x82, 0x00, 0x00, 0x07]), { type: "puback", packetId: 7 });
  // Topic "/" and filters "+", "#", "+/+", "/#", "$SYS/#".
  assert.equal((ok([0x30, 0x03, 0x00, 0x01, 0x2f]) as { topic: string }).topic, "/");
  const filters = ["+", "#", "+/+", "/#", "$SYS/#", "a//b"];
  const body = [0x00, 0x01];
  for (const f of filters) body.push(0x00, f.length, ...Array.from(f, (ch) => ch.charCodeAt(0)));
  const unsub = ok([0xa2, body.length, ...body]);
  assert.deepStrictEqual(unsub, { type: "unsubscribe", packetId: 1, filters });
});

// ---------------------------------------------------------------------------
// Encode side: the same rules reject illegal packet objects before any byte
// is written.

const publish = (over: Partial<PublishPacket>): Packet => ({
  type: "publish",
  topic: "a/b",
  payload: new Uint8Array(0),
  qos: 1,
  retain: false,
  dup: false,
  packetId: 1,
  ...over,
});
const connect = (over: Partial<ConnectPacket>): Packet => ({
  type: "connect",
  protocolName: "MQTT",
  protocolLevel: 4,
  clientId: "c",
  clean: true,
  keepAlive: 60,
  ...over,
});
const subscribe = (filter: string, qos = 0): Packet => ({
  type: "subscribe",
  packetId: 1,
  subscriptions: [{ filter, qos: qos as QoS }],
});
const bigBytes = { length: 65_536 } as unknown as Uint8Array;

const ENCODE_CASES: table.EncodeCase[] = [
  { name: "[MQTT-3.3.1-4] PUBLISH QoS 3", packet: publish({ qos: 3 as QoS }), code: "INVALID_QOS" },
  {
    name: "[MQTT-3.3.1-4] PUBLISH QoS -1",
    packet: publish({ qos: -1 as QoS }),
    code: "INVALID_QOS",
  },
  {
    name: "[MQTT-3.3.1-2] PUBLISH DUP with QoS 0",
    packet: publish({ qos: 0, dup: true, packetId: undefined }),
    code: "INVALID_FLAGS",
  },
  {
    name: "[MQTT-2.3.1-1] PUBLISH QoS 1 without packet identifier",
    packet: publish({ packetId: undefined }),
    code: "INVALID_PACKET_ID",
  },
  {
    name: "[MQTT-2.3.1-1] PUBLISH QoS 2 packet identifier 0",
    packet: publish({ qos: 2, packetId: 0 }),
    code: "INVALID_PACKET_ID",
  },
  {
    name: "[MQTT-2.3.1-1] PUBLISH packet identifier 65536",
    packet: publish({ packetId: 65536 }),
    code: "INVALID_PACKET_ID",
  },
  {
    name: "[MQTT-2.3.1-1] PUBLISH packet identifier 1.5",
    packet: publish({ packetId: 1.5 }),
    code: "INVALID_PACKET_ID",
  },
  {
    name: "[MQTT-4.7.3-1] PUBLISH empty topic",
    packet: publish({ topic: "" }),
    code: "INVALID_TOPIC",
  },
  {
    name: "[MQTT-3.3.2-2] PUBLISH topic with '+'",
    packet: publish({ topic: "a/+" }),
    code: "INVALID_TOPIC",
  },
  {
    name: "[MQTT-3.3.2-2] PUBLISH topic with '#'",
    packet: publish({ topic: "#" }),
    code: "INVALID_TOPIC",
  },
  {
    name: "[MQTT-3.3.2-2] PUBLISH non-ASCII topic with '#'",
    packet: publish({ topic: "ñ/#" }),
    code: "INVALID_TOPIC",
  },
  {
    name: "[MQTT-1.5.3-2] PUBLISH topic with U+0000",
    packet: publish({ topic: "a\u0000b" }),
    code: "INVALID_UTF8",
  },
  {
    name: "[MQTT-1.5.3-1] PUBLISH topic with a lone high surrogate",
    packet: publish({ topic: "a\uD800" }),
    code: "INVALID_UTF8",
  },
  {
    name: "[MQTT-1.5.3-1] PUBLISH topic with a lone low surrogate",
    packet: publish({ topic: "\uDC00a" }),
    code: "INVALID_UTF8",
  },
  {
    name: "[section 1.5.3] PUBLISH ASCII topic of 65536 bytes",
    packet: publish({ topic: "a".repeat(65_536) }),
    code: "STRING_TOO_LONG",
  },
  {
    name: "[section 1.5.3] PUBLISH topic of 21846 '€' (65538 bytes)",
    packet: publish({ topic: "€".repeat(21_846) }),
    code: "STRING_TOO_LONG",
  },
  {
    name: "[section 2.2.3] PUBLISH payload beyond the remaining length maximum",
    packet: publish({ payload: { length: 268_435_455 } as unknown as Uint8Array }),
    code: "PACKET_TOO_LARGE",
  },
  {
    name: "[maxPacketSize] PUBLISH above options.maxPacketSize",
    packet: publish({ payload: new Uint8Array(100) }),
    code: "PACKET_TOO_LARGE",
    options: { maxPacketSize: 100 },
  },
  {
    name: "[MQTT-2.3.1-1] PUBACK packet identifier 0",
    packet: { type: "puback", packetId: 0 },
    code: "INVALID_PACKET_ID",
  },
  {
    name: "[MQTT-2.3.1-1] PUBREL packet identifier 70000",
    packet: { type: "pubrel", packetId: 70_000 },
    code: "INVALID_PACKET_ID",
  },
  {
    name: "[MQTT-2.3.1-1] UNSUBACK packet identifier missing",
    packet: { type: "unsuback" } as unknown as Packet,
    code: "INVALID_PACKET_ID",
  },
  {
    name: "[MQTT-3.8.3-3] SUBSCRIBE without filters",
    packet: { type: "subscribe", packetId: 1, subscriptions: [] },
    code: "EMPTY_SUBSCRIPTION",
  },
  {
    name: "[MQTT-3.8.3-4] SUBSCRIBE requested QoS 3",
    packet: subscribe("a", 3),
    code: "INVALID_QOS",
  },
  {
    name: "[MQTT-4.7.1-2] SUBSCRIBE filter 'a/#/b'",
    packet: subscribe("a/#/b"),
    code: "INVALID_TOPIC_FILTER",
  },
  {
    name: "[MQTT-4.7.1-2] SUBSCRIBE filter 'a#'",
    packet: subscribe("a#"),
    code: "INVALID_TOPIC_FILTER",
  },
  {
    name: "[MQTT-4.7.1-3] SUBSCRIBE filter '+a'",
    packet: subscribe("+a"),
    code: "INVALID_TOPIC_FILTER",
  },
  {
    name: "[MQTT-4.7.1-3] SUBSCRIBE filter 'a/b+'",
    packet: subscribe("a/b+"),
    code: "INVALID_TOPIC_FILTER",
  },
  {
    name: "[MQTT-4.7.3-1] SUBSCRIBE empty filter",
    packet: subscribe(""),
    code: "INVALID_TOPIC_FILTER",
  },
  {
    name: "[MQTT-1.5.3-2] SUBSCRIBE filter with U+0000",
    packet: subscribe("a/\u0000"),
    code: "INVALID_UTF8",
  },
  {
    name: "[MQTT-2.3.1-1] SUBSCRIBE packet identifier 0",
    packet: { type: "subscribe", packetId: 0, subscriptions: [{ filter: "a", qos: 0 }] },
    code: "INVALID_PACKET_ID",
  },
  {
    name: "[MQTT-3.10.3-2] UNSUBSCRIBE without filters",
    packet: { type: "unsubscribe", packetId: 1, filters: [] },
    code: "EMPTY_SUBSCRIPTION",
  },
  {
    name: "[MQTT-4.7.1-2] UNSUBSCRIBE filter '##'",
    packet: { type: "unsubscribe", packetId: 1, filters: ["a", "##"] },
    code: "INVALID_TOPIC_FILTER",
  },
  {
    name: "[MQTT-3.9.3-2] SUBACK return code 3",
    packet: { type: "suback", packetId: 1, returnCodes: [0, 3 as 0] },
    code: "INVALID_RETURN_CODE",
  },
  {
    name: "[MQTT-3.9.3-1] SUBACK without return codes",
    packet: { type: "suback", packetId: 1, returnCodes: [] },
    code: "EMPTY_SUBSCRIPTION",
  },
  {
    name: "[section 3.2.2.3] CONNACK return code 6",
    packet: { type: "connack", sessionPresent: false, returnCode: 6 as 0 },
    code: "INVALID_RETURN_CODE",
  },
  {
    name: "[MQTT-3.1.2-1] CONNECT protocol name 'MQIsdp'",
    packet: connect({ protocolName: "MQIsdp" }),
    code: "UNSUPPORTED_PROTOCOL",
  },
  {
    name: "[MQTT-3.1.2-2] CONNECT protocol level 3",
    packet: connect({ protocolLevel: 3 }),
    code: "UNSUPPORTED_PROTOCOL",
  },
  {
    name: "[section 3.1.2.10] CONNECT keep alive 65536",
    packet: connect({ keepAlive: 65_536 }),
    code: "INVALID_KEEPALIVE",
  },
  {
    name: "[section 3.1.2.10] CONNECT keep alive -1",
    packet: connect({ keepAlive: -1 }),
    code: "INVALID_KEEPALIVE",
  },
  {
    name: "[section 3.1.2.10] CONNECT keep alive 1.5",
    packet: connect({ keepAlive: 1.5 }),
    code: "INVALID_KEEPALIVE",
  },
  {
    name: "[MQTT-3.1.2-22] CONNECT password without user name",
    packet: connect({ password: new Uint8Array(1) }),
    code: "INVALID_CONNECT_FLAGS",
  },
  {
    name: "[MQTT-3.1.2-14] CONNECT will QoS 3",
    packet: connect({
      will: { topic: "t", payload: new Uint8Array(0), qos: 3 as QoS, retain: false },
    }),
    code: "INVALID_CONNECT_FLAGS",
  },
  {
    name: "[MQTT-3.3.2-2] CONNECT will topic 'a/+'",
    packet: connect({ will: { topic: "a/+", payload: new Uint8Array(0), qos: 0, retain: false } }),
    code: "INVALID_TOPIC",
  },
  {
    name: "[MQTT-3.1.3-7] CONNECT empty client id without clean session",
    packet: connect({ clientId: "", clean: false }),
    code: "INVALID_CLIENT_ID",
  },
  {
    name: "[MQTT-1.5.3-1] CONNECT client id with a lone surrogate",
    packet: connect({ clientId: "\uDBFF" }),
    code: "INVALID_UTF8",
  },
  {
    name: "[MQTT-1.5.3-2] CONNECT user name with U+0000",
    packet: connect({ username: "\u0000" }),
    code: "INVALID_UTF8",
  },
  {
    name: "[section 3.1.3] CONNECT will message of 65536 bytes",
    packet: connect({ will: { topic: "t", payload: bigBytes, qos: 0, retain: false } }),
    code: "STRING_TOO_LONG",
  },
  {
    name: "[section 3.1.3] CONNECT password of 65536 bytes",
    packet: connect({ username: "u", password: bigBytes }),
    code: "STRING_TOO_LONG",
  },
  {
    name: "[section 2.2.1] unknown packet type",
    packet: { type: "auth" } as unknown as Packet,
    code: "INVALID_PACKET_TYPE",
  },
];

for (const c of ENCODE_CASES) {
  Deno.test(`encode rejects ${c.name} -> ${c.code}`, () => table.assertEncodeRefuses(c));
}

Deno.test("encodeInto refuses a target without room and writes nothing", () => {
  const target = new Uint8Array(5).fill(0xee);
  assert.throws(
    () => encodeInto({ type: "puback", packetId: 1 }, target, 2),
    (err: unknown) => err instanceof MqttError && err.code === "INVALID_OPTION",
  );
  assert(target.every((b) => b === 0xee));
  assert.equal(encodeInto({ type: "puback", packetId: 1 }, target, 1), 4);
});

Deno.test("encode: a leftover packetId on a QoS 0 PUBLISH is not written (MQTT-2.3.1-5)", () => {
  const bytes = encodePacket(publish({ qos: 0, packetId: 9 }));
  assert.deepEqual(Array.from(bytes), [0x30, 0x05, 0x00, 0x03, 0x61, 0x2f, 0x62]);
});

Deno.test("validateTopicName accepts legal names and rejects the rest with codes", () => {
  for (
    const t of ["a", "/", "a/b", "a//b", " ", "$SYS/broker", "ñ/€/\u{1F600}", "a".repeat(65_535)]
  ) {
    validateTopicName(t);
  }
  const bad: [string, ProtocolErrorCode][] = [
    ["", "INVALID_TOPIC"],
    ["+", "INVALID_TOPIC"],
    ["a/#", "INVALID_TOPIC"],
    ["€+", "INVALID_TOPIC"],
    ["a\u0000", "INVALID_UTF8"],
    ["\uD83D", "INVALID_UTF8"],
    ["a".repeat(65_536), "STRING_TOO_LONG"],
  ];
  for (const [t, code] of bad) {
    assert.throws(
      () => validateTopicName(t),
      (err: unknown) => err instanceof ProtocolError && err.code === code,
      JSON.stringify(t.slice(0, 10)),
    );
  }
});

Deno.test("validateTopicFilter accepts legal filters and rejects the rest with codes", () => {
  const good = [
    "#",
    "+",
    "+/+",
    "/+",
    "+/",
    "a/+/b",
    "a/#",
    "/#",
    "+/#",
    "$SYS/#",
    "a//b",
    "ñ/+/€",
  ];
  for (const f of good) validateTopicFilter(f);
  validateTopicFilter("a/".repeat(32_767) + "#"); // exactly 65535 bytes
  const bad: [string, ProtocolErrorCode][] = [
    ["", "INVALID_TOPIC_FILTER"],
    ["#/", "INVALID_TOPIC_FILTER"],
    ["a/#/b", "INVALID_TOPIC_FILTER"],
    ["a#", "INVALID_TOPIC_FILTER"],
    ["##", "INVALID_TOPIC_FILTER"],
    ["a+", "INVALID_TOPIC_FILTER"],
    ["+a", "INVALID_TOPIC_FILTER"],
    ["a/+b/c", "INVALID_TOPIC_FILTER"],
    ["++", "INVALID_TOPIC_FILTER"],
    ["€#", "INVALID_TOPIC_FILTER"],
    ["a/\u0000", "INVALID_UTF8"],
    ["\uDC00/#", "INVALID_UTF8"],
    ["a/".repeat(32_767) + "b/#", "STRING_TOO_LONG"], // 65537 bytes
  ];
  for (const [f, code] of bad) {
    assert.throws(
      () => validateTopicFilter(f),
      (err: unknown) => err instanceof ProtocolError && err.code === code,
      JSON.stringify(f.slice(0, 10)),
    );
  }
});

Deno.test("[MQTT-3.1.2-2] options.protocolVersion other than 4 or 5 is refused on both sides", () => {
  const options = { protocolVersion: 6 } as unknown as CodecOptions;
  const bytes = new Uint8Array([0xc0, 0x00]);
  for (
    const run of [
      () => encodePacket({ type: "pingreq" }, options),
      () => decodePacket(bytes, 0, 2, options),
    ]
  ) {
    assert.throws(
      run,
      (err: unknown) => err instanceof ProtocolError && err.code === "UNSUPPORTED_PROTOCOL",
    );
  }
});
