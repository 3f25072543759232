/**
 * Broker targets: one shape for "a broker the client tests talk to", whether a real Mosquitto
 * process ({@linkcode mosquittoTarget}) or the embedded broker in this process
 * ({@linkcode embeddedTarget}), so that a test body is written once and run against both
 * ({@linkcode brokersTest}).
 *
 * @module
 */
import { Broker, type BrokerOptions } from "../broker.ts";
import { AsyncLocalStorage } from "node:async_hooks";
import { connect as connectClient, type ConnectOptions, type MqttClient } from "../mod.ts";
import { brokerTest, type Certs, sharedCerts, startMosquitto } from "./broker/mod.ts";

/** Which broker a {@linkcode Target} is. */
export type BrokerName = "mosquitto" | "embedded";

/**
 * The protocol version a body registered by {@linkcode brokersTest} runs at: each body runs at
 * MQTT 3.1.1 and again at MQTT 5.0, against both brokers. Its `connect()` calls read it from here.
 */
const bodyVersion = new AsyncLocalStorage<5>();
/**
 * Bodies (by the start of their name) that do not hold at MQTT 5.0, and why. Each is registered
 * as ignored at 5.0, with the reason in its name.
 */
const NOT_AT_5: [string, string][] = [
  [
    "maxPacketSize: a larger incoming packet",
    "at 5.0 the server learns our Maximum Packet Size and discards larger packets itself " +
    "(MQTT-3.1.2-25); client_v5_test.ts covers it",
  ],
];

/**
 * `connect()` at the protocol version of the body it is called from (see
 * {@linkcode brokersTest}; a test's own `protocolVersion` wins). At 5.0 a `clean: false` session
 * gets the longest Session Expiry Interval, which is what a 3.1.1 persistent session is (5.0's
 * default of 0 ends the session with the connection).
 */
export function connect(url: string | URL, options: ConnectOptions = {}): Promise<MqttClient> {
  if (bodyVersion.getStore() !== 5 || options.protocolVersion !== undefined) {
    return connectClient(url, options);
  }
  const v5: ConnectOptions = { protocolVersion: 5, ...options };
  if (options.clean === false) v5.sessionExpiryInterval ??= 0xffff_ffff;
  return connectClient(url, v5);
}

/** What a target offers, for tests that need more than plain MQTT over TCP. */
export interface TargetFeatures {
  /** TLS listeners (`tlsUrl`, and `wssUrl` with WebSockets). */
  tls: boolean;
  /** A WebSocket listener (`wsUrl`). */
  websockets: boolean;
}

/** A running broker under test. */
export interface Target extends AsyncDisposable {
  /** Which broker this is; test names start with `[name]`. */
  readonly name: BrokerName;
  /** Always `127.0.0.1`. */
  readonly host: string;
  /** Plain MQTT port (for proxies and `mosquitto_pub -p`). */
  readonly port: number;
  /** `mqtt://127.0.0.1:<port>`. */
  readonly url: string;
  /** `ws://127.0.0.1:<wsPort>/mqtt`, when asked for with `websockets`. */
  readonly wsUrl?: string;
  /** `mqtts://localhost:<tlsPort>`, when asked for with `tls` and `features.tls`. */
  readonly tlsUrl?: string;
  /** `wss://localhost:<wssPort>/mqtt`, when asked for with `tls` and `websockets`. */
  readonly wssUrl?: string;
  /** The certificates of the TLS listeners. */
  readonly certs?: Certs;
  /** What this broker offers at all (not only what was asked for). */
  readonly features: TargetFeatures;
  /** Stops the broker. Safe to call more than once. */
  stop(): Promise<void>;
}

/** What a test asks of its broker; every field defaults to off. */
export interface TargetOptions {
  /** Add a WebSocket listener. */
  websockets?: boolean;
  /** Add TLS listeners, where the broker has them (see {@linkcode TargetFeatures.tls}). */
  tls?: boolean;
  /**
   * Lift the per-client queue limit (Mosquitto's in-flight limit too), for tests that leave
   * thousands of messages with the broker.
   */
  flood?: boolean;
}

/**
 * Starts a Mosquitto process as a {@linkcode Target}.
 *
 * @example
 * ```ts ignore
 * await using target = await mosquittoTarget({ websockets: true });
 * const client = await connect(target.wsUrl!);
 * ```
 */
export async function mosquittoTarget(options: TargetOptions = {}): Promise<Target> {
  const broker = await startMosquitto({
    tls: options.tls,
    websockets: options.websockets,
    wsTls: options.tls && options.websockets,
    flood: options.flood,
  });
  return {
    name: "mosquitto",
    host: broker.host,
    port: broker.port,
    url: broker.url,
    wsUrl: broker.wsUrl,
    tlsUrl: broker.tlsUrl,
    wssUrl: broker.wssUrl,
    certs: broker.certs,
    features: FEATURES.mosquitto,
    stop: () => broker.stop(),
    [Symbol.asyncDispose]: () => broker.stop(),
  };
}

/**
 * Starts the embedded {@linkcode Broker} on free loopback ports as a {@linkcode Target}; with
 * `tls`, TLS listeners too (mqtts, and wss with `websockets`) with the shared test certificates.
 *
 * @example
 * ```ts ignore
 * await using target = await embeddedTarget({ websockets: true }, { maxQoS: 1 });
 * ```
 */
