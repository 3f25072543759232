/**
 * Tests of the stores: MemoryStore and FileStore round trips against a
 * model, subscriptions, a journal in the first format, FileStore torn-record
 * recovery, compaction, and a real `kill -9` of a process writing the journal.
 * Damage, a full disk and symbolic links: store_corruption_test.ts.
 */
import assert from "node:assert/strict";
import { FileStore, MemoryStore, type Store, type StoredSession } from "../lib/store/mod.ts";
import { MqttError } from "../lib/errors.ts";
import type { QoS } from "../lib/codec/packet.ts";
import { crc32 } from "node:zlib";

const enc = new TextEncoder();

function rec(topic: string, qos: QoS = 1, payload = topic, retain = false) {
  return { topic, payload: enc.encode(payload), qos, retain };
}

/** A fixed script touching every store method; returns the state it must leave. */
function script(store: Store): StoredSession {
  store.pushWaiting(rec("w1", 1));
  store.pushWaiting(rec("w2", 2, "ünïcode ✓", true));
  store.pushWaiting(rec("w3", 0));
  store.putInflight(1, rec("w1", 1), true);
  store.putInflight(2, rec("w2", 2, "ünïcode ✓", true), true);
  store.shiftWaiting(); // w3 sent as QoS 0
  store.markReleased(2);
  store.putInflight(3, rec("direct", 2, ""), false);
  store.removeInflight(1);
  store.removeInflight(99); // unknown: no-op
  store.pushWaiting(rec("w4", 1, "x".repeat(1000)));
  store.addIncoming(7);
  store.addIncoming(8);
  store.removeIncoming(7);
  store.putSubscription("a/+", 1);
  store.putSubscription("b/#", 2);
  store.putSubscription("a/+", 0); // a new QoS, same place (MQTT-3.8.4-3)
  store.putSubscription("ünï/✓", 2);
  store.removeSubscription("b/#");
  store.removeSubscription("never/subscribed"); // unknown: no-op
  return {
    inflight: [
      { packetId: 2, ...rec("w2", 2, "ünïcode ✓", true), released: true },
      { packetId: 3, ...rec("direct", 2, ""), released: false },
    ],
    waiting: [rec("w4", 1, "x".repeat(1000))],
    incoming: [8],
    nextPacketId: 4,
    subscriptions: [{ filter: "a/+", qos: 0 }, { filter: "ünï/✓", qos: 2 }],
  };
}

const EMPTY: StoredSession = {
  inflight: [],
  waiting: [],
  incoming: [],
  nextPacketId: 1,
  subscriptions: [],
};

function normal(s: StoredSession): unknown {
  return {
    inflight: s.inflight.map((r) => ({ ...r, payload: [...r.payload] })),
    waiting: s.waiting.map((r) => ({ ...r, payload: [...r.payload] })),
    incoming: [...s.incoming].sort((a, b) => a - b),
    nextPacketId: s.nextPacketId,
    subscriptions: s.subscriptions,
  };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-store-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("MemoryStore round trip of every change", () => {
  const store = new MemoryStore();
  const expected = script(store);
  assert.deepEqual(normal(store.load()), normal(expected));
  store.clearIncoming();
  assert.deepEqual(store.load().incoming, []);
  store.clear();
  assert.deepEqual(normal(store.load()), normal(EMPTY));
});

Deno.test("FileStore round trip: a reopened journal loads what was written", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const a = await FileStore.open(path);
    assert.deepEqual(normal(a.load()), normal(EMPTY));
    const expected = script(a);
    assert.deepEqual(normal(a.load()), normal(expected));
    a.close();
    const b = await FileStore.open(path);
    assert.deepEqual(normal(b.load()), normal(expected));
    b.clearIncoming();
    b.clear();
    b.pushWaiting(rec("after-clear"));
    b.close();
    const c = await FileStore.open(path);
    assert.deepEqual(c.load().waiting.map((r) => r.topic), ["after-clear"]);
    assert.deepEqual(c.load().inflight, []);
    assert.deepEqual(c.load().subscriptions, []);
    c.close();
  });
});

