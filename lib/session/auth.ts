/**
 * MQTT 5.0 enhanced authentication (section 4.12), the protocol rules of the
 * client's side without I/O: which AUTH packets the server may send, and the
 * AUTH packets we answer with. The challenge itself (the `onAuth` callback,
 * which may be asynchronous) is the driver's.
 *
 * @module
 */
import type { AuthPacket, ConnackPacket } from "../codec/packet.ts";
import { ProtocolError } from "../errors.ts";

/** Authenticate Reason Code 0x00: authentication succeeded (ends a re-authentication). */
export const AUTH_SUCCESS = 0x00;
/** Authenticate Reason Code 0x18: continue authentication. */
export const AUTH_CONTINUE = 0x18;
/** Authenticate Reason Code 0x19: re-authenticate (sent by the client only). */
export const AUTH_REAUTHENTICATE = 0x19;

function violation(packet: "auth" | "connack", why: string): ProtocolError {
  return new ProtocolError("UNEXPECTED_PACKET", why, packet);
}

/**
 * One connection's enhanced authentication with `method` (the
 * Authentication Method of our CONNECT), or none (`method` undefined).
 *
 * - An AUTH from the server when our CONNECT had no method is a protocol
 *   error (MQTT-4.12.0-6), and we never send one then (MQTT-4.12.0-7).
 * - Every AUTH from the server, and a successful CONNACK, must carry our
 *   method (MQTT-4.12.0-5); an AUTH before CONNACK must be 0x18
 *   (MQTT-4.12.0-2); after CONNACK only inside a re-authentication we started,
 *   0x18 or 0x00 (its end).
 * - Our answers are AUTH 0x18 with the method (MQTT-4.12.0-3, MQTT-4.12.0-5);
 *   a re-authentication starts with AUTH 0x19 with the method (MQTT-4.12.1-1).
 *
 * @example
 * ```ts
 * import { EnhancedAuth } from "./auth.ts";
 * const auth = new EnhancedAuth("SCRAM-SHA-256");
 * const challenge = { type: "auth", reasonCode: 0x18, properties: { authenticationMethod: "SCRAM-SHA-256" } } as const;
 * auth.receive(challenge, false);
 * console.log(auth.answer(new Uint8Array([1])).reasonCode); // 24 (0x18)
 * ```
 */
export class EnhancedAuth {
  /** The Authentication Method of our CONNECT, if any. */
  readonly method: string | undefined;
  #reauthenticating = false;

  /** The rules for a connection whose CONNECT carried `method` (or none). */
  constructor(method: string | undefined) {
    this.method = method;
  }

  /** Whether a re-authentication we started awaits its end. */
  get reauthenticating(): boolean {
    return this.#reauthenticating;
  }

  /**
   * Checks an AUTH from the server; `connected` tells whether CONNACK came.
   * Returns whether it ends a re-authentication (0x00); otherwise it is a
   * challenge (0x18) to answer with {@linkcode answer}. Throws `ProtocolError`
   * for an AUTH the rules do not allow.
   */
  receive(packet: AuthPacket, connected: boolean): boolean {
    const method = this.method;
    if (method === undefined) {
      throw violation(
        "auth",
        "the server sent AUTH, but our CONNECT had no Authentication Method (MQTT-4.12.0-6)",
      );
    }
    const got = packet.properties?.authenticationMethod;
    if (got !== method) {
      throw violation(
        "auth",
        `the server's AUTH has Authentication Method ${JSON.stringify(got)}, not ` +
          `${JSON.stringify(method)} as in CONNECT (MQTT-4.12.0-5)`,
      );
    }
    const code = packet.reasonCode ?? AUTH_SUCCESS;
    if (!connected) {
      if (code !== AUTH_CONTINUE) {
        throw violation(
          "auth",
          `the server's AUTH before CONNACK has reason code 0x${code.toString(16)}, not 0x18 ` +
            "continue authentication (MQTT-4.12.0-2)",
        );
      }
      return false;
    }
    if (!this.#reauthenticating || code === AUTH_REAUTHENTICATE) {
      throw violation(
        "auth",
        `the server sent AUTH 0x${code.toString(16)} after CONNACK outside a ` +
          "re-authentication the client started (section 4.12.1)",
      );
    }
    if (code === AUTH_SUCCESS) {
      this.#reauthenticating = false;
      return true;
    }
    return false;
  }

  /** Checks that a successful CONNACK carries our Authentication Method (MQTT-4.12.0-5). */
  checkConnack(packet: ConnackPacket): void {
    const method = this.method;
    const got = packet.properties?.authenticationMethod;
    if (method === undefined) {
      if (got !== undefined) {
        throw violation(
          "connack",
          "the CONNACK has an Authentication Method, but our CONNECT had none (MQTT-4.12.0-6)",
        );
      }
      return;
    }
    if (got !== method) {
      throw violation(
        "connack",
        `the successful CONNACK has Authentication Method ${JSON.stringify(got)}, not ` +
          `${JSON.stringify(method)} as in CONNECT (MQTT-4.12.0-5)`,
      );
    }
  }

  /** Our answer to a challenge: AUTH 0x18 with the method and `data` (MQTT-4.12.0-3). */
  answer(data: Uint8Array | undefined): AuthPacket {
    return this.#packet(AUTH_CONTINUE, data);
  }

  /**
   * Starts a re-authentication: AUTH 0x19 with the method and `data`
   * (MQTT-4.12.1-1). Throws `INVALID_STATE` without a method (MQTT-4.12.0-7)
   * or while one is under way.
   */
  reauthenticate(data: Uint8Array | undefined): AuthPacket {
    if (this.method === undefined) {
      throw new ProtocolError(
        "UNEXPECTED_PACKET",
        "re-authentication needs the authenticationMethod option: a client that sent no " +
          "Authentication Method in CONNECT must not send AUTH (MQTT-4.12.0-7)",
        "auth",
      );
    }
    if (this.#reauthenticating) {
      throw new ProtocolError(
        "UNEXPECTED_PACKET",
        "a re-authentication is already under way",
        "auth",
      );
    }
    this.#reauthenticating = true;
    return this.#packet(AUTH_REAUTHENTICATE, data);
  }

  #packet(reasonCode: number, data: Uint8Array | undefined): AuthPacket {
    const properties: AuthPacket["properties"] = { authenticationMethod: this.method };
    if (data !== undefined) properties.authenticationData = data;
    return { type: "auth", reasonCode: reasonCode as AuthPacket["reasonCode"], properties };
  }
}
