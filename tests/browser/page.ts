/**
 * The browser check's page script: connects to the broker given in the page URL's query over
 * `ws://` or `wss://`, subscribes, publishes a message to itself at QoS 1 and receives it, then
 * reports to the test server with `POST /result`. With `full=1` in the query it also checks a
 * reconnect (a second client with the same id throws the first off the broker, MQTT-3.1.4-2) and
 * that `close()` sends DISCONNECT, so the broker discards the will (MQTT-3.14.4-3). Loaded twice by `browser_test.ts`: as separate ES modules
 * (TypeScript types stripped per file) and as the single file `deno bundle` makes.
 *
 * @module
 */
import { connect, type ConnectEventDetail, type MqttClient, type Subscription } from "../../mod.ts";

/** What the page reports. */
export interface PageResult {
  /** Which way the module was loaded: "modules" or "bundle". */
  variant: string;
  /** Whether a `Deno` global exists (it must not, in a browser). */
  hasDeno: boolean;
  /** The browser's user agent. */
  userAgent: string;
  /** The received message's topic, payload and QoS, when it arrived. */
  received?: { topic: string; text: string; qos: number };
  /** Milliseconds from before connect() to the message's arrival. */
  elapsedMs?: number;
  /** With `full=1`: the message received after the client was thrown off and reconnected. */
  afterReconnect?: string;
  /** With `full=1`: the first message on the will topic after the will's client closed. */
  firstOnWillTopic?: string;
  /** What went wrong, if anything. */
  error?: string;
}

/** The next message's text, or an error after `ms`. */
async function nextText(sub: Subscription, what: string, ms = 10_000): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no message for ${what} within ${ms} ms`)), ms);
  });
  try {
    const next = await Promise.race([sub[Symbol.asyncIterator]().next(), timeout]);
    if (next.done) throw new Error(`the subscription for ${what} ended`);
    return next.value.text();
  } finally {
    clearTimeout(timer);
  }
}

/** Throws `client` off the broker with a second connection under its id; resolves on its reconnect. */
async function takeOver(client: MqttClient, brokerUrl: string): Promise<void> {
  const reconnected = new Promise<void>((resolve) => {
    client.addEventListener("connect", function listener(event) {
      if ((event as CustomEvent<ConnectEventDetail>).detail.reconnect) {
        client.removeEventListener("connect", listener);
        resolve();
      }
    });
  });
  const intruder = await connect(brokerUrl, { clientId: client.clientId, reconnect: false });
  await intruder.close().catch(() => {});
  await reconnected;
}

/** The reconnect and will checks of a `full=1` page. */
async function fullChecks(brokerUrl: string, variant: string, result: PageResult): Promise<void> {
  const id = `browser-full-${variant}-${Date.now()}`;
  const client = await connect(brokerUrl, {
    clientId: id,
    reconnect: { minDelay: 50, maxDelay: 200 },
  });
  try {
    const topic = `browser/${variant}/again`;
    const sub = await client.subscribe(topic, { qos: 1 });
    await takeOver(client, brokerUrl);
    // The broker kept no session (clean): the client subscribed again by itself.
    await client.publish(topic, "after the reconnect", { qos: 1 });
    result.afterReconnect = await nextText(sub, "the reconnect");

    const willTopic = `browser/${variant}/will`;
    const wills = await client.subscribe(willTopic, { qos: 1 });
    const willing = await connect(brokerUrl, {
      clientId: `${id}-will`,
      will: { topic: willTopic, payload: "the will", qos: 1 },
    });
    await willing.close();
    // Had the will been published, it would come before this marker.
    await client.publish(willTopic, "marker", { qos: 1 });
    result.firstOnWillTopic = await nextText(wills, "the will topic");
  } finally {
    await client.close();
  }
}

async function run(variant: string, brokerUrl: string, full: boolean): Promise<PageResult> {
  const result: PageResult = {
    variant,
    hasDeno: "Deno" in globalThis,
    userAgent: navigator.userAgent,
  };
  const started = performance.now();
  try {
    const client = await connect(brokerUrl, { clientId: `browser-${variant}-${Date.now()}` });
    try {
      const topic = `browser/${variant}`;
      const sub = await client.subscribe(topic, { qos: 1 });
      await client.publish(topic, `hello from ${variant}`, { qos: 1 });
      for await (const message of sub) {
        result.received = { topic: message.topic, text: message.text(), qos: message.qos };
        break;
      }
      result.elapsedMs = Math.round(performance.now() - started);
    } finally {
      await client.close();
    }
    if (full) await fullChecks(brokerUrl, variant, result);
  } catch (error) {
    result.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  }
  return result;
}

const query = new URLSearchParams(location.search);
const variant = query.get("variant") ?? "modules";
const result = await run(variant, query.get("broker") ?? "", query.get("full") === "1");
// The server answers with the next page to check, or nothing.
const reply = await fetch("/result", { method: "POST", body: JSON.stringify(result) });
const next = await reply.text();
if (next !== "") location.href = next;
