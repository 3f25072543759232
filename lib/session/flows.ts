/**
 * The QoS 1 and QoS 2 flows of one connection, the same for both roles: the
 * client's {@linkcode Session} and the broker's `ServerSession` feed them the
 * PUBLISH, PUBACK, PUBREC, PUBREL and PUBCOMP they read and the publishes they
 * want sent; the flows keep the in-flight window over a {@linkcode SessionState}
 * and answer through the sender given at construction. No I/O, no clock.
 *
 * @module
 */
import type { Packet, PublishPacket } from "../codec/packet.ts";
import { MqttError, ProtocolError, PublishRejectedError } from "../errors.ts";
import { isFailure } from "../codec/reason_codes.ts";
import { expiredError, withRemainingExpiry } from "./expiry.ts";
import { OutgoingPublish, type SessionState } from "./state.ts";
import type { OutgoingMessage, PublishAck, PublishCallback } from "./types.ts";
import { PendingAck, settleAck } from "./acks.ts";

/** Where the flows' packets and messages go; `now` is the caller's clock, passed through. */
export interface FlowOutput {
  /** Writes a packet to the peer. */
  send(packet: Packet, now: number): void;
  /**
   * Hands an application message to the application; once per QoS 2 message.
   * With {@linkcode FlowOptions.deferAcks}, a QoS 1/2 message comes with its
   * {@linkcode PendingAck}, to pass to {@linkcode Flows.prototype.acknowledge}
   * once the application has it. May return an MQTT 5.0 reason code for its
   * PUBACK or PUBREC (a server's 0x10 No matching subscribers); nothing means success.
   */
  deliver(packet: PublishPacket, ack?: PendingAck): void | number;
  /**
   * Sends, right behind the packet just sent and in the same write, a packet
   * the peer answers once it has read it (the client's PINGREQ), and passes
   * the {@linkcode Flows.prototype.sendOrder} of the moment to
   * {@linkcode Flows.prototype.acknowledged} when the answer comes. Asked
   * after each resend of a publish the peer may have dropped the connection
   * over ({@linkcode Flows.prototype.connectionDropped}); without it, such a
   * publish is resent with the rest and given up on the pattern of drops alone.
   */
  probe?(now: number): void;
}

/** How the flows acknowledge incoming messages. */
export interface FlowOptions {
  /**
   * Acknowledge an incoming QoS 1/2 message when the application has
   * consumed it ({@linkcode Flows.prototype.acknowledge}), not when it is
   * delivered. @default {false}
   */
  deferAcks?: boolean;
  /**
   * With `deferAcks`: the connection's clean session flag. A message nobody
   * will consume is then acknowledged all the same (no later connection could
   * get it again); without clean session it is left unacknowledged, so the
   * server sends it again on the next connection. @default {false}
   */
  clean?: boolean;
}

/**
 * Connections in a row the peer may drop right after a publish was sent
 * (from the second on: before answering the probe sent behind it) before
 * the publish is refused with `PUBLISH_REFUSED`
 * ({@linkcode Flows.prototype.connectionDropped}).
 */
export const MAX_STRIKES = 3;

// Order of every PUBLISH and PUBREL sent by any flows, counting up. One
// counter for all, so an order taken on an earlier connection is always
// below any taken on a later one, whichever flows took it.
let sendOrder = 0;

/** The acknowledgement packets a flow consumes. */
export type AckPacket = Extract<Packet, { type: "puback" | "pubrec" | "pubrel" | "pubcomp" }>;

