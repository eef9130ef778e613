/** Small helpers the app's screens share: building elements, reading plan JSON, dates. */
import { WrapsyncError, PlanEditError, type JsonObject } from "@wrapsync/client";
import { formatDate, has, t } from "./i18n";

export type Json = JsonObject[string];
export type Item = JsonObject & { id: string };

export function today(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

export function prettyDate(iso: Json | undefined): string {
  return typeof iso === "string" ? formatDate(iso) : "";
}

export function str(v: Json | undefined): string {
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : "";
}

export function items(v: Json | undefined): Item[] {
  return Array.isArray(v) ? (v.filter((x) => x && typeof x === "object" && !Array.isArray(x)) as Item[]) : [];
}

/** The catalog's name for a schema value (`role.youth`), or the value itself when a newer node sends one the catalogs lack. */
export function label(prefix: string, value: string): string {
  return has(`${prefix}.${value}`) ? t(`${prefix}.${value}`) : value.replace(/_/g, " ");
}

export function active(list: Item[]): Item[] {
  return list.filter((x) => x.status !== "closed" && x.status !== "withdrawn" && x.status !== "left");
}

export type Child = Node | string | null | undefined | false;

/** A tiny element builder: h("button", { class: "big", onclick }, "Save"). */
export function h(tag: string, attrs: Record<string, unknown> = {}, ...children: (Child | Child[])[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (k === "class") el.className = String(v);
    else if (k === "value") (el as HTMLInputElement).value = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return el;
}

/** replaceChildren, skipping the null/false placeholders (which it would print). */
export function replaceKids(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren(...children.flat().filter((c): c is Node | string => c !== null && c !== undefined && c !== false));
}

/**
 * A plain-language message, in the person's language, for what went wrong.
 * The node's problem types each have one (`problem.<type>` in the
 * catalogs); its English `detail` is never shown to the family.
 */
export function describe(e: unknown): string {
  if (e instanceof WrapsyncError) {
    if (e.status === 401 && e.code !== "invalid-credentials") return t("error.expired");
    if (has(`problem.${e.code}`)) return t(`problem.${e.code}`);
    return t("error.status", { status: String(e.status) });
  }
  // A local edit the plan's layout does not allow: the same words as the node's refusal.
  if (e instanceof PlanEditError) return has(`problem.${e.code}`) ? t(`problem.${e.code}`) : t("error.unexpected");
  if (e instanceof TypeError) return t("error.offline");
  if (e instanceof DOMException && e.name === "QuotaExceededError") return t("error.storageFull");
  return t("error.unexpected");
}

