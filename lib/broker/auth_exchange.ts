/**
 * The broker's side of MQTT 5.0 enhanced authentication (section 4.12) on
 * one connection: the method the CONNECT chose, the exchange under way (its
 * step and the hook's state), which AUTH packets the client may send when,
 * and what each answer of `enhancedAuthenticate` puts on the wire.
 *
 * @module
 */
import type { AuthPacket } from "../codec/packet.ts";
import type { AuthProperties } from "../codec/properties.ts";
import type { EnhancedAuthContext, EnhancedAuthResult } from "./options.ts";

/** Who is authenticating, for {@linkcode AuthExchange.context}. */
export interface AuthIdentity {
  /** The client identifier (assigned when it was empty). */
  clientId: string;
  /** The user name from CONNECT, if any. */
  username: string | undefined;
  /** Where the client connects from, when the transport tells. */
  remoteAddress: string | undefined;
}

/** What an answer of the hook calls for; see {@linkcode AuthExchange.settle}. */
export type AuthOutcome =
  /** Send this AUTH 0x18 challenge and wait for the client's next AUTH. */
  | { next: "challenge"; packet: AuthPacket }
  /** Authenticated: these properties go on the CONNACK, or on AUTH 0x00 after a re-authentication. */
  | { next: "success"; properties: AuthProperties }
  /** Refused with this reason code: CONNACK, or DISCONNECT after a re-authentication. */
  | { next: "fail"; reasonCode: number };

/**
 * One connection's enhanced authentication with the method its CONNECT
 * gave. The first exchange starts with the CONNECT; the client may start
 * another, a re-authentication, with AUTH 0x19 once connected (section 4.12.1).
 *
 * @example
 * ```ts
 * import { AuthExchange } from "./auth_exchange.ts";
 * const exchange = new AuthExchange("PLAIN");
 * const ctx = exchange.context(undefined, { clientId: "c", username: undefined, remoteAddress: undefined });
 * console.log(ctx.step, exchange.settle({ result: "continue" }).next); // 0 challenge
 * ```
 */
export class AuthExchange {
  /** The Authentication Method of the CONNECT. */
  readonly method: string;
  #state: Record<string, unknown> = {};
  #step = 0;
  #reauthenticate = false;
  #active = true;

  /** The first exchange, started by a CONNECT with Authentication Method `method`. */
  constructor(method: string) {
    this.method = method;
  }

  /**
   * Checks an AUTH from the client (`connected`: its CONNECT was accepted):
   * returns why it breaks the rules, or undefined when it is the next step
   * (AUTH 0x18 within the exchange) or starts a re-authentication (AUTH 0x19
   * once connected and no exchange is under way).
   */
  receive(packet: AuthPacket, connected: boolean): string | undefined {
    const method = packet.properties?.authenticationMethod;
    if (method !== this.method) {
      // MQTT-4.12.0-1 / section 4.12.1: the method of the CONNECT, and only with one.
      return `AUTH with method ${method}, not that of the CONNECT`;
    }
    const code = packet.reasonCode ?? 0;
    if (code === 0x19 && connected && !this.#active) {
      // Section 4.12.1: re-authentication, a new exchange with the same method.
      this.#state = {};
      this.#step = 0;
      this.#reauthenticate = true;
      this.#active = true;
      return undefined;
    }
    if (code !== 0x18 || !this.#active) return `AUTH reason 0x${code.toString(16)} out of turn`;
    return undefined;
  }

  /** What the hook is asked for the next step, with the client's Authentication Data `data`. */
  context(data: Uint8Array | undefined, identity: AuthIdentity): EnhancedAuthContext {
    return {
      method: this.method,
      data,
      clientId: identity.clientId,
      username: identity.username,
      remoteAddress: identity.remoteAddress,
      reauthenticate: this.#reauthenticate,
      step: this.#step++,
      state: this.#state,
    };
  }

  /** What the hook's answer calls for; a success or failure ends the exchange. */
  settle(answer: EnhancedAuthResult): AuthOutcome {
    const properties = { authenticationMethod: this.method } as AuthProperties;
    if (answer.result !== "fail" && answer.data !== undefined) {
      properties.authenticationData = answer.data;
    }
    if (answer.result === "continue") {
      return { next: "challenge", packet: { type: "auth", reasonCode: 0x18, properties } };
    }
    this.#active = false;
    if (answer.result === "success") return { next: "success", properties };
    return { next: "fail", reasonCode: answer.reasonCode ?? 0x87 };
  }
}
