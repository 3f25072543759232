/**
 * `deno task broker` (examples/broker_main.ts): its flags reach the broker.
 */
import assert from "node:assert/strict";
import { sharedCerts } from "./broker/certs.ts";
import { RawClient } from "./broker_helpers.ts";

const MAIN = new URL("../examples/broker_main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

/** Starts the broker CLI; resolves with the ports it printed once it listens. */
async function startCli(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-read", MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const ports: number[] = [];
  while (!out.includes("starting")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  // Every listener is printed after "starting"; read until each line is in.
  const expected = args.filter((a) => a === "-p" || a.endsWith("-port")).length;
  while ((out.match(/listen socket on/g) ?? []).length < expected) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  for (const match of out.matchAll(/listen socket on [^:]+:(\d+)\./g)) ports.push(Number(match[1]));
  return {
    ports,
    out,
    async stop() {
      child.kill("SIGTERM");
      reader.cancel().catch(() => {});
      const status = await child.status;
      await child.stderr.cancel();
      return status;
    },
  };
}

Deno.test("deno task broker: --tls-port/--cert/--key/--cafile/--require-certificate and --max-qos", async () => {
  const certs = await sharedCerts();
  const cli = await startCli([
    "-q",
    "-p",
    "0",
    "--tls-port",
    "0",
    "--cert",
    certs.server.certFile,
    "--key",
    certs.server.keyFile,
    "--cafile",
    certs.ca.certFile,
    "--require-certificate",
    "--max-qos",
    "1",
  ]);
  try {
    assert.equal(cli.ports.length, 2, cli.out);
    const [plain, secure] = cli.ports;
    const { client } = await RawClient.connect(plain, { clientId: "cli-plain" });
    assert.deepEqual(await client.subscribe([["t", 2]]), [1], "--max-qos 1 caps the grant");
    client.close();
    const opened = await RawClient.openTls(secure, {
      caCerts: [certs.ca.cert],
      cert: certs.client.cert,
      key: certs.client.key,
    });
    const { client: tls, returnCode } = await RawClient.connect(
      secure,
      { clientId: "cli-tls" },
      opened,
    );
    assert.equal(returnCode, 0);
    tls.close();
    await assert.rejects(async () => {
      const conn = await Deno.connectTls({
        hostname: "localhost",
        port: secure,
        caCerts: [certs.ca.cert],
      });
      try {
        await conn.handshake();
        await conn.write(new Uint8Array([0xc0, 0])); // PINGREQ: any byte makes the refusal show
        const n = await conn.read(new Uint8Array(8));
        if (n === null) throw new Error("closed");
      } finally {
        conn.close();
      }
    }, "no client certificate: refused");
  } finally {
    const status = await cli.stop();
    assert.equal(status.code, 0);
  }
});

Deno.test("deno task broker: MQTT 5.0 limits --max-inflight, --max-keepalive, --max-topic-alias, --response-information reach the CONNACK", async () => {
  const cli = await startCli([
    "-q",
    "-p",
    "0",
    "--max-inflight",
    "7",
    "--max-keepalive",
    "20",
    "--max-topic-alias",
    "3",
    "--response-information",
    "replies/",
  ]);
  try {
    const { client, connack } = await RawClient.connect(cli.ports[0], {
      protocolLevel: 5,
      clientId: "cli5",
      keepAlive: 60,
      properties: { requestResponseInformation: true },
    });
    const p = connack.properties!;
    assert.deepEqual(
      [p.receiveMaximum, p.serverKeepAlive, p.topicAliasMaximum, p.responseInformation],
      [7, 20, 3, "replies/"],
    );
    client.close();
  } finally {
    const status = await cli.stop();
    assert.equal(status.code, 0);
  }
});

Deno.test("deno task broker: bad flags exit with status 2 and say why", async () => {
  for (
    const [args, why] of [
      [["--max-qos", "3"], /--max-qos must be an integer from 0 to 2/],
      [["--tls-port", "0"], /need --cert and --key/],
      [["--retain-available", "maybe"], /must be true or false/],
      [["--bogus"], /Unknown option/],
    ] as const
  ) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-read", MAIN, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 2, args.join(" "));
    assert.match(decoder.decode(out.stderr), why);
  }
});
