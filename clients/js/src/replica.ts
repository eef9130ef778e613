/**
 * `Replica`: plans kept on the device as Automerge documents, edited
 * offline and synced with the node (`POST /v1/plans/{id}/sync`).
 *
 * Each device (each `PlanStore`, per user) uses one random Automerge actor
 * for all its edits, kept in the store: the node binds an actor to the first
 * user whose changes carry it, so actors must never be shared between users.
 */
import * as A from "@automerge/automerge";
import { MAX_SYNC_BATCH, type WrapsyncClient, type ChangeSubscription } from "./client.js";
import { WrapsyncError } from "./errors.js";
import { PlanEditor } from "./editor.js";
import { render, versionOf, type JsonObject } from "./render.js";
import type { PlanStore } from "./store.js";

export type PlanDoc = Record<string, any>;

export interface ReplicaOptions {
  client: WrapsyncClient;
  store: PlanStore;
  /** Device id sent as `Device-Id` (default: a random one kept in the store). */
  deviceId?: string;
  /** Automerge actor (hex) for this device's edits (default: a random one kept in the store). */
  actorId?: string;
}

export interface SyncResult {
  /** Rounds (requests) it took. */
  rounds: number;
  /** True when the local document changed (the node sent changes). */
  received: boolean;
  /** Heads after the sync, sorted (equals the node's `version` when in sync). */
  version: string[];
}

export interface BackgroundSyncOptions {
  /** Plans to keep in sync (default: every plan opened in this replica). */
  plans?: string[];
  /** Sync every plan this often (ms); 0 disables the timer. Default 60 000. */
  intervalMs?: number;
  /** Follow the change feed and sync a plan when it changes. Default true. */
  changeFeed?: boolean;
  /** Errors of background syncs and of the feed. */
  onError?: (error: unknown, planId?: string) => void;
  /** After each background sync of a plan. */
  onSynced?: (planId: string, result: SyncResult) => void;
}

export interface BackgroundSync {
  stop(): void;
  /** The change feed subscription, when following it. */
  readonly feed: ChangeSubscription | undefined;
}

