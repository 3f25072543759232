/**
 * Taking an advisory file lock that another process may hold for a moment only.
 *
 * @module
 */

/** How long a lock held elsewhere is waited for before the holder counts as another owner. */
export const LOCK_WAIT_MS = 2000;

/**
 * Takes an exclusive lock on `file`, waiting up to `ms` for it; false if it is
 * still held then. A lock released by its owner can stay held a moment longer:
 * a process spawned meanwhile (by any thread) has a copy of the descriptor from
 * `fork` until its `exec` closes it, and until then the lock is still held.
 *
 * @example
 * ```ts ignore
 * const file = await Deno.open("dir/broker.lock", { write: true, create: true });
 * if (!(await lockWithin(file))) throw new Error("in use");
 * ```
 */
export async function lockWithin(file: Deno.FsFile, ms: number = LOCK_WAIT_MS): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await file.tryLock(true))) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}