export async function embeddedTarget(
  options: TargetOptions = {},
  brokerOptions: BrokerOptions = {},
): Promise<Target> {
  const broker = new Broker({
    // As Mosquitto's `max_queued_messages 0` does, for the tests that flood a client.
    ...(options.flood ? { maxQueuedMessages: 1_000_000 } : {}),
    ...brokerOptions,
  });
  let address;
  let secure;
  const certs = options.tls ? await sharedCerts() : undefined;
  try {
    address = await broker.listen({ port: 0, wsPort: options.websockets ? 0 : undefined });
    if (certs !== undefined) {
      secure = await broker.listen({
        port: 0,
        wsPort: options.websockets ? 0 : undefined,
        tls: { cert: certs.server.cert, key: certs.server.key },
      });
    }
  } catch (err) {
    await broker.close();
    throw err;
  }
  const { hostname, port, wsPort } = address;
  const stop = () => broker.close();
  return {
    name: "embedded",
    host: hostname,
    port,
    url: `mqtt://${hostname}:${port}`,
    wsUrl: wsPort === undefined ? undefined : `ws://${hostname}:${wsPort}/mqtt`,
    tlsUrl: secure === undefined ? undefined : `mqtts://localhost:${secure.port}`,
    wssUrl: secure?.wsPort === undefined ? undefined : `wss://localhost:${secure.wsPort}/mqtt`,
    certs,
    features: FEATURES.embedded,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * Starts a target of one broker.
 *
 * @example
 * ```ts ignore
 * const start: TargetFactory = TARGETS.embedded;
 * await using target = await start({ flood: true });
 * ```
 */
export type TargetFactory = (options?: TargetOptions) => Promise<Target>;

/**
 * Every broker the shared test bodies run against, by name.
 *
 * @example
 * ```ts ignore
 * for (const [name, start] of Object.entries(TARGETS)) {
 *   await using target = await start();
 *   console.log(name, target.url);
 * }
 * ```
 */
export const TARGETS: Readonly<Record<BrokerName, TargetFactory>> = Object.freeze({
  mosquitto: (options?: TargetOptions) => mosquittoTarget(options),
  embedded: (options?: TargetOptions) => embeddedTarget(options),
});

/**
 * The {@linkcode TargetFeatures} of each broker, known before starting one (to register a test
 * as not applicable).
 *
 * @example
 * ```ts
 * console.log(FEATURES.embedded.tls); // true
 * ```
 */
export const FEATURES: Readonly<Record<BrokerName, Readonly<TargetFeatures>>> = Object.freeze({
  mosquitto: Object.freeze({ tls: true, websockets: true }),
  embedded: Object.freeze({ tls: true, websockets: true }),
});

/** Options of {@linkcode brokersTest} and {@linkcode targetTest}. */
export interface BrokersTestOptions {
  /** What the body needs of its broker. */
  target?: TargetOptions;
  /**
   * The body runs `mosquitto_pub`/`mosquitto_sub` (as independent clients, against either
   * broker): without them installed, it is ignored like any Mosquitto test (failing with `CI`).
   */
  cli?: boolean;
  /**
   * Why the body does not apply to this broker (e.g. it has no TLS listener): the test is
   * registered as ignored, with the reason in its name, so a report never counts it as passed.
   */
  notApplicable?: string;
}

/**
 * Registers one test named `[broker] name` that starts a fresh target, runs `body` against it
 * and stops it. A Mosquitto test follows the skip rules of `brokerTest`; an embedded one always
 * runs, unless it uses the Mosquitto command-line clients.
 *
 * @example
 * ```ts ignore
 * targetTest("embedded", "over ws://", (target) => check(target.wsUrl!), {
 *   target: { websockets: true },
 * });
 * ```
 */
export function targetTest(
  broker: BrokerName,
  name: string,
  body: (target: Target, t: Deno.TestContext) => Promise<void>,
  options: BrokersTestOptions = {},
): void {
  const fullName = `[${broker}] ${name}`;
  if (options.notApplicable !== undefined) {
    Deno.test({
      name: `${fullName} (not applicable: ${options.notApplicable})`,
      ignore: true,
      fn: () => {},
    });
    return;
  }
  const fn = async (t: Deno.TestContext) => {
    await using target = await TARGETS[broker](options.target);
    await body(target, t);
  };
  if (broker === "mosquitto" || options.cli) {
    // The Mosquitto command-line clients are part of the MOSQUITTO tool.
    brokerTest(fullName, fn);
  } else {
    Deno.test(fullName, fn);
  }
}

/**
 * Registers `body` once per broker, as `[mosquitto] <name>` and `[embedded] <name>` (see
 * {@linkcode targetTest}).
 *
 * @example
 * ```ts ignore
 * brokersTest("retained messages reach late subscribers", async (target) => {
 *   await using client = await connect(target.url);
 * });
 * ```
 */
export function brokersTest(
  name: string,
  body: (target: Target, t: Deno.TestContext) => Promise<void>,
  options: BrokersTestOptions = {},
): void {
  for (const broker of Object.keys(TARGETS) as BrokerName[]) {
    targetTest(broker, name, body, options);
  }
  // Again at MQTT 5.0, against both.
  const at5 = NOT_AT_5.find(([start]) => name.startsWith(start));
  for (const broker of Object.keys(TARGETS) as BrokerName[]) {
    targetTest(
      broker,
      `${name} [MQTT 5.0]`,
      (target, t) => bodyVersion.run(5, () => body(target, t)),
      at5 === undefined ? options : { ...options, notApplicable: at5[1] },
    );
  }
}
