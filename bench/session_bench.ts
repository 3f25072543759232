/**
 * QoS handshakes through the session state machine, in memory, no sockets:
 * `deno bench -A bench/session_bench.ts`.
 *
 * A {@linkcode Session} talks to a scripted peer that answers every packet the
 * session sends: PUBLISH → PUBREC, PUBREL → PUBCOMP (QoS 2) and PUBLISH →
 * PUBACK (QoS 1) when we publish; when we receive, the peer sends PUBLISH and
 * answers our PUBREC with PUBREL. Each iteration runs {@linkcode BATCH} full
 * round trips, so round trips/s = BATCH / (time per iteration); the summary
 * printed when the file loads turns the bench figures into that number.
 * Bar (issue 8): more than 1 million QoS 2 round trips/s.
 *
 * The window bench keeps {@linkcode WINDOW} publishes in flight, as the
 * end-to-end benchmark does; the others complete one handshake before the next.
 *
 * @module
 */
import type { Packet, PublishPacket, QoS } from "../lib/codec/packet.ts";
import { ClientSessionState, Session } from "../lib/session/session.ts";
import type { OutgoingMessage, SessionHandler } from "../lib/session/types.ts";

/** Round trips per bench iteration. */
const BATCH = 1000;
/** In-flight publishes in the window bench. */
const WINDOW = 100;

const PAYLOAD = new Uint8Array(64).fill(0x61);
const TOPIC = "sensors/building-1/room-42/temperature";

/** A session connected to a scripted peer; `outbox` holds what the session sent. */
class Rig implements SessionHandler {
  readonly session: Session;
  outbox: Packet[] = [];
  delivered = 0;
  completed = 0;
  /** One callback for every publish: no closure per message. */
  readonly done = (error?: unknown) => {
    if (error !== undefined) throw error;
    this.completed++;
  };

  constructor(maxInflight: number) {
    this.session = new Session(
      {
        clientId: "bench",
        clean: true,
        keepAlive: 60,
        maxInflight,
        pingTimeout: 10_000,
        connectTimeout: 10_000,
      },
      new ClientSessionState(),
      this,
    );
    this.session.connect(0);
    this.session.receive({ type: "connack", sessionPresent: false, returnCode: 0 }, 0);
    this.outbox.length = 0;
  }

  send(packet: Packet): void {
    this.outbox.push(packet);
  }
  deliver(_packet: PublishPacket): void {
    this.delivered++;
  }
  connected(): void {}
  closed(error: unknown): void {
    if (error !== undefined) throw error;
  }

  /** The peer answers everything the session has sent, until nothing is left. */
  answer(now: number): void {
    const session = this.session;
    while (this.outbox.length > 0) {
      const sent = this.outbox;
      this.outbox = [];
      for (let i = 0; i < sent.length; i++) {
        const p = sent[i];
        switch (p.type) {
          case "publish":
            session.receive(
              p.qos === 1
                ? { type: "puback", packetId: p.packetId! }
                : { type: "pubrec", packetId: p.packetId! },
              now,
            );
            break;
          case "pubrel":
            session.receive({ type: "pubcomp", packetId: p.packetId }, now);
            break;
          case "pubrec":
            session.receive({ type: "pubrel", packetId: p.packetId }, now);
            break;
          default:
            // PUBACK / PUBCOMP of incoming messages end the flow.
        }
      }
    }
  }
}

function message(qos: QoS): OutgoingMessage {
  return { topic: TOPIC, payload: PAYLOAD, qos, retain: false };
}

/** Outgoing: publish, let the peer answer, repeat. */
function outgoing(rig: Rig, msg: OutgoingMessage, now: number): void {
  const session = rig.session;
  for (let i = 0; i < BATCH; i++) {
    session.publish(msg, now, rig.done);
    rig.answer(now);
  }
}

/** Outgoing with a window: keep WINDOW publishes in flight, the peer answers in bursts. */
function outgoingWindow(rig: Rig, msg: OutgoingMessage, now: number): void {
  const session = rig.session;
  for (let i = 0; i < BATCH; i += WINDOW) {
    for (let j = 0; j < WINDOW; j++) session.publish(msg, now, rig.done);
    rig.answer(now);
  }
}

let nextId = 1;
/** Incoming: the peer publishes, the session acknowledges (and for QoS 2 the peer releases). */
function incoming(rig: Rig, qos: QoS, now: number): void {
  const session = rig.session;
  for (let i = 0; i < BATCH; i++) {
    const packetId = nextId;
    nextId = nextId === 65535 ? 1 : nextId + 1;
    session.receive(
      { type: "publish", topic: TOPIC, payload: PAYLOAD, qos, retain: false, dup: false, packetId },
      now,
    );
    rig.answer(now);
  }
}

function check(rig: Rig, expected: number, what: "completed" | "delivered"): void {
  if (rig[what] !== expected) throw new Error(`${what} ${rig[what]}, expected ${expected}`);
  if (rig.session.state !== "connected") throw new Error(`session ${rig.session.state}`);
}

// Sanity check before timing anything: every handshake completes.
{
  const rig = new Rig(WINDOW);
  outgoing(rig, message(2), 1);
  outgoingWindow(rig, message(2), 1);
  outgoing(rig, message(1), 1);
  check(rig, 3 * BATCH, "completed");
  incoming(rig, 2, 1);
  incoming(rig, 1, 1);
  check(rig, 2 * BATCH, "delivered");
  console.log(
    `session_bench: ${BATCH} round trips per iteration; round trips/s = ${BATCH} / time per iteration ` +
      `(e.g. 1 ms/iter = 1,000,000/s). Bar: QoS 2 > 1,000,000/s.`,
  );
}

let clock = 0;
for (const qos of [2, 1] as const) {
  const msg = message(qos);
  const name = `QoS ${qos}`;
  {
    const rig = new Rig(WINDOW);
    Deno.bench({
      name: `${name} publish handshake, one at a time ×${BATCH}`,
      group: `QoS ${qos}`,
      baseline: qos === 2,
      fn: () => outgoing(rig, msg, ++clock),
    });
  }
  {
    const rig = new Rig(WINDOW);
    Deno.bench({
      name: `${name} publish handshake, window ${WINDOW} ×${BATCH}`,
      group: `QoS ${qos}`,
      fn: () => outgoingWindow(rig, msg, ++clock),
    });
  }
  {
    const rig = new Rig(WINDOW);
    Deno.bench({
      name: `${name} receive handshake ×${BATCH}`,
      group: `QoS ${qos}`,
      fn: () => incoming(rig, qos, ++clock),
    });
  }
}
