/**
 * Failover across the nodes of a real three-node NATS cluster (JetStream, MQTT session streams
 * and consumers replicated on every node; harness in `tests/broker/nats.ts`): clients given all
 * three MQTT URLs keep a QoS 1 stream going while the node each one is on is killed with SIGKILL
 * and restarted, one after the other; the persistent subscriber resumes its session on another
 * node. NATS does not support QoS 2 at all, which a test here asserts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type MqttClient } from "../mod.ts";
import type { ConnectEventDetail } from "../lib/client/client.ts";
import { type NatsCluster, natsTest, startNatsCluster } from "./broker/nats.ts";
import { closed, fresh, within } from "./client_helpers.ts";
import { consume, publishStream, ranges, SequenceTracker } from "./fixtures/stream.ts";

const TOTAL = 10_000;
const RECONNECT = { minDelay: 50, maxDelay: 500 };

/** The connect events of a client, with when they came. */
function recordConnects(
  client: MqttClient,
  who: string,
): (ConnectEventDetail & { at: number; wall: number })[] {
  const seen: (ConnectEventDetail & { at: number; wall: number })[] = [];
  client.addEventListener(
    "connect",
    (e) => seen.push({ ...e.detail, at: performance.now(), wall: Date.now() }),
  );
  if (Deno.env.get("FAILOVER_DEBUG")) {
    const t0 = performance.now();
    const say = (what: string) =>
      console.log(`${(performance.now() - t0).toFixed(0)} ${who} ${what}`);
    client.addEventListener("connect", (e) => say(`connect ${JSON.stringify(e.detail)}`));
    client.addEventListener("reconnect", (e) => say(`reconnect ${JSON.stringify(e.detail)}`));
    client.addEventListener("error", (e) => say(`error ${e.detail.code} ${e.detail.message}`));
    client.addEventListener("disconnect", () => say("disconnect"));
  }
  return seen;
}

/** Kills the node `client` is on with SIGKILL; returns when, and which node. */
async function killNodeOf(cluster: NatsCluster, client: MqttClient, who: string) {
  const node = cluster.nodeOf(client.url);
  assert.ok(node, `${who} is on ${client.url}, not a node of the cluster`);
  const at = performance.now();
  const wall = Date.now();
  await node.kill("SIGKILL");
  return { node, at, wall };
}

