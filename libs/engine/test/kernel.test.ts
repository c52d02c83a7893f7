import { describe, expect, it } from "vitest";
import { RefusalCode } from "@orch/contracts";
import {
  applyAction,
  budgetKey,
  compileDefinition,
  covers,
  createRun,
  DefinitionError,
  emptyLedger,
  evaluate,
  exhausted,
  parseDefinition,
  parseDefinitionText,
  record,
  resolveTemplate,
  runMachineFor,
  type Budget,
  type DefinitionInput,
} from "../src/index.js";
import { Drive, define, expectAccepted, expectRefused, T0 } from "./drive.js";

/** Generic engine behaviours, on small inline definitions. */

const def = (steps: DefinitionInput["steps"], extra: Partial<DefinitionInput> = {}): DefinitionInput => ({ id: "t", version: 1, steps, ...extra });
const run = (steps: DefinitionInput["steps"], extra: Partial<DefinitionInput> = {}, opts: Parameters<typeof Drive.of>[1] = {}, clock: { rand?: number } = {}) =>
  Drive.of(define(def(steps, extra)), { autoStart: true, ...opts }, clock);

describe("scheduling: the DAG", () => {
  it("fans out and in: b and c (need a) start together, d (needs b and c) only after both", () => {
    const d = run([{ id: "a" }, { id: "b", needs: ["a"] }, { id: "c", needs: ["a"] }, { id: "d", needs: ["b", "c"] }]);
    expect(d.newWork().map((w) => w.stepId)).toEqual(["a"]);
    d.succeed("a");
    expect(d.newWork().map((w) => w.stepId)).toEqual(["b", "c"]);
    expect(d.statuses()).toEqual({ a: "completed", b: "running", c: "running", d: "pending" });
    d.succeed("c");
    expect(d.newWork()).toEqual([]);
    expect(d.step("d")).toBe("pending");
    d.succeed("b");
    expect(d.newWork().map((w) => w.stepId)).toEqual(["d"]);
    d.succeed("d");
    expect(d.status).toBe("completed");
    expect(d.state.stepsCompleted).toBe(4);
  });

  it("a skipped step satisfies the steps that need it", () => {
    const d = run([{ id: "a" }, { id: "b" }, { id: "c", needs: ["a", "b"] }], {}, { autoStart: false });
    expectAccepted(d.signal({ name: "skip_step", stepId: "b" }, { reason: "not needed" }));
    expect(d.eventsOf("step.skipped", d.last.effects)[0]!.data).toMatchObject({ stepId: "b", from: "pending", to: "skipped" });
    d.start();
    // Entering the initial stage for the first time resets nothing: the skip stands.
    // A definition without stages has one implicit stage, entered without an event.
    expect(d.eventsOf("run.stage_entered", d.last.effects)).toEqual([]);
    expect(d.eventsOf("step.reset", d.last.effects)).toEqual([]);
    expect(d.statuses()).toEqual({ a: "running", b: "skipped", c: "pending" });
    d.succeed("a");
    expect(d.running()).toEqual(["c"]);
  });

  it("skip_step works on a pending step of a running run; others are refused", () => {
    const d = run([{ id: "a" }, { id: "b", needs: ["a"] }, { id: "c", needs: ["b"] }]);
    expectAccepted(d.signal({ name: "skip_step", stepId: "b" }));
    d.succeed("a");
    expect(d.running()).toEqual(["c"]);
    expectRefused(d.signal({ name: "skip_step", stepId: "c" }), RefusalCode.IllegalTransition, /only a pending, failed or blocked step/);
    expectRefused(d.signal({ name: "skip_step", stepId: "zz" }), RefusalCode.NotFound);
    d.succeed("c");
    expect(d.status).toBe("completed");
  });

  it("respects maxConcurrentSteps (definition limit, or the run's override)", () => {
    const steps = ["a", "b", "c", "d", "e"].map((id) => ({ id }));
    const byDefinition = run(steps, { limits: { maxConcurrentSteps: 2 } });
    expect(byDefinition.state.limits).toEqual({ maxConcurrentSteps: 2, maxTriggerDepth: 3 });
    expect(byDefinition.running()).toEqual(["a", "b"]);

    // The same limit given by the run.
    const d = run(steps, {}, { limits: { maxConcurrentSteps: 2 } });
    expect(d.running()).toEqual(["a", "b"]);
    d.succeed("b");
    expect(d.newWork().map((w) => w.stepId)).toEqual(["c"]);
    expect(d.running()).toEqual(["a", "c"]);
    d.succeed("a");
    d.succeed("c");
    expect(d.running()).toEqual(["d", "e"]);

    const e = run(steps, { limits: { maxConcurrentSteps: 2 } }, { limits: { maxConcurrentSteps: 4 } });
    expect(e.running()).toEqual(["a", "b", "c", "d"]);
  });

  it("a step waiting for a retry or in QA still takes a slot", () => {
    const d = run([{ id: "a", qa: { auto: true } }, { id: "b" }, { id: "c" }], {}, { limits: { maxConcurrentSteps: 2 } });
    expect(d.running()).toEqual(["a", "b"]);
    d.failResult("b");
    expect(d.step("b")).toBe("retry_wait");
    expect(d.newWork()).toEqual([]);
    d.succeed("a");
    expect(d.step("a")).toBe("qa");
    expect(d.newWork().map((w) => w.kind)).toEqual(["qa"]);
    expect(d.step("c")).toBe("pending");
    d.succeed("a");
    expect(d.running()).toEqual(["c"]);
  });

  it("an optional step's failure neither fails nor blocks the run; `sets.failed` records it", () => {
    const d = run([{ id: "a", optional: true, sets: { failed: { lintFailed: true } } }, { id: "b" }]);
    d.failResult("a", { retryable: false });
    expect(d.status).toBe("running");
    expect(d.state.facts.lintFailed).toBe(true);
    d.succeed("b");
    expect(d.status).toBe("completed");
  });

  it("a definition's planning step adds steps and, with auto execution, runs them", () => {
    const d = run([], { dynamicSteps: true, planning: { id: "plan", role: "architect" } });
    expect(d.status).toBe("planning");
    d.succeed("plan", { steps: [{ id: "x" }, { id: "y", needs: ["x"] }] });
    expect(d.status).toBe("running");
    expect(d.running()).toEqual(["x"]);
  });

  it("creating a run with steps needs a dynamic definition", () => {
    expect(() => Drive.of(define(def([{ id: "a" }])), { steps: [{ id: "b" }] })).toThrow(/does not take steps/);
  });
});

