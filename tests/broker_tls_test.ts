/**
 * TLS listeners of the embedded broker: mqtts:// (with and without client
 * certificates) and wss://. Certificates are made by openssl at test time
 * (tests/broker/certs.ts).
 */
import assert from "node:assert/strict";
import { Broker } from "../broker.ts";
import { encodePacket } from "../lib/codec/mod.ts";
import type { Packet } from "../lib/codec/packet.ts";
import { MqttError } from "../lib/errors.ts";
import { PacketFramer } from "../lib/streams/packet_reader.ts";
import { sharedCerts, trustForWebSocket } from "./broker/certs.ts";
import { RawClient } from "./broker_helpers.ts";

const decoder = new TextDecoder();

Deno.test("mqtts: a TLS listener next to a plain one, messages cross between them", async () => {
  const certs = await sharedCerts();
  const broker = new Broker();
  try {
    const plain = await broker.listen({ port: 0 });
    const secure = await broker.listen({
      port: 0,
      tls: { cert: certs.server.cert, key: certs.server.key },
    });
    assert.equal(secure.tls, true);
    const opened = await RawClient.openTls(secure.port, { caCerts: [certs.ca.cert] });
    const { client: tlsClient, returnCode } = await RawClient.connect(
      secure.port,
      { clientId: "over-tls" },
      opened,
    );
    assert.equal(returnCode, 0);
    await tlsClient.subscribe([["t", 1]]);
    const { client: plainClient } = await RawClient.connect(plain.port, { clientId: "plain" });
    await plainClient.publish("t", "to the TLS client", 1);
    await plainClient.expect("puback");
    const message = await tlsClient.expect("publish");
    assert.equal(decoder.decode(message.payload), "to the TLS client");
    plainClient.close();
    tlsClient.close();
  } finally {
    await broker.close();
  }
});

Deno.test("mqtts requireClientCert: only clients with a certificate signed by caCerts get in", async () => {
  const certs = await sharedCerts();
  const lines: string[] = [];
  const broker = new Broker({ log: (line) => lines.push(line) });
  try {
    const { port } = await broker.listen({
      port: 0,
      tls: {
        cert: certs.server.cert,
        key: certs.server.key,
        caCerts: [certs.ca.cert],
        requireClientCert: true,
      },
    });
    const good = await RawClient.openTls(port, {
      caCerts: [certs.ca.cert],
      cert: certs.client.cert,
      key: certs.client.key,
    });
    const { client, returnCode } = await RawClient.connect(port, { clientId: "mutual" }, good);
    assert.equal(returnCode, 0);
    client.close();

    // Without a certificate, or with one from another CA: no MQTT session ever starts.
    for (const pair of [undefined, certs.wrongClient]) {
      let refused = false;
      try {
        const conn = await Deno.connectTls({
          hostname: "localhost",
          port,
          caCerts: [certs.ca.cert],
          ...(pair === undefined ? {} : { cert: pair.cert, key: pair.key }),
        });
        try {
          await conn.handshake();
          await conn.write(encodePacket({
            type: "connect",
            protocolName: "MQTT",
            protocolLevel: 4,
            clientId: "intruder",
            clean: true,
            keepAlive: 0,
          }));
          const n = await conn.read(new Uint8Array(16));
          refused = n === null;
        } finally {
          conn.close();
        }
      } catch {
        refused = true;
      }
      assert.ok(refused, `refused ${pair === undefined ? "without a certificate" : "wrong CA"}`);
    }
    assert.equal(broker.stats().clients, 0);
  } finally {
    await broker.close();
  }
});

Deno.test("wss: MQTT over a TLS WebSocket listener", async () => {
  const certs = await sharedCerts();
  const broker = new Broker();
  const untrust = trustForWebSocket(certs.ca.cert);
  try {
    const { wsPort } = await broker.listen({
      port: 0,
      wsPort: 0,
      tls: { cert: certs.server.cert, key: certs.server.key },
    });
    const socket = new WebSocket(`wss://localhost:${wsPort}/mqtt`, ["mqtt"]);
    socket.binaryType = "arraybuffer";
    const packets: Packet[] = [];
    const framer = new PacketFramer();
    const connack = Promise.withResolvers<void>();
    socket.onmessage = (event) => {
      framer.push(new Uint8Array(event.data as ArrayBuffer), (packet) => void packets.push(packet));
      if (packets.length > 0) connack.resolve();
    };
    const closed = new Promise((resolve) => (socket.onclose = resolve));
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    assert.equal(socket.protocol, "mqtt");
    socket.send(encodePacket({
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "wss",
      clean: true,
      keepAlive: 0,
    }));
    await connack.promise;
    assert.deepEqual(packets[0], { type: "connack", sessionPresent: false, returnCode: 0 });
    socket.close();
    await closed;
  } finally {
    untrust();
    await broker.close();
  }
});

Deno.test("TLS settings a listener cannot honour are refused before anything is bound", async () => {
  const certs = await sharedCerts();
  await using broker = new Broker();
  const tls = { cert: certs.server.cert, key: certs.server.key };
  const invalid = (e: unknown) => e instanceof MqttError && e.code === "INVALID_OPTION";
  await assert.rejects(
    broker.listen({ port: 0, tls: { ...tls, requireClientCert: true } }),
    invalid,
  );
  await assert.rejects(
    broker.listen({
      port: 0,
      wsPort: 0,
      tls: { ...tls, caCerts: [certs.ca.cert], requireClientCert: true },
    }),
    invalid,
  );
  await assert.rejects(broker.listen({ port: 0, tls: { cert: tls.cert } as never }), invalid);
});
