import { it } from "vitest";
import { Drive, define } from "./drive.js";
const j = (...x: unknown[]) => console.log("\n" + JSON.stringify(x));
it("first entry", () => {
  const d = Drive.of("protocol"); d.start(); d.succeed("plan", { steps: [{id:"s1"},{id:"s2"}] });
  d.signal({ name: "approve", stepId: "s1", force: true }); j("p0", d.status, d.statuses(), d.state.stepsCompleted);
  d.signal({ name: "run_step", stepId: "s2" }); j("p1", d.status, d.statuses(), d.eventTypes(), d.state.stepsCompleted);
  const e = Drive.of("protocol"); e.start(); e.succeed("plan", { steps: [{id:"s1", qa: {auto: false}},{id:"s2"}] });
  e.signal({ name: "run_qa", stepId: "s1" }); e.succeed("s1"); j("q0", e.status, e.statuses());
  e.signal({ name: "run_step", stepId: "s2" }); j("q1", e.status, e.statuses(), e.eventTypes());
});