describe("inputs templates", () => {
  it("resolves ${…} against earlier outputs, facts and the input when the work is dispatched", () => {
    const d = run(
      [
        { id: "a" },
        {
          id: "b",
          needs: ["a"],
          inputs: {
            whole: "${steps.a.output.x}",
            object: "${steps.a.output.obj}",
            text: "x=${steps.a.output.x} obj=${steps.a.output.obj}",
            input: "${input.name}",
            fact: "${facts.flag}",
            nested: ["${steps.a.output.obj.k}", { status: "${steps.a.status}" }],
            missing: "${steps.a.output.nope}",
            missingText: "[${steps.a.output.nope}]",
            literal: 5,
          },
        },
      ],
      { facts: { flag: "initial" } },
      { input: { name: "N" } },
    );
    d.setFacts({ flag: "changed" });
    d.succeed("a", { x: 42, obj: { k: "v" } });
    const w = d.newWork()[0]!;
    expect(w.stepId).toBe("b");
    expect(w.inputs).toEqual({
      whole: 42,
      object: { k: "v" },
      text: 'x=42 obj={"k":"v"}',
      input: "N",
      fact: "changed",
      nested: ["v", { status: "completed" }],
      missing: undefined,
      missingText: "[]",
      literal: 5,
    });
    expect(typeof w.inputs.whole).toBe("number");
  });

  it("resolveTemplate and evaluate are total: a path that leads nowhere is undefined", () => {
    expect(resolveTemplate("${a.b.c}", { a: 1 })).toBeUndefined();
    expect(resolveTemplate("${a.__proto__}", { a: {} })).toBeUndefined();
    expect(evaluate({ path: "a.b", exists: false }, {})).toBe(true);
    expect(
      evaluate(
        {
          all: [
            "x",
            { not: "y" },
            {
              any: [
                { path: "n", gt: 1 },
                { path: "n", lt: 0 },
              ],
            },
          ],
        },
        { x: true, y: false, n: 2 },
      ),
    ).toBe(true);
    expect(evaluate({ path: "n", in: [1, 2] }, { n: 3 })).toBe(false);
    expect(evaluate({ path: "o", eq: { a: [1] } }, { o: { a: [1] } })).toBe(true);
  });
});

describe("retry policy", () => {
  it("retries with min(maxMs, initialMs·multiplier^(n-1)) + jitter, up to maxAttempts", () => {
    const d = run([{ id: "a", retry: { maxAttempts: 4, initialMs: 1_000, multiplier: 3, maxMs: 5_000, jitterMs: 0 } }]);
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      d.failResult("a");
      delays.push(d.eventsOf("step.retrying", d.last.effects)[0]!.data!.backoffMs as number);
      d.fireTimers("retry");
    }
    expect(delays).toEqual([1_000, 3_000, 5_000]);
    d.failResult("a");
    expect(d.step("a")).toBe("failed");
    expect(d.dispatched).toHaveLength(4);
  });

  it("fails at once on a nonRetryable code (step policy merged over the definition's)", () => {
    const d = run([{ id: "a", retry: { nonRetryable: ["FATAL"] } }, { id: "b" }], {
      retry: { maxAttempts: 5, initialMs: 10, multiplier: 2, maxMs: 100, jitterMs: 0, nonRetryable: [] },
    });
    d.failResult("b", { code: "FLAKY" });
    expect(d.step("b")).toBe("retry_wait");
    expect(d.timer("retry", "b")!.dueAt).toBe(T0 + 10);
    d.failResult("a", { code: "FATAL", retryable: true });
    expect(d.step("a")).toBe("failed");
    expect(d.status).toBe("failed");
  });

  it("maxAttempts 1 means no retry", () => {
    const d = run([{ id: "a", retry: { maxAttempts: 1 } }]);
    d.failResult("a");
    expect(d.status).toBe("failed");
  });

  it("a manual retry of a failed step gets a fresh retry budget", () => {
    const d = run([{ id: "a", retry: { maxAttempts: 2, jitterMs: 0, initialMs: 5 } }], { onStepFailure: "block" });
    d.failResult("a");
    d.fireTimers("retry");
    d.failResult("a");
    expect(d.status).toBe("blocked");
    d.signal({ name: "retry_latest" });
    expect(d.stepCtx("a")).toMatchObject({ tries: 1, retries: 1 });
    d.failResult("a");
    expect(d.step("a")).toBe("retry_wait");
  });
});

describe("timeouts", () => {
  const policy = { maxAttempts: 2, initialMs: 10, multiplier: 2, maxMs: 100, jitterMs: 0, nonRetryable: [] };

  it("a step timeout arms a timer with each dispatch; a result in time disarms it", () => {
    const d = run([{ id: "a", timeoutMs: 100 }], { retry: policy });
    expect(d.timerEffects()).toEqual([{ kind: "timer", op: "set", timerId: "r1.a.1.timeout", dueAt: T0 + 100, timerKind: "step_timeout", stepId: "a" }]);
    expect(d.newWork()[0]!.timeoutMs).toBe(100);
    d.tick(50);
    d.succeed("a");
    expect(d.timerEffects()).toEqual([{ kind: "timer", op: "cancel", timerId: "r1.a.1.timeout" }]);
    expect(d.timers.size).toBe(0);
  });

  it("the timer firing retries the step, and fails it when no attempt is left", () => {
    const d = run(
      [
        { id: "a", timeoutMs: 100 },
        { id: "b", needs: ["a"] },
      ],
      { retry: policy },
    );
    const first = d.work.get("a")!.attemptId;
    d.fire("r1.a.1.timeout");
    expect(d.step("a")).toBe("retry_wait");
    expect(d.eventsOf("step.retrying", d.last.effects)[0]!.data).toMatchObject({
      retry: 1,
      backoffMs: 10,
      error: { code: "STEP_TIMEOUT", message: "step a timed out after 100 ms", retryable: true },
    });
    d.fireTimers("retry");
    expect(d.timer("step_timeout", "a")).toMatchObject({ timerId: "r1.a.2.timeout", dueAt: T0 + 110 + 100 });
    // The timed-out attempt's late result is ignored; so is its stale timer.
    d.result("a", true, { attemptId: first });
    expect(d.eventTypes()).toEqual(["step.result_ignored"]);
    const before = d.state;
    const stale = d.apply({ type: "timer", timerId: "r1.a.1.timeout", kind: "step_timeout", stepId: "a" });
    expect(stale.effects).toEqual([]);
    expect(stale.changed).toBe(false);
    expect(stale.state).toEqual(before);
    expect(d.step("a")).toBe("running");
    d.fire("r1.a.2.timeout");
    expect(d.step("a")).toBe("failed");
    expect(d.stepCtx("a").error).toEqual({ code: "STEP_TIMEOUT", message: "step a timed out after 100 ms", retryable: true });
    expect(d.status).toBe("failed");
    expect(d.context.error).toBe("step a timed out after 100 ms");
  });

  it("an approval timeout fails the step when nobody decides in time", () => {
    const d = run([{ id: "a", approval: { timeoutMs: 1_000, maxReworks: 1 } }]);
    d.tick(5);
    d.succeed("a", { v: 1 });
    expect(d.timerEffects()).toEqual([{ kind: "timer", op: "set", timerId: "r1.a.1.approval", dueAt: T0 + 1_005, timerKind: "approval_timeout", stepId: "a" }]);
    d.fire("r1.a.1.approval");
    expect(d.step("a")).toBe("failed");
    expect(d.stepCtx("a").error).toMatchObject({ code: "APPROVAL_TIMEOUT" });
    expect(d.status).toBe("failed");
  });

  it("a decision disarms the approval timer; a rework arms a new one", () => {
    const d = run([{ id: "a", approval: { timeoutMs: 1_000, maxReworks: 1 } }]);
    d.succeed("a", { v: 1 });
    d.reject(undefined, { reason: "again" });
    expect(d.timerEffects()).toEqual([{ kind: "timer", op: "cancel", timerId: "r1.a.1.approval" }]);
    d.succeed("a", { v: 2 });
    expect(d.timer("approval_timeout", "a")!.timerId).toBe("r1.a.2.approval");
    d.approve();
    expect(d.timerEffects()).toContainEqual({ kind: "timer", op: "cancel", timerId: "r1.a.2.approval" });
    expect(d.status).toBe("completed");
    const late = d.apply({ type: "timer", timerId: "r1.a.2.approval", kind: "approval_timeout", stepId: "a" });
    expect(late.changed).toBe(false);
  });

  it("an approval timer of an earlier revision changes nothing while the step waits again", () => {
    const d = run([{ id: "a", approval: { timeoutMs: 1_000, maxReworks: 1 } }]);
    d.succeed("a", { v: 1 });
    d.reject(undefined, { reason: "again" });
    d.succeed("a", { v: 2 });
    expect(d.step("a")).toBe("waiting_approval");
    const before = d.state;
    d.tick(5_000);
    const stale = d.apply({ type: "timer", timerId: "r1.a.1.approval", kind: "approval_timeout", stepId: "a" });
    expectAccepted(stale);
    expect(stale.changed).toBe(false);
    expect(stale.effects).toEqual([]);
    expect(stale.state).toEqual(before);
    expect(d.step("a")).toBe("waiting_approval");
  });
});

