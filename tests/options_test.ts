import assert from "node:assert/strict";
import { MqttError } from "../lib/errors.ts";
import {
  type ConnectOptions,
  DEFAULTS,
  generateClientId,
  resolveOptions,
  sessionOptions,
} from "../lib/client/options.ts";
import { parseBrokerUrl, redactUrl } from "../lib/client/url.ts";
import type { Transport } from "../lib/transports/transport.ts";

const encoder = new TextEncoder();

function invalidOption(pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof MqttError, `expected MqttError, got ${e}`);
    assert.equal(e.code, "INVALID_OPTION");
    assert.match(e.message, pattern);
    return true;
  };
}

Deno.test("resolveOptions applies every documented default", () => {
  const r = resolveOptions("mqtt://localhost");
  assert.match(r.clientId, /^deno-mqtt-[0-9A-Za-z]{12}$/);
  assert.equal(r.clean, true);
  assert.equal(r.keepAlive, 60);
  assert.equal(r.connectTimeout, 10_000);
  assert.equal(r.pingTimeout, 10_000);
  assert.equal(r.maxInflight, 20);
  assert.equal(r.maxPacketSize, 268_435_460);
  assert.equal(r.bufferSize, 1000);
  assert.equal(r.closeTimeout, 5_000);
  assert.equal(r.holdTimeout, 1000);
  assert.equal(r.username, undefined);
  assert.equal(r.password, undefined);
  assert.equal(r.will, undefined);
  assert.equal(r.tls, undefined);
  assert.equal(r.signal, undefined);
  assert.equal(r.transport, undefined);
  assert.equal(DEFAULTS.keepAlive, 60);
});

Deno.test("generated client ids differ and fit in 23 characters (MQTT-3.1.3-5)", () => {
  const ids = new Set(Array.from({ length: 100 }, generateClientId));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.ok(id.length <= 23);
  assert.notEqual(resolveOptions("mqtt://h").clientId, resolveOptions("mqtt://h").clientId);
});

Deno.test("parseBrokerUrl applies default ports and the default WebSocket path", () => {
  const cases: [string, string, string, number, string][] = [
    ["mqtt://broker", "mqtt", "broker", 1883, ""],
    ["mqtts://broker", "mqtts", "broker", 8883, ""],
    ["ws://broker", "ws", "broker", 80, "/mqtt"],
    ["wss://broker", "wss", "broker", 443, "/mqtt"],
    ["ws://broker/", "ws", "broker", 80, "/mqtt"],
    ["mqtt://broker:1884/", "mqtt", "broker", 1884, ""],
    ["wss://broker:8443/ws?token=x", "wss", "broker", 8443, "/ws?token=x"],
    ["mqtt://[::1]:1999", "mqtt", "::1", 1999, ""],
    ["MQTT://Broker", "mqtt", "broker", 1883, ""],
  ];
  for (const [input, protocol, hostname, port, path] of cases) {
    const url = parseBrokerUrl(input);
    assert.deepEqual(
      { protocol: url.protocol, hostname: url.hostname, port: url.port, path: url.path },
      { protocol, hostname, port, path },
      input,
    );
  }
  assert.equal(parseBrokerUrl("ws://u:p@broker").href.href, "ws://broker/mqtt");
  assert.equal(parseBrokerUrl("wss://broker:8443/x?y=1").href.href, "wss://broker:8443/x?y=1");
  assert.equal(parseBrokerUrl(new URL("mqtts://broker")).href.href, "mqtts://broker:8883");
});

Deno.test("parseBrokerUrl rejects bad URLs with INVALID_OPTION", () => {
  assert.throws(() => parseBrokerUrl("localhost:1883"), invalidOption(/unsupported URL scheme/));
  assert.throws(() => parseBrokerUrl("not a url"), invalidOption(/invalid broker URL/));
  assert.throws(() => parseBrokerUrl("http://broker"), invalidOption(/"http:".*mqtt:, mqtts:/));
  assert.throws(() => parseBrokerUrl("tcp://broker"), invalidOption(/unsupported URL scheme/));
  assert.throws(() => parseBrokerUrl("mqtt://broker:65536"), invalidOption(/invalid broker URL/));
  assert.throws(() => parseBrokerUrl("mqtt://broker:0"), invalidOption(/port 0/));
  assert.throws(() => parseBrokerUrl("mqtt://"), invalidOption(/no host/));
  assert.throws(() => parseBrokerUrl("mqtt://broker/topic"), invalidOption(/has a path/));
  assert.throws(() => parseBrokerUrl("mqtts://broker?x=1"), invalidOption(/has a path/));
});

