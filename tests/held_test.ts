/**
 * Messages that match no subscription (`holdTimeout`): a resumed session's queued messages for a
 * filter the program no longer subscribes to must not stop its delivery on the filters it does
 * subscribe to, and a program that subscribes soon after connecting must still get its own.
 *
 * Before the fix such messages were held for good and never acknowledged; acknowledgements go
 * out in arrival order (MQTT-4.6.0-2), so they held back every later one, Mosquitto's in-flight
 * window (its default `max_inflight_messages 20`) filled and no QoS 1/2 message arrived on any
 * filter again: the first test timed out waiting for the messages of "b". Now they are
 * acknowledged and dropped once `holdTimeout` has passed after CONNACK (MQTT-4.5.0-2 allows
 * acknowledging a message the application does not process), with an `unclaimed` event.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  connect,
  type ConnectOptions,
  type Message,
  type MqttClient,
  type UnclaimedEventDetail,
} from "../mod.ts";
import { brokerTest, logged, type Mosquitto, startMosquitto } from "./broker/mod.ts";
import { fresh, take, within } from "./client_helpers.ts";
import { publish, ScriptedServer, turn } from "./scripted_server.ts";

/** A client connected to a {@linkcode ScriptedServer}, without reconnecting. */
async function scripted(
  options: ConnectOptions = {},
): Promise<{ server: ScriptedServer; client: MqttClient }> {
  const server = new ScriptedServer();
  const client = await connect("mqtt://scripted.invalid", {
    ...options,
    transport: server.open,
    reconnect: false,
  });
  return { server, client };
}

/** Collects the messages the client's `unclaimed` events report. */
function unclaimed(client: MqttClient): Message[] {
  const dropped: Message[] = [];
  client.addEventListener("unclaimed", (e: CustomEvent<UnclaimedEventDetail>) => {
    dropped.push(...e.detail.messages);
  });
  return dropped;
}

