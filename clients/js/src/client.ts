/**
 * `WrapsyncClient`: the node's `/v1` HTTP API over `fetch` (browsers, Node 20+).
 */
import { WrapsyncError } from "./errors.js";
import { SseParser } from "./sse.js";
import { encode as cborEncode, decode as cborDecode } from "cborg";
import type {
  AuditPage,
  ChangeFeed,
  History,
  Op,
  OpsResponse,
  PlanChange,
  PlanDocument,
  PlanList,
  Problem,
  Share,
  TokenResponse,
} from "./types.js";

interface SyncBatchResult {
  plan: string;
  message: Uint8Array | null;
  changes?: Uint8Array | null;
  heads?: string[];
  problem?: Problem;
}

/**
 * The node's answer for one plan of a `syncBatch`: its next sync message,
 * or (answering `have`) the changes after those heads and its heads now.
 */
export interface SyncBatchAnswer {
  message: Uint8Array | null;
  changes: Uint8Array | null;
  heads?: string[];
}

/** Most plans one `syncBatch` request may carry (the node's limit). */
export const MAX_SYNC_BATCH = 500;

export interface Tokens {
  access_token: string;
  refresh_token: string;
}

export interface ClientOptions {
  /** The node's base URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** Tokens from an earlier session (e.g. kept in secure storage). */
  tokens?: Tokens;
  /** Called whenever login or a refresh gives new tokens: keep them. */
  onTokens?: (tokens: TokenResponse) => void;
  /** Username the tokens belong to (set by `login`). */
  username?: string;
  /** A `fetch` implementation; `globalThis.fetch` by default. */
  fetch?: typeof fetch;
}

export interface ListPlansOptions {
  limit?: number;
  cursor?: string;
  /** Milliseconds since the Unix epoch. */
  updatedSince?: number;
}

export interface ChangeSubscriptionOptions {
  /** Resume after this cursor (from `changes()` or an earlier subscription). */
  since?: string;
  /** Called on every error; the subscription reconnects unless the error is final. */
  onError?: (error: unknown) => void;
  /** Called when the stream (re)connects. */
  onOpen?: () => void;
  /** First reconnect delay in ms (doubles up to `maxRetryMs`). Default 1000. */
  retryMs?: number;
  maxRetryMs?: number;
}

export interface ChangeSubscription {
  /** The cursor of the last change delivered. */
  readonly cursor: string | undefined;
  /** Stops the stream; `done` settles afterwards. */
  close(): void;
  /** Settles when the subscription ends (closed, or a final error). */
  readonly done: Promise<void>;
}

interface RequestInit2 {
  json?: unknown;
  body?: Uint8Array;
  contentType?: string;
  headers?: Record<string, string>;
  auth?: boolean;
  signal?: AbortSignal;
  /** Statuses answered as-is rather than thrown (e.g. 304). */
  pass?: number[];
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Device ids the node accepts in `Device-Id`. */
export const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

export class WrapsyncClient {
  readonly baseUrl: string;
  private tokens: Tokens | undefined;
  private refreshing: Promise<TokenResponse> | undefined;
  private readonly onTokens: ((tokens: TokenResponse) => void) | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly etags = new Map<string, { etag: string; doc: PlanDocument }>();
  username: string | undefined;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.tokens = options.tokens;
    this.onTokens = options.onTokens;
    this.username = options.username;
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** The current tokens, if logged in. */
  get currentTokens(): Tokens | undefined {
    return this.tokens;
  }

  private setTokens(tokens: TokenResponse): void {
    this.tokens = { access_token: tokens.access_token, refresh_token: tokens.refresh_token };
    this.onTokens?.(tokens);
  }

  async login(username: string, password: string): Promise<TokenResponse> {
    const response = await this.request("POST", "/v1/auth/login", {
      json: { username, password },
      auth: false,
    });
    const tokens = (await response.json()) as TokenResponse;
    this.username = username;
    this.etags.clear();
    this.setTokens(tokens);
    return tokens;
  }

