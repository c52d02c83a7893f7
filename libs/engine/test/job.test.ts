import { describe, expect, it } from "vitest";
import { RefusalCode } from "@orch/contracts";
import { backoffMs, builtin, missingSteps, type RetryPolicy } from "../src/index.js";
import { Drive, expectAccepted, expectRefused, T0 } from "./drive.js";

/**
 * Seed 000 (Orchestrator v0) on the engine: a job is a run of the `job` built-in whose steps come
 * with it, in order; the loop guard (wall clock, then step budget) is checked before each step; a
 * failing step is retried at most twice with backoff min(500, 50·2^attempt) ms + 0–30 ms jitter.
 */

/** Seed 000's steps as a chain: each needs the one before it. */
const chain = (...types: string[]) => types.map((type, i) => ({ id: `s${i}`, type, ...(i > 0 ? { needs: [`s${i - 1}`] } : {}) }));

function job(types: string[], limits: { maxSteps?: number; maxWallMs?: number } = { maxSteps: 5 }, rand = 0.5): Drive {
  return Drive.of("job", { autoStart: true, input: { goal: "g" }, steps: chain(...types), limits }, { rand });
}

describe("job (seed 000): the definition", () => {
  it("takes its steps at creation, runs one at a time, retries like the original", () => {
    const cd = builtin("job");
    expect(cd.def).toMatchObject({ view: "job", dynamicSteps: true, execution: "auto", onStepFailure: "fail" });
    expect(cd.def.limits.maxConcurrentSteps).toBe(1);
    expect(cd.def.retry).toMatchObject({ maxAttempts: 3, initialMs: 100, multiplier: 2, maxMs: 500, jitterMs: 30, nonRetryable: ["UNKNOWN_STEP_TYPE"] });
    expect(cd.steps).toEqual([]);
  });

  it("the backoff is min(500, 50·2^attempt) plus 0–30 ms jitter", () => {
    const p = builtin("job").def.retry as RetryPolicy;
    for (const [retry, base] of [
      [1, 100],
      [2, 200],
      [3, 400],
      [4, 500],
      [7, 500],
    ] as const) {
      expect(Math.min(500, 50 * 2 ** retry)).toBe(base);
      expect(backoffMs(p, retry, 0)).toBe(base);
      expect(backoffMs(p, retry, 0.5)).toBe(base + 15);
      expect(backoffMs(p, retry, 0.999999)).toBe(base + 29);
      expect(backoffMs(p, retry, 1)).toBeLessThanOrEqual(base + 30);
    }
  });

  it("a definition whose runs bring their steps, with no default: a run that brings none is refused, not left waiting", () => {
    expect(builtin("job").def.defaultSteps).toEqual([expect.objectContaining({ id: "s0", type: "dev.log" })]);
    expect(missingSteps(builtin("job"), [])).toBeNull();
    expect(missingSteps(builtin("task"), [])).toMatch(/steps is required/);
    expect(missingSteps(builtin("task"), [{ id: "a" }])).toBeNull();
    expect(() => Drive.of("task", { autoStart: true, steps: [] })).toThrow(
      /definition task@1 runs the steps its runs bring, and this one brings none: steps is required/,
    );
    // Runs that wait for a human (manual execution) or plan their steps are not refused.
    expect(missingSteps(builtin("task.queue"), [])).toBeNull();
    expect(missingSteps(builtin("protocol"), [])).toBeNull();
  });

  it("refuses steps that need an unknown step at creation", () => {
    expect(() => Drive.of("job", { autoStart: true, steps: [{ id: "a", type: "ci", needs: ["zz"] }] })).toThrow(/unknown step/);
  });
});

