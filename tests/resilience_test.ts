/**
 * Fault injection, part 3: a half-open link (keep-alive must notice it, and the client recover),
 * and a slow subscriber under a flood (memory stays bounded, nothing is lost).
 *
 * The cut streams are in `resilience_cut_test.ts`, the broker kills in
 * `resilience_broker_kill_test.ts`, the publisher kills in `resilience_process_kill_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type MqttError } from "../mod.ts";
// Not exported from mod.ts yet (asked for in the report).
import type { CloseEventDetail, ConnectEventDetail } from "../lib/client/client.ts";
import { brokerTest, startMosquitto, startProxy } from "./broker/mod.ts";
import { fresh, within } from "./client_helpers.ts";
import {
  between,
  consume,
  payloadOf,
  prng,
  publishStream,
  seedFor,
  SequenceTracker,
} from "./fixtures/stream.ts";
import type { PublisherConfig } from "./fixtures/stream_publisher.ts";
import type { SlowSubscriberConfig, SlowSubscriberReport } from "./fixtures/slow_subscriber.ts";

const PUBLISHER = new URL("./fixtures/stream_publisher.ts", import.meta.url).pathname;
const SLOW_SUBSCRIBER = new URL("./fixtures/slow_subscriber.ts", import.meta.url).pathname;

/** The next event of `type` on `target`, with its time (`performance.now()`). */
function nextEvent<T>(target: EventTarget, type: string): Promise<{ detail: T; at: number }> {
  return new Promise((resolve) => {
    target.addEventListener(
      type,
      (event) => resolve({ detail: (event as CustomEvent<T>).detail, at: performance.now() }),
      { once: true },
    );
  });
}

const KEEPALIVE_S = 1;
const PING_TIMEOUT_MS = 1000;
// Timers fire late on a busy 2-core machine; the bound is keepAlive + pingTimeout plus this.
const TIMER_SLACK_MS = 1000;

brokerTest(
  "resilience: a half-open link is noticed within keepAlive + pingTimeout and recovered from",
  async () => {
    await using broker = await startMosquitto();
    await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
    const down = fresh("resilience/halfopen/down");
    const up = fresh("resilience/halfopen/up");
    // The peer talks to the broker directly; only the client's link goes half-open.
    await using peer = await connect(broker.url, { clientId: fresh("halfopen-peer") });
    const peerSub = await peer.subscribe(up, { qos: 1 });
    await using client = await connect(proxy.url, {
      clientId: fresh("halfopen-client"),
      clean: false,
      keepAlive: KEEPALIVE_S,
      pingTimeout: PING_TIMEOUT_MS,
      connectTimeout: 1000,
      reconnect: { minDelay: 50, maxDelay: 200 },
    });
    const sub = await client.subscribe(down, { qos: 1 });
    const received = new SequenceTracker(30);
    const consuming = consume(sub, received);
    const atPeer = new SequenceTracker(30);
    const peerConsuming = consume(peerSub, atPeer);
    const errors: MqttError[] = [];
    client.addEventListener("error", (e) => errors.push((e as CustomEvent<MqttError>).detail));

    // 0-9 flow both ways while the link is sound.
    await publishStream(peer, { topic: down, qos: 1, from: 0, to: 10 });
    await publishStream(client, { topic: up, qos: 1, from: 0, to: 10 });
    await within(received.reached(10), "messages 0-9 at the client");
    await within(atPeer.reached(10), "messages 0-9 at the peer");

    const disconnected = nextEvent<CloseEventDetail>(client, "disconnect");
    proxy.blackhole(true);
    const blackholedAt = performance.now();
    // 10-19 in both directions go into the black hole: QoS 1 must still arrive, later.
    const lost = [
      publishStream(peer, { topic: down, qos: 1, from: 10, to: 20 }),
      publishStream(client, { topic: up, qos: 1, from: 10, to: 20 }),
    ];
    const { detail, at } = await within(disconnected, "the half-open link to be noticed", 10_000);
    const noticedMs = Math.round(at - blackholedAt);
    assert.equal(detail.error?.code, "KEEPALIVE_TIMEOUT", `ended by ${detail.error?.message}`);
    assert.ok(
      noticedMs <= KEEPALIVE_S * 1000 + PING_TIMEOUT_MS + TIMER_SLACK_MS,
      `the half-open link was noticed after ${noticedMs} ms, ` +
        `more than keepAlive ${KEEPALIVE_S} s + pingTimeout ${PING_TIMEOUT_MS} ms`,
    );

    // Reconnect attempts meet the black hole too (the proxy accepts, nothing answers): they
    // must time out and be retried, not hang.
    const failedAttempt = nextEvent<MqttError>(client, "error");
    const attempt = await within(failedAttempt, "a reconnect attempt to fail", 5_000);
    assert.equal(attempt.detail.code, "CONNECT_TIMEOUT", attempt.detail.message);

    // Lift the black hole; the pending attempt dies with it (cut), the next one gets through.
    const reconnected = nextEvent(client, "connect");
    proxy.blackhole(false);
    const liftedAt = performance.now();
    proxy.cut();
    const back = await within(reconnected, "the client to reconnect", 5_000);
    const recoveredMs = Math.round(back.at - liftedAt);

    await publishStream(peer, { topic: down, qos: 1, from: 20, to: 30 });
    await publishStream(client, { topic: up, qos: 1, from: 20, to: 30 });
    await within(Promise.all(lost), "the publishes made into the black hole to complete");
    await within(received.reached(30), `all 30 at the client (${received.summary()})`);
    await within(atPeer.reached(30), `all 30 at the peer (${atPeer.summary()})`);
    console.log(
      `half-open noticed after ${noticedMs} ms, reconnected ${recoveredMs} ms after the ` +
        `black hole was lifted; ${errors.length} error events; client: ${received.summary()}; ` +
        `peer: ${atPeer.summary()}`,
    );
    assert.deepEqual(received.missing(), []);
    assert.deepEqual(atPeer.missing(), []);
    await client.close();
    await peer.close();
    await consuming;
    await peerConsuming;
  },
);

