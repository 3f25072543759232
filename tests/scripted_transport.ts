/**
 * A user transport (the `transport` option of `connect()`) that plays a minimal server by
 * script: it answers the client's CONNECT with an accepting CONNACK (bytes 0x20 0x02 0x00
 * 0x00), records every byte written after it, hangs up once the client closes its writable
 * (after the DISCONNECT), and can be told to fail every later write or never to hang up.
 * For tests of the client's own behaviour at its API boundary and its write path; claims about
 * real brokers are tested against Mosquitto.
 *
 * @module
 */
import { connect, type MqttClient } from "../mod.ts";
import type { Transport } from "../lib/transports/transport.ts";

/** What a {@linkcode scriptedTransport} lets a test see and do. */
export interface ScriptedTransport {
  /** The factory to pass as `transport` to `connect()`. */
  factory(url: URL): Promise<Transport>;
  /** Every chunk the client wrote after its CONNECT, in order. */
  readonly written: Uint8Array[];
  /** From now on every write throws `error`. */
  failWrites(error: Error): void;
  /** From now on every write waits until {@linkcode ScriptedTransport.release} (or fails then). */
  holdWrites(): void;
  /** Lets the held writes finish. */
  release(): void;
  /** From now on the server never closes the connection, not even after DISCONNECT. */
  neverHangUp(): void;
  /** Sends `bytes` to the client, as the server would (one chunk, one read). */
  deliver(bytes: Uint8Array): void;
  /** Resolves once the transport was closed by the client. */
  readonly closed: Promise<void>;
}

/** CONNACK accepting a clean session (section 3.2): type 2, remaining length 2, flags 0, code 0. */
const CONNACK = new Uint8Array([0x20, 0x02, 0x00, 0x00]);

/**
 * Makes a transport whose peer accepts the first CONNECT and then stays silent.
 *
 * @example
 * ```ts ignore
 * const script = scriptedTransport();
 * const client = await connect("mqtt://scripted", { transport: script.factory, reconnect: false });
 * ```
 */
export function scriptedTransport(): ScriptedTransport {
  const written: Uint8Array[] = [];
  let failure: Error | undefined;
  let held: PromiseWithResolvers<void> | undefined;
  let connected = false;
  let hangUp = true;
  let toClient!: ReadableStreamDefaultController<Uint8Array>;
  const closed = Promise.withResolvers<void>();
  const transport: Transport = {
    readable: new ReadableStream<Uint8Array>({
      start(controller) {
        toClient = controller;
      },
    }),
    writable: new WritableStream<Uint8Array>({
      write(chunk) {
        if (!connected) {
          // The first write is the CONNECT (packet type 1); a batch never precedes it.
          if (chunk[0] !== 0x10) throw new Error(`expected CONNECT, got first byte ${chunk[0]}`);
          connected = true;
          toClient.enqueue(CONNACK);
          return;
        }
        if (held !== undefined) {
          return held.promise.then(() => {
            if (failure !== undefined) throw failure;
            written.push(chunk.slice());
          });
        }
        if (failure !== undefined) throw failure;
        written.push(chunk.slice());
      },
      // The client is done writing (after its DISCONNECT): the server closes its side, as a
      // broker does on DISCONNECT (MQTT-3.14.4-1).
      close() {
        if (!hangUp) return;
        try {
          toClient.close();
        } catch {
          // already closed or errored
        }
      },
    }),
    close() {
      try {
        toClient.close();
      } catch {
        // already closed or errored
      }
      closed.resolve();
    },
  };
  return {
    factory: () => Promise.resolve(transport),
    written,
    failWrites(error) {
      failure = error;
    },
    holdWrites() {
      held ??= Promise.withResolvers();
    },
    release() {
      held?.resolve();
      held = undefined;
    },
    neverHangUp() {
      hangUp = false;
    },
    deliver(bytes) {
      toClient.enqueue(bytes);
    },
    closed: closed.promise,
  };
}

/**
 * A client connected through a fresh {@linkcode scriptedTransport}: no reconnect, no keep-alive.
 *
 * @example
 * ```ts ignore
 * const { client, script } = await openScripted();
 * ```
 */
export async function openScripted(): Promise<{ client: MqttClient; script: ScriptedTransport }> {
  const script = scriptedTransport();
  const client = await connect("mqtt://scripted.invalid", {
    transport: script.factory,
    reconnect: false,
    keepAlive: 0,
  });
  return { client, script };
}

/**
 * Lets the client's write batching (one microtask) and the streams' hand-overs run.
 *
 * @example
 * ```ts ignore
 * await settle();
 * ```
 */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}
