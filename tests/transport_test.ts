import assert from "node:assert/strict";
import { MqttError } from "../lib/errors.ts";
import { connectTcp } from "../lib/transports/tcp.ts";
import { connectWebSocket } from "../lib/transports/websocket.ts";
import { assertAbortDuringHandshake, echoServer, roundTrip } from "./transport_helpers.ts";

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

async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  const { code, stderr } = await new Deno.Command(cmd, {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  })
    .output();
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${decoder.decode(stderr)}`);
}

interface Certs {
  dir: string;
  ca: string;
  otherCa: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A throwaway CA, a server certificate for DNS:localhost and a client certificate (X.509 v3). */
async function makeCerts(): Promise<Certs> {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-transport-test-" });
  const sh = (args: string[]) => run("openssl", args, dir);
  for (const ca of ["ca", "other-ca"]) {
    await sh([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${ca}.key`,
      "-out",
      `${ca}.pem`,
      "-days",
      "2",
      "-subj",
      `/CN=${ca}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]); // deno-fmt-ignore
  }
  const leaf = async (name: string, ext: string) => {
    await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
    await sh([
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`,
    ]); // deno-fmt-ignore
    await sh([
      "x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key",
      "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`,
    ]); // deno-fmt-ignore
  };
  await leaf(
    "server",
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" +
      "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n",
  );
  await leaf(
    "client",
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
  );
  const read = (f: string) => Deno.readTextFile(`${dir}/${f}`);
  return {
    dir,
    ca: await read("ca.pem"),
    otherCa: await read("other-ca.pem"),
    serverCert: await read("server.pem"),
    serverKey: await read("server.key"),
    clientCert: await read("client.pem"),
    clientKey: await read("client.key"),
  };
}

