// The plan the browser tests start from, written over HTTP by the facilitator
// `fran`: the Rivera family's plan with caregiver `carla` and youth `mateo`
// on the team, a goal, a strategy with one step for each, a crisis plan and
// a meeting.
import assert from "node:assert/strict";
import { api } from "./node.mjs";

/** A calendar date `n` days from today (YYYY-MM-DD, local time). */
export function inDays(n) {
  const d = new Date(Date.now() + n * 86_400_000);
  const p = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** Seeds the plan on the node at `nodeUrl`; answers the facilitator's API client and the ids. */
export async function seedPlan(nodeUrl) {
  const fran = await api(nodeUrl).login("fran");
  const created = await fran.post("/v1/plans", { title: "Rivera family plan", enrolled_on: inDays(-30) });
  const id = created.id;
  const ops = (o) => fran.post(`/v1/plans/${id}/ops`, { ops: o });
  const r1 = await ops([
    { op: "replace", path: "/vision", value: "Maya feels safe at home, goes to school every day, and has time for her art." },
    { op: "add", path: "/team", value: { name: "Carla Rivera", role: "caregiver", user: "carla", phone: "719-555-0101" } },
    { op: "add", path: "/team", value: { name: "Mateo Rivera", role: "youth", user: "mateo" } },
    { op: "add", path: "/outcomes", value: { statement: "Mateo goes to school most days", indicator: "school days a week", baseline: 2, target: 5 } },
    { op: "add", path: "/crisis_plan/triggers", value: { description: "Arguments about homework late at night" } },
    { op: "add", path: "/crisis_plan/response_steps", value: { description: "Give Mateo space in his room for 15 minutes" } },
    { op: "add", path: "/crisis_plan/response_steps", value: { description: "Call Aunt Rosa to come over" } },
    { op: "add", path: "/crisis_plan/contacts", value: { name: "Aunt Rosa", relationship: "aunt", phone: "719-555-0142" } },
    { op: "add", path: "/crisis_plan/contacts", value: { name: "Mobile crisis team", relationship: "county", phone: "719-555-0199" } },
    { op: "add", path: "/meetings", value: { held_on: inDays(-7), place: "Rivera home", next_on: inDays(14) } },
  ]);
  const [, carlaMember, mateoMember, outcome] = r1.results.map((r) => r.id);
  const r2 = await ops([{ op: "add", path: "/strategies", value: { description: "Morning routine", kind: "informal", outcomes: [outcome] } }]);
  const strategy = r2.results[0].id;
  const r3 = await ops([
    { op: "add", path: `/strategies/${strategy}/steps`, value: { description: "Set up the alarm clock and lay out clothes the night before", responsible: carlaMember, due_on: inDays(3) } },
    { op: "add", path: `/strategies/${strategy}/steps`, value: { description: "Pack my school bag before bed", responsible: mateoMember, due_on: inDays(5) } },
  ]);
  const [carlaStep, mateoStep] = r3.results.map((r) => r.id);
  assert.ok(carlaStep && mateoStep && outcome);
  return { fran, id, strategy, outcome, carlaMember, mateoMember, carlaStep, mateoStep };

}