/**
 * The QoS flows of one connection over a long-lived {@linkcode SessionState}.
 *
 * Rules kept here, for the client and the server alike:
 * - Incoming: QoS 1 is delivered, then PUBACK (MQTT-4.3.2-2); QoS 2 is
 *   recorded (in the store first), then delivered once, then PUBREC; a
 *   resent PUBLISH with an id still recorded is answered with PUBREC and not
 *   delivered again until PUBREL releases the id (MQTT-4.3.3-2); PUBREL is
 *   answered with PUBCOMP even for an unknown id. Acknowledgements go out in
 *   arrival order (MQTT-4.6.0-2/3).
 * - Outgoing: never more than `maxInflight` QoS 1/2 publishes unacknowledged;
 *   the rest wait in the state's queue and leave it in order (MQTT-4.6.0-6);
 *   PUBREC is answered with PUBREL, a repeated one too (MQTT-4.3.3-1); acks
 *   for unknown ids, or of the wrong kind, are ignored (after a resume the peer
 *   may acknowledge the original and the DUP resend). A QoS 2 PUBLISH answered
 *   with PUBACK ends its flow with a `ProtocolError` (UNEXPECTED_PACKET): the
 *   receiver took it at QoS 1.
 * - A publish the peer dropped the connection right after, {@linkcode MAX_STRIKES}
 *   times in a row, fails with `PUBLISH_REFUSED` and leaves the state
 *   (`connectionDropped`): MQTT 3.1.1 gives a receiver no other way to refuse one.
 *   Once it has a strike it is resent alone with a probe (`FlowOutput.probe`)
 *   behind it, the rest waiting, and a drop counts only before the probe's answer.
 * - Exactly once survives a failing store: an incoming QoS 2 id is recorded
 *   before the message is delivered, so a store that throws delivers nothing
 *   and the peer's resend delivers it once.
 * - With `deferAcks` (the client's acknowledgement on consume), see
 *   {@linkcode Flows.prototype.acknowledge}: PUBACK / PUBREC waits until the
 *   application has consumed the message, and a QoS 2 id is recorded when its
 *   PUBREC goes out, not when the message arrives.
 *
 * @example
 * ```ts
 * import { Flows } from "./flows.ts";
 * import { SessionState } from "./state.ts";
 * import type { Packet } from "../codec/packet.ts";
 *
 * const sent: Packet[] = [];
 * const flows = new Flows(new SessionState(), 10, {
 *   send: (p) => sent.push(p),
 *   deliver: (p) => console.log("deliver", p.topic),
 * });
 * flows.publish({ topic: "a", payload: new Uint8Array(), qos: 2, retain: false }, 0, () => {});
 * flows.receiveAck({ type: "pubrec", packetId: 1 }, 1);
 * console.log(sent.map((p) => p.type)); // [ "publish", "pubrel" ]
 * ```
 */
export class Flows {
  readonly #state: SessionState;
  readonly #out: FlowOutput;
  /** Most QoS 1/2 publishes unacknowledged at once. */
  maxInflight: number;
  /** Highest send order the peer has shown it read past: by an ack, or by `acknowledged`. */
  #acked = sendOrder;
  /**
   * Drops in a row right after the same publish before it fails with
   * `PUBLISH_REFUSED` ({@linkcode MAX_STRIKES} unless the session's options say).
   */
  maxStrikes: number = MAX_STRIKES;
  /** `sendOrder` when this connection's resume began: only later sends can be a drop's suspect. */
  #resumedAt = sendOrder;
  /** The peer kept its side of the session (the last `resume`). */
  #sessionPresent = false;
  /**
   * The order of a suspect publish resent alone, a probe behind it (0: none):
   * the rest of the resume and new publishes wait until the peer is known to
   * have read it (`acknowledged`).
   */
  #quarantine = 0;
  /**
   * While true, new publishes queue behind those waiting instead of going out
   * at once: set while a resume or a window refill runs, and by the caller
   * around a callback that may publish from inside it.
   */
  holding = false;
  /**
   * Checked on each waiting publish as it leaves the queue: an error fails
   * that publish (`done(error)`) instead of sending it. The client's session
   * sets it to the server's MQTT 5.0 limits (Maximum QoS, Retain Available,
   * Maximum Packet Size), which a publish queued before CONNACK did not meet.
   */
  refuse: ((message: OutgoingMessage) => MqttError | undefined) | undefined = undefined;
  /**
   * When true, a publish without an expiry deadline entering the window keeps
   * its PUBLISH as its `message` (the same fields) and lets the caller's object
   * go, so an in-flight publish holds one object, not two (issue 18). For the
   * client, whose messages are its own; the broker keeps its deliveries, whose
   * other fields it reads again (shared subscriptions hand them on).
   */
  messageInPacket = false;
  readonly #deferAcks: boolean;
  readonly #clean: boolean;

