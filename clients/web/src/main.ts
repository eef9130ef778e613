/**
 * wrapsync web app: a family team plan on a phone. Every edit goes to the
 * plan's local Automerge replica (IndexedDB) first and syncs with the node
 * in the background whenever the phone is online.
 */
import { Replica, WrapsyncClient, WrapsyncError, type ChangeSubscription, type ConflictView, type JsonObject, type PlanSummary } from "@wrapsync/client";
import { IndexedDBStore } from "@wrapsync/client/indexeddb";
import { appConfig, loadConfig } from "./config";
import { LANGUAGES, applyDocumentLanguage, formatDate, formatMoney, formatNumber, formatTime, has, language, setLanguage, t, tn } from "./i18n";
import { active, describe, h, items, label, prettyDate, replaceKids, str, today, type Child, type Item, type Json } from "./dom";
import { isStaff, mayWrite } from "./roles";
import { conflictCard, forgetForms, meetingScreen, renderApprovals, renderAudit, renderCaseload, renderNewPlan, textEditor } from "./team";
import "./style.css";

// ---------------------------------------------------------------- types

interface Session {
  baseUrl: string;
  username: string;
  tokens: { access_token: string; refresh_token: string };
}

interface PlanStatus {
  syncing: boolean;
  error: string | null;
  /** The error needs the local copy dropped (the node refused a change). */
  refused: boolean;
  lastSyncedAt: number | null;
}

// ---------------------------------------------------------------- storage of small things

const SESSION_KEY = "wrapsync.session";
export const ls = {
  get<T>(key: string): T | null {
    try {
      const v = localStorage.getItem(key);
      return v ? (JSON.parse(v) as T) : null;
    } catch {
      return null;
    }
  },
  set(key: string, value: unknown) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch {
      /* storage full or disabled: the app still works for this visit */
    }
  },
  del(key: string) {
    localStorage.removeItem(key);
  },
};

// ---------------------------------------------------------------- IndexedDB connections

/**
 * The IndexedDB connections the replica's store opens. The SDK's
 * `IndexedDBStore` keeps its connection open and has no `close()`, and an
 * open connection blocks `deleteDatabase`; so the store gets this factory,
 * which tracks its connections and closes one as soon as anything (our own
 * sign-out, or this app's sign-out in another tab) wants to delete or
 * upgrade its database.
 */
const connections = new Set<IDBDatabase>();
const trackedIndexedDB: IDBFactory = {
  open(name: string, version?: number) {
    const request = version === undefined ? indexedDB.open(name) : indexedDB.open(name, version);
    request.addEventListener("success", () => {
      const db = request.result;
      connections.add(db);
      db.addEventListener("versionchange", () => {
        db.close();
        connections.delete(db);
      });
      db.addEventListener("close", () => connections.delete(db));
    });
    return request;
  },
  deleteDatabase: (name: string) => indexedDB.deleteDatabase(name),
  cmp: (a: unknown, b: unknown) => indexedDB.cmp(a, b),
  databases: () => indexedDB.databases(),
};

/** The replica's database: one per person and server, so people sharing a phone never share a replica (or its Automerge actor). */
function databaseName(s: Session): string {
  return `wrapsync:${s.username}@${s.baseUrl}`;
}

// ---------------------------------------------------------------- app state

export let session: Session | null = ls.get<Session>(SESSION_KEY);
export let client: WrapsyncClient | null = null;
export let replica: Replica | null = null;
let feed: ChangeSubscription | null = null;
let feedCursor: string | undefined;
let timer: ReturnType<typeof setInterval> | undefined;
const status = new Map<string, PlanStatus>();
/** Drafts of the "add progress" forms, kept across re-renders. */
const drafts = new Map<string, { value: string; note: string }>();
let openForm: string | null = null;
let renderQueued = false;

const app = document.getElementById("app")!;

export function userKey(suffix: string): string {
  return `wrapsync.${session?.username}@${session?.baseUrl}.${suffix}`;
}

function planStatus(id: string): PlanStatus {
  let s = status.get(id);
  if (!s) {
    s = { syncing: false, error: null, refused: false, lastSyncedAt: ls.get<number>(userKey(`synced-at.${id}`)) };
    status.set(id, s);
  }
  return s;
}

/** The version the node had at our last successful sync. */
function syncedVersion(id: string): string | null {
  return ls.get<string>(userKey(`synced.${id}`));
}

export function hasUnsynced(id: string): boolean {
  if (!replica || !replica.openPlans.includes(id)) return false;
  return replica.version(id).join(",") !== (syncedVersion(id) ?? "");
}

// ---------------------------------------------------------------- session

function defaultServer(): string {
  const q = new URLSearchParams(location.search).get("node");
  return q ?? location.origin;
}

async function startSession(s: Session): Promise<void> {
  session = s;
  client = new WrapsyncClient({
    baseUrl: s.baseUrl,
    tokens: s.tokens,
    username: s.username,
    onTokens: (t) => {
      if (!session) return;
      session.tokens = { access_token: t.access_token, refresh_token: t.refresh_token };
      ls.set(SESSION_KEY, session);
    },
  });
  replica = await Replica.create({ client, store: new IndexedDBStore(databaseName(s), trackedIndexedDB) });
  startBackground();
}

function stopSession(): void {
  feed?.close();
  feed = null;
  if (timer) clearInterval(timer);
  timer = undefined;
  feedCursor = undefined;
  client = null;
  replica = null;
  session = null;
  drawnHash = null;
  status.clear();
  conflicts.clear();
  drafts.clear();
  forgetForms();
  opened.clear();
  rendered.clear();
  openForm = null;
  ls.del(SESSION_KEY);
}

// ---------------------------------------------------------------- background sync

