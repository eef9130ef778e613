// wrapsync vs automerge-repo (websocket) sync benchmark.
//
//   cd clients/js && npm run build && (cd bench && npm install) && npm run bench
//
// Env: BENCH_SYNC (batch, the default: `Replica.syncMany`; or per-plan:
// `Replica.sync`, BENCH_SYNC_CONCURRENCY plans at a time), BENCH_N (plans, default 1000), BENCH_CHANGES (single-op /ops requests
// per plan after creation, default 40), BENCH_SETUP_CONCURRENCY (default 32),
// BENCH_SYNC_CONCURRENCY (default 16), WRAPSYNC_BIN (binary; default
// target/release/wrapsync, else target/debug/wrapsync), BENCH_JSON (write the
// JSON summary to this file too).
import { spawn, execFileSync, fork } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { Repo } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
import { WrapsyncClient, Replica, MemoryStore } from "../dist/index.js";

const N = Number(process.env.BENCH_N ?? 1000);
const CHANGES = Number(process.env.BENCH_CHANGES ?? 40);
const SETUP_CONC = Number(process.env.BENCH_SETUP_CONCURRENCY ?? 32);
const SYNC_CONC = Number(process.env.BENCH_SYNC_CONCURRENCY ?? 16);
const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const BIN =
  process.env.WRAPSYNC_BIN ??
  [join(REPO_ROOT, "target/release/wrapsync"), join(REPO_ROOT, "target/debug/wrapsync")].find(existsSync);
const PASSWORD = "bench password " + randomBytes(6).toString("hex");

const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 23)}]`, ...a);
const now = () => performance.now();
const secs = (ms) => Math.round(ms) / 1000;

async function pool(items, concurrency, fn) {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  });
  await Promise.all(workers);
}

// ---------------------------------------------------------------- wrapsync node
const cleanups = [];
async function startNode() {
  if (!BIN || !existsSync(BIN)) throw new Error(`wrapsync binary not found (${BIN}); set WRAPSYNC_BIN`);
  const dir = mkdtempSync(join(tmpdir(), "wrapsync-bench-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, "node.toml");
  writeFileSync(
    config,
    [
      `node_id = "bench"`,
      `listen = "127.0.0.1:0"`,
      `data_dir = ${JSON.stringify(dir)}`,
      `jwt_secret = "${randomBytes(24).toString("hex")}"`,
      `access_token_ttl_secs = 3600`,
      // One user makes 40,000 requests in setup: far past a person's default.
      `rate_limit_per_user = { per_second = 25000, burst = 50000 }`,
      "",
    ].join("\n"),
  );
  const env = { ...process.env, WRAPSYNC_PASSWORD: PASSWORD, RUST_LOG: process.env.RUST_LOG ?? "warn" };
  execFileSync(BIN, ["migrate", "--config", config], { env, stdio: ["ignore", "ignore", "inherit"] });
  execFileSync(BIN, ["user", "add", "--config", config, "--username", "fac", "--role", "facilitator"], {
    env,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const child = spawn(BIN, ["node", "--config", config], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-20000)));
  const exited = new Promise((r) => child.once("exit", r));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
    }
  });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start:\n${stderr}`)), 20000);
    createInterface({ input: child.stdout }).once("line", (line) => {
      clearTimeout(timer);
      const ev = JSON.parse(line);
      if (ev.event !== "listening") reject(new Error(`unexpected first line ${line}`));
      resolve(ev.url);
    });
    child.once("exit", (code) => reject(new Error(`node exited (${code}):\n${stderr}`)));
  });
  return { url, dir, pid: child.pid, stderr: () => stderr };
}

