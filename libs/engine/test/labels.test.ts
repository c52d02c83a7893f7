import { describe, expect, it } from "vitest";
import { BRANCH_LABEL } from "@orch/contracts";
import { builtin, createRun, runLabels } from "../src/index.js";

/** Runs are labelled with their git branch, so webhooks find a run by branch with one index query. */
describe("runLabels", () => {
  it("labels a run with the branch its definition's workspace names", () => {
    expect(runLabels(builtin("protocol"), { a: "1" }, { protocol_name: "0001-feature" })).toEqual({ a: "1", [BRANCH_LABEL]: "0001-feature" });
    expect(runLabels(builtin("speckit.specify"), undefined, { feature_id: "001-add-auth" })).toEqual({ [BRANCH_LABEL]: "001-add-auth" });
    expect(runLabels(builtin("ticket"), {}, { branch: "feat/ENG-1" })).toEqual({ [BRANCH_LABEL]: "feat/ENG-1" });
  });

  it("keeps a branch label the run names itself, and adds none when the branch is not known", () => {
    expect(runLabels(builtin("protocol"), { branch: "mine" }, { protocol_name: "p" })).toEqual({ branch: "mine" });
    expect(runLabels(builtin("protocol"), { a: "1" }, {})).toEqual({ a: "1" });
    expect(runLabels(builtin("job"), { a: "1" }, { goal: "x" })).toEqual({ a: "1" });
  });

  it("puts the label on the run.created event the run index reads", () => {
    const r = createRun(builtin("protocol"), { runId: "r1", projectId: "p", input: { protocol_name: "0002-x" }, autoStart: false }, { now: 1, rand: 0 });
    const created = r.effects.find((e) => e.kind === "event" && e.type === "run.created");
    expect(created && created.kind === "event" ? created.data?.labels : undefined).toEqual({ [BRANCH_LABEL]: "0002-x" });
  });
});
