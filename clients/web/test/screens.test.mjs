// Every screen in each language: the language comes from the browser and
// can be switched (and is kept) from every screen; dates and money follow
// it; the node's problems read in plain words in it; the crisis card works
// offline with the county line from the app's config. Then axe-core on
// every screen, in both languages, at a phone and a tablet viewport, at
// normal and 200 % text: no serious or critical violation, content in
// landmarks, every tap target at least 44 × 44 px, nothing wider than the
// screen.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { audit } from "./audit.mjs";
import { ARTIFACTS, closeDevices, device, PHONE, TABLET, withEvidence } from "./browser.mjs";
import { startNode, PASSWORD } from "./node.mjs";
import { inDays, seedPlan } from "./seed.mjs";
import { startServer } from "./serve.mjs";

const COUNTY = { name: "Trillium 24-hour crisis line", phone: "1-877-685-2415" };

let node;
let web;
let seeded;

before(async () => {
  node = await startNode([
    { username: "fran", role: "facilitator" },
    { username: "carla", role: "caregiver" },
    { username: "mateo", role: "youth" },
  ]);
  seeded = await seedPlan(node.url);
  // A flexible-fund request, so the plan shows money.
  await seeded.fran.post(`/v1/plans/${seeded.id}/ops`, {
    ops: Object.entries({ category: "transportation", amount_cents: 125050 }).map(([k, value]) => ({ op: "replace", path: `/strategies/${seeded.strategy}/flex/${k}`, value })),
  });
  web = await startServer({ node: node.url, config: { crisis_line: COUNTY } });
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await closeDevices();
  await web?.close();
  await node?.stop();
});

test("Spanish from the browser's language, switchable and kept; Intl dates and money; problems in plain Spanish; the crisis card offline", { timeout: 120_000 }, async () => {
  const { page, context } = await device("carla-es", { locale: "es-US" });
  await withEvidence({ carla: page }, "es", async () => {
    await page.goto(`${web.url}/`);
    await page.getByLabel("Nombre de usuario").fill("carla");
    assert.equal(await page.evaluate(() => document.documentElement.lang), "es");
    assert.equal(await page.title(), "Plan familiar");
    // A wrong password: the node's problem, in plain Spanish.
    await page.getByLabel("Contraseña").fill("not the password");
    await page.getByRole("button", { name: "Iniciar sesión" }).click();
    await page.getByRole("alert").filter({ hasText: "no coinciden" }).waitFor();

    await page.getByLabel("Contraseña").fill(PASSWORD);
    await page.getByRole("button", { name: "Iniciar sesión" }).click();
    // Family-written content stays as written.
    await page.getByText("Rivera family plan").click();
    await page.locator('#sync-status[data-state="synced"]').filter({ hasText: "Sincronizado con su equipo" }).waitFor();
    await page.getByRole("heading", { name: "Mis pasos a seguir" }).waitFor();
    await page.locator("#my-steps").getByText("Set up the alarm clock and lay out clothes the night before").waitFor();
    // Dates and money by Intl for the browser's Spanish (es-US).
    const { due, money } = await page.evaluate(
      ([iso]) => {
        const [y, m, d] = iso.split("-").map(Number);
        const date = new Intl.DateTimeFormat("es-US", { weekday: "short", month: "short", day: "numeric", year: "numeric" }).format(new Date(y, m - 1, d));
        return { due: date, money: new Intl.NumberFormat("es-US", { style: "currency", currency: "USD" }).format(1250.5) };
      },
      [inDays(3)],
    );
    assert.equal(await page.locator(`#my-steps [data-step="${seeded.carlaStep}"] .step-meta`).innerText().then((s) => s.includes(`Para el ${due}`)), true, `due date in Spanish: ${due}`);
    assert.match(await page.locator("#team-steps .flex").textContent(), new RegExp(`Fondos flexibles: ${money.replace(/[$.]/g, "\\$&")} · transporte`));

    // The crisis card: one tap from the plan, in Spanish, tap-to-call.
    await page.locator("#crisis-link").click();
    await page.getByRole("heading", { name: "Llame ahora" }).waitFor();
    const card = page.locator("#crisis-card");
    const hrefs = async () => card.locator("a").evaluateAll((as) => as.map((a) => a.getAttribute("href")));
    assert.deepEqual(await hrefs(), ["tel:911", "tel:988", "sms:988", "tel:18776852415", "tel:+17195550142", "tel:+17195550199"]);
    await card.getByText("Línea de crisis del condado").waitFor();
    await card.getByText(COUNTY.name, { exact: false }).waitFor();
    await card.getByRole("heading", { name: "Pasos a seguir" }).waitFor();

    // Switched to English from this screen; kept across a reload.
    await page.getByRole("button", { name: "English" }).click();
    await page.getByRole("heading", { name: "Call now" }).waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), "en");
    assert.equal(await page.getByRole("button", { name: "English" }).getAttribute("aria-pressed"), "true");
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("lang")), "en", "the keyboard stays on the language switch");
    await page.reload();
    await page.getByRole("heading", { name: "Call now" }).waitFor();
    await page.getByRole("button", { name: "Español" }).click();
    await page.getByRole("heading", { name: "Llame ahora" }).waitFor();

    // Offline: the card reopens from the phone (shell and config from the service worker, plan from IndexedDB).
    const ready = await page.evaluate(() => Promise.race([navigator.serviceWorker.ready.then((r) => !!r.active), new Promise((r) => setTimeout(() => r(false), 15_000))]));
    assert.equal(ready, true, "service worker active");
    await context.setOffline(true);
    await page.reload();
    await page.getByRole("heading", { name: "Llame ahora" }).waitFor();
    assert.deepEqual(await hrefs(), ["tel:911", "tel:988", "sms:988", "tel:18776852415", "tel:+17195550142", "tel:+17195550199"]);
    await page.locator("#net").filter({ hasText: "No tiene conexión" }).waitFor();
    await page.getByRole("link", { name: "Volver al plan" }).click();
    await page.locator('#sync-status[data-state="offline"]').filter({ hasText: "Sin conexión" }).waitFor();
    await context.setOffline(false);

    // A plan the node does not give this person (withdrawn: 404 today, 410 once consent scopes land): plain Spanish.
    await page.goto(`${web.url}/#/plan/01JZZZZZZZZZZZZZZZZZZZZZZZ`);
    await page.locator('#sync-status[data-state="error"]').filter({ hasText: "ya no está disponible" }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "plan-missing-es.png") });
  });
});

