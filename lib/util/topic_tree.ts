/**
 * {@linkcode TopicTree}: values keyed by MQTT topic names or topic filters,
 * stored level by level, so that matching costs what the matching branches
 * cost, not what the whole set costs.
 *
 * @module
 */

/** A walk's depth meaning "this level and every level below" (a filter's "#"). */
const EVERYTHING = -1;

/** One topic level of a {@linkcode TopicTree}. */
class TopicNode<V> {
  /** Child levels by name ("+" and "#" are wildcard children of a filter tree). */
  children: Map<string, TopicNode<V>> | undefined = undefined;
  /** The key ending at this node, when a value is stored here. */
  key: string | undefined = undefined;
  value: V | undefined = undefined;
}

/**
 * A map from topic names or topic filters to values, stored as a trie of topic
 * levels (MQTT 3.1.1 section 4.7). Role-neutral: a broker keeps subscriptions
 * in one (keys are filters, {@linkcode TopicTree.match} finds those matching a
 * published topic) and retained messages in another (keys are topic names,
 * {@linkcode TopicTree.select} finds those a new subscription matches); a
 * client can route incoming messages to its subscriptions the same way.
 *
 * Both lookups follow MQTT-4.7.2-1: a filter starting with a wildcard (`#`,
 * `+`) does not match a topic name starting with `$`. Keys are not validated
 * here (the codec does that); `+` and `#` are wildcards only as whole levels.
 * Neither lookup recurses, so a topic of thousands of levels cannot exhaust
 * the stack.
 *
 * @example Subscriptions: which filters match a topic
 * ```ts
 * import { TopicTree } from "./topic_tree.ts";
 *
 * const subscriptions = new TopicTree<string>();
 * subscriptions.set("sport/#", "all sport");
 * subscriptions.set("sport/+/player1", "player1 anywhere");
 * subscriptions.set("#", "everything");
 * const hits: string[] = [];
 * subscriptions.match("sport/tennis/player1", (value) => void hits.push(value));
 * console.log(hits.sort()); // [ "all sport", "everything", "player1 anywhere" ]
 * subscriptions.match("$SYS/uptime", (value) => void hits.push(value)); // no match: MQTT-4.7.2-1
 * ```
 *
 * @example Retained messages: which topics a filter selects
 * ```ts
 * import { TopicTree } from "./topic_tree.ts";
 *
 * const retained = new TopicTree<number>();
 * retained.set("a/b", 1);
 * retained.set("a/c/d", 2);
 * retained.set("x", 3);
 * console.log([...retained.select("a/#")].map(([topic]) => topic).sort()); // [ "a/b", "a/c/d" ]
 * ```
 */
export class TopicTree<V> {
  #root: TopicNode<V> = new TopicNode();
  #size = 0;

  /** Number of keys stored. */
  get size(): number {
    return this.#size;
  }

  /** The value stored under `key` exactly (no wildcard matching), if any. */
  get(key: string): V | undefined {
    return this.#find(key)?.value;
  }

  /** Whether a value is stored under `key` exactly. */
  has(key: string): boolean {
    return this.#find(key)?.key !== undefined;
  }

  /** Stores `value` under `key`, replacing the value stored there before. */
  set(key: string, value: V): void {
    let node = this.#root;
    let start = 0;
    while (true) {
      const slash = key.indexOf("/", start);
      const level = slash < 0 ? key.slice(start) : key.slice(start, slash);
      const children = node.children ??= new Map();
      let child = children.get(level);
      if (child === undefined) {
        child = new TopicNode();
        children.set(level, child);
      }
      node = child;
      if (slash < 0) break;
      start = slash + 1;
    }
    if (node.key === undefined) this.#size++;
    node.key = key;
    node.value = value;
  }

  /** Removes `key` and its value; returns whether it was stored. Emptied levels are freed. */
  delete(key: string): boolean {
    const path: TopicNode<V>[] = [];
    const levels: string[] = [];
    let node: TopicNode<V> | undefined = this.#root;
    let start = 0;
    while (true) {
      const slash = key.indexOf("/", start);
      const level = slash < 0 ? key.slice(start) : key.slice(start, slash);
      path.push(node);
      levels.push(level);
      node = node.children?.get(level);
      if (node === undefined) return false;
      if (slash < 0) break;
      start = slash + 1;
    }
    if (node.key === undefined) return false;
    node.key = undefined;
    node.value = undefined;
    this.#size--;
    // Free the levels left without a value or a child, deepest first.
    for (let i = path.length - 1; i >= 0; i--) {
      if (node.key !== undefined || (node.children !== undefined && node.children.size > 0)) break;
      const parent: TopicNode<V> = path[i];
      parent.children!.delete(levels[i]);
      node = parent;
    }
    return true;
  }

  /** Removes every key. */
  clear(): void {
    this.#root = new TopicNode();
    this.#size = 0;
  }

