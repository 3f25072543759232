/**
 * `pub` and `sub` beside `mosquitto_pub` and `mosquitto_sub` 2.0 on the same Mosquitto: each
 * scenario runs the real tool and ours with the same flags and asserts the same standard output
 * (the `-d` packet trace included, interleaved with the messages as mosquitto prints them;
 * client ids aside) and the same exit code.
 */
import assert from "node:assert/strict";
import { brokerTest, findExecutable, type Mosquitto, startMosquitto } from "./broker/mosquitto.ts";
import { mosquittoPub } from "./broker/cli.ts";

const root = new URL("..", import.meta.url);

type Tool = "pub" | "sub";

/** A tool as a child process whose stdout lines the test can wait for. */
interface Running extends AsyncDisposable {
  /** Resolves once stdout has a line matching `pattern`; rejects if the process ends first. */
  waitFor(pattern: RegExp): Promise<void>;
  /** Exit code, stdout and stderr once it ended. */
  done: Promise<{ code: number; stdout: string; stderr: string }>;
  kill(signal?: Deno.Signal): void;
}

function command(which: "theirs" | "ours", tool: Tool, args: string[]): Deno.Command {
  if (which === "ours") {
    return new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(`lib/cli/${tool}.ts`, root).pathname, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
  }
  const bin = findExecutable(`mosquitto_${tool}`)!;
  // mosquitto does not flush its -d lines on a pipe: line buffering lets the test see them.
  const stdbuf = findExecutable("stdbuf");
  return new Deno.Command(stdbuf ?? bin, {
    args: stdbuf ? ["-oL", bin, ...args] : args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

function start(which: "theirs" | "ours", tool: Tool, args: string[]): Running {
  const child = command(which, tool, args).spawn();
  let out = "";
  let changed = Promise.withResolvers<boolean>();
  const reading = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      out += chunk;
      changed.resolve(true);
      changed = Promise.withResolvers<boolean>();
    }
    changed.resolve(false);
  })();
  const stderr = new Response(child.stderr).text();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const done = (async () => {
    await reading;
    const { code } = await child.status;
    clearTimeout(timer);
    return { code, stdout: out, stderr: await stderr };
  })();
  return {
    async waitFor(pattern) {
      while (!pattern.test(out)) {
        if (!await changed.promise) throw new Error(`ended before ${pattern}:\n${out}`);
      }
    },
    done,
    kill(signal = "SIGKILL") {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
    },
    async [Symbol.asyncDispose]() {
      this.kill();
      await done;
    },
  };
}

/** Runs `tool` to its end. */
function run(which: "theirs" | "ours", tool: Tool, args: string[]) {
  return start(which, tool, args).done;
}

/** Output with the tool's name and client ids made equal. */
function normal(text: string): string {
  return text.replaceAll("mosquitto_sub", "sub").replaceAll("mosquitto_pub", "pub")
    .replace(/Client \S+ /g, "Client ID ");
}

/** Runs both tools after `before()` each time, and asserts equal stdout and exit code. */
async function same(
  tool: Tool,
  args: string[],
  before: () => Promise<void> = async () => {},
  compareStdout = true,
): Promise<{ code: number; stdout: string; stderr: string }> {
  await before();
  const theirs = await run("theirs", tool, args);
  await before();
  const ours = await run("ours", tool, args);
  if (compareStdout) {
    assert.equal(normal(ours.stdout), normal(theirs.stdout), `stdout of ${args.join(" ")}`);
  }
  assert.equal(ours.code, theirs.code, `exit code of ${args.join(" ")}: ${ours.stderr}`);
  return ours;
}

async function publish(broker: Mosquitto, topic: string, payload: string | null, retain = false) {
  const r = await mosquittoPub([
    ...["-p", String(broker.port), "-t", topic],
    ...(payload === null ? ["-n"] : ["-m", payload]),
    ...(retain ? ["-r"] : []),
  ]);
  assert.equal(r.code, 0, r.stderr);
}

/** Three retained messages under ret/. */
function seed(broker: Mosquitto): () => Promise<void> {
  return async () => {
    for (const [topic, text] of [["ret/a", "A"], ["ret/b", "B"], ["ret/c", "C"]]) {
      await publish(broker, topic, text, true);
    }
  };
}

const at = (broker: Mosquitto) => ["-h", broker.host, "-p", String(broker.port)];

brokerTest(
  "sub --remove-retained clears the retained messages it sees, -T keeps some",
  async () => {
    await using broker = await startMosquitto();
    const args = [
      ...at(broker),
      "-t",
      "ret/#",
      "-v",
      "--remove-retained",
      "-T",
      "ret/c",
      "-W",
      "1",
    ];
    const ours = await same("sub", args, seed(broker));
    // The empty retained messages come back as live messages: "(null)" under -v.
    assert.match(ours.stdout, /ret\/a A\n/);
    assert.match(ours.stdout, /ret\/a \(null\)\n/);
    // What is left retained: ret/c only.
    const left = await run("theirs", "sub", [...at(broker), "-t", "ret/#", "-v", "-W", "1"]);
    assert.equal(left.stdout, "ret/c C\n");
  },
);

