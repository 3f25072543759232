/**
 * The client at MQTT 5.0 against a scripted server, for what no broker here does: enhanced
 * authentication with a SCRAM-SHA-256 exchange (section 4.12; Mosquitto 2.0.11 implements no
 * authentication method) and incoming topic aliases (Mosquitto never sends aliases to clients).
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, ConnectionRefusedError, type MqttClient, ProtocolError } from "../mod.ts";
import type { ConnackPacket, Packet } from "../lib/codec/packet.ts";
import type { ConnackProperties } from "../lib/codec/properties.ts";
import { ScramClient } from "../examples/scram.ts";
import { ScramServer } from "./scram_server.ts";
import { type ScriptedPeer, scriptedServer } from "./scripted_peer.ts";
import { disconnected, hasCode, take, within } from "./client_helpers.ts";

const METHOD = "SCRAM-SHA-256";

function connack(properties?: ConnackProperties, reasonCode = 0): ConnackPacket {
  const p = { type: "connack", sessionPresent: false, reasonCode } as ConnackPacket;
  if (properties !== undefined) p.properties = properties;
  return p;
}

function auth(reasonCode: 0x00 | 0x18, data: Uint8Array | undefined, method = METHOD): Packet {
  const properties: { authenticationMethod: string; authenticationData?: Uint8Array } = {
    authenticationMethod: method,
  };
  if (data !== undefined) properties.authenticationData = data;
  return { type: "auth", reasonCode, properties };
}

/**
 * The server's side of one SCRAM exchange begun by `first` (CONNECT's or AUTH 0x19's data):
 * challenge, check the client's AUTH 0x18, return the server-final-message (undefined: refused).
 */
async function scramExchange(
  peer: ScriptedPeer,
  first: Uint8Array | undefined,
  scram: ScramServer,
): Promise<Uint8Array | undefined> {
  await peer.write(auth(0x18, scram.first(first)));
  const answer = await peer.expect("auth");
  // MQTT-4.12.0-3, MQTT-4.12.0-5: the answer is 0x18 with the same method.
  assert.equal(answer.reasonCode, 0x18);
  assert.equal(answer.properties?.authenticationMethod, METHOD);
  return await scram.final(answer.properties?.authenticationData);
}

Deno.test("MQTT-4.12.0-3, MQTT-4.12.0-5: a SCRAM-SHA-256 exchange with onAuth before CONNACK, then re-authentication (MQTT-4.12.1-1)", async () => {
  using server = scriptedServer();
  let scram = new ScramClient("alice", "secret");
  const connecting = connect(server.url, {
    protocolVersion: 5,
    reconnect: false,
    keepAlive: 0,
    authenticationMethod: METHOD,
    authenticationData: scram.first(),
    onAuth: (data) => scram.final(data),
  });
  const peer = await server.accept();
  const connectPacket = await peer.expect("connect");
  assert.equal(connectPacket.properties?.authenticationMethod, METHOD);
  const serverFinal = await scramExchange(
    peer,
    connectPacket.properties?.authenticationData,
    new ScramServer("alice", "secret"),
  );
  assert.ok(serverFinal !== undefined, "the server accepted the client's proof");
  await peer.write(
    connack({ authenticationMethod: METHOD, authenticationData: serverFinal }),
  );
  await using client: MqttClient = await within(connecting, "connect() to resolve");
  assert.ok(scram.verify(client.connack.properties.authenticationData), "the server is genuine");

  // Re-authentication: AUTH 0x19 with the method and a new first message.
  scram = new ScramClient("alice", "secret");
  const again = client.reauthenticate(scram.first());
  const start = await peer.expect("auth");
  assert.equal(start.reasonCode, 0x19);
  assert.equal(start.properties?.authenticationMethod, METHOD);
  const final = await scramExchange(
    peer,
    start.properties?.authenticationData,
    new ScramServer("alice", "secret", "second"),
  );
  assert.ok(final !== undefined);
  await peer.write(auth(0x00, final));
  const verified = await within(again, "the re-authentication");
  assert.ok(scram.verify(verified));
  assert.ok(client.connected);

  // The connection works as before.
  const subscribing = client.subscribe("a", { qos: 0 });
  const sub = await peer.expect("subscribe");
  await peer.write({ type: "suback", packetId: sub.packetId, returnCodes: [0], reasonCodes: [0] });
  await within(subscribing, "the SUBACK");
  const closing = client.close();
  await peer.expect("disconnect");
  peer.close();
  await closing;
});

