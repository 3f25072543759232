import assert from "node:assert/strict";
import {
  BrokerStartError,
  brokerTest,
  ignoreWithoutMosquitto,
  startMosquitto,
} from "./broker/mosquitto.ts";
import { mosquittoPub, mosquittoSub, startMosquittoSub } from "./broker/cli.ts";
import { startProxy } from "./broker/proxy.ts";
import { freePort, freePorts, waitForPort } from "./broker/ports.ts";

// MQTT 3.1.1 CONNECT, worked out by hand from section 3.1: protocol name "MQTT", level 4,
// flags 0x02 (clean session), keep-alive 60 s, client id "h1".
const CONNECT = new Uint8Array([
  0x10,
  14,
  0x00,
  0x04,
  0x4d,
  0x51,
  0x54,
  0x54,
  0x04,
  0x02,
  0x00,
  0x3c,
  0x00,
  0x02,
  0x68,
  0x31,
]);
// CONNACK, session present 0, return code 0 (accepted) (section 3.2).
const CONNACK_OK = [0x20, 0x02, 0x00, 0x00];
const PINGREQ = new Uint8Array([0xc0, 0x00]);
const PINGRESP = [0xd0, 0x00];

type ReadResult = Uint8Array | null | "timeout";

/** A raw byte-level MQTT peer: proves the harness without depending on the client under test. */
class RawPeer {
  readonly conn: Deno.Conn;
  #pending?: Promise<Uint8Array | null>;
  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }
  static async connect(port: number): Promise<RawPeer> {
    return new RawPeer(await Deno.connect({ hostname: "127.0.0.1", port }));
  }
  async write(bytes: Uint8Array): Promise<void> {
    let n = 0;
    while (n < bytes.length) n += await this.conn.write(bytes.subarray(n));
  }
  /** Next chunk, `null` at EOF or on a socket error, or "timeout"; a timed-out read stays pending. */
  async read(ms: number): Promise<ReadResult> {
    this.#pending ??= (async () => {
      const buffer = new Uint8Array(1024);
      const n = await this.conn.read(buffer).catch(() => null);
      return n === null ? null : buffer.slice(0, n);
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(resolve, ms, "timeout"));
    const result = await Promise.race([this.#pending, timeout]);
    clearTimeout(timer);
    if (result !== "timeout") this.#pending = undefined;
    return result;
  }
  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
    await this.#pending;
  }
}

function bytes(result: ReadResult): number[] | ReadResult {
  return result instanceof Uint8Array ? [...result] : result;
}

async function mqttHandshake(peer: RawPeer): Promise<void> {
  await peer.write(CONNECT);
  assert.deepEqual(bytes(await peer.read(5000)), CONNACK_OK);
}

async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test("freePorts gives distinct ports that can be bound, waitForPort times out on a closed one", async () => {
  const ports = freePorts(3);
  assert.equal(new Set(ports).size, 3);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: ports[0] });
  await waitForPort(ports[0], { timeoutMs: 1000 });
  listener.close();
  await assert.rejects(waitForPort(freePort(), { timeoutMs: 100 }), /did not accept/);
});

Deno.test("ignoreWithoutMosquitto never skips here (Mosquitto is installed)", () => {
  assert.equal(ignoreWithoutMosquitto(), false);
});

