/**
 * Offline edits of a plan document that follow the plan layout, a port of
 * the node's JSON ops (`shared/src/ops.rs`): `replace` a field, `add` an
 * item to a collection (or an id to a reference list). Values are stored the
 * way the node stores them: strings as scalar strings (never Automerge text),
 * whole numbers as ints, `Number` fields as f64; a `null` clears an optional
 * field. Role rules are the node's business: it refuses, at sync, what the
 * user may not change.
 */
import * as A from "@automerge/automerge";
import { PLAN, SCHEMA_VERSION, field as fieldOf, isDate, isItemCode, isItemId, type Field, type Kind } from "./schema.js";
import type { ProblemType } from "./problems.js";
import type { Json, JsonObject } from "./render.js";
import { ulid } from "./ulid.js";

/** A local edit the plan layout does not allow (nothing was changed by the failing op). */
export class PlanEditError extends Error {
  constructor(
    readonly code: Extract<ProblemType, "invalid-op" | "schema-violation" | "no-such-item" | "unsafe-text" | "invalid-phone">,
    readonly path: string,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
    this.name = "PlanEditError";
  }
}

const RATING: Field = { name: "rating", kind: { t: "int", min: 0, max: 3 }, required: false };

type AnyMap = Record<string, any>;

function isObj(v: unknown): v is AnyMap {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !A.isImmutableString(v) && !A.isCounter(v);
}

/**
 * Bidirectional controls and invisible characters, refused in plan text as
 * the node refuses them (`shared/src/text.rs`): they make what is shown
 * differ from what was written. Zero-width (non-)joiners between two
 * non-ASCII characters (Persian, Indic scripts, emoji) are words, not tricks.
 */
// eslint-disable-next-line no-misleading-character-class
const UNSAFE = /[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\u206a-\u206f\ufeff\u034f\u115f\u1160\u3164\uffa0\u180e\u2028\u2029\u00ad\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\ufff9-\ufffb\u{e0001}\u{e0020}-\u{e007f}]/u;

/** The first character the node would refuse in plan text, if any. */
export function unsafeChar(text: string): string | undefined {
  const chars = [...text];
  const joins = (c: string | undefined) => c !== undefined && c.codePointAt(0)! > 0x7f && !/\s/u.test(c) && !UNSAFE.test(c);
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (!UNSAFE.test(c)) continue;
    if ((c === "\u200c" || c === "\u200d") && joins(chars[i - 1]) && joins(chars[i + 1])) continue;
    return c;
  }
  return undefined;
}

/**
 * A phone number as the node stores it, E.164: national numbers are read as
 * North American (`(303) 555-0123` → `+13035550123`); others need their `+`.
 * The node checks the number is valid for its region when it syncs.
 */
export function normalizePhone(typed: string, path = "phone"): string {
  const bad = (detail: string): never => {
    throw new PlanEditError("invalid-phone", path, detail);
  };
  if (unsafeChar(typed) !== undefined) bad("a phone number holds an invisible or direction-changing character");
  const trimmed = typed.trim();
  if (!/^\+?[0-9 ()./\u00a0-]+$/.test(trimmed)) bad("a phone number may hold only digits, a leading +, spaces, dashes, dots and brackets");
  const digits = trimmed.replace(/[^0-9]/g, "");
  if (trimmed.startsWith("+")) {
    if (!/^[1-9][0-9]{6,14}$/.test(digits)) bad("not a phone number");
    return `+${digits}`;
  }
  const national = digits.length === 11 && digits.startsWith("1") ? digits.slice(1) : digits;
  if (!/^[2-9][0-9]{2}[2-9][0-9]{6}$/.test(national)) bad("not a valid phone number (a national number needs its area code)");
  return `+1${national}`;
}

