/**
 * Offline edits on two Rust replicas and one JS replica, reconnected in
 * every order, converge: identical plans and heads everywhere, no edit lost.
 *
 * The Rust replicas are two real `wrapsync-client` CLI processes (each its
 * own `--dir`, device and Automerge actor): fran (facilitator) and carla
 * (caregiver). The JS replica is the SDK's `Replica` on a `MemoryStore`, for
 * dana (family advocate). All three talk to a real node over loopback HTTP.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { WrapsyncClient, MemoryStore, Replica, type JsonObject, type PlanDocument } from "../src/index.js";
import { startNode, BIN, PASSWORD, type TestNode } from "./node.js";

const CLI = process.env.WRAPSYNC_CLIENT_BIN ?? join(dirname(BIN), "wrapsync-client");

let node: TestNode;
let fran: WrapsyncClient;
let dana: WrapsyncClient;
let jsReplica: Replica;
const dirs: string[] = [];
let franDir: string;
let carlaDir: string;

/** Runs the real CLI; answers stdout, or throws with its stderr. */
function cli(dir: string, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      CLI,
      ["--dir", dir, ...args],
      { env: { ...process.env, WRAPSYNC_PASSWORD: PASSWORD }, timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`wrapsync-client ${args.join(" ")} failed (${error.code ?? error.signal}): ${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/** `wrapsync-client sync PLAN`: `<plan>: synced in N rounds, sent X changes, received Y`. */
async function cliSync(dir: string, planId: string): Promise<{ sent: number; received: number }> {
  const out = await cli(dir, "sync", planId);
  const m = /^(\S+): synced in (\d+) rounds, sent (\d+) changes, received (\d+)$/m.exec(out);
  assert.ok(m, `unexpected sync output: ${out}`);
  assert.equal(m[1], planId);
  return { sent: Number(m[3]), received: Number(m[4]) };
}

/** `wrapsync-client edit PLAN --op … --op …` (offline): answers the results (`[{id?}]`). */
async function cliEdit(dir: string, planId: string, ops: object[]): Promise<{ id?: string }[]> {
  const args = ops.flatMap((op) => ["--op", JSON.stringify(op)]);
  return JSON.parse(await cli(dir, "edit", planId, ...args)) as { id?: string }[];
}

/** `wrapsync-client show PLAN --document`: the CLI copy's plan JSON and sorted heads. */
async function cliShow(dir: string, planId: string): Promise<{ plan: JsonObject; heads: string[] }> {
  const shown = JSON.parse(await cli(dir, "show", planId, "--document")) as { id: string; version: string[]; plan: JsonObject };
  assert.equal(shown.id, planId);
  return { plan: shown.plan, heads: shown.version };
}

async function login(username: string): Promise<WrapsyncClient> {
  const client = new WrapsyncClient({ baseUrl: node.url });
  await client.login(username, PASSWORD);
  return client;
}

before(async () => {
  if (!existsSync(CLI)) throw new Error(`wrapsync-client not found at ${CLI} (cargo build -p wrapsync-client --bins, or set WRAPSYNC_CLIENT_BIN)`);
  node = await startNode([
    { username: "fran", role: "facilitator" },
    { username: "carla", role: "caregiver" },
    { username: "dana", role: "family_advocate" },
  ]);
  fran = await login("fran");
  dana = await login("dana");
  jsReplica = await Replica.create({ client: dana, store: new MemoryStore() });
  franDir = mkdtempSync(join(tmpdir(), "wrapsync-cli-fran-"));
  carlaDir = mkdtempSync(join(tmpdir(), "wrapsync-cli-carla-"));
  dirs.push(franDir, carlaDir);
  assert.match(await cli(franDir, "login", "--url", node.url, "--username", "fran"), /logged in as fran/);
  assert.match(await cli(carlaDir, "login", "--url", node.url, "--username", "carla"), /logged in as carla/);
});

after(async () => {
  await node?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

type Name = "fran-cli" | "carla-cli" | "dana-js";

interface State {
  node: PlanDocument;
  /** Each replica's plan JSON and sorted heads. */
  replicas: Record<Name, { plan: JsonObject; heads: string[] }>;
}

async function observe(id: string): Promise<State> {
  const served = await fran.getPlan(id);
  return {
    node: served,
    replicas: {
      "fran-cli": await cliShow(franDir, id),
      "carla-cli": await cliShow(carlaDir, id),
      "dana-js": { plan: jsReplica.plan(id), heads: jsReplica.version(id) },
    },
  };
}

/** Syncs one replica; answers whether anything moved either way. */
async function syncOne(name: Name, id: string): Promise<boolean> {
  if (name === "dana-js") {
    const before = (await fran.getPlan(id)).version.join();
    const result = await jsReplica.sync(id);
    const after = (await fran.getPlan(id)).version.join();
    return result.received || before !== after;
  }
  const { sent, received } = await cliSync(name === "fran-cli" ? franDir : carlaDir, id);
  return sent > 0 || received > 0;
}

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((x, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest]));
}

const ORDERS = permutations<Name>(["fran-cli", "carla-cli", "dana-js"]);
assert.equal(ORDERS.length, 6);

const byId = (list: unknown, id: string) => (list as { id: string }[]).find((x) => x.id === id) as Record<string, any> | undefined;

for (const order of ORDERS) {
  test(`offline edits on two Rust CLIs and one JS replica converge, reconnecting ${order.join(" → ")}`, { timeout: 120_000 }, async () => {
    const tag = order.map((n) => n[0]).join("");
    // --- a fresh plan with the team on it, made online by fran
    const created = await fran.createPlan({ title: `Mixed plan ${tag}`, enrolled_on: "2026-01-15" });
    const id = created.id;
    const team = await fran.applyOps(id, [
      { op: "add", path: "/team", value: { name: "Carla", role: "caregiver", user: "carla" } },
      { op: "add", path: "/team", value: { name: "Dana", role: "family_advocate", support: "formal", user: "dana" } },
      { op: "add", path: "/outcomes", value: { statement: "Calmer evenings", baseline: 5, target: 1 } },
    ]);
    const [carlaMember, , outcome] = team.results.map((r) => r.id!);
    const strat = await fran.applyOps(id, [
      {
        op: "add",
        path: "/strategies",
        value: { description: "Evening routine", kind: "natural", steps: [{ description: "Post the routine on the fridge", responsible: carlaMember }] },
      },
    ]);
    const strategy = strat.results[0]!.id!;
    const step = (byId(strat.plan!["strategies"], strategy)!["steps"] as { id: string }[])[0]!.id;

    // --- all three open it (the CLIs pull it; the JS replica opens and syncs)
    await cliSync(franDir, id);
    await cliSync(carlaDir, id);
    await jsReplica.open(id);
    const start = await observe(id);
    for (const [name, r] of Object.entries(start.replicas)) {
      assert.deepEqual(r.plan, start.node.plan, `${name} opened the node's plan`);
      assert.deepEqual(r.heads, [...start.node.version].sort(), `${name} opened the node's version`);
    }

    // --- offline edits: different fields, /vision set by all three, /mission
    // by two, and collection adds (strengths by all three, needs by two)
    const visions = { fran: `fran's vision ${tag}`, carla: `carla's vision ${tag}`, dana: `dana's vision ${tag}` };
    const missions = { fran: `fran's mission ${tag}`, dana: `dana's mission ${tag}` };
    const f1 = await cliEdit(franDir, id, [
      { op: "replace", path: "/vision", value: visions.fran },
      { op: "replace", path: "/enrollment/phase", value: "planning" },
    ]);
    assert.equal(f1.length, 2);
    const f2 = await cliEdit(franDir, id, [
      { op: "replace", path: "/mission", value: missions.fran },
      { op: "add", path: "/needs", value: { domain: "school", statement: "Attend school daily", priority: 1 } },
      { op: "add", path: "/strengths", value: { statement: `Fran: Maya loves drawing ${tag}`, about: "youth" } },
    ]);
    const [franNeed, franStrength] = [f2[1]!.id!, f2[2]!.id!];

    await cliEdit(carlaDir, id, [{ op: "replace", path: "/vision", value: visions.carla }]);
    const c2 = await cliEdit(carlaDir, id, [
      { op: "replace", path: `/strategies/${strategy}/steps/${step}/done_on`, value: "2026-02-01" },
      { op: "replace", path: `/strategies/${strategy}/steps/${step}/status`, value: "done" },
      { op: "add", path: `/outcomes/${outcome}/progress`, value: { on: "2026-02-01", value: 3, note: "Two calm evenings" } },
      { op: "add", path: "/strengths", value: { statement: `Carla: Grandma lives nearby ${tag}`, about: "family" } },
    ]);
    const [carlaProgress, carlaStrength] = [c2[2]!.id!, c2[3]!.id!];

    await jsReplica.setVision(id, visions.dana);
    const danaIds = await jsReplica.edit(
      id,
      (p) => {
        p.setMission(missions.dana);
        const need = p.addNeed({ domain: "home", statement: "Quieter bedtimes" });
        const contact = p.add("/crisis_plan/contacts", { name: "Mobile crisis team", relationship: "county", phone: "(719) 555-0199" })!;
        const strength = p.addStrength({ statement: `Dana: coach checks in weekly ${tag}`, about: "community" });
        return { need, contact, strength };
      },
      { message: "replace /mission; add /needs; add /crisis_plan/contacts; add /strengths" },
    );

    // Nothing has reached the node: the edits are only on the replicas.
    const offline = await fran.getPlan(id);
    assert.deepEqual(offline.version, start.node.version, "offline edits stayed offline");
    const local = await observe(id);
    assert.equal(new Set(Object.values(local.replicas).map((r) => r.heads.join())).size, 3, "three diverged replicas");

    // --- reconnect one after another in this order
    for (const name of order) await syncOne(name, id);
    // Whoever synced last already holds every edit: the others had pushed theirs.
    const afterOrder = await observe(id);
    const last = order[order.length - 1]!;
    assert.deepEqual(afterOrder.replicas[last].heads, [...afterOrder.node.version].sort(), `${last} (last to sync) has the node's version`);
    assert.deepEqual(afterOrder.replicas[last].plan, afterOrder.node.plan, `${last} (last to sync) has the node's plan`);

    // --- then everyone keeps syncing until a whole pass moves nothing
    let passes = 0;
    for (;;) {
      passes++;
      assert.ok(passes <= 4, `still not quiet after ${passes - 1} passes`);
      let moved = false;
      for (const name of order) moved = (await syncOne(name, id)) || moved;
      if (!moved) break;
    }
    assert.ok(passes >= 2, "the first replicas to sync had something to receive");

    // --- identical everywhere
    const end = await observe(id);
    const version = [...end.node.version].sort();
    for (const [name, r] of Object.entries(end.replicas)) {
      assert.deepEqual(r.plan, end.node.plan, `${name}'s plan equals the node's`);
      assert.deepEqual(r.heads, version, `${name}'s heads equal the node's version`);
    }
    // A fresh JS device renders the same from the node's document.
    const fresh = await Replica.create({ client: dana, store: new MemoryStore() });
    assert.deepEqual(await fresh.open(id), end.node.plan);
    assert.deepEqual(fresh.version(id), version);

    // --- no offline edit was lost
    const plan = end.node.plan as Record<string, any>;
    assert.equal(plan["enrollment"].phase, "planning");
    const strengths = new Map((plan["strengths"] as { id: string; statement: string }[]).map((s) => [s.id, s.statement]));
    assert.equal(strengths.get(franStrength), `Fran: Maya loves drawing ${tag}`);
    assert.equal(strengths.get(carlaStrength), `Carla: Grandma lives nearby ${tag}`);
    assert.equal(strengths.get(danaIds.strength), `Dana: coach checks in weekly ${tag}`);
    assert.equal(strengths.size, 3);
    assert.deepEqual(
      (plan["needs"] as { id: string }[]).map((n) => n.id).sort(),
      [franNeed, danaIds.need].sort(),
      "both concurrently added needs",
    );
    assert.equal(byId(plan["needs"], franNeed)!["statement"], "Attend school daily");
    assert.equal(byId(plan["needs"], danaIds.need)!["statement"], "Quieter bedtimes");
    const doneStep = byId(byId(plan["strategies"], strategy)!["steps"], step)!;
    assert.equal(doneStep["done_on"], "2026-02-01");
    assert.equal(doneStep["status"], "done");
    assert.deepEqual(byId(plan["outcomes"], outcome)!["progress"], [
      { id: carlaProgress, on: "2026-02-01", value: 3, note: "Two calm evenings", status: "recorded" },
    ]);
    assert.deepEqual(byId(plan["crisis_plan"].contacts, danaIds.contact), {
      id: danaIds.contact,
      name: "Mobile crisis team",
      relationship: "county",
      phone: "+17195550199",
      status: "active",
    });
    // The concurrently set fields show one value, and keep every value (and who set it) as a conflict.
    assert.ok(Object.values(visions).includes(plan["vision"]), `vision ${plan["vision"]}`);
    assert.ok(Object.values(missions).includes(plan["mission"]), `mission ${plan["mission"]}`);
    const conflicts = new Map((end.node.conflicts ?? []).map((c) => [c.path, c.values]));
    const seen = (path: string) =>
      (conflicts.get(path) ?? []).map((v) => `${v.user}:${v.value}`).sort();
    assert.deepEqual(seen("/vision"), Object.entries(visions).map(([u, v]) => `${u}:${v}`).sort(), "all three visions kept");
    assert.equal(conflicts.get("/vision")![0]!.value, plan["vision"], "the shown vision first");
    assert.deepEqual(seen("/mission"), Object.entries(missions).map(([u, v]) => `${u}:${v}`).sort(), "both missions kept");

    // The history says truthfully who made each offline change.
    const history = await fran.history(id);
    const users = new Set(history.changes.map((c) => c.user));
    for (const u of ["fran", "carla", "dana"]) assert.ok(users.has(u), `history has ${u}'s changes`);
    assert.ok(history.changes.some((c) => c.user === "dana" && c.actor === jsReplica.actorId));
  });
}