Deno.test("without Mosquitto, broker tests are ignored with a warning, but fail when CI is set", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/probe_test.ts`;
    const module = new URL("./broker/mosquitto.ts", import.meta.url).href;
    await Deno.writeTextFile(
      file,
      `import { brokerTest } from "${module}";\n` +
        `brokerTest("needs a broker", () => {});\n` +
        `brokerTest("needs one too", () => {});\n`,
    );
    const run = async (ci: boolean) => {
      const env: Record<string, string> = { MOSQUITTO_DISABLE: "1", NO_COLOR: "1", CI: "" };
      if (ci) env.CI = "true";
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["test", "-A", "--no-check", file],
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decoder = new TextDecoder();
      return { ...out, text: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
    };
    const [local, ci] = await Promise.all([run(false), run(true)]);
    assert.equal(local.code, 0, local.text);
    assert.match(local.text, /0 passed \| 0 failed \| 2 ignored/);
    assert.equal(local.text.match(/Mosquitto is not installed/g)?.length, 1, local.text);
    assert.notEqual(ci.code, 0);
    assert.match(ci.text, /0 passed \| 2 failed/);
    assert.match(
      ci.text,
      /Mosquitto is not installed and CI is set: tests needing it must not skip/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

brokerTest(
  "plain broker: mosquitto_sub receives what mosquitto_pub sends at QoS 0, 1, 2",
  async () => {
    await using broker = await startMosquitto();
    assert.equal(broker.url, `mqtt://127.0.0.1:${broker.port}`);
    assert.equal(broker.tlsPort, undefined);
    const p = String(broker.port);
    await using sub = await startMosquittoSub(["-p", p, "-t", "h/#", "-q", "2", "-v"], {
      count: 3,
    });
    for (const qos of ["0", "1", "2"]) {
      const r = await mosquittoPub(["-p", p, "-t", `h/q${qos}`, "-m", `m${qos}`, "-q", qos]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.deepEqual(await sub.done, ["h/q0 m0", "h/q1 m1", "h/q2 m2"]);
    const peer = await RawPeer.connect(broker.port);
    await mqttHandshake(peer);
    await peer.close();
    assert.match(await broker.log(), /New client connected from 127\.0\.0\.1.* as h1/);
    await broker.stop();
    assert.equal(broker.running, false);
    await assert.rejects(Deno.stat(broker.dir), Deno.errors.NotFound);
  },
);

brokerTest("a broker that cannot start fails with its log", async () => {
  const error = await startMosquitto({ extraConfig: "no_such_option 1" }).then(
    () => assert.fail("started"),
    (e) => e,
  );
  assert.ok(error instanceof BrokerStartError);
  assert.match(error.output, /no_such_option/);
});

brokerTest(
  "flood option lifts the in-flight and queue limits, extraConfig is appended",
  async () => {
    await using broker = await startMosquitto({ flood: true, extraConfig: "max_keepalive 120" });
    const config = await Deno.readTextFile(broker.configFile);
    assert.match(config, /^max_inflight_messages 0$/m);
    assert.match(config, /^max_queued_messages 0$/m);
    assert.match(config, /^max_keepalive 120$/m);
    await using plain = await startMosquitto();
    assert.doesNotMatch(await Deno.readTextFile(plain.configFile), /max_queued_messages/);
  },
);

brokerTest(
  "password broker: right password works, wrong password and unknown user are refused",
  async () => {
    await using broker = await startMosquitto({
      auth: "password",
      users: { alice: "wonderland", bob: "builder" },
    });
    const p = String(broker.port);
    const pub = (user: string, password: string) =>
      mosquittoPub(["-p", p, "-t", "t", "-m", "x", "-u", user, "-P", password]);
    for (const [user, password] of [["alice", "wonderland"], ["bob", "builder"]]) {
      const ok = await pub(user, password);
      assert.equal(ok.code, 0, ok.stderr);
    }
    const wrong = await pub("alice", "builder");
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /not authori[sz]ed/i);
    const unknown = await pub("mallory", "x");
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /not authori[sz]ed/i);
    const anonymous = await mosquittoPub(["-p", p, "-t", "t", "-m", "x"]);
    assert.notEqual(anonymous.code, 0);
  },
);