describe("loop policy", () => {
  const loopDef = (onExhausted: "continue" | "fail", until: unknown = { path: "steps.check.output.ok", eq: true }) =>
    define(
      def([
        { id: "pre" },
        { id: "build", needs: ["pre"] },
        { id: "check", needs: ["build"], loop: { backTo: "build", until: until as never, maxIterations: 2, onExhausted } },
        { id: "after", needs: ["check"] },
      ]),
    );

  it("resets the group and runs it again until the condition holds", () => {
    const d = Drive.of(loopDef("fail"), { autoStart: true });
    d.succeed("pre");
    d.succeed("build", { n: 1 });
    d.succeed("check", { ok: false });
    expect(d.eventTypes()).toEqual(["step.succeeded", "loop.iteration", "step.reset", "step.reset", "step.started"]);
    expect(d.eventsOf("loop.iteration", d.last.effects)[0]!.data).toEqual({ stepId: "check", backTo: "build", iteration: 1 });
    expect(d.statuses()).toEqual({ pre: "completed", build: "running", check: "pending", after: "pending" });
    expect(d.newWork()[0]).toMatchObject({ stepId: "build", iteration: 1, attemptId: "r1.build.2" });
    expect(d.state.loops).toEqual({ check: 1 });

    d.succeed("build", { n: 2 });
    expect(d.work.get("check")!.iteration).toBe(1);
    d.succeed("check", { ok: true });
    expect(d.statuses()).toEqual({ pre: "completed", build: "completed", check: "completed", after: "running" });
    expect(d.dispatched.filter((w) => w.stepId === "pre")).toHaveLength(1);
  });

  it("exhausted with onExhausted: continue → loop.exhausted, and the run goes on", () => {
    const d = Drive.of(loopDef("continue"), { autoStart: true });
    d.succeed("pre");
    for (let i = 0; i < 3; i++) {
      d.succeed("build");
      d.succeed("check", { ok: false });
    }
    expect(d.eventsOf("loop.exhausted", d.last.effects)[0]!.data).toEqual({ stepId: "check", iterations: 2 });
    expect(d.running()).toEqual(["after"]);
    expect(d.dispatched.filter((w) => w.stepId === "check")).toHaveLength(3);
  });

  it("exhausted with onExhausted: fail → the run fails", () => {
    const d = Drive.of(loopDef("fail"), { autoStart: true });
    d.succeed("pre");
    for (let i = 0; i < 3; i++) {
      d.succeed("build");
      d.succeed("check", { ok: false });
    }
    expect(d.status).toBe("failed");
    expect(d.context.error).toMatch(/loop at check did not converge in 2 iterations/);
    expect(d.step("after")).toBe("cancelled");
  });

  it("the condition can read the iteration count (loop.<stepId>)", () => {
    const d = Drive.of(loopDef("fail", { path: "loop.check", gte: 1 }), { autoStart: true });
    d.succeed("pre");
    d.succeed("build");
    d.succeed("check");
    expect(d.state.loops).toEqual({ check: 1 });
    d.succeed("build");
    d.succeed("check");
    expect(d.running()).toEqual(["after"]);
  });

  it("validates backTo (known, and not later than the looping step)", () => {
    expect(() => parseDefinition(def([{ id: "a", loop: { backTo: "zz", until: "facts.x", maxIterations: 1 } }]))).toThrow(DefinitionError);
    expect(() => parseDefinition(def([{ id: "a", loop: { backTo: "b", until: "facts.x", maxIterations: 1 } }, { id: "b" }]))).toThrow(/earlier step/);
  });
});

