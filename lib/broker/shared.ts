/**
 * MQTT 5.0 shared subscriptions (section 4.8.2): `$share/{ShareName}/{filter}`.
 * Each message matching a group's filter goes to one member of the group.
 *
 * @module
 */
import type { QoS } from "../codec/packet.ts";
import { TopicTree } from "../util/topic_tree.ts";
import type { Grant } from "./subscriptions.ts";

const PREFIX = "$share/";

/** The ShareName and Topic Filter of a shared subscription's filter; undefined for any other filter. */
export function parseShared(filter: string): { group: string; filter: string } | undefined {
  if (!filter.startsWith(PREFIX)) return undefined;
  const rest = filter.slice(PREFIX.length);
  const slash = rest.indexOf("/");
  if (slash < 0) return { group: rest, filter: "" };
  return { group: rest.slice(0, slash), filter: rest.slice(slash + 1) };
}

/**
 * Why `filter` is not a valid shared subscription (MQTT-4.8.2-1, MQTT-4.8.2-2),
 * or undefined when it is one or is not shared at all.
 */
export function sharedFilterError(filter: string): string | undefined {
  const parsed = parseShared(filter);
  if (parsed === undefined) return undefined;
  if (parsed.group.length === 0 || /[+#]/.test(parsed.group)) {
    return `the ShareName of "${filter}" must be at least one character, without "+" or "#" (MQTT-4.8.2-1, MQTT-4.8.2-2)`;
  }
  if (parsed.filter.length === 0) {
    return `"${filter}" needs a topic filter after its ShareName (MQTT-4.8.2-2)`;
  }
  return undefined;
}

/** A member of a group: a session, with whether it has a live connection. */
export interface ShareMember {
  /** Whether the member's session has a live connection. */
  readonly owner?: unknown;
}

/** One shared subscription group: its members in join order, and whose turn is next. */
interface Group<S> {
  readonly members: Map<S, Grant>;
  next: number;
}

/**
 * The shared subscriptions of the broker, by topic filter then ShareName.
 * A message goes to one member per group, in turn, preferring members with a
 * live connection.
 *
 * @example
 * ```ts
 * import { SharedSubscriptions } from "./shared.ts";
 * const shared = new SharedSubscriptions<{ owner?: unknown }>();
 * const a = { owner: 1 }, b = { owner: 1 };
 * shared.add("$share/g/t/#", a, { qos: 1 });
 * shared.add("$share/g/t/#", b, { qos: 1 });
 * const got: unknown[] = [];
 * for (let i = 0; i < 4; i++) shared.match("t/x", (_group, member) => got.push(member));
 * console.log(got.filter((m) => m === a).length); // 2
 * ```
 */
export class SharedSubscriptions<S extends ShareMember = ShareMember> {
  readonly #tree = new TopicTree<Map<string, Group<S>>>();
  #size = 0;

  /** Number of (shared filter, member) pairs. */
  get size(): number {
    return this.#size;
  }

  /**
   * Adds `member` to the group of a `$share/…` filter; returns whether it was
   * a member already, or undefined when `filter` is not a shared subscription.
   */
  add(filter: string, member: S, grant: Grant): boolean | undefined {
    const parsed = parseShared(filter);
    if (parsed === undefined) return undefined;
    let groups = this.#tree.get(parsed.filter);
    if (groups === undefined) {
      groups = new Map();
      this.#tree.set(parsed.filter, groups);
    }
    let group = groups.get(parsed.group);
    if (group === undefined) {
      group = { members: new Map(), next: 0 };
      groups.set(parsed.group, group);
    }
    const existed = group.members.has(member);
    if (!existed) this.#size++;
    group.members.set(member, grant);
    return existed;
  }

  /** Removes `member` from the group of a `$share/…` filter; returns whether it was one. */
  remove(filter: string, member: S): boolean {
    const parsed = parseShared(filter);
    if (parsed === undefined) return false;
    const groups = this.#tree.get(parsed.filter);
    const group = groups?.get(parsed.group);
    if (group === undefined || !group.members.delete(member)) return false;
    this.#size--;
    if (group.members.size === 0) groups!.delete(parsed.group);
    if (groups!.size === 0) this.#tree.delete(parsed.filter);
    return true;
  }

  /** For each group whose filter matches `topic`, calls `fn` with the member whose turn it is. */
  match(topic: string, fn: (group: unknown, member: S, grant: Grant) => void): void {
    if (this.#size === 0) return; // the usual case: no walk of an empty tree per PUBLISH
    this.#tree.match(topic, (groups) => {
      for (const group of groups.values()) {
        const chosen = pick(group, undefined);
        if (chosen !== undefined) fn(group, chosen[0], chosen[1]);
      }
    });
  }

  /**
   * Another member of `group` (from {@linkcode match}) than `leaving`, for a
   * message `leaving` will not acknowledge; undefined when none is left.
   */
  redeliverTarget(group: unknown, leaving: S): { session: S; qos: QoS } | undefined {
    const chosen = pick(group as Group<S>, leaving);
    return chosen === undefined ? undefined : { session: chosen[0], qos: chosen[1].qos };
  }
}

/** The member whose turn it is (skipping `except`), preferring one with a live connection. */
function pick<S extends ShareMember>(
  group: Group<S>,
  except: S | undefined,
): [S, Grant] | undefined {
  const members = [...group.members];
  const n = members.length;
  let fallback: [S, Grant] | undefined;
  for (let i = 0; i < n; i++) {
    const index = (group.next + i) % n;
    const member = members[index];
    if (member[0] === except) continue;
    if (member[0].owner !== undefined) {
      group.next = index + 1;
      return member;
    }
    fallback ??= member;
  }
  if (fallback !== undefined) group.next++;
  return fallback;
}
