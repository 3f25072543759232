/**
 * The one snapshot writer (lib/store/snapshot_file.ts) of FileStore's compaction and the
 * broker's persistence: its steps in order (temp file, flush, rename, directory flush), what a
 * failed step leaves, what a crash between two steps leaves (a journal that loads, old or new),
 * and that the broker's retained journal and session files go through it (their renames were
 * not followed by a directory flush before).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Broker } from "../broker.ts";
import { FileStore } from "../lib/store/file_store.ts";
import {
  DENO_FILE_SYSTEM,
  type SnapshotFile,
  type SnapshotFileSystem,
  writeSnapshot,
} from "../lib/store/snapshot_file.ts";
import { connect5 } from "./broker_helpers.ts";

/** A file system that records each step and does nothing else. */
function recorder(failAt?: string): { fs: SnapshotFileSystem; steps: string[] } {
  const steps: string[] = [];
  const step = (name: string) => {
    steps.push(name);
    if (name === failAt) throw new Error(`${name} failed`);
  };
  const file: SnapshotFile = {
    writeSync(data) {
      step(`write ${data.length}`);
      return data.length;
    },
    syncSync: () => step("sync"),
    close: () => step("close"),
  };
  const fs: SnapshotFileSystem = {
    create(path) {
      step(`create ${path}`);
      return file;
    },
    rename: (from, to) => step(`rename ${from} ${to}`),
    remove: (path) => step(`remove ${path}`),
    syncDirectory: (path) => step(`sync directory of ${path}`),
  };
  return { fs, steps };
}

Deno.test("writeSnapshot: temp file, flush, rename, directory flush, in that order", () => {
  const { fs, steps } = recorder();
  const data = new Uint8Array(10);
  const file = writeSnapshot("/d/state", data, true, fs);
  assert.deepEqual(steps, [
    "create /d/state.tmp",
    "write 10",
    "sync", // the data is on the disk before the rename can be
    "rename /d/state.tmp /d/state",
    "sync directory of /d/state", // and the rename before the caller appends to the new file
  ]);
  file.close();
  // Without fsync: the same steps but the flushes (a killed process loses nothing; power loss may).
  const without = recorder();
  writeSnapshot("/d/state", data, false, without.fs);
  assert.deepEqual(without.steps, [
    "create /d/state.tmp",
    "write 10",
    "rename /d/state.tmp /d/state",
  ]);
});

Deno.test("writeSnapshot: a failed write, flush or rename closes and removes the temp file and throws", () => {
  for (const failAt of ["write 10", "sync", "rename /d/state.tmp /d/state"]) {
    const { fs, steps } = recorder(failAt);
    assert.throws(() => writeSnapshot("/d/state", new Uint8Array(10), true, fs), /failed/);
    const at = steps.indexOf(failAt);
    assert.deepEqual(steps.slice(at + 1), ["close", "remove /d/state.tmp"], failAt);
    assert.ok(!steps.includes("sync directory of /d/state"));
  }
  // Failing to create the temp file leaves nothing to remove.
  const { fs, steps } = recorder("create /d/state.tmp");
  assert.throws(() => writeSnapshot("/d/state", new Uint8Array(1), true, fs), /failed/);
  assert.deepEqual(steps, ["create /d/state.tmp"]);
});

/** Thrown where the simulated crash stops the process. */
class Crash extends Error {}

/**
 * The real file system, but the process "dies" at step `crashAt` (counted from 0): that step
 * and every later one do nothing, not even the clean-up a thrown error would run.
 */
