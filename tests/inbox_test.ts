/**
 * Defects of the client's inbox (issue 15), each a regression test: held messages stay bounded
 * while a SUBSCRIBE awaits its SUBACK, a subscribe() racing an unsubscribe() of the same filter
 * ends instead of waiting for nothing, and leaving a `for await` loop while messages still
 * arrive behaves like unsubscribe() (through the API and through `deno task sub -C 1`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type QoS } from "../mod.ts";
import { brokerTest, startMosquitto } from "./broker/mod.ts";
import { fresh, take, within } from "./client_helpers.ts";
import { publish, ScriptedServer, turn } from "./scripted_server.ts";

const READ_AHEAD_FACTOR = 4; // lib/client/inbox.ts

for (const qos of [0, 1] as QoS[]) {
  Deno.test(`inbox: held QoS ${qos} messages stay bounded while a SUBSCRIBE awaits its SUBACK`, async () => {
    const server = new ScriptedServer();
    const bufferSize = 5;
    const client = await connect("mqtt://scripted.invalid", {
      transport: server.open,
      bufferSize,
      closeTimeout: 200,
    });
    try {
      server.holdReplies = true;
      const subscribing = client.subscribe("wanted", { qos: 1 });
      await server.until(() => server.received.some((p) => p.type === "subscribe"), "SUBSCRIBE");
      // A persistent session's backlog for a filter no longer used, with the SUBACK behind it.
      const before = server.pulled;
      for (let i = 1; i <= 200; i++) server.send(publish(i, qos, "unused/x"));
      server.flushReplies();
      for (let i = 0; i < 10; i++) await turn();
      const read = server.pulled - before;
      assert.ok(
        read <= bufferSize * READ_AHEAD_FACTOR + 1,
        `the client read ${read} of the 200 held messages (bound ${
          bufferSize * READ_AHEAD_FACTOR
        })`,
      );
      // Unsubscribing the unused filter drops what was held, so the SUBACK is read.
      await client.unsubscribe("unused/#").catch(() => {});
      const sub = await within(subscribing, "the SUBACK behind the backlog");
      await sub.unsubscribe();
    } finally {
      await client.close();
    }
  });
}

Deno.test("inbox: subscribe() racing unsubscribe() of the same filter ends instead of waiting for nothing", async () => {
  const server = new ScriptedServer();
  const client = await connect("mqtt://scripted.invalid", { transport: server.open });
  try {
    server.holdReplies = true;
    const subscribing = client.subscribe("f", { qos: 1 });
    await server.until(() => server.received.some((p) => p.type === "subscribe"), "SUBSCRIBE");
    const unsubscribing = client.unsubscribe("f");
    await server.until(() => server.received.some((p) => p.type === "unsubscribe"), "UNSUBSCRIBE");
    // The broker handles them in order: SUBACK, then UNSUBACK; it is not subscribed to "f".
    server.flushReplies();
    const sub = await within(subscribing, "the SUBACK");
    await unsubscribing;
    assert.equal(sub.ended, true, "the subscription is not live at the broker, so it ends");
    const next = await within(sub[Symbol.asyncIterator]().next(), "the iteration to finish");
    assert.equal(next.done, true);
  } finally {
    await client.close();
  }
});

Deno.test("inbox: a subscribe() sent after the UNSUBSCRIBE of its filter stays live", async () => {
  const server = new ScriptedServer();
  const client = await connect("mqtt://scripted.invalid", { transport: server.open });
  try {
    const first = await client.subscribe("f", { qos: 1 });
    server.holdReplies = true;
    const unsubscribing = first.unsubscribe();
    const again = client.subscribe("f", { qos: 1 });
    await server.until(
      () => server.received.filter((p) => p.type === "subscribe").length === 2,
      "2nd SUBSCRIBE",
    );
    server.flushReplies();
    await unsubscribing;
    const sub = await within(again, "the SUBACK");
    assert.equal(sub.ended, false);
    server.send(publish(1, 1, "f"));
    assert.equal((await take(sub, 1, "a message"))[0].text(), "f#1");
    await sub.unsubscribe();
  } finally {
    await client.close();
  }
});

/**
 * Publishes to `topic` in batches of `batchSize`, `pauseMs` apart, until `stop` is aborted. The
 * pause keeps the publisher (in this process) from outrunning the subscriber's reading, which
 * would only measure the machine: what matters is that messages keep arriving.
 */