describe("job: happy path", () => {
  it("runs every step in order, one at a time, and succeeds", () => {
    const d = job(["ci", "docs"], { maxSteps: 3, maxWallMs: 5_000 });
    expect(d.status).toBe("running");
    // Steps a run is created with are listed in run.created; its start is its status change from pending.
    expect(d.eventTypes()).toEqual(["run.created", "run.status_changed", "step.started"]);
    expect(d.eventsOf("run.created")[0]!.data).toMatchObject({ definition: { id: "job", version: 1 }, view: "job", input: { goal: "g" }, steps: ["s0", "s1"] });
    expect(d.eventsOf("run.status_changed")[0]!.data).toMatchObject({ from: "pending", to: "running", trigger: "START", stage: "main" });
    expect(d.eventsOf("step.started")[0]!.data).toMatchObject({ stepId: "s0", index: 0, attempt: 1 });
    // What runs (its type, role, payload) is the work item the same transition dispatches, not the start event.
    for (const k of ["type", "role", "title", "payload"]) expect(d.eventsOf("step.started")[0]!.data).not.toHaveProperty(k);
    expect(d.newWork()).toEqual([expect.objectContaining({ stepId: "s0", type: "ci", role: "implementer", kind: "execute", attemptId: "r1.s0.1", index: 0 })]);
    expect(d.timerEffects()).toEqual([{ kind: "timer", op: "set", timerId: "r1.wall", dueAt: T0 + 5_000 + 1, timerKind: "wall_clock" }]);
    expect(d.statuses()).toEqual({ s0: "running", s1: "pending" });

    d.tick(10);
    expectAccepted(d.succeed("s0", undefined, { notes: ["done"] }));
    expect(d.eventTypes()).toEqual(["step.succeeded", "step.started"]);
    expect(d.eventsOf("step.succeeded", d.last.effects)[0]!.data).toMatchObject({ stepId: "s0", index: 0, notes: ["done"] });
    expect(d.newWork()).toEqual([expect.objectContaining({ stepId: "s1", type: "docs", attemptId: "r1.s1.1", index: 1 })]);
    expect(d.state.stepsCompleted).toBe(1);

    d.tick(10);
    d.succeed("s1");
    expect(d.status).toBe("completed");
    expect(d.state.stepsCompleted).toBe(2);
    // The run's end is one event: run.finished says the status it left and what ended it.
    expect(d.eventTypes()).toEqual(["step.succeeded", "run.finished"]);
    expect(d.eventsOf("run.finished", d.last.effects)[0]).toEqual({
      kind: "event",
      type: "run.finished",
      at: T0 + 20,
      data: { status: "completed", from: "running", trigger: "STAGE_DONE", stage: "main" },
    });
    expect(d.eventsOf("run.status_changed").map((e) => e.data!.to)).toEqual(["running"]);
    // The last step gave no output, so the run has no result.
    expect(d.context.result).toBeUndefined();
    expect(d.eventsOf("run.finished", d.last.effects)[0]!.data).not.toHaveProperty("result");
    expect(d.timerEffects()).toEqual([{ kind: "timer", op: "cancel", timerId: "r1.wall" }]);
    expect(d.timers.size).toBe(0);
    expect(d.context.startedAt).toBe(T0);
    // finished_at is the time of the last step's result (completion through STAGE_DONE ticks the clock).
    expect(d.context.finishedAt).toBe(T0 + 20);
  });

  it("runs steps given without needs one at a time, in order", () => {
    const d = Drive.of("job", {
      autoStart: true,
      steps: [
        { id: "a", type: "ci" },
        { id: "b", type: "ci" },
        { id: "c", type: "ci" },
      ],
      limits: { maxSteps: 5 },
    });
    expect(d.state.limits.maxConcurrentSteps).toBe(1);
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      expect(d.running()).toHaveLength(1);
      const id = d.running()[0]!;
      order.push(id);
      d.succeed(id);
    }
    expect(order).toEqual(["a", "b", "c"]);
    expect(d.status).toBe("completed");
  });

  it("arms no wall-clock timer without maxWallMs", () => {
    const d = job(["ci"], { maxSteps: 1 });
    expect(d.timer("wall_clock")).toBeUndefined();
    d.succeed("s0");
    expect(d.status).toBe("completed");
    expect(d.timerEffects()).toEqual([]);
  });

  it("a job created with no steps runs seed 000's implicit dev.log step, whatever created it, and succeeds", () => {
    for (const steps of [[], undefined]) {
      const d = Drive.of("job", { autoStart: true, input: { goal: "g" }, ...(steps ? { steps } : {}) });
      expect(d.eventsOf("run.created")[0]!.data).toMatchObject({ steps: ["s0"] });
      expect(d.newWork()).toEqual([expect.objectContaining({ stepId: "s0", type: "dev.log", role: "implementer", attemptId: "r1.s0.1" })]);
      d.succeed("s0");
      expect(d.status).toBe("completed");
    }
  });
});

