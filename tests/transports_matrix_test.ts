/**
 * The same end-to-end test bodies over every transport: `mqtt://`, `mqtts://`, `ws://` and
 * `wss://`, against a real Mosquitto and against the embedded broker. What must not depend on
 * the transport or the broker: QoS 0/1/2 delivery, the will after an abrupt drop, retained
 * messages and persistent sessions.
 *
 * WebSocket payloads stay at or below 128 KiB: Mosquitto 2.0.11's WebSocket listener loses
 * messages above about 190 KB.
 *
 * `wss://` needs the test CA trusted. The web-standard `WebSocket` takes no TLS settings (our
 * WebSocket transport rejects them with `INVALID_OPTION`), so for those tests only the global
 * `WebSocket` is swapped for one that passes Deno's non-standard `client` option with the CA;
 * the transport code under test is the real one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../lib/client/connect.ts";
import type { MqttClient } from "../lib/client/client.ts";
import type { Message } from "../lib/client/message.ts";
import type { ConnectOptions } from "../lib/client/options.ts";
import type { Subscription } from "../lib/client/subscription.ts";
import type { QoS } from "../lib/codec/packet.ts";
import { MqttError } from "../lib/errors.ts";
import { connectTcp } from "../lib/transports/tcp.ts";
import type { Transport } from "../lib/transports/transport.ts";
import { connectWebSocket } from "../lib/transports/websocket.ts";
import { trustForWebSocket } from "./broker/certs.ts";
import { type BrokerName, FEATURES, type Target, targetTest } from "./targets.ts";
import { within } from "./client_helpers.ts";

type Scheme = "mqtt" | "mqtts" | "ws" | "wss";

/** One transport of one broker: its URL and the options it needs to reach it. */
interface Endpoint {
  /** Which broker, for topic names. */
  broker: BrokerName;
  scheme: Scheme;
  url: string;
  /** Options every client of this target needs (the CA for mqtts). */
  base: ConnectOptions;
  /** The built-in transport for this URL, opened directly (for tests that wrap it). */
  open(url: URL): Promise<Transport>;
}

const encoder = new TextEncoder();
let unique = 0;

/** A topic (and client id stem) used by one test only. */
function fresh(stem: string): string {
  return `${stem}-${Date.now().toString(36)}-${unique++}`;
}

/** Reads `count` messages from a subscription (without ending it). */
async function take(sub: Subscription, count: number, what: string): Promise<Message[]> {
  const it = sub[Symbol.asyncIterator]();
  const messages: Message[] = [];
  while (messages.length < count) {
    const next = await within(it.next(), `${what} (${messages.length} of ${count} arrived)`);
    assert.equal(next.done, false, `${what}: the subscription ended early`);
    messages.push(next.value as Message);
  }
  return messages;
}

function endpointFor(scheme: Scheme, broker: Target): Endpoint {
  const ca = broker.certs?.ca.cert ?? "";
  const name = broker.name;
  switch (scheme) {
    case "mqtt":
      return {
        broker: name,
        scheme,
        url: broker.url,
        base: {},
        open: (url) => connectTcp({ hostname: url.hostname, port: Number(url.port) }),
      };
    case "mqtts":
      return {
        broker: name,
        scheme,
        url: broker.tlsUrl!,
        base: { tls: { caCerts: [ca] } },
        open: (url) =>
          connectTcp({ hostname: url.hostname, port: Number(url.port), tls: { caCerts: [ca] } }),
      };
    case "ws":
      return {
        broker: name,
        scheme,
        url: broker.wsUrl!,
        base: {},
        open: (url) => connectWebSocket(url),
      };
    case "wss":
      return {
        broker: name,
        scheme,
        url: broker.wssUrl!,
        base: {},
        open: (url) => connectWebSocket(url),
      };
  }
}

/** Connects a client to the target; the caller closes it. */
function client(target: Endpoint, options: ConnectOptions = {}): Promise<MqttClient> {
  return connect(target.url, { ...target.base, ...options });
}

