/**
 * The `pub`/`sub` tools and `deno task demo`, run as the user runs them: as
 * child processes, against Mosquitto (an independent broker) and the embedded one.
 */
import assert from "node:assert/strict";
import { brokerTest, startMosquitto } from "./broker/mosquitto.ts";
import { mosquittoPub, startMosquittoSub } from "./broker/cli.ts";
import { main as subMain } from "../lib/cli/sub.ts";
import { main as pubMain } from "../lib/cli/pub.ts";

const root = new URL("..", import.meta.url);
const decoder = new TextDecoder();

async function run(
  script: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(script, root).pathname, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Collects what `sub` writes. */
function sink(): { stream: WritableStream<Uint8Array>; text: () => string } {
  let text = "";
  return {
    stream: new WritableStream({ write: (chunk) => void (text += decoder.decode(chunk)) }),
    text: () => text,
  };
}

brokerTest("pub: each stdin line (-l) reaches mosquitto_sub at QoS 2", async () => {
  await using broker = await startMosquitto();
  await using sub = await startMosquittoSub(
    ["-p", String(broker.port), "-h", broker.host, "-t", "cli/#", "-v", "-q", "2"],
    { count: 3 },
  );
  const result = await run(
    "lib/cli/pub.ts",
    ["-L", broker.url, "-t", "cli/lines", "-l", "-q", "2"],
    "one\ntwo\nthree\n",
  );
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(await sub.done, ["cli/lines one", "cli/lines two", "cli/lines three"]);
});

brokerTest("sub: -C and -v print what mosquitto_pub sends, then exit 0", async () => {
  await using broker = await startMosquitto();
  const out = sink();
  const done = subMain([
    "-h",
    broker.host,
    "-p",
    String(broker.port),
    "-t",
    "cli/+",
    "-v",
    "-C",
    "2",
    "-q",
    "1",
  ], out.stream);
  // Retained messages reach sub however late it subscribes, so the test does not race it.
  for (const [topic, text] of [["cli/a", "alpha"], ["cli/b", "beta"]]) {
    const r = await mosquittoPub([
      "-p",
      String(broker.port),
      "-t",
      topic,
      "-m",
      text,
      "-q",
      "1",
      "-r",
    ]);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.equal(await done, 0);
  assert.deepEqual(out.text().trim().split("\n").sort(), ["cli/a alpha", "cli/b beta"]);
});

brokerTest("sub: a will set with --will-* is published when the process is killed", async () => {
  await using broker = await startMosquitto();
  await using watcher = await startMosquittoSub(
    ["-p", String(broker.port), "-h", broker.host, "-t", "cli/will", "-v", "-q", "1"],
    { count: 1 },
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("lib/cli/sub.ts", root).pathname,
      "-L",
      broker.url,
      "-t",
      "cli/never",
      "-d",
      "--will-topic",
      "cli/will",
      "--will-payload",
      "gone",
      "--will-qos",
      "1",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // `-d` prints "subscribed to ..." once CONNECT (with the will) has been accepted.
  let log = "";
  for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
    log += chunk;
    if (log.includes("subscribed to")) break;
  }
  child.kill("SIGKILL");
  await child.status;
  assert.deepEqual(await watcher.done, ["cli/will gone"]);
});

Deno.test("pub/sub: bad arguments exit 2 with the usage, broker errors exit 1 with the code", async () => {
  assert.equal(await pubMain(["-t", "a"]), 2); // no message source
  assert.equal(await pubMain(["-x"]), 2);
  assert.equal(await subMain(["-q", "3", "-t", "a"]), 2);
  assert.equal(await subMain(["-C", "0", "-t", "a"]), 2);
  const refused = await run("lib/cli/pub.ts", ["-p", "1", "-h", "127.0.0.1", "-t", "a", "-m", "x"]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /TRANSPORT_ERROR/);
  const wildcard = await run("lib/cli/pub.ts", ["-t", "a/+", "-m", "x", "-p", "1"]);
  assert.equal(wildcard.code, 1);
});

Deno.test("deno task demo: runs every step against the embedded broker and exits 0", async () => {
  const result = await run("examples/demo.ts", []);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  for (
    const step of [
      "QoS 0",
      "QoS 1",
      "QoS 2",
      "retain=true",
      "will received",
      "done: every step worked",
    ]
  ) {
    assert.ok(result.stdout.includes(step), `missing "${step}" in:\n${result.stdout}`);
  }
});

brokerTest("deno task demo --url: runs every step against Mosquitto", async () => {
  await using broker = await startMosquitto();
  const result = await run("examples/demo.ts", ["--url", broker.url]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.ok(result.stdout.includes("done: every step worked"));
});
