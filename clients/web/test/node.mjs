// Starts a real wrapsync node (the Rust binary) for the tests.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

// clients/web/test → repo root
const REPO = fileURLToPath(new URL("../../../", import.meta.url));
export const BIN = process.env.WRAPSYNC_BIN ?? join(REPO, "target/debug/wrapsync");
export const PASSWORD = "correct horse battery";

/** users: [{ username, role }] → { url, dir, stderr(), stop() } */
export async function startNode(users) {
  if (!existsSync(BIN)) throw new Error(`wrapsync binary not found at ${BIN} (cargo build -p wrapsync-server, or set WRAPSYNC_BIN)`);
  const dir = mkdtempSync(join(tmpdir(), "wrapsync-web-"));
  const config = join(dir, "node.toml");
  writeFileSync(
    config,
    [`node_id = "web-test"`, `listen = "127.0.0.1:0"`, `data_dir = ${JSON.stringify(dir)}`, `jwt_secret = "${randomBytes(24).toString("hex")}"`, ""].join("\n"),
  );
  const env = { ...process.env, WRAPSYNC_PASSWORD: PASSWORD, RUST_LOG: process.env.RUST_LOG ?? "warn" };
  execFileSync(BIN, ["migrate", "--config", config], { env, stdio: ["ignore", "ignore", "pipe"] });
  for (const user of users) {
    execFileSync(BIN, ["user", "add", "--config", config, "--username", user.username, "--role", user.role], { env, stdio: ["ignore", "ignore", "pipe"] });
  }
  const child = spawn(BIN, ["node", "--config", config], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-20_000);
  });
  const exited = new Promise((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start in 20 s:\n${stderr}`)), 20_000);
    const lines = createInterface({ input: child.stdout });
    lines.once("line", (line) => {
      clearTimeout(timer);
      try {
        const event = JSON.parse(line);
        if (event.event !== "listening") throw new Error(`unexpected first line ${line}`);
        resolve(event.url);
      } catch (e) {
        reject(e);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`node exited (${code}) before listening:\n${stderr}`));
    });
  });
  return {
    url,
    dir,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        // The node drains open change streams for a while; do not wait for that.
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Minimal JSON API calls for seeding and checking. */
export function api(base, token) {
  const call = async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      headers: { Accept: "application/json", ...(body ? { "Content-Type": "application/json" } : {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  return {
    get: (p) => call("GET", p),
    post: (p, b) => call("POST", p, b),
    async login(username, password = PASSWORD) {
      const t = await call("POST", "/v1/auth/login", { username, password });
      return api(base, t.access_token);
    },
  };
}

/** Polls `fn` until it answers truthy (expect-style), or throws after `timeout` ms. */
export async function eventually(fn, { timeout = 20_000, interval = 100, what = "condition" } = {}) {
  const start = Date.now();
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() - start > timeout) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}
