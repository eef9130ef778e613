/**
 * Where a replica keeps its plans: per plan the Automerge document bytes
 * and the sync state bytes, plus a few small values (the device's actor id
 * and device id). Implementations: `MemoryStore` (here), `FileStore`
 * (`@wrapsync/client/node`), `IndexedDBStore` (`@wrapsync/client/indexeddb`).
 */
export interface PlanStore {
  getDoc(planId: string): Promise<Uint8Array | undefined>;
  putDoc(planId: string, bytes: Uint8Array): Promise<void>;
  getSyncState(planId: string): Promise<Uint8Array | undefined>;
  putSyncState(planId: string, bytes: Uint8Array): Promise<void>;
  /** Small named values (actor id, device id). */
  getMeta(key: string): Promise<string | undefined>;
  putMeta(key: string, value: string): Promise<void>;
  /** Ids of the plans with a stored document. */
  listPlans(): Promise<string[]>;
  /** Forgets a plan's document and sync state. */
  deletePlan(planId: string): Promise<void>;
}

/** Keeps everything in memory (tests, or a session that need not survive). */
export class MemoryStore implements PlanStore {
  private docs = new Map<string, Uint8Array>();
  private states = new Map<string, Uint8Array>();
  private meta = new Map<string, string>();

  async getDoc(planId: string) {
    return this.docs.get(planId);
  }
  async putDoc(planId: string, bytes: Uint8Array) {
    this.docs.set(planId, bytes.slice());
  }
  async getSyncState(planId: string) {
    return this.states.get(planId);
  }
  async putSyncState(planId: string, bytes: Uint8Array) {
    this.states.set(planId, bytes.slice());
  }
  async getMeta(key: string) {
    return this.meta.get(key);
  }
  async putMeta(key: string, value: string) {
    this.meta.set(key, value);
  }
  async listPlans() {
    return [...this.docs.keys()].sort();
  }
  async deletePlan(planId: string) {
    this.docs.delete(planId);
    this.states.delete(planId);
  }
}
