/**
 * The programs in `examples/` run to completion against a real Mosquitto and print what they
 * promise (each runs as its own `deno run` process, as a user would run it).
 *
 * @module
 */
import assert from "node:assert/strict";
import { brokerTest, type Mosquitto, startMosquitto } from "./broker/mod.ts";

const examples = new URL("../examples/", import.meta.url);

async function run(name: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(name, examples).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `${name} exited with ${out.code}:\n${stdout}\n${stderr}`);
  return stdout;
}

const CASES: [string, (broker: Mosquitto) => string[], RegExp[]][] = [
  ["pub_sub.ts", (b) => [b.url], [
    /kitchen\/temp = 21\.5 \(QoS 1\)/,
    /attic\/temp = 27\.25/,
    /done/,
  ]],
  ["qos2.ts", (b) => [b.url, "50"], [/received all 50 exactly once, in order, at QoS 2/]],
  ["will.ts", (b) => [b.url], [/: online\n.*loses its connection.*\n.*: offline/]],
  [
    "persistent_session.ts",
    (b) => [b.url],
    [/sessionPresent=false/, /back online: sessionPresent=true/, /job 1\n.*job 2\n.*job 3/],
  ],
  [
    "mutual_tls.ts",
    (b) => [b.tlsUrl!, b.certs!.ca.certFile, b.certs!.client.certFile, b.certs!.client.keyFile],
    [/with a client certificate/, /hello over mutual TLS/],
  ],
];

brokerTest("examples run against Mosquitto", async (t) => {
  await using broker = await startMosquitto({ requireClientCert: true });
  for (const [name, args, expected] of CASES) {
    await t.step(name, async () => {
      const output = await run(name, args(broker));
      for (const pattern of expected) assert.match(output, pattern, `${name} printed:\n${output}`);
    });
  }
});
