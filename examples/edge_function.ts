/**
 * An HTTP-to-MQTT bridge for serverless edge platforms: each `POST` request's body is published
 * to a topic, over `wss://` (web-standard WebSocket, works wherever raw TCP is not allowed) or
 * `mqtts://`. One MQTT client serves every request of an isolate: it connects on the first
 * request, reconnects by itself when the connection drops, and is replaced by the next request
 * should it close for good.
 *
 * Run it locally, with `deno serve` (the default export) or `deno run` (which
 * starts the server itself), from this repository or from JSR:
 *
 * ```sh
 * MQTT_URL=wss://broker.example/mqtt MQTT_TOPIC=ingest deno serve --allow-net --allow-env jsr:@mqtt/client/edge
 * MQTT_URL=wss://broker.example/mqtt MQTT_TOPIC=ingest deno run --allow-net --allow-env examples/edge_function.ts
 * curl -X POST --data 'hello' http://localhost:8000/   # 202 {"topic":"ingest","bytes":5,"qos":1}
 * ```
 *
 * Environment: `MQTT_URL` (required), `MQTT_TOPIC` (else the request path is the topic),
 * `MQTT_QOS` (0, 1 or 2; default 1), `MQTT_USERNAME`, `MQTT_PASSWORD`, `MQTT_CLIENT_ID`
 * (default: a random one per isolate; never share one between isolates, the broker would
 * disconnect one for the other), `MQTT_CA_CERT` (PEM text of an extra root CA, `mqtts://` only);
 * `PORT` (default 8000) under `deno run` (`deno serve` takes `--port`).
 *
 * @module
 */
import {
  connect,
  type ConnectEventDetail,
  type ConnectOptions,
  type MqttClient,
  MqttError,
  type QoS,
} from "../mod.ts";

/** Options of {@linkcode createPublishHandler}. */
export interface PublishHandlerOptions {
  /** Broker URL: `wss://…/mqtt`, `ws://…`, `mqtts://…` or `mqtt://…`. */
  url: string;
  /** Topic every body is published to; when absent the request path is the topic (`/a/b` → `a/b`). */
  topic?: string;
  /** QoS of the published messages; with 1 or 2 a 202 means the broker has the message. @default {1} */
  qos?: QoS;
  /** Largest request body accepted, in bytes; larger ones get 413. @default {131072} */
  maxBodyBytes?: number;
  /**
   * Milliseconds a request waits for its publish (while the client reconnects, publishes wait
   * in its queue) before the answer is 504; the message may still be delivered later.
   * @default {10000}
   */
  publishTimeout?: number;
  /** Options of `connect()`: credentials, client id, TLS settings, timeouts. */
  connectOptions?: ConnectOptions;
}

/** The handler and its connection, from {@linkcode createPublishHandler}. */
export interface PublishHandler {
  /** The request handler, for `Deno.serve(handler.fetch)` or `export default handler`. */
  fetch(request: Request): Promise<Response>;
  /** How many MQTT connections were accepted so far, reconnects included (1 while one serves all). */
  readonly connections: number;
  /** Closes the MQTT connection, if open (sends DISCONNECT). A later request opens a new one. */
  close(): Promise<void>;
}

const TOPIC_ERRORS = new Set(["INVALID_TOPIC", "INVALID_UTF8", "STRING_TOO_LONG"]);

