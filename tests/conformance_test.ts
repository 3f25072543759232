/**
 * Keeps `docs/conformance.md` honest: every client-binding and both-binding normative statement of
 * MQTT 3.1.1 has a row, every row without a test says why (`n/a: reason`), the summary's counts
 * are right, and every test the doc cites still exists under `tests/`. The statement ids are kept
 * here (CI has no copy of the spec) and checked against `/work/shared/spec/mqtt-v3.1.1-normative.tsv`
 * where that file exists.
 *
 * Test names are found by a static scan of the test sources (no test module is imported or run):
 * the first argument of `Deno.test(...)`, `brokerTest(...)`, `interopTest(...)` and
 * `<context>.step(...)`, given as a string literal, a template literal, or an object literal with
 * a `name` property. A template literal name such as `` `malformed ${c.name} -> ${c.code}` ``
 * matches a cited name only when every interpolated part of it is itself a string (or number)
 * literal of the same file, so a table-driven test disappears from the scan when its table row
 * does.
 *
 * The same checks keep `docs/conformance-5.md` honest for MQTT 5.0: all 251 statements have a row,
 * each of the 133 that bind the client cites tests or says "not yet", each server-only one says
 * why, and every cited test exists.
 *
 * Run `deno run -A tests/conformance_test.ts [file]` to print the names the scan finds.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SERVER_IDS } from "./conformance_ids.ts";

const ROOT = new URL("../", import.meta.url);
const TESTS_DIR = new URL("tests/", ROOT);
const DOC = new URL("docs/conformance.md", ROOT);
const SPEC_TSV = "/work/shared/spec/mqtt-v3.1.1-normative.tsv";

/**
 * Calls that register a test or step, with the position of the name among their arguments.
 * `brokersTest(name, ...)` (tests/targets.ts) registers `[mosquitto] name` and `[embedded] name`;
 * its tests are cited by the `name` written in the source, like `targetTest(broker, name, ...)`.
 */
const REGISTRARS = new Map<string, number>([
  ["Deno.test", 0],
  [".step", 0],
  ["brokerTest", 0],
  ["brokersTest", 0],
  ["targetTest", 1],
  ["interopTest", 0],
]);

// ---------------------------------------------------------------- tokenizer

/** A lexical token of TypeScript source, as much of it as the scan needs. */
type Token =
  | { kind: "string"; value: string }
  | { kind: "template"; quasis: string[] }
  | { kind: "number"; value: string }
  | { kind: "ident"; value: string }
  | { kind: "punct"; value: string };

// After these a `/` starts a regular expression rather than a division.
const REGEX_AFTER_PUNCT = new Set("(,=:[!&|?{};+-*%<>~^".split(""));
const REGEX_AFTER_WORD = new Set(["return", "typeof", "case", "of", "in", "delete", "void"]);

function unescapeString(raw: string): string {
  return raw.replace(
    /\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|\r\n|[\s\S])/g,
    (_, e: string) => {
      if (e.startsWith("u{")) return String.fromCodePoint(parseInt(e.slice(2, -1), 16));
      if (e[0] === "u" && e.length === 5) return String.fromCharCode(parseInt(e.slice(1), 16));
      if (e[0] === "x" && e.length === 3) return String.fromCharCode(parseInt(e.slice(1), 16));
      const simple: Record<string, string> = {
        n: "\n",
        t: "\t",
        r: "\r",
        b: "\b",
        f: "\f",
        v: "\v",
        "0": "\0",
      };
      if (e === "\n" || e === "\r\n") return "";
      return simple[e] ?? e;
    },
  );
}

/**
 * Splits source into tokens, skipping whitespace and comments. Template literals keep their
 * literal parts (`quasis`); the expressions between them are tokenized recursively and dropped.
 */
