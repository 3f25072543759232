/** The `onPacket` debug hook of `connect()`, against Mosquitto. */
import assert from "node:assert/strict";
import { connect, type Packet, type PacketDirection } from "../mod.ts";
import { brokerTest, startMosquitto } from "./broker/mosquitto.ts";

const USERS = { alice: "S3CRET" };

brokerTest("onPacket: every packet both ways, in order, the CONNECT password as ***", async () => {
  await using broker = await startMosquitto({ auth: "password", users: USERS });
  const seen: [PacketDirection, Packet][] = [];
  const client = await connect(broker.url, {
    username: "alice",
    password: USERS.alice,
    onPacket: (direction, packet) => seen.push([direction, packet]),
  });
  const sub = await client.subscribe("trace/a", { qos: 1 });
  await client.publish("trace/a", "x", { qos: 1 });
  for await (const _ of sub) break;
  await client.close();
  const types = seen.map(([direction, packet]) => `${direction} ${packet.type}`);
  assert.deepEqual(types.slice(0, 4), [
    "sent connect",
    "received connack",
    "sent subscribe",
    "received suback",
  ]);
  // The PUBLISH goes out and comes back; the acks in whatever order the broker sends them.
  for (
    const expected of [
      "sent publish",
      "received puback",
      "received publish",
      "sent puback",
      "sent unsubscribe",
      "received unsuback",
    ]
  ) {
    assert.ok(types.includes(expected), `${expected} in ${types.join(", ")}`);
  }
  assert.equal(types.at(-1), "sent disconnect");
  const connectPacket = seen[0][1];
  assert.equal(connectPacket.type, "connect");
  if (connectPacket.type === "connect") {
    assert.equal(connectPacket.username, "alice");
    assert.equal(new TextDecoder().decode(connectPacket.password), "***");
  }
});

brokerTest("onPacket: a hook that throws does not break the connection", async () => {
  await using broker = await startMosquitto();
  let calls = 0;
  await using client = await connect(broker.url, {
    onPacket: () => {
      calls++;
      throw new Error("broken logger");
    },
  });
  await client.publish("trace/b", "x", { qos: 1 });
  assert.ok(calls >= 4, `${calls} calls`);
});

Deno.test("onPacket: 5.0 authentication data of CONNECT and AUTH shows as ***", async () => {
  const { tracer } = await import("../lib/client/packet_trace.ts");
  const seen: Packet[] = [];
  const trace = tracer((_, packet) => seen.push(packet))!;
  const secret = new TextEncoder().encode("client-final-message");
  trace("sent", { type: "auth", reasonCode: 0x18, properties: { authenticationData: secret } });
  trace("sent", {
    type: "connect",
    protocolName: "MQTT",
    protocolLevel: 5,
    clientId: "a",
    clean: true,
    keepAlive: 60,
    properties: { authenticationMethod: "SCRAM-SHA-256", authenticationData: secret },
  });
  for (const packet of seen) {
    assert.ok(packet.type === "auth" || packet.type === "connect");
    assert.equal(new TextDecoder().decode(packet.properties?.authenticationData), "***");
  }
  // The packets themselves are left as they were.
  assert.equal(new TextDecoder().decode(secret), "client-final-message");
});
