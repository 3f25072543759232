/**
 * MQTT 5.0 Message Expiry across a restart (section 3.3.2.3.3): stores keep
 * the wall-clock time a message was published, and a session state loading
 * them with a clock gives each message the deadline left of its interval.
 * Journals written before the publish time was stored
 * (`tests/fixtures/journal_5_0_props.mqttsj`, made with the FileStore of
 * commit c3dbda4: record types 13, 14 and 4) read as they are.
 */
import assert from "node:assert/strict";
import { FileStore, MemoryStore, type Store } from "../mod.ts";
import type { Packet } from "../lib/codec/packet.ts";
import { ClientSessionState, Session } from "../lib/session/session.ts";
import { Recorder, sessionOptions } from "./session_helpers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
/** A wall-clock time: 2026-12-01T00:00:00Z. */
const PUBLISHED = Date.UTC(2026, 11, 1);

async function tempJournal(): Promise<{ path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "store-expiry-" });
  return {
    path: `${dir}/session.journal`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

function record(topic: string, interval: number, publishedAt = PUBLISHED) {
  return {
    topic,
    payload: enc.encode(topic),
    qos: 1 as const,
    retain: false,
    properties: { messageExpiryInterval: interval },
    publishedAt,
  };
}

Deno.test("FileStore reads a journal of 5.0 records without publish times (commit c3dbda4) as it is", async () => {
  await using journal = await tempJournal();
  await Deno.copyFile(
    new URL("./fixtures/journal_5_0_props.mqttsj", import.meta.url),
    journal.path,
  );
  const store = await FileStore.open(journal.path);
  const loaded = store.load();
  assert.deepEqual(loaded.inflight, [{
    packetId: 7,
    topic: "v5/inflight",
    payload: enc.encode("in flight"),
    qos: 1,
    retain: false,
    released: false,
    properties: { messageExpiryInterval: 60, contentType: "text/plain" },
  }]);
  assert.deepEqual(loaded.waiting, [
    {
      topic: "v5/waiting",
      payload: enc.encode("waiting"),
      qos: 2,
      retain: true,
      properties: { messageExpiryInterval: 3600, userProperties: [["k", "v"], ["k", "w"]] },
    },
    { topic: "plain", payload: enc.encode("plain"), qos: 0, retain: false },
  ]);
  store.close();
});

async function keepsPublishTime(open: () => Promise<Store>, reopen: boolean): Promise<void> {
  let store = await open();
  store.putInflight(3, record("in", 60, PUBLISHED + 0.5), false);
  store.pushWaiting(record("wait", 30));
  // No properties: no publish time is kept (it could not expire).
  store.pushWaiting({ topic: "plain", payload: enc.encode("p"), qos: 0, retain: false });
  if (reopen) {
    store.close();
    store = await open();
  }
  const loaded = store.load();
  assert.deepEqual(
    loaded.inflight.map((r) => [r.topic, r.properties, r.publishedAt]),
    [["in", { messageExpiryInterval: 60 }, PUBLISHED + 0.5]],
  );
  assert.deepEqual(
    loaded.waiting.map((r) => [r.topic, dec.decode(r.payload), r.publishedAt]),
    [["wait", "wait", PUBLISHED], ["plain", "p", undefined]],
  );
  store.close();
}

Deno.test("MemoryStore keeps the properties and publish time of an in-flight publish", async () => {
  const store = new MemoryStore();
  await keepsPublishTime(() => Promise.resolve(store), false);
});

Deno.test("FileStore keeps the publish time of 5.0 publishes across a reopen and a compaction", async () => {
  await using journal = await tempJournal();
  await keepsPublishTime(() => FileStore.open(journal.path), true);
  // compactBytes 0 rewrites the journal as a snapshot on open: the times survive that too.
  const compacted = await FileStore.open(journal.path, { compactBytes: 0 });
  compacted.close();
  const again = await FileStore.open(journal.path);
  assert.deepEqual(again.load().waiting.map((r) => r.publishedAt), [PUBLISHED, undefined]);
  again.close();
});

/** A 5.0 session over a state loaded from `store` at wall-clock time `wall` (session clock 1000). */
function restarted(store: Store, wall: number): { session: Session; h: Recorder } {
  const state = new ClientSessionState({ store, clock: { now: 1000, wall } });
  const h = new Recorder();
  const session = new Session(sessionOptions({ protocolVersion: 5, clean: false }), state, h);
  session.connect(1000);
  session.receive({ type: "connack", sessionPresent: true, reasonCode: 0 }, 1000);
  return { session, h };
}

function publishes(packets: Packet[]): [string, number | undefined][] {
  return packets.flatMap((p) =>
    p.type === "publish" ? [[p.topic, p.properties?.messageExpiryInterval]] : []
  );
}

Deno.test("5.0 MQTT-3.3.2-6: a stored waiting message sent after a restart carries what is left of its interval", async () => {
  await using journal = await tempJournal();
  const store = await FileStore.open(journal.path);
  store.pushWaiting(record("a", 10));
  store.pushWaiting(record("b", 100));
  store.close();
  // The process comes back 4 s after the publish.
  const reopened = await FileStore.open(journal.path);
  const { h } = restarted(reopened, PUBLISHED + 4000);
  assert.deepEqual(publishes(h.sent), [["a", 6], ["b", 96]]);
  reopened.close();
});

Deno.test("5.0 section 3.3.2.3.3: a stored waiting message whose interval passed while the process was down is not sent, and leaves the store", async () => {
  await using journal = await tempJournal();
  const store = await FileStore.open(journal.path);
  store.pushWaiting(record("expired", 10));
  store.pushWaiting(record("alive", 60));
  store.close();
  const reopened = await FileStore.open(journal.path);
  const { h } = restarted(reopened, PUBLISHED + 30_000);
  assert.deepEqual(publishes(h.sent), [["alive", 30]]);
  reopened.close();
  const after = await FileStore.open(journal.path);
  assert.deepEqual(after.load().waiting, []);
  assert.deepEqual(after.load().inflight.map((r) => r.topic), ["alive"]);
  after.close();
});