describe("triggers", () => {
  it("`run` dispatches the target now, whatever its dependencies", () => {
    const d = run([
      { id: "a", triggers: [{ on: "completed", action: "run", step: "x" }] },
      { id: "b", needs: ["a"] },
      { id: "x", needs: ["b"] },
    ]);
    d.succeed("a");
    expect(d.eventsOf("trigger.fired", d.last.effects)[0]!.data).toEqual({ from: "a", to: "x", action: "run", on: "completed", depth: 1 });
    expect(d.eventsOf("step.started", d.last.effects).map((e) => [e.data!.stepId, e.data!.reason])).toEqual([
      ["x", "trigger"],
      ["b", "auto"],
    ]);
    expect(d.stepCtx("x").depth).toBe(1);
  });

  it("`enqueue` makes a finished target pending again, and the scheduler runs it", () => {
    const d = run([
      { id: "a" },
      { id: "b", needs: ["a"], triggers: [{ on: "failed", action: "enqueue", step: "a" }], optional: true },
      { id: "c", needs: ["b"] },
    ]);
    d.succeed("a");
    d.failResult("b", { retryable: false });
    expect(d.eventsOf("trigger.fired", d.last.effects)[0]!.data).toMatchObject({ from: "b", to: "a", action: "enqueue", on: "failed" });
    expect(d.eventsOf("step.reset", d.last.effects)[0]!.data).toMatchObject({ stepId: "a", reason: "trigger" });
    expect(d.step("a")).toBe("running");
    expect(d.newWork()[0]).toMatchObject({ stepId: "a", attemptId: "r1.a.2" });
  });

  it("stops at maxTriggerDepth with trigger.skipped", () => {
    const d = run(
      [
        { id: "a", triggers: [{ on: "completed", action: "run", step: "x" }] },
        { id: "x", needs: ["a"], triggers: [{ on: "completed", action: "run", step: "y" }] },
        { id: "y", needs: ["x"] },
        { id: "z", needs: ["y"] },
      ],
      {},
      { limits: { maxTriggerDepth: 1 } },
    );
    d.succeed("a");
    expect(d.stepCtx("x").depth).toBe(1);
    d.succeed("x");
    expect(d.eventsOf("trigger.skipped", d.last.effects)[0]!.data).toEqual({ from: "x", to: "y", depth: 2, limit: 1 });
    expect(d.eventsOf("trigger.fired", d.last.effects)).toEqual([]);
    // y still runs, as any ready step does, but not by the trigger.
    expect(d.eventsOf("step.started", d.last.effects)[0]!.data).toMatchObject({ stepId: "y", reason: "auto" });
  });

  it("maxTriggerDepth 0 skips every trigger", () => {
    const d = run(
      [
        { id: "a", triggers: [{ on: "completed", action: "run", step: "b" }] },
        { id: "b", needs: ["a"] },
      ],
      {},
      { limits: { maxTriggerDepth: 0 } },
    );
    d.succeed("a");
    expect(d.eventTypes()).toContain("trigger.skipped");
    expect(d.eventTypes()).not.toContain("trigger.fired");

    const byDefinition = run(
      [
        { id: "a", triggers: [{ on: "completed", action: "run", step: "b" }] },
        { id: "b", needs: ["a"] },
      ],
      { limits: { maxTriggerDepth: 0 } },
    );
    byDefinition.succeed("a");
    expect(byDefinition.eventTypes()).toContain("trigger.skipped");
    expect(byDefinition.eventTypes()).not.toContain("trigger.fired");
  });
});

