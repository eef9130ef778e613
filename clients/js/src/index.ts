/**
 * `@wrapsync/client`: the wrapsync node's HTTP API, its change feed, and
 * offline Automerge replicas of family team plans. Browser-safe; the Node
 * file store lives in `@wrapsync/client/node`, the IndexedDB store in
 * `@wrapsync/client/indexeddb`.
 */
export { WrapsyncClient, DEVICE_ID, MAX_SYNC_BATCH } from "./client.js";
export type { ClientOptions, Tokens, ListPlansOptions, ChangeSubscription, ChangeSubscriptionOptions, SyncBatchAnswer } from "./client.js";
export { WrapsyncError } from "./errors.js";
export { PROBLEM_TYPES, isProblemType, type ProblemType } from "./problems.js";
export { SseParser, type SseEvent } from "./sse.js";
export { MemoryStore, type PlanStore } from "./store.js";
export { Replica } from "./replica.js";
export type { ReplicaOptions, SyncResult, BackgroundSync, BackgroundSyncOptions, PlanDoc } from "./replica.js";
export { PlanEditor, PlanEditError, normalizePhone, unsafeChar } from "./editor.js";
export type { LocalOp, StrengthInput, ProgressInput, NeedInput } from "./editor.js";
export { render, versionOf, type Json, type JsonObject } from "./render.js";
export * as schema from "./schema.js";
export { ulid } from "./ulid.js";
export type * from "./types.js";
