/**
 * The team's screens: the caseload of facilitators, family advocates and
 * supervisors, starting a plan, team meeting mode (a tablet at the family's
 * table, offline), conflicts shown and resolved, flexible funds waiting for
 * a supervisor, and a plan's audit trail. Every edit goes to the plan's
 * local replica first, like the family's, and syncs in the background.
 */
import { WrapsyncError, schema, type ConflictView, type JsonObject, type PlanEditor, type PlanSummary } from "@wrapsync/client";
import { active, describe, h, items, label, prettyDate, replaceKids, str, today, type Item, type Json } from "./dom";
import { formatDate, formatMoney, formatNumber, formatTime, t, tn } from "./i18n";
import {
  client,
  currentConflicts,
  flexLine,
  go,
  hasUnsynced,
  ls,
  markSynced,
  nextMeeting,
  nodeRole,
  offlineBanner,
  planRole,
  queueRender,
  render,
  replica,
  route,
  session,
  sessionEnded,
  show,
  statusBar,
  syncPlan,
  topBar,
  userKey,
} from "./main";
import { mayWrite } from "./roles";

// ---------------------------------------------------------------- the schema's seams

/** Does today's plan schema (the SDK's copy of `shared/src/schema.rs`) have the field at `path`? */
function schemaHas(...path: string[]): boolean {
  let fields: readonly schema.Field[] = schema.PLAN;
  for (const [i, name] of path.entries()) {
    const f = schema.field(fields, name);
    if (!f) return false;
    if (i === path.length - 1) return true;
    if (f.kind.t !== "struct" && f.kind.t !== "collection") return false;
    fields = f.kind.fields;
  }
  return false;
}

/**
 * A strategy's agency and funding stream come with the v2 schema; until the
 * SDK's schema has them the forms do not offer them, and they appear (as
 * short text) the day it does.
 */
const STRATEGY_EXTRAS = ["agency", "funding_stream"].filter((name) => schemaHas("strategies", name));
/** A supervisor's note on a flexible-fund decision: offered once the schema has a place for it. */
const FLEX_NOTE = schemaHas("strategies", "flex", "note");

// ---------------------------------------------------------------- edits and forms

/** One local edit (one Automerge change, summarised without identifiers), then a redraw and a sync. */
async function editPlan(planId: string, message: string, fn: (p: PlanEditor) => void): Promise<void> {
  await replica!.edit(planId, fn, { message });
  await render();
  void syncPlan(planId);
}

interface FieldSpec {
  name: string;
  label: string;
  kind?: "text" | "long" | "number" | "date" | "select" | "tel";
  options?: [string, string][];
  required?: boolean;
}

/** What was typed in each form, kept across redraws (a sync may redraw the screen). */
const formDrafts = new Map<string, Record<string, string>>();
const openForms = new Set<string>();

/** Drops what was typed (the session ended: the next person must not see it). */
export function forgetForms(): void {
  formDrafts.clear();
  openForms.clear();
}

/** A folded "+ Add …" form: the fields, a Save button, and the error in plain words. */
function addForm(id: string, summary: string, fields: FieldSpec[], onSave: (v: Record<string, string>) => Promise<void>, initial: Record<string, string> = {}): HTMLElement {
  const draft = formDrafts.get(id) ?? initial;
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const input = (f: FieldSpec): HTMLElement => {
    const common = { name: f.name, id: `${id}-${f.name}`, oninput: (e: Event) => formDrafts.set(id, { ...(formDrafts.get(id) ?? {}), [f.name]: (e.target as HTMLInputElement).value }) };
    const value = draft[f.name] ?? "";
    switch (f.kind) {
      case "long":
        return h("textarea", { ...common, rows: "3", value });
      case "select":
        return h("select", { ...common, onchange: common.oninput }, (f.options ?? []).map(([v, l]) => h("option", { value: v, selected: v === value }, l)));
      case "number":
        return h("input", { ...common, inputmode: "decimal", autocomplete: "off", value });
      case "date":
        return h("input", { ...common, type: "date", value });
      case "tel":
        return h("input", { ...common, type: "tel", autocomplete: "off", value });
      default:
        return h("input", { ...common, autocomplete: "off", value });
    }
  };
  return h(
    "details",
    {
      class: "add",
      id,
      open: openForms.has(id),
      ontoggle: (e: Event) => {
        // A redrawn screen's old form still reports its toggle: only the one on screen counts.
        const details = e.currentTarget as HTMLDetailsElement;
        if (!details.isConnected) return;
        if (details.open) openForms.add(id);
        else openForms.delete(id);
      },
    },
    h("summary", {}, summary),
    h(
      "form",
      {
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          const data = new FormData(ev.target as HTMLFormElement);
          const values: Record<string, string> = {};
          for (const f of fields) values[f.name] = String(data.get(f.name) ?? "").trim();
          const missing = fields.find((f) => f.required && !values[f.name]);
          if (missing) {
            error.textContent = t("form.required", { field: missing.label });
            error.hidden = false;
            return;
          }
          (document.activeElement as HTMLElement | null)?.blur();
          try {
            await onSave(values);
            formDrafts.delete(id);
            openForms.delete(id);
            await render();
          } catch (e) {
            error.textContent = e instanceof FormError ? e.message : describe(e);
            error.hidden = false;
          }
        },
      },
      // Labels beside their fields (not around them), so a select's name is its label alone.
      fields.flatMap((f) => [h("label", { for: `${id}-${f.name}` }, f.label), input(f)]),
      error,
      h("button", { class: "primary", type: "submit" }, t("common.save")),
    ),
  );
}