Deno.test("FileStore matches MemoryStore over a long random sequence with compactions", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const file = await FileStore.open(path, { compactBytes: 2048 });
    const model = new MemoryStore();
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let nextId = 1;
    for (let i = 0; i < 5000; i++) {
      const both = (f: (s: Store) => void) => {
        f(file);
        f(model);
      };
      const op = rand(10);
      const live = [...model.load().inflight];
      if (op === 0) {
        const r = rec(`t/${i}`, rand(3) as QoS, `${i}`, rand(2) === 1);
        both((s) => s.pushWaiting(r));
      } else if (op === 1 && model.load().waiting.length > 0) {
        const head = model.load().waiting[0];
        const id = nextId;
        nextId = nextId === 65535 ? 1 : nextId + 1;
        both((s) => s.putInflight(id, { ...head, qos: head.qos === 0 ? 1 : head.qos }, true));
      } else if (op === 2) both((s) => s.shiftWaiting());
      else if (op === 3 && live.length > 0) {
        const id = live[rand(live.length)].packetId;
        both((s) => s.markReleased(id));
      } else if (op === 4 && live.length > 0) {
        const id = live[rand(live.length)].packetId;
        both((s) => s.removeInflight(id));
      } else if (op === 5) {
        const id = 1 + rand(20);
        both((s) => s.addIncoming(id));
      } else if (op === 6) {
        const id = 1 + rand(20);
        both((s) => s.removeIncoming(id));
      } else if (op === 7 && rand(50) === 0) both((s) => s.clearIncoming());
      else if (op === 8) {
        const filter = `f/${rand(15)}/#`;
        const qos = rand(3) as QoS;
        both((s) => s.putSubscription(filter, qos));
      } else if (op === 9) {
        const filter = `f/${rand(15)}/#`;
        both((s) => s.removeSubscription(filter));
      }
    }
    assert.ok(model.load().subscriptions.length > 0);
    assert.deepEqual(normal(file.load()), normal(model.load()));
    file.close();
    // Compaction kept the journal near the live state's size.
    const size = (await Deno.stat(path)).size;
    const reopened = await FileStore.open(path); // compacts
    const live = (await Deno.stat(path)).size;
    assert.ok(size <= Math.max(2048, 2 * live) + 1024, `journal ${size} bytes, live ${live}`);
    assert.deepEqual(normal(reopened.load()), normal(model.load()));
    reopened.close();
  });
});

Deno.test("FileStore: a torn last record (crash mid-write) is ignored at every cut point", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const a = await FileStore.open(path);
    a.pushWaiting(rec("first"));
    a.addIncoming(5);
    a.close();
    const before = await Deno.readFile(path);
    const b = await FileStore.open(path);
    b.pushWaiting(rec("second", 2, "payload of the torn record"));
    b.close();
    const full = await Deno.readFile(path);
    assert.ok(full.length > before.length);
    for (let cut = before.length; cut < full.length; cut++) {
      await Deno.writeFile(path, full.subarray(0, cut));
      const s = await FileStore.open(path);
      const loaded = s.load();
      assert.deepEqual(loaded.waiting.map((r) => r.topic), ["first"], `cut at ${cut}`);
      assert.deepEqual(loaded.incoming, [5]);
      // The store keeps working after recovery, and the torn tail is gone.
      s.addIncoming(6);
      s.close();
      const again = await FileStore.open(path);
      assert.deepEqual(again.load().incoming, [5, 6]);
      again.close();
    }
  });
});