  /**
   * Calls `fn` for each stored topic filter that matches the topic name
   * `topic` (MQTT 3.1.1 section 4.7), in no particular order. `fn` must not
   * change the tree.
   */
  match(topic: string, fn: (value: V, filter: string) => void): void {
    const levels = topic.split("/");
    const count = levels.length;
    // MQTT-4.7.2-1: no wildcard at the first level matches a topic starting with "$".
    const dollar = topic.charCodeAt(0) === 0x24;
    const nodes: TopicNode<V>[] = [this.#root];
    const depths: number[] = [0];
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const depth = depths.pop()!;
      const children = node.children;
      if (depth === count) {
        if (node.key !== undefined) fn(node.value as V, node.key);
        // "sport/#" also matches "sport", its parent level (MQTT 4.7.1.2).
        const multi = children?.get("#");
        if (multi?.key !== undefined) fn(multi.value as V, multi.key);
        continue;
      }
      if (children === undefined) continue;
      const wildcards = depth !== 0 || !dollar;
      if (wildcards) {
        const multi = children.get("#");
        if (multi?.key !== undefined) fn(multi.value as V, multi.key);
        const single = children.get("+");
        if (single !== undefined) {
          nodes.push(single);
          depths.push(depth + 1);
        }
      }
      const exact = children.get(levels[depth]);
      if (exact !== undefined) {
        nodes.push(exact);
        depths.push(depth + 1);
      }
    }
  }

  /**
   * The stored topic names that the topic filter `filter` matches, with their
   * values, lazily: a caller can stop, or take a few at a time (a tree changed
   * meanwhile yields keys added and skips keys removed where Map iteration does).
   */
  *select(filter: string): Generator<[string, V], void, undefined> {
    for (const entry of this.#walk(filter, Infinity)) if (entry !== undefined) yield entry;
  }

  /**
   * {@linkcode TopicTree.select} that also yields `undefined` after every
   * `steps` levels it looked at without finding a match: a filter such as
   * `a/+/x` over many topics `a/…` may look at all of them to find none, and a
   * caller sharing a thread can pause there.
   *
   * @example
   * ```ts
   * import { TopicTree } from "./topic_tree.ts";
   * const tree = new TopicTree<number>();
   * for (let i = 0; i < 100; i++) tree.set(`a/${i}`, i);
   * const walk = [...tree.selectPaced("a/+/x", 10)];
   * console.log(walk.length > 5, walk.every((entry) => entry === undefined)); // true true
   * ```
   */
  selectPaced(filter: string, steps: number): Generator<[string, V] | undefined, void, undefined> {
    return this.#walk(filter, steps);
  }

  *#walk(filter: string, pace: number): Generator<[string, V] | undefined, void, undefined> {
    const levels = filter.split("/");
    const count = levels.length;
    const nodes: TopicNode<V>[] = [this.#root];
    const depths: number[] = [0];
    let steps = 0;
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const depth = depths.pop()!;
      if (++steps >= pace) {
        steps = 0;
        yield undefined;
      }
      if (depth === EVERYTHING || depth === count) {
        if (node.key !== undefined) yield [node.key, node.value as V];
        if (depth === EVERYTHING && node.children !== undefined) {
          for (const child of node.children.values()) {
            nodes.push(child);
            depths.push(EVERYTHING);
          }
        }
        continue;
      }
      const level = levels[depth];
      const children = node.children;
      if (level === "#") {
        // The parent level too ("sport/#" matches "sport"), then everything below.
        if (depth !== 0 && node.key !== undefined) yield [node.key, node.value as V];
        if (children === undefined) continue;
        for (const [name, child] of children) {
          if (depth === 0 && name.charCodeAt(0) === 0x24) continue; // MQTT-4.7.2-1
          nodes.push(child);
          depths.push(EVERYTHING);
        }
      } else if (level === "+") {
        if (children === undefined) continue;
        // A leaf cannot match when more levels follow, unless the next is "#" (its parent rule).
        const leavesMatch = depth + 1 === count || levels[depth + 1] === "#";
        for (const [name, child] of children) {
          if (++steps >= pace) {
            steps = 0;
            yield undefined;
          }
          if (depth === 0 && name.charCodeAt(0) === 0x24) continue; // MQTT-4.7.2-1
          if (!leavesMatch && child.children === undefined) continue;
          nodes.push(child);
          depths.push(depth + 1);
        }
      } else {
        const child = children?.get(level);
        if (child !== undefined) {
          nodes.push(child);
          depths.push(depth + 1);
        }
      }
    }
  }

  /** Every key and value, in no particular order. */
  entries(): Generator<[string, V], void, undefined> {
    return this.#all(this.#root);
  }

  /** Every key and value at or below `start`. */
  *#all(start: TopicNode<V>): Generator<[string, V], void, undefined> {
    const nodes = [start];
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      if (node.key !== undefined) yield [node.key, node.value as V];
      if (node.children !== undefined) {
        for (const child of node.children.values()) nodes.push(child);
      }
    }
  }

  #find(key: string): TopicNode<V> | undefined {
    let node: TopicNode<V> | undefined = this.#root;
    let start = 0;
    while (node !== undefined) {
      const slash = key.indexOf("/", start);
      node = node.children?.get(slash < 0 ? key.slice(start) : key.slice(start, slash));
      if (slash < 0) return node;
      start = slash + 1;
    }
    return undefined;
  }
}
