import { describe, expect, it } from "vitest";
import { RefusalCode, type RunTemplate } from "@orch/contracts";
import { backoffMs, builtin, builtinVersions, periodicRunId, runView } from "../src/index.js";
import { Drive, expectAccepted, expectRefused, T0 } from "./drive.js";

/**
 * Seed 001's tasks on the `task.queue` built-in (version 2): tasks are steps added to a run, queued
 * until dispatched (`run_step`), one attempt per dispatch; a failed task neither fails nor blocks the
 * run; a run whose tasks are all done waits (it never completes by itself) and takes more; a task
 * queued again is reset in its run; metadata is the step's. With the core's task worker on for a run
 * (recorded at its creation) its tasks start by themselves, in queue order, and a failed attempt is
 * retried with the worker's backoff through retry timers. And the `schedule` built-in: a periodic run
 * whose tick creates one run per slot.
 */

const task = (id: string, role = "implementer", description = `do ${id}`) => ({ id, role, type: "task", inputs: { taskId: id, description } });

function queued(ids: string[], opts: { worker?: { enabled?: boolean; maxRetries?: number; backoffMs?: number } } = {}): Drive {
  return Drive.of("task.queue", { steps: ids.map((id) => task(id)), autoStart: true, ...(opts.worker ? { workerDefaults: opts.worker } : {}) });
}

