/**
 * Helpers shared by the transport tests (`transport_test.ts` for the `Deno.*` transport,
 * `transport_node_tcp_test.ts` for the `node:net` one).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Transport } from "../lib/transports/transport.ts";
import { connectTcp } from "../lib/transports/tcp.ts";
import { hasCode } from "./client_helpers.ts";

/**
 * Writes `bytes` and reads until `length` bytes came back (or the readable ended); returns them.
 *
 * @example
 * ```ts ignore
 * assert.deepEqual(await roundTrip(transport, bytes), bytes); // through an echo server
 * ```
 */
export async function roundTrip(
  transport: Transport,
  bytes: Uint8Array,
  length: number = bytes.length,
): Promise<Uint8Array> {
  const writer = transport.writable.getWriter();
  await writer.write(bytes);
  writer.releaseLock();
  const reader = transport.readable.getReader();
  const chunks: Uint8Array[] = [];
  let received = 0;
  while (received < length) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
  }
  reader.releaseLock();
  const out = new Uint8Array(received);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/**
 * A TCP or TLS echo server on `listener`; `close()` stops it and its connections.
 *
 * @example
 * ```ts ignore
 * const server = echoServer(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
 * await server.close();
 * ```
 */
export function echoServer(
  listener: Deno.Listener,
): { port: number; close(): Promise<void> } {
  const conns = new Set<Deno.Conn>();
  const done = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      conn.readable.pipeTo(conn.writable).catch(() => {}).finally(() => conns.delete(conn));
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await done;
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed by the pipe */ }
      }
    },
  };
}

/**
 * Starts a TLS connection (with `connect`) to a server that accepts and never answers the
 * ClientHello, aborts it, and asserts that connecting fails with `ABORTED` and that the client's
 * socket is closed: the server reads the ClientHello, then the end of the stream (or a reset).
 *
 * @example
 * ```ts ignore
 * await assertAbortDuringHandshake((port, signal) =>
 *   connectTcp({ hostname: "localhost", port, tls: true, signal })
 * );
 * ```
 */
export async function assertAbortDuringHandshake(
  connect: (port: number, signal: AbortSignal) => Promise<Transport>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const controller = new AbortController();
  const connecting = connect((listener.addr as Deno.NetAddr).port, controller.signal);
  const serverSide = await accepted;
  controller.abort();
  await assert.rejects(connecting, hasCode("ABORTED"));
  const buf = new Uint8Array(4096);
  try {
    while ((await serverSide.read(buf)) !== null) { /* the ClientHello */ }
  } catch (e) {
    assert.ok(e instanceof Deno.errors.ConnectionReset, String(e));
  }
  serverSide.close();
  listener.close();
}

/**
 * A transport from `connectTcp` to a local listener, and the server's end of its connection.
 *
 * @example
 * ```ts ignore
 * const { listener, transport, peer } = await connectedPair();
 * ```
 */
export async function connectedPair(): Promise<
  { listener: Deno.Listener; transport: Transport; peer: Deno.Conn }
> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const transport = await connectTcp({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  return { listener, transport, peer: await accepted };
}
