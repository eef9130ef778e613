// The language catalogs (src/i18n/*.json): every language has every key
// English has and no other, with the same {placeholders} and plural forms
// the language needs; every node problem type has a plain-language message;
// every key the app's code asks for exists. No browser, no node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";

const DIR = new URL("../src/i18n/", import.meta.url);
const catalogs = Object.fromEntries(
  readdirSync(DIR)
    .filter((f) => f.endsWith(".json"))
    .map((f) => [f.replace(/\.json$/, ""), JSON.parse(readFileSync(new URL(f, DIR), "utf8"))]),
);
const en = catalogs.en;
const PROBLEM_TYPES = JSON.parse(readFileSync(new URL("../../js/problem-types.json", import.meta.url), "utf8"));

/** The {placeholders} of an entry (a string, or plural forms), sorted and deduplicated. */
function placeholders(entry) {
  const texts = typeof entry === "string" ? [entry] : Object.values(entry);
  return [...new Set(texts.flatMap((s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1])))].sort();
}

test("there are at least English and Spanish catalogs", () => {
  assert.ok(en, "src/i18n/en.json");
  assert.ok(catalogs.es, "src/i18n/es.json");
});

for (const [code, catalog] of Object.entries(catalogs)) {
  test(`catalog ${code}: same keys and placeholders as English, plural forms its language needs, nothing empty`, () => {
    const missing = Object.keys(en).filter((k) => !(k in catalog));
    const extra = Object.keys(catalog).filter((k) => !(k in en));
    assert.deepEqual(missing, [], `${code}.json lacks keys English has`);
    assert.deepEqual(extra, [], `${code}.json has keys English lacks`);
    const categories = new Intl.PluralRules(code).resolvedOptions().pluralCategories;
    for (const [key, entry] of Object.entries(catalog)) {
      assert.ok(typeof entry === "string" || (entry && typeof entry === "object" && !Array.isArray(entry)), `${code}:${key} is text or plural forms`);
      const texts = typeof entry === "string" ? [entry] : Object.values(entry);
      for (const s of texts) assert.ok(typeof s === "string" && s.trim() !== "", `${code}:${key} is not empty`);
      assert.deepEqual(placeholders(entry), placeholders(en[key]), `${code}:${key} has the same {placeholders} as English`);
      assert.equal(typeof entry, typeof en[key], `${code}:${key} is plural forms exactly when English's is`);
      if (typeof entry === "object") {
        assert.deepEqual(Object.keys(entry).filter((c) => !categories.includes(c)), [], `${code}:${key} has only forms ${code} has (${categories})`);
        assert.deepEqual(categories.filter((c) => !(c in entry)), [], `${code}:${key} has every plural form ${code} has`);
      }
    }
    assert.equal(typeof catalog["language.name"], "string", `${code} names itself`);
  });
}

test("every problem type a node answers has a message in every language", () => {
  assert.ok(PROBLEM_TYPES.length > 10);
  for (const [code, catalog] of Object.entries(catalogs)) {
    const missing = PROBLEM_TYPES.filter((p) => !(`problem.${p}` in catalog));
    assert.deepEqual(missing, [], `${code}.json lacks problem messages`);
  }
});

test("every key the app's code asks for is in the catalogs", () => {
  const dir = new URL("../src/", import.meta.url);
  const used = new Set();
  for (const f of readdirSync(dir, { recursive: true }).filter((f) => f.endsWith(".ts"))) {
    const source = readFileSync(new URL(f, dir), "utf8");
    // t("key") and tn("key", n); keys built at run time (`problem.${code}`, label()) are checked above or fall back.
    for (const m of source.matchAll(/(?<![\w.])tn?\("([\w.-]+)"/g)) used.add(m[1]);
  }
  assert.ok(used.size > 50, `found ${used.size} keys in src/`);
  assert.deepEqual([...used].filter((k) => !(k in en)).sort(), [], "keys used in src/ but missing from en.json");
});
