/**
 * Publishes the server cannot take: under MQTT 3.1.1 a broker drops the connection on a PUBLISH
 * it will not take (larger than its maximum packet size), and the client would resend it on
 * every reconnect, forever. The session decides from the pattern (`Flows.connectionDropped`):
 * a publish the server dropped the connection right after, three times in a row, fails with
 * `PUBLISH_REFUSED` and leaves the state and its store. From the second strike on, a drop counts
 * only before the answer to the PINGREQ (the probe) sent right behind the resent publish: a cut
 * link must not cost a good message. Packets and times only.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MqttError } from "../lib/errors.ts";
import { ClientSessionState } from "../lib/session/client_state.ts";
import { MAX_STRIKES } from "../lib/session/flows.ts";
import { Session } from "../lib/session/session.ts";
import { MemoryStore } from "../lib/store/mod.ts";
import type { PublishCallback } from "../lib/session/types.ts";
import { brief, connack, msg, Recorder, sessionOptions } from "./session_helpers.ts";

const DROPPED = new MqttError("CONNECTION_CLOSED", "the server closed the connection");

/** One publish's outcome: undefined while pending, "ok", or the error code. */
function outcome(): { done: PublishCallback; result: () => string | undefined } {
  let result: string | undefined;
  return {
    done: (error) => {
      assert.equal(result, undefined, "done called twice");
      result = error === undefined ? "ok" : error.code;
    },
    result: () => result,
  };
}

/** A new connection over `state`, accepted (no session present); returns it with its recorder. */
function connection(state: ClientSessionState, now: number, keepAlive = 10) {
  const rec = new Recorder();
  const session = new Session(sessionOptions({ keepAlive }), state, rec);
  session.connect(now);
  session.receive(connack(false), now);
  // What went out after CONNECT: the resends of the resume (MQTT-4.6.0-1).
  const resent = brief(rec.take()).slice(1);
  return { session, rec, resent };
}

Deno.test("PUBLISH_REFUSED: a publish the server drops the connection after 3 times in a row", () => {
  assert.equal(MAX_STRIKES, 3);
  const store = new MemoryStore();
  const state = new ClientSessionState({ store });
  const big = outcome();
  let { session } = connection(state, 0);
  session.publish(msg("big", 1), 1, big.done);
  for (let drop = 1; drop <= MAX_STRIKES; drop++) {
    session.connectionLost(DROPPED, drop * 10, true);
    if (drop < MAX_STRIKES) {
      assert.equal(big.result(), undefined, `refused after only ${drop} drops`);
      const next = connection(state, drop * 10 + 1);
      session = next.session;
      // The resume sends it again (a fresh flow: no session present) with a probe behind it;
      // the server drops us again before answering the probe.
      assert.deepEqual(next.resent, ["publish:1:q1:big", "pingreq"]);
    }
  }
  assert.equal(big.result(), "PUBLISH_REFUSED");
  assert.equal(state.inflightCount, 0, "it left the session");
  assert.equal(store.load().inflight.length, 0, "and the store");
  // The next connection resends nothing, and the client goes on.
  const rec = new Recorder();
  const last = new Session(sessionOptions(), state, rec);
  last.connect(100);
  last.receive(connack(false), 101);
  assert.deepEqual(brief(rec.take()), ["connect"]);
  const small = outcome();
  last.publish(msg("small", 1), 102, small.done);
  const [publish] = rec.take();
  assert.equal(publish.type, "publish");
  last.receive({ type: "puback", packetId: publish.packetId! }, 103);
  assert.equal(small.result(), "ok");
});

Deno.test("PUBLISH_REFUSED: only the first publish sent after the last acknowledged one is suspect", () => {
  const state = new ClientSessionState();
  const a = outcome();
  const p = outcome();
  const b = outcome();
  let { session, rec } = connection(state, 0);
  session.publish(msg("a", 1), 1, a.done);
  session.publish(msg("p", 1), 1, p.done);
  session.publish(msg("b", 1), 1, b.done);
  const ids = rec.take().map((packet) => packet.type === "publish" ? packet.packetId! : 0);
  // The server took "a", then dropped us on "p" ("b" was never read).
  session.receive({ type: "puback", packetId: ids[0] }, 2);
  assert.equal(a.result(), "ok");
  for (let drop = 1; drop <= MAX_STRIKES; drop++) {
    session.connectionLost(DROPPED, drop * 10, true);
    if (drop === MAX_STRIKES) break;
    ({ session, rec } = connection(state, drop * 10 + 1));
  }
  assert.equal(p.result(), "PUBLISH_REFUSED");
  assert.equal(b.result(), undefined, "the publish behind it is still pending");
  // The next connection sends "b" again, and it completes.
  const next = connection(state, 100);
  assert.deepEqual(next.resent, [`publish:${ids[2]}:q1:b`]);
  next.session.receive({ type: "puback", packetId: ids[2] }, 101);
  assert.equal(b.result(), "ok");
});

