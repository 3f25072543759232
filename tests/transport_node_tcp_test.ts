/**
 * The `node:net`/`node:tls` transport (lib/transports/node_tcp.ts), which `connectTcp` uses on
 * Node and Bun, run here through Deno's own `node:net` and `node:tls`: the same contract as the
 * `Deno.*` transport (tests/transport_test.ts), plus backpressure in both directions. The npm
 * package test (tests/npm_package_test.ts) runs it on real Node and Bun.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MqttError } from "../lib/errors.ts";
import { connectNodeTcp } from "../lib/transports/node_tcp.ts";
import type { Transport } from "../lib/transports/transport.ts";
import { sharedCerts } from "./broker/certs.ts";
import { brokerTest, startMosquitto } from "./broker/mosquitto.ts";
import { freePort } from "./broker/ports.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function hasCode(code: string, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof MqttError, `expected MqttError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

/** Reads until `length` bytes came back (or the stream ended) and joins them. */
async function readBytes(reader: ReadableStreamDefaultReader<Uint8Array>, length: number) {
  const out = new Uint8Array(length);
  let received = 0;
  while (received < length) {
    const { value, done } = await reader.read();
    if (done) break;
    out.set(value, received);
    received += value.length;
  }
  return out.subarray(0, received);
}

/** Writes `bytes` and reads until `length` bytes came back. */
async function roundTrip(
  transport: Transport,
  bytes: Uint8Array,
  length = bytes.length,
): Promise<Uint8Array> {
  const writer = transport.writable.getWriter();
  await writer.write(bytes);
  writer.releaseLock();
  const reader = transport.readable.getReader();
  const back = await readBytes(reader, length);
  reader.releaseLock();
  return back;
}

/** A TCP or TLS echo server on a free port; `close()` stops it and its connections. */
function echoServer(listener: Deno.Listener) {
  const conns = new Set<Deno.Conn>();
  const done = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      conn.readable.pipeTo(conn.writable).catch(() => {}).finally(() => conns.delete(conn));
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await done;
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed by the pipe */ }
      }
    },
  };
}

/** Waits until `count()` has not changed for `quietMs`; returns the count then. */
async function untilSteady(count: () => number, quietMs = 150): Promise<number> {
  let last = -1;
  while (count() !== last) {
    last = count();
    await new Promise((resolve) => setTimeout(resolve, quietMs));
  }
  return last;
}

Deno.test("node_tcp: bytes round-trip through an echo server; chunks are plain Uint8Arrays", async () => {
  const server = echoServer(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const transport = await connectNodeTcp({ hostname: "127.0.0.1", port: server.port });
  const bytes = new Uint8Array(100_000).map((_, i) => i & 0xff);
  const writer = transport.writable.getWriter();
  await writer.write(bytes);
  writer.releaseLock();
  const reader = transport.readable.getReader();
  const { value } = await reader.read();
  // Not a Buffer: its slice() would be a view, where a Uint8Array's is a copy.
  assert.equal(Object.getPrototypeOf(value), Uint8Array.prototype);
  const rest = await readBytes(reader, bytes.length - value!.length);
  assert.deepEqual([...value!, ...rest], [...bytes]);
  reader.releaseLock();
  transport.close();
  transport.close(); // a second close never throws
  await server.close();
});

Deno.test("node_tcp: the readable ends when the peer closes, and at once on close()", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepted = listener.accept();
  const first = await connectNodeTcp({ hostname: "127.0.0.1", port });
  const peer = await accepted;
  await peer.write(encoder.encode("bye"));
  peer.close();
  const reader = first.readable.getReader();
  assert.equal(decoder.decode((await reader.read()).value), "bye");
  assert.deepEqual(await reader.read(), { done: true, value: undefined });
  first.close();

  const acceptedAgain = listener.accept();
  const second = await connectNodeTcp({ hostname: "127.0.0.1", port });
  const peerAgain = await acceptedAgain;
  const pending = second.readable.getReader().read();
  second.close(); // a pending read ends, it does not fail
  assert.deepEqual(await pending, { done: true, value: undefined });
  await assert.rejects(
    second.writable.getWriter().write(encoder.encode("x")),
    hasCode("TRANSPORT_ERROR", /writing to 127\.0\.0\.1:\d+ failed/),
  );
  peerAgain.close();
  listener.close();
});

