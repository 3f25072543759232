/**
 * The stores with MQTT 5.0 records: subscription options kept in the subscription records, and a
 * journal written by the 3.1.1-era FileStore (`tests/fixtures/journal_3_1_1.mqttsj`, made with the
 * FileStore of commit 15bdceb) still read as it is.
 */
import assert from "node:assert/strict";
import {
  FileStore,
  MemoryStore,
  type Store,
  subscriptionByte,
  subscriptionRecord,
} from "../mod.ts";

const dec = new TextDecoder();

async function tempJournal(): Promise<{ path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "store-v5-" });
  return {
    path: `${dir}/session.journal`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("subscription options byte: the layout of MQTT 5.0 section 3.8.3.1, both ways", () => {
  assert.equal(subscriptionByte(2), 0b0000_0010);
  assert.equal(subscriptionByte(1, { noLocal: true }), 0b0000_0101);
  assert.equal(subscriptionByte(0, { retainAsPublished: true }), 0b0000_1000);
  assert.equal(subscriptionByte(1, { retainHandling: 2 }), 0b0010_0001);
  assert.deepEqual(subscriptionRecord("f", 0b0010_1101), {
    filter: "f",
    qos: 1,
    noLocal: true,
    retainAsPublished: true,
    retainHandling: 2,
  });
  assert.deepEqual(subscriptionRecord("f", 2), { filter: "f", qos: 2 });
  // QoS 3, Retain Handling 3, reserved bits 6-7 (MQTT-3.8.3-5).
  for (const bad of [3, 0b0011_0000, 0b0100_0000, 0x80]) {
    assert.equal(subscriptionRecord("f", bad), undefined, `0x${bad.toString(16)}`);
  }
});

async function roundTrip(make: () => Promise<Store> | Store): Promise<void> {
  const store = await make();
  store.putSubscription("a/#", 1, { noLocal: true, retainHandling: 1 });
  store.putSubscription("b", 2);
  store.putSubscription("c", 0, { retainAsPublished: true });
  store.putSubscription("b", 2, { retainHandling: 2 }); // new options, same place
  const expected = [
    { filter: "a/#", qos: 1, noLocal: true, retainHandling: 1 },
    { filter: "b", qos: 2, retainHandling: 2 },
    { filter: "c", qos: 0, retainAsPublished: true },
  ];
  assert.deepEqual(store.load().subscriptions, expected);
  store.close();
}

Deno.test("MemoryStore keeps the 5.0 subscription options", async () => {
  await roundTrip(() => new MemoryStore());
});

Deno.test("FileStore keeps the 5.0 subscription options across a reopen and a compaction", async () => {
  await using journal = await tempJournal();
  await roundTrip(() => FileStore.open(journal.path));
  const again = await FileStore.open(journal.path, { compactBytes: 0 });
  assert.deepEqual(again.load().subscriptions.map((s) => s.filter), ["a/#", "b", "c"]);
  again.putSubscription("d", 1, { noLocal: true }); // compactBytes 0: rewrites the snapshot
  again.close();
  const compacted = await FileStore.open(journal.path);
  assert.deepEqual(compacted.load().subscriptions, [
    { filter: "a/#", qos: 1, noLocal: true, retainHandling: 1 },
    { filter: "b", qos: 2, retainHandling: 2 },
    { filter: "c", qos: 0, retainAsPublished: true },
    { filter: "d", qos: 1, noLocal: true },
  ]);
  compacted.close();
});

Deno.test("FileStore reads a journal written by the 3.1.1-era FileStore as it is", async () => {
  await using journal = await tempJournal();
  await Deno.copyFile(new URL("./fixtures/journal_3_1_1.mqttsj", import.meta.url), journal.path);
  const store = await FileStore.open(journal.path);
  const loaded = store.load();
  assert.deepEqual(
    loaded.waiting.map((r) => [r.topic, dec.decode(r.payload), r.qos, r.retain]),
    [["w/1", "waiting", 1, false]],
  );
  assert.deepEqual(
    loaded.inflight.map((r) => [r.packetId, r.topic, dec.decode(r.payload), r.qos, r.released]),
    [[7, "i/7", "inflight", 2, true], [8, "i/8", "eight", 1, false]],
  );
  assert.deepEqual(loaded.incoming, [42]);
  assert.deepEqual(loaded.subscriptions, [{ filter: "s/+", qos: 0 }, { filter: "t/#", qos: 2 }]);
  store.close();
});

const enc = new TextEncoder();
const PROPS = {
  messageExpiryInterval: 60,
  contentType: "text/plain",
  responseTopic: "r/1",
  correlationData: new Uint8Array([9, 8, 7]),
  userProperties: [["k", "1"], ["k", "2"]] as [string, string][],
};

Deno.test("FileStore keeps the 5.0 properties of waiting and in-flight publishes across a reopen and a compaction", async () => {
  await using journal = await tempJournal();
  const store = await FileStore.open(journal.path);
  store.pushWaiting({
    topic: "w",
    payload: enc.encode("queued"),
    qos: 1,
    retain: false,
    properties: PROPS,
  });
  store.pushWaiting({ topic: "plain", payload: enc.encode("3.1.1"), qos: 0, retain: false });
  store.putInflight(3, {
    topic: "i",
    payload: enc.encode("sent"),
    qos: 2,
    retain: true,
    properties: PROPS,
  }, false);
  store.markReleased(3);
  store.close();
  // Opening compacts the journal: the second open reads the snapshot the first one wrote.
  for (let open = 0; open < 2; open++) {
    const again = await FileStore.open(journal.path);
    const loaded = again.load();
    assert.deepEqual(
      loaded.waiting.map((r) => [r.topic, dec.decode(r.payload), r.properties]),
      [["w", "queued", PROPS], ["plain", "3.1.1", undefined]],
    );
    assert.deepEqual(
      loaded.inflight.map((
        r,
      ) => [r.packetId, r.topic, dec.decode(r.payload), r.released, r.properties]),
      [[3, "i", "sent", true, PROPS]],
    );
    again.close();
  }
});

Deno.test("a session over a stored 5.0 publish resends it with its properties", async () => {
  const { ClientSessionState, Session } = await import("../lib/session/session.ts");
  const { Recorder, sessionOptions } = await import("./session_helpers.ts");
  await using journal = await tempJournal();
  const store = await FileStore.open(journal.path);
  store.putInflight(1, {
    topic: "i",
    payload: enc.encode("x"),
    qos: 1,
    retain: false,
    properties: PROPS,
  }, false);
  store.close();
  const reopened = await FileStore.open(journal.path);
  try {
    const h = new Recorder();
    const session = new Session(
      sessionOptions({ protocolVersion: 5, clean: false }),
      new ClientSessionState({ store: reopened }),
      h,
    );
    session.connect(0);
    session.receive({ type: "connack", sessionPresent: true, reasonCode: 0 }, 1);
    const resent = h.sent.find((p) => p.type === "publish");
    assert.deepEqual(resent?.type === "publish" && [resent.dup, resent.properties], [true, PROPS]);
  } finally {
    reopened.close();
  }
});
