/**
 * Interoperability: the broker-independent client test bodies of `tests/interop/features.ts`
 * against Mosquitto, NATS Server (MQTT mode) and RabbitMQ (MQTT plugin), each started here.
 *
 * A broker that is not installed is skipped with its reason printed (also when env `CI` is set:
 * CI installs only Mosquitto), and its test shows as ignored, never as passed. A feature the
 * broker lacks shows as an ignored step with the broker's own reason printed as `LIMIT ...`.
 * With env `INTEROP_RESULTS=<file>` every outcome is appended to that file as a JSON line, from
 * which `tests/interop/matrix.ts` writes `docs/interop.md`.
 *
 * @module
 */
import { type BrokerName, startBroker, unavailable } from "./interop/brokers.ts";
import { BrokerLimit, FEATURES } from "./interop/features.ts";

/** One line of the results file. */
export interface InteropResult {
  broker: BrokerName;
  /** Broker version, or absent when skipped. */
  version?: string;
  startupMs?: number;
  /** Absent for a skipped broker or a broker that failed to start. */
  feature?: string;
  outcome: "pass" | "limit" | "fail" | "skipped";
  /** The limit's evidence, the failure's message, or why the broker was skipped. */
  reason?: string;
  ms?: number;
}

const RESULTS = Deno.env.get("INTEROP_RESULTS");

async function record(result: InteropResult): Promise<void> {
  if (RESULTS) await Deno.writeTextFile(RESULTS, JSON.stringify(result) + "\n", { append: true });
}

/** `Deno.test` for one broker: ignored, with the reason printed, when it cannot run here. */
function interopTest(broker: BrokerName, fn: (t: Deno.TestContext) => Promise<void>): void {
  const why = unavailable(broker);
  if (why !== undefined) {
    console.warn(`interop: ${broker} is skipped: ${why}`);
    // Recorded at load time: an ignored test's body never runs.
    if (RESULTS) {
      Deno.writeTextFileSync(
        RESULTS,
        JSON.stringify({ broker, outcome: "skipped", reason: why }) + "\n",
        { append: true },
      );
    }
  }
  Deno.test({ name: `interop: ${broker}`, ignore: why !== undefined, fn });
}

for (const broker of ["mosquitto", "nats", "rabbitmq", "embedded"] as const) {
  interopTest(broker, async (t) => {
    let started;
    try {
      started = await startBroker(broker);
    } catch (err) {
      await record({ broker, outcome: "fail", reason: `did not start: ${(err as Error).message}` });
      throw err;
    }
    await using server = started;
    const { version, startupMs } = server;
    console.log(`interop: ${broker}: ${version}, started in ${Math.round(startupMs)} ms`);
    for (const feature of FEATURES) {
      const begin = performance.now();
      let outcome: "pass" | "limit" | "fail" = "pass";
      let error: unknown;
      try {
        await feature.run(server);
      } catch (err) {
        error = err;
        outcome = err instanceof BrokerLimit ? "limit" : "fail";
      }
      const ms = Math.round(performance.now() - begin);
      const reason = error === undefined
        ? undefined
        : error instanceof Error
        ? error.message
        : String(error);
      await record({ broker, version, startupMs, feature: feature.key, outcome, reason, ms });
      if (outcome === "limit") console.log(`LIMIT ${broker} ${feature.key}: ${reason}`);
      // A limit is no pass: its step shows as ignored.
      await t.step({
        name: `${broker}: ${feature.title}`,
        ignore: outcome === "limit",
        fn: () => {
          if (outcome === "fail") throw error;
        },
      });
    }
  });
}