function tokenize(src: string): { tokens: Token[]; embedded: string[] } {
  const tokens: Token[] = [];
  // String literals inside template expressions, which are not tokens of their own.
  const embedded: string[] = [];
  let i = 0;
  const n = src.length;

  function regexAllowed(): boolean {
    const last = tokens[tokens.length - 1];
    if (last === undefined) return true;
    if (last.kind === "punct") return REGEX_AFTER_PUNCT.has(last.value);
    if (last.kind === "ident") return REGEX_AFTER_WORD.has(last.value);
    return false;
  }

  /** Reads a template literal starting after its opening backtick; returns its quasis. */
  function readTemplate(): string[] {
    const quasis: string[] = [];
    let raw = "";
    while (i < n) {
      const c = src[i];
      if (c === "\\") {
        raw += src.slice(i, i + 2);
        i += 2;
      } else if (c === "`") {
        i++;
        quasis.push(unescapeString(raw));
        return quasis;
      } else if (c === "$" && src[i + 1] === "{") {
        quasis.push(unescapeString(raw));
        raw = "";
        i += 2;
        skipExpression();
      } else {
        raw += c;
        i++;
      }
    }
    throw new Error("unterminated template literal");
  }

  /** Skips a `${...}` expression (which may hold strings, templates and braces). */
  function skipExpression(): void {
    let depth = 1;
    while (i < n && depth > 0) {
      const c = src[i];
      if (c === "{") {
        depth++;
        i++;
      } else if (c === "}") {
        depth--;
        i++;
      } else if (c === "'" || c === '"') {
        embedded.push(readQuoted(c));
      } else if (c === "`") {
        i++;
        const quasis = readTemplate();
        if (quasis.length === 1) embedded.push(quasis[0]);
      } else if (c === "/" && src[i + 1] === "/") {
        while (i < n && src[i] !== "\n") i++;
      } else if (c === "/" && src[i + 1] === "*") {
        i = src.indexOf("*/", i + 2) + 2;
      } else {
        i++;
      }
    }
  }

  function readQuoted(quote: string): string {
    let raw = "";
    i++;
    while (i < n && src[i] !== quote) {
      if (src[i] === "\\") {
        raw += src.slice(i, i + 2);
        i += 2;
      } else {
        raw += src[i++];
      }
    }
    i++;
    return unescapeString(raw);
  }

  while (i < n) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === "/" && src[i + 1] === "/") {
      while (i < n && src[i] !== "\n") i++;
    } else if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === "'" || c === '"') {
      tokens.push({ kind: "string", value: readQuoted(c) });
    } else if (c === "`") {
      i++;
      tokens.push({ kind: "template", quasis: readTemplate() });
    } else if (c === "/" && regexAllowed()) {
      // A regular expression literal: skip it, classes and escapes included.
      i++;
      let inClass = false;
      while (i < n) {
        const d = src[i];
        if (d === "\\") i += 2;
        else if (d === "[") (inClass = true), i++;
        else if (d === "]") (inClass = false), i++;
        else if (d === "/" && !inClass) break;
        else if (d === "\n") break;
        else i++;
      }
      i++;
      while (i < n && /[a-z]/i.test(src[i])) i++;
      tokens.push({ kind: "punct", value: "regex" });
    } else if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(src[i + 1] ?? ""))) {
      const m = /^(?:0[xXbBoO][0-9a-fA-F_]+|[0-9_]*\.?[0-9_]+(?:[eE][+-]?[0-9]+)?)n?/.exec(
        src.slice(i),
      )!;
      tokens.push({ kind: "number", value: m[0].replaceAll("_", "") });
      i += m[0].length;
    } else if (/[A-Za-z_$]/.test(c)) {
      const m = /^[A-Za-z_$][\w$]*/.exec(src.slice(i))!;
      tokens.push({ kind: "ident", value: m[0] });
      i += m[0].length;
    } else {
      tokens.push({ kind: "punct", value: c });
      i++;
    }
  }
  return { tokens, embedded };
}

// ---------------------------------------------------------------- test names

/** A test or step name found in a file: exact, or a template with literal-only holes. */
export type FoundName = { kind: "exact"; name: string } | { kind: "template"; quasis: string[] };

/** What the scan found in one test file. */
export interface ScannedFile {
  /** Names of tests and steps. */
  names: FoundName[];
  /** Every string and number literal of the file (for template holes). */
  literals: Set<string>;
}

function nameFrom(token: Token | undefined): FoundName | undefined {
  if (token?.kind === "string") return { kind: "exact", name: token.value };
  if (token?.kind === "template") {
    return token.quasis.length === 1
      ? { kind: "exact", name: token.quasis[0] }
      : { kind: "template", quasis: token.quasis };
  }
  return undefined;
}

/** Finds the `name:` property at the top level of the object literal opening at `start`. */
function nameInObject(tokens: Token[], start: number): FoundName | undefined {
  let depth = 0;
  for (let k = start; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.kind === "punct" && "{([".includes(t.value)) depth++;
    else if (t.kind === "punct" && "})]".includes(t.value)) {
      depth--;
      if (depth === 0) return undefined;
    } else if (
      depth === 1 && t.kind === "ident" && t.value === "name" &&
      tokens[k + 1]?.kind === "punct" && (tokens[k + 1] as { value: string }).value === ":"
    ) {
      return nameFrom(tokens[k + 2]);
    }
  }
  return undefined;
}

