/**
 * Drives `examples/edge_function.ts` over HTTP against a test Mosquitto, over `wss://` and
 * `mqtts://`: bodies arrive on their topics, one MQTT connection serves many requests, a lost
 * connection is replaced, and the error answers (400, 405, 413, 502, 504) are right.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type ConnectOptions, type Message } from "../mod.ts";
import {
  createPublishHandler,
  optionsFromEnv,
  type PublishHandler,
  type PublishHandlerOptions,
} from "../examples/edge_function.ts";
import { brokerTest, type Mosquitto, startMosquitto } from "./broker/mosquitto.ts";
import { trustForWebSocket } from "./broker/certs.ts";
import { within } from "./client_helpers.ts";
import { freePort } from "./broker/ports.ts";

/** Serves `handler` on a free loopback port until the returned server is disposed. */
function serve(handler: PublishHandler): Promise<{ origin: string } & AsyncDisposable> {
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: ({ port }) =>
        resolve({
          origin: `http://127.0.0.1:${port}`,
          [Symbol.asyncDispose]: () => server.shutdown(),
        }),
    }, handler.fetch);
  });
}

async function post(
  url: string,
  body: string | Uint8Array<ArrayBuffer>,
): Promise<[number, unknown]> {
  const response = await fetch(url, { method: "POST", body });
  return [response.status, await response.json()];
}

interface Setup {
  url: string;
  connectOptions: ConnectOptions;
}

