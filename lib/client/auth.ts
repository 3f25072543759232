/**
 * MQTT 5.0 enhanced authentication in the client (section 4.12): the
 * `authenticationMethod`, `authenticationData` and `onAuth` options, and the
 * driver's side of a challenge-response, which may await the application.
 * The protocol rules are the session's (`lib/session/auth.ts`).
 *
 * @module
 */
import type { AuthPacket } from "../codec/packet.ts";
import type { ConnectProperties } from "../codec/properties.ts";
import { MqttError } from "../errors.ts";
import { invalid } from "./checks.ts";

/**
 * Answers one challenge of the server: gets its Authentication Data, returns
 * ours for the AUTH 0x18 answer. Throwing (or rejecting) abandons the
 * exchange: the client sends DISCONNECT and fails with `AUTH_FAILED`.
 */
export type AuthHandler = (
  data: Uint8Array | undefined,
) => Uint8Array | undefined | Promise<Uint8Array | undefined>;

/** The enhanced authentication options of `connect()` (MQTT 5.0 only). */
export interface AuthOptions {
  /** 5.0: the Authentication Method of CONNECT, e.g. "SCRAM-SHA-256"; enables AUTH exchanges. */
  authenticationMethod?: string;
  /** 5.0: the Authentication Data of CONNECT (the first step of the method). Needs the method. */
  authenticationData?: Uint8Array;
  /** 5.0: answers the server's AUTH challenges, at connect and during `reauthenticate()`. */
  onAuth?: AuthHandler;
}

/**
 * Checks the authentication options; returns the CONNECT properties they add
 * and the challenge handler. Under MQTT 3.1.1 any of them is `INVALID_OPTION`.
 *
 * @example
 * ```ts
 * import { resolveAuthOptions } from "./auth.ts";
 * const auth = resolveAuthOptions({ authenticationMethod: "X", onAuth: () => undefined }, 5);
 * console.log(auth?.properties); // { authenticationMethod: "X" }
 * ```
 */
export function resolveAuthOptions(
  options: AuthOptions,
  version: 4 | 5 | "auto",
): { properties: ConnectProperties; onAuth: AuthHandler | undefined } | undefined {
  const { authenticationMethod: method, authenticationData: data, onAuth } = options;
  if (method === undefined && data === undefined && onAuth === undefined) return undefined;
  if (version === 4) {
    const name = method !== undefined
      ? "authenticationMethod"
      : data !== undefined
      ? "authenticationData"
      : "onAuth";
    throw invalid(`${name} is an MQTT 5.0 option; connect with protocolVersion: 5 to use it`);
  }
  if (typeof method !== "string" || method === "") {
    throw invalid(
      "authenticationData and onAuth need authenticationMethod, a non-empty string (section 4.12)",
    );
  }
  if (data !== undefined && !(data instanceof Uint8Array)) {
    throw invalid("authenticationData must be a Uint8Array");
  }
  if (onAuth !== undefined && typeof onAuth !== "function") {
    throw invalid("onAuth must be a function (data) => bytes");
  }
  const properties: ConnectProperties = { authenticationMethod: method };
  if (data !== undefined) properties.authenticationData = data;
  return { properties, onAuth };
}

/** What {@linkcode AuthExchange} does with the session. */
export interface AuthSession {
  /** Sends AUTH 0x18 with our data. */
  answer(data: Uint8Array | undefined): void;
  /** Abandons the exchange: DISCONNECT, then the connection ends with `error`. */
  fail(error: MqttError): void;
}

/**
 * One connection's side of enhanced authentication: runs `onAuth` for each
 * challenge (one at a time, as the server waits for our answer), and settles
 * the `reauthenticate()` under way.
 *
 * @example
 * ```ts ignore
 * const exchange = new AuthExchange(options.onAuth, { answer, fail });
 * exchange.received(authPacket, false);
 * ```
 */
export class AuthExchange {
  readonly #onAuth: AuthHandler | undefined;
  readonly #session: AuthSession;
  #reauth: PromiseWithResolvers<Uint8Array | undefined> | undefined;
  #ended: MqttError | undefined;

  /** An exchange answering with `onAuth` through `session`. */
  constructor(onAuth: AuthHandler | undefined, session: AuthSession) {
    this.#onAuth = onAuth;
    this.#session = session;
  }

  /** The session handed over a checked AUTH (see `SessionHandler.auth`). */
  received(packet: AuthPacket, finished: boolean): void {
    const data = packet.properties?.authenticationData;
    if (finished) {
      const reauth = this.#reauth;
      this.#reauth = undefined;
      reauth?.resolve(data);
      return;
    }
    const onAuth = this.#onAuth;
    if (onAuth === undefined) {
      this.#session.fail(
        new MqttError(
          "AUTH_FAILED",
          `the server sent an authentication challenge (${packet.properties?.authenticationMethod}) ` +
            "and there is no onAuth option to answer it",
        ),
      );
      return;
    }
    // Through a promise: a handler that throws synchronously fails the same way.
    Promise.resolve().then(() => onAuth(data)).then(
      (answer) => {
        if (this.#ended === undefined) this.#session.answer(answer);
      },
      (cause) => {
        if (this.#ended !== undefined) return;
        this.#session.fail(
          new MqttError(
            "AUTH_FAILED",
            `onAuth failed to answer the server's challenge: ${(cause as Error)?.message ?? cause}`,
            { cause },
          ),
        );
      },
    );
  }

  /**
   * A re-authentication: `start` sends AUTH 0x19; resolves with the
   * Authentication Data of the server's final AUTH 0x00.
   */
  reauthenticate(start: () => void): Promise<Uint8Array | undefined> {
    if (this.#ended !== undefined) return Promise.reject(this.#ended);
    if (this.#reauth !== undefined) {
      return Promise.reject(new MqttError("INVALID_STATE", "a re-authentication is under way"));
    }
    try {
      start();
    } catch (err) {
      return Promise.reject(err);
    }
    this.#reauth = Promise.withResolvers();
    return this.#reauth.promise;
  }

  /** The connection ended: a re-authentication under way fails with `error`. */
  end(error: MqttError): void {
    this.#ended ??= error;
    const reauth = this.#reauth;
    this.#reauth = undefined;
    reauth?.reject(error);
  }
}