brokerTest("sub -W prints Timed out and exits 27; --quiet keeps it silent", async () => {
  await using broker = await startMosquitto();
  const ours = await same("sub", [...at(broker), "-t", "none", "-W", "1"]);
  assert.equal(ours.code, 27);
  assert.equal(ours.stderr, "Timed out\n");
  const quiet = await same("sub", [...at(broker), "-t", "none", "-W", "1", "--quiet"]);
  assert.equal(quiet.stderr, "");
});

brokerTest("sub flags on retained messages: -R, -T, --retained-only, -C, -N, -E, -U", async (t) => {
  await using broker = await startMosquitto();
  const cases: string[][] = [
    ["-t", "ret/#", "-v", "-W", "1", "-R"],
    ["-t", "ret/#", "-v", "-W", "1", "-T", "ret/b", "-T", "ret/+/x"],
    ["-t", "ret/#", "-v", "-C", "2"],
    ["-t", "ret/a", "-N", "-C", "1"],
    // Not `-t ret/# -E`: whether the retained messages that follow the SUBACK are printed
    // before the exit depends on how the bytes arrive, for mosquitto_sub as for ours.
    ["-t", "none", "-E", "-d", "-i", "e"],
    ["-t", "ret/#", "-v", "-C", "3", "-d", "-i", "d", "-q", "1"],
    ["-t", "ret/a", "-t", "ret/b", "-v", "-W", "1", "-U", "ret/c", "-d", "-i", "u"],
    ["-L", `mqtt://${broker.host}:${broker.port}/ret/+`, "-v", "-C", "3"],
    ["-L", `mqtt://${broker.host}:${broker.port}/ret/#`, "-t", "other", "-v", "-C", "3"],
  ];
  await seed(broker)();
  for (const args of cases) {
    await t.step(args.join(" "), async () => {
      await same("sub", [...(args[0] === "-L" ? [] : at(broker)), ...args]);
    });
  }
  await t.step("--retained-only: exits at the first live message", async () => {
    const theirs = start("theirs", "sub", [...at(broker), "-t", "ret/#", "-v", "--retained-only"]);
    const ours = start("ours", "sub", [...at(broker), "-t", "ret/#", "-v", "--retained-only"]);
    await theirs.waitFor(/ret\/c C\n/);
    await ours.waitFor(/ret\/c C\n/);
    await publish(broker, "ret/live", "L");
    const [a, b] = [await theirs.done, await ours.done];
    assert.equal(b.stdout, a.stdout);
    assert.equal(b.code, a.code);
  });
});

brokerTest(
  "sub: live messages, empty payloads ((null) with -v, nothing without), -d trace",
  async () => {
    await using broker = await startMosquitto();
    for (const extra of [["-v"], [], ["-v", "-q", "2"], ["-q", "1", "-F", "%t %q %p"], ["-N"]]) {
      const args = [...at(broker), "-t", "live/#", "-d", "-C", "3", ...extra];
      await using theirs = start("theirs", "sub", [...args, "-i", "theirs"]);
      await using ours = start("ours", "sub", [...args, "-i", "ours"]);
      await theirs.waitFor(/^Subscribed/m);
      await ours.waitFor(/^Subscribed/m);
      for (const [qos, payload] of [["0", null], ["1", "one"], ["2", null]] as const) {
        const r = await mosquittoPub([
          ...at(broker),
          ...["-t", "live/x", "-q", qos],
          ...(payload === null ? ["-n"] : ["-m", payload]),
        ]);
        assert.equal(r.code, 0, r.stderr);
      }
      const [a, b] = [await theirs.done, await ours.done];
      assert.equal(normal(b.stdout), normal(a.stdout), extra.join(" "));
      assert.equal(b.code, a.code);
    }
  },
);

