/**
 * A `PlanStore` on the local file system (Node only):
 * `DIR/plans/<id>.automerge`, `DIR/plans/<id>.sync`, `DIR/meta.json`.
 * Writes go to a temporary file renamed into place, so a crash never
 * leaves a torn document.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { PlanStore } from "../store.js";

const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

function safe(planId: string): string {
  if (!SAFE_ID.test(planId)) throw new TypeError(`unsafe plan id ${JSON.stringify(planId)}`);
  return planId;
}

async function readOrUndefined(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

async function atomicWrite(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFile(tmp, data, { mode: 0o600 });
  await rename(tmp, path);
}

export class FileStore implements PlanStore {
  private readonly plans: string;
  private ready: Promise<void> | undefined;
  private metaWrite: Promise<void> = Promise.resolve();

  constructor(readonly dir: string) {
    this.plans = join(dir, "plans");
  }

  private init(): Promise<void> {
    this.ready ??= mkdir(this.plans, { recursive: true, mode: 0o700 }).then(() => undefined);
    return this.ready;
  }

  private async bytes(path: string): Promise<Uint8Array | undefined> {
    await this.init();
    const buf = await readOrUndefined(path);
    return buf ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : undefined;
  }

  async getDoc(planId: string) {
    return this.bytes(join(this.plans, `${safe(planId)}.automerge`));
  }
  async putDoc(planId: string, bytes: Uint8Array) {
    await this.init();
    await atomicWrite(join(this.plans, `${safe(planId)}.automerge`), bytes);
  }
  async getSyncState(planId: string) {
    return this.bytes(join(this.plans, `${safe(planId)}.sync`));
  }
  async putSyncState(planId: string, bytes: Uint8Array) {
    await this.init();
    await atomicWrite(join(this.plans, `${safe(planId)}.sync`), bytes);
  }

  private async readMeta(): Promise<Record<string, string>> {
    await this.init();
    const buf = await readOrUndefined(join(this.dir, "meta.json"));
    return buf ? (JSON.parse(buf.toString("utf8")) as Record<string, string>) : {};
  }

  async getMeta(key: string) {
    await this.metaWrite;
    return (await this.readMeta())[key];
  }
  putMeta(key: string, value: string) {
    // Serialised so that concurrent puts do not lose each other's keys.
    this.metaWrite = this.metaWrite.then(async () => {
      const meta = await this.readMeta();
      meta[key] = value;
      await atomicWrite(join(this.dir, "meta.json"), JSON.stringify(meta, null, 2));
    });
    return this.metaWrite;
  }
  async listPlans() {
    await this.init();
    return (await readdir(this.plans))
      .filter((n) => n.endsWith(".automerge"))
      .map((n) => n.slice(0, -".automerge".length))
      .sort();
  }
  async deletePlan(planId: string) {
    await this.init();
    await rm(join(this.plans, `${safe(planId)}.automerge`), { force: true });
    await rm(join(this.plans, `${safe(planId)}.sync`), { force: true });
  }
}
