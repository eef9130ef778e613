// The state hub's dashboard in Debian's Chromium (playwright-core), against
// the real `wrapsync demo`: a hub and three county nodes that report their
// generated caseloads to it. Checks that every indicator is drawn, that
// suppressed figures say so and show no number, and keeps a screenshot
// (docs/dashboard.png is a copy of one).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const BIN = process.env.WRAPSYNC_BIN ?? join(REPO, "target/debug/wrapsync");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
const INDICATORS = 17;

let demo;
let dir;
let browser;

/** Starts `wrapsync demo` and waits for its `demo_ready` line. */
async function startDemo() {
  if (!existsSync(BIN)) throw new Error(`wrapsync binary not found at ${BIN} (cargo build -p wrapsync-server)`);
  dir = mkdtempSync(join(tmpdir(), "wrapsync-dashboard-"));
  // A port range of its own, away from other tests' ephemeral ports.
  const basePort = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(BIN, ["demo", "--dir", dir, "--base-port", String(basePort)], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-20_000)));
  const manifest = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo was not ready in 180 s:\n${stderr}`)), 180_000);
    child.once("exit", (code) => reject(new Error(`the demo exited (${code}):\n${stderr}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        const event = JSON.parse(line);
        if (event.event === "demo_ready") {
          clearTimeout(timer);
          resolve(JSON.parse(readFileSync(event.manifest, "utf8")));
        }
      } catch {
        // Not an event line.
      }
    });
  });
  return { child, manifest };
}

before(async () => {
  demo = await startDemo();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
});

after(async () => {
  await browser?.close();
  if (demo) {
    demo.child.kill("SIGTERM");
    await new Promise((resolve) => (demo.child.exitCode !== null ? resolve() : demo.child.once("exit", resolve)));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the hub's dashboard shows every indicator over time and by community, suppressed cells as such", async () => {
  const hub = demo.manifest.hub;
  assert.ok(hub?.url, "the demo names its hub");
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(hub.url, { waitUntil: "load" });
  await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 30_000 });
  assert.notEqual(await page.evaluate(() => document.body.dataset.ready), "error", await page.textContent("main"));
  assert.deepEqual(errors, []);

  // Every indicator has a card with a headline and a trend over months.
  assert.equal(await page.locator("article.card").count(), INDICATORS);
  const options = await page.locator("#period option").count();
  assert.ok(options >= 12, `periods to choose from: ${options}`);
  const trends = await page.locator("article.card svg.trend").count();
  assert.equal(trends, INDICATORS, "a trend per indicator");

  // Youth served: a real number, and each county as a bar.
  const served = page.locator("#indicator-youth_served");
  const headline = (await served.locator(".headline .value").textContent()).trim();
  assert.match(headline, /^\d[\d,]*$/, `youth served: ${headline}`);
  assert.ok(Number(headline.replaceAll(",", "")) > 30, headline);
  const communities = await served.locator('[aria-label="By community"] .bar-label').allTextContents();
  assert.deepEqual(communities.sort(), ["county-a", "county-b", "county-c"]);

  // Suppressed figures are drawn as such: hatched, labelled, no number.
  const withheld = page.locator(".bar.withheld");
  assert.ok((await withheld.count()) > 0, "some small cells are suppressed");
  const rows = page.locator(".bar-row:has(.bar.withheld) .bar-value");
  for (const text of await rows.allTextContents()) assert.equal(text, "suppressed");

  // The same figures as the JSON the hub publishes.
  const period = await page.evaluate(() => document.body.dataset.ready);
  const published = await (await fetch(`${hub.url}/hub/v1/indicators?period=${period}`)).json();
  const youth = published.indicators.find((i) => i.indicator === "youth_served").statewide.total;
  assert.equal(Number(headline.replaceAll(",", "")), youth.value);

  // Another month re-draws.
  const other = await page.locator("#period option").nth(3).getAttribute("value");
  await page.selectOption("#period", other);
  await page.waitForFunction((p) => document.body.dataset.ready === p, other, { timeout: 30_000 });
  assert.equal(await page.locator("article.card").count(), INDICATORS);

  await page.selectOption("#period", period);
  await page.waitForFunction((p) => document.body.dataset.ready === p, period, { timeout: 30_000 });
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
  await page.close();
});
