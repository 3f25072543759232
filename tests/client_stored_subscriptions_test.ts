/**
 * Subscriptions in the store: a process that restarts with a `FileStore` and
 * `clean: false` learns which filters its session holds (`sessionSubscriptions`)
 * and gets the messages the broker kept for them once it subscribes again; a
 * clean session forgets a previous process's filters (MQTT-3.1.2-6). Against
 * a real Mosquitto, plus the session rules with packets only.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, FileStore, MemoryStore, MqttError } from "../mod.ts";
import { ClientSessionState } from "../lib/session/client_state.ts";
import { Session } from "../lib/session/session.ts";
import { brokerTest, startMosquitto } from "./broker/mod.ts";
import { fresh, take } from "./client_helpers.ts";
import { brief, connack, Recorder, sessionOptions } from "./session_helpers.ts";

function subscribeOnce(state: ClientSessionState, filter: string): void {
  const h = new Recorder();
  const session = new Session(sessionOptions({ clean: false }), state, h);
  session.connect(0);
  session.receive(connack(false), 1);
  session.subscribe([{ filter, qos: 1 }], 2, () => {});
  const sent = h.take().find((p) => p.type === "subscribe")!;
  session.receive({ type: "suback", packetId: sent.packetId, returnCodes: [1] }, 3);
  session.connectionLost(new MqttError("CONNECTION_CLOSED", "gone"), 4);
}

Deno.test("stored subscriptions: a new state over the store re-registers them when the broker kept no session", () => {
  const store = new MemoryStore();
  subscribeOnce(new ClientSessionState({ store }), "s/#");
  const next = new ClientSessionState({ store });
  assert.deepEqual([...next.subscriptions], [["s/#", 1]]);
  const h = new Recorder();
  const session = new Session(sessionOptions({ clean: false }), next, h);
  session.connect(10);
  session.receive(connack(false), 11);
  assert.deepEqual(brief(h.take(), { filters: true }), ["connect", "subscribe:1:s/#@1"]);
});

Deno.test("stored subscriptions: a clean session forgets a previous process's filters (MQTT-3.1.2-6)", () => {
  const store = new MemoryStore();
  subscribeOnce(new ClientSessionState({ store }), "s/#");
  const next = new ClientSessionState({ store });
  const h = new Recorder();
  const session = new Session(sessionOptions({ clean: true }), next, h);
  session.connect(10);
  session.receive(connack(false), 11);
  assert.deepEqual(brief(h.take()), ["connect"], "nothing re-registered");
  assert.equal(next.subscriptions.size, 0);
  assert.deepEqual(store.load().subscriptions, []);
});

brokerTest(
  "stored subscriptions: a restarted process learns its filters and gets what the broker kept",
  async () => {
    await using broker = await startMosquitto();
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/session.journal`;
      const clientId = fresh("stored");
      {
        const store = await FileStore.open(path);
        const client = await connect(broker.url, { clientId, clean: false, store });
        await client.subscribe("stored/#", { qos: 1 });
        await client.close();
        store.close();
      }
      {
        await using publisher = await connect(broker.url, { clientId: fresh("pub") });
        await publisher.publish("stored/1", "kept while away", { qos: 1 });
      }
      const store = await FileStore.open(path);
      try {
        await using client = await connect(broker.url, { clientId, clean: false, store });
        assert.deepEqual([...client.sessionSubscriptions], [["stored/#", 1]]);
        const [filter] = [...client.sessionSubscriptions.keys()];
        const sub = await client.subscribe(filter, { qos: 1 });
        const [msg] = await take(sub, 1, "the kept message");
        assert.equal(msg.text(), "kept while away");
      } finally {
        store.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