  /**
   * Trades the refresh token for new tokens (the old refresh token then no
   * longer works). Concurrent callers share one refresh.
   */
  refresh(): Promise<TokenResponse> {
    if (!this.refreshing) {
      const refreshToken = this.tokens?.refresh_token;
      this.refreshing = (async () => {
        if (!refreshToken) {
          throw new WrapsyncError({ type: "/problems/unauthorized", title: "not logged in", status: 401 });
        }
        const response = await this.request("POST", "/v1/auth/refresh", {
          json: { refresh_token: refreshToken },
          auth: false,
        });
        const tokens = (await response.json()) as TokenResponse;
        this.setTokens(tokens);
        return tokens;
      })().finally(() => {
        this.refreshing = undefined;
      });
    }
    return this.refreshing;
  }

  async health(): Promise<{ status: string }> {
    return (await this.request("GET", "/healthz", { auth: false })).json() as Promise<{ status: string }>;
  }

  async listPlans(options: ListPlansOptions = {}): Promise<PlanList> {
    const q = new URLSearchParams();
    if (options.limit !== undefined) q.set("limit", String(options.limit));
    if (options.cursor !== undefined) q.set("cursor", options.cursor);
    if (options.updatedSince !== undefined) q.set("updated_since", String(options.updatedSince));
    const qs = q.toString();
    return (await this.request("GET", `/v1/plans${qs ? `?${qs}` : ""}`)).json() as Promise<PlanList>;
  }

  /** Every plan of the caller, following `next` cursors. */
  async listAllPlans(options: Omit<ListPlansOptions, "cursor"> = {}): Promise<PlanList["plans"]> {
    const out: PlanList["plans"] = [];
    let cursor: string | undefined;
    do {
      const page = await this.listPlans({ ...options, ...(cursor ? { cursor } : {}) });
      out.push(...page.plans);
      cursor = page.next ?? undefined;
    } while (cursor);
    return out;
  }

  async createPlan(body: { title: string; enrolled_on?: string }): Promise<PlanDocument> {
    return (await this.request("POST", "/v1/plans", { json: body })).json() as Promise<PlanDocument>;
  }

  /**
   * Starts a plan from a whole saved Automerge document (`Automerge.save`
   * bytes) made on the device: the node holds it to the same checks as
   * synced changes, and the caller must be on its team. Answers the plan
   * as the node stored it (its new `id` included).
   */
  async importPlan(document: Uint8Array): Promise<PlanDocument> {
    const response = await this.request("POST", "/v1/plans", { body: document, contentType: "application/octet-stream" });
    return (await response.json()) as PlanDocument;
  }

  /** The plan's consent grants to peer nodes. */
  async shares(id: string): Promise<Share[]> {
    const response = await this.request("GET", `/v1/plans/${encodeURIComponent(id)}/shares`);
    return ((await response.json()) as { shares: Share[] }).shares;
  }

  /**
   * Records the family's consent to share the plan with peer node `node`
   * (facilitators, caregivers and supervisors), until `expiresAt` (ms since
   * the epoch) or revoked.
   */
  async share(id: string, node: string, expiresAt?: number): Promise<Share> {
    const json = expiresAt === undefined ? { node } : { node, expires_at: expiresAt };
    const response = await this.request("POST", `/v1/plans/${encodeURIComponent(id)}/shares`, { json });
    return (await response.json()) as Share;
  }

  /** Withdraws that consent: the plan stops syncing with `node`. */
  async revokeShare(id: string, node: string): Promise<void> {
    await this.request("POST", `/v1/plans/${encodeURIComponent(id)}/shares/${encodeURIComponent(node)}/revoke`, {
      json: {},
    });
  }

  /**
   * The plan at the node's current version. Remembers each plan's ETag and
   * sends `If-None-Match`; a 304 answers the remembered document.
   */
  async getPlan(id: string): Promise<PlanDocument & { etag?: string }> {
    const cached = this.etags.get(id);
    const response = await this.request("GET", `/v1/plans/${encodeURIComponent(id)}`, {
      headers: cached ? { "If-None-Match": cached.etag } : {},
      pass: [304],
    });
    if (response.status === 304 && cached) return { ...cached.doc, etag: cached.etag };
    const doc = (await response.json()) as PlanDocument;
    const etag = response.headers.get("ETag");
    if (etag) {
      this.etags.set(id, { etag, doc });
      return { ...doc, etag };
    }
    this.etags.delete(id);
    return doc;
  }

