/**
 * `mqtts://` against a real Mosquitto with certificates made by `openssl` at test time: the
 * right CA works, a wrong CA or a certificate for another host name is refused, and mutual TLS
 * works with a client certificate and is refused without one or with one from another CA.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type MqttClient, MqttError } from "../mod.ts";
import { brokerTest, mosquittoPub, sharedCerts, startMosquitto } from "./broker/mod.ts";
import { fresh, hasCode, take } from "./client_helpers.ts";

/** Publishes and receives one QoS 1 message over `client`'s own connection. */
async function roundTrip(client: MqttClient): Promise<void> {
  const topic = fresh("tls");
  const sub = await client.subscribe(topic, { qos: 1 });
  await client.publish(topic, "over TLS", { qos: 1 });
  const [message] = await take(sub, 1, "the message over TLS");
  assert.equal(message.text(), "over TLS");
  await sub.unsubscribe();
}

/**
 * Asserts that connecting fails with a transport error (no reconnect, so the failure is final).
 * Under TLS 1.3 a server refusing the client's certificate tells so only after the client's
 * handshake is done, while the client waits for CONNACK: the connection then ends with an error
 * instead of a CONNACK.
 */
async function assertTlsRefused(
  url: string,
  options: Parameters<typeof connect>[1],
  what: string,
): Promise<MqttError> {
  const error = await connect(url, { ...options, reconnect: false, connectTimeout: 5_000 }).then(
    async (client) => {
      await client.close();
      assert.fail(`${what}: connected`);
    },
    (err: unknown) => err,
  );
  assert.ok(error instanceof MqttError, `${what}: ${String(error)}`);
  return error;
}

brokerTest("TLS: mqtts:// works with the right CA", async () => {
  await using broker = await startMosquitto({ tls: true });
  const ca = broker.certs!.ca.cert;
  assert.match(broker.tlsUrl!, /^mqtts:\/\/localhost:\d+$/);
  await using client = await connect(broker.tlsUrl!, {
    clientId: fresh("tls"),
    tls: { caCerts: [ca] },
  });
  await roundTrip(client);

  // mosquitto_pub over TLS reaches our TLS subscriber: both sides are independent.
  const topic = fresh("tls-cli");
  const sub = await client.subscribe(topic, { qos: 1 });
  const cli = await mosquittoPub([
    "-p",
    String(broker.tlsPort),
    "-h",
    "localhost",
    "--cafile",
    broker.certs!.ca.certFile,
    "-t",
    topic,
    "-m",
    "from mosquitto_pub over TLS",
    "-q",
    "1",
  ]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(
    (await take(sub, 1, "mosquitto_pub's message"))[0].text(),
    "from mosquitto_pub over TLS",
  );
});

brokerTest("TLS: the server name can differ from the host dialled (tls.serverName)", async () => {
  await using broker = await startMosquitto({ tls: true });
  // 127.0.0.1 is in the certificate too; naming "localhost" explicitly must also verify.
  await using client = await connect(`mqtts://127.0.0.1:${broker.tlsPort}`, {
    clientId: fresh("sni"),
    tls: { caCerts: [broker.certs!.ca.cert], serverName: "localhost" },
  });
  await roundTrip(client);
});

brokerTest("TLS: a server certificate from an untrusted CA is a TRANSPORT_ERROR", async () => {
  await using broker = await startMosquitto({ tls: true });
  const certs = broker.certs!;
  const error = await assertTlsRefused(
    broker.tlsUrl!,
    { tls: { caCerts: [certs.wrongCa.cert] } },
    "wrong CA",
  );
  hasCode("TRANSPORT_ERROR")(error);
  // Without any custom CA the test CA is unknown as well.
  const noCa = await assertTlsRefused(broker.tlsUrl!, {}, "no CA");
  hasCode("TRANSPORT_ERROR")(noCa);
});

brokerTest("TLS: a certificate for another host name is a TRANSPORT_ERROR", async () => {
  await using broker = await startMosquitto({ tls: true, serverCert: "wrongHost" });
  const ca = broker.certs!.ca.cert;
  const error = await assertTlsRefused(
    broker.tlsUrl!,
    { tls: { caCerts: [ca] } },
    "certificate for wrong.example",
  );
  hasCode("TRANSPORT_ERROR")(error);
  // The same certificate verifies when the name it was made for is the one checked.
  await using client = await connect(broker.tlsUrl!, {
    clientId: fresh("wrong-host-named"),
    tls: { caCerts: [ca], serverName: "wrong.example" },
  });
  await roundTrip(client);
});

brokerTest("mutual TLS: works with a client certificate signed by the broker's CA", async () => {
  await using broker = await startMosquitto({ requireClientCert: true });
  const certs = broker.certs!;
  await using client = await connect(broker.tlsUrl!, {
    clientId: fresh("mtls"),
    tls: { caCerts: [certs.ca.cert], cert: certs.client.cert, key: certs.client.key },
  });
  await roundTrip(client);
});

brokerTest(
  "mutual TLS: refused without a client certificate or with one from another CA",
  async () => {
    await using broker = await startMosquitto({ requireClientCert: true });
    const certs = await sharedCerts();
    const cases: [string, Parameters<typeof connect>[1], RegExp][] = [
      ["no client certificate", { tls: { caCerts: [certs.ca.cert] } }, /CertificateRequired/],
      ["a client certificate from another CA", {
        tls: { caCerts: [certs.ca.cert], cert: certs.wrongClient.cert, key: certs.wrongClient.key },
      }, /UnknownCA/],
    ];
    for (const [what, options, alert] of cases) {
      const error = await assertTlsRefused(broker.tlsUrl!, options, what);
      // The refusal is the server's TLS alert, read while waiting for CONNACK (TLS 1.3).
      hasCode("TRANSPORT_ERROR", alert)(error);
    }
  },
);
