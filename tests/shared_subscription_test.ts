/**
 * Shared subscriptions (MQTT 5.0 section 4.8.2): the filter syntax, local matching without the
 * `$share/{ShareName}/` prefix; and routing by Subscription Identifier.
 */
import assert from "node:assert/strict";
import { ProtocolError } from "../lib/errors.ts";
import { localFilter, parseSharedFilter } from "../lib/util/topic_filter.ts";
import { createSubscription } from "../lib/client/subscription.ts";
import { SubscriptionIds } from "../lib/client/identifiers.ts";

Deno.test("MQTT-4.8.2-1, MQTT-4.8.2-2: a shared filter is $share/{ShareName}/{filter} with a ShareName free of / + #", () => {
  assert.deepEqual(parseSharedFilter("$share/g/a/b"), { shareName: "g", filter: "a/b" });
  assert.deepEqual(parseSharedFilter("$share/group-1/#"), { shareName: "group-1", filter: "#" });
  assert.deepEqual(parseSharedFilter("$share/g//"), { shareName: "g", filter: "/" });
  assert.equal(parseSharedFilter("a/$share/g/b"), undefined);
  assert.equal(parseSharedFilter("$SHARE/g/b"), undefined, "the prefix is case-sensitive");
  for (
    const bad of ["$share/", "$share//a", "$share/g", "$share/g/", "$share/+/a", "$share/g#/a"]
  ) {
    assert.throws(() => parseSharedFilter(bad), (e: unknown) => {
      assert.ok(e instanceof ProtocolError, bad);
      assert.equal(e.code, "INVALID_TOPIC_FILTER");
      assert.match(e.message, /MQTT-4\.8\.2-1, MQTT-4\.8\.2-2/);
      return true;
    });
  }
});

Deno.test("section 4.8.2: a shared subscription matches messages by the filter after $share/{ShareName}/", () => {
  assert.equal(localFilter("$share/g/jobs/+"), "jobs/+");
  assert.equal(localFilter("jobs/+"), "jobs/+");
  const sub = createSubscription(["$share/workers/jobs/#"], [1], {
    bufferSize: 1,
    unsubscribe: async () => {},
  });
  assert.ok(sub.matches("jobs/1"));
  assert.ok(sub.matches("jobs"));
  assert.ok(!sub.matches("$share/workers/jobs/1"));
  assert.ok(!sub.matches("other"));
});

Deno.test("MQTT-3.3.4-3, MQTT-3.8.4-3: routing by Subscription Identifier follows each filter's latest SUBSCRIBE", () => {
  const ids = new SubscriptionIds();
  const older = { filters: ["a/#", "b"], identifier: 1 };
  const newer = { filters: ["a/#"], identifier: 2 };
  const plain = { filters: ["c/+"], identifier: undefined };
  ids.subscribed(older);
  ids.subscribed(newer); // the server replaced a/#'s subscription: its identifier is now 2
  ids.subscribed(plain);
  assert.ok(ids.routes(older, "a/x", [2]), "a/# is the same server subscription for both");
  assert.ok(ids.routes(newer, "a/x", [2]));
  assert.ok(ids.routes(older, "b", [1]), "b keeps identifier 1");
  assert.ok(!ids.routes(newer, "b", [1]));
  assert.ok(!ids.routes(older, "a/x", [1]), "identifier 1 no longer means a/#");
  assert.ok(ids.routes(plain, "c/d", [2]), "a filter without identifier matches by filter");
  assert.ok(!ids.routes(plain, "x", [2]));
  // The server lost the session: every filter was subscribed again without identifiers.
  ids.resubscribed();
  assert.ok(ids.routes(older, "b", [7]), "matched by filter now");
  assert.ok(!ids.routes(older, "z", [1]));
});
