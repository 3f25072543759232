/**
 * Tests for the normative statements of MQTT 3.1.1 that no other test proved (see
 * `docs/conformance.md`). Each rule is tested where it lives: codec rules with bytes, session
 * rules with packets and times, client behaviour against Mosquitto or, where a real broker cannot
 * be made to misbehave, against a scripted peer speaking raw bytes.
 *
 * @module
 */
import {
  brief as briefPackets,
  Recorder,
  sessionOptions as baseOptions,
} from "./session_helpers.ts";
import assert from "node:assert/strict";
import { connect } from "../lib/client/connect.ts";
import type { MqttClient } from "../lib/client/client.ts";
import { decodePacket, packetLength } from "../lib/codec/decode.ts";
import { encodePacket } from "../lib/codec/encode.ts";
import type {
  ConnectPacket,
  Packet,
  PublishPacket,
  QoS,
  SubscribePacket,
} from "../lib/codec/packet.ts";
import { MqttError, ProtocolError } from "../lib/errors.ts";
import { ClientSessionState, Session } from "../lib/session/session.ts";
import type { SessionOptions } from "../lib/session/types.ts";
import { brokerTest, startMosquitto } from "./broker/mosquitto.ts";
import { closed, fresh, take, within } from "./client_helpers.ts";
import {
  type ScriptedPeer,
  type ScriptedServer,
  scriptedServer as scriptedServerAt,
} from "./scripted_peer.ts";

const enc = new TextEncoder();

// ---------------------------------------------------------------- codec: bytes

function connectPacket(overrides: Partial<ConnectPacket> = {}): ConnectPacket {
  return {
    type: "connect",
    protocolName: "MQTT",
    protocolLevel: 4,
    clientId: "c",
    clean: true,
    keepAlive: 0,
    ...overrides,
  };
}

function decodeAll(bytes: ArrayLike<number>): Packet {
  const buf = Uint8Array.from(bytes);
  return decodePacket(buf, 0, buf.length);
}

