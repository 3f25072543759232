import assert from "node:assert/strict";
import type { QoS } from "../lib/codec/packet.ts";
import { MqttError } from "../lib/errors.ts";
import { Message } from "../lib/client/message.ts";
import {
  createSubscription,
  endSubscription,
  pushMessage,
  type Subscription,
  whenReady,
} from "../lib/client/subscription.ts";

const encoder = new TextEncoder();

function message(topic: string, body: string, qos: QoS = 0): Message {
  return new Message({
    type: "publish",
    topic,
    payload: encoder.encode(body),
    qos,
    retain: false,
    dup: false,
  });
}

function subscription(bufferSize = 4, filters = ["a/#"]) {
  const calls: Subscription[] = [];
  const sub = createSubscription(filters, filters.map(() => 1 as QoS), {
    bufferSize,
    unsubscribe: (s) => {
      calls.push(s);
      return Promise.resolve();
    },
  });
  return { sub, calls };
}

function isInvalidState(error: unknown): boolean {
  return error instanceof MqttError && error.code === "INVALID_STATE";
}

Deno.test("Message copies the PUBLISH fields and decodes text and JSON", () => {
  const payload = encoder.encode('{"t":21.5,"u":"°C"}');
  const msg = new Message({
    type: "publish",
    topic: "sensors/1/temp",
    payload,
    qos: 2,
    retain: true,
    dup: true,
    packetId: 9,
  });
  assert.equal(msg.topic, "sensors/1/temp");
  assert.equal(msg.payload, payload); // not copied
  assert.equal(msg.qos, 2);
  assert.equal(msg.retain, true);
  assert.equal(msg.dup, true);
  assert.equal(msg.text(), '{"t":21.5,"u":"°C"}');
  assert.deepEqual(msg.json<{ t: number; u: string }>(), { t: 21.5, u: "°C" });
  assert.throws(() => message("t", "not json").json(), SyntaxError);
  assert.equal(message("t", "").text(), "");
});

Deno.test("Subscription exposes filters and granted QoS, and matches any of its filters", () => {
  const sub = createSubscription(["a/+", "b/#", "$SYS/+"], [0, 1, 2], {
    bufferSize: 1,
    unsubscribe: () => Promise.resolve(),
  });
  assert.deepEqual(sub.filters, ["a/+", "b/#", "$SYS/+"]);
  assert.deepEqual(sub.granted, [0, 1, 2]);
  assert.ok(Object.isFrozen(sub.filters));
  assert.ok(sub.matches("a/x"));
  assert.ok(sub.matches("b"));
  assert.ok(sub.matches("b/c/d"));
  assert.ok(sub.matches("$SYS/uptime"));
  assert.ok(!sub.matches("a/x/y"));
  assert.ok(!sub.matches("c"));
});

Deno.test("Subscription rejects a bufferSize below 1", () => {
  for (const bufferSize of [0, -1, 1.5, NaN]) {
    assert.throws(
      () => createSubscription(["a"], [0], { bufferSize, unsubscribe: () => Promise.resolve() }),
      (e) => e instanceof MqttError && e.code === "INVALID_OPTION",
    );
  }
});

Deno.test("Subscription delivers buffered messages in order", async () => {
  const { sub, calls } = subscription(10);
  for (let i = 0; i < 5; i++) assert.equal(pushMessage(sub, message("a/b", `m${i}`)), true);
  assert.equal(sub.buffered, 5);
  const it = sub[Symbol.asyncIterator]();
  for (let i = 0; i < 5; i++) {
    const r = await it.next();
    assert.equal(r.done, false);
    assert.equal((r.value as Message).text(), `m${i}`);
  }
  assert.equal(sub.buffered, 0);
  endSubscription(sub);
  assert.deepEqual(await it.next(), { done: true, value: undefined });
  assert.equal(calls.length, 0); // ending is not unsubscribing
});

Deno.test("Subscription hands a message straight to a waiting consumer", async () => {
  const { sub } = subscription(1);
  const it = sub[Symbol.asyncIterator]();
  const pending = it.next();
  // The buffer stays empty, so a bufferSize of 1 is not reached.
  assert.equal(pushMessage(sub, message("a/1", "x")), true);
  assert.equal(sub.buffered, 0);
  const r = await pending;
  assert.equal(r.done, false);
  assert.equal((r.value as Message).text(), "x");
  endSubscription(sub);
});