describe("task.queue", () => {
  it("is version 2; version 1 still loads for the runs created with it", () => {
    expect(builtin("task.queue").def.version).toBe(2);
    expect(builtinVersions().map((c) => c.key)).toContain("task.queue@1");
  });

  it("waits for a dispatch: nothing starts by itself, not even after more tasks are added", () => {
    const d = queued(["a"]);
    expect(d.status).toBe("running");
    expect(d.step("a")).toBe("pending");
    expect(d.dispatched).toEqual([]);
    expectAccepted(d.signal({ name: "add_steps", steps: [task("b", "reviewer")] }));
    expect(d.statuses()).toEqual({ a: "pending", b: "pending" });
    expect(d.dispatched).toEqual([]);
  });

  it("runs the dispatched task only, once; with every task done the run waits (no work), and takes more", () => {
    const d = queued(["a", "b"]);
    expectAccepted(d.signal({ name: "run_step", stepId: "b" }));
    expect(d.dispatched.map((w) => [w.stepId, w.type, w.role, w.inputs])).toEqual([["b", "task", "implementer", { taskId: "b", description: "do b" }]]);
    d.succeed("b", { done: true });
    expect(d.statuses()).toEqual({ a: "pending", b: "completed" });
    expect(d.status).toBe("running");
    expectAccepted(d.signal({ name: "run_step", stepId: "a" }));
    d.succeed("a");
    expect(d.status).toBe("waiting");
    expect(d.context.gate).toBeUndefined();
    expect(d.eventsOf("run.finished")).toEqual([]);
    expect(d.eventTypes()).toContain("run.status_changed");
    // A task added to a run whose tasks have all ended: it runs in the same run.
    expectAccepted(d.signal({ name: "add_steps", steps: [task("c")] }));
    expect(d.status).toBe("running");
    expect(d.step("c")).toBe("pending");
    expectAccepted(d.signal({ name: "run_step", stepId: "c" }));
    d.succeed("c");
    expect(d.status).toBe("waiting");
  });

  it("dispatches from a waiting run too (a task queued again there)", () => {
    const d = queued(["a"]);
    d.signal({ name: "run_step", stepId: "a" });
    d.succeed("a");
    expect(d.status).toBe("waiting");
    expectAccepted(d.signal({ name: "add_steps", steps: [task("a", "tester", "again")], replace: true }));
    expect(d.status).toBe("running");
    expectAccepted(d.signal({ name: "run_step", stepId: "a" }));
    expect(d.newWork().map((w) => [w.stepId, w.role, w.attempt, w.inputs.description])).toEqual([["a", "tester", 2, "again"]]);
  });

  it("does not retry by itself: a failure fails the task only; other tasks still run; the run waits when all are done", () => {
    const d = queued(["a", "b"]);
    d.signal({ name: "run_step", stepId: "a" });
    d.failResult("a", { retryable: true });
    expect(d.step("a")).toBe("failed");
    expect(d.timers.size).toBe(0);
    expect(d.status).toBe("running");
    expectAccepted(d.signal({ name: "run_step", stepId: "b" }));
    d.succeed("b");
    expect(d.status).toBe("waiting");
    // Dispatched again, it runs a second attempt.
    expectAccepted(d.signal({ name: "run_step", stepId: "a" }));
    expect(d.status).toBe("running");
    expect(d.stepCtx("a").attempt).toBe(2);
    d.succeed("a");
    expect(d.status).toBe("waiting");
  });

  it("refuses to dispatch a task that is running or done, atomically (the next dispatcher takes the next)", () => {
    const d = queued(["a"]);
    d.signal({ name: "run_step", stepId: "a" });
    expectRefused(d.signal({ name: "run_step", stepId: "a" }), RefusalCode.IllegalTransition);
    d.succeed("a");
    expectRefused(d.signal({ name: "run_step", stepId: "a" }), RefusalCode.IllegalTransition);
  });

  it("a repeat id replaces the task and queues it again: from pending, running (its attempt withdrawn) or done", () => {
    const d = queued(["a", "b"]);
    // Pending: replaced in place, now last in the run's queue order.
    expectAccepted(d.signal({ name: "add_steps", steps: [task("a", "reviewer", "second")], replace: true }));
    expect(d.eventTypes()).toEqual(["step.requeued"]);
    expect(d.eventsOf("step.requeued")[0]!.data).toMatchObject({ stepId: "a", from: "pending", role: "reviewer" });
    expect(d.state.extraSteps.map((s) => [s.id, s.role])).toEqual([
      ["a", "reviewer"],
      ["b", "implementer"],
    ]);
    // Running: its attempt is withdrawn (cancelled), a late result of it changes nothing.
    d.signal({ name: "run_step", stepId: "a" });
    const first = d.work.get("a")!.attemptId;
    expectAccepted(d.signal({ name: "add_steps", steps: [task("a", "tester", "third")], replace: true }));
    expect(d.eventTypes()).toEqual(["step.cancelled", "step.requeued"]);
    expect(d.step("a")).toBe("pending");
    expect(d.stepCtx("a").attempt).toBe(1);
    d.succeed("a", undefined, { attemptId: first });
    expect(d.eventTypes()).toEqual(["step.result_ignored"]);
    expect(d.step("a")).toBe("pending");
    // Done: pending again, output gone, metadata gone.
    d.signal({ name: "run_step", stepId: "a" });
    d.succeed("a", { x: 1 });
    d.ok(d.signal({ name: "set_step_metadata", stepId: "a", metadata: { k: 1 } }));
    expectAccepted(d.signal({ name: "add_steps", steps: [task("a", "tester", "fourth")], replace: true }));
    expect(d.step("a")).toBe("pending");
    expect(d.stepCtx("a").output).toBeUndefined();
    expect(d.state.stepMetadata?.a).toBeUndefined();
    // Without `replace`, a known id is left as it is.
    expectAccepted(d.signal({ name: "add_steps", steps: [task("a", "architect", "ignored")] }));
    expect(d.state.extraSteps.find((s) => s.id === "a")!.role).toBe("tester");
  });

  it("withdraws a task: skipped when waiting or failed, cancelled when running, nothing when done", () => {
    const d = queued(["a", "b", "c"]);
    expectAccepted(d.signal({ name: "withdraw_step", stepId: "a" }));
    expect(d.step("a")).toBe("skipped");
    d.signal({ name: "run_step", stepId: "b" });
    expectAccepted(d.signal({ name: "withdraw_step", stepId: "b" }, { reason: "superseded" }));
    expect(d.step("b")).toBe("cancelled");
    expect(d.eventsOf("step.cancelled")[0]!.data).toMatchObject({ stepId: "b", reason: "superseded" });
    d.signal({ name: "run_step", stepId: "c" });
    d.succeed("c");
    const r = d.signal({ name: "withdraw_step", stepId: "c" });
    expectAccepted(r);
    expect(r.changed).toBe(false);
    expect(d.status).toBe("waiting");
    expectRefused(d.signal({ name: "withdraw_step", stepId: "nope" }), RefusalCode.NotFound);
  });

  it("merges a step's metadata shallowly, shows it in the view, and changes nothing when it is the same", () => {
    const d = queued(["a"]);
    d.ok(d.signal({ name: "set_step_metadata", stepId: "a", metadata: { owner: "ana", labels: { a: 1 } } }));
    d.ok(d.signal({ name: "set_step_metadata", stepId: "a", metadata: { labels: { b: 2 }, priority: 3 } }));
    expect(d.state.stepMetadata?.a).toEqual({ owner: "ana", labels: { b: 2 }, priority: 3 });
    expect(d.eventsOf("step.metadata_set")).toHaveLength(2);
    expect(d.signal({ name: "set_step_metadata", stepId: "a", metadata: { priority: 3 } }).changed).toBe(false);
    const view = runView(d.cd, d.state, {
      runId: "r1",
      projectId: "p1",
      definition: { id: "task.queue", version: 2 },
      view: "task",
      labels: {},
      status: "running",
      createdAt: T0,
      updatedAt: T0,
      seq: 1,
      mode: "mock",
      stepsRun: 0,
    });
    expect(view.steps[0]).toMatchObject({
      id: "a",
      metadata: { owner: "ana", labels: { b: 2 }, priority: 3 },
      inputs: { taskId: "a", description: "do a" },
      maxAttempts: 1,
    });
    expectRefused(d.signal({ name: "set_step_metadata", stepId: "zz", metadata: {} }), RefusalCode.NotFound);
  });
});

