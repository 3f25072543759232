/**
 * Stores for session state that must survive a restart: the {@linkcode Store}
 * contract, {@linkcode MemoryStore} and the durable {@linkcode FileStore}.
 *
 * @example
 * ```ts
 * import { FileStore } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * const store = await FileStore.open(`${dir}/client-1.journal`);
 * console.log(store.load().inflight.length); // 0
 * store.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
export type {
  InflightRecord,
  PublishRecord,
  Store,
  StoredSession,
  SubscriptionFlags,
  SubscriptionRecord,
} from "./store.ts";
export { subscriptionByte, subscriptionRecord } from "./store.ts";
export { MemoryStore } from "./memory_store.ts";
export {
  type DamagedRegion,
  FileStore,
  type FileStoreOptions,
  StoreCorruptionError,
} from "./file_store.ts";