describe("job: the retry rule", () => {
  it("retries a failing step twice with jittered backoff (115 then 215 ms at rand 0.5), then succeeds", () => {
    const d = job(["ci", "docs"]);
    d.tick(5);
    d.failResult("s0", { code: "MOCK_FAILURE", message: "boom" });
    expect(d.step("s0")).toBe("retry_wait");
    expect(d.status).toBe("running");
    expect(d.eventsOf("step.retrying", d.last.effects)[0]!.data).toMatchObject({ stepId: "s0", index: 0, retry: 1, backoffMs: 115 });
    expect(d.timerEffects()).toEqual([{ kind: "timer", op: "set", timerId: "r1.s0.1.retry", dueAt: T0 + 5 + 115, timerKind: "retry", stepId: "s0" }]);
    expect(d.newWork()).toEqual([]);

    d.fire("r1.s0.1.retry");
    expect(d.now).toBe(T0 + 120);
    expect(d.step("s0")).toBe("running");
    expect(d.newWork()).toEqual([expect.objectContaining({ stepId: "s0", attemptId: "r1.s0.2", attempt: 2 })]);
    expect(d.eventsOf("step.started", d.last.effects)[0]!.data).toMatchObject({ attempt: 2, reason: "retry", try: 2 });

    d.tick(10);
    d.failResult("s0");
    expect(d.eventsOf("step.retrying", d.last.effects)[0]!.data).toMatchObject({ retry: 2, backoffMs: 215 });
    expect(d.timer("retry", "s0")!.dueAt).toBe(T0 + 130 + 215);
    d.fireTimers("retry");
    expect(d.work.get("s0")!.attemptId).toBe("r1.s0.3");
    d.succeed("s0");
    expect(d.statuses()).toEqual({ s0: "completed", s1: "running" });
    // The next step starts with its own retry budget.
    d.failResult("s1");
    expect(d.eventsOf("step.retrying", d.last.effects)[0]!.data).toMatchObject({ stepId: "s1", retry: 1 });
  });

  for (const [rand, first, second] of [
    [0, 100, 200],
    [0.999999, 129, 229],
  ] as const) {
    it(`backs off ${first} then ${second} ms at rand ${rand} (within 100–130 and 200–230)`, () => {
      const d = job(["ci"], { maxSteps: 5 }, rand);
      d.failResult("s0");
      expect(d.eventsOf("step.retrying", d.last.effects)[0]!.data!.backoffMs).toBe(first);
      d.fireTimers("retry");
      d.failResult("s0");
      expect(d.eventsOf("step.retrying", d.last.effects)[0]!.data!.backoffMs).toBe(second);
    });
  }

  it("fails the job on the third failed attempt (at most 2 retries)", () => {
    const d = job(["ci", "docs"]);
    for (let i = 0; i < 2; i++) {
      d.failResult("s0");
      d.fireTimers("retry");
    }
    d.tick(1);
    d.failResult("s0", { code: "MOCK_FAILURE", message: "boom" });
    expect(d.step("s0")).toBe("failed");
    expect(d.status).toBe("failed");
    expect(d.context.error).toBe("boom");
    // Settling the failed run (s1 cancelled) comes before its end: run.finished is the last event.
    expect(d.eventTypes()).toEqual(["step.failed", "step.cancelled", "run.finished"]);
    expect(d.eventsOf("step.failed", d.last.effects)[0]!.data).toMatchObject({ index: 0, error: "boom", code: "MOCK_FAILURE" });
    expect(d.eventsOf("step.cancelled", d.last.effects)[0]!.data).toMatchObject({ stepId: "s1" });
    expect(d.eventsOf("run.finished", d.last.effects)[0]!.data).toEqual({ status: "failed", from: "running", trigger: "FAIL", stage: "main", error: "boom" });
    expect(d.eventsOf("run.status_changed", d.last.effects)).toEqual([]);
    expect(d.dispatched.filter((w) => w.stepId === "s0")).toHaveLength(3);
    expect(d.dispatched.filter((w) => w.stepId === "s1")).toHaveLength(0);
    expect(d.step("s1")).toBe("cancelled");
    expect(d.timers.size).toBe(0);
  });

  it("fails at once on UNKNOWN_STEP_TYPE (non-retryable), even if the error says retryable", () => {
    const d = job(["nope"]);
    d.failResult("s0", { code: "UNKNOWN_STEP_TYPE", message: "no adapter for nope", retryable: true });
    expect(d.step("s0")).toBe("failed");
    expect(d.status).toBe("failed");
    expect(d.context.error).toBe("no adapter for nope");
    expect(d.eventTypes()).not.toContain("step.retrying");
    expect(d.dispatched).toHaveLength(1);
  });

  it("fails at once on an error marked non-retryable", () => {
    const d = job(["ci"]);
    d.failResult("s0", { code: "BAD", retryable: false });
    expect(d.status).toBe("failed");
    expect(d.dispatched).toHaveLength(1);
  });

  it("ignores a retry timer of an earlier attempt: nothing changes", () => {
    const d = job(["ci"]);
    d.failResult("s0");
    const before = d.state;
    d.tick(40);
    const r = d.apply({ type: "timer", timerId: "r1.s0.9.retry", kind: "retry", stepId: "s0" });
    expectAccepted(r);
    expect(r.effects).toEqual([]);
    expect(r.changed).toBe(false);
    expect(r.state).toEqual(before);
    expect(d.step("s0")).toBe("retry_wait");
    expect(d.newWork()).toEqual([]);
  });
});

