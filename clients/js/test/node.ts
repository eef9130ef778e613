/** Starts a real wrapsync node (the Rust binary) for the tests. */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

// dist-test/test/node.js → clients/js → repo root
const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
export const BIN = process.env.WRAPSYNC_BIN ?? join(REPO, "target/debug/wrapsync");

export const PASSWORD = "correct horse battery";

export interface TestNode {
  url: string;
  dir: string;
  stderr: () => string;
  stop(): Promise<void>;
}

export async function startNode(users: { username: string; role: string }[]): Promise<TestNode> {
  if (!existsSync(BIN)) throw new Error(`wrapsync binary not found at ${BIN} (build it, or set WRAPSYNC_BIN)`);
  const dir = mkdtempSync(join(tmpdir(), "wrapsync-js-"));
  const config = join(dir, "node.toml");
  writeFileSync(
    config,
    [
      `node_id = "js-test"`,
      `listen = "127.0.0.1:0"`,
      `data_dir = ${JSON.stringify(dir)}`,
      `jwt_secret = "${randomBytes(24).toString("hex")}"`,
      "",
    ].join("\n"),
  );
  const env = { ...process.env, WRAPSYNC_PASSWORD: PASSWORD, RUST_LOG: process.env.RUST_LOG ?? "warn" };
  execFileSync(BIN, ["migrate", "--config", config], { env, stdio: ["ignore", "ignore", "pipe"] });
  for (const user of users) {
    execFileSync(BIN, ["user", "add", "--config", config, "--username", user.username, "--role", user.role], {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
  }
  const child: ChildProcess = spawn(BIN, ["node", "--config", config], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (d: string) => {
    stderr = (stderr + d).slice(-20_000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start in 20 s:\n${stderr}`)), 20_000);
    const lines = createInterface({ input: child.stdout! });
    lines.once("line", (line) => {
      clearTimeout(timer);
      try {
        const event = JSON.parse(line) as { event: string; url: string };
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
        // The node drains open change streams for up to 30 s; do not wait that long.
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `promise`, or a rejection after `ms` (the timer never holds the process open). */
export function within<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what()} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
