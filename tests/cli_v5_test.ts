/** `deno task pub/sub -V 5` and `-D command identifier value`, as mosquitto_pub/sub 2.0 take them. */
import assert from "node:assert/strict";
import { parseArgs, UsageError } from "../lib/cli/args.ts";
import { connect } from "../mod.ts";
import { brokerTest, startMosquitto } from "./broker/mosquitto.ts";
import { take } from "./client_helpers.ts";

Deno.test("cli: -V mqttv5 with -D connect and will properties become connect() options", async () => {
  const parsed = await parseArgs([
    "-V",
    "mqttv5",
    "-t",
    "a",
    "-D",
    "connect",
    "session-expiry-interval",
    "60",
    "-D",
    "connect",
    "maximum-packet-size",
    "1000",
    "-D",
    "connect",
    "user-property",
    "app",
    "cli",
    "--will-topic",
    "w",
    "-D",
    "will",
    "will-delay-interval",
    "5",
    "-D",
    "publish",
    "content-type",
    "text/plain",
  ], []);
  const o = parsed.options;
  assert.equal(o.protocolVersion, 5);
  assert.equal(o.sessionExpiryInterval, 60);
  assert.equal(o.maxPacketSize, 1000);
  assert.deepEqual(o.userProperties, [["app", "cli"]]);
  assert.deepEqual(o.will?.properties, { willDelayInterval: 5 });
  assert.deepEqual(parsed.properties.publish, { contentType: "text/plain" });
  assert.deepEqual(parsed.topics, ["a"]);
  assert.equal((await parseArgs(["-V", "311"], [])).options.protocolVersion, 4);
});

Deno.test("cli: -D without -V mqttv5, a will property without a will, and unsupported commands are usage errors", async () => {
  const bad: [string[], RegExp][] = [
    [["-D", "publish", "content-type", "x"], /need MQTT 5\.0: add -V mqttv5/],
    [["-V", "mqttv311", "-D", "publish", "content-type", "x"], /need MQTT 5\.0/],
    [["-V", "5", "-D", "will", "will-delay-interval", "5"], /--will-topic/],
    [["-V", "5", "-D", "subscribe", "user-property", "a", "b"], /not supported/],
    [["-V", "mqttv31"], /3\.1 is not supported/],
    [["-V", "5", "-D", "publish", "nope", "1"], /unknown property/],
  ];
  for (const [argv, message] of bad) {
    await assert.rejects(parseArgs(argv, []), (e: unknown) => {
      assert.ok(e instanceof UsageError, `${argv.join(" ")}: ${e}`);
      assert.match(e.message, message);
      return true;
    });
  }
});

brokerTest(
  "cli: deno task pub -V 5 -D publish ... sends the properties through Mosquitto",
  async () => {
    await using broker = await startMosquitto();
    await using client = await connect(broker.url, { protocolVersion: 5 });
    const sub = await client.subscribe("cli/v5", { qos: 1 });
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../lib/cli/pub.ts", import.meta.url).pathname,
        "-L",
        broker.url,
        "-V",
        "mqttv5",
        "-q",
        "1",
        "-t",
        "cli/v5",
        "-m",
        "hello",
        "-D",
        "publish",
        "user-property",
        "k",
        "v1",
        "-D",
        "publish",
        "user-property",
        "k",
        "v2",
        "-D",
        "publish",
        "content-type",
        "text/plain",
        "-D",
        "publish",
        "message-expiry-interval",
        "300",
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const [msg] = await take(sub, 1, "the CLI's publish");
    assert.equal(msg.text(), "hello");
    assert.deepEqual(msg.properties?.userProperties, [["k", "v1"], ["k", "v2"]]);
    assert.equal(msg.properties?.contentType, "text/plain");
    assert.ok(msg.properties!.messageExpiryInterval! <= 300);
  },
);