/** Follows the change feed (from where it left off) and syncs open plans when they change. */
function startFeed(): void {
  feed?.close();
  feed = null;
  if (!client || !navigator.onLine) return;
  const c = client;
  feed = c.subscribeChanges(
    (change) => {
      console.debug("wrapsync: change", change.plan, change.cursor);
      feedCursor = change.cursor;
      if (replica?.openPlans.includes(change.plan)) void syncPlan(change.plan);
      else if (route().name === "plans") queueRender();
    },
    {
      since: feedCursor,
      retryMs: 1000,
      maxRetryMs: 15_000,
      // (Re)connected: catch up on whatever happened while we were away.
      onOpen: () => syncAll(),
      onError: (e) => {
        console.debug("wrapsync: change feed", e);
        if (e instanceof WrapsyncError && e.status === 401) sessionEnded();
      },
    },
  );
}

function startBackground(): void {
  startFeed();
  if (timer) clearInterval(timer);
  timer = setInterval(syncAll, 60_000);
}

function syncAll(): void {
  for (const id of replica?.openPlans ?? []) void syncPlan(id);
}

export async function syncPlan(id: string): Promise<void> {
  const r = replica;
  if (!r) return;
  const st = planStatus(id);
  if (!navigator.onLine) {
    updateStatusBar();
    return;
  }
  st.syncing = true;
  updateStatusBar();
  try {
    const result = await r.sync(id);
    console.debug("wrapsync: synced", id, JSON.stringify(result));
    if (r !== replica) return;
    ls.set(userKey(`synced.${id}`), result.version.join(","));
    st.lastSyncedAt = Date.now();
    ls.set(userKey(`synced-at.${id}`), st.lastSyncedAt);
    st.error = null;
    st.refused = false;
    const onScreen = route();
    if (onScreen.name === "plan" && onScreen.id === id && (await fetchConflicts(id))) queueRender();
    // Re-render when the plan differs from what is on screen. (`result.received`
    // alone is not enough: when syncs overlap, the SDK answers the last
    // round's result, which may not be the one that received changes.)
    if (result.received || (rendered.has(id) && rendered.get(id) !== r.version(id).join(","))) queueRender();
  } catch (e) {
    console.debug("wrapsync: sync", id, e);
    st.error = describe(e);
    st.refused = e instanceof WrapsyncError && e.status === 422;
    if (e instanceof WrapsyncError && e.status === 401) sessionEnded();
  } finally {
    st.syncing = false;
    updateStatusBar();
  }
}

window.addEventListener("online", () => {
  startFeed(); // its onOpen syncs every open plan
  syncAll();
  updateStatusBar();
});
window.addEventListener("offline", () => {
  feed?.close();
  feed = null;
  updateStatusBar();
});

// ---------------------------------------------------------------- routing

/** A plan's screens: the plan, its crisis card, team meeting mode, its audit trail (supervisors). */
type PlanView = "plan" | "crisis" | "meeting" | "audit";
/** `crisis`: the plan's crisis card rather than the whole plan. */
type Route = { name: "signin" } | { name: "plans" } | { name: "new" } | { name: "approvals" } | { name: "plan"; id: string; crisis: boolean; view: PlanView };

export function route(): Route {
  if (!session) return { name: "signin" };
  const m = location.hash.match(/^#\/plan\/([A-Za-z0-9_-]+)(?:\/(crisis|meeting|audit))?/);
  if (m) {
    const view = (m[2] ?? "plan") as PlanView;
    return { name: "plan", id: m[1]!, crisis: view === "crisis", view };
  }
  if (location.hash === "#/new") return { name: "new" };
  if (location.hash === "#/approvals") return { name: "approvals" };
  return { name: "plans" };
}

/**
 * The person's role on this node, from the access token's `role` claim:
 * only to choose which screens to offer (the node checks every request).
 */
export function nodeRole(): string | null {
  try {
    const payload = session?.tokens.access_token.split(".")[1];
    if (!payload) return null;
    const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as { role?: unknown };
    return typeof claims.role === "string" ? claims.role : null;
  } catch {
    return null;
  }
}

/** The role this person writes a plan with: supervisors as supervisors, everyone else by their place on its team. */
export function planRole(plan: JsonObject): string | null {
  if (nodeRole() === "supervisor") return "supervisor";
  const me = active(items(plan.team)).find((m) => m.user === session?.username);
  return me ? str(me.role) : null;
}

/** The node's view of each plan's conflicts (`GET /v1/plans/{id}` → `conflicts`), with the version it was read at. */
const conflicts = new Map<string, { version: string; list: ConflictView[] }>();

/** Reads the plan's conflicts from the node; answers whether they differ from what was known. */
async function fetchConflicts(id: string): Promise<boolean> {
  if (!client) return false;
  try {
    const doc = await client.getPlan(id);
    const next = { version: [...doc.version].sort().join(","), list: doc.conflicts ?? [] };
    const before = conflicts.get(id);
    conflicts.set(id, next);
    return JSON.stringify(before) !== JSON.stringify(next);
  } catch (e) {
    console.debug("wrapsync: conflicts", id, e);
    return false;
  }
}

/**
 * The plan's conflicts, while the phone's copy is the one the node
 * described: once someone here picks a value, the copy moves on and the
 * conflict is hidden until the node has been asked again.
 */
export function currentConflicts(id: string): ConflictView[] {
  const c = conflicts.get(id);
  if (!c || !replica?.openPlans.includes(id)) return [];
  return c.version === [...replica.version(id)].sort().join(",") ? c.list : [];
}

/** Records that the node has the plan at `version` (after a sync). */
export function markSynced(id: string, version: string[]): void {
  ls.set(userKey(`synced.${id}`), version.join(","));
  const st = planStatus(id);
  st.lastSyncedAt = Date.now();
  ls.set(userKey(`synced-at.${id}`), st.lastSyncedAt);
}

export function go(hash: string): void {
  if (location.hash === hash) void render();
  else location.hash = hash;
}

window.addEventListener("hashchange", () => {
  openForm = null;
  void render();
  window.scrollTo(0, 0);
});

/** Re-renders soon, but not while someone is typing in a form. */
export function queueRender(): void {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    const focused = document.activeElement;
    if (focused && app.contains(focused) && (focused.tagName === "INPUT" || focused.tagName === "TEXTAREA")) {
      focused.addEventListener(
        "blur",
        () => {
          renderQueued = false;
          queueRender();
        },
        { once: true },
      );
      return;
    }
    renderQueued = false;
    void render();
  });
}