Deno.test("node_tcp: a refused connection is a TRANSPORT_ERROR with the cause", async () => {
  const port = freePort();
  await assert.rejects(connectNodeTcp({ hostname: "127.0.0.1", port }), (e) => {
    hasCode("TRANSPORT_ERROR", new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}: `))(e);
    assert.equal(((e as Error).cause as { code?: string }).code, "ECONNREFUSED");
    return true;
  });
});

Deno.test("node_tcp: an aborted signal is ABORTED, before and while connecting", async () => {
  const server = echoServer(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  await assert.rejects(
    connectNodeTcp({
      hostname: "127.0.0.1",
      port: server.port,
      signal: AbortSignal.abort(new Error("stop")),
    }),
    hasCode("ABORTED"),
  );
  // A server that accepts and never answers the ClientHello.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const controller = new AbortController();
  const connecting = connectNodeTcp({
    hostname: "localhost",
    port: (listener.addr as Deno.NetAddr).port,
    tls: {},
    signal: controller.signal,
  });
  const serverSide = await accepted;
  controller.abort();
  await assert.rejects(connecting, hasCode("ABORTED"));
  // The client's socket is closed: the server reads the ClientHello, then EOF (or a reset).
  const buf = new Uint8Array(4096);
  try {
    while ((await serverSide.read(buf)) !== null) { /* the ClientHello */ }
  } catch (e) {
    assert.ok(e instanceof Deno.errors.ConnectionReset, String(e));
  }
  serverSide.close();
  listener.close();
  await server.close();
});

Deno.test("node_tcp: a reader that stops reading pauses the socket, and no byte is lost", async () => {
  const total = 64 * 1024 * 1024;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const transport = await connectNodeTcp({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const peer = await accepted;
  const block = new Uint8Array(64 * 1024);
  let sent = 0;
  const sending = (async () => {
    while (sent < total) {
      block.fill(sent / block.length);
      sent += await peer.write(block.subarray(sent % block.length));
    }
    peer.close();
  })();
  // Nobody reads: the sender stalls once the socket buffers and the stream's queue are full.
  const stalledAt = await untilSteady(() => sent);
  assert.ok(stalledAt < total, `all ${total} bytes were taken in without a reader`);

  let received = 0;
  let wrong = 0;
  for await (const chunk of transport.readable) {
    for (let i = 0; i < chunk.length; i += 4096) {
      if (chunk[i] !== (Math.floor((received + i) / block.length) & 0xff)) wrong++;
    }
    received += chunk.length;
  }
  await sending;
  assert.equal(received, total);
  assert.equal(wrong, 0);
  transport.close();
  listener.close();
});

Deno.test("node_tcp: a write waits while the peer does not read, then completes", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const transport = await connectNodeTcp({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const peer = await accepted;
  const chunk = new Uint8Array(1024 * 1024);
  const chunks = 64;
  const writer = transport.writable.getWriter();
  let written = 0;
  const writing = (async () => {
    for (let i = 0; i < chunks; i++) {
      await writer.write(chunk);
      written++;
    }
    await writer.close();
  })();
  const stalledAt = await untilSteady(() => written);
  assert.ok(stalledAt < chunks, "every write completed while the peer read nothing");

  let received = 0;
  const buf = new Uint8Array(256 * 1024);
  for (let n = await peer.read(buf); n !== null; n = await peer.read(buf)) received += n;
  await writing;
  assert.equal(received, chunks * chunk.length);
  peer.close();
  transport.close();
  listener.close();
});

Deno.test("node_tcp: TLS trusts caCerts, verifies serverName, and fails on a wrong CA or host", async () => {
  const certs = await sharedCerts();
  const server = echoServer(Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: certs.server.cert,
    key: certs.server.key,
  }));
  const secure = await connectNodeTcp({
    hostname: "localhost",
    port: server.port,
    tls: { caCerts: [certs.ca.cert] },
  });
  assert.equal(decoder.decode(await roundTrip(secure, encoder.encode("hello tls"))), "hello tls");
  secure.close();
  // The default roots alone do not vouch for the test CA.
  await assert.rejects(
    connectNodeTcp({ hostname: "localhost", port: server.port, tls: {} }),
    hasCode("TRANSPORT_ERROR", /TLS handshake with localhost:\d+ failed/),
  );
  await assert.rejects(
    connectNodeTcp({
      hostname: "localhost",
      port: server.port,
      tls: { caCerts: [certs.wrongCa.cert] },
    }),
    hasCode("TRANSPORT_ERROR", /TLS handshake with localhost:\d+ failed/),
  );
  await assert.rejects(
    connectNodeTcp({
      hostname: "127.0.0.1",
      port: server.port,
      tls: { caCerts: [certs.ca.cert], serverName: "wrong.example" },
    }),
    hasCode("TRANSPORT_ERROR", /TLS handshake with 127\.0\.0\.1:\d+ failed: .*wrong\.example/),
  );
  await server.close();

  // The certificate names only wrong.example: reaching it as localhost fails, by its name works.
  const wrongHost = echoServer(Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: certs.wrongHost.cert,
    key: certs.wrongHost.key,
  }));
  await assert.rejects(
    connectNodeTcp({
      hostname: "localhost",
      port: wrongHost.port,
      tls: { caCerts: [certs.ca.cert] },
    }),
    hasCode("TRANSPORT_ERROR", /TLS handshake with localhost:\d+ failed: .*localhost/),
  );
  const named = await connectNodeTcp({
    hostname: "127.0.0.1",
    port: wrongHost.port,
    tls: { caCerts: [certs.ca.cert], serverName: "wrong.example" },
  });
  assert.equal(decoder.decode(await roundTrip(named, encoder.encode("sni"))), "sni");
  named.close();
  await wrongHost.close();
});

/** CONNECT, MQTT 3.1.1, clean session, keep-alive 60, client id "n" (worked out by hand). */
const CONNECT = new Uint8Array([
  0x10,
  13,
  0,
  4,
  0x4d,
  0x51,
  0x54,
  0x54,
  4,
  0x02,
  0,
  60,
  0,
  1,
  0x6e,
]); // deno-fmt-ignore
/** CONNACK, session not present, accepted. */
const CONNACK = new Uint8Array([0x20, 2, 0, 0]);

brokerTest("node_tcp: mutual TLS with a client certificate and a serverName", async () => {
  await using broker = await startMosquitto({ requireClientCert: true });
  const certs = broker.certs!;
  // Dials the address and verifies the name, with a client certificate: Deno cannot do this.
  const transport = await connectNodeTcp({
    hostname: "127.0.0.1",
    port: broker.tlsPort!,
    tls: {
      caCerts: [certs.ca.cert],
      cert: certs.client.cert,
      key: certs.client.key,
      serverName: "localhost",
    },
  });
  assert.deepEqual(await roundTrip(transport, CONNECT, CONNACK.length), CONNACK);
  transport.close();
  // The refusal without a client certificate is not checked here: Deno's own node:tls sometimes
  // throws that alert as an uncaught error instead of emitting it on the socket. Deno never uses
  // this module; tests/transport_test.ts checks the refusal on Deno's transport, and the npm
  // package test runs this module on Node and Bun.
});