describe("budgets", () => {
  const u = (tokensIn: number, costUsd = 0) => ({ usage: { tokensIn, costUsd } });

  it("strict at run scope: the run waits at a gate, nothing more is dispatched; extend_budget lets it go on", () => {
    const d = run([{ id: "a" }, { id: "b", needs: ["a"] }, { id: "c", needs: ["b"] }], { budgets: [{ scope: "run", tokens: 100, mode: "strict" }] });
    d.succeed("a", {}, u(120));
    expect(d.status).toBe("waiting");
    expect(d.step("a")).toBe("completed");
    expect(d.newWork()).toEqual([]);
    expect(d.eventsOf("budget.exceeded", d.last.effects)[0]!.data).toMatchObject({
      budget: "run:*",
      subject: "run",
      mode: "strict",
      usage: { tokens: 120 },
      limit: { tokens: 100 },
    });
    expect(d.context.gate).toEqual({ kind: "budget", budget: "run:*", usage: { tokens: 120, costUsd: 0 }, limit: { tokens: 100 } });

    expectRefused(d.signal({ name: "start" }), RefusalCode.IllegalTransition);
    // Nothing starts by hand past the gate either.
    for (const sig of [{ name: "run_next_step" }, { name: "run_step", stepId: "b" }] as const) {
      expectRefused(d.signal(sig), RefusalCode.BudgetGate, /waits at a budget gate/);
    }
    // Nothing failed: there is nothing to retry, gate or not.
    expectRefused(d.signal({ name: "retry_latest" }), RefusalCode.NotFound, "No failed or blocked steps to retry");
    expect(d.step("b")).toBe("pending");
    expectAccepted(d.signal({ name: "extend_budget", tokens: 50 }, { actor: "lead", reason: "worth it" }));
    expect(d.eventsOf("budget.extended", d.last.effects)[0]!.data).toEqual({ budget: "run:*", tokens: 50, costUsd: 0, actor: "lead", reason: "worth it" });
    expect(d.status).toBe("running");
    expect(d.context.gate).toBeUndefined();
    expect(d.running()).toEqual(["b"]);
    expect(d.state.extensions).toEqual({ "run:*": { tokens: 50, costUsd: 0 } });
  });

  it("an extension too small gates again before the next step", () => {
    const d = run([{ id: "a" }, { id: "b", needs: ["a"] }], { budgets: [{ scope: "run", tokens: 100 }] });
    d.succeed("a", {}, u(120));
    d.signal({ name: "extend_budget", tokens: 10 });
    expect(d.status).toBe("waiting");
    expect(d.step("b")).toBe("pending");
    // Without an amount, the extension is the budget itself.
    d.signal({ name: "extend_budget" });
    expect(d.status).toBe("running");
    expect(d.state.extensions["run:*"]).toEqual({ tokens: 110, costUsd: 0 });
  });

  it("abort at a gate fails the run; extend/abort without a gate are refused", () => {
    const d = run([{ id: "a" }, { id: "b", needs: ["a"] }], { budgets: [{ scope: "run", costUsd: 1 }] });
    expectRefused(d.signal({ name: "extend_budget", tokens: 1 }), RefusalCode.IllegalTransition, /no budget gate/);
    expectRefused(d.signal({ name: "abort" }), RefusalCode.IllegalTransition);
    d.succeed("a", {}, u(1, 1.5));
    expect(d.status).toBe("waiting");
    d.tick(3);
    expectAccepted(d.signal({ name: "abort" }, { actor: "lead" }));
    expect(d.status).toBe("failed");
    expect(d.context.error).toBe("budget exhausted: run:*");
    expect(d.step("b")).toBe("cancelled");
    expectRefused(d.signal({ name: "abort" }), RefusalCode.TerminalState);
    expectRefused(d.signal({ name: "extend_budget" }), RefusalCode.TerminalState);
  });

  it("strict at phase scope counts only that phase's usage", () => {
    const d = run(
      [
        { id: "a", phase: "build" },
        { id: "b", phase: "test" },
        { id: "c", needs: ["a", "b"], phase: "build" },
      ],
      { budgets: [{ scope: "phase", target: "build", tokens: 100 }] },
    );
    d.succeed("b", {}, u(500));
    expect(d.status).toBe("running");
    d.succeed("a", {}, u(100));
    expect(d.status).toBe("waiting");
    expect(d.context.gate!.budget).toBe("phase:build");
    expect(d.state.ledger.byPhase).toMatchObject({ build: { tokens: 100 }, test: { tokens: 500 } });
    d.signal({ name: "extend_budget", tokens: 100 });
    expect(d.running()).toEqual(["c"]);
  });

  it("strict at role scope (every role when no target): it gates only the next step of the role that used it up", () => {
    const d = run(
      [
        { id: "a", role: "architect" },
        { id: "b", role: "tester" },
        { id: "c", needs: ["a", "b"] },
        { id: "e", role: "architect", needs: ["c"] },
        { id: "f", needs: ["c"] },
      ],
      { budgets: [{ scope: "role", tokens: 100 }] },
    );
    d.succeed("a", {}, u(60));
    d.succeed("b", {}, u(60));
    expect(d.status).toBe("running");
    expect(d.running()).toEqual(["c"]);
    d.succeed("c", {}, u(100));
    expect(d.eventsOf("budget.exceeded", d.last.effects).map((e) => e.data)).toEqual([
      { budget: "role:*", subject: "implementer", mode: "strict", usage: { tokens: 100, costUsd: 0 }, limit: { tokens: 100 } },
    ]);
    // e (architect) is not covered and starts; f (implementer) is, and the run waits before it.
    expect(d.statuses()).toEqual({ a: "completed", b: "completed", c: "completed", e: "running", f: "pending" });
    expect(d.status).toBe("waiting");
    expect(d.context.gate!.budget).toBe("role:*(implementer)");
  });

  it("strict at step scope: a step's own `budget` is a strict step budget; it gates that step only", () => {
    const d = run([
      { id: "a", budget: { tokens: 50 } },
      { id: "b", needs: ["a"] },
    ]);
    expect(d.state.budgets).toEqual([{ scope: "step", target: "a", tokens: 50, mode: "strict" }]);
    d.succeed("a", {}, u(60));
    expect(d.eventsOf("budget.exceeded", d.last.effects).map((e) => e.data)).toEqual([
      { budget: "step:a", subject: "a", mode: "strict", usage: { tokens: 60, costUsd: 0 }, limit: { tokens: 50 } },
    ]);
    // b is outside the budget's scope: it starts.
    expect(d.status).toBe("running");
    expect(d.running()).toEqual(["b"]);

    // a itself is gated when it would start again (a rework after a rejection).
    const e = run([
      { id: "a", budget: { tokens: 50 }, approval: { maxReworks: 1 } },
      { id: "b", needs: ["a"] },
    ]);
    e.succeed("a", { v: 1 }, u(60));
    expect(e.step("a")).toBe("waiting_approval");
    expect(e.status).toBe("running");
    e.reject(undefined, { reason: "again" });
    expect(e.status).toBe("waiting");
    expect(e.context.gate).toEqual({ kind: "budget", budget: "step:a", usage: { tokens: 60, costUsd: 0 }, limit: { tokens: 50 } });
    expect(e.statuses()).toEqual({ a: "pending", b: "pending" });
    expect(e.newWork()).toEqual([]);
    expectAccepted(e.signal({ name: "extend_budget" }));
    expect(e.newWork()).toEqual([expect.objectContaining({ stepId: "a", attemptId: "r1.a.2", rework: 1 })]);
  });

  it("budget.exceeded is emitted once per budget, and again once an extension is used up", () => {
    const d = run([{ id: "a" }, { id: "b", needs: ["a"] }, { id: "c", needs: ["b"] }], { budgets: [{ scope: "run", tokens: 100 }] });
    d.succeed("a", {}, u(120));
    expect(d.status).toBe("waiting");
    d.signal({ name: "extend_budget", tokens: 50 });
    expect(d.running()).toEqual(["b"]);
    d.succeed("b", {}, u(40));
    expect(d.status).toBe("waiting");
    expect(d.eventsOf("budget.exceeded").map((e) => e.data)).toEqual([
      { budget: "run:*", subject: "run", mode: "strict", usage: { tokens: 120, costUsd: 0 }, limit: { tokens: 100 } },
      { budget: "run:*", subject: "run", mode: "strict", usage: { tokens: 160, costUsd: 0 }, limit: { tokens: 150 } },
    ]);
    expect(d.context.gate).toEqual({ kind: "budget", budget: "run:*", usage: { tokens: 160, costUsd: 0 }, limit: { tokens: 150 } });
  });

  it("a run waiting at a gate completes once its remaining steps are settled (an approval forced on them)", () => {
    const d = run([{ id: "a" }, { id: "b", needs: ["a"] }], { budgets: [{ scope: "run", tokens: 100 }] });
    d.succeed("a", { a: 1 }, u(120));
    expect(d.status).toBe("waiting");
    d.tick(9);
    expectAccepted(d.signal({ name: "approve", stepId: "b", force: true, output: { b: 2 } }, { actor: "lead" }));
    expect(d.step("b")).toBe("completed");
    expect(d.status).toBe("completed");
    expect(d.context.gate).toBeUndefined();
    // The change to completed is run.finished's: no run.status_changed of its own. The forcing actor
    // approved the step; the run was completed by the kernel (no actor on its end).
    expect(d.eventsOf("run.status_changed", d.last.effects)).toEqual([]);
    expect(d.eventTypes()).toEqual(["step.approved", "run.finished"]);
    expect(d.eventsOf("run.finished", d.last.effects)[0]).toEqual({
      kind: "event",
      type: "run.finished",
      at: T0 + 9,
      data: { status: "completed", from: "waiting", trigger: "COMPLETE", reason: "every step is done", stage: "main", result: { b: 2 } },
    });
    expect(d.newWork()).toEqual([]);
  });

  it("warn: budget.exceeded once, and the run goes on", () => {
    const d = run([{ id: "a" }, { id: "b", needs: ["a"] }, { id: "c", needs: ["b"] }], { budgets: [{ scope: "run", tokens: 10, mode: "warn" }] });
    d.succeed("a", {}, u(20));
    expect(d.eventsOf("budget.exceeded", d.last.effects).map((e) => e.data)).toEqual([expect.objectContaining({ budget: "run:*", mode: "warn" })]);
    expect(d.running()).toEqual(["b"]);
    d.succeed("b", {}, u(20));
    expect(d.eventsOf("budget.exceeded", d.last.effects)).toEqual([]);
    expect(d.state.warned).toEqual(["run:*/run"]);
    d.succeed("c");
    expect(d.status).toBe("completed");
  });

  it("off: nothing happens", () => {
    const d = run([{ id: "a" }, { id: "b", needs: ["a"] }], { budgets: [{ scope: "run", tokens: 1, mode: "off" }] });
    d.succeed("a", {}, u(1_000));
    expect(d.eventsOf("budget.exceeded")).toEqual([]);
    expect(d.running()).toEqual(["b"]);
  });

  it("budgets given at creation add to the definition's", () => {
    const d = run(
      [{ id: "a" }, { id: "b", needs: ["a"] }],
      { budgets: [{ scope: "run", tokens: 1_000 }] },
      { budgets: [{ scope: "run", tokens: 10, mode: "warn" } as Budget] },
    );
    expect(d.state.budgets.map(budgetKey)).toEqual(["run:*", "run:*"]);
    d.succeed("a", {}, u(20));
    expect(d.eventsOf("budget.exceeded", d.last.effects)[0]!.data!.mode).toBe("warn");
  });

  it("a run whose last step uses up a strict budget completes (nothing is left to gate)", () => {
    const d = run([{ id: "a" }], { budgets: [{ scope: "run", tokens: 10 }] });
    d.tick(4);
    d.succeed("a", { done: true }, u(20));
    expect(d.step("a")).toBe("completed");
    expect(d.status).toBe("completed");
    expect(d.context.gate).toBeUndefined();
    expect(d.eventTypes()).toEqual(["step.succeeded", "budget.exceeded", "run.finished"]);
    expect(d.eventsOf("budget.exceeded", d.last.effects)[0]!.data).toMatchObject({
      budget: "run:*",
      mode: "strict",
      usage: { tokens: 20 },
      limit: { tokens: 10 },
    });
    expect(d.eventsOf("run.finished", d.last.effects)[0]).toEqual({
      kind: "event",
      type: "run.finished",
      at: T0 + 4,
      data: { status: "completed", from: "running", trigger: "STAGE_DONE", stage: "main", result: { done: true } },
    });
    expect(d.context.result).toEqual({ done: true });
  });
});