  /** Flows over `state`, sending through `out`. */
  constructor(
    state: SessionState,
    maxInflight: number,
    out: FlowOutput,
    options: FlowOptions = {},
  ) {
    this.#state = state;
    this.maxInflight = maxInflight;
    this.#out = out;
    this.#deferAcks = options.deferAcks === true;
    this.#clean = options.clean === true;
  }

  /** The state the flows run over. */
  get state(): SessionState {
    return this.#state;
  }

  /**
   * Publishes a message: a QoS 0 one is sent and `done()` called at once, a
   * QoS 1/2 one is sent when a window slot is free and `done()` is called when
   * its flow completes; a message that must wait is queued in the state (which
   * may throw `QUEUE_FULL` and change nothing).
   */
  publish(message: OutgoingMessage, now: number, done: PublishCallback): void {
    const state = this.#state;
    if (!this.holding && this.#quarantine === 0 && state.pendingCount === 0) {
      if (message.qos === 0) {
        this.#out.send(qos0Packet(message), now);
        done();
        return;
      }
      if (state.inflightCount < this.maxInflight) {
        this.#start(new OutgoingPublish(message, done), now, false);
        return;
      }
    }
    state.enqueue(new OutgoingPublish(message, done));
  }

  /**
   * Takes the oldest waiting publish that may go out now, moving a QoS 1/2
   * one into the in-flight window (with a fresh packet id); undefined when
   * nothing waits or the head waits for a window slot. Its PUBLISH is
   * `entry.packet`. The caller sends it, and for QoS 0 calls `done()`.
   * For a driver that pulls what it writes (the broker fills each write up to a size).
   * With `now`, a message whose Message Expiry Interval has passed fails with
   * `MESSAGE_EXPIRED` instead, and one sent late carries what remains of it.
   */
  takeNext(now?: number): OutgoingPublish | undefined {
    if (this.#quarantine !== 0) return undefined;
    const state = this.#state;
    let head = state.peekWaiting();
    const refuse = this.refuse;
    while (head !== undefined) {
      const error = expiredError(head.message, now) ?? refuse?.(head.message);
      if (error === undefined) break;
      state.shiftWaiting();
      head.done(error);
      head = state.peekWaiting();
    }
    if (head === undefined) return undefined;
    if (head.message.qos === 0) {
      state.shiftWaiting();
      head.packet = qos0Packet(head.message, now);
      return head;
    }
    if (state.inflightCount >= this.maxInflight) return undefined;
    // The entry leaves the queue inside addInflight, after its id is allocated and stored.
    this.#assign(head, now);
    state.addInflight(head, true);
    head.sentOrder = ++sendOrder;
    return head;
  }

  /** Sends waiting publishes in order while the window has room. */
  fillWindow(now: number): void {
    if (this.#state.pendingCount === 0 || this.#quarantine !== 0) return;
    const out = this.#out;
    const holding = this.holding;
    this.holding = true;
    try {
      for (let entry = this.takeNext(now); entry !== undefined; entry = this.takeNext(now)) {
        out.send(entry.packet!, now);
        if (entry.message.qos === 0) entry.done();
      }
    } finally {
      this.holding = holding;
    }
  }

  /**
   * Handles an incoming PUBLISH: the output's `deliver` gets the message when
   * it is new. A publish the server `refused` (not authorized) is
   * acknowledged all the same (MQTT 3.1.1 has no way to say no) and not delivered;
   * under MQTT 5.0 its acknowledgement carries the reason code `refusal` (0x87
   * Not authorized), and a QoS 2 one refused so is not remembered for a PUBREL.
   */
  receivePublish(packet: PublishPacket, now: number, refused = false, refusal?: number): void {
    const qos = packet.qos;
    const out = this.#out;
    if (qos === 0) {
      if (!refused) out.deliver(packet);
      return;
    }
    if (this.#deferAcks) return this.#receiveDeferred(packet, qos, now, refused);
    const packetId = packet.packetId!;
    if (qos === 1) {
      // MQTT-4.3.2-2: deliver (accept ownership), then PUBACK, in arrival order (MQTT-4.6.0-2).
      const code = refused ? refusal : out.deliver(packet);
      out.send(withCode({ type: "puback", packetId }, code), now);
      return;
    }
    // MQTT-4.3.3-2: deliver once per id; until PUBREL, a PUBLISH with the same
    // id (the DUP resend) is acknowledged with PUBREC but not delivered again.
    // The id is recorded before delivery: if the store fails, nothing was
    // delivered and the resend is delivered once.
    const state = this.#state;
    let code: number | void = undefined;
    if (refused && refusal !== undefined && isFailure(refusal)) {
      // MQTT 5.0 section 4.3.3: a PUBREC of 0x80 or more ends the flow, no PUBREL follows.
      code = refusal;
    } else if (!state.hasIncoming(packetId)) {
      state.addIncoming(packetId);
      code = refused ? refusal : out.deliver(packet);
    }
    out.send(withCode({ type: "pubrec", packetId }, code), now); // MQTT-4.6.0-3: in arrival order
  }

  /**
   * With `deferAcks`: a QoS 1/2 message delivered with its {@linkcode PendingAck}.
   *
   * Why the id of a QoS 2 message is recorded only when its PUBREC goes out:
   * recorded on arrival (in the store first), a process that dies before the
   * application consumed the message would treat the server's DUP resend after
   * the restart as already delivered (MQTT-4.3.3-2), and the message would be
   * lost. Recorded at PUBREC, after the application consumed it, the resend
   * after a restart is delivered again only when the application had not
   * finished with it. Within one process, the queue of pending acknowledgements
   * holds the "delivered, not yet acknowledged" ids, so a DUP resend on a new
   * connection (MQTT-4.4.0-1) does not reach the application twice: the
   * pending acknowledgement answers it once the message is consumed.
   */
  #receiveDeferred(packet: PublishPacket, qos: 1 | 2, now: number, refused: boolean): void {
    const packetId = packet.packetId!;
    const state = this.#state;
    const acks = state.acks;
    if (qos === 2 && state.hasIncoming(packetId)) {
      // MQTT-4.3.3-2: consumed and acknowledged before, awaiting PUBREL: PUBREC
      // again, not delivered; queued, so it keeps arrival order (MQTT-4.6.0-3).
      acks.push(new PendingAck(packetId, 2, "consumed", true));
    } else if (acks.get(packetId) !== undefined) {
      // The resend of a message the application holds (MQTT-4.4.0-1): its
      // pending acknowledgement answers both; the peer uses an id for one
      // message at a time (MQTT-2.3.1-2), so the same id is the same message.
      return;
    } else {
      const ack = new PendingAck(packetId, qos, refused ? "consumed" : "waiting");
      acks.push(ack);
      if (!refused) this.#out.deliver(packet, ack);
    }
    this.releaseAcks(now);
  }

  /**
   * With `deferAcks`: the application has consumed the message of `ack`
   * (`consumed`), or nobody will (`consumed` false: the client closed first).
   * Acknowledgements go out in the order the PUBLISH packets arrived, QoS 1
   * and 2 alike (MQTT-4.6.0-2, MQTT-4.6.0-3): one whose earlier messages are
   * still being consumed waits for them. A declined message is acknowledged
   * only under clean session; otherwise it is skipped, never acknowledged on
   * this connection, so the server keeps it and sends it again on the next
   * (MQTT-4.4.0-1). A second call, or one for a message whose session the
   * server lost, does nothing. May throw the store's error (the QoS 2 id is
   * recorded before PUBREC); nothing is then sent and a later call retries.
   */
  acknowledge(ack: PendingAck, consumed: boolean, now: number): void {
    if (settleAck(ack, consumed)) this.releaseAcks(now);
  }

  /** Sends the acknowledgements at the head of the queue whose message was consumed, in order. */
  releaseAcks(now: number): void {
    const state = this.#state;
    const acks = state.acks;
    for (let head = acks.peek(); head !== undefined; head = acks.peek()) {
      const status = head.status;
      if (status === "waiting") return;
      const packetId = head.packetId;
      if (status === "declined" && !this.#clean) {
        acks.shift();
        continue;
      }
      if (head.qos === 1) {
        acks.shift();
        this.#out.send({ type: "puback", packetId }, now);
        continue;
      }
      // MQTT-4.3.3-2: the id is recorded (in the store first) before PUBREC
      // says the message is ours; if the store throws, the head stays queued.
      if (!head.recorded && !state.hasIncoming(packetId)) state.addIncoming(packetId);
      acks.shift();
      this.#out.send({ type: "pubrec", packetId }, now);
    }
  }

  /**
   * Handles PUBACK, PUBREC, PUBREL or PUBCOMP. A completed flow's `done` is
   * called after the window is refilled, so a publish made from `done` queues
   * behind those already waiting.
   */
  receiveAck(packet: AckPacket, now: number): void {
    const state = this.#state;
    const packetId = packet.packetId;
    switch (packet.type) {
      case "puback": {
        const entry = state.getInflight(packetId);
        if (entry === undefined || entry.released) return;
        this.acknowledged(entry.sentOrder, now);
        state.complete(packetId);
        if (entry.message.qos === 1) {
          // MQTT 5.0: a reason code of 0x80 or more refuses the message (MQTT-3.3.4-7: the slot is free).
          return this.#completed(entry, now, rejected(entry, packet), ackOf(packet));
        }
        // MQTT-4.3.3-1: a QoS 2 PUBLISH is answered by PUBREC. A receiver that
        // answers PUBACK has taken it at QoS 1 (RabbitMQ does): end the flow,
        // freeing its id and window slot, and tell the sender exactly-once was not had.
        return this.#completed(
          entry,
          now,
          new ProtocolError(
            "UNEXPECTED_PACKET",
            `the receiver answered the QoS 2 PUBLISH ${packetId} with PUBACK, not PUBREC ` +
              "(MQTT-4.3.3-1): it accepted the message at QoS 1, without exactly-once delivery",
            "puback",
          ),
        );
      }
      case "pubrec": {
        const entry = state.getInflight(packetId);
        if (entry === undefined || entry.message.qos !== 2) return;
        const refused = entry.released ? undefined : rejected(entry, packet);
        if (refused !== undefined) {
          // MQTT 5.0 section 4.3.3: a PUBREC of 0x80 or more ends the flow; no PUBREL follows.
          this.acknowledged(entry.sentOrder, now);
          state.complete(packetId);
          return this.#completed(entry, now, refused);
        }
        if (!entry.released) {
          this.acknowledged(entry.sentOrder, now);
          entry.ack = ackOf(packet);
          state.release(entry);
        }
        // MQTT-4.3.3-1: answer PUBREC with PUBREL, a repeated PUBREC too.
        entry.sentOrder = ++sendOrder;
        this.#out.send({ type: "pubrel", packetId }, now);
        return;
      }
      case "pubcomp": {
        const entry = state.getInflight(packetId);
        if (entry === undefined || !entry.released) return;
        this.acknowledged(entry.sentOrder, now);
        state.complete(packetId);
        // The PUBREC said what became of the message; a PUBCOMP has no other verdict to give.
        return this.#completed(entry, now, undefined, entry.ack ?? ackOf(packet));
      }
      case "pubrel":
        // MQTT-4.3.3-2: forget the id and answer PUBCOMP, also for an id we do
        // not know (our PUBCOMP may have been lost before a reconnect).
        state.releaseIncoming(packetId);
        this.#out.send({ type: "pubcomp", packetId }, now);
        return;
    }
  }

  /**
   * Sends again what was in flight on the previous connection, in original
   * order (MQTT-4.6.0-1). With `sessionPresent`, the peer kept its side:
   * PUBLISH goes again with DUP=1 and PUBREL for flows past PUBREC, with their
   * original ids (MQTT-4.4.0-1, MQTT-3.3.1-1). Without, every flow starts over
   * as a fresh PUBLISH (DUP=0) with the same id, free again on the peer's side,
   * QoS 2 past PUBREC included: a receiver may forward only on PUBREL
   * (Mosquitto does) and has dropped the message with its session; one that
   * forwarded at PUBREC may deliver it twice, which is all a lost session allows.
   */
  resume(sessionPresent: boolean, now: number): void {
    this.#resumedAt = sendOrder;
    this.#sessionPresent = sessionPresent;
    this.#quarantine = 0;
    this.#resend(now);
  }

  /**
   * Sends again, in order, each in-flight entry not yet sent on this
   * connection, up to and including a suspect of `connectionDropped`: that
   * one goes with a probe behind it, and the rest wait for `acknowledged`.
   */
  #resend(now: number): void {
    const state = this.#state;
    if (state.inflightCount === 0) return;
    const out = this.#out;
    const refuse = this.refuse;
    const sessionPresent = this.#sessionPresent;
    const refused: [OutgoingPublish, MqttError][] = [];
    for (const entry of state.inflight()) {
      if (entry.sentOrder > this.#resumedAt) continue; // sent on this connection already
      const packet = entry.packet!;
      // The new connection's limits may be lower than those the PUBLISH was sent under
      // (another server, a reconfigured one): one it cannot take fails rather than goes out.
      // Past PUBREC with a session the server holds the message: only PUBREL goes.
      const error = sessionPresent && entry.released ? undefined : refuse?.(entry.message);
      if (error !== undefined) {
        refused.push([entry, error]);
        continue;
      }
      entry.sentOrder = ++sendOrder;
      if (sessionPresent) {
        if (entry.released) out.send({ type: "pubrel", packetId: packet.packetId! }, now);
        else out.send({ ...packet, dup: true }, now);
      } else {
        if (entry.released) state.unrelease(entry);
        out.send(packet, now);
      }
      // A suspect (see connectionDropped) goes alone, the probe right behind it.
      if (entry.strikes > 0 && !entry.released && out.probe !== undefined) {
        out.probe(now);
        this.#quarantine = entry.sentOrder;
        break;
      }
    }
    for (const [entry, error] of refused) {
      state.complete(entry.packet!.packetId!);
      entry.done(error);
    }
  }

  /**
   * The order of the latest PUBLISH or PUBREL sent, for a caller that sends
   * a packet of its own whose answer proves the peer read everything before
   * it (a PINGREQ): pass it to {@linkcode Flows.prototype.acknowledged} then.
   */
  get sendOrder(): number {
    return sendOrder;
  }

  /**
   * The peer has read every PUBLISH and PUBREL sent up to `order` (see
   * `sendOrder`). Past a quarantined suspect, the resume goes on, then the
   * publishes waiting behind it.
   */
  acknowledged(order: number, now: number): void {
    if (order > this.#acked) this.#acked = order;
    if (this.#quarantine === 0 || order < this.#quarantine) return;
    this.#quarantine = 0;
    this.#resend(now);
    this.fillWindow(now);
  }

  /**
   * The peer dropped the connection (closed or reset it; not a timeout or
   * a close of ours). MQTT 3.1.1 gives a sender no way to learn that a
   * receiver cannot take a PUBLISH (too large, not allowed): a broker just
   * drops the connection, and resending it on every reconnect would loop
   * forever, with everything behind it waiting. So the pattern decides: the
   * first PUBLISH sent after the last one the peer is known to have read (by
   * an ack of it or of a later packet, or by a probe's answer) is the
   * suspect, and a publish that is the suspect of {@linkcode MAX_STRIKES}
   * drops in a row fails with `PUBLISH_REFUSED` and leaves the session (and
   * its store); the rest go on. A drop with another suspect, or none, clears
   * its strikes; an acknowledgement completes it.
   *
   * A cut link looks the same: after a reconnect the whole window goes again,
   * and a cut before the first ack would make the oldest publish the suspect
   * however good it is. So once a publish has a strike, it is resent alone,
   * followed in the same write by a probe (`FlowOutput.probe`, a PINGREQ),
   * and the rest of the window and new publishes wait until the peer is known
   * to have read it (the probe's answer, or an ack: `acknowledged`). The peer
   * reads in order, so that answer proves it read past the suspect and a later
   * drop is no strike. From the second strike on, a drop counts only between
   * the resend and the probe's answer, when nothing else is on the wire to
   * trigger it: a flaky link must cut within that one round trip, again and
   * again, to cost a message.
   */
  connectionDropped(): void {
    const state = this.#state;
    if (state.inflightCount === 0) return;
    let suspect: OutgoingPublish | undefined;
    for (const entry of state.inflight()) {
      // Past PUBREC the PUBLISH was taken; entries sent before the last ack were read, and
      // those not sent again on this connection (behind a quarantined suspect) were not sent.
      if (entry.released || entry.sentOrder <= this.#acked || entry.sentOrder <= this.#resumedAt) {
        continue;
      }
      if (suspect === undefined || entry.sentOrder < suspect.sentOrder) suspect = entry;
    }
    for (const entry of state.inflight()) entry.strikes = entry === suspect ? entry.strikes + 1 : 0;
    if (suspect === undefined || suspect.strikes < this.maxStrikes) return;
    const packetId = suspect.packet!.packetId!;
    state.complete(packetId);
    suspect.done(
      new MqttError(
        "PUBLISH_REFUSED",
        `the server closed the connection right after this QoS ${suspect.message.qos} PUBLISH ` +
          `to "${suspect.message.topic}" (${suspect.message.payload.length} bytes) ` +
          `${this.maxStrikes} times in a row, so it is given up: the server does not take it ` +
          "(larger than its maximum packet size, or not allowed); see the server's log",
      ),
    );
  }

  /** Moves a publish into the in-flight window and sends it (MQTT-4.3.2-1, MQTT-4.3.3-1: DUP=0). */
  #start(entry: OutgoingPublish, now: number, dequeued: boolean): void {
    this.#assign(entry);
    this.#state.addInflight(entry, dequeued);
    entry.sentOrder = ++sendOrder;
    this.#out.send(entry.packet!, now);
  }

  /**
   * Builds the PUBLISH of an entry entering the window. Expiry is applied
   * here only: once sent, a message is resent as it was (MQTT-4.3.3-7).
   */
  #assign(entry: OutgoingPublish, now?: number): void {
    const m = entry.message;
    const packet: PublishPacket = {
      type: "publish",
      topic: m.topic,
      payload: m.payload,
      qos: m.qos,
      retain: m.retain,
      dup: false,
      packetId: this.#state.allocatePacketId(),
    };
    if (m.properties !== undefined) packet.properties = m.properties;
    if (this.messageInPacket && m.expiresAt === undefined) {
      // Nothing of the message is needed that the packet does not carry: keep one object.
      entry.packet = entry.message = packet;
      return;
    }
    entry.packet = now === undefined ? packet : withRemainingExpiry(packet, m.expiresAt, now);
  }

  /** An in-flight publish finished: refill the window first so a publish from `done` queues behind. */
  #completed(entry: OutgoingPublish, now: number, error?: MqttError, ack?: PublishAck): void {
    try {
      this.fillWindow(now);
    } finally {
      // Settled even when refilling threw (a store error): its flow did complete.
      entry.done(error, ack);
    }
  }
}