/** The index of the first token of argument `n` of the call whose `(` is at `open`. */
function argumentAt(tokens: Token[], open: number, n: number): number | undefined {
  let depth = 0;
  let index = 0;
  for (let k = open + 1; k < tokens.length; k++) {
    const t = tokens[k];
    if (index === n && depth === 0) return k;
    if (t.kind !== "punct") continue;
    if ("{([".includes(t.value)) depth++;
    else if ("})]".includes(t.value)) {
      if (depth === 0) return undefined;
      depth--;
    } else if (t.value === "," && depth === 0) index++;
  }
  return undefined;
}

/**
 * Scans one test source for test and step names.
 *
 * @example
 * ```ts ignore
 * const { names } = scanSource('Deno.test("adds", () => {});');
 * ```
 */
export function scanSource(src: string): ScannedFile {
  const { tokens, embedded } = tokenize(src);
  const names: FoundName[] = [];
  const literals = new Set<string>(embedded);
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.kind === "string" || t.kind === "number") literals.add(t.value);
    if (t.kind === "template" && t.quasis.length === 1) literals.add(t.quasis[0]);
    if (t.kind !== "ident") continue;
    const prev = tokens[k - 1];
    const afterDot = prev?.kind === "punct" && prev.value === ".";
    let callee: string | undefined;
    if (t.value === "test" && afterDot && (tokens[k - 2] as { value?: string })?.value === "Deno") {
      callee = "Deno.test";
    } else if (t.value === "step" && afterDot) {
      callee = ".step";
    } else if (
      !afterDot && REGISTRARS.has(t.value) && (prev as { value?: string })?.value !== "function"
    ) {
      callee = t.value;
    }
    if (callee === undefined) continue;
    const open = tokens[k + 1];
    if (open?.kind !== "punct" || open.value !== "(") continue;
    const at = argumentAt(tokens, k + 1, REGISTRARS.get(callee)!);
    if (at === undefined) continue;
    const arg = tokens[at];
    const found = arg?.kind === "punct" && arg.value === "{"
      ? nameInObject(tokens, at)
      : nameFrom(arg);
    if (found) names.push(found);
  }
  return { names, literals };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Whether `cited` is one of the names found, templates filled only with the file's literals. */
function nameExists(file: ScannedFile, cited: string): boolean {
  for (const found of file.names) {
    if (found.kind === "exact") {
      if (found.name === cited) return true;
      continue;
    }
    // Each hole must be filled by a literal of the file: try every way to split `cited`.
    const [head, ...rest] = found.quasis;
    if (!cited.startsWith(head)) continue;
    const pattern = new RegExp(
      "^" + escapeRegExp(head) + rest.map((q) => "(.+?)" + escapeRegExp(q)).join("") + "$",
    );
    if (!pattern.test(cited)) continue;
    if (fillsHoles(cited.slice(head.length), rest, file.literals)) return true;
  }
  return false;
}

function fillsHoles(text: string, quasis: string[], literals: Set<string>): boolean {
  if (quasis.length === 0) return text === "";
  const [next, ...more] = quasis;
  // The hole ends where `next` starts; it may start at several places.
  for (let end = 1; end <= text.length; end++) {
    const hole = text.slice(0, end);
    if (!literals.has(hole)) continue;
    const after = text.slice(end);
    if (after.startsWith(next) && fillsHoles(after.slice(next.length), more, literals)) {
      return true;
    }
  }
  return false;
}

/** Every `*.ts` file under `tests/`, as paths relative to it. */
async function testSources(dir = TESTS_DIR, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory) {
      files.push(...await testSources(new URL(`${entry.name}/`, dir), `${prefix}${entry.name}/`));
    } else if (entry.isFile && entry.name.endsWith(".ts")) {
      files.push(prefix + entry.name);
    }
  }
  return files.sort();
}

async function scanTests(): Promise<Map<string, ScannedFile>> {
  const scanned = new Map<string, ScannedFile>();
  for (const file of await testSources()) {
    scanned.set(file, scanSource(await Deno.readTextFile(new URL(file, TESTS_DIR))));
  }
  return scanned;
}

// ---------------------------------------------------------------- the document

