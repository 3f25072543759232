/**
 * Small helpers shared by the client's integration tests against Mosquitto
 * (`client_test.ts`, `client_auth_test.ts`, `client_tls_test.ts`,
 * `client_session_test.ts`). Waiting is always for an event, bounded by a
 * timeout that fails the test with a message saying what never happened.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type CloseEventDetail,
  type Message,
  type MqttClient,
  MqttError,
  type MqttErrorCode,
  type Subscription,
} from "../mod.ts";

/** How long any single expected event may take before the test fails. */
export const TIMEOUT_MS = 5_000;

let unique = 0;

/**
 * A name (topic stem or client id) used by one test only, so tests sharing a broker never see
 * each other's messages or sessions.
 *
 * @example
 * ```ts
 * const topic = fresh("pubsub");
 * ```
 */
export function fresh(stem: string): string {
  return `${stem}-${Date.now().toString(36)}-${unique++}`;
}

/**
 * Rejects after `ms` unless `promise` settles first; clears its timer either way.
 *
 * @example
 * ```ts ignore
 * const error = await within(closed(client), "the close event");
 * ```
 */
export async function within<T>(promise: Promise<T>, what: string, ms = TIMEOUT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// A subscription has one consumer; tests that read it in several steps share its iterator.
const iterators = new WeakMap<Subscription, AsyncIterator<Message, undefined>>();

/**
 * Reads `count` messages from a subscription without ending it (it can be read again later).
 *
 * @example
 * ```ts ignore
 * const [message] = await take(sub, 1, "the retained message");
 * ```
 */
export async function take(sub: Subscription, count: number, what: string): Promise<Message[]> {
  const it: AsyncIterator<Message, undefined> = iterators.get(sub) ?? sub[Symbol.asyncIterator]();
  iterators.set(sub, it);
  const messages: Message[] = [];
  while (messages.length < count) {
    const next: IteratorResult<Message, undefined> = await within(
      it.next(),
      `${what} (${messages.length} of ${count} arrived)`,
    );
    assert.equal(next.done, false, `${what}: the subscription ended early`);
    messages.push(next.value as Message);
  }
  return messages;
}

/**
 * Resolves with the error of the client's `close` event, which comes once the client is closed
 * for good (undefined for a clean close).
 *
 * @example
 * ```ts ignore
 * const error = await within(closed(client), "the connection to end");
 * ```
 */
export function closed(client: MqttClient): Promise<MqttError | undefined> {
  return new Promise((resolve) => {
    client.addEventListener(
      "close",
      (event) => resolve((event as CustomEvent<CloseEventDetail>).detail.error),
      { once: true },
    );
  });
}

/**
 * Resolves with the error of the client's next `disconnect` event: an accepted connection ended
 * (the client may reconnect afterwards, unless `reconnect: false`).
 *
 * @example
 * ```ts ignore
 * const error = await within(disconnected(client), "the connection to drop");
 * ```
 */
export function disconnected(client: MqttClient): Promise<MqttError | undefined> {
  return new Promise((resolve) => {
    client.addEventListener(
      "disconnect",
      (event) => resolve((event as CustomEvent<CloseEventDetail>).detail.error),
      { once: true },
    );
  });
}

/**
 * An `assert.rejects` validator: the error is an {@linkcode MqttError} with `code` (and, when
 * given, a message matching `message`).
 *
 * @example
 * ```ts ignore
 * await assert.rejects(connect(url), hasCode("TRANSPORT_ERROR"));
 * ```
 */
export function hasCode(code: MqttErrorCode, message?: RegExp): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof MqttError, `expected an MqttError, got ${String(err)}`);
    assert.equal(err.code, code, `expected code ${code}, got ${err.code}: ${err.message}`);
    if (message) assert.match(err.message, message);
    return true;
  };
}

/**
 * Options for a client checked with {@linkcode assertNothingHeld}: messages for no subscription
 * stay held however long the test takes.
 */
export const HOLD: { readonly holdTimeout: number } = { holdTimeout: Infinity };

/**
 * Asserts that the client holds no message for `filter`: held (unrouted) messages are handed to
 * the next matching subscription at once, so a new subscription that starts empty proves none
 * arrived. Call it after a later message (a sentinel) was received on the same connection: the
 * server sends in order, so anything sent before the sentinel has been routed by then. Connect
 * the client with {@linkcode HOLD}: past `holdTimeout` a message for no subscription is dropped,
 * not held, and the probe would not see it.
 *
 * @example
 * ```ts ignore
 * await take(sentinelSub, 1, "the sentinel");
 * await assertNothingHeld(client, "gone/topic");
 * ```
 */
export async function assertNothingHeld(client: MqttClient, filter: string): Promise<void> {
  const probe = await client.subscribe(filter, { qos: 0 });
  try {
    assert.equal(probe.buffered, 0, `a message for ${filter} was delivered`);
  } finally {
    await probe.unsubscribe();
  }
}
