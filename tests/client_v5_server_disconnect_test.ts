/**
 * A server DISCONNECT from a real Mosquitto 2.0.11 at MQTT 5.0: its dynamic-security plugin
 * disconnects a client whose account an administrator disables, with reason 0x98 (Administrative
 * action). Mosquitto 2.0.11 sends no DISCONNECT 0x8E on a takeover (that came in 2.0.15); that
 * path and the other reasons are tested with scripted servers (tests/client_v5_scripted_test.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, ServerDisconnectError } from "../mod.ts";
import { brokerTest, startMosquitto } from "./broker/mod.ts";
import { within } from "./client_helpers.ts";

const PLUGINS = [
  "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
  "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
  "/usr/lib/mosquitto_dynamic_security.so",
];

async function ctrl(port: number, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("mosquitto_ctrl", {
    args: [
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-u",
      "admin",
      "-P",
      "adminpw",
      "dynsec",
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

brokerTest(
  "5.0: a server DISCONNECT (Mosquitto's dynamic security disabling the account, 0x98) ends the connection with its reason in the disconnect event",
  async () => {
    const plugin = PLUGINS.find((path) => {
      try {
        return Deno.statSync(path).isFile;
      } catch {
        return false;
      }
    });
    assert.ok(plugin, "Mosquitto's dynamic security plugin is installed with Mosquitto");
    const dir = await Deno.makeTempDir({ prefix: "dynsec-kick-" });
    try {
      await Deno.chmod(dir, 0o777);
      const init = await new Deno.Command("mosquitto_ctrl", {
        args: ["dynsec", "init", `${dir}/dynsec.json`, "admin", "adminpw"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(init.code, 0, new TextDecoder().decode(init.stderr));
      await Deno.chmod(`${dir}/dynsec.json`, 0o666);
      await using broker = await startMosquitto({
        extraConfig: `plugin ${plugin}\nplugin_opt_config_file ${dir}/dynsec.json`,
      });
      await ctrl(broker.port, "createClient", "victim", "-p", "victimpw");
      await using client = await connect(broker.url, {
        protocolVersion: 5,
        username: "victim",
        password: "victimpw",
        reconnect: false,
      });
      const disconnected = new Promise<CustomEvent>((resolve) => {
        client.addEventListener("disconnect", (e) => resolve(e as CustomEvent), { once: true });
      });
      client.addEventListener("error", () => {});
      await ctrl(broker.port, "disableClient", "victim");
      const { detail } = await within(disconnected, "the server's DISCONNECT");
      assert.equal(detail.reasonCode, 0x98);
      assert.ok(detail.error instanceof ServerDisconnectError, String(detail.error));
      assert.equal(detail.error.code, "SERVER_DISCONNECT");
      assert.equal(detail.error.reasonCode, 0x98);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
