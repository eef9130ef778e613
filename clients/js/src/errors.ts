import { isProblemType, type ProblemType } from "./problems.js";
import type { Problem } from "./types.js";

/**
 * A request the node refused: the `application/problem+json` body's `type`
 * (e.g. `/problems/change-forbidden`), HTTP status, title and detail.
 */
export class WrapsyncError extends Error {
  /** Problem type, e.g. `/problems/not-found`. */
  readonly type: string;
  readonly status: number;
  readonly title: string;
  readonly detail?: string;
  /** For a refused op: its index in the request. */
  readonly opIndex?: number;

  constructor(problem: Problem) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title);
    this.name = "WrapsyncError";
    this.type = problem.type;
    this.status = problem.status;
    this.title = problem.title;
    if (problem.detail !== undefined) this.detail = problem.detail;
    if (problem.op_index !== undefined) this.opIndex = problem.op_index;
  }

  /** The problem code: `type` without the `/problems/` prefix (`not-found`). */
  get code(): string {
    return this.type.replace(/^.*\/problems\//, "");
  }

  /** The problem type, if this SDK knows it (match on this, not on `code`). */
  get problemType(): ProblemType | undefined {
    const code = this.code;
    return isProblemType(code) ? code : undefined;
  }

  /** Builds the error from a failed response (problem+json, or a generic one). */
  static async fromResponse(response: Response): Promise<WrapsyncError> {
    let text = "";
    try {
      text = await response.text();
    } catch {
      // the body is gone: fall through to a generic problem
    }
    try {
      const body = JSON.parse(text) as Partial<Problem>;
      if (body && typeof body.type === "string") {
        return new WrapsyncError({
          type: body.type,
          title: typeof body.title === "string" ? body.title : response.statusText,
          status: typeof body.status === "number" ? body.status : response.status,
          ...(typeof body.detail === "string" ? { detail: body.detail } : {}),
          ...(typeof body.op_index === "number" ? { op_index: body.op_index } : {}),
        });
      }
    } catch {
      // not JSON
    }
    return new WrapsyncError({
      type: "about:blank",
      title: response.statusText || `HTTP ${response.status}`,
      status: response.status,
      ...(text ? { detail: text.slice(0, 500) } : {}),
    });
  }
}
