/**
 * Tests that need an installed tool (Mosquitto, `nats-server`, Chromium, ...) follow one rule: they
 * may skip, with a visible reason, only when the tool is not installed and env `CI` is not set.
 * With `CI` set a missing tool is never skipped: the test runs and fails, saying why.
 *
 * @example
 * ```ts
 * import { type Tool, toolTest } from "./needs.ts";
 *
 * const CURL: Tool = {
 *   name: "curl",
 *   install: "apt-get install curl",
 *   available: () => true,
 * };
 * toolTest(CURL, "fetches", () => {});
 * ```
 *
 * @module
 */

/** A tool some tests need, for {@linkcode toolTest} and {@linkcode ignoreWithout}. */
export interface Tool {
  /** Its name in messages, e.g. `"Mosquitto"`. */
  readonly name: string;
  /** How to install it, e.g. `"apt-get install mosquitto mosquitto-clients"`. */
  readonly install: string;
  /** Whether it is installed here (and not disabled through the environment). */
  available(): boolean;
}

/**
 * Whether env `name` is set to anything but `""`, `0` or `false`.
 *
 * @example
 * ```ts
 * if (envFlag("NATS_DISABLE")) console.log("NATS tests are switched off");
 * ```
 */
export function envFlag(name: string): boolean {
  const value = Deno.env.get(name);
  return value !== undefined && value !== "" && value !== "0" && value !== "false";
}

/**
 * Whether env `CI` is set (to anything but `""`, `0` or `false`): tests needing a tool then
 * fail rather than skip when it is missing.
 *
 * @example
 * ```ts
 * if (!inCi()) console.log("a missing broker skips its tests");
 * ```
 */
export function inCi(): boolean {
  return envFlag("CI");
}

// A tool's warning is printed once per run, however many tests it ignores.
const warned = new Set<string>();

/**
 * `true` when tests needing `tool` should be ignored: it is missing and env `CI` is not set
 * (a warning saying so is printed once per tool). With `CI` set, a missing tool is never
 * skipped. Use as `Deno.test({ name, ignore: ignoreWithout(tool), fn })`.
 *
 * @example
 * ```ts
 * import { MOSQUITTO } from "./mosquitto.ts";
 *
 * Deno.test({ name: "talks to a broker", ignore: ignoreWithout(MOSQUITTO), fn: () => {} });
 * ```
 */
export function ignoreWithout(tool: Tool): boolean {
  if (tool.available() || inCi()) return false;
  if (!warned.has(tool.name)) {
    warned.add(tool.name);
    console.warn(
      `${tool.name} is not installed: tests needing it are ignored ` +
        `(${tool.install}; with CI set they fail instead)`,
    );
  }
  return true;
}

/** The body of a test. */
export type TestFn = (t: Deno.TestContext) => void | Promise<void>;

/**
 * `Deno.test` for tests that need `tool`: ignored with a warning when it is missing locally,
 * failing when it is missing and env `CI` is set. Takes a name and a body, or a definition
 * (sanitizer switches etc.) whose `ignore` is decided here.
 *
 * @example
 * ```ts
 * import { MOSQUITTO } from "./mosquitto.ts";
 *
 * toolTest(MOSQUITTO, "publishes", async () => {});
 * toolTest(MOSQUITTO, { name: "publishes", sanitizeOps: false, fn: async () => {} });
 * ```
 */
export function toolTest(
  tool: Tool,
  nameOrDefinition: string | Omit<Deno.TestDefinition, "ignore">,
  maybeFn?: TestFn,
): void {
  const definition = typeof nameOrDefinition === "string"
    ? { name: nameOrDefinition, fn: maybeFn! }
    : nameOrDefinition;
  const fn = definition.fn;
  Deno.test({
    ...definition,
    ignore: ignoreWithout(tool),
    fn: (t) => {
      if (!tool.available()) {
        throw new Error(
          `${tool.name} is not installed and CI is set: tests needing it must not skip ` +
            `(${tool.install})`,
        );
      }
      return fn(t);
    },
  });
}
