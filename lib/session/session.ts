/**
 * The client's side of one connection: the MQTT 3.1.1 and 5.0 connection
 * state machine (CONNECT/CONNACK, keep-alive, SUBSCRIBE/UNSUBSCRIBE,
 * DISCONNECT), without I/O. The QoS flows it shares with the broker live in
 * `flows.ts`; what a 5.0 CONNACK means (refusals, the server's limits) in
 * `connack.ts`.
 *
 * The driver feeds it packets read from the transport, user commands and the
 * current time; the machine answers through a {@linkcode SessionHandler}
 * (packets to send, messages to deliver, connected/closed) and exposes the
 * next time it needs {@linkcode Session.prototype.tick} as `deadline`.
 * State that outlives the connection lives in a {@linkcode SessionState}.
 *
 * @module
 */
import type {
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  PingreqPacket,
  PublishPacket,
  SubackPacket,
  SubscribePacket,
  SubscriptionRequest,
} from "../codec/packet.ts";
import { MqttError, ProtocolError, ServerDisconnectError, SubscribeError } from "../errors.ts";
import type { ProtocolVersion } from "../codec/packet.ts";
import type { DisconnectReasonCode } from "../codec/reason_codes.ts";
import {
  connackContradiction,
  connackRefusal,
  DEFAULT_LIMITS,
  type ServerLimits,
} from "./connack.ts";
import type { SubscribeProperties } from "../codec/properties.ts";
import { isFailure } from "../codec/reason_codes.ts";
import { aliasReasonCode } from "./topic_aliases.ts";
import { V5Negotiation } from "./negotiation.ts";
import { disconnectReasonFor } from "./violation.ts";
import { type ClientSessionState, PendingRequest } from "./client_state.ts";
import { OutgoingPublish } from "./state.ts";
import { Flows } from "./flows.ts";
import { KeepAlive } from "./keep_alive.ts";
import { type PendingAck, settleAck } from "./acks.ts";
import type {
  OutgoingMessage,
  PublishCallback,
  SessionHandler,
  SessionOptions,
  SessionStateName,
  SubackCode,
  SubscribeCallback,
  UnsubscribeCallback,
} from "./types.ts";

const PINGREQ: PingreqPacket = Object.freeze({ type: "pingreq" });
const DISCONNECT: DisconnectPacket = Object.freeze({ type: "disconnect" });
/** Most filters per re-registration SUBSCRIBE (some brokers cap a SUBSCRIBE's filter count). */
export const RESUBSCRIBE_BATCH = 32;
/** Re-registration SUBACKs are handled inside; the callback only hears of a lost connection. */
const IGNORE_SUBACK: SubscribeCallback = () => {};

function unexpected(packet: Packet, why: string): ProtocolError {
  return new ProtocolError(
    "UNEXPECTED_PACKET",
    `unexpected ${packet.type.toUpperCase()} from the server: ${why}`,
    packet.type,
  );
}

function invalidState(command: string, state: SessionStateName): MqttError {
  return new MqttError("INVALID_STATE", `cannot ${command} while ${state}`);
}

