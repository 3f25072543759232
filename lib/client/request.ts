/**
 * MQTT 5.0 request/response (section 4.10) on top of publish and subscribe:
 * each request gets fresh Correlation Data and the client's Response Topic;
 * replies on that topic are routed back to their request by their
 * Correlation Data. The client's hook is {@linkcode Requests}.
 *
 * @module
 */
import type { PublishProperties } from "../codec/properties.ts";
import type { QoS } from "../codec/packet.ts";
import { MqttError } from "../errors.ts";

/** Options of `client.request()`. */
export interface RequestOptions {
  /** Milliseconds to wait for the reply before rejecting with `REQUEST_TIMEOUT`. @default {30000} */
  timeout?: number;
  /** QoS of the request and of the response topic's subscription. @default {1} */
  qos?: QoS;
  /** Other properties of the request (Response Topic and Correlation Data are set by `request`). */
  properties?: Omit<PublishProperties, "responseTopic" | "correlationData">;
}

/** Options of `client.respond()`. */
export interface RespondOptions {
  /** QoS of the response. @default {1} */
  qos?: QoS;
  /** Other properties of the response (Correlation Data is copied from the request). */
  properties?: Omit<PublishProperties, "responseTopic" | "correlationData">;
}

/** What a request or a reply needs of a received message. */
export interface ReceivedMessage {
  /** Topic name. */
  readonly topic: string;
  /** The MQTT 5.0 properties of the PUBLISH, if any. */
  readonly properties?: PublishProperties;
}

/** What {@linkcode Requests} needs of its client. */
export interface RequestHost<M extends ReceivedMessage> {
  /** Publishes a message; resolves when its QoS flow completes. */
  publish(
    topic: string,
    payload: string | Uint8Array,
    qos: QoS,
    properties: PublishProperties,
  ): Promise<unknown>;
  /** Subscribes to the response topic; the iterable ends when the client closes. */
  subscribe(topic: string, qos: QoS): Promise<AsyncIterable<M>>;
  /** CONNACK's Response Information of the current connection, if the server gave one. */
  responseInformation(): string | undefined;
}

/** The default reply timeout of {@linkcode RequestOptions.timeout}. */
export const DEFAULT_REQUEST_TIMEOUT = 30_000;

/** Random bytes from Web Crypto, as lower-case hex. */
function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  let s = "";
  for (const b of buf) s += b.toString(16).padStart(2, "0");
  return s;
}

function key(data: Uint8Array): string {
  let s = "";
  for (const b of data) s += b.toString(16).padStart(2, "0");
  return s;
}

/**
 * The response topic for a client: below the server's Response Information
 * when it gave one (section 4.10.1: the server then typically authorizes that
 * subtree), else below `response/`, then a random part so two clients never share it.
 *
 * @example
 * ```ts
 * import { responseTopicFor } from "./request.ts";
 * console.log(responseTopicFor("replies/c1/", "ab12")); // "replies/c1/ab12"
 * console.log(responseTopicFor(undefined, "ab12")); // "response/ab12"
 * ```
 */
export function responseTopicFor(responseInformation: string | undefined, token: string): string {
  const base = responseInformation === undefined || responseInformation === ""
    ? "response"
    : responseInformation;
  return base.endsWith("/") ? base + token : `${base}/${token}`;
}

/**
 * Publishes `payload` to `request`'s Response Topic with its Correlation
 * Data (section 4.10.2) through `publish`. A message without Response Topic
 * is not a request: `INVALID_OPTION`.
 *
 * @example
 * ```ts ignore
 * await respondTo((t, p, qos, properties) => client.publish(t, p, { qos, properties }), msg, "42");
 * ```
 */
export function respondTo(
  publish: RequestHost<ReceivedMessage>["publish"],
  request: ReceivedMessage,
  payload: string | Uint8Array,
  options: RespondOptions = {},
): Promise<unknown> {
  const props = request.properties;
  const topic = props?.responseTopic;
  if (topic === undefined) {
    return Promise.reject(
      new MqttError(
        "INVALID_OPTION",
        `the message on "${request.topic}" has no Response Topic: it asks for no response`,
      ),
    );
  }
  const properties: PublishProperties = { ...options.properties };
  if (props!.correlationData !== undefined) properties.correlationData = props!.correlationData;
  return publish(topic, payload, options.qos ?? 1, properties);
}

