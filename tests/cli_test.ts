/**
 * The `pub`/`sub` tools and `deno task demo`, run as the user runs them: as
 * child processes, against Mosquitto (an independent broker) and the embedded one.
 */
import assert from "node:assert/strict";
import { brokerTest, type Mosquitto, startMosquitto } from "./broker/mosquitto.ts";
import { mosquittoPub, startMosquittoSub } from "./broker/cli.ts";
import { startProxy } from "./broker/proxy.ts";
import { main as subMain } from "../lib/cli/sub.ts";
import { main as pubMain } from "../lib/cli/pub.ts";

const root = new URL("..", import.meta.url);
const decoder = new TextDecoder();

async function run(
  script: string,
  args: string[],
  stdin?: string,
  env?: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(script, root).pathname, ...args],
    env,
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

/** A CLI tool as a child process whose `-d` trace (stdout) and notices (stderr) the test can wait for. */
interface Tool extends AsyncDisposable {
  child: Deno.ChildProcess;
  /** Resolves once stderr has had `count` lines containing `text`; rejects if it ends before. */
  waitFor(text: string, count?: number): Promise<void>;
  /** Everything written to stdout and stderr so far. */
  stderr(): string;
  /**
   * The exit status, once the output has been read to its end too: `child.status` can
   * resolve while the last lines (the error printed before exiting) are still in the pipe.
   */
  exited(): Promise<Deno.CommandStatus>;
}

function spawnTool(script: string, args: string[], stdin: "piped" | "null" = "null"): Tool {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(script, root).pathname, ...args],
    stdin,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  let changed = Promise.withResolvers<boolean>();
  let open = 2;
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      log += chunk;
      changed.resolve(true);
      changed = Promise.withResolvers<boolean>();
    }
    if (--open === 0) changed.resolve(false);
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  return {
    child,
    async waitFor(text, count = 1) {
      while (log.split(text).length - 1 < count) {
        if (!await changed.promise) {
          throw new Error(`${script} ended before printing "${text}" ${count}x:\n${log}`);
        }
      }
    },
    stderr: () => log,
    async exited() {
      const status = await child.status;
      await reading;
      return status;
    },
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await child.status;
      await reading;
    },
  };
}

/** `sub` connected to `broker` with a will on cli/will, once its subscription is in place. */
async function subWithWill(broker: Mosquitto, clientId: string): Promise<Tool> {
  const tool = spawnTool("lib/cli/sub.ts", [
    "-L",
    broker.url,
    "-i",
    clientId,
    "-t",
    "cli/never",
    "-d",
    "--will-topic",
    "cli/will",
    "--will-payload",
    "gone",
    "--will-qos",
    "1",
  ]);
  // `-d` prints "Subscribed (mid: 1): 0" once CONNECT (with the will) has been accepted.
  await tool.waitFor("Subscribed (mid");
  return tool;
}

