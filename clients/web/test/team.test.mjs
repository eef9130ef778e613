// The team's side of the app against a real node: a facilitator runs a team
// meeting on a tablet offline while a Spanish-speaking caregiver marks a
// step done on her phone offline; both reconnect and both screens show
// both edits, synced, each in its own language; the vision both changed
// apart is shown as a conflict with who wrote each value, and resolved; a
// supervisor approves the flexible funds the meeting asked for and the
// facilitator sees it; the supervisor reads the plan's audit trail. Then
// axe-core on every team screen in both languages at both sizes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { audit } from "./audit.mjs";
import { ARTIFACTS, closeDevices, device, PHONE, TABLET, withEvidence } from "./browser.mjs";
import { api, eventually, startNode, PASSWORD } from "./node.mjs";
import { inDays, seedPlan } from "./seed.mjs";
import { startServer } from "./serve.mjs";

let node;
let web;
let seeded;

before(async () => {
  node = await startNode([
    { username: "fran", role: "facilitator" },
    { username: "carla", role: "caregiver" },
    { username: "mateo", role: "youth" },
    { username: "sam", role: "supervisor" },
  ]);
  seeded = await seedPlan(node.url);
  web = await startServer({ node: node.url });
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await closeDevices();
  await web?.close();
  await node?.stop();
});

async function signIn(page, username, words = { username: "Username", password: "Password", signIn: "Sign in" }) {
  await page.goto(`${web.url}/`);
  await page.getByLabel(words.username).fill(username);
  await page.getByLabel(words.password).fill(PASSWORD);
  await page.getByRole("button", { name: words.signIn }).click();
}

/** Opens a folded form, fills it (label → value; selects by option text), saves. */
async function fillForm(page, id, fields, save = "Save") {
  const form = page.locator(`#${id}`);
  if (!(await form.evaluate((d) => d.open))) await form.locator("summary").click();
  for (const [label, value] of Object.entries(fields)) {
    const field = form.getByLabel(label, { exact: true });
    if ((await field.evaluate((el) => el.tagName)) === "SELECT") await field.selectOption({ label: value });
    else await field.fill(value);
  }
  await form.getByRole("button", { name: save }).click();
  // Saved: the form folds away (and stays folded when the screen is redrawn).
  await page.locator(`#${id}:not([open])`).waitFor();
}

