/**
 * Checks of the arguments of `MqttClient.publish`, `subscribe` and
 * `unsubscribe` at the API boundary. Plain JavaScript may pass anything; each
 * wrong type or value becomes a typed {@linkcode MqttError} before anything
 * is queued or sent (`INVALID_TOPIC`, `INVALID_TOPIC_FILTER` or
 * `INVALID_OPTION`), rather than a `TypeError` from deep inside or a packet
 * that breaks the connection. The rules themselves live where they belong:
 * topic names and filters in the codec's `topic.ts`, option types and ranges
 * in `options.ts`.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import { validateTopicFilter, validateTopicName } from "../codec/topic.ts";
import { checkQos, toBytes } from "./options.ts";
import { checkBoolean, checkInteger, invalid } from "./checks.ts";

/** A publish's arguments once checked. */
export interface CheckedPublish {
  /** A valid topic name. */
  topic: string;
  /** The payload's bytes (a string as UTF-8). */
  payload: Uint8Array;
  /** The QoS asked for, 0 by default. */
  qos: QoS;
  /** The retain flag, false by default. */
  retain: boolean;
}

/** A subscribe's options once checked. */
export interface CheckedSubscribeOptions {
  /** The QoS asked for every filter, 0 by default. */
  qos: QoS;
  /** The subscription's buffer size, when given (a positive integer). */
  bufferSize: number | undefined;
}

/** An options argument: undefined (none given) or an object; its fields are checked by the caller. */
function optionsObject(command: string, options: unknown): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw invalid(`the options of ${command}() must be an object, got ${describe(options)}`);
  }
  return options as Record<string, unknown>;
}

function describe(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}

/**
 * Checks the arguments of `publish(topic, payload, options)`: the topic must
 * be a valid topic name (MQTT-4.7.3-1, MQTT-3.3.2-2), the payload a string or
 * a `Uint8Array` (a `Buffer` is one), `options` an object whose `qos` is 0, 1
 * or 2 and whose `retain` is a boolean.
 *
 * @example
 * ```ts
 * import { checkPublish } from "./validate.ts";
 * const { topic, payload, qos } = checkPublish("a/b", "hi", { qos: 1 });
 * console.log(topic, payload.length, qos); // a/b 2 1
 * try {
 *   checkPublish(7, "hi", undefined);
 * } catch (err) {
 *   console.log((err as { code: string }).code); // INVALID_TOPIC
 * }
 * ```
 */
export function checkPublish(topic: unknown, payload: unknown, options: unknown): CheckedPublish {
  validateTopicName(topic as string);
  const bytes = toBytes("payload", payload);
  const o = optionsObject("publish", options);
  return {
    topic: topic as string,
    payload: bytes,
    qos: o.qos === undefined ? 0 : checkQos("qos", o.qos),
    retain: o.retain === undefined ? false : checkBoolean("retain", o.retain),
  };
}

/**
 * Checks the filters of `subscribe` or `unsubscribe`: a topic filter or an
 * array of them, each valid (MQTT-4.7.1-2, MQTT-4.7.1-3, MQTT-4.7.3-1).
 * `subscribe` needs at least one (MQTT-3.8.3-3). Returns them as a new array.
 *
 * @example
 * ```ts
 * import { checkFilters } from "./validate.ts";
 * console.log(checkFilters("a/+", "subscribe")); // [ "a/+" ]
 * try {
 *   checkFilters(123, "subscribe");
 * } catch (err) {
 *   console.log((err as { code: string }).code); // INVALID_TOPIC_FILTER
 * }
 * ```
 */
export function checkFilters(filters: unknown, command: "subscribe" | "unsubscribe"): string[] {
  const list: unknown[] = Array.isArray(filters) ? [...filters] : [filters];
  if (list.length === 0 && command === "subscribe") {
    throw invalid("subscribe needs at least one topic filter");
  }
  for (const filter of list) validateTopicFilter(filter as string);
  return list as string[];
}

/**
 * Checks the options of `subscribe`: an object whose `qos` is 0, 1 or 2 and
 * whose `bufferSize`, when given, is a positive integer (as the client's own
 * `bufferSize` option).
 *
 * @example
 * ```ts
 * import { checkSubscribeOptions } from "./validate.ts";
 * console.log(checkSubscribeOptions({ qos: 1 })); // { qos: 1, bufferSize: undefined }
 * try {
 *   checkSubscribeOptions({ bufferSize: 0 });
 * } catch (err) {
 *   console.log((err as { code: string }).code); // INVALID_OPTION
 * }
 * ```
 */
export function checkSubscribeOptions(options: unknown): CheckedSubscribeOptions {
  const o = optionsObject("subscribe", options);
  return {
    qos: o.qos === undefined ? 0 : checkQos("qos", o.qos),
    bufferSize: o.bufferSize === undefined
      ? undefined
      : checkInteger("bufferSize", o.bufferSize, 1, Number.MAX_SAFE_INTEGER),
  };
}
