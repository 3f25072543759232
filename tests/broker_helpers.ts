/**
 * Helpers of the embedded broker's tests: a broker on a free port and a raw
 * packet-level client.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Broker, type BrokerOptions } from "../broker.ts";
import { encodePacket } from "../lib/codec/mod.ts";
import type {
  ConnackPacket,
  ConnectPacket,
  Packet,
  PublishPacket,
  QoS,
} from "../lib/codec/packet.ts";
import { PacketReader } from "../lib/streams/packet_reader.ts";

const encoder = new TextEncoder();
/** UTF-8 bytes of a string. */
export const bytes = (s: string): Uint8Array => encoder.encode(s);

export async function startBroker(
  options: BrokerOptions = {},
): Promise<{ broker: Broker; port: number }> {
  const broker = new Broker(options);
  const { port } = await broker.listen({ port: 0 });
  return { broker, port };
}

/** Runs `fn` against a broker on a free port, closing the broker afterwards. */
export async function withBroker(
  fn: (port: number, broker: Broker) => Promise<void>,
  options?: BrokerOptions,
): Promise<void> {
  const { broker, port } = await startBroker(options);
  try {
    await fn(port, broker);
  } finally {
    await broker.close();
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 5 ms; fails after `timeoutMs`. */
export async function until(
  condition: () => boolean,
  what: string,
  timeoutMs = 3000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

export type ReadResult = { packet: Packet } | { closed: true };

/** A tiny test client: codec packets over one TCP connection. */
export class RawClient {
  readonly conn: Deno.TcpConn | Deno.TlsConn;
  readonly #reader: ReadableStreamDefaultReader<Packet>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending: Promise<ReadResult> | undefined;
  #closed = false;
  /** The protocol level packets are written and read at: 4 (3.1.1) or 5 (5.0). */
  readonly version: 4 | 5;

  constructor(conn: Deno.TcpConn | Deno.TlsConn, version: 4 | 5 = 4) {
    this.conn = conn;
    this.version = version;
    this.#reader = conn.readable.pipeThrough(new PacketReader({ protocolVersion: version }))
      .getReader();
    this.#writer = conn.writable.getWriter();
  }

  static async open(port: number, version: 4 | 5 = 4): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }), version);
  }

  /** Opens a TLS connection to `localhost:port`. */
  static async openTls(
    port: number,
    options: { caCerts: string[]; cert?: string; key?: string },
  ): Promise<RawClient> {
    const conn = await Deno.connectTls({ hostname: "localhost", port, ...options });
    await conn.handshake();
    return new RawClient(conn);
  }

  /** Opens a connection (or uses `opened`), sends CONNECT and expects CONNACK. */
  static async connect(
    port: number,
    connect: Partial<ConnectPacket> = {},
    opened?: RawClient,
  ): Promise<
    { client: RawClient; sessionPresent: boolean; returnCode: number; connack: ConnackPacket }
  > {
    const client = opened ?? await RawClient.open(port, connect.protocolLevel === 5 ? 5 : 4);
    await client.send({
      type: "connect",
      protocolName: "MQTT",
      protocolLevel: 4,
      clientId: "",
      clean: true,
      keepAlive: 0,
      ...connect,
    });
    const connack = await client.expect("connack");
    return {
      client,
      sessionPresent: connack.sessionPresent,
      returnCode: connack.returnCode ?? connack.reasonCode!,
      connack,
    };
  }

  async send(packet: Packet): Promise<void> {
    await this.#writer.write(encodePacket(packet, { protocolVersion: this.version }));
  }

  async sendBytes(data: Uint8Array): Promise<void> {
    await this.#writer.write(data);
  }

  /** The next packet, or `closed` when the broker closed the connection. */
  async read(timeoutMs = 3000): Promise<ReadResult> {
    this.#pending ??= this.#reader.read().then(
      ({ value, done }): ReadResult => (done ? { closed: true } : { packet: value }),
      (): ReadResult => ({ closed: true }),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const result = await Promise.race([this.#pending, timeout]);
    clearTimeout(timer);
    if (result === "timeout") throw new Error(`no packet within ${timeoutMs} ms`);
    this.#pending = undefined;
    return result;
  }

  /** The next packet, which must be of type `type`. */
  async expect<T extends Packet["type"]>(
    type: T,
    timeoutMs?: number,
  ): Promise<Extract<Packet, { type: T }>> {
    const result = await this.read(timeoutMs);
    if ("closed" in result) throw new Error(`connection closed while waiting for ${type}`);
    assert.equal(
      result.packet.type,
      type,
      `expected ${type}, got ${JSON.stringify(result.packet)}`,
    );
    return result.packet as Extract<Packet, { type: T }>;
  }

  /** Resolves once the broker has closed the connection (packets before that are skipped). */
  async expectClosed(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const result = await this.read(Math.max(1, deadline - Date.now()));
      if ("closed" in result) return;
    }
  }

  /** Nothing arrives within `ms`. */
  async expectSilence(ms = 100): Promise<void> {
    let result: ReadResult | undefined;
    try {
      result = await this.read(ms);
    } catch {
      return;
    }
    assert.fail(`expected silence, got ${JSON.stringify(result)}`);
  }

  async subscribe(filters: [string, QoS][], packetId = 1): Promise<number[]> {
    await this.send({
      type: "subscribe",
      packetId,
      subscriptions: filters.map(([filter, qos]) => ({ filter, qos })),
    });
    const suback = await this.expect("suback");
    assert.equal(suback.packetId, packetId);
    return (suback.returnCodes ?? suback.reasonCodes)! as number[];
  }

  async publish(topic: string, payload: string, qos: QoS = 0, packetId?: number): Promise<void> {
    await this.send(
      publishPacket(topic, payload, qos, qos > 0 && packetId !== undefined ? { packetId } : {}),
    );
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.cancel().catch(() => {});
    try {
      this.conn.close();
    } catch {
      // Closed by the reader's cancel already.
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Hand-made CONNECT bytes, for CONNECTs the encoder rightly refuses to produce. */
export function rawConnect(
  level: number,
  clientId: string,
  flags: number,
  name = "MQTT",
): Uint8Array {
  const id = bytes(clientId);
  const body = [
    0,
    4,
    ...bytes(name),
    level,
    flags,
    0,
    0,
    id.length >> 8,
    id.length & 255,
    ...id,
  ];
  return new Uint8Array([0x10, body.length, ...body]);
}

/** A 5.0 raw client, connected (CONNACK read). */
export async function connect5(
  port: number,
  connect: Partial<ConnectPacket> = {},
): ReturnType<typeof RawClient.connect> {
  return await RawClient.connect(port, { protocolLevel: 5, ...connect });
}

/** A PUBLISH packet: packet id 1 at QoS 1 and 2 unless `extra` says otherwise. */
export function publishPacket(
  topic: string,
  payload: string,
  qos: QoS = 0,
  extra: Partial<PublishPacket> = {},
): PublishPacket {
  return {
    type: "publish",
    topic,
    payload: bytes(payload),
    qos,
    retain: false,
    dup: false,
    packetId: qos > 0 ? 1 : undefined,
    ...extra,
  };
}