test("the audit finds what it should (a nameless 20 px button, text wider than the screen)", { timeout: 60_000 }, async () => {
  const { page } = await device("axe-canary");
  await page.goto(`${web.url}/`);
  await page.locator("main").waitFor();
  await page.evaluate(() => {
    const b = document.createElement("button");
    b.style.cssText = "width:20px;height:20px;min-height:0;padding:0";
    const wide = document.createElement("p");
    wide.style.cssText = "white-space:nowrap";
    wide.textContent = "x".repeat(120);
    document.querySelector("main").append(b, wide);
  });
  const found = await audit(page, "canary");
  assert.ok(found.some((p) => p.includes("axe button-name (critical)")), found.join("\n"));
  assert.ok(found.some((p) => p.includes("tap target under 44 px: button")), found.join("\n"));
  assert.ok(found.some((p) => p.includes("wider than the screen")), found.join("\n"));
});

for (const [lang, locale, words] of [
  ["en", "en-US", { username: "Username", password: "Password", signIn: "Sign in", signOut: "Sign out", back: "Back to my plans", backToPlan: "Back to the plan", add: "+ Add progress", mismatch: "don't match" }],
  ["es", "es-US", { username: "Nombre de usuario", password: "Contraseña", signIn: "Iniciar sesión", signOut: "Cerrar sesión", back: "Volver a mis planes", backToPlan: "Volver al plan", add: "+ Anotar avance", mismatch: "no coinciden" }],
]) {
  for (const [size, viewport] of [
    ["phone", PHONE],
    ["tablet", TABLET],
  ]) {
    test(`axe-core, tap targets, landmarks and 200 % text on every screen: ${lang}, ${size}`, { timeout: 150_000 }, async () => {
      const name = `${lang}-${size}`;
      const { page, context } = await device(`axe-${name}`, { viewport, locale });
      const problems = [];
      const check = async (screen) => {
        problems.push(...(await audit(page, screen)));
        await page.screenshot({ path: join(ARTIFACTS, `${name}-${screen}.png`), fullPage: true });
      };
      await withEvidence({ page }, `axe-${name}`, async () => {
        await page.goto(`${web.url}/`);
        await page.getByLabel(words.username).waitFor();
        await check("signin");
        await page.getByLabel(words.username).fill("mateo");
        await page.getByLabel(words.password).fill("wrong");
        await page.getByRole("button", { name: words.signIn }).click();
        await page.getByRole("alert").filter({ hasText: words.mismatch }).waitFor();
        await page.locator(".server summary").click();
        await check("signin-error");
        await page.getByLabel(words.password).fill(PASSWORD);
        await page.getByRole("button", { name: words.signIn }).click();
        await page.getByText("Rivera family plan").waitFor();
        await check("plans");
        await page.getByText("Rivera family plan").click();
        await page.locator('#sync-status[data-state="synced"]').waitFor();
        await page.locator("#team-steps summary").click();
        await check("plan");
        await page.getByRole("button", { name: words.add }).click();
        await check("plan-progress-form");
        await context.setOffline(true);
        await page.locator('#sync-status[data-state="offline"]').waitFor();
        await check("plan-offline");
        await page.locator("#crisis-link").click();
        await page.locator("#crisis-card").waitFor();
        await check("crisis-card");
        await context.setOffline(false);
        await page.getByRole("link", { name: words.backToPlan }).click();
        await page.getByRole("link", { name: words.back }).click();
        await page.getByRole("button", { name: words.signOut, exact: true }).click();
        await page.locator("#signed-out").waitFor();
        await check("signed-out");
        assert.deepEqual(problems, [], `accessibility problems (${name}):\n${problems.join("\n")}`);
      });
    });
  }
}