Deno.test("Subscription.push signals backpressure at bufferSize and ready() waits for the consumer", async () => {
  const { sub } = subscription(3);
  assert.equal(whenReady(sub), whenReady(sub)); // shared resolved promise while not full
  assert.equal(pushMessage(sub, message("a/1", "1")), true);
  assert.equal(pushMessage(sub, message("a/2", "2")), true);
  assert.equal(pushMessage(sub, message("a/3", "3")), false); // buffer reached bufferSize
  let ready = false;
  const waiting = whenReady(sub).then(() => {
    ready = true;
  });
  assert.equal(whenReady(sub), whenReady(sub)); // one promise per stall, not one per call
  await Promise.resolve();
  assert.equal(ready, false);
  const it = sub[Symbol.asyncIterator]();
  assert.equal(((await it.next()).value as Message).text(), "1");
  await waiting;
  assert.equal(ready, true);
  assert.equal(pushMessage(sub, message("a/4", "4")), false); // full again
  endSubscription(sub);
});

Deno.test("Subscription never drops: pushes past bufferSize are kept, in order", async () => {
  const { sub } = subscription(4);
  const it = sub[Symbol.asyncIterator]();
  // Interleave to move the ring's head, then overfill far past its capacity.
  let pushed = 0;
  let received = 0;
  for (let round = 0; round < 50; round++) {
    for (let k = 0; k < 3; k++) pushMessage(sub, message("a/x", String(pushed++)));
    for (let k = 0; k < 2; k++) {
      assert.equal(((await it.next()).value as Message).text(), String(received++));
    }
  }
  const results: boolean[] = [];
  for (let k = 0; k < 1000; k++) results.push(pushMessage(sub, message("a/x", String(pushed++))));
  assert.ok(results.every((r) => r === false));
  assert.equal(sub.buffered, pushed - received);
  endSubscription(sub);
  for await (const msg of { [Symbol.asyncIterator]: () => it }) {
    assert.equal(msg.text(), String(received++));
  }
  assert.equal(received, pushed);
});

Deno.test("Subscription.end() finishes the iteration after the buffered messages", async () => {
  const { sub, calls } = subscription(10);
  pushMessage(sub, message("a/1", "1"));
  pushMessage(sub, message("a/2", "2"));
  endSubscription(sub);
  assert.equal(pushMessage(sub, message("a/3", "3")), true); // after end: discarded, no backpressure
  const got: string[] = [];
  for await (const msg of sub) got.push(msg.text());
  assert.deepEqual(got, ["1", "2"]);
  assert.equal(calls.length, 0); // the loop ended by itself: no return(), no unsubscribe
});

Deno.test("Subscription.end(error) throws the error to the consumer after the buffered messages", async () => {
  const { sub } = subscription(10);
  pushMessage(sub, message("a/1", "1"));
  const error = new MqttError("CONNECTION_CLOSED", "connection lost");
  endSubscription(sub, error);
  endSubscription(sub, new Error("second end is ignored"));
  const got: string[] = [];
  await assert.rejects(async () => {
    for await (const msg of sub) got.push(msg.text());
  }, (e) => e === error);
  assert.deepEqual(got, ["1"]);
  // The error is reported once; the iteration is over after it.
  assert.deepEqual(await sub[Symbol.asyncIterator]().next(), { done: true, value: undefined });
});

Deno.test("Subscription.end() wakes a waiting consumer, with or without an error", async () => {
  const a = subscription(1).sub;
  const pendingA = a[Symbol.asyncIterator]().next();
  endSubscription(a);
  assert.deepEqual(await pendingA, { done: true, value: undefined });

  const b = subscription(1).sub;
  const pendingB = b[Symbol.asyncIterator]().next();
  const error = new Error("boom");
  endSubscription(b, error);
  await assert.rejects(pendingB, (e) => e === error);
});

Deno.test("Subscription.end() releases a reader waiting in ready()", async () => {
  const { sub } = subscription(1);
  assert.equal(pushMessage(sub, message("a/1", "1")), false);
  const waiting = whenReady(sub);
  endSubscription(sub);
  await waiting;
  assert.equal(whenReady(sub), whenReady(sub)); // ended: always ready
});

