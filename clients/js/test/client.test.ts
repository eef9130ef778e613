import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WrapsyncClient, WrapsyncError, SseParser, type PlanChange } from "../src/index.js";
import { startNode, within, PASSWORD, type TestNode } from "./node.js";

let node: TestNode;

before(async () => {
  node = await startNode([
    { username: "fran", role: "facilitator" },
    { username: "carla", role: "caregiver" },
    { username: "sam", role: "supervisor" },
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

test("login, create, list, ops, ETag, history", async () => {
  const fran = await login("fran");
  assert.deepEqual(await fran.health(), { status: "ok" });
  const created = await fran.createPlan({ title: "Rivera family plan", enrolled_on: "2026-01-15" });
  assert.equal(created.plan["title"], "Rivera family plan");
  assert.equal(created.version.length, 1);

  const list = await fran.listPlans();
  const mine = list.plans.find((p) => p.id === created.id);
  assert.ok(mine, "the new plan is listed");
  assert.equal(mine.role, "facilitator");

  const ops = await fran.applyOps(created.id, [
    { op: "add", path: "/team", value: { name: "Carla", role: "caregiver", user: "carla" } },
    { op: "replace", path: "/vision", value: "Maya lives at home and goes to school every day" },
    { op: "add", path: "/strengths", value: { statement: "Loves drawing", about: "youth" } },
  ]);
  assert.equal(ops.results.length, 3);
  assert.match(ops.results[0]!.id!, /^[0-9A-Z]{26}$/);
  assert.equal(ops.plan?.["vision"], "Maya lives at home and goes to school every day");

  const first = await fran.getPlan(created.id);
  assert.ok(first.etag, "GET answers an ETag");
  assert.deepEqual(first.version, ops.version);
  assert.equal(await fran.getPlanIfNoneMatch(created.id, first.etag!), null, "304 with If-None-Match");
  const cached = await fran.getPlan(created.id);
  assert.deepEqual(cached.plan, first.plan);

  const history = await fran.history(created.id);
  assert.ok(history.changes.length >= 2);
  assert.equal(history.changes.at(-1)!.user, "fran");

  // The caregiver now sees the plan, with their team role.
  const carla = await login("carla");
  const theirs = await carla.listPlans();
  assert.equal(theirs.plans.find((p) => p.id === created.id)?.role, "caregiver");
});

test("errors are WrapsyncErrors carrying the problem type and status", async () => {
  const client = new WrapsyncClient({ baseUrl: node.url });
  await assert.rejects(client.login("fran", "wrong password!"), (e: unknown) => {
    assert.ok(e instanceof WrapsyncError);
    assert.equal(e.status, 401);
    assert.equal(e.type, "/problems/invalid-credentials");
    assert.equal(e.code, "invalid-credentials");
    return true;
  });
  const carla = await login("carla");
  await assert.rejects(carla.createPlan({ title: "Not mine" }), { name: "WrapsyncError", status: 403, type: "/problems/forbidden" });
  await assert.rejects(carla.getPlan("01JAAAAAAAAAAAAAAAAAAAAAAA"), { status: 404, type: "/problems/not-found" });

  const fran = await login("fran");
  const plan = await fran.createPlan({ title: "Errors plan" });
  await assert.rejects(fran.applyOps(plan.id, [{ op: "remove", path: "/vision" }]), { status: 422, type: "/problems/unsupported-op" });
  await assert.rejects(fran.applyOps(plan.id, [{ op: "replace", path: "/enrollment/phase", value: "holiday" }]), (e: unknown) => {
    assert.ok(e instanceof WrapsyncError);
    assert.equal(e.status, 422);
    assert.equal(e.code, "schema-violation");
    assert.equal(e.opIndex, 0);
    return true;
  });
});

test("an expired or bad access token is refreshed once, automatically", async () => {
  const fran = await login("fran");
  const refreshToken = fran.currentTokens!.refresh_token;
  const seen: string[] = [];
  const client = new WrapsyncClient({
    baseUrl: node.url,
    tokens: { access_token: "not-a-token", refresh_token: refreshToken },
    onTokens: (t) => seen.push(t.refresh_token),
  });
  const list = await client.listPlans();
  assert.ok(Array.isArray(list.plans));
  assert.equal(seen.length, 1, "one refresh");
  assert.notEqual(seen[0], refreshToken, "a new refresh token");
  // The old refresh token no longer works, and presenting it again ends
  // the whole session (RFC 9700): the newer refresh token is refused too.
  const stale = new WrapsyncClient({ baseUrl: node.url, tokens: { access_token: "x", refresh_token: refreshToken } });
  await assert.rejects(stale.listPlans(), { status: 401, type: "/problems/invalid-refresh-token" });
  const ended = new WrapsyncClient({ baseUrl: node.url, tokens: { access_token: "x", refresh_token: seen[0]! } });
  await assert.rejects(ended.listPlans(), { status: 401, type: "/problems/invalid-refresh-token" });
  // Concurrent 401s share one refresh (refresh tokens are single use: a
  // second refresh with the same token would end the session).
  const again = await login("fran");
  const shared = new WrapsyncClient({
    baseUrl: node.url,
    tokens: { access_token: "bad", refresh_token: again.currentTokens!.refresh_token },
  });
  const results = await Promise.all([shared.listPlans(), shared.listPlans(), shared.listPlans()]);
  assert.equal(results.length, 3);
});

test("change feed: page and SSE stream report an edited plan", async () => {
  const fran = await login("fran");
  const start = await fran.changes();
  const plan = await fran.createPlan({ title: "Feed plan" });
  const page = await fran.changes(start.cursor);
  assert.ok(page.changes.some((c) => c.plan === plan.id), "the new plan is in the page");

  const events: PlanChange[] = [];
  let opened!: () => void;
  const open = new Promise<void>((r) => (opened = r));
  const got = new Promise<PlanChange>((resolve) => {
    const sub = fran.subscribeChanges(
      (change) => {
        events.push(change);
        if (change.plan === plan.id && change.cursor !== page.cursor) {
          sub.close();
          resolve(change);
        }
      },
      { since: page.cursor, onOpen: () => opened() },
    );
  });
  await open;
  await fran.applyOps(plan.id, [{ op: "replace", path: "/vision", value: "A vision" }]);
  const change = await within(got, 10_000, () => "no change event");
  assert.equal(change.plan, plan.id);
  assert.ok(Number(change.cursor) > Number(page.cursor));
});

test("SSE parser: fields, comments, multi-line data, CRLF and split chunks", () => {
  const parser = new SseParser();
  const events = [
    ...parser.push(": connected\n\nid: 7\r\nevent: change\r\ndata: {\"plan\":"),
    ...parser.push("\"P\"}\r\n\r"),
    ...parser.push("\n: keep-alive\n\ndata: a\ndata: b\n\n"),
  ];
  assert.deepEqual(events, [
    { event: "change", data: '{"plan":"P"}', id: "7" },
    { event: "message", data: "a\nb", id: "7" },
  ]);
  assert.equal(parser.lastEventId, "7");
});

test("importPlan starts a plan from a saved document; shares are listed, and only configured peers may get one", async () => {
  const fran = await login("fran");
  // Export a plan the node made and import it whole as a new plan: the
  // import is held to the node's checks, so its document must be valid.
  const made = await fran.createPlan({ title: "Exported family" });
  const { Replica, MemoryStore } = await import("../src/index.js");
  const A = await import("@automerge/automerge");
  const replica = await Replica.create({ client: fran, store: new MemoryStore() });
  await replica.open(made.id);
  const bytes = A.save(replica.doc(made.id));
  const imported = await fran.importPlan(bytes);
  assert.notEqual(imported.id, made.id);
  assert.deepEqual(imported.plan, made.plan);
  const refused = await fran.importPlan(new Uint8Array([1, 2, 3])).then(
    () => assert.fail("garbage imported"),
    (e: unknown) => e,
  );
  assert.ok(refused instanceof WrapsyncError && refused.code === "malformed-document");

  assert.deepEqual(await fran.shares(imported.id), []);
  const notPeer = await fran.share(imported.id, "county-x").then(
    () => assert.fail("shared with a stranger"),
    (e: unknown) => e,
  );
  assert.ok(notPeer instanceof WrapsyncError && notPeer.status === 400);
  const nothing = await fran.revokeShare(imported.id, "county-x").then(
    () => assert.fail("revoked nothing"),
    (e: unknown) => e,
  );
  assert.ok(nothing instanceof WrapsyncError && nothing.status === 404);
});

test("audit: a supervisor reads a plan's trail, filtered and paged; anyone else is refused", async () => {
  const fran = await login("fran");
  const created = await fran.createPlan({ title: "Audited plan" });
  await fran.applyOps(created.id, [{ op: "replace", path: "/vision", value: "Home and school" }]);
  const sam = await login("sam");
  const page = await sam.audit({ plan: created.id });
  assert.ok(page.entries.length >= 2, "plan.create and the ops are audited");
  assert.ok(page.entries.every((e) => e.plan === created.id), "only rows about the plan");
  assert.ok(page.entries.some((e) => e.user === "fran" && e.outcome === "ok"));
  const first = await sam.audit({ plan: created.id, limit: 1 });
  assert.equal(first.entries.length, 1);
  assert.ok(first.next, "a next page");
  const second = await sam.audit({ plan: created.id, limit: 1, cursor: first.next! });
  assert.notEqual(second.entries[0]!.id, first.entries[0]!.id);
  await assert.rejects(fran.audit({ plan: created.id }), (e: unknown) => e instanceof WrapsyncError && e.status === 403 && e.problemType === "forbidden");
});
