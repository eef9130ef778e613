import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as A from "@automerge/automerge";
import { WrapsyncClient, WrapsyncError, MemoryStore, Replica, render, ulid, PlanEditError } from "../src/index.js";
import { FileStore } from "../src/node/index.js";
import { startNode, within, PASSWORD, type TestNode } from "./node.js";

let node: TestNode;

before(async () => {
  node = await startNode([
    { username: "fran", role: "facilitator" },
    { username: "carla", role: "caregiver" },
  ]);
});

after(async () => {
  await node?.stop();
});

async function login(username: string): Promise<WrapsyncClient> {
  const client = new WrapsyncClient({ baseUrl: node.url });
  await client.login(username, PASSWORD);
  return client;
}

/** A plan made by fran with carla on the team; answers ids. */
async function teamPlan(fran: WrapsyncClient, title = "Rivera family plan") {
  const plan = await fran.createPlan({ title, enrolled_on: "2026-01-15" });
  const res = await fran.applyOps(plan.id, [{ op: "add", path: "/team", value: { name: "Carla", role: "caregiver", user: "carla" } }]);
  return { id: plan.id, carlaMember: res.results[0]!.id! };
}

/** The replica and the node agree: same plan JSON, heads = version. */
async function assertInSync(replica: Replica, client: WrapsyncClient, planId: string) {
  const served = await client.getPlan(planId);
  assert.deepEqual(replica.plan(planId), served.plan, "rendered plan equals the node's");
  assert.deepEqual(replica.version(planId), [...served.version].sort(), "heads equal version");
  return served;
}

test("a replica opens a plan, edits offline while the node is edited, and converges", async () => {
  const fran = await login("fran");
  const { id } = await teamPlan(fran);
  const carla = await login("carla");
  const replica = await Replica.create({ client: carla, store: new MemoryStore() });

  const opened = await replica.open(id);
  assert.equal(opened["title"], "Rivera family plan");
  await assertInSync(replica, carla, id);

  // Offline on the phone: vision and a strength (two changes, one actor).
  await replica.setVision(id, "Maya is safe at home and proud of her art");
  const strength = await replica.addStrength(id, { statement: "Grandma lives nearby", about: "family" });
  // Meanwhile, on the node: fran adds a need through /ops.
  const ops = await fran.applyOps(id, [{ op: "add", path: "/needs", value: { domain: "school", statement: "Attend school daily", priority: 2 } }]);
  const need = ops.results[0]!.id!;

  const result = await replica.sync(id);
  assert.ok(result.received, "the node's need came down");
  const served = await assertInSync(replica, carla, id);
  assert.equal(served.plan["vision"], "Maya is safe at home and proud of her art");
  assert.deepEqual(served.plan["strengths"], [{ id: strength, statement: "Grandma lives nearby", about: "family", status: "active" }]);
  assert.deepEqual((served.plan["needs"] as { id: string }[]).map((n) => n.id), [need]);
  assert.equal(served.version.length, 2, "concurrent edits on both sides: two heads, sorted alike");

  // The device's edits are carla's in the history, under one actor.
  const history = await fran.history(id);
  const mine = history.changes.filter((c) => c.actor === replica.actorId);
  assert.equal(mine.length, 2);
  assert.ok(mine.every((c) => c.user === "carla"));
  assert.deepEqual(mine.map((c) => c.summary), ["replace /vision", "add /strengths"]);

  // Nothing left to say: one round, nothing received.
  const again = await replica.sync(id);
  assert.equal(again.received, false);
});

test("interop: a change made with the raw Automerge API syncs in and reads back the same", async () => {
  const fran = await login("fran");
  const { id } = await teamPlan(fran, "Raw API plan");
  const replica = await Replica.create({ client: fran, store: new MemoryStore() });
  await replica.open(id);
  const newId = ulid();
  await replica.change(id, (doc) => {
    doc["strengths"][newId] = {
      statement: new A.ImmutableString("Coach checks in weekly"),
      about: new A.ImmutableString("community"),
      status: new A.ImmutableString("active"),
    };
    doc["mission"] = new A.ImmutableString("Keep Maya at home with her family");
  });
  await replica.sync(id);
  const served = await assertInSync(replica, fran, id);
  assert.deepEqual(served.plan["strengths"], [{ id: newId, statement: "Coach checks in weekly", about: "community", status: "active" }]);
  assert.equal(served.plan["mission"], "Keep Maya at home with her family");

  // A fresh device renders the node's document exactly as the node does.
  const other = await Replica.create({ client: fran, store: new MemoryStore() });
  assert.deepEqual(await other.open(id), served.plan);
});