Deno.test("section 4.12: a wrong password ends in the server's CONNACK refusal", async () => {
  using server = scriptedServer();
  const scram = new ScramClient("alice", "wrong");
  const connecting = connect(server.url, {
    protocolVersion: 5,
    reconnect: false,
    authenticationMethod: METHOD,
    authenticationData: scram.first(),
    onAuth: (data) => scram.final(data),
  });
  connecting.catch(() => {});
  const peer = await server.accept();
  const connectPacket = await peer.expect("connect");
  const final = await scramExchange(
    peer,
    connectPacket.properties?.authenticationData,
    new ScramServer("alice", "secret"),
  );
  assert.equal(final, undefined, "the proof of a wrong password fails");
  await peer.write(connack(undefined, 0x87));
  peer.close();
  await assert.rejects(connecting, (e: unknown) => {
    assert.ok(e instanceof ConnectionRefusedError);
    assert.equal(e.reasonCode, 0x87);
    return true;
  });
});

Deno.test("MQTT-4.12.1-2: onAuth failing sends DISCONNECT and fails the connect with AUTH_FAILED", async () => {
  using server = scriptedServer();
  const connecting = connect(server.url, {
    protocolVersion: 5,
    reconnect: false,
    authenticationMethod: METHOD,
    onAuth: () => Promise.reject(new Error("no credentials")),
  });
  connecting.catch(() => {});
  const peer = await server.accept();
  await peer.expect("connect");
  await peer.write(auth(0x18, new Uint8Array([1])));
  const last = await peer.expect("disconnect");
  assert.equal(last.reasonCode, 0x80);
  assert.equal(await peer.next(), "eof");
  await assert.rejects(connecting, hasCode("AUTH_FAILED", /no credentials/));
});

Deno.test("MQTT-4.12.0-5: an AUTH with another method is a protocol error (DISCONNECT 0x82)", async () => {
  using server = scriptedServer();
  const connecting = connect(server.url, {
    protocolVersion: 5,
    reconnect: false,
    authenticationMethod: METHOD,
    onAuth: () => new Uint8Array(),
  });
  connecting.catch(() => {});
  const peer = await server.accept();
  await peer.expect("connect");
  await peer.write(auth(0x18, undefined, "PLAIN"));
  const last = await peer.expect("disconnect");
  assert.equal(last.reasonCode, 0x82);
  await assert.rejects(connecting, (e: unknown) => e instanceof ProtocolError);
});

Deno.test("MQTT-4.12.0-7: without authenticationMethod there is no AUTH: reauthenticate() refuses, onAuth alone is INVALID_OPTION", async () => {
  await assert.rejects(
    connect("mqtt://127.0.0.1:1", { protocolVersion: 5, onAuth: () => undefined }),
    hasCode("INVALID_OPTION", /authenticationMethod/),
  );
  await assert.rejects(
    connect("mqtt://127.0.0.1:1", { authenticationMethod: METHOD }),
    hasCode("INVALID_OPTION", /MQTT 5\.0/),
  );
  using server = scriptedServer();
  const connecting = connect(server.url, { protocolVersion: 5, reconnect: false, keepAlive: 0 });
  const peer = await server.accept();
  await peer.expect("connect");
  await peer.write(connack());
  await using client = await within(connecting, "connect() to resolve");
  await assert.rejects(client.reauthenticate(new Uint8Array()), hasCode("INVALID_STATE"));
  const closing = client.close();
  await peer.expect("disconnect");
  peer.close();
  await closing;
});