describe("task.queue with the core's task worker on (run policy, recorded at creation)", () => {
  it("records the rules in run.created; starts tasks by itself, one at a time, in queue order", () => {
    const d = queued(["x", "a", "b"], { worker: { enabled: true, maxRetries: 2, backoffMs: 200 } });
    expect(d.state.worker).toEqual({ enabled: true, maxRetries: 2, backoffMs: 200 });
    expect(d.eventsOf("run.created")[0]!.data).toMatchObject({ worker: { enabled: true, maxRetries: 2, backoffMs: 200 } });
    expect(d.dispatched.map((w) => w.stepId)).toEqual(["x"]);
    // a queued again (before it ran) goes after b; c, added after that, after a.
    expectAccepted(d.signal({ name: "add_steps", steps: [task("a", "tester")], replace: true }));
    expectAccepted(d.signal({ name: "add_steps", steps: [task("c")] }));
    expect(d.running()).toEqual(["x"]);
    const order: string[] = [];
    for (const id of ["x", "b", "a", "c"]) {
      expect(d.running()).toEqual([id]);
      order.push(id);
      d.succeed(id);
    }
    expect(order).toEqual(["x", "b", "a", "c"]);
    expect(d.status).toBe("waiting");
    // A task added to the waiting run starts at once.
    d.signal({ name: "add_steps", steps: [task("d")] });
    expect(d.running()).toEqual(["d"]);
  });

  it("retries a failed attempt through retry timers: base · 2^(n−1), no jitter, capped at 60 s; step.retrying events", () => {
    const d = queued(["a"], { worker: { enabled: true, maxRetries: 2, backoffMs: 200 } });
    d.failResult("a", { retryable: true });
    expect(d.step("a")).toBe("retry_wait");
    expect(d.eventsOf("step.retrying").map((e) => e.data!.backoffMs)).toEqual([200]);
    expect(d.timer("retry", "a")!.dueAt).toBe(d.now + 200);
    d.fireTimers("retry");
    expect(d.step("a")).toBe("running");
    d.failResult("a", { retryable: true });
    expect(d.eventsOf("step.retrying").map((e) => e.data!.backoffMs)).toEqual([200, 400]);
    d.fireTimers("retry");
    d.succeed("a");
    expect(d.step("a")).toBe("completed");
    expect(d.stepCtx("a").attempt).toBe(3);
    // The policy behind it.
    const p = { maxAttempts: 101, initialMs: 1_000, multiplier: 2, maxMs: 60_000, jitterMs: 0, nonRetryable: [] };
    expect([1, 2, 3, 7, 8].map((n) => backoffMs(p, n, 0.99))).toEqual([1_000, 2_000, 4_000, 60_000, 60_000]);
  });

  it("a task that fails every retry fails; the run goes on with its next task", () => {
    const d = queued(["a", "b"], { worker: { enabled: true, maxRetries: 1, backoffMs: 10 } });
    d.failResult("a");
    d.fireTimers("retry");
    d.failResult("a");
    expect(d.step("a")).toBe("failed");
    expect(d.running()).toEqual(["b"]);
  });

  it("with the worker off (the default) the run keeps the definition's: manual, one attempt", () => {
    const d = queued(["a"]);
    expect(d.state.worker).toEqual({ enabled: false, maxRetries: 3, backoffMs: 1_000 });
    expect(d.dispatched).toEqual([]);
    d.signal({ name: "run_step", stepId: "a" });
    d.failResult("a");
    expect(d.step("a")).toBe("failed");
  });
});