/**
 * The node no longer accepts this sign-in (expired or revoked): back to the
 * sign-in screen. The plans stay on the phone, with any edits not yet
 * synced, so that the same person can sign in again and send them. Only
 * signing out forgets the phone.
 */
export function sessionEnded(): void {
  stopSession();
  go("#/");
}

const FORGOTTEN = "#/signed-out";
const FORGET_INCOMPLETE = "#/signed-out-incomplete";

/**
 * Sign out, forgetting this phone: a shared family phone keeps nothing of
 * anyone's plans afterwards. Plans with edits that have not reached the
 * team are synced first when online; if some still have not, the person
 * is asked before those edits are deleted. Then the replica databases,
 * the small things kept in local and session storage, and any service
 * worker cache holding API responses are deleted, and the page is reloaded
 * so that nothing stays in memory either.
 */
async function signOut(ev?: Event): Promise<void> {
  const button = ev?.currentTarget instanceof HTMLButtonElement ? ev.currentTarget : null;
  if (button) {
    button.disabled = true;
    button.textContent = t("signout.busy");
  }
  const s = session;
  const r = replica;
  if (s && r) {
    const pending = await unsyncedPlans(s, r);
    if (pending.length > 0) {
      const ok = confirm(navigator.onLine ? t("signout.confirmOnline") : t("signout.confirmOffline"));
      if (!ok) {
        if (button) {
          button.disabled = false;
          button.textContent = t("signout.button");
        }
        return;
      }
    }
  }
  stopSession();
  const complete = await forgetThisPhone(s ? databaseName(s) : undefined);
  history.replaceState(null, "", complete ? FORGOTTEN : FORGET_INCOMPLETE);
  location.reload();
}

/** Plans saved on this phone with edits the node has not got yet, after one more try to send them. */
async function unsyncedPlans(s: Session, r: Replica): Promise<string[]> {
  const key = (suffix: string) => `wrapsync.${s.username}@${s.baseUrl}.${suffix}`;
  try {
    const ids = await r.store.listPlans();
    for (const id of ids) await r.load(id);
    if (navigator.onLine) {
      await Promise.all(
        ids.map((id) =>
          within(r.sync(id), 15_000)
            .then((result) => ls.set(key(`synced.${id}`), result.version.join(",")))
            .catch((e) => console.debug("wrapsync: sync before sign-out", id, e)),
        ),
      );
    }
    return ids.filter((id) => r.version(id).join(",") !== (ls.get<string>(key(`synced.${id}`)) ?? ""));
  } catch (e) {
    console.debug("wrapsync: checking for unsynced edits", e);
    return [];
  }
}

function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Deletes everything this app keeps on the phone: every replica database
 * (this person's, and any left by earlier sign-ins), the `wrapsync.*`
 * entries of local and session storage (session tokens, plan lists, sync
 * marks), and service worker cache entries of the node's API. The app
 * shell's cache holds only the app's own files (src/sw.js never caches
 * `/v1/`), so it stays and the sign-in screen still opens offline.
 * Answers false when a database could not be deleted (another tab of an
 * older version of the app holding it open).
 */
async function forgetThisPhone(current?: string): Promise<boolean> {
  for (const db of connections) db.close();
  connections.clear();
  const names = new Set<string>(current ? [current] : []);
  try {
    for (const info of await indexedDB.databases()) {
      if (info.name?.startsWith("wrapsync")) names.add(info.name);
    }
  } catch {
    /* databases() unsupported: the current person's database is still named */
  }
  const results = await Promise.allSettled([...names].map((name) => within(deleteDatabase(name), 10_000)));
  for (const storage of [localStorage, sessionStorage]) {
    try {
      const keys = Array.from({ length: storage.length }, (_, i) => storage.key(i)).filter((k): k is string => !!k?.startsWith("wrapsync"));
      for (const k of keys) storage.removeItem(k);
    } catch {
      /* storage disabled: nothing kept there */
    }
  }
  if ("caches" in self) {
    try {
      for (const name of await caches.keys()) {
        if (!name.startsWith("wrapsync-shell-")) {
          await caches.delete(name);
          continue;
        }
        const cache = await caches.open(name);
        for (const request of await cache.keys()) {
          const path = new URL(request.url).pathname;
          if (path.includes("/v1/")) await cache.delete(request);
        }
      }
    } catch (e) {
      console.debug("wrapsync: clearing caches", e);
    }
  }
  return results.every((r) => r.status === "fulfilled");
}

function deleteDatabase(name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase(name);
    request.onsuccess = () => resolve();
    request.onerror = () => reject(request.error);
    // onblocked: another tab holds it open; its versionchange handler closes
    // it and this request then succeeds (or `within` gives up).
  });
}

// ---------------------------------------------------------------- chrome

/**
 * The bar at the top. Inside a plan, its right-hand button opens the crisis
 * card (one tap from every screen of a plan); on the plans list it signs
 * out, away from the everyday buttons.
 */
