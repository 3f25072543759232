/** `-D command identifier value` and `-V` of the CLI, as mosquitto_pub/sub 2.0 take them. */
import assert from "node:assert/strict";
import {
  type CommandProperties,
  PropertyFlagError,
  protocolVersionFlag,
  readPropertyFlag,
} from "../lib/cli/properties.ts";

function parse(...flags: string[][]): CommandProperties {
  const props: CommandProperties = {};
  for (const words of flags) assert.equal(readPropertyFlag(words, 0, props), words.length);
  return props;
}

Deno.test("cli -D: each property by its mosquitto identifier, typed, user properties in order with duplicates", () => {
  const props = parse(
    ["connect", "session-expiry-interval", "3600"],
    ["connect", "receive-maximum", "10"],
    ["connect", "topic-alias-maximum", "0"],
    ["connect", "request-response-information", "1"],
    ["connect", "user-property", "app", "demo"],
    ["publish", "message-expiry-interval", "60"],
    ["publish", "content-type", "text/plain"],
    ["publish", "correlation-data", "abc"],
    ["publish", "payload-format-indicator", "1"],
    ["publish", "user-property", "k", "1"],
    ["publish", "user-property", "k", "2"],
    ["subscribe", "subscription-identifier", "7"],
    ["will", "will-delay-interval", "5"],
  );
  assert.deepEqual(props.connect, {
    sessionExpiryInterval: 3600,
    receiveMaximum: 10,
    topicAliasMaximum: 0,
    requestResponseInformation: true,
    userProperties: [["app", "demo"]],
  });
  assert.deepEqual(props.publish, {
    messageExpiryInterval: 60,
    contentType: "text/plain",
    correlationData: new TextEncoder().encode("abc"),
    payloadFormatIndicator: 1,
    userProperties: [["k", "1"], ["k", "2"]],
  });
  assert.deepEqual(props.subscribe, { subscriptionIdentifier: 7 });
  assert.deepEqual(props.will, { willDelayInterval: 5 });
});

Deno.test("cli -D: unknown commands and identifiers, a property on the wrong packet, bad numbers and repeats are usage errors", () => {
  const bad: [string[], RegExp][] = [
    [["publish"], /needs a command/],
    [["pubrel", "content-type", "x"], /unknown command/],
    [["publish", "colour", "x"], /unknown property/],
    [["subscribe", "content-type", "x"], /not allowed on subscribe/],
    [["connect", "receive-maximum", "0"], /from 1 to 65535/],
    [["publish", "message-expiry-interval", "-1"], /from 0 to 4294967295/],
    [["publish", "payload-format-indicator", "2"], /from 0 to 1/],
    [["subscribe", "subscription-identifier", "268435456"], /from 1 to 268435455/],
    [["publish", "user-property", "k"], /name and a value/],
    [["publish", "content-type"], /needs a value/],
  ];
  for (const [words, message] of bad) {
    assert.throws(() => readPropertyFlag(words, 0, {}), (e: unknown) => {
      assert.ok(e instanceof PropertyFlagError, String(e));
      assert.match(e.message, message);
      return true;
    });
  }
  const props: CommandProperties = {};
  readPropertyFlag(["publish", "content-type", "a"], 0, props);
  assert.throws(() => readPropertyFlag(["publish", "content-type", "b"], 0, props), /twice/);
});

Deno.test("cli -V: mqttv5 / 5 and mqttv311 / 311, nothing else", () => {
  assert.equal(protocolVersionFlag("5"), 5);
  assert.equal(protocolVersionFlag("mqttv5"), 5);
  assert.equal(protocolVersionFlag("MQTTv5"), 5);
  assert.equal(protocolVersionFlag("311"), 4);
  assert.equal(protocolVersionFlag("mqttv311"), 4);
  assert.throws(() => protocolVersionFlag("mqttv31"), /3\.1 is not supported/);
  assert.throws(() => protocolVersionFlag("4"), PropertyFlagError);
});