async function bridgeCase(broker: Mosquitto, setup: Setup, label: string): Promise<void> {
  const prefix = `edge/${label}`;
  const clientId = `edge-fn-${label}-${crypto.randomUUID().slice(0, 8)}`;
  const options: PublishHandlerOptions = {
    url: setup.url,
    connectOptions: { ...setup.connectOptions, clientId },
  };
  const handler = createPublishHandler(options);
  const watcher = await connect(broker.url, { clientId: `watch-${clientId}` });
  try {
    const sub = await watcher.subscribe(`${prefix}/#`, { qos: 1 });
    const messages = sub[Symbol.asyncIterator]();
    const next = async () => {
      const result = await within(messages.next(), "a message from the handler");
      assert.equal(result.done, false);
      return result.value as Message;
    };
    await using server = await serve(handler);

    // Concurrent first requests share the one connection being opened.
    const first = await Promise.all(
      [0, 1, 2].map((i) => post(`${server.origin}/${prefix}/burst`, `burst ${i}`)),
    );
    for (const [status, body] of first) {
      assert.equal(status, 202);
      assert.deepEqual(body, { topic: `${prefix}/burst`, bytes: 7, qos: 1 });
    }
    const burst = [await next(), await next(), await next()];
    assert.deepEqual(burst.map((m) => m.text()).sort(), ["burst 0", "burst 1", "burst 2"]);
    assert.ok(burst.every((m) => m.topic === `${prefix}/burst`));

    // Sequential requests, binary bodies and topic from the path.
    const binary = new Uint8Array([0, 1, 2, 255, 254]);
    assert.deepEqual(await post(`${server.origin}/${prefix}/bin`, binary), [
      202,
      { topic: `${prefix}/bin`, bytes: 5, qos: 1 },
    ]);
    const bin = await next();
    assert.equal(bin.topic, `${prefix}/bin`);
    assert.deepEqual(bin.payload, binary);
    assert.deepEqual(await post(`${server.origin}/${prefix}/a%20b`, "spaced"), [
      202,
      { topic: `${prefix}/a b`, bytes: 6, qos: 1 },
    ]);
    assert.equal((await next()).topic, `${prefix}/a b`);
    assert.equal(handler.connections, 1, "one connection served every request");

    // Errors: a wildcard is no topic name (MQTT-3.3.2-2); only POST publishes.
    const [status, error] = await post(`${server.origin}/${prefix}/%2B`, "x");
    assert.equal(status, 400);
    assert.equal((error as { code: string }).code, "INVALID_TOPIC");
    const get = await fetch(`${server.origin}/${prefix}/x`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
    await get.body?.cancel();

    // The broker drops the handler's connection when another client takes its client id over
    // (MQTT-3.1.4-2); the next request is served on a new connection.
    const thief = await connect(broker.url, { clientId, reconnect: false });
    await thief.close();
    const [again] = await post(`${server.origin}/${prefix}/after`, "reconnected");
    assert.equal(again, 202);
    const after = await next();
    assert.equal(after.text(), "reconnected");
    assert.equal(handler.connections, 2, "a new connection after the old one was lost");
  } finally {
    await handler.close();
    await watcher.close();
  }
}

brokerTest(
  "edge function: publishes POST bodies over wss:// on one reused connection",
  async () => {
    await using broker = await startMosquitto({ wsTls: true });
    const untrust = trustForWebSocket(broker.certs!.ca.cert);
    try {
      await bridgeCase(broker, { url: broker.wssUrl!, connectOptions: {} }, "wss");
    } finally {
      untrust();
    }
  },
);

brokerTest(
  "edge function: publishes POST bodies over mqtts:// on one reused connection",
  async () => {
    await using broker = await startMosquitto({ tls: true });
    await bridgeCase(
      broker,
      { url: broker.tlsUrl!, connectOptions: { tls: { caCerts: [broker.certs!.ca.cert] } } },
      "mqtts",
    );
  },
);

brokerTest("edge function: 504 when the broker does not answer in time", async () => {
  await using broker = await startMosquitto();
  const handler = createPublishHandler({
    url: broker.url,
    topic: "edge/slow",
    publishTimeout: 300,
  });
  try {
    await using server = await serve(handler);
    assert.equal((await post(server.origin, "fast"))[0], 202);
    await broker.pause(); // the socket stays open, no PUBACK comes
    const [status, body] = await post(server.origin, "slow");
    assert.equal(status, 504);
    assert.match((body as { error: string }).error, /within 300 ms/);
    await broker.resume();
  } finally {
    await broker.resume();
    await handler.close();
  }
});

brokerTest("edge function: 502 while the broker is unreachable, 413 for a large body", async () => {
  await using broker = await startMosquitto();
  const handler = createPublishHandler({
    url: `mqtt://127.0.0.1:${broker.port}`,
    topic: "edge/fixed",
    maxBodyBytes: 16,
    connectOptions: { connectTimeout: 2_000 },
  });
  try {
    await using server = await serve(handler);
    const [tooBig] = await post(server.origin, new Uint8Array(17));
    assert.equal(tooBig, 413);
    await broker.kill();
    const [status, body] = await post(server.origin, "lost");
    assert.equal(status, 502);
    assert.equal((body as { code: string }).code, "TRANSPORT_ERROR");
    assert.equal(handler.connections, 0);
    await broker.restart();
    assert.deepEqual(await post(`${server.origin}/ignored/path`, "fixed topic"), [
      202,
      { topic: "edge/fixed", bytes: 11, qos: 1 },
    ]);
    assert.equal(handler.connections, 1);
  } finally {
    await handler.close();
  }
});

Deno.test("edge function: options from the environment", () => {
  assert.throws(() => optionsFromEnv(new Map()), /MQTT_URL/);
  assert.throws(
    () => optionsFromEnv(new Map([["MQTT_URL", "wss://b/mqtt"], ["MQTT_QOS", "3"]])),
    /MQTT_QOS/,
  );
  assert.deepEqual(optionsFromEnv(new Map([["MQTT_URL", "wss://b/mqtt"]])), {
    url: "wss://b/mqtt",
    qos: 1,
    connectOptions: {},
  });
  const env = new Map([
    ["MQTT_URL", "mqtts://b"],
    ["MQTT_TOPIC", "ingest"],
    ["MQTT_QOS", "2"],
    ["MQTT_CLIENT_ID", "fn-1"],
    ["MQTT_USERNAME", "u"],
    ["MQTT_PASSWORD", "p"],
    ["MQTT_CA_CERT", "-----BEGIN CERTIFICATE-----"],
  ]);
  assert.deepEqual(optionsFromEnv(env), {
    url: "mqtts://b",
    topic: "ingest",
    qos: 2,
    connectOptions: {
      clientId: "fn-1",
      username: "u",
      password: "p",
      tls: { caCerts: ["-----BEGIN CERTIFICATE-----"] },
    },
  });
});

for (const mode of ["serve", "run"] as const) {
  brokerTest(`edge function: deno ${mode} serves it from the environment`, async () => {
    await using broker = await startMosquitto();
    const port = freePort();
    const file = new URL("../examples/edge_function.ts", import.meta.url).pathname;
    const args = mode === "serve"
      ? ["serve", "--allow-net", "--allow-env", "--port", String(port), file]
      : ["run", "--allow-net", "--allow-env", file];
    const child = new Deno.Command(Deno.execPath(), {
      args,
      env: { MQTT_URL: broker.url, MQTT_TOPIC: `edge/${mode}`, PORT: String(port) },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    try {
      // Both modes print one line once listening.
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      while (!out.includes(`:${port}/`)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`ended before listening: ${out} ${await stderr}`);
        out += value;
      }
      reader.releaseLock();
      const watcher = await connect(broker.url);
      try {
        const sub = await watcher.subscribe(`edge/${mode}`, { qos: 1 });
        const [status, body] = await post(`http://127.0.0.1:${port}/`, "from " + mode);
        assert.equal(status, 202, JSON.stringify(body));
        const message = await within(sub[Symbol.asyncIterator]().next(), "the message");
        assert.equal((message.value as Message).text(), `from ${mode}`);
      } finally {
        await watcher.close();
      }
    } finally {
      // SIGTERM closes the MQTT connection and ends the process (a hang fails the test).
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0);
      await child.stdout.cancel().catch(() => {});
      // One server only: a second one on the same port would have failed with AddrInUse.
      assert.doesNotMatch(await stderr, /AddrInUse|error/i);
    }
  });
}
