/**
 * The npm package as a Node or Bun user gets it: built by tools/build_npm.ts, packed with
 * `npm pack`, installed from the tarball into an empty folder, type-checked against by `tsc`, and
 * imported by name in Node 22, Node 24 and Bun for a QoS 1 round trip through Mosquitto over
 * `mqtt://`, `ws://` and `mqtts://`. Each run is a child process that must exit by itself: a
 * socket or timer left behind after `close()` keeps it alive until the test kills it.
 *
 * The runtimes come from the npm registry (the `node@22`, `node@24` and `bun` packages ship the
 * binaries) and are kept in a folder of the system's temp directory, so only the first run on a
 * machine downloads them. Locally the test is ignored, with the reason printed, when they cannot
 * be installed; with `CI` set it runs and fails instead.
 *
 * @module
 */
import assert from "node:assert/strict";
import { buildNpm } from "../tools/build_npm.ts";
import { ignoreWithoutMosquitto, mosquittoAvailable, startMosquitto } from "./broker/mosquitto.ts";
import { inCi } from "./broker/needs.ts";

const decoder = new TextDecoder();

/** Must match the compiler of tools/build_npm.ts, so `npx` finds it in its cache. */
const TYPESCRIPT = "typescript@5.9.3";
/** Long enough for a slow, busy machine; a child kept alive by a leftover handle never ends. */
const CHILD_TIMEOUT_MS = 30_000;
/** Where the runtimes are kept between test runs. */
const RUNTIMES_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/mqtt-client-npm-runtimes`;

interface Runtime {
  /** Name in test steps. */
  name: string;
  /** The npm package that ships the binary. */
  spec: string;
  /** The binary's name in `node_modules/.bin`. */
  bin: string;
}

const RUNTIMES: Runtime[] = [
  { name: "Node 22", spec: "node@22", bin: "node" },
  { name: "Node 24", spec: "node@24", bin: "node" },
  { name: "Bun", spec: "bun@1", bin: "bun" },
];

/** Runs a command; throws with its output when it fails. Returns stdout. */
async function run(command: string, args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command(command, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const stdout = decoder.decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed (${out.code}):\n${stdout}${decoder.decode(out.stderr)}`,
    );
  }
  return stdout;
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * The path of the runtime's binary, installed with npm into `RUNTIMES_DIR` unless it is there.
 * A fresh install goes to its own folder first and is renamed into place, so two test runs at
 * once neither clash nor see half an install.
 */