function check(kind: Kind, value: Json, path: string): void {
  const bad = (detail: string): never => {
    throw new PlanEditError("schema-violation", path, detail);
  };
  switch (kind.t) {
    case "text":
      if (typeof value !== "string") bad("expected a string");
      if ([...(value as string)].length > kind.max) bad(`text longer than ${kind.max} characters`);
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(value as string)) bad("text holds control characters");
      if (unsafeChar(value as string) !== undefined) {
        throw new PlanEditError("unsafe-text", path, "text holds an invisible or direction-changing character");
      }
      return;
    case "phone":
      if (typeof value !== "string" || normalizePhone(value, path) !== value) {
        throw new PlanEditError("invalid-phone", path, "a phone number is stored as E.164 (+13035550123)");
      }
      return;
    case "date":
      if (typeof value !== "string" || !isDate(value)) bad("expected a date, YYYY-MM-DD");
      return;
    case "int":
      if (typeof value !== "number" || !Number.isInteger(value) || value < kind.min || value > kind.max) {
        bad(`expected a whole number from ${kind.min} to ${kind.max}`);
      }
      return;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) bad("expected a number");
      return;
    case "enum":
      if (typeof value !== "string" || !kind.values.includes(value)) bad(`expected one of ${kind.values.join(", ")}`);
      return;
    case "member":
      if (typeof value !== "string" || !isItemId(value)) bad("expected a team member id");
      return;
    case "language":
      // The shape of a BCP 47 tag; the node also checks its subtags against the IANA registry.
      if (typeof value !== "string" || value.length > 35 || !/^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/.test(value)) {
        bad("expected a BCP 47 language tag (`es`, `en-US`)");
      }
      return;
    case "digits":
      if (typeof value !== "string" || !new RegExp(`^[0-9]{${kind.n}}$`).test(value)) bad(`expected a code of ${kind.n} digits, as a string`);
      return;
    case "enumList":
      if (!Array.isArray(value)) bad(`expected a list of ${kind.values.join(", ")}`);
      (value as Json[]).forEach((v, i) => {
        if (typeof v !== "string" || !kind.values.includes(v)) bad(`expected a list of ${kind.values.join(", ")}`);
        if ((value as Json[]).indexOf(v) !== i) bad(`${JSON.stringify(v)} is listed twice`);
      });
      return;
    default:
      bad("expected a different kind of value");
  }
}

/** A checked JSON scalar as the Automerge value the node would store. */
function toScalar(kind: Kind, value: Json): unknown {
  switch (kind.t) {
    case "int":
      return new A.Int(value as number);
    case "number":
      return new A.Float64(value as number);
    default:
      return typeof value === "string" ? new A.ImmutableString(value) : value;
  }
}

function itemIds(map: unknown): string[] {
  return isObj(map) ? Object.keys(map) : [];
}

interface Target {
  obj: AnyMap;
  key: string;
  field: Field;
}

/** An op for the local editor (same shape as the node's `/ops`). */
export interface LocalOp {
  op: "replace" | "add";
  path: string;
  value: Json;
}

export interface StrengthInput {
  statement: string;
  about?: "youth" | "family" | "community";
  status?: "active" | "closed";
  id?: string;
}

export interface ProgressInput {
  /** `YYYY-MM-DD` */
  on: string;
  value: number;
  note?: string;
  status?: "recorded" | "withdrawn";
  id?: string;
}

export interface NeedInput {
  domain: string;
  statement: string;
  priority?: number;
  status?: "active" | "met" | "closed";
  id?: string;
}

/**
 * Edits one plan document inside `Automerge.change`. Get one from
 * `Replica.edit(planId, (plan) => …)`; `plan.doc` is the raw Automerge proxy.
 */
export class PlanEditor {
  /** Summaries of what was done, kept as the change message (`replace /vision; add /strengths`). */
  readonly summary: string[] = [];

  constructor(
    readonly doc: AnyMap,
    private readonly newId: () => string = ulid,
  ) {}

  /** Sets a field (`/vision`, `/needs/<id>/status`, …); `null` clears an optional one. */
  replace(path: string, value: Json): void {
    const target = this.resolve(path);
    const kind = target.field.kind;
    if (kind.t === "struct" || kind.t === "collection" || kind.t === "ratings") {
      throw new PlanEditError("invalid-op", path, "is a section: set its fields one by one");
    }
    this.setField(target.obj, target.field, target.key, value, path);
    this.note("replace", path);
  }

  /**
   * Adds an item to a collection (`/strengths`, `/outcomes/<id>/progress`)
   * and answers its id, or an id to a reference list (`/outcomes/<id>/needs`).
   */
  add(path: string, value: Json): string | undefined {
    const target = this.resolve(path);
    const kind = target.field.kind;
    if (kind.t === "collection") {
      const coll = target.obj[target.key];
      if (!isObj(coll)) throw new PlanEditError("schema-violation", path, "this plan lacks the collection");
      const id = this.addItem(coll, kind.fields, value, path);
      this.note("add", path);
      return id;
    }
    if (kind.t === "refs") {
      if (typeof value !== "string" || !this.hasItem(kind.collection, value)) {
        throw new PlanEditError("schema-violation", path, `expected the id of a /${kind.collection} item`);
      }
      if (!Array.isArray(target.obj[target.key])) target.obj[target.key] = [];
      const list = target.obj[target.key] as unknown[];
      if (!list.some((v) => A.isImmutableString(v) && (v as A.ImmutableString).val === value)) {
        list.push(new A.ImmutableString(value));
      }
      this.note("add", path);
      return undefined;
    }
    throw new PlanEditError("invalid-op", path, "`add` goes to a collection or a reference list");
  }

