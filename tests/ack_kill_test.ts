/**
 * Acknowledge on consume, end to end against Mosquitto: a subscriber process
 * (`tests/fixtures/ack_subscriber.ts`, `clean: false`, fixed client id) processes a numbered
 * QoS 1 stream, then a QoS 2 stream (with a `FileStore`), and is killed with SIGKILL at seeded
 * random moments and started again. Every message must reach the application at least once;
 * with QoS 2 only a message whose processing a kill cut short may arrive twice, so duplicates
 * are at most the number of kills.
 *
 * With `ACK_KILL_MODE=receive` the subscriber acknowledges on arrival (the old behaviour): the
 * messages it had buffered when killed are lost, and the test fails.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type AckMode, connect, type QoS } from "../mod.ts";
import { brokerTest, startMosquitto } from "./broker/mod.ts";
import { fresh, within } from "./client_helpers.ts";
import { between, payloadOf, prng, ranges, seedFor } from "./fixtures/stream.ts";
import type { AckSubscriberConfig } from "./fixtures/ack_subscriber.ts";

const SUBSCRIBER = new URL("./fixtures/ack_subscriber.ts", import.meta.url).pathname;
const TOTAL = 1500;
const KILLS = 3;

function envMode(): AckMode | undefined {
  try {
    return Deno.env.get("ACK_KILL_MODE") as AckMode | undefined;
  } catch {
    return undefined;
  }
}

/** A subscriber process; `ready` resolves once it has subscribed. */
function spawnSubscriber(config: AckSubscriberConfig) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", SUBSCRIBER, JSON.stringify(config)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let stdout = "";
  const ready = Promise.withResolvers<void>();
  const drained = (async () => {
    for await (const chunk of child.stdout) {
      stdout += decoder.decode(chunk);
      if (stdout.includes("ready\n")) ready.resolve();
    }
  })();
  const stderr = new Response(child.stderr).text();
  const done = Promise.all([child.status, drained, stderr]).then(([status, , err]) => {
    ready.reject(new Error(`subscriber exited (${status.code}/${status.signal}): ${err}`));
    return { status, stderr: err };
  });
  ready.promise.catch(() => {});
  return { child, ready: ready.promise, done };
}

async function counts(file: string): Promise<Map<number, number>> {
  const seen = new Map<number, number>();
  let text = "";
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const n = Number(line);
    seen.set(n, (seen.get(n) ?? 0) + 1);
  }
  return seen;
}

async function killedWhileProcessing(qos: QoS, seed: number): Promise<void> {
  const rand = prng(seed);
  const mode = envMode();
  // QoS 1: Mosquitto's in-flight window (20 by default) is the flow control; its queue must
  // not drop what piles up while the subscriber is down (default 1000 messages). QoS 2: no
  // window (`flood`), since Mosquitto 2.0.11 never sends queued QoS 2 messages to a connected
  // client whose window freed up (they wait for its next connection, with any acknowledgement
  // timing: checked with `ack: "receive"` too), so the client's own bound is the flow control.
  await using broker = await startMosquitto(
    qos === 2 ? { flood: true } : { extraConfig: "max_queued_messages 100000" },
  );
  const dir = await Deno.makeTempDir({ prefix: "ack-kill-" });
  const topic = fresh(`ack/kill/q${qos}`);
  const config: AckSubscriberConfig = {
    url: broker.url,
    clientId: fresh(`ack-kill-q${qos}`),
    topic,
    qos,
    outFile: `${dir}/processed`,
    storeFile: qos === 2 ? `${dir}/store.journal` : undefined,
    ack: mode,
    workMs: 1,
  };
  const publisher = await connect(broker.url, { clientId: fresh("ack-kill-pub") });
  let running: ReturnType<typeof spawnSubscriber> | undefined;
  const runs: string[] = [];
  const started = performance.now();
  try {
    running = spawnSubscriber(config);
    await within(running.ready, "the first subscriber run to subscribe", 10_000);
    // The whole stream, paced by the publisher's window, while the subscriber is killed.
    const publishing = (async () => {
      for (let i = 0; i < TOTAL; i += 50) {
        const batch = [];
        for (let k = i; k < Math.min(TOTAL, i + 50); k++) {
          batch.push(publisher.publish(topic, payloadOf(k, 64), { qos }));
        }
        await Promise.all(batch);
        if (Deno.env.get("ACK_KILL_DEBUG")) {
          console.log("published", i + 50, Math.round(performance.now() - started));
        }
      }
    })();
    for (let k = 0; k < KILLS; k++) {
      await new Promise((resolve) => setTimeout(resolve, between(rand, 150, 700)));
      running.child.kill("SIGKILL");
      await running.done;
      const processed = await counts(config.outFile);
      runs.push(`killed with ${processed.size} processed`);
      running = spawnSubscriber(config);
      await within(running.ready, `subscriber run ${k + 2} to subscribe`, 10_000);
    }
    await within(publishing, "the publisher", 20_000);
    // The last run processes the rest.
    const deadline = performance.now() + 15_000;
    while ((await counts(config.outFile)).size < TOTAL && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 200)); // late duplicates, if any
  } finally {
    if (running) {
      running.child.kill("SIGKILL");
      await running.done;
    }
    await publisher.close();
  }
  const seen = await counts(config.outFile);
  await Deno.remove(dir, { recursive: true });
  const missing: number[] = [];
  let duplicates = 0;
  for (let n = 0; n < TOTAL; n++) {
    const c = seen.get(n) ?? 0;
    if (c === 0) missing.push(n);
    else duplicates += c - 1;
  }
  const summary = `QoS ${qos}, ack ${mode ?? "consume"}, seed ${seed}: ${KILLS} kills (${
    runs.join(", ")
  }), ${TOTAL} messages, ${seen.size} distinct processed, ${duplicates} duplicates, missing ${
    ranges(missing)
  }, ${Math.round(performance.now() - started)} ms`;
  console.log(summary);
  assert.deepEqual(missing, [], `messages lost across subscriber kills: ${summary}`);
  if (qos === 2) {
    assert.ok(duplicates <= KILLS, `more QoS 2 duplicates than kills: ${summary}`);
  }
}

brokerTest(
  "ack on consume: a QoS 1 subscriber killed with SIGKILL while processing loses nothing (clean: false)",
  () => killedWhileProcessing(1, seedFor(0xac1)),
);

brokerTest(
  "ack on consume: a QoS 2 subscriber with a FileStore killed with SIGKILL loses nothing, duplicates ≤ kills",
  () => killedWhileProcessing(2, seedFor(0xac2)),
);
