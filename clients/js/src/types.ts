/** Bodies of the `/v1` HTTP API (mirrors `wrapsync_shared::api`). */
import type { Json, JsonObject } from "./render.js";

export type Role =
  | "facilitator"
  | "family_advocate"
  | "caregiver"
  | "youth"
  | "provider"
  | "natural_support"
  | "supervisor";

export interface TokenResponse {
  access_token: string;
  refresh_token: string;
  token_type: string;
  /** Seconds until the access token expires. */
  expires_in: number;
}

export interface PlanSummary {
  id: string;
  title: string;
  phase: string;
  /** Milliseconds since the Unix epoch. */
  updated_at: number;
  role: Role;
}

export interface PlanList {
  plans: PlanSummary[];
  next: string | null;
}

export interface ConflictValue {
  value: Json;
  user: string | null;
  actor: string;
}

export interface ConflictView {
  path: string;
  values: ConflictValue[];
}

export interface PlanDocument {
  id: string;
  /** The document's heads (hex change hashes): send back as `base_version`. */
  version: string[];
  plan: JsonObject;
  conflicts?: ConflictView[];
}

export interface Op {
  op: "replace" | "add" | "test" | (string & {});
  path: string;
  value?: Json;
}

/**
 * The answer to ops: the plan after them, or (`Prefer: return=minimal`, or a
 * plan over the node's `ops_answer_plan_bytes`) a minimal answer without
 * `plan` whose `changed` lists the paths written: read the plan with
 * `getPlan` if you need it.
 */
export interface OpsResponse extends Omit<PlanDocument, "plan"> {
  plan?: JsonObject;
  results: { id?: string }[];
  changed?: string[];
}

export interface HistoryEntry {
  hash: string;
  user: string | null;
  actor: string;
  /** Seconds since the Unix epoch, as the author's device recorded it. */
  time: number;
  summary: string | null;
  /** The node that delivered the change, when not the author's own node. */
  via?: string;
}

export interface History {
  id: string;
  changes: HistoryEntry[];
}

export interface PlanChange {
  plan: string;
  cursor: string;
  updated_at: number;
}

export interface ChangeFeed {
  changes: PlanChange[];
  cursor: string;
}

/** RFC 9457 problem details, the body of every error. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  op_index?: number;
}

/** A family's consent to share a plan with a peer node (`/v1/plans/{id}/shares`). */
export interface Share {
  node: string;
  scope: string;
  granted_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  /** Not revoked, not expired: the plan syncs with `node`. */
  live: boolean;
}

/** One row of the node's audit trail (`GET /v1/audit`, supervisors). */
export interface AuditEntry {
  id: number;
  /** Milliseconds since the Unix epoch. */
  at: number;
  user: string | null;
  role: string | null;
  plan: string | null;
  action: string;
  /** `ok`, `denied`, `not_found`, `refused`, `error`, … */
  outcome: string;
  detail: string | null;
  remote: string | null;
  request_id: string | null;
}

export interface AuditPage {
  entries: AuditEntry[];
  next: string | null;
}
