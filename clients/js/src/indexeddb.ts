/**
 * A `PlanStore` in the browser's IndexedDB: database `name` (default
 * `wrapsync`) with object stores `docs`, `sync` and `meta`, keyed by plan id
 * (meta by key).
 */
import type { PlanStore } from "./store.js";

const STORES = ["docs", "sync", "meta"] as const;
type StoreName = (typeof STORES)[number];

function promised<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export class IndexedDBStore implements PlanStore {
  private db: Promise<IDBDatabase> | undefined;

  constructor(
    readonly name = "wrapsync",
    private readonly factory: IDBFactory = globalThis.indexedDB,
  ) {}

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const request = this.factory.open(this.name, 1);
      request.onupgradeneeded = () => {
        for (const store of STORES) {
          if (!request.result.objectStoreNames.contains(store)) request.result.createObjectStore(store);
        }
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
      request.onblocked = () => reject(new Error(`IndexedDB ${this.name} is blocked by another tab`));
    });
    return this.db;
  }

  private async get<T>(store: StoreName, key: string): Promise<T | undefined> {
    const db = await this.open();
    return (await promised(db.transaction(store, "readonly").objectStore(store).get(key))) as T | undefined;
  }

  private async put(store: StoreName, key: string, value: unknown): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(store, "readwrite");
    tx.objectStore(store).put(value, key);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
    });
  }

  async getDoc(planId: string) {
    return this.get<Uint8Array>("docs", planId);
  }
  putDoc(planId: string, bytes: Uint8Array) {
    return this.put("docs", planId, bytes.slice());
  }
  async getSyncState(planId: string) {
    return this.get<Uint8Array>("sync", planId);
  }
  putSyncState(planId: string, bytes: Uint8Array) {
    return this.put("sync", planId, bytes.slice());
  }
  getMeta(key: string) {
    return this.get<string>("meta", key);
  }
  putMeta(key: string, value: string) {
    return this.put("meta", key, value);
  }
  async listPlans() {
    const db = await this.open();
    const keys = await promised(db.transaction("docs", "readonly").objectStore("docs").getAllKeys());
    return keys.map(String).sort();
  }
  async deletePlan(planId: string) {
    const db = await this.open();
    const tx = db.transaction(["docs", "sync"], "readwrite");
    tx.objectStore("docs").delete(planId);
    tx.objectStore("sync").delete(planId);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
    });
  }
}