describe("job: the loop guard", () => {
  it("checks the wall clock before each step → wall_clock_exceeded", () => {
    const d = job(["ci", "ci"], { maxSteps: 5, maxWallMs: 100 });
    d.tick(101);
    d.succeed("s0");
    expect(d.status).toBe("failed");
    expect(d.context.error).toBe("wall_clock_exceeded");
    expect(d.newWork()).toEqual([]);
    expect(d.step("s0")).toBe("completed");
    expect(d.step("s1")).toBe("cancelled");
    expect(d.eventsOf("run.finished", d.last.effects)[0]!.data).toMatchObject({ status: "failed", error: "wall_clock_exceeded" });
  });

  it("lets a step start exactly at the wall-clock limit", () => {
    const d = job(["ci", "ci"], { maxSteps: 5, maxWallMs: 100 });
    d.tick(100);
    d.succeed("s0");
    expect(d.status).toBe("running");
    expect(d.running()).toEqual(["s1"]);
  });

  it("fails with step_budget_exceeded before a step beyond maxSteps", () => {
    const d = job(["ci", "ci", "ci"], { maxSteps: 2 });
    d.succeed("s0");
    d.succeed("s1");
    expect(d.status).toBe("failed");
    expect(d.context.error).toBe("step_budget_exceeded");
    expect(d.state.stepsCompleted).toBe(2);
    expect(d.newWork()).toEqual([]);
    expect(d.step("s2")).toBe("cancelled");
  });

  it("succeeds when the last step uses up exactly maxSteps", () => {
    const d = job(["ci", "ci"], { maxSteps: 2 });
    d.succeed("s0");
    d.succeed("s1");
    expect(d.status).toBe("completed");
  });

  it("checks the wall clock before the step budget", () => {
    const d = job(["ci", "ci"], { maxSteps: 1, maxWallMs: 50 });
    d.tick(60);
    d.succeed("s0");
    expect(d.context.error).toBe("wall_clock_exceeded");
  });

  it("the wall-clock timer fails a hanging job; its late result is ignored and never counted", () => {
    const d = job(["ci", "ci"], { maxSteps: 5, maxWallMs: 100 });
    const attempt = d.work.get("s0")!.attemptId;
    const fired = d.fire("r1.wall");
    expect(d.now).toBe(T0 + 101);
    expect(fired.changed).toBe(true);
    expect(d.status).toBe("failed");
    expect(d.context.error).toBe("wall_clock_exceeded");
    expect(d.step("s0")).toBe("cancelled");
    expect(d.eventsOf("run.status_changed", fired.effects)).toEqual([]);
    expect(d.eventTypes(fired.effects)).toEqual(["step.cancelled", "step.cancelled", "run.finished"]);
    expect(d.eventsOf("run.finished", fired.effects)[0]!.data).toEqual({
      status: "failed",
      from: "running",
      trigger: "WALL_CLOCK",
      stage: "main",
      error: "wall_clock_exceeded",
    });

    const late = d.result("s0", true, { attemptId: attempt });
    expectAccepted(late);
    expect(d.eventTypes()).toEqual(["step.result_ignored"]);
    expect(d.status).toBe("failed");
    expect(d.state.stepsCompleted).toBe(0);
    expect(d.step("s0")).toBe("cancelled");
  });

  it("a wall-clock timer after the job finished changes nothing", () => {
    const d = job(["ci"], { maxSteps: 5, maxWallMs: 100 });
    d.succeed("s0");
    const r = d.apply({ type: "timer", timerId: "r1.wall", kind: "wall_clock" });
    expectAccepted(r);
    expect(r.changed).toBe(false);
    expect(d.status).toBe("completed");
  });
});

