/**
 * `deno task fuzz`: runs the seeded codec fuzzer for many inputs and prints
 * the outcome counts.
 *
 *     deno run -A tests/fuzz_main.ts --inputs 5000000 [--seed 1] [--version 4|5]
 *
 * Without `--version`, runs the inputs at MQTT 3.1.1 and again at 5.0.
 *
 * Exits 1 if any input made the decoder do anything but return a valid
 * packet or throw a ProtocolError.
 *
 * @module
 */
import { runFuzz } from "./fuzz.ts";

function flag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(Deno.args[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    console.error(`--${name} needs a non-negative integer`);
    Deno.exit(2);
  }
  return v;
}

const inputs = flag("inputs", 1_000_000);
const seed = flag("seed", Date.now() % 0x7fffffff);
const version = flag("version", 0);
if (version !== 0 && version !== 4 && version !== 5) {
  console.error("--version is 4 or 5");
  Deno.exit(2);
}
let failed = false;
for (const v of version === 0 ? [4, 5] as const : [version as 4 | 5]) {
  const started = performance.now();
  const result = runFuzz(seed, inputs, 20, v);
  const seconds = (performance.now() - started) / 1000;

  console.log(`protocol level ${v}, seed ${seed}, ${inputs} inputs in ${seconds.toFixed(1)} s`);
  for (const [outcome, count] of Object.entries(result.counts).sort((a, b) => b[1] - a[1])) {
    console.log(`${String(count).padStart(10)}  ${outcome}`);
  }
  for (const f of result.failures) {
    console.log(`FAILURE #${f.index} (${f.kind}): ${f.error}\n  bytes: ${f.hex}`);
  }
  failed ||= result.failures.length > 0;
}
if (failed) Deno.exit(1);
