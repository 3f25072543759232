import assert from "node:assert/strict";
import { connectedPair } from "./transport_helpers.ts";
import {
  type ByteConn,
  ConnTransport,
  READ_BUFFER_MAX,
  READ_BUFFER_MIN,
} from "../lib/transports/conn_io.ts";

Deno.test("connectTcp: chunks are right-sized copies and reads grow while the socket has more", async () => {
  const data = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
  const { listener, transport, peer } = await connectedPair();
  const sent = peer.write(data).then(async (n) => {
    let at = n;
    while (at < data.length) at += await peer.write(data.subarray(at));
    peer.close();
  });
  // Let the bytes pile up in the socket, so reads fill whatever buffer they are given.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const chunks: Uint8Array[] = [];
  for await (const chunk of transport.readable) chunks.push(chunk);
  await sent;
  transport.close();
  listener.close();

  const received = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    received.set(chunk, at);
    at += chunk.length;
  }
  // Checked after the last read: a reused read buffer would have changed earlier chunks.
  assert.deepEqual(received, data);
  for (const chunk of chunks) {
    // A chunk holds no more memory than its bytes, so a kept payload view pins little.
    assert.equal(chunk.buffer.byteLength, chunk.length);
  }
  assert.equal(new Set(chunks.map((c) => c.buffer)).size, chunks.length);
  const largest = Math.max(...chunks.map((c) => c.length));
  assert.ok(largest > 8 * 1024, `reads grew past the first buffer (largest ${largest})`);
  assert.ok(largest <= 64 * 1024, `reads stay within 64 KiB (largest ${largest})`);
});

Deno.test("connectTcp: an idle connection's first read takes at most 256 bytes (no buffer sized for a flood)", async () => {
  const { listener, transport, peer } = await connectedPair();
  // A burst waits in the socket before the first read: the first chunk shows the first buffer's size.
  let at = 0;
  const burst = new Uint8Array(4096).fill(1);
  while (at < burst.length) at += await peer.write(burst.subarray(at));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const reader = transport.readable.getReader();
  const first = await reader.read();
  await reader.cancel();
  transport.close();
  peer.close();
  listener.close();
  assert.equal(READ_BUFFER_MIN, 256);
  assert.equal(first.value?.length, READ_BUFFER_MIN);
});

Deno.test("ConnTransport: the read buffer gives a burst's size back, a halving per read that used little of it", async () => {
  // Each read fills its buffer while the burst lasts, then takes 10 bytes.
  const sizes: number[] = [];
  let reads = 0;
  const conn: ByteConn = {
    read(buffer) {
      sizes.push(buffer.length);
      reads++;
      if (reads > 20) return Promise.resolve(null);
      return Promise.resolve(reads <= 8 ? buffer.length : 10);
    },
    write: (bytes) => Promise.resolve(bytes.length),
    close() {},
    closeWrite: () => Promise.resolve(),
  };
  const transport = new ConnTransport(conn, "fake:1883");
  while (!(await transport.read()).done);
  transport.close();
  const min = READ_BUFFER_MIN;
  // Grown to 64 KiB by eight full reads, then back down to the minimum.
  assert.deepEqual(sizes.slice(0, 9), [1, 2, 4, 8, 16, 32, 64, 128, 256].map((k) => k * min));
  assert.equal(Math.max(...sizes), READ_BUFFER_MAX);
  assert.deepEqual(sizes.slice(9, 17), [128, 64, 32, 16, 8, 4, 2, 1].map((k) => k * min));
  assert.equal(sizes.at(-1), min);
});