Deno.test("FileStore: a file that is not a journal is refused with STORE_ERROR, untouched", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/notes.txt`;
    await Deno.writeTextFile(path, "my precious notes");
    await assert.rejects(
      () => FileStore.open(path),
      (e: unknown) => e instanceof MqttError && e.code === "STORE_ERROR",
    );
    assert.equal(await Deno.readTextFile(path), "my precious notes");
  });
});

Deno.test("FileStore: a leftover .tmp from a crash during compaction is ignored", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const a = await FileStore.open(path);
    a.addIncoming(9);
    a.close();
    await Deno.writeFile(`${path}.tmp`, new Uint8Array([1, 2, 3]));
    const b = await FileStore.open(path);
    assert.deepEqual(b.load().incoming, [9]);
    b.close();
  });
});

Deno.test("FileStore: compaction on open shrinks the journal to the live state", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const a = await FileStore.open(path);
    for (let i = 0; i < 200; i++) {
      a.pushWaiting(rec(`t${i}`, 1, "y".repeat(100)));
      a.shiftWaiting();
    }
    a.pushWaiting(rec("kept"));
    a.close();
    const grown = (await Deno.stat(path)).size;
    const b = await FileStore.open(path);
    const compacted = (await Deno.stat(path)).size;
    assert.ok(compacted < grown / 10, `${compacted} vs ${grown}`);
    assert.deepEqual(b.load().waiting.map((r) => r.topic), ["kept"]);
    b.close();
  });
});

// ---- kill -9 ----

const WRITER = `
import { FileStore } from ${
  JSON.stringify(new URL("../lib/store/file_store.ts", import.meta.url).href)
};
const store = await FileStore.open(Deno.args[0], { compactBytes: 16 * 1024 });
const enc = new TextEncoder();
const out = Deno.stdout;
let inflight = [];
let nextId = 1;
for (let seq = 0; ; seq++) {
  // Every message is queued, then moved into flight, then completed a while later.
  store.pushWaiting({ topic: "seq/" + seq, payload: enc.encode(String(seq).repeat(20)), qos: 1, retain: false });
  if (seq % 3 === 2) {
    for (let k = 0; k < 2; k++) {
      const id = nextId++;
      store.putInflight(id, { topic: "x", payload: new Uint8Array(0), qos: 1, retain: false }, true);
      inflight.push(id);
    }
  }
  if (inflight.length > 40) store.removeInflight(inflight.shift());
  store.addIncoming(1 + (seq % 1000));
  if (seq % 100 === 99) out.writeSync(enc.encode(seq + "\\n"));
}
`;

Deno.test("FileStore survives kill -9 of the writing process with a consistent prefix", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const script = `${dir}/writer.ts`;
    await Deno.writeTextFile(script, WRITER);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", script, path],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let reported = -1;
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    try {
      // Let it write well past several compactions, then kill it mid-stream.
      while (reported < 20_000) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
        const lines = text.split("\n");
        text = lines.pop()!;
        if (lines.length > 0) reported = Number(lines[lines.length - 1]);
      }
    } finally {
      child.kill("SIGKILL");
      await reader.cancel();
      const status = await child.status;
      await child.stderr.cancel();
      assert.equal(status.signal, "SIGKILL");
    }
    assert.ok(reported >= 20_000, "the writer never got going");
    const store = await FileStore.open(path);
    const s = store.load();
    store.close();
    // The journal is a prefix of the writer's changes: find how many messages
    // it holds, and check every invariant of that prefix.
    const waiting = s.waiting.map((r) => Number(r.topic.slice(4)));
    assert.ok(waiting.length >= 1);
    const last = waiting[waiting.length - 1];
    assert.ok(last >= reported, `journal ends at ${last}, writer had reported ${reported}`);
    // Waiting is contiguous up to the last message, payloads intact.
    waiting.forEach((seq, i) => {
      assert.equal(seq, waiting[0] + i);
      assert.equal(new TextDecoder().decode(s.waiting[i].payload), String(seq).repeat(20));
    });
    // Messages 0..first-1 moved into flight: as many PUTs as messages left the queue,
    // of which all but the last 40 (or 41) were removed.
    const moved = waiting[0];
    const ids = s.inflight.map((r) => r.packetId);
    assert.ok(
      ids.length >= Math.min(moved, 40) && ids.length <= Math.min(moved, 42),
      `${ids.length} in flight after ${moved} moved`,
    );
    ids.forEach((id, i) => assert.equal(id, moved - ids.length + 1 + i));
    assert.equal(s.nextPacketId, moved + 1);
    assert.equal(s.incoming.length, 1000);
  });
});

Deno.test("FileStore with fsync: same records, flushed to disk", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const a = await FileStore.open(path, { fsync: true, compactBytes: 0 });
    const expected = script(a);
    a.close();
    const b = await FileStore.open(path);
    assert.deepEqual(normal(b.load()), normal(expected));
    b.close();
  });
});

Deno.test("FileStore: writing after close throws STORE_ERROR; a missing directory fails open", async () => {
  await withDir(async (dir) => {
    const a = await FileStore.open(`${dir}/s.journal`);
    a.close();
    assert.throws(
      () => a.addIncoming(1),
      (e: unknown) => e instanceof MqttError && e.code === "STORE_ERROR",
    );
    await assert.rejects(
      () => FileStore.open(`${dir}/missing/s.journal`),
      (e: unknown) => e instanceof MqttError && e.code === "STORE_ERROR",
    );
  });
});

Deno.test("FileStore: a second store on the same file is refused while the first is open", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const a = await FileStore.open(path);
    await assert.rejects(
      () => FileStore.open(path),
      (e: unknown) => e instanceof MqttError && e.code === "STORE_ERROR",
    );
    a.close();
    const b = await FileStore.open(path);
    b.close();
  });
});

// ---- subscriptions ----

Deno.test("stores keep subscriptions in order; a new QoS keeps the place; clear drops them", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const file = await FileStore.open(path, { compactBytes: 0 }); // compacts at every change
    for (const store of [new MemoryStore(), file]) {
      store.putSubscription("z/#", 2);
      store.putSubscription("a", 1);
      store.putSubscription("m/+/x", 0);
      store.putSubscription("z/#", 0);
      store.removeSubscription("a");
      store.putSubscription("a", 2); // back again: now last
      assert.deepEqual(store.load().subscriptions, [
        { filter: "z/#", qos: 0 },
        { filter: "m/+/x", qos: 0 },
        { filter: "a", qos: 2 },
      ]);
    }
    file.close();
    const again = await FileStore.open(path);
    assert.deepEqual(again.load().subscriptions.map((s) => s.filter), ["z/#", "m/+/x", "a"]);
    again.clear();
    assert.deepEqual(again.load().subscriptions, []);
    again.close();
    const cleared = await FileStore.open(path);
    assert.deepEqual(cleared.load().subscriptions, []);
    cleared.close();
  });
});

Deno.test("FileStore: a subscription with QoS 3 is refused with INVALID_QOS and not recorded", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const store = await FileStore.open(path);
    assert.throws(
      () => store.putSubscription("a", 3 as QoS),
      (e: unknown) => e instanceof MqttError && e.code === "INVALID_QOS",
    );
    store.putSubscription("b", 1);
    store.close();
    const again = await FileStore.open(path); // would report damage had a bad record been written
    assert.deepEqual(again.load().subscriptions, [{ filter: "b", qos: 1 }]);
    again.close();
  });
});

// ---- the first journal format ----

/**
 * A journal as the first format (`MQTTSJ1\n`, before subscriptions were
 * stored) wrote it, byte for byte: the snapshot `open` wrote into a new file,
 * then one record per store call. Each record: u32 LE body length, body
 * (type byte, fields), u32 LE CRC-32 of the body.
 */
const FIRST_FORMAT: [string, string][] = [
  ["magic MQTTSJ1\\n", "4d 51 54 54 53 4a 31 0a"],
  ["next packet id 1 (type 10)", "03 00 00 00 0a 01 00 85 6d cd eb"],
  ["addIncoming(5) (type 6)", "03 00 00 00 06 05 00 e5 51 bb 86"],
  ["clear() (type 9)", "01 00 00 00 09 29 57 de ab"],
  // flags 0x12: QoS 1 in bits 4-5, retain (bit 1); topic length 3, "a/b", payload "hi"
  ["pushWaiting a/b qos 1 retain (type 4)", "09 00 00 00 04 12 03 00 61 2f 62 68 69 e1 af 89 3a"],
  ["pushWaiting c qos 0, empty payload", "05 00 00 00 04 00 01 00 63 08 0b db e6"],
  // flags 0x23: QoS 2, retain, dequeued (bit 0); packet id 1
  [
    "putInflight(1, a/b qos 2 retain, dequeued) (type 1)",
    "0b 00 00 00 01 23 01 00 03 00 61 2f 62 68 69 a9 1e ea a6",
  ],
  ["markReleased(1) (type 2)", "03 00 00 00 02 01 00 3d 3c de e5"],
  ["shiftWaiting() (type 5)", "01 00 00 00 05 02 1b 68 a2"],
  ["putInflight(2, d qos 1 'x')", "08 00 00 00 01 10 02 00 01 00 64 78 fa d2 6d 64"],
  ["removeInflight(2) (type 3)", "03 00 00 00 03 02 00 c9 05 31 cf"],
  ["addIncoming(7)", "03 00 00 00 06 07 00 67 33 8d b4"],
  ["addIncoming(8)", "03 00 00 00 06 08 00 a8 2f 15 33"],
  ["removeIncoming(7) (type 7)", "03 00 00 00 07 07 00 50 59 4f b5"],
  ["clearIncoming() (type 8)", "01 00 00 00 08 bf 67 d9 dc"],
  ["addIncoming(300)", "03 00 00 00 06 2c 01 98 fe fa b5"],
];

function firstFormatJournal(): Uint8Array {
  const parts = FIRST_FORMAT.map(([what, hex]) => {
    const bytes = new Uint8Array(hex.split(" ").map((h) => parseInt(h, 16)));
    if (what.startsWith("magic")) return bytes;
    // The fixture checks itself: length and CRC-32 (zlib's, not the store's) frame the body.
    const view = new DataView(bytes.buffer);
    const body = bytes.subarray(4, bytes.length - 4);
    assert.equal(view.getUint32(0, true), body.length, what);
    assert.equal(view.getUint32(bytes.length - 4, true), crc32(body), what);
    return bytes;
  });
  return new Uint8Array(parts.flatMap((p) => [...p]));
}

const FIRST_FORMAT_STATE: StoredSession = {
  inflight: [{ packetId: 1, ...rec("a/b", 2, "hi", true), released: true }],
  waiting: [],
  incoming: [300],
  nextPacketId: 3,
  subscriptions: [],
};

Deno.test("FileStore loads a journal of the first format, and rewrites it in the current one", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    await Deno.writeFile(path, firstFormatJournal());
    const store = await FileStore.open(path);
    assert.deepEqual(normal(store.load()), normal(FIRST_FORMAT_STATE));
    store.putSubscription("news/#", 1);
    store.close();
    const header = (await Deno.readFile(path)).subarray(0, 8);
    assert.equal(new TextDecoder().decode(header), "MQTTSJ2\n");
    const again = await FileStore.open(path);
    assert.deepEqual(
      normal(again.load()),
      normal({ ...FIRST_FORMAT_STATE, subscriptions: [{ filter: "news/#", qos: 1 }] }),
    );
    again.close();
  });
});

Deno.test("FileStore: a first-format journal that cannot be compacted gets the new magic in place", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const old = firstFormatJournal();
    await Deno.writeFile(path, old);
    await Deno.mkdir(`${path}.tmp`); // no snapshot can be written
    const store = await FileStore.open(path);
    store.putSubscription("news/#", 1);
    store.close();
    const now = await Deno.readFile(path);
    // Older versions must refuse it now, not stop at the subscription record.
    assert.equal(new TextDecoder().decode(now.subarray(0, 8)), "MQTTSJ2\n");
    assert.deepEqual(now.subarray(8, old.length), old.subarray(8));
    const again = await FileStore.open(path);
    assert.deepEqual(again.load().subscriptions, [{ filter: "news/#", qos: 1 }]);
    assert.deepEqual(normal({ ...again.load(), subscriptions: [] }), normal(FIRST_FORMAT_STATE));
    again.close();
  });
});