async function flood(
  url: string,
  topic: string,
  qos: QoS,
  stop: AbortSignal,
  batchSize = 100,
  pauseMs = 5,
): Promise<number> {
  const pub = await connect(url, { clientId: fresh("flood") });
  let sent = 0;
  try {
    while (!stop.aborted) {
      const batch = [];
      for (let i = 0; i < batchSize; i++) batch.push(pub.publish(topic, `busy ${sent++}`, { qos }));
      await Promise.all(batch);
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  } finally {
    await pub.close();
  }
  return sent;
}

for (const qos of [0, 1] as QoS[]) {
  brokerTest(
    `inbox: leaving a for await loop while QoS ${qos} messages flood in is like unsubscribe() and does not hang`,
    async () => {
      await using broker = await startMosquitto({ flood: true });
      const topic = fresh("busy");
      const client = await connect(broker.url, { clientId: fresh("leaver"), bufferSize: 2 });
      const stop = new AbortController();
      let flooding: Promise<number> | undefined;
      try {
        const sub = await client.subscribe(topic, { qos });
        flooding = flood(broker.url, topic, qos, stop.signal);
        const left = (async () => {
          let n = 0;
          for await (const _ of sub) {
            if (++n === 3) break; // UNSUBSCRIBE while the flood goes on
          }
        })();
        await within(left, "the loop to be left", 5_000);
        assert.equal(sub.ended, true);
        // The client still reads: a round trip on another topic completes.
        const other = await within(client.subscribe(`${topic}-other`, { qos: 1 }), "a SUBACK");
        await client.publish(`${topic}-other`, "still here", { qos: 1 });
        assert.equal((await take(other, 1, "a message after the loop"))[0].text(), "still here");
      } finally {
        stop.abort();
        await flooding;
        await client.close();
      }
    },
  );
}

brokerTest(
  "inbox: `deno task sub -t busy -C 1` exits after one message while a flood goes on",
  async () => {
    await using broker = await startMosquitto({ flood: true });
    const topic = fresh("busy");
    const stop = new AbortController();
    const flooding = flood(broker.url, topic, 0, stop.signal);
    const tool = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--no-check",
        "lib/cli/sub.ts",
        ...["-h", broker.host, "-p", String(broker.port), "-t", topic, "-C", "1"],
      ],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      const out = await within(tool.output(), "sub -C 1 to exit", 10_000);
      const stdout = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.match(stdout, /^busy \d+\n$/);
    } finally {
      try {
        tool.kill("SIGKILL");
      } catch {
        // exited
      }
      await tool.status;
      stop.abort();
      await flooding;
    }
  },
);

Deno.test("inbox: a subscription's own bufferSize bounds the read-ahead of unconsumed QoS 1 messages, not the client's", async () => {
  const server = new ScriptedServer();
  const client = await connect("mqtt://scripted.invalid", {
    transport: server.open,
    bufferSize: 1000, // the client's default for subscriptions that give none
    closeTimeout: 200,
  });
  try {
    const sub = await client.subscribe("flood", { qos: 1, bufferSize: 2 });
    const before = server.pulled;
    for (let i = 1; i <= 200; i++) server.send(publish(i, 1, "flood"));
    for (let i = 0; i < 10; i++) await turn();
    // Nobody consumes: with acknowledgement on consume, reading on past the buffer is allowed
    // only up to READ_AHEAD_FACTOR × the subscription's bufferSize (not 4 × 1000).
    const read = server.pulled - before;
    assert.ok(read <= 2 * READ_AHEAD_FACTOR + 1, `the client read ${read} of 200 messages`);
    await sub.unsubscribe();
  } finally {
    await client.close();
  }
});
