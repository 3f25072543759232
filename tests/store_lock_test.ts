/**
 * The lock of a broker's persistence directory: one released a moment after a
 * new broker first tries it is taken, not reported as "in use by another broker".
 * It happens on its own when a process is spawned (by any thread) while the old
 * broker closes: the child holds a copy of the lock's descriptor until its exec.
 */
import assert from "node:assert/strict";
import { Broker } from "../broker.ts";
import { MqttError } from "../lib/errors.ts";

async function holdLock(dir: string): Promise<Deno.FsFile> {
  await Deno.mkdir(dir, { recursive: true });
  const holder = await Deno.open(`${dir}/broker.lock`, { write: true, create: true });
  assert.equal(await holder.tryLock(true), true);
  return holder;
}

Deno.test("persistence: a lock released a moment later is taken, not reported in use", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-lock-" });
  try {
    const holder = await holdLock(dir);
    await using broker = new Broker({ persistence: dir });
    const listening = broker.listen({ port: 0 });
    // Failed with STORE_ERROR "in use by another broker" when the lock was tried only once.
    const release = setTimeout(() => holder.close(), 100);
    try {
      assert.ok((await listening).port > 0);
    } finally {
      clearTimeout(release);
      try {
        holder.close();
      } catch {
        // released already
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("persistence: a lock another owner keeps is reported in use", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-lock-" });
  try {
    using _holder = await holdLock(dir);
    await using broker = new Broker({ persistence: dir });
    await assert.rejects(
      broker.listen({ port: 0 }),
      (err) => err instanceof MqttError && /in use by another broker/.test(err.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
