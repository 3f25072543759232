/**
 * Finds and runs headless Chromium (Debian's `chromium` package) for the browser check.
 *
 * @module
 */

/** Where Chromium may live; env `CHROMIUM` (a path) is tried first. */
const CANDIDATES = [
  "/usr/lib/chromium/chromium", // Debian's binary; /usr/bin/chromium is a shell wrapper
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
  "/usr/bin/google-chrome-stable",
];

/**
 * The path of a Chromium executable, or `undefined` when none is installed.
 *
 * @example
 * ```ts
 * import { findChromium } from "./chromium.ts";
 * console.log(findChromium() ?? "apt-get install -y chromium");
 * ```
 */
export function findChromium(): string | undefined {
  const fromEnv = Deno.env.get("CHROMIUM");
  for (const path of fromEnv ? [fromEnv, ...CANDIDATES] : CANDIDATES) {
    try {
      const info = Deno.statSync(path);
      if (info.isFile && (info.mode === null || (info.mode & 0o111) !== 0)) return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A running headless Chromium, from {@linkcode launchChromium}. */
export interface Chromium extends AsyncDisposable {
  /** Process id of the browser process. */
  readonly pid: number;
  /** What Chromium wrote to stderr so far (for failure messages). */
  stderr(): string;
  /** SIGTERM (SIGKILL after 5 s), waits for the exit, removes the profile directory. */
  close(): Promise<void>;
}

/**
 * Starts headless Chromium on `url` with a fresh profile and everything that would reach out
 * to the network (updates, sync, QUIC, background requests) turned off; `extraArgs` go before
 * the URL (e.g. `--ignore-certificate-errors-spki-list=…` to trust one test certificate).
 *
 * @example
 * ```ts ignore
 * import { launchChromium } from "./chromium.ts";
 * await using browser = await launchChromium("/usr/lib/chromium/chromium", "http://127.0.0.1:8000/");
 * ```
 */
export async function launchChromium(
  executable: string,
  url: string,
  extraArgs: string[] = [],
): Promise<Chromium> {
  const profile = await Deno.makeTempDir({ prefix: "chromium-profile-" });
  const child = new Deno.Command(executable, {
    args: [
      "--headless",
      "--no-sandbox", // CI runs as root, where the sandbox cannot start
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-extensions",
      "--disable-dev-shm-usage", // containers often have a tiny /dev/shm
      `--user-data-dir=${profile}`,
      ...extraArgs,
      url,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const decoder = new TextDecoder();
  const drained = child.stderr.pipeTo(
    new WritableStream({
      write(chunk) {
        // Keep the tail only: Chromium can be chatty.
        stderr = (stderr + decoder.decode(chunk, { stream: true })).slice(-20_000);
      },
    }),
  ).catch(() => {});
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), 5_000);
      });
      const outcome = await Promise.race([child.status, timeout]);
      clearTimeout(timer);
      if (outcome === "timeout") {
        try {
          child.kill("SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
      await child.status;
      await drained;
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    })();
    return closing;
  };
  return {
    pid: child.pid,
    stderr: () => stderr,
    close,
    [Symbol.asyncDispose]: close,
  };
}
