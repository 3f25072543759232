/**
 * Stopping a broker process the harnesses started.
 *
 * @module
 */

/** How long a signalled broker gets to exit before it is killed. */
export const EXIT_GRACE_MS = 5000;

/**
 * Sends `signal` to `child` and waits until `exited` settles; a child still
 * running after `graceMs` gets SIGKILL (a hung broker must not hang the
 * suite).
 *
 * @example
 * ```ts ignore
 * await signalAndWait(child, child.status, "SIGTERM");
 * ```
 */
export async function signalAndWait(
  child: Deno.ChildProcess,
  exited: Promise<unknown>,
  signal: Deno.Signal,
  graceMs: number = EXIT_GRACE_MS,
): Promise<void> {
  child.kill(signal);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), graceMs);
  });
  const result = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (result === "late") child.kill("SIGKILL");
  await exited;
}
