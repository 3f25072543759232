/**
 * Replacing a file atomically and durably: the one snapshot writer of
 * `FileStore`'s compaction and of the broker's persistence (its retained
 * journal and its session files).
 *
 * The steps, in this order: write the new contents to `<path>.tmp`, flush it
 * to the disk, rename it over `<path>`, flush the directory. A crash (or power
 * loss, with `fsync`) between any two leaves either the old file or the new
 * one at `<path>`, never a mix: the rename is atomic, the data is on the disk
 * before the rename can be, and the rename is on the disk before the caller
 * goes on as if it were (a journal appended to after a rename lost to a power
 * cut would have its new records appended to a file that is gone). A stale
 * `<path>.tmp` left by a crash is truncated by the next snapshot.
 *
 * The file system is reached through {@linkcode SnapshotFileSystem}, named by
 * shape so that no runtime's type appears in the package's declarations (and
 * so that a test can record the order of the steps or stop between them).
 *
 * @module
 */

/**
 * What the journal writers need of an open file (a `Deno.FsFile`), named by
 * shape so that no runtime's type appears in the package's declarations.
 */
export interface JournalFile {
  /** Writes some of `data`; returns how many bytes. */
  writeSync(data: Uint8Array): number;
  /** Flushes the file's data to the disk. */
  syncDataSync(): void;
  /** Cuts the file to `length` bytes. */
  truncateSync(length: number): void;
  /** Moves the write position; `whence` 0 counts from the start. */
  seekSync(offset: number, whence: 0): number;
}

/** What {@linkcode writeSnapshot} needs of an open file (a `Deno.FsFile` has it). */
export interface SnapshotFile {
  /** Writes some of `data`; returns how many bytes. */
  writeSync(data: Uint8Array): number;
  /** Flushes the file's data and metadata to the disk. */
  syncSync(): void;
  /** Closes the file. */
  close(): void;
}

/** The file system operations of {@linkcode writeSnapshot}; `F` is the open file it gives. */
export interface SnapshotFileSystem<F extends SnapshotFile = SnapshotFile> {
  /** Opens `path` for writing, created or truncated. */
  create(path: string): F;
  /** Renames `from` to `to`, replacing `to` atomically. */
  rename(from: string, to: string): void;
  /** Removes `path`. */
  remove(path: string): void;
  /** Flushes the directory entry of `path` (a rename) to the disk, where the platform allows it. */
  syncDirectory(path: string): void;
}

/** Writes all of `data` with synchronous writes (a write may be partial). */
export function writeAll(file: Pick<SnapshotFile, "writeSync">, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += file.writeSync(data.subarray(off));
}

/** `path` split at its last separator into the directory ("." when none) and the name. */
export function splitPath(path: string): [dir: string, name: string] {
  const windows = Deno.build.os === "windows";
  let i = path.length - 1;
  while (i >= 0 && path[i] !== "/" && !(windows && path[i] === "\\")) i--;
  if (i < 0) return [".", path];
  // Keep the separator of a root ("/", "C:\\"): without it the root is another directory.
  const root = i === 0 || (windows && path[i - 1] === ":");
  return [path.slice(0, root ? i + 1 : i), path.slice(i + 1)];
}

/** Flushes the directory entry of `path` (a rename or a new file) to disk, where the platform allows it. */
export function syncDirectory(path: string): void {
  let handle: { syncSync(): void; close(): void } | undefined;
  try {
    handle = Deno.openSync(splitPath(path)[0], { read: true });
    handle.syncSync();
  } catch {
    // Not every platform can open or sync a directory; the rename is still atomic.
  } finally {
    handle?.close();
  }
}

/** An open file of the real file system: what the journals write to. */
export type OpenFile = SnapshotFile & JournalFile;

/** The real file system (`Deno.*`, reached only when called). */
export const DENO_FILE_SYSTEM: SnapshotFileSystem<OpenFile> = {
  create: (path) => Deno.openSync(path, { write: true, create: true, truncate: true }),
  rename: (from, to) => Deno.renameSync(from, to),
  remove: (path) => Deno.removeSync(path),
  syncDirectory,
};

/**
 * Replaces the file at `path` with `data` (see the module's steps); with
 * `fsync`, flushed to the disk before and after the rename. Returns the new
 * file, open for writing at its end (a journal goes on appending to it).
 * On failure the old file is untouched, the temporary file is removed as far
 * as possible, and the error is thrown.
 *
 * @example
 * ```ts
 * import { DENO_FILE_SYSTEM, writeSnapshot } from "./snapshot_file.ts";
 * const dir = await Deno.makeTempDir();
 * const data = new TextEncoder().encode("v2");
 * const file = writeSnapshot(`${dir}/state`, data, true, DENO_FILE_SYSTEM);
 * file.close();
 * console.log(await Deno.readTextFile(`${dir}/state`)); // v2
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function writeSnapshot<F extends SnapshotFile>(
  path: string,
  data: Uint8Array,
  fsync: boolean,
  fs: SnapshotFileSystem<F>,
): F {
  const tmp = `${path}.tmp`;
  // Failing here, nothing of ours is there to remove (it may be someone else's directory).
  const file = fs.create(tmp);
  try {
    writeAll(file, data);
    // Power-loss safety needs the data on disk before the rename is.
    if (fsync) file.syncSync();
    fs.rename(tmp, path);
  } catch (err) {
    file.close();
    // A partial snapshot must not fill the disk that made it fail.
    try {
      fs.remove(tmp);
    } catch {
      // Gone already, or the directory forbids it; the next snapshot truncates it.
    }
    throw err;
  }
  // And the rename on disk before anything is appended to the new file.
  if (fsync) fs.syncDirectory(path);
  return file;
}
