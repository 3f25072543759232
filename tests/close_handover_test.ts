/**
 * `close()` resolves once the server has read the DISCONNECT: it half-closes the connection and
 * waits for the server to close it (section 3.14.4: the server SHOULD, on DISCONNECT), at most
 * `closeTimeout`.
 *
 * It resolved once the DISCONNECT was written. A program that then connects again at once with
 * the same client id and `clean: false` raced Mosquitto: when the new CONNECT is read before the
 * old connection's last bytes, Mosquitto takes the session over and drops the old connection's
 * unread bytes, the acknowledgements sent just before the DISCONNECT among them, so the
 * acknowledged messages came back (DUP) on the new connection. The first test did that over
 * many rounds and failed before the fix.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type ConnectOptions, type MqttClient } from "../mod.ts";
import type { PublishPacket } from "../lib/codec/packet.ts";
import { brokerTest, type Mosquitto, startMosquitto } from "./broker/mod.ts";
import { fresh, take, within } from "./client_helpers.ts";
import { scriptedTransport } from "./scripted_transport.ts";

const ROUNDS = 40;
const PER_ROUND = 5;

/** Every connection of one client id, in turn: receive, acknowledge, close, reconnect at once. */
async function handover(
  broker: Mosquitto,
  url: string,
  protocolVersion: 4 | 5,
  rounds = ROUNDS,
): Promise<void> {
  const id = fresh("handover");
  const session = protocolVersion === 5 ? { sessionExpiryInterval: 300 } : {};
  /** PUBLISH packets received after CONNACK by the current connection, before `subscribe()`. */
  let early: PublishPacket[] = [];
  const options: ConnectOptions = {
    clientId: id,
    clean: false,
    protocolVersion,
    ...session,
    onPacket: (direction, packet) => {
      if (direction === "received" && packet.type === "publish") early.push(packet);
    },
  };
  const pub = await connect(broker.url, { clientId: `${id}-p`, protocolVersion });
  let client: MqttClient = await connect(url, options);
  try {
    for (let round = 0; round < rounds; round++) {
      // Acknowledged on arrival: every PUBACK is sent before close() is called.
      const sub = await client.subscribe("t", { qos: 1, ack: "receive" });
      assert.deepEqual(
        early.map((p) => `${new TextDecoder().decode(p.payload)} dup=${p.dup}`),
        [],
        `round ${round}: messages acknowledged before the last close() came back`,
      );
      for (let i = 0; i < PER_ROUND; i++) await pub.publish("t", `${round}.${i}`, { qos: 1 });
      const got = await take(sub, PER_ROUND, `the messages of round ${round}`);
      assert.deepEqual(
        got.map((m) => m.text()),
        [...Array(PER_ROUND)].map((_, i) => `${round}.${i}`),
      );
      await client.close();
      early = [];
      client = await connect(url, options);
      assert.equal(client.sessionPresent, true);
    }
  } finally {
    await client.close();
    await pub.close();
  }
}

for (const protocolVersion of [4, 5] as const) {
  brokerTest(
    `close() then an immediate reconnect of the same clean: false session loses no acknowledgement (TCP, v${protocolVersion})`,
    async () => {
      await using broker = await startMosquitto();
      await handover(broker, broker.url, protocolVersion);
    },
  );
}

brokerTest(
  "close() then an immediate reconnect loses no acknowledgement over TLS and WebSocket either",
  async () => {
    await using broker = await startMosquitto({ tls: true, websockets: true });
    const caCerts = [broker.certs!.ca.cert];
    // TLS through the built-in transport, with the test CA.
    const tlsUrl = broker.tlsUrl!;
    const tls = async () => {
      const id = fresh("handover-tls");
      const opts = { clientId: id, clean: false, tls: { caCerts } };
      const pub = await connect(broker.url, { clientId: `${id}-p` });
      let client = await connect(tlsUrl, opts);
      try {
        for (let round = 0; round < 10; round++) {
          const sub = await client.subscribe("t", { qos: 1, ack: "receive" });
          await pub.publish("t", `${round}`, { qos: 1 });
          const [m] = await take(sub, 1, `round ${round}`);
          assert.equal(m.text(), `${round}`, `round ${round}: an acknowledged message came back`);
          await client.close();
          client = await connect(tlsUrl, opts);
        }
      } finally {
        await client.close();
        await pub.close();
      }
    };
    await tls();
    // A WebSocket connect takes ~200 ms here: fewer rounds.
    await handover(broker, broker.wsUrl!, 4, 10);
  },
);

Deno.test("close() waits for the server to hang up after DISCONNECT, and no longer than closeTimeout when it never does", async () => {
  // A user transport whose server never closes the connection.
  const script = scriptedTransport();
  script.neverHangUp();
  const client = await connect("mqtt://scripted.invalid", {
    transport: script.factory,
    reconnect: false,
    keepAlive: 0,
    closeTimeout: 300,
  });
  const started = performance.now();
  let hungUp = false;
  script.closed.then(() => hungUp = true);
  const closing = client.close();
  await new Promise((resolve) => setTimeout(resolve, 100));
  // DISCONNECT (0xE0 0x00) is written, and close() still waits for the server.
  assert.deepEqual([...script.written.at(-1)!], [0xe0, 0x00]);
  assert.equal(hungUp, false, "the transport was torn down before the server hung up");
  await within(closing, "close() against a server that never hangs up", 2000);
  assert.ok(performance.now() - started >= 250, "close() did not wait for the server");
  assert.equal(hungUp, true);
});

Deno.test("close() resolves as soon as the server hangs up after DISCONNECT", async () => {
  const script = scriptedTransport();
  const client = await connect("mqtt://scripted.invalid", {
    transport: script.factory,
    reconnect: false,
    keepAlive: 0,
    closeTimeout: 60_000,
  });
  // The scripted server hangs up once it has read the DISCONNECT.
  await within(client.close(), "close() against a server that hangs up", 2000);
  assert.deepEqual([...script.written.at(-1)!], [0xe0, 0x00]);
});

brokerTest(
  "close() over WebSocket is a clean end: no error event, the disconnect event carries no error (Mosquitto drops the socket after DISCONNECT)",
  async () => {
    await using broker = await startMosquitto({ websockets: true });
    for (const protocolVersion of [4, 5] as const) {
      const client = await connect(broker.wsUrl!, { clientId: fresh("ws-close"), protocolVersion });
      const errors: unknown[] = [];
      const ends: unknown[] = [];
      client.addEventListener("error", (e) => errors.push(e.detail));
      client.addEventListener("disconnect", (e) => ends.push(e.detail.error));
      await client.close();
      assert.deepEqual(errors, [], `v${protocolVersion}: close() reported an error`);
      assert.deepEqual(ends, [undefined], `v${protocolVersion}: the disconnect event's error`);
    }
  },
);
