/**
 * Shared subscriptions (MQTT 5.0 section 4.8.2): the filter syntax, local matching without the
 * `$share/{ShareName}/` prefix, and routing by Subscription Identifier.
 */
import assert from "node:assert/strict";
import { ProtocolError } from "../lib/errors.ts";
import { localFilter, parseSharedFilter } from "../lib/util/topic_filter.ts";
import { createSubscription } from "../lib/client/subscription.ts";

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
