/**
 * The plan layout, ported from `shared/src/schema.rs` (the node's single
 * source of truth). Rendering and local edits walk this table so that a
 * replica's plan JSON and its offline changes match the node's exactly.
 */

export type Kind =
  | { t: "text"; max: number }
  /** A phone number, stored as E.164 (`+13035550123`). */
  | { t: "phone" }
  | { t: "date" }
  | { t: "int"; min: number; max: number }
  | { t: "number" }
  | { t: "enum"; values: readonly string[] }
  | { t: "member" }
  | { t: "refs"; collection: string }
  | { t: "struct"; fields: readonly Field[] }
  | { t: "collection"; fields: readonly Field[] }
  | { t: "ratings" }
  /** A BCP 47 language tag (`es`, `en-US`). */
  | { t: "language" }
  /** Exactly `n` digits, as a string (a county's FIPS code). */
  | { t: "digits"; n: number }
  /** Distinct values of a vocabulary, possibly none, replaced whole. */
  | { t: "enumList"; values: readonly string[] };

export interface Field {
  name: string;
  kind: Kind;
  /** Must be given when the item holding it is added. */
  required: boolean;
}

/** The newest plan schema version this SDK knows (the node's `CURRENT`). */
export const SCHEMA_VERSION = 2;

/**
 * The value shown for a vocabulary value this SDK does not know (a later
 * version's): `other` where the vocabulary has it, else its first value.
 */
export const fallback = (values: readonly string[]): string =>
  values.includes("other") ? "other" : (values[0] ?? "");

const f = (name: string, kind: Kind): Field => ({ name, kind, required: false });
const req = (field: Field): Field => ({ ...field, required: true });
const text = (max: number): Kind => ({ t: "text", max });
const SHORT = text(200);
const LONG = text(4000);
const DATE: Kind = { t: "date" };
const NUMBER: Kind = { t: "number" };
const MEMBER: Kind = { t: "member" };
const int = (min: number, max: number): Kind => ({ t: "int", min, max });
const COUNT = int(0, 10_000);
const oneOf = (...values: string[]): Kind => ({ t: "enum", values });
const refs = (collection: string): Kind => ({ t: "refs", collection });
const struct = (fields: Field[]): Kind => ({ t: "struct", fields });
const collection = (fields: Field[]): Kind => ({ t: "collection", fields });
const LANGUAGE: Kind = { t: "language" };
const listOf = (...values: string[]): Kind => ({ t: "enumList", values });

// Schema v2 (shared/src/schema/versions.rs).
export const RACE_ETHNICITY = ["american_indian_or_alaska_native", "asian", "black_or_african_american", "hispanic_or_latino", "middle_eastern_or_north_african", "native_hawaiian_or_pacific_islander", "white"] as const;
export const GENDERS = ["girl_or_woman", "boy_or_man", "culturally_specific_identity", "transgender", "non_binary", "questioning", "different_identity", "prefer_not_to_say"] as const;
export const AGENCIES = ["mental_health", "child_welfare", "juvenile_justice", "education", "health", "community", "other"] as const;
export const FUNDING_STREAMS = ["medicaid", "child_welfare", "juvenile_justice", "education", "soc_flexible_funds", "private_insurance", "other"] as const;
export const AVAILABILITY = ["available", "waitlisted", "unavailable"] as const;
const SERVICE: Field[] = [f("availability", oneOf(...AVAILABILITY)), f("since", DATE)];

export const PHASES = ["engagement", "planning", "implementation", "transition", "closed"] as const;
export const DISCHARGE_REASONS = ["completed", "transitioned", "dropped_out", "moved", "placed", "other"] as const;
export const TEAM_ROLES = ["facilitator", "family_advocate", "caregiver", "youth", "provider", "natural_support"] as const;
export const SUPPORT_KINDS = ["formal", "informal", "natural"] as const;
export const LIFE_DOMAINS = ["home", "school", "health", "safety", "legal", "social", "recreation", "culture", "other"] as const;
export const STRATEGY_KINDS = ["formal", "informal", "natural", "flex"] as const;
export const FLEX_CATEGORIES = ["housing", "utilities", "transportation", "education", "recreation", "basic_needs", "health", "respite", "other"] as const;
export const LIVING_SITUATIONS = ["home", "kin", "foster", "group", "residential", "detention", "psychiatric", "other"] as const;
export const CONSENT_SCOPES = ["full_plan", "crisis_plan", "summary"] as const;

const TEAM_MEMBER: Field[] = [
  req(f("name", SHORT)),
  req(f("role", oneOf(...TEAM_ROLES))),
  f("support", oneOf(...SUPPORT_KINDS)),
  f("user", SHORT),
  f("phone", { t: "phone" }),
  f("email", SHORT),
  f("joined_on", DATE),
  f("status", oneOf("active", "left")),
  f("language", LANGUAGE),
];

const STRENGTH: Field[] = [
  req(f("statement", LONG)),
  f("about", oneOf("youth", "family", "community")),
  f("status", oneOf("active", "closed")),
];

const NEED: Field[] = [
  req(f("domain", oneOf(...LIFE_DOMAINS))),
  req(f("statement", LONG)),
  f("priority", int(1, 5)),
  f("status", oneOf("active", "met", "closed")),
];

const PROGRESS: Field[] = [
  req(f("on", DATE)),
  req(f("value", NUMBER)),
  f("note", LONG),
  f("status", oneOf("recorded", "withdrawn")),
];

