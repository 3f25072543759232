/**
 * The errors both TCP transports ({@link ./tcp.ts} over `Deno.*`,
 * {@link ./node_tcp.ts} over `node:net`) turn failures into, so a caller sees
 * the same codes and messages on every runtime.
 *
 * @module
 */
import { MqttError } from "../errors.ts";

/**
 * `ABORTED`, with the signal's reason as the cause.
 *
 * @example
 * ```ts
 * import { abortError } from "./connect_errors.ts";
 * const error = abortError(AbortSignal.abort(new Error("stop")));
 * console.log(error.code); // "ABORTED"
 * ```
 */
export function abortError(signal: AbortSignal): MqttError {
  return new MqttError("ABORTED", "connect aborted", { cause: signal.reason });
}

/**
 * `TRANSPORT_ERROR` saying `context: <the error's message>`, with the error
 * as the cause; an `MqttError` is returned as it is.
 *
 * @example
 * ```ts
 * import { transportError } from "./connect_errors.ts";
 * const error = transportError(new Error("refused"), "cannot connect to localhost:1883");
 * console.log(error.message); // "cannot connect to localhost:1883: refused"
 * ```
 */
export function transportError(error: unknown, context: string): MqttError {
  if (error instanceof MqttError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new MqttError("TRANSPORT_ERROR", `${context}: ${reason}`, { cause: error });
}
