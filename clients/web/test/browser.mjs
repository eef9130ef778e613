// Devices for the browser tests: Debian's chromium driven by playwright-core,
// each a fresh profile (its own IndexedDB, storage and service worker).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
export const WAIT = 20_000;
export const PHONE = { width: 390, height: 844 };
export const TABLET = { width: 820, height: 1180 };

const contexts = [];
const profiles = [];

/**
 * A device: a fresh chromium profile at `viewport` (a phone unless told),
 * whose browser language is `locale`. `page.log` collects its console.
 */
export async function device(name, { viewport = PHONE, locale = "en-US" } = {}) {
  const dir = mkdtempSync(join(tmpdir(), `wrapsync-web-${name}-`));
  profiles.push(dir);
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...ARGS, `--lang=${locale}`],
    viewport,
    locale,
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    serviceWorkers: "allow",
  });
  contexts.push(context);
  const page = context.pages()[0] ?? (await context.newPage());
  const log = [];
  page.on("console", (m) => log.push(`[${name} ${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => log.push(`[${name} pageerror] ${e.message}`));
  page.log = log;
  page.setDefaultTimeout(WAIT);
  return { context, page };
}

/** Closes every device and deletes its profile. */
export async function closeDevices() {
  for (const c of contexts.splice(0)) await c.close().catch(() => undefined);
  for (const d of profiles.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Where failure screenshots go (kept out of git). */
export const ARTIFACTS = fileURLToPath(new URL("../test-artifacts/", import.meta.url));

/**
 * Runs `body`; if it fails, prints each page's console and saves its
 * screenshot as `failure-<name>-<who>.png` before failing. `pages` maps a
 * name to a page from `device`.
 */
export async function withEvidence(pages, name, body) {
  try {
    await body();
  } catch (e) {
    mkdirSync(ARTIFACTS, { recursive: true });
    for (const [who, page] of Object.entries(pages)) {
      console.log(page.log.join("\n"));
      await page.screenshot({ path: join(ARTIFACTS, `failure-${name}-${who}.png`), fullPage: true }).catch(() => undefined);
    }
    throw e;
  }
}