/**
 * One connection's finite-state machine:
 * `disconnected → connecting → connected → disconnecting → disconnected`
 * (any state → `disconnected` when the link is lost or the session closes it).
 *
 * Contract notes beyond {@linkcode SessionHandler}:
 * - Commands in a wrong state throw `MqttError("INVALID_STATE")`, except that
 *   `publish` and `subscribe`/`unsubscribe` while `connecting` are queued until
 *   CONNACK. `publish` while `disconnected` throws INVALID_STATE (the driver
 *   queues offline publishes with `state.enqueue` itself).
 * - A publish that must wait while the {@linkcode SessionState}'s queue is full
 *   throws `MqttError("QUEUE_FULL")` synchronously and changes nothing (with
 *   `overflow: "drop-oldest"` the oldest waiting publish fails instead).
 * - Topic re-registration: SUBACK-granted filters are remembered in the state
 *   (UNSUBSCRIBE forgets them when sent). On CONNACK without session present,
 *   SUBSCRIBE for all of them (in order, {@linkcode RESUBSCRIBE_BATCH} filters
 *   per packet) goes out first, before re-sent and queued publishes; refusals
 *   reach `handler.resubscribeFailed`. With session present nothing is re-sent,
 *   unless a re-registration's SUBACK was lost with the previous connection.
 * - Publishes go out strictly in call order: QoS 0 is sent (and `done()` called)
 *   at once only when nothing is waiting for a window slot; otherwise it waits its turn.
 * - `receive` while `disconnected` ignores the packet: a driver may still hold
 *   packets read before the session closed.
 * - `connectionLost` while `disconnected` is a no-op, so the driver may call it
 *   after `handler.closed` without checking.
 * - Keep-alive: PINGREQ goes out when nothing was sent for `keepAlive`
 *   seconds (MQTT-3.1.2-23) and also when nothing was received for that long,
 *   so a half-open link is detected within `keepAlive` + `pingTimeout` even
 *   while the client keeps sending. After a PINGREQ, any packet received
 *   answers it; none within `pingTimeout` closes with KEEPALIVE_TIMEOUT.
 * - Packet ids count up 1..65535 and wrap, skipping ids in use, rather than
 *   reusing the lowest free one, so a late duplicate ack rarely meets a new flow.
 * - The QoS 1/2 flows (acks, window, resend) follow {@linkcode Flows}. On
 *   CONNACK without session present, in-flight QoS 1/2 are sent again as fresh
 *   flows (DUP=0), QoS 2 past PUBREC included: no loss, but a QoS 2 message
 *   may then arrive twice. This also applies with `clean: true`, since the
 *   application still awaits them; exactly once needs `clean: false`.
 * - MQTT 5.0 (`protocolVersion: 5`): CONNECT carries `properties`; the
 *   CONNACK's limits (`limits`) hold for the connection: the in-flight window
 *   is the smaller of `maxInflight` and the server's Receive Maximum, the
 *   Server Keep Alive replaces ours, and a publish above Maximum QoS, with
 *   RETAIN when Retain Available is 0, or larger than the Maximum Packet Size
 *   fails (`done(error)`) without being sent, also one queued before CONNACK.
 *   A PUBACK/PUBREC reason code of 0x80 or more fails its publish
 *   (`PublishRejectedError`); a server DISCONNECT closes with a
 *   `ServerDisconnectError`; an incoming QoS 2 PUBLISH beyond our Receive
 *   Maximum sends DISCONNECT 0x93 and closes.
 * - When the session closes itself (`handler.closed(error)`), it is already
 *   `disconnected`, pending SUBSCRIBE/UNSUBSCRIBE callbacks have failed with
 *   `error`, and QoS 1/2 publishes stay in the {@linkcode SessionState}.
 *
 * @example
 * ```ts
 * import { Session } from "./session.ts";
 * import { ClientSessionState } from "./client_state.ts";
 * import type { Packet } from "../codec/packet.ts";
 *
 * const sent: Packet[] = [];
 * const session = new Session(
 *   { clientId: "c1", clean: true, keepAlive: 30, maxInflight: 10, pingTimeout: 5000, connectTimeout: 10000 },
 *   new ClientSessionState(),
 *   {
 *     send: (p) => sent.push(p),
 *     deliver: (p) => console.log(p.topic),
 *     connected: (ack) => console.log("session present:", ack.sessionPresent),
 *     closed: (err) => console.log("closed", err),
 *   },
 * );
 * session.connect(0);
 * session.receive({ type: "connack", sessionPresent: false, returnCode: 0 }, 5);
 * session.publish({ topic: "a", payload: new Uint8Array(), qos: 1, retain: false }, 6, () => {});
 * session.receive({ type: "puback", packetId: 1 }, 7);
 * console.log(session.state, session.deadline); // connected 30006
 * ```
 */
export class Session {
  #options: SessionOptions;
  readonly #version: ProtocolVersion;
  /** MQTT 5.0: limits, Topic Aliases, Receive Maximum, enhanced authentication; none at 3.1.1. */
  readonly #v5: V5Negotiation | undefined;
  /** MQTT 5.0 reason of our DISCONNECT, from `disconnect()`. */
  #disconnectReason: DisconnectReasonCode | undefined;
  #data: ClientSessionState;
  #handler: SessionHandler;
  readonly #flows: Flows;
  #name: SessionStateName = "disconnected";
  readonly #keepAlive: KeepAlive;
  #connectDeadline = Infinity;
  /** The flows' send order when the outstanding PINGREQ went out (0: none). */
  #pingOrder = 0;
  /** SUBSCRIBE/UNSUBSCRIBE made while connecting (ids already reserved in the state). */
  #queuedRequests: PendingRequest[] = [];