export function topBar(title: string, opts: { back?: "plans" | string; crisis?: string } = {}): HTMLElement {
  const back = opts.back
    ? opts.back === "plans"
      ? h("a", { class: "back", href: "#/plans", "aria-label": t("nav.backToPlans") }, t("nav.plans"))
      : h("a", { class: "back", href: opts.back, "aria-label": t("nav.backToPlan") }, t("nav.plan"))
    : h("span", { class: "brand" }, t("app.title"));
  const right = opts.crisis
    ? h("a", { class: "crisis-link", id: "crisis-link", href: opts.crisis }, h("span", { "aria-hidden": "true" }, "☎ "), t("crisis.button"))
    : session && !opts.back
      ? h("button", { class: "link", type: "button", onclick: signOut }, t("signout.button"))
      : h("span");
  return h("header", { class: "bar" }, back, h("h1", {}, title), right);
}

/** The language switch, at the foot of every screen: each language in its own words. */
function footer(): HTMLElement {
  return h(
    "footer",
    { class: "foot" },
    h(
      "nav",
      { "aria-label": t("nav.language") },
      h(
        "ul",
        { class: "langs" },
        LANGUAGES.map((l) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                class: "lang",
                type: "button",
                lang: l.code,
                "aria-pressed": String(l.code === language()),
                onclick: () => {
                  setLanguage(l.code);
                  // The screen is redrawn: keep the keyboard's place on the switch.
                  void render().then(() => (document.querySelector(`footer button[lang="${l.code}"]`) as HTMLElement | null)?.focus());
                },
              },
              l.name,
            ),
          ),
        ),
      ),
    ),
  );
}

/** Puts a screen on the page: its bar, its content, the language switch. */
export function show(...children: (Child | Child[])[]): void {
  replaceKids(app, ...children, footer());
}

/** "Saved on this phone / synced" for the plan on screen. */
export function statusBar(id: string): HTMLElement {
  const el = h("div", { class: "status", id: "sync-status", role: "status" });
  fillStatus(el, id);
  return el;
}

function fillStatus(el: HTMLElement, id: string): void {
  const st = planStatus(id);
  const pending = hasUnsynced(id);
  const online = navigator.onLine;
  let state: string;
  let icon: string;
  let text: string;
  if (st.error && online) {
    state = "error";
    icon = "!";
    text = pending ? t("status.errorPending", { error: st.error }) : t("status.error", { error: st.error });
  } else if (!online) {
    state = pending ? "pending" : "offline";
    icon = pending ? "●" : "○";
    text = pending ? t("status.offlinePending") : t("status.offline");
  } else if (st.syncing) {
    state = "syncing";
    icon = "↻";
    text = pending ? t("status.syncingPending") : t("status.syncing");
  } else if (pending) {
    state = "pending";
    icon = "●";
    text = t("status.pending");
  } else {
    state = "synced";
    icon = "✓";
    text = st.lastSyncedAt ? t("status.syncedAt", { time: formatTime(st.lastSyncedAt) }) : t("status.synced");
  }
  el.dataset.state = state;
  el.replaceChildren(
    ...[
    h("span", { class: "status-icon", "aria-hidden": "true" }, icon),
    h("span", { class: "status-text" }, text),
    st.refused
      ? h(
          "button",
          {
            class: "link",
            type: "button",
            onclick: async () => {
              if (!replica || !confirm(t("status.fixConfirm"))) return;
              await replica.discardLocal(id).catch(() => undefined);
              st.error = null;
              st.refused = false;
              ls.set(userKey(`synced.${id}`), replica.version(id).join(","));
              void render();
            },
          },
          t("status.fix"),
        )
      : null,
    ].filter((c): c is HTMLElement => c !== null),
  );
}

function updateStatusBar(): void {
  const el = document.getElementById("sync-status");
  const r = route();
  if (el && r.name === "plan") fillStatus(el, r.id);
  const net = document.getElementById("net");
  if (net) net.hidden = navigator.onLine;
}

// ---------------------------------------------------------------- screens

/** The screen last drawn: a redraw of the same one (after a sync or an edit) need not ask the node again. */
let drawnHash: string | null = null;

export async function render(): Promise<void> {
  const r = route();
  const navigated = drawnHash !== location.hash;
  // Signing in lands on a screen that is new whatever its hash.
  drawnHash = r.name === "signin" ? null : location.hash;
  if (r.name === "signin") return renderSignIn();
  if (!client) await startSession(session!);
  if (r.name === "plans") return isStaff(nodeRole()) ? renderCaseload(navigated) : renderPlans();
  if (r.name === "new") return renderNewPlan();
  if (r.name === "approvals") return renderApprovals(navigated);
  return renderPlan(r.id, r.view);
}

function renderSignIn(): void {
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const form = h(
    "form",
    {
      class: "card signin",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        const data = new FormData(ev.target as HTMLFormElement);
        const username = String(data.get("username") ?? "").trim();
        const password = String(data.get("password") ?? "");
        const baseUrl = String(data.get("server") ?? "").trim().replace(/\/+$/, "") || defaultServer();
        const button = form.querySelector("button[type=submit]") as HTMLButtonElement;
        button.disabled = true;
        button.textContent = t("signin.busy");
        error.hidden = true;
        try {
          const c = new WrapsyncClient({ baseUrl });
          const t = await c.login(username, password);
          const s: Session = { baseUrl, username, tokens: { access_token: t.access_token, refresh_token: t.refresh_token } };
          ls.set(SESSION_KEY, s);
          await startSession(s);
          go("#/plans");
        } catch (e) {
          error.textContent = e instanceof WrapsyncError && e.status === 401 ? t("signin.mismatch") : t("signin.failed", { reason: describe(e) });
          error.hidden = false;
          button.disabled = false;
          button.textContent = t("signin.button");
        }
      },
    },
    h("label", {}, t("signin.username"), h("input", { name: "username", autocomplete: "username", autocapitalize: "none", spellcheck: "false", required: true })),
    h("label", {}, t("signin.password"), h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    error,
    h("button", { class: "primary", type: "submit" }, t("signin.button")),
    h(
      "details",
      { class: "server" },
      h("summary", {}, t("signin.server")),
      h("label", {}, t("signin.serverAddress"), h("input", { name: "server", type: "url", value: defaultServer(), inputmode: "url" })),
    ),
  );
  const farewell =
    location.hash === FORGOTTEN
      ? t("signout.done")
      : location.hash === FORGET_INCOMPLETE
        ? t("signout.incomplete")
        : null;
  show(
    topBar(t("signin.title")),
    h(
      "main",
      {},
      farewell ? h("p", { class: "notice", id: "signed-out", role: "status" }, farewell) : null,
      h("div", { class: "welcome" }, h("img", { src: "./icons/icon.svg", alt: "", width: "72", height: "72" }), h("p", {}, t("signin.welcome"))),
      form,
    ),
  );
}

