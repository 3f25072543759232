/**
 * The server side of SCRAM-SHA-256 for the scripted server of the enhanced
 * authentication tests: checks the client's proof and signs the exchange.
 *
 * @module
 */
import { attributes, saltedPassword, scramKeys, signature } from "../examples/scram.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** One SCRAM-SHA-256 exchange as the server sees it, for a single known user. */
export class ScramServer {
  readonly #user: string;
  readonly #password: string;
  readonly #salt: Uint8Array;
  readonly #iterations: number;
  readonly #nonce: string;
  #clientFirstBare = "";
  #serverFirst = "";
  #combinedNonce = "";

  constructor(user: string, password: string, serverNonce = "srv", iterations = 4096) {
    this.#user = user;
    this.#password = password;
    this.#salt = enc.encode("salt-of-" + user);
    this.#iterations = iterations;
    this.#nonce = serverNonce;
  }

  /** server-first-message for the client-first-message; throws for another user. */
  first(clientFirst: Uint8Array | undefined): Uint8Array {
    const text = dec.decode(clientFirst);
    if (!text.startsWith("n,,")) throw new Error(`SCRAM: bad gs2 header in ${text}`);
    this.#clientFirstBare = text.slice(3);
    const attrs = attributes(this.#clientFirstBare);
    if (attrs.get("n") !== this.#user) throw new Error(`SCRAM: unknown user ${attrs.get("n")}`);
    this.#combinedNonce = attrs.get("r")! + this.#nonce;
    this.#serverFirst = `r=${this.#combinedNonce},s=${base64(this.#salt)},i=${this.#iterations}`;
    return enc.encode(this.#serverFirst);
  }

  /** server-final-message (`v=...`) for a correct client-final-message, else undefined. */
  async final(clientFinal: Uint8Array | undefined): Promise<Uint8Array | undefined> {
    const text = dec.decode(clientFinal);
    const at = text.lastIndexOf(",p=");
    if (at === -1) return undefined;
    const withoutProof = text.slice(0, at);
    if (attributes(withoutProof).get("r") !== this.#combinedNonce) return undefined;
    const proof = Uint8Array.from(atob(text.slice(at + 3)), (c) => c.charCodeAt(0));
    const salted = await saltedPassword(this.#password, this.#salt, this.#iterations);
    const { storedKey, serverKey } = await scramKeys(salted);
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const clientSignature = await signature(storedKey, authMessage);
    const clientKey = proof.map((b, i) => b ^ clientSignature[i]);
    const check = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(clientKey)));
    if (base64(check) !== base64(storedKey)) return undefined;
    return enc.encode(`v=${base64(await signature(serverKey, authMessage))}`);
  }
}