function qos0Packet(m: OutgoingMessage, now?: number): PublishPacket {
  const packet: PublishPacket = {
    type: "publish",
    topic: m.topic,
    payload: m.payload,
    qos: 0,
    retain: m.retain,
    dup: false,
  };
  if (m.properties !== undefined) packet.properties = m.properties;
  return now === undefined ? packet : withRemainingExpiry(packet, m.expiresAt, now);
}

/** An acknowledgement with a reason code, when there is one other than success. */
function withCode<T extends { type: "puback" | "pubrec"; packetId: number }>(
  ack: T,
  code: number | void,
): T {
  return code ? ({ ...ack, reasonCode: code } as T) : ack;
}

/** The result of an acknowledgement without reason code or properties (all of them under 3.1.1). */
const SUCCESS: PublishAck = Object.freeze({ reasonCode: 0, properties: Object.freeze({}) });

/** The result a 5.0 PUBACK or PUBREC gives its publish. */
function ackOf(packet: AckPacket): PublishAck {
  const { reasonCode, properties } = packet;
  if (properties === undefined && !reasonCode) return SUCCESS;
  return { reasonCode: reasonCode ?? 0, properties: properties ?? {} };
}

/** The error of a PUBACK or PUBREC that refuses its publish (MQTT 5.0, code 0x80 or more). */
function rejected(entry: OutgoingPublish, packet: AckPacket): MqttError | undefined {
  const code = packet.reasonCode;
  if (code === undefined || !isFailure(code)) return undefined;
  return new PublishRejectedError(entry.message.topic, code, packet.properties?.reasonString);
}