async function renderPlans(): Promise<void> {
  const listKey = userKey("plans");
  let plans = ls.get<PlanSummary[]>(listKey) ?? [];
  let note: string | null = null;
  const body = h("main", {});
  show(topBar(t("plans.title")), offlineBanner(), body);
  const draw = () => {
    replaceKids(body,
      session ? h("p", { class: "hello" }, t("plans.signedInAs", { user: session.username })) : null,
      note ? h("p", { class: "muted" }, note) : null,
      plans.length === 0
        ? h("div", { class: "card empty" }, h("p", {}, t("plans.none")))
        : h(
            "ul",
            { class: "plans" },
            plans.map((p) =>
              h(
                "li",
                {},
                h(
                  "a",
                  { class: "plan-link", href: `#/plan/${p.id}` },
                  h("span", { class: "plan-title" }, p.title || t("plans.untitled")),
                  h("span", { class: "plan-meta" }, t("plans.meta", { phase: label("phase", p.phase), role: label("plans.youAre", p.role) })),
                ),
              ),
            ),
          ),
    );
  };
  draw();
  if (!client || !navigator.onLine) {
    if (!navigator.onLine) note = t("plans.offline");
    draw();
    return;
  }
  const s = session;
  try {
    plans = (await client.listAllPlans()).sort((a, b) => (a.title < b.title ? -1 : 1));
    // Signed out meanwhile: keep nothing.
    if (session !== s) return;
    ls.set(listKey, plans);
  } catch (e) {
    note = describe(e);
    if (e instanceof WrapsyncError && e.status === 401) return sessionEnded();
  }
  if (route().name === "plans") draw();
}

export function offlineBanner(): HTMLElement {
  return h("div", { id: "net", class: "net", hidden: navigator.onLine, role: "status" }, t("net.offline"));
}

const opened = new Set<string>();
/** The version of each plan as last drawn on screen. */
const rendered = new Map<string, string>();

async function renderPlan(id: string, view: PlanView): Promise<void> {
  const crisis = view === "crisis";
  const r = replica!;
  const crisisHref = `#/plan/${id}/crisis`;
  if (!opened.has(id) || !r.openPlans.includes(id)) {
    show(topBar(t("plan.loading"), { back: "plans", crisis: crisisHref }), h("main", {}, h("p", { class: "muted" }, t("plan.opening"))));
    await r.load(id);
    opened.add(id);
    const empty = Object.keys(r.plan(id)).length === 0;
    // First time on this phone: download it (but never hold up the crisis card).
    if (empty && navigator.onLine && !crisis) await syncPlan(id);
    else void syncPlan(id);
    const now = route();
    if (now.name !== "plan" || now.id !== id || now.view !== view) return;
  }
  const plan = r.plan(id);
  rendered.set(id, r.version(id).join(","));
  if (crisis) {
    show(topBar(t("card.title"), { back: `#/plan/${id}` }), offlineBanner(), crisisCard(plan));
    return;
  }
  if (view === "audit") return renderAudit(id, plan);
  if (Object.keys(plan).length === 0) {
    show(
      topBar(t("plan.title"), { back: "plans", crisis: crisisHref }),
      offlineBanner(),
      h("main", {}, statusBar(id), h("div", { class: "card empty" }, h("p", {}, t("plan.notSaved")))),
    );
    return;
  }
  const scrollY = window.scrollY;
  if (view === "meeting") {
    show(topBar(t("meeting.modeTitle"), { back: `#/plan/${id}`, crisis: crisisHref }), offlineBanner(), meetingScreen(id, plan));
  } else {
    show(topBar(str(plan.title) || t("plan.title"), { back: "plans", crisis: crisisHref }), offlineBanner(), h("main", { class: "plan" }, statusBar(id), ...planSections(id, plan)));
  }
  window.scrollTo(0, scrollY);
}

/** A `tel:` address: the number's digits and its leading `+` (the node stores phones as +1…). */
function telHref(phone: string): string {
  return `tel:${phone.replace(/[^0-9+]/g, "")}`;
}

/** A big tap-to-call (or tap-to-text) row. */
function callRow(href: string, name: string, detail: string, icon = "☎"): HTMLElement {
  return h(
    "li",
    {},
    h("a", { class: "call", href }, h("span", { class: "call-icon", "aria-hidden": "true" }, icon), h("span", {}, h("strong", {}, name), h("small", {}, detail))),
  );
}

/**
 * The crisis card: 911, 988 (call or text), the county's 24-hour line when
 * the app's config names one, then the people in the plan's crisis plan
 * and its steps to follow. Drawn from the phone's copy of the plan and the
 * cached config only, so it works offline (and before the plan has ever
 * been downloaded, with the numbers that do not depend on it).
 */
