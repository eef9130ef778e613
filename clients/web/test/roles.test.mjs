// The app's copy of who may write what (src/roles.ts) is the node's
// WRITE_RULES (shared/src/roles.rs), rule for rule and in order: the app
// offers a form only when the node would accept it. No browser, no node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

const read = (path) => readFileSync(new URL(path, import.meta.url), "utf8");
const snake = (s) => s.trim().replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();

test("src/roles.ts has the node's WRITE_RULES and OWN_STEP_FIELDS", () => {
  const rs = read("../../../shared/src/roles.rs");
  const table = rs.slice(rs.indexOf("pub const WRITE_RULES"), rs.indexOf("];", rs.indexOf("pub const WRITE_RULES")));
  const node = [...table.matchAll(/\(\s*"([^"]+)",\s*&\[([^\]]*)\]/g)].map((m) => [m[1], m[2].split(",").map(snake).filter(Boolean)]);
  const ts = read("../src/roles.ts");
  const app = [...ts.slice(ts.indexOf("const RULES")).matchAll(/\["([^"]+)", \[([^\]]*)\]\]/g)].map((m) => [m[1], m[2].split(",").map((s) => s.trim().replace(/"/g, "")).filter(Boolean)]);
  assert.ok(node.length > 15, `found ${node.length} rules in roles.rs`);
  assert.deepEqual(app, node);
  const own = (src, re) => [...(src.match(re)?.[1] ?? "").matchAll(/"(\w+)"/g)].map((m) => m[1]);
  assert.deepEqual(own(ts, /OWN_STEP_FIELDS = \[([^\]]*)\]/), own(rs, /OWN_STEP_FIELDS: &\[&str\] = &\[([^\]]*)\]/));
});