const ROUNDS = 20;

brokerTest(
  "resilience: a clean=true client re-subscribes after every reconnect, before its queued publishes",
  async () => {
    await using broker = await startMosquitto();
    await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
    const rand = prng(seedFor(0x7e5));
    const topics = [fresh("resilience/resub/a"), fresh("resilience/resub/b")];
    await using client = await connect(proxy.url, {
      clientId: fresh("resub"),
      clean: true,
      reconnect: { minDelay: 10, maxDelay: 50 },
    });
    const subs = [
      await client.subscribe(topics[0], { qos: 1 }),
      await client.subscribe(topics[1], { qos: 2 }),
    ];
    const trackers = subs.map(() => new SequenceTracker(ROUNDS));
    const consuming = subs.map((sub, i) => consume(sub, trackers[i]));
    const sessionPresent: boolean[] = [];
    client.addEventListener("connect", (e) => {
      sessionPresent.push((e as CustomEvent<ConnectEventDetail>).detail.sessionPresent);
    });
    // While disconnected (inside the disconnect event, before any reconnect attempt), the client
    // publishes to its own topics: the publishes wait in the offline queue. After the reconnect
    // the broker has no session, so they reach this client only if the session subscribed again
    // first (the broker handles a connection's packets in order).
    const published: Promise<unknown>[] = [];
    let round = 0;
    client.addEventListener("disconnect", () => {
      if (round >= ROUNDS) return; // close() ends the last connection too
      published.push(client.publish(topics[0], payloadOf(round), { qos: 1 }));
      published.push(client.publish(topics[1], payloadOf(round), { qos: 2 }));
      round++;
    });
    for (let k = 0; k < ROUNDS; k++) {
      const reconnected = nextEvent<ConnectEventDetail>(client, "connect");
      if (rand() < 0.5) proxy.cut();
      else proxy.cutAfterBytes(between(rand, 1, 40));
      // cutAfterBytes needs traffic: a PINGREQ would do, a publish is faster.
      await client.publish(fresh("resilience/resub/noise"), "x", { qos: 0 }).catch(() => {});
      await within(reconnected, `reconnect ${k + 1}`);
      await within(
        Promise.all(trackers.map((t) => t.reached(k + 1))),
        `round ${k}'s messages (${trackers.map((t) => t.summary()).join("; ")})`,
      );
    }
    await within(Promise.all(published), "the queued publishes to complete");
    console.log(
      `re-subscribed after ${sessionPresent.length} reconnects; ` +
        trackers.map((t) => t.summary()).join("; "),
    );
    assert.equal(round, ROUNDS);
    assert.equal(sessionPresent.length, ROUNDS);
    assert.ok(sessionPresent.every((p) => p === false), "the broker kept a clean session");
    for (const tracker of trackers) assert.deepEqual(tracker.missing(), [], tracker.summary());
    // A clean=true session cannot give exactly once across a cut: a QoS 2 flow whose PUBREL
    // may or may not have reached the broker is sent again (no loss), so at most the one
    // message in flight at each cut may arrive twice.
    assert.ok(trackers[1].duplicates <= ROUNDS, `QoS 2 duplicates: ${trackers[1].summary()}`);
    await client.close();
    await Promise.all(consuming);
  },
);