test("a team meeting offline on a tablet and a caregiver's phone offline in Spanish merge; a conflict is resolved; a supervisor approves flexible funds", { timeout: 240_000 }, async () => {
  const { page: fran, context: franCtx } = await device("fran-tablet", { viewport: TABLET });
  const { page: carla, context: carlaCtx } = await device("carla-phone", { viewport: PHONE, locale: "es-US" });
  const { page: sam } = await device("sam-tablet", { viewport: TABLET });
  await withEvidence({ fran, carla, sam }, "team", async () => {
    const id = seeded.id;
    // The facilitator's caseload: phase, next meeting, nothing overdue, nothing unsynced.
    await signIn(fran, "fran");
    const row = fran.locator(`.case[data-plan="${id}"]`);
    await row.getByText("Rivera family plan").waitFor();
    await row.getByText(/Next meeting/).waitFor();
    await row.getByText("0 steps overdue").waitFor();
    await fran.getByRole("link", { name: "+ Start a plan" }).waitFor();
    assert.equal(await row.getByText("not synced yet").count(), 0);
    await row.getByRole("link", { name: "Team meeting" }).click();
    await fran.locator("#meeting-mode").waitFor();
    await fran.locator('#sync-status[data-state="synced"]').waitFor();

    // The caregiver's phone, in Spanish.
    await signIn(carla, "carla", { username: "Nombre de usuario", password: "Contraseña", signIn: "Iniciar sesión" });
    await carla.getByText("Rivera family plan").click();
    await carla.locator('#sync-status[data-state="synced"]').filter({ hasText: "Sincronizado con su equipo" }).waitFor();
    // A caregiver is offered neither meeting mode nor the audit trail.
    assert.equal(await carla.locator("#meeting-link, #audit-link").count(), 0);

    // Both lose the network.
    await franCtx.setOffline(true);
    await carlaCtx.setOffline(true);
    await fran.locator('#sync-status[data-state="offline"]').waitFor();
    await carla.locator('#sync-status[data-state="offline"]').waitFor();

    // The meeting, offline on the tablet.
    await fran.getByRole("button", { name: "Start today's meeting" }).click();
    for (const name of ["Carla Rivera", "Mateo Rivera"]) {
      await fran.locator("#today .toggle").filter({ hasText: name }).click();
      await fran.locator("#today .toggle[aria-pressed=true]").filter({ hasText: name }).waitFor();
    }
    await fillForm(fran, "add-strength", { Strength: "Mateo is great with his little cousins", "Whose strength": "the youth" });
    await fillForm(fran, "add-need", { "Life area": "School", Need: "Get to school on time without a ride from Mom" });
    await fillForm(fran, "add-outcome", { Goal: "Mateo rides the bus on his own", "Measured by": "bus rides a week", "Starting number": "1", "Goal number": "4", "For the need": "Get to school on time without a ride from Mom" });
    await fillForm(fran, "add-strategy", {
      Strategy: "Bus pass for the school year",
      "Kind of support": "Flexible funds",
      "Who leads it": "Carla Rivera",
      "For the goal": "Mateo rides the bus on his own",
      "Flexible funds for": "transportation",
      "Flexible funds amount (dollars)": "45",
    });
    await fillForm(fran, "add-step", { Strategy: "Bus pass for the school year", "Action step": "Buy the bus pass at the county office", "Who does it": "Carla Rivera", "Due date": inDays(7) });
    await fillForm(fran, "add-trigger", { "Warning sign": "Missing the bus and feeling embarrassed" });
    const decisions = fran.locator('details.add[id^="edit--meetings-"]');
    await decisions.locator("summary").click();
    await decisions.getByLabel("Decisions").fill("Carla buys the bus pass; Mateo practises the route with Aunt Rosa.");
    await decisions.getByRole("button", { name: "Save" }).click();
    await fran.locator("#decisions").filter({ hasText: "Carla buys the bus pass" }).waitFor();
    await fillForm(fran, "set-next", { "Next meeting date": inDays(21) });
    const vision = fran.locator("#m-vision details.add");
    await vision.locator("summary").click();
    await vision.getByLabel("Our family vision").fill("Mateo gets himself to school and is proud of it.");
    await vision.getByRole("button", { name: "Save" }).click();
    await fran.locator('#sync-status[data-state="pending"]').filter({ hasText: "Saved on this phone" }).waitFor();

    // Meanwhile, offline on the phone: the step done, and the vision in her words.
    await carla.locator(`[data-step="${seeded.carlaStep}"]`).getByRole("button", { name: "Marcar como hecho" }).click();
    await carla.locator(`[data-step="${seeded.carlaStep}"].done`).waitFor();
    const carlaVision = carla.locator("#vision details.add");
    await carlaVision.locator("summary").click();
    await carlaVision.getByLabel("La visión de nuestra familia").fill("Maya y Mateo están bien en casa y en la escuela.");
    await carlaVision.getByRole("button", { name: "Guardar" }).click();
    await carla.locator('#sync-status[data-state="pending"]').filter({ hasText: "Guardado en este teléfono" }).waitFor();

    // The node has neither yet.
    const franApi = await api(node.url).login("fran");
    const before = (await franApi.get(`/v1/plans/${id}`)).plan;
    assert.equal(Object.keys(before.strengths).length, 0);
    assert.equal(byId(byId(before.strategies, seeded.strategy).steps, seeded.carlaStep).status, "open");

    // Both come back.
    await franCtx.setOffline(false);
    await carlaCtx.setOffline(false);
    await fran.locator('#sync-status[data-state="synced"]').filter({ hasText: "Synced with your team" }).waitFor();
    await carla.locator('#sync-status[data-state="synced"]').filter({ hasText: "Sincronizado con su equipo" }).waitFor();
    // Each screen has the other's edits.
    await fran.locator(`[data-team-step="${seeded.carlaStep}"][data-status="done"]`).waitFor();
    await carla.locator("#goals").getByText("Mateo rides the bus on his own").waitFor();
    await carla.locator("#crisis").getByText("Missing the bus and feeling embarrassed").waitFor();
    await carla.locator("#team-steps summary").click();
    await carla.locator("#team-steps").getByText("Buy the bus pass at the county office").waitFor();
    await carla.locator("#meeting .big-date").filter({ hasText: await carla.evaluate(([iso]) => {
      const [y, m, d] = iso.split("-").map(Number);
      return new Intl.DateTimeFormat("es-US", { weekday: "short", month: "short", day: "numeric", year: "numeric" }).format(new Date(y, m - 1, d));
    }, [inDays(21)]) }).waitFor();

    // The vision both changed apart: a conflict on both screens, each value with who wrote it.
    for (const [page, by] of [[fran, "Written by"], [carla, "Escrito por"]]) {
      const card = page.locator("#conflicts");
      await card.waitFor();
      await card.getByText("Mateo gets himself to school and is proud of it.").waitFor();
      await card.getByText("Maya y Mateo están bien en casa y en la escuela.").waitFor();
      await card.getByText(`${by} Carla Rivera`).waitFor();
      assert.equal(await card.locator("li").filter({ hasText: "Mateo gets himself to school" }).getByText(new RegExp(`${by} \\S`)).count(), 1);
    }
    await fran.screenshot({ path: join(ARTIFACTS, "meeting-conflict.png"), fullPage: true });
    await carla.screenshot({ path: join(ARTIFACTS, "plan-conflict-es.png"), fullPage: true });
    // The caregiver keeps the facilitator's words; both screens settle on them.
    await carla.locator("#conflicts li").filter({ hasText: "Mateo gets himself to school" }).getByRole("button").click();
    await carla.locator("#vision .quote").filter({ hasText: "Mateo gets himself to school and is proud of it." }).waitFor();
    await eventually(async () => (await carla.locator("#conflicts").count()) === 0 && (await fran.locator("#conflicts").count()) === 0, { what: "the conflict gone from both screens" });
    await fran.locator("#m-vision .quote").filter({ hasText: "Mateo gets himself to school and is proud of it." }).waitFor();
    await carla.locator('#sync-status[data-state="synced"]').waitFor();
    const settled = await eventually(async () => {
      const doc = await franApi.get(`/v1/plans/${id}`);
      return !(doc.conflicts ?? []).length && doc;
    }, { what: "no conflict on the node" });
    assert.equal(settled.plan.vision, "Mateo gets himself to school and is proud of it.");
    const meeting = Object.values(settled.plan.meetings).find((m) => m.held_on === inDays(0));
    assert.deepEqual([...meeting.attendees].sort(), [seeded.carlaMember, seeded.mateoMember].sort());
    assert.equal(meeting.next_on, inDays(21));
    const bus = Object.values(settled.plan.strategies).find((s) => s.description === "Bus pass for the school year");
    assert.deepEqual(bus.flex, { category: "transportation", amount_cents: 4500 });
    assert.equal(Object.values(bus.steps)[0].responsible, seeded.carlaMember);
    assert.equal(byId(byId(settled.plan.strategies, seeded.strategy).steps, seeded.carlaStep).status, "done");

    // The supervisor: caseloads by facilitator, the request waiting, approved.
    await signIn(sam, "sam");
    await sam.getByRole("heading", { name: "Caseloads" }).waitFor();
    await sam.locator(".facilitator").filter({ hasText: "Rivera family plan" }).getByText("1 plan").waitFor();
    await sam.getByRole("link", { name: "Flexible funds: 1 to approve" }).click();
    const request = sam.locator(`.flex-request[data-strategy="${bus.id}"]`);
    await request.getByText("$45.00 · transportation").waitFor();
    await request.getByRole("button", { name: "Approve: Bus pass for the school year" }).click();
    await sam.locator(`#decided [data-strategy="${bus.id}"][data-status="approved"]`).getByText("by sam").waitFor();
    await eventually(async () => byId((await franApi.get(`/v1/plans/${id}`)).plan.strategies, bus.id).flex.status === "approved", { what: "the approval on the node" });
    // The facilitator's tablet shows it, through the change feed.
    await fran.locator(`[data-strategy="${bus.id}"] .flex`).filter({ hasText: "approved" }).waitFor();
    await fran.screenshot({ path: join(ARTIFACTS, "meeting-approved.png"), fullPage: true });
    // The facilitator cannot approve: the node says so too.
    await assert.rejects(franApi.post(`/v1/plans/${id}/ops`, { ops: [{ op: "replace", path: `/strategies/${bus.id}/flex/status`, value: "denied" }] }), /422|403/);

    // The plan's audit trail, for the supervisor.
    await sam.getByRole("link", { name: "Back to my plans" }).click();
    await sam.locator(`.case[data-plan="${id}"] .plan-link`).click();
    await sam.getByRole("link", { name: "Audit trail" }).click();
    await sam.locator("#audit-trail li").first().waitFor();
    await sam.locator("#audit-trail").getByText("fran", { exact: true }).first().waitFor();
    await sam.locator("#audit-trail").getByText("carla", { exact: true }).first().waitFor();
    await sam.screenshot({ path: join(ARTIFACTS, "audit.png"), fullPage: true });

    // The facilitator starts a plan: it opens in meeting mode, on her team, and joins her caseload.
    await fran.goto(`${web.url}/#/new`);
    await fran.getByLabel("Plan name").fill("Nguyen family plan");
    await fran.getByRole("button", { name: "Start the plan" }).click();
    await fran.locator("#meeting-mode .plan-name").filter({ hasText: "Nguyen family plan" }).waitFor();
    await fran.getByRole("button", { name: "Start today's meeting" }).click();
    await fran.locator("#today .toggle").first().waitFor();
    await fran.locator('#sync-status[data-state="synced"]').waitFor();
    await fran.getByRole("link", { name: "Back to the plan" }).click();
    await fran.getByRole("link", { name: "Back to my plans" }).click();
    await fran.locator(".case").filter({ hasText: "Nguyen family plan" }).getByText("Next meeting", { exact: false }).or(fran.locator(".case").filter({ hasText: "Nguyen family plan" }).getByText("No meeting scheduled")).waitFor();
    assert.equal(await fran.locator(".case").count(), 2);
  });
});

