/**
 * The server's side of one connection, without I/O: waits for CONNECT,
 * watches the client's keep-alive, answers PINGREQ, and runs the QoS flows it
 * shares with the client ({@linkcode Flows}). What the server decides (who may
 * connect, what is routed where, what a subscription is granted) stays with
 * the driver, which it reaches through a {@linkcode ServerSessionHandler}.
 *
 * @module
 */
import type {
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  PublishPacket,
  SubscribePacket,
  UnsubscribePacket,
} from "../codec/packet.ts";
import { Flows } from "./flows.ts";
import type { SessionState } from "./state.ts";
import { aliasReasonCode, IncomingTopicAliases } from "./topic_aliases.ts";

/** MQTT 5.0 Disconnect Reason Code 0x82 Protocol Error. */
const PROTOCOL_ERROR = 0x82;
/** MQTT 5.0 Disconnect Reason Code 0x93 Receive Maximum exceeded. */
const RECEIVE_MAXIMUM_EXCEEDED = 0x93;

/** Why a server session asks its driver to close the connection. */
export type ServerCloseReason = "protocol" | "keepalive" | "connect-timeout";

/** The server session's outputs and the decisions it leaves to the driver. */
export interface ServerSessionHandler {
  /** Write this packet to the client. */
  send(packet: Packet): void;
  /** The client's CONNECT: authenticate, open its session, then call `accept`. May be async. */
  connect(packet: ConnectPacket): void | Promise<void>;
  /**
   * A PUBLISH from the client: authorize it, then call `acceptPublish`
   * (refused or not, it is acknowledged). May be async.
   */
  publish(packet: PublishPacket): void | Promise<void>;
  /** Route an accepted application message; called once per QoS 2 message. */
  deliver(packet: PublishPacket): void;
  /** A SUBSCRIBE: grant or refuse each filter and send SUBACK. May be async. */
  subscribe(packet: SubscribePacket): void | Promise<void>;
  /** An UNSUBSCRIBE: remove the filters and send UNSUBACK. */
  unsubscribe(packet: UnsubscribePacket): void;
  /**
   * The client sent DISCONNECT (MQTT-3.14.4-1): close; the will is dropped,
   * except after a 5.0 reason code 0x04 Disconnect with Will Message.
   */
  disconnected(packet: DisconnectPacket): void;
  /**
   * The connection must close: a protocol violation, or a timeout. Under MQTT
   * 5.0, `code` is the reason code of the DISCONNECT to send first.
   */
  abort(reason: ServerCloseReason, message: string, code?: number): void;
  /** MQTT 5.0 AUTH from the client (section 4.12); without it AUTH is a protocol error. */
  auth?(packet: AuthPacket): void | Promise<void>;
}

/** What the server's CONNACK allowed on one MQTT 5.0 connection, and what the client asked. */
export interface ServerConnectionLimits {
  /** The client's Receive Maximum: most QoS 1/2 PUBLISH in flight to it (MQTT-3.3.4-9). */
  sendQuota?: number;
  /** Our Receive Maximum: most incoming QoS 2 PUBLISH unreleased (MQTT-3.3.4-7, else 0x93). */
  receiveMaximum?: number;
  /** Our Topic Alias Maximum: the aliases the client may use (MQTT-3.2.2-17, else 0x94). */
  topicAliasMaximum?: number;
}

/** Timing of a {@linkcode ServerSession}. */
export interface ServerSessionOptions {
  /** Milliseconds a new connection may take to send CONNECT. */
  connectTimeout: number;
  /** Most outgoing QoS 1/2 messages unacknowledged at once. */
  maxInflight: number;
}

