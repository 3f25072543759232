/**
 * A bare-bones MQTT 3.1.1 client for calibration only: it measures the
 * broker's ceiling on this machine, the rate the end-to-end workload reaches
 * when the client costs next to nothing. No validation, no reconnect, no
 * timers, no streams: one reused read buffer, hand-encoded packets, writes
 * coalesced into one syscall per event-loop turn, acknowledgements answered
 * inline. Not a client anyone should use: it trusts the broker completely.
 *
 * `deno run -A bench/e2e.ts --ceiling` adds its column to the table.
 *
 * @module
 */
import type { QoS } from "../lib/codec/packet.ts";
import type { BenchClient, ClientOptions, OnMessage } from "./_clients.ts";

const encoder = new TextEncoder();

/**
 * Connects the calibration client.
 *
 * @example
 * ```ts ignore
 * const client = await connectRaw("mqtt://127.0.0.1:1883", { clientId: "raw" });
 * ```
 */
export async function connectRaw(url: string, options: ClientOptions): Promise<BenchClient> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  conn.setNoDelay(true);
  return await new RawClient(conn).start(options.clientId, options.keepAlive ?? 60);
}

class RawClient implements BenchClient {
  readonly #conn: Deno.TcpConn;
  #out = new Uint8Array(1 << 16);
  #spare = new Uint8Array(1 << 16);
  #outLength = 0;
  #writing = false;
  #scheduled = false;
  #nextId = 1;
  readonly #pending: (((error?: unknown) => void) | undefined)[] = new Array(65536);
  readonly #qos0Waiting: ((error?: unknown) => void)[] = [];
  #onMessage: OnMessage | undefined;
  #waiter: ((type: number) => void) | undefined;
  #closed = false;
  #loop: Promise<void> | undefined;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  async start(clientId: string, keepAlive: number): Promise<this> {
    const id = encoder.encode(clientId);
    // CONNECT: protocol name "MQTT", level 4, clean session, keep-alive, client id.
    const body = [0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, keepAlive >> 8, keepAlive & 0xff];
    this.#packet(0x10, [...body, id.length >> 8, id.length & 0xff, ...id]);
    const connack = this.#expect(2);
    this.#loop = this.#readLoop();
    await connack;
    return this;
  }

  publish(topic: string, payload: Uint8Array, qos: QoS, done: (error?: unknown) => void): void {
    const t = encoder.encode(topic);
    const remaining = 2 + t.length + (qos > 0 ? 2 : 0) + payload.length;
    const buf = this.#reserve(1 + lengthBytes(remaining) + remaining);
    let at = this.#outLength;
    buf[at++] = 0x30 | (qos << 1);
    at = writeLength(buf, at, remaining);
    buf[at++] = t.length >> 8;
    buf[at++] = t.length & 0xff;
    buf.set(t, at);
    at += t.length;
    if (qos > 0) {
      let id = this.#nextId;
      while (this.#pending[id] !== undefined) id = id === 65535 ? 1 : id + 1;
      this.#nextId = id === 65535 ? 1 : id + 1;
      this.#pending[id] = done;
      buf[at++] = id >> 8;
      buf[at++] = id & 0xff;
    } else {
      this.#qos0Waiting.push(done);
    }
    buf.set(payload, at);
    this.#outLength = at + payload.length;
    this.#schedule();
  }

  async subscribe(filter: string, qos: QoS, onMessage: OnMessage): Promise<void> {
    this.#onMessage = onMessage;
    const f = encoder.encode(filter);
    this.#packet(0x82, [0, 1, f.length >> 8, f.length & 0xff, ...f, qos]);
    await this.#expect(9);
  }

  async close(): Promise<void> {
    this.#packet(0xe0, []);
    while (this.#writing || this.#scheduled || this.#outLength > 0) {
      await new Promise((r) => setTimeout(r, 1));
    }
    this.#closed = true;
    this.#conn.close();
    await this.#loop;
  }

  #expect(type: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiter = (got) =>
        got === type ? resolve() : reject(new Error(`expected packet ${type}, got ${got}`));
    });
  }

  #packet(first: number, body: number[]): void {
    const buf = this.#reserve(1 + lengthBytes(body.length) + body.length);
    let at = this.#outLength;
    buf[at++] = first;
    at = writeLength(buf, at, body.length);
    for (const b of body) buf[at++] = b;
    this.#outLength = at;
    this.#schedule();
  }

  #ack(first: number, id: number): void {
    const buf = this.#reserve(4);
    const at = this.#outLength;
    buf[at] = first;
    buf[at + 1] = 2;
    buf[at + 2] = id >> 8;
    buf[at + 3] = id & 0xff;
    this.#outLength = at + 4;
    this.#schedule();
  }

  #reserve(n: number): Uint8Array {
    if (this.#outLength + n > this.#out.length) {
      const grown = new Uint8Array(Math.max(this.#out.length * 2, this.#outLength + n));
      grown.set(this.#out.subarray(0, this.#outLength));
      this.#out = grown;
    }
    return this.#out;
  }

  #schedule(): void {
    if (this.#writing || this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#flush());
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    this.#writing = true;
    try {
      while (this.#outLength > 0 && !this.#closed) {
        const chunk = this.#out.subarray(0, this.#outLength);
        const written = this.#qos0Waiting.splice(0);
        [this.#out, this.#spare] = [this.#spare, this.#out];
        this.#outLength = 0;
        let at = 0;
        while (at < chunk.length) at += await this.#conn.write(chunk.subarray(at));
        for (const done of written) done();
      }
    } finally {
      this.#writing = false;
    }
  }

  async #readLoop(): Promise<void> {
    let buf = new Uint8Array(1 << 16);
    let have = 0;
    while (!this.#closed) {
      if (have === buf.length) {
        const grown = new Uint8Array(buf.length * 2);
        grown.set(buf);
        buf = grown;
      }
      let n: number | null;
      try {
        n = await this.#conn.read(buf.subarray(have));
      } catch (err) {
        if (this.#closed) return;
        throw err;
      }
      if (n === null) return;
      have += n;
      let at = 0;
      while (have - at >= 2) {
        let remaining = 0;
        let shift = 0;
        let i = at + 1;
        for (;;) {
          if (i >= have) break;
          const b = buf[i++];
          remaining |= (b & 0x7f) << shift;
          shift += 7;
          if ((b & 0x80) === 0) {
            shift = -1;
            break;
          }
        }
        if (shift !== -1 || i + remaining > have) break;
        this.#handle(buf, at, i, i + remaining);
        at = i + remaining;
      }
      buf.copyWithin(0, at, have);
      have -= at;
    }
  }

  #handle(buf: Uint8Array, start: number, body: number, end: number): void {
    const first = buf[start];
    const type = first >> 4;
    switch (type) {
      case 3: {
        const qos = (first >> 1) & 3;
        const topicLength = (buf[body] << 8) | buf[body + 1];
        let at = body + 2 + topicLength;
        const id = qos > 0 ? (buf[at] << 8) | buf[at + 1] : 0;
        if (qos > 0) at += 2;
        // The topic is not decoded: the benchmarks only count and time messages.
        this.#onMessage?.("", buf.subarray(at, end));
        if (qos === 1) this.#ack(0x40, id);
        else if (qos === 2) this.#ack(0x50, id);
        return;
      }
      case 4: // PUBACK
      case 7: { // PUBCOMP
        const id = (buf[body] << 8) | buf[body + 1];
        const done = this.#pending[id];
        this.#pending[id] = undefined;
        done?.();
        return;
      }
      case 5: // PUBREC: answer PUBREL
        this.#ack(0x62, (buf[body] << 8) | buf[body + 1]);
        return;
      case 6: // PUBREL: answer PUBCOMP
        this.#ack(0x70, (buf[body] << 8) | buf[body + 1]);
        return;
      default: {
        const waiter = this.#waiter;
        this.#waiter = undefined;
        waiter?.(type);
      }
    }
  }
}

function lengthBytes(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

function writeLength(buf: Uint8Array, at: number, n: number): number {
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n > 0) b |= 0x80;
    buf[at++] = b;
  } while (n > 0);
  return at;
}