describe("job: cancel", () => {
  it("cancels a running job at once; the in-flight result is ignored", () => {
    const d = job(["ci", "docs"], { maxSteps: 5, maxWallMs: 1_000 });
    d.tick(5);
    expectAccepted(d.signal({ name: "cancel" }, { actor: "user", reason: "changed my mind" }));
    expect(d.status).toBe("cancelled");
    expect(d.statuses()).toEqual({ s0: "cancelled", s1: "cancelled" });
    // The steps it cancels come first; run.finished (who cancelled it, why, from what) is last.
    expect(d.eventTypes()).toEqual(["step.cancelled", "step.cancelled", "run.finished"]);
    expect(d.eventsOf("step.cancelled", d.last.effects).map((e) => e.data!.stepId)).toEqual(["s0", "s1"]);
    expect(d.eventsOf("run.finished", d.last.effects)[0]).toEqual({
      kind: "event",
      type: "run.finished",
      at: T0 + 5,
      data: { status: "cancelled", from: "running", trigger: "CANCEL", actor: "user", reason: "changed my mind", stage: "main" },
    });
    expect(d.timerEffects()).toEqual([{ kind: "timer", op: "cancel", timerId: "r1.wall" }]);
    expect(d.context.finishedAt).toBe(T0 + 5);

    d.succeed("s0");
    expect(d.eventTypes()).toEqual(["step.result_ignored"]);
    expect(d.state.stepsCompleted).toBe(0);

    const again = d.signal({ name: "cancel" });
    expectAccepted(again);
    expect(again.changed).toBe(false);
  });

  it("cancels a job waiting for a retry and disarms its retry timer", () => {
    const d = job(["ci"]);
    d.failResult("s0");
    expect(d.timer("retry", "s0")).toBeDefined();
    d.signal({ name: "cancel" });
    expect(d.timerEffects()).toEqual([{ kind: "timer", op: "cancel", timerId: "r1.s0.1.retry" }]);
    expect(d.timers.size).toBe(0);
    const r = d.apply({ type: "timer", timerId: "r1.s0.1.retry", kind: "retry", stepId: "s0" });
    expect(r.changed).toBe(false);
    expect(d.newWork()).toEqual([]);
  });

  it("cancels a queued job", () => {
    const d = Drive.of("job", { steps: chain("ci"), limits: { maxSteps: 1 } });
    expect(d.status).toBe("pending");
    d.signal({ name: "cancel" });
    expect(d.status).toBe("cancelled");
    expect(d.step("s0")).toBe("cancelled");
    expect(d.dispatched).toEqual([]);
    expectRefused(d.signal({ name: "start" }), RefusalCode.TerminalState);
  });
});