  /** Applies ops in order (as `/ops` would, without role checks). */
  apply(ops: LocalOp[]): (string | undefined)[] {
    return ops.map((op) => (op.op === "add" ? this.add(op.path, op.value) : (this.replace(op.path, op.value), undefined)));
  }

  // Typed helpers for the common phone actions.

  setVision(text: string | null): void {
    this.replace("/vision", text);
  }

  setMission(text: string | null): void {
    this.replace("/mission", text);
  }

  addStrength(strength: StrengthInput): string {
    return this.add("/strengths", { ...strength })!;
  }

  addNeed(need: NeedInput): string {
    return this.add("/needs", { ...need })!;
  }

  /** Marks an action step done on `date` (sets `done_on` and `status: "done"`). */
  markStepDone(strategyId: string, stepId: string, date: string): void {
    this.replace(`/strategies/${strategyId}/steps/${stepId}/done_on`, date);
    this.replace(`/strategies/${strategyId}/steps/${stepId}/status`, "done");
  }

  /** Records a progress measurement on an outcome; answers its id. */
  addProgress(outcomeId: string, progress: ProgressInput): string {
    return this.add(`/outcomes/${outcomeId}/progress`, { ...progress })!;
  }

  private note(op: string, path: string): void {
    this.upgrade();
    const pattern = path
      .split("/")
      .map((s) => (isItemId(s) ? "*" : s))
      .join("/");
    this.summary.push(`${op} ${pattern}`);
  }

  /**
   * A plan at an older schema version becomes one at `SCHEMA_VERSION` when
   * it is written, as the node's ops do; a later version is kept.
   */
  private upgrade(): void {
    const version = this.doc["schema_version"];
    const n = typeof version === "number" ? version : version instanceof A.Int ? version.value : undefined;
    if (n !== undefined && Number.isInteger(n) && n >= 1 && n < SCHEMA_VERSION) {
      this.doc["schema_version"] = new A.Int(SCHEMA_VERSION);
    }
  }

  private hasItem(collection: string, id: string): boolean {
    const coll = this.doc[collection];
    return isObj(coll) && isObj(coll[id]);
  }

  private resolve(path: string): Target {
    if (!path.startsWith("/")) throw new PlanEditError("invalid-op", path, "a path starts with `/`");
    const segments = path.slice(1).split("/");
    let obj: AnyMap = this.doc;
    let fields: readonly Field[] = PLAN;
    let i = 0;
    for (;;) {
      const name = segments[i]!;
      const field = fieldOf(fields, name);
      if (!field) throw new PlanEditError("invalid-op", path, "names no field of the plan");
      if (i + 1 === segments.length) return { obj, key: name, field };
      const container = obj[name];
      if (!isObj(container)) throw new PlanEditError("schema-violation", path, "this plan lacks the section");
      const kind = field.kind;
      if (kind.t === "struct") {
        obj = container;
        fields = kind.fields;
        i += 1;
      } else if (kind.t === "collection") {
        const itemId = segments[i + 1]!;
        const item = container[itemId];
        if (!isObj(item)) {
          throw new PlanEditError("no-such-item", "/" + segments.slice(0, i + 2).join("/"), "does not exist in this plan");
        }
        if (i + 2 === segments.length) throw new PlanEditError("invalid-op", path, "is a whole item: address one of its fields");
        obj = item;
        fields = kind.fields;
        i += 2;
      } else if (kind.t === "ratings" && i + 2 === segments.length) {
        const code = segments[i + 1]!;
        if (!isItemCode(code)) throw new PlanEditError("schema-violation", path, "not an assessment item code");
        return { obj: container, key: code, field: RATING };
      } else {
        throw new PlanEditError("invalid-op", path, "goes inside a value");
      }
    }
  }

