/**
 * The client at MQTT 5.0 against a scripted server: the DISCONNECT reason it
 * sends before closing over a packet it refuses (section 4.13), and a
 * SUBSCRIBE larger than the server's Maximum Packet Size refused before
 * anything is written (MQTT-3.2.2-15).
 *
 * @module
 */
import assert from "node:assert/strict";
import { type ConnackPacket, type ConnackProperties, connect, FileStore } from "../mod.ts";
import { scriptedServer } from "./scripted_peer.ts";
import { disconnected, hasCode, within } from "./client_helpers.ts";

function connack(properties?: ConnackProperties): ConnackPacket {
  const p = { type: "connack", sessionPresent: false, reasonCode: 0 } as ConnackPacket;
  if (properties !== undefined) p.properties = properties;
  return p;
}

for (
  const [what, bytes, reason, code] of [
    // PUBLISH with QoS 3 in its flags: it cannot be parsed (MQTT-3.3.1-4).
    ["a malformed PUBLISH", [0x36, 0x04, 0x00, 0x01, 0x74, 0x00], 0x81, "INVALID_QOS"],
    // 300-byte PUBLISH against our Maximum Packet Size of 256 (MQTT-3.1.2-25).
    ["a PUBLISH above our maxPacketSize", [0x30, 0xac, 0x02], 0x95, "PACKET_TOO_LARGE"],
  ] as const
) {
  Deno.test(
    `5.0 section 4.13: ${what} gets DISCONNECT 0x${reason.toString(16)} before the client closes`,
    async () => {
      using server = scriptedServer();
      const connecting = connect(server.url, {
        protocolVersion: 5,
        reconnect: false,
        keepAlive: 0,
        maxPacketSize: 256,
      });
      const peer = await server.accept();
      await peer.expect("connect");
      await peer.write(connack());
      const client = await within(connecting, "connect() to resolve");
      const lost = disconnected(client);
      await peer.write(bytes);
      const disconnect = await peer.expect("disconnect");
      assert.equal(disconnect.reasonCode, reason);
      hasCode(code)(await within(lost, "the disconnect event"));
      assert.equal(await peer.next(), "eof");
      await client.close();
    },
  );
}

Deno.test("5.0 MQTT-3.2.2-15: subscribe() above the server's Maximum Packet Size rejects with PACKET_TOO_LARGE, nothing written", async () => {
  using server = scriptedServer();
  const connecting = connect(server.url, { protocolVersion: 5, reconnect: false, keepAlive: 0 });
  const peer = await server.accept();
  await peer.expect("connect");
  await peer.write(connack({ maximumPacketSize: 40 }));
  await using client = await within(connecting, "connect() to resolve");
  await assert.rejects(client.subscribe(`x/${"y".repeat(60)}`), hasCode("PACKET_TOO_LARGE"));
  // The next packet the server reads is the small SUBSCRIBE: the large one never left.
  const subscribing = client.subscribe("a");
  const sub = await peer.expect("subscribe");
  assert.deepEqual(sub.subscriptions.map((s) => s.filter), ["a"]);
  await peer.write({ type: "suback", packetId: sub.packetId, reasonCodes: [0] });
  await within(subscribing, "the SUBACK");
  // close() waits for the server to hang up, which it does on reading the client's end.
  const closing = client.close();
  await peer.untilEof();
  await closing;
});

Deno.test("5.0 section 3.3.2.3.3: after a restart over a FileStore, a queued message whose interval passed while down is not sent; another goes with what is left", async () => {
  const dir = await Deno.makeTempDir({ prefix: "expiry-restart-" });
  const path = `${dir}/session.journal`;
  using server = scriptedServer();
  const options = {
    protocolVersion: 5 as const,
    clientId: "expiry-restart",
    clean: false,
    sessionExpiryInterval: 600,
    reconnect: false,
    keepAlive: 0,
    maxInflight: 1,
  };
  try {
    {
      const store = await FileStore.open(path);
      const connecting = connect(server.url, { ...options, store });
      const peer = await server.accept();
      await peer.expect("connect");
      await peer.write(connack());
      const client = await within(connecting, "connect() to resolve");
      const lost = disconnected(client);
      const results = [
        client.publish("first", "1", { qos: 1 }),
        client.publish("second", "2", { qos: 1, properties: { messageExpiryInterval: 1 } }),
        client.publish("third", "3", { qos: 1, properties: { messageExpiryInterval: 600 } }),
      ].map((p) => p.catch((e) => e));
      assert.equal((await peer.expect("publish")).topic, "first");
      // The process "dies": the connection drops with one publish in flight and two queued.
      peer.close();
      await within(lost, "the disconnect event");
      await client.close();
      await Promise.all(results);
      store.close();
    }
    // Down for longer than the second message's interval.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const store = await FileStore.open(path);
    try {
      const connecting = connect(server.url, { ...options, store });
      const peer = await server.accept();
      await peer.expect("connect");
      await peer.write({ type: "connack", sessionPresent: true, reasonCode: 0 });
      await using client = await within(connecting, "connect() to resolve");
      const first = await peer.expect("publish");
      assert.deepEqual([first.topic, first.dup], ["first", true]);
      await peer.write({ type: "puback", packetId: first.packetId!, reasonCode: 0 });
      const next = await peer.expect("publish");
      assert.equal(next.topic, "third", "the expired second message is not sent");
      const left = next.properties?.messageExpiryInterval ?? 0;
      assert.ok(left >= 590 && left <= 599, `remaining interval ${left}`);
      await peer.write({ type: "puback", packetId: next.packetId!, reasonCode: 0 });
      // close() waits for the server to hang up, which it does on reading the client's end.
      const closing = client.close();
      assert.equal((await peer.expect("disconnect")).type, "disconnect");
      await peer.untilEof();
      await closing;
    } finally {
      store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
