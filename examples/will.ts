/**
 * Last Will: a "device" connects with a will (`offline`, retained) and announces `online`
 * itself; a watcher prints the device's status. The device's socket is then closed without
 * DISCONNECT, as when a device loses power, and the broker publishes the will. A clean
 * `close()` would have discarded it.
 *
 * ```sh
 * deno run -A examples/will.ts [mqtt://localhost:1883]
 * ```
 *
 * @module
 */
import { connect } from "../mod.ts";

const url = Deno.args[0] ?? "mqtt://localhost:1883";
const id = `device-${crypto.randomUUID().slice(0, 8)}`;
const status = `status/${id}`;

await using watcher = await connect(url);
const statuses = await watcher.subscribe(status, { qos: 1 });

// The transport option opens the TCP connection ourselves (mqtt:// only), so that we can kill
// the socket below.
let socket: Deno.Conn | undefined;
const device = await connect(url, {
  clientId: id,
  reconnect: false,
  will: { topic: status, payload: "offline", qos: 1, retain: true },
  transport: async (brokerUrl) => {
    const conn = await Deno.connect({
      hostname: brokerUrl.hostname,
      port: Number(brokerUrl.port || 1883),
    });
    socket = conn;
    return { readable: conn.readable, writable: conn.writable, close: () => closeQuietly(conn) };
  },
});
await device.publish(status, "online", { qos: 1, retain: true });

let seen = 0;
for await (const msg of statuses) {
  console.log(`${msg.topic}: ${msg.text()}`);
  if (++seen === 1) {
    console.log(`${id} loses its connection without saying goodbye...`);
    closeQuietly(socket!);
  } else {
    break;
  }
}
await device.close();
// Clear the retained status so it does not linger on the broker.
await watcher.publish(status, "", { qos: 1, retain: true });

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
