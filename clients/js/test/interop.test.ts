/**
 * Interop with a plain Automerge client: a plan document built from scratch
 * and edited only with `@automerge/automerge` (no SDK replica or editor) is
 * imported into the node (`POST /v1/plans`, `application/octet-stream`),
 * synced with raw sync messages (`POST /v1/plans/{id}/sync`), and reads back
 * as the same plan; edits made through `/ops` sync out to it.
 *
 * The document side uses only the Automerge API and `fetch`. The SDK's
 * client is used only to log in. The SDK's `render` turns the raw document
 * into the node's plan JSON for the comparisons: rendering is not what is
 * under test here (test/replica.test.ts checks it against the node).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as A from "@automerge/automerge";
import { WrapsyncClient, render, type JsonObject, type PlanDocument, type PlanList } from "../src/index.js";
import { startNode, PASSWORD, type TestNode } from "./node.js";

let node: TestNode;
const tokens = new Map<string, string>();

before(async () => {
  node = await startNode([
    { username: "fran", role: "facilitator" },
    { username: "carla", role: "caregiver" },
    { username: "sam", role: "supervisor" },
  ]);
  for (const username of ["fran", "carla", "sam"]) {
    const client = new WrapsyncClient({ baseUrl: node.url });
    tokens.set(username, (await client.login(username, PASSWORD)).access_token);
  }
});

after(async () => {
  await node?.stop();
});

// ---------------------------------------------------------------- raw HTTP

function auth(user: string): Record<string, string> {
  const token = tokens.get(user);
  assert.ok(token, `logged in as ${user}`);
  return { authorization: `Bearer ${token}` };
}

async function call(user: string, method: string, path: string, body?: unknown): Promise<Response> {
  const headers = auth(user);
  if (body !== undefined) headers["content-type"] = "application/json";
  return fetch(`${node.url}${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body) });
}

async function json<T>(response: Response, status: number): Promise<T> {
  const text = await response.text();
  assert.equal(response.status, status, `HTTP ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

/** `POST /v1/plans` with a saved Automerge document. */
function importPlan(user: string, bytes: Uint8Array): Promise<Response> {
  return fetch(`${node.url}/v1/plans`, {
    method: "POST",
    headers: { ...auth(user), "content-type": "application/octet-stream" },
    body: bytes as Uint8Array<ArrayBuffer>,
  });
}

/** Every plan `user` may list (supervisors: every plan of the node). */
async function planIds(user: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const page: PlanList = await json<PlanList>(await call(user, "GET", `/v1/plans?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`), 200);
    ids.push(...page.plans.map((p) => p.id));
    cursor = page.next;
  } while (cursor);
  return ids.sort();
}

/**
 * Rounds of the Automerge sync protocol with the node, raw bytes each way,
 * until neither side has anything to say. A raw body cannot say "nothing
 * from me", so a round where the document has no message but the node
 * spoke last asks with the JSON form's `{"message": null}`.
 */
async function rawSync(user: string, device: string, planId: string, doc: A.Doc<any>, state: A.SyncState) {
  const url = `${node.url}/v1/plans/${planId}/sync`;
  let nodeQuiet = false;
  let received = false;
  for (let rounds = 1; rounds <= 20; rounds++) {
    const [nextState, message] = A.generateSyncMessage(doc, state);
    state = nextState;
    if (!message && nodeQuiet) return { doc, state, rounds, received };
    let reply: Uint8Array | null;
    if (message) {
      const response = await fetch(url, {
        method: "POST",
        headers: { ...auth(user), "device-id": device, "content-type": "application/octet-stream" },
        body: message as Uint8Array<ArrayBuffer>,
      });
      if (response.status === 204) {
        reply = null;
      } else {
        assert.equal(response.status, 200, `sync: HTTP ${response.status}: ${await response.clone().text()}`);
        assert.equal(response.headers.get("content-type"), "application/octet-stream");
        const bytes = new Uint8Array(await response.arrayBuffer());
        reply = bytes.length ? bytes : null;
      }
    } else {
      const response = await fetch(url, {
        method: "POST",
        headers: { ...auth(user), "device-id": device, "content-type": "application/json" },
        body: JSON.stringify({ message: null }),
      });
      const body = await json<{ message: string | null }>(response, 200);
      reply = body.message ? new Uint8Array(Buffer.from(body.message, "base64")) : null;
    }
    nodeQuiet = reply === null;
    if (reply) {
      const before = A.getHeads(doc).join();
      [doc, state] = A.receiveSyncMessage(doc, state, reply);
      if (A.getHeads(doc).join() !== before) received = true;
    }
    if (!message && !reply) return { doc, state, rounds, received };
  }
  throw new Error("sync did not become quiet in 20 rounds");
}

