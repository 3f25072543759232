/**
 * The server list of `connect()`: validation of several broker URLs, the options resolved per
 * server, and the rounds through the list that the reconnect backoff is applied to.
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import { hasCode } from "./client_helpers.ts";
import { resolveServers, ServerList } from "../lib/client/servers.ts";
import { resolveOptions } from "../lib/client/options.ts";

const invalidOption = (pattern: RegExp) => hasCode("INVALID_OPTION", pattern);

Deno.test("servers: an empty list and entries that are not URLs are INVALID_OPTION", async () => {
  assert.throws(() => resolveServers([]), invalidOption(/empty/));
  for (const bad of [null, 1883, undefined, {}, ["mqtt://a"]]) {
    assert.throws(
      () => resolveServers(["mqtt://a", bad as unknown as string]),
      invalidOption(/broker URL 1 must be a string or a URL/),
    );
  }
  assert.throws(() => resolveServers(["mqtt://a", "http://b"]), invalidOption(/unsupported/));
  // connect() rejects (it does not throw synchronously) with the same error.
  await assert.rejects(connect([]), invalidOption(/empty/));
  await assert.rejects(
    connect(["mqtt://127.0.0.1:1", 7 as unknown as string]),
    invalidOption(/broker URL 1/),
  );
});

Deno.test("servers: one generated client id for all; credentials per URL; passwords redacted", () => {
  const servers = resolveServers([
    "mqtt://alice:S3CRET@a:1883",
    new URL("ws://b:8080/mqtt"),
    "mqtts://carol:pw@c",
  ]);
  const seen: string[] = [];
  const ids = new Set<string>();
  for (let i = 0; i < servers.size; i++) {
    ids.add(servers.current.clientId);
    seen.push(`${servers.url} ${servers.current.username} ${servers.current.url.protocol}`);
    servers.failed();
  }
  assert.equal(ids.size, 1);
  assert.match([...ids][0], /^deno-mqtt-/);
  assert.deepEqual(seen, [
    "mqtt://alice:***@a:1883 alice mqtt",
    "ws://b:8080/mqtt undefined ws",
    "mqtts://carol:***@c carol mqtts",
  ]);
  // Options given explicitly win over the URLs', for every server.
  const explicit = resolveServers(["mqtt://alice:x@a", "mqtt://b"], {
    username: "u",
    clientId: "c",
  });
  assert.equal(explicit.current.username, "u");
  explicit.failed();
  assert.equal(explicit.current.username, "u");
  assert.equal(explicit.current.clientId, "c");
});

Deno.test("servers: tls options apply to the TLS URLs of a mixed list, and need one", () => {
  const tls = { serverName: "broker.example" };
  const servers = resolveServers(["mqtt://a", "mqtts://b", "ws://c", "wss://d"], { tls });
  const got = [];
  for (let i = 0; i < servers.size; i++, servers.failed()) {
    got.push(servers.current.tls?.serverName);
  }
  assert.deepEqual(got, [undefined, "broker.example", undefined, "broker.example"]);
  assert.throws(
    () => resolveServers(["mqtt://a", "ws://c"], { tls }),
    invalidOption(/tls options were given for a mqtt: URL/),
  );
});

Deno.test("servers: a single URL behaves as before", () => {
  const single = resolveServers("mqtt://u:pw@h", { clientId: "c" });
  assert.equal(single.size, 1);
  assert.equal(single.url, "mqtt://u:***@h");
  assert.deepEqual(single.current, resolveOptions("mqtt://u:pw@h", { clientId: "c" }));
  // Every failure ends a round: the backoff applies to each attempt, as with one URL before.
  assert.equal(single.failed(), true);
  assert.equal(single.failed(), true);
});

Deno.test("servers: a loss starts a round at the next server; a round ends after each failed once", () => {
  const servers = resolveServers(["mqtt://a", "mqtt://b", "mqtt://c"]);
  const host = () => servers.current.url.hostname;
  assert.equal(host(), "a");
  servers.connected();
  servers.lost();
  assert.equal(host(), "b");
  assert.equal(servers.failed(), false); // b failed: c next, same round
  assert.equal(host(), "c");
  assert.equal(servers.failed(), false); // c failed: a next, same round
  assert.equal(host(), "a");
  assert.equal(servers.failed(), true); // a failed too: the round is over, back off
  assert.equal(host(), "b");
  assert.equal(servers.failed(), false);
  servers.connected(); // c accepted
  assert.equal(host(), "c");
  servers.lost();
  assert.equal(host(), "a");
  assert.equal(servers.failed(), false);
  assert.equal(servers.failed(), false);
  assert.equal(servers.failed(), true);
});

Deno.test("servers: ServerList.of wraps resolved options; a list needs a server", () => {
  const options = resolveOptions("mqtt://broker:1884");
  const list = ServerList.of(options);
  assert.equal(list.current, options);
  assert.equal(list.url, "mqtt://broker:1884");
  assert.throws(() => new ServerList([], []), invalidOption(/at least one server/));
});

Deno.test("servers: apply lays the current server's URL, credentials and TLS over shared options", () => {
  const tls = { serverName: "broker.example" };
  const servers = resolveServers(["mqtts://alice:pw@a", "mqtt://b"], { clientId: "c", tls });
  const shared = { ...servers.current, clientId: "assigned-by-server" };
  const first = servers.apply(shared);
  assert.equal(first.clientId, "assigned-by-server");
  assert.equal(first.username, "alice");
  assert.equal(first.tls?.serverName, "broker.example");
  servers.failed();
  const second = servers.apply(shared);
  assert.equal(second.clientId, "assigned-by-server");
  assert.equal(second.url.hostname, "b");
  assert.ok(!("username" in second) && !("password" in second) && !("tls" in second));
});