describe("the usage ledger", () => {
  it("rolls usage up per run, step, phase, role and model (the result's model over the step's)", () => {
    const d = run(
      [
        { id: "a", role: "architect", phase: "design", model: "big" },
        { id: "b", role: "implementer", phase: "build", model: "small", qa: { auto: true } },
        { id: "c", role: "implementer", phase: "build" },
      ],
      { limits: { maxConcurrentSteps: 3 } },
    );
    d.succeed("a", {}, { usage: { tokensIn: 10, tokensOut: 5, costUsd: 0.1, wallMs: 100 } });
    d.succeed("b", {}, { usage: { tokensIn: 20, tokensOut: 10, costUsd: 0.2, wallMs: 200 }, model: "other" });
    d.succeed("b", { verdict: "ok" }, { usage: { tokensIn: 1, tokensOut: 1, costUsd: 0.1, wallMs: 10 } });
    d.failResult("c", {}, { usage: { tokensIn: 3, tokensOut: 0, costUsd: 0, wallMs: 1 } });
    const l = d.state.ledger;
    expect(l.total).toEqual({ tokens: 50, tokensIn: 34, tokensOut: 16, costUsd: 0.4, wallMs: 311, calls: 4 });
    expect(l.byStep.a).toMatchObject({ tokens: 15, calls: 1 });
    expect(l.byStep.b).toMatchObject({ tokens: 32, calls: 2 });
    expect(l.byStep.c).toMatchObject({ tokens: 3, calls: 1 });
    expect(Object.keys(l.byPhase).sort()).toEqual(["build", "design"]);
    expect(l.byPhase.build).toMatchObject({ tokens: 35, calls: 3 });
    expect(l.byRole).toMatchObject({ architect: { tokens: 15 }, implementer: { tokens: 35 } });
    expect(l.byModel).toEqual({
      big: expect.objectContaining({ tokens: 15 }),
      other: expect.objectContaining({ tokens: 30 }),
      small: expect.objectContaining({ tokens: 2 }),
    });
    // The step keeps its own usage too (execution and QA).
    expect(d.stepCtx("b").usage).toEqual({ tokensIn: 21, tokensOut: 11, costUsd: expect.closeTo(0.3, 6), wallMs: 210 });
  });

  it("counts a late result's usage (the tokens were spent) but not the result", () => {
    const d = run([{ id: "a" }]);
    const first = d.work.get("a")!.attemptId;
    d.failResult("a");
    d.fireTimers("retry");
    d.result("a", true, { attemptId: first, usage: { tokensIn: 7 } });
    expect(d.eventTypes()).toEqual(["step.result_ignored"]);
    expect(d.state.ledger.total.tokens).toBe(7);
  });

  it("ledger functions: record, exhausted and covers", () => {
    let l = emptyLedger();
    l = record(l, { tokensIn: 1, tokensOut: 2, costUsd: 0.1, wallMs: 0 }, { step: "s", phase: "p", role: "tester" });
    l = record(l, { tokensIn: 0, tokensOut: 0, costUsd: 0.2, wallMs: 0 }, { step: "s", phase: "p", role: "tester", model: "m" });
    expect(l.total).toMatchObject({ tokens: 3, costUsd: 0.3, calls: 2 });
    expect(l.byModel).toEqual({ m: expect.objectContaining({ calls: 1 }) });
    const budgets: Budget[] = [
      { scope: "role", target: "tester", costUsd: 0.3, mode: "strict" },
      { scope: "phase", tokens: 100, mode: "strict" },
      { scope: "step", tokens: 3, mode: "off" },
    ];
    const x = exhausted(l, budgets, {});
    expect(x.map((e) => [e.key, e.subject])).toEqual([["role:tester", "tester"]]);
    expect(covers(x[0]!, { id: "other", phase: "q", role: "tester" })).toBe(true);
    expect(covers(x[0]!, { id: "other", phase: "q", role: "architect" })).toBe(false);
    expect(exhausted(l, budgets, { "role:tester": { tokens: 0, costUsd: 0.1 } })).toEqual([]);
  });
});