// ---------------------------------------------------------------- building a plan by hand

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
let lastUlid = "";
/** A ULID (time + randomness), monotonic within this process. */
function ulid(): string {
  let id: string;
  do {
    let t = Date.now();
    let time = "";
    for (let i = 0; i < 10; i++) {
      time = CROCKFORD[t % 32] + time;
      t = Math.floor(t / 32);
    }
    const random = Array.from(randomBytes(16), (b) => CROCKFORD[b % 32]).join("");
    id = time + random;
  } while (id <= lastUlid);
  lastUlid = id;
  return id;
}

/** Plan strings are Automerge scalar strings, never text objects (as the node writes them). */
const S = (s: string) => new A.ImmutableString(s);

/**
 * The skeleton the node's `init_plan` makes: `schema_version` (an int),
 * the title, `enrollment.phase = "engagement"`, and an empty map for every
 * struct and collection (nested structs' collections too), so that later
 * offline edits never race to create a container.
 */
function skeleton(d: any, title: string | null) {
  d.schema_version = new A.Int(1);
  if (title !== null) d.title = S(title);
  d.youth = {};
  d.enrollment = { phase: S("engagement") };
  d.team = {};
  d.strengths = {};
  d.needs = {};
  d.outcomes = {};
  d.strategies = {};
  d.crisis_plan = { triggers: {}, response_steps: {}, contacts: {} };
  d.meetings = {};
  d.cans = {};
  d.status = {};
  d.transition = {};
  d.consents = {};
}

/** A roster entry as `/ops` `add /team` makes it (status defaults to active). */
function member(name: string, role: string, user: string) {
  return { name: S(name), role: S(role), support: S("formal"), user: S(user), status: S("active") };
}

function newDoc(): A.Doc<any> {
  return A.init<any>({ actor: randomBytes(16).toString("hex") });
}

function from(title: string | null, fill?: (d: any) => void): A.Doc<any> {
  return A.change(newDoc(), { message: "create plan", time: Math.floor(Date.now() / 1000) }, (d) => {
    skeleton(d, title);
    fill?.(d);
  });
}

const heads = (doc: A.Doc<unknown>) => [...A.getHeads(doc)].sort();

async function served(user: string, id: string): Promise<PlanDocument> {
  return json<PlanDocument>(await call(user, "GET", `/v1/plans/${id}`), 200);
}

// ---------------------------------------------------------------- tests

