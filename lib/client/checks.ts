/**
 * The small checks the client's option validation is built of: each returns the value when it is
 * of the kind asked for and throws `INVALID_OPTION` naming the option otherwise.
 *
 * @module
 */
import { MqttError } from "../errors.ts";

/**
 * An `INVALID_OPTION` error; the message names the option and what it must be.
 *
 * @example
 * ```ts
 * import { invalid } from "./checks.ts";
 * console.log(invalid("qos must be 0, 1 or 2").code); // INVALID_OPTION
 * ```
 */
export function invalid(message: string): MqttError {
  return new MqttError("INVALID_OPTION", message);
}

/**
 * Returns `value` if it is an integer from `min` to `max`, else throws `INVALID_OPTION`.
 *
 * @example
 * ```ts
 * import { checkInteger } from "./checks.ts";
 * console.log(checkInteger("bufferSize", 10, 1, 100)); // 10
 * ```
 */
export function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * Returns `value` if it is a boolean, else throws `INVALID_OPTION`.
 *
 * @example
 * ```ts
 * import { checkBoolean } from "./checks.ts";
 * console.log(checkBoolean("retain", true)); // true
 * ```
 */
export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw invalid(`${name} must be a boolean, got ${typeof value}`);
  return value;
}

/**
 * Returns `value` if it is a string, else throws `INVALID_OPTION`.
 *
 * @example
 * ```ts
 * import { checkString } from "./checks.ts";
 * console.log(checkString("contentType", "text/plain")); // text/plain
 * ```
 */
export function checkString(name: string, value: unknown): string {
  if (typeof value !== "string") throw invalid(`${name} must be a string, got ${typeof value}`);
  return value;
}