/** One row of the conformance table. */
interface Row {
  id: string;
  line: number;
  /** Cited tests: file (relative to tests/) and name. */
  tests: { file: string; name: string }[];
  /** The reason text when the row cites no test. */
  reason: string | undefined;
}

/** Splits a Markdown table row into cells, honouring `\|` and code spans. */
function cells(line: string): string[] {
  const out: string[] = [];
  let cell = "";
  let ticks = 0;
  const s = line.trim().replace(/^\|/, "").replace(/\|$/, "");
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\" && s[i + 1] === "|") {
      cell += "|";
      i++;
    } else if (c === "`") {
      let run = 0;
      while (s[i + run] === "`") run++;
      if (ticks === 0) ticks = run;
      else if (ticks === run) ticks = 0;
      cell += s.slice(i, i + run);
      i += run - 1;
    } else if (c === "|" && ticks === 0) {
      out.push(cell.trim());
      cell = "";
    } else {
      cell += c;
    }
  }
  out.push(cell.trim());
  return out;
}

const ID = /^MQTT-\d+\.\d+\.\d+-\d+$/;
// A citation: `file_test.ts › name`, in single or double backticks.
const CITATION = /(``?)([\w./-]+\.ts) › (.+?)\1(?!`)/g;

/**
 * Parses the rows of the conformance tables: first cell an id, last cell the tests (code spans
 * `` `file.ts › name` ``) or, with none, a reason that starts with "n/a".
 */
function parseDoc(text: string): Row[] {
  const rows: Row[] = [];
  text.split("\n").forEach((line, index) => {
    if (!line.trimStart().startsWith("|")) return;
    const row = cells(line);
    const id = row[0].replace(/`/g, "");
    if (!ID.test(id)) return;
    const last = row[row.length - 1];
    const tests = [...last.matchAll(CITATION)].map((m) => ({ file: m[2], name: m[3].trim() }));
    rows.push({ id, line: index + 1, tests, reason: tests.length === 0 ? last : undefined });
  });
  return rows;
}

// A copy of the ids of the spec table, so the check runs where the shared spec is absent (CI);
// where it is present, a test checks the copy against it.
/** The 72 ids of the spec table that bind the client (`client` or `both`), in table order. */
const CLIENT_IDS: readonly string[] = [
  "MQTT-1.5.3-1",
  "MQTT-1.5.3-2",
  "MQTT-1.5.3-3",
  "MQTT-2.2.2-1",
  "MQTT-2.2.2-2",
  "MQTT-2.3.1-1",
  "MQTT-2.3.1-2",
  "MQTT-2.3.1-3",
  "MQTT-2.3.1-5",
  "MQTT-2.3.1-6",
  "MQTT-3.1.0-1",
  "MQTT-3.1.2-4",
  "MQTT-3.1.2-6",
  "MQTT-3.1.2-9",
  "MQTT-3.1.2-11",
  "MQTT-3.1.2-13",
  "MQTT-3.1.2-14",
  "MQTT-3.1.2-15",
  "MQTT-3.1.2-18",
  "MQTT-3.1.2-19",
  "MQTT-3.1.2-20",
  "MQTT-3.1.2-21",
  "MQTT-3.1.2-22",
  "MQTT-3.1.2-23",
  "MQTT-3.1.3-1",
  "MQTT-3.1.3-2",
  "MQTT-3.1.3-3",
  "MQTT-3.1.3-4",
  "MQTT-3.1.3-7",
  "MQTT-3.1.3-10",
  "MQTT-3.1.3-11",
  "MQTT-3.3.1-1",
  "MQTT-3.3.1-2",
  "MQTT-3.3.1-4",
  "MQTT-3.3.2-1",
  "MQTT-3.3.2-2",
  "MQTT-3.3.4-1",
  "MQTT-3.6.1-1",
  "MQTT-3.8.1-1",
  "MQTT-3.8.3-1",
  "MQTT-3.8.3-3",
  "MQTT-3.10.1-1",
  "MQTT-3.10.3-1",
  "MQTT-3.10.3-2",
  "MQTT-3.14.4-1",
  "MQTT-3.14.4-2",
  "MQTT-4.1.0-1",
  "MQTT-4.1.0-2",
  "MQTT-4.3.1-1",
  "MQTT-4.3.2-1",
  "MQTT-4.3.2-2",
  "MQTT-4.3.3-1",
  "MQTT-4.3.3-2",
  "MQTT-4.4.0-1",
  "MQTT-4.5.0-2",
  "MQTT-4.6.0-1",
  "MQTT-4.6.0-2",
  "MQTT-4.6.0-3",
  "MQTT-4.6.0-4",
  "MQTT-4.7.1-1",
  "MQTT-4.7.1-2",
  "MQTT-4.7.1-3",
  "MQTT-4.7.3-1",
  "MQTT-4.7.3-2",
  "MQTT-4.7.3-3",
  "MQTT-4.8.0-1",
  "MQTT-4.8.0-2",
  "MQTT-6.0.0-1",
  "MQTT-6.0.0-2",
  "MQTT-6.0.0-3",
  "MQTT-7.0.0-2",
  "MQTT-7.1.2-1",
];

