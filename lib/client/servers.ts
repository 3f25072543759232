/**
 * The servers a client may connect to: one broker URL, or several nodes of a
 * cluster (or independent brokers) tried in turn. Resolves the options once
 * per server and keeps which one the client is on and how far the current
 * round through the list has gone.
 *
 * @module
 */
import type { MqttError } from "../errors.ts";
import { invalid } from "./checks.ts";
import { type ConnectOptions, type ResolvedOptions, resolveOptions } from "./options.ts";
import { parseBrokerUrl, redactUrl } from "./url.ts";
import { MAX_STRIKES } from "../session/flows.ts";
import { type Redirect, redirectHops, redirectOf, referenceUrl, SERVER_MOVED } from "./redirect.ts";

/** One broker URL, or several tried in order (see {@linkcode ServerList}). */
export type BrokerUrls = string | URL | readonly (string | URL)[];

/**
 * The servers of a client and where it stands among them.
 *
 * The list is walked in rounds: the first `connect()` tries each server in
 * order, once; after a lost connection the client moves on to the next server
 * and, if that fails, to the one after, until every server was tried once.
 * Only a round that ends without a connection waits for the reconnect backoff,
 * so a dead node costs one failed attempt, not a backoff delay.
 *
 * With `followRedirects`, an MQTT 5.0 server's 0x9C (use another server) sends
 * the client to its Server Reference until the next move, and 0x9D (server
 * moved) replaces that server in the list; at most the given number of hops
 * in a row, counted until a connection is accepted.
 *
 * @example
 * ```ts
 * import { resolveServers } from "./servers.ts";
 * const servers = resolveServers(["mqtt://a:1883", "mqtt://b:1883"], { clientId: "c1" });
 * console.log(servers.url); // "mqtt://a:1883"
 * servers.lost();
 * console.log(servers.url); // "mqtt://b:1883"
 * ```
 */
export class ServerList {
  readonly #servers: ResolvedOptions[];
  readonly #shown: string[];
  #index = 0;
  /** Failed attempts in the current round. */
  #failed = 0;
  readonly #maxHops: number;
  /** Redirections followed since a connection was last accepted. */
  #hops = 0;
  /** Where a 0x9C redirection sent the client, in use until the next move. */
  #detour: { options: ResolvedOptions; shown: string } | undefined;
  /** The redirection that led to the current server. */
  #redirect: Redirect | undefined;

  /**
   * A list over options already resolved, one per server (at least one);
   * `maxHops` redirections in a row are followed (0: none).
   */
  constructor(servers: readonly ResolvedOptions[], shown: readonly string[], maxHops = 0) {
    if (servers.length === 0 || servers.length !== shown.length) {
      throw invalid("a server list needs at least one server, and a name for each");
    }
    this.#servers = [...servers];
    this.#shown = [...shown];
    this.#maxHops = maxHops;
  }

  /**
   * A list of one server.
   *
   * @example
   * ```ts
   * import { ServerList } from "./servers.ts";
   * import { resolveOptions } from "./options.ts";
   * console.log(ServerList.of(resolveOptions("mqtt://broker")).size); // 1
   * ```
   */
  static of(options: ResolvedOptions): ServerList {
    return new ServerList([options], [options.url.href.href]);
  }

  /** How many servers there are. */
  get size(): number {
    return this.#servers.length;
  }

  /** The options of the server to connect to now. */
  get current(): ResolvedOptions {
    return this.#detour?.options ?? this.#servers[this.#index];
  }

  /** The current server's URL as given, its password replaced by `***`. */
  get url(): string {
    return this.#detour?.shown ?? this.#shown[this.#index];
  }

  /** The redirection that led to the current server, if one did. */
  get redirect(): Redirect | undefined {
    return this.#redirect;
  }