test("a plan made only with @automerge/automerge imports, syncs both ways, and reads back the same", async () => {
  // --- from scratch, offline: the skeleton and fran (the creator) on the roster, then a second change
  const franMember = ulid();
  let doc = from("Okafor family plan", (d) => {
    d.team[franMember] = member("Fran", "facilitator", "fran");
    d.enrollment.enrolled_on = S("2026-03-02");
  });
  const strength = ulid();
  doc = A.change(doc, { message: "add /strengths; replace /vision" }, (d) => {
    d.strengths[strength] = { statement: S("Ada sings in the church choir"), about: S("youth"), status: S("active") };
    d.vision = S("Ada lives at home and feels safe there");
  });
  const before = await planIds("sam");

  const response = await importPlan("fran", A.save(doc));
  const created = await json<PlanDocument>(response, 201);
  const id = created.id;
  assert.match(id, /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/);
  assert.equal(response.headers.get("location"), `/v1/plans/${id}`);
  assert.deepEqual(created.plan, render(doc), "the node reads the document as the raw client built it");
  assert.deepEqual([...created.version].sort(), heads(doc), "the node keeps the document's own changes");
  const expected: JsonObject = {
    title: "Okafor family plan",
    youth: {},
    enrollment: { enrolled_on: "2026-03-02", phase: "engagement" },
    vision: "Ada lives at home and feels safe there",
    team: [{ id: franMember, name: "Fran", role: "facilitator", support: "formal", user: "fran", status: "active" }],
    strengths: [{ id: strength, statement: "Ada sings in the church choir", about: "youth", status: "active" }],
    needs: [],
    outcomes: [],
    strategies: [],
    crisis_plan: { triggers: [], response_steps: [], contacts: [] },
    meetings: [],
    cans: [],
    status: [],
    transition: {},
    consents: [],
    schema_version: 1,
  };
  assert.deepEqual(created.plan, expected);
  // Its shape is the node's own: a JSON-created plan has the same sections (and no vision yet).
  const native = await json<PlanDocument>(await call("fran", "POST", "/v1/plans", { title: "Native plan" }), 201);
  assert.deepEqual(Object.keys(created.plan).filter((k) => k !== "vision").sort(), Object.keys(native.plan).sort());
  assert.deepEqual(await served("fran", id), { id, version: created.version, plan: created.plan });
  assert.deepEqual(await planIds("sam"), [...before, id, native.id].sort(), "exactly the two new plans");
  const listed = (await json<PlanList>(await call("fran", "GET", "/v1/plans"), 200)).plans.find((p) => p.id === id);
  assert.equal(listed?.role, "facilitator");
  assert.equal(listed?.title, "Okafor family plan");

  // The history names fran for the imported changes, under the document's actor.
  const history = await json<{ changes: { user: string | null; actor: string }[] }>(await call("fran", "GET", `/v1/plans/${id}/history`), 200);
  assert.equal(history.changes.length, 2);
  assert.ok(history.changes.every((c) => c.user === "fran" && c.actor === A.getActorId(doc)));

  // --- more raw edits offline: a caregiver on the roster, a need, an outcome
  // referring to it, a strategy with a flex request and a step, a phase change
  const carlaMember = ulid();
  const need = ulid();
  const outcome = ulid();
  const strategy = ulid();
  const step = ulid();
  doc = A.change(doc, { message: "offline planning session" }, (d) => {
    d.team[carlaMember] = member("Carla", "caregiver", "carla");
    // Numbers are set on the item after it exists: in @automerge/automerge
    // 3.5 an `A.Int`/`A.Float64` inside an object literal is stored as a map
    // `{value: n}`, not as a number (ImmutableString is fine there).
    d.needs[need] = { domain: S("school"), statement: S("Get to school on time"), status: S("active") };
    d.needs[need].priority = new A.Int(1);
    d.outcomes[outcome] = { needs: [S(need)], statement: S("On time four days a week"), status: S("active"), progress: {} };
    d.outcomes[outcome].baseline = new A.Float64(1);
    d.outcomes[outcome].target = new A.Float64(4);
    d.strategies[strategy] = {
      outcomes: [S(outcome)],
      description: S("Bus pass for the winter"),
      kind: S("flex"),
      owner: S(carlaMember),
      status: S("proposed"),
      flex: { category: S("transportation") },
      steps: { [step]: { description: S("Pick up the pass"), responsible: S(carlaMember), status: S("open") } },
    };
    d.strategies[strategy].flex.amount_cents = new A.Int(4500);
    d.enrollment.phase = S("planning");
  });
  let state = A.initSyncState();
  let synced = await rawSync("fran", "raw-doc-1", id, doc, state);
  doc = synced.doc;
  state = synced.state;
  assert.equal(synced.received, false, "the node had nothing the document lacked");
  let now = await served("fran", id);
  assert.deepEqual(now.plan, render(doc));
  assert.deepEqual([...now.version].sort(), heads(doc));
  assert.equal((now.plan["strategies"] as any[])[0].flex.amount_cents, 4500);
  assert.equal((now.plan["enrollment"] as any).phase, "planning");

  // carla now sees it, as a caregiver (the roster decides).
  const carlaList = (await json<PlanList>(await call("carla", "GET", "/v1/plans"), 200)).plans;
  assert.equal(carlaList.find((p) => p.id === id)?.role, "caregiver");

  // --- edits through /ops (fran and carla) sync out to the raw document
  const ops = await json<{ results: { id?: string }[] }>(
    await call("fran", "POST", `/v1/plans/${id}/ops`, {
      ops: [
        { op: "replace", path: "/mission", value: "Keep Ada at home with her family" },
        { op: "replace", path: `/needs/${need}/status`, value: "met" },
        { op: "add", path: "/crisis_plan/contacts", value: { name: "Aunt Ngozi", relationship: "aunt", phone: "719-555-0142" } },
      ],
    }),
    200,
  );
  const contact = ops.results[2]!.id!;
  const progress = await json<{ results: { id?: string }[] }>(
    await call("carla", "POST", `/v1/plans/${id}/ops`, {
      ops: [
        { op: "add", path: `/outcomes/${outcome}/progress`, value: { on: "2026-03-09", value: 2 } },
        { op: "replace", path: `/strategies/${strategy}/steps/${step}/done_on`, value: "2026-03-05" },
        { op: "replace", path: `/strategies/${strategy}/steps/${step}/status`, value: "done" },
      ],
    }),
    200,
  );
  const progressId = progress.results[0]!.id!;
  synced = await rawSync("fran", "raw-doc-1", id, doc, state);
  doc = synced.doc;
  state = synced.state;
  assert.equal(synced.received, true);
  now = await served("fran", id);
  assert.deepEqual(now.plan, render(doc), "the raw document renders what the node serves");
  assert.deepEqual([...now.version].sort(), heads(doc), "and has the node's version");
  // In the raw document, the node's edits are plain Automerge values of the plan's layout.
  const raw = doc as any;
  assert.ok(A.isImmutableString(raw.mission), "strings arrive as scalar strings");
  assert.equal(raw.mission.val, "Keep Ada at home with her family");
  assert.equal(raw.needs[need].status.val, "met");
  assert.equal(raw.crisis_plan.contacts[contact].phone.val, "+17195550142");
  assert.equal(raw.crisis_plan.contacts[contact].status.val, "active");
  assert.equal(raw.outcomes[outcome].progress[progressId].value, 2);
  assert.equal(raw.strategies[strategy].steps[step].done_on.val, "2026-03-05");

  // --- and both at once: a raw offline edit concurrent with an /ops edit
  const base = now.version;
  doc = A.change(doc, (d) => {
    d.vision = S("Ada is safe at home and on time for school");
  });
  await json(await call("fran", "POST", `/v1/plans/${id}/ops`, { base_version: base, ops: [{ op: "add", path: "/strengths", value: { statement: "Neighbours help out" } }] }), 200);
  synced = await rawSync("fran", "raw-doc-1", id, doc, state);
  doc = synced.doc;
  now = await served("fran", id);
  assert.deepEqual(now.plan, render(doc));
  assert.deepEqual([...now.version].sort(), heads(doc));
  assert.equal(now.version.length, 2, "two concurrent heads");
  assert.equal(now.plan["vision"], "Ada is safe at home and on time for school");
  assert.equal((now.plan["strengths"] as unknown[]).length, 2);

  // A second raw device, starting from nothing, pulls the same document.
  const second = await rawSync("fran", "raw-doc-2", id, newDoc(), A.initSyncState());
  assert.deepEqual(render(second.doc), now.plan);
  assert.deepEqual(heads(second.doc), [...now.version].sort());
});

