/**
 * MQTT 5.0 Message Expiry (section 3.3.2.3.3) for outgoing messages, without
 * a clock: the caller passes `now` (milliseconds, the session's clock).
 *
 * A message published with a Message Expiry Interval expires that many
 * seconds after the application handed it over. One still waiting (offline,
 * or for a window slot) when it expires is not sent; one sent late carries
 * the interval that remains, as a server forwarding it would (MQTT-3.3.2-6).
 *
 * @module
 */
import type { PublishPacket } from "../codec/packet.ts";
import { MqttError } from "../errors.ts";
import type { OutgoingMessage } from "./types.ts";

/**
 * When a message published at `now` with Message Expiry Interval `interval`
 * (seconds) expires, on the same clock; `Infinity` when it has no interval.
 *
 * @example
 * ```ts
 * import { expiryDeadline } from "./expiry.ts";
 * console.log(expiryDeadline(60, 1000), expiryDeadline(undefined, 1000)); // 61000 Infinity
 * ```
 */
export function expiryDeadline(interval: number | undefined, now: number): number {
  return interval === undefined ? Infinity : now + interval * 1000;
}

/**
 * Whether a message with deadline `expiresAt` (from {@linkcode expiryDeadline})
 * has expired at `now`.
 *
 * @example
 * ```ts
 * import { isExpired } from "./expiry.ts";
 * console.log(isExpired(5000, 4999), isExpired(5000, 5000)); // false true
 * ```
 */
export function isExpired(expiresAt: number | undefined, now: number): boolean {
  return expiresAt !== undefined && now >= expiresAt;
}

/**
 * The seconds left before `expiresAt`, rounded up, so that a message not yet
 * expired never goes out with 0; 0 once expired.
 *
 * @example
 * ```ts
 * import { remainingSeconds } from "./expiry.ts";
 * console.log(remainingSeconds(10_000, 2_500), remainingSeconds(10_000, 12_000)); // 8 0
 * ```
 */
export function remainingSeconds(expiresAt: number, now: number): number {
  return expiresAt <= now ? 0 : Math.ceil((expiresAt - now) / 1000);
}

/**
 * The PUBLISH to write at `now` for a message with deadline `expiresAt`:
 * `packet` itself when it has no expiry or its interval is still whole, else
 * a copy whose Message Expiry Interval is what remains. `packet` is never changed.
 *
 * @example
 * ```ts
 * import { withRemainingExpiry } from "./expiry.ts";
 * const packet = {
 *   type: "publish", topic: "t", payload: new Uint8Array(), qos: 1, retain: false, dup: false,
 *   packetId: 1, properties: { messageExpiryInterval: 60 },
 * } as const;
 * console.log(withRemainingExpiry(packet, 60_000, 15_000).properties?.messageExpiryInterval); // 45
 * ```
 */
export function withRemainingExpiry(
  packet: PublishPacket,
  expiresAt: number | undefined,
  now: number,
): PublishPacket {
  const interval = packet.properties?.messageExpiryInterval;
  if (interval === undefined || expiresAt === undefined || expiresAt === Infinity) return packet;
  const remaining = remainingSeconds(expiresAt, now);
  if (remaining >= interval) return packet;
  return { ...packet, properties: { ...packet.properties, messageExpiryInterval: remaining } };
}

/**
 * The error a waiting message fails with when it expired before it could be
 * sent (`MESSAGE_EXPIRED`), or undefined when it may go out at `now` (or
 * `now` is not known).
 *
 * @example
 * ```ts
 * import { expiredError } from "./expiry.ts";
 * const message = { topic: "t", payload: new Uint8Array(), qos: 1, retain: false, expiresAt: 1000 } as const;
 * console.log(expiredError(message, 999), expiredError(message, 1000)?.code); // undefined MESSAGE_EXPIRED
 * ```
 */
export function expiredError(
  message: OutgoingMessage,
  now: number | undefined,
): MqttError | undefined {
  if (now === undefined || !isExpired(message.expiresAt, now)) return undefined;
  return new MqttError(
    "MESSAGE_EXPIRED",
    `the publish to "${message.topic}" waited past its Message Expiry Interval of ` +
      `${message.properties?.messageExpiryInterval} s and was not sent`,
  );
}
