import { describe, expect, it } from "vitest";
import { RefusalCode } from "@orch/contracts";
import { runStatusOf } from "../src/index.js";
import { Drive, expectAccepted, expectRefused } from "./drive.js";

/**
 * Seed 001's tasks on the `task.queue` built-in: tasks are steps added to a run, queued until
 * dispatched one at a time (`run_step`), one attempt per dispatch; a failed task blocks the run
 * (its other tasks can still run, the failed one can be dispatched again or skipped), and the run
 * completes once every task has.
 */

const task = (id: string, role = "implementer") => ({ id, role, type: "task", inputs: { taskId: id, description: `do ${id}` } });

function queued(...ids: string[]): Drive {
  const d = Drive.of("task.queue", { steps: ids.map((id) => task(id)), autoStart: true });
  return d;
}

describe("task.queue", () => {
  it("waits for a dispatch: nothing starts by itself, not even after more tasks are added", () => {
    const d = queued("a");
    expect(runStatusOf(d.state.run.value)).toBe("running");
    expect(d.step("a")).toBe("pending");
    expect(d.dispatched).toEqual([]);
    expectAccepted(d.signal({ name: "add_steps", steps: [task("b", "reviewer")] }));
    expect(d.statuses()).toEqual({ a: "pending", b: "pending" });
    expect(d.dispatched).toEqual([]);
  });

  it("runs the dispatched task only, once; the run completes when every task has", () => {
    const d = queued("a", "b");
    expectAccepted(d.signal({ name: "run_step", stepId: "b" }));
    expect(d.dispatched.map((w) => [w.stepId, w.type, w.role])).toEqual([["b", "task", "implementer"]]);
    d.succeed("b", { done: true });
    expect(d.statuses()).toEqual({ a: "pending", b: "completed" });
    expect(runStatusOf(d.state.run.value)).toBe("running");
    expectAccepted(d.signal({ name: "run_step", stepId: "a" }));
    d.succeed("a");
    expect(runStatusOf(d.state.run.value)).toBe("completed");
    expectRefused(d.signal({ name: "add_steps", steps: [task("c")] }), RefusalCode.TerminalState);
  });

  it("does not retry by itself: a failure fails the task and blocks the run; other tasks still run", () => {
    const d = queued("a", "b");
    d.signal({ name: "run_step", stepId: "a" });
    d.failResult("a", { retryable: true });
    expect(d.step("a")).toBe("failed");
    expect(d.timers.size).toBe(0);
    expect(runStatusOf(d.state.run.value)).toBe("blocked");
    expectAccepted(d.signal({ name: "run_step", stepId: "b" }));
    expect(d.step("b")).toBe("running");
    d.succeed("b");
    expect(d.step("b")).toBe("completed");
    expect(runStatusOf(d.state.run.value)).toBe("blocked");
    // Dispatched again (a retry), it runs a second attempt; success completes the run.
    expectAccepted(d.signal({ name: "run_step", stepId: "a" }));
    expect(d.stepCtx("a").attempt).toBe(2);
    d.succeed("a");
    expect(runStatusOf(d.state.run.value)).toBe("completed");
  });

  it("a failed task replaced by a new one (skipped) unblocks the run", () => {
    const d = queued("a");
    d.signal({ name: "run_step", stepId: "a" });
    d.failResult("a", { retryable: false });
    expect(runStatusOf(d.state.run.value)).toBe("blocked");
    expectAccepted(d.signal({ name: "add_steps", steps: [task("a2")] }));
    expectAccepted(d.signal({ name: "skip_step", stepId: "a" }));
    expect(runStatusOf(d.state.run.value)).toBe("running");
    d.signal({ name: "run_step", stepId: "a2" });
    d.succeed("a2");
    expect(runStatusOf(d.state.run.value)).toBe("completed");
  });

  it("refuses to dispatch a task that is running or done", () => {
    const d = queued("a");
    d.signal({ name: "run_step", stepId: "a" });
    expectRefused(d.signal({ name: "run_step", stepId: "a" }), RefusalCode.IllegalTransition);
    d.succeed("a");
    expectRefused(d.signal({ name: "run_step", stepId: "a" }), RefusalCode.TerminalState);
  });
});
