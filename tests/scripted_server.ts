/**
 * A broker the client tests script by hand, over an in-memory transport: it answers CONNECT,
 * SUBSCRIBE and UNSUBSCRIBE (or holds the answers until told), records every packet the client
 * sends, and sends what the test gives it. The client pulls what it reads one packet at a time,
 * so `pulled` counts the packets the client has read: a test can see whether it stopped reading.
 *
 * @module
 */
import { encodePacket } from "../lib/codec/encode.ts";
import type { Packet, PublishPacket, QoS } from "../lib/codec/packet.ts";
import { PacketFramer } from "../lib/streams/packet_reader.ts";
import type { Transport } from "../lib/transports/transport.ts";
import { brief } from "./session_helpers.ts";
import { within } from "./client_helpers.ts";

const enc = new TextEncoder();

/**
 * A PUBLISH whose payload is `topic#packetId`.
 *
 * @example
 * ```ts
 * const p = publish(3, 1, "a/b");
 * ```
 */
export function publish(
  packetId: number | undefined,
  qos: QoS,
  topic = "t",
  dup = false,
): PublishPacket {
  return {
    type: "publish",
    topic,
    payload: enc.encode(`${topic}#${packetId ?? "-"}`),
    qos,
    retain: false,
    dup,
    packetId: qos === 0 ? undefined : packetId,
  };
}

/** Lets the client's read loop and microtasks run. */
export const turn = (): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, 10));

/**
 * The scripted broker; `open` is the client's `transport` option. One connection at a time:
 * `close()` ends it (the client reconnects through `open` again).
 *
 * @example
 * ```ts ignore
 * const server = new ScriptedServer();
 * const client = await connect("mqtt://scripted.invalid", { transport: server.open });
 * ```
 */
export class ScriptedServer {
  /** Every packet the client sent, in order, over all connections. */
  received: Packet[] = [];
  /** CONNACK's session present flag. */
  sessionPresent = false;
  /** Hold SUBACK and UNSUBACK (in order) until {@linkcode flushReplies}. */
  holdReplies = false;
  /** Packets the client has read from the current and earlier connections. */
  pulled = 0;
  #replies: Packet[] = [];
  #queue: Uint8Array[] = [];
  #wake: (() => void) | undefined;
  #closed = true;
  #waiters: { test: () => boolean; resolve: () => void }[] = [];

  /** Opens a connection: what the client's `transport` option calls. */
  readonly open = (): Promise<Transport> => {
    const framer = new PacketFramer();
    this.#queue = [];
    this.#closed = false;
    const readable = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        while (this.#queue.length === 0 && !this.#closed) {
          await new Promise<void>((resolve) => this.#wake = resolve);
        }
        if (this.#queue.length === 0) {
          controller.close();
          return;
        }
        this.pulled++;
        controller.enqueue(this.#queue.shift()!);
      },
    }, { highWaterMark: 0 });
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        framer.push(chunk, (packet) => {
          this.#onPacket(packet);
          return true;
        });
      },
    });
    return Promise.resolve({ readable, writable, close: () => this.close() });
  };

  #onPacket(packet: Packet): void {
    this.received.push(packet);
    switch (packet.type) {
      case "connect":
        this.send({ type: "connack", sessionPresent: this.sessionPresent, returnCode: 0 });
        break;
      case "subscribe":
        this.#reply({
          type: "suback",
          packetId: packet.packetId,
          returnCodes: packet.subscriptions.map((s) => s.qos),
        });
        break;
      case "unsubscribe":
        this.#reply({ type: "unsuback", packetId: packet.packetId });
        break;
      case "disconnect":
        this.close();
        break;
    }
    for (const w of [...this.#waiters]) {
      if (w.test()) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  #reply(packet: Packet): void {
    if (this.holdReplies) this.#replies.push(packet);
    else this.send(packet);
  }

  /** Sends the held SUBACKs and UNSUBACKs, in order, and stops holding them. */
  flushReplies(): void {
    this.holdReplies = false;
    for (const packet of this.#replies.splice(0)) this.send(packet);
  }

  /** Queues a packet for the client to read. */
  send(packet: Packet): void {
    if (this.#closed) return;
    this.#queue.push(encodePacket(packet));
    this.#wake?.();
    this.#wake = undefined;
  }

  /** Ends the current connection after what is queued, as a broker that drops it. */
  close(): void {
    this.#closed = true;
    this.#wake?.();
    this.#wake = undefined;
  }

  /** Acknowledgements the client sent, as "puback:3". */
  acks(): string[] {
    return brief(this.received.filter((p) => p.type === "puback" || p.type === "pubrec"));
  }

  /** Resolves once `test` holds after a packet from the client. */
  until(test: () => boolean, what: string): Promise<void> {
    if (test()) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ test, resolve });
    return within(promise, what, 3000);
  }
}
