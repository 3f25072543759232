/**
 * One thin adapter per client under test, so every benchmark drives ours and
 * MQTT.js through the same loop. Each adapter uses its client's natural API
 * (promises for ours, callbacks and events for MQTT.js) and adds no promise
 * or allocation of its own per message.
 *
 * MQTT.js is loaded with a dynamic import so a run of our client alone never
 * pays for it (cold start, CPU profiles).
 *
 * @module
 */
import type { QoS } from "../lib/codec/packet.ts";

/**
 * The clients a benchmark can drive. `raw` is the calibration client of
 * `_raw_client.ts`, which measures the broker's ceiling; it is no contender.
 */
export type Impl = "ours" | "mqttjs" | "raw";

/** The contenders, in the order they are printed. */
export const IMPLS: readonly Impl[] = ["ours", "mqttjs"];

/** Printable name of each client. */
export const IMPL_NAMES: Record<Impl, string> = {
  ours: "ours",
  mqttjs: "MQTT.js 5",
  raw: "ceiling",
};

/** Receives one message: the topic and the payload bytes. */
export type OnMessage = (topic: string, payload: Uint8Array) => void;

/** The few operations the benchmarks need. */
export interface BenchClient {
  /** Publishes; `done` is called once the QoS flow completes (QoS 0: once written). */
  publish(topic: string, payload: Uint8Array, qos: QoS, done: (error?: unknown) => void): void;
  /** Subscribes and calls `onMessage` for every message, in order. */
  subscribe(filter: string, qos: QoS, onMessage: OnMessage): Promise<void>;
  /** Disconnects cleanly. */
  close(): Promise<void>;
}

/** Options of {@linkcode connectClient}. */
export interface ClientOptions {
  clientId: string;
  /** Outgoing QoS 1/2 publishes awaiting acknowledgement at once (ours only). */
  maxInflight?: number;
  /** Messages a subscription buffers before reading pauses (ours only). */
  bufferSize?: number;
  /** Seconds. @default {60} */
  keepAlive?: number;
  /** 4 (MQTT 3.1.1) or 5 (MQTT 5.0). @default {4} */
  protocolVersion?: 4 | 5;
  /**
   * MQTT 5.0: topic aliases on outgoing publishes. Ours assigns them whenever
   * the server allows at 5.0; this turns on MQTT.js's `autoAssignTopicAlias`.
   */
  topicAliases?: boolean;
}

/**
 * Connects one client of the given implementation to a broker.
 *
 * @example
 * ```ts ignore
 * const client = await connectClient("ours", "mqtt://127.0.0.1:1883", { clientId: "b1" });
 * client.publish("a", new Uint8Array(64), 1, (err) => console.log("done", err));
 * ```
 */
export function connectClient(
  impl: Impl,
  url: string,
  options: ClientOptions,
): Promise<BenchClient> {
  if (impl === "raw") return import("./_raw_client.ts").then((m) => m.connectRaw(url, options));
  return impl === "ours" ? connectOurs(url, options) : connectMqttJs(url, options);
}

async function connectOurs(url: string, options: ClientOptions): Promise<BenchClient> {
  const { connect } = await import("../lib/client/connect.ts");
  const client = await connect(url, {
    clientId: options.clientId,
    clean: true,
    keepAlive: options.keepAlive ?? 60,
    maxInflight: options.maxInflight ?? 1000,
    bufferSize: options.bufferSize ?? 1000,
    protocolVersion: options.protocolVersion ?? 4,
  });
  const loops: Promise<void>[] = [];
  // The success callback, made once per distinct `done` (the loops pass one), as a caller
  // that reuses its handlers would: the adapter allocates nothing of its own per message.
  let lastDone: ((error?: unknown) => void) | undefined;
  let onSuccess = () => {};
  return {
    publish(topic, payload, qos, done) {
      if (done !== lastDone) {
        lastDone = done;
        onSuccess = () => done();
      }
      client.publish(topic, payload, { qos }).then(onSuccess, done);
    },
    async subscribe(filter, qos, onMessage) {
      const sub = await client.subscribe(filter, { qos });
      loops.push((async () => {
        for await (const message of sub) onMessage(message.topic, message.payload);
      })());
    },
    async close() {
      await client.close();
      await Promise.all(loops);
    },
  };
}

async function connectMqttJs(url: string, options: ClientOptions): Promise<BenchClient> {
  // The peer under comparison; npm imports are allowed in bench/ only (issue 8).
  // deno-lint-ignore no-import-prefix
  const { default: mqtt } = await import("npm:mqtt@5");
  const { Buffer } = await import("node:buffer");
  const client = await mqtt.connectAsync(url, {
    clientId: options.clientId,
    clean: true,
    keepalive: options.keepAlive ?? 60,
    protocolVersion: options.protocolVersion ?? 4,
    autoAssignTopicAlias: options.topicAliases === true,
    reconnectPeriod: 0,
  });
  // MQTT.js wants a Buffer: a view over the same bytes, made once per distinct payload,
  // as a Node caller that reuses its Buffer would pass it.
  let lastPayload: Uint8Array | undefined;
  let lastBuffer: Uint8Array | undefined;
  return {
    publish(topic, payload, qos, done) {
      if (payload !== lastPayload) {
        lastPayload = payload;
        lastBuffer = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      }
      client.publish(topic, lastBuffer as never, { qos }, (err?: Error) => done(err ?? undefined));
    },
    async subscribe(filter, qos, onMessage) {
      client.on("message", (topic: string, payload: Uint8Array) => onMessage(topic, payload));
      await client.subscribeAsync(filter, { qos });
    },
    async close() {
      await client.endAsync();
    },
  };
}
