/**
 * Builds the npm package into `npm/`: JavaScript and `.d.ts` compiled from
 * `mod.ts` and what it imports, a `package.json` with ESM `exports`, the
 * README and the LICENSE. No dependencies: `node:net`/`node:tls` are the
 * runtime's own.
 *
 * Only `.` is exported: the broker listens with `Deno.listen` and
 * `Deno.serve`, so it runs in Deno only.
 *
 * The TypeScript compiler comes from npm through `npx` (`deno check` has
 * already type-checked the same source, so `--noCheck` only emits), and
 * `--rewriteRelativeImportExtensions` turns the `.ts` specifiers of the
 * JavaScript into `.js`; those of the `.d.ts` files are rewritten here.
 *
 * Usage: `deno task build:npm` (needs `npx` on PATH).
 *
 * @module
 */

/** The compiler, pinned so that a build is repeatable. */
const TYPESCRIPT = "typescript@5.9.3";
const ROOT = new URL("../", import.meta.url);
const OUT = new URL("npm/", ROOT);

interface DenoConfig {
  name: string;
  version: string;
  license: string;
}

/**
 * Writes the package into `out` (default `npm/`, replacing what was there)
 * and returns the path of the folder.
 *
 * @example
 * ```ts ignore
 * import { buildNpm } from "./build_npm.ts";
 * const dir = await buildNpm(new URL("file:///tmp/mqtt-npm/"));
 * ```
 */
export async function buildNpm(out: URL = OUT): Promise<string> {
  const config: DenoConfig = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  await Deno.remove(out, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });

  const tsc = await new Deno.Command("npx", {
    args: [
      "--yes",
      `--package=${TYPESCRIPT}`,
      "tsc",
      "mod.ts",
      "--outDir",
      out.pathname,
      "--rootDir",
      ".",
      "--target",
      "es2022",
      "--module",
      "es2022",
      "--moduleResolution",
      "bundler",
      "--allowImportingTsExtensions",
      "--rewriteRelativeImportExtensions",
      "--declaration",
      "--noCheck",
      "--skipLibCheck",
    ],
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!tsc.success) throw new Error(`tsc failed with exit code ${tsc.code}`);
  await rewriteDeclarationSpecifiers(out);

  const packageJson = {
    name: config.name,
    version: config.version,
    description: "MQTT 3.1.1 client over TCP, TLS and WebSocket, with zero dependencies",
    license: config.license,
    type: "module",
    exports: { ".": { types: "./mod.d.ts", default: "./mod.js" } },
    engines: { node: ">=22" },
    sideEffects: false,
  };
  await Deno.writeTextFile(
    new URL("package.json", out),
    JSON.stringify(packageJson, null, 2) + "\n",
  );
  for (const file of ["README.md", "LICENSE"]) {
    await Deno.copyFile(new URL(file, ROOT), new URL(file, out));
  }
  return out.pathname;
}

/** A relative specifier ending in `.ts`, quoted. */
const RELATIVE_TS = /(["'])(\.\.?\/[^"']*)\.ts\1/g;

/** Rewrites `"./x.ts"` to `"./x.js"` in every `.d.ts` file under `dir`. */
async function rewriteDeclarationSpecifiers(dir: URL): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) await rewriteDeclarationSpecifiers(url);
    else if (entry.name.endsWith(".d.ts")) {
      const text = await Deno.readTextFile(url);
      await Deno.writeTextFile(url, text.replace(RELATIVE_TS, "$1$2.js$1"));
    }
  }
}

if (import.meta.main) {
  console.log(`npm package written to ${await buildNpm()}`);
}
