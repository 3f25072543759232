/**
 * Fault injection, part 1: streams of 10,000 sequence-numbered messages while a proxy cuts the
 * publisher's and the subscriber's links again and again (every few hundred messages, at seeded
 * random points: at once with `cut()`, or after a random number of bytes with `cutAfterBytes`,
 * usually in the middle of a packet). The client reconnects by itself; at the receiving client no
 * QoS 1 or 2 message may be missing and no QoS 2 message may arrive twice (QoS 1 duplicates are
 * allowed and counted).
 *
 * Replay a failure with the seed it prints: `RESILIENCE_SEED=<seed> deno test -A <this file>`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type MqttClient, type QoS } from "../mod.ts";
// Not exported from mod.ts yet (asked for in the report).
import type { ConnectEventDetail } from "../lib/client/client.ts";
import { brokerTest, type Proxy, startMosquitto, startProxy } from "./broker/mod.ts";
import { fresh, within } from "./client_helpers.ts";
import {
  between,
  consume,
  prng,
  publishStream,
  seedFor,
  SequenceTracker,
} from "./fixtures/stream.ts";

const TOTAL = 10_000;
const RECONNECT = { minDelay: 10, maxDelay: 50 };
const STREAM_TIMEOUT_MS = 60_000;

/** Counts the `connect` events that were reconnects. */
function countReconnects(client: MqttClient): { count: number } {
  const counter = { count: 0 };
  client.addEventListener("connect", (event) => {
    if ((event as CustomEvent<ConnectEventDetail>).detail.reconnect) counter.count++;
  });
  return counter;
}

/** Resolves once no message has arrived for `quietMs`, so late duplicates are counted too. */
async function settle(tracker: SequenceTracker, quietMs: number): Promise<void> {
  let last = -1;
  while (tracker.unique + tracker.duplicates !== last) {
    last = tracker.unique + tracker.duplicates;
    await new Promise((resolve) => setTimeout(resolve, quietMs));
  }
}

interface CutCase {
  qos: QoS;
  /** The publisher's clean session flag; the subscriber always uses clean=false. */
  publisherClean: boolean;
  seed: number;
}

async function streamWithCuts({ qos, publisherClean, seed }: CutCase): Promise<void> {
  const rand = prng(seed);
  // `flood` lifts Mosquitto's default limit of 1000 queued messages per client, above which it
  // drops QoS 1/2 messages for an offline subscriber by design.
  await using broker = await startMosquitto({ flood: true });
  const target = { hostname: broker.host, port: broker.port };
  await using pubProxy = await startProxy({ target });
  await using subProxy = await startProxy({ target });
  const topic = fresh(`resilience/cut/q${qos}`);

  // Declared before the clients so it is disposed after them: closing a client ends its streams.
  const subscriber = await connect(subProxy.url, {
    clientId: fresh("cut-sub"),
    clean: false,
    reconnect: RECONNECT,
  });
  const publisher = await connect(pubProxy.url, {
    clientId: fresh("cut-pub"),
    clean: publisherClean,
    reconnect: RECONNECT,
  }).catch(async (error) => {
    await subscriber.close();
    throw error;
  });
  const subReconnects = countReconnects(subscriber);
  const pubReconnects = countReconnects(publisher);
  const tracker = new SequenceTracker(TOTAL);
  const faults: string[] = [];
  let stop = false;
  let consuming: Promise<unknown> = Promise.resolve();
  let injecting: Promise<void> = Promise.resolve();
  try {
    const sub = await subscriber.subscribe(topic, { qos });
    consuming = consume(sub, tracker);

    // A fault every 200-500 messages (as counted at the subscriber): which link, and how.
    const stopped = Promise.withResolvers<void>();
    injecting = (async () => {
      let next = between(rand, 200, 500);
      while (!stop && next < TOTAL) {
        await Promise.race([tracker.reached(next), stopped.promise]);
        if (stop) break;
        const which = rand();
        const proxies: [string, Proxy][] = which < 0.4
          ? [["pub", pubProxy]]
          : which < 0.8
          ? [["sub", subProxy]]
          : [["pub", pubProxy], ["sub", subProxy]];
        for (const [name, proxy] of proxies) {
          if (rand() < 0.5) {
            proxy.cut();
            faults.push(`${tracker.unique}:${name}:cut`);
          } else {
            const bytes = between(rand, 1, 4000);
            proxy.cutAfterBytes(bytes);
            faults.push(`${tracker.unique}:${name}:after ${bytes} B`);
          }
        }
        next += between(rand, 200, 500);
      }
    })();
    const stopInjecting = () => {
      stop = true;
      stopped.resolve();
    };

    const started = performance.now();
    try {
      await within(
        publishStream(publisher, { topic, qos, from: 0, to: TOTAL, window: 200 }),
        `${TOTAL} publishes to complete (${tracker.summary()})`,
        STREAM_TIMEOUT_MS,
      );
      await within(
        tracker.reached(TOTAL),
        `every message to arrive (${tracker.summary()})`,
        STREAM_TIMEOUT_MS,
      ).catch((error) => {
        throw new Error(`${error.message}; faults: ${faults.join(", ")}`);
      });
    } finally {
      stopInjecting();
      await injecting;
    }
    await settle(tracker, 300);
    const elapsed = Math.round(performance.now() - started);
    console.log(
      `QoS ${qos}, publisher clean=${publisherClean}, seed ${seed}: ${faults.length} faults, ` +
        `reconnects pub ${pubReconnects.count} sub ${subReconnects.count}, ${elapsed} ms; ` +
        tracker.summary(),
    );
    const missing = tracker.missing();
    assert.deepEqual(missing, [], `QoS ${qos} messages lost (seed ${seed}): ${tracker.summary()}`);
    // Exactly once needs a session that outlives the link: a clean=true publisher cannot know
    // whether a PUBREL sent before the cut reached the broker, so it starts such flows again
    // (no loss) and the message may arrive twice.
    if (qos === 2 && !publisherClean) {
      assert.equal(
        tracker.duplicates,
        0,
        `QoS 2 messages delivered twice (seed ${seed}): ${tracker.summary()}`,
      );
    }
    assert.equal(tracker.foreign, 0, "messages with no sequence number arrived");
    // The faults really happened: both links were lost several times.
    assert.ok(faults.length >= 15, `only ${faults.length} faults were injected`);
    assert.ok(pubReconnects.count >= 3, `publisher reconnected only ${pubReconnects.count} times`);
    assert.ok(subReconnects.count >= 3, `subscriber reconnected only ${subReconnects.count} times`);
  } finally {
    await publisher.close();
    await subscriber.close();
    await consuming;
  }
}

brokerTest(
  "resilience: 10,000 QoS 1 messages survive repeated cuts (publisher clean=true)",
  () => streamWithCuts({ qos: 1, publisherClean: true, seed: seedFor(0x5eed01) }),
);

brokerTest(
  "resilience: 10,000 QoS 2 messages survive repeated cuts, none twice",
  () => streamWithCuts({ qos: 2, publisherClean: false, seed: seedFor(0x5eed02) }),
);

brokerTest(
  "resilience: 10,000 QoS 2 messages survive repeated cuts with a clean=true publisher, none lost",
  // Mosquitto forwards QoS 2 on PUBREL and drops a clean session's half-done flows, so the
  // client must start a flow that had reached PUBREC again after the reconnect.
  () => streamWithCuts({ qos: 2, publisherClean: true, seed: seedFor(0x5eed03) }),
);
