/**
 * The browser check's page script: connects to the broker given in the page URL's query over
 * `ws://`, subscribes, publishes a message to itself at QoS 1 and receives it, then reports to
 * the test server with `POST /result`. Loaded twice by `browser_test.ts`: as separate ES modules
 * (TypeScript types stripped per file) and as the single file `deno bundle` makes.
 *
 * @module
 */
import { connect } from "../../mod.ts";

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
  /** What went wrong, if anything. */
  error?: string;
}

async function run(variant: string, brokerUrl: string): Promise<PageResult> {
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
  } catch (error) {
    result.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  }
  return result;
}

const query = new URLSearchParams(location.search);
const variant = query.get("variant") ?? "modules";
const result = await run(variant, query.get("broker") ?? "");
// The server answers with the next page to check, or nothing.
const reply = await fetch("/result", { method: "POST", body: JSON.stringify(result) });
const next = await reply.text();
if (next !== "") location.href = next;
