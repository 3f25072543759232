/**
 * Builds the command-line tools as single binaries with `deno compile`, for
 * users without Deno: `mqtt-pub`, `mqtt-sub` and `mqtt-broker` in `dist/`.
 * Each gets only the permissions it needs.
 *
 * Usage: `deno task compile [--target <triple>] [tool ...]` (default: all
 * three, for this machine). `deno compile` downloads the runtime it embeds
 * (`denort`) on first use.
 *
 * @module
 */

/** A tool: its entry point and the permissions baked into its binary. */
export interface CompiledTool {
  /** Entry module, relative to the repository root. */
  entry: string;
  /** `deno compile` permission flags. */
  permissions: string[];
}

/** The tools, by binary name. */
export const TOOLS: Record<string, CompiledTool> = {
  // Files for --cafile, --cert, --key, --pw-file, -f; MQTT_PASSWORD from the environment.
  "mqtt-pub": {
    entry: "lib/cli/pub.ts",
    permissions: ["--allow-net", "--allow-read", "--allow-env"],
  },
  "mqtt-sub": {
    entry: "lib/cli/sub.ts",
    permissions: ["--allow-net", "--allow-read", "--allow-env"],
  },
  // Files for TLS certificates and --persistence.
  "mqtt-broker": {
    entry: "examples/broker_main.ts",
    permissions: ["--allow-net", "--allow-read", "--allow-write"],
  },
};

const ROOT = new URL("../", import.meta.url);

/**
 * Compiles `name` into `outDir` and returns the binary's path; throws with
 * `deno compile`'s output when it fails.
 *
 * @example
 * ```ts ignore
 * import { compileTool } from "./compile.ts";
 * const path = await compileTool("mqtt-sub", "/tmp/bin");
 * ```
 */
export async function compileTool(name: string, outDir: string, target?: string): Promise<string> {
  const tool = TOOLS[name];
  if (!tool) throw new Error(`unknown tool "${name}"; one of ${Object.keys(TOOLS).join(", ")}`);
  const output = `${outDir}/${name}`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      ...tool.permissions,
      ...(target ? ["--target", target] : []),
      "--output",
      output,
      new URL(tool.entry, ROOT).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno compile ${name} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return output +
    (target?.includes("windows") || Deno.build.os === "windows" && !target ? ".exe" : "");
}

if (import.meta.main) {
  const args = [...Deno.args];
  const at = args.indexOf("--target");
  const target = at === -1 ? undefined : args.splice(at, 2)[1];
  const names = args.length > 0 ? args : Object.keys(TOOLS);
  const outDir = new URL("dist", ROOT).pathname;
  await Deno.mkdir(outDir, { recursive: true });
  for (const name of names) console.log(`built ${await compileTool(name, outDir, target)}`);
}