describe("schedule (periodic runs)", () => {
  const creates: RunTemplate = {
    definition: { id: "task.queue" },
    input: { type: "scheduled", payload: { slot: "${slot}" } },
    steps: [{ id: "${runId}-tester", role: "tester", type: "task", inputs: { taskId: "${runId}-tester", description: "check" } }],
  };
  const EVERY = 1_000;

  function scheduled(now = 10 * EVERY + 300): Drive {
    // Version 1: the periodic run (version 2 is a schedule, test/schedules.test.ts).
    const d = Drive.of(
      builtinVersions().find((c) => c.def.id === "schedule" && c.def.version === 1)!,
      { autoStart: true },
      { now },
    );
    expect(d.status).toBe("waiting");
    return d;
  }

  it("ticks once per slot: the current slot at once, then each next; each tick carries the slot's create", () => {
    const d = scheduled();
    d.ok(d.signal({ name: "set_schedule", enabled: true, everyMs: EVERY, creates }));
    const armed = d.timer("tick")!;
    expect(armed).toMatchObject({ timerId: "r1.tick.1000.10", dueAt: d.now });
    d.fire(armed.timerId);
    const sets = d.timerEffects().filter((t) => t.op === "set");
    const cmd = sets.find((t) => t.op === "set" && t.timerKind === "command");
    expect(cmd).toMatchObject({ timerId: "r1.create.1000.10", dueAt: d.now });
    expect((cmd as { command?: Record<string, unknown> }).command).toMatchObject({
      type: "run.create",
      runId: periodicRunId("r1", EVERY, 10),
      commandId: `create:${periodicRunId("r1", EVERY, 10)}`,
      definition: { id: "task.queue" },
      input: { type: "scheduled", payload: { slot: 10 } },
      steps: [{ id: "r1-1000-10-tester", inputs: { taskId: "r1-1000-10-tester" } }],
    });
    expect(d.eventsOf("schedule.ticked").map((e) => e.data!.slot)).toEqual([10]);
    expect(d.timer("tick")).toMatchObject({ timerId: "r1.tick.1000.11", dueAt: 11 * EVERY });
    // The same tick again (a redelivered timer) changes nothing.
    expect(d.apply({ type: "timer", timerId: armed.timerId, kind: "tick" }).changed).toBe(false);
    d.fire("r1.tick.1000.11");
    expect(d.eventsOf("schedule.ticked").map((e) => e.data!.slot)).toEqual([10, 11]);
    // Fired late, past whole slots: the current slot is next, those missed are skipped.
    d.tick(0);
    const next = d.timer("tick")!;
    d.at(15 * EVERY + 10).fire(next.timerId);
    expect(d.timer("tick")!.timerId).toBe("r1.tick.1000.15");
  });

  it("the same schedule again changes nothing; a new one re-arms; off withdraws the tick; cancel ends it", () => {
    const d = scheduled();
    d.ok(d.signal({ name: "set_schedule", enabled: true, everyMs: EVERY, creates }));
    expect(d.signal({ name: "set_schedule", enabled: true, everyMs: EVERY, creates }).changed).toBe(false);
    d.ok(d.signal({ name: "set_schedule", enabled: true, everyMs: 2 * EVERY, creates }));
    expect(d.timerEffects().map((t) => [t.op, t.timerId])).toEqual([
      ["cancel", "r1.tick.1000.10"],
      ["set", "r1.tick.2000.5"],
    ]);
    d.ok(d.signal({ name: "set_schedule", enabled: false }));
    expect(d.timers.size).toBe(0);
    d.ok(d.signal({ name: "set_schedule", enabled: true, everyMs: EVERY, creates }));
    d.ok(d.signal({ name: "cancel" }));
    expect(d.timers.size).toBe(0);
    expect(d.status).toBe("cancelled");
  });

  it("refuses a schedule on a run that does not tick, or an enabled one without what it creates", () => {
    const t = queued(["a"]);
    expectRefused(t.signal({ name: "set_schedule", enabled: true, everyMs: EVERY, creates }), RefusalCode.IllegalTransition);
    const d = scheduled();
    expectRefused(d.signal({ name: "set_schedule", enabled: true, everyMs: EVERY }), RefusalCode.Invalid);
  });
});