async function installRuntime(runtime: Runtime): Promise<string> {
  const dir = `${RUNTIMES_DIR}/${runtime.spec}`;
  const binary = `${dir}/node_modules/.bin/${runtime.bin}`;
  if (isFile(binary)) return binary;
  await Deno.mkdir(RUNTIMES_DIR, { recursive: true });
  const staging = await Deno.makeTempDir({ dir: RUNTIMES_DIR, prefix: `${runtime.spec}.` });
  try {
    await run("npm", [
      "install",
      "--prefix",
      staging,
      "--no-save",
      "--no-package-lock",
      "--no-audit",
      "--no-fund",
      runtime.spec,
    ], staging);
    await Deno.rename(staging, dir).catch(() => {/* another run was first: use its install */});
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
  if (!isFile(binary)) throw new Error(`npm install ${runtime.spec} left no ${binary}`);
  return binary;
}

/** Binaries by runtime name, or the reason they cannot be had. Installed in parallel. */
async function installRuntimes(): Promise<Map<string, string> | string> {
  const started = performance.now();
  try {
    const binaries = await Promise.all(RUNTIMES.map(installRuntime));
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`npm package test: runtimes ready in ${seconds} s (${RUNTIMES_DIR})`);
    return new Map(RUNTIMES.map((runtime, i) => [runtime.name, binaries[i]]));
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

// Installed before the test is declared, so that it can be ignored with the reason when the
// runtimes cannot be had. Skipped when Mosquitto is missing outside CI: the test is ignored then.
const runtimes = ignoreWithoutMosquitto() ? "Mosquitto is missing" : await installRuntimes();
if (typeof runtimes === "string" && mosquittoAvailable() && !inCi()) {
  console.warn(`npm package test ignored: cannot install Node 22, Node 24 and Bun: ${runtimes}`);
}

/**
 * The child: imports the package by name, subscribes, publishes at QoS 1, receives, closes, and
 * prints one JSON line. It never calls `process.exit`: it must end by itself.
 */
const ROUND_TRIP = `
import { readFileSync } from "node:fs";
import { connect } from "@mqtt/client";

const [url, topic, caFile] = process.argv.slice(2);
const tls = caFile ? { caCerts: [readFileSync(caFile, "utf8")] } : undefined;
const client = await connect(url, { clientId: topic.replaceAll("/", "-"), tls });
const subscription = await client.subscribe(topic, { qos: 1 });
await client.publish(topic, "over " + url.split(":")[0], { qos: 1 });
for await (const message of subscription) {
  console.log(JSON.stringify({
    deno: typeof globalThis.Deno,
    topic: message.topic,
    text: message.text(),
    qos: message.qos,
  }));
  break;
}
await client.close();
`;

/** A consumer module that uses the package's types, with no `any` allowed to slip through. */
const TYPED_CONSUMER = `
import { connect, MqttError, type ConnectOptions, type Transport } from "@mqtt/client";

const options: ConnectOptions = { clientId: "typed", tls: { caCerts: ["PEM"] } };
const client = await connect("mqtts://localhost:8883", options);
const subscription = await client.subscribe("a/#", { qos: 1 });
for await (const message of subscription) {
  const text: string = message.text();
  console.log(message.topic, text);
}
const transport: Transport | undefined = undefined;
const code: string = new MqttError("ABORTED", "stopped").code;
await client.close();
export { code, transport };
`;

Deno.test({
  name: "npm package: packed, installed, typed, and a QoS 1 round trip on Node 22, 24 and Bun",
  ignore: ignoreWithoutMosquitto() || (typeof runtimes === "string" && !inCi()),
  async fn(t) {
    if (typeof runtimes === "string") throw new Error(`runtimes not installed: ${runtimes}`);
    const work = await Deno.makeTempDir({ prefix: "mqtt-npm-package-" });
    try {
      const started = performance.now();
      const lap = (what: string) => {
        console.log(`${what}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
      };

      const packageDir = await buildNpm(new URL(`file://${work}/package/`));
      const [packed] = JSON.parse(
        await run("npm", ["pack", "--json", "--pack-destination", work], packageDir),
      ) as { filename: string; files: { path: string }[] }[];
      const files = packed.files.map((f) => f.path);
      for (const file of ["package.json", "README.md", "LICENSE", "mod.js", "mod.d.ts"]) {
        assert.ok(files.includes(file), `${file} is missing from the package`);
      }
      assert.ok(files.includes("lib/transports/node_tcp.js"));
      assert.deepEqual(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts")), []);
      const manifest = JSON.parse(await Deno.readTextFile(`${packageDir}/package.json`));
      assert.equal(manifest.type, "module");
      assert.deepEqual(Object.keys(manifest.exports), ["."]);
      assert.equal(manifest.dependencies, undefined, "the package has no dependencies");
      lap("built and packed");

      const consumer = `${work}/consumer`;
      await Deno.mkdir(consumer);
      await Deno.writeTextFile(`${consumer}/package.json`, '{ "type": "module" }\n');
      await run(
        "npm",
        ["install", "--no-audit", "--no-fund", `${work}/${packed.filename}`],
        consumer,
      );
      lap("installed from the tarball");

      await t.step("the .d.ts files type-check a consumer (tsc --strict)", async () => {
        await Deno.writeTextFile(`${consumer}/typed.ts`, TYPED_CONSUMER);
        await run("npx", [
          "--yes",
          `--package=${TYPESCRIPT}`,
          "tsc",
          "--noEmit",
          "--strict",
          "--module",
          "nodenext",
          "--target",
          "es2022",
          "--lib",
          "esnext,dom",
          "typed.ts",
        ], consumer);
        lap("type-checked");
      });

      await using broker = await startMosquitto({ websockets: true, tls: true });
      await Deno.writeTextFile(`${consumer}/round_trip.js`, ROUND_TRIP);
      const urls = [
        { scheme: "mqtt", url: broker.url, args: [] },
        { scheme: "ws", url: broker.wsUrl!, args: [] },
        { scheme: "mqtts", url: broker.tlsUrl!, args: [broker.certs!.ca.certFile] },
      ];
      for (const runtime of RUNTIMES) {
        for (const { scheme, url, args } of urls) {
          await t.step(`${runtime.name} over ${scheme}://`, async () => {
            const topic = `npm/${runtime.bin}${runtime.spec.replace(/\D/g, "")}/${scheme}`;
            const out = await new Deno.Command(runtimes.get(runtime.name)!, {
              args: ["round_trip.js", url, topic, ...args],
              cwd: consumer,
              stdout: "piped",
              stderr: "piped",
              signal: AbortSignal.timeout(CHILD_TIMEOUT_MS),
            }).output();
            const output = decoder.decode(out.stdout) + decoder.decode(out.stderr);
            assert.equal(
              out.signal,
              null,
              `still running after ${CHILD_TIMEOUT_MS} ms, killed (something kept the process ` +
                `alive after close()):\n${output}`,
            );
            assert.ok(out.success, `exit code ${out.code}:\n${output}`);
            const lines = decoder.decode(out.stdout).trim().split("\n");
            assert.deepEqual(JSON.parse(lines.at(-1)!), {
              deno: "undefined",
              topic,
              text: `over ${scheme}`,
              qos: 1,
            });
          });
        }
      }
      lap("ran 9 round trips");
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});
