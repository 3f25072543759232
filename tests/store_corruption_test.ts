/**
 * FileStore against damage and hostile file systems: a damaged record in the
 * middle of the journal costs that record only and is reported; a full disk
 * during compaction leaves no temporary file and does not stop `open`; a
 * symbolic link to the journal shares its lock and stays a link.
 */
import assert from "node:assert/strict";
import {
  FileStore,
  MemoryStore,
  type Store,
  StoreCorruptionError,
  type StoredSession,
} from "../lib/store/mod.ts";
import { MqttError } from "../lib/errors.ts";

const enc = new TextEncoder();

function msg(topic: string) {
  return { topic, payload: enc.encode(`payload of ${topic}`), qos: 1 as const, retain: false };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  // Resolved, so the paths the tests build are the ones the store resolves to.
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "mqtt-store-corrupt-" }));
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function isCorrupt(e: unknown): e is StoreCorruptionError {
  return e instanceof StoreCorruptionError && e.code === "STORE_CORRUPT";
}

function isStoreError(e: unknown): boolean {
  return e instanceof MqttError && e.code === "STORE_ERROR";
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Opens accepting damage; returns the store and the reports handed to onCorruption. */
async function openRepairing(path: string, options: { compactBytes?: number } = {}) {
  const reports: StoreCorruptionError[] = [];
  const store = await FileStore.open(path, { ...options, onCorruption: (e) => reports.push(e) });
  return { store, reports };
}

/** Writes `count` publishes m0.. as separate records; returns the offset each record starts at. */
async function journalOfPublishes(path: string, count: number): Promise<number[]> {
  const store = await FileStore.open(path);
  const starts: number[] = [];
  for (let i = 0; i < count; i++) {
    starts.push((await Deno.stat(path)).size);
    store.pushWaiting(msg(`m${i}`));
  }
  store.close();
  return starts;
}

/** The same journal with the byte at `offset` damaged; returns the damaged bytes. */
async function damage(path: string, offset: number, mask = 0x10): Promise<Uint8Array> {
  const bytes = await Deno.readFile(path);
  bytes[offset] ^= mask;
  await Deno.writeFile(path, bytes);
  return bytes;
}

const topics = (store: Store) => store.load().waiting.map((r) => r.topic);

/** Opens the journal (refusing damage), checks the topics waiting in it, closes it. */
async function assertWaiting(path: string, expected: string[]): Promise<void> {
  const store = await FileStore.open(path);
  try {
    assert.deepEqual(topics(store), expected);
  } finally {
    store.close();
  }
}

Deno.test("FileStore: one flipped byte mid-journal costs its record only, and is reported", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const starts = await journalOfPublishes(path, 10);
    const damaged = await damage(path, starts[2] + 12); // in the payload of m2

    // Without onCorruption: refused with a report, nothing changed on disk.
    const err = await FileStore.open(path).then(() => undefined, (e: unknown) => e);
    assert.ok(isCorrupt(err), String(err));
    assert.equal(err.path, path);
    assert.deepEqual(err.damaged, [{
      offset: starts[2],
      length: starts[3] - starts[2],
      record: 'pushWaiting("m2")',
    }]);
    assert.equal(err.lostBytes, starts[3] - starts[2]);
    assert.equal(err.keptAt, undefined);
    assert.match(err.message, /pushWaiting\("m2"\)/);
    assert.deepEqual(await Deno.readFile(path), damaged);
    assert.equal(await exists(`${path}.corrupt-1`), false);

    // With onCorruption: the nine others load, the damaged journal is kept aside.
    const { store, reports } = await openRepairing(path);
    assert.deepEqual(topics(store), ["m0", "m1", "m3", "m4", "m5", "m6", "m7", "m8", "m9"]);
    assert.equal(reports.length, 1);
    assert.equal(reports[0].keptAt, `${path}.corrupt-1`);
    assert.deepEqual(reports[0].damaged, err.damaged);
    assert.deepEqual(await Deno.readFile(`${path}.corrupt-1`), damaged);
    store.pushWaiting(msg("after"));
    store.close();
    // The journal was compacted from what could be read: clean now.
    await assertWaiting(path, ["m0", "m1", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "after"]);
  });
});