// A fetch that counts /sync request and response body bytes (wire bytes and
// the raw Automerge sync-message bytes inside them).
function countingFetch(counter) {
  return async (url, init = {}) => {
    const response = await fetch(url, init);
    if (!String(url).endsWith("/sync")) return response;
    counter.requests++;
    const body = init.body;
    const isJsonReq = typeof body === "string";
    const reqWire = body === undefined ? 0 : isJsonReq ? Buffer.byteLength(body) : body.byteLength;
    counter.reqWire += reqWire;
    if (isJsonReq) {
      counter.jsonRequests++;
      const m = JSON.parse(body).message;
      counter.reqRaw += m ? Buffer.from(m, "base64").length : 0;
    } else counter.reqRaw += reqWire;
    const buf = response.status === 204 ? new ArrayBuffer(0) : await response.arrayBuffer();
    counter.respWire += buf.byteLength;
    if (response.status === 204) counter.status204++;
    const ct = response.headers.get("content-type") ?? "";
    if (ct.includes("json") && buf.byteLength) {
      const m = JSON.parse(Buffer.from(buf).toString("utf8")).message;
      counter.respRaw += m ? Buffer.from(m, "base64").length : 0;
    } else counter.respRaw += buf.byteLength;
    return new Response(response.status === 204 ? null : buf, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}
// How the device syncs: "batch" (default; `Replica.syncMany`, one
// `POST /v1/sync` per round for all plans) or "per-plan" (`Replica.sync`,
// SYNC_CONC plans at a time, one request per plan per round).
const SYNC_MODE = process.env.BENCH_SYNC ?? "batch";
async function syncAll(replica, ids) {
  let rounds = 0;
  let received = 0;
  const count = (r) => {
    if (r instanceof Error) throw r;
    rounds += r.rounds;
    if (r.received) received++;
  };
  if (SYNC_MODE === "batch") {
    for (const r of (await replica.syncMany(ids)).values()) count(r);
  } else {
    await pool(ids, SYNC_CONC, async (id) => {
      await replica.load(id);
      count(await replica.sync(id));
    });
  }
  return { rounds, received };
}
const newCounter = () => ({ requests: 0, jsonRequests: 0, status204: 0, reqWire: 0, respWire: 0, reqRaw: 0, respRaw: 0 });
const wire = (c) => c.reqWire + c.respWire;
const raw = (c) => c.reqRaw + c.respRaw;

// CPU seconds of a process (Linux /proc; ticks of 1/100 s), and of this one.
function procCpu(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}
const selfCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
function dirBytes(dir) {
  let total = 0;
  for (const f of readdirSync(dir)) total += statSync(join(dir, f)).size;
  return total;
}
let serverPid;
function cpuMark() {
  return { server: procCpu(serverPid), client: selfCpu() };
}
function cpuSince(mark) {
  const m = cpuMark();
  return { server_cpu_s: +(m.server - mark.server).toFixed(2), client_cpu_s: +(m.client - mark.client).toFixed(2) };
}

// ---------------------------------------------------------------- main
const result = { n: N, changes_per_plan: CHANGES, sync_mode: SYNC_MODE, binary: BIN, node: process.version, loadavg_at_start: os.loadavg().map((x) => +x.toFixed(2)) };
let ref;
try {
  const node = await startNode();
  log(`wrapsync node ${node.url} (pid ${node.pid}, ${BIN}), device sync mode ${SYNC_MODE}`);
  serverPid = node.pid;

  // 1. setup: N plans × CHANGES single-op /ops requests
  const admin = new WrapsyncClient({ baseUrl: node.url });
  await admin.login("fac", PASSWORD);
  const ids = new Array(N);
  let t0 = now();
  let cpu = cpuMark();
  let opsDone = 0;
  await pool([...Array(N).keys()], SETUP_CONC, async (i) => {
    const plan = await admin.createPlan({ title: `Bench family ${i}`, enrolled_on: "2026-01-15" });
    ids[i] = plan.id;
    for (let k = 0; k < CHANGES; k++) {
      const op =
        k % 2 === 0
          ? { op: "replace", path: "/vision", value: `Family ${i} vision, revision ${k}: safe at home, thriving in school` }
          : { op: "add", path: "/strengths", value: { statement: `Strength ${k} of family ${i}: shows up for each other` } };
      await admin.applyOps(plan.id, [op]);
      opsDone++;
    }
  });
  const setupMs = now() - t0;
  result.setup = { seconds: secs(setupMs), ops_requests: opsDone, create_requests: N, requests_per_second: Math.round((opsDone + N) / (setupMs / 1000)), ...cpuSince(cpu), data_dir_bytes_after: dirBytes(node.dir) };
  log(`setup: ${N} plans, ${opsDone} /ops requests in ${secs(setupMs)} s`);

  // 2. wrapsync cold sync: fresh device, empty MemoryStore
  const coldCounter = newCounter();
  let counter = coldCounter;
  const device = new WrapsyncClient({ baseUrl: node.url, fetch: (u, i) => countingFetch(counter)(u, i) });
  await device.login("fac", PASSWORD);
  const store = new MemoryStore();
  const replica = await Replica.create({ client: device, store });
  let rounds = 0;
  t0 = now();
  cpu = cpuMark();
  rounds = (await syncAll(replica, ids)).rounds;
  const coldMs = now() - t0;
  const coldCpu = cpuSince(cpu);
  const saved = [];
  for (const id of ids) saved.push(await store.getDoc(id));
  const savedSize = saved.reduce((s, b) => s + b.length, 0);
  result.wrapsync_cold = { seconds: secs(coldMs), ...coldCpu, rounds, ...coldCounter, wire_bytes: wire(coldCounter), raw_bytes: raw(coldCounter) };
  result.saved_size_bytes = savedSize;
  log(`wrapsync cold: ${secs(coldMs)} s, ${coldCounter.requests} requests, wire ${wire(coldCounter)} B, raw ${raw(coldCounter)} B, saved ${savedSize} B`);

  // 2b. open every plan: materialize each one as an Automerge document
  // (`Automerge.load` of the stored bytes). A batch sync of a plan that is
  // not open only stores its bytes; the reference client holds every
  // document loaded, so "cold sync + open all" is the like-for-like figure.
  // In per-plan mode the sync already loaded every plan (this is then ~0).
  const openBefore = replica.openPlans.length;
  t0 = now();
  cpu = cpuMark();
  for (const id of ids) await replica.load(id);
  const openMs = now() - t0;
  const openCpu = cpuSince(cpu);
  if (replica.openPlans.length !== N) throw new Error(`${replica.openPlans.length}/${N} plans open after open all`);
  result.wrapsync_open_all = { seconds: secs(openMs), ...openCpu, plans: N, already_open: openBefore };
  result.wrapsync_cold_plus_open_all = {
    seconds: secs(coldMs + openMs),
    server_cpu_s: +(coldCpu.server_cpu_s + openCpu.server_cpu_s).toFixed(2),
    client_cpu_s: +(coldCpu.client_cpu_s + openCpu.client_cpu_s).toFixed(2),
  };
  log(`wrapsync open all: ${secs(openMs)} s (${openBefore} already open), client CPU ${openCpu.client_cpu_s} s`);

  // check: the replica's version equals the node's
  const sample = ids.slice(0, 3);
  for (const id of sample) {
    const doc = await admin.getPlan(id);
    await replica.load(id);
    if ([...doc.version].sort().join() !== replica.version(id).join()) throw new Error(`plan ${id} not in sync after cold sync`);
  }

  // keep the cold-synced bytes for the reference
  const refDir = mkdtempSync(join(tmpdir(), "wrapsync-bench-ref-"));
  cleanups.push(() => rmSync(refDir, { recursive: true, force: true }));
  saved.forEach((b, i) => writeFileSync(join(refDir, `${i}.automerge`), b));

  // 3. one change per plan on the node, then re-sync
  t0 = now();
  await pool(ids, SETUP_CONC, async (id, i) => {
    await admin.applyOps(id, [{ op: "replace", path: "/vision", value: `Family ${i} vision after the meeting` }]);
  });
  log(`one /ops per plan: ${secs(now() - t0)} s`);
  const resyncCounter = newCounter();
  counter = resyncCounter;
  rounds = 0;
  let received = 0;
  t0 = now();
  cpu = cpuMark();
  ({ rounds, received } = await syncAll(replica, ids));
  const resyncMs = now() - t0;
  const resyncCpu = cpuSince(cpu);
  result.wrapsync_resync = { seconds: secs(resyncMs), ...resyncCpu, rounds, plans_received: received, ...resyncCounter, wire_bytes: wire(resyncCounter), raw_bytes: raw(resyncCounter) };
  log(`wrapsync re-sync: ${secs(resyncMs)} s, ${resyncCounter.requests} requests, wire ${wire(resyncCounter)} B, ${received}/${N} received`);

  // 3b. a no-op re-sync (nothing changed): the per-request floor
  const idleCounter = newCounter();
  counter = idleCounter;
  rounds = 0;
  t0 = now();
  cpu = cpuMark();
  rounds = (await syncAll(replica, ids)).rounds;
  const idleMs = now() - t0;
  const idleCpu = cpuSince(cpu);
  result.wrapsync_idle_resync = { seconds: secs(idleMs), ...idleCpu, rounds, ...idleCounter, wire_bytes: wire(idleCounter) };
  log(`wrapsync idle re-sync: ${secs(idleMs)} s, ${idleCounter.requests} requests`);

  // 3c. the phone's usual case: plans closed (stored, not in memory), one
  // more change per plan on the node, re-sync. The changes are appended to
  // the stored bytes; nothing is loaded.
  for (const id of ids) await replica.close(id);
  await pool(ids, SETUP_CONC, async (id, i) => {
    await admin.applyOps(id, [{ op: "replace", path: "/mission", value: `Family ${i} mission, revised` }]);
  });
  const closedCounter = newCounter();
  counter = closedCounter;
  t0 = now();
  cpu = cpuMark();
  const closed = await syncAll(replica, ids);
  const closedMs = now() - t0;
  const closedCpu = cpuSince(cpu);
  result.wrapsync_resync_closed = { seconds: secs(closedMs), ...closedCpu, rounds: closed.rounds, plans_received: closed.received, ...closedCounter, wire_bytes: wire(closedCounter) };
  log(`wrapsync re-sync, plans closed: ${secs(closedMs)} s, ${closedCounter.requests} requests, wire ${wire(closedCounter)} B, ${closed.received}/${N} received`);
  for (const id of ids.slice(0, 3)) {
    const doc = await admin.getPlan(id);
    await replica.load(id);
    if ([...doc.version].sort().join() !== replica.version(id).join()) throw new Error(`plan ${id} not in sync after the closed re-sync`);
  }

  // 4. reference: automerge-repo sync server (child process) + client Repo over websocket
  ref = fork(fileURLToPath(new URL("./ref-server.mjs", import.meta.url)), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  cleanups.push(() => {
    if (ref.exitCode === null && ref.signalCode === null) ref.kill("SIGKILL");
  });
  const replies = [];
  const waiters = [];
  ref.on("message", (m) => (waiters.length ? waiters.shift()(m) : replies.push(m)));
  const nextMsg = () => (replies.length ? Promise.resolve(replies.shift()) : new Promise((r) => waiters.push(r)));
  await nextMsg(); // ready
  ref.send({ cmd: "load", dir: refDir, count: N });
  const loaded = await nextMsg();
  log(`reference server: ${N} docs imported in ${secs(loaded.ms)} s, ws port ${loaded.port} (pid ${ref.pid})`);

  const sortedHeads = (h) => [...h.heads()].sort().join(",");
  const waitHeads = (handle, want) =>
    new Promise((resolve) => {
      if (sortedHeads(handle) === want) return resolve();
      const check = () => {
        if (sortedHeads(handle) === want) {
          handle.off("heads-changed", check);
          resolve();
        }
      };
      handle.on("heads-changed", check);
    });

  serverPid = ref.pid;
  t0 = now();
  cpu = cpuMark();
  const client = new Repo({ network: [new WebSocketClientAdapter(`ws://127.0.0.1:${loaded.port}`)], peerId: "bench-client" });
  // The ws client adapter declares itself ready after 1 s even without the
  // server's ack; a find() before the peer joined then answers "unavailable"
  // (seen under heavy machine load). Wait for the server peer first.
  while (client.peers.length === 0) await new Promise((r) => setTimeout(r, 2));
  result.reference_connect_ms = Math.round(now() - t0);
  // A find() can answer "unavailable" (seen once under heavy machine load); retry it.
  let findRetries = 0;
  const findRetry = async (u) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await client.find(u);
      } catch (e) {
        if (attempt >= 20) throw e;
        findRetries++;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const handles = await Promise.all(loaded.urls.map(findRetry));
  await Promise.all(handles.map((h, i) => waitHeads(h, loaded.heads[i])));
  const refColdMs = now() - t0;
  const refColdCpu = cpuSince(cpu);
  ref.send({ cmd: "bytes" });
  const b1 = (await nextMsg()).bytes;
  result.reference_cold = { seconds: secs(refColdMs), ...refColdCpu, find_retries: findRetries, wire_bytes: b1.in + b1.out, ws_in: b1.in, ws_out: b1.out, frames: b1.framesIn + b1.framesOut };
  log(`reference cold: ${secs(refColdMs)} s, ws payload ${b1.in + b1.out} B (${b1.framesIn + b1.framesOut} frames)`);

  t0 = now();
  cpu = cpuMark();
  ref.send({ cmd: "change" });
  const changed = await nextMsg();
  await Promise.all(handles.map((h, i) => waitHeads(h, changed.heads[i])));
  const refResyncMs = now() - t0;
  const refResyncCpu = cpuSince(cpu);
  ref.send({ cmd: "bytes" });
  const b2 = (await nextMsg()).bytes;
  const rIn = b2.in - b1.in, rOut = b2.out - b1.out;
  result.reference_resync = {
    seconds: secs(refResyncMs),
    ...refResyncCpu,
    server_change_ms: Math.round(changed.ms),
    wire_bytes: rIn + rOut,
    ws_in: rIn,
    ws_out: rOut,
    frames: b2.framesIn + b2.framesOut - b1.framesIn - b1.framesOut,
  };
  log(`reference re-sync: ${secs(refResyncMs)} s (server change ${Math.round(changed.ms)} ms), ws payload ${rIn + rOut} B`);
  await client.shutdown().catch(() => undefined);
  ref.send({ cmd: "stop" });

  // 5. report (the reference client holds every document loaded, so its
  // "cold + open all" is its cold time)
  const rows = [
    [`wrapsync ${SYNC_MODE}`, result.wrapsync_cold.seconds, result.wrapsync_cold_plus_open_all.seconds, result.wrapsync_cold.wire_bytes, result.wrapsync_resync.seconds, result.wrapsync_resync.wire_bytes, result.wrapsync_idle_resync.seconds],
    ["automerge-repo ws", result.reference_cold.seconds, result.reference_cold.seconds, result.reference_cold.wire_bytes, result.reference_resync.seconds, result.reference_resync.wire_bytes, "-"],
  ];
  result.loadavg_at_end = os.loadavg().map((x) => +x.toFixed(2));
  result.ratio_cold_time_ref_over_wrapsync = +(result.reference_cold.seconds / result.wrapsync_cold.seconds).toFixed(2);
  result.ratio_cold_plus_open_all_time_ref_over_wrapsync = +(result.reference_cold.seconds / result.wrapsync_cold_plus_open_all.seconds).toFixed(2);
  result.ratio_resync_time_ref_over_wrapsync = +(result.reference_resync.seconds / result.wrapsync_resync.seconds).toFixed(2);
  result.ratio_resync_closed_time_ref_over_wrapsync = +(result.reference_resync.seconds / result.wrapsync_resync_closed.seconds).toFixed(2);
  result.wrapsync_cold_wire_over_saved = +(result.wrapsync_cold.wire_bytes / savedSize).toFixed(3);
  result.wrapsync_cold_raw_over_saved = +(result.wrapsync_cold.raw_bytes / savedSize).toFixed(3);
  result.reference_cold_wire_over_saved = +(result.reference_cold.wire_bytes / savedSize).toFixed(3);
  result.targets = {
    faster_5x: result.ratio_cold_time_ref_over_wrapsync >= 5,
    faster_5x_cold_plus_open_all: result.ratio_cold_plus_open_all_time_ref_over_wrapsync >= 5,
    faster_5x_resync: result.ratio_resync_time_ref_over_wrapsync >= 5,
    wire_within_1_5x_saved: result.wrapsync_cold_wire_over_saved <= 1.5,
  };
  const pad = (s, n) => String(s).padStart(n);
  console.log(`\nN=${N} plans, ${CHANGES} /ops changes each (+create), saved size total ${savedSize} B (${Math.round(savedSize / N)} B/doc)\n`);
  console.log(`${"system".padEnd(20)}${pad("cold s", 8)}${pad("cold+open all s", 17)}${pad("cold bytes", 12)}${pad("cold wire/saved", 17)}${pad("resync s", 10)}${pad("resync bytes", 14)}${pad("idle s", 8)}`);
  for (const r of rows) console.log(`${r[0].padEnd(20)}${pad(r[1], 8)}${pad(r[2], 17)}${pad(r[3], 12)}${pad((r[3] / savedSize).toFixed(3), 17)}${pad(r[4], 10)}${pad(r[5], 14)}${pad(r[6], 8)}`);
  console.log(`\nwrapsync re-sync with plans closed: ${result.wrapsync_resync_closed.seconds} s (${result.ratio_resync_closed_time_ref_over_wrapsync}× faster than the reference's re-sync), ${result.wrapsync_resync_closed.wire_bytes} B`);
  console.log(`wrapsync open all (Automerge.load of every plan): ${result.wrapsync_open_all.seconds} s, client CPU ${result.wrapsync_open_all.client_cpu_s} s (${result.wrapsync_open_all.already_open} already open)`);
  console.log(`ref/wrapsync time: cold ${result.ratio_cold_time_ref_over_wrapsync}×, cold + open all ${result.ratio_cold_plus_open_all_time_ref_over_wrapsync}×, re-sync ${result.ratio_resync_time_ref_over_wrapsync}×; wrapsync raw sync-message bytes cold ${result.wrapsync_cold.raw_bytes} (${result.wrapsync_cold_raw_over_saved}× saved)\n`);
  console.log(JSON.stringify(result, null, 2));
  if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, JSON.stringify(result, null, 2));
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  for (const c of cleanups.reverse()) await c();
}
process.exit(process.exitCode ?? 0);
