import { describe, expect, it } from "vitest";
import { transition } from "xstate";
import { MAX_RUN_STEPS, type RunStatus, RefusalCode, SignalSchema } from "@orch/contracts";
import { builtin, runMachineFor, type RunContext } from "../src/index.js";
import { Drive, FORGE, define, expectAccepted, expectRefused, T0 } from "./drive.js";

/**
 * Seed 004 (TasksGodzilla): a protocol run on the `protocol` built-in, against the action table of
 * CONTRACTS.md. ProtocolRun: pending → planning → planned → running → (paused | blocked | failed |
 * cancelled | completed); StepRun: pending → running → needs_qa → (completed | failed | cancelled | blocked).
 */

const PROTO = { name: "proto-1", description: "onboard the repository" };
const STEPS = [
  { id: "s1", title: "Step one", type: "codex" },
  { id: "s2", title: "Step two", type: "codex" },
  { id: "s3", title: "Step three", type: "codex" },
];

const fresh = () => Drive.of("protocol", { input: PROTO });

function planning(): Drive {
  const d = fresh();
  d.start();
  return d;
}

function planned(steps: unknown[] = STEPS): Drive {
  const d = planning();
  expectAccepted(d.succeed("plan", { steps }));
  return d;
}

/** A protocol running s1 (run_next_step from planned). */
function running(steps: unknown[] = STEPS): Drive {
  const d = planned(steps);
  expectAccepted(d.signal({ name: "run_next_step" }));
  return d;
}

/** s1 failed (no retries left): the protocol is blocked. */
function blocked(): Drive {
  const d = running();
  d.failResult("s1", { code: "CI_FAILED", message: "CI failed", retryable: false });
  return d;
}

function paused(): Drive {
  const d = running();
  expectAccepted(d.signal({ name: "pause" }));
  return d;
}

function completed(): Drive {
  const d = planned([{ id: "only" }]);
  d.signal({ name: "run_next_step" });
  d.succeed("only");
  return d;
}

function failed(): Drive {
  const d = planning();
  d.failResult("plan", { retryable: false, message: "no plan" });
  return d;
}

function cancelled(): Drive {
  const d = running();
  d.signal({ name: "cancel" });
  return d;
}

/** A protocol whose strict run budget (100 tokens) s1 used up (150 tokens). */
function overBudget(): Drive {
  const d = Drive.of("protocol", { input: PROTO, budgets: [{ scope: "run", tokens: 100, mode: "strict" }] });
  d.start();
  d.succeed("plan", { steps: STEPS });
  d.signal({ name: "run_next_step" });
  d.succeed("s1", {}, { usage: { tokensIn: 150 } });
  return d;
}

/**
 * A protocol waiting at a budget gate. A manual protocol never gets there by itself: strict budgets
 * gate only a step the scheduler is about to start (execution `auto`), and run_next_step / run_step
 * do not check them (a design question, see "protocol budgets" below). So the persisted state of the
 * over-budget protocol is put at the gate with the run machine's own GATE transition (the gate the
 * kernel would open for this budget).
 */
function waiting(): Drive {
  const d = overBudget();
  expect(d.status).toBe("running");
  const machine = runMachineFor(d.cd);
  const gate = { kind: "budget" as const, budget: "run:*", usage: { tokens: 150, costUsd: 0 }, limit: { tokens: 100 } };
  const [next] = transition(machine, machine.resolveState(d.state.run as never), { type: "GATE", gate, at: d.now, rand: d.rand } as never);
  d.state = { ...d.state, run: { value: next.value, context: next.context as RunContext } };
  return d;
}

const BUILDERS: Record<string, () => Drive> = { pending: fresh, planning, planned, running, paused, blocked, waiting, completed, failed, cancelled };
const TERMINAL = ["completed", "failed", "cancelled"];

describe("protocol (seed 004): the definition", () => {
  it("plans first, runs steps by hand and blocks on a failed step", () => {
    const cd = builtin("protocol");
    expect(cd.def).toMatchObject({ view: "protocol", execution: "manual", onStepFailure: "block", dynamicSteps: true });
    expect(cd.planning?.id).toBe("plan");
    expect(cd.steps).toEqual([]);
  });

  it("builds every protocol status used below", () => {
    for (const [name, build] of Object.entries(BUILDERS)) expect(build().status, name).toBe(name as RunStatus);
  });
});

