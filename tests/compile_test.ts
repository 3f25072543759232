/**
 * `deno task compile`: a tool built as a single binary runs without Deno. `deno compile` needs
 * the `denort` runtime from dl.deno.land (cached after the first build), so the test is skipped,
 * saying so, on a machine that cannot reach it.
 */
import assert from "node:assert/strict";
import { compileTool } from "../tools/compile.ts";

async function canDownloadRuntime(): Promise<boolean> {
  if (Deno.env.get("DENORT_BIN")) return true;
  try {
    // A name that resolves is not enough where outgoing HTTPS is filtered: ask the host itself.
    const response = await fetch("https://dl.deno.land/release-latest.txt", {
      signal: AbortSignal.timeout(5000),
    });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

const online = await canDownloadRuntime();
if (!online) {
  console.warn("compile_test: dl.deno.land unreachable, deno compile cannot fetch denort");
}

Deno.test({
  name: "deno task compile: mqtt-sub builds as one binary that answers --version and a usage error",
  ignore: !online,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const binary = await compileTool("mqtt-sub", dir);
      const version = await new Deno.Command(binary, { args: ["--version"] }).output();
      assert.equal(version.code, 0);
      assert.match(new TextDecoder().decode(version.stdout), /^sub version \d+\.\d+\.\d+/);
      // A usage error is handled inside the binary too: exit 1 as mosquitto_sub does.
      const usage = await new Deno.Command(binary, { args: ["-q", "3", "-t", "a"] }).output();
      assert.equal(usage.code, 1);
      assert.match(new TextDecoder().decode(usage.stderr), /Invalid QoS given: 3/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