Deno.test("MQTT-3.3.2-10: incoming topic aliases are resolved; one above our topicAliasMaximum ends the connection with 0x94", async () => {
  using server = scriptedServer();
  const connecting = connect(server.url, {
    protocolVersion: 5,
    reconnect: false,
    keepAlive: 0,
    topicAliasMaximum: 5,
  });
  const peer = await server.accept();
  const connectPacket = await peer.expect("connect");
  assert.equal(connectPacket.properties?.topicAliasMaximum, 5);
  await peer.write(connack());
  await using client = await within(connecting, "connect() to resolve");
  const subscribing = client.subscribe("sensors/#", { qos: 1 });
  const subscribe = await peer.expect("subscribe");
  await peer.write({
    type: "suback",
    packetId: subscribe.packetId,
    returnCodes: [1],
    reasonCodes: [1],
  });
  const sub = await within(subscribing, "the SUBACK");
  const enc = new TextEncoder();
  const publish = (topic: string, alias: number, text: string, packetId?: number): Packet => ({
    type: "publish",
    topic,
    payload: enc.encode(text),
    qos: packetId === undefined ? 0 : 1,
    retain: false,
    dup: false,
    packetId,
    properties: { topicAlias: alias },
  });
  await peer.write(publish("sensors/kitchen/temperature", 5, "21.5"));
  await peer.write(publish("", 5, "21.6", 7));
  await peer.write(publish("sensors/attic", 5, "30"));
  await peer.write(publish("", 5, "31"));
  const got = await take(sub, 4, "the aliased messages");
  assert.deepEqual(got.map((m) => [m.topic, m.text()]), [
    ["sensors/kitchen/temperature", "21.5"],
    ["sensors/kitchen/temperature", "21.6"],
    ["sensors/attic", "30"],
    ["sensors/attic", "31"],
  ]);
  assert.deepEqual(await peer.expect("puback"), { type: "puback", packetId: 7, reasonCode: 0 });
  const ended = disconnected(client);
  await peer.write(publish("sensors/x", 6, "too far"));
  const last = await peer.expect("disconnect");
  assert.equal(last.reasonCode, 0x94);
  assert.equal((await within(ended, "the disconnect event"))?.code, "TOPIC_ALIAS_INVALID");
});

Deno.test("examples/scram_auth.ts authenticates, verifies the server and re-authenticates against a scripted SCRAM server", async () => {
  using server = scriptedServer();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../examples/scram_auth.ts", import.meta.url).pathname,
      server.url,
      "alice",
      "secret",
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).spawn();
  const peer = await server.accept();
  const connectPacket = await peer.expect("connect");
  const serverFinal = await scramExchange(
    peer,
    connectPacket.properties?.authenticationData,
    new ScramServer("alice", "secret"),
  );
  await peer.write(connack({ authenticationMethod: METHOD, authenticationData: serverFinal }));
  const start = await peer.expect("auth");
  assert.equal(start.reasonCode, 0x19);
  const final = await scramExchange(
    peer,
    start.properties?.authenticationData,
    new ScramServer("alice", "secret", "again"),
  );
  await peer.write(auth(0x00, final));
  await peer.expect("disconnect");
  peer.close();
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(stdout, /authenticated as alice with SCRAM-SHA-256; the server proved itself/);
  assert.match(stdout, /re-authenticated: server verified true/);
});

Deno.test("section 4.10.1: request() builds its Response Topic on the CONNACK's Response Information", async () => {
  using server = scriptedServer();
  const connecting = connect(server.url, {
    protocolVersion: 5,
    reconnect: false,
    keepAlive: 0,
    requestResponseInformation: true,
  });
  const peer = await server.accept();
  const connectPacket = await peer.expect("connect");
  assert.equal(connectPacket.properties?.requestResponseInformation, true);
  await peer.write(connack({ responseInformation: "replies/c1" }));
  await using client = await within(connecting, "connect() to resolve");
  const asking = client.request("svc/time", "now?", { timeout: 5000 });
  const subscribe = await peer.expect("subscribe");
  const responseTopic = subscribe.subscriptions[0].filter;
  assert.match(responseTopic, /^replies\/c1\/[0-9a-f]{16}$/);
  await peer.write({
    type: "suback",
    packetId: subscribe.packetId,
    returnCodes: [1],
    reasonCodes: [1],
  });
  const request = await peer.expect("publish");
  assert.equal(request.topic, "svc/time");
  assert.equal(request.properties?.responseTopic, responseTopic);
  await peer.write({ type: "puback", packetId: request.packetId!, reasonCode: 0 });
  // The reply, as a responder would send it through the server.
  await peer.write({
    type: "publish",
    topic: responseTopic,
    payload: new TextEncoder().encode("12:00"),
    qos: 0,
    retain: false,
    dup: false,
    properties: { correlationData: request.properties?.correlationData },
  });
  const reply = await within(asking, "the reply");
  assert.equal(reply.text(), "12:00");
  const closing = client.close();
  await peer.expect("disconnect");
  peer.close();
  await closing;
});