/** A mistake in what was typed, said in the person's language. */
class FormError extends Error {}

function number(value: string, field: string): number | undefined {
  if (!value) return undefined;
  const n = Number(value.replace(",", "."));
  if (!Number.isFinite(n)) throw new FormError(t("form.notANumber", { field }));
  return n;
}

/** A text field (the vision, a meeting's decisions) with a folded form to change it. */
export function textEditor(planId: string, path: string, current: string, summary: string, fieldLabel: string): HTMLElement {
  const id = `edit-${path.replace(/[^a-z0-9]+/gi, "-")}`;
  // The form opens on what is there now.
  return addForm(
    id,
    summary,
    [{ name: "text", label: fieldLabel, kind: "long" }],
    async (v) => {
      if (v.text === current) return;
      await editPlan(planId, `replace ${pattern(path)}`, (p) => p.replace(path, v.text || null));
    },
    { text: current },
  );
}

function pattern(path: string): string {
  return path.replace(/[0-7][0-9A-HJKMNP-TV-Z]{25}/g, "*");
}

const memberOptions = (team: Item[], none?: string): [string, string][] => [...(none ? [["", none] as [string, string]] : []), ...team.map((m) => [m.id, str(m.name)] as [string, string])];
const enumOptions = (prefix: string, values: readonly string[]): [string, string][] => values.map((v) => [v, label(prefix, v)]);

// ---------------------------------------------------------------- conflicts

/** The words for a conflicting field: the item it belongs to, and the field. */
function conflictPlace(plan: JsonObject, path: string): string {
  const parts = path.split("/").filter(Boolean);
  let node: Json | undefined = plan;
  let item = "";
  for (const p of parts.slice(0, -1)) {
    // Sections are objects; collections are lists of items with ids.
    node = Array.isArray(node) ? items(node).find((x) => x.id === p) : node && typeof node === "object" ? (node as JsonObject)[p] : undefined;
    if (node && typeof node === "object" && !Array.isArray(node)) {
      const o = node as JsonObject;
      const name = str(o.description) || str(o.statement) || str(o.name);
      if (name) item = name;
    }
  }
  const field = label("field", parts[parts.length - 1] ?? "");
  return item ? `${field}: ${item}` : field;
}

function showValue(v: Json): string {
  if (typeof v === "number") return formatNumber(v);
  if (typeof v === "string") return /^\d{4}-\d{2}-\d{2}$/.test(v) ? formatDate(v) : v;
  if (v === null) return t("conflict.empty");
  return JSON.stringify(v);
}

/**
 * Where two people set the same field while apart: both values, who wrote
 * each, and (for whoever may write that field) a button to keep one, which
 * writes it again and so settles the field for everyone.
 */
