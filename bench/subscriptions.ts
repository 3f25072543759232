/**
 * Routing incoming messages in one client holding many subscriptions
 * (issue 18): messages/s through the client's Inbox at 10, 1,000 and 10,000
 * subscriptions, a third each exact (`dev/{i}/temp`), single-level wildcard
 * (`dev/{i}/+`) and multi-level wildcard (`site/{i}/#`) filters. Each message
 * (`dev/{k}/temp`, k cycling over the subscribed devices) matches two of them.
 * No broker: what is measured is the client's local matching and buffering,
 * the part that grew with the number of subscriptions.
 *
 * Run: deno task bench:subscriptions [--messages 200000] [--runs 3]
 * On the code before issue 18 add `--before` (a tenth of the messages at
 * 10,000 subscriptions, where each message cost a scan of them all).
 *
 * @module
 */
import { Inbox } from "../lib/client/inbox.ts";
import { Message } from "../lib/client/message.ts";
import { createSubscription, type Subscription } from "../lib/client/subscription.ts";
import { ClientSessionState } from "../lib/session/client_state.ts";
import { arg, fmt } from "./_mosquitto.ts";

const BATCH = 500;

/** Messages per second routed into an inbox holding `count` subscriptions. */
async function run(count: number, messages: number): Promise<number> {
  const inbox = new Inbox(new ClientSessionState(), BATCH * 2);
  const subs: Subscription[] = [];
  const devices = Math.max(1, Math.floor(count / 3));
  for (let i = 0; subs.length < count; i++) {
    const filter = [`dev/${i % devices}/temp`, `dev/${i % devices}/+`, `site/${i % devices}/#`][
      Math.floor(i / devices) % 3
    ];
    const sub = createSubscription([filter], [0], {
      bufferSize: BATCH * 2,
      unsubscribe: () => Promise.resolve(),
    });
    inbox.subscribed(inbox.subscribing([filter]));
    inbox.add(sub);
    subs.push(sub);
  }
  const iterators = subs.map((s) => s[Symbol.asyncIterator]());
  const payload = new Uint8Array(64);
  const topics = Array.from({ length: devices }, (_, k) => `dev/${k}/temp`);
  let routed = 0;
  const start = performance.now();
  while (routed < messages) {
    for (let i = 0; i < BATCH; i++, routed++) {
      inbox.route(
        new Message({
          type: "publish",
          topic: topics[routed % devices],
          payload,
          qos: 0,
          retain: false,
          dup: false,
        }),
      );
    }
    // Consume what was routed, so no buffer fills: only the devices of this
    // batch received, in their exact and `+` subscriptions.
    for (let i = routed - BATCH; i < routed; i++) {
      for (const s of [i % devices, devices + (i % devices)]) {
        if (s >= subs.length) continue;
        for (let n = subs[s].buffered; n > 0; n--) await iterators[s].next();
      }
    }
  }
  const rate = routed / ((performance.now() - start) / 1000);
  inbox.close(undefined);
  return rate;
}

const messages = Number(arg("messages") ?? 200_000);
const runs = Number(arg("runs") ?? 3);
const counts = [10, 1_000, 10_000];
const best = new Map<number, number>();
for (let r = 0; r < runs; r++) {
  for (const count of counts) {
    // `--before` for the scan this replaced: at 10,000 a message took ~0.4 ms.
    const rate = await run(
      count,
      Deno.args.includes("--before") && count >= 10_000 ? messages / 10 : messages,
    );
    best.set(count, Math.max(best.get(count) ?? 0, rate));
  }
}
const load = Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
console.log(
  `Routing in one client, ${fmt(messages)} messages, best of ${runs}; ` +
    `load average ${load}`,
);
console.log("subscriptions  msg/s");
for (const count of counts) {
  console.log(`${fmt(count).padStart(13)}  ${fmt(best.get(count)!).padStart(9)}`);
}
