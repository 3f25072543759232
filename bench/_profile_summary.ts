/**
 * Sums a V8 `.cpuprofile` (from `deno run --cpu-prof`) into self and total
 * time per function, the costliest first.
 *
 * Run: deno run -A bench/_profile_summary.ts <file.cpuprofile> [--top 40] [--filter lib/]
 *
 * Self time: samples whose innermost frame is the function. Total time:
 * samples with the function anywhere on the stack (counted once per sample).
 * `--filter` keeps only functions whose script URL contains the text.
 *
 * @module
 */
import { arg } from "./_mosquitto.ts";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** A function's share of a profile. */
export interface FunctionCost {
  /** `name (file:line)`. */
  key: string;
  /** Microseconds as the innermost frame. */
  self: number;
  /** Microseconds anywhere on the stack. */
  total: number;
}

function keyOf(frame: CallFrame): string {
  const name = frame.functionName || "(anonymous)";
  if (!frame.url) return name;
  const file = frame.url.replace(/^.*\/(lib|bench|ext|node_modules|npm)\//, "$1/");
  return `${name} (${file}:${frame.lineNumber + 1})`;
}

/**
 * Self and total microseconds per function of a parsed profile.
 *
 * @example
 * ```ts ignore
 * const costs = summarize(JSON.parse(await Deno.readTextFile("x.cpuprofile")));
 * ```
 */
export function summarize(profile: Profile): { costs: FunctionCost[]; totalTime: number } {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const costs = new Map<string, FunctionCost>();
  const cost = (key: string) => {
    let c = costs.get(key);
    if (c === undefined) costs.set(key, c = { key, self: 0, total: 0 });
    return c;
  };
  let totalTime = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    // V8 stores the gap before each sample; the next gap is this sample's duration.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    totalTime += dt;
    const leaf = profile.samples[i];
    cost(keyOf(byId.get(leaf)!.callFrame)).self += dt;
    const seen = new Set<string>();
    for (let id: number | undefined = leaf; id !== undefined; id = parent.get(id)) {
      const key = keyOf(byId.get(id)!.callFrame);
      if (seen.has(key)) continue;
      seen.add(key);
      cost(key).total += dt;
    }
  }
  return { costs: [...costs.values()], totalTime };
}

if (import.meta.main) {
  const file = Deno.args.find((a) => !a.startsWith("--") && a.endsWith(".cpuprofile"));
  if (file === undefined) {
    console.error("usage: deno run -A bench/_profile_summary.ts <file.cpuprofile> [--top N]");
    Deno.exit(2);
  }
  const top = Number(arg("top") ?? 40);
  const filter = arg("filter");
  const { costs, totalTime } = summarize(JSON.parse(await Deno.readTextFile(file)));
  const pct = (us: number) => `${((100 * us) / totalTime).toFixed(1).padStart(5)} %`;
  const keep = (c: FunctionCost) => filter === undefined || c.key.includes(filter);
  console.log(`${file}: ${(totalTime / 1000).toFixed(0)} ms sampled\n\nself time:`);
  for (const c of costs.filter(keep).sort((a, b) => b.self - a.self).slice(0, top)) {
    console.log(`${pct(c.self)}  ${c.key}`);
  }
  console.log(`\nself time by script:`);
  const byFile = new Map<string, number>();
  for (const c of costs) {
    const file = c.key.match(/\(([^()]*):\d+\)$/)?.[1] ?? c.key;
    byFile.set(file, (byFile.get(file) ?? 0) + c.self);
  }
  for (const [file, us] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    console.log(`${pct(us)}  ${file}`);
  }
  console.log(`\ntotal time (inclusive):`);
  for (const c of costs.filter(keep).sort((a, b) => b.total - a.total).slice(0, top)) {
    console.log(`${pct(c.total)}  ${c.key}`);
  }
}
