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
import {
  type BrokerClient,
  type BrokerOptions,
  type BrokerStats,
  type ConnectionInfo,
  type ListenAddress,
  type ListenOptions,
  resolveBrokerOptions,
  type ResolvedBrokerOptions,
} from "./options.ts";
import { Router } from "./router.ts";
import { websocketTransport } from "./websocket.ts";

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
  #listener: Deno.TcpListener | undefined = undefined;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined = undefined;
  #listening = false;
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
    this.#host = {
      options: this.#options,
      router: this.#router,
      log: (line) => this.#log(line),
      publishWill: (will, client) => this.#publishWill(will, client),
      closed: (connection) => this.#connections.delete(connection),
    };
  }

  /**
   * Listens on TCP (and WebSocket when `wsPort` is given; the endpoint accepts
   * any path and the "mqtt" subprotocol). Port 0 picks a free port; the bound
   * ports are returned. Throws if the broker is listening already or closed,
   * or if a port cannot be bound.
   *
   * @example
   * ```ts
   * import { Broker } from "./broker.ts";
   * await using broker = new Broker();
   * const { port, wsPort } = await broker.listen({ port: 0, wsPort: 0 });
   * console.log(port > 0, wsPort! > 0); // true true
   * ```
   */
  listen(options: ListenOptions = {}): Promise<ListenAddress> {
    if (this.#closing !== undefined || this.#listening) {
      return Promise.reject(
        new MqttError("INVALID_STATE", "broker is already listening or is closed"),
      );
    }
    const hostname = options.hostname ?? "127.0.0.1";
    let listener: Deno.TcpListener;
    try {
      listener = Deno.listen({ hostname, port: options.port ?? 1883, transport: "tcp" });
    } catch (err) {
      return Promise.reject(err);
    }
    const port = listener.addr.port;
    const address: ListenAddress = { hostname, port };
    if (options.wsPort !== undefined) {
      try {
        const server = Deno.serve(
          { hostname, port: options.wsPort, onListen: () => {} },
          (request, info) => this.#upgrade(request, info, options.allowedOrigins),
        );
        this.#server = server;
        address.wsPort = server.addr.port;
      } catch (err) {
        listener.close();
        return Promise.reject(err);
      }
    }
    this.#listener = listener;
    this.#listening = true;
    this.#track(this.#accept(listener, port));
    return Promise.resolve(address);
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
    if (this.#closing !== undefined || this.#connections.size >= this.#options.maxConnections) {
      if (this.#closing === undefined) {
        this.#log(
          `Client connection from ${info.remoteAddress ?? "unknown"} denied: ` +
            `maxConnections (${this.#options.maxConnections}) reached.`,
        );
      }
      try {
        transport.close();
      } catch {
        // Already closed.
      }
      return Promise.resolve();
    }
    const connection = new Connection(this.#host, transport, info.remoteAddress);
    this.#connections.add(connection);
    connection.start();
    return connection.done;
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
    try {
      this.#listener?.close();
    } catch {
      // Already closed.
    }
    const connections = [...this.#connections];
    for (const connection of connections) connection.close("shutdown");
    await Promise.all(connections.map((connection) => connection.done));
    await this.#server?.shutdown();
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
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

  async #accept(listener: Deno.TcpListener, port: number): Promise<void> {
    while (this.#closing === undefined) {
      let conn: Deno.TcpConn;
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
        conn.setNoDelay(true);
      } catch {
        // The peer may already be gone; the read loop will notice.
      }
      this.#log(`New connection from ${remoteAddress} on port ${port}.`);
      this.handle(
        { readable: conn.readable, writable: conn.writable, close: () => conn.close() },
        { remoteAddress },
      );
    }
  }

  #upgrade(
    request: Request,
    info: Deno.ServeHandlerInfo,
    allowedOrigins: readonly string[] | undefined,
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
    this.#log(`New connection from ${remoteAddress} on port ${this.#server?.addr.port} (ws).`);
    this.handle(websocketTransport(socket), { remoteAddress });
    return response;
  }

  #publishWill(will: Will, client: BrokerClient): void {
    if (will.topic.startsWith("$SYS")) {
      // As for a PUBLISH: no client writes to $SYS (Mosquitto's rule).
      this.#log(`Denied will of ${client.id} to "${will.topic}".`);
      return;
    }
    const hook = this.#options.authorizePublish;
    const message = {
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
    };
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