Deno.test("PUBLISH_REFUSED: an acknowledgement of a later packet clears the suspect", () => {
  const state = new ClientSessionState();
  const p = outcome();
  let { session, rec } = connection(state, 0);
  session.publish(msg("p", 1), 1, p.done);
  for (let drop = 1; drop <= MAX_STRIKES + 1; drop++) {
    // Each time "q" goes out after "p" and the server acknowledges it: it read past "p".
    const q = outcome();
    session.publish(msg("q", 1), drop * 10, q.done);
    const sent = rec.take().at(-1)!;
    assert.ok(sent.type === "publish" && sent.topic === "q");
    session.receive({ type: "puback", packetId: sent.packetId! }, drop * 10);
    assert.equal(q.result(), "ok");
    session.connectionLost(DROPPED, drop * 10 + 1, true);
    ({ session, rec } = connection(state, drop * 10 + 2));
  }
  assert.equal(p.result(), undefined, "never refused: the server read past it every time");
  assert.equal(state.inflightCount, 1);
});

Deno.test("PUBLISH_REFUSED: an end that is not the server's drop does not count", () => {
  const state = new ClientSessionState();
  const p = outcome();
  let { session } = connection(state, 0);
  session.publish(msg("p", 1), 1, p.done);
  for (let end = 1; end <= MAX_STRIKES + 1; end++) {
    // A keep-alive timeout, a protocol error or the user's close: ours, not the server's.
    session.connectionLost(new MqttError("KEEPALIVE_TIMEOUT", "no PINGRESP"), end * 10, false);
    ({ session } = connection(state, end * 10 + 1));
  }
  assert.equal(p.result(), undefined);
  assert.equal(state.inflightCount, 1);
});

Deno.test("PUBLISH_REFUSED: strikes count in a row; a PINGRESP proves the server read past it", () => {
  const state = new ClientSessionState();
  const p = outcome();
  let { session, rec } = connection(state, 0, 1);
  session.publish(msg("p", 1), 1, p.done);
  const drop = (at: number) => {
    session.connectionLost(DROPPED, at, true);
    ({ session, rec } = connection(state, at + 1, 1));
  };
  drop(10);
  drop(20); // two strikes
  // This time the server answers a PINGREQ sent after the resent PUBLISH, then drops us.
  session.tick(21 + 1000);
  assert.deepEqual(brief(rec.take()), ["pingreq"]);
  session.receive({ type: "pingresp" }, 1030);
  drop(1040); // no strike: the server read past it, so the row starts over
  drop(1050);
  drop(1060); // two strikes again
  assert.equal(p.result(), undefined, "refused although the row was broken");
  drop(1070);
  assert.equal(p.result(), "PUBLISH_REFUSED");
});

Deno.test("PUBLISH_REFUSED: a drop while connecting counts nothing", () => {
  const state = new ClientSessionState();
  const p = outcome();
  let { session } = connection(state, 0);
  session.publish(msg("p", 1), 1, p.done);
  session.connectionLost(DROPPED, 2, true);
  for (let i = 0; i < MAX_STRIKES + 1; i++) {
    // The server drops each attempt before CONNACK: the publish was never resent.
    const attempt = new Session(sessionOptions(), state, new Recorder());
    attempt.connect(10 + i);
    attempt.connectionLost(DROPPED, 11 + i, true);
  }
  assert.equal(p.result(), undefined);
  ({ session } = connection(state, 100));
  session.connectionLost(DROPPED, 101, true); // strike 2 only: still pending
  assert.equal(p.result(), undefined);
});

Deno.test("PUBLISH_REFUSED: a link cut after the probe's answer costs no message", () => {
  // A flaky link: after each reconnect the window goes again and the link is cut before any
  // PUBACK arrives, but after the server answered the PINGREQ sent behind the suspect.
  const state = new ClientSessionState();
  const results = ["a", "b", "c"].map(() => outcome());
  let { session, rec } = connection(state, 0);
  results.forEach((r, i) => session.publish(msg("abc"[i], 1), 1, r.done));
  assert.deepEqual(brief(rec.take()), ["publish:1:q1:a", "publish:2:q1:b", "publish:3:q1:c"]);
  session.connectionLost(DROPPED, 10, true); // "a" is the suspect: strike 1, on the pattern alone
  const bursts: string[][] = [];
  for (let cut = 2; cut <= 4 * MAX_STRIKES; cut++) {
    let resent: string[];
    ({ session, rec, resent } = connection(state, cut * 10));
    // The server reads in order: it answers the probe only once it has read the suspect.
    if (resent.includes("pingreq")) session.receive({ type: "pingresp" }, cut * 10 + 1);
    bursts.push([...resent, "|", ...brief(rec.take())]);
    session.connectionLost(DROPPED, cut * 10 + 2, true);
    for (const r of results) assert.equal(r.result(), undefined, `given up after ${cut} cuts`);
  }
  // The suspect goes alone, the probe right behind it; the rest once the server answered the
  // probe. Once the server has read past all three, a cut has no suspect, and the next one
  // starts over with "a".
  assert.deepEqual(bursts.slice(0, 4), [
    ["publish:1:q1:a", "pingreq", "|", "publish:2:q1:b", "publish:3:q1:c"],
    ["publish:1:q1:a", "publish:2:q1:b", "pingreq", "|", "publish:3:q1:c"],
    ["publish:1:q1:a", "publish:2:q1:b", "publish:3:q1:c", "pingreq", "|"],
    ["publish:1:q1:a", "publish:2:q1:b", "publish:3:q1:c", "|"],
  ]);
  // The link holds at last: all three complete.
  ({ session, rec } = connection(state, 1000));
  for (const id of [1, 2, 3]) session.receive({ type: "puback", packetId: id }, 1001);
  assert.deepEqual(results.map((r) => r.result()), ["ok", "ok", "ok"]);
});