async function qosRoundTrip(target: Endpoint): Promise<void> {
  const topic = fresh(`matrix/${target.broker}/${target.scheme}/qos`);
  const sub = await client(target, { clientId: fresh("sub") });
  const pub = await client(target, { clientId: fresh("pub") });
  try {
    for (const qos of [0, 1, 2] as QoS[]) {
      const subscription = await sub.subscribe(`${topic}/${qos}/#`, { qos });
      assert.deepEqual(subscription.granted, [qos], "the broker grants the QoS asked for");
      const count = 20;
      // Published without waiting in between: the order of the calls is the order on the wire.
      const sent = [];
      for (let i = 0; i < count; i++) {
        sent.push(pub.publish(`${topic}/${qos}/${i}`, `message ${i} at QoS ${qos}`, { qos }));
      }
      await within(Promise.all(sent), `the QoS ${qos} publishes to complete`);
      const received = await take(subscription, count, `QoS ${qos} messages`);
      // Ordered delivery per topic filter and QoS holds for all three QoS levels here.
      received.forEach((message, i) => {
        assert.equal(message.topic, `${topic}/${qos}/${i}`);
        assert.equal(message.text(), `message ${i} at QoS ${qos}`);
        assert.equal(message.qos, qos);
        assert.equal(message.retain, false);
      });
      await subscription.unsubscribe();
    }

    // A payload spanning many reads. Mosquitto 2.0.11 sends to WebSocket clients about 4 KiB
    // per turn of its 100 ms service loop (128 KiB takes 3 s to arrive), so WebSocket targets
    // (of either broker, to keep the bodies the same) use a smaller one that still spans several
    // of those writes.
    const big = new Uint8Array(target.scheme.startsWith("ws") ? 20 * 1024 : 128 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    const bigSub = await sub.subscribe(`${topic}/big`, { qos: 1 });
    await pub.publish(`${topic}/big`, big, { qos: 1 });
    const [message] = await take(bigSub, 1, `the ${big.length}-byte message`);
    assert.equal(message.payload.length, big.length);
    assert.deepEqual(message.payload, big);
    await bigSub.unsubscribe();
  } finally {
    await pub.close();
    await sub.close();
  }
}

async function willAfterAbruptDrop(target: Endpoint): Promise<void> {
  const topic = fresh(`matrix/${target.broker}/${target.scheme}/will`);
  const watcher = await client(target, { clientId: fresh("watcher") });
  try {
    const wills = await watcher.subscribe(topic, { qos: 1 });

    // A client that says goodbye with DISCONNECT: its will is discarded (MQTT-3.1.2-10).
    const polite = await client(target, {
      clientId: fresh("polite"),
      will: { topic, payload: "polite client's will", qos: 1 },
    });
    await polite.close();

    // A client whose link dies without DISCONNECT: its will is published (MQTT-3.1.2-8).
    let transport: Transport | undefined;
    const victim = await client(target, {
      clientId: fresh("victim"),
      reconnect: false,
      will: { topic, payload: encoder.encode("dropped client's will"), qos: 1 },
      transport: async (url) => (transport = await target.open(url)),
    });
    // The listener is not typed with `Event`: `deno check` of the whole repository also loads
    // Node's types (bench/), whose global `Event` differs from the DOM one.
    const closed = new Promise<MqttError | undefined>((resolve) => {
      victim.addEventListener(
        "close",
        (event) => resolve((event as CustomEvent<{ error: MqttError | undefined }>).detail.error),
        { once: true },
      );
    });
    assert.ok(transport, "the transport option was used");
    transport.close();
    const error = await within(closed, "the client to see its connection end");
    assert.ok(error instanceof MqttError, "an abrupt drop ends the client with an error");
    await victim.close();

    // The polite will would have been published first had it not been discarded.
    const [will] = await take(wills, 1, "the will");
    assert.equal(will.text(), "dropped client's will");
    assert.equal(will.topic, topic);
    assert.equal(will.qos, 1);
  } finally {
    await watcher.close();
  }
}

async function retainedForLateSubscriber(target: Endpoint): Promise<void> {
  const topic = fresh(`matrix/${target.broker}/${target.scheme}/retained`);
  const pub = await client(target, { clientId: fresh("pub") });
  const late = await client(target, { clientId: fresh("late") });
  try {
    await pub.publish(topic, "kept for later", { qos: 1, retain: true });

    // MQTT-3.3.1-6: a new subscription gets the retained message, flagged retained (3.3.1-8).
    const first = await late.subscribe(topic, { qos: 1 });
    const [retained] = await take(first, 1, "the retained message");
    assert.equal(retained.text(), "kept for later");
    assert.equal(retained.retain, true);
    await first.unsubscribe();

    // An empty retained payload removes it (MQTT-3.3.1-10, -11): the next new subscription
    // gets only the live message that follows, which is not flagged retained (MQTT-3.3.1-9).
    await pub.publish(topic, new Uint8Array(0), { qos: 1, retain: true });
    const second = await late.subscribe(topic, { qos: 1 });
    await pub.publish(topic, "live", { qos: 1 });
    const [live] = await take(second, 1, "the live message");
    assert.equal(live.text(), "live");
    assert.equal(live.retain, false);
    await second.unsubscribe();
  } finally {
    await late.close();
    await pub.close();
  }
}

async function persistentSession(target: Endpoint): Promise<void> {
  const topic = fresh(`matrix/${target.broker}/${target.scheme}/session`);
  const clientId = fresh("durable");
  const first = await client(target, { clientId, clean: false });
  assert.equal(first.sessionPresent, false, "a new client id has no session (MQTT-3.2.2-2)");
  await first.subscribe(topic, { qos: 1 });
  await first.close();

  // Published while the durable client is away: the server queues them for it (MQTT-3.1.2-5).
  const pub = await client(target, { clientId: fresh("pub") });
  try {
    await Promise.all([0, 1, 2, 3, 4].map((i) => pub.publish(topic, `offline ${i}`, { qos: 1 })));
  } finally {
    await pub.close();
  }

  const again = await client(target, { clientId, clean: false });
  try {
    assert.equal(again.sessionPresent, true, "the stored session is resumed (MQTT-3.2.2-2)");
    // The queued messages may arrive before this SUBSCRIBE; the client holds them until then.
    const sub = await again.subscribe(topic, { qos: 1 });
    const messages = await take(sub, 5, "the queued messages");
    assert.deepEqual(messages.map((m) => m.text()), [0, 1, 2, 3, 4].map((i) => `offline ${i}`));
    assert.ok(messages.every((m) => m.qos === 1 && m.topic === topic));
  } finally {
    await again.close();
  }
  // Leave no session behind: a clean connection discards it (MQTT-3.1.2-6).
  const cleanup = await client(target, { clientId, clean: true });
  assert.equal(cleanup.sessionPresent, false);
  await cleanup.close();
}

const CASES: [string, (target: Endpoint) => Promise<void>][] = [
  ["publish and subscribe at QoS 0, 1 and 2, and a large payload", qosRoundTrip],
  ["the will is published after an abrupt drop, not after DISCONNECT", willAfterAbruptDrop],
  ["a late subscriber gets the retained message", retainedForLateSubscriber],
  ["a persistent session keeps offline QoS 1 messages across reconnects", persistentSession],
];

for (const broker of ["mosquitto", "embedded"] as BrokerName[]) {
  for (const scheme of ["mqtt", "mqtts", "ws", "wss"] as Scheme[]) {
    const tls = scheme === "mqtts" || scheme === "wss";
    targetTest(
      broker,
      `transports matrix over ${scheme}://`,
      async (target, t) => {
        const endpoint = endpointFor(scheme, target);
        const untrust = scheme === "wss" ? trustForWebSocket(target.certs!.ca.cert) : undefined;
        try {
          for (const [name, body] of CASES) {
            await t.step(`${scheme}: ${name}`, () => body(endpoint));
          }
        } finally {
          untrust?.();
        }
      },
      {
        target: { tls, websockets: scheme === "ws" || scheme === "wss" },
        notApplicable: tls && !FEATURES[broker].tls ? "the broker has no TLS listener" : undefined,
      },
    );
  }
}
