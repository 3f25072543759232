/**
 * SessionState and AckQueue make their tables on first use (an idle broker
 * session holds none, issue 14): the empty ones they share before that must
 * never carry one state's ids or publishes into another.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AckQueue, PendingAck } from "../lib/session/acks.ts";
import { OutgoingPublish, SessionState } from "../lib/session/state.ts";

Deno.test("SessionState: the tables of fresh states are their own once written", () => {
  const a = new SessionState();
  const b = new SessionState();
  a.addIncoming(7);
  assert.equal(a.hasIncoming(7), true);
  assert.equal(b.hasIncoming(7), false);
  assert.equal(b.incomingCount, 0);

  assert.equal(a.allocatePacketId(true), 1);
  assert.equal(b.allocatePacketId(true), 1); // a's reservation is a's alone
  assert.equal(new SessionState().allocatePacketId(), 1);

  const entry = new OutgoingPublish(
    { topic: "t", payload: new Uint8Array(1), qos: 1, retain: false },
    () => {},
  );
  entry.packet = {
    type: "publish",
    topic: "t",
    payload: entry.message.payload,
    qos: 1,
    retain: false,
    dup: false,
    packetId: 2,
  };
  a.addInflight(entry);
  assert.equal(a.getInflight(2), entry);
  assert.equal(b.getInflight(2), undefined);
  assert.equal(b.inflightCount, 0);
  assert.deepEqual([...new SessionState().inflight()], []);

  a.complete(2);
  a.releaseIncoming(7);
  a.freeId(1);
  assert.equal(a.inflightCount + a.incomingCount, 0);
  assert.equal(b.allocatePacketId(true), 2);
});

Deno.test("AckQueue: an empty queue finds nothing, clears and shifts safely", () => {
  const acks = new AckQueue();
  assert.equal(acks.get(1), undefined);
  assert.equal(acks.shift(), undefined);
  acks.clear();
  acks.push(new PendingAck(1, 1));
  assert.equal(acks.get(1)?.status, "waiting");
  assert.equal(new AckQueue().get(1), undefined);
  assert.equal(acks.shift()?.status, "done");
  assert.equal(acks.get(1), undefined);
});