describe("facts and guarded stages (a custom staged definition)", () => {
  const staged = define({
    id: "doc",
    version: 1,
    stages: [{ id: "draft", next: "review" }, { id: "review" }, { id: "done", terminal: "completed" }, { id: "rejected", terminal: "failed" }],
    transitions: [
      { from: "review", to: "done", on: "Approve", guard: { all: ["facts.reviewed", { path: "steps.write.output.words", gte: 100 }] } },
      { from: "review", to: "draft", on: "Rework" },
      { from: "*", to: "rejected", on: "Reject" },
    ],
    steps: [
      { id: "write", stage: "draft" },
      { id: "check", stage: "review", sets: { completed: { reviewed: true } }, emits: { completed: "Approve" } },
    ],
  });

  it("runs a stage's steps, moves on with `next`, and a step's `sets`/`emits` fire a guarded transition", () => {
    const d = Drive.of(staged, { autoStart: true });
    expect(d.stage).toBe("draft");
    expect(d.running()).toEqual(["write"]);
    d.succeed("write", { words: 150 });
    expect(d.eventsOf("run.stage_changed", d.last.effects)[0]!.data).toMatchObject({ from: "draft", to: "review", on: "stage_done" });
    expect(d.stage).toBe("review");
    expect(d.running()).toEqual(["check"]);
    d.succeed("check");
    expect(d.status).toBe("completed");
    expect(d.context.stage).toBe("done");
  });

  it("a guard that fails leaves the run in its stage: GUARD_FAILED until facts and outputs satisfy it", () => {
    const d = Drive.of(staged, { autoStart: true });
    d.succeed("write", { words: 50 });
    d.succeed("check");
    // The step's emitted Approve was refused (too few words): the run stays in review.
    expect(d.stage).toBe("review");
    expect(d.state.facts.reviewed).toBe(true);
    expectRefused(d.event("Approve"), RefusalCode.GuardFailed);
    expectRefused(d.event("Publish"), RefusalCode.IllegalTransition, /no transition on Publish from review/);

    // Back to draft: its steps run again; forward again by `next`; then Approve holds.
    d.event("Rework", undefined, { actor: "editor" });
    expect(d.stage).toBe("draft");
    expect(d.newWork()[0]).toMatchObject({ stepId: "write", attemptId: "r1.write.2" });
    d.succeed("write", { words: 120 });
    expect(d.stage).toBe("review");
    d.setFacts({ reviewed: false });
    d.succeed("check");
    expect(d.status).toBe("completed");
  });

  it("set_facts alone does not move the run; the next event sees them", () => {
    const d = Drive.of(staged, { autoStart: true });
    d.succeed("write", { words: 500 });
    expect(d.running()).toEqual(["check"]);
    expectRefused(d.event("Approve"), RefusalCode.GuardFailed);
    const r = d.setFacts({ reviewed: true });
    expect(d.eventTypes(r.effects)).toEqual(["run.facts_changed"]);
    expect(d.stage).toBe("review");
    expectAccepted(d.event("Approve"));
    expect(d.status).toBe("completed");
    expect(d.step("check")).toBe("cancelled");
  });

  it("a `*` transition to a failed terminal stage fails the run", () => {
    const d = Drive.of(staged, { autoStart: true });
    d.event("Reject", undefined, { reason: "off topic" });
    expect(d.status).toBe("failed");
    expect(d.context.stage).toBe("rejected");
    expect(d.step("write")).toBe("cancelled");
  });

  it("stages without transitions run in order and complete after the last; the result is the last step's output", () => {
    const cd = define({
      id: "seq",
      version: 1,
      stages: [{ id: "one", next: "two" }, { id: "two" }],
      steps: [
        { id: "a", stage: "one" },
        { id: "b", stage: "two" },
      ],
    });
    const d = Drive.of(cd, { autoStart: true });
    d.tick(3);
    d.succeed("a", { a: 1 });
    expect(d.stage).toBe("two");
    expect(d.eventsOf("run.stage_changed", d.last.effects)[0]).toMatchObject({ at: T0 + 3, data: { from: "one", to: "two", on: "stage_done" } });
    d.tick(3);
    d.succeed("b", { b: 2 });
    expect(d.status).toBe("completed");
    expect(d.context.result).toEqual({ b: 2 });
    expect(d.eventsOf("run.finished", d.last.effects)[0]).toMatchObject({ at: T0 + 6, data: { status: "completed", stage: "two", result: { b: 2 } } });
  });

  it("a run whose last stage has no steps completes with the output of the last step that completed", () => {
    const cd = define({ id: "seq", version: 1, stages: [{ id: "one", next: "two" }, { id: "two" }], steps: [{ id: "a", stage: "one" }] });
    const d = Drive.of(cd, { autoStart: true });
    d.tick(5);
    d.succeed("a", { a: 1 });
    expect(d.status).toBe("completed");
    expect(d.context.finishedAt).toBe(T0 + 5);
    expect(d.context.result).toEqual({ a: 1 });
    expect(d.eventsOf("run.finished", d.last.effects)[0]!.data).toMatchObject({ result: { a: 1 } });
  });
});

