import { describe, expect, it } from "vitest";
import { RefusalCode } from "@orch/contracts";
import { Drive, expectAccepted, expectRefused } from "./drive.js";

/**
 * CI reports acting on a protocol's steps (the gateway's webhooks, seed 004): a step that waits in
 * needs_qa is judged by CI. Success completes it (a forced approve) or starts its QA (run_qa);
 * failure fails it and blocks the protocol (fail_step with block: true), as seed 004's
 * StepRun model has it (needs_qa → completed | failed).
 */

function waitingForQa(): Drive {
  const d = Drive.of("protocol", { input: { protocol_name: "feature-x" } });
  d.start();
  expectAccepted(d.succeed("plan", { steps: [{ id: "impl", qa: { auto: false } }, { id: "docs" }] }));
  expectAccepted(d.signal({ name: "run_step", stepId: "impl" }));
  d.succeed("impl", { diff: "+1" });
  expect(d.step("impl")).toBe("needs_qa");
  return d;
}

describe("fail_step on a step waiting in needs_qa", () => {
  it("fails it and, with block: true, blocks the protocol", () => {
    const d = waitingForQa();
    d.tick(5);
    expectAccepted(d.fail("CI failed; protocol blocked", "impl", { block: true, actor: "webhook:github" }));
    expect(d.step("impl")).toBe("failed");
    expect(d.status).toBe("blocked");
    expect(d.context.error).toBe("CI failed; protocol blocked");
    expect(d.eventsOf("step.failed", d.last.effects).map((e) => e.data)).toEqual([
      expect.objectContaining({ stepId: "impl", from: "needs_qa", to: "failed", error: "CI failed; protocol blocked", code: "FAILED" }),
    ]);
    // The step's output is kept; a retry runs it again and the protocol runs.
    expect(d.stepCtx("impl").output).toEqual({ diff: "+1" });
    expectAccepted(d.signal({ name: "run_step", stepId: "impl" }));
    expect(d.step("impl")).toBe("running");
    expect(d.stepCtx("impl").retries).toBe(1);
    expect(d.status).toBe("running");
  });

  it("without a step id it still only picks a running step", () => {
    const d = waitingForQa();
    expectRefused(d.fail("CI failed"), RefusalCode.IllegalTransition, /no step is running/);
  });

  it("complete_step is still refused there (a forced approve completes it)", () => {
    const d = waitingForQa();
    expectRefused(d.complete(undefined, "impl"), RefusalCode.IllegalTransition, /not running/);
    expectAccepted(d.signal({ name: "approve", stepId: "impl", force: true }));
    expect(d.step("impl")).toBe("completed");
  });

  it("fail_step on a completed, pending or QA-running step is still refused", () => {
    const d = waitingForQa();
    expectRefused(d.fail("x", "docs"), RefusalCode.IllegalTransition, /docs is pending, not running/);
    expectAccepted(d.signal({ name: "run_qa", stepId: "impl" }));
    expectRefused(d.fail("x", "impl"), RefusalCode.IllegalTransition, /impl is qa, not running/);
    d.succeed("impl", { verdict: "pass" });
    expect(d.step("impl")).toBe("completed");
    expectRefused(d.fail("x", "impl"), RefusalCode.IllegalTransition, /impl is completed, not running/);
  });
});
