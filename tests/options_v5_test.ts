/**
 * The MQTT 5.0 options of `connect()`: refused under 3.1.1 by name, checked
 * and turned into CONNECT properties at 5.0.
 */
import assert from "node:assert/strict";
import { type ConnectOptions, MqttError } from "../mod.ts";
import { resolveOptions, sessionOptions } from "../lib/client/options.ts";

const URL = "mqtt://localhost";

function invalid(options: ConnectOptions, name: RegExp): void {
  assert.throws(
    () => resolveOptions(URL, options),
    (e: unknown) => e instanceof MqttError && e.code === "INVALID_OPTION" && name.test(e.message),
  );
}

const V5_ONLY: [keyof ConnectOptions, unknown][] = [
  ["sessionExpiryInterval", 60],
  ["receiveMaximum", 10],
  ["topicAliasMaximum", 5],
  ["requestResponseInformation", true],
  ["requestProblemInformation", false],
  ["userProperties", [["a", "b"]]],
];

for (const [name, value] of V5_ONLY) {
  Deno.test(`3.1.1: the 5.0-only option ${name} is refused with INVALID_OPTION naming it`, () => {
    invalid({ [name]: value } as ConnectOptions, new RegExp(`^${name} is an MQTT 5\\.0 option`));
    invalid(
      { protocolVersion: 4, [name]: value } as ConnectOptions,
      new RegExp(`^${name} is an MQTT 5\\.0 option`),
    );
  });
}

Deno.test("3.1.1: will.properties is refused with INVALID_OPTION naming it", () => {
  invalid(
    { will: { topic: "w", payload: "x", properties: { willDelayInterval: 5 } } },
    /^will\.properties is an MQTT 5\.0 option/,
  );
});

Deno.test("protocolVersion must be 4, 5 or auto", () => {
  invalid({ protocolVersion: 3 as 4 }, /protocolVersion must be 4, 5 or "auto"/);
});

Deno.test("5.0: the options become CONNECT properties, in a session at protocol level 5", () => {
  const userProperties: [string, string][] = [["k", "1"], ["k", "2"], ["a", "x"]];
  const resolved = resolveOptions(URL, {
    protocolVersion: 5,
    sessionExpiryInterval: 3600,
    receiveMaximum: 100,
    maxPacketSize: 1 << 20,
    topicAliasMaximum: 16,
    requestResponseInformation: true,
    requestProblemInformation: false,
    userProperties,
    will: {
      topic: "w",
      payload: "bye",
      properties: { willDelayInterval: 5, contentType: "text/plain", userProperties },
    },
  });
  const session = sessionOptions(resolved);
  assert.equal(session.protocolVersion, 5);
  assert.deepEqual(session.properties, {
    sessionExpiryInterval: 3600,
    receiveMaximum: 100,
    maximumPacketSize: 1 << 20,
    topicAliasMaximum: 16,
    requestResponseInformation: true,
    requestProblemInformation: false,
    userProperties,
  });
  // Copied: a change by the caller afterwards does not change what is sent.
  userProperties.push(["late", "1"]);
  assert.equal(session.properties?.userProperties?.length, 3);
  assert.deepEqual(session.will?.properties, {
    contentType: "text/plain",
    userProperties: [["k", "1"], ["k", "2"], ["a", "x"]],
    willDelayInterval: 5,
  });
});

Deno.test("5.0: bad values are refused by name", () => {
  invalid({ protocolVersion: 5, receiveMaximum: 0 }, /^receiveMaximum must be/);
  invalid({ protocolVersion: 5, sessionExpiryInterval: -1 }, /^sessionExpiryInterval/);
  invalid({ protocolVersion: 5, topicAliasMaximum: 70000 }, /^topicAliasMaximum/);
  invalid({ protocolVersion: 5, userProperties: [["a"]] as never }, /^userProperties\[0\]/);
  invalid(
    { protocolVersion: 5, will: { topic: "w", payload: "", properties: { responseTopic: "a/#" } } },
    /^will\.properties\.responseTopic/,
  );
  invalid(
    {
      protocolVersion: 5,
      will: { topic: "w", payload: "", properties: { topicAlias: 1 } as never },
    },
    /^will\.properties\.topicAlias is not a property/,
  );
});

Deno.test("5.0: an empty clientId is allowed without clean (the server assigns one)", () => {
  assert.equal(
    resolveOptions(URL, { protocolVersion: 5, clientId: "", clean: false }).clientId,
    "",
  );
  invalid({ clientId: "", clean: false }, /MQTT-3\.1\.3-7/);
});

Deno.test("auto: sessions start at 5.0 with the 5.0 properties", () => {
  const s = sessionOptions(resolveOptions(URL, { protocolVersion: "auto", receiveMaximum: 7 }));
  assert.equal(s.protocolVersion, 5);
  assert.deepEqual(s.properties, { receiveMaximum: 7 });
});