interface Pending<M> {
  resolve(message: M): void;
  reject(error: MqttError): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Requests in flight for one client, over one response subscription made at
 * the first request and kept for the client's life.
 *
 * Correlation Data is 16 random bytes per request
 * (`crypto.getRandomValues`), so a late reply to a request that timed out
 * matches nothing and is dropped; a reply whose Correlation Data is unknown
 * is dropped too.
 *
 * @example
 * ```ts ignore
 * const requests = new Requests(host);
 * const reply = await requests.request("svc/time", "now?", { timeout: 2000 });
 * ```
 */
export class Requests<M extends ReceivedMessage> {
  readonly #host: RequestHost<M>;
  readonly #pending = new Map<string, Pending<M>>();
  #responseTopic: Promise<string> | undefined;
  #closed: MqttError | undefined;

  /** Requests over `host`; nothing is subscribed until the first request. */
  constructor(host: RequestHost<M>) {
    this.#host = host;
  }

  /** Requests awaiting their reply. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Publishes `payload` to `topic` with a Response Topic and fresh
   * Correlation Data, and resolves with the reply. Rejects with
   * `REQUEST_TIMEOUT` when none arrives within `timeout`, or with the error
   * of the publish or of the response topic's subscription.
   */
  async request(
    topic: string,
    payload: string | Uint8Array,
    options: RequestOptions = {},
  ): Promise<M> {
    if (this.#closed) throw this.#closed;
    const timeout = options.timeout ?? DEFAULT_REQUEST_TIMEOUT;
    if (!(timeout > 0) || !Number.isFinite(timeout)) {
      throw new MqttError(
        "INVALID_OPTION",
        `timeout must be a positive number of ms, got ${timeout}`,
      );
    }
    const qos = options.qos ?? 1;
    const responseTopic = await this.#subscribe(qos);
    const correlationData = crypto.getRandomValues(new Uint8Array(16));
    const id = key(correlationData);
    const { promise, resolve, reject } = Promise.withResolvers<M>();
    const timer = setTimeout(() => {
      this.#pending.delete(id);
      reject(
        new MqttError(
          "REQUEST_TIMEOUT",
          `no reply to the request on "${topic}" within ${timeout} ms (response topic "${responseTopic}")`,
        ),
      );
    }, timeout);
    this.#pending.set(id, { resolve, reject, timer });
    try {
      await this.#host.publish(topic, payload, qos, {
        ...options.properties,
        responseTopic,
        correlationData,
      });
    } catch (err) {
      this.#settle(id)?.reject(err as MqttError);
    }
    return promise;
  }

  /** See {@linkcode respondTo}. */
  respond(
    request: ReceivedMessage,
    payload: string | Uint8Array,
    options: RespondOptions = {},
  ): Promise<unknown> {
    const host = this.#host;
    return respondTo((...args) => host.publish(...args), request, payload, options);
  }

  /** Rejects every pending request with `error` and refuses new ones. */
  close(error: MqttError): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(error);
  }

  #settle(id: string): Pending<M> | undefined {
    const entry = this.#pending.get(id);
    if (entry === undefined) return undefined;
    this.#pending.delete(id);
    clearTimeout(entry.timer);
    return entry;
  }

  /** The response topic, subscribed once; a failed subscribe is tried again by the next request. */
  #subscribe(qos: QoS): Promise<string> {
    this.#responseTopic ??= (async () => {
      const topic = responseTopicFor(this.#host.responseInformation(), randomHex(8));
      const replies = await this.#host.subscribe(topic, qos);
      void this.#route(replies);
      return topic;
    })();
    return this.#responseTopic.catch((err) => {
      this.#responseTopic = undefined;
      throw err;
    });
  }

  async #route(replies: AsyncIterable<M>): Promise<void> {
    let error: MqttError | undefined;
    try {
      for await (const reply of replies) {
        const data = reply.properties?.correlationData;
        if (data !== undefined) this.#settle(key(data))?.resolve(reply);
      }
    } catch (err) {
      error = err as MqttError;
    }
    this.close(error ?? new MqttError("CONNECTION_CLOSED", "the client closed before the reply"));
  }
}