Deno.test("FileStore: every single damaged byte loses exactly the record holding it", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    // Records whose effects do not depend on each other, so losing one leaves the rest exact.
    const ops: ((s: Store) => void)[] = [];
    for (let i = 0; i < 4; i++) {
      ops.push((s) => s.pushWaiting(msg(`t/${i}`)));
      ops.push((s) => s.addIncoming(100 + i));
      ops.push((s) => s.putSubscription(`f/${i}/#`, (i % 3) as 0 | 1 | 2));
    }
    const store = await FileStore.open(path);
    const bounds = [(await Deno.stat(path)).size];
    for (const op of ops) {
      op(store);
      bounds.push((await Deno.stat(path)).size);
    }
    store.close();
    const clean = await Deno.readFile(path);
    const expectedWithout = (lost: number): StoredSession => {
      const model = new MemoryStore();
      ops.forEach((op, i) => i !== lost && op(model));
      return model.load();
    };
    let reported = 0;
    for (let k = 0; k < ops.length; k++) {
      const expected = expectedWithout(k);
      for (let at = bounds[k]; at < bounds[k + 1]; at++) {
        const damaged = clean.slice();
        damaged[at] ^= 0xa5;
        await Deno.writeFile(path, damaged);
        const { store, reports } = await openRepairing(path);
        const loaded = store.load();
        store.close();
        const where = `record ${k}, byte ${at - bounds[k]}`;
        assert.deepEqual(loaded.waiting.map((r) => r.topic), expected.waiting.map((r) => r.topic));
        assert.deepEqual(loaded.incoming, expected.incoming, where);
        assert.deepEqual(loaded.subscriptions, expected.subscriptions, where);
        if (k < ops.length - 1) {
          // Mid-journal damage is always reported, and counts exactly that record.
          assert.equal(reports.length, 1, where);
          assert.deepEqual(
            reports[0].damaged.map((d) => [d.offset, d.length]),
            [[bounds[k], bounds[k + 1] - bounds[k]]],
            where,
          );
        }
        reported += reports.length;
        for (const r of reports) await Deno.remove(r.keptAt!);
      }
    }
    // The last record may look torn (its length field damaged to run past the end); most is reported.
    assert.ok(reported > (bounds[ops.length] - bounds[0]) * 0.9, `${reported} reports`);
  });
});

Deno.test("FileStore: a damaged length field is passed by scanning for the next record", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const starts = await journalOfPublishes(path, 6);
    const damaged = await Deno.readFile(path);
    damaged[starts[1]] = 3; // m1's length now ends the record inside its topic
    damaged[starts[4] + 1] ^= 0x40; // and m4's is far past the end of the file
    await Deno.writeFile(path, damaged);
    const { store, reports } = await openRepairing(path);
    assert.deepEqual(topics(store), ["m0", "m2", "m3", "m5"]);
    store.close();
    assert.equal(reports.length, 1);
    assert.deepEqual(reports[0].damaged.map((d) => [d.offset, d.length, d.record]), [
      [starts[1], starts[2] - starts[1], undefined],
      [starts[4], starts[5] - starts[4], undefined],
    ]);
  });
});

Deno.test("FileStore: a damaged last record that is whole is reported; a torn or zeroed tail is not", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const starts = await journalOfPublishes(path, 3);
    const clean = await Deno.readFile(path);

    const damaged = clean.slice();
    damaged[damaged.length - 1] ^= 0xff; // the CRC of m2
    await Deno.writeFile(path, damaged);
    const err = await FileStore.open(path).then(() => undefined, (e: unknown) => e);
    assert.ok(isCorrupt(err));
    assert.deepEqual(err.damaged.map((d) => [d.offset, d.record]), [
      [starts[2], 'pushWaiting("m2")'],
    ]);

    // A power loss may leave the file longer, its end never written: zeros.
    await Deno.writeFile(path, new Uint8Array([...clean, ...new Uint8Array(4096)]));
    await assertWaiting(path, ["m0", "m1", "m2"]);

    await Deno.writeFile(path, clean.subarray(0, clean.length - 3));
    await assertWaiting(path, ["m0", "m1"]);
  });
});

Deno.test("FileStore: onCorruption throwing makes open reject and leaves the journal uncompacted", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const starts = await journalOfPublishes(path, 4);
    const damaged = await damage(path, starts[1] + 6);
    await assert.rejects(
      () => FileStore.open(path, { onCorruption: "log" as never }),
      (e: unknown) => e instanceof MqttError && e.code === "INVALID_OPTION",
    );
    const refusal = new Error("not today");
    await assert.rejects(
      () =>
        FileStore.open(path, {
          onCorruption: () => {
            throw refusal;
          },
        }),
      (e: unknown) => e === refusal,
    );
    assert.deepEqual(await Deno.readFile(path), damaged);
    // The lock was released, and the damage is still found.
    const { store, reports } = await openRepairing(path);
    store.close();
    assert.equal(reports.length, 1);
    assert.equal(reports[0].keptAt, `${path}.corrupt-2`);
  });
});

Deno.test("FileStore: when no copy of a damaged journal can be kept, it is never compacted", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const starts = await journalOfPublishes(path, 4);
    const damaged = await damage(path, starts[1] + 6);
    // Every name a copy could take is taken.
    for (let n = 1; n <= 1000; n++) await Deno.writeFile(`${path}.corrupt-${n}`, new Uint8Array());
    const { store, reports } = await openRepairing(path, { compactBytes: 0 });
    assert.equal(reports.length, 1);
    assert.equal(reports[0].keptAt, undefined);
    assert.ok(isStoreError(reports[0].cause));
    assert.match(reports[0].message, /not compacted/);
    // compactBytes 0 would compact at every change; the damaged bytes must survive all of them.
    for (let i = 0; i < 20; i++) store.pushWaiting(msg(`new${i}`));
    store.close();
    const now = await Deno.readFile(path);
    assert.deepEqual(now.subarray(0, damaged.length), damaged);
    const again = await openRepairing(path);
    assert.equal(again.reports.length, 1);
    assert.deepEqual(again.reports[0].damaged, reports[0].damaged);
    assert.equal(topics(again.store).length, 3 + 20);
    again.store.close();
  });
});