Deno.test("PUBLISH_REFUSED: a drop before the probe's answer counts; a late answer is too late", () => {
  const state = new ClientSessionState();
  const p = outcome();
  const q = outcome();
  let { session, rec } = connection(state, 0);
  session.publish(msg("p", 1), 1, p.done);
  session.publish(msg("q", 1), 1, q.done);
  rec.take();
  session.connectionLost(DROPPED, 10, true);
  for (let drop = 2; drop <= MAX_STRIKES; drop++) {
    let resent: string[];
    ({ session, rec, resent } = connection(state, drop * 10));
    // "q" waits behind the suspect until the server is known to have read it.
    assert.deepEqual(resent, ["publish:1:q1:p", "pingreq"]);
    session.connectionLost(DROPPED, drop * 10 + 1, true);
    // The answer to the probe read after the drop (a driver's leftover) proves nothing.
    session.receive({ type: "pingresp" }, drop * 10 + 2);
  }
  assert.equal(p.result(), "PUBLISH_REFUSED");
  assert.equal(q.result(), undefined, "the publish behind it is still pending");
  const next = connection(state, 100);
  assert.deepEqual(next.resent, ["publish:2:q1:q"]);
});

Deno.test("PUBLISH_REFUSED: the probe arms no keep-alive timeout", () => {
  const state = new ClientSessionState();
  let { session, rec } = connection(state, 0, 1);
  session.publish(msg("p", 1), 1, () => {});
  session.connectionLost(DROPPED, 10, true);
  let resent: string[];
  ({ session, rec, resent } = connection(state, 100, 1));
  assert.deepEqual(resent, ["publish:1:q1:p", "pingreq"]);
  // Unanswered, the probe closes nothing: keep-alive goes on as if it were any packet sent.
  assert.equal(session.deadline, 100 + 1000);
  session.tick(100 + 1000);
  assert.deepEqual(brief(rec.take()), ["pingreq"]);
  assert.equal(session.state, "connected");
  // That keep-alive PINGREQ gets its own pingTimeout (3000 ms in these options).
  session.tick(1100 + 2999);
  assert.equal(session.state, "connected");
  session.tick(1100 + 3000);
  assert.equal(session.state, "disconnected");
  assert.deepEqual(rec.closes.map((e) => e?.code), ["KEEPALIVE_TIMEOUT"]);
});

Deno.test("PUBLISH_REFUSED: behind a resent suspect, the rest and new publishes wait, in order", () => {
  const state = new ClientSessionState();
  const results = ["p", "q", "n"].map(() => outcome());
  let { session, rec } = connection(state, 0);
  session.publish(msg("p", 1), 1, results[0].done);
  session.publish(msg("q", 1), 1, results[1].done);
  rec.take();
  session.connectionLost(DROPPED, 10, true);
  let resent: string[];
  ({ session, rec, resent } = connection(state, 20));
  assert.deepEqual(resent, ["publish:1:q1:p", "pingreq"]);
  // A publish made now queues behind "q", which has not gone again yet (MQTT-4.6.0-1).
  session.publish(msg("n", 1), 21, results[2].done);
  assert.deepEqual(brief(rec.take()), []);
  // The PUBACK of the suspect proves the server read it as well as the probe's answer would.
  session.receive({ type: "puback", packetId: 1 }, 22);
  assert.deepEqual(brief(rec.take()), ["publish:2:q1:q", "publish:3:q1:n"]);
  session.receive({ type: "pingresp" }, 23);
  session.receive({ type: "puback", packetId: 2 }, 24);
  session.receive({ type: "puback", packetId: 3 }, 25);
  assert.deepEqual(results.map((r) => r.result()), ["ok", "ok", "ok"]);
});