  /** Creates a disconnected session over `state`; `connect` starts it. */
  constructor(options: SessionOptions, state: ClientSessionState, handler: SessionHandler) {
    const { maxInflight, keepAlive } = options;
    if (!Number.isInteger(maxInflight) || maxInflight < 1 || maxInflight > 65535) {
      throw new MqttError("INVALID_OPTION", `maxInflight must be 1..65535, got ${maxInflight}`);
    }
    if (!Number.isInteger(keepAlive) || keepAlive < 0 || keepAlive > 65535) {
      throw new MqttError("INVALID_OPTION", `keepAlive must be 0..65535 seconds, got ${keepAlive}`);
    }
    this.#options = options;
    this.#version = options.protocolVersion ?? 4;
    this.#data = state;
    this.#handler = handler;
    this.#keepAlive = new KeepAlive(keepAlive, options.pingTimeout);
    this.#flows = new Flows(state, maxInflight, {
      send: (packet, now) => this.#send(packet, now),
      deliver: (packet, ack) => handler.deliver(packet, ack),
      probe: (now) => this.#probe(now),
    }, { deferAcks: options.deferAcks, clean: options.clean });
    if (options.maxStrikes !== undefined) this.#flows.maxStrikes = options.maxStrikes;
    // The client's messages are its own: in flight, each keeps only its PUBLISH.
    this.#flows.messageInPacket = true;
    const v5 = this.#version === 5 ? new V5Negotiation(options.properties) : undefined;
    this.#v5 = v5;
    if (v5 !== undefined) this.#flows.refuse = (message) => v5.refuse(message);
  }

  /** Protocol level this session speaks: 4 (MQTT 3.1.1) or 5 (MQTT 5.0). */
  get protocolVersion(): ProtocolVersion {
    return this.#version;
  }

  /** The server's limits from the latest CONNACK (the defaults before one, and under 3.1.1). */
  get limits(): Readonly<ServerLimits> {
    return this.#v5?.limits ?? DEFAULT_LIMITS;
  }

  /** The connection-level state. */
  get state(): SessionStateName {
    return this.#name;
  }

  /** The next time (ms, the driver's clock) `tick` must be called; `Infinity` when none. */
  get deadline(): number {
    const name = this.#name;
    if (name === "connecting") return this.#connectDeadline;
    return name === "disconnected" ? Infinity : this.#keepAlive.deadline();
  }

  /** `disconnected → connecting`: sends CONNECT built from the options and starts the connect timeout. */
  connect(now: number): void {
    if (this.#name !== "disconnected") throw invalidState("connect", this.#name);
    const o = this.#options;
    this.#data.attach(this, o.clean);
    const packet: ConnectPacket = {
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: this.#version,
      clientId: o.clientId,
      clean: o.clean,
      keepAlive: o.keepAlive,
    };
    if (this.#version === 5 && o.properties !== undefined) packet.properties = o.properties;
    this.#v5?.start();
    this.#flows.maxInflight = o.maxInflight;
    if (o.username !== undefined) packet.username = o.username;
    if (o.password !== undefined) packet.password = o.password;
    if (o.will !== undefined) packet.will = o.will;
    this.#name = "connecting";
    this.#connectDeadline = now + o.connectTimeout;
    this.#keepAlive.start(o.keepAlive, now);
    this.#send(packet, now);
  }

  /** Handles one packet read from the transport. */
  receive(packet: Packet, now: number): void {
    const name = this.#name;
    if (name === "disconnected") return;
    if (name === "connecting") {
      if (packet.type === "connack") this.#onConnack(packet, now);
      // Section 4.12: a 5.0 server may challenge with AUTH before CONNACK.
      else if (packet.type === "auth" && this.#v5 !== undefined) this.#onAuth(packet, false, now);
      // MQTT-3.2.0-1: the server's first packet must be CONNACK.
      else {this.#violation(
          unexpected(packet, "the first packet must be CONNACK (MQTT-3.2.0-1)"),
          now,
        );}
      return;
    }
    // Any packet proves the link alive, so it answers an outstanding PINGREQ too.
    this.#keepAlive.received(now);
    const data = this.#data;
    switch (packet.type) {
      case "publish": {
        if (
          (packet.qos === 2 || (packet.qos === 1 && this.#options.deferAcks)) &&
          this.#overReceiveMaximum(packet.packetId!, now)
        ) return;
        const resolved = this.#resolveAlias(packet, now);
        if (resolved !== undefined) this.#flows.receivePublish(resolved, now);
        return;
      }
      case "puback":
      case "pubrec":
      case "pubrel":
      case "pubcomp":
        this.#flows.receiveAck(packet, now);
        this.#checkDrained(now);
        return;
      case "suback":
        this.#onSuback(packet, now);
        return;
      case "unsuback": {
        const request = data.getRequest(packet.packetId);
        if (request === undefined) return;
        if (request.packet.type !== "unsubscribe") {
          this.#violation(unexpected(packet, `packet id ${packet.packetId} is a SUBSCRIBE`), now);
          return;
        }
        data.completeRequest(packet.packetId);
        (request.done as UnsubscribeCallback)(undefined, packet.reasonCodes);
        this.#checkDrained(now);
        return;
      }
      case "pingresp":
        // The server read everything sent before the PINGREQ (it answers in order).
        this.#flows.acknowledged(this.#pingOrder, now);
        this.#pingOrder = 0;
        return;
      case "connack":
        this.#violation(unexpected(packet, "CONNACK was already received"), now);
        return;
      case "auth":
        if (this.#v5 !== undefined) return this.#onAuth(packet, true, now);
        this.#violation(unexpected(packet, "AUTH exists from MQTT 5.0 on"), now);
        return;
      case "disconnect":
        // MQTT 5.0 section 3.14: the server may end the connection, saying why.
        if (this.#version === 5) {
          const p = packet.properties;
          this.#fail(
            new ServerDisconnectError(packet.reasonCode ?? 0, {
              reasonString: p?.reasonString,
              serverReference: p?.serverReference,
            }),
          );
          return;
        }
        this.#violation(unexpected(packet, "a server never sends this packet type"), now);
        return;
      default:
        // CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT travel client to server only.
        this.#violation(unexpected(packet, "a server never sends this packet type"), now);
    }
  }

  /**
   * Publishes a message. QoS 0 is sent and `done()` called at once; QoS 1/2
   * are sent when an in-flight window slot is free and `done()` is called on
   * PUBACK / PUBCOMP. Queued while `connecting`. Throws `QUEUE_FULL` when the
   * message would have to wait and the state's queue is full (nothing changed).
   */
  publish(message: OutgoingMessage, now: number, done: PublishCallback): void {
    const name = this.#name;
    if (name === "connected") {
      // MQTT-3.2.2-11, -14, -15: never send what the server said it does not take.
      const refused = this.#v5?.refuse(message);
      if (refused !== undefined) return done(refused);
      this.#flows.publish(message, now, done);
      return;
    }
    if (name === "connecting") {
      this.#data.enqueue(new OutgoingPublish(message, done));
      return;
    }
    throw invalidState("publish", name);
  }

  /**
   * Sends SUBSCRIBE; `done(undefined, returnCodes)` on SUBACK (a 0x80 code is
   * for the caller to turn into an error). Queued while `connecting`. The
   * session keeps `requests` as given: do not mutate it afterwards.
   */
  subscribe(
    requests: SubscriptionRequest[],
    now: number,
    done: SubscribeCallback,
    properties?: SubscribeProperties,
  ): void {
    if (requests.length === 0) {
      // MQTT-3.8.3-3: a SUBSCRIBE carries at least one filter.
      throw new ProtocolError(
        "EMPTY_SUBSCRIPTION",
        "SUBSCRIBE needs a topic filter (MQTT-3.8.3-3)",
      );
    }
    this.#request("subscribe", done, requests, undefined, now, properties);
  }

  /** Sends UNSUBSCRIBE; `done()` on UNSUBACK. Queued while `connecting`. */
  unsubscribe(filters: string[], now: number, done: UnsubscribeCallback): void {
    if (filters.length === 0) {
      // MQTT-3.10.3-2: an UNSUBSCRIBE carries at least one filter.
      throw new ProtocolError(
        "EMPTY_SUBSCRIPTION",
        "UNSUBSCRIBE needs a topic filter (MQTT-3.10.3-2)",
      );
    }
    this.#request("unsubscribe", done, undefined, filters, now);
    // Forget them at once: a connection that drops before the UNSUBACK must
    // not bring them back on re-registration.
    this.#data.unsubscribed(filters);
  }

  /**
   * With `deferAcks`: the application consumed the message of `ack` (or, with
   * `consumed` false, nobody will); see `Flows.acknowledge`. While not
   * connected it is only marked: it goes out on the next connection if the
   * server kept the session, in order with the rest. A store error while
   * recording a QoS 2 id closes the connection with that error.
   */
  acknowledge(ack: PendingAck, consumed: boolean, now: number): void {
    const name = this.#name;
    if (name !== "connected" && name !== "disconnecting") {
      settleAck(ack, consumed);
      return;
    }
    try {
      this.#flows.acknowledge(ack, consumed, now);
    } catch (err) {
      this.#fail(
        err instanceof MqttError
          ? err
          : new MqttError("STORE_ERROR", `recording an incoming message failed: ${err}`, {
            cause: err,
          }),
      );
    }
  }

  /**
   * `connected → disconnecting`: accepts no new work; once every outgoing
   * publish (in flight and waiting) and pending SUBSCRIBE/UNSUBSCRIBE has
   * completed, sends DISCONNECT, becomes `disconnected` and calls
   * `handler.closed(undefined)`.
   */
  disconnect(now: number, reasonCode?: DisconnectReasonCode): void {
    if (this.#name !== "connected") throw invalidState("disconnect", this.#name);
    this.#name = "disconnecting";
    this.#disconnectReason = reasonCode;
    this.#checkDrained(now);
  }

  /**
   * MQTT 5.0: answers the server's AUTH challenge (handed to
   * `handler.auth`) with AUTH 0x18 carrying `data` (MQTT-4.12.0-3). Ignored
   * once the connection is gone.
   */
  answerAuth(data: Uint8Array | undefined, now: number): void {
    const name = this.#name;
    if (this.#v5 === undefined || (name !== "connecting" && name !== "connected")) return;
    this.#send(this.#v5.auth.answer(data), now);
  }

  /**
   * MQTT 5.0: starts a re-authentication with AUTH 0x19 carrying `data`
   * (MQTT-4.12.1-1); the server's challenges reach `handler.auth`, its AUTH
   * 0x00 ends it. Throws INVALID_STATE unless connected, and a ProtocolError
   * without an Authentication Method in CONNECT (MQTT-4.12.0-7).
   */
  reauthenticate(data: Uint8Array | undefined, now: number): void {
    if (this.#name !== "connected") throw invalidState("reauthenticate", this.#name);
    const v5 = this.#v5;
    if (v5 === undefined) {
      throw new MqttError("INVALID_STATE", "re-authentication needs MQTT 5.0");
    }
    this.#send(v5.auth.reauthenticate(data), now);
  }

  /**
   * Aborts an authentication exchange the application could not continue
   * (its challenge handler failed): DISCONNECT 0x80, then closed with `error`
   * (MQTT-4.12.1-2).
   */
  authFailed(error: MqttError, now: number): void {
    const name = this.#name;
    if (name !== "connecting" && name !== "connected") return;
    this.#send({ type: "disconnect", reasonCode: 0x80 }, now);
    this.#fail(error);
  }

  /**
   * The driver could not take an incoming packet: the decoder refused it
   * (`error`, a ProtocolError: malformed, or larger than our Maximum Packet
   * Size). At MQTT 5.0 sends DISCONNECT 0x81, 0x82 or 0x95 saying so (section
   * 4.13) and closes with `error` (`handler.closed(error)`), returning true;
   * the driver then ends the connection once the DISCONNECT is written. Under
   * 3.1.1, which has no way to say why, or when not connected, returns false
   * and does nothing: the driver ends the connection itself.
   */
  refuseIncoming(error: MqttError, now: number): boolean {
    const name = this.#name;
    if (this.#version !== 5 || (name !== "connecting" && name !== "connected")) return false;
    this.#send({ type: "disconnect", reasonCode: disconnectReasonFor(error) }, now);
    this.#fail(error);
    return true;
  }

  /**
   * The transport died or closed: becomes `disconnected`. Pending
   * SUBSCRIBE/UNSUBSCRIBE callbacks fail with `error`; QoS 1/2 publishes stay
   * in the {@linkcode SessionState} for the next connection. No-op when already disconnected.
   *
   * `dropped`: the server closed or reset an accepted connection (rather than
   * this side ending it). A publish the server dropped the connection right
   * after, three times in a row (from the second time on, before answering the
   * PINGREQ sent right behind it), then fails with `PUBLISH_REFUSED` and leaves
   * the state (see `Flows.connectionDropped`).
   */
  connectionLost(error: MqttError, _now: number, dropped = false): void {
    const name = this.#name;
    if (name === "disconnected") return;
    this.#enterDisconnected(error);
    if (dropped && name !== "connecting") this.#flows.connectionDropped();
  }

  /**
   * Runs the timers that are due: connect timeout, keep-alive PINGREQ and the
   * PINGREQ response timeout.
   */
  tick(now: number): void {
    const name = this.#name;
    if (name === "connecting") {
      if (now >= this.#connectDeadline) {
        this.#fail(
          new MqttError(
            "CONNECT_TIMEOUT",
            `no CONNACK within ${this.#options.connectTimeout} ms`,
          ),
        );
      }
      return;
    }
    if (name === "disconnected") return;
    const due = this.#keepAlive.due(now);
    if (due === "timeout") {
      this.#fail(
        new MqttError(
          "KEEPALIVE_TIMEOUT",
          `no packet from the server within ${this.#options.pingTimeout} ms after PINGREQ`,
        ),
      );
      return;
    }
    if (due === "ping") {
      if (this.#pingOrder === 0) this.#pingOrder = this.#flows.sendOrder;
      this.#send(PINGREQ, now);
      this.#keepAlive.pinged(now);
    }
  }

  /**
   * The driver stopped (or resumed) reading the socket. While paused the
   * PINGREQ response timeout is suspended; on resume an outstanding PINGREQ
   * gets a full `pingTimeout` again, since its answer may sit unread in the socket.
   */
  setReadPaused(paused: boolean, now: number): void {
    this.#keepAlive.setReadPaused(paused, now);
  }

  // ---- internals ----

  /**
   * A PINGREQ right behind a resent suspect publish (`FlowOutput.probe`): its
   * PINGRESP proves the server read past it. Not a keep-alive ping: it arms
   * no timeout (a dead link is still found by keep-alive), and it goes out
   * in the resume, right after CONNACK, when no PINGREQ of this connection
   * can be outstanding, so the PINGRESP that comes first is its own.
   */
  #probe(now: number): void {
    if (this.#pingOrder === 0) this.#pingOrder = this.#flows.sendOrder;
    this.#send(PINGREQ, now);
  }

  #send(packet: Packet, now: number): void {
    this.#keepAlive.sent(now);
    // Aliases go on the copy written, never on the PUBLISH kept for resending.
    const v5 = this.#v5;
    this.#handler.send(
      v5 !== undefined && packet.type === "publish" ? v5.outgoing(packet) : packet,
    );
  }

  /** An AUTH from the server: checked (section 4.12), then handed to the driver. */
  #onAuth(packet: AuthPacket, connected: boolean, now: number): void {
    let finished: boolean;
    try {
      finished = this.#v5!.auth.receive(packet, connected);
    } catch (err) {
      this.#protocolError(err as ProtocolError, now);
      return;
    }
    this.#handler.auth?.(packet, finished);
  }

  /**
   * The server broke a rule (a packet it must not send, at the wrong time):
   * closed with `error`; at 5.0 DISCONNECT 0x82 tells the server why first (section 4.13).
   */
  #violation(error: ProtocolError, now: number): void {
    if (this.#version === 5) this.#protocolError(error, now);
    else this.#fail(error);
  }

  /** A protocol error found by the session: DISCONNECT 0x82 (section 4.13), then closed. */
  #protocolError(error: ProtocolError, now: number): void {
    this.#send({ type: "disconnect", reasonCode: 0x82 }, now);
    this.#fail(error);
  }

  /**
   * An incoming PUBLISH with its Topic Alias resolved; undefined when the
   * alias is invalid (0x94) or unknown (0x82): DISCONNECT with that reason
   * is sent and the session closes (section 3.3.2.3.4).
   */
  #resolveAlias(packet: PublishPacket, now: number): PublishPacket | undefined {
    const v5 = this.#v5;
    if (v5 === undefined) return packet;
    try {
      return v5.incoming(packet);
    } catch (err) {
      const reasonCode = aliasReasonCode(err) as DisconnectReasonCode;
      this.#send({ type: "disconnect", reasonCode }, now);
      this.#fail(err as ProtocolError);
      return undefined;
    }
  }

  #request(
    type: "subscribe" | "unsubscribe",
    done: SubscribeCallback | UnsubscribeCallback,
    subscriptions: SubscriptionRequest[] | undefined,
    filters: string[] | undefined,
    now: number,
    properties?: SubscribeProperties,
  ): void {
    const name = this.#name;
    if (name !== "connected" && name !== "connecting") throw invalidState(type, name);
    const data = this.#data;
    const packet = type === "subscribe"
      ? { type, packetId: 1, subscriptions: subscriptions!, ...properties && { properties } }
      : { type, packetId: 1, filters: filters! };
    // MQTT-3.2.2-15: one larger than the server takes is refused before anything changes.
    const tooLarge = name === "connected" ? this.#v5?.checkRequest(packet) : undefined;
    if (tooLarge !== undefined) throw tooLarge;
    packet.packetId = data.allocatePacketId(true);
    const request = new PendingRequest(packet, done);
    data.addRequest(request);
    if (name === "connected") this.#send(request.packet, now);
    else this.#queuedRequests.push(request);
  }

  #onConnack(packet: ConnackPacket, now: number): void {
    this.#connectDeadline = Infinity;
    const refusal = connackRefusal(packet, this.#version);
    if (refusal !== undefined) {
      this.#fail(refusal);
      return;
    }
    const contradiction = connackContradiction(packet, this.#options.clean, this.#version);
    if (contradiction !== undefined) {
      this.#violation(contradiction, now);
      return;
    }
    const v5 = this.#v5;
    let limits: Readonly<ServerLimits> | undefined;
    try {
      limits = v5?.connected(packet); // MQTT-4.12.0-5, -6
    } catch (err) {
      this.#protocolError(err as ProtocolError, now);
      return;
    }
    this.#name = "connected";
    this.#keepAlive.received(now);
    if (limits !== undefined) this.#applyLimits(limits);
    // Re-register before anything else goes out: the broker handles packets in
    // order, so the subscriptions are active before resent and queued publishes
    // (which may be answered by messages on those topics) arrive.
    const data = this.#data;
    // MQTT-3.1.2-6: a clean session starts without a previous process's subscriptions.
    if (this.#options.clean) data.discardRestoredSubscriptions();
    if (!packet.sessionPresent || data.resubscribing !== 0) this.#resubscribe(now);
    // Publishes made from inside `connected()` must queue behind the resends.
    const flows = this.#flows;
    flows.holding = true;
    try {
      this.#handler.connected(packet);
    } finally {
      flows.holding = false;
    }
    // `connected()` may have closed the session (TS narrows #name too eagerly here).
    if ((this.#name as SessionStateName) === "disconnected") return;
    this.#resume(packet.sessionPresent, now);
    const queued = this.#queuedRequests;
    if (queued.length !== 0) {
      this.#queuedRequests = [];
      for (const request of queued) {
        // Made before the CONNACK told the server's Maximum Packet Size (MQTT-3.2.2-15).
        const tooLarge = v5?.checkRequest(request.packet);
        if (tooLarge === undefined) {
          this.#send(request.packet, now);
          continue;
        }
        data.completeRequest(request.packet.packetId);
        request.done(tooLarge);
        if ((this.#name as SessionStateName) === "disconnected") return;
      }
    }
    flows.fillWindow(now);
    this.#checkDrained(now);
  }

  /**
   * MQTT 5.0 section 3.3.4: the server must not send more QoS 1/2 PUBLISH
   * than our Receive Maximum before we acknowledge them (PUBACK, PUBCOMP); a
   * new one beyond the maximum ends the connection with DISCONNECT 0x93
   * (Receive Maximum exceeded).
   */
  #overReceiveMaximum(packetId: number, now: number): boolean {
    const exceeded = this.#v5?.overReceiveMaximum(this.#data, packetId);
    if (exceeded === undefined) return false;
    this.#send({ type: "disconnect", reasonCode: 0x93 }, now);
    this.#fail(exceeded);
    return true;
  }

  /** MQTT 5.0: the CONNACK's limits hold for this connection. */
  #applyLimits(limits: Readonly<ServerLimits>): void {
    // MQTT-3.3.4-7: never more unacknowledged QoS 1/2 than the server's Receive Maximum.
    this.#flows.maxInflight = Math.min(this.#options.maxInflight, limits.receiveMaximum);
    // MQTT-3.2.2-21: the Server Keep Alive replaces ours.
    if (limits.serverKeepAlive !== undefined) {
      this.#keepAlive.intervalMs = limits.serverKeepAlive * 1000;
    }
  }

  /** Re-sends what was in flight on the previous connection, in original order. */
  #resume(sessionPresent: boolean, now: number): void {
    const data = this.#data;
    // The broker forgot every QoS 2 id it had sent us; a new PUBLISH with an
    // old id is a new message. Acknowledgements still pending are for a
    // session it no longer has: they are dropped (their messages stay with the
    // application, which may still consume them, to no effect).
    if (!sessionPresent) {
      data.clearIncoming();
      data.acks.clear();
    }
    // MQTT-3.1.2-6: a clean session discards the previous session state on our side too.
    if (this.#options.clean) data.discardRestoredInflight();
    // Without a session on the broker this also covers clean=true, where the
    // application still expects its pending publishes to go out.
    this.#flows.resume(sessionPresent, now);
    // Messages of the previous connection consumed while offline: their
    // acknowledgements go out now, in arrival order; those still being
    // consumed go out when they are (a DUP resend meanwhile is not delivered).
    this.#flows.releaseAcks(now);
  }

  #onSuback(packet: SubackPacket, now: number): void {
    const data = this.#data;
    const request = data.getRequest(packet.packetId);
    if (request === undefined) return;
    const sent = request.packet;
    if (sent.type !== "subscribe") {
      this.#violation(unexpected(packet, `packet id ${packet.packetId} is an UNSUBSCRIBE`), now);
      return;
    }
    // MQTT 5.0 reason codes 0, 1, 2 grant a QoS as 3.1.1's return codes do; 0x80 and up refuse.
    const codes: SubackCode[] = packet.reasonCodes ?? packet.returnCodes ?? [];
    const subs = sent.subscriptions;
    if (codes.length !== subs.length) {
      const error = new ProtocolError(
        "UNEXPECTED_PACKET",
        `SUBACK has ${codes.length} return codes for ${subs.length} filters (MQTT-3.8.4-5)`,
        "suback",
      );
      if (request.resubscribe) {
        data.completeRequest(packet.packetId);
        data.resubscribing--;
        this.#resubscribeFailed(subs, undefined, error);
        if ((this.#name as SessionStateName) === "disconnected") return;
      }
      this.#violation(error, now);
      return;
    }
    data.completeRequest(packet.packetId);
    if (request.resubscribe) {
      data.resubscribing--;
      this.#resubscribeFailed(subs, codes, undefined);
    } else {
      data.subscribed(request, codes);
      (request.done as SubscribeCallback)(undefined, codes);
    }
    this.#checkDrained(now);
  }

  /** Sends SUBSCRIBE for every remembered subscription, in order, in batches. */
  #resubscribe(now: number): void {
    const data = this.#data;
    data.resubscribing = 0;
    if (data.subscriptions.size === 0) return;
    const all = data.subscriptionRequests();
    for (let i = 0; i < all.length; i += RESUBSCRIBE_BATCH) {
      this.#resubscribeBatch(all.slice(i, i + RESUBSCRIBE_BATCH), now);
    }
  }

  /**
   * Sends one re-registration SUBSCRIBE. At 5.0 one above the new server's
   * Maximum Packet Size (MQTT-3.2.2-15) is split in halves until each fits;
   * a filter too large on its own cannot be re-registered and is reported
   * to `handler.resubscribeFailed` with `PACKET_TOO_LARGE`.
   */
  #resubscribeBatch(subscriptions: SubscriptionRequest[], now: number): void {
    const data = this.#data;
    const packet: SubscribePacket = { type: "subscribe", packetId: 1, subscriptions };
    const tooLarge = this.#v5?.checkRequest(packet);
    if (tooLarge !== undefined) {
      if (subscriptions.length === 1) {
        return this.#resubscribeFailed(subscriptions, undefined, tooLarge);
      }
      const half = Math.ceil(subscriptions.length / 2);
      this.#resubscribeBatch(subscriptions.slice(0, half), now);
      this.#resubscribeBatch(subscriptions.slice(half), now);
      return;
    }
    packet.packetId = data.allocatePacketId(true);
    const request = new PendingRequest(packet, IGNORE_SUBACK, true);
    data.addRequest(request);
    data.resubscribing++;
    this.#send(packet, now);
  }

  /**
   * Applies a re-registration SUBACK (`codes` undefined: malformed, `error`
   * set) and reports each refused filter still remembered to the handler.
   */
  #resubscribeFailed(
    subs: SubscriptionRequest[],
    codes: SubackCode[] | undefined,
    error: MqttError | undefined,
  ): void {
    const data = this.#data;
    for (let i = 0; i < subs.length; i++) {
      const filter = subs[i].filter;
      const code = codes?.[i];
      if (!data.resubscribed(filter, code) || (code !== undefined && !isFailure(code))) continue;
      this.#handler.resubscribeFailed?.(
        filter,
        error ?? new SubscribeError(filter, { reasonCode: code }),
      );
    }
  }

  #checkDrained(now: number): void {
    if (this.#name !== "disconnecting") return;
    const data = this.#data;
    if (data.inflightCount !== 0 || data.pendingCount !== 0 || data.requestCount !== 0) return;
    // MQTT-3.14.4-2: DISCONNECT is the last packet on this connection.
    const reason = this.#disconnectReason;
    this.#send(
      this.#version === 5 && reason !== undefined
        ? { type: "disconnect", reasonCode: reason }
        : DISCONNECT,
      now,
    );
    this.#name = "disconnected";
    this.#resetTimers();
    this.#data.detach(this);
    this.#handler.closed(undefined);
  }

  #resetTimers(): void {
    this.#connectDeadline = Infinity;
    this.#keepAlive.stop();
    this.#pingOrder = 0;
    this.#flows.holding = false;
  }

  #enterDisconnected(error: MqttError): void {
    this.#name = "disconnected";
    this.#resetTimers();
    // Queued requests are in the state's table too; failRequests settles them.
    this.#queuedRequests = [];
    this.#data.detach(this);
    this.#data.failRequests(error);
  }

  #fail(error: MqttError): void {
    this.#enterDisconnected(error);
    this.#handler.closed(error);
  }
}

export { ClientSessionState } from "./client_state.ts";