function assertProtocolError(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected a ProtocolError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

// CONNECT variable header for these tests: "MQTT", level 4, flags at index 9, keep alive 0.
const HEADER = [0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04];

Deno.test("MQTT-3.1.2-18 to -21: the user name and password flags are set exactly when the fields are present", () => {
  // Fixed header (2 bytes) + protocol name and level (7): the connect flags are byte 9.
  const none = encodePacket(connectPacket());
  assert.equal(none[9] & 0xc0, 0, "MQTT-3.1.2-18, -20: no flags without the fields");
  assert.deepEqual([...none.subarray(12)], [0x00, 0x01, 0x63], "payload: the client id only");

  const userOnly = encodePacket(connectPacket({ username: "u" }));
  assert.equal(
    userOnly[9] & 0xc0,
    0x80,
    "MQTT-3.1.2-19: user name flag, MQTT-3.1.2-20: no password flag",
  );
  assert.deepEqual([...userOnly.subarray(12)], [0x00, 0x01, 0x63, 0x00, 0x01, 0x75]);

  const both = encodePacket(connectPacket({ username: "u", password: Uint8Array.of(0xff, 0x00) }));
  assert.equal(both[9] & 0xc0, 0xc0, "MQTT-3.1.2-19, -21: both flags");
  assert.deepEqual([...both.subarray(12)], [
    0x00,
    0x01,
    0x63,
    0x00,
    0x01,
    0x75,
    0x00,
    0x02,
    0xff,
    0x00,
  ]);

  // Received: a flag without its field, or a field without its flag, is malformed.
  const body = (flags: number, payload: number[]) => {
    const rest = [...HEADER, flags, 0x00, 0x00, ...payload];
    return [0x10, rest.length, ...rest];
  };
  assertProtocolError(() => decodeAll(body(0x82, [0x00, 0x01, 0x63])), "TRUNCATED_PACKET");
  assertProtocolError(
    () => decodeAll(body(0xc2, [0x00, 0x01, 0x63, 0x00, 0x01, 0x75])),
    "TRUNCATED_PACKET",
  );
  assertProtocolError(
    () => decodeAll(body(0x02, [0x00, 0x01, 0x63, 0x00, 0x01, 0x75])),
    "TRAILING_BYTES",
  );
  assert.deepEqual(
    decodeAll(body(0xc2, [0x00, 0x01, 0x63, 0x00, 0x01, 0x75, 0x00, 0x01, 0x70])),
    connectPacket({ username: "u", password: Uint8Array.of(0x70) }),
  );
});

Deno.test("MQTT-3.1.3-10: the will topic is a well-formed UTF-8 string on encode and decode", () => {
  const will = (topic: string) => ({
    topic,
    payload: new Uint8Array(0),
    qos: 0 as QoS,
    retain: false,
  });
  for (const topic of ["a\u0000", "\uD800/a", "a/\uDC00"]) {
    assertProtocolError(() => encodePacket(connectPacket({ will: will(topic) })), "INVALID_UTF8");
  }
  const good = encodePacket(connectPacket({ will: will("ñ/€") }));
  assert.deepEqual(decodeAll(good), connectPacket({ will: will("ñ/€") }));
  // The same CONNECT with the will topic's first byte replaced by a lone continuation byte.
  const bytes = [...good];
  const topicAt = 12 + 3 + 2; // client id field (3 bytes) then the will topic's length prefix
  assert.equal(bytes[topicAt], 0xc3);
  bytes[topicAt] = 0x80;
  assertProtocolError(() => decodeAll(bytes), "INVALID_UTF8");
  bytes[topicAt] = 0x00; // U+0000
  bytes[topicAt + 1] = 0x61;
  assertProtocolError(() => decodeAll(bytes), "INVALID_UTF8");
});

Deno.test("MQTT-3.10.3-1: UNSUBSCRIBE topic filters are UTF-8 strings packed contiguously", () => {
  const packet: Packet = { type: "unsubscribe", packetId: 10, filters: ["a/b", "ñ/+", "#"] };
  const bytes = encodePacket(packet);
  assert.deepEqual([...bytes], [
    0xa2,
    0x10,
    0x00,
    0x0a,
    ...[0x00, 0x03, 0x61, 0x2f, 0x62],
    ...[0x00, 0x04, 0xc3, 0xb1, 0x2f, 0x2b],
    ...[0x00, 0x01, 0x23],
  ]);
  assert.deepEqual(decodeAll(bytes), packet);
  for (const filter of ["a\u0000", "\uDBFF"]) {
    assertProtocolError(
      () => encodePacket({ type: "unsubscribe", packetId: 1, filters: [filter] }),
      "INVALID_UTF8",
    );
  }
  // Received with an ill-formed filter (0xC3 then '/' is not a UTF-8 sequence).
  assertProtocolError(
    () => decodeAll([0xa2, 0x06, 0x00, 0x01, 0x00, 0x02, 0xc3, 0x2f]),
    "INVALID_UTF8",
  );
});

// ---------------------------------------------------------------- session: packets and times

function sessionOptions(overrides: Partial<SessionOptions> = {}): SessionOptions {
  return baseOptions({ keepAlive: 0, maxInflight: 65_535, ...overrides });
}

function connectedSession(
  overrides: Partial<SessionOptions> = {},
  state: ClientSessionState = new ClientSessionState(),
): { session: Session; h: Recorder } {
  const h = new Recorder();
  const session = new Session(sessionOptions(overrides), state, h);
  session.connect(0);
  session.receive({ type: "connack", sessionPresent: false, returnCode: 0 }, 1);
  assert.equal(session.state, "connected");
  h.take();
  return { session, h };
}

function message(topic: string, qos: QoS) {
  return { topic, payload: enc.encode(topic), qos, retain: false };
}

function incoming(packetId: number | undefined, qos: QoS, dup = false): PublishPacket {
  return {
    type: "publish",
    topic: "in",
    payload: enc.encode("x"),
    qos,
    retain: false,
    dup,
    packetId,
  };
}

/** Packets as short strings: "publish:3:q1", "pubrel:2", ... */
function brief(packets: Packet[]): string[] {
  return briefPackets(packets, { topics: false });
}

function idsOf(packets: Packet[]): number[] {
  return packets.map((p) => (p as { packetId: number }).packetId);
}

Deno.test("MQTT-2.3.1-3: a packet id is reused only after PUBACK, PUBCOMP, SUBACK or UNSUBACK", () => {
  const { session, h } = connectedSession();
  session.subscribe([{ filter: "s", qos: 1 }], 2, () => {});
  session.unsubscribe(["u"], 2, () => {});
  session.publish(message("q2", 2), 2, () => {});
  for (let i = 4; i <= 65_535; i++) session.publish(message("q1", 1), 2, () => {});
  assert.deepEqual(brief(h.take().slice(0, 3)), ["subscribe:1", "unsubscribe:2", "publish:3:q2"]);

  // PUBREC alone does not free a QoS 2 id (it frees at PUBCOMP); PUBACK frees QoS 1 ids.
  session.receive({ type: "pubrec", packetId: 3 }, 3);
  assert.deepEqual(brief(h.take()), ["pubrel:3"]);
  for (let id = 4; id <= 65_535; id++) session.receive({ type: "puback", packetId: id }, 3);

  // Ids 1 (SUBSCRIBE), 2 (UNSUBSCRIBE) and 3 (QoS 2 past PUBREC) are still in use.
  session.publish(message("next", 1), 4, () => {});
  const [next] = idsOf(h.take());
  assert.ok(![1, 2, 3].includes(next), `id ${next} was still in use`);

  session.receive({ type: "suback", packetId: 1, returnCodes: [1] }, 5);
  session.receive({ type: "unsuback", packetId: 2 }, 5);
  session.receive({ type: "pubcomp", packetId: 3 }, 5);
  // Every id but `next` is free now: 65,534 publishes use each of them once, 1, 2 and 3 included.
  for (let i = 0; i < 65_534; i++) session.publish(message("again", 1), 6, () => {});
  const ids = idsOf(h.take());
  assert.equal(new Set(ids).size, 65_534);
  assert.ok(!ids.includes(next));
  for (const id of [1, 2, 3]) assert.ok(ids.includes(id), `id ${id} was not reused`);
});

Deno.test("MQTT-4.3.2-2: after PUBACK a PUBLISH with the same id is a new message, DUP or not", () => {
  const { session, h } = connectedSession();
  session.receive(incoming(5, 1), 2);
  session.receive(incoming(5, 1, true), 3);
  session.receive(incoming(5, 1), 4);
  assert.equal(h.delivered.length, 3, "each PUBLISH after the PUBACK is delivered");
  assert.deepEqual(brief(h.take()), ["puback:5", "puback:5", "puback:5"]);
});

Deno.test("MQTT-4.6.0-3: PUBRECs go out in the order the QoS 2 PUBLISHes arrived", () => {
  const { session, h } = connectedSession();
  for (const id of [9, 4, 7, 1]) session.receive(incoming(id, 2), 2);
  session.receive(incoming(3, 1), 2);
  session.receive(incoming(8, 2), 2);
  assert.deepEqual(brief(h.take()), [
    "pubrec:9",
    "pubrec:4",
    "pubrec:7",
    "pubrec:1",
    "puback:3",
    "pubrec:8",
  ]);
});

Deno.test("MQTT-4.6.0-4: PUBRELs go out in the order the PUBRECs arrived", () => {
  const { session, h } = connectedSession();
  for (const t of ["a", "b", "c", "d"]) session.publish(message(t, 2), 2, () => {});
  assert.deepEqual(idsOf(h.take()), [1, 2, 3, 4]);
  for (const id of [3, 1, 4, 2]) session.receive({ type: "pubrec", packetId: id }, 3);
  assert.deepEqual(brief(h.take()), ["pubrel:3", "pubrel:1", "pubrel:4", "pubrel:2"]);
});

Deno.test("MQTT-3.1.2-6: a clean session reuses no state of the previous one", () => {
  const state = new ClientSessionState();
  const first = connectedSession({ clean: true }, state);
  first.session.receive(incoming(7, 2), 2); // held until PUBREL
  first.session.publish(message("a", 1), 2, () => {});
  first.session.publish(message("b", 2), 2, () => {});
  first.session.receive({ type: "pubrec", packetId: 2 }, 3);
  assert.deepEqual(brief(first.h.take()), ["pubrec:7", "publish:1:q1", "publish:2:q2", "pubrel:2"]);
  first.session.connectionLost(new MqttError("CONNECTION_CLOSED", "cut"), 4);

  const h = new Recorder();
  const second = new Session(sessionOptions({ clean: true }), state, h);
  second.connect(10);
  assert.deepEqual(brief(h.take()), ["connect"]);
  second.receive({ type: "connack", sessionPresent: false, returnCode: 0 }, 11);
  // Nothing of the old session's protocol state goes out: no DUP resend, no PUBREL; the
  // application's unfinished publishes are sent as new messages (the QoS 2 one past PUBREC
  // too: the broker may have dropped it with its session).
  assert.deepEqual(brief(h.take()), ["publish:1:q1", "publish:2:q2"]);
  // The old session's QoS 2 id 7 is forgotten: a PUBLISH with it is a new message.
  second.receive(incoming(7, 2), 12);
  assert.equal(h.delivered.length, 1);
  // MQTT-4.1.0-2: within the connection the state lasts: its DUP resend is not delivered again.
  second.receive(incoming(7, 2, true), 13);
  assert.equal(h.delivered.length, 1);
  assert.deepEqual(brief(h.take()), ["pubrec:7", "pubrec:7"]);
});

// ---------------------------------------------------------------- client: a scripted peer

const CONNACK: Packet = { type: "connack", sessionPresent: false, returnCode: 0 };

/** A scripted MQTT 3.1.1 server on a free loopback port. */
function scriptedServer(): ScriptedServer {
  return scriptedServerAt(4);
}

/** Connects a client to the scripted server, which accepts it with CONNACK. */
async function connectScripted(
  server: ScriptedServer,
  options: Parameters<typeof connect>[1] = {},
): Promise<{ client: MqttClient; peer: ScriptedPeer }> {
  const connecting = connect(server.url, { reconnect: false, keepAlive: 0, ...options });
  const peer = await server.accept();
  await peer.expect("connect");
  await peer.write(CONNACK);
  return { client: await within(connecting, "connect() to resolve"), peer };
}

Deno.test("MQTT-3.1.0-1: the first packet on every connection is CONNECT", async () => {
  const server = scriptedServer();
  try {
    const connecting = connect(server.url, {
      clientId: "first-packet",
      keepAlive: 0,
      reconnect: { minDelay: 1, maxDelay: 10 },
    });
    const first = await server.accept();
    const connectPacket = await first.expect("connect");
    assert.equal(connectPacket.clientId, "first-packet");
    await first.write(CONNACK);
    const client = await within(connecting, "connect() to resolve");
    try {
      const publishing = client.publish("t", "pending", { qos: 1 });
      const publish = await first.expect("publish");
      // The link dies before PUBACK; the client reconnects with the publish still pending.
      first.close();
      const second = await server.accept();
      const again = await second.next("the first packet of the new connection");
      assert.ok(again !== "eof" && again.type === "connect", "CONNECT comes before the resend");
      await second.write(CONNACK);
      const resent = await second.expect("publish");
      assert.equal(resent.packetId, publish.packetId);
      await second.write({ type: "puback", packetId: resent.packetId! });
      await within(publishing, "the publish to complete");
      // close() waits for the server to hang up, which it does on reading the client's end.
      const closing = client.close();
      await second.untilEof();
      await closing;
    } finally {
      await client.close();
    }
  } finally {
    server.close();
  }
});

Deno.test("MQTT-3.14.4-1, -2: after DISCONNECT the client sends nothing more and closes the connection", async () => {
  const server = scriptedServer();
  try {
    const { client, peer } = await connectScripted(server);
    const publishing = client.publish("t", "in flight", { qos: 1 });
    const publish = await peer.expect("publish");
    const closing = client.close();
    // close() lets the in-flight publish finish before DISCONNECT.
    await peer.write({ type: "puback", packetId: publish.packetId! });
    await peer.expect("disconnect");
    assert.equal(await peer.next("the end of the connection"), "eof");
    await within(closing, "close() to resolve");
    await publishing;
  } finally {
    server.close();
  }
});

const MALFORMED: { name: string; bytes: number[]; code: string }[] = [
  // PUBLISH QoS 0, topic "a" + 0xFF.
  {
    name: "MQTT-1.5.3-1: a topic name that is not UTF-8",
    bytes: [0x30, 0x04, 0x00, 0x02, 0x61, 0xff],
    code: "INVALID_UTF8",
  },
  {
    name: "MQTT-1.5.3-2: a topic name holding U+0000",
    bytes: [0x30, 0x04, 0x00, 0x02, 0x61, 0x00],
    code: "INVALID_UTF8",
  },
  {
    name: "MQTT-2.2.2-2: a PUBACK with reserved flags set",
    bytes: [0x41, 0x02, 0x00, 0x01],
    code: "INVALID_FLAGS",
  },
  {
    name: "MQTT-3.3.1-4: a PUBLISH with both QoS bits set",
    bytes: [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01],
    code: "INVALID_QOS",
  },
  {
    name: "MQTT-4.8.0-1: a second CONNACK",
    bytes: [0x20, 0x02, 0x00, 0x00],
    code: "UNEXPECTED_PACKET",
  },
];

Deno.test("MQTT-4.8.0-1: a malformed or unexpected packet from the server closes the connection", async (t) => {
  for (const c of MALFORMED) {
    await t.step(`${c.name}`, async () => {
      const server = scriptedServer();
      try {
        const { client, peer } = await connectScripted(server);
        const ended = closed(client);
        await peer.write(c.bytes);
        const error = await within(ended, "the client to close");
        assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
        assert.equal(error.code, c.code, error.message);
        // Closed without another packet (no DISCONNECT after a protocol violation).
        assert.equal(await peer.next("the end of the connection"), "eof");
        await client.close();
      } finally {
        server.close();
      }
    });
  }
});

Deno.test("MQTT-4.8.0-2: a packet the client cannot take (above maxPacketSize) closes the connection", async () => {
  const server = scriptedServer();
  try {
    const { client, peer } = await connectScripted(server, { maxPacketSize: 64 });
    const ended = closed(client);
    // A 100-byte payload: the header alone tells the client it is too large.
    await peer.write([0x30, 103, 0x00, 0x01, 0x61, ...new Array(100).fill(0x78)]);
    const error = await within(ended, "the client to close");
    assert.ok(error instanceof MqttError);
    assert.equal(error.code, "PACKET_TOO_LARGE", error.message);
    assert.equal(await peer.next("the end of the connection"), "eof");
    await client.close();
  } finally {
    server.close();
  }
});

// ---------------------------------------------------------------- client over WebSocket

Deno.test("MQTT-6.0.0-2: packets split across WebSocket frames and packed into one are decoded", async () => {
  const received: Packet[] = [];
  const disconnected = Promise.withResolvers<void>();
  let pending = new Uint8Array(0);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: "mqtt" });
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => {
      assert.ok(event.data instanceof ArrayBuffer, "MQTT-6.0.0-1: the client sends binary frames");
      const joined = new Uint8Array(pending.length + event.data.byteLength);
      joined.set(pending);
      joined.set(new Uint8Array(event.data), pending.length);
      pending = joined;
      while (true) {
        const total = packetLength(pending, 0, pending.length);
        if (total < 0 || total > pending.length) break;
        const packet = decodePacket(pending, 0, total);
        pending = pending.slice(total);
        received.push(packet);
        if (packet.type === "disconnect") disconnected.resolve();
        if (packet.type === "connect") {
          // CONNACK cut in two frames: 1 byte, then 3.
          const connack = encodePacket(CONNACK);
          socket.send(connack.subarray(0, 1));
          socket.send(connack.subarray(1));
        } else if (packet.type === "subscribe") {
          // SUBACK and two PUBLISHes in one frame, the second PUBLISH also cut into the next.
          const id = (packet as SubscribePacket).packetId;
          const suback = encodePacket({ type: "suback", packetId: id, returnCodes: [0] });
          const one = encodePacket({
            type: "publish",
            topic: "ws/t",
            payload: enc.encode("one"),
            qos: 0,
            retain: false,
            dup: false,
          });
          const two = encodePacket({
            type: "publish",
            topic: "ws/t",
            payload: enc.encode("two"),
            qos: 0,
            retain: false,
            dup: false,
          });
          const frame = new Uint8Array([...suback, ...one, ...two.subarray(0, 4)]);
          socket.send(frame);
          socket.send(two.subarray(4));
        }
      }
    };
    return response;
  });
  try {
    const client = await connect(`ws://127.0.0.1:${server.addr.port}/mqtt`, {
      reconnect: false,
      keepAlive: 0,
    });
    try {
      const sub = await client.subscribe("ws/#");
      const messages = await take(sub, 2, "the two messages");
      assert.deepEqual(messages.map((m) => [m.topic, m.text()]), [["ws/t", "one"], [
        "ws/t",
        "two",
      ]]);
    } finally {
      await client.close();
    }
    await within(disconnected.promise, "the DISCONNECT");
    assert.deepEqual(received.map((p) => p.type), ["connect", "subscribe", "disconnect"]);
  } finally {
    await server.shutdown();
  }
});