const FLOOD_TOTAL = 20_000;
const FLOOD_SIZE = 12 * 1024;
// 240 MiB flow in all; a client that buffered them instead of pushing back on the socket would
// pass this limit (a healthy one grows by tens of MiB: a few buffered messages, garbage not yet
// collected).
const FLOOD_LIMIT_BYTES = 150 * 1024 * 1024;
const mib = (n: number) => `${Math.round(n / 1024 / 1024)} MiB`;

brokerTest(
  "resilience: a slow subscriber under a flood keeps its memory bounded and loses nothing",
  async () => {
    await using broker = await startMosquitto({ flood: true });
    const topic = fresh("resilience/flood");
    // The subscriber runs in its own process, so that its memory is measured alone.
    const subConfig: SlowSubscriberConfig = {
      url: broker.url,
      clientId: fresh("flood-sub"),
      topic,
      total: FLOOD_TOTAL,
      bufferSize: 10,
      timeoutMs: 90_000,
    };
    const subscriber = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-check", SLOW_SUBSCRIBER, JSON.stringify(subConfig)],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let stdout = "";
    const ready = Promise.withResolvers<void>();
    const reading = (async () => {
      for await (const chunk of subscriber.stdout.pipeThrough(new TextDecoderStream())) {
        stdout += chunk;
        if (stdout.startsWith("ready\n")) ready.resolve();
      }
    })();
    const stderr = new Response(subscriber.stderr).text();
    const exited = subscriber.status.then(async (status) => {
      throw new Error(`the subscriber exited (${status.code}): ${await stderr}`);
    });
    exited.catch(() => {});
    let finished = false;
    try {
      await within(Promise.race([ready.promise, exited]), "the subscriber to be ready", 30_000);
      const pubConfig: PublisherConfig = {
        url: broker.url,
        clientId: fresh("flood-pub"),
        clean: true,
        topic,
        qos: 1,
        total: FLOOD_TOTAL,
        size: FLOOD_SIZE,
        window: 200,
      };
      const started = performance.now();
      const publisher = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-check", PUBLISHER, JSON.stringify(pubConfig)],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = await within(publisher, "the flooding publisher", 60_000);
      const publishedMs = Math.round(performance.now() - started);
      assert.ok(out.success, `publisher failed: ${new TextDecoder().decode(out.stderr)}`);
      // The flood is in; now the subscriber may go fast.
      const writer = subscriber.stdin.getWriter();
      await writer.write(new TextEncoder().encode("go\n"));
      await writer.close();
      const status = await within(subscriber.status, "the subscriber to finish", 90_000);
      finished = true;
      await reading;
      assert.equal(status.code, 0, await stderr);
      const report = JSON.parse(stdout.trim().split("\n").at(-1)!) as SlowSubscriberReport;
      const { baseline, peak } = report;
      console.log(
        `flood of ${FLOOD_TOTAL} x ${FLOOD_SIZE} B published in ${publishedMs} ms while the ` +
          `subscriber took ${report.consumedSlowly}; drained after ${
            Math.round(performance.now() - started)
          } ms. Subscriber process: rss ${mib(baseline.rss)} -> peak ${mib(peak.rss)}, ` +
          `heap+external ${mib(baseline.js)} -> peak ${mib(peak.js)}; ${report.summary}`,
      );
      // The flood really outran the consumer: most of it waited outside the subscriber.
      assert.ok(
        report.consumedSlowly < FLOOD_TOTAL / 2,
        `the subscriber kept up (${report.consumedSlowly} consumed during the flood)`,
      );
      assert.ok(
        peak.rss - baseline.rss < FLOOD_LIMIT_BYTES,
        `the subscriber's resident memory grew by ${mib(peak.rss - baseline.rss)}`,
      );
      assert.ok(
        peak.js - baseline.js < FLOOD_LIMIT_BYTES,
        `the subscriber's JS heap + external memory grew by ${mib(peak.js - baseline.js)}`,
      );
      assert.deepEqual(report.missing, [], report.summary);
    } finally {
      if (!finished) {
        subscriber.kill("SIGKILL");
        await subscriber.status;
        await reading.catch(() => {});
        await subscriber.stdin.abort().catch(() => {});
      }
      await stderr;
    }
  },
);
