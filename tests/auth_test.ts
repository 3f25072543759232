/** Enhanced authentication rules (MQTT 5.0 section 4.12), sans-IO, and over a scripted server. */
import assert from "node:assert/strict";
import type { AuthPacket, ConnackPacket } from "../lib/codec/packet.ts";
import { ProtocolError } from "../lib/errors.ts";
import { EnhancedAuth } from "../lib/session/auth.ts";
import { ClientSessionState, Session } from "../lib/session/session.ts";
import { msg, Recorder, sessionOptions } from "./session_helpers.ts";

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

// ---------------------------------------------------------------- in the session

Deno.test("MQTT-3.1.2-30: with an Authentication Method nothing but AUTH leaves before CONNACK; the challenge reaches the handler", () => {
  const challenges: [number | undefined, boolean][] = [];
  const h = new class extends Recorder {
    auth(packet: AuthPacket, finished: boolean): void {
      challenges.push([packet.reasonCode, finished]);
    }
  }();
  const session = new Session(
    sessionOptions({ protocolVersion: 5, properties: { authenticationMethod: METHOD } }),
    new ClientSessionState(),
    h,
  );
  session.connect(0);
  session.publish(msg("t", 1), 1, () => {});
  session.subscribe([{ filter: "f", qos: 0 }], 1, () => {});
  session.receive(auth(0x18), 2);
  assert.deepEqual(challenges, [[0x18, false]]);
  session.answerAuth(new Uint8Array([7]), 3);
  assert.deepEqual(h.take().map((p) => p.type), ["connect", "auth"]);
  session.receive(
    {
      type: "connack",
      sessionPresent: false,
      reasonCode: 0,
      properties: { authenticationMethod: METHOD },
    } as ConnackPacket,
    4,
  );
  assert.deepEqual(h.take().map((p) => p.type), ["subscribe", "publish"]);
  // Re-authentication after CONNACK: 0x19 out, 0x18 in (a challenge), 0x00 in (the end).
  session.reauthenticate(undefined, 5);
  assert.deepEqual(h.take().map((p) => [p.type, (p as AuthPacket).reasonCode]), [["auth", 0x19]]);
  session.receive(auth(0x18), 6);
  session.receive(auth(0x00), 7);
  assert.deepEqual(challenges.slice(1), [[0x18, false], [0x00, true]]);
  assert.equal(session.state, "connected");
});

Deno.test("MQTT-4.12.0-6: an AUTH to a session whose CONNECT had no method ends it with DISCONNECT 0x82", () => {
  const h = new Recorder();
  const session = new Session(
    sessionOptions({ protocolVersion: 5 }),
    new ClientSessionState(),
    h,
  );
  session.connect(0);
  h.take();
  session.receive(auth(0x18), 1);
  assert.deepEqual(h.take().map((p) => [p.type, (p as { reasonCode?: number }).reasonCode]), [
    ["disconnect", 0x82],
  ]);
  assert.ok(h.closes[0] instanceof ProtocolError);
  assert.equal(session.state, "disconnected");
});