function crashing(crashAt: number): SnapshotFileSystem {
  let n = 0;
  let dead = false;
  const live = () => {
    if (dead) return false;
    if (n++ === crashAt) dead = true;
    if (dead) throw new Crash();
    return true;
  };
  return {
    create(path) {
      live();
      const file = DENO_FILE_SYSTEM.create(path);
      return {
        writeSync: (data) => live() ? file.writeSync(data) : data.length,
        syncSync: () => void (live() && file.syncSync()),
        // A dead process's files are closed by the kernel: close it whatever happens.
        close: () => file.close(),
      };
    },
    rename: (from, to) => void (live() && DENO_FILE_SYSTEM.rename(from, to)),
    remove: (path) => void (live() && DENO_FILE_SYSTEM.remove(path)),
    syncDirectory: (path) => void (live() && DENO_FILE_SYSTEM.syncDirectory(path)),
  };
}

Deno.test("writeSnapshot: a crash between any two steps leaves a journal that loads, old or new", async () => {
  const dir = await Deno.makeTempDir({ prefix: "snapshot-crash-" });
  try {
    // Two journals: the old state at `path`, a snapshot of the new state to write over it.
    const path = `${dir}/session.journal`;
    const old = await FileStore.open(path);
    old.addIncoming(1);
    old.close();
    const next = await FileStore.open(`${dir}/next.journal`);
    next.addIncoming(2);
    next.close();
    const oldBytes = await Deno.readFile(path);
    const newBytes = await Deno.readFile(`${dir}/next.journal`);
    const outcomes = new Set<string>();
    // Steps: create, write, sync, rename, sync directory; a crash at 5 is none at all.
    for (let crashAt = 0; crashAt <= 5; crashAt++) {
      await Deno.writeFile(path, oldBytes);
      try {
        writeSnapshot(path, newBytes, true, crashing(crashAt)).close();
      } catch (err) {
        if (!(err instanceof Crash)) throw err;
      }
      const store = await FileStore.open(path);
      const incoming = store.load().incoming;
      store.close();
      assert.ok(
        incoming.length === 1 && (incoming[0] === 1 || incoming[0] === 2),
        `crash at step ${crashAt}: ${incoming}`,
      );
      assert.equal(incoming[0], crashAt <= 3 ? 1 : 2, `crash at step ${crashAt}`);
      outcomes.add(String(incoming[0]));
    }
    assert.deepEqual([...outcomes].sort(), ["1", "2"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("persistence with fsync: each rename of the retained journal and of a session file is followed by a flush of its directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "snapshot-broker-" });
  const real = await Deno.realPath(dir);
  const events: string[] = [];
  const { renameSync, openSync } = Deno;
  // deno-lint-ignore no-explicit-any
  const spied = Deno as any;
  spied.renameSync = (from: string | URL, to: string | URL) => {
    renameSync(from, to);
    events.push(`rename ${String(to).slice(real.length)}`);
  };
  spied.openSync = (path: string | URL, options?: Deno.OpenOptions) => {
    const file = openSync(path, options);
    if (Deno.statSync(path).isDirectory) {
      const { syncSync } = file;
      file.syncSync = () => {
        syncSync.call(file);
        events.push(`sync directory ${String(path).slice(real.length)}`);
      };
    }
    return file;
  };
  try {
    await using broker = new Broker({ persistence: dir, persistenceFsync: true });
    const { port } = await broker.listen({ port: 0 });
    const { client } = await connect5(port, {
      clientId: "kept",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    client.close();
    broker.publish("r", "retained", { retain: true });
    const renames = events.filter((e) => e.startsWith("rename"));
    assert.ok(renames.includes("rename /retained.journal"), events.join("\n")); // compacted on open
    assert.ok(renames.some((e) => e.endsWith(".json")), events.join("\n"));
    assert.ok(renames.some((e) => e.endsWith(".journal") && e.includes("/sessions/")));
    for (const [i, event] of events.entries()) {
      if (!event.startsWith("rename")) continue;
      const parent = event.slice("rename ".length).replace(/\/[^/]*$/, "");
      assert.equal(events[i + 1], `sync directory ${parent}`, `after ${event}`);
    }
  } finally {
    spied.renameSync = renameSync;
    spied.openSync = openSync;
    await Deno.remove(dir, { recursive: true });
  }
});
