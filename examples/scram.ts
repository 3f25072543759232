/**
 * The client side of SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash) over Web
 * Crypto, for MQTT 5.0 enhanced authentication: the messages travel as the
 * Authentication Data of CONNECT, AUTH and CONNACK. No dependencies.
 *
 * ```ts ignore
 * const scram = new ScramClient("alice", "secret");
 * const client = await connect(url, {
 *   protocolVersion: 5,
 *   authenticationMethod: "SCRAM-SHA-256",
 *   authenticationData: scram.first(),
 *   onAuth: (serverFirst) => scram.final(serverFirst),
 * });
 * if (!(await scram.verify(client.connack.properties?.authenticationData))) throw new Error("impostor");
 * ```
 *
 * The user name is not SASLprep-normalised: use ASCII names and passwords,
 * or normalise them (NFKC) before.
 *
 * @module
 */

const enc = new TextEncoder();
const dec = new TextDecoder();

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function unbase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** Parses `a=1,b=2` into its attributes (values may contain "="). */
export function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) out.set(part[0], part.slice(2));
  }
  return out;
}

/** A copy over a plain ArrayBuffer, as Web Crypto's types want. */
function own(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

async function hmac(key: Uint8Array, data: string): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    "raw",
    own(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    [
      "sign",
    ],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, enc.encode(data)));
}

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", own(data)));
}

/**
 * SaltedPassword := Hi(password, salt, i): PBKDF2 with HMAC-SHA-256 (RFC 5802 section 2.2).
 *
 * @example
 * ```ts ignore
 * const salted = await saltedPassword("pencil", salt, 4096);
 * ```
 */
export async function saltedPassword(
  password: string,
  salt: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", enc.encode(password), "PBKDF2", false, [
    "deriveBits",
  ]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: own(salt), iterations },
    key,
    256,
  );
  return new Uint8Array(bits);
}

/** The keys both sides derive from the salted password (RFC 5802 section 3). */
export async function scramKeys(
  salted: Uint8Array,
): Promise<{ clientKey: Uint8Array; storedKey: Uint8Array; serverKey: Uint8Array }> {
  const clientKey = await hmac(salted, "Client Key");
  return {
    clientKey,
    storedKey: await sha256(clientKey),
    serverKey: await hmac(salted, "Server Key"),
  };
}

/** HMAC-SHA-256 of `message` under `key`: ClientSignature and ServerSignature. */
export function signature(key: Uint8Array, message: string): Promise<Uint8Array> {
  return hmac(key, message);
}

/** Escapes a SCRAM user name: "=" and "," (RFC 5802 section 5.1). */
function saslName(name: string): string {
  return name.replaceAll("=", "=3D").replaceAll(",", "=2C");
}

/**
 * One SCRAM-SHA-256 exchange, client side: {@linkcode first} for CONNECT's
 * Authentication Data, {@linkcode final} to answer the server's AUTH, and
 * {@linkcode verify} for the server's signature in the CONNACK (or the last
 * AUTH of a re-authentication). Use a new one per exchange.
 */
export class ScramClient {
  readonly #user: string;
  readonly #password: string;
  readonly #nonce: string;
  #clientFirstBare = "";
  #serverSignature: Uint8Array | undefined;

  /** An exchange for `user` with `password`; `nonce` is for tests only (default: 18 random bytes). */
  constructor(user: string, password: string, nonce?: string) {
    this.#user = user;
    this.#password = password;
    this.#nonce = nonce ?? base64(crypto.getRandomValues(new Uint8Array(18)));
  }

  /** client-first-message: `n,,n=user,r=nonce` (no channel binding). */
  first(): Uint8Array {
    this.#clientFirstBare = `n=${saslName(this.#user)},r=${this.#nonce}`;
    return enc.encode(`n,,${this.#clientFirstBare}`);
  }

  /**
   * client-final-message for the server-first-message `data`. Throws when the
   * server's nonce does not extend ours or its salt or iteration count is missing.
   */
  async final(data: Uint8Array | undefined): Promise<Uint8Array> {
    if (data === undefined) throw new Error("SCRAM: the server sent no server-first-message");
    const serverFirst = dec.decode(data);
    const attrs = attributes(serverFirst);
    const nonce = attrs.get("r");
    const salt = attrs.get("s");
    const iterations = Number(attrs.get("i"));
    if (nonce === undefined || !nonce.startsWith(this.#nonce) || nonce === this.#nonce) {
      throw new Error("SCRAM: the server's nonce does not extend ours");
    }
    if (salt === undefined || !Number.isInteger(iterations) || iterations < 1) {
      throw new Error("SCRAM: the server-first-message lacks a salt or an iteration count");
    }
    const salted = await saltedPassword(this.#password, unbase64(salt), iterations);
    const { clientKey, storedKey, serverKey } = await scramKeys(salted);
    const withoutProof = `c=biws,r=${nonce}`; // "biws" = base64("n,,")
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = await signature(storedKey, authMessage);
    const proof = clientKey.map((b, i) => b ^ clientSignature[i]);
    this.#serverSignature = await signature(serverKey, authMessage);
    return enc.encode(`${withoutProof},p=${base64(proof)}`);
  }

  /** Whether `data` (server-final-message `v=...`) proves the server knows the password too. */
  verify(data: Uint8Array | undefined): boolean {
    const expected = this.#serverSignature;
    if (data === undefined || expected === undefined) return false;
    const v = attributes(dec.decode(data)).get("v");
    return v !== undefined && v === base64(expected);
  }
}
