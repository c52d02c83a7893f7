import { describe, expect, it } from "vitest";
import { SignalSchema } from "@orch/contracts";
import { signalOfTrigger, WORKFLOW_TRIGGERS } from "../src/surfaces/workflows/routes.js";

/** Seed 002's triggers are translated at its surface into the kernel signals they stand for. */
describe("signalOfTrigger", () => {
  it("maps each trigger to its kernel signal", () => {
    expect(signalOfTrigger("start")).toEqual({ signal: { name: "start" } });
    expect(signalOfTrigger("agent_complete")).toEqual({ signal: { name: "complete_step" } });
    expect(signalOfTrigger("agent_complete", { spec: "v1" })).toEqual({ signal: { name: "complete_step", output: { spec: "v1" } } });
    expect(signalOfTrigger("error", { error: "agent crashed" })).toEqual({ signal: { name: "fail_step", error: "agent crashed" } });
    expect(signalOfTrigger("error")).toEqual({ signal: { name: "fail_step", error: "phase failed" } });
    expect(signalOfTrigger("error", { error: "" })).toEqual({ signal: { name: "fail_step", error: "phase failed" } });
    expect(signalOfTrigger("human_approved")).toEqual({ signal: { name: "approve" } });
    expect(signalOfTrigger("human_approved", { approved: true })).toEqual({ signal: { name: "approve", output: { approved: true } } });
    expect(signalOfTrigger("human_rejected", { feedback: "  too thin " })).toEqual({ signal: { name: "reject" }, reason: "too thin" });
    expect(signalOfTrigger("human_rejected", { other: 1 })).toEqual({ signal: { name: "reject" } });
  });

  it("sends only signals the kernel takes", () => {
    for (const t of WORKFLOW_TRIGGERS) {
      for (const r of [undefined, { error: "x".repeat(20_000), reason: "r" }]) {
        expect(SignalSchema.safeParse(signalOfTrigger(t, r).signal).success).toBe(true);
      }
    }
    expect(SignalSchema.safeParse({ name: "advance", trigger: "start" }).success).toBe(false);
  });
});
