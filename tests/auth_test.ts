/** Enhanced authentication rules (MQTT 5.0 section 4.12), sans-IO, and over a scripted server. */
import assert from "node:assert/strict";
import type { AuthPacket, ConnackPacket } from "../lib/codec/packet.ts";
import { ProtocolError } from "../lib/errors.ts";
import { EnhancedAuth } from "../lib/session/auth.ts";

const METHOD = "SCRAM-SHA-256";

/** An AUTH from the server; `method` null leaves the Authentication Method out. */
function auth(reasonCode: 0x00 | 0x18 | 0x19, method: string | null = METHOD): AuthPacket {
  const p: AuthPacket = { type: "auth", reasonCode };
  if (method !== null) p.properties = { authenticationMethod: method };
  return p;
}

function rejects(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, String(e));
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("MQTT-4.12.0-3, MQTT-4.12.0-5: a challenge is answered with AUTH 0x18 carrying the method", () => {
  const rules = new EnhancedAuth(METHOD);
  assert.equal(rules.receive(auth(0x18), false), false);
  const data = new Uint8Array([1, 2]);
  assert.deepEqual(rules.answer(data), {
    type: "auth",
    reasonCode: 0x18,
    properties: { authenticationMethod: METHOD, authenticationData: data },
  });
});

Deno.test("MQTT-4.12.0-5: an AUTH or successful CONNACK with another (or no) method is a protocol error", () => {
  const rules = new EnhancedAuth(METHOD);
  rejects(() => rules.receive(auth(0x18, "PLAIN"), false), /MQTT-4\.12\.0-5/);
  rejects(() => rules.receive(auth(0x18, null), false), /MQTT-4\.12\.0-5/);
  const connack: ConnackPacket = {
    type: "connack",
    sessionPresent: false,
    reasonCode: 0,
  } as ConnackPacket;
  rejects(() => rules.checkConnack(connack), /MQTT-4\.12\.0-5/);
  rules.checkConnack({ ...connack, properties: { authenticationMethod: METHOD } });
});

Deno.test("MQTT-4.12.0-6: AUTH, or a method in CONNACK, when our CONNECT had no method is a protocol error", () => {
  const rules = new EnhancedAuth(undefined);
  rejects(() => rules.receive(auth(0x18), false), /MQTT-4\.12\.0-6/);
  const connack = { type: "connack", sessionPresent: false, reasonCode: 0 } as ConnackPacket;
  rules.checkConnack(connack);
  rejects(
    () => rules.checkConnack({ ...connack, properties: { authenticationMethod: METHOD } }),
    /MQTT-4\.12\.0-6/,
  );
});

Deno.test("MQTT-4.12.0-7: without an Authentication Method the client cannot start a re-authentication", () => {
  rejects(() => new EnhancedAuth(undefined).reauthenticate(undefined), /MQTT-4\.12\.0-7/);
});

Deno.test("MQTT-4.12.0-2: an AUTH before CONNACK must be 0x18", () => {
  const rules = new EnhancedAuth(METHOD);
  rejects(() => rules.receive(auth(0x00), false), /MQTT-4\.12\.0-2/);
  rejects(() => rules.receive(auth(0x19), false), /MQTT-4\.12\.0-2/);
});

Deno.test("MQTT-4.12.1-1: re-authentication starts with AUTH 0x19 and the method; 0x00 ends it", () => {
  const rules = new EnhancedAuth(METHOD);
  rejects(() => rules.receive(auth(0x18), true), /outside a re-authentication/);
  const data = new Uint8Array([9]);
  assert.deepEqual(rules.reauthenticate(data), {
    type: "auth",
    reasonCode: 0x19,
    properties: { authenticationMethod: METHOD, authenticationData: data },
  });
  assert.ok(rules.reauthenticating);
  rejects(() => rules.reauthenticate(data), /already under way/);
  assert.equal(rules.receive(auth(0x18), true), false, "a challenge inside it");
  rejects(() => rules.receive(auth(0x19), true), /outside/);
  assert.equal(rules.receive(auth(0x00), true), true, "its end");
  assert.ok(!rules.reauthenticating);
  rejects(() => rules.receive(auth(0x00), true), /outside a re-authentication/);
});