function crisisCard(plan: JsonObject): HTMLElement {
  const crisis = (plan.crisis_plan ?? {}) as JsonObject;
  const contacts = active(items(crisis.contacts)).filter((c) => str(c.phone));
  const response = active(items(crisis.response_steps));
  const county = appConfig().crisis_line;
  return h(
    "main",
    { class: "crisis-card", id: "crisis-card" },
    h(
      "section",
      { class: "card crisis", "aria-labelledby": "now-h" },
      h("h2", { id: "now-h" }, t("card.now")),
      h(
        "ul",
        { class: "contacts" },
        callRow("tel:911", t("card.911"), t("card.911Detail")),
        callRow("tel:988", t("card.988"), t("card.988Detail")),
        callRow("sms:988", t("card.988Text"), t("card.988TextDetail"), "✉"),
        // The node's name for its line stays as written; the label is in the person's language.
        county ? callRow(telHref(county.phone), t("card.county"), [county.name, t("card.countyDetail"), county.phone].filter(Boolean).join(" · ")) : null,
      ),
    ),
    contacts.length
      ? h(
          "section",
          { class: "card crisis", "aria-labelledby": "ours-h" },
          h("h2", { id: "ours-h" }, t("card.contacts")),
          h(
            "ul",
            { class: "contacts" },
            contacts.map((c) => callRow(telHref(str(c.phone)), str(c.name), [str(c.relationship), str(c.phone)].filter(Boolean).join(" · "))),
          ),
        )
      : null,
    response.length
      ? h(
          "section",
          { class: "card", "aria-labelledby": "todo-h" },
          h("h2", { id: "todo-h" }, t("card.steps")),
          h("ol", { class: "numbered" }, response.map((s) => h("li", {}, str(s.description)))),
        )
      : null,
  );
}