test("edits made through /ops sync out to the replica; typed helpers for steps and progress", async () => {
  const fran = await login("fran");
  const { id, carlaMember } = await teamPlan(fran, "Ops out plan");
  const carla = await login("carla");
  const replica = await Replica.create({ client: carla, store: new MemoryStore() });
  await replica.open(id);

  const ops = await fran.applyOps(id, [
    { op: "add", path: "/needs", value: { domain: "home", statement: "Calmer evenings" } },
    { op: "replace", path: "/enrollment/phase", value: "planning" },
  ]);
  const need = ops.results[0]!.id!;
  const more = await fran.applyOps(id, [
    { op: "add", path: "/outcomes", value: { statement: "Fewer evening blow-ups", needs: [need], baseline: 5, target: 1 } },
  ]);
  const outcome = more.results[0]!.id!;
  const strat = await fran.applyOps(id, [
    {
      op: "add",
      path: "/strategies",
      value: { description: "Evening routine", kind: "natural", steps: [{ description: "Post the routine on the fridge", responsible: carlaMember }] },
    },
  ]);
  const strategy = strat.results[0]!.id!;

  await replica.sync(id);
  const served = await assertInSync(replica, carla, id);
  assert.equal((replica.plan(id)["enrollment"] as { phase: string }).phase, "planning");
  const step = ((served.plan["strategies"] as any[])[0].steps as any[])[0].id as string;

  // Carla marks her own step done and records progress, offline.
  await replica.markStepDone(id, strategy, step, "2026-02-01");
  const progress = await replica.addProgress(id, outcome, { on: "2026-02-01", value: 3 });
  await replica.sync(id);
  const after = await assertInSync(replica, carla, id);
  const doneStep = (after.plan["strategies"] as any[])[0].steps[0];
  assert.equal(doneStep.done_on, "2026-02-01");
  assert.equal(doneStep.status, "done");
  assert.deepEqual((after.plan["outcomes"] as any[])[0].progress, [{ id: progress, on: "2026-02-01", value: 3, status: "recorded" }]);

  // Local checks catch what the layout forbids, before anything is made.
  await assert.rejects(replica.addProgress(id, outcome, { on: "2026-02-31", value: 1 }), PlanEditError);
  await assert.rejects(replica.edit(id, (p) => p.replace("/enrollment/phase", "holiday")), PlanEditError);
  assert.deepEqual(replica.plan(id), after.plan, "a failed edit changes nothing");
});

test("a refused change is a 422 WrapsyncError and leaves the node's plan unchanged", async () => {
  const fran = await login("fran");
  const { id } = await teamPlan(fran, "Refusal plan");
  const carla = await login("carla");
  const replica = await Replica.create({ client: carla, store: new MemoryStore() });
  await replica.open(id);
  const before = await fran.getPlan(id);

  // A caregiver may not edit the roster: add a member with the raw API.
  await replica.change(id, (doc) => {
    doc["team"][ulid()] = {
      name: new A.ImmutableString("Mallory"),
      role: new A.ImmutableString("facilitator"),
      status: new A.ImmutableString("active"),
    };
  });
  await assert.rejects(replica.sync(id), (e: unknown) => {
    assert.ok(e instanceof WrapsyncError);
    assert.equal(e.status, 422);
    assert.equal(e.type, "/problems/change-forbidden");
    return true;
  });
  const unchanged = await fran.getPlan(id);
  assert.deepEqual(unchanged.plan, before.plan);
  assert.deepEqual(unchanged.version, before.version);

  // Strings as Automerge text objects are not part of the schema either.
  const other = await Replica.create({ client: carla, store: new MemoryStore() });
  await other.open(id);
  await other.change(id, (doc) => {
    doc["vision"] = "collaborative text";
  });
  await assert.rejects(other.sync(id), { status: 422, type: "/problems/schema-violation" });
  assert.deepEqual((await fran.getPlan(id)).plan, before.plan);

  // The way out: drop the local copy and fetch the plan anew.
  const fresh = await replica.discardLocal(id);
  assert.deepEqual(fresh, before.plan);
  await replica.setVision(id, "Back on track");
  await replica.sync(id);
  assert.equal((await fran.getPlan(id)).plan["vision"], "Back on track");
});

