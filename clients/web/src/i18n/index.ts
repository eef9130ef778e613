/**
 * The app's languages. Each language is one catalog, `src/i18n/<code>.json`,
 * that a translator edits: a flat map from key to text, with `{name}`
 * placeholders, or (for text that depends on a count) an object keyed by
 * `Intl.PluralRules` category (`one`, `other`, …). A third language is a new
 * file, nothing else: the build picks up every catalog in this folder, and
 * `test/catalog.test.mjs` fails when a catalog lacks a key English has (or
 * has one English lacks), a placeholder differs, or a node problem type has
 * no message. Dates, numbers and money are formatted by `Intl` for the
 * chosen language, never by hand.
 */

type Entry = string | Record<string, string>;
type Catalog = Record<string, Entry>;

const CATALOGS: Record<string, Catalog> = Object.fromEntries(
  Object.entries(import.meta.glob<Catalog>("./*.json", { eager: true, import: "default" })).map(([path, catalog]) => [
    path.replace(/^.*\/([^/]+)\.json$/, "$1"),
    catalog,
  ]),
);

/** English is the reference catalog: every other one has the same keys. */
export const FALLBACK = "en";

/** The languages the app has, by catalog code, with each one's own name ("Español"). */
export const LANGUAGES: { code: string; name: string }[] = Object.keys(CATALOGS)
  .sort()
  .map((code) => ({ code, name: String(CATALOGS[code]!["language.name"] ?? code) }));

/**
 * Where the person's language choice is kept. For now the phone's local
 * storage (under a key outside the `wrapsync*` namespace, so signing out,
 * which forgets everything of the person's plans, leaves the phone in the
 * language it was in). SEAM (issue 18): the node will keep it with the user
 * so it follows them to another phone; then `load` reads it from the
 * signed-in user's settings and `save` writes it there too.
 */
export const localePreference = {
  key: "lang",
  load(): string | null {
    try {
      return localStorage.getItem(this.key);
    } catch {
      return null;
    }
  },
  save(code: string): void {
    try {
      localStorage.setItem(this.key, code);
    } catch {
      /* storage full or disabled: the choice lasts for this visit */
    }
  },
};

/** The catalog for a BCP 47 tag ("es-MX" → "es"), or null. */
function match(tag: string | null | undefined): string | null {
  if (!tag) return null;
  const lower = tag.toLowerCase();
  if (CATALOGS[lower]) return lower;
  const primary = lower.split("-")[0]!;
  return CATALOGS[primary] ? primary : null;
}

/** The saved choice, else the first of the browser's languages the app has, else English. */
function initialLanguage(): string {
  const saved = match(localePreference.load());
  if (saved) return saved;
  const wanted = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const tag of wanted) {
    const m = match(tag);
    if (m) return m;
  }
  return FALLBACK;
}

let lang = initialLanguage();
let intlLocale = regional(lang);

/** The browser's own regional form of a language (es → es-US) for `Intl`, if it has one. */
function regional(code: string): string {
  const wanted = navigator.languages?.length ? navigator.languages : [navigator.language];
  return wanted.find((tag) => tag && match(tag) === code) ?? code;
}

/** The language on screen (a catalog code). */
export function language(): string {
  return lang;
}

/** Switches language, remembers the choice, and marks the page's language for screen readers. */
export function setLanguage(code: string): void {
  const m = match(code);
  if (!m) return;
  lang = m;
  intlLocale = regional(m);
  localePreference.save(m);
  applyDocumentLanguage();
}

/** `<html lang>` and the title follow the chosen language. */
export function applyDocumentLanguage(): void {
  document.documentElement.lang = lang;
  document.title = t("app.title");
}

function lookup(key: string): Entry | undefined {
  return CATALOGS[lang]?.[key] ?? CATALOGS[FALLBACK]?.[key];
}

function fill(text: string, params: Record<string, string | number>): string {
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const v = params[name];
    return v === undefined ? whole : typeof v === "number" ? formatNumber(v) : v;
  });
}

/** The text for `key` in the chosen language, placeholders filled. */
export function t(key: string, params: Record<string, string | number> = {}): string {
  const entry = lookup(key);
  if (entry === undefined) return key;
  if (typeof entry === "string") return fill(entry, params);
  return fill(entry.other ?? Object.values(entry)[0] ?? key, params);
}

/** Whether the catalogs have `key` (for open-ended keys such as a problem type a newer node answers). */
export function has(key: string): boolean {
  return lookup(key) !== undefined;
}

/** Count-dependent text: the catalog entry's plural form for `count` (`{count}` filled). */
export function tn(key: string, count: number, params: Record<string, string | number> = {}): string {
  const entry = lookup(key);
  if (entry === undefined) return key;
  if (typeof entry === "string") return fill(entry, { ...params, count });
  const form = new Intl.PluralRules(intlLocale).select(count);
  return fill(entry[form] ?? entry.other ?? key, { ...params, count });
}

/** A calendar date (`YYYY-MM-DD`, as plans store them) for the locale: "mar, 8 dic 2026". */
export function formatDate(iso: string): string {
  const [y, m, d] = iso.split("-").map(Number);
  if (!y || !m || !d) return iso;
  return new Intl.DateTimeFormat(intlLocale, { weekday: "short", month: "short", day: "numeric", year: "numeric" }).format(new Date(y, m - 1, d));
}

/** A time of day for the locale ("10:42 AM", "10:42"). */
export function formatTime(ms: number): string {
  return new Intl.DateTimeFormat(intlLocale, { hour: "numeric", minute: "2-digit" }).format(new Date(ms));
}

/** A number for the locale ("1,234.5", "1234,5"). */
export function formatNumber(n: number, options?: Intl.NumberFormatOptions): string {
  return new Intl.NumberFormat(intlLocale, options).format(n);
}

/** Money kept in cents (US dollars: the plans' flexible funds) for the locale. */
export function formatMoney(cents: number): string {
  return new Intl.NumberFormat(intlLocale, { style: "currency", currency: "USD" }).format(cents / 100);
}
