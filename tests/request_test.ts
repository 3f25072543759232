/** Unit tests of request/response routing (section 4.10) over a fake client. */
import assert from "node:assert/strict";
import type { PublishProperties } from "../lib/codec/properties.ts";
import type { QoS } from "../lib/codec/packet.ts";
import { MqttError } from "../lib/errors.ts";
import {
  type ReceivedMessage,
  type RequestHost,
  Requests,
  responseTopicFor,
} from "../lib/client/request.ts";

interface Sent {
  topic: string;
  payload: string | Uint8Array;
  qos: QoS;
  properties: PublishProperties;
}

/** A fake client: records publishes, hands out one reply stream it can feed and end. */
class FakeHost implements RequestHost<ReceivedMessage> {
  sent: Sent[] = [];
  subscribed: string[] = [];
  info: string | undefined = undefined;
  #queue: ReceivedMessage[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  publishError: MqttError | undefined;

  publish(topic: string, payload: string | Uint8Array, qos: QoS, properties: PublishProperties) {
    this.sent.push({ topic, payload, qos, properties });
    return this.publishError ? Promise.reject(this.publishError) : Promise.resolve();
  }
  subscribe(topic: string, _qos: QoS): Promise<AsyncIterable<ReceivedMessage>> {
    this.subscribed.push(topic);
    return Promise.resolve({ [Symbol.asyncIterator]: () => this.#replies() });
  }
  async *#replies(): AsyncGenerator<ReceivedMessage> {
    while (true) {
      while (this.#queue.length > 0) yield this.#queue.shift()!;
      if (this.#ended) return;
      await new Promise<void>((r) => this.#wake = r);
    }
  }
  responseInformation() {
    return this.info;
  }
  reply(message: ReceivedMessage) {
    this.#queue.push(message);
    this.#wake?.();
  }
  end() {
    this.#ended = true;
    this.#wake?.();
  }
}

Deno.test("section 4.10: a request carries a Response Topic and fresh Correlation Data; the reply is routed by it", async () => {
  const host = new FakeHost();
  const requests = new Requests(host);
  const first = requests.request("svc/a", "one", { timeout: 5000 });
  const second = requests.request("svc/b", "two", { timeout: 5000, qos: 0 });
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(host.sent.length, 2);
  assert.equal(host.subscribed.length, 1, "one response subscription for every request");
  const [a, b] = host.sent;
  assert.equal(a.properties.responseTopic, host.subscribed[0]);
  assert.equal(b.properties.responseTopic, host.subscribed[0]);
  assert.equal(a.qos, 1);
  assert.equal(b.qos, 0);
  assert.equal(a.properties.correlationData!.length, 16);
  assert.notDeepEqual(a.properties.correlationData, b.properties.correlationData);
  // Replies in the other order, plus one nobody asked for: each reaches its request.
  host.reply({ topic: host.subscribed[0], properties: { correlationData: new Uint8Array(16) } });
  host.reply({ topic: "r", properties: { correlationData: b.properties.correlationData } });
  host.reply({ topic: "r", properties: { correlationData: a.properties.correlationData } });
  const [ra, rb] = await Promise.all([first, second]);
  assert.deepEqual(ra.properties?.correlationData, a.properties.correlationData);
  assert.deepEqual(rb.properties?.correlationData, b.properties.correlationData);
  assert.equal(requests.pending, 0);
  host.end();
});

Deno.test("section 4.10: no reply within the timeout rejects with REQUEST_TIMEOUT, and a late reply is dropped", async () => {
  const host = new FakeHost();
  const requests = new Requests(host);
  await assert.rejects(
    requests.request("svc/slow", "x", { timeout: 20 }),
    (e: unknown) => e instanceof MqttError && e.code === "REQUEST_TIMEOUT",
  );
  assert.equal(requests.pending, 0);
  host.reply({
    topic: "r",
    properties: { correlationData: host.sent[0].properties.correlationData },
  });
  await new Promise((r) => setTimeout(r, 0));
  host.end();
});

Deno.test("section 4.10: a failed request publish rejects at once and forgets the request", async () => {
  const host = new FakeHost();
  host.publishError = new MqttError("QUEUE_FULL", "full");
  const requests = new Requests(host);
  await assert.rejects(requests.request("svc", "x", { timeout: 5000 }), /full/);
  assert.equal(requests.pending, 0);
  host.end();
});

Deno.test("section 4.10: the client closing rejects pending requests and refuses new ones", async () => {
  const host = new FakeHost();
  const requests = new Requests(host);
  const pending = requests.request("svc", "x", { timeout: 5000 });
  await new Promise((r) => setTimeout(r, 0));
  host.end();
  await assert.rejects(
    pending,
    (e: unknown) => e instanceof MqttError && e.code === "CONNECTION_CLOSED",
  );
  await assert.rejects(requests.request("svc", "x"), /closed/);
});

Deno.test("section 4.10.1: the Response Topic is built on the server's Response Information", async () => {
  assert.equal(responseTopicFor("a/b", "t"), "a/b/t");
  assert.equal(responseTopicFor("a/b/", "t"), "a/b/t");
  assert.equal(responseTopicFor("", "t"), "response/t");
  const host = new FakeHost();
  host.info = "replies/me";
  const requests = new Requests(host);
  const pending = requests.request("svc", "x", { timeout: 5000 });
  await new Promise((r) => setTimeout(r, 0));
  assert.match(host.subscribed[0], /^replies\/me\/[0-9a-f]{16}$/);
  host.end();
  await pending.catch(() => {});
});

Deno.test("section 4.10.2: respond publishes to the Response Topic with the request's Correlation Data", async () => {
  const host = new FakeHost();
  const requests = new Requests(host);
  const correlationData = new Uint8Array([1, 2, 3]);
  await requests.respond(
    { topic: "svc", properties: { responseTopic: "reply/here", correlationData } },
    "answer",
    { qos: 2, properties: { contentType: "text/plain" } },
  );
  assert.deepEqual(host.sent, [{
    topic: "reply/here",
    payload: "answer",
    qos: 2,
    properties: { contentType: "text/plain", correlationData },
  }]);
  await assert.rejects(
    requests.respond({ topic: "svc" }, "x"),
    (e: unknown) => e instanceof MqttError && e.code === "INVALID_OPTION",
  );
});

Deno.test("request: a timeout that is not a positive number is INVALID_OPTION", async () => {
  const requests = new Requests(new FakeHost());
  for (const timeout of [0, -1, NaN, Infinity]) {
    await assert.rejects(
      requests.request("svc", "x", { timeout }),
      (e: unknown) => e instanceof MqttError && e.code === "INVALID_OPTION",
    );
  }
});