test("documents that are not a valid plan, or uploaded by a role that may not start plans, are refused and leave nothing behind", async () => {
  const before = await planIds("sam");
  const carlaBefore = await planIds("carla");
  const franMember = () => ({ [ulid()]: member("Fran", "facilitator", "fran") });
  const problem = async (response: Response, status: number, type: string, what: string) => {
    const text = await response.text();
    assert.equal(response.status, status, `${what}: HTTP ${response.status}: ${text}`);
    assert.match(response.headers.get("content-type") ?? "", /^application\/problem\+json/, what);
    assert.equal((JSON.parse(text) as { type: string }).type, type, `${what}: ${text}`);
  };

  // No title (a required field).
  await problem(
    await importPlan("fran", A.save(from(null, (d) => Object.assign(d.team, franMember())))),
    422,
    "/problems/schema-violation",
    "missing title",
  );
  // Strings as Automerge text objects (plain JS strings), not scalar strings.
  const asText = A.change(newDoc(), (d: any) => {
    skeleton(d, "x");
    d.title = "Text-object title";
    Object.assign(d.team, franMember());
  });
  await problem(await importPlan("fran", A.save(asText)), 422, "/problems/schema-violation", "text objects");
  // A field the schema does not know.
  await problem(
    await importPlan("fran", A.save(from("Plan with extras", (d) => {
      Object.assign(d.team, franMember());
      d.ssn = S("123-45-6789");
    }))),
    422,
    "/problems/schema-violation",
    "unknown field",
  );
  // A schema version that is none (they start at 1; a later one than the
  // node knows is kept, its unknown parts unseen).
  await problem(
    await importPlan("fran", A.save(from("Future plan", (d) => {
      Object.assign(d.team, franMember());
      d.schema_version = new A.Int(0);
    }))),
    422,
    "/problems/schema-violation",
    "schema version",
  );
  // Numbers written as A.Int inside an object literal (stored as a map {value: n} by Automerge 3.5).
  await problem(
    await importPlan("fran", A.save(from("Plan with a map for a number", (d) => {
      Object.assign(d.team, franMember());
      d.needs[ulid()] = { domain: S("home"), statement: S("Calmer evenings"), priority: new A.Int(2) };
    }))),
    422,
    "/problems/schema-violation",
    "a map where a number belongs",
  );
  // A valid plan that does not put its creator on the team (nobody could see it).
  await problem(
    await importPlan("fran", A.save(from("Nobody's plan", (d) => {
      d.team[ulid()] = member("Someone", "facilitator", "someone-else");
    }))),
    422,
    "/problems/schema-violation",
    "creator not on the team",
  );
  // Bytes that are not an Automerge document.
  await problem(await importPlan("fran", new Uint8Array([1, 2, 3, 4, 5])), 400, "/problems/malformed-document", "garbage bytes");
  // A caregiver may not start a plan, not even a valid one naming them facilitator.
  const carlas = from("Carla's own plan", (d) => {
    d.team[ulid()] = member("Carla", "facilitator", "carla");
  });
  await problem(await importPlan("carla", A.save(carlas)), 403, "/problems/forbidden", "caregiver");

  assert.deepEqual(await planIds("sam"), before, "no plan was stored");
  assert.deepEqual(await planIds("carla"), carlaBefore, "carla sees no new plan");

  // The refusals are the documents' and the role's: a valid import still works.
  const ok = from("Imported after all", (d) => {
    d.team[ulid()] = member("Fran", "facilitator", "fran");
  });
  const created = await json<PlanDocument>(await importPlan("fran", A.save(ok)), 201);
  assert.deepEqual(await planIds("sam"), [...before, created.id].sort());
});
