/**
 * The client's typed event map: listeners get their event's detail type from
 * the event name, with no cast (this file type-checks only if they do), and
 * the details carry what they say. The embedded broker serves as the peer:
 * this is about our own API, not about a broker's behaviour.
 */
import assert from "node:assert/strict";
import { Broker } from "../broker.ts";
import {
  type CloseEventDetail,
  connect,
  type ConnectEventDetail,
  type MqttClientEventMap,
  type MqttError,
} from "../mod.ts";

Deno.test("event map: connect, disconnect and close listeners are typed by name", async () => {
  const broker = new Broker();
  const { port } = await broker.listen({ port: 0, hostname: "127.0.0.1" });
  try {
    const client = await connect(`mqtt://127.0.0.1:${port}`, { reconnect: false });
    const seen: string[] = [];
    const onDisconnect = (e: MqttClientEventMap["disconnect"]) => {
      const detail: CloseEventDetail = e.detail;
      seen.push(`disconnect:${detail.error?.code ?? "clean"}`);
    };
    client.addEventListener("connect", (e) => {
      const detail: ConnectEventDetail = e.detail;
      seen.push(`connect:${detail.reconnect}`);
    });
    client.addEventListener("disconnect", onDisconnect);
    client.addEventListener("close", (e) => seen.push(`close:${e.detail.error?.code ?? "clean"}`));
    client.addEventListener("error", (e) => {
      const error: MqttError = e.detail;
      seen.push(`error:${error.code}`);
    });
    client.addEventListener(
      "disconnect",
      (e) => seen.push(`typed:${e.detail.error === undefined}`),
    );
    client.removeEventListener("disconnect", onDisconnect);
    await client.close();
    assert.deepEqual(seen, ["typed:true", "close:clean"], "the removed listener heard nothing");
  } finally {
    await broker.close();
  }
});
