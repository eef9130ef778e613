/**
 * Every problem type a node or the hub answers: the slug of a problem
 * body's `type` (`/problems/<slug>`). Mirrors the Rust
 * `wrapsync_shared::problems::ProblemType`; `test/problems.test.ts` checks it
 * against `problem-types.json`, which a Rust test keeps equal to the enum.
 */
export const PROBLEM_TYPES = [
  "malformed-json",
  "invalid-request",
  "unauthorized",
  "invalid-credentials",
  "invalid-refresh-token",
  "forbidden",
  "not-found",
  "unknown-version",
  "test-failed",
  "malformed-sync-message",
  "malformed-document",
  "conflict",
  "transfer-refused",
  "change-forbidden",
  "home-authority",
  "payload-too-large",
  "document-too-large",
  "message-too-large",
  "sync-state-too-large",
  "plan-quota",
  "request-timeout",
  "rate-limited",
  "unsupported-media-type",
  "invalid-op",
  "unsupported-op",
  "schema-violation",
  "no-such-item",
  "invalid-item-id",
  "unsafe-text",
  "invalid-phone",
  "invalid-report",
  "report-refused",
  "report-period-too-early",
  "report-period-in-future",
  "report-over-ceiling",
  "report-part-over-whole",
  "report-amount-without-youth",
  "report-revisions-limited",
  "privacy-budget-spent",
  "not-ready",
  "busy",
  "contended",
  "internal",
] as const;

/** A problem type this SDK knows (a newer node may answer others). */
export type ProblemType = (typeof PROBLEM_TYPES)[number];

const KNOWN: ReadonlySet<string> = new Set(PROBLEM_TYPES);

/** Whether `code` is a problem type this SDK knows. */
export function isProblemType(code: string): code is ProblemType {
  return KNOWN.has(code);
}
