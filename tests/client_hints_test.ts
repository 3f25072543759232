/**
 * Errors that say what to do, provoked as a new user would against Mosquitto: each message must
 * point to the fix.
 */
import assert from "node:assert/strict";
import { connect, type ConnectOptions, MqttError } from "../mod.ts";
import { brokerTest, startMosquitto } from "./broker/mosquitto.ts";

async function failure(url: unknown, options?: unknown): Promise<MqttError> {
  try {
    const client = await connect(
      url as string,
      { reconnect: false, connectTimeout: 5000, ...(options as ConnectOptions) },
    );
    await client.close();
  } catch (err) {
    assert.ok(err instanceof MqttError, String(err));
    return err;
  }
  throw new Error("connected");
}

brokerTest("an untrusted server certificate names tls.caCerts and --cafile", async () => {
  await using broker = await startMosquitto({ tls: true });
  const err = await failure(broker.tlsUrl);
  assert.match(err.message, /UnknownIssuer/);
  assert.match(err.message, /server's certificate is not trusted/);
  assert.match(err.message, /tls\.caCerts.*--cafile/);
});

brokerTest("a caCerts entry that is a path, not PEM text, is named as such", async () => {
  await using broker = await startMosquitto({ tls: true });
  const err = await failure(broker.tlsUrl, { tls: { caCerts: [broker.certs!.ca.certFile] } });
  assert.equal(err.code, "INVALID_OPTION");
  assert.match(err.message, /tls\.caCerts\[0\] is not PEM text but looks like a file path/);
  assert.match(err.message, /pass the file's content, not its path/);
});

brokerTest("an X.509 v1 client certificate: the error says it is ours, and why", async () => {
  await using broker = await startMosquitto({ requireClientCert: true });
  const { ca } = broker.certs!;
  const dir = await Deno.makeTempDir();
  try {
    const run = async (args: string[]) => {
      const out = await new Deno.Command("openssl", { args, cwd: dir, stderr: "piped" }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    };
    await run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "k"]);
    await run(["req", "-new", "-key", "k", "-subj", "/CN=v1", "-out", "csr"]);
    // No extensions: OpenSSL writes an X.509 version 1 certificate.
    await run([
      "x509",
      "-req",
      "-in",
      "csr",
      "-CA",
      ca.certFile,
      "-CAkey",
      ca.keyFile,
      "-out",
      "c",
    ]);
    const err = await failure(broker.tlsUrl, {
      tls: {
        caCerts: [ca.cert],
        cert: await Deno.readTextFile(`${dir}/c`),
        key: await Deno.readTextFile(`${dir}/k`),
      },
    });
    assert.match(err.message, /UnsupportedCertVersion/);
    assert.match(err.message, /OUR certificate \(tls\.cert/);
    assert.match(err.message, /version 1.*version 3/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

brokerTest("mqtt:// to a WebSocket port says it speaks HTTP (try ws://)", async () => {
  await using broker = await startMosquitto({ websockets: true });
  const err = await failure(`mqtt://127.0.0.1:${broker.wsPort}`);
  assert.match(err.message, /answered in HTTP \("HTTP\/1\.\d \d+/);
  assert.ok(err.message.includes(`try ws://127.0.0.1:${broker.wsPort}/mqtt`), err.message);
});

brokerTest("mqtt:// to a TLS port suggests mqtts://", async () => {
  await using broker = await startMosquitto({ tls: true });
  const err = await failure(`mqtt://127.0.0.1:${broker.tlsPort}`);
  assert.ok(err.message.includes(`use mqtts://127.0.0.1:${broker.tlsPort}`), err.message);
});

Deno.test("a URL without a scheme suggests mqtt://", async () => {
  for (const text of ["localhost", "localhost:1883", "broker.example:8883"]) {
    const err = await failure(text);
    assert.equal(err.code, "INVALID_OPTION");
    assert.ok(err.message.includes(`did you mean "mqtt://${text}"`), err.message);
  }
});

Deno.test("MQTT.js-style calls name our equivalent", async () => {
  const object = await failure({ host: "broker.example", port: 1884, protocol: "mqtts" });
  assert.equal(object.code, "INVALID_OPTION");
  assert.ok(object.message.includes('connect("mqtts://broker.example:1884", options)'));
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { ca: "-----BEGIN CERTIFICATE-----" },
      /options\.ca is MQTT\.js's name; here it is tls\.caCerts/,
    ],
    [{ reconnectPeriod: 0 }, /reconnect: \{ minDelay, maxDelay \}.*reconnect: false/],
    [{ host: "h" }, /the host in the URL/],
    [{ rejectUnauthorized: false }, /tls\.caCerts/],
    [{ keepalive: 30 }, /keepAlive/],
  ];
  for (const [options, pattern] of cases) {
    const err = await failure("mqtt://127.0.0.1:1", options);
    assert.equal(err.code, "INVALID_OPTION");
    assert.match(err.message, pattern);
  }
});