export function conflictCard(planId: string, plan: JsonObject, role: string | null): HTMLElement | null {
  const list: ConflictView[] = currentConflicts(planId);
  if (list.length === 0) return null;
  const team = items(plan.team);
  const who = (user: string | null) => (user ? str(team.find((m) => m.user === user)?.name) || user : t("conflict.someone"));
  const me = active(team).find((m) => m.user === session?.username);
  return h(
    "section",
    { class: "card conflicts", id: "conflicts", "aria-labelledby": "conflicts-h" },
    h("h2", { id: "conflicts-h" }, tn("conflict.title", list.length)),
    h("p", { class: "muted small" }, t("conflict.explain")),
    list.map((c) => {
      const stepMatch = c.path.match(/^\/strategies\/[^/]+\/steps\/([^/]+)\//);
      let own = false;
      if (stepMatch && me) {
        for (const s of items(plan.strategies)) for (const st of items(s.steps)) if (st.id === stepMatch[1] && st.responsible === me.id) own = true;
      }
      const canPick = mayWrite(role, c.path, own);
      return h(
        "div",
        { class: "conflict", "data-path": c.path },
        h("h3", {}, conflictPlace(plan, c.path)),
        h(
          "ul",
          { class: "choices" },
          c.values.map((v) =>
            h(
              "li",
              {},
              h("p", { class: "choice-value" }, showValue(v.value)),
              h("p", { class: "muted small" }, t("conflict.by", { who: who(v.user) })),
              canPick && (typeof v.value !== "object" || v.value === null)
                ? h(
                    "button",
                    {
                      class: "secondary",
                      type: "button",
                      "aria-label": t("conflict.keepLabel", { value: showValue(v.value), who: who(v.user) }),
                      onclick: async (ev: Event) => {
                        (ev.currentTarget as HTMLButtonElement).disabled = true;
                        await editPlan(planId, `replace ${pattern(c.path)}`, (p) => p.replace(c.path, v.value));
                      },
                    },
                    t("conflict.keep"),
                  )
                : null,
            ),
          ),
        ),
        canPick ? null : h("p", { class: "muted small" }, t("conflict.notYours")),
      );
    }),
  );
}

// ---------------------------------------------------------------- caseload

interface CaseRow {
  summary: PlanSummary;
  plan: JsonObject;
}

/** Open action steps whose due date has passed. */
function overdue(plan: JsonObject): number {
  let n = 0;
  for (const s of active(items(plan.strategies))) for (const st of items(s.steps)) if (st.status !== "done" && st.status !== "dropped" && st.due_on && str(st.due_on) < today()) n += 1;
  return n;
}

/**
 * The caseload's plans: the list (kept for offline), each plan's copy on
 * this device, and, when `refresh` (the screen was opened, not redrawn after
 * a sync or an edit) and online, the node's list and one batch sync of them
 * all. Between openings the change feed keeps each plan current.
 */
async function loadCaseload(refresh: boolean, onDraw: (rows: CaseRow[], note: string | null) => void): Promise<void> {
  const r = replica!;
  let plans = ls.get<PlanSummary[]>(userKey("plans")) ?? [];
  const rows = async () => {
    await Promise.all(plans.map((p) => r.load(p.id)));
    return plans.map((p) => ({ summary: p, plan: r.plan(p.id) }));
  };
  onDraw(await rows(), navigator.onLine ? null : t("plans.offline"));
  if (!refresh || !client || !navigator.onLine) return;
  const s = session;
  let note: string | null = null;
  try {
    plans = (await client.listAllPlans()).sort((a, b) => (a.title < b.title ? -1 : 1));
    if (session !== s) return;
    ls.set(userKey("plans"), plans);
    await Promise.all(plans.map((p) => r.load(p.id)));
    const results = await r.syncMany(plans.map((p) => p.id));
    for (const [id, result] of results) {
      if (result instanceof Error) note = describe(result);
      else markSynced(id, result.version);
    }
  } catch (e) {
    note = describe(e);
    if (e instanceof WrapsyncError && e.status === 401) return sessionEnded();
  }
  if (session === s) onDraw(await rows(), note);
}

function caseItem(row: CaseRow): HTMLElement {
  const { summary, plan } = row;
  const id = summary.id;
  const phase = str((plan.enrollment as JsonObject | undefined)?.phase) || summary.phase;
  const next = nextMeeting(plan);
  const late = overdue(plan);
  const role = planRole(plan) ?? summary.role;
  return h(
    "li",
    { class: "case", "data-plan": id },
    h(
      "a",
      { class: "plan-link", href: `#/plan/${id}` },
      h("span", { class: "plan-title" }, str(plan.title) || summary.title || t("plans.untitled")),
      h("span", { class: "plan-meta" }, label("phase", phase)),
      h("span", { class: "plan-meta" }, next ? t("caseload.next", { date: prettyDate(next.on) }) : t("caseload.noNext")),
      h("span", { class: late ? "plan-meta late" : "plan-meta" }, tn("caseload.overdue", late)),
      hasUnsynced(id) ? h("span", { class: "plan-meta pending" }, t("caseload.unsynced")) : null,
    ),
    mayWrite(role, "/meetings") ? h("a", { class: "button-link secondary", href: `#/plan/${id}/meeting` }, t("meeting.open")) : null,
  );
}

/**
 * Facilitators and family advocates: their plans with phase, next meeting,
 * overdue steps and edits not yet synced. Supervisors: every plan of the
 * node, grouped by facilitator, and the flexible funds waiting for them.
 */
export async function renderCaseload(refresh = true): Promise<void> {
  const roleHere = nodeRole();
  const body = h("main", {});
  show(topBar(roleHere === "supervisor" ? t("caseload.overviewTitle") : t("caseload.title")), offlineBanner(), body);
  const draw = (rows: CaseRow[], note: string | null) => {
    if (route().name !== "plans") return;
    // Redrawn meanwhile (a sync, an edit): the screen on the page draws what this one fetched.
    if (!body.isConnected) return queueRender();
    const actions = [
      roleHere === "facilitator" || roleHere === "supervisor" ? h("a", { class: "button-link", id: "new-plan", href: "#/new" }, t("newPlan.open")) : null,
      roleHere === "supervisor" ? h("a", { class: "button-link secondary", id: "approvals-link", href: "#/approvals" }, tn("approvals.open", pendingFlex(rows).length)) : null,
    ];
    let lists: HTMLElement[];
    if (roleHere === "supervisor") {
      const groups = new Map<string, CaseRow[]>();
      for (const row of rows) {
        const names = active(items(row.plan.team))
          .filter((m) => m.role === "facilitator")
          .map((m) => str(m.name));
        for (const name of names.length ? names : [""]) groups.set(name, [...(groups.get(name) ?? []), row]);
      }
      lists = [...groups.entries()]
        .sort(([a], [b]) => (a === "" ? 1 : b === "" ? -1 : a.localeCompare(b)))
        .map(([name, group], i) =>
          h(
            "section",
            { class: "facilitator", "aria-labelledby": `fac-${i}` },
            h("h2", { id: `fac-${i}` }, name || t("caseload.noFacilitator")),
            h("p", { class: "muted small" }, [tn("caseload.plans", group.length), tn("caseload.overdue", group.reduce((n, r) => n + overdue(r.plan), 0))].join(" · ")),
            h("ul", { class: "plans" }, group.map(caseItem)),
          ),
        );
    } else {
      lists = [h("ul", { class: "plans" }, rows.map(caseItem))];
    }
    replaceKids(
      body,
      session ? h("p", { class: "hello" }, t("plans.signedInAs", { user: session.username })) : null,
      h("div", { class: "tools" }, actions),
      note ? h("p", { class: "muted" }, note) : null,
      rows.length === 0 ? h("div", { class: "card empty" }, h("p", {}, t("caseload.none"))) : lists,
    );
  };
  await loadCaseload(refresh, draw);
}

// ---------------------------------------------------------------- start a plan

/** Starting a plan needs the node (it makes the plan and puts the facilitator on its team); then it is on this device like any other. */
export function renderNewPlan(): void {
  const online = navigator.onLine;
  show(
    topBar(t("newPlan.title"), { back: "plans" }),
    offlineBanner(),
    h(
      "main",
      {},
      online ? null : h("p", { class: "notice", role: "status" }, t("newPlan.offline")),
      h(
        "form",
        {
          class: "card",
          id: "new-plan-form",
          onsubmit: async (ev: Event) => {
            ev.preventDefault();
            const form = ev.target as HTMLFormElement;
            const data = new FormData(form);
            const title = String(data.get("title") ?? "").trim();
            const enrolled = String(data.get("enrolled_on") ?? "");
            const error = form.querySelector(".error") as HTMLElement;
            if (!title) {
              error.textContent = t("form.required", { field: t("newPlan.name") });
              error.hidden = false;
              return;
            }
            try {
              const created = await client!.createPlan({ title, ...(enrolled ? { enrolled_on: enrolled } : {}) });
              go(`#/plan/${created.id}/meeting`);
            } catch (e) {
              error.textContent = describe(e);
              error.hidden = false;
            }
          },
        },
        h("label", {}, t("newPlan.name"), h("input", { name: "title", autocomplete: "off", required: true })),
        h("label", {}, t("newPlan.enrolled"), h("input", { name: "enrolled_on", type: "date", value: today() })),
        h("p", { class: "error", role: "alert", hidden: true }),
        h("button", { class: "primary", type: "submit", disabled: !online }, t("newPlan.start")),
      ),
    ),
  );
}

// ---------------------------------------------------------------- team meeting mode

/** Today's meeting, if one has been started. */
function todaysMeeting(plan: JsonObject): Item | undefined {
  return items(plan.meetings).find((m) => m.held_on === today() && m.status !== "cancelled");
}

function section(id: string, title: string, ...children: (HTMLElement | HTMLElement[] | null)[]): HTMLElement {
  return h("section", { class: "card", id, "aria-labelledby": `${id}-h` }, h("h2", { id: `${id}-h` }, title), ...children);
}

/**
 * Team meeting mode: the whole plan as the team builds it at the family's
 * table, on a tablet that may have no network. Each form is one local
 * change; the status line says when the team's copy has it. What the
 * person's role may not write is not offered.
 */
export function meetingScreen(planId: string, plan: JsonObject): HTMLElement {
  const role = planRole(plan);
  const may = (path: string) => mayWrite(role, path);
  const team = active(items(plan.team));
  const nameOf = (id: Json | undefined) => str(team.find((m) => m.id === id)?.name) || t("teamSteps.unassigned");
  const meeting = todaysMeeting(plan);
  const outcomes = active(items(plan.outcomes));
  const strategies = active(items(plan.strategies));
  const needs = active(items(plan.needs));
  const crisis = (plan.crisis_plan ?? {}) as JsonObject;

  // Today's meeting: attendance, decisions, the next date.
  const attendees = new Set(Array.isArray(meeting?.attendees) ? (meeting!.attendees as string[]) : []);
  const meetingCard = section(
    "today",
    t("meeting.today", { date: prettyDate(today()) }),
    !meeting
      ? may("/meetings")
        ? h(
            "button",
            {
              class: "primary wide",
              type: "button",
              id: "start-meeting",
              onclick: () => editPlan(planId, "add /meetings", (p) => p.add("/meetings", { held_on: today(), status: "held" })),
            },
            t("meeting.start"),
          )
        : h("p", { class: "muted" }, t("meeting.notStarted"))
      : h(
          "div",
          {},
          h("h3", { id: "attendance-h" }, t("meeting.attendance")),
          h(
            "ul",
            { class: "attendance", "aria-labelledby": "attendance-h" },
            team.map((m) =>
              h(
                "li",
                {},
                h(
                  "button",
                  {
                    class: "toggle",
                    type: "button",
                    "aria-pressed": String(attendees.has(m.id)),
                    disabled: !may("/meetings"),
                    onclick: () => {
                      const next = new Set(attendees);
                      if (next.has(m.id)) next.delete(m.id);
                      else next.add(m.id);
                      void editPlan(planId, "replace /meetings/*/attendees", (p) => p.replace(`/meetings/${meeting.id}/attendees`, [...next]));
                    },
                  },
                  h("span", { class: "tick", "aria-hidden": "true" }, attendees.has(m.id) ? "✓" : ""),
                  h("span", {}, str(m.name), h("small", {}, label("role", str(m.role)))),
                ),
              ),
            ),
          ),
          h("h3", {}, t("meeting.decisions")),
          meeting.decisions ? h("p", { class: "prewrap", id: "decisions" }, str(meeting.decisions)) : h("p", { class: "muted" }, t("meeting.noDecisions")),
          may("/meetings") ? textEditor(planId, `/meetings/${meeting.id}/decisions`, str(meeting.decisions), t("meeting.editDecisions"), t("meeting.decisions")) : null,
          h("h3", {}, t("meeting.next")),
          h("p", { class: "big-date", id: "next-date" }, meeting.next_on ? prettyDate(meeting.next_on) : t("meeting.noNext")),
          may("/meetings")
            ? addForm("set-next", t("meeting.setNext"), [{ name: "next_on", label: t("meeting.nextDate"), kind: "date", required: true }], (v) =>
                editPlan(planId, "replace /meetings/*/next_on", (p) => p.replace(`/meetings/${meeting.id}/next_on`, v.next_on!)),
              )
            : null,
        ),
  );

  const vision = str(plan.vision);
  const visionCard = section(
    "m-vision",
    t("vision.title"),
    vision ? h("p", { class: "quote" }, vision) : h("p", { class: "muted" }, t("vision.none")),
    may("/vision") ? textEditor(planId, "/vision", vision, t("vision.edit"), t("vision.title")) : null,
  );

  const strengths = active(items(plan.strengths));
  const strengthsCard = section(
    "m-strengths",
    t("meeting.strengths"),
    strengths.length ? h("ul", { class: "bullets" }, strengths.map((s) => h("li", {}, str(s.statement)))) : h("p", { class: "muted" }, t("meeting.nothingYet")),
    may("/strengths")
      ? addForm(
          "add-strength",
          t("meeting.addStrength"),
          [
            { name: "statement", label: t("meeting.strength"), kind: "long", required: true },
            { name: "about", label: t("meeting.about"), kind: "select", options: enumOptions("about", ["youth", "family", "community"]) },
          ],
          (v) => editPlan(planId, "add /strengths", (p) => p.add("/strengths", { statement: v.statement!, about: v.about! })),
        )
      : null,
  );

  const needsCard = section(
    "m-needs",
    t("meeting.needs"),
    needs.length === 0 ? h("p", { class: "muted" }, t("meeting.nothingYet")) : null,
    schema.LIFE_DOMAINS.filter((d) => needs.some((n) => n.domain === d)).map((d) =>
      h("div", { class: "domain" }, h("h3", {}, label("domain", d)), h("ul", { class: "bullets" }, needs.filter((n) => n.domain === d).map((n) => h("li", {}, str(n.statement))))),
    ),
    may("/needs")
      ? addForm(
          "add-need",
          t("meeting.addNeed"),
          [
            { name: "domain", label: t("meeting.domain"), kind: "select", options: enumOptions("domain", schema.LIFE_DOMAINS) },
            { name: "statement", label: t("meeting.need"), kind: "long", required: true },
          ],
          (v) => editPlan(planId, "add /needs", (p) => p.add("/needs", { domain: v.domain!, statement: v.statement! })),
        )
      : null,
  );

  const outcomesCard = section(
    "m-outcomes",
    t("goals.title"),
    outcomes.length
      ? h(
          "ul",
          { class: "plain" },
          outcomes.map((o) =>
            h(
              "li",
              { "data-outcome": o.id },
              h("p", { class: "goal-statement" }, str(o.statement)),
              h(
                "p",
                { class: "muted small" },
                [o.indicator ? t("goals.measuredBy", { indicator: str(o.indicator) }) : "", typeof o.baseline === "number" ? `${t("goals.start")} ${formatNumber(o.baseline)}` : "", typeof o.target === "number" ? `${t("goals.target")} ${formatNumber(o.target)}` : ""]
                  .filter(Boolean)
                  .join(" · "),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, t("goals.none")),
    may("/outcomes")
      ? addForm(
          "add-outcome",
          t("meeting.addOutcome"),
          [
            { name: "statement", label: t("meeting.outcome"), kind: "long", required: true },
            { name: "indicator", label: t("meeting.indicator") },
            { name: "baseline", label: t("meeting.baseline"), kind: "number" },
            { name: "target", label: t("meeting.targetValue"), kind: "number" },
            { name: "need", label: t("meeting.forNeed"), kind: "select", options: [["", t("meeting.noNeed")], ...needs.map((n) => [n.id, str(n.statement)] as [string, string])] },
          ],
          (v) => {
            const baseline = number(v.baseline!, t("meeting.baseline"));
            const target = number(v.target!, t("meeting.targetValue"));
            return editPlan(planId, "add /outcomes", (p) =>
              p.add("/outcomes", {
                statement: v.statement!,
                ...(v.indicator ? { indicator: v.indicator } : {}),
                ...(baseline !== undefined ? { baseline } : {}),
                ...(target !== undefined ? { target } : {}),
                ...(v.need ? { needs: [v.need] } : {}),
              }),
            );
          },
        )
      : null,
  );

  const strategiesCard = section(
    "m-strategies",
    t("meeting.strategies"),
    strategies.length
      ? h(
          "ul",
          { class: "plain" },
          strategies.map((s) =>
            h(
              "li",
              { class: "strategy", "data-strategy": s.id },
              h("h3", {}, str(s.description)),
              h("p", { class: "muted small" }, [label("kind", str(s.kind)), s.owner ? t("meeting.ownerIs", { name: nameOf(s.owner) }) : "", ...STRATEGY_EXTRAS.map((x) => str(s[x]))].filter(Boolean).join(" · ")),
              flexLine(s),
              h(
                "ul",
                { class: "mini-steps" },
                items(s.steps)
                  .filter((x) => x.status !== "dropped")
                  .map((x) =>
                    h(
                      "li",
                      { "data-team-step": x.id, "data-status": str(x.status) },
                      h("span", { class: x.status === "done" ? "tick done" : "tick", "aria-label": x.status === "done" ? t("teamSteps.done") : t("teamSteps.notDone") }, x.status === "done" ? "✓" : "○"),
                      h(
                        "span",
                        {},
                        str(x.description),
                        h("small", {}, [nameOf(x.responsible), x.status === "done" && x.done_on ? t("steps.doneOn", { date: prettyDate(x.done_on) }) : x.due_on ? t("steps.dueOn", { date: prettyDate(x.due_on) }) : ""].filter(Boolean).join(" · ")),
                      ),
                    ),
                  ),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, t("meeting.nothingYet")),
    may("/strategies")
      ? addForm(
          "add-strategy",
          t("meeting.addStrategy"),
          [
            { name: "description", label: t("meeting.strategy"), kind: "long", required: true },
            { name: "kind", label: t("meeting.kind"), kind: "select", options: enumOptions("kind", schema.STRATEGY_KINDS) },
            { name: "owner", label: t("meeting.owner"), kind: "select", options: memberOptions(team, t("meeting.nobody")) },
            { name: "outcome", label: t("meeting.forOutcome"), kind: "select", options: [["", t("meeting.noOutcome")], ...outcomes.map((o) => [o.id, str(o.statement)] as [string, string])] },
            ...STRATEGY_EXTRAS.map((x) => ({ name: x, label: label("field", x) })),
            { name: "flex_category", label: t("meeting.flexCategory"), kind: "select", options: [["", t("meeting.noFlex")], ...enumOptions("flex.category", schema.FLEX_CATEGORIES)] },
            { name: "flex_amount", label: t("meeting.flexAmount"), kind: "number" },
          ] as FieldSpec[],
          (v) => {
            const dollars = number(v.flex_amount!, t("meeting.flexAmount"));
            // A request only: its status and approval are a supervisor's to set.
            const flex = v.flex_category || dollars !== undefined ? { ...(v.flex_category ? { category: v.flex_category } : {}), ...(dollars !== undefined ? { amount_cents: Math.round(dollars * 100) } : {}) } : undefined;
            const extras = Object.fromEntries(STRATEGY_EXTRAS.filter((x) => v[x]).map((x) => [x, v[x]!]));
            return editPlan(planId, "add /strategies", (p) =>
              p.add("/strategies", {
                description: v.description!,
                kind: v.kind!,
                ...(v.owner ? { owner: v.owner } : {}),
                ...(v.outcome ? { outcomes: [v.outcome] } : {}),
                ...extras,
                ...(flex ? { flex } : {}),
              }),
            );
          },
        )
      : null,
    may("/strategies") && strategies.length
      ? addForm(
          "add-step",
          t("meeting.addStep"),
          [
            { name: "strategy", label: t("meeting.strategy"), kind: "select", options: strategies.map((s) => [s.id, str(s.description)] as [string, string]) },
            { name: "description", label: t("meeting.step"), kind: "long", required: true },
            { name: "responsible", label: t("meeting.responsible"), kind: "select", options: memberOptions(team, t("meeting.nobody")) },
            { name: "due_on", label: t("meeting.due"), kind: "date" },
          ],
          (v) =>
            editPlan(planId, "add /strategies/*/steps", (p) =>
              p.add(`/strategies/${v.strategy}/steps`, { description: v.description!, ...(v.responsible ? { responsible: v.responsible } : {}), ...(v.due_on ? { due_on: v.due_on } : {}) }),
            ),
        )
      : null,
  );

  const triggers = active(items(crisis.triggers));
  const response = active(items(crisis.response_steps));
  const contacts = active(items(crisis.contacts));
  const mayCrisis = may("/crisis_plan");
  const crisisCard = h(
    "section",
    { class: "card crisis", id: "m-crisis", "aria-labelledby": "m-crisis-h" },
    h("h2", { id: "m-crisis-h" }, t("crisis.title")),
    h("h3", {}, t("crisis.triggers")),
    triggers.length ? h("ul", { class: "bullets", id: "m-triggers" }, triggers.map((x) => h("li", {}, str(x.description)))) : h("p", { class: "muted" }, t("meeting.nothingYet")),
    mayCrisis
      ? addForm("add-trigger", t("meeting.addTrigger"), [{ name: "description", label: t("meeting.trigger"), kind: "long", required: true }], (v) =>
          editPlan(planId, "add /crisis_plan/triggers", (p) => p.add("/crisis_plan/triggers", { description: v.description! })),
        )
      : null,
    h("h3", {}, t("crisis.response")),
    response.length ? h("ol", { class: "numbered" }, response.map((x) => h("li", {}, str(x.description)))) : h("p", { class: "muted" }, t("meeting.nothingYet")),
    mayCrisis
      ? addForm("add-response", t("meeting.addResponse"), [{ name: "description", label: t("meeting.response"), kind: "long", required: true }], (v) =>
          editPlan(planId, "add /crisis_plan/response_steps", (p) => p.add("/crisis_plan/response_steps", { description: v.description! })),
        )
      : null,
    h("h3", {}, t("card.contacts")),
    contacts.length ? h("ul", { class: "bullets" }, contacts.map((c) => h("li", {}, [str(c.name), str(c.relationship), str(c.phone)].filter(Boolean).join(" · ")))) : h("p", { class: "muted" }, t("meeting.nothingYet")),
    mayCrisis
      ? addForm(
          "add-contact",
          t("meeting.addContact"),
          [
            { name: "name", label: t("meeting.contactName"), required: true },
            { name: "relationship", label: t("meeting.relationship") },
            { name: "phone", label: t("meeting.phone"), kind: "tel" },
          ],
          (v) =>
            editPlan(planId, "add /crisis_plan/contacts", (p) =>
              p.add("/crisis_plan/contacts", { name: v.name!, ...(v.relationship ? { relationship: v.relationship } : {}), ...(v.phone ? { phone: v.phone } : {}) }),
            ),
        )
      : null,
  );

  return h(
    "main",
    { class: "meeting", id: "meeting-mode" },
    statusBar(planId),
    h("p", { class: "plan-name" }, str(plan.title)),
    conflictCard(planId, plan, role),
    h("div", { class: "meeting-grid" }, meetingCard, visionCard, strengthsCard, needsCard, outcomesCard, strategiesCard, crisisCard),
  );
}

// ---------------------------------------------------------------- supervisors: flexible funds

interface FlexRequest {
  planId: string;
  title: string;
  strategy: Item;
  flex: JsonObject;
}

function flexRequests(rows: CaseRow[]): FlexRequest[] {
  const out: FlexRequest[] = [];
  for (const { summary, plan } of rows) {
    for (const s of active(items(plan.strategies))) {
      const flex = s.flex;
      if (flex && typeof flex === "object" && !Array.isArray(flex) && typeof flex.amount_cents === "number") out.push({ planId: summary.id, title: str(plan.title) || summary.title, strategy: s, flex: flex as JsonObject });
    }
  }
  return out;
}

/** Requests no supervisor has decided: no status yet, or `requested`. */
function pendingFlex(rows: CaseRow[]): FlexRequest[] {
  return flexRequests(rows).filter((r) => !r.flex.status || r.flex.status === "requested");
}

/** Flexible-fund requests waiting for a supervisor: approve or deny (with a note once the schema keeps one); decided ones below. */
export async function renderApprovals(refresh = true): Promise<void> {
  const body = h("main", {});
  show(topBar(t("approvals.title"), { back: "plans" }), offlineBanner(), body);
  const decide = (r: FlexRequest, status: "approved" | "denied", note: string) =>
    editPlan(r.planId, "replace /strategies/*/flex/status; replace /strategies/*/flex/approved_by", (p) => {
      const base = `/strategies/${r.strategy.id}/flex`;
      p.replace(`${base}/status`, status);
      p.replace(`${base}/approved_by`, session!.username);
      if (FLEX_NOTE && note) p.replace(`${base}/note`, note);
    });
  const draw = (rows: CaseRow[], note: string | null) => {
    if (route().name !== "approvals") return;
    if (!body.isConnected) return queueRender();
    const pending = pendingFlex(rows);
    const decided = flexRequests(rows).filter((r) => r.flex.status && r.flex.status !== "requested");
    const detail = (r: FlexRequest) =>
      [formatMoney(r.flex.amount_cents as number), typeof r.flex.category === "string" ? label("flex.category", r.flex.category) : ""].filter(Boolean).join(" · ");
    replaceKids(
      body,
      note ? h("p", { class: "muted" }, note) : null,
      h(
        "section",
        { class: "card", id: "pending", "aria-labelledby": "pending-h" },
        h("h2", { id: "pending-h" }, tn("approvals.pending", pending.length)),
        pending.length === 0
          ? h("p", { class: "muted" }, t("approvals.none"))
          : h(
              "ul",
              { class: "plain" },
              pending.map((r, i) =>
                h(
                  "li",
                  { class: "flex-request", "data-strategy": r.strategy.id },
                  h("h3", {}, str(r.strategy.description)),
                  h("p", {}, h("a", { class: "inline-link", href: `#/plan/${r.planId}` }, r.title)),
                  h("p", { class: "amount" }, detail(r)),
                  FLEX_NOTE ? h("label", {}, t("approvals.note"), h("textarea", { name: `note-${i}`, rows: "2" })) : null,
                  h(
                    "div",
                    { class: "row" },
                    ["approved", "denied"].map((status) =>
                      h(
                        "button",
                        {
                          class: status === "approved" ? "primary" : "secondary",
                          type: "button",
                          "aria-label": t(status === "approved" ? "approvals.approveLabel" : "approvals.denyLabel", { what: str(r.strategy.description) }),
                          onclick: async (ev: Event) => {
                            const li = (ev.currentTarget as HTMLElement).closest("li")!;
                            const note = (li.querySelector("textarea") as HTMLTextAreaElement | null)?.value.trim() ?? "";
                            (ev.currentTarget as HTMLButtonElement).disabled = true;
                            await decide(r, status as "approved" | "denied", note);
                          },
                        },
                        t(status === "approved" ? "approvals.approve" : "approvals.deny"),
                      ),
                    ),
                  ),
                ),
              ),
            ),
      ),
      decided.length
        ? h(
            "section",
            { class: "card", id: "decided", "aria-labelledby": "decided-h" },
            h("h2", { id: "decided-h" }, t("approvals.decided")),
            h(
              "ul",
              { class: "plain" },
              decided.map((r) =>
                h(
                  "li",
                  { "data-strategy": r.strategy.id, "data-status": str(r.flex.status) },
                  h("p", {}, h("strong", {}, str(r.strategy.description)), " · ", r.title),
                  h("p", { class: "muted small" }, [detail(r), label("flex.status", str(r.flex.status)), r.flex.approved_by ? t("approvals.by", { who: str(r.flex.approved_by) }) : "", hasUnsynced(r.planId) ? t("caseload.unsynced") : ""].filter(Boolean).join(" · ")),
                ),
              ),
            ),
          )
        : null,
    );
  };
  await loadCaseload(refresh, draw);
}

// ---------------------------------------------------------------- supervisors: the audit trail

/** The calendar date (YYYY-MM-DD, local time) of a moment in ms. */
function localDate(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** A plan's audit trail from the node (`GET /v1/audit?plan=`): who did what, when, and whether the node allowed it. Needs the network. */
export async function renderAudit(planId: string, plan: JsonObject): Promise<void> {
  const body = h("main", {}, h("p", { class: "muted" }, t("audit.loading")));
  show(topBar(t("audit.title"), { back: `#/plan/${planId}` }), offlineBanner(), body);
  const heading = h("p", { class: "plan-name" }, str(plan.title));
  if (!navigator.onLine || !client) {
    replaceKids(body, heading, h("p", { class: "notice", role: "status" }, t("audit.offline")));
    return;
  }
  try {
    const page = await client.audit({ plan: planId, limit: 200 });
    const r = route();
    if (r.name !== "plan" || r.id !== planId || r.view !== "audit") return;
    replaceKids(
      body,
      heading,
      page.entries.length === 0
        ? h("p", { class: "muted" }, t("audit.none"))
        : h(
            "ol",
            { class: "audit", id: "audit-trail" },
            page.entries.map((e) =>
              h(
                "li",
                { "data-outcome": e.outcome },
                h("p", {}, h("strong", {}, e.user ?? t("audit.anonymous")), e.role ? ` (${label("role", e.role)})` : "", " · ", h("code", {}, e.action)),
                h("p", { class: "muted small" }, [`${formatDate(localDate(e.at))} ${formatTime(e.at)}`, label("audit.outcome", e.outcome)].join(" · ")),
                e.detail ? h("p", { class: "muted small detail" }, e.detail) : null,
              ),
            ),
          ),
    );
  } catch (e) {
    if (e instanceof WrapsyncError && e.status === 401) return sessionEnded();
    replaceKids(body, heading, h("p", { class: "error", role: "alert" }, describe(e)));
  }
}