// ---- a full disk during compaction ----

/** `/dev/full` fails every write with ENOSPC: a temporary file linked to it is a full disk. */
const FULL = "/dev/full";
const noDevFull = Deno.build.os !== "linux";

Deno.test({
  name: "FileStore: open on a full disk succeeds without compacting and leaves no .tmp",
  ignore: noDevFull,
  fn: async () => {
    await withDir(async (dir) => {
      const path = `${dir}/s.journal`;
      await journalOfPublishes(path, 5);
      const before = await Deno.readFile(path);
      await Deno.symlink(FULL, `${path}.tmp`);
      const store = await FileStore.open(path);
      assert.equal(await exists(`${path}.tmp`), false, "the failed snapshot was not removed");
      assert.deepEqual(await Deno.readFile(path), before);
      assert.deepEqual(topics(store), ["m0", "m1", "m2", "m3", "m4"]);
      store.pushWaiting(msg("m5"));
      store.close();
      await assertWaiting(path, ["m0", "m1", "m2", "m3", "m4", "m5"]);
    });
  },
});

Deno.test({
  name: "FileStore: a compaction failing on a full disk mid-use removes its .tmp",
  ignore: noDevFull,
  fn: async () => {
    await withDir(async (dir) => {
      const path = `${dir}/s.journal`;
      const store = await FileStore.open(path, { compactBytes: 0 });
      await Deno.symlink(FULL, `${path}.tmp`);
      store.pushWaiting(msg("a")); // compactBytes 0: compacts after this change, and fails
      assert.equal(await exists(`${path}.tmp`), false);
      store.pushWaiting(msg("b"));
      store.close();
      await assertWaiting(path, ["a", "b"]);
    });
  },
});

Deno.test("FileStore: open with the snapshot path blocked appends to the journal as it is", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const starts = await journalOfPublishes(path, 3);
    const full = await Deno.readFile(path);
    // A torn tail: the new record must not end up behind it, where it would be lost too.
    await Deno.writeFile(path, full.subarray(0, starts[2] + 5));
    await Deno.mkdir(`${path}.tmp`); // a directory cannot be opened for writing
    const store = await FileStore.open(path);
    assert.deepEqual(topics(store), ["m0", "m1"]);
    store.pushWaiting(msg("after"));
    store.close();
    assert.ok((await Deno.stat(`${path}.tmp`)).isDirectory, "someone else's directory was touched");
    // No report: the torn tail was cut, not left for "after" to follow.
    await assertWaiting(path, ["m0", "m1", "after"]);

    // A journal that does not exist yet is created all the same.
    const fresh = `${dir}/fresh.journal`;
    await Deno.mkdir(`${fresh}.tmp`);
    const created = await FileStore.open(fresh);
    created.addIncoming(4);
    created.close();
    await Deno.remove(`${fresh}.tmp`);
    const reopened = await FileStore.open(fresh);
    assert.deepEqual(reopened.load().incoming, [4]);
    reopened.close();
  });
});

// ---- symbolic links ----

Deno.test("FileStore: a symlink to the journal shares its lock, in either order", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.journal`;
    const link = `${dir}/link.journal`;
    const first = await FileStore.open(path);
    await Deno.symlink(path, link);
    await assert.rejects(
      () => FileStore.open(link),
      (e: unknown) => isStoreError(e) && /in use/.test((e as Error).message),
    );
    first.close();
    const viaLink = await FileStore.open(link);
    await assert.rejects(() => FileStore.open(path), isStoreError);
    viaLink.close();

    // A link to the directory leads to the same lock too.
    const dirLink = `${dir}-link`;
    await Deno.symlink(dir, dirLink);
    try {
      const a = await FileStore.open(`${dirLink}/s.journal`);
      await assert.rejects(() => FileStore.open(path), isStoreError);
      a.close();
    } finally {
      await Deno.remove(dirLink);
    }
  });
});

Deno.test("FileStore: compacting through a symlink keeps the link pointing at the journal", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/data`);
    const path = `${dir}/data/s.journal`;
    const link = `${dir}/link.journal`;
    await Deno.symlink("data/s.journal", link); // relative, and dangling until the journal exists
    const a = await FileStore.open(link, { compactBytes: 0 }); // compacts at every change
    a.pushWaiting(msg("one"));
    a.pushWaiting(msg("two"));
    a.close();
    assert.ok((await Deno.lstat(link)).isSymlink, "the link was replaced");
    assert.equal(await Deno.readLink(link), "data/s.journal");
    await assertWaiting(path, ["one", "two"]);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(),
      ["data", "link.journal"],
    );
  });
});