  /**
   * Follows the redirection `error` asks for (a CONNACK or DISCONNECT with
   * 0x9C or 0x9D and a Server Reference), if `followRedirects` allows one more
   * hop and the reference parses without leaving TLS. Returns whether the
   * current server changed; the caller then connects there.
   */
  follow(error: MqttError | undefined): boolean {
    const asked = redirectOf(error);
    if (asked === undefined || this.#hops >= this.#maxHops) return false;
    const from = this.current;
    const url = referenceUrl(asked.serverReference, from.url);
    if (url === undefined) return false;
    const options: ResolvedOptions = { ...from, url };
    if (url.protocol !== "mqtts" && url.protocol !== "wss") delete options.tls;
    const shown = url.href.href;
    this.#redirect = { from: this.url, to: shown, ...asked };
    this.#hops++;
    if (asked.reasonCode === SERVER_MOVED && this.#detour === undefined) {
      this.#servers[this.#index] = options;
      this.#shown[this.#index] = shown;
    } else {
      this.#detour = { options, shown };
    }
    return true;
  }

  /**
   * `shared` (the client's options of the moment: under MQTT 5.0 the assigned
   * client id and the agreed version are set in) with what is the current
   * server's own laid over it: its URL, its credentials, its TLS settings.
   * With several servers, a publish is given up with `PUBLISH_REFUSED` after
   * three drops in a row per server rather than three in all.
   */
  apply(shared: ResolvedOptions): ResolvedOptions {
    const { url, username, password, tls } = this.current;
    const options: ResolvedOptions = { ...shared, url };
    delete options.username;
    delete options.password;
    delete options.tls;
    if (username !== undefined) options.username = username;
    if (password !== undefined) options.password = password;
    if (tls !== undefined) options.tls = tls;
    // In a failover every server may drop us once before one acknowledges (a cluster electing
    // leaders does): a publish is given up only when it was dropped for three rounds.
    if (this.#servers.length > 1) options.maxStrikes = MAX_STRIKES * this.#servers.length;
    return options;
  }

  /** A connection to the current server was accepted: the next loss starts a new round. */
  connected(): void {
    this.#failed = 0;
    this.#hops = 0;
  }

  /** The accepted connection was lost: a new round starts at the next server. */
  lost(): void {
    this.#failed = 0;
    this.#advance();
  }

  /**
   * An attempt on the current server failed: moves to the next one. Returns
   * `true` when that ended a round, every server having failed once since the
   * round began; the caller then waits for its backoff before going on.
   */
  failed(): boolean {
    this.#advance();
    if (++this.#failed < this.#servers.length) return false;
    this.#failed = 0;
    return true;
  }

  /** Moves on from the current server: leaves a detour, then the list's next server. */
  #advance(): void {
    this.#detour = undefined;
    this.#redirect = undefined;
    this.#index = (this.#index + 1) % this.#servers.length;
  }
}

/**
 * Validates the broker URLs and the options, resolving the options once per
 * server: each URL may carry its own user name and password; every other
 * option, and the client identifier (generated once when not given), is
 * shared. TLS options apply to the `mqtts:` and `wss:` URLs of a mixed list.
 * Throws `INVALID_OPTION` for an empty list, an entry that is neither a
 * string nor a `URL`, or any invalid URL or option.
 *
 * @example
 * ```ts
 * import { resolveServers } from "./servers.ts";
 * const servers = resolveServers(["mqtt://u:pw@a", "wss://b/mqtt"], { clean: false, clientId: "c1" });
 * console.log(servers.size, servers.url); // 2 "mqtt://u:***@a"
 * ```
 */
export function resolveServers(urls: BrokerUrls, options: ConnectOptions = {}): ServerList {
  if (!Array.isArray(urls)) {
    const resolved = resolveOptions(urls as string | URL, options);
    const hops = redirectHops(options.followRedirects);
    return new ServerList([resolved], [redactUrl(urls as string | URL)], hops);
  }
  const list: readonly unknown[] = urls;
  if (list.length === 0) {
    throw invalid("the list of broker URLs is empty; give at least one, e.g. mqtt://host:1883");
  }
  list.forEach((url, i) => {
    if (typeof url !== "string" && !(url instanceof URL)) {
      throw invalid(
        `broker URL ${i} must be a string or a URL, got ${url === null ? "null" : typeof url}`,
      );
    }
  });
  const given = list as readonly (string | URL)[];
  const secure = given.map((url) => {
    const { protocol } = parseBrokerUrl(url);
    return protocol === "mqtts" || protocol === "wss";
  });
  // Only a list without any TLS URL makes tls options an error (resolveOptions says so).
  const tlsElsewhere = options?.tls !== undefined && secure.some(Boolean);
  let shared = options;
  const servers = given.map((url, i) => {
    const own = tlsElsewhere && !secure[i] ? { ...shared, tls: undefined } : shared;
    const resolved = resolveOptions(url, own);
    // One identity across the servers: a generated id is made once, for the first.
    if (i === 0) shared = { ...options, clientId: resolved.clientId };
    return resolved;
  });
  const hops = redirectHops(options.followRedirects);
  return new ServerList(servers, given.map((url) => redactUrl(url)), hops);
}
