/**
 * Renders a plan document to the JSON the node serves, a port of
 * `shared/src/plan.rs` `render`: structs become objects, collections become
 * arrays of items (each with its `id`) sorted by id, fields in schema order,
 * absent or non-plan values (text objects, counters, null) omitted.
 */
import * as A from "@automerge/automerge";
import { PLAN, fallback, type Field } from "./schema.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A plan document's scalar as JSON, or undefined for what the node omits. */
function scalar(value: unknown): Json | undefined {
  if (A.isImmutableString(value)) return (value as A.ImmutableString).val;
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "boolean") return value;
  // A JS string here is an Automerge text object, counters and dates are
  // other scalar types: none is part of the plan schema, the node omits them.
  return undefined;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof Uint8Array) &&
    !(value instanceof Date) &&
    !A.isImmutableString(value) &&
    !A.isCounter(value)
  );
}

function renderMap(map: Record<string, unknown>, fields: readonly Field[]): JsonObject {
  const out: JsonObject = {};
  for (const field of fields) {
    if (!Object.prototype.hasOwnProperty.call(map, field.name)) continue;
    const value = renderValue(map[field.name], field);
    if (value !== undefined) out[field.name] = value;
  }
  return out;
}

const byKey = <T>(a: [string, T], b: [string, T]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

function renderValue(value: unknown, field: Field): Json | undefined {
  const kind = field.kind;
  switch (kind.t) {
    case "struct":
      return isMap(value) ? renderMap(value, kind.fields) : undefined;
    case "collection": {
      if (!isMap(value)) return undefined;
      return Object.entries(value)
        .sort(byKey)
        .map(([id, item]) => ({ id, ...(isMap(item) ? renderMap(item, kind.fields) : {}) }));
    }
    case "ratings": {
      if (!isMap(value)) return undefined;
      const out: JsonObject = {};
      const entries = Object.entries(value)
        .map(([k, v]) => [k, scalar(v)] as [string, Json | undefined])
        .filter((e): e is [string, Json] => e[1] !== undefined)
        .sort(byKey);
      for (const [k, v] of entries) out[k] = v;
      return out;
    }
    case "enum": {
      // A later version's value shows as the fallback; the document keeps it.
      const shown = scalar(value);
      return typeof shown === "string" && !kind.values.includes(shown) ? fallback(kind.values) : shown;
    }
    case "enumList": {
      if (!Array.isArray(value)) return undefined;
      const shown: Json[] = [];
      for (const v of value.map(scalar)) {
        if (typeof v !== "string") continue;
        const s = kind.values.includes(v) ? v : fallback(kind.values);
        if (!shown.includes(s)) shown.push(s);
      }
      return shown;
    }
    case "refs":
      if (!Array.isArray(value)) return undefined;
      return value.map(scalar).filter((v): v is Json => v !== undefined);
    default:
      if (isMap(value) || Array.isArray(value)) return undefined;
      return scalar(value);
  }
}

/** The plan JSON of a plan document, exactly as `GET /v1/plans/{id}` shows it in `plan`. */
export function render(doc: unknown): JsonObject {
  if (!isMap(doc)) return {};
  const out = renderMap(doc, PLAN);
  const version = doc["schema_version"];
  // The node renders schema_version only when it is an integer.
  if (typeof version === "number" && Number.isInteger(version)) out["schema_version"] = version;
  return out;
}

/** The document's version as the node reports it: its heads, sorted. */
export function versionOf(doc: A.Doc<unknown>): string[] {
  return [...A.getHeads(doc)].sort();
}