describe("protocol actions", () => {
  describe("start (from pending, planned, paused → planning)", () => {
    it("from pending: planning, with the planning step dispatched", () => {
      const d = fresh();
      expect(d.status).toBe("pending");
      expect(d.state.steps).toEqual({});
      d.tick(1);
      d.start({ actor: "alice" });
      expect(d.status).toBe("planning");
      expect(d.step("plan")).toBe("running");
      expect(d.eventsOf("run.status_changed", d.last.effects).map((e) => e.data)).toEqual([
        expect.objectContaining({ from: "pending", to: "planning", trigger: "START", actor: "alice" }),
      ]);
      expect(d.newWork()).toEqual([
        expect.objectContaining({
          stepId: "plan",
          kind: "plan",
          role: "architect",
          type: "protocol.plan",
          attemptId: "r1.plan.1",
          inputs: { protocol: PROTO },
        }),
      ]);
    });

    it("the planning result's output.steps adds the steps, and the protocol is planned (execution is manual)", () => {
      const d = planning();
      d.tick(5);
      expectAccepted(d.succeed("plan", { steps: [...STEPS, { id: "s4", role: "tester", needs: ["s3"] }] }));
      expect(d.status).toBe("planned");
      expect(d.step("plan")).toBe("completed");
      expect(d.statuses()).toEqual({ s1: "pending", s2: "pending", s3: "pending", s4: "pending" });
      expect(d.eventsOf("step.added", d.last.effects).map((e) => e.data)).toEqual([
        expect.objectContaining({ stepId: "s1", index: 0, type: "codex", why: "planning" }),
        expect.objectContaining({ stepId: "s2", index: 1 }),
        expect.objectContaining({ stepId: "s3", index: 2 }),
        expect.objectContaining({ stepId: "s4", index: 3, role: "tester" }),
      ]);
      expect(d.eventsOf("run.status_changed", d.last.effects).map((e) => [e.data!.from, e.data!.to])).toEqual([["planning", "planned"]]);
      expect(d.newWork()).toEqual([]);
    });

    it("a plan without steps leaves a planned protocol with none", () => {
      const d = planning();
      d.succeed("plan", { summary: "nothing to do" });
      expect(d.status).toBe("planned");
      expect(d.state.steps).toEqual({});
    });

    it("a failed plan fails the protocol; a retryable planning failure is retried first", () => {
      const d = failed();
      expect(d.status).toBe("failed");
      expect(d.context.error).toBe("no plan");
      // Its end is run.finished alone: from planning, ended by PLAN_FAILED (no run.status_changed to failed).
      // (A protocol enters its stage when it first runs a step: one that never did ended in none.)
      expect(d.eventsOf("run.status_changed").map((e) => e.data!.to)).toEqual(["planning"]);
      expect(d.eventTypes()).toEqual(["step.failed", "run.finished"]);
      expect(d.eventsOf("run.finished", d.last.effects)[0]!.data).toEqual({
        status: "failed",
        from: "planning",
        trigger: "PLAN_FAILED",
        stage: "",
        error: "no plan",
      });

      const e = planning();
      e.failResult("plan", { retryable: true });
      expect(e.status).toBe("planning");
      expect(e.step("plan")).toBe("retry_wait");
      expect(e.timer("retry", "plan")!.dueAt).toBe(T0 + 1_000);
      e.fireTimers("retry");
      expect(e.newWork()).toEqual([expect.objectContaining({ stepId: "plan", kind: "plan", attemptId: "r1.plan.2" })]);
    });

    it("from planned: plans again (the planning step is reset and dispatched again); the new plan's new steps are added", () => {
      const d = planned();
      d.tick(2);
      expectAccepted(d.signal({ name: "start" }, { actor: "alice" }));
      expect(d.eventsOf("run.status_changed", d.last.effects).map((e) => e.data)).toEqual([
        { from: "planned", to: "planning", trigger: "START", actor: "alice" },
      ]);
      expect(d.status).toBe("planning");
      expect(d.eventsOf("step.reset", d.last.effects).map((e) => e.data)).toEqual([
        expect.objectContaining({ stepId: "plan", from: "completed", to: "pending", reason: "retry" }),
      ]);
      expect(d.step("plan")).toBe("running");
      expect(d.newWork()).toEqual([expect.objectContaining({ stepId: "plan", kind: "plan", attemptId: "r1.plan.2", inputs: { protocol: PROTO } })]);

      // The new plan: steps already there are kept as they are, new ones are added; planned again.
      expectAccepted(d.succeed("plan", { steps: [...STEPS, { id: "s4" }] }));
      expect(d.eventsOf("step.added", d.last.effects).map((e) => e.data!.stepId)).toEqual(["s4"]);
      expect(d.status).toBe("planned");
      expect(d.statuses()).toEqual({ s1: "pending", s2: "pending", s3: "pending", s4: "pending" });
    });

    it("from paused: planning, with the planning step dispatched again", () => {
      const d = paused();
      expectAccepted(d.signal({ name: "start" }));
      expect(d.eventsOf("run.status_changed", d.last.effects).map((e) => e.data)).toEqual([{ from: "paused", to: "planning", trigger: "START" }]);
      expect(d.status).toBe("planning");
      expect(d.newWork()).toEqual([expect.objectContaining({ stepId: "plan", kind: "plan", attemptId: "r1.plan.2" })]);
      // The step that was running goes on running.
      expect(d.step("s1")).toBe("running");
    });

    it("refused while planning, running, blocked or waiting (already running) and when terminal", () => {
      for (const s of ["planning", "running", "blocked", "waiting"])
        expectRefused(BUILDERS[s]!().signal({ name: "start" }), RefusalCode.IllegalTransition, /already running or terminal/);
      for (const s of TERMINAL) expectRefused(BUILDERS[s]!().signal({ name: "start" }), RefusalCode.TerminalState);
    });
  });

  describe("pause (not from terminal)", () => {
    for (const s of ["pending", "planning", "planned", "running", "blocked", "waiting"]) {
      it(`from ${s} → paused`, () => {
        const d = BUILDERS[s]!();
        expectAccepted(d.signal({ name: "pause" }, { actor: "ops" }));
        expect(d.status).toBe("paused");
        expect(d.eventsOf("run.status_changed", d.last.effects)[0]!.data).toMatchObject({ from: s, to: "paused", trigger: "PAUSE", actor: "ops" });
        expect(d.newWork()).toEqual([]);
      });
    }

    it('refused when terminal ("Protocol already terminal")', () => {
      for (const s of TERMINAL) expectRefused(BUILDERS[s]!().signal({ name: "pause" }), RefusalCode.TerminalState);
    });

    it("a paused protocol starts nothing; the running step's result is still recorded", () => {
      const d = paused();
      d.succeed("s1", { done: true });
      expect(d.step("s1")).toBe("completed");
      expect(d.status).toBe("paused");
      expect(d.newWork()).toEqual([]);
    });

    it("a plan that arrives while paused is not lost: its steps are added when it finishes, once", () => {
      const d = planning();
      d.signal({ name: "pause" });
      d.succeed("plan", { steps: STEPS });
      expect(d.step("plan")).toBe("completed");
      expect(d.status).toBe("paused");
      expect(Object.keys(d.state.steps)).toEqual(["s1", "s2", "s3"]);
      expect(d.eventsOf("step.added", d.last.effects).map((e) => e.data)).toEqual([
        expect.objectContaining({ stepId: "s1", why: "planning" }),
        expect.objectContaining({ stepId: "s2", why: "planning" }),
        expect.objectContaining({ stepId: "s3", why: "planning" }),
      ]);
      expect(d.newWork()).toEqual([]);
      // resume (seed 004: paused → running) starts nothing (execution is manual) and adds nothing again.
      expectAccepted(d.signal({ name: "resume" }));
      expect(d.status).toBe("running");
      expect(d.eventsOf("step.added", d.last.effects)).toEqual([]);
      expect(d.statuses()).toEqual({ s1: "pending", s2: "pending", s3: "pending" });
      expect(d.newWork()).toEqual([]);
      expectAccepted(d.signal({ name: "run_next_step" }));
      expect(d.running()).toEqual(["s1"]);
    });

    it("pausing a paused protocol is accepted and changes nothing (seed 004: pause from any non-terminal status)", () => {
      const d = paused();
      const before = d.state;
      const r = d.signal({ name: "pause" }, { actor: "ops" });
      expectAccepted(r);
      expect(r.changed).toBe(false);
      expect(r.effects).toEqual([]);
      expect(r.state).toEqual(before);
      expect(d.status).toBe("paused");
    });
  });

  describe("resume (only from paused)", () => {
    it("paused → running", () => {
      const d = paused();
      d.tick(10);
      expectAccepted(d.signal({ name: "resume" }, { actor: "ops" }));
      expect(d.status).toBe("running");
      expect(d.eventsOf("run.status_changed", d.last.effects)[0]!.data).toMatchObject({ from: "paused", to: "running", trigger: "RESUME", actor: "ops" });
      expect(d.step("s1")).toBe("running");
    });

    for (const s of ["pending", "planning", "planned", "running", "waiting"]) {
      it(`refused from ${s}: "Protocol is not paused"`, () => {
        expectRefused(BUILDERS[s]!().signal({ name: "resume" }), RefusalCode.IllegalTransition, /not paused/);
      });
    }

    it("refused from blocked", () => {
      const d = blocked();
      expectRefused(d.signal({ name: "resume" }), RefusalCode.IllegalTransition, /not paused/);
      expect(d.status).toBe("blocked");
    });

    it("refused when terminal", () => {
      for (const s of TERMINAL) expectRefused(BUILDERS[s]!().signal({ name: "resume" }), RefusalCode.TerminalState);
    });
  });

  describe("cancel (from any, idempotent)", () => {
    for (const s of ["pending", "planning", "planned", "running", "paused", "blocked", "waiting"]) {
      it(`from ${s} → cancelled`, () => {
        const d = BUILDERS[s]!();
        const ids = [...(d.state.planning ? ["plan"] : []), ...Object.keys(d.state.steps)];
        const open = ids.filter((id) => !["completed", "failed", "cancelled", "skipped"].includes(d.step(id)));
        const error = d.context.error;
        d.tick(3);
        expectAccepted(d.signal({ name: "cancel" }, { actor: "ops", reason: "no longer needed" }));
        expect(d.status).toBe("cancelled");
        expect(d.context.finishedAt).toBe(T0 + 3);
        // One event ends it, last: what it left, who cancelled it and why; the steps it cancels come first.
        expect(d.eventsOf("run.status_changed", d.last.effects)).toEqual([]);
        expect(d.eventTypes()).toEqual([...open.map(() => "step.cancelled"), "run.finished"]);
        expect(d.eventsOf("step.cancelled", d.last.effects).map((e) => e.data!.stepId)).toEqual(open);
        expect(d.eventsOf("run.finished", d.last.effects)[0]).toEqual({
          kind: "event",
          type: "run.finished",
          at: T0 + 3,
          data: {
            status: "cancelled",
            from: s,
            trigger: "CANCEL",
            actor: "ops",
            reason: "no longer needed",
            // A protocol enters its stage when it first runs a step.
            stage: ["pending", "planning", "planned"].includes(s) ? "" : "main",
            ...(error !== undefined ? { error } : {}),
          },
        });
        for (const id of Object.keys(d.state.steps)) expect(["cancelled", "completed", "failed"]).toContain(d.step(id));
      });
    }

    it("cancels pending, running and needs_qa steps; completed and failed ones stay", () => {
      const d = planned([{ id: "done" }, { id: "bad" }, { id: "qa", qa: { auto: false } }, { id: "run" }, { id: "todo" }]);
      d.signal({ name: "run_step", stepId: "done" });
      d.succeed("done");
      d.signal({ name: "run_step", stepId: "qa" });
      d.succeed("qa", { ok: 1 });
      expect(d.step("qa")).toBe("needs_qa");
      d.signal({ name: "run_step", stepId: "bad" });
      d.failResult("bad", { retryable: false });
      d.signal({ name: "run_step", stepId: "run" });
      expect(d.statuses()).toEqual({ done: "completed", bad: "failed", qa: "needs_qa", run: "running", todo: "pending" });
      d.signal({ name: "cancel" });
      expect(d.statuses()).toEqual({ done: "completed", bad: "failed", qa: "cancelled", run: "cancelled", todo: "cancelled" });
      expect(d.eventsOf("step.cancelled", d.last.effects).map((e) => e.data!.stepId)).toEqual(["qa", "run", "todo"]);
      expect(d.eventTypes()).toEqual(["step.cancelled", "step.cancelled", "step.cancelled", "run.finished"]);
    });

    it("cancels the planning step while planning", () => {
      const d = planning();
      d.signal({ name: "cancel" });
      expect(d.step("plan")).toBe("cancelled");
      expect(d.eventTypes()).toEqual(["step.cancelled", "run.finished"]);
      expect(d.eventsOf("run.finished", d.last.effects)[0]!.data).toMatchObject({ status: "cancelled", from: "planning", trigger: "CANCEL" });
      // The plan that arrives late is recorded as ignored and adds nothing.
      d.succeed("plan", { steps: STEPS });
      expect(d.eventTypes()).toEqual(["step.result_ignored"]);
      expect(d.state.steps).toEqual({});
    });

    it("is idempotent: cancelling a finished protocol changes nothing", () => {
      for (const s of TERMINAL) {
        const d = BUILDERS[s]!();
        const before = d.state;
        const r = d.signal({ name: "cancel" });
        expectAccepted(r);
        expect(r.changed).toBe(false);
        expect(r.effects).toEqual([]);
        expect(r.state).toEqual(before);
        expect(d.status).toBe(s);
      }
    });
  });

  describe("run_next_step", () => {
    it("runs the first pending step: step and protocol running", () => {
      const d = planned();
      expectAccepted(d.signal({ name: "run_next_step" }, { actor: "alice" }));
      expect(d.status).toBe("running");
      expect(d.statuses()).toEqual({ s1: "running", s2: "pending", s3: "pending" });
      expect(d.newWork()).toEqual([expect.objectContaining({ stepId: "s1", kind: "execute", type: "codex", attemptId: "r1.s1.1" })]);
      expect(d.eventsOf("step.started", d.last.effects)[0]!.data).toMatchObject({ stepId: "s1", reason: "manual" });
      expect(d.eventsOf("run.status_changed", d.last.effects)[0]!.data).toMatchObject({ from: "planned", to: "running", trigger: "RUN_STEP" });
    });

    it("then the next one, while the first still runs; nothing starts by itself", () => {
      const d = running();
      d.succeed("s1");
      expect(d.newWork()).toEqual([]);
      expect(d.statuses()).toEqual({ s1: "completed", s2: "pending", s3: "pending" });
      d.signal({ name: "run_next_step" });
      expect(d.running()).toEqual(["s2"]);
      d.signal({ name: "run_next_step" });
      expect(d.running()).toEqual(["s2", "s3"]);
    });

    it("prefers the first step in order, failed before a later pending one", () => {
      const d = blocked();
      d.signal({ name: "run_next_step" });
      expect(d.statuses()).toEqual({ s1: "running", s2: "pending", s3: "pending" });
      expect(d.status).toBe("running");
      expect(d.stepCtx("s1").retries).toBe(1);
    });

    it("from paused and from pending (steps given at creation) it runs the step and the protocol", () => {
      const d = paused();
      d.succeed("s1");
      d.signal({ name: "run_next_step" });
      expect(d.status).toBe("running");
      expect(d.step("s2")).toBe("running");

      const e = Drive.of("protocol", { steps: [{ id: "x" }] });
      expect(e.status).toBe("pending");
      expectAccepted(e.signal({ name: "run_next_step" }));
      expect(e.status).toBe("running");
      expect(e.step("x")).toBe("running");
    });

    it('none left → NOT_FOUND "No pending or failed steps to run"', () => {
      expectRefused(fresh().signal({ name: "run_next_step" }), RefusalCode.NotFound, "No pending or failed steps to run");
      const d = planned([{ id: "a" }]);
      d.signal({ name: "run_next_step" });
      expectRefused(d.signal({ name: "run_next_step" }), RefusalCode.NotFound);
    });

    it("refused while planning and when terminal", () => {
      expectRefused(planning().signal({ name: "run_next_step" }), RefusalCode.IllegalTransition);
      for (const s of TERMINAL) expectRefused(BUILDERS[s]!().signal({ name: "run_next_step" }), RefusalCode.TerminalState);
    });
  });

  describe("retry_latest", () => {
    it("the last step failed → it runs again, retries + 1, the protocol runs", () => {
      const d = blocked();
      expect(d.stepCtx("s1").retries).toBe(0);
      d.tick(50);
      expectAccepted(d.signal({ name: "retry_latest" }, { actor: "alice" }));
      expect(d.status).toBe("running");
      expect(d.step("s1")).toBe("running");
      expect(d.stepCtx("s1").retries).toBe(1);
      expect(d.newWork()).toEqual([expect.objectContaining({ stepId: "s1", attemptId: "r1.s1.2" })]);
      expect(d.eventsOf("run.status_changed", d.last.effects)[0]!.data).toMatchObject({ from: "blocked", to: "running", trigger: "RUN_STEP" });

      d.failResult("s1", { retryable: false });
      expect(d.status).toBe("blocked");
      d.signal({ name: "retry_latest" });
      expect(d.stepCtx("s1").retries).toBe(2);
      d.succeed("s1");
      expect(d.status).toBe("running");
    });

    it("carries what the caller says about the attempt (a CI failure to fix) to that attempt only", () => {
      const d = blocked();
      expectAccepted(d.signal({ name: "retry_latest", feedback: "CI failed: lint" }));
      expect(d.newWork()).toEqual([expect.objectContaining({ stepId: "s1", feedback: "CI failed: lint" })]);
      expect(d.eventsOf("step.started", d.last.effects)[0]!.data).toMatchObject({ hint: "CI failed: lint" });
      d.failResult("s1", { retryable: false });
      expectAccepted(d.signal({ name: "run_step", stepId: "s1" }));
      expect(d.newWork()[0]!.feedback).toBeUndefined();
      d.failResult("s1", { retryable: false });
      expectAccepted(d.signal({ name: "run_step", stepId: "s1", feedback: "tests: 2 failed" }));
      expect(d.newWork()[0]!.feedback).toBe("tests: 2 failed");
      expect(SignalSchema.safeParse({ name: "run_step", stepId: "s1", feedback: "" }).success).toBe(false);
      expect(SignalSchema.safeParse({ name: "retry_latest", feedback: "x".repeat(10_001) }).success).toBe(false);
    });

    it("picks the step that ran last", () => {
      const d = planned();
      d.signal({ name: "run_step", stepId: "s2" });
      d.failResult("s2", { retryable: false });
      d.tick(10);
      d.signal({ name: "run_step", stepId: "s1" });
      d.failResult("s1", { retryable: false });
      d.tick(10);
      d.signal({ name: "retry_latest" });
      expect(d.statuses()).toMatchObject({ s1: "running", s2: "failed" });
      expect(d.stepCtx("s1").retries).toBe(1);
      expect(d.stepCtx("s2").retries).toBe(0);
    });

    it('the last step did not fail → NOT_FOUND "No failed or blocked steps to retry"', () => {
      const d = running();
      expectRefused(d.signal({ name: "retry_latest" }), RefusalCode.NotFound, "No failed or blocked steps to retry");
      d.succeed("s1");
      expectRefused(d.signal({ name: "retry_latest" }), RefusalCode.NotFound);
      expectRefused(planned().signal({ name: "retry_latest" }), RefusalCode.NotFound);
    });

    it('terminal: NOT_FOUND "No failed or blocked steps to retry" when nothing is to retry (seed 004\'s 404), else TERMINAL_STATE', () => {
      for (const s of TERMINAL) expectRefused(BUILDERS[s]!().signal({ name: "retry_latest" }), RefusalCode.NotFound, "No failed or blocked steps to retry");
      const d = blocked();
      d.signal({ name: "cancel" });
      expect(d.step("s1")).toBe("failed");
      expectRefused(d.signal({ name: "retry_latest" }), RefusalCode.TerminalState);
    });
  });

  describe("step run", () => {
    it("pending → running (and the protocol runs)", () => {
      const d = planned();
      expectAccepted(d.signal({ name: "run_step", stepId: "s3" }));
      expect(d.statuses()).toEqual({ s1: "pending", s2: "pending", s3: "running" });
      expect(d.status).toBe("running");
    });

    it("pending while the protocol plans → running; the protocol plans on, then runs", () => {
      const d = Drive.of("protocol", { input: PROTO, steps: STEPS });
      d.start();
      expect(d.status).toBe("planning");
      expectAccepted(d.signal({ name: "run_step", stepId: "s2" }));
      expect(d.statuses()).toEqual({ s1: "pending", s2: "running", s3: "pending" });
      expect(d.newWork()).toEqual([expect.objectContaining({ stepId: "s2", kind: "execute", attempt: 1 })]);
      expect(d.status).toBe("planning");
      // The plan comes in: planned, and since a step runs, running.
      expectAccepted(d.succeed("plan", { steps: [] }));
      expect(d.eventsOf("run.status_changed", d.last.effects).map((e) => [e.data!.from, e.data!.to])).toEqual([
        ["planning", "planned"],
        ["planned", "running"],
      ]);
      d.succeed("s2");
      expect(d.statuses()).toEqual({ s1: "pending", s2: "completed", s3: "pending" });
      expect(d.status).toBe("running");
      // Other ways in stay refused while planning: they take steps the plan may still add.
      const e = planning();
      expectRefused(e.signal({ name: "run_next_step" }), RefusalCode.IllegalTransition, "the run is planning");
    });

    it("a step run while the protocol plans that fails blocks it once planned", () => {
      const d = Drive.of("protocol", { input: PROTO, steps: STEPS });
      d.start();
      expectAccepted(d.signal({ name: "run_step", stepId: "s1" }));
      d.failResult("s1", { code: "X", message: "boom", retryable: false });
      expect(d.status).toBe("planning");
      d.succeed("plan", { steps: [] });
      expect(d.status).toBe("blocked");
      expectAccepted(d.signal({ name: "retry_latest" }));
      expect(d.step("s1")).toBe("running");
    });

    it("failed → running, with retries + 1", () => {
      const d = blocked();
      expectAccepted(d.signal({ name: "run_step", stepId: "s1" }));
      expect(d.step("s1")).toBe("running");
      expect(d.stepCtx("s1").retries).toBe(1);
      expect(d.status).toBe("running");
    });

    it('running, needs_qa, qa, completed or cancelled → "Step already running or completed"', () => {
      const d = planned([{ id: "r" }, { id: "c" }, { id: "n", qa: { auto: false } }, { id: "q" }]);
      d.signal({ name: "run_step", stepId: "r" });
      d.signal({ name: "run_step", stepId: "c" });
      d.succeed("c");
      d.signal({ name: "run_step", stepId: "n" });
      d.succeed("n");
      d.signal({ name: "run_qa", stepId: "q" });
      expect(d.statuses()).toEqual({ r: "running", c: "completed", n: "needs_qa", q: "qa" });
      for (const id of ["r", "c", "n", "q"])
        expectRefused(d.signal({ name: "run_step", stepId: id }), RefusalCode.IllegalTransition, "Step already running or completed");
      d.signal({ name: "cancel" });
      expectRefused(d.signal({ name: "run_step", stepId: "r" }), RefusalCode.TerminalState);
    });

    it("an unknown step → NOT_FOUND", () => {
      expectRefused(planned().signal({ name: "run_step", stepId: "nope" }), RefusalCode.NotFound);
    });
  });

  describe("step run_qa", () => {
    it("from pending, running, needs_qa and failed: QA is dispatched (needs_qa → qa)", () => {
      const d = planned([{ id: "p" }, { id: "r" }, { id: "n", qa: { auto: false } }, { id: "f" }]);
      d.signal({ name: "run_step", stepId: "r" });
      d.signal({ name: "run_step", stepId: "n" });
      d.succeed("n", { diff: "+1" });
      d.signal({ name: "run_step", stepId: "f" });
      d.failResult("f", { retryable: false });
      for (const id of ["p", "r", "n", "f"]) {
        const from = d.step(id);
        expectAccepted(d.signal({ name: "run_qa", stepId: id }));
        expect(d.step(id), `${id} from ${from}`).toBe("qa");
        expect(d.newWork()).toEqual([expect.objectContaining({ stepId: id, kind: "qa", role: "qa", type: "qa.review" })]);
        expect(d.eventsOf("step.qa_started", d.last.effects)[0]!.data).toMatchObject({ stepId: id, from, to: "qa" });
      }
      // QA reviews the step's output.
      expect(d.work.get("n")!.inputs).toEqual({ output: { diff: "+1" }, inputs: {} });
    });

    it('completed or cancelled → "Step already completed or cancelled"', () => {
      const d = running();
      d.succeed("s1");
      expectRefused(d.signal({ name: "run_qa", stepId: "s1" }), RefusalCode.IllegalTransition, "Step already completed or cancelled");
      d.signal({ name: "cancel" });
      expectRefused(d.signal({ name: "run_qa", stepId: "s2" }), RefusalCode.IllegalTransition);
      expectRefused(planned().signal({ name: "run_qa", stepId: "nope" }), RefusalCode.NotFound);
    });
  });

  describe("step approve", () => {
    it("force-approves a step from pending, running, needs_qa, qa and failed", () => {
      const d = planned([{ id: "p" }, { id: "r" }, { id: "n", qa: { auto: false } }, { id: "q" }, { id: "f" }, { id: "last" }]);
      d.signal({ name: "run_step", stepId: "r" });
      d.signal({ name: "run_step", stepId: "n" });
      d.succeed("n");
      d.signal({ name: "run_qa", stepId: "q" });
      d.signal({ name: "run_step", stepId: "f" });
      d.failResult("f", { retryable: false });
      d.signal({ name: "run_step", stepId: "last" });
      expect(d.statuses()).toEqual({ p: "pending", r: "running", n: "needs_qa", q: "qa", f: "failed", last: "running" });
      expect(d.status).toBe("blocked");
      for (const id of ["p", "r", "n", "q", "f"]) {
        const from = d.step(id);
        expectAccepted(d.signal({ name: "approve", stepId: id, force: true }, { actor: "lead", reason: "manual override" }));
        expect(d.step(id), `${id} from ${from}`).toBe("completed");
        expect(d.eventsOf("step.approved", d.last.effects)[0]!.data).toMatchObject({
          stepId: id,
          to: "completed",
          forced: true,
          actor: "lead",
          reason: "manual override",
        });
        // f failed is what blocks the protocol: approving it unblocks it.
        expect(d.status, `after approving ${id}`).toBe(id === "f" ? "running" : "blocked");
      }
      expect(d.eventsOf("run.status_changed", d.last.effects).map((e) => e.data)).toEqual([
        { from: "blocked", to: "running", trigger: "UNBLOCK", reason: "nothing blocks it any more", stage: "main" },
      ]);
      // The in-flight work of a force-approved step is ignored when it arrives.
      d.succeed("r", { late: true });
      expect(d.eventTypes()).toEqual(["step.result_ignored"]);
    });

    it("the protocol completes when every step is completed or cancelled", () => {
      const d = running();
      d.tick(5);
      d.signal({ name: "approve", stepId: "s1", force: true });
      d.signal({ name: "approve", stepId: "s2", force: true });
      expect(d.status).toBe("running");
      d.signal({ name: "approve", stepId: "s3", force: true });
      expect(d.status).toBe("completed");
      expect(d.eventTypes()).toEqual(["step.approved", "run.finished"]);
      // The running protocol's stage is done (a planned, paused or blocked one completes by COMPLETE).
      expect(d.eventsOf("run.finished", d.last.effects)[0]!.data).toEqual({ status: "completed", from: "running", trigger: "STAGE_DONE", stage: "main" });
    });

    it("completes normally too: the last step's success completes the protocol", () => {
      const d = running();
      d.succeed("s1");
      d.signal({ name: "run_next_step" });
      d.succeed("s2");
      d.signal({ name: "run_next_step" });
      d.succeed("s3");
      expect(d.status).toBe("completed");
      expect(d.state.stepsCompleted).toBe(3);
    });

    it("the protocol completes when the last open step is approved while planned, paused or blocked", () => {
      const p = planned();
      p.tick(4);
      for (const id of ["s1", "s2"]) p.signal({ name: "approve", stepId: id, force: true });
      expect(p.status).toBe("planned");
      expectAccepted(p.signal({ name: "approve", stepId: "s3", force: true, output: { last: true } }));
      expect(p.status).toBe("completed");
      expect(p.eventsOf("run.status_changed", p.last.effects)).toEqual([]);
      expect(p.eventsOf("run.finished", p.last.effects)).toEqual([
        {
          kind: "event",
          type: "run.finished",
          at: T0 + 4,
          data: { status: "completed", from: "planned", trigger: "COMPLETE", reason: "every step is done", stage: "", result: { last: true } },
        },
      ]);
      expect(p.context.finishedAt).toBe(T0 + 4);

      const q = paused();
      for (const id of ["s1", "s2", "s3"]) q.signal({ name: "approve", stepId: id, force: true });
      expect(q.status).toBe("completed");
      expect(q.eventsOf("run.status_changed", q.last.effects)).toEqual([]);
      expect(q.eventsOf("run.finished", q.last.effects)[0]!.data).toMatchObject({ status: "completed", from: "paused", trigger: "COMPLETE" });

      const b = blocked();
      // Approving what blocked it unblocks the protocol (it goes back to running by itself) …
      b.signal({ name: "approve", stepId: "s1", force: true });
      expect(b.status).toBe("running");
      expect(b.eventsOf("run.status_changed", b.last.effects).map((e) => e.data)).toEqual([
        { from: "blocked", to: "running", trigger: "UNBLOCK", reason: "nothing blocks it any more", stage: "main" },
      ]);
      // … and approving the rest completes it.
      for (const id of ["s2", "s3"]) b.signal({ name: "approve", stepId: id, force: true });
      expect(b.status).toBe("completed");
      expect(b.eventsOf("run.status_changed", b.last.effects)).toEqual([]);
      expect(b.eventsOf("run.finished", b.last.effects)[0]!.data).toMatchObject({ status: "completed", from: "running", trigger: "STAGE_DONE" });
    });

    it("a protocol that never started completes when its last step is approved (steps added while pending)", () => {
      const d = fresh();
      expectAccepted(d.signal({ name: "add_steps", steps: [{ id: "a" }, { id: "b" }] }));
      d.tick(2);
      d.signal({ name: "approve", stepId: "a", force: true });
      expect(d.status).toBe("pending");
      expectAccepted(d.signal({ name: "approve", stepId: "b", force: true }));
      expect(d.status).toBe("completed");
      expect(d.eventsOf("run.status_changed")).toEqual([]);
      // The planning step that never ran is cancelled as the protocol settles, before its end.
      expect(d.eventTypes()).toEqual(["step.approved", "step.cancelled", "run.finished"]);
      expect(d.eventsOf("step.cancelled", d.last.effects)[0]!.data).toMatchObject({ stepId: "plan", from: "pending", to: "cancelled" });
      expect(d.eventsOf("run.finished", d.last.effects)[0]!.data).toEqual({
        status: "completed",
        from: "pending",
        trigger: "COMPLETE",
        reason: "every step is done",
        stage: "",
      });
      // A pending protocol with no steps stays pending.
      expect(fresh().status).toBe("pending");
    });

    it("a blocked protocol whose blocking steps all settle completes from blocked", () => {
      const d = running();
      for (const id of ["s1", "s2"]) d.signal({ name: "approve", stepId: id, force: true });
      d.signal({ name: "run_step", stepId: "s3" });
      d.failResult("s3", { retryable: false });
      expect(d.status).toBe("blocked");
      d.signal({ name: "approve", stepId: "s3", force: true, output: { fixed: true } });
      expect(d.status).toBe("completed");
      expect(d.eventsOf("run.status_changed", d.last.effects)).toEqual([]);
      expect(d.eventsOf("run.finished", d.last.effects)[0]!.data).toEqual({
        status: "completed",
        from: "blocked",
        trigger: "COMPLETE",
        reason: "every step is done",
        stage: "main",
        result: { fixed: true },
      });
      expect(d.context.error).toBeUndefined();
      expect(d.context.result).toEqual({ fixed: true });
    });

    it("a step settled before the protocol first runs stays settled", () => {
      const d = planned();
      d.signal({ name: "approve", stepId: "s1", force: true });
      expect(d.step("s1")).toBe("completed");
      expect(d.state.stepsCompleted).toBe(1);
      d.signal({ name: "run_step", stepId: "s2" });
      // The protocol's first entry into its stage is no re-entry: nothing is reset.
      expect(d.eventsOf("run.stage_entered", d.last.effects)).toEqual([]);
      expect(d.eventsOf("step.reset", d.last.effects)).toEqual([]);
      expect(d.step("s1")).toBe("completed");
      expect(d.step("s2")).toBe("running");
      expect(d.state.stepsCompleted).toBe(1);
    });

    it("approving a completed step is accepted and changes nothing; an unknown one is NOT_FOUND", () => {
      const d = running();
      d.succeed("s1");
      const r = d.signal({ name: "approve", stepId: "s1", force: true });
      expectAccepted(r);
      expect(r.changed).toBe(false);
      expectRefused(d.signal({ name: "approve", stepId: "nope", force: true }), RefusalCode.NotFound);
    });

    it("a finished protocol's steps cannot be approved any more", () => {
      const d = running();
      d.signal({ name: "cancel" });
      expect(d.step("s2")).toBe("cancelled");
      expectRefused(d.signal({ name: "approve", stepId: "s2", force: true }), RefusalCode.TerminalState);
      expect(d.step("s2")).toBe("cancelled");
      expect(d.status).toBe("cancelled");
      expect(d.state.stepsCompleted).toBe(0);
    });

    it("a finished protocol is immutable: approve (forced or not), reject, set_facts and block_step are TERMINAL_STATE", () => {
      for (const s of TERMINAL) {
        const d = BUILDERS[s]!();
        const some = Object.keys(d.state.steps)[0] ?? "plan";
        for (const sig of [
          { name: "approve" },
          { name: "approve", stepId: some },
          { name: "approve", stepId: some, force: true },
          { name: "approve", stepId: "plan", force: true },
          { name: "reject" },
          { name: "reject", stepId: some },
          { name: "set_facts", facts: { x: 1 } },
          { name: "block_step" },
          { name: "block_step", stepId: some },
        ] as const) {
          expectRefused(d.signal(sig), RefusalCode.TerminalState);
        }
        expect(d.status).toBe(s);
      }
    });

    it("without force, approve only applies to a step waiting for approval", () => {
      const d = running();
      expectRefused(d.signal({ name: "approve", stepId: "s1" }), RefusalCode.IllegalTransition);
    });
  });

  describe("a failed step blocks the protocol (onStepFailure: block)", () => {
    it("after its retries are used up", () => {
      const d = running();
      d.tick(1);
      d.failResult("s1", { message: "flaky" });
      expect(d.step("s1")).toBe("retry_wait");
      expect(d.status).toBe("running");
      d.fireTimers("retry");
      d.failResult("s1", { message: "flaky" });
      d.fireTimers("retry");
      d.failResult("s1", { message: "CI failed" });
      expect(d.step("s1")).toBe("failed");
      expect(d.status).toBe("blocked");
      expect(d.context.error).toBe("CI failed");
      expect(d.eventsOf("run.status_changed", d.last.effects)[0]!.data).toMatchObject({
        from: "running",
        to: "blocked",
        trigger: "BLOCKED",
        error: "CI failed",
      });
      expect(d.dispatched.filter((w) => w.stepId === "s1")).toHaveLength(3);
    });

    it("fail_step with block: true blocks the protocol too", () => {
      const d = running();
      expectAccepted(d.fail("CI failed; protocol blocked", "s1", { block: true }));
      expect(d.status).toBe("blocked");
      expect(d.step("s1")).toBe("failed");
    });

    it("another step run while one is failed leaves the protocol blocked", () => {
      const d = blocked();
      d.signal({ name: "run_step", stepId: "s2" });
      expect(d.step("s2")).toBe("running");
      expect(d.status).toBe("blocked");
    });
  });

  describe("open_pr", () => {
    it("adds a pr.open step named open_pr, open_pr_2, … and starts it in the same transition", () => {
      const d = Drive.of("protocol", { input: PROTO, project: { forge: FORGE, baseBranch: "main" } });
      d.start();
      expectAccepted(d.succeed("plan", { steps: [{ id: "s1" }] }));
      expectAccepted(d.signal({ name: "open_pr", payload: { step_name: "open_pr" } }, { actor: "alice" }));
      expect(d.step("open_pr")).toBe("running");
      expect(d.newWork()).toEqual([expect.objectContaining({ stepId: "open_pr", type: "pr.open", role: "maintainer" })]);
      d.succeed("open_pr", { pullRequest: { number: 1, url: "https://example.test/pr/1", state: "open" } });
      expectAccepted(d.signal({ name: "open_pr" }));
      expect(d.step("open_pr_2")).toBe("running");
    });

    it("is refused on a finished run", () => {
      expectRefused(completed().signal({ name: "open_pr" }), RefusalCode.TerminalState);
    });
  });

  describe("add_steps", () => {
    it("adds steps to a protocol; existing ids are skipped; bad ones are INVALID", () => {
      const d = planned([{ id: "s1" }]);
      expectAccepted(
        d.signal(
          {
            name: "add_steps",
            steps: [
              { id: "s1", type: "other" },
              { id: "s2", needs: ["s1"] },
            ],
          },
          { actor: "alice" },
        ),
      );
      expect(d.statuses()).toEqual({ s1: "pending", s2: "pending" });
      expect(d.eventsOf("step.added", d.last.effects).map((e) => e.data)).toEqual([expect.objectContaining({ stepId: "s2", index: 1, why: "added by alice" })]);
      expectRefused(d.signal({ name: "add_steps", steps: [{ id: "bad", role: "wizard" as never }] }), RefusalCode.Invalid);
      expectRefused(d.signal({ name: "add_steps", steps: [{ id: "z", needs: ["nope"] }] }), RefusalCode.Invalid, /unknown step/);
      expectRefused(d.signal({ name: "add_steps", steps: [{ id: "has space" }] }), RefusalCode.Invalid);
    });

    it("keeps a run under MAX_RUN_STEPS steps (a step's number is its run's × MAX_RUN_STEPS + its index)", () => {
      const d = planned([{ id: "s1" }]);
      const batch = (from: number) => Array.from({ length: 1_000 }, (_, i) => ({ id: `b${from + i}` }));
      for (let k = 0; k < 9; k++) expectAccepted(d.signal({ name: "add_steps", steps: batch(k * 1_000) }));
      // 9,001 steps: 999 more fit, 1,000 do not (and none of them is added).
      expectRefused(d.signal({ name: "add_steps", steps: batch(9_000) }), RefusalCode.Invalid, /at most 10000 steps/);
      expect(Object.keys(d.statuses())).toHaveLength(9_001);
      expectAccepted(d.signal({ name: "add_steps", steps: batch(9_000).slice(0, 999) }));
      expect(Object.keys(d.statuses())).toHaveLength(MAX_RUN_STEPS);
      expectRefused(d.signal({ name: "add_steps", steps: [{ id: "one-more" }] }), RefusalCode.Invalid, /at most 10000 steps/);
    });

    it("is refused on a terminal protocol and on a definition that takes no added steps", () => {
      expectRefused(completed().signal({ name: "add_steps", steps: [{ id: "x" }] }), RefusalCode.TerminalState);
      const s = Drive.of("speckit.plan", { autoStart: true });
      expectRefused(s.signal({ name: "add_steps", steps: [{ id: "x" }] }), RefusalCode.IllegalTransition);
    });

    it("with qa: { auto: true } the step goes to QA after execution and a QA pass completes it", () => {
      const d = planned([]);
      d.signal({ name: "add_steps", steps: [{ id: "impl", type: "codex", qa: { auto: true } }] });
      d.signal({ name: "run_step", stepId: "impl" });
      d.succeed("impl", { diff: "+x" });
      expect(d.step("impl")).toBe("qa");
      expect(d.eventTypes()).toEqual(["step.succeeded", "step.qa_started"]);
      const qa = d.newWork()[0]!;
      expect(qa).toMatchObject({ stepId: "impl", kind: "qa", role: "qa", type: "qa.review", inputs: { output: { diff: "+x" } }, attemptId: "r1.impl.2" });
      expectAccepted(d.succeed("impl", { verdict: "pass" }));
      expect(d.step("impl")).toBe("completed");
      expect(d.eventsOf("step.qa_passed", d.last.effects)[0]!.data).toMatchObject({ ok: true, report: { verdict: "pass" } });
      // QA does not replace the step's output.
      expect(d.stepCtx("impl").output).toEqual({ diff: "+x" });
      expect(d.status).toBe("completed");
    });

    it("a QA fail fails the step (and blocks the protocol)", () => {
      const d = planned([]);
      d.signal({ name: "add_steps", steps: [{ id: "impl", qa: { auto: true, role: "reviewer", type: "review.strict" } }, { id: "next" }] });
      d.signal({ name: "run_step", stepId: "impl" });
      d.succeed("impl");
      expect(d.newWork()[0]).toMatchObject({ kind: "qa", role: "reviewer", type: "review.strict" });
      d.failResult("impl", { message: "tests missing" });
      expect(d.step("impl")).toBe("failed");
      expect(d.eventTypes()).toContain("step.qa_failed");
      expect(d.status).toBe("blocked");
    });

    it("with qa: { auto: false } the step waits in needs_qa until run_qa", () => {
      const d = planned([]);
      d.signal({ name: "add_steps", steps: [{ id: "impl", qa: { auto: false } }] });
      d.signal({ name: "run_step", stepId: "impl" });
      d.succeed("impl", { a: 1 });
      expect(d.step("impl")).toBe("needs_qa");
      expect(d.eventTypes()).toEqual(["step.succeeded", "step.needs_qa"]);
      expect(d.newWork()).toEqual([]);
      d.signal({ name: "run_qa", stepId: "impl" });
      expect(d.step("impl")).toBe("qa");
      d.succeed("impl", { ok: true });
      expect(d.step("impl")).toBe("completed");
    });

    it("a stale execute result while QA runs is ignored", () => {
      const d = planned([{ id: "impl", qa: { auto: true } }]);
      d.signal({ name: "run_step", stepId: "impl" });
      const exec = d.work.get("impl")!.attemptId;
      d.succeed("impl");
      const r = d.result("impl", true, { attemptId: exec, kind: "execute" });
      expectAccepted(r);
      expect(d.eventTypes()).toEqual(["step.result_ignored"]);
      expect(d.step("impl")).toBe("qa");
    });
  });

  describe("step run statuses (pending → running → needs_qa → completed | failed | cancelled | blocked)", () => {
    it("reaches each of them", () => {
      const seen = new Set<string>();
      const d = planned([{ id: "a", qa: { auto: false } }, { id: "b" }, { id: "c" }]);
      const note = () => Object.keys(d.state.steps).forEach((id) => seen.add(d.step(id)));
      note();
      d.signal({ name: "run_step", stepId: "a" });
      note();
      d.succeed("a");
      note();
      d.signal({ name: "run_qa", stepId: "a" });
      d.succeed("a");
      note();
      d.signal({ name: "run_step", stepId: "b" });
      d.failResult("b", { retryable: false });
      note();
      d.signal({ name: "block_step", stepId: "c" });
      note();
      d.signal({ name: "cancel" });
      note();
      expect([...seen].sort()).toEqual(["blocked", "cancelled", "completed", "failed", "needs_qa", "pending", "running"]);
    });

    it("block_step blocks a running step, and the protocol with it; fail_step with block: true fails the step and blocks the protocol", () => {
      const d = running();
      d.tick(3);
      expectAccepted(d.signal({ name: "block_step", stepId: "s1" }, { actor: "ci", reason: "waiting on credentials" }));
      expect(d.step("s1")).toBe("blocked");
      expect(d.status).toBe("blocked");
      expect(d.eventsOf("step.blocked", d.last.effects).map((e) => e.data)).toEqual([
        expect.objectContaining({ stepId: "s1", from: "running", to: "blocked", reason: "waiting on credentials" }),
      ]);
      expect(d.eventsOf("run.status_changed", d.last.effects)[0]!.data).toMatchObject({ from: "running", to: "blocked", trigger: "BLOCKED" });
      // Its in-flight work is ignored when it arrives.
      d.succeed("s1");
      expect(d.eventTypes()).toEqual(["step.result_ignored"]);
      expect(d.step("s1")).toBe("blocked");
      // retry_latest (and run_next_step, run_step) take a blocked step.
      expectAccepted(d.signal({ name: "retry_latest" }));
      expect(d.step("s1")).toBe("running");
      expect(d.status).toBe("running");
      expect(d.eventsOf("step.started", d.last.effects)[0]!.data).toMatchObject({ stepId: "s1", from: "blocked", reason: "manual" });

      const e = running();
      expectAccepted(e.fail("waiting on credentials", "s1", { block: true }));
      expect(e.status).toBe("blocked");
      expect(e.step("s1")).toBe("failed");
      expect(e.context.error).toBe("waiting on credentials");
    });

    it("block_step takes a pending step too (without a stepId: the first running, retrying or pending one); other steps are refused", () => {
      const d = running();
      expectAccepted(d.signal({ name: "block_step" }));
      expect(d.step("s1")).toBe("blocked");
      expectAccepted(d.signal({ name: "block_step", stepId: "s3" }));
      expect(d.statuses()).toEqual({ s1: "blocked", s2: "pending", s3: "blocked" });
      expect(d.status).toBe("blocked");
      expectRefused(d.signal({ name: "block_step", stepId: "s3" }), RefusalCode.IllegalTransition, /cannot be blocked/);
      expectRefused(d.signal({ name: "block_step", stepId: "nope" }), RefusalCode.NotFound);
      expectAccepted(d.signal({ name: "run_next_step" }));
      expect(d.step("s1")).toBe("running");
      d.succeed("s1");
      expectRefused(d.signal({ name: "block_step", stepId: "s1" }), RefusalCode.IllegalTransition, /completed: it cannot be blocked/);
    });
  });
});