/** Resolves once `dropped` holds `count` messages (checked every 10 ms, for 6 s at most). */
async function untilCount(dropped: Message[], count: number): Promise<void> {
  for (let i = 0; i < 600 && dropped.length < count; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Leaves `count` QoS 1 messages on `topic` queued in the persistent session `id` (v4 or v5). */
async function queue(
  broker: Mosquitto,
  id: string,
  protocolVersion: 4 | 5,
  topic: string,
  count: number,
): Promise<void> {
  const session = protocolVersion === 5 ? { sessionExpiryInterval: 300 } : {};
  const first = await connect(broker.url, {
    clientId: id,
    clean: false,
    protocolVersion,
    ...session,
  });
  await first.subscribe(topic, { qos: 1 });
  await first.close();
  await logged(broker, `Client ${id} disconnected`);
  const pub = await connect(broker.url, { clientId: `${id}-q`, protocolVersion });
  for (let i = 0; i < count; i++) await pub.publish(topic, `${topic}${i}`, { qos: 1 });
  await pub.close();
}

const QUEUED = 25; // more than Mosquitto's default in-flight window (20)

for (const protocolVersion of [4, 5] as const) {
  const session = protocolVersion === 5 ? { sessionExpiryInterval: 300 } : {};

  brokerTest(
    `held: ${QUEUED} queued messages of a filter no longer subscribed do not stop delivery on another (v${protocolVersion})`,
    async () => {
      // Mosquitto's default window: nothing in the config.
      await using broker = await startMosquitto();
      const id = fresh("held-old");
      await queue(broker, id, protocolVersion, "old", QUEUED);
      const options = { clientId: id, clean: false, protocolVersion, ...session } as const;
      const client = await connect(broker.url, { ...options, holdTimeout: 300 });
      const dropped = unclaimed(client);
      const pub = await connect(broker.url, { clientId: `${id}-p`, protocolVersion });
      try {
        assert.equal(client.sessionPresent, true);
        const b = await client.subscribe("b", { qos: 1 });
        for (let i = 0; i < 30; i++) await pub.publish("b", `b${i}`, { qos: 1 });
        const got = await within(take(b, 30, "the messages of b"), "the messages of b");
        assert.deepEqual(got.map((m) => m.text()), [...Array(30)].map((_, i) => `b${i}`));
        // Every message of "old" was reported, in order, once (the last ones, which came
        // past holdTimeout, at the next macrotask: perhaps after the messages of "b").
        await within(untilCount(dropped, QUEUED), "the unclaimed events");
        assert.deepEqual(
          dropped.map((m) => m.text()),
          [...Array(QUEUED)].map((_, i) => `old${i}`),
        );
      } finally {
        await client.close();
        await pub.close();
      }
      // They were acknowledged: the next connection of the session does not get them again.
      await logged(broker, `Client ${id} disconnected`);
      const again = await connect(broker.url, options);
      const droppedAgain = unclaimed(again);
      try {
        const old = await again.subscribe("old", { qos: 1 });
        const sender = await connect(broker.url, { clientId: `${id}-s`, protocolVersion });
        await sender.publish("old", "end", { qos: 1 });
        await sender.close();
        const [first] = await take(old, 1, "the next message of old");
        assert.equal(first.text(), "end");
        assert.equal(droppedAgain.length, 0);
      } finally {
        await again.close();
      }
    },
  );

  brokerTest(
    `held: a program that subscribes soon after connecting gets all ${QUEUED} of its queued messages (v${protocolVersion})`,
    async () => {
      await using broker = await startMosquitto();
      const id = fresh("held-soon");
      await queue(broker, id, protocolVersion, "a", QUEUED);
      // The default holdTimeout (1 s); the program does something else for 200 ms first.
      let arrived = 0;
      const client = await connect(broker.url, {
        clientId: id,
        clean: false,
        protocolVersion,
        ...session,
        onPacket: (direction, packet) => {
          if (direction === "received" && packet.type === "publish") arrived++;
        },
      });
      const dropped = unclaimed(client);
      try {
        await new Promise((resolve) => setTimeout(resolve, 200));
        // A window's worth (20): the rest waits at the broker for their acknowledgements.
        assert.ok(arrived >= 20, `only ${arrived} queued messages arrived before the SUBSCRIBE`);
        const a = await client.subscribe("a", { qos: 1 });
        const got = await take(a, QUEUED, "the queued messages of a");
        assert.deepEqual(got.map((m) => m.text()), [...Array(QUEUED)].map((_, i) => `a${i}`));
        assert.equal(dropped.length, 0);
      } finally {
        await client.close();
      }
    },
  );

  brokerTest(
    `held: with holdTimeout 0 the queued messages that come with the CONNACK are reported to a listener added once connect() resolves (v${protocolVersion})`,
    async () => {
      await using broker = await startMosquitto();
      const id = fresh("held-zero");
      await queue(broker, id, protocolVersion, "gone", 5);
      // Before, they were acknowledged and reported as they were read, before connect()
      // resolved: nobody could have listened, and they were lost without a word.
      const client = await connect(broker.url, {
        clientId: id,
        clean: false,
        protocolVersion,
        ...session,
        holdTimeout: 0,
      });
      const dropped = unclaimed(client);
      try {
        await within(untilCount(dropped, 5), "the unclaimed events");
        assert.deepEqual(dropped.map((m) => m.text()), [...Array(5)].map((_, i) => `gone${i}`));
      } finally {
        await client.close();
      }
    },
  );
}

Deno.test("held: a SUBSCRIBE awaiting its SUBACK past holdTimeout still gets what arrived before it", async () => {
  const { server, client } = await scripted({ holdTimeout: 50 });
  const dropped = unclaimed(client);
  try {
    server.holdReplies = true;
    // Acknowledged on receipt: the last one taken does not hold back the PUBACK checked below.
    const subscribing = client.subscribe("a", { qos: 1, ack: "receive" });
    await server.until(() => server.received.some((p) => p.type === "subscribe"), "SUBSCRIBE");
    // The server may send a subscription's messages before its SUBACK (section 3.8.4).
    for (let i = 1; i <= 3; i++) server.send(publish(i, 1, "a"));
    await new Promise((resolve) => setTimeout(resolve, 150)); // past holdTimeout
    server.flushReplies();
    const sub = await within(subscribing, "the SUBACK");
    const got = await take(sub, 3, "the messages sent before the SUBACK");
    assert.deepEqual(got.map((m) => m.text()), ["a#1", "a#2", "a#3"]);
    assert.equal(dropped.length, 0);
    // Once the grace is over and no SUBSCRIBE is awaited, a message for no subscription is
    // acknowledged (PUBACK in the server's log) and reported at the next macrotask.
    server.send(publish(4, 1, "other"));
    await server.until(() => server.acks().includes("puback:4"), "the PUBACK of the unclaimed");
    assert.deepEqual(dropped.map((m) => m.topic), ["other"]);
    await sub.unsubscribe();
  } finally {
    await client.close();
  }
});

for (const qos of [0, 1] as const) {
  Deno.test(`held: QoS ${qos} messages that stop the reading while a SUBSCRIBE awaits its SUBACK are dropped after holdTimeout, so the SUBACK is read`, async () => {
    const bufferSize = 5;
    const { server, client } = await scripted({ bufferSize, holdTimeout: 100 });
    const dropped = unclaimed(client);
    try {
      server.holdReplies = true;
      const subscribing = client.subscribe("wanted", { qos: 1 });
      await server.until(() => server.received.some((p) => p.type === "subscribe"), "SUBSCRIBE");
      // A backlog for a filter nobody subscribes to, with the SUBACK behind it: the held
      // messages reach their bound (4 × bufferSize) and the reading stops. Before, it stayed
      // stopped and the SUBACK was never read.
      for (let i = 1; i <= 200; i++) server.send(publish(i, qos, "unused/x"));
      server.flushReplies();
      const sub = await within(subscribing, "the SUBACK behind the backlog", 3000);
      assert.equal(dropped.length, 200);
      assert.ok(dropped.every((m) => m.topic === "unused/x"));
      await sub.unsubscribe();
    } finally {
      await client.close();
    }
  });
}

Deno.test("held: with holdTimeout Infinity a message for no subscription stays held until claimed", async () => {
  const { server, client } = await scripted({ holdTimeout: Infinity });
  const dropped = unclaimed(client);
  try {
    server.send(publish(1, 1, "late"));
    await new Promise((resolve) => setTimeout(resolve, 1500)); // past the default holdTimeout
    assert.deepEqual(server.acks(), [], "the held message was acknowledged");
    const sub = await client.subscribe("late", { qos: 1 });
    const [message] = await take(sub, 1, "the held message");
    assert.equal(message.text(), "late#1");
    assert.equal(dropped.length, 0);
    await sub.unsubscribe();
  } finally {
    await client.close();
  }
});

Deno.test("held: close() acknowledges the messages still held and reports them", async () => {
  const { server, client } = await scripted();
  const dropped = unclaimed(client);
  server.send(publish(1, 1, "nobody"));
  for (let i = 0; i < 5; i++) await turn();
  await client.close();
  assert.deepEqual(server.acks(), ["puback:1"]);
  assert.deepEqual(dropped.map((m) => m.text()), ["nobody#1"]);
});

Deno.test("held: messages dropped while nobody listens for 'unclaimed' are said on the console, once", async () => {
  const warnings: unknown[][] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => void warnings.push(args);
  const { server, client } = await scripted({ holdTimeout: 0 });
  try {
    server.send(publish(1, 1, "nobody"));
    server.send(publish(2, 1, "nobody"));
    await within(server.until(() => server.acks().length === 2, "both acknowledged"), "both");
    assert.equal(warnings.length, 1, "one warning for the client");
    assert.match(String(warnings[0][0]), /matched no subscription within holdTimeout \(0 ms\)/);
  } finally {
    await client.close();
    console.warn = warn;
  }
});

Deno.test("held: an 'unclaimed' listener silences the console warning", async () => {
  const warnings: unknown[][] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => void warnings.push(args);
  const { server, client } = await scripted({ holdTimeout: 0 });
  const dropped = unclaimed(client);
  try {
    server.send(publish(1, 1, "nobody"));
    await within(
      (async () => {
        while (dropped.length < 1) await turn();
      })(),
      "the unclaimed event",
    );
    assert.equal(warnings.length, 0);
  } finally {
    await client.close();
    console.warn = warn;
  }
});
