/**
 * {@linkcode Broker}: an in-process MQTT 3.1.1 broker for development and tests.
 *
 * @module
 */
import { validateTopicName } from "../codec/mod.ts";
import type { QoS, Will } from "../codec/packet.ts";
import { MqttError } from "../errors.ts";
import type { Transport } from "../transports/transport.ts";
import { Connection, type ConnectionHost } from "./connection.ts";
import { Deadlines } from "./deadlines.ts";
import {
  type BrokerClient,
  type BrokerOptions,
  type BrokerStats,
  type ConnectionInfo,
  type ListenAddress,
  type ListenOptions,
  resolveBrokerOptions,
  type ResolvedBrokerOptions,
  type TlsListenOptions,
} from "./options.ts";
import { Persistence } from "./persistence.ts";
import { type Link, SocketLink, StreamLink } from "./link.ts";
import { type RoutedMessage, Router } from "./router.ts";
import { WebSocketLink } from "./websocket.ts";

/**
 * Options of {@linkcode Broker.publish}.
 *
 * @example
 * ```ts
 * import type { BrokerPublishOptions } from "./broker.ts";
 * const options: BrokerPublishOptions = { qos: 1, retain: true };
 * ```
 */
export interface BrokerPublishOptions {
  /** QoS of the message. Default 0. */
  qos?: QoS;
  /** Whether the broker retains the message. Default false. */
  retain?: boolean;
}

/** Refuses TLS settings a listener cannot honour, before anything is bound. */
function checkTls(tls: TlsListenOptions, websocket: boolean): void {
  if (typeof tls.cert !== "string" || typeof tls.key !== "string") {
    throw new MqttError("INVALID_OPTION", "listen option tls needs cert and key (PEM text)");
  }
  if (tls.requireClientCert && (tls.caCerts === undefined || tls.caCerts.length === 0)) {
    throw new MqttError(
      "INVALID_OPTION",
      "listen option tls.requireClientCert needs tls.caCerts, the CAs that sign client certificates",
    );
  }
  if (tls.requireClientCert && websocket) {
    // Deno.serve cannot ask for a client certificate.
    throw new MqttError(
      "INVALID_OPTION",
      "tls.requireClientCert is supported on the TCP listener only: listen for wss:// separately",
    );
  }
}

/** How long to wait before accepting again after an accept error such as "too many open files". */
const ACCEPT_RETRY_MS = 50;

function addressOf(addr: Deno.Addr): string | undefined {
  if (addr.transport === "tcp" || addr.transport === "udp") return `${addr.hostname}:${addr.port}`;
  return undefined;
}

const encoder = new TextEncoder();

