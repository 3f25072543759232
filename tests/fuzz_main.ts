/**
 * `deno task fuzz`: runs the seeded codec fuzzer for many inputs and prints
 * the outcome counts.
 *
 *     deno run -A tests/fuzz_main.ts --inputs 5000000 [--seed 1]
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
const started = performance.now();
const result = runFuzz(seed, inputs);
const seconds = (performance.now() - started) / 1000;

console.log(`seed ${seed}, ${inputs} inputs in ${seconds.toFixed(1)} s`);
for (const [outcome, count] of Object.entries(result.counts).sort((a, b) => b[1] - a[1])) {
  console.log(`${String(count).padStart(10)}  ${outcome}`);
}
for (const f of result.failures) {
  console.log(`FAILURE #${f.index} (${f.kind}): ${f.error}\n  bytes: ${f.hex}`);
}
if (result.failures.length > 0) Deno.exit(1);
