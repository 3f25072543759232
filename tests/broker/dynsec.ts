/**
 * A Mosquitto with its dynamic-security plugin, for refused subscriptions: Mosquitto's
 * `acl_file` cannot refuse a SUBSCRIBE (it filters at delivery), the plugin can.
 *
 * @module
 */
import { type Mosquitto, startMosquitto } from "./mosquitto.ts";

/**
 * Starts a Mosquitto whose dynamic-security config lets anonymous clients subscribe to `open/#`
 * only (other filters are refused: 0x80 under 3.1.1, 0x87 at 5.0).
 *
 * @example
 * ```ts ignore
 * await using dynsec = await dynsecBroker();
 * const client = await connect(dynsec.broker.url);
 * ```
 */
export async function dynsecBroker(): Promise<
  { broker: Mosquitto } & AsyncDisposable
> {
  const plugin = [
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
  ].find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  });
  if (!plugin) throw new Error("Mosquitto's dynamic security plugin is not installed");
  // Mosquitto's acl_file cannot refuse a SUBSCRIBE (it filters at delivery); the dynamic
  // security plugin can, with return code 0x80.
  const dir = await Deno.makeTempDir({ prefix: "dynsec-" });
  await Deno.chmod(dir, 0o777);
  await Deno.writeTextFile(
    `${dir}/dynsec.json`,
    JSON.stringify({
      defaultACLAccess: {
        publishClientSend: true,
        publishClientReceive: true,
        subscribe: false,
        unsubscribe: true,
      },
      clients: [],
      groups: [{ groupname: "anonymous", roles: [{ rolename: "open" }] }],
      roles: [{
        rolename: "open",
        acls: [{ acltype: "subscribePattern", topic: "open/#", allow: true }],
      }],
      anonymousGroup: "anonymous",
    }),
    { mode: 0o666 },
  );
  const broker = await startMosquitto({
    extraConfig: `plugin ${plugin}\nplugin_opt_config_file ${dir}/dynsec.json`,
  });
  return {
    broker,
    async [Symbol.asyncDispose]() {
      await broker.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
