// The accessibility audit every screen gets: axe-core (WCAG 2.0/2.1 A and
// AA plus best practices), tap targets, landmarks and width, at normal and
// at 200 % text.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const AXE = readFileSync(fileURLToPath(new URL("../node_modules/axe-core/axe.min.js", import.meta.url)), "utf8");
const TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"];
/** Rules that fail at any impact: content in landmarks, one main. */
const ALWAYS = new Set(["region", "landmark-one-main", "landmark-no-duplicate-banner", "landmark-no-duplicate-contentinfo", "landmark-unique"]);

/** axe-core, tap targets, landmarks, then the same at 200 % text: answers the problems found. */
export async function audit(page, screen) {
  const problems = [];
  for (const zoom of [1, 2]) {
    const where = `${screen}${zoom === 2 ? " at 200 % text" : ""}`;
    await page.evaluate((z) => {
      document.documentElement.style.fontSize = z === 1 ? "" : `${18 * z}px`;
    }, zoom);
    if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ content: AXE });
    const result = await page.evaluate((tags) => window.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] }), TAGS);
    for (const v of result.violations) {
      if (v.impact === "serious" || v.impact === "critical" || ALWAYS.has(v.id)) {
        problems.push(`${where}: axe ${v.id} (${v.impact}): ${v.help} → ${v.nodes.map((n) => n.target.join(" ")).slice(0, 4).join(", ")}`);
      }
    }
    const page_ = await page.evaluate(() => {
      const small = [];
      for (const el of document.querySelectorAll("a[href], button, input, select, textarea, summary")) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue; // not rendered (a closed <details>, [hidden])
        if (r.width < 44 || r.height < 44) small.push(`${el.tagName.toLowerCase()} "${(el.getAttribute("aria-label") ?? el.textContent ?? "").trim().slice(0, 30)}" ${Math.round(r.width)}×${Math.round(r.height)}`);
      }
      return {
        small,
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        mains: document.querySelectorAll("main").length,
        banners: document.querySelectorAll("body > #app > header").length,
        language: !!document.querySelector("footer nav button[lang]"),
      };
    });
    for (const s of page_.small) problems.push(`${where}: tap target under 44 px: ${s}`);
    if (page_.overflow > 1) problems.push(`${where}: ${page_.overflow} px wider than the screen`);
    if (page_.mains !== 1 || page_.banners !== 1) problems.push(`${where}: ${page_.mains} main and ${page_.banners} banner landmarks`);
    if (!page_.language) problems.push(`${where}: no language switch`);
  }
  await page.evaluate(() => {
    document.documentElement.style.fontSize = "";
  });
  return problems;
}