test("background sync follows the change feed; a FileStore keeps plan, actor and device", async () => {
  const fran = await login("fran");
  const { id } = await teamPlan(fran, "Background plan");
  const dir = mkdtempSync(join(tmpdir(), "wrapsync-store-"));
  try {
    const carla = await login("carla");
    const replica = await Replica.create({ client: carla, store: new FileStore(dir) });
    await replica.open(id);
    let synced!: () => void;
    const gotIt = new Promise<void>((r) => (synced = r));
    const errors: unknown[] = [];
    const bg = replica.startBackgroundSync({
      intervalMs: 0,
      onError: (e) => errors.push(e),
      onSynced: () => {
        if (replica.plan(id)["mission"] === "Stay together") synced();
      },
    });
    try {
      // Give the stream a moment to connect, then edit on the node.
      await new Promise((r) => setTimeout(r, 300));
      await fran.applyOps(id, [{ op: "replace", path: "/mission", value: "Stay together" }]);
      await within(gotIt, 10_000, () => `no background sync (errors: ${errors.join("; ")})`);
    } finally {
      bg.stop();
      await bg.feed?.done;
    }
    await assertInSync(replica, carla, id);

    // A new replica over the same directory: same actor, device and plan.
    const reopened = await Replica.create({ client: carla, store: new FileStore(dir) });
    assert.equal(reopened.actorId, replica.actorId);
    assert.equal(reopened.deviceId, replica.deviceId);
    await reopened.load(id);
    assert.deepEqual(reopened.plan(id), replica.plan(id));
    await reopened.addStrength(id, { statement: "Family dinners on Sunday" });
    const result = await reopened.sync(id);
    assert.ok(result.rounds <= 3, `few rounds thanks to the kept sync state (${result.rounds})`);
    await assertInSync(reopened, carla, id);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("render matches the node for an empty and a freshly created plan", async () => {
  assert.deepEqual(render(A.init()), {});
  const fran = await login("fran");
  const plan = await fran.createPlan({ title: "Render plan" });
  const replica = await Replica.create({ client: fran, store: new MemoryStore() });
  assert.deepEqual(await replica.open(plan.id), plan.plan);
});

test("offline edits of nested items, references, ratings and numbers are accepted as /ops would make them", async () => {
  const fran = await login("fran");
  const { id, carlaMember } = await teamPlan(fran, "Offline facilitator plan");
  const replica = await Replica.create({ client: fran, store: new MemoryStore() });
  await replica.open(id);
  const ids = await replica.edit(
    id,
    (p) => {
      const need = p.addNeed({ domain: "school", statement: "Attend school daily", priority: 1 });
      const outcome = p.add("/outcomes", { statement: "90% attendance", needs: [need], baseline: 0.5, target: 0.9, due_on: "2026-06-01" })!;
      const strategy = p.add("/strategies", {
        description: "Ride to school with a neighbour",
        kind: "flex",
        owner: carlaMember,
        outcomes: [outcome],
        flex: { category: "transportation", amount_cents: 12_000 },
        steps: [{ description: "Ask the neighbour", responsible: carlaMember, due_on: "2026-02-10" }],
      })!;
      p.add("/cans", { assessed_on: "2026-01-20", ratings: { "ls.school": 2, "cb.adjustment": 1 } });
      p.add("/status", { as_of: "2026-01-31", living: "home", school_days_missed_30d: 4 });
      p.add("/crisis_plan/contacts", { name: "Dr. Lee", phone: "303-555-0100" });
      p.replace("/enrollment/phase", "implementation");
      p.replace(`/needs/${need}/status`, "met");
      p.replace("/youth/birth_date", "2012-03-04");
      p.replace("/youth/birth_date", null);
      return { need, outcome, strategy };
    },
    { message: "offline planning session" },
  );
  await replica.sync(id);
  const served = await assertInSync(replica, fran, id);
  const strategy = (served.plan["strategies"] as any[])[0];
  assert.equal(strategy.id, ids.strategy);
  assert.deepEqual(strategy.flex, { category: "transportation", amount_cents: 12_000 });
  assert.deepEqual(strategy.outcomes, [ids.outcome]);
  assert.equal(strategy.steps[0].status, "open");
  assert.deepEqual((served.plan["cans"] as any[])[0].ratings, { "cb.adjustment": 1, "ls.school": 2 });
  assert.equal((served.plan["outcomes"] as any[])[0].target, 0.9);
  assert.deepEqual(served.plan["youth"], {});
  assert.equal((served.plan["needs"] as any[])[0].status, "met");
});

test("concurrent syncs of one plan share one run and edits made meanwhile go out", async () => {
  const fran = await login("fran");
  const { id } = await teamPlan(fran, "Concurrent sync plan");
  const replica = await Replica.create({ client: fran, store: new MemoryStore() });
  await replica.open(id);
  const first = replica.sync(id);
  await replica.setVision(id, "Made while syncing");
  const second = replica.sync(id);
  assert.equal(first, second, "one shared run");
  await Promise.all([first, second]);
  await assertInSync(replica, fran, id);
  assert.equal((await fran.getPlan(id)).plan["vision"], "Made while syncing");
});

test("syncMany: a cold device takes every plan in one request without loading them; clean copies catch up by heads, edited ones by the protocol", async () => {
  const fran = await login("fran");
  const plans = [];
  for (let i = 0; i < 3; i++) plans.push((await teamPlan(fran, `Batch plan ${i}`)).id);
  const notHers = (await fran.createPlan({ title: "Not carla's" })).id;
  const carla = await login("carla");
  const store = new MemoryStore();
  const replica = await Replica.create({ client: carla, store });

  // Cold: one request for all; nothing is loaded into memory, but every
  // plan is stored and opens as the node renders it.
  const cold = await replica.syncMany([...plans, notHers]);
  const refused = cold.get(notHers);
  assert.ok(refused instanceof WrapsyncError && refused.status === 404, "a plan not hers is refused alone");
  assert.deepEqual(replica.openPlans, []);
  for (const id of plans) {
    const result = cold.get(id);
    assert.ok(result && !(result instanceof Error) && result.received && result.rounds === 1);
    assert.deepEqual(result.version, (await carla.getPlan(id)).version);
  }

  // The node changes all three; carla edits plan 1 offline. Plan 0 stays
  // closed (its stored copy grows by the new changes), plan 1 goes by the
  // protocol (it has changes of its own), plan 2 is open and clean.
  for (const id of plans) await fran.applyOps(id, [{ op: "replace", path: "/mission", value: `Mission of ${id}` }]);
  await replica.setVision(plans[1]!, "Carla's vision, written offline");
  await replica.open(plans[2]!, { sync: false });
  const again = await replica.syncMany(plans);
  for (const id of plans) {
    const result = again.get(id);
    assert.ok(result && !(result instanceof Error) && result.received, `plan ${id} received the node's change`);
  }
  for (const id of plans) {
    await replica.load(id);
    await assertInSync(replica, carla, id);
    assert.equal(replica.plan(id)["mission"], `Mission of ${id}`);
  }
  assert.equal((await carla.getPlan(plans[1]!)).plan["vision"], "Carla's vision, written offline");

  // A fresh replica on the same store (the app restarted) still knows
  // which copies are clean: nothing to exchange but heads.
  const restarted = await Replica.create({ client: carla, store });
  const idle = await restarted.syncMany(plans);
  for (const id of plans) {
    const result = idle.get(id);
    assert.ok(result && !(result instanceof Error) && !result.received && result.rounds === 1);
  }
  assert.deepEqual(restarted.openPlans, []);
});

test("syncMany: a copy whose heads the node does not know falls back to the protocol", async () => {
  const fran = await login("fran");
  const { id } = await teamPlan(fran, "Unknown heads plan");
  const carla = await login("carla");
  const store = new MemoryStore();
  const replica = await Replica.create({ client: carla, store });
  await replica.syncMany([id]);
  // An edit the replica does not know it made (as if an older app wrote
  // the stored copy): the copy looks clean but has heads the node lacks.
  await replica.load(id);
  const doc = A.change(replica.doc(id), (d) => {
    d["vision"] = new A.ImmutableString("Written by an older app");
  });
  await store.putDoc(id, A.save(doc));
  await replica.close(id);
  const fresh = await Replica.create({ client: carla, store });
  await store.putMeta(`synced:${id}`, JSON.stringify({ heads: A.getHeads(doc), dirty: false }));
  const result = (await fresh.syncMany([id])).get(id);
  assert.ok(result && !(result instanceof Error), String(result));
  assert.equal((await carla.getPlan(id)).plan["vision"], "Written by an older app");
  await fresh.load(id);
  await assertInSync(fresh, carla, id);
});