describe("protocol budgets (seed 004 token budgets) on the protocol built-in", () => {
  it("a step's usage over a strict budget is recorded once (budget.exceeded); the next manual start opens the gate", () => {
    const d = overBudget();
    expect(d.step("s1")).toBe("completed");
    expect(d.eventsOf("budget.exceeded").map((e) => e.data)).toEqual([
      { budget: "run:*", subject: "run", mode: "strict", usage: { tokens: 150, costUsd: 0 }, limit: { tokens: 100 } },
    ]);
    expect(d.status).toBe("running");
    expect(d.context.gate).toBeUndefined();
    // A manual start passes the budgets like an automatic one: run_next_step is accepted, but
    // instead of starting s2 over the used-up strict budget the protocol waits at the gate.
    const r = d.signal({ name: "run_next_step" });
    expectAccepted(r);
    expect(d.step("s2")).toBe("pending");
    expect(d.status).toBe("waiting");
    expect(d.context.gate).toMatchObject({ kind: "budget", budget: "run:*" });
    expect(d.eventsOf("run.status_changed", r.effects).map((e) => [e.data!.from, e.data!.to, e.data!.trigger])).toEqual([["running", "waiting", "GATE"]]);
    expect(d.eventsOf("budget.exceeded", r.effects)).toEqual([]);
    expect(d.newWork()).toEqual([]);
  });

  it("at a gate nothing starts by hand; extend_budget lets it go on; abort fails it", () => {
    const d = waiting();
    expect(d.status).toBe("waiting");
    expect(d.context.gate).toMatchObject({ kind: "budget", budget: "run:*", usage: { tokens: 150 }, limit: { tokens: 100 } });
    expectRefused(d.signal({ name: "run_next_step" }), RefusalCode.BudgetGate, /waits at a budget gate/);
    expectRefused(d.signal({ name: "run_step", stepId: "s2" }), RefusalCode.BudgetGate, /waits at a budget gate/);
    // open_pr is refused whole: its step is not added either.
    const before = Object.keys(d.statuses());
    expectRefused(d.signal({ name: "open_pr" }), RefusalCode.BudgetGate);
    expect(Object.keys(d.statuses())).toEqual(before);
    // Nothing failed: there is nothing to retry, gate or not.
    expectRefused(d.signal({ name: "retry_latest" }), RefusalCode.NotFound, "No failed or blocked steps to retry");
    expect(d.step("s2")).toBe("pending");
    expectAccepted(d.signal({ name: "extend_budget", tokens: 100 }));
    expect(d.status).toBe("running");
    expect(d.context.gate).toBeUndefined();
    expect(d.state.extensions).toEqual({ "run:*": { tokens: 100, costUsd: 0 } });
    expectAccepted(d.signal({ name: "run_next_step" }));
    expect(d.step("s2")).toBe("running");

    const e = waiting();
    expectAccepted(e.signal({ name: "abort" }));
    expect(e.status).toBe("failed");
    expect(e.context.error).toBe("budget exhausted: run:*");
  });
});

it("protocol definition compiles with inline steps too (a protocol template)", () => {
  const cd = define({
    id: "proto.tpl",
    version: 1,
    view: "protocol",
    execution: "manual",
    onStepFailure: "block",
    steps: [{ id: "a" }, { id: "b", needs: ["a"] }],
  });
  const d = Drive.of(cd, { autoStart: true });
  expect(d.status).toBe("running");
  expect(d.newWork()).toEqual([]);
  d.signal({ name: "run_next_step" });
  expect(d.running()).toEqual(["a"]);
});
