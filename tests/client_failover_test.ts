/**
 * Failover between servers, with two independent real Mosquitto brokers: `connect()` given
 * both URLs tries them in order, moves to the second when the first is killed with SIGKILL,
 * applies the reconnect backoff per round through the list, re-subscribes on a server that has
 * no session, and resumes the session (resending in-flight QoS 1 with DUP) on one that has.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type MqttClient, type ReconnectEventDetail } from "../mod.ts";
import type { ConnectEventDetail } from "../lib/client/client.ts";
import { brokerTest, freePorts, startMosquitto } from "./broker/mod.ts";
import { fresh, hasCode, take, within } from "./client_helpers.ts";
import { consume, publishStream, ranges, SequenceTracker } from "./fixtures/stream.ts";

const RECONNECT = { minDelay: 20, maxDelay: 250 };

/** Resolves with the detail of the client's next `connect` event. */
function nextConnect(client: MqttClient): Promise<ConnectEventDetail> {
  return new Promise((resolve) => {
    client.addEventListener("connect", (e) => resolve(e.detail), { once: true });
  });
}

brokerTest("failover: the first connect tries the servers in order until one accepts", async () => {
  await using broker = await startMosquitto();
  const [dead1, dead2] = freePorts(2); // nothing listens there: refused at once
  const client = await connect(
    [`mqtt://127.0.0.1:${dead1}`, `mqtt://127.0.0.1:${dead2}`, broker.url],
    { reconnect: false },
  );
  assert.equal(client.url, broker.url);
  assert.equal(client.connected, true);
  await client.close();

  // None accepts: connect() fails once, with the last server's error.
  await assert.rejects(
    connect([`mqtt://127.0.0.1:${dead1}`, `mqtt://127.0.0.1:${dead2}`]),
    hasCode("TRANSPORT_ERROR", new RegExp(String(dead2))),
  );
});

brokerTest(
  "failover: a refusal that another server cannot mend ends the first connect",
  async () => {
    await using guarded = await startMosquitto({ auth: "password" });
    await using open = await startMosquitto();
    // Bad credentials are refused with 5 (not authorized): the next server is not tried.
    await assert.rejects(
      connect([guarded.url, open.url], { username: "user", password: "wrong" }),
      hasCode("CONNECTION_REFUSED"),
    );
    const log = await open.log();
    assert.doesNotMatch(log, /New client connected/);
  },
);

brokerTest(
  "failover: SIGKILL of the first broker: a QoS 1 stream goes on on the second",
  async () => {
    await using a = await startMosquitto();
    await using b = await startMosquitto();
    const topic = fresh("failover/stream");
    const total = 2000;
    const killAt = 500;
    const tracker = new SequenceTracker(total);
    await using watcher = await connect(b.url, { clientId: fresh("watcher") });
    const consuming = consume(await watcher.subscribe(topic, { qos: 1 }), tracker);

    await using publisher = await connect([a.url, b.url], {
      clientId: fresh("publisher"),
      reconnect: RECONNECT,
    });
    assert.equal(publisher.url, a.url);
    let killedAt = 0;
    let movedAt = 0;
    let firstAfter = 0;
    // What the client still owned when the link to the first broker went: never acknowledged
    // there, so it must reach the second.
    let owned: number[] = [];
    let handedAtLoss = 0;
    publisher.addEventListener("disconnect", () => {
      owned = range(0, total).filter((seq) => !resolved.has(seq));
      handedAtLoss = handedOff;
    }, { once: true });
    const resolved = new Set<number>();
    let handedOff = 0;
    const moved = nextConnect(publisher).then((detail) => {
      movedAt = performance.now();
      return detail;
    });
    await publishStream(publisher, {
      topic,
      qos: 1,
      from: 0,
      to: total,
      window: 50,
      onHandedOff: (seq) => {
        handedOff = seq + 1;
        if (seq === killAt) {
          killedAt = performance.now();
          // Not awaited: the stream keeps publishing while the broker dies.
          void a.kill("SIGKILL");
        }
      },
      onResolved: (seq) => {
        resolved.add(seq);
        if (movedAt !== 0 && firstAfter === 0) firstAfter = performance.now();
      },
    });
    const detail = await within(moved, "the move to the second broker");
    assert.deepEqual(detail, { sessionPresent: false, reconnect: true, url: b.url });
    assert.equal(publisher.url, b.url);
    assert.equal(resolved.size, total, "every publish completed");

    // What the first broker had not acknowledged was sent again to the second: nothing the
    // client still owned is lost.
    await within(tracker.reached(owned.length), "the deliveries");
    const missing = owned.filter((seq) => tracker.counts[seq] === 0);
    assert.deepEqual(missing, [], `on the second broker: ${tracker.summary()}`);
    console.log(
      `Mosquitto pair: failover ${(firstAfter - killedAt).toFixed(0)} ms from SIGKILL to the ` +
        `first completed publish (connected after ${(movedAt - killedAt).toFixed(0)} ms); ` +
        `${owned.length - (total - handedAtLoss)} in flight at the loss, resent: ` +
        `${ranges(owned.filter((seq) => seq < handedAtLoss))}; ` +
        `second broker saw ${tracker.unique} distinct, ${tracker.duplicates} duplicates`,
    );
    await publisher.close();
    await watcher.close();
    assert.equal(await consuming, undefined);
  },
);

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