function planSections(planId: string, plan: JsonObject): HTMLElement[] {
  const team = active(items(plan.team));
  const me = team.find((m) => m.user === session?.username);
  const canAddProgress = me ? ["facilitator", "family_advocate", "caregiver", "youth", "provider"].includes(str(me.role)) : false;

  const role = planRole(plan);
  const sections: HTMLElement[] = [];

  // Staff: the plan's other screens.
  const tools = [
    mayWrite(role, "/meetings") ? h("a", { class: "button-link", id: "meeting-link", href: `#/plan/${planId}/meeting` }, t("meeting.open")) : null,
    nodeRole() === "supervisor" ? h("a", { class: "button-link secondary", id: "audit-link", href: `#/plan/${planId}/audit` }, t("audit.open")) : null,
  ].filter((x): x is HTMLElement => x !== null);
  if (tools.length) sections.push(h("nav", { class: "tools", "aria-label": t("plan.tools") }, tools));

  // Where two people set the same field: both values, and a pick.
  const clash = conflictCard(planId, plan, role);
  if (clash) sections.push(clash);

  // Vision
  const vision = str(plan.vision);
  sections.push(
    h(
      "section",
      { class: "card vision", id: "vision", "aria-labelledby": "vision-h" },
      h("h2", { id: "vision-h" }, t("vision.title")),
      vision ? h("p", { class: "quote" }, vision) : h("p", { class: "muted" }, t("vision.none")),
      mayWrite(role, "/vision") ? textEditor(planId, "/vision", vision, t("vision.edit"), t("vision.title")) : null,
    ),
  );

  // My steps
  const mySteps: { strategy: Item; step: Item }[] = [];
  for (const strategy of active(items(plan.strategies))) {
    for (const step of items(strategy.steps)) {
      if (me && step.responsible === me.id && step.status !== "dropped") mySteps.push({ strategy, step });
    }
  }
  mySteps.sort((a, b) => Number(a.step.status === "done") - Number(b.step.status === "done") || str(a.step.due_on).localeCompare(str(b.step.due_on)));
  sections.push(
    h(
      "section",
      { class: "card", id: "my-steps", "aria-labelledby": "steps-h" },
      h("h2", { id: "steps-h" }, t("steps.title")),
      !me
        ? h("p", { class: "muted" }, t("steps.notOnTeam"))
        : mySteps.length === 0
          ? h("p", { class: "muted" }, t("steps.none"))
          : h(
              "ul",
              { class: "steps" },
              mySteps.map(({ strategy, step }) => {
                const done = step.status === "done";
                return h(
                  "li",
                  { class: done ? "step done" : "step", "data-step": step.id },
                  h(
                    "div",
                    { class: "step-text" },
                    h("span", { class: "check", "aria-hidden": "true" }, done ? "✓" : ""),
                    h(
                      "div",
                      {},
                      h("p", { class: "step-desc" }, str(step.description)),
                      h(
                        "p",
                        { class: "step-meta" },
                        done ? t("steps.doneOn", { date: prettyDate(step.done_on) }) : step.due_on ? t("steps.dueOn", { date: prettyDate(step.due_on) }) : "",
                        done ? "" : ` · ${str(strategy.description)}`,
                      ),
                    ),
                  ),
                  done
                    ? null
                    : h(
                        "button",
                        {
                          class: "primary done-btn",
                          type: "button",
                          onclick: async (ev: Event) => {
                            (ev.currentTarget as HTMLButtonElement).disabled = true;
                            await replica!.markStepDone(planId, strategy.id, step.id, today());
                            await render();
                            void syncPlan(planId);
                          },
                        },
                        t("steps.markDone"),
                      ),
                );
              }),
            ),
    ),
  );

  // Goals
  const outcomes = active(items(plan.outcomes));
  sections.push(
    h(
      "section",
      { class: "card", id: "goals", "aria-labelledby": "goals-h" },
      h("h2", { id: "goals-h" }, t("goals.title")),
      outcomes.length === 0
        ? h("p", { class: "muted" }, t("goals.none"))
        : h("ul", { class: "goals" }, outcomes.map((o) => goal(planId, o, canAddProgress))),
    ),
  );

  // Everyone's steps (folded away: the family mostly needs their own)
  const strategies = active(items(plan.strategies)).filter((st) => items(st.steps).length > 0);
  if (strategies.length) {
    const nameOf = (mid: Json | undefined) => str(team.find((m) => m.id === mid)?.name) || t("teamSteps.unassigned");
    const open = strategies.reduce((n, st) => n + items(st.steps).filter((x) => x.status === "open").length, 0);
    sections.push(
      h(
        "details",
        { class: "card team-steps", id: "team-steps" },
        h("summary", {}, h("span", { class: "summary-title" }, t("teamSteps.title")), h("span", { class: "muted small" }, tn("teamSteps.open", open))),
        strategies.map((st) =>
          h(
            "div",
            { class: "strategy" },
            h("h3", {}, str(st.description)),
            flexLine(st),
            h(
              "ul",
              { class: "mini-steps" },
              items(st.steps)
                .filter((x) => x.status !== "dropped")
                .map((x) =>
                  h(
                    "li",
                    { "data-team-step": x.id, "data-status": str(x.status) },
                    h("span", { class: x.status === "done" ? "tick done" : "tick", "aria-label": x.status === "done" ? t("teamSteps.done") : t("teamSteps.notDone") }, x.status === "done" ? "✓" : "○"),
                    h("span", {}, str(x.description), h("small", {}, x.status === "done" && x.done_on ? t("teamSteps.whoDone", { who: nameOf(x.responsible), date: prettyDate(x.done_on) }) : nameOf(x.responsible))),
                  ),
                ),
            ),
          ),
        ),
      ),
    );
  }

  // Crisis plan
  const crisis = (plan.crisis_plan ?? {}) as JsonObject;
  const triggers = active(items(crisis.triggers));
  const response = active(items(crisis.response_steps));
  const contacts = active(items(crisis.contacts));
  sections.push(
    h(
      "section",
      { class: "card crisis", id: "crisis", "aria-labelledby": "crisis-h" },
      h("h2", { id: "crisis-h" }, t("crisis.title")),
      h("p", { class: "muted small" }, t("crisis.emergency")),
      contacts.length
        ? h(
            "ul",
            { class: "contacts" },
            contacts.map((c) =>
              h(
                "li",
                {},
                c.phone
                  ? h(
                      "a",
                      { class: "call", href: `tel:${str(c.phone).replace(/[^0-9+]/g, "")}` },
                      h("span", { class: "call-icon", "aria-hidden": "true" }, "☎"),
                      h("span", {}, h("strong", {}, str(c.name)), h("small", {}, [str(c.relationship), str(c.phone)].filter(Boolean).join(" · "))),
                    )
                  : h("span", { class: "call nophone" }, h("strong", {}, str(c.name)), h("small", {}, str(c.relationship))),
              ),
            ),
          )
        : null,
      triggers.length ? h("h3", {}, t("crisis.triggers")) : null,
      triggers.length ? h("ul", { class: "bullets" }, triggers.map((t) => h("li", {}, str(t.description)))) : null,
      crisis.prevention ? h("h3", {}, t("crisis.prevention")) : null,
      crisis.prevention ? h("p", {}, str(crisis.prevention)) : null,
      response.length ? h("h3", {}, t("crisis.response")) : null,
      response.length ? h("ol", { class: "numbered" }, response.map((s) => h("li", {}, str(s.description)))) : null,
      !contacts.length && !triggers.length && !response.length ? h("p", { class: "muted" }, t("crisis.none")) : null,
    ),
  );

  // Next meeting
  const next = nextMeeting(plan);
  sections.push(
    h(
      "section",
      { class: "card", id: "meeting", "aria-labelledby": "meeting-h" },
      h("h2", { id: "meeting-h" }, t("meeting.title")),
      next ? h("p", { class: "big-date" }, prettyDate(next.on)) : h("p", { class: "muted" }, t("meeting.none")),
      next?.place ? h("p", {}, next.place) : null,
    ),
  );

  // Team
  sections.push(
    h(
      "section",
      { class: "card", id: "team", "aria-labelledby": "team-h" },
      h("h2", { id: "team-h" }, t("team.title")),
      h(
        "ul",
        { class: "team" },
        team.map((m) =>
          h(
            "li",
            {},
            h("span", {}, h("strong", {}, str(m.name)), m.id === me?.id ? ` ${t("team.you")}` : "", h("small", {}, label("role", str(m.role)))),
            m.phone && m.id !== me?.id ? h("a", { class: "mini-call", href: `tel:${str(m.phone).replace(/[^0-9+]/g, "")}`, "aria-label": t("team.callLabel", { name: str(m.name) }) }, t("team.call")) : null,
          ),
        ),
      ),
    ),
  );
  return sections;
}

/**
 * The next team meeting: a scheduled one still to come, or the date the
 * latest meeting set for the next (a later meeting's date replaces an
 * earlier one's).
 */
export function nextMeeting(plan: JsonObject): { on: string; place: string } | undefined {
  const meetings = items(plan.meetings).filter((m) => m.status !== "cancelled");
  const latest = meetings.filter((m) => m.next_on).sort((a, b) => str(b.held_on).localeCompare(str(a.held_on)))[0];
  const upcoming = [
    ...meetings.filter((m) => m.status === "scheduled" && str(m.held_on) >= today()).map((m) => ({ on: str(m.held_on), place: str(m.place) })),
    ...(latest && str(latest.next_on) >= today() ? [{ on: str(latest.next_on), place: "" }] : []),
  ].sort((a, b) => a.on.localeCompare(b.on));
  return upcoming[0];
}