/** Waits until Mosquitto's log tells how `clientId`'s connection ended, and returns that line. */
async function disconnectLine(broker: Mosquitto, clientId: string): Promise<string> {
  const pattern = new RegExp(`Client ${clientId} (disconnected|closed its connection)[^\n]*`);
  for (;;) {
    const line = pattern.exec(await broker.log())?.[0];
    if (line) return line;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A watcher on cli/will for one message; a marker that comes first proves no will came. */
function willWatcher(broker: Mosquitto) {
  return startMosquittoSub(
    ["-p", String(broker.port), "-h", broker.host, "-t", "cli/will", "-v", "-q", "1"],
    { count: 1 },
  );
}

async function publishMarker(broker: Mosquitto): Promise<void> {
  const r = await mosquittoPub(["-p", String(broker.port), "-t", "cli/will", "-m", "marker"]);
  assert.equal(r.code, 0, r.stderr);
}

brokerTest("sub: a will set with --will-* is published when the process is killed", async () => {
  await using broker = await startMosquitto();
  await using watcher = await willWatcher(broker);
  await using sub = await subWithWill(broker, "cli-killed");
  sub.child.kill("SIGKILL");
  await sub.exited();
  assert.deepEqual(await watcher.done, ["cli/will gone"]);
  // The control for the SIGINT and SIGTERM tests: without DISCONNECT, Mosquitto logs this.
  assert.match(await disconnectLine(broker, "cli-killed"), /closed its connection/);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  brokerTest(
    `sub: ${signal} sends DISCONNECT, so the will is discarded (MQTT-3.14.4-3), and exits 0`,
    async () => {
      await using broker = await startMosquitto();
      await using watcher = await willWatcher(broker);
      const clientId = `cli-${signal.toLowerCase()}`;
      await using sub = await subWithWill(broker, clientId);
      sub.child.kill(signal);
      assert.equal((await sub.exited()).code, 0, sub.stderr());
      // Mosquitto logs "disconnected" for a DISCONNECT, "closed its connection" without one.
      assert.match(await disconnectLine(broker, clientId), /disconnected/);
      // The will would have been published when the connection ended, before this marker.
      await publishMarker(broker);
      assert.deepEqual(await watcher.done, ["cli/will marker"]);
    },
  );
}

brokerTest(
  "pub -l: SIGINT publishes the lines read so far, sends DISCONNECT, exits 0",
  async () => {
    await using broker = await startMosquitto();
    await using watcher = await willWatcher(broker);
    await using lines = await startMosquittoSub(
      ["-p", String(broker.port), "-h", broker.host, "-t", "cli/lines", "-q", "1"],
      { count: 2 },
    );
    await using pub = spawnTool("lib/cli/pub.ts", [
      ...["-L", broker.url, "-i", "cli-pub", "-t", "cli/lines", "-l", "-q", "1", "-d"],
      ...["--will-topic", "cli/will", "--will-payload", "gone"],
    ], "piped");
    const stdin = pub.child.stdin.getWriter();
    await stdin.write(new TextEncoder().encode("one\ntwo\n"));
    await pub.waitFor("received PUBACK", 2);
    // stdin stays open: only the interrupt can end the tool.
    pub.child.kill("SIGINT");
    assert.equal((await pub.exited()).code, 0, pub.stderr());
    await stdin.close().catch(() => {});
    assert.deepEqual(await lines.done, ["one", "two"]);
    assert.match(await disconnectLine(broker, "cli-pub"), /disconnected/);
    await publishMarker(broker);
    assert.deepEqual(await watcher.done, ["cli/will marker"]);
  },
);

brokerTest(
  "pub: a second SIGINT while closing waits on an unacknowledged publish exits 130",
  async () => {
    await using broker = await startMosquitto();
    await using pub = spawnTool(
      "lib/cli/pub.ts",
      ["-L", broker.url, "-t", "cli/lines", "-l", "-q", "1", "-d"],
      "piped",
    );
    const stdin = pub.child.stdin.getWriter();
    try {
      await stdin.write(new TextEncoder().encode("one\n"));
      await pub.waitFor("received PUBACK");
      // A paused broker never sends the PUBACK, so close() waits for it (up to closeTimeout, 5 s).
      await broker.pause();
      await stdin.write(new TextEncoder().encode("two\n"));
      await pub.waitFor("sending PUBLISH", 2);
      pub.child.kill("SIGINT");
      await pub.waitFor("interrupted: closing");
      pub.child.kill("SIGINT");
      assert.equal((await pub.exited()).code, 130, pub.stderr());
    } finally {
      await broker.resume();
      await stdin.close().catch(() => {});
    }
  },
);

Deno.test("pub/sub: bad arguments exit 1 as mosquitto's do, broker errors exit 1 with the code", async () => {
  assert.equal(await pubMain(["-t", "a", "--quiet"]), 1); // no message source
  assert.equal(await pubMain(["-x", "--quiet"]), 1);
  assert.equal(await subMain(["-q", "3", "-t", "a", "--quiet"]), 1);
  assert.equal(await subMain(["-C", "0", "-t", "a", "--quiet"]), 1);
  const refused = await run("lib/cli/pub.ts", ["-p", "1", "-h", "127.0.0.1", "-t", "a", "-m", "x"]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /TRANSPORT_ERROR/);
  const wildcard = await run("lib/cli/pub.ts", ["-t", "a/+", "-m", "x", "-p", "1"]);
  assert.equal(wildcard.code, 1);
});

brokerTest(
  "SIGINT while connecting: sub exits 0, pub -m exits 1 (its message was not sent)",
  async () => {
    await using broker = await startMosquitto();
    await using proxy = await startProxy({ target: { hostname: broker.host, port: broker.port } });
    // A black hole accepts the connection and never answers CONNECT.
    proxy.blackhole(true);
    for (
      const [script, args, code] of [
        ["lib/cli/sub.ts", ["-t", "a"], 0],
        ["lib/cli/pub.ts", ["-t", "a", "-m", "x"], 1],
      ] as const
    ) {
      await using tool = spawnTool(script, ["-L", proxy.url, "-d", ...args]);
      await tool.waitFor("sending CONNECT");
      tool.child.kill("SIGINT");
      assert.equal((await tool.exited()).code, code, tool.stderr());
      if (code === 1) assert.match(tool.stderr(), /ABORTED/);
    }
  },
);

const USERS = { alice: "S3CRET pass" };

brokerTest("pub/sub -d and URL errors never show the password", async () => {
  await using broker = await startMosquitto({ auth: "password", users: USERS });
  const url = `mqtt://alice:${encodeURIComponent(USERS.alice)}@${broker.host}:${broker.port}`;
  const pub = await run("lib/cli/pub.ts", ["-L", url, "-t", "cli/a", "-m", "x", "-d"]);
  assert.equal(pub.code, 0, pub.stderr);
  assert.match(pub.stdout, /received CONNACK \(0\)/);
  const sub = await run("lib/cli/sub.ts", ["-L", url, "-t", "cli/a", "-W", "0.2", "-d"]);
  assert.equal(sub.code, 27, sub.stderr);
  assert.match(sub.stdout, /received CONNACK \(0\)/);
  // Port 99999 does not parse: the error repeats the URL, redacted.
  const bad = await run("lib/cli/pub.ts", ["-L", `${url}9`, "-t", "a", "-m", "x"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /INVALID_OPTION.*alice:\*\*\*@/);
  const badEscape = await run("lib/cli/sub.ts", ["-L", "mqtt://alice:S3%zzCRET@h", "-t", "a"]);
  assert.equal(badEscape.code, 1);
  assert.match(badEscape.stderr, /the password in broker URL "mqtt:\/\/alice:\*\*\*@h"/);
  for (const out of [pub, sub, bad, badEscape]) {
    assert.doesNotMatch(out.stdout + out.stderr, /S3CRET|S3%/);
  }
});

brokerTest("pub: the password comes from -P, --pw-file or MQTT_PASSWORD", async (t) => {
  await using broker = await startMosquitto({ auth: "password", users: USERS });
  const dir = await Deno.makeTempDir();
  try {
    const right = `${dir}/right`;
    const wrong = `${dir}/wrong`;
    await Deno.writeTextFile(right, `${USERS.alice}\n`);
    await Deno.writeTextFile(wrong, "nope\n");
    const hostUrl = broker.url;
    const userUrl = `mqtt://alice@${broker.host}:${broker.port}`;
    const pub = (args: string[], env: Record<string, string> = {}) =>
      run("lib/cli/pub.ts", ["-t", "cli/a", "-m", "x", ...args], undefined, env);
    const cases: [string, string[], Record<string, string>, number][] = [
      ["no password: refused (auth is on)", ["-L", hostUrl, "-u", "alice"], {}, 5],
      ["-P", ["-L", hostUrl, "-u", "alice", "-P", USERS.alice], {}, 0],
      ["--pw-file", ["-L", hostUrl, "-u", "alice", "--pw-file", right], {}, 0],
      ["--pw-file, wrong", ["-L", hostUrl, "-u", "alice", "--pw-file", wrong], {}, 5],
      ["--pw-file, user in the URL", ["-L", userUrl, "--pw-file", right], {}, 0],
      ["MQTT_PASSWORD", ["-L", hostUrl, "-u", "alice"], { MQTT_PASSWORD: USERS.alice }, 0],
      ["MQTT_PASSWORD, user in the URL", ["-L", userUrl], { MQTT_PASSWORD: USERS.alice }, 0],
      [
        "-P wins over MQTT_PASSWORD",
        ["-L", userUrl, "-P", "nope"],
        { MQTT_PASSWORD: USERS.alice },
        5,
      ],
      ["--pw-file wins over MQTT_PASSWORD", ["-L", userUrl, "--pw-file", right], {
        MQTT_PASSWORD: "nope",
      }, 0],
      ["-P and --pw-file together", ["-L", userUrl, "-P", "x", "--pw-file", right], {}, 1],
      ["--pw-file missing", ["-L", userUrl, "--pw-file", `${dir}/none`], {}, 1],
    ];
    for (const [name, args, env, code] of cases) {
      await t.step(name, async () => {
        const result = await pub(args, env);
        assert.equal(result.code, code, result.stderr);
        if (code === 5) assert.match(result.stderr, /Connection Refused: not authorised/);
        assert.ok(!result.stderr.includes(USERS.alice), result.stderr);
      });
    }
    // The help names the environment variable and the flag.
    const help = await run("lib/cli/sub.ts", ["--help"]);
    assert.match(help.stdout, /MQTT_PASSWORD/);
    assert.match(help.stdout, /--pw-file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