class TimeoutError extends Error {
  constructor(ms: number) {
    super(`the publish did not complete within ${ms} ms`);
    this.name = "TimeoutError";
  }
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** The request body, or `undefined` once it exceeds `max` bytes (reading stops there). */
async function readBody(request: Request, max: number): Promise<Uint8Array | undefined> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > max) return undefined;
  if (request.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.byteLength;
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/**
 * Makes a request handler that publishes each `POST` body to MQTT and answers `202 Accepted`
 * with `{ topic, bytes, qos }` as JSON once the publish completes (for QoS 1 and 2: once the
 * broker acknowledged it). Other answers: 405 for other methods, 400 for a bad topic, 413 for
 * a body over `maxBodyBytes`, 502 when the broker cannot be reached, 504 after `publishTimeout`.
 *
 * All requests share one client, connected lazily by the first request (concurrent first
 * requests wait for the same connect). It reconnects by itself after a lost connection
 * (publishes wait meanwhile); once it has closed for good, the next request connects a new one,
 * and a publish that failed because its client closed is retried once on the new one.
 *
 * @example
 * ```ts ignore
 * import { createPublishHandler } from "./edge_function.ts";
 * const handler = createPublishHandler({ url: "wss://broker.example/mqtt", topic: "ingest" });
 * Deno.serve(handler.fetch);
 * ```
 */
export function createPublishHandler(options: PublishHandlerOptions): PublishHandler {
  const qos = options.qos ?? 1;
  const maxBodyBytes = options.maxBodyBytes ?? 128 * 1024;
  const publishTimeout = options.publishTimeout ?? 10_000;
  let client: MqttClient | undefined;
  let connecting: Promise<MqttClient> | undefined;
  let connections = 0;

  function connection(): Promise<MqttClient> {
    if (client !== undefined && !client.closed) return Promise.resolve(client);
    connecting ??= (async () => {
      try {
        const opened = await connect(options.url, options.connectOptions);
        connections++;
        client = opened;
        opened.addEventListener("connect", (event) => {
          if ((event as CustomEvent<ConnectEventDetail>).detail.reconnect) connections++;
        });
        // Closed for good (reconnecting is off, or the broker refused us): the next request
        // makes a new client.
        opened.addEventListener("close", () => {
          if (client === opened) client = undefined;
        }, { once: true });
        return opened;
      } finally {
        connecting = undefined;
      }
    })();
    return connecting;
  }

  async function publish(topic: string, body: Uint8Array): Promise<void> {
    const first = await connection();
    try {
      await first.publish(topic, body, { qos });
    } catch (error) {
      // Only a publish whose client closed for good under it is worth one more try.
      if (!first.closed) throw error;
      if (client === first) client = undefined;
      await (await connection()).publish(topic, body, { qos });
    }
  }

  /** `publish`, or a 504 error once `publishTimeout` passes. */
  async function publishWithin(topic: string, body: Uint8Array): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(publishTimeout)), publishTimeout);
    });
    try {
      await Promise.race([publish(topic, body), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async function handle(request: Request): Promise<Response> {
    if (request.method !== "POST") {
      return json(405, { error: "use POST" }, { allow: "POST" });
    }
    const topic = options.topic ?? decodeURIComponent(new URL(request.url).pathname.slice(1));
    const body = await readBody(request, maxBodyBytes);
    if (body === undefined) {
      return json(413, { error: `the body is larger than ${maxBodyBytes} bytes` });
    }
    try {
      await publishWithin(topic, body);
    } catch (error) {
      const code = error instanceof MqttError ? error.code : undefined;
      const message = error instanceof Error ? error.message : String(error);
      const status = error instanceof TimeoutError
        ? 504
        : code !== undefined && TOPIC_ERRORS.has(code)
        ? 400
        : 502;
      return json(status, { error: message, code });
    }
    return json(202, { topic, bytes: body.byteLength, qos });
  }

  return {
    fetch: handle,
    get connections() {
      return connections;
    },
    async close() {
      const current = client ?? await connecting?.catch(() => undefined);
      client = undefined;
      await current?.close();
    },
  };
}

/** What {@linkcode optionsFromEnv} reads: `Deno.env`, or a stand-in. */
export interface Env {
  /** The variable's value, or `undefined`. */
  get(name: string): string | undefined;
}

/**
 * Handler options from environment variables (see the module documentation). Throws when
 * `MQTT_URL` is missing or `MQTT_QOS` is not 0, 1 or 2.
 *
 * @example
 * ```ts
 * import { optionsFromEnv } from "./edge_function.ts";
 * const env = new Map([["MQTT_URL", "wss://broker.example/mqtt"], ["MQTT_QOS", "0"]]);
 * console.log(optionsFromEnv(env).qos); // 0
 * ```
 */
export function optionsFromEnv(env: Env): PublishHandlerOptions {
  const url = env.get("MQTT_URL");
  if (!url) {
    throw new Error("set MQTT_URL, e.g. wss://broker.example/mqtt or mqtts://broker.example");
  }
  const qosText = env.get("MQTT_QOS") ?? "1";
  if (qosText !== "0" && qosText !== "1" && qosText !== "2") {
    throw new Error(`MQTT_QOS must be 0, 1 or 2, got "${qosText}"`);
  }
  const connectOptions: ConnectOptions = {};
  const clientId = env.get("MQTT_CLIENT_ID");
  if (clientId) connectOptions.clientId = clientId;
  const username = env.get("MQTT_USERNAME");
  if (username) connectOptions.username = username;
  const password = env.get("MQTT_PASSWORD");
  if (password) connectOptions.password = password;
  const ca = env.get("MQTT_CA_CERT");
  if (ca) connectOptions.tls = { caCerts: [ca] };
  const options: PublishHandlerOptions = { url, qos: Number(qosText) as QoS, connectOptions };
  const topic = env.get("MQTT_TOPIC");
  if (topic) options.topic = topic;
  return options;
}

/** The handler the default export serves, made from the environment on first use. */
let fromEnv: PublishHandler | undefined;
/** Set when `deno serve` serves the default export: `deno run` then starts no server of its own. */
let servedByDenoServe = false;

/** Prints where it listens, and makes SIGINT and SIGTERM close the MQTT connection, then exit. */
function listening(addr: Deno.Addr): void {
  if (addr.transport === "tcp") {
    console.log(`publishing POST bodies: http://${addr.hostname}:${addr.port}/`);
  }
  // The open MQTT connection would keep the process alive after the server's shutdown.
  const stop = async () => {
    await fromEnv?.close();
    Deno.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, stop);
    } catch {
      // No SIGTERM on Windows.
    }
  }
}

/**
 * The module as `deno serve` runs it: `fetch` publishes each `POST` body,
 * with the options of {@linkcode optionsFromEnv} read from `Deno.env` on the
 * first request.
 *
 * @example
 * ```sh
 * MQTT_URL=wss://broker.example/mqtt deno serve --allow-net --allow-env examples/edge_function.ts
 * ```
 */
const server: Deno.ServeDefaultExport = {
  fetch(request: Request): Promise<Response> {
    fromEnv ??= createPublishHandler(optionsFromEnv(Deno.env));
    return fromEnv.fetch(request);
  },
  onListen(addr: Deno.Addr): void {
    servedByDenoServe = true;
    listening(addr);
  },
};
export default server;

if (import.meta.main) {
  // `deno serve` also runs this module as the main one, and calls onListen once it listens,
  // before a timer of 0 ms fires; `deno run` never does, so then this starts the server.
  setTimeout(() => {
    if (servedByDenoServe) return;
    const handler = fromEnv ??= createPublishHandler(optionsFromEnv(Deno.env));
    Deno.serve({ port: Number(Deno.env.get("PORT") ?? 8000), onListen: listening }, handler.fetch);
  }, 0);
}