function randomHex(bytes: number): string {
  const b = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const MAX_ROUNDS = 100;

/**
 * What a replica knows of a plan's copy since its last sync: `heads`, which
 * the node has; `dirty`, edited on this device since. A clean copy catches
 * up by heads alone (no sync state, and no need to load it).
 */
interface SyncedMark {
  heads: string[];
  dirty: boolean;
}

const concat = (a: Uint8Array, b: Uint8Array) => {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

export class Replica {
  readonly client: WrapsyncClient;
  readonly store: PlanStore;
  readonly actorId: string;
  readonly deviceId: string;
  private readonly docs = new Map<string, A.Doc<PlanDoc>>();
  private readonly syncing = new Map<string, Promise<SyncResult>>();
  private readonly again = new Set<string>();
  private writes = new Map<string, Promise<void>>();
  private readonly loading = new Map<string, Promise<A.Doc<PlanDoc>>>();
  /** Per plan: the heads the node is known to have of this copy, and whether it was edited since. */
  private readonly synced = new Map<string, SyncedMark>();

  private constructor(client: WrapsyncClient, store: PlanStore, actorId: string, deviceId: string) {
    this.client = client;
    this.store = store;
    this.actorId = actorId;
    this.deviceId = deviceId;
  }

  /**
   * A replica over `store`, with the actor and device id kept there (made
   * on first use). The actor key includes the client's username when known,
   * so two people sharing a store never share an actor.
   */
  static async create(options: ReplicaOptions): Promise<Replica> {
    const { client, store } = options;
    const who = client.username ? `:${client.username}` : "";
    let actorId = options.actorId ?? (await store.getMeta(`actor${who}`));
    if (!actorId) {
      actorId = randomHex(16);
      await store.putMeta(`actor${who}`, actorId);
    }
    let deviceId = options.deviceId ?? (await store.getMeta("device"));
    if (!deviceId) {
      deviceId = `d-${randomHex(12)}`;
      await store.putMeta("device", deviceId);
    }
    return new Replica(client, store, actorId, deviceId);
  }

  /** Plans with a local copy in memory. */
  get openPlans(): string[] {
    return [...this.docs.keys()];
  }

  /** Loads the plan's local copy (from the store, or an empty document). */
  async load(planId: string): Promise<A.Doc<PlanDoc>> {
    const open = this.docs.get(planId);
    if (open) return open;
    let loading = this.loading.get(planId);
    if (!loading) {
      loading = (async () => {
        // Changes appended to the stored copy by a sync land first.
        await this.writes.get(planId)?.catch(() => undefined);
        const bytes = await this.store.getDoc(planId);
        const doc = bytes ? A.load<PlanDoc>(bytes, { actor: this.actorId }) : A.init<PlanDoc>({ actor: this.actorId });
        this.docs.set(planId, doc);
        return doc;
      })().finally(() => this.loading.delete(planId));
      this.loading.set(planId, loading);
    }
    return loading;
  }

  /**
   * Opens a plan on this device: loads the local copy (or starts from an
   * empty document) and syncs it with the node. Answers the rendered plan.
   */
  async open(planId: string, options: { sync?: boolean } = {}): Promise<JsonObject> {
    await this.load(planId);
    if (options.sync ?? true) await this.sync(planId);
    return this.plan(planId);
  }

  /** The plan's local Automerge document (opened or loaded first). */
  doc(planId: string): A.Doc<PlanDoc> {
    const doc = this.docs.get(planId);
    if (!doc) throw new Error(`plan ${planId} is not open: call open() or load() first`);
    return doc;
  }

  /** The plan as the node renders it (`GET /v1/plans/{id}` → `plan`). */
  plan(planId: string): JsonObject {
    return render(this.doc(planId));
  }

  /** The local document's heads, sorted: the node's `version` once in sync. */
  version(planId: string): string[] {
    return versionOf(this.doc(planId));
  }

  /**
   * Edits the plan locally, offline, in one Automerge change made with this
   * device's actor. `fn` gets a `PlanEditor` (typed helpers, `replace`/`add`
   * by path, `doc` for raw access). Answers what `fn` returns. A throw
   * leaves the document unchanged. `message` becomes the change's summary
   * in the node's history (keep it free of names and other identifiers,
   * e.g. `add /strengths`).
   */
  async edit<T>(planId: string, fn: (plan: PlanEditor) => T, options: { message?: string; time?: number } = {}): Promise<T> {
    await this.load(planId);
    let result!: T;
    const time = options.time ?? Math.floor(Date.now() / 1000);
    const changeOptions = options.message ? { message: options.message, time } : { time };
    const after = A.change(this.doc(planId), changeOptions, (d) => {
      result = fn(new PlanEditor(d as PlanDoc));
    });
    this.docs.set(planId, after);
    await this.markEdited(planId);
    await this.persist(planId);
    return result;
  }

  /**
   * Edits the raw Automerge document (no layout checks here; the node still
   * refuses changes that break the plan schema or the user's role).
   */
  async change(planId: string, fn: A.ChangeFn<PlanDoc>, message?: string): Promise<void> {
    await this.load(planId);
    const doc = this.doc(planId);
    this.docs.set(planId, message ? A.change(doc, { message }, fn) : A.change(doc, fn));
    await this.markEdited(planId);
    await this.persist(planId);
  }

  // Typed helpers for the common phone actions (each one change).

  setVision(planId: string, text: string | null): Promise<void> {
    return this.edit(planId, (p) => p.setVision(text), { message: "replace /vision" });
  }

  addStrength(planId: string, strength: Parameters<PlanEditor["addStrength"]>[0]): Promise<string> {
    return this.edit(planId, (p) => p.addStrength(strength), { message: "add /strengths" });
  }

  markStepDone(planId: string, strategyId: string, stepId: string, date: string): Promise<void> {
    return this.edit(planId, (p) => p.markStepDone(strategyId, stepId, date), {
      message: "replace /strategies/*/steps/*/done_on; replace /strategies/*/steps/*/status",
    });
  }

  addProgress(planId: string, outcomeId: string, progress: Parameters<PlanEditor["addProgress"]>[1]): Promise<string> {
    return this.edit(planId, (p) => p.addProgress(outcomeId, progress), { message: "add /outcomes/*/progress" });
  }

  /**
   * Syncs the plan with the node: rounds of the Automerge sync protocol
   * until neither side has anything to say. Concurrent calls for one plan
   * share the running sync, which then runs once more before it settles,
   * so nothing made meanwhile is left behind. A refusal (`WrapsyncError`, e.g. 422
   * `change-forbidden`) leaves the local document as it was; the node
   * stored nothing. See `discardLocal` to drop refused local changes.
   */
  sync(planId: string): Promise<SyncResult> {
    const running = this.syncing.get(planId);
    if (running) {
      // The running sync goes round once more before it settles.
      this.again.add(planId);
      return running;
    }
    const run = (async () => {
      try {
        let result: SyncResult | undefined;
        do {
          this.again.delete(planId);
          const pass = await this.syncOnce(planId);
          // Every pass counts: a change received in an earlier pass must not
          // be hidden by a later, quiet one.
          result = result
            ? { rounds: result.rounds + pass.rounds, received: result.received || pass.received, version: pass.version }
            : pass;
        } while (this.again.has(planId));
        return result;
      } finally {
        this.syncing.delete(planId);
      }
    })();
    this.syncing.set(planId, run);
    return run;
  }

  /**
   * Syncs many plans in as few requests as the protocol needs: each round
   * carries every plan still talking (`POST /v1/sync`, up to
   * `MAX_SYNC_BATCH` per request), so catching up on hundreds of plans
   * costs a few requests, not hundreds. Answers each plan's result, or the
   * node's refusal for that plan (which leaves its local copy as it was).
   */
  async syncMany(planIds: string[]): Promise<Map<string, SyncResult | WrapsyncError>> {
    const ids = [...new Set(planIds)];
    // Plans already syncing finish first; then this call owns them all.
    await Promise.allSettled(ids.map((id) => this.syncing.get(id)).filter((p) => p !== undefined));
    while (ids.some((id) => this.syncing.has(id))) {
      await Promise.allSettled(ids.map((id) => this.syncing.get(id)).filter((p) => p !== undefined));
    }
    const results = new Map<string, SyncResult | WrapsyncError>();
    let settle!: () => void;
    const finished = new Promise<void>((resolve) => (settle = resolve));
    for (const id of ids) {
      const shared = finished.then(() => {
        const result = results.get(id);
        if (result instanceof Error) throw result;
        return result as SyncResult;
      });
      // Only a concurrent `sync(id)` awaits this; nobody else must see it reject.
      shared.catch(() => undefined);
      this.syncing.set(id, shared);
    }
    try {
      await this.runBatchSync(ids, results);
    } finally {
      for (const id of ids) this.syncing.delete(id);
      settle();
    }
    // Asked for again meanwhile: those go round once more, alone.
    const again = ids.filter((id) => this.again.delete(id));
    await Promise.all(again.map((id) => this.sync(id).then((r) => results.set(id, r), (e) => results.set(id, e))));
    return results;
  }

  private async runBatchSync(ids: string[], results: Map<string, SyncResult | WrapsyncError>): Promise<void> {
    const stored = new Set(await this.store.listPlans());
    interface Talk {
      /** `have`: catching up by heads; else rounds of the sync protocol. */
      have?: string[];
      state?: A.SyncState;
      rounds: number;
      received: boolean;
      nodeQuiet: boolean;
    }
    const talks = new Map<string, Talk>();
    for (const id of ids) {
      const mark = await this.mark(id);
      const open = this.docs.get(id);
      const have = mark?.dirty ? undefined : open ? versionOf(open) : mark ? mark.heads : stored.has(id) ? undefined : [];
      talks.set(id, { ...(have ? { have } : {}), rounds: 0, received: false, nodeQuiet: false });
    }
    const toProtocol = async (id: string, talk: Talk) => {
      delete talk.have;
      await this.load(id);
      const state = await this.store.getSyncState(id);
      talk.state = state ? A.decodeSyncState(state) : A.initSyncState();
    };
    for (const [id, talk] of talks) if (!talk.have) await toProtocol(id, talk);
    const finish = async (id: string, outcome: SyncResult | WrapsyncError) => {
      const talk = talks.get(id)!;
      talks.delete(id);
      results.set(id, outcome);
      if (talk.state && !(outcome instanceof Error)) {
        await this.persist(id);
        await this.store.putSyncState(id, A.encodeSyncState(talk.state));
      }
    };
    for (let round = 0; talks.size > 0; round++) {
      const outgoing: { plan: string; message: Uint8Array | null; have?: string[] }[] = [];
      for (const [id, talk] of talks) {
        if (talk.have) {
          outgoing.push({ plan: id, message: null, have: talk.have });
          continue;
        }
        const [next, message] = A.generateSyncMessage(this.doc(id), talk.state!);
        talk.state = next;
        // Both sides quiet: the node has all of this copy.
        if (!message && talk.nodeQuiet) this.markSynced(id, this.version(id));
        if ((!message && talk.nodeQuiet) || round >= MAX_ROUNDS) await finish(id, this.resultOf(id, talk));
        else outgoing.push({ plan: id, message });
      }
      for (let start = 0; start < outgoing.length; start += MAX_SYNC_BATCH) {
        const slice = outgoing.slice(start, start + MAX_SYNC_BATCH);
        const replies = await this.client.syncBatch(slice, this.deviceId);
        for (const { plan: id, message } of slice) {
          const talk = talks.get(id)!;
          const reply = replies.get(id);
          talk.rounds++;
          if (reply instanceof WrapsyncError) {
            // Heads the node does not know: this copy holds changes of its own.
            if (talk.have && reply.problemType === "unknown-version") await toProtocol(id, talk);
            else await finish(id, reply);
            continue;
          }
          if (talk.have) {
            const heads = [...(reply?.heads ?? [])].sort();
            if (reply?.changes) {
              await this.takeChanges(id, reply.changes);
              talk.received = true;
            }
            this.markSynced(id, heads);
            await finish(id, { rounds: talk.rounds, received: talk.received, version: heads });
            continue;
          }
          const answer = reply?.message ?? null;
          talk.nodeQuiet = !answer;
          if (answer) {
            const before = this.doc(id);
            const [doc, after] = A.receiveSyncMessage(before, talk.state!, answer);
            talk.state = after;
            if (A.getHeads(doc).join() !== A.getHeads(before).join()) talk.received = true;
            this.docs.set(id, doc);
          }
          if (!message && !answer) {
            this.markSynced(id, this.version(id));
            await finish(id, this.resultOf(id, talk));
          }
        }
      }
    }
  }

  private resultOf(id: string, talk: { rounds: number; received: boolean }): SyncResult {
    return { rounds: talk.rounds, received: talk.received, version: this.version(id) };
  }

  /**
   * Takes changes the node sent for a clean copy: into the open document,
   * or appended to the stored one (Automerge loads a saved document
   * followed by more changes), so a plan nobody is looking at is never
   * loaded just to be kept current.
   */
  private async takeChanges(planId: string, changes: Uint8Array): Promise<void> {
    await this.loading.get(planId);
    const open = this.docs.get(planId);
    if (open) this.docs.set(planId, A.loadIncremental(open, changes));
    // Stored by appending, open or not: cheaper than saving the whole
    // document, and writes of a plan are queued in order, so the stored
    // bytes always hold everything written before.
    return this.queueWrite(planId, async () => {
      const bytes = await this.store.getDoc(planId);
      if (!bytes && this.docs.has(planId)) {
        await this.store.putDoc(planId, A.save(this.docs.get(planId)!));
        return;
      }
      await this.store.putDoc(planId, bytes ? concat(bytes, changes) : changes);
    });
  }

  private async mark(planId: string): Promise<SyncedMark | undefined> {
    let mark = this.synced.get(planId);
    if (!mark) {
      const text = await this.store.getMeta(`synced:${planId}`);
      if (text) {
        try {
          mark = JSON.parse(text) as SyncedMark;
          this.synced.set(planId, mark);
        } catch {
          // unreadable: treated as unknown, so the sync protocol decides
        }
      }
    }
    return mark;
  }

  /** The node has `heads` of this copy (set as soon as that is known, before any await). */
  private markSynced(planId: string, heads: string[]): void {
    const dirty = this.synced.get(planId)?.dirty ?? false;
    // A copy edited since it was last in sync stays dirty until the
    // protocol says the node has it all.
    const open = this.docs.get(planId);
    const clean = !dirty || (open !== undefined && versionOf(open).join() === heads.join());
    const mark = { heads, dirty: !clean };
    this.synced.set(planId, mark);
    this.store.putMeta(`synced:${planId}`, JSON.stringify(mark)).catch(() => undefined);
  }

  private async markEdited(planId: string): Promise<void> {
    const mark = { heads: this.synced.get(planId)?.heads ?? [], dirty: true };
    this.synced.set(planId, mark);
    await this.store.putMeta(`synced:${planId}`, JSON.stringify(mark));
  }

  private async syncOnce(planId: string): Promise<SyncResult> {
    await this.load(planId);
    const stored = await this.store.getSyncState(planId);
    let state = stored ? A.decodeSyncState(stored) : A.initSyncState();
    let received = false;
    let rounds = 0;
    let nodeQuiet = false;
    while (rounds < MAX_ROUNDS) {
      const [next, message] = A.generateSyncMessage(this.doc(planId), state);
      state = next;
      // Both sides quiet: the node answered our last message with nothing,
      // and we have nothing more to say. (The first round always asks.)
      if (!message && nodeQuiet) {
        this.markSynced(planId, this.version(planId));
        break;
      }
      rounds++;
      const reply = await this.client.syncRound(planId, message, this.deviceId);
      nodeQuiet = !reply;
      if (reply) {
        // The document may have been edited during the request: read it anew.
        const before = this.doc(planId);
        const [doc, after] = A.receiveSyncMessage(before, state, reply);
        state = after;
        if (A.getHeads(doc).join() !== A.getHeads(before).join()) received = true;
        this.docs.set(planId, doc);
      }
      if (!message && !reply) {
        this.markSynced(planId, this.version(planId));
        break;
      }
    }
    await this.persist(planId);
    await this.store.putSyncState(planId, A.encodeSyncState(state));
    return { rounds, received, version: this.version(planId) };
  }

  /**
   * Drops the local copy (and its sync state) and fetches the plan anew
   * from the node: the way out after the node refused a local change, which
   * an Automerge document cannot undo. Unsynced local edits are lost.
   */
  async discardLocal(planId: string): Promise<JsonObject> {
    await this.syncing.get(planId)?.catch(() => undefined);
    await this.writes.get(planId);
    this.docs.delete(planId);
    this.synced.delete(planId);
    await this.store.putMeta(`synced:${planId}`, "");
    await this.store.deletePlan(planId);
    return this.open(planId);
  }

  /** Closes the in-memory copy (the stored one stays). */
  async close(planId: string): Promise<void> {
    await this.writes.get(planId);
    this.docs.delete(planId);
  }

  /**
   * Keeps plans in sync in the background: every `intervalMs`, and when the
   * change feed reports one of them changed. Call `stop()` to end it.
   */
  startBackgroundSync(options: BackgroundSyncOptions = {}): BackgroundSync {
    const planIds = () => options.plans ?? this.openPlans;
    const run = (planId: string) => {
      this.sync(planId).then(
        (result) => options.onSynced?.(planId, result),
        (error) => options.onError?.(error, planId),
      );
    };
    const interval = options.intervalMs ?? 60_000;
    const timer = interval > 0 ? setInterval(() => planIds().forEach(run), interval) : undefined;
    const feed =
      options.changeFeed === false
        ? undefined
        : this.client.subscribeChanges(
            (change) => {
              if (planIds().includes(change.plan)) run(change.plan);
            },
            { onError: (e) => options.onError?.(e) },
          );
    return {
      feed,
      stop() {
        if (timer) clearInterval(timer);
        feed?.close();
      },
    };
  }

  /** Saves the current document; writes of one plan are queued in order. */
  private persist(planId: string): Promise<void> {
    return this.queueWrite(planId, async () => {
      const doc = this.docs.get(planId);
      if (doc) await this.store.putDoc(planId, A.save(doc));
    });
  }

  private queueWrite(planId: string, write: () => Promise<void>): Promise<void> {
    const previous = this.writes.get(planId) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(write);
    this.writes.set(planId, next);
    return next;
  }
}
