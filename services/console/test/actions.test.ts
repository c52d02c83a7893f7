import { describe, expect, it } from "vitest";
import { runActions } from "../src/actions.js";
import type { Run, Step } from "../src/types.js";

/** The run actions the console offers: only those the run's state allows. */

const step = (id: string, status: Step["status"], extra: Partial<Step> = {}): Step => ({
  id,
  runId: "r",
  index: 0,
  status,
  role: "implementer",
  type: "code",
  stage: "main",
  maxAttempts: 3,
  attempt: 1,
  retries: 0,
  reworks: 0,
  iteration: 0,
  ...extra,
});

const run = (status: Run["status"], steps: Step[], extra: Partial<Run> = {}): Run =>
  ({
    id: "r",
    projectId: "p",
    definition: { id: "d", version: 1 },
    view: "speckit",
    mode: "mock",
    labels: {},
    status,
    createdAt: "2026-01-01T00:00:00.000Z",
    updatedAt: "2026-01-01T00:00:00.000Z",
    seq: 1,
    stepsRun: 0,
    input: {},
    steps,
    facts: {},
    usage: { tokens: 0, tokensIn: 0, tokensOut: 0, costUsd: 0, wallMs: 0, calls: 0 },
    usageBy: { phase: {}, role: {}, model: {} },
    ...extra,
  }) as Run;

const names = (r: Run) => runActions(r).map((a) => a.name);

describe("runActions", () => {
  it("offers nothing on a finished run", () => {
    for (const s of ["completed", "failed", "cancelled"] as const) expect(names(run(s, [step("a", "completed")]))).toEqual([]);
  });

  it("pause and cancel while running; resume (not pause) when paused; only cancel when pending", () => {
    expect(names(run("running", [step("a", "running", { startedAt: "2026-01-01T00:00:01.000Z" })]))).toEqual(["pause", "cancel"]);
    expect(names(run("paused", [step("a", "pending")]))).toEqual(["resume", "cancel"]);
    expect(names(run("pending", [step("a", "pending")]))).toEqual(["cancel"]);
  });

  it("retry latest when the step started last failed or is blocked; run next step when nothing is in flight", () => {
    const steps = [
      step("a", "completed", { startedAt: "2026-01-01T00:00:01.000Z" }),
      step("b", "failed", { startedAt: "2026-01-01T00:00:02.000Z" }),
      step("c", "pending"),
    ];
    expect(names(run("blocked", steps))).toEqual(["pause", "retry_latest", "run_next_step", "cancel"]);
    const busy = [step("a", "waiting_approval", { startedAt: "2026-01-01T00:00:01.000Z" }), step("b", "pending")];
    expect(names(run("running", busy))).toEqual(["pause", "cancel"]);
  });

  it("extend budget or abort at a budget gate, and open PR for a protocol run without one", () => {
    expect(names(run("waiting", [step("a", "pending")], { gate: "run:* tokens" }))).toEqual(["extend_budget", "abort", "pause", "cancel"]);
    expect(names(run("running", [step("a", "pending")], { view: "protocol" }))).toContain("open_pr");
    const withPr = run("running", [step("a", "pending")], { view: "protocol", pullRequest: { state: "open" } as Run["pullRequest"] });
    expect(names(withPr)).not.toContain("open_pr");
  });
});