let certsPromise: Promise<Certs> | undefined;
const certs = () => certsPromise ??= makeCerts();

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("connectTcp: bytes round-trip through an echo server; close() is idempotent", async () => {
  const server = echoServer(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const transport = await connectTcp({ hostname: "127.0.0.1", port: server.port });
  const bytes = new Uint8Array(100_000).map((_, i) => i & 0xff);
  assert.deepEqual(await roundTrip(transport, bytes), bytes);
  transport.close();
  transport.close(); // a second close never throws
  await server.close();
});

Deno.test("connectTcp: the readable ends when the peer closes, and at once on close()", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const first = await connectTcp({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const peer = await accepted;
  await peer.write(encoder.encode("bye"));
  peer.close();
  const reader = first.readable.getReader();
  assert.equal(decoder.decode((await reader.read()).value), "bye");
  assert.deepEqual(await reader.read(), { done: true, value: undefined });
  first.close();

  const acceptedAgain = listener.accept();
  const second = await connectTcp({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
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

Deno.test("connectTcp: a refused connection is a TRANSPORT_ERROR with the cause", async () => {
  const port = freePort();
  await assert.rejects(
    connectTcp({ hostname: "127.0.0.1", port }),
    (e) => {
      hasCode("TRANSPORT_ERROR", new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}`))(e);
      assert.ok((e as Error).cause instanceof Deno.errors.ConnectionRefused);
      return true;
    },
  );
});

Deno.test("connectTcp: an aborted signal is ABORTED", async () => {
  const server = echoServer(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const controller = new AbortController();
  controller.abort(new Error("stop"));
  await assert.rejects(
    connectTcp({ hostname: "127.0.0.1", port: server.port, signal: controller.signal }),
    hasCode("ABORTED"),
  );
  await server.close();
});

Deno.test("connectTcp: TLS with a custom CA round-trips bytes", async () => {
  const c = await certs();
  const server = echoServer(
    Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: c.serverCert, key: c.serverKey }),
  );
  const transport = await connectTcp({
    hostname: "localhost",
    port: server.port,
    tls: { caCerts: [c.ca] },
  });
  assert.deepEqual(
    await roundTrip(transport, encoder.encode("hello tls")),
    encoder.encode("hello tls"),
  );
  transport.close();
  await server.close();
});

Deno.test("connectTcp: TLS serverName verifies a name other than the address dialled", async () => {
  const c = await certs();
  const server = echoServer(
    Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: c.serverCert, key: c.serverKey }),
  );
  const transport = await connectTcp({
    hostname: "127.0.0.1",
    port: server.port,
    tls: { caCerts: [c.ca], serverName: "localhost" },
  });
  assert.deepEqual(await roundTrip(transport, encoder.encode("sni")), encoder.encode("sni"));
  transport.close();
  await assert.rejects(
    connectTcp({
      hostname: "127.0.0.1",
      port: server.port,
      tls: { caCerts: [c.ca], serverName: "wrong.example" },
    }),
    hasCode("TRANSPORT_ERROR", /TLS handshake with 127\.0\.0\.1:\d+ failed: .*wrong\.example/),
  );
  await server.close();
});

Deno.test("connectTcp: TLS fails at connect time with a wrong CA or a wrong host name", async () => {
  const c = await certs();
  const server = echoServer(
    Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: c.serverCert, key: c.serverKey }),
  );
  // Unknown issuer: neither the default roots nor another CA vouch for the server.
  await assert.rejects(
    connectTcp({ hostname: "localhost", port: server.port, tls: true }),
    hasCode("TRANSPORT_ERROR", /TLS handshake with localhost:\d+ failed/),
  );
  await assert.rejects(
    connectTcp({ hostname: "localhost", port: server.port, tls: { caCerts: [c.otherCa] } }),
    hasCode("TRANSPORT_ERROR", /TLS handshake/),
  );
  // The certificate names only DNS:localhost.
  await assert.rejects(
    connectTcp({ hostname: "127.0.0.1", port: server.port, tls: { caCerts: [c.ca] } }),
    hasCode("TRANSPORT_ERROR", /TLS handshake with 127\.0\.0\.1:\d+ failed/),
  );
  await server.close();
});

Deno.test("connectTcp: aborting during the TLS handshake is ABORTED and closes the socket", async () => {
  await assertAbortDuringHandshake((port, signal) =>
    connectTcp({ hostname: "localhost", port, tls: true, signal })
  );
});

Deno.test("connectTcp: incomplete or unsupported TLS settings are INVALID_OPTION", async () => {
  await assert.rejects(
    connectTcp({ hostname: "localhost", port: 1, tls: { cert: "C" } }),
    hasCode("INVALID_OPTION", /cert and tls\.key/),
  );
  await assert.rejects(
    connectTcp({
      hostname: "127.0.0.1",
      port: 1,
      tls: { cert: "C", key: "K", serverName: "localhost" },
    }),
    hasCode("INVALID_OPTION", /serverName "localhost" differs from the host "127\.0\.0\.1"/),
  );
});

/** `openssl s_server -rev` (echoes lines reversed), requiring a client certificate. */
async function mutualTlsServer(c: Certs) {
  const port = freePort();
  const child = new Deno.Command("openssl", {
    args: [
      "s_server",
      "-accept",
      `127.0.0.1:${port}`,
      "-cert",
      "server.pem",
      "-key",
      "server.key",
      "-CAfile",
      "ca.pem",
      "-Verify",
      "1",
      "-verify_return_error",
      "-rev",
    ], // deno-fmt-ignore
    cwd: c.dir,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  // s_server prints ACCEPT once it listens.
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("ACCEPT")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("openssl s_server exited");
    out += value;
  }
  const drained = (async () => {
    while (!(await reader.read()).done) { /* keep the pipe flowing */ }
  })();
  return {
    port,
    async close() {
      child.kill();
      await drained;
      await child.status;
    },
  };
}

Deno.test("connectTcp: mutual TLS works with a client certificate and fails without", async () => {
  const c = await certs();
  const server = await mutualTlsServer(c);
  const transport = await connectTcp({
    hostname: "localhost",
    port: server.port,
    tls: { caCerts: [c.ca], cert: c.clientCert, key: c.clientKey },
  });
  assert.equal(decoder.decode(await roundTrip(transport, encoder.encode("mqtt\n"))), "ttqm\n");
  transport.close();

  // Under TLS 1.3 the server's refusal may arrive after the client's handshake
  // completed: either connecting or the first read fails.
  let refused = false;
  try {
    const anonymous = await connectTcp({
      hostname: "localhost",
      port: server.port,
      tls: { caCerts: [c.ca] },
    });
    await assert.rejects(
      roundTrip(anonymous, encoder.encode("mqtt\n")),
      hasCode("TRANSPORT_ERROR", /connection to localhost:\d+ failed: .*CertificateRequired/),
    );
    refused = true;
    anonymous.close();
  } catch (e) {
    hasCode("TRANSPORT_ERROR")(e);
    refused = true;
  }
  assert.ok(refused, "the server accepted a client without a certificate");
  await server.close();
});

/** A Deno.serve WebSocket server; `onSocket` gets each server-side socket. */
function wsServer(onSocket: (socket: WebSocket) => void) {
  const requests: { url: URL; protocols: string }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const offered = request.headers.get("sec-websocket-protocol") ?? "";
    requests.push({ url: new URL(request.url), protocols: offered });
    const { socket, response } = Deno.upgradeWebSocket(request, {
      protocol: offered.split(",").map((p) => p.trim()).includes("mqtt") ? "mqtt" : undefined,
    });
    socket.binaryType = "arraybuffer";
    onSocket(socket);
    return response;
  });
  return { port: server.addr.port, requests, server };
}

function closedEvent(socket: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.readyState === WebSocket.CLOSED) resolve();
    else socket.addEventListener("close", () => resolve(), { once: true });
  });
}

Deno.test("connectWebSocket: binary round-trip with the mqtt subprotocol and the URL's path", async () => {
  let serverSocket!: WebSocket;
  const { port, requests, server } = wsServer((socket) => {
    serverSocket = socket;
    socket.onmessage = (e) => socket.send(e.data);
  });
  const transport = await connectWebSocket(new URL(`ws://127.0.0.1:${port}/mqtt?x=1`));
  assert.equal(requests[0].url.pathname, "/mqtt");
  assert.equal(requests[0].url.search, "?x=1");
  assert.equal(requests[0].protocols, "mqtt");
  const bytes = new Uint8Array(200_000).map((_, i) => (i * 7) & 0xff);
  assert.deepEqual(await roundTrip(transport, bytes), bytes);
  const serverClosed = closedEvent(serverSocket);
  transport.close();
  transport.close();
  await serverClosed;
  // After close() the readable is done.
  assert.deepEqual(await transport.readable.getReader().read(), { done: true, value: undefined });
  await server.shutdown();
});

Deno.test("connectWebSocket: a clean close by the server ends the readable", async () => {
  const { port, server } = wsServer((socket) => {
    socket.onopen = () => {
      socket.send(new Uint8Array([0xd0, 0x00]));
      socket.close(1000);
    };
  });
  const transport = await connectWebSocket(new URL(`ws://127.0.0.1:${port}/mqtt`));
  const reader = transport.readable.getReader();
  assert.deepEqual(await reader.read(), { done: false, value: new Uint8Array([0xd0, 0x00]) });
  assert.deepEqual(await reader.read(), { done: true, value: undefined });
  transport.close();
  await server.shutdown();
});

Deno.test("MQTT-6.0.0-1: a text frame errors the readable and closes the connection", async () => {
  let serverSocket!: WebSocket;
  const { port, server } = wsServer((socket) => {
    serverSocket = socket;
    socket.onopen = () => socket.send("not binary");
  });
  const transport = await connectWebSocket(new URL(`ws://127.0.0.1:${port}/mqtt`));
  await assert.rejects(
    transport.readable.getReader().read(),
    hasCode("TRANSPORT_ERROR", /text frame.*MQTT-6\.0\.0-1/),
  );
  await closedEvent(serverSocket);
  transport.close();
  await server.shutdown();
});

Deno.test("connectWebSocket: a stalled reader past maxReceiveBuffer errors instead of growing", async () => {
  let serverSocket!: WebSocket;
  const { port, server } = wsServer((socket) => {
    serverSocket = socket;
    socket.onopen = () => {
      for (let i = 0; i < 10; i++) socket.send(new Uint8Array(1024));
    };
  });
  const transport = await connectWebSocket(new URL(`ws://127.0.0.1:${port}/mqtt`), {
    maxReceiveBuffer: 4096,
  });
  await closedEvent(serverSocket); // the client hung up on its own
  // An errored stream drops its queue: the link is dead, and the session's QoS rules recover.
  await assert.rejects(
    transport.readable.getReader().read(),
    hasCode("TRANSPORT_ERROR", /more than 4096 received bytes/),
  );
  transport.close();
  await server.shutdown();
});

Deno.test("connectWebSocket: writes wait for bufferedAmount and every byte arrives", async () => {
  let received = 0;
  const { port, server } = wsServer((socket) => {
    socket.onmessage = (e) => {
      received += (e.data as ArrayBuffer).byteLength;
    };
  });
  const transport = await connectWebSocket(new URL(`ws://127.0.0.1:${port}/mqtt`), {
    maxSendBuffer: 0,
  });
  const writer = transport.writable.getWriter();
  const chunk = new Uint8Array(256 * 1024);
  for (let i = 0; i < 8; i++) await writer.write(chunk);
  while (received < 8 * chunk.length) await new Promise((r) => setTimeout(r, 5));
  assert.equal(received, 8 * chunk.length);
  await writer.close(); // closes the socket
  writer.releaseLock();
  await assert.rejects(
    transport.writable.getWriter().write(chunk),
    TypeError, // the stream itself refuses writes once closed
  );
  transport.close();
  await server.shutdown();
});

Deno.test("connectWebSocket: headers, TLS settings and non-WebSocket URLs are INVALID_OPTION", async () => {
  const url = new URL("wss://localhost/mqtt");
  await assert.rejects(
    connectWebSocket(url, { headers: { authorization: "x" } }),
    hasCode("INVALID_OPTION", /headers are not supported/),
  );
  await assert.rejects(
    connectWebSocket(url, { tls: { caCerts: ["CA"] } }),
    hasCode("INVALID_OPTION", /TLS options are not supported/),
  );
  await assert.rejects(
    connectWebSocket(new URL("mqtt://localhost"), {}),
    hasCode("INVALID_OPTION", /ws: or wss:/),
  );
});

Deno.test("connectWebSocket: refused connection is TRANSPORT_ERROR; aborted signal is ABORTED", async () => {
  const port = freePort();
  await assert.rejects(
    connectWebSocket(new URL(`ws://127.0.0.1:${port}/mqtt`)),
    hasCode("TRANSPORT_ERROR", /cannot connect to WebSocket/),
  );
  await assert.rejects(
    connectWebSocket(new URL(`ws://127.0.0.1:${port}/mqtt`), { signal: AbortSignal.abort() }),
    hasCode("ABORTED"),
  );
});

Deno.test("connectWebSocket: aborting while connecting is ABORTED", async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => release = r);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    await held; // hold the handshake until the client gave up
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => socket.close();
    return response;
  });
  const controller = new AbortController();
  const connecting = connectWebSocket(new URL(`ws://127.0.0.1:${server.addr.port}/mqtt`), {
    signal: controller.signal,
  });
  setTimeout(() => controller.abort(), 50);
  await assert.rejects(connecting, hasCode("ABORTED"));
  release();
  await server.shutdown();
});

Deno.test("connectWebSocket: wss round-trip with a CA given to the runtime (--cert)", async () => {
  const c = await certs();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: c.serverCert,
    key: c.serverKey,
    onListen() {},
  }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: "mqtt" });
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  // The web-standard WebSocket takes no CA, so a child runtime trusts it at startup.
  const script = `${c.dir}/wss_client.ts`;
  await Deno.writeTextFile(
    script,
    `import { connectWebSocket } from ${
      JSON.stringify(import.meta.resolve("../lib/transports/websocket.ts"))
    };
const t = await connectWebSocket(new URL(Deno.args[0]));
const w = t.writable.getWriter();
await w.write(new Uint8Array([0xc0, 0x00]));
const { value } = await t.readable.getReader().read();
console.log(JSON.stringify([...value]));
t.close();
`,
  );
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-config",
      "--allow-net",
      "--cert",
      `${c.dir}/ca.pem`,
      script,
      `wss://localhost:${server.addr.port}/mqtt`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, decoder.decode(stderr));
  assert.deepEqual(JSON.parse(decoder.decode(stdout)), [0xc0, 0x00]);
  await server.shutdown();
});

Deno.test({
  name: "transport tests clean up their certificates",
  async fn() {
    if (certsPromise) await Deno.remove((await certsPromise).dir, { recursive: true });
  },
});