  private setField(obj: AnyMap, field: Field, key: string, value: Json, path: string): void {
    if (value === null) {
      if (field.required) throw new PlanEditError("schema-violation", path, "required: it cannot be cleared");
      if (key in obj) delete obj[key];
      return;
    }
    const kind = field.kind;
    if (kind.t === "refs") {
      if (!Array.isArray(value)) throw new PlanEditError("schema-violation", path, `expected a list of /${kind.collection} ids`);
      for (const id of value) {
        if (typeof id !== "string" || !this.hasItem(kind.collection, id)) {
          throw new PlanEditError("schema-violation", path, `${JSON.stringify(id)} is not a /${kind.collection} item`);
        }
      }
      obj[key] = (value as string[]).map((id) => new A.ImmutableString(id));
      return;
    }
    if (kind.t === "enumList") {
      check(kind, value, path);
      obj[key] = (value as string[]).map((v) => new A.ImmutableString(v));
      return;
    }
    if (kind.t === "phone") {
      if (typeof value !== "string") throw new PlanEditError("invalid-phone", path, "expected a phone number");
      value = normalizePhone(value, path);
    }
    check(kind, value, path);
    if (kind.t === "member" && !this.hasItem("team", value as string)) {
      throw new PlanEditError("schema-violation", path, "must be the id of a team member");
    }
    obj[key] = toScalar(kind, value);
  }

  private addItem(coll: AnyMap, fields: readonly Field[], value: Json, path: string): string {
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      throw new PlanEditError("schema-violation", path, "expected an object with the item's fields");
    }
    const object = value as JsonObject;
    let id: string;
    if (object["id"] === undefined) {
      id = this.newId();
    } else if (typeof object["id"] === "string" && isItemId(object["id"])) {
      id = object["id"];
      if (itemIds(coll).includes(id)) throw new PlanEditError("schema-violation", `${path}/${id}`, "an item with this id exists");
    } else {
      throw new PlanEditError("schema-violation", `${path}/id`, "item ids must be ULIDs");
    }
    const itemPath = `${path}/${id}`;
    for (const key of Object.keys(object)) {
      if (key !== "id" && !fieldOf(fields, key)) throw new PlanEditError("schema-violation", `${itemPath}/${key}`, "unknown field");
    }
    coll[id] = {};
    const item = coll[id] as AnyMap;
    this.fillItem(item, fields, object, itemPath);
    return id;
  }

  private fillItem(item: AnyMap, fields: readonly Field[], object: JsonObject, path: string): void {
    // Every struct, collection and ratings map exists from the item's first change.
    for (const field of fields) {
      if (field.kind.t === "collection" || field.kind.t === "ratings") item[field.name] = {};
      if (field.kind.t === "struct") item[field.name] = emptyStruct(field.kind.fields);
    }
    for (const field of fields) {
      const fieldPath = `${path}/${field.name}`;
      const v = object[field.name];
      const kind = field.kind;
      if (v === undefined || v === null) {
        if (field.required) throw new PlanEditError("schema-violation", fieldPath, "required");
        if (kind.t === "enum" && field.name === "status") item["status"] = new A.ImmutableString(kind.values[0]!);
        continue;
      }
      if (kind.t === "struct") {
        if (typeof v !== "object" || Array.isArray(v)) throw new PlanEditError("schema-violation", fieldPath, "expected an object");
        for (const key of Object.keys(v)) {
          if (!fieldOf(kind.fields, key)) throw new PlanEditError("schema-violation", `${fieldPath}/${key}`, "unknown field");
        }
        for (const inner of kind.fields) {
          const nv = (v as JsonObject)[inner.name];
          if (nv !== undefined && nv !== null) this.setField(item[field.name], inner, inner.name, nv, `${fieldPath}/${inner.name}`);
        }
      } else if (kind.t === "collection") {
        if (!Array.isArray(v)) throw new PlanEditError("schema-violation", fieldPath, "expected a list of items");
        for (const nested of v) this.addItem(item[field.name], kind.fields, nested, fieldPath);
      } else if (kind.t === "ratings") {
        if (typeof v !== "object" || Array.isArray(v)) throw new PlanEditError("schema-violation", fieldPath, "expected item code → rating");
        for (const [code, rating] of Object.entries(v)) {
          if (!isItemCode(code)) throw new PlanEditError("schema-violation", `${fieldPath}/${code}`, "not an assessment item code");
          this.setField(item[field.name], RATING, code, rating, `${fieldPath}/${code}`);
        }
      } else {
        this.setField(item, field, field.name, v, fieldPath);
      }
    }
  }
}

function emptyStruct(fields: readonly Field[]): AnyMap {
  const out: AnyMap = {};
  for (const field of fields) {
    if (field.kind.t === "collection" || field.kind.t === "ratings") out[field.name] = {};
    if (field.kind.t === "struct") out[field.name] = emptyStruct(field.kind.fields);
  }
  return out;
}