/** The spec table's ids by `binds`, or undefined when the table is not on this machine. */
async function specIds(): Promise<{ client: string[]; server: string[] } | undefined> {
  let tsv: string;
  try {
    tsv = await Deno.readTextFile(SPEC_TSV);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  const rows = tsv.trim().split("\n").slice(1).map((line) => line.split("\t"));
  return {
    client: rows.filter(([, , binds]) => binds === "client" || binds === "both").map(([id]) => id),
    server: rows.filter(([, , binds]) => binds === "server").map(([id]) => id),
  };
}

// ---------------------------------------------------------------- the checks

Deno.test("conformance scan: finds literal, template, object and step names", () => {
  const { names, literals } = scanSource(
    [
      "// Deno.test('commented out', () => {});",
      'const re = /Deno.test\\("in a regex"/;',
      'Deno.test("plain \\"quoted\\" name", () => {});',
      "brokerTest(\n  `multi ${'line'}`,\n  async () => {},\n);",
      'Deno.test({ name: "object form", sanitizeOps: false, fn() {} });',
      "interopTest({ fn() { Deno.test(\"inner\"); }, name: 'late name' });",
      'for (const c of [{ name: "row" }]) Deno.test(`case ${c.name} -> ${"X"}`, () => {});',
      "await t.step(`${scheme}: step`, () => {});",
      'targetTest("embedded", "second argument", async () => {});',
      "export function brokersTest(name: string) {}",
    ].join("\n"),
  );
  const exact = names.filter((n) => n.kind === "exact").map((n) => (n as { name: string }).name);
  assert.deepEqual(exact, [
    `plain "quoted" name`,
    "object form",
    "late name",
    "inner",
    "second argument",
  ]);
  assert.deepEqual(
    names.filter((n) => n.kind === "template").map((n) => (n as { quasis: string[] }).quasis),
    [["multi ", ""], ["case ", " -> ", ""], ["", ": step"]],
  );
  const file = { names, literals };
  assert.ok(nameExists(file, "case row -> X"));
  assert.ok(nameExists(file, "multi line"));
  assert.ok(!nameExists(file, "case other -> X"), "a hole not filled by a literal");
  assert.ok(!nameExists(file, "commented out"));
  assert.ok(!nameExists(file, "in a regex"));
});

Deno.test("conformance doc: every client and both normative statement has a row", async () => {
  const rows = parseDoc(await Deno.readTextFile(DOC));
  assert.equal(CLIENT_IDS.length, 72, "72 statements bind the client");
  const inDoc = new Set(rows.map((r) => r.id));
  const missing = CLIENT_IDS.filter((id) => !inDoc.has(id));
  assert.deepEqual(missing, [], `statements without a row in docs/conformance.md`);
  const known = new Set([...CLIENT_IDS, ...SERVER_IDS]);
  const unknown = rows.filter((r) => !known.has(r.id)).map((r) => `line ${r.line}: ${r.id}`);
  assert.deepEqual(unknown, [], "rows whose id is not a statement of the spec table");
  const seen = new Map<string, number>();
  for (const row of rows) {
    assert.ok(!seen.has(row.id), `${row.id} has two rows (lines ${seen.get(row.id)}, ${row.line})`);
    seen.set(row.id, row.line);
  }
});

Deno.test("conformance ids: the copy matches the spec table where it is present", async (t) => {
  const spec = await specIds();
  if (spec === undefined) {
    console.warn(`${SPEC_TSV} is absent: checked against the copy of its ids only`);
    return;
  }
  await t.step("client and both ids", () => assert.deepEqual(CLIENT_IDS, spec.client));
  await t.step("server ids", () => assert.deepEqual(SERVER_IDS, spec.server));
});

Deno.test("conformance doc: a row without tests says why (n/a: reason)", async () => {
  const rows = parseDoc(await Deno.readTextFile(DOC));
  for (const row of rows) {
    if (row.tests.length > 0) continue;
    assert.match(
      row.reason ?? "",
      /^\*{0,2}n\/a\b.{10,}/i,
      `line ${row.line}: ${row.id} cites no test and gives no "n/a: reason"`,
    );
  }
});

Deno.test("conformance doc: the summary's counts are the table's", async () => {
  const text = await Deno.readTextFile(DOC);
  const rows = parseDoc(text);
  const client = new Set(CLIENT_IDS);
  const mine = rows.filter((r) => client.has(r.id));
  const proven = mine.filter((r) => r.tests.length > 0).length;
  const missing = CLIENT_IDS.length - new Set(mine.map((r) => r.id)).size;
  // Compared with whitespace collapsed: `deno fmt` rewraps the paragraph.
  const m =
    /of the 72 client and both statements, (\d+) are proven by tests, (\d+) are marked not applicable and (\d+) are missing/
      .exec(text.replace(/\s+/g, " "));
  assert.ok(m, "the summary sentence is missing");
  assert.deepEqual(
    { proven: Number(m[1]), notApplicable: Number(m[2]), missing: Number(m[3]) },
    { proven, notApplicable: mine.length - proven, missing },
  );
});

Deno.test("conformance doc: every cited test exists in tests/", async () => {
  const rows = parseDoc(await Deno.readTextFile(DOC));
  const scanned = await scanTests();
  const gone: string[] = [];
  let cited = 0;
  for (const row of rows) {
    for (const { file, name } of row.tests) {
      cited++;
      const found = scanned.get(file);
      if (found === undefined) gone.push(`line ${row.line} (${row.id}): no file tests/${file}`);
      else if (!nameExists(found, name)) {
        gone.push(`line ${row.line} (${row.id}): no test "${name}" in tests/${file}`);
      }
    }
  }
  assert.ok(cited > 0, "the doc cites tests");
  assert.deepEqual(gone, [], "cited tests that no longer exist");
});

// ---------------------------------------------------------------- MQTT 5.0: docs/conformance-5.md

const DOC5 = new URL("docs/conformance-5.md", ROOT);
const SPEC5_TSV = "/work/shared/spec/mqtt-v5.0-normative.tsv";

/**
 * A copy of the 251 ids of the MQTT 5.0 table (without "MQTT-") with whom each binds: C client,
 * B both, S server; in table order, checked against the spec table where it is present.
 */
const V5_TABLE = `
  1.5.4-1 B  1.5.4-2 B  1.5.4-3 B  1.5.5-1 B  1.5.7-1 B  2.1.3-1 B
  2.2.1-2 B  2.2.1-3 C  2.2.1-4 S  2.2.1-5 B  2.2.1-6 S  2.2.2-1 B
  3.1.0-1 C  3.1.0-2 S  3.1.2-1 C  3.1.2-2 S  3.1.2-3 S  3.1.2-4 B
  3.1.2-5 S  3.1.2-6 S  3.1.2-7 S  3.1.2-8 S  3.1.2-9 C  3.1.2-10 S
  3.1.2-11 C  3.1.2-12 C  3.1.2-13 C  3.1.2-14 S  3.1.2-15 S  3.1.2-16 C
  3.1.2-17 C  3.1.2-18 C  3.1.2-19 C  3.1.2-20 C  3.1.2-21 C  3.1.2-22 S
  3.1.2-23 B  3.1.2-24 S  3.1.2-25 S  3.1.2-26 S  3.1.2-27 S  3.1.2-28 S
  3.1.2-29 S  3.1.2-30 C  3.1.3-1 C  3.1.3-2 B  3.1.3-3 C  3.1.3-4 C
  3.1.3-5 S  3.1.3-6 S  3.1.3-7 S  3.1.3-8 S  3.1.3-9 S  3.1.3-10 S
  3.1.3-11 C  3.1.3-12 C  3.1.4-1 S  3.1.4-2 S  3.1.4-3 S  3.1.4-4 S
  3.1.4-5 S  3.1.4-6 S  3.2.0-1 S  3.2.0-2 S  3.2.2-1 S  3.2.2-2 S
  3.2.2-3 S  3.2.2-4 C  3.2.2-5 C  3.2.2-6 S  3.2.2-7 S  3.2.2-8 S
  3.2.2-9 S  3.2.2-10 S  3.2.2-11 C  3.2.2-12 S  3.2.2-13 S  3.2.2-14 C
  3.2.2-15 C  3.2.2-16 S  3.2.2-17 C  3.2.2-18 C  3.2.2-19 S  3.2.2-20 S
  3.2.2-21 C  3.2.2-22 S  3.3.1-1 B  3.3.1-2 B  3.3.1-3 S  3.3.1-4 B
  3.3.1-5 S  3.3.1-6 S  3.3.1-7 S  3.3.1-8 S  3.3.1-9 S  3.3.1-10 S
  3.3.1-11 S  3.3.1-12 S  3.3.1-13 S  3.3.2-1 B  3.3.2-2 B  3.3.2-3 S
  3.3.2-4 S  3.3.2-5 S  3.3.2-6 S  3.3.2-7 B  3.3.2-8 B  3.3.2-9 C
  3.3.2-10 C  3.3.2-11 S  3.3.2-12 S  3.3.2-13 B  3.3.2-14 B  3.3.2-15 S
  3.3.2-16 S  3.3.2-17 S  3.3.2-18 S  3.3.2-19 B  3.3.2-20 S  3.3.4-1 B
  3.3.4-2 S  3.3.4-3 S  3.3.4-4 S  3.3.4-5 S  3.3.4-6 C  3.3.4-7 C
  3.3.4-8 C  3.3.4-9 S  3.3.4-10 S  3.4.2-1 B  3.4.2-2 B  3.4.2-3 B
  3.5.2-1 B  3.5.2-2 B  3.5.2-3 B  3.6.1-1 B  3.6.2-1 B  3.6.2-2 B
  3.6.2-3 B  3.7.2-1 B  3.7.2-2 B  3.7.2-3 B  3.8.1-1 C  3.8.3-1 C
  3.8.3-2 C  3.8.3-3 S  3.8.3-4 C  3.8.3-5 S  3.8.4-1 S  3.8.4-2 S
  3.8.4-3 S  3.8.4-4 S  3.8.4-5 S  3.8.4-6 S  3.8.4-7 S  3.8.4-8 S
  3.9.2-1 S  3.9.2-2 S  3.9.3-1 S  3.9.3-2 S  3.10.1-1 C  3.10.3-1 C
  3.10.3-2 C  3.10.4-1 S  3.10.4-2 S  3.10.4-3 S  3.10.4-4 S  3.10.4-5 S
  3.10.4-6 S  3.11.2-1 S  3.11.2-2 S  3.11.3-1 S  3.11.3-2 S  3.12.4-1 S
  3.14.0-1 S  3.14.1-1 B  3.14.2-1 B  3.14.2-2 S  3.14.2-3 B  3.14.2-4 B
  3.14.4-1 B  3.14.4-2 B  3.14.4-3 S  3.15.1-1 B  3.15.2-1 B  3.15.2-2 B
  3.15.2-3 B  4.1.0-1 B  4.2.0-1 B  4.1.0-2 S  4.3.1-1 B  4.3.2-1 B
  4.3.2-2 B  4.3.2-3 B  4.3.2-4 B  4.3.2-5 B  4.3.3-1 B  4.3.3-2 B
  4.3.3-3 B  4.3.3-4 B  4.3.3-5 B  4.3.3-6 B  4.3.3-7 B  4.3.3-8 B
  4.3.3-9 B  4.3.3-10 B  4.3.3-11 B  4.3.3-12 B  4.3.3-13 B  4.4.0-1 B
  4.4.0-2 B  4.5.0-1 S  4.5.0-2 C  4.6.0-1 C  4.6.0-2 C  4.6.0-3 C
  4.6.0-4 C  4.6.0-5 S  4.6.0-6 S  4.7.0-1 B  4.7.1-1 B  4.7.1-2 B
  4.7.2-1 S  4.7.3-1 B  4.7.3-2 B  4.7.3-3 B  4.7.3-4 S  4.8.2-1 B
  4.8.2-2 B  4.8.2-3 S  4.8.2-4 S  4.8.2-5 S  4.8.2-6 S  4.9.0-1 B
  4.9.0-2 B  4.9.0-3 B  4.12.0-1 S  4.12.0-2 S  4.12.0-3 C  4.12.0-4 S
  4.12.0-5 B  4.12.0-6 S  4.12.0-7 C  4.12.1-1 C  4.12.1-2 B  4.13.1-1 S
  4.13.2-1 B  6.0.0-1 B  6.0.0-2 B  6.0.0-3 C  6.0.0-4 S
`;

const V5_IDS: readonly { id: string; binds: "client" | "both" | "server" }[] = V5_TABLE.trim()
  .split(/\s+/)
  .reduce<{ id: string; binds: "client" | "both" | "server" }[]>((out, word, i, all) => {
    if (i % 2 === 0) {
      const binds = all[i + 1] === "C" ? "client" : all[i + 1] === "B" ? "both" : "server";
      out.push({ id: `MQTT-${word}`, binds });
    }
    return out;
  }, []);

/** A 5.0 row without a test says "not yet" (binds the client) or gives its reason (server only). */
const NOT_YET = /^\*{0,2}not yet\b/i;

Deno.test("conformance-5 doc: all 251 statements of MQTT 5.0 have one row each", async () => {
  const rows = parseDoc(await Deno.readTextFile(DOC5));
  assert.equal(V5_IDS.length, 251);
  assert.equal(V5_IDS.filter((s) => s.binds !== "server").length, 133, "133 bind the client");
  const inDoc = new Set(rows.map((r) => r.id));
  assert.deepEqual(V5_IDS.filter((s) => !inDoc.has(s.id)).map((s) => s.id), [], "missing rows");
  const known = new Set(V5_IDS.map((s) => s.id));
  assert.deepEqual(rows.filter((r) => !known.has(r.id)).map((r) => r.id), [], "unknown ids");
  const seen = new Set<string>();
  for (const row of rows) {
    assert.ok(!seen.has(row.id), `${row.id} has two rows (line ${row.line})`);
    seen.add(row.id);
  }
});

Deno.test("conformance-5 ids: the copy matches the spec table where it is present", async () => {
  let tsv: string;
  try {
    tsv = await Deno.readTextFile(SPEC5_TSV);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  const spec = tsv.trim().split("\n").slice(1).map((line) => {
    const [id, , binds] = line.split("\t");
    return { id, binds };
  });
  assert.deepEqual(V5_IDS, spec);
});

Deno.test("conformance-5 doc: a client row cites a test or says not yet; a server row says why", async () => {
  const rows = parseDoc(await Deno.readTextFile(DOC5));
  const binds = new Map(V5_IDS.map((s) => [s.id, s.binds]));
  for (const row of rows) {
    if (row.tests.length > 0) continue;
    const reason = row.reason ?? "";
    if (binds.get(row.id) === "server") {
      assert.ok(reason.length >= 20, `line ${row.line}: ${row.id} gives no reason`);
    } else {
      assert.match(
        reason,
        NOT_YET,
        `line ${row.line}: ${row.id} cites no test and is not "not yet"`,
      );
    }
  }
});

Deno.test("conformance-5 doc: the summary's counts are the table's", async () => {
  const text = await Deno.readTextFile(DOC5);
  const rows = parseDoc(text);
  const binds = new Map(V5_IDS.map((s) => [s.id, s.binds]));
  const mine = rows.filter((r) => binds.get(r.id) !== "server");
  const proven = mine.filter((r) => r.tests.length > 0).length;
  const m = /of the 133 client and both statements, (\d+) are proven by tests and (\d+) are not yet/
    .exec(text.replace(/\s+/g, " "));
  assert.ok(m, "the summary sentence is missing");
  assert.deepEqual([Number(m[1]), Number(m[2])], [proven, mine.length - proven]);
});

Deno.test("conformance-5 doc: every cited test exists in tests/", async () => {
  const rows = parseDoc(await Deno.readTextFile(DOC5));
  const scanned = await scanTests();
  const gone: string[] = [];
  for (const row of rows) {
    for (const { file, name } of row.tests) {
      const found = scanned.get(file);
      if (found === undefined) gone.push(`line ${row.line} (${row.id}): no file tests/${file}`);
      else if (!nameExists(found, name)) {
        gone.push(`line ${row.line} (${row.id}): no test "${name}" in tests/${file}`);
      }
    }
  }
  assert.deepEqual(gone, [], "cited tests that no longer exist");
});

if (import.meta.main) {
  const only = Deno.args[0];
  for (const [file, { names }] of await scanTests()) {
    if (only && file !== only) continue;
    for (const n of names) {
      console.log(`${file} › ${n.kind === "exact" ? n.name : n.quasis.join("${…}")}`);
    }
  }
}
