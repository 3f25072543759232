/**
 * The `node:net`/`node:tls` transport (lib/transports/node_tcp.ts), which `connectTcp` uses on
 * Node and Bun, run here through Deno's own `node:net` and `node:tls`: the same contract as the
 * `Deno.*` transport (tests/transport_test.ts), plus backpressure in both directions. The npm
 * package test (tests/npm_package_test.ts) runs it on real Node and Bun.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connectNodeTcp } from "../lib/transports/node_tcp.ts";
import type { Transport } from "../lib/transports/transport.ts";
import { sharedCerts } from "./broker/certs.ts";
import { brokerTest, startMosquitto } from "./broker/mosquitto.ts";
import { freePort } from "./broker/ports.ts";
import { hasCode } from "./client_helpers.ts";
import { assertAbortDuringHandshake, echoServer, roundTrip } from "./transport_helpers.ts";

const NODE_TCP = new URL("../lib/transports/node_tcp.ts", import.meta.url).href;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A transport connected to a plain TCP listener, and the listener's end of it. */
async function connectedPair(): Promise<{ transport: Transport; peer: Deno.Conn; close(): void }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const transport = await connectNodeTcp({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const peer = await accepted;
  listener.close();
  return {
    transport,
    peer,
    close() {
      transport.close();
      try {
        peer.close();
      } catch { /* closed by the test */ }
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
  assert.deepEqual(await roundTrip(transport, bytes), bytes);
  const reader = transport.readable.getReader();
  const writer = transport.writable.getWriter();
  await writer.write(bytes.subarray(0, 1));
  // Not a Buffer: its slice() would be a view, where a Uint8Array's is a copy.
  assert.equal(Object.getPrototypeOf((await reader.read()).value), Uint8Array.prototype);
  transport.close();
  transport.close(); // a second close never throws
  await server.close();
});

Deno.test("node_tcp: the readable ends when the peer closes, and at once on close()", async () => {
  const first = await connectedPair();
  await first.peer.write(encoder.encode("bye"));
  first.peer.close();
  const reader = first.transport.readable.getReader();
  assert.equal(decoder.decode((await reader.read()).value), "bye");
  assert.deepEqual(await reader.read(), { done: true, value: undefined });
  first.close();

  const second = await connectedPair();
  const pending = second.transport.readable.getReader().read();
  second.transport.close(); // a pending read ends, it does not fail
  assert.deepEqual(await pending, { done: true, value: undefined });
  await assert.rejects(
    second.transport.writable.getWriter().write(encoder.encode("x")),
    hasCode("TRANSPORT_ERROR", /writing to 127\.0\.0\.1:\d+ failed/),
  );
  second.close();
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
  await server.close();
  await assertAbortDuringHandshake((port, signal) =>
    connectNodeTcp({ hostname: "localhost", port, tls: {}, signal })
  );
});

Deno.test("node_tcp: a reader that stops reading pauses the socket, and no byte is lost", async () => {
  const total = 64 * 1024 * 1024;
  const { transport, peer, close } = await connectedPair();
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
  close();
});

Deno.test("node_tcp: a write waits while the peer does not read, then completes", async () => {
  const { transport, peer, close } = await connectedPair();
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
  close();
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
// deno-fmt-ignore
const CONNECT = new Uint8Array([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60, 0, 1, 0x6e]);
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

Deno.test("node_tcp: where node:net cannot load (a browser), the error says to use ws:// or wss://", async () => {
  // A child Deno whose import map makes `node:net` throw, as a browser cannot load it.
  const dir = await Deno.makeTempDir({ prefix: "node-tcp-no-net-" });
  try {
    await Deno.writeTextFile(
      `${dir}/import_map.json`,
      JSON.stringify({
        imports: { "node:net": "data:text/javascript,throw new Error('no node:net')" },
      }),
    );
    const child = `
      const { connectNodeTcp } = await import(${JSON.stringify(NODE_TCP)});
      const error = await connectNodeTcp({ hostname: "127.0.0.1", port: 1 }).catch((e) => e);
      console.log(JSON.stringify({ code: error.code, message: error.message, cause: String(error.cause) }));
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", `--import-map=${dir}/import_map.json`, child],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, decoder.decode(out.stderr));
    assert.deepEqual(JSON.parse(decoder.decode(out.stdout)), {
      code: "TRANSPORT_ERROR",
      message: "cannot connect to 127.0.0.1:1: mqtt:// and mqtts:// need TCP, which this runtime " +
        "does not offer (Deno, Node and Bun do); in a browser, connect to the broker over ws:// " +
        "or wss://",
      cause: "Error: no node:net",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
