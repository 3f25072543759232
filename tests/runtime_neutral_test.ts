/**
 * The core is runtime-neutral: codec, streams, session, client, the in-memory store and the
 * WebSocket transport use web-standard APIs only, so the module runs in browsers and edge
 * runtimes. Only `lib/transports/tcp.ts` touches `Deno.*` on the way to a connection, and the
 * client loads it by dynamic import for `mqtt:`/`mqtts:` URLs only. The opt-in durable
 * `FileStore` uses `Deno.*` too, but only when called: `mod.ts` still loads without `Deno`.
 *
 * Checked three ways: the source text of every core module, the module graph as `deno info`
 * sees it, and a child Deno process that deletes `globalThis.Deno` before loading `mod.ts`
 * and maps `tcp.ts` to a module that throws when evaluated.
 *
 * @module
 */
import assert from "node:assert/strict";
import { brokerTest, startMosquitto } from "./broker/mosquitto.ts";

const ROOT = new URL("../", import.meta.url);
const TCP = new URL("lib/transports/tcp.ts", ROOT).href;
/** Modules allowed to use `Deno.*` (inside functions): the TCP transport and the file store (with its snapshot writer). */
const DENO_MODULES = [
  TCP,
  new URL("lib/store/file_store.ts", ROOT).href,
  new URL("lib/store/snapshot_file.ts", ROOT).href,
];
/** Directories and files that must not reference `Deno`. */
const CORE = [
  "lib/codec/",
  "lib/streams/",
  "lib/session/",
  "lib/client/",
  "lib/errors.ts",
  "lib/store/store.ts",
  "lib/store/memory_store.ts",
  "lib/transports/transport.ts",
  "lib/transports/websocket.ts",
];

/** Every `.ts` file under `path` (a file or a directory ending in `/`), as file URLs. */
function tsFiles(path: string): URL[] {
  const url = new URL(path, ROOT);
  if (!path.endsWith("/")) return [url];
  const found: URL[] = [];
  for (const entry of Deno.readDirSync(url)) {
    if (entry.isDirectory) found.push(...tsFiles(`${path}${entry.name}/`));
    else if (entry.name.endsWith(".ts")) found.push(new URL(entry.name, url));
  }
  return found.sort((a, b) => a.href.localeCompare(b.href));
}

/**
 * Source code with comments blanked out (newlines kept, so line numbers still match). String
 * and template literals are skipped over, so `"//"` inside one is not taken for a comment.
 * Regular expression literals are not recognised; the core has none with quotes or `//`.
 */