describe("definitions", () => {
  const invalid = (input: unknown, message: RegExp) => {
    let err: unknown;
    try {
      parseDefinition(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DefinitionError);
    expect((err as DefinitionError).code).toBe("INVALID_DEFINITION");
    expect((err as DefinitionError).issues.length).toBeGreaterThan(0);
    expect((err as DefinitionError).message).toMatch(message);
  };

  it("rejects dependency cycles", () => {
    invalid(
      def([
        { id: "a", needs: ["c"] },
        { id: "b", needs: ["a"] },
        { id: "c", needs: ["b"] },
      ]),
      /dependency cycle: a → c → b → a/,
    );
    invalid(def([{ id: "a", needs: ["a"] }]), /dependency cycle/);
  });

  it("rejects unknown needs, triggers and template steps", () => {
    invalid(def([{ id: "a", needs: ["nope"] }]), /steps\.0\.needs: unknown step 'nope'/);
    invalid(def([{ id: "a", triggers: [{ on: "completed", action: "run", step: "nope" }] }]), /unknown step 'nope'/);
    invalid(def([{ id: "a", inputs: { x: "${steps.nope.output}" } }]), /refers to unknown step 'nope'/);
  });

  it("rejects duplicate ids", () => {
    invalid(def([{ id: "a" }, { id: "a" }]), /duplicate step id 'a'/);
    invalid(def([{ id: "a" }], { planning: { id: "a" } }), /planning step's id 'a'/);
    invalid(def([], { stages: [{ id: "s" }, { id: "s" }] }), /duplicate stage ids/);
  });

  it("rejects unknown stages and steps without stages when stages exist", () => {
    invalid(def([{ id: "a", stage: "zz" }], { stages: [{ id: "s" }] }), /unknown stage 'zz'/);
    invalid(def([{ id: "a" }], { stages: [{ id: "s" }] }), /every step names its stage/);
    invalid(def([{ id: "a", stage: "s" }]), /no stages are declared/);
    invalid(def([], { stages: [{ id: "s", next: "zz" }] }), /unknown stage 'zz'/);
    invalid(def([], { stages: [{ id: "s" }], transitions: [{ from: "s", to: "zz", on: "Go" }] }), /transitions\.0\.to: unknown stage 'zz'/);
    invalid(def([], { stages: [{ id: "s" }], transitions: [{ from: "zz", to: "s", on: "Go" }] }), /unknown stage 'zz'/);
  });

  it("rejects misplaced terminal stages", () => {
    invalid(def([], { stages: [{ id: "end", terminal: "completed" }, { id: "s" }] }), /first stage cannot be terminal/);
    invalid(def([], { stages: [{ id: "s" }, { id: "end", terminal: "completed", next: "s" }] }), /terminal stage has no next/);
    invalid(def([{ id: "a", stage: "end" }], { stages: [{ id: "s" }, { id: "end", terminal: "failed" }] }), /terminal stage has no steps/);
  });

  it("rejects bad ids, unknown keys, roles, budgets and conditions", () => {
    invalid({ id: "Bad Id", version: 1 }, /id/);
    invalid({ id: "x", version: 0 }, /version/);
    invalid(def([{ id: "a b" }]), /must match/);
    invalid(def([{ id: "a", role: "wizard" as never }]), /role/);
    invalid(def([{ id: "a", surprise: 1 } as never]), /surprise|Unrecognized/i);
    invalid(def([], { budgets: [{ scope: "run" } as never] }), /a budget needs tokens or costUsd/);
    invalid(def([], { stages: [{ id: "s" }], transitions: [{ from: "s", to: "s", on: "Go", guard: { path: "facts.x" } as never }] }), /operator/);
  });

  it("applies defaults", () => {
    const d = parseDefinition(def([{ id: "a" }]));
    expect(d).toMatchObject({ view: "generic", execution: "auto", onStepFailure: "fail", dynamicSteps: false, facts: {}, budgets: [] });
    expect(d.retry).toEqual({ maxAttempts: 3, initialMs: 1_000, multiplier: 2, maxMs: 60_000, jitterMs: 250, nonRetryable: [] });
    expect(d.limits).toEqual({ maxConcurrentSteps: 8, maxTriggerDepth: 3 });
    expect(d.steps[0]).toMatchObject({ role: "implementer", type: "agent", needs: [], inputs: {}, triggers: [], optional: false });
  });

  it("compiles: an implicit main stage, phases, a key and a content hash; one run machine per version", () => {
    const a = compileDefinition(parseDefinition(def([{ id: "a" }, { id: "b", phase: "p" }])));
    expect(a.key).toBe("t@1");
    expect(a.initialStage).toBe("main");
    expect(a.steps.map((s) => [s.id, s.stage, s.phase, s.index])).toEqual([
      ["a", "main", "a", 0],
      ["b", "main", "p", 1],
    ]);
    const same = compileDefinition(parseDefinition(def([{ id: "a" }, { id: "b", phase: "p" }])));
    const other = compileDefinition(parseDefinition(def([{ id: "a" }, { id: "b", phase: "q" }])));
    expect(same.hash).toBe(a.hash);
    expect(other.hash).not.toBe(a.hash);
    expect(runMachineFor(a)).toBe(runMachineFor(same));
    expect(runMachineFor(a)).not.toBe(runMachineFor(other));
    const staged = compileDefinition(parseDefinition(def([{ id: "a", stage: "s" }], { stages: [{ id: "s" }] })));
    expect(staged.steps[0]!.phase).toBe("s");
  });

  it("parseDefinitionText reads YAML (and JSON)", () => {
    const yaml = `
id: review.flow
version: 2
title: A review flow
stages:
  - id: work
    next: check
  - id: check
steps:
  - id: write
    stage: work
    role: implementer
    inputs:
      topic: \${input.topic}
  - id: review
    stage: check
    role: reviewer
    approval:
      maxReworks: 1
budgets:
  - scope: run
    tokens: 1000
    mode: warn
`;
    const d = parseDefinitionText(yaml, "review.yaml");
    expect(d).toMatchObject({ id: "review.flow", version: 2, stages: [{ id: "work", next: "check" }, { id: "check" }] });
    expect(d.steps.map((s) => [s.id, s.role, s.stage])).toEqual([
      ["write", "implementer", "work"],
      ["review", "reviewer", "check"],
    ]);
    expect(d.steps[0]!.inputs).toEqual({ topic: "${input.topic}" });
    expect(d.steps[1]!.approval).toEqual({ maxReworks: 1 });
    expect(parseDefinitionText(JSON.stringify(def([{ id: "a" }])))).toEqual(parseDefinition(def([{ id: "a" }])));
    expect(() => parseDefinitionText("id: [unclosed", "bad.yaml")).toThrow(/bad\.yaml is not valid YAML/);
    expect(() => parseDefinitionText("id: x\nversion: 1\nsteps:\n  - id: a\n    needs: [b]\n")).toThrow(DefinitionError);
  });
});

describe("the kernel as a pure function", () => {
  it("a run restored from its JSON goes on exactly as the original", () => {
    const cd = define(
      def([
        { id: "a", approval: { maxReworks: 1 } },
        { id: "b", needs: ["a"], timeoutMs: 50 },
      ]),
    );
    const live = Drive.of(cd, { autoStart: true });
    live.succeed("a", { v: 1 });
    const restored = Drive.of(cd, { autoStart: true });
    restored.succeed("a", { v: 1 });
    restored.state = JSON.parse(JSON.stringify(restored.state));
    for (const d of [live, restored]) {
      d.approve();
      d.fire("r1.b.1.timeout");
    }
    expect(restored.state).toEqual(live.state);
    expect(restored.last.effects).toEqual(live.last.effects);
  });

  it("the same state, action and clock give the same result", () => {
    const cd = define(def([{ id: "a" }, { id: "b", needs: ["a"] }]));
    const c = createRun(cd, { runId: "r", projectId: "p", autoStart: true }, { now: T0, rand: 0.3 });
    const action = {
      type: "result" as const,
      stepId: "a",
      attemptId: "r.a.1",
      kind: "execute" as const,
      ok: false,
      error: { code: "X", message: "x", retryable: true },
    };
    const one = applyAction(cd, c.state, action, { now: T0 + 1, rand: 0.3 });
    const two = applyAction(cd, c.state, action, { now: T0 + 1, rand: 0.3 });
    expect(two).toEqual(one);
  });

  it("complete_step and fail_step act on the running step (or the one named)", () => {
    const d = run([{ id: "a" }, { id: "b" }], { limits: { maxConcurrentSteps: 1 } });
    expectAccepted(d.complete({ ok: 1 }, undefined, { actor: "ops" }));
    expect(d.step("a")).toBe("completed");
    expect(d.eventsOf("step.succeeded", d.last.effects)[0]!.data).toMatchObject({ stepId: "a", external: true, output: { ok: 1 } });
    expectAccepted(d.fail("stuck", "b"));
    expect(d.stepCtx("b").error).toEqual({ code: "FAILED", message: "stuck", retryable: false });
    expect(d.status).toBe("failed");
  });
});

describe("workspace", () => {
  it("resolves the run's branch from its input, and leaves it out when the template is empty", async () => {
    const { compileDefinition, parseDefinition, createRun } = await import("../src/index.js");
    const cd = compileDefinition(
      parseDefinition({ id: "ws", version: 1, workspace: { branch: "${input.branch}", base: "${input.base}" }, steps: [{ id: "a", role: "implementer" }] }),
    );
    const clock = { now: 1_000, rand: 0 };
    const work = (input: Record<string, unknown>) => {
      const r = createRun(cd, { runId: "r1", projectId: "p", input, autoStart: true }, clock);
      return r.effects.find((e) => e.kind === "work");
    };
    expect(work({ branch: "feature/x", base: "develop" })).toMatchObject({ work: { workspace: { branch: "feature/x", base: "develop" } } });
    expect(work({ branch: "  " })).not.toHaveProperty("work.workspace");
    expect(() => parseDefinition({ id: "ws2", version: 1, workspace: { branch: "${steps.a.output}" }, steps: [{ id: "a", role: "implementer" }] })).toThrow(
      /input and facts only/,
    );
  });
});