const OUTCOME: Field[] = [
  f("needs", refs("needs")),
  req(f("statement", LONG)),
  f("indicator", SHORT),
  f("baseline", NUMBER),
  f("target", NUMBER),
  f("due_on", DATE),
  f("status", oneOf("active", "achieved", "partially_achieved", "not_achieved", "closed")),
  f("progress", collection(PROGRESS)),
];

const FLEX_REQUEST: Field[] = [
  f("category", oneOf(...FLEX_CATEGORIES)),
  f("amount_cents", int(0, 100_000_000)),
  f("status", oneOf("requested", "approved", "denied", "paid")),
  f("approved_by", SHORT),
  f("paid_on", DATE),
];

const ACTION_STEP: Field[] = [
  req(f("description", LONG)),
  f("responsible", MEMBER),
  f("due_on", DATE),
  f("done_on", DATE),
  f("status", oneOf("open", "done", "dropped")),
];

const STRATEGY: Field[] = [
  f("outcomes", refs("outcomes")),
  req(f("description", LONG)),
  req(f("kind", oneOf(...STRATEGY_KINDS))),
  f("owner", MEMBER),
  f("status", oneOf("proposed", "active", "done", "stopped")),
  f("flex", struct(FLEX_REQUEST)),
  f("steps", collection(ACTION_STEP)),
  f("agency", oneOf(...AGENCIES)),
  f("funding_stream", oneOf(...FUNDING_STREAMS)),
  f("service", struct(SERVICE)),
];

const PLAN_ITEM: Field[] = [req(f("description", LONG)), f("status", oneOf("active", "closed"))];

const CONTACT: Field[] = [
  req(f("name", SHORT)),
  f("relationship", SHORT),
  f("phone", { t: "phone" }),
  f("status", oneOf("active", "closed")),
];

const CRISIS_PLAN: Field[] = [
  f("triggers", collection(PLAN_ITEM)),
  f("prevention", LONG),
  f("response_steps", collection(PLAN_ITEM)),
  f("contacts", collection(CONTACT)),
  f("reviewed_on", DATE),
];

const MEETING: Field[] = [
  req(f("held_on", DATE)),
  f("place", SHORT),
  f("attendees", refs("team")),
  f("decisions", LONG),
  f("next_on", DATE),
  f("status", oneOf("scheduled", "held", "cancelled")),
];

const CANS_ASSESSMENT: Field[] = [
  req(f("assessed_on", DATE)),
  f("ratings", { t: "ratings" }),
  f("status", oneOf("final", "draft", "withdrawn")),
];

const STATUS_SNAPSHOT: Field[] = [
  req(f("as_of", DATE)),
  f("living", oneOf(...LIVING_SITUATIONS)),
  f("school_days_missed_30d", int(0, 30)),
  f("suspensions_30d", int(0, 30)),
  f("arrests_30d", COUNT),
  f("psych_admissions_180d", COUNT),
  f("er_visits_180d", COUNT),
  f("status", oneOf("recorded", "withdrawn")),
];

const CONSENT: Field[] = [
  req(f("grantee", SHORT)),
  req(f("scope", oneOf(...CONSENT_SCOPES))),
  f("granted_by", MEMBER),
  f("granted_on", DATE),
  f("expires_on", DATE),
  f("revoked_on", DATE),
  f("status", oneOf("active", "revoked")),
];

const YOUTH: Field[] = [
  f("name", SHORT),
  f("birth_date", DATE),
  f("preferred_language", LANGUAGE),
  f("county", { t: "digits", n: 5 }),
  f("race_ethnicity", listOf(...RACE_ETHNICITY)),
  f("gender", listOf(...GENDERS)),
];

const ENROLLMENT: Field[] = [
  f("enrolled_on", DATE),
  f("phase", oneOf(...PHASES)),
  f("plan_adopted_on", DATE),
  f("discharged_on", DATE),
  f("discharge_reason", oneOf(...DISCHARGE_REASONS)),
];

const TRANSITION: Field[] = [f("plan", LONG), f("target_on", DATE), f("post_transition_crisis_plan", LONG)];

/** The root of every plan document (besides `schema_version`). */
export const PLAN: readonly Field[] = [
  req(f("title", SHORT)),
  f("youth", struct(YOUTH)),
  f("enrollment", struct(ENROLLMENT)),
  f("vision", LONG),
  f("mission", LONG),
  f("team", collection(TEAM_MEMBER)),
  f("strengths", collection(STRENGTH)),
  f("needs", collection(NEED)),
  f("outcomes", collection(OUTCOME)),
  f("strategies", collection(STRATEGY)),
  f("crisis_plan", struct(CRISIS_PLAN)),
  f("meetings", collection(MEETING)),
  f("cans", collection(CANS_ASSESSMENT)),
  f("status", collection(STATUS_SNAPSHOT)),
  f("transition", struct(TRANSITION)),
  f("consents", collection(CONSENT)),
];

export function field(fields: readonly Field[], name: string): Field | undefined {
  return fields.find((x) => x.name === name);
}

/** Item ids are ULIDs: 26 Crockford base-32 characters. */
export function isItemId(s: string): boolean {
  return /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/.test(s);
}

/** `YYYY-MM-DD`, a real calendar date. */
export function isDate(s: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (mo < 1 || mo > 12 || d < 1) return false;
  const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  return d <= days;
}

/** Lowercase assessment item codes (`ls.family_functioning`). */
export function isItemCode(s: string): boolean {
  return s.length <= 40 && /^[a-z0-9][a-z0-9_.]*$/.test(s);
}