brokerTest(
  "TLS broker: rustls accepts the generated certificates, rejects a wrong CA and host",
  async () => {
    await using broker = await startMosquitto({ tls: true });
    const certs = broker.certs!;
    assert.equal(broker.tlsUrl, `mqtts://localhost:${broker.tlsPort}`);
    for (const hostname of ["localhost", "127.0.0.1"]) {
      const conn = await Deno.connectTls({
        hostname,
        port: broker.tlsPort!,
        caCerts: [certs.ca.cert],
      });
      await conn.handshake();
      const peer = new RawPeer(conn);
      await mqttHandshake(peer);
      await peer.close();
    }
    const wrongCa = await Deno.connectTls({
      hostname: "localhost",
      port: broker.tlsPort!,
      caCerts: [certs.wrongCa.cert],
    });
    await assert.rejects(wrongCa.handshake(), /certificate|issuer/i);
    wrongCa.close();

    const r = await mosquittoPub([
      "-h",
      "localhost",
      "-p",
      String(broker.tlsPort),
      "--cafile",
      certs.ca.certFile,
      "-t",
      "t",
      "-m",
      "x",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const bad = await mosquittoPub([
      "-h",
      "localhost",
      "-p",
      String(broker.tlsPort),
      "--cafile",
      certs.wrongCa.certFile,
      "-t",
      "t",
      "-m",
      "x",
    ]);
    assert.notEqual(bad.code, 0);

    await using wrongHost = await startMosquitto({ tls: true, serverCert: "wrongHost" });
    const conn = await Deno.connectTls({
      hostname: "localhost",
      port: wrongHost.tlsPort!,
      caCerts: [certs.ca.cert],
    });
    await assert.rejects(conn.handshake(), /certificate|name|valid/i);
    conn.close();
  },
);

brokerTest(
  "mutual TLS broker: a client certificate from the CA works, none or a foreign one is refused",
  async () => {
    await using broker = await startMosquitto({ requireClientCert: true });
    const certs = broker.certs!;
    const port = broker.tlsPort!;
    const conn = await Deno.connectTls({
      hostname: "localhost",
      port,
      caCerts: [certs.ca.cert],
      cert: certs.client.cert,
      key: certs.client.key,
    });
    await conn.handshake();
    const peer = new RawPeer(conn);
    await mqttHandshake(peer);
    await peer.close();

    // With TLS 1.3 the client's handshake completes before the server has checked the client
    // certificate; the refusal shows as a closed connection instead of a CONNACK.
    for (const clientCert of [undefined, certs.wrongClient]) {
      const conn = await Deno.connectTls({
        hostname: "localhost",
        port,
        caCerts: [certs.ca.cert],
        ...(clientCert ? { cert: clientCert.cert, key: clientCert.key } : {}),
      });
      const refused = new RawPeer(conn);
      await conn.handshake().catch(() => {});
      await refused.write(CONNECT).catch(() => {});
      assert.equal(await refused.read(5000), null);
      await refused.close();
    }

    const base = [
      "-h",
      "localhost",
      "-p",
      String(port),
      "--cafile",
      certs.ca.certFile,
      "-t",
      "t",
      "-m",
      "x",
    ];
    const ok = await mosquittoPub([
      ...base,
      "--cert",
      certs.client.certFile,
      "--key",
      certs.client.keyFile,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const without = await mosquittoPub(base);
    assert.notEqual(without.code, 0);
  },
);

brokerTest(
  "websocket listeners: a WebSocket with subprotocol mqtt connects and closes cleanly",
  async () => {
    await using broker = await startMosquitto({ websockets: true, wsTls: true });
    assert.equal(broker.wsUrl, `ws://127.0.0.1:${broker.wsPort}/mqtt`);
    const ws = new WebSocket(broker.wsUrl!, "mqtt");
    ws.binaryType = "arraybuffer";
    const opened = new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = (e) => reject(new Error(`WebSocket error: ${(e as ErrorEvent).message}`));
    });
    await opened;
    assert.equal(ws.protocol, "mqtt");
    const connack = new Promise<number[]>((resolve) => {
      ws.onmessage = (e) => resolve([...new Uint8Array(e.data as ArrayBuffer)]);
    });
    ws.send(CONNECT);
    assert.deepEqual(await connack, CONNACK_OK);
    const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
    ws.close(1000);
    const event = await closed;
    assert.equal(event.wasClean, true);

    // Deno's WebSocket cannot be given a CA; prove the wss listener's TLS with connectTls.
    const conn = await Deno.connectTls({
      hostname: "localhost",
      port: broker.wssPort!,
      caCerts: [broker.certs!.ca.cert],
    });
    await conn.handshake();
    conn.close();
  },
);

brokerTest("restart keeps ports and the persisted database, even after SIGKILL", async () => {
  await using broker = await startMosquitto({ persistence: true });
  const p = String(broker.port);
  const pub = await mosquittoPub([
    "-p",
    p,
    "-t",
    "keep/me",
    "-m",
    "retained-payload",
    "-r",
    "-q",
    "1",
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  // The database is written every second.
  await waitFor("the database to hold the message", async () => {
    const db = await Deno.readFile(`${broker.dir}/mosquitto.db`).catch(() => new Uint8Array());
    return new TextDecoder("latin1").decode(db).includes("retained-payload");
  });
  const pid = broker.pid;
  await broker.kill("SIGKILL");
  assert.equal(broker.running, false);
  await broker.restart();
  assert.equal(broker.running, true);
  assert.notEqual(broker.pid, pid);
  assert.equal(broker.url, `mqtt://127.0.0.1:${p}`);
  assert.deepEqual(
    await mosquittoSub(["-p", p, "-t", "keep/#", "-v"], { count: 1, timeoutMs: 5000 }),
    ["keep/me retained-payload"],
  );
  await broker.restart(); // while running: SIGTERM, then start
  assert.deepEqual(
    await mosquittoSub(["-p", p, "-t", "keep/#", "-v"], { count: 1, timeoutMs: 5000 }),
    ["keep/me retained-payload"],
  );
});

brokerTest("persistence with autosaveChanges writes the database after each change", async () => {
  await using broker = await startMosquitto({ persistence: { autosaveChanges: 1 } });
  const config = await Deno.readTextFile(broker.configFile);
  assert.match(config, /^autosave_on_changes true\nautosave_interval 1$/m);
  const pub = await mosquittoPub([
    "-p",
    String(broker.port),
    "-t",
    "k",
    "-m",
    "saved-at-once",
    "-r",
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  await waitFor("the database to hold the message", async () => {
    const db = await Deno.readFile(`${broker.dir}/mosquitto.db`).catch(() => new Uint8Array());
    return new TextDecoder("latin1").decode(db).includes("saved-at-once");
  }, 1000);
});

brokerTest("pause stops the broker answering (SIGSTOP), resume lets it answer again", async () => {
  await using broker = await startMosquitto();
  const peer = await RawPeer.connect(broker.port);
  await mqttHandshake(peer);
  await broker.pause();
  assert.equal(broker.running, true);
  await peer.write(PINGREQ);
  assert.equal(await peer.read(300), "timeout");
  await broker.resume();
  assert.deepEqual(bytes(await peer.read(5000)), PINGRESP);
  await peer.close();
  await broker.pause(); // stop() must also end a paused broker
});

brokerTest("proxy forwards both ways, counts connections and bytes", async () => {
  await using broker = await startMosquitto();
  await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
  assert.equal(proxy.url, `mqtt://127.0.0.1:${proxy.port}`);
  await using sub = await startMosquittoSub(["-p", String(proxy.port), "-t", "px", "-q", "1"], {
    count: 1,
  });
  assert.equal(proxy.connections, 1);
  const r = await mosquittoPub(["-p", String(proxy.port), "-t", "px", "-m", "through", "-q", "1"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await sub.done, ["through"]);
  assert.equal(proxy.accepted, 2);
  assert.ok(proxy.bytes.up > 0 && proxy.bytes.down > 0);
  await waitFor("connections to end", () => proxy.connections === 0);
});

brokerTest("proxy cut closes both sides at once and keeps accepting", async () => {
  await using broker = await startMosquitto();
  await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
  const peer = await RawPeer.connect(proxy.port);
  await mqttHandshake(peer);
  proxy.cut();
  assert.equal(await peer.read(2000), null);
  await peer.close();
  // The broker saw the socket go without DISCONNECT (the case where a will is published).
  await waitFor(
    "the broker to notice",
    async () =>
      /Client h1 closed its connection|Socket error on client h1/.test(await broker.log()),
  );
  const again = await RawPeer.connect(proxy.port);
  await mqttHandshake(again);
  await again.close();
});

brokerTest("proxy stall holds bytes back until unstall", async () => {
  await using broker = await startMosquitto();
  await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
  const peer = await RawPeer.connect(proxy.port);
  proxy.stall();
  await peer.write(CONNECT);
  assert.equal(await peer.read(300), "timeout");
  proxy.unstall();
  assert.deepEqual(bytes(await peer.read(5000)), CONNACK_OK);
  proxy.stall(100); // ends by itself
  await peer.write(PINGREQ);
  assert.deepEqual(bytes(await peer.read(5000)), PINGRESP);
  await peer.close();
});

brokerTest(
  "proxy blackhole keeps sockets open and forwards nothing, new links work after",
  async () => {
    await using broker = await startMosquitto();
    await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
    const peer = await RawPeer.connect(proxy.port);
    await mqttHandshake(peer);
    proxy.blackhole(true);
    await peer.write(PINGREQ);
    assert.equal(await peer.read(300), "timeout"); // no PINGRESP, no close: half-open
    const late = await RawPeer.connect(proxy.port); // still accepted ...
    await late.write(CONNECT);
    assert.equal(await late.read(300), "timeout"); // ... but never answered
    assert.equal(proxy.connections, 2);
    proxy.blackhole(false);
    assert.equal(await peer.read(100), "timeout"); // a black-holed link stays dead
    const fresh = await RawPeer.connect(proxy.port);
    await mqttHandshake(fresh);
    proxy.cut();
    assert.equal(await peer.read(2000), null);
    assert.equal(await late.read(2000), null);
    await Promise.all([peer.close(), late.close(), fresh.close()]);
  },
);

brokerTest("proxy blackhole hides the broker closing the link from the client", async () => {
  await using broker = await startMosquitto();
  await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
  const peer = await RawPeer.connect(proxy.port);
  await mqttHandshake(peer);
  proxy.blackhole(true);
  // The broker side ends (as it would when the broker's keep-alive check gives up on the link).
  await broker.kill("SIGTERM");
  assert.equal(await peer.read(300), "timeout"); // the client still sees an open, silent socket
  assert.equal(proxy.connections, 1);
  await peer.close();
});

brokerTest("proxy cutAfterBytes cuts in the middle of a packet", async () => {
  await using broker = await startMosquitto();
  await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
  const peer = await RawPeer.connect(proxy.port);
  proxy.cutAfterBytes(5, "up");
  await peer.write(CONNECT);
  assert.equal(await peer.read(2000), null);
  assert.equal(proxy.bytes.up, 5);
  await peer.close();

  // Downstream: the 4-byte CONNACK arrives in part only.
  const second = await RawPeer.connect(proxy.port);
  proxy.cutAfterBytes(2, "down");
  await second.write(CONNECT);
  assert.deepEqual(bytes(await second.read(2000)), [0x20, 0x02]);
  assert.equal(await second.read(2000), null);
  await second.close();
});

Deno.test("proxy close ends pending connects to a dead target and idle links", async () => {
  const port = freePort(); // nothing listens here
  const proxy = await startProxy({ target: { hostname: "127.0.0.1", port } });
  const peer = await RawPeer.connect(proxy.port);
  assert.equal(await peer.read(2000), null); // target refused: the client is closed
  await peer.close();
  const idle = await RawPeer.connect(proxy.port);
  await proxy.close();
  assert.equal(await idle.read(2000), null);
  await idle.close();
  await proxy.close(); // twice is fine
});