Deno.test("redactUrl hides the password of URLs and of text that does not parse", () => {
  const cases: [string, string][] = [
    ["mqtt://alice:S3CRET@broker:1883", "mqtt://alice:***@broker:1883"],
    ["wss://alice:S3CRET@broker/mqtt?x=1", "wss://alice:***@broker/mqtt?x=1"],
    ["mqtt://alice:S3CRET@broker:99999", "mqtt://alice:***@broker:99999"],
    ["mqtt://alice:S3C@RET@broker", "mqtt://alice:***@broker"],
    // An unescaped "/" splits the password off into the path; the text is redacted up to the "@".
    ["mqtt://alice:12/S3CRET@broker", "mqtt://alice:***@broker"],
    // Without "//" the user name parses as the scheme and the password as the path.
    ["alice:S3CRET@broker:1883", "alice:***@broker:1883"],
    ["mqtt://alice@broker", "mqtt://alice@broker"],
    ["ws://broker/p@th", "ws://broker/p@th"],
    ["localhost:1883", "localhost:1883"],
  ];
  for (const [input, shown] of cases) assert.equal(redactUrl(input), shown, input);
  assert.equal(redactUrl(new URL("mqtt://alice:S3CRET@broker")), "mqtt://alice:***@broker");
});

Deno.test("parseBrokerUrl and resolveOptions errors show the URL without its password", () => {
  const cases: [string, RegExp][] = [
    ["mqtt://alice:S3CRET@broker:99999", /invalid broker URL "mqtt:\/\/alice:\*\*\*@broker:99999"/],
    ["mqtt://alice:S3CRET@", /invalid broker URL "mqtt:\/\/alice:\*\*\*@"/],
    ["http://alice:S3CRET@broker", /unsupported URL scheme "http:" in "http:\/\/alice:\*\*\*@/],
    ["alice:S3CRET@broker:1883", /unsupported URL scheme "alice:" in "alice:\*\*\*@broker:1883"/],
    ["mqtt://alice:S3CRET@broker:0", /"mqtt:\/\/alice:\*\*\*@broker:0" has port 0/],
    ["mqtt://alice:S3CRET@broker/t", /"mqtt:\/\/alice:\*\*\*@broker\/t" has a path/],
  ];
  for (const [url, pattern] of cases) {
    for (const parse of [() => parseBrokerUrl(url), () => resolveOptions(url)]) {
      assert.throws(parse, (e: unknown) => {
        invalidOption(pattern)(e);
        const err = e as MqttError;
        assert.doesNotMatch(`${err.message} ${String(err.cause)}`, /S3CRET/, url);
        return true;
      });
    }
  }
});

Deno.test("a malformed % escape in URL credentials is INVALID_OPTION naming the field", () => {
  const cases: [string, RegExp][] = [
    ["mqtt://us%er:p%zz@host", /the user name in broker URL "mqtt:\/\/us%er:\*\*\*@host"/],
    ["mqtt://user:S3%zzCRET@host", /the password in broker URL "mqtt:\/\/user:\*\*\*@host"/],
    // Escapes that are well-formed but not UTF-8 are as malformed to decodeURIComponent.
    ["mqtt://user:S3%FFCRET@host", /the password .*malformed % escape: write "%" as %25/],
  ];
  for (const [url, pattern] of cases) {
    assert.throws(() => resolveOptions(url), (e: unknown) => {
      invalidOption(pattern)(e);
      assert.doesNotMatch(String((e as MqttError).message), /S3|zz/, url);
      assert.equal((e as MqttError).cause, undefined);
      return true;
    });
  }
  // Credentials given as options are not decoded, so a bad escape in the URL is never read.
  assert.equal(resolveOptions("mqtt://us%er@host", { username: "u" }).username, "u");
});

Deno.test("resolveOptions keeps given values and converts strings to bytes", () => {
  const controller = new AbortController();
  const transport = (_url: URL): Promise<Transport> => Promise.reject(new Error("unused"));
  const options: ConnectOptions = {
    clientId: "sensor-1",
    clean: false,
    keepAlive: 0,
    username: "u",
    password: "pässword",
    will: { topic: "status/sensor-1", payload: "offline", qos: 1, retain: true },
    tls: { caCerts: ["CA"], cert: "CERT", key: "KEY", serverName: "broker.example" },
    connectTimeout: 1,
    pingTimeout: 2,
    maxInflight: 65535,
    maxPacketSize: 2,
    bufferSize: 1,
    closeTimeout: 0,
    holdTimeout: Infinity,
    signal: controller.signal,
    transport,
  };
  const r = resolveOptions(new URL("mqtts://broker:8884"), options);
  assert.equal(r.url.port, 8884);
  assert.equal(r.clientId, "sensor-1");
  assert.equal(r.clean, false);
  assert.equal(r.keepAlive, 0);
  assert.equal(r.username, "u");
  assert.deepEqual(r.password, encoder.encode("pässword"));
  assert.deepEqual(r.will, {
    topic: "status/sensor-1",
    payload: encoder.encode("offline"),
    qos: 1,
    retain: true,
  });
  assert.deepEqual(r.tls, {
    caCerts: ["CA"],
    cert: "CERT",
    key: "KEY",
    serverName: "broker.example",
  });
  assert.equal(r.connectTimeout, 1);
  assert.equal(r.pingTimeout, 2);
  assert.equal(r.maxInflight, 65535);
  assert.equal(r.maxPacketSize, 2);
  assert.equal(r.bufferSize, 1);
  assert.equal(r.closeTimeout, 0);
  assert.equal(r.holdTimeout, Infinity);
  assert.equal(r.signal, controller.signal);
  assert.equal(r.transport, transport);
});

Deno.test("resolveOptions passes byte payloads through and defaults will qos/retain", () => {
  const bytes = new Uint8Array([0, 255]);
  const r = resolveOptions("mqtt://h", {
    username: "u",
    password: bytes,
    will: { topic: "w", payload: bytes },
  });
  assert.equal(r.password, bytes);
  assert.deepEqual(r.will, { topic: "w", payload: bytes, qos: 0, retain: false });
});

Deno.test("resolveOptions takes credentials from the URL unless given as options", () => {
  const fromUrl = resolveOptions("mqtt://us%40er:p%3Ass@h");
  assert.equal(fromUrl.username, "us@er");
  assert.deepEqual(fromUrl.password, encoder.encode("p:ss"));
  const fromOptions = resolveOptions("mqtt://a:b@h", { username: "c" });
  assert.equal(fromOptions.username, "c");
  assert.equal(fromOptions.password, undefined);
  assert.equal(resolveOptions("mqtt://a@h").username, "a");
});

Deno.test("MQTT-3.1.3-7: an empty clientId needs clean: true", () => {
  assert.equal(resolveOptions("mqtt://h", { clientId: "" }).clientId, "");
  assert.equal(resolveOptions("mqtt://h", { clientId: "", clean: true }).clientId, "");
  assert.throws(
    () => resolveOptions("mqtt://h", { clientId: "", clean: false }),
    invalidOption(/MQTT-3\.1\.3-7/),
  );
});

Deno.test("MQTT-3.1.2-22: a password needs a username", () => {
  assert.throws(
    () => resolveOptions("mqtt://h", { password: "p" }),
    invalidOption(/password needs a username.*MQTT-3\.1\.2-22/),
  );
  assert.throws(() => resolveOptions("mqtt://:p@h"), invalidOption(/MQTT-3\.1\.2-22/));
});

Deno.test("MQTT-3.1.2-14: will qos must be 0, 1 or 2", () => {
  for (const qos of [3, -1, 1.5, "1"]) {
    assert.throws(
      () =>
        resolveOptions("mqtt://h", {
          will: { topic: "t", payload: "", qos: qos as 0 },
        }),
      invalidOption(/will\.qos must be 0, 1 or 2/),
    );
  }
});

Deno.test("resolveOptions rejects each invalid option with a message naming it", () => {
  const bad = (options: unknown, pattern: RegExp, url = "mqtt://h") =>
    assert.throws(() => resolveOptions(url, options as ConnectOptions), invalidOption(pattern));
  bad(null, /options must be an object/);
  bad({ clientId: 5 }, /clientId must be a string/);
  bad({ clean: "yes" }, /clean must be a boolean/);
  bad({ keepAlive: -1 }, /keepAlive.*0 to 65535, got -1/);
  bad({ keepAlive: 65536 }, /keepAlive.*got 65536/);
  bad({ keepAlive: 1.5 }, /keepAlive.*got 1\.5/);
  bad({ keepAlive: "60" }, /keepAlive/);
  bad({ username: 1 }, /username must be a string/);
  bad({ username: "u", password: 1 }, /password must be a string or a Uint8Array/);
  bad({ will: "x" }, /will must be an object/);
  bad({ will: { payload: "" } }, /will\.topic must be a string/);
  bad({ will: { topic: "", payload: "" } }, /will\.topic: .*MQTT-4\.7\.3-1/);
  bad({ will: { topic: "status/+", payload: "" } }, /will\.topic: /);
  bad({ will: { topic: "t" } }, /will\.payload must be a string or a Uint8Array/);
  bad({ will: { topic: "t", payload: "", retain: 1 } }, /will\.retain must be a boolean/);
  bad({ tls: {} }, /tls options were given for a mqtt: URL; use mqtts: or wss:/);
  bad({ tls: {} }, /tls options were given for a ws: URL/, "ws://h");
  bad({ tls: null }, /tls must be an object/, "mqtts://h");
  bad({ tls: { caCerts: "CA" } }, /tls\.caCerts must be an array of PEM strings/, "mqtts://h");
  bad({ tls: { caCerts: [1] } }, /tls\.caCerts/, "mqtts://h");
  bad({ tls: { cert: "C" } }, /tls\.cert and tls\.key must be given together/, "mqtts://h");
  bad({ tls: { key: "K" } }, /tls\.cert and tls\.key/, "mqtts://h");
  bad({ tls: { cert: 1, key: "K" } }, /tls\.cert must be a string/, "mqtts://h");
  bad({ tls: { serverName: "" } }, /tls\.serverName must not be empty/, "mqtts://h");
  bad({ connectTimeout: 0 }, /connectTimeout must be a number of milliseconds from 1/);
  bad({ connectTimeout: Infinity }, /connectTimeout/);
  bad({ connectTimeout: 2 ** 31 }, /connectTimeout/);
  bad({ pingTimeout: -5 }, /pingTimeout/);
  bad({ closeTimeout: -1 }, /closeTimeout.*from 0/);
  bad({ closeTimeout: NaN }, /closeTimeout/);
  bad({ holdTimeout: -1 }, /holdTimeout must be a number of milliseconds from 0 .* or Infinity/);
  bad({ holdTimeout: NaN }, /holdTimeout/);
  bad({ holdTimeout: "1000" }, /holdTimeout/);
  bad({ maxInflight: 0 }, /maxInflight must be an integer from 1 to 65535/);
  bad({ maxInflight: 65536 }, /maxInflight/);
  bad({ maxPacketSize: 268_435_461 }, /maxPacketSize must be an integer from 2 to 268435460/);
  bad({ maxPacketSize: 1 }, /maxPacketSize/);
  bad({ bufferSize: 0 }, /bufferSize must be an integer from 1/);
  bad({ signal: {} }, /signal must be an AbortSignal/);
  bad({ transport: {} }, /transport must be a function/);
  bad({}, /unsupported URL scheme/, "http://h");
});

Deno.test("sessionOptions picks the session's fields", () => {
  const r = resolveOptions("mqtt://h", {
    clientId: "c",
    clean: false,
    keepAlive: 5,
    username: "u",
    password: "p",
    will: { topic: "w", payload: "bye", qos: 2, retain: false },
    maxInflight: 7,
    pingTimeout: 300,
    connectTimeout: 400,
  });
  assert.deepEqual(sessionOptions(r), {
    clientId: "c",
    clean: false,
    keepAlive: 5,
    username: "u",
    password: encoder.encode("p"),
    will: { topic: "w", payload: encoder.encode("bye"), qos: 2, retain: false },
    maxInflight: 7,
    pingTimeout: 300,
    connectTimeout: 400,
    deferAcks: true,
  });
  assert.deepEqual(Object.keys(sessionOptions(resolveOptions("mqtt://h"))).sort(), [
    "clean",
    "clientId",
    "connectTimeout",
    "deferAcks",
    "keepAlive",
    "maxInflight",
    "pingTimeout",
  ]);
});

Deno.test("pingTimeout defaults to the keep-alive, at most 10 s, so a dead link is noticed within about two periods", () => {
  assert.equal(resolveOptions("mqtt://h", { keepAlive: 2 }).pingTimeout, 2_000);
  assert.equal(resolveOptions("mqtt://h", { keepAlive: 30 }).pingTimeout, 10_000);
  assert.equal(resolveOptions("mqtt://h", { keepAlive: 0 }).pingTimeout, 10_000);
  assert.equal(resolveOptions("mqtt://h", { keepAlive: 2, pingTimeout: 500 }).pingTimeout, 500);
});