describe("job: late and stale results", () => {
  it("a result for an earlier attempt is ignored and never counted", () => {
    const d = job(["ci", "docs"]);
    const first = d.work.get("s0")!.attemptId;
    d.failResult("s0");
    d.fireTimers("retry");
    const r = d.result("s0", true, { attemptId: first });
    expectAccepted(r);
    expect(d.eventTypes()).toEqual(["step.result_ignored"]);
    expect(d.eventsOf("step.result_ignored", r.effects)[0]!.data).toMatchObject({ stepId: "s0", attemptId: first, current: "r1.s0.2" });
    expect(d.step("s0")).toBe("running");
    expect(d.state.stepsCompleted).toBe(0);
  });

  it("a result arriving during the backoff is ignored", () => {
    const d = job(["ci"]);
    d.failResult("s0");
    d.succeed("s0");
    expect(d.eventTypes()).toEqual(["step.result_ignored"]);
    expect(d.step("s0")).toBe("retry_wait");
  });

  it("a duplicate result is ignored and the step is counted once", () => {
    const d = job(["ci", "docs", "ci"]);
    d.succeed("s0");
    expect(d.state.stepsCompleted).toBe(1);
    const dup = d.result("s0", true, { attemptId: "r1.s0.1" });
    expectAccepted(dup);
    expect(d.eventTypes()).toEqual(["step.result_ignored"]);
    expect(d.state.stepsCompleted).toBe(1);
    expect(d.running()).toEqual(["s1"]);
    expect(d.dispatched.filter((w) => w.stepId === "s1")).toHaveLength(1);
  });

  it("a result for a step the job does not have is recorded as ignored", () => {
    const d = job(["ci"]);
    const r = d.apply({ type: "result", stepId: "ghost", attemptId: "r1.ghost.1", kind: "execute", ok: true });
    expectAccepted(r);
    expect(d.events(r.effects)).toEqual([
      expect.objectContaining({ type: "step.result_ignored", data: expect.objectContaining({ stepId: "ghost", why: "unknown step" }) }),
    ]);
    expect(d.step("s0")).toBe("running");
  });
});

it("the job view's history has what seed 000's SSE frames need", () => {
  const d = job(["ci", "docs"], { maxSteps: 5 });
  d.failResult("s0");
  d.fireTimers("retry");
  d.succeed("s0");
  d.failResult("s1", { retryable: false, message: "nope" });
  const frames = d
    .allEvents()
    .filter(
      (e) =>
        (e.type === "run.status_changed" && e.data?.from === "pending") ||
        ["step.started", "step.succeeded", "step.retrying", "step.failed", "run.finished"].includes(e.type),
    );
  expect(frames.map((e) => `${e.type}${e.data?.index !== undefined ? `#${e.data.index}` : ""}`)).toEqual([
    "run.status_changed",
    "step.started#0",
    "step.retrying#0",
    "step.started#0",
    "step.succeeded#0",
    "step.started#1",
    "step.failed#1",
    "run.finished",
  ]);
});
