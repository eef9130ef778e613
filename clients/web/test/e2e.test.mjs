// End-to-end: the built app, served with the API proxied to a real node,
// driven in Debian's chromium through playwright-core. Two phones (caregiver
// and youth) edit the same plan offline, come back online, and converge;
// then signing out forgets each phone.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { closeDevices, device } from "./browser.mjs";
import { startNode, api, eventually, PASSWORD } from "./node.mjs";
import { seedPlan } from "./seed.mjs";
import { startServer } from "./serve.mjs";

const ARTIFACTS = fileURLToPath(new URL("../test-artifacts/", import.meta.url));

let node;
let web;

function today() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** A phone: a fresh chromium profile at 390×844. */
const phone = (name) => device(name);

async function signIn(page, username, screenshots = false) {
  await page.goto(`${web.url}/`);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  if (screenshots) await page.screenshot({ path: join(ARTIFACTS, "signin.png") });
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Rivera family plan").waitFor();
  if (screenshots) await page.screenshot({ path: join(ARTIFACTS, "plans.png") });
  await page.getByText("Rivera family plan").click();
  await page.locator('#sync-status[data-state="synced"]').waitFor();
}

/**
 * What a phone keeps of the app, read inside the page: IndexedDB database
 * names and the plan ids in their `docs` stores, local and session storage
 * keys, and service worker cache entries.
 */
