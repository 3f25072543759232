/**
 * `pub` and `sub` given several servers (`-L` or `-h` more than once): they try them in order
 * and use the first that accepts the connection. Run as child processes against Mosquitto.
 */
import assert from "node:assert/strict";
import { brokerTest, freePorts, startMosquitto } from "./broker/mod.ts";
import { mosquittoPub, startMosquittoSub } from "./broker/cli.ts";
import { parseArgs } from "../lib/cli/args.ts";

const root = new URL("..", import.meta.url);
const decoder = new TextDecoder();

async function run(
  script: string,
  args: string[],
): Promise<{ code: number; stderr: string; stdout: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(script, root).pathname, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test("cli args: -L and -h may repeat; each -h gets the port", async () => {
  const byUrl = await parseArgs(["-L", "mqtt://a:1", "-L", "ws://b/mqtt", "-t", "t"], []);
  assert.deepEqual(byUrl.urls, ["mqtt://a:1", "ws://b/mqtt"]);
  assert.equal(byUrl.url, "mqtt://a:1");
  const byHost = await parseArgs(["-h", "a", "-h", "::1", "-p", "1884", "-t", "t"], []);
  assert.deepEqual(byHost.urls, ["mqtt://a:1884", "mqtt://[::1]:1884"]);
  const single = await parseArgs(["-t", "t"], []);
  assert.deepEqual(single.urls, ["mqtt://localhost:1883"]);
});

brokerTest("pub/sub: several -L URLs or -h hosts: the first that accepts is used", async () => {
  await using broker = await startMosquitto();
  const [dead] = freePorts(1);
  const deadUrl = `mqtt://127.0.0.1:${dead}`;
  const pub = await run("lib/cli/pub.ts", [
    "-L",
    deadUrl,
    "-L",
    broker.url,
    "-t",
    "cli/f",
    "-m",
    "from pub",
    "-r",
    "-q",
    "1",
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  await using check = await startMosquittoSub(
    ["-p", String(broker.port), "-h", broker.host, "-t", "cli/f"],
    { count: 1 },
  );
  assert.deepEqual(await check.done, ["from pub"]);

  const sub = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("lib/cli/sub.ts", root).pathname,
      "-h",
      "127.0.0.2",
      "-h",
      broker.host,
      "-p",
      String(broker.port),
      "-t",
      "cli/g",
      "-C",
      "1",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Retained, so it reaches sub however late it subscribes.
  const sent = await mosquittoPub([
    "-p",
    String(broker.port),
    "-h",
    broker.host,
    "-t",
    "cli/g",
    "-m",
    "hello",
    "-r",
  ]);
  assert.equal(sent.code, 0);
  const out = await sub.output();
  const stderr = decoder.decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.equal(decoder.decode(out.stdout), "hello\n");

  // None accepts: exit 1 with the last server's error.
  const none = await run("lib/cli/pub.ts", [
    "-L",
    deadUrl,
    "-L",
    deadUrl,
    "-t",
    "cli/f",
    "-m",
    "x",
  ]);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, new RegExp(String(dead)));
});