brokerTest(
  "failover: a persistent subscriber re-subscribes on a server without its session",
  async () => {
    await using a = await startMosquitto();
    await using b = await startMosquitto({ verbose: true });
    const topic = fresh("failover/resub");
    await using sub = await connect([a.url, b.url], {
      clientId: fresh("sub"),
      clean: false,
      reconnect: RECONNECT,
    });
    const subscription = await sub.subscribe(topic, { qos: 1 });
    const moved = nextConnect(sub);
    await a.kill("SIGKILL");
    const detail = await within(moved, "the move to the second broker");
    assert.deepEqual(detail, { sessionPresent: false, reconnect: true, url: b.url });
    assert.equal(sub.sessionPresent, false);
    // The second broker never saw the SUBSCRIBE from the user: the client made it again, so the
    // old Subscription gets what is published there. The publisher waits for the SUBSCRIBE in
    // Mosquitto's log (the re-registration goes out right after CONNACK).
    await waitFor(() => b.log(), /Received SUBSCRIBE from sub-/);
    await using publisher = await connect(b.url);
    await publisher.publish(topic, "on the second", { qos: 1 });
    const [message] = await take(subscription, 1, "the message on the second broker");
    assert.equal(message.text(), "on the second");
  },
);

/** Polls `read` until its text matches `pattern`, for at most `ms`. */
async function waitFor(read: () => Promise<string>, pattern: RegExp, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pattern.test(await read())) {
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

brokerTest(
  "failover: on a server that has the session, in-flight QoS 1 and 2 are resent with DUP",
  async () => {
    await using a = await startMosquitto();
    await using b = await startMosquitto({ verbose: true });
    const clientId = fresh("resume");
    const topic = fresh("failover/dup");
    // The second broker holds a session for the client id, as a cluster's other node would.
    await (await connect(b.url, { clientId, clean: false })).close();
    await using watcher = await connect(b.url, { clientId: fresh("watcher") });
    const watched = await watcher.subscribe(topic, { qos: 2 });

    await using publisher = await connect([a.url, b.url], {
      clientId,
      clean: false,
      reconnect: RECONNECT,
    });
    assert.equal(publisher.url, a.url);
    // A stopped broker reads nothing and answers nothing: the PUBLISHes stay unacknowledged.
    await a.pause();
    const moved = nextConnect(publisher);
    const publishes = [1, 2, 3].map((n) =>
      publisher.publish(topic, `m${n}`, { qos: n === 3 ? 2 : 1 })
    );
    await new Promise((resolve) => setTimeout(resolve, 100)); // written to the socket by now
    await a.kill("SIGKILL");
    const detail = await within(moved, "the move to the second broker");
    assert.deepEqual(detail, { sessionPresent: true, reconnect: true, url: b.url });
    await within(Promise.all(publishes), "the resent publishes to complete");
    const messages = await take(watched, 3, "the resent messages");
    assert.deepEqual(messages.map((m) => m.text()), ["m1", "m2", "m3"]);
    // Mosquitto logs each PUBLISH's flags: d1 is the DUP flag of a resend (MQTT-3.3.1-1).
    const received = [...(await b.log()).matchAll(
      new RegExp(`Received PUBLISH from ${clientId} \\((d\\d, q\\d)`, "g"),
    )].map((m) => m[1]);
    assert.deepEqual(received, ["d1, q1", "d1, q1", "d1, q2"]);
    // The QoS 2 one was delivered once (the watcher's next message is the sentinel).
    await watcher.publish(topic, "sentinel", { qos: 1 });
    const [next] = await take(watched, 1, "the sentinel");
    assert.equal(next.text(), "sentinel");
  },
);

brokerTest("failover: the reconnect backoff applies per round through the list", async () => {
  await using broker = await startMosquitto();
  const [dead1, dead2] = freePorts(2);
  const url = broker.url.replace("mqtt://", "mqtt://someone:S3CRET@");
  const shown = broker.url.replace("mqtt://", "mqtt://someone:***@");
  await using client = await connect(
    [url, `mqtt://127.0.0.1:${dead1}`, `mqtt://127.0.0.1:${dead2}`],
    { reconnect: { minDelay: 50, maxDelay: 200 } },
  );
  assert.equal(client.url, shown);
  const events: ReconnectEventDetail[] = [];
  const sevenSeen = Promise.withResolvers<void>();
  client.addEventListener("reconnect", (e) => {
    events.push(e.detail);
    if (events.length === 7) sevenSeen.resolve();
  });
  await broker.kill("SIGKILL");
  await within(sevenSeen.promise, "two rounds of reconnect attempts");
  const back = nextConnect(client);
  await broker.restart();
  const detail = await within(back, "the reconnect to the restarted broker");
  assert.deepEqual(detail, { sessionPresent: false, reconnect: true, url: shown });
  assert.equal(client.url, shown);

  const seen = events.slice(0, 7).map((e) => `${e.attempt} ${e.url}`);
  const d1 = `mqtt://127.0.0.1:${dead1}`;
  const d2 = `mqtt://127.0.0.1:${dead2}`;
  // After the loss: the next server, after a backoff delay; the rest of the round at once;
  // when every server failed once, the next round backs off longer.
  assert.deepEqual(seen, [
    `1 ${d1}`,
    `1 ${d2}`,
    `1 ${shown}`,
    `2 ${d1}`,
    `2 ${d2}`,
    `2 ${shown}`,
    `3 ${d1}`,
  ]);
  for (const [i, e] of events.slice(0, 7).entries()) {
    if (i % 3 !== 0) assert.equal(e.delay, 0, `attempt ${i} is in the round: no delay`);
    else assert.ok(e.delay < 50 * 2 ** (i / 3), `round ${i / 3 + 1}: delay ${e.delay}`);
  }
});