brokerTest("sub -F: mosquitto's conversions, widths and escapes", async () => {
  await using broker = await startMosquitto();
  await publish(broker, "fmt/a", 'hé"x', true);
  const formats = [
    "%t|%p|%l|%q|%r|%m|%x|%X|%%",
    "%10t|%-6l|%05l|%10p|%-8p|%A%C%D%E%F%P%R%S",
    "a\\tb\\\\c\\e",
  ];
  for (const format of formats) {
    await same("sub", [...at(broker), "-t", "fmt/a", "-C", "1", "-F", format]);
  }
  // Times differ between two runs: their shape is compared.
  const format = (which: "theirs" | "ours", f: string) =>
    run(which, "sub", [...at(broker), "-t", "fmt/a", "-C", "1", "-F", f]);
  const times = await format("ours", "%I %U @Y");
  assert.match(times.stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \d+\.\d{9} \d{4}\n$/);
  const theirsJson = await format("theirs", "%j");
  const oursJson = await format("ours", "%j");
  const strip = (s: string) => s.replace(/"tst":"[^"]*"/, '"tst":""');
  assert.equal(strip(oursJson.stdout), strip(theirsJson.stdout));
  assert.match(oursJson.stdout, /"tst":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z[+-]\d{4}"/);
  // Bad formats are usage errors, worded as mosquitto words them.
  for (const bad of ["%i", "%", "\\q"]) {
    const ours = await same("sub", [...at(broker), "-t", "fmt/a", "-F", bad]);
    const theirs = await run("theirs", "sub", [...at(broker), "-t", "fmt/a", "-F", bad]);
    assert.equal(normal(ours.stderr), normal(theirs.stderr));
  }
});

brokerTest("sub: a broker restart is reconnected, as mosquitto_sub does", async () => {
  await using broker = await startMosquitto();
  const args = [...at(broker), "-t", "restart/x", "-v", "-C", "1", "-q", "1"];
  await using theirs = start("theirs", "sub", [...args, "-d", "-i", "theirs"]);
  await using ours = start("ours", "sub", [...args, "-d", "-i", "ours"]);
  await theirs.waitFor(/^Subscribed/m);
  await ours.waitFor(/^Subscribed/m);
  await broker.restart();
  // Both subscribe again after reconnecting (a clean session forgot the subscription).
  await theirs.waitFor(/^Subscribed[^]*^Subscribed/m);
  await ours.waitFor(/^Subscribed[^]*^Subscribed/m);
  await publish(broker, "restart/x", "after");
  const [a, b] = [await theirs.done, await ours.done];
  assert.match(a.stdout, /^restart\/x after$/m);
  assert.match(b.stdout, /^restart\/x after$/m);
  assert.equal(b.code, a.code);
  assert.equal(b.code, 0);
});

brokerTest("pub: -d trace at QoS 0, 1, 2, --repeat, -M, -r, -n, -L with topic", async (t) => {
  await using broker = await startMosquitto();
  const cases: string[][] = [
    ["-t", "p/a", "-m", "x", "-d", "-i", "p"],
    ["-t", "p/a", "-m", "xy", "-d", "-i", "p", "-q", "1", "-r"],
    ["-t", "p/a", "-m", "xyz", "-d", "-i", "p", "-q", "2", "-M", "1"],
    ["-t", "p/a", "-n", "-d", "-i", "p", "-q", "1", "--repeat", "3", "--repeat-delay", "0.05"],
    ["-t", "p/a", "-m", "x", "-d", "-i", "p", "--repeat", "2"],
    ["-L", `mqtt://${broker.host}:${broker.port}/p/url`, "-m", "u", "-d", "-i", "p", "-q", "1"],
  ];
  for (const args of cases) {
    await t.step(args.join(" "), async () => {
      await same("pub", [...(args[0] === "-L" ? [] : at(broker)), ...args]);
    });
  }
});

brokerTest(
  "pub/sub: refused CONNECT exits with the return code; usage errors exit 1",
  async (t) => {
    await using broker = await startMosquitto({ auth: "password" });
    for (const tool of ["pub", "sub"] as const) {
      await t.step(`${tool}: not authorised exits 5 with mosquitto's line`, async () => {
        const args = [...at(broker), "-t", "a", ...(tool === "pub" ? ["-m", "x"] : [])];
        const ours = await same(tool, args);
        assert.equal(ours.code, 5);
        const theirs = await run("theirs", tool, args);
        assert.equal(ours.stderr, theirs.stderr);
        assert.equal((await same(tool, [...args, "--quiet"])).stderr, "");
      });
    }
    // mosquitto_pub prints its whole help after a usage error; ours points to --help.
    const usage: [Tool, string[]][] = [
      ["sub", []],
      ["sub", ["-t", "a", "-q", "3"]],
      ["sub", ["-t", "a", "--bogus"]],
      ["sub", ["-t", "a", "-c"]],
      ["sub", ["-t", "a", "-F", "%i"]],
      ["pub", ["-t", "a"]],
      ["pub", ["-m", "x"]],
      ["pub", ["-t", "a", "-m", "x", "-q", "3"]],
    ];
    for (const [tool, args] of usage) {
      await t.step(`${tool} ${args.join(" ")}: exit 1 and mosquitto's message`, async () => {
        const ours = await same(tool, [...at(broker), ...args], undefined, tool === "sub");
        assert.equal(ours.code, 1);
        const theirs = await run("theirs", tool, [...at(broker), ...args]);
        assert.equal(normal(ours.stderr).split("\n")[0], normal(theirs.stderr).split("\n")[0]);
      });
    }
    await t.step("a missing --cafile: one line, exit 1, no stack trace", async () => {
      const args = [...at(broker), "-t", "a", "--cafile", "/nonexistent/ca.pem"];
      const ours = await same("sub", args);
      assert.equal(ours.stderr.trim().split("\n").length, 1, ours.stderr);
      assert.match(ours.stderr, /^Error: Problem setting TLS options: .*--cafile.*file not found/);
    });
    await t.step("--version and --help exit 0", async () => {
      for (const tool of ["pub", "sub"] as const) {
        const version = await run("ours", tool, ["--version"]);
        assert.equal(version.code, 0);
        assert.match(version.stdout, new RegExp(`^${tool} version \\d+\\.\\d+\\.\\d+`));
        const help = await run("ours", tool, ["--help"]);
        assert.equal(help.code, 0);
        assert.match(help.stdout, /--tls-use-os-certs/);
      }
    });
  },
);

brokerTest("sub TLS flags: --cafile, --capath (hashed names), --tls-use-os-certs", async (t) => {
  await using broker = await startMosquitto({ tls: true });
  const ca = broker.certs!.ca;
  const dir = await Deno.makeTempDir();
  try {
    // A --capath directory as c_rehash leaves it: <subject hash>.0, which mosquitto looks up.
    const hash = await new Deno.Command("openssl", {
      args: ["x509", "-hash", "-noout", "-in", ca.certFile],
      stdout: "piped",
    }).output();
    const name = new TextDecoder().decode(hash.stdout).trim();
    await Deno.copyFile(ca.certFile, `${dir}/${name}.0`);
    const tls = ["-h", "localhost", "-p", String(broker.tlsPort), "-t", "a", "-E"];
    for (
      const [label, flags, code] of [
        ["--cafile", ["--cafile", ca.certFile], 0],
        ["--capath", ["--capath", dir], 0],
        ["--tls-use-os-certs: the test CA is not among them", ["--tls-use-os-certs"], 8],
      ] as const
    ) {
      await t.step(label, async () => {
        if (code === 0) {
          assert.equal((await same("sub", [...tls, ...flags])).code, 0);
          return;
        }
        // mosquitto_sub exits 8 (MOSQ_ERR_TLS) when the loop meets the TLS failure, 1 when its
        // connect call does; which one varies from run to run. Ours exits 8.
        const theirs = await run("theirs", "sub", [...tls, ...flags]);
        assert.ok(theirs.code === 8 || theirs.code === 1, `${theirs.code}: ${theirs.stderr}`);
        const ours = await run("ours", "sub", [...tls, ...flags]);
        assert.equal(ours.code, 8, ours.stderr);
        assert.match(ours.stderr, /not trusted.*--cafile/);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

brokerTest(
  "sub -V 5 -F: the MQTT 5.0 property conversions print what mosquitto_sub prints",
  async () => {
    await using broker = await startMosquitto();
    const r = await mosquittoPub([
      ...["-p", String(broker.port), "-V", "5", "-t", "v5/x", "-m", "hi", "-r"],
      ...[
        "-D",
        "publish",
        "user-property",
        "k1",
        "v1",
        "-D",
        "publish",
        "user-property",
        "k2",
        "v2",
      ],
      ...[
        "-D",
        "publish",
        "content-type",
        "text/plain",
        "-D",
        "publish",
        "correlation-data",
        "abc",
      ],
      ...[
        "-D",
        "publish",
        "payload-format-indicator",
        "1",
        "-D",
        "publish",
        "response-topic",
        "r/t",
      ],
    ]);
    assert.equal(r.code, 0, r.stderr);
    const format = "A=[%A] C=[%-12C] D=[%D] E=[%E] F=[%F] P=[%P] R=[%R] S=[%S] %t %p";
    const args = [...at(broker), "-V", "5", "-t", "v5/x", "-C", "1", "-F", format];
    const theirs = await run("theirs", "sub", args);
    const ours = await run("ours", "sub", args);
    assert.equal(theirs.code, 0, theirs.stderr);
    assert.equal(ours.code, 0, ours.stderr);
    const expected =
      "A=[] C=[text/plain  ] D=[abc] E=[] F=[1] P=[k1:v1 k2:v2] R=[r/t] S=[%] v5/x hi\n";
    assert.equal(theirs.stdout, expected.replace("%", ""));
    // The one difference: our client subscribes with a Subscription Identifier whenever the server
    // takes them (it routes each message by it), so the message carries one; mosquitto_sub sends
    // one only when told to (-D subscribe subscription-identifier).
    const id = /S=\[(\d+)\]/.exec(ours.stdout)?.[1];
    assert.ok(id !== undefined && Number(id) >= 1, ours.stdout);
    assert.equal(ours.stdout, expected.replace("%", id));
  },
);