natsTest("NATS cluster: a QoS 1 stream survives SIGKILL of each client's node", async () => {
  await using cluster = await startNatsCluster();
  const [u1, u2, u3] = cluster.urls;
  const topic = fresh("cluster/stream");
  const tracker = new SequenceTracker(TOTAL);

  // The subscriber starts on n3 and the publisher on n1, so each kill hits one of them.
  const subscriber = await connect([u3, u1, u2], {
    clientId: fresh("cluster-sub"),
    clean: false,
    reconnect: RECONNECT,
  });
  const subConnects = recordConnects(subscriber, "sub");
  const consuming = consume(await subscriber.subscribe(topic, { qos: 1 }), tracker);
  const publisher = await connect([u1, u2, u3], {
    clientId: fresh("cluster-pub"),
    clean: false,
    reconnect: RECONNECT,
  });
  const pubConnects = recordConnects(publisher, "pub");
  assert.equal(cluster.nodeOf(publisher.url)!.name, "n1");
  assert.equal(cluster.nodeOf(subscriber.url)!.name, "n3");

  const resolvedAt = new Float64Array(TOTAL);
  let resolved = 0;
  const reached = (count: number) =>
    new Promise<void>((resolve) => {
      const poll = () => (resolved >= count ? resolve() : setTimeout(poll, 5));
      poll();
    });
  const stream = (from: number, to: number) =>
    publishStream(publisher, {
      topic,
      qos: 1,
      from,
      to,
      window: 100,
      onResolved: (seq) => {
        resolvedAt[seq] = performance.now();
        resolved++;
      },
    });
  const started = performance.now();
  const progress = Deno.env.get("FAILOVER_DEBUG")
    ? setInterval(
      () =>
        console.log(
          `${
            (performance.now() - started).toFixed(0)
          } published ${resolved}, received ${tracker.unique}`,
        ),
      1000,
    )
    : undefined;

  // 1. The publisher's node dies mid-stream; the publisher moves on, the node comes back.
  const first = stream(0, 4000);
  await within(reached(1000), "1,000 publishes", 30_000);
  const pubKill = await killNodeOf(cluster, publisher, "the publisher");
  // The first connection after the kill (NATS may also have dropped a client before it).
  const movedAfter = (connects: typeof pubConnects, kill: { at: number }) =>
    connects.find((c) => c.at > kill.at);
  await within(
    waitUntil(() => movedAfter(pubConnects, pubKill) !== undefined),
    "the publisher's failover",
    30_000,
  );
  await within(pubKill.node.restart(), `${pubKill.node.name}'s restart`, 30_000);
  // A watchdog against a stall, not a speed bar: failover alone took up to 21.5 s in the runs
  // measured (a NATS node electing JetStream leaders holds each CONNECT 4 s), on a busy machine more.
  await within(first, "the first 4,000 publishes", 60_000);

  // 2. The subscriber's node dies mid-stream (the rest of the stream is published only now, so
  // it is): the subscriber resumes its session on another node, the node comes back.
  const second = stream(4000, TOTAL);
  await within(reached(6000), "6,000 publishes", 30_000);
  const subKill = await killNodeOf(cluster, subscriber, "the subscriber");
  const subCountAtKill = tracker.unique;
  await within(
    waitUntil(() => movedAfter(subConnects, subKill) !== undefined),
    "the subscriber's failover",
    30_000,
  );
  await within(subKill.node.restart(), `${subKill.node.name}'s restart`, 30_000);

  await within(second, "the whole stream", 60_000);
  await within(tracker.reached(TOTAL), `every message (${tracker.summary()})`, 30_000);
  const elapsed = performance.now() - started;
  clearInterval(progress);

  // Failover times: kill to the first publish completed (publisher) / message received
  // (subscriber) on the new node.
  const pubMoved = movedAfter(pubConnects, pubKill)!;
  let firstPublishAfter = Infinity;
  for (const at of resolvedAt) {
    if (at > pubMoved.at && at < firstPublishAfter) firstPublishAfter = at;
  }
  const subMoved = movedAfter(subConnects, subKill)!;
  let firstMessageAfter = Infinity;
  for (const at of tracker.firstAt) {
    if (at !== 0 && at > subMoved.wall) firstMessageAfter = Math.min(firstMessageAfter, at);
  }
  console.log(
    `NATS cluster (${cluster.version}, healthy after ${cluster.startupMs.toFixed(0)} ms): ` +
      `${TOTAL} QoS 1 messages in ${(elapsed / 1000).toFixed(1)} s; ` +
      `publisher ${pubKill.node.name} -> ${cluster.nodeOf(pubMoved.url)!.name}: ` +
      `connected ${(pubMoved.at - pubKill.at).toFixed(0)} ms after SIGKILL, first publish ` +
      `completed after ${(firstPublishAfter - pubKill.at).toFixed(0)} ms; ` +
      `subscriber ${subKill.node.name} -> ${cluster.nodeOf(subMoved.url)!.name} ` +
      `(session present: ${subMoved.sessionPresent}): connected ` +
      `${(subMoved.at - subKill.at).toFixed(0)} ms after SIGKILL, first message after ` +
      `${(firstMessageAfter - subKill.wall).toFixed(0)} ms (${subCountAtKill} had arrived); ` +
      `received ${tracker.unique} distinct, ${tracker.duplicates} duplicates ` +
      `(${ranges(tracker.duplicated())})`,
  );

  assert.deepEqual(tracker.missing(), [], tracker.summary());
  assert.equal(tracker.foreign, 0);
  // The cluster kept the subscriber's session: it resumed, it did not subscribe again.
  assert.equal(subMoved.sessionPresent, true);
  assert.equal(pubMoved.sessionPresent, true);
  for (const [who, client] of [["publisher", publisher], ["subscriber", subscriber]] as const) {
    const node = cluster.nodeOf(client.url);
    assert.ok(node?.running, `the ${who} ends on a running node (${client.url})`);
    assert.equal(client.connected, true);
  }
  await publisher.close();
  await subscriber.close();
  assert.equal(await consuming, undefined);
});

/** Resolves once `condition()` holds (polled every 10 ms). */
function waitUntil(condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const poll = () => (condition() ? resolve() : setTimeout(poll, 10));
    poll();
  });
}

natsTest("NATS cluster: a QoS 2 PUBLISH closes the connection (NATS has no QoS 2)", async () => {
  await using cluster = await startNatsCluster();
  const client = await connect([...cluster.urls], { reconnect: false });
  const node = cluster.nodeOf(client.url)!;
  const ended = closed(client);
  const publish = client.publish(fresh("cluster/qos2"), "exactly once?", { qos: 2 });
  const error = await within(ended, "the connection to close");
  assert.equal(error?.code, "CONNECTION_CLOSED", String(error));
  await assert.rejects(publish);
  assert.match(await node.log(), /publish QoS=2 not supported/);
});
