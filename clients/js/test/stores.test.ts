/** The PlanStore implementations behave alike (no node needed). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IDBFactory } from "fake-indexeddb";
import { MemoryStore, type PlanStore } from "../src/index.js";
import { FileStore } from "../src/node/index.js";
import { IndexedDBStore } from "../src/indexeddb.js";

async function exercise(store: PlanStore) {
  assert.equal(await store.getDoc("P1"), undefined);
  assert.equal(await store.getMeta("actor"), undefined);
  await store.putDoc("P1", new Uint8Array([1, 2, 3]));
  await store.putDoc("P0", new Uint8Array([9]));
  await store.putSyncState("P1", new Uint8Array([4, 5]));
  await Promise.all([store.putMeta("actor", "abcd"), store.putMeta("device", "d-1")]);
  assert.deepEqual([...(await store.getDoc("P1"))!], [1, 2, 3]);
  assert.deepEqual([...(await store.getSyncState("P1"))!], [4, 5]);
  assert.equal(await store.getMeta("actor"), "abcd");
  assert.equal(await store.getMeta("device"), "d-1");
  assert.deepEqual(await store.listPlans(), ["P0", "P1"]);
  await store.putDoc("P1", new Uint8Array([7]));
  assert.deepEqual([...(await store.getDoc("P1"))!], [7]);
  await store.deletePlan("P1");
  assert.equal(await store.getDoc("P1"), undefined);
  assert.equal(await store.getSyncState("P1"), undefined);
  assert.deepEqual(await store.listPlans(), ["P0"]);
}

test("MemoryStore", () => exercise(new MemoryStore()));

test("FileStore", async () => {
  const dir = mkdtempSync(join(tmpdir(), "wrapsync-filestore-"));
  try {
    await exercise(new FileStore(dir));
    // Survives a new instance over the same directory.
    const again = new FileStore(dir);
    assert.equal(await again.getMeta("actor"), "abcd");
    assert.deepEqual(await again.listPlans(), ["P0"]);
    await assert.rejects(again.getDoc("../escape"), TypeError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("IndexedDBStore (fake-indexeddb)", async () => {
  const factory = new IDBFactory();
  await exercise(new IndexedDBStore("wrapsync-test", factory as unknown as globalThis.IDBFactory));
  const again = new IndexedDBStore("wrapsync-test", factory as unknown as globalThis.IDBFactory);
  assert.equal(await again.getMeta("device"), "d-1");
  assert.deepEqual([...(await again.getDoc("P0"))!], [9]);
});