/** A strategy's flexible-fund request, if it has one: how much, what for, where it stands. */
export function flexLine(strategy: Item): HTMLElement | null {
  const flex = strategy.flex;
  if (!flex || typeof flex !== "object" || Array.isArray(flex) || typeof flex.amount_cents !== "number") return null;
  const parts = [t("flex.amount", { amount: formatMoney(flex.amount_cents) })];
  if (typeof flex.category === "string") parts.push(label("flex.category", flex.category));
  if (typeof flex.status === "string") parts.push(label("flex.status", flex.status));
  return h("p", { class: "muted small flex" }, parts.join(" · "));
}

function goal(planId: string, o: Item, canAdd: boolean): HTMLElement {
  const progress = items(o.progress)
    .filter((p) => p.status !== "withdrawn")
    .sort((a, b) => str(a.on).localeCompare(str(b.on)) || a.id.localeCompare(b.id));
  const latest = progress[progress.length - 1];
  const baseline = typeof o.baseline === "number" ? o.baseline : null;
  const target = typeof o.target === "number" ? o.target : null;
  const current = latest && typeof latest.value === "number" ? latest.value : baseline;
  let pct: number | null = null;
  if (baseline !== null && target !== null && current !== null && target !== baseline) {
    pct = Math.max(0, Math.min(100, ((current - baseline) / (target - baseline)) * 100));
  }
  const formOpen = openForm === o.id;
  const draft = drafts.get(o.id) ?? { value: "", note: "" };
  return h(
    "li",
    { class: "goal", "data-outcome": o.id },
    h("p", { class: "goal-statement" }, str(o.statement)),
    o.indicator ? h("p", { class: "muted small" }, t("goals.measuredBy", { indicator: str(o.indicator) })) : null,
    h(
      "div",
      { class: "numbers" },
      baseline !== null ? h("span", {}, `${t("goals.start")} `, h("b", {}, formatNumber(baseline))) : null,
      current !== null && latest ? h("span", {}, `${t("goals.now")} `, h("b", { class: "now" }, formatNumber(current))) : null,
      target !== null ? h("span", {}, `${t("goals.target")} `, h("b", {}, formatNumber(target))) : null,
    ),
    pct !== null ? h("div", { class: "meter", role: "img", "aria-label": t("goals.meter", { percent: formatNumber(pct / 100, { style: "percent", maximumFractionDigits: 0 }) }) }, h("div", { class: "meter-fill", style: `width:${pct}%` })) : null,
    progress.length
      ? h(
          "ul",
          { class: "progress" },
          progress
            .slice(-4)
            .reverse()
            .map((p) => h("li", { "data-progress": p.id }, h("span", {}, prettyDate(p.on)), h("b", {}, typeof p.value === "number" ? formatNumber(p.value) : str(p.value)), p.note ? h("small", {}, str(p.note)) : null)),
        )
      : h("p", { class: "muted small" }, t("goals.noProgress")),
    canAdd && !formOpen
      ? h(
          "button",
          {
            class: "secondary add-progress",
            type: "button",
            onclick: () => {
              openForm = o.id;
              void render().then(() => (document.querySelector(`[data-outcome="${o.id}"] input[name=value]`) as HTMLInputElement | null)?.focus());
            },
          },
          t("goals.add"),
        )
      : null,
    formOpen
      ? h(
          "form",
          {
            class: "progress-form",
            onsubmit: async (ev: Event) => {
              ev.preventDefault();
              const f = ev.target as HTMLFormElement;
              const data = new FormData(f);
              const value = Number(String(data.get("value") ?? "").replace(",", "."));
              const note = String(data.get("note") ?? "").trim();
              const err = f.querySelector(".error") as HTMLElement;
              if (!Number.isFinite(value) || String(data.get("value") ?? "").trim() === "") {
                err.textContent = t("goals.notANumber");
                err.hidden = false;
                return;
              }
              (document.activeElement as HTMLElement | null)?.blur();
              await replica!.addProgress(planId, o.id, { on: today(), value, ...(note ? { note } : {}) });
              drafts.delete(o.id);
              openForm = null;
              await render();
              void syncPlan(planId);
            },
          },
          h(
            "label",
            {},
            o.indicator ? t("goals.valueOf", { indicator: str(o.indicator) }) : t("goals.value"),
            h("input", {
              name: "value",
              inputmode: "decimal",
              autocomplete: "off",
              value: draft.value,
              oninput: (e: Event) => drafts.set(o.id, { ...(drafts.get(o.id) ?? draft), value: (e.target as HTMLInputElement).value }),
            }),
          ),
          h(
            "label",
            {},
            t("goals.note"),
            h("input", {
              name: "note",
              autocomplete: "off",
              value: draft.note,
              oninput: (e: Event) => drafts.set(o.id, { ...(drafts.get(o.id) ?? draft), note: (e.target as HTMLInputElement).value }),
            }),
          ),
          h("p", { class: "error", role: "alert", hidden: true }),
          h(
            "div",
            { class: "row" },
            h(
              "button",
              {
                class: "secondary",
                type: "button",
                onclick: () => {
                  openForm = null;
                  void render();
                },
              },
              t("common.cancel"),
            ),
            h("button", { class: "primary", type: "submit" }, t("common.save")),
          ),
        )
      : null,
  );
}

// ---------------------------------------------------------------- start

if ("serviceWorker" in navigator && location.protocol !== "file:") {
  // Registered after the page has loaded (this module may start after `load`,
  // since src/boot.ts awaits the WASM first).
  const register = () => void navigator.serviceWorker.register("./sw.js").catch(() => undefined);
  if (document.readyState === "complete") register();
  else window.addEventListener("load", register, { once: true });
}

applyDocumentLanguage();
void loadConfig().then(() => {
  // The county line may have arrived after the crisis card was drawn.
  if (route().name === "plan") queueRender();
});
void render().catch((e) => {
  show(h("main", {}, h("p", { class: "error" }, t("error.startup", { reason: describe(e) }))));
});
