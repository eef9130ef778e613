import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { PROBLEM_TYPES, WrapsyncError, isProblemType } from "../src/index.js";

// dist-test/test/problems.test.js → clients/js
const LIST = new URL("../../problem-types.json", import.meta.url);

test("PROBLEM_TYPES is the Rust ProblemType::ALL (problem-types.json), in order", () => {
  const rust = JSON.parse(readFileSync(LIST, "utf8")) as string[];
  assert.deepEqual([...PROBLEM_TYPES], rust);
});

test("an error names a known problem type, and none for a newer node's", () => {
  const known = new WrapsyncError({ type: "/problems/home-authority", title: "Home", status: 422 });
  assert.equal(known.problemType, "home-authority");
  const unknown = new WrapsyncError({ type: "/problems/from-a-newer-node", title: "New", status: 409 });
  assert.equal(unknown.problemType, undefined);
  assert.equal(unknown.code, "from-a-newer-node");
  assert.ok(!isProblemType("about:blank"));
});