let round = 0;
for (const [lang, locale, words] of [
  ["en", "en-US", { username: "Username", password: "Password", signIn: "Sign in", meeting: "Team meeting", newPlan: "+ Start a plan", approvals: /^Flexible funds: / , audit: "Audit trail", back: "Back to my plans", due: "Due date" }],
  ["es", "es-US", { username: "Nombre de usuario", password: "Contraseña", signIn: "Iniciar sesión", meeting: "Reunión del equipo", newPlan: "+ Empezar un plan", approvals: /^Fondos flexibles: /, audit: "Registro de auditoría", back: "Volver a mis planes", due: "Fecha límite" }],
]) {
  for (const [size, viewport] of [
    ["phone", PHONE],
    ["tablet", TABLET],
  ]) {
    test(`axe-core, tap targets, landmarks and 200 % text on every team screen: ${lang}, ${size}`, { timeout: 180_000 }, async () => {
      // A conflict to show (two edits of the vision from the same version) and a request waiting.
      const franApi = await api(node.url).login("fran");
      const carlaApi = await api(node.url).login("carla");
      const { version } = await franApi.get(`/v1/plans/${seeded.id}`);
      await franApi.post(`/v1/plans/${seeded.id}/ops`, { base_version: version, ops: [{ op: "replace", path: "/vision", value: `Vision by Fran (${name(lang, size)})` }] });
      await carlaApi.post(`/v1/plans/${seeded.id}/ops`, { base_version: version, ops: [{ op: "replace", path: "/vision", value: `Visión de Carla (${name(lang, size)})` }] });
      // And one inside an item: a step's due date, set apart by the facilitator and a supervisor
      // (dates new to each run: the node skips a replace with the value the field already has).
      round += 1;
      const samApi = await api(node.url).login("sam");
      const due = `/strategies/${seeded.strategy}/steps/${seeded.carlaStep}/due_on`;
      await franApi.post(`/v1/plans/${seeded.id}/ops`, { base_version: version, ops: [{ op: "replace", path: due, value: inDays(10 + round) }] });
      await samApi.post(`/v1/plans/${seeded.id}/ops`, { base_version: version, ops: [{ op: "replace", path: due, value: inDays(30 + round) }] });
      await franApi.post(`/v1/plans/${seeded.id}/ops`, { ops: [{ op: "add", path: "/strategies", value: { description: `Summer camp (${name(lang, size)})`, kind: "flex", flex: { category: "recreation", amount_cents: 30000 } } }] });

      const n = name(lang, size);
      const { page: fran, context } = await device(`axe-fran-${n}`, { viewport, locale });
      const { page: sam } = await device(`axe-sam-${n}`, { viewport, locale });
      const problems = [];
      const check = async (page, screen) => {
        problems.push(...(await audit(page, screen)));
        await page.screenshot({ path: join(ARTIFACTS, `${n}-${screen}.png`), fullPage: true });
      };
      await withEvidence({ fran, sam }, `axe-team-${n}`, async () => {
        await signIn(fran, "fran", words);
        await fran.locator(`.case[data-plan="${seeded.id}"]`).waitFor();
        await check(fran, "caseload");
        await fran.getByRole("link", { name: words.newPlan }).click();
        await fran.locator("#new-plan-form").waitFor();
        await check(fran, "new-plan");
        await fran.getByRole("link", { name: words.back }).click();
        await fran.locator(`.case[data-plan="${seeded.id}"] .plan-link`).click();
        await fran.locator("#conflicts").waitFor();
        // Named by the item and the field, in the person's language.
        await fran.locator(`#conflicts [data-path$="/steps/${seeded.carlaStep}/due_on"] h3`).filter({ hasText: `${words.due}: Set up the alarm clock` }).waitFor();
        await check(fran, "plan-staff-conflict");
        await fran.getByRole("link", { name: words.meeting }).click();
        await fran.locator("#meeting-mode #conflicts").waitFor();
        await fran.evaluate(() => document.querySelectorAll("details.add").forEach((d) => (d.open = true)));
        await check(fran, "meeting");
        await context.setOffline(true);
        await fran.locator('#sync-status[data-state="offline"]').waitFor();
        await check(fran, "meeting-offline");
        await context.setOffline(false);

        await signIn(sam, "sam", words);
        await sam.locator(".facilitator").first().waitFor();
        await check(sam, "overview");
        await sam.getByRole("link", { name: words.approvals }).click();
        await sam.locator(".flex-request").first().waitFor();
        await check(sam, "approvals");
        await sam.goto(`${web.url}/#/plan/${seeded.id}/audit`);
        await sam.locator("#audit-trail li").first().waitFor();
        await check(sam, "audit");
        assert.deepEqual(problems, [], `accessibility problems (${n}):\n${problems.join("\n")}`);
      });
    });
  }
}

/** A plan collection's item (the node renders collections as lists of items with ids). */
function byId(list, id) {
  return list.find((x) => x.id === id);
}

function name(lang, size) {
  return `${lang}-${size}`;
}