/**
 * One client connection as the server sees it:
 * `awaiting-connect → connected → closed`.
 *
 * - The first packet must be CONNECT (MQTT-3.1.0-1), a second one is a
 *   protocol violation (MQTT-3.1.0-2); a CONNECT not accepted within
 *   `connectTimeout` (not sent, or still being authenticated) closes with
 *   `connect-timeout`.
 * - Keep-alive: no packet from the client for one and a half times its
 *   keep-alive closes with `keepalive` (MQTT-3.1.2-24).
 * - PINGREQ is answered with PINGRESP (MQTT-3.12.4-1).
 * - PUBLISH, PUBACK, PUBREC, PUBREL and PUBCOMP follow {@linkcode Flows}.
 *
 * @example
 * ```ts
 * import { ServerSession } from "./server_session.ts";
 * import { SessionState } from "./state.ts";
 * import type { Packet } from "../codec/packet.ts";
 *
 * const sent: Packet[] = [];
 * const session: ServerSession = new ServerSession({ connectTimeout: 5000, maxInflight: 10 }, {
 *   send: (p) => sent.push(p),
 *   connect: (p) => session.accept(new SessionState(), { type: "connack", sessionPresent: false, returnCode: 0 }, p.keepAlive, 1),
 *   publish: (p) => session.acceptPublish(p, true, 2),
 *   deliver: (p) => console.log("route", p.topic),
 *   subscribe: () => {},
 *   unsubscribe: () => {},
 *   disconnected: () => {},
 *   abort: (reason) => console.log("abort", reason),
 * });
 * session.start(0);
 * session.receive({ type: "connect", protocolName: "MQTT", protocolLevel: 4, clientId: "a", clean: true, keepAlive: 10 }, 1);
 * session.receive({ type: "publish", topic: "t", payload: new Uint8Array(), qos: 1, retain: false, dup: false, packetId: 7 }, 2);
 * console.log(sent.map((p) => p.type), session.deadline); // [ "connack", "puback" ] 15002
 * ```
 */
export class ServerSession {
  readonly #options: ServerSessionOptions;
  readonly #handler: ServerSessionHandler;
  #name: "awaiting-connect" | "connected" | "closed" = "awaiting-connect";
  /** Set once CONNECT arrived, while the driver decides on it. */
  #connectSeen = false;
  #connectDeadline = Infinity;
  #keepAliveMs = 0;
  #lastReceived = 0;
  #flows: Flows | undefined = undefined;
  #aliases: IncomingTopicAliases | undefined = undefined;
  #receiveMaximum = Infinity;

  /** A session awaiting CONNECT; `start` starts its clock. */
  constructor(options: ServerSessionOptions, handler: ServerSessionHandler) {
    this.#options = options;
    this.#handler = handler;
  }

  /** The QoS flows, once CONNECT was accepted. */
  get flows(): Flows | undefined {
    return this.#flows;
  }

  /** The next time (ms, the driver's clock) `tick` must be called; `Infinity` when none. */
  get deadline(): number {
    switch (this.#name) {
      case "awaiting-connect":
        return this.#connectDeadline;
      case "connected":
        return this.#keepAliveMs === 0 ? Infinity : this.#lastReceived + this.#keepAliveMs;
      default:
        return Infinity;
    }
  }

  /** The connection is open: CONNECT is due within `connectTimeout`. */
  start(now: number): void {
    this.#connectDeadline = now + this.#options.connectTimeout;
  }

