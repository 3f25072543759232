/**
 * Every TypeScript block of the README and docs/edge.md type-checks as a user would write it:
 * each block becomes a module of its own, with the package's names (`@mqtt/client`,
 * `@mqtt/client/broker`, …) mapped to this checkout by an import map, and `deno check` runs on
 * all of them.
 */
import assert from "node:assert/strict";

const root = new URL("..", import.meta.url);
const DOCS = ["README.md", "docs/edge.md"];

/** The ```ts blocks of a Markdown text, with the line each starts on. */
export function typeScriptBlocks(markdown: string): { line: number; code: string }[] {
  const blocks: { line: number; code: string }[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i])) continue;
    const start = i + 1;
    while (++i < lines.length && !lines[i].startsWith("```"));
    blocks.push({ line: start + 1, code: lines.slice(start, i).join("\n") });
  }
  return blocks;
}

Deno.test("typeScriptBlocks finds each block and its line", () => {
  const md = "text\n```ts\nconst a = 1;\n```\n```sh\nls\n```\n```ts\nconst b = 2;\n```\n";
  assert.deepEqual(typeScriptBlocks(md), [
    { line: 3, code: "const a = 1;" },
    { line: 9, code: "const b = 2;" },
  ]);
});

Deno.test("README and docs/edge.md: every TypeScript block type-checks as written", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  const imports: Record<string, string> = {};
  for (const [path, file] of Object.entries(config.exports as Record<string, string>)) {
    imports[path === "." ? config.name : `${config.name}${path.slice(1)}`] =
      new URL(file, root).href;
  }
  const dir = await Deno.makeTempDir();
  try {
    const files: string[] = [];
    const where = new Map<string, string>();
    for (const doc of DOCS) {
      const blocks = typeScriptBlocks(await Deno.readTextFile(new URL(doc, root)));
      assert.ok(blocks.length > 0, `${doc} has TypeScript blocks`);
      for (const { line, code } of blocks) {
        const file = `${dir}/${doc.replace(/\W/g, "_")}_${line}.ts`;
        // Each block is a module of its own (top-level await, no clashing names).
        await Deno.writeTextFile(file, `${code}\nexport {};\n`);
        files.push(file);
        where.set(file, `${doc}:${line}`);
      }
    }
    await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify({ imports }));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--config", `${dir}/deno.json`, ...files],
      stdout: "piped",
      stderr: "piped",
    }).output();
    let report = new TextDecoder().decode(out.stderr);
    for (const [file, place] of where) report = report.replaceAll(file, `${file} (${place})`);
    assert.equal(out.code, 0, report);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
