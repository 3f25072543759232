/**
 * One shared, always-empty `Map` and `Set`, to stand in for a collection an
 * object may never need. A `new Map()` allocates its hash table at once
 * (about 190 bytes empty), and a client holds a dozen that stay empty for
 * most connections (issue 18: ten thousand idle connections in one process).
 * Reads, `delete` and `clear` work on the stand-in as on any empty
 * collection; the owner swaps in a collection of its own before its first
 * `set` or `add`, which on the stand-in throws rather than share an entry
 * between owners.
 *
 * @module
 */

function shared(): never {
  throw new TypeError("the shared empty collection cannot be written: swap in a new one first");
}

const EMPTY_MAP = new Map<never, never>();
Object.defineProperty(EMPTY_MAP, "set", { value: shared });
const EMPTY_SET = new Set<never>();
Object.defineProperty(EMPTY_SET, "add", { value: shared });

/**
 * The shared empty `Map`; compare with `isEmptyStandIn` before writing.
 *
 * @example
 * ```ts
 * import { emptyMap, isEmptyStandIn } from "./empty.ts";
 * let ids = emptyMap<string, number>();
 * if (isEmptyStandIn(ids)) ids = new Map();
 * ids.set("a", 1);
 * ```
 */
export function emptyMap<K, V>(): Map<K, V> {
  return EMPTY_MAP as Map<K, V>;
}

/**
 * The shared empty `Set`; compare with `isEmptyStandIn` before writing.
 *
 * @example
 * ```ts
 * import { emptySet, isEmptyStandIn } from "./empty.ts";
 * let ids = emptySet<number>();
 * if (isEmptyStandIn(ids)) ids = new Set();
 * ids.add(1);
 * ```
 */
export function emptySet<T>(): Set<T> {
  return EMPTY_SET as Set<T>;
}

/**
 * Whether `collection` is the shared stand-in, which must be replaced before a write.
 *
 * @example
 * ```ts
 * import { emptySet, isEmptyStandIn } from "./empty.ts";
 * console.log(isEmptyStandIn(emptySet()), isEmptyStandIn(new Set())); // true false
 * ```
 */
export function isEmptyStandIn(collection: Map<unknown, unknown> | Set<unknown>): boolean {
  return collection === EMPTY_MAP || collection === EMPTY_SET;
}