/** Control characters (C0, DEL, C1, line and paragraph separators) in a log line. */
// deno-lint-ignore no-control-regex -- control characters are what this finds
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** `line` with its control characters written as escapes (`\n`, `\u001b`), so it stays one line. */
function escapeControls(line: string): string {
  return line.replace(
    CONTROLS,
    (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * An embedded MQTT 3.1.1 broker (the role Aedes plays for MQTT.js): TCP and
 * WebSocket listeners, wildcard routing, QoS 0/1/2 both ways, retained
 * messages, wills, clean and persistent sessions with bounded queues for
 * offline clients, keep-alive enforcement, and authentication and
 * authorization hooks. State lives in memory only.
 *
 * Behaviour worth knowing:
 * - Overlapping subscriptions of one client give one delivery, at the highest
 *   QoS among its matching subscriptions (MQTT 3.1.1 section 3.3.5 allows it).
 * - A client's outgoing QoS 1/2 messages are at most `maxInflight` in flight;
 *   later ones (QoS 0 included) wait in order in a queue of at most
 *   `maxQueuedMessages`, which drops its oldest message when full. Offline
 *   persistent sessions queue QoS 1 and 2 messages only.
 * - A second connection with a client identifier in use closes the first
 *   (MQTT-3.1.4-2), whose will is published as for any connection lost
 *   without DISCONNECT.
 * - Bad input (malformed or oversized packets, protocol violations, no CONNECT
 *   within `connectTimeout`) closes that connection only.
 *
 * @example
 * ```ts
 * import { Broker } from "./broker.ts";
 *
 * await using broker = new Broker({ log: console.log });
 * const { port } = await broker.listen({ port: 0 }); // a free port
 * console.log(`mqtt://127.0.0.1:${port}`);
 * ```
 */
export class Broker implements AsyncDisposable {
  readonly #options: ResolvedBrokerOptions;
  readonly #router: Router;
  readonly #host: ConnectionHost;
  readonly #connections = new Set<Connection>();
  readonly #tasks = new Set<Promise<void>>();
  /** Settles once persistence is loaded (at once without it); rejects when it cannot be. */
  readonly #ready: Promise<void>;
  /** What stops each listener: TCP and TLS listeners, and WebSocket servers (which drain). */
  readonly #listeners = new Set<() => void | Promise<void>>();
  #closing: Promise<void> | undefined = undefined;

  /**
   * Creates a broker; it serves nothing until {@linkcode Broker.listen} or
   * {@linkcode Broker.handle}. A bad option throws `MqttError` with code `INVALID_OPTION`.
   */
  constructor(options?: BrokerOptions) {
    this.#options = resolveBrokerOptions(options);
    this.#router = new Router({
      maxQueued: this.#options.maxQueuedMessages,
      maxQueuedBytes: this.#options.maxQueuedBytes,
      maxRetained: this.#options.maxRetained,
      maxRetainedBytes: this.#options.maxRetainedBytes,
      log: (line) => this.#log(line),
    });
    const dir = this.#options.persistence;
    this.#ready = dir === undefined ? Promise.resolve() : Persistence.open(dir, {
      fsync: this.#options.persistenceFsync,
      log: (line) => this.#log(line),
    }).then((persistence) => {
      if (this.#closing !== undefined) persistence.close();
      else this.#router.restore(persistence);
    });
    // Observed by listen() and connections; unobserved it must not end the process.
    this.#ready.catch(() => {});
    this.#host = {
      options: this.#options,
      router: this.#router,
      deadlines: new Deadlines(() => performance.now()),
      ready: this.#ready,
      log: (line) => this.#log(line),
      publishWill: (will, client) => this.#publishWill(will, client),
      closed: (connection) => this.#connections.delete(connection),
    };
  }

  /**
   * Listens on TCP (and WebSocket when `wsPort` is given; the endpoint accepts
   * any path and the "mqtt" subprotocol). With `tls`, both serve TLS (mqtts://
   * and wss://); `tls.requireClientCert` (TCP only) refuses clients without a
   * certificate signed by `tls.caCerts`. Call it again for more listeners, say
   * plain on 1883 and TLS on 8883. Port 0 picks a free port; the bound ports
   * are returned. Rejects if the broker is closed, a port cannot be bound, or
   * the TLS settings cannot be honoured (`INVALID_OPTION`).
   *
   * @example
   * ```ts
   * import { Broker } from "./broker.ts";
   * await using broker = new Broker();
   * const { port, wsPort } = await broker.listen({ port: 0, wsPort: 0 });
   * console.log(port > 0, wsPort! > 0); // true true
   * ```
   *
   * @example TLS, clients must present a certificate
   * ```ts ignore
   * await broker.listen({
   *   port: 8883,
   *   tls: {
   *     cert: await Deno.readTextFile("server.crt"),
   *     key: await Deno.readTextFile("server.key"),
   *     caCerts: [await Deno.readTextFile("ca.crt")],
   *     requireClientCert: true,
   *   },
   * });
   * ```
   */
  async listen(options: ListenOptions = {}): Promise<ListenAddress> {
    if (this.#closing !== undefined) {
      throw new MqttError("INVALID_STATE", "broker is closed");
    }
    const hostname = options.hostname ?? "127.0.0.1";
    const tls = options.tls;
    if (tls !== undefined) checkTls(tls, options.wsPort !== undefined);
    await this.#ready;
    if (this.#closing !== undefined) throw new MqttError("INVALID_STATE", "broker is closed");
    const stops: (() => void | Promise<void>)[] = [];
    try {
      const port = tls?.requireClientCert
        ? await this.#listenMutualTls(hostname, options.port ?? 8883, tls, stops)
        : this.#listenTcp(hostname, options.port ?? (tls ? 8883 : 1883), tls, stops);
      const address: ListenAddress = { hostname, port };
      if (tls !== undefined) address.tls = true;
      if (options.wsPort !== undefined) {
        let wsPort = 0;
        const server: Deno.HttpServer<Deno.NetAddr> = Deno.serve(
          {
            hostname,
            port: options.wsPort,
            onListen: () => {},
            ...(tls === undefined ? {} : { cert: tls.cert, key: tls.key }),
          },
          (request, info): Response =>
            this.#upgrade(request, info, options.allowedOrigins, wsPort, tls),
        );
        stops.push(() => server.shutdown());
        wsPort = server.addr.port;
        address.wsPort = wsPort;
      }
      for (const stop of stops) this.#listeners.add(stop);
      return address;
    } catch (err) {
      for (const stop of stops) await stop();
      throw err;
    }
  }

  /** Listens on TCP, or TLS without client certificates (`Deno.listenTls`); returns the port. */
  #listenTcp(
    hostname: string,
    port: number,
    tls: TlsListenOptions | undefined,
    stops: (() => void)[],
  ): number {
    const listener = tls === undefined
      ? Deno.listen({ hostname, port, transport: "tcp" })
      : Deno.listenTls({ hostname, port, transport: "tcp", cert: tls.cert, key: tls.key });
    stops.push(() => {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
    });
    const bound = (listener.addr as Deno.NetAddr).port;
    this.#track(this.#accept(listener, bound, tls !== undefined));
    return bound;
  }

  /**
   * Listens on TLS requiring a client certificate signed by `tls.caCerts`, with
   * `node:tls` (loaded only here): `Deno.listenTls` cannot ask for one.
   */
  async #listenMutualTls(
    hostname: string,
    port: number,
    tls: TlsListenOptions,
    stops: (() => void | Promise<void>)[],
  ): Promise<number> {
    const [{ createServer }, { Duplex }] = await Promise.all([
      import("node:tls"),
      import("node:stream"),
    ]);
    const sockets = new Set<import("node:tls").TLSSocket>();
    const server = createServer({
      cert: tls.cert,
      key: tls.key,
      ca: tls.caCerts,
      requestCert: true,
      rejectUnauthorized: true,
    }, (socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      socket.setNoDelay(true);
      const remoteAddress = `${socket.remoteAddress}:${socket.remotePort}`;
      this.#log(`New connection from ${remoteAddress} on port ${bound} (tls).`);
      const { readable, writable } = Duplex.toWeb(socket);
      this.handle({
        readable: readable as ReadableStream<Uint8Array>,
        writable: writable as WritableStream<Uint8Array>,
        close: () => socket.destroy(),
      }, { remoteAddress });
    });
    server.on("tlsClientError", (err: Error, socket: { remoteAddress?: string }) => {
      this.#log(`OpenSSL Error on connection from ${socket.remoteAddress}: ${err.message}`);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, hostname, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const bound = (server.address() as { port: number }).port;
    stops.push(() =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      })
    );
    return bound;
  }

  /**
   * Serves one client over any byte duplex (a TCP connection, a WebSocket, an
   * in-memory pair in a test). Returns a promise that settles when that
   * connection has closed; it never rejects. Over `maxConnections`, or once the
   * broker is closed, the transport is closed at once.
   *
   * @example
   * ```ts ignore
   * const conn = await Deno.connect({ port: 1883 });
   * await broker.handle(conn, { remoteAddress: "127.0.0.1:1883" });
   * ```
   */
  handle(transport: Transport, info: ConnectionInfo = {}): Promise<void> {
    return this.#serve(transport, info)?.done ?? Promise.resolve();
  }

  /** Serves a transport, or a TCP or TLS connection's {@linkcode Link}; undefined when refused (see `handle`). */
  #serve(over: Transport | Link, info: ConnectionInfo): Connection | undefined {
    if (this.#closing !== undefined || this.#connections.size >= this.#options.maxConnections) {
      if (this.#closing === undefined) {
        this.#log(
          `Client connection from ${info.remoteAddress ?? "unknown"} denied: ` +
            `maxConnections (${this.#options.maxConnections}) reached.`,
        );
      }
      try {
        over.close();
      } catch {
        // Already closed.
      }
      return undefined;
    }
    const link = "readable" in over ? new StreamLink(over) : over;
    const connection = new Connection(this.#host, link, info.remoteAddress);
    this.#connections.add(connection);
    connection.start();
    return connection;
  }

  /**
   * Publishes a message from inside the process, as if a client had sent it
   * (no authorization hook is asked). The payload is queued without a copy
   * (retained messages are copied): do not modify it afterwards. Throws
   * `ProtocolError` with code `INVALID_TOPIC` for a topic name that is not valid.
   *
   * @example
   * ```ts
   * import { Broker } from "./broker.ts";
   * await using broker = new Broker();
   * broker.publish("status/broker", "up", { qos: 1, retain: true });
   * console.log(broker.stats().retained); // 1
   * ```
   */
  publish(topic: string, payload: Uint8Array | string, options: BrokerPublishOptions = {}): void {
    validateTopicName(topic);
    const qos = options.qos ?? 0;
    if (qos !== 0 && qos !== 1 && qos !== 2) {
      throw new MqttError("INVALID_OPTION", "publish qos must be 0, 1 or 2");
    }
    const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
    this.#router.publish({ topic, payload: bytes, qos, retain: options.retain ?? false });
  }

  /**
   * A snapshot of the broker's counters.
   *
   * @example
   * ```ts
   * import { Broker } from "./broker.ts";
   * await using broker = new Broker();
   * console.log(broker.stats().clients); // 0
   * ```
   */
  stats(): BrokerStats {
    let clients = 0;
    for (const connection of this.#connections) if (connection.connected) clients++;
    const router = this.#router;
    return {
      connections: this.#connections.size,
      clients,
      sessions: router.sessions.size,
      subscriptions: router.subscriptionCount,
      retained: router.retained.size,
      queuedMessages: router.queuedCount(),
      droppedMessages: router.dropped,
      messagesReceived: router.received,
    };
  }

  /**
   * Stops listening, closes every connection (wills are not published) and
   * forgets every session and retained message. Safe to call more than once.
   *
   * @example
   * ```ts
   * import { Broker } from "./broker.ts";
   * const broker = new Broker();
   * await broker.listen({ port: 0 });
   * await broker.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** Same as {@linkcode Broker.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    const listeners = [...this.#listeners];
    this.#listeners.clear();
    const stopped = Promise.all(listeners.map((stop) => stop()));
    const connections = [...this.#connections];
    for (const connection of connections) connection.close("shutdown");
    await Promise.all(connections.map((connection) => connection.done));
    await stopped;
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
    await this.#ready.catch(() => {});
    this.#router.clear();
  }

  #track(task: Promise<void>): void {
    const settled = task.catch((err) => this.#log(`Internal error: ${err}`));
    this.#tasks.add(settled);
    settled.finally(() => this.#tasks.delete(settled));
  }

  #log(line: string): void {
    const log = this.#options.log;
    if (log === undefined) return;
    try {
      // Client ids, user names and topics are the client's text: one line stays one line.
      log(escapeControls(line));
    } catch {
      // A failing logger must not take the broker down.
    }
  }

  async #accept(
    listener: Deno.Listener<Deno.TcpConn | Deno.TlsConn>,
    port: number,
    tls: boolean,
  ): Promise<void> {
    while (this.#closing === undefined) {
      let conn: Deno.TcpConn | Deno.TlsConn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (this.#closing !== undefined || err instanceof Deno.errors.BadResource) return;
        this.#log(`Error accepting a connection: ${err}`);
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        continue;
      }
      const remoteAddress = addressOf(conn.remoteAddr);
      try {
        if ("setNoDelay" in conn) conn.setNoDelay(true);
      } catch {
        // The peer may already be gone; the read loop will notice.
      }
      this.#log(`New connection from ${remoteAddress} on port ${port}${tls ? " (tls)" : ""}.`);
      // Not conn.readable and conn.writable: streams cost an idle connection 64 KiB pending and
      // some 27 KB of heap (issue 14); the link keeps a small read pending, and nothing else.
      this.#serve(new SocketLink(conn), { remoteAddress });
    }
  }

  #upgrade(
    request: Request,
    info: Deno.ServeHandlerInfo,
    allowedOrigins: readonly string[] | undefined,
    port: number,
    tls: TlsListenOptions | undefined,
  ): Response {
    const origin = request.headers.get("origin");
    if (allowedOrigins !== undefined && origin !== null && !allowedOrigins.includes(origin)) {
      // A browser page from elsewhere: its visitors' browsers must not reach the broker.
      this.#log(`WebSocket connection from origin ${origin} denied (allowedOrigins).`);
      return new Response("Origin not allowed.\n", { status: 403 });
    }
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response('MQTT over WebSocket: connect with the "mqtt" subprotocol.\n', {
        status: 426,
        headers: { upgrade: "websocket" },
      });
    }
    // Read before the upgrade: the request is gone afterwards.
    const remoteAddress = addressOf(info.remoteAddr);
    const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",")
      .map((name) => name.trim());
    const { socket, response } = Deno.upgradeWebSocket(
      request,
      offered.includes("mqtt") ? { protocol: "mqtt" } : {},
    );
    this.#log(`New connection from ${remoteAddress} on port ${port} (${tls ? "wss" : "ws"}).`);
    this.#serve(new WebSocketLink(socket), { remoteAddress });
    return response;
  }

  #publishWill(will: Will, client: BrokerClient): void {
    if (will.topic.startsWith("$SYS")) {
      // As for a PUBLISH: no client writes to $SYS (Mosquitto's rule).
      this.#log(`Denied will of ${client.id} to "${will.topic}".`);
      return;
    }
    const hook = this.#options.authorizePublish;
    const message: RoutedMessage = {
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
    };
    if (will.properties !== undefined) {
      // MQTT 5.0 section 3.1.3.2: the will's properties but its delay are the message's.
      const { willDelayInterval: _, ...properties } = will.properties;
      if (Object.keys(properties).length > 0) message.properties = properties;
    }
    if (hook === undefined) {
      this.#router.publish(message);
      return;
    }
    this.#track((async () => {
      let allowed = false;
      try {
        allowed = (await hook(client, will.topic)) === true;
      } catch (err) {
        this.#log(`Publish authorization hook failed for the will of ${client.id}: ${err}`);
      }
      if (allowed && this.#closing === undefined) this.#router.publish(message);
    })());
  }
}
