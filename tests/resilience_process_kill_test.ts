/**
 * Fault injection, part 4: the publishing process is killed with SIGKILL in the middle of a
 * numbered stream, several times, and started again with the same client id and the same
 * `FileStore` (`tests/fixtures/stream_publisher.ts`). The restarted process resumes the session:
 * its in-flight and waiting messages go out again from the store (QoS 2 past PUBREC as PUBREL
 * only), and it publishes on from the number after the last one it handed to the client. At the
 * subscriber no message may be missing and no QoS 2 message may arrive twice.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type QoS } from "../mod.ts";
import { brokerTest, startMosquitto } from "./broker/mod.ts";
import { fresh, within } from "./client_helpers.ts";
import { between, consume, prng, seedFor, SequenceTracker } from "./fixtures/stream.ts";
import type { PublisherConfig } from "./fixtures/stream_publisher.ts";

const PUBLISHER = new URL("./fixtures/stream_publisher.ts", import.meta.url).pathname;
const TOTAL = 10_000;
const KILLS = 4;

async function settle(tracker: SequenceTracker, quietMs: number): Promise<void> {
  let last = -1;
  while (tracker.unique + tracker.duplicates !== last) {
    last = tracker.unique + tracker.duplicates;
    await new Promise((resolve) => setTimeout(resolve, quietMs));
  }
}

/** A publisher process; `done` resolves with its exit status and output. */
function spawnPublisher(config: PublisherConfig) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", PUBLISHER, JSON.stringify(config)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  const done = child.output().then((out) => ({
    code: out.code,
    signal: out.signal,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  }));
  return { child, done };
}

async function publisherKilled(qos: QoS, seed: number): Promise<void> {
  const rand = prng(seed);
  await using broker = await startMosquitto({ flood: true });
  const dir = await Deno.makeTempDir({ prefix: "resilience-store-" });
  const topic = fresh(`resilience/pubkill/q${qos}`);
  const subscriber = await connect(broker.url, { clientId: fresh("pubkill-sub"), clean: false });
  const tracker = new SequenceTracker(TOTAL);
  let consuming: Promise<unknown> = Promise.resolve();
  let running: ReturnType<typeof spawnPublisher> | undefined;
  const runs: string[] = [];
  try {
    const sub = await subscriber.subscribe(topic, { qos });
    consuming = consume(sub, tracker);
    const config: PublisherConfig = {
      url: broker.url,
      clientId: fresh("pubkill-pub"),
      clean: false,
      topic,
      qos,
      total: TOTAL,
      window: 100,
      progressFile: `${dir}/progress`,
      storeFile: `${dir}/store.journal`,
    };
    // Kill points, as messages seen by the subscriber, spread over the stream.
    const killAt: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const slot = TOTAL / (KILLS + 1);
      killAt.push(Math.round(slot * (k + 0.5)) + between(rand, 0, Math.round(slot / 2)));
    }
    const started = performance.now();
    for (const at of killAt) {
      const runStarted = performance.now();
      running = spawnPublisher(config);
      const exited = running.done.then((r) => `exited early: ${JSON.stringify(r)}`);
      const reached = tracker.reached(at).then(() => "reached");
      const what = await within(
        Promise.race([reached, exited]),
        `the subscriber to reach ${at} (${tracker.summary()})`,
        30_000,
      );
      assert.equal(what, "reached", what);
      running.child.kill("SIGKILL");
      const result = await running.done;
      running = undefined;
      runs.push(
        `${result.stdout.trim().split("\n")[0]}, killed at ${tracker.unique} delivered after ${
          Math.round(performance.now() - runStarted)
        } ms`,
      );
    }
    const lastStarted = performance.now();
    running = spawnPublisher(config);
    const last = await within(running.done, "the last publisher run", 60_000);
    running = undefined;
    runs.push(
      `${last.stdout.trim().replaceAll("\n", ", ")} in ${
        Math.round(performance.now() - lastStarted)
      } ms`,
    );
    assert.equal(last.code, 0, `the last publisher run failed: ${last.stderr}`);
    await within(
      tracker.reached(TOTAL),
      `every message to arrive (${tracker.summary()}; runs: ${runs.join(" | ")})`,
      10_000,
    ).catch(() => {});
    await settle(tracker, 300);
    console.log(
      `QoS ${qos}, seed ${seed}, ${Math.round(performance.now() - started)} ms: ` +
        `${runs.join(" | ")}; ${tracker.summary()}`,
    );
    assert.deepEqual(
      tracker.missing(),
      [],
      `messages lost across publisher kills (seed ${seed}): ${tracker.summary()}`,
    );
    if (qos === 2) {
      assert.equal(
        tracker.duplicates,
        0,
        `QoS 2 messages delivered twice across publisher kills (seed ${seed}): ${tracker.summary()}`,
      );
    }
    assert.equal(tracker.foreign, 0);
  } finally {
    if (running) {
      running.child.kill("SIGKILL");
      await running.done;
    }
    await subscriber.close();
    await consuming;
    await Deno.remove(dir, { recursive: true });
  }
}

brokerTest(
  "resilience: QoS 1 stream survives kill -9 of the publisher (file store)",
  () => publisherKilled(1, seedFor(0x9b1)),
);

brokerTest(
  "resilience: QoS 2 stream survives kill -9 of the publisher, none twice",
  () => publisherKilled(2, seedFor(0x9b2)),
);