Deno.test("Subscription: breaking out of for await unsubscribes once", async () => {
  const { sub, calls } = subscription(10);
  pushMessage(sub, message("a/1", "1"));
  pushMessage(sub, message("a/2", "2"));
  for await (const msg of sub) {
    assert.equal(msg.text(), "1");
    break;
  }
  assert.deepEqual(calls, [sub]);
  assert.equal(sub.ended, true);
  assert.equal(sub.buffered, 0); // the rest is discarded: nobody will read it
  assert.equal(pushMessage(sub, message("a/3", "3")), true);
  await sub.unsubscribe();
  assert.equal(calls.length, 1);
});

Deno.test("Subscription: an exception thrown in the loop body unsubscribes", async () => {
  const { sub, calls } = subscription(10);
  pushMessage(sub, message("a/1", "1"));
  await assert.rejects(async () => {
    for await (const _ of sub) throw new Error("consumer failed");
  }, /consumer failed/);
  assert.equal(calls.length, 1);
});

Deno.test("Subscription: await using unsubscribes at scope exit", async () => {
  const { sub, calls } = subscription(10);
  {
    await using s = sub;
    pushMessage(s, message("a/1", "1"));
  }
  assert.deepEqual(calls, [sub]);
  assert.equal(sub.ended, true);
});

Deno.test("Subscription.unsubscribe() is idempotent and ends a waiting consumer", async () => {
  const { sub, calls } = subscription(10);
  const pending = sub[Symbol.asyncIterator]().next();
  const first = sub.unsubscribe();
  assert.equal(sub.unsubscribe(), first);
  assert.equal(sub[Symbol.asyncDispose](), first);
  await first;
  assert.equal(calls.length, 1);
  assert.deepEqual(await pending, { done: true, value: undefined });
});

Deno.test("Subscription.unsubscribe() after end(error) drops the rest and the error", async () => {
  const { sub, calls } = subscription(10);
  pushMessage(sub, message("a/1", "1"));
  endSubscription(sub, new Error("lost"));
  await sub.unsubscribe();
  assert.equal(calls.length, 1);
  assert.deepEqual(await sub[Symbol.asyncIterator]().next(), { done: true, value: undefined });
});

Deno.test("Subscription.unsubscribe() passes on the client's failure", async () => {
  const error = new MqttError("CONNECTION_CLOSED", "not connected");
  const rejecting = createSubscription(["a"], [0], {
    bufferSize: 1,
    unsubscribe: () => Promise.reject(error),
  });
  await assert.rejects(rejecting.unsubscribe(), (e) => e === error);
  const throwing = createSubscription(["a"], [0], {
    bufferSize: 1,
    unsubscribe: () => {
      throw error;
    },
  });
  await assert.rejects(throwing.unsubscribe(), (e) => e === error);
  assert.equal(throwing.ended, true);
});

Deno.test("Subscription: break does not throw a failed UNSUBSCRIBE; unsubscribe() reports it", async () => {
  const error = new MqttError("CONNECTION_CLOSED", "not connected");
  let calls = 0;
  const sub = createSubscription(["a"], [0], {
    bufferSize: 2,
    unsubscribe: () => {
      calls++;
      return Promise.reject(error);
    },
  });
  pushMessage(sub, message("a", "1"));
  for await (const _ of sub) break;
  assert.equal(calls, 1);
  await assert.rejects(sub.unsubscribe(), (e) => e === error);
  assert.equal(calls, 1);
});

Deno.test("Subscription allows one consumer at a time (INVALID_STATE)", async () => {
  const { sub } = subscription(10);
  const first = sub[Symbol.asyncIterator]();
  assert.throws(() => sub[Symbol.asyncIterator](), isInvalidState);
  // A second next() before the first settles is also refused.
  const pending = first.next();
  await assert.rejects(first.next(), isInvalidState);
  pushMessage(sub, message("a/1", "1"));
  assert.equal(((await pending).value as Message).text(), "1");
  endSubscription(sub);
  assert.deepEqual(await first.next(), { done: true, value: undefined });
  // Drained: a new iterator is allowed and is simply done.
  assert.deepEqual(await sub[Symbol.asyncIterator]().next(), { done: true, value: undefined });
});

Deno.test("Subscription iterator is done after return()", async () => {
  const { sub, calls } = subscription(10);
  const it = sub[Symbol.asyncIterator]();
  pushMessage(sub, message("a/1", "1"));
  assert.deepEqual(await it.return!(), { done: true, value: undefined });
  assert.deepEqual(await it.next(), { done: true, value: undefined });
  assert.equal(calls.length, 1);
});