function withoutComments(source: string): string {
  let out = "";
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      while (i < source.length && source[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end === -1 ? source.length : end + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, " ");
      i = stop;
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < source.length && source[j] !== c) j += source[j] === "\\" ? 2 : 1;
      out += source.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** `Deno.x`, `Deno?.x`, `Deno[...]` or `globalThis["Deno"]`, outside comments. */
const DENO_USE = /\bDeno\s*(\?\.|\.|\[)|\[\s*["'`]Deno["'`]\s*\]/;

/** The lines of `file` that use the `Deno` namespace, as `path:line: text`. */
function denoUses(file: URL): string[] {
  const lines = withoutComments(Deno.readTextFileSync(file)).split("\n");
  const path = file.href.slice(ROOT.href.length);
  return lines.flatMap((line, n) =>
    DENO_USE.test(line) ? [`${path}:${n + 1}: ${line.trim()}`] : []
  );
}

interface GraphDependency {
  specifier: string;
  code?: { specifier: string };
  type?: { specifier: string };
  isDynamic?: boolean;
}

interface GraphModule {
  specifier: string;
  dependencies?: GraphDependency[];
}

async function moduleGraph(entry: string): Promise<Map<string, GraphModule>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: new URL(".", ROOT).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, `deno info ${entry} failed: ${new TextDecoder().decode(out.stderr)}`);
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: GraphModule[] };
  return new Map(graph.modules.map((m) => [m.specifier, m]));
}

/** Modules reachable from `root` through static imports (value or type) only. */
function staticClosure(graph: Map<string, GraphModule>, root: string): Set<string> {
  const seen = new Set<string>();
  const stack = [root];
  while (stack.length > 0) {
    const specifier = stack.pop()!;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    for (const dep of graph.get(specifier)?.dependencies ?? []) {
      if (dep.isDynamic) continue;
      for (const target of [dep.code?.specifier, dep.type?.specifier]) {
        if (target !== undefined) stack.push(target);
      }
    }
  }
  return seen;
}

Deno.test("withoutComments blanks comments but keeps strings and line numbers", () => {
  const source = 'a(); // Deno.exit()\n/* Deno.env\n */ const s = "// Deno"; `/*${x}*/`;';
  const stripped = withoutComments(source);
  assert.equal(stripped.split("\n").length, 3);
  assert.ok(!stripped.includes("Deno.exit") && !stripped.includes("Deno.env"));
  assert.ok(stripped.includes('"// Deno"') && stripped.includes("`/*${x}*/`"));
  assert.ok(DENO_USE.test("const c = await Deno.connect({ port });"));
  assert.ok(DENO_USE.test('const ns = globalThis["Deno"];'));
  assert.ok(!DENO_USE.test('throw new Error("in Deno, pass --cert");'));
});

Deno.test("core modules (codec, streams, session, client, WebSocket) never use Deno.*", () => {
  const files = CORE.flatMap(tsFiles);
  assert.ok(files.length >= 15, `expected the core modules, found ${files.length}`);
  assert.ok(files.some((f) => f.href.endsWith("/lib/transports/websocket.ts")));
  assert.deepEqual(files.flatMap(denoUses), []);
  // The check is not vacuous: it finds the TCP transport's uses.
  assert.ok(denoUses(new URL(TCP)).length > 0);
});

Deno.test("connect() and mod.ts reach tcp.ts only through a dynamic import", async () => {
  for (const entry of ["lib/client/connect.ts", "mod.ts"]) {
    const graph = await moduleGraph(entry);
    const root = new URL(entry, ROOT).href;
    const reached = staticClosure(graph, root);
    assert.ok(reached.has(root));
    assert.ok(!reached.has(TCP), `${entry} imports lib/transports/tcp.ts statically`);
    // Everything loaded, dynamically too, is free of Deno.* except the allowed modules.
    const uses = [...graph.keys()]
      .filter((s) => s.startsWith(ROOT.href) && !DENO_MODULES.includes(s))
      .flatMap((s) => denoUses(new URL(s)));
    assert.deepEqual(uses, [], `${entry} loads modules that use Deno.*`);
  }
  const client = (await moduleGraph("lib/client/connection.ts"))
    .get(new URL("lib/client/connection.ts", ROOT).href)!;
  const toTcp = client.dependencies?.filter((d) => d.code?.specifier === TCP) ?? [];
  assert.equal(toTcp.length, 1, "connection.ts imports tcp.ts once");
  assert.equal(toTcp[0].isDynamic, true, "connection.ts imports tcp.ts dynamically");
});

/**
 * Runs in a child process: deletes `globalThis.Deno`, loads `mod.ts`, and talks to the broker
 * over ws:// (publish and receive a QoS 1 message), then tries mqtt:// (which must load tcp.ts,
 * mapped to a module that throws). Prints one JSON line.
 */
const CHILD = `
const [modUrl, wsUrl, mqttUrl] = Deno.args;
delete globalThis.Deno;
const result = { denoGone: typeof globalThis.Deno === "undefined" };
const { connect } = await import(modUrl);
try {
  const client = await connect(wsUrl, { clientId: "no-deno-" + crypto.randomUUID().slice(0, 8) });
  const sub = await client.subscribe("neutral/check", { qos: 1 });
  await client.publish("neutral/check", "without Deno", { qos: 1 });
  for await (const message of sub) {
    result.received = message.text();
    break;
  }
  await client.close();
} catch (error) {
  result.wsError = String(error);
}
try {
  const client = await connect(mqttUrl, { connectTimeout: 3000 });
  await client.close();
  result.mqtt = "connected";
} catch (error) {
  result.mqtt = error.code + ": " + error.message;
}
console.log(JSON.stringify(result));
`;

brokerTest(
  "without globalThis.Deno the client works over ws://; mqtt:// loads tcp.ts",
  async () => {
    await using broker = await startMosquitto({ websockets: true });
    const dir = await Deno.makeTempDir({ prefix: "runtime-neutral-" });
    try {
      await Deno.writeTextFile(`${dir}/child.js`, CHILD);
      // The TCP transport is replaced by a module that throws if it is ever evaluated.
      await Deno.writeTextFile(
        `${dir}/import_map.json`,
        JSON.stringify({
          imports: { [TCP]: "data:text/javascript,throw new Error('tcp.ts was loaded')" },
        }),
      );
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-config",
          "--no-check",
          `--import-map=${dir}/import_map.json`,
          "--allow-net=127.0.0.1",
          "--allow-read",
          `${dir}/child.js`,
          new URL("mod.ts", ROOT).href,
          broker.wsUrl!,
          broker.url,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      const stderr = new TextDecoder().decode(out.stderr);
      assert.ok(out.success, `child failed:\n${stdout}\n${stderr}`);
      const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
      assert.deepEqual(result, {
        denoGone: true,
        received: "without Deno",
        mqtt: "TRANSPORT_ERROR: connect failed: tcp.ts was loaded",
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