  /** `null` when the plan still has ETag `etag` (304), else the plan. */
  async getPlanIfNoneMatch(id: string, etag: string): Promise<(PlanDocument & { etag?: string }) | null> {
    const response = await this.request("GET", `/v1/plans/${encodeURIComponent(id)}`, {
      headers: { "If-None-Match": etag },
      pass: [304],
    });
    if (response.status === 304) return null;
    const doc = (await response.json()) as PlanDocument;
    const newTag = response.headers.get("ETag");
    return newTag ? { ...doc, etag: newTag } : doc;
  }

  /** Applies JSON ops (`replace`, `add`, `test`); all or nothing. */
  async applyOps(id: string, ops: Op[], baseVersion?: string[]): Promise<OpsResponse> {
    const body = baseVersion ? { base_version: baseVersion, ops } : { ops };
    return (await this.request("POST", `/v1/plans/${encodeURIComponent(id)}/ops`, { json: body })).json() as Promise<OpsResponse>;
  }

  /** The audit trail, newest first (supervisors; others get 403 `forbidden`), filtered by plan or user; page on with `next`. */
  async audit(options: { plan?: string; user?: string; limit?: number; cursor?: string } = {}): Promise<AuditPage> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(options)) if (v !== undefined) q.set(k, String(v));
    const qs = q.toString();
    return (await this.request("GET", `/v1/audit${qs ? `?${qs}` : ""}`)).json() as Promise<AuditPage>;
  }

  async history(id: string): Promise<History> {
    return (await this.request("GET", `/v1/plans/${encodeURIComponent(id)}/history`)).json() as Promise<History>;
  }

  /** One page of the change feed: plans changed after `since`. */
  async changes(since?: string, limit?: number): Promise<ChangeFeed> {
    const q = new URLSearchParams();
    if (since !== undefined) q.set("since", since);
    if (limit !== undefined) q.set("limit", String(limit));
    const qs = q.toString();
    return (await this.request("GET", `/v1/changes${qs ? `?${qs}` : ""}`)).json() as Promise<ChangeFeed>;
  }

  /**
   * One round of the Automerge sync protocol for plan `id`: sends the
   * device's message (or none) and answers the node's (or `null`).
   */
  async syncRound(id: string, message: Uint8Array | null, deviceId?: string): Promise<Uint8Array | null> {
    const headers: Record<string, string> = {};
    if (deviceId !== undefined) {
      if (!DEVICE_ID.test(deviceId)) throw new TypeError(`invalid device id ${JSON.stringify(deviceId)}`);
      headers["Device-Id"] = deviceId;
    }
    const path = `/v1/plans/${encodeURIComponent(id)}/sync`;
    if (message === null) {
      const response = await this.request("POST", path, { json: { message: null }, headers });
      const body = (await response.json()) as { message: string | null };
      return body.message ? fromBase64(body.message) : null;
    }
    const response = await this.request("POST", path, {
      body: message,
      contentType: "application/octet-stream",
      headers,
    });
    if (response.status === 204) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    return bytes.length ? bytes : null;
  }

  /**
   * One sync round for many plans in one request (`POST /v1/sync`, CBOR):
   * each entry's message is the device's for that plan (`null` to only ask),
   * or `have`, the heads of a copy with no changes of its own, to get just
   * the changes after them. Answers per plan, or the node's refusal for that
   * plan as a `WrapsyncError` (the other plans are unaffected).
   */
  async syncBatch(
    rounds: { plan: string; message: Uint8Array | null; have?: string[] }[],
    deviceId?: string,
  ): Promise<Map<string, SyncBatchAnswer | WrapsyncError>> {
    const headers: Record<string, string> = { Accept: "application/cbor" };
    if (deviceId !== undefined) {
      if (!DEVICE_ID.test(deviceId)) throw new TypeError(`invalid device id ${JSON.stringify(deviceId)}`);
      headers["Device-Id"] = deviceId;
    }
    const response = await this.request("POST", "/v1/sync", {
      body: cborEncode({
        plans: rounds.map((r) => (r.have ? { plan: r.plan, have: r.have } : { plan: r.plan, message: r.message })),
      }),
      contentType: "application/cbor",
      headers,
    });
    const reply = cborDecode(new Uint8Array(await response.arrayBuffer())) as { plans: SyncBatchResult[] };
    const out = new Map<string, SyncBatchAnswer | WrapsyncError>();
    const bytes = (b: Uint8Array | null | undefined) => (b && b.length ? b : null);
    for (const entry of reply.plans) {
      if (entry.problem) out.set(entry.plan, new WrapsyncError(entry.problem));
      else
        out.set(entry.plan, {
          message: bytes(entry.message),
          changes: bytes(entry.changes),
          ...(entry.heads ? { heads: entry.heads } : {}),
        });
    }
    return out;
  }

  /**
   * Follows the change feed over Server-Sent Events
   * (`/v1/changes/stream`), reconnecting with `Last-Event-ID` after a drop.
   * Stops on `close()` or when the node refuses the stream (4xx).
   */
  subscribeChanges(onChange: (change: PlanChange) => void, options: ChangeSubscriptionOptions = {}): ChangeSubscription {
    const controller = new AbortController();
    let cursor = options.since;
    let closed = false;
    const firstDelay = options.retryMs ?? 1000;
    const maxDelay = options.maxRetryMs ?? 30_000;
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        controller.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    const run = async () => {
      let delay = firstDelay;
      while (!closed) {
        try {
          const q = cursor !== undefined ? `?since=${encodeURIComponent(cursor)}` : "";
          const headers: Record<string, string> = { Accept: "text/event-stream" };
          if (cursor !== undefined) headers["Last-Event-ID"] = cursor;
          const response = await this.request("GET", `/v1/changes/stream${q}`, { headers, signal: controller.signal });
          if (!response.body) throw new Error("the change stream has no body");
          options.onOpen?.();
          delay = firstDelay;
          const parser = new SseParser(cursor);
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          try {
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              for (const event of parser.push(value)) {
                if (parser.retry !== undefined) delay = parser.retry;
                if (event.event !== "change") continue;
                const change = JSON.parse(event.data) as PlanChange;
                cursor = change.cursor ?? event.id;
                try {
                  onChange(change);
                } catch (e) {
                  options.onError?.(e);
                }
              }
            }
          } finally {
            reader.releaseLock();
          }
        } catch (e) {
          if (closed) break;
          options.onError?.(e);
          if (e instanceof WrapsyncError && e.status >= 400 && e.status < 500 && e.status !== 408 && e.status !== 429) {
            closed = true;
            break;
          }
        }
        if (closed) break;
        await sleep(delay);
        delay = Math.min(delay * 2, maxDelay);
      }
    };
    const done = run();
    return {
      get cursor() {
        return cursor;
      },
      close() {
        closed = true;
        controller.abort();
      },
      done,
    };
  }

  /**
   * Sends a request; answers the response when it is OK (or a status in
   * `pass`), else throws a `WrapsyncError`. A 401 `unauthorized` on an
   * authenticated request refreshes the tokens and retries once.
   */
  private async request(method: string, path: string, init: RequestInit2 = {}, retried = false): Promise<Response> {
    const auth = init.auth ?? true;
    const headers: Record<string, string> = { Accept: "application/json", ...init.headers };
    let body: BodyInit | undefined;
    if (init.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(init.json);
    } else if (init.body !== undefined) {
      headers["Content-Type"] = init.contentType ?? "application/octet-stream";
      body = init.body as unknown as BodyInit;
    }
    let sentToken: string | undefined;
    if (auth) {
      if (!this.tokens) {
        throw new WrapsyncError({ type: "/problems/unauthorized", title: "not logged in", status: 401 });
      }
      sentToken = this.tokens.access_token;
      headers["Authorization"] = `Bearer ${sentToken}`;
    }
    const response = await this.fetchImpl(this.baseUrl + path, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(init.signal ? { signal: init.signal } : {}),
    });
    if (response.ok || init.pass?.includes(response.status)) return response;
    const error = await WrapsyncError.fromResponse(response);
    if (auth && !retried && response.status === 401 && error.problemType === "unauthorized" && this.tokens?.refresh_token) {
      // Another request may have refreshed meanwhile; else refresh now.
      if (this.tokens.access_token === sentToken) await this.refresh();
      return this.request(method, path, init, true);
    }
    throw error;
  }
}
