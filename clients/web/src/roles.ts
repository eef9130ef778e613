/**
 * Who may write what, copied from `WRITE_RULES` in `shared/src/roles.rs`
 * (docs/roles.md), so that the app never offers a person what the node
 * would refuse. The node stays the judge: a change it refuses comes back
 * as a 422 the status line explains.
 */
const RULES: [string, string[]][] = [
  ["/strategies/*/flex/status", []],
  ["/strategies/*/flex/approved_by", []],
  ["/strategies/*/flex/paid_on", []],
  ["/strategies", ["facilitator", "family_advocate"]],
  ["/outcomes/*/progress", ["facilitator", "family_advocate", "caregiver", "youth", "provider"]],
  ["/outcomes", ["facilitator", "family_advocate"]],
  ["/strengths", ["facilitator", "family_advocate", "caregiver", "youth", "provider", "natural_support"]],
  ["/vision", ["facilitator", "family_advocate", "caregiver", "youth"]],
  ["/mission", ["facilitator", "family_advocate"]],
  ["/needs", ["facilitator", "family_advocate"]],
  ["/crisis_plan", ["facilitator", "family_advocate"]],
  ["/meetings", ["facilitator", "family_advocate"]],
  ["/transition", ["facilitator", "family_advocate"]],
  ["/cans", ["facilitator", "provider"]],
  ["/status", ["facilitator", "family_advocate", "provider"]],
  ["/consents", ["facilitator", "caregiver"]],
  ["/team", ["facilitator"]],
  ["/enrollment", ["facilitator"]],
  ["/youth", ["facilitator"]],
  ["/title", ["facilitator"]],
];

/** Fields of an action step its responsible member may set, whatever their role. */
const OWN_STEP_FIELDS = ["done_on", "status"];

/** `/needs/01J…/status` → `/needs/*\/status` (item ids are ULIDs). */
export function pattern(path: string): string {
  return path
    .split("/")
    .map((s) => (/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/.test(s) ? "*" : s))
    .join("/");
}

/**
 * May `role` (a team role, or `supervisor`) write `path`? `ownStep`: the
 * path is an action step this person is responsible for.
 */
export function mayWrite(role: string | null | undefined, path: string, ownStep = false): boolean {
  if (!role) return false;
  if (role === "supervisor") return true;
  const p = pattern(path);
  if (ownStep) {
    const field = p.startsWith("/strategies/*/steps/*/") ? p.slice("/strategies/*/steps/*/".length) : null;
    if (field && OWN_STEP_FIELDS.includes(field)) return true;
  }
  const rule = RULES.find(([prefix]) => p === prefix || p.startsWith(`${prefix}/`));
  return !!rule && rule[1].includes(role);
}

/** Roles whose work is the team's plans rather than their own family's: they get the caseload. */
export function isStaff(role: string | null | undefined): boolean {
  return role === "facilitator" || role === "family_advocate" || role === "supervisor";
}
