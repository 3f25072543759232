/**
 * Connection density (issue 18): what an idle client connection holds. Ten
 * thousand of them in one process must not each carry a pair of web streams,
 * their queues and promises, or buffers sized for a flood. The heap is
 * measured in a child process (`tests/fixtures/idle_heap.ts`) where a GC can
 * be forced; a memory figure, not a speed one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startMosquitto } from "./broker/mod.ts";
import type { IdleHeapReport } from "./fixtures/idle_heap.ts";
import { connectedPair } from "./transport_helpers.ts";
import { DIRECT, type DirectTransport, openDuplex } from "../lib/transports/direct.ts";
import { emptyMap, emptySet, isEmptyStandIn } from "../lib/util/empty.ts";

Deno.test("client: an idle TCP connection to Mosquitto holds under 12 KiB of heap", async () => {
  await using broker = await startMosquitto();
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("./fixtures/idle_heap.ts", import.meta.url).pathname,
      broker.url,
      "300",
    ],
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  assert.equal(code, 0, text.decode(stderr));
  const report: IdleHeapReport = JSON.parse(text.decode(stdout).trim().split("\n").at(-1)!);
  assert.equal(report.connections, 300);
  // Measured here: about 18 KiB with a reader and a writer of web streams, a dozen empty tables and
  // a setTimeout per connection; about 10.5 KiB without them.
  assert.ok(
    report.bytesPerConnection < 12 * 1024,
    `an idle connection holds ${(report.bytesPerConnection / 1024).toFixed(1)} KiB of heap`,
  );
});

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

Deno.test("connectTcp: the fast path reads and writes in order, half-closes, and then its streams start locked", async () => {
  const { listener, transport, peer } = await connectedPair();
  const { reader, writer } = openDuplex(transport);
  assert.equal((transport as DirectTransport)[DIRECT]?.(), undefined, "taken once");
  assert.ok(transport.readable.locked);
  assert.ok(transport.writable.locked);

  // Writes issued at once leave in order, large ones across partial writes included.
  const big = new Uint8Array(1 << 20).map((_, i) => i & 0xff);
  const writes = [
    writer.write(new Uint8Array([1, 2])),
    writer.write(big),
    writer.write(new Uint8Array([3])),
  ];
  const received = new Uint8Array(big.length + 3);
  let at = 0;
  while (at < received.length) {
    const n = await peer.read(received.subarray(at));
    assert.notEqual(n, null);
    at += n!;
  }
  await Promise.all(writes);
  // Closing the writer half-closes: the peer reads the end, and may still answer (below).
  await writer.close();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const end = await Promise.race([
    peer.read(new Uint8Array(1)),
    new Promise((resolve) => timer = setTimeout(resolve, 2000, "no end within 2 s")),
  ]);
  clearTimeout(timer);
  assert.equal(end, null);
  assert.deepEqual(received.subarray(0, 2), new Uint8Array([1, 2]));
  assert.deepEqual(received.subarray(2, 2 + big.length), big);
  assert.equal(received[received.length - 1], 3);

  await writeAll(peer, new Uint8Array([0xd0, 0x00]));
  const chunk = await reader.read();
  assert.deepEqual(chunk, { done: false, value: new Uint8Array([0xd0, 0x00]) });
  // A pending read ends cleanly when the transport is closed here.
  const pending = reader.read();
  transport.close();
  assert.deepEqual(await pending, { done: true, value: undefined });
  await assert.rejects(writer.write(new Uint8Array([1])), { code: "TRANSPORT_ERROR" });
  peer.close();
  listener.close();
});

Deno.test("connectTcp: once its streams are in use the fast path is not offered", async () => {
  const { listener, transport, peer } = await connectedPair();
  const readable = transport.readable;
  assert.equal((transport as DirectTransport)[DIRECT]?.(), undefined);
  const duplex = openDuplex(transport);
  assert.ok(readable.locked && transport.writable.locked, "the stream path took both ends");
  assert.notEqual(duplex.reader, transport);
  await writeAll(peer, new Uint8Array([0xd0, 0x00]));
  assert.deepEqual(await duplex.reader.read(), {
    done: false,
    value: new Uint8Array([0xd0, 0x00]),
  });
  transport.close();
  assert.deepEqual(await duplex.reader.read(), { done: true, value: undefined });
  peer.close();
  listener.close();
});

Deno.test("connectTcp: the fast path fails writes after an abort with its reason, and reads after the peer's end are done", async () => {
  const { listener, transport, peer } = await connectedPair();
  const { reader, writer } = openDuplex(transport);
  const reason = new Error("gone");
  await writer.abort(reason);
  await assert.rejects(writer.write(new Uint8Array([1])), (e) => e === reason);
  peer.close();
  assert.deepEqual(await reader.read(), { done: true, value: undefined });
  assert.deepEqual(await reader.read(), { done: true, value: undefined });
  transport.close();
  listener.close();
});

Deno.test("emptyMap/emptySet: the shared stand-ins read as empty and refuse writes", () => {
  const map = emptyMap<string, number>();
  const set = emptySet<number>();
  assert.ok(isEmptyStandIn(map) && isEmptyStandIn(set));
  assert.equal(map.size + set.size, 0);
  assert.equal(map.get("a"), undefined);
  map.delete("a");
  set.clear();
  assert.throws(() => map.set("a", 1), TypeError);
  assert.throws(() => set.add(1), TypeError);
  assert.equal(emptyMap<string, number>().size, 0, "nothing leaked into the shared one");
  assert.ok(!isEmptyStandIn(new Map()));
});
