/**
 * User name and password against a real Mosquitto with a password file made by
 * `mosquitto_passwd`: the right credentials connect, wrong ones are refused with a typed error.
 *
 * Mosquitto 2.0.11 answers every refused login, whether the password is wrong, the user is
 * unknown or no credentials were sent, with CONNACK return code 5 (not authorized), never 4
 * (bad user name or password); the tests pin that down.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, ConnectionRefusedError, type ConnectOptions, MqttError } from "../mod.ts";
import { brokerTest, type Mosquitto, mosquittoPub, startMosquitto } from "./broker/mod.ts";
import { fresh, take } from "./client_helpers.ts";

const USERS = { alice: "correct horse", bob: "battery staple ☃" };

/** Connects, expecting a refusal; resolves with the error. */
async function refused(
  broker: Mosquitto,
  options: ConnectOptions,
): Promise<ConnectionRefusedError> {
  const error = await connect(broker.url, { ...options, reconnect: false }).then(
    async (client) => {
      await client.close();
      assert.fail(`connected with ${JSON.stringify(options)}`);
    },
    (err: unknown) => err,
  );
  assert.ok(error instanceof ConnectionRefusedError, `got ${String(error)}`);
  assert.ok(error instanceof MqttError);
  assert.equal(error.code, "CONNECTION_REFUSED");
  return error;
}

brokerTest("auth: the right user name and password connect and can publish", async () => {
  await using broker = await startMosquitto({ auth: "password", users: USERS });
  await using alice = await connect(broker.url, {
    clientId: fresh("alice"),
    username: "alice",
    password: "correct horse",
  });
  // A password as bytes, here UTF-8 beyond ASCII.
  await using bob = await connect(broker.url, {
    clientId: fresh("bob"),
    username: "bob",
    password: new TextEncoder().encode("battery staple ☃"),
  });
  const topic = fresh("auth");
  const sub = await bob.subscribe(topic, { qos: 1 });
  await alice.publish(topic, "from alice", { qos: 1 });
  assert.equal((await take(sub, 1, "alice's message"))[0].text(), "from alice");
});

brokerTest("auth: credentials in the URL are used (mqtt://user:pass@host)", async () => {
  await using broker = await startMosquitto({ auth: "password", users: USERS });
  const url = new URL(broker.url);
  url.username = "alice";
  url.password = encodeURIComponent("correct horse");
  await using client = await connect(url, { clientId: fresh("url-creds") });
  assert.equal(client.connected, true);
  url.password = "wrong";
  await assert.rejects(
    connect(url, { reconnect: false }),
    (err) => err instanceof ConnectionRefusedError && err.returnCode === 5,
  );
});

brokerTest(
  "CONNACK return code 5 (3.2.2.3) for a wrong password; MQTT-3.2.2-5: the socket is closed",
  async () => {
    await using broker = await startMosquitto({ auth: "password", users: USERS });
    const error = await refused(broker, { username: "alice", password: "wrong" });
    assert.equal(error.returnCode, 5);
    assert.equal(error.reason, "not authorized");
    assert.match(error.message, /not authorized/);
    // mosquitto_pub, an independent client, is refused the same way.
    const cli = await mosquittoPub([
      "-p",
      String(broker.port),
      "-u",
      "alice",
      "-P",
      "wrong",
      "-t",
      "t",
      "-m",
      "x",
    ]);
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /not authori[sz]ed/i);
  },
);

brokerTest("CONNACK return code 5 (3.2.2.3) for an unknown user", async () => {
  await using broker = await startMosquitto({ auth: "password", users: USERS });
  const error = await refused(broker, { username: "mallory", password: "correct horse" });
  assert.equal(error.returnCode, 5);
});

brokerTest("auth: no credentials at all are refused with return code 5", async () => {
  await using broker = await startMosquitto({ auth: "password", users: USERS });
  const error = await refused(broker, {});
  assert.equal(error.returnCode, 5);
  // A user name without a password is refused too (MQTT-3.1.2-19 allows sending it).
  const noPassword = await refused(broker, { username: "alice" });
  assert.equal(noPassword.returnCode, 5);
});

brokerTest("auth: a refused connect leaves nothing open and is final (no reconnect)", async () => {
  await using broker = await startMosquitto({ auth: "password", users: USERS });
  // With reconnect on (the default) a refused first connect still rejects at once: the caller
  // must learn that the credentials are wrong. Sanitizers check no socket or timer is left.
  await assert.rejects(
    connect(broker.url, { username: "alice", password: "wrong" }),
    (err) => err instanceof ConnectionRefusedError && err.returnCode === 5,
  );
});
