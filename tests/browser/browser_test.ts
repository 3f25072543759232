/**
 * The browser check: the module (`mod.ts`) loaded in headless Chromium connects over `ws://` to a test
 * Mosquitto, publishes a message to itself and receives it. Run three times in one browser: as
 * separate ES modules (each `.ts` file served with its types stripped, as `tests/browser/serve.ts`
 * does; no bundler, works offline), as the single file `deno bundle --platform browser` makes
 * (skipped with a warning when `deno bundle` cannot run, e.g. without its esbuild download), and
 * as modules over `wss://` (Chromium trusts the test server certificate's key alone, through
 * `--ignore-certificate-errors-spki-list`). The first and the `wss://` runs also check a
 * reconnect after the broker threw the client off, and that `close()` does not fire the will.
 *
 * Needs Chromium (`apt-get install -y chromium`) and Mosquitto. Without Chromium the test is
 * ignored with a warning, unless env `CI` is set: then it fails.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ignoreWithoutMosquitto, mosquittoAvailable, startMosquitto } from "../broker/mosquitto.ts";
import { ignoreWithout, type Tool } from "../broker/needs.ts";
import { findChromium, launchChromium } from "./chromium.ts";
import { type PostedResult, startPageServer } from "./serve.ts";

const ROOT = new URL("../../", import.meta.url);
const TIMEOUT_MS = 45_000;

const CHROMIUM: Tool = {
  name: "Chromium",
  install: "apt-get install -y chromium",
  available: () => findChromium() !== undefined,
};

/** The page script bundled by `deno bundle`, or `undefined` (with a warning) if it cannot run. */
async function bundlePage(): Promise<string | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "browser-bundle-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--platform=browser",
        "--no-check",
        "--output",
        `${dir}/page.js`,
        "tests/browser/page.ts",
      ],
      cwd: ROOT.pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      console.warn(
        "deno bundle failed; only the unbundled modules are checked in the browser:\n" +
          new TextDecoder().decode(out.stderr),
      );
      return undefined;
    }
    return await Deno.readTextFile(`${dir}/page.js`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate, as Chromium's SPKI list wants it. */
async function spkiHash(certPem: string): Promise<string> {
  const pubkey = await new Deno.Command("openssl", {
    args: ["x509", "-pubkey", "-noout"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = pubkey.stdin.getWriter();
  await writer.write(new TextEncoder().encode(certPem));
  await writer.close();
  const pem = new TextDecoder().decode((await pubkey.output()).stdout);
  const der = Uint8Array.from(
    atob(pem.replace(/-----[^-]+-----/g, "").replace(/\s/g, "")),
    (c) => c.charCodeAt(0),
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  return btoa(String.fromCharCode(...digest));
}

async function within<T>(promise: Promise<T>, what: string, detail: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what}\n${detail()}`)),
      TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name:
    "browser: bundled and unbundled, over ws:// and wss://, publish, receive, reconnect, no will on close()",
  ignore: ignoreWithout(CHROMIUM) || ignoreWithoutMosquitto(),
  async fn() {
    const chromium = findChromium();
    assert.ok(chromium, "Chromium is not installed and CI is set (apt-get install -y chromium)");
    assert.ok(mosquittoAvailable(), "Mosquitto is not installed and CI is set");
    const started = performance.now();
    await using broker = await startMosquitto({ websockets: true, wsTls: true });
    const bundle = await bundlePage();
    const query = `?broker=${encodeURIComponent(broker.wsUrl!)}`;
    const wss = `/modules.html?broker=${encodeURIComponent(broker.wssUrl!)}&variant=wss&full=1`;
    const variants = bundle === undefined ? ["modules", "wss"] : ["modules", "bundle", "wss"];
    await using server = await startPageServer({
      root: ROOT,
      bundle,
      nextPages: bundle === undefined ? [wss] : [`/bundle.html${query}&variant=bundle`, wss],
    });
    await using browser = await launchChromium(
      chromium,
      `${server.origin}/modules.html${query}&variant=modules&full=1`,
      [`--ignore-certificate-errors-spki-list=${await spkiHash(broker.certs!.server.cert)}`],
    );
    const diagnostics = () =>
      `requested: ${server.requested.join(" ")}\n--- chromium stderr ---\n${browser.stderr()}`;

    const results: PostedResult[] = [];
    for (const variant of variants) {
      const result = await within(server.nextResult(), `the ${variant} page`, diagnostics);
      results.push(result);
      assert.equal(result.error, undefined, `${variant}: ${result.error}\n${diagnostics()}`);
      assert.equal(result.variant, variant);
      assert.equal(result.hasDeno, false, "a browser has no Deno namespace");
      assert.match(String(result.userAgent), /Chrom/);
      assert.deepEqual(result.received, {
        topic: `browser/${variant}`,
        text: `hello from ${variant}`,
        qos: 1,
      });
      if (variant !== "bundle") {
        assert.equal(result.afterReconnect, "after the reconnect", variant);
        // The marker came first: close() sent DISCONNECT, so the broker dropped the will.
        assert.equal(result.firstOnWillTopic, "marker", variant);
      }
    }
    // The browser fetched the WebSocket transport, never the TCP one (it is for mqtt: only).
    assert.ok(server.requested.includes("/lib/transports/websocket.ts"));
    assert.ok(server.requested.includes("/lib/client/client.ts"));
    assert.ok(!server.requested.includes("/lib/transports/tcp.ts"), "tcp.ts was loaded");

    const total = Math.round(performance.now() - started);
    const inPage = results.map((r) => `${r.variant} ${r.elapsedMs} ms`).join(", ");
    console.log(`browser check: ${total} ms in all; connect to message in the page: ${inPage}`);
  },
});