// ---------------------------------------------------------------- client with Mosquitto

brokerTest("MQTT-4.5.0-2: messages no subscription wants are still acknowledged", async () => {
  await using broker = await startMosquitto();
  const clientId = fresh("ack-all");
  const topic = fresh("unwanted");
  const first = await connect(broker.url, { clientId, clean: false, reconnect: false });
  await first.subscribe(`${topic}/#`, { qos: 2 });
  await first.close();

  const pub = await connect(broker.url, { clientId: fresh("pub"), reconnect: false });
  try {
    await pub.publish(`${topic}/1`, "one", { qos: 1 });
    await pub.publish(`${topic}/2`, "two", { qos: 2 });

    // The resumed session receives both at once; no local subscription ever asks for them.
    const second = await connect(broker.url, { clientId, clean: false, reconnect: false });
    assert.equal(second.sessionPresent, true);
    try {
      // A sentinel on another topic, sent after them: once it is here, so were they.
      const sentinel = await second.subscribe(`${topic}-sentinel`, { qos: 2 });
      await pub.publish(`${topic}-sentinel`, "sentinel", { qos: 2 });
      await take(sentinel, 1, "the sentinel");
    } finally {
      await second.close();
    }

    // Unacknowledged messages would be sent again (DUP) on resume; acknowledged ones are not.
    const third = await connect(broker.url, { clientId, clean: false, reconnect: false });
    try {
      const sub = await third.subscribe(`${topic}/#`, { qos: 2 });
      await pub.publish(`${topic}/3`, "three", { qos: 1 });
      const [next] = await take(sub, 1, "the next message");
      assert.equal(next.text(), "three", "an earlier message was delivered again");
      assert.equal(next.dup, false);
    } finally {
      await third.close();
    }
  } finally {
    await pub.close();
  }
  const cleanup = await connect(broker.url, { clientId, clean: true, reconnect: false });
  await cleanup.close();
});