  /**
   * Accepts the CONNECT over the client's session `state`: sends `connack`,
   * then what was in flight when its previous connection ended (MQTT-4.4.0-1:
   * PUBLISH with DUP=1 and PUBREL, in their original order).
   */
  accept(
    state: SessionState,
    connack: ConnackPacket,
    keepAlive: number,
    now: number,
    limits?: ServerConnectionLimits,
  ): void {
    if (this.#name !== "awaiting-connect") return;
    this.#name = "connected";
    this.#connectDeadline = Infinity;
    // MQTT-3.1.2-24: one and a half times the keep-alive without a packet is a dead client.
    this.#keepAliveMs = keepAlive * 1500;
    this.#lastReceived = now;
    if (limits !== undefined) {
      // Aliases live as long as this connection (MQTT-3.3.2-7): a new table each time.
      this.#aliases = new IncomingTopicAliases(limits.topicAliasMaximum ?? 0);
      this.#receiveMaximum = limits.receiveMaximum ?? Infinity;
    }
    const maxInflight = Math.min(this.#options.maxInflight, limits?.sendQuota ?? Infinity);
    const flows = new Flows(state, maxInflight, {
      send: (packet) => this.#handler.send(packet),
      deliver: (packet) => this.#handler.deliver(packet),
    });
    this.#flows = flows;
    this.#handler.send(connack);
    flows.resume(true, now);
  }

  /** Acknowledges a client's PUBLISH, handing it on to `deliver` only when `allowed`. */
  acceptPublish(packet: PublishPacket, allowed: boolean, now: number, refusal?: number): void {
    if (this.#name !== "connected") return;
    this.#flows!.receivePublish(packet, now, !allowed, refusal);
  }

  /** The connection is gone: nothing more is read, sent or timed. */
  closed(): void {
    this.#name = "closed";
    this.#connectDeadline = Infinity;
  }

  /**
   * Handles one packet from the client. Returns what the handler returned
   * when it made the decision asynchronous (the driver reads no further packet
   * until it settles, so packets are handled in order).
   */
  receive(packet: Packet, now: number): void | Promise<void> {
    const name = this.#name;
    if (name === "closed") return;
    this.#lastReceived = now;
    const handler = this.#handler;
    if (name === "awaiting-connect") {
      if (this.#connectSeen) {
        // The driver is deciding, and reads nothing meanwhile; except during an MQTT 5.0
        // enhanced authentication, whose AUTH packets come before CONNACK (section 4.12).
        if (packet.type === "auth" && handler.auth !== undefined) return handler.auth(packet);
        return this.#violation(`${packet.type} before CONNACK (MQTT-3.1.2-31, MQTT-4.12.0-1)`);
      }
      if (packet.type !== "connect") {
        return this.#violation(`first packet is ${packet.type}, not CONNECT (MQTT-3.1.0-1)`);
      }
      this.#connectSeen = true;
      // The CONNECT deadline stays until `accept`: an authentication that never answers must
      // not keep the connection open forever.
      return handler.connect(packet);
    }
    switch (packet.type) {
      case "publish": {
        const aliases = this.#aliases;
        if (aliases === undefined) return handler.publish(packet);
        return this.#publish5(packet, aliases);
      }
      case "puback":
      case "pubrec":
      case "pubrel":
      case "pubcomp":
        return this.#flows!.receiveAck(packet, now);
      case "subscribe":
        return handler.subscribe(packet);
      case "unsubscribe":
        return handler.unsubscribe(packet);
      case "pingreq":
        return handler.send({ type: "pingresp" }); // MQTT-3.12.4-1
      case "disconnect":
        this.closed();
        return handler.disconnected(packet); // MQTT-3.14.4-1
      case "auth":
        if (this.#aliases !== undefined && handler.auth !== undefined) return handler.auth(packet);
        return this.#violation("AUTH without enhanced authentication (MQTT-4.12.0-1)");
      case "connect":
        return this.#violation("second CONNECT (MQTT-3.1.0-2)");
      default:
        return this.#violation(`${packet.type} is not sent by clients`);
    }
  }

  /** Runs the timers that are due: the CONNECT deadline and the keep-alive. */
  tick(now: number): void {
    const name = this.#name;
    if (name === "awaiting-connect" && now >= this.#connectDeadline) {
      this.closed();
      this.#handler.abort("connect-timeout", "no CONNECT in time");
    } else if (name === "connected" && this.#keepAliveMs !== 0) {
      if (now >= this.#lastReceived + this.#keepAliveMs) {
        this.closed();
        this.#handler.abort("keepalive", "keep-alive exceeded (MQTT-3.1.2-24)", 0x8d);
      }
    }
  }

  /** A 5.0 PUBLISH: its Topic Alias resolved, the Receive Maximum we gave respected. */
  #publish5(
    packet: PublishPacket,
    aliases: IncomingTopicAliases,
  ): void | Promise<void> {
    if (packet.properties?.subscriptionIdentifiers !== undefined) {
      return this.#violation("PUBLISH from a client with a Subscription Identifier (MQTT-3.3.4-6)");
    }
    if (
      packet.qos === 2 && this.#flows!.state.incomingCount >= this.#receiveMaximum &&
      !this.#flows!.state.hasIncoming(packet.packetId!)
    ) {
      return this.#violation(
        `more than Receive Maximum ${this.#receiveMaximum} QoS 2 PUBLISH unacknowledged (MQTT-3.3.4-7)`,
        RECEIVE_MAXIMUM_EXCEEDED,
      );
    }
    let resolved: PublishPacket;
    try {
      resolved = aliases.resolve(packet);
    } catch (err) {
      return this.#violation((err as Error).message, aliasReasonCode(err));
    }
    if (resolved.properties?.topicAlias !== undefined) {
      // The alias is of this connection's wire only: the message goes on with its topic.
      const { topicAlias: _, ...properties } = resolved.properties;
      resolved = { ...resolved, properties };
    }
    return this.#handler.publish(resolved);
  }

  #violation(message: string, code: number = PROTOCOL_ERROR): void {
    this.closed();
    this.#handler.abort("protocol", message, code);
  }
}