function phoneData(page) {
  return page.evaluate(async () => {
    const done = (request) =>
      new Promise((resolve, reject) => {
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    const out = { databases: [], docs: [], local: Object.keys(localStorage), session: Object.keys(sessionStorage), cached: [] };
    for (const { name } of await indexedDB.databases()) {
      out.databases.push(name);
      // Only names databases() listed are opened: opening another would create it.
      const db = await done(indexedDB.open(name));
      try {
        if (db.objectStoreNames.contains("docs")) out.docs.push(...(await done(db.transaction("docs").objectStore("docs").getAllKeys())).map(String));
      } finally {
        db.close();
      }
    }
    for (const name of await caches.keys()) {
      const cache = await caches.open(name);
      for (const request of await cache.keys()) out.cached.push(`${name} ${new URL(request.url).pathname}`);
    }
    return out;
  });
}

/** Checks a phone holds nothing of anyone's plans. */
function assertForgotten(data, what) {
  assert.deepEqual(data.databases, [], `${what}: no IndexedDB database left`);
  assert.deepEqual(data.docs, [], `${what}: no plan document left`);
  assert.deepEqual(data.local.filter((k) => k.startsWith("wrapsync")), [], `${what}: no local storage entries`);
  assert.deepEqual(data.session, [], `${what}: no session storage entries`);
  assert.deepEqual(data.cached.filter((c) => c.includes("/v1/") || !c.startsWith("wrapsync-shell-")), [], `${what}: only the app shell is cached`);
}

before(async () => {
  node = await startNode([
    { username: "fran", role: "facilitator" },
    { username: "carla", role: "caregiver" },
    { username: "mateo", role: "youth" },
  ]);
  web = await startServer({ node: node.url });
});

after(async () => {
  await closeDevices();
  await web?.close();
  await node?.stop();
});

test("two phones edit offline and converge through the node; signing out forgets the phone", { timeout: 180_000 }, async (t) => {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const f of ["failure-carla.png", "failure-mateo.png"]) rmSync(join(ARTIFACTS, f), { force: true });
  // --- seed as the facilitator
  const { fran, id, strategy, outcome, carlaStep, mateoStep } = await seedPlan(node.url);

  // --- two phones sign in and open the plan
  const carla = await phone("carla");
  const mateo = await phone("mateo");
  t.after(() => {
    if (process.exitCode) for (const p of [carla.page, mateo.page]) console.log(p.log.join("\n"));
  });
  try {
    await Promise.all([signIn(carla.page, "carla", true), signIn(mateo.page, "mateo")]);

    // Each sees only their own step under "My next steps".
    await carla.page.locator(`#my-steps [data-step="${carlaStep}"] button`, { hasText: "Mark done" }).waitFor();
    assert.equal(await carla.page.locator(`#my-steps [data-step="${mateoStep}"]`).count(), 0);
    await mateo.page.locator(`#my-steps [data-step="${mateoStep}"]`).waitFor();
    assert.equal(await mateo.page.locator(`#my-steps [data-step="${carlaStep}"]`).count(), 0);
    // Crisis contacts are tap-to-call links.
    assert.equal(await carla.page.locator('#crisis a[href="tel:+17195550142"]').count(), 1);

    // The app shell is installable: manifest + an active service worker.
    for (const p of [carla.page, mateo.page]) {
      const ready = await p.evaluate(() =>
        Promise.race([navigator.serviceWorker.ready.then((r) => !!r.active), new Promise((r) => setTimeout(() => r("no service worker in 15 s"), 15_000))]),
      );
      assert.equal(ready, true);
      assert.equal(await p.locator('link[rel="manifest"]').count(), 1);
    }

    // --- both go offline
    await Promise.all([carla.context.setOffline(true), mateo.context.setOffline(true)]);
    await carla.page.locator('#sync-status[data-state="offline"]').waitFor();
    await mateo.page.locator('#sync-status[data-state="offline"]').waitFor();

    // Carla marks her step done.
    await carla.page.locator(`#my-steps [data-step="${carlaStep}"] button`, { hasText: "Mark done" }).click();
    await carla.page.locator(`#my-steps [data-step="${carlaStep}"].done`).waitFor();
    await carla.page.locator('#sync-status[data-state="pending"]').waitFor();
    await carla.page.screenshot({ path: join(ARTIFACTS, "plan-offline.png") });

    // Mateo adds a progress value and marks his own step done.
    const goal = mateo.page.locator(`#goals [data-outcome="${outcome}"]`);
    await goal.getByRole("button", { name: "+ Add progress" }).click();
    await goal.getByLabel(/Today's number/).fill("4");
    await goal.getByLabel("Note (optional)").fill("Went Mon–Thu");
    await goal.getByRole("button", { name: "Save" }).click();
    await goal.locator(".progress li", { hasText: "4" }).waitFor();
    await mateo.page.locator(`#my-steps [data-step="${mateoStep}"] button`, { hasText: "Mark done" }).click();
    await mateo.page.locator(`#my-steps [data-step="${mateoStep}"].done`).waitFor();
    await mateo.page.locator('#sync-status[data-state="pending"]').waitFor();

    // Saved on the phone (IndexedDB), not on the node yet.
    const before = (await fran.get(`/v1/plans/${id}`)).plan;
    const stepOf = (plan, sid) => plan.strategies.find((s) => s.id === strategy).steps.find((x) => x.id === sid);
    assert.equal(stepOf(before, carlaStep).status, "open");
    assert.equal(stepOf(before, mateoStep).status, "open");
    assert.equal((before.outcomes[0].progress ?? []).length, 0);

    // Offline reload: the app shell comes from the service worker, the plan from IndexedDB.
    await carla.page.reload();
    await carla.page.locator(`#my-steps [data-step="${carlaStep}"].done`).waitFor();
    assert.equal(await carla.page.evaluate(() => !!navigator.serviceWorker.controller), true);
    await carla.page.locator('#sync-status[data-state="pending"]').waitFor();

    // --- both come back online
    await Promise.all([carla.context.setOffline(false), mateo.context.setOffline(false)]);

    // Both phones end up showing both edits.
    for (const p of [carla.page, mateo.page]) {
      await p.locator(`#goals [data-outcome="${outcome}"] .progress li`, { hasText: "4" }).waitFor();
      await p.locator(`#team-steps [data-team-step="${carlaStep}"][data-status="done"]`).waitFor({ state: "attached" });
      await p.locator(`#team-steps [data-team-step="${mateoStep}"][data-status="done"]`).waitFor({ state: "attached" });
      await p.locator('#sync-status[data-state="synced"]').waitFor();
    }
    await carla.page.locator(`#my-steps [data-step="${carlaStep}"].done`).waitFor();
    await mateo.page.locator(`#my-steps [data-step="${mateoStep}"].done`).waitFor();

    // And so does the node.
    const plan = await eventually(
      async () => {
        const p = (await fran.get(`/v1/plans/${id}`)).plan;
        const done = stepOf(p, carlaStep).status === "done" && stepOf(p, mateoStep).status === "done";
        return done && (p.outcomes[0].progress ?? []).length === 1 ? p : null;
      },
      { what: "the node's plan to show both edits" },
    );
    assert.equal(stepOf(plan, carlaStep).done_on, today());
    assert.equal(plan.outcomes[0].progress[0].value, 4);
    assert.equal(plan.outcomes[0].progress[0].note, "Went Mon–Thu");
    const history = await fran.get(`/v1/plans/${id}/history`);
    const users = new Set(history.changes.map((c) => c.user));
    assert.ok(users.has("carla") && users.has("mateo"), `history users: ${[...users]}`);

    // --- the screenshot of the plan screen (caregiver's phone)
    mkdirSync(ARTIFACTS, { recursive: true });
    await carla.page.evaluate(() => window.scrollTo(0, 0));
    await carla.page.screenshot({ path: join(ARTIFACTS, "plan.png"), fullPage: true });
    await carla.page.screenshot({ path: join(ARTIFACTS, "plan-viewport.png") });
    await mateo.page.evaluate(() => window.scrollTo(0, 0));
    await mateo.page.screenshot({ path: join(ARTIFACTS, "plan-youth.png"), fullPage: true });

    // --- signing out forgets the phone (a shared family phone keeps nothing)
    // Carla's phone holds the plan now, so the checks below can fail.
    const carlaBefore = await phoneData(carla.page);
    assert.ok(carlaBefore.databases.includes(`wrapsync:carla@${web.url}`), `databases: ${carlaBefore.databases}`);
    assert.ok(carlaBefore.docs.includes(id), "the plan is in IndexedDB");
    assert.ok(carlaBefore.local.includes("wrapsync.session"), "the session is in local storage");
    const dialogs = [];
    carla.page.on("dialog", (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await carla.page.getByRole("link", { name: "Back to my plans" }).click();
    await carla.page.getByRole("button", { name: "Sign out", exact: true }).click();
    await carla.page.locator("#signed-out").waitFor();
    assert.match(await carla.page.locator("#signed-out").innerText(), /Nothing from your plans is left on this phone/);
    assert.deepEqual(dialogs, [], "everything was synced: no question asked");
    assertForgotten(await phoneData(carla.page), "after sign-out");
    // A reload shows the sign-in screen, and still nothing is kept.
    await carla.page.reload();
    await carla.page.getByLabel("Username").waitFor();
    assert.equal(await carla.page.getByText("Rivera family plan").count(), 0);
    assertForgotten(await phoneData(carla.page), "after sign-out and reload");

    // Mateo, offline with an edit not yet sent, is asked before it is deleted;
    // saying no keeps him signed in with the edit on the phone.
    await mateo.context.setOffline(true);
    await mateo.page.locator('#sync-status[data-state="offline"]').waitFor();
    const goal2 = mateo.page.locator(`#goals [data-outcome="${outcome}"]`);
    await goal2.getByRole("button", { name: "+ Add progress" }).click();
    await goal2.getByLabel(/Today's number/).fill("5");
    await goal2.getByRole("button", { name: "Save" }).click();
    await goal2.locator(".progress li", { hasText: "5" }).waitFor();
    await mateo.page.locator('#sync-status[data-state="pending"]').waitFor();
    await mateo.page.getByRole("link", { name: "Back to my plans" }).click();
    const asked = [];
    const answer = (d) => {
      asked.push(d.message());
      void d.dismiss();
    };
    mateo.page.on("dialog", answer);
    await mateo.page.getByRole("button", { name: "Sign out", exact: true }).click();
    await eventually(async () => asked.length > 0, { what: "the question before deleting unsent edits" });
    await mateo.page.getByRole("button", { name: "Sign out", exact: true, disabled: false }).waitFor();
    assert.equal(asked.length, 1, "asked once before deleting unsent edits");
    assert.match(asked[0], /not been sent/);
    const kept = await phoneData(mateo.page);
    assert.ok(kept.docs.includes(id), "still on the phone after saying no");
    assert.ok(kept.local.includes("wrapsync.session"), "still signed in after saying no");
    // Back online, signing out sends the edit first, then forgets the phone without asking.
    await mateo.context.setOffline(false);
    await mateo.page.getByRole("button", { name: "Sign out", exact: true }).click();
    await mateo.page.locator("#signed-out").waitFor();
    assert.equal(asked.length, 1, "nothing left unsent: not asked again");
    assertForgotten(await phoneData(mateo.page), "mateo after sign-out");
    const withFive = await eventually(
      async () => {
        const p = (await fran.get(`/v1/plans/${id}`)).plan;
        return p.outcomes[0].progress.some((x) => x.value === 5) ? p : null;
      },
      { what: "mateo's last edit to reach the node" },
    );
    assert.equal(withFive.outcomes[0].progress.length, 2);
  } catch (e) {
    for (const p of [carla.page, mateo.page]) console.log(p.log.join("\n"));
    mkdirSync(ARTIFACTS, { recursive: true });
    await carla.page.screenshot({ path: join(ARTIFACTS, "failure-carla.png"), fullPage: true }).catch(() => undefined);
    await mateo.page.screenshot({ path: join(ARTIFACTS, "failure-mateo.png"), fullPage: true }).catch(() => undefined);
    console.log(node.stderr());
    throw e;
  }
});
