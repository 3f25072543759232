/**
 * The embedded broker's MQTT 5.0 enhanced authentication (section 4.12): a SCRAM-SHA-256
 * exchange through the async `enhancedAuthenticate` hook with our client at protocolVersion 5,
 * re-authentication, and refusals.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type MqttClient } from "../mod.ts";
import type { EnhancedAuthContext, EnhancedAuthResult } from "../broker.ts";
import { ScramClient } from "../examples/scram.ts";
import { ScramServer } from "./scram_server.ts";
import { RawClient, withBroker } from "./broker_helpers.ts";

const METHOD = "SCRAM-SHA-256";

/** The broker's side of SCRAM-SHA-256 for one user, kept in the exchange's `state`. */
async function scramHook(ctx: EnhancedAuthContext): Promise<EnhancedAuthResult> {
  if (ctx.method !== METHOD) return { result: "fail", reasonCode: 0x8c };
  if (ctx.step === 0) {
    const server = new ScramServer("alice", "secret", ctx.reauthenticate ? "again" : "srv");
    ctx.state.server = server;
    try {
      return { result: "continue", data: server.first(ctx.data) };
    } catch {
      return { result: "fail" };
    }
  }
  // An asynchronous step: the proof is checked with WebCrypto.
  const final = await (ctx.state.server as ScramServer).final(ctx.data);
  return final === undefined ? { result: "fail" } : { result: "success", data: final };
}

Deno.test("[MQTT-4.12.0-1, MQTT-4.12.0-2, MQTT-4.12.0-3, MQTT-4.12.0-4] enhanced authentication: a SCRAM-SHA-256 exchange through the async hook before CONNACK, then re-authentication (MQTT-4.12.1-1)", async () => {
  await withBroker(async (port) => {
    let scram = new ScramClient("alice", "secret");
    await using client: MqttClient = await connect(`mqtt://127.0.0.1:${port}`, {
      protocolVersion: 5,
      reconnect: false,
      authenticationMethod: METHOD,
      authenticationData: scram.first(),
      onAuth: (data) => scram.final(data),
    });
    const { properties } = client.connack;
    assert.equal(properties.authenticationMethod, METHOD);
    assert.ok(
      scram.verify(properties.authenticationData),
      "the broker proved it knows the password",
    );
    // Re-authentication on the same connection: AUTH 0x19, a challenge, AUTH 0x00.
    scram = new ScramClient("alice", "secret");
    const final = await client.reauthenticate(scram.first());
    assert.ok(scram.verify(final));
    assert.ok(client.connected);
    await client.publish("after/reauth", "x", { qos: 1 });
  }, { enhancedAuthenticate: scramHook });
});

Deno.test("[MQTT-4.12.0-4] enhanced authentication: a wrong password gets CONNACK 0x87 and the connection is closed; an unknown method without the hook gets 0x8C", async () => {
  await withBroker(async (port) => {
    const scram = new ScramClient("alice", "wrong");
    await assert.rejects(
      connect(`mqtt://127.0.0.1:${port}`, {
        protocolVersion: 5,
        reconnect: false,
        authenticationMethod: METHOD,
        authenticationData: scram.first(),
        onAuth: (data) => scram.final(data),
      }),
      (err: unknown) => (err as { reasonCode?: number }).reasonCode === 0x87,
    );
  }, { enhancedAuthenticate: scramHook });
  await withBroker(async (port) => {
    const { client, connack } = await RawClient.connect(port, {
      protocolLevel: 5,
      clientId: "m",
      properties: { authenticationMethod: METHOD },
    });
    assert.equal(connack.reasonCode, 0x8c);
    await client.expectClosed();
    client.close();
  }, {});
});

Deno.test("enhanced authentication: AUTH with another method than the CONNECT's is a protocol error (DISCONNECT 0x82)", async () => {
  await withBroker(async (port) => {
    const { client } = await RawClient.connect(port, { protocolLevel: 5, clientId: "p" });
    await client.send({
      type: "auth",
      reasonCode: 0x19,
      properties: { authenticationMethod: METHOD },
    });
    const disconnect = await client.expect("disconnect");
    assert.equal(disconnect.reasonCode, 0x82);
    await client.expectClosed();
    client.close();
  }, { enhancedAuthenticate: scramHook });
});

Deno.test("[MQTT-4.12.1-2] a failed re-authentication ends the connection with DISCONNECT 0x87; AUTH and CONNACK carry the CONNECT's method (MQTT-4.12.0-5)", async () => {
  const token = new TextEncoder().encode("good");
  await withBroker(async (port) => {
    const { client, connack } = await RawClient.connect(port, {
      protocolLevel: 5,
      clientId: "t",
      properties: { authenticationMethod: "TOKEN", authenticationData: token },
    });
    assert.deepEqual([connack.reasonCode, connack.properties?.authenticationMethod], [0, "TOKEN"]);
    await client.send({
      type: "auth",
      reasonCode: 0x19,
      properties: { authenticationMethod: "TOKEN", authenticationData: new Uint8Array([1]) },
    });
    assert.equal((await client.expect("disconnect")).reasonCode, 0x87);
    assert.ok("closed" in await client.read());
    client.close();
  }, {
    // One step: the token is right or it is not.
    enhancedAuthenticate: ({ data }) =>
      data !== undefined && new TextDecoder().decode(data) === "good"
        ? { result: "success" }
        : { result: "fail" },
  });
});
