import { describe, expect, it } from "vitest";
import { initialTransition, transition } from "xstate";
import { TaskPacket, type TaskPacketInput } from "@orch/contracts";
import { attemptIdOf, jobMachine, retryTimerIdOf, statusOf, type JobEvent } from "../src/domain/job-machine.js";

type Snap = ReturnType<typeof initialTransition<typeof jobMachine>>[0];
type Action = { type: string; params?: any };

const T0 = 1_000_000;

function start(packet: TaskPacketInput, at = T0) {
  const [s0, a0] = initialTransition(jobMachine, {
    jobId: "job1",
    projectId: "_default",
    mode: "mock",
    packet: TaskPacket.parse(packet),
    createdAt: at,
  });
  const [s1, a1] = transition(jobMachine, s0, { type: "START", at, rand: 0 });
  return { snap: s1, actions: [...a0, ...a1] as Action[] };
}

const emitted = (actions: Action[]) => actions.filter((a) => a.type === "emit").map((a) => a.params.type);
const dispatched = (actions: Action[]) => actions.filter((a) => a.type === "dispatch").map((a) => a.params.attemptId);

function send(snap: Snap, event: JobEvent) {
  const [next, actions] = transition(jobMachine, snap, event);
  return { snap: next, actions: actions as Action[] };
}

const ok = (snap: Snap, at: number) => send(snap, { type: "STEP_RESULT", at, rand: 0.5, attemptId: attemptIdOf(snap.context), ok: true, notes: ["done"] });
const failed = (snap: Snap, at: number, retryable = true) =>
  send(snap, {
    type: "STEP_RESULT",
    at,
    rand: 0.5,
    attemptId: attemptIdOf(snap.context),
    ok: false,
    error: { code: "MOCK_FAILURE", message: "boom", retryable },
  });

describe("job machine (seed 000)", () => {
  it("runs every step in order and succeeds", () => {
    let { snap, actions } = start({ goal: "g", steps: [{ type: "ci" }, { type: "docs" }], limits: { maxSteps: 3 } });
    expect(snap.value).toEqual({ running: "awaiting" });
    expect(emitted(actions)).toEqual(["run.created", "run.started", "step.started"]);
    expect(dispatched(actions)).toEqual(["job1.0.0"]);
    expect(actions.find((a) => a.type === "setTimer")?.params).toMatchObject({ timerId: "job1.wall", kind: "wall_clock", dueAt: T0 + 10_000 + 1 });

    ({ snap, actions } = ok(snap, T0 + 10));
    expect(emitted(actions)).toEqual(["step.succeeded", "step.started"]);
    expect(dispatched(actions)).toEqual(["job1.1.0"]);
    expect(snap.context.stepsRun).toBe(1);

    ({ snap, actions } = ok(snap, T0 + 20));
    expect(snap.value).toBe("succeeded");
    expect(snap.status).toBe("done");
    expect(emitted(actions)).toEqual(["step.succeeded", "run.finished"]);
    expect(actions.at(-1)).toMatchObject({ type: "cancelTimer", params: { timerId: "job1.wall" } });
    expect(actions.find((a) => a.params?.type === "run.finished")?.params.data).toEqual({ status: "succeeded" });
    expect(snap.context).toMatchObject({ stepsRun: 2, startedAt: T0, finishedAt: T0 + 20 });
  });

  it("runs one implicit dev.log step when steps is empty", () => {
    const { snap, actions } = start({ goal: "g", limits: { maxSteps: 1 } });
    expect(actions.find((a) => a.type === "dispatch")?.params.step).toEqual({ type: "dev.log" });
    expect(ok(snap, T0 + 1).snap.value).toBe("succeeded");
  });

  it("retries a failing step twice with jittered exponential backoff, then succeeds", () => {
    let { snap } = start({ goal: "g", steps: [{ type: "ci" }], limits: { maxSteps: 3 } });
    let actions: Action[];
    ({ snap, actions } = failed(snap, T0 + 5));
    expect(snap.value).toEqual({ running: "backoff" });
    const retry1 = actions.find((a) => a.params?.type === "step.retrying")!.params.data;
    expect(retry1).toMatchObject({ index: 0, attempt: 1, backoffMs: 100 + 15 });
    expect(actions.find((a) => a.type === "setTimer")?.params).toEqual({ timerId: "job1.retry.0.1", dueAt: T0 + 5 + 115, kind: "retry" });

    ({ snap, actions } = send(snap, { type: "RETRY_TIMER", at: T0 + 120, rand: 0, timerId: "job1.retry.0.1" }));
    expect(dispatched(actions)).toEqual(["job1.0.1"]);
    expect(actions.find((a) => a.params?.type === "step.started")?.params.data.attempt).toBe(1);

    ({ snap, actions } = failed(snap, T0 + 130));
    expect(actions.find((a) => a.params?.type === "step.retrying")!.params.data).toMatchObject({ attempt: 2, backoffMs: 200 + 15 });
    ({ snap, actions } = send(snap, { type: "RETRY_TIMER", at: T0 + 400, rand: 0, timerId: retryTimerIdOf(snap.context) }));
    expect(dispatched(actions)).toEqual(["job1.0.2"]);
    ({ snap } = ok(snap, T0 + 410));
    expect(snap.value).toBe("succeeded");
  });

  it("fails the job after the third failed attempt (at most 2 retries)", () => {
    let { snap } = start({ goal: "g", steps: [{ type: "ci" }, { type: "docs" }], limits: { maxSteps: 3 } });
    let actions: Action[] = [];
    for (let i = 0; i < 2; i++) {
      ({ snap } = failed(snap, T0 + 10 * i));
      ({ snap } = send(snap, { type: "RETRY_TIMER", at: T0 + 10 * i + 5, rand: 0, timerId: retryTimerIdOf(snap.context) }));
    }
    ({ snap, actions } = failed(snap, T0 + 50));
    expect(snap.value).toBe("failed");
    expect(emitted(actions)).toEqual(["step.failed", "run.finished"]);
    expect(actions.find((a) => a.params?.type === "step.failed")!.params.data).toMatchObject({ index: 0, error: "boom", code: "MOCK_FAILURE" });
    expect(actions.find((a) => a.params?.type === "run.finished")!.params.data).toEqual({ status: "failed", error: "boom" });
    expect(snap.context.error).toBe("boom");
  });

  it("does not retry a non-retryable failure", () => {
    const { snap } = start({ goal: "g", steps: [{ type: "nope" }], limits: { maxSteps: 3 } });
    const r = failed(snap, T0 + 1, false);
    expect(r.snap.value).toBe("failed");
    expect(emitted(r.actions)).toEqual(["step.failed", "run.finished"]);
  });

  it("fails with step_budget_exceeded before a step beyond maxSteps", () => {
    let { snap } = start({ goal: "g", steps: [{ type: "ci" }, { type: "ci" }, { type: "ci" }], limits: { maxSteps: 2 } });
    ({ snap } = ok(snap, T0 + 1));
    const r = ok(snap, T0 + 2);
    expect(r.snap.value).toBe("failed");
    expect(r.snap.context).toMatchObject({ error: "step_budget_exceeded", stepsRun: 2 });
    expect(dispatched(r.actions)).toEqual([]);
  });

  it("succeeds when the last step uses up exactly maxSteps", () => {
    let { snap } = start({ goal: "g", steps: [{ type: "ci" }, { type: "ci" }], limits: { maxSteps: 2 } });
    ({ snap } = ok(snap, T0 + 1));
    expect(ok(snap, T0 + 2).snap.value).toBe("succeeded");
  });

  it("checks the wall clock before each step", () => {
    let { snap } = start({ goal: "g", steps: [{ type: "ci" }, { type: "ci" }], limits: { maxSteps: 5, maxWallMs: 100 } });
    const r = ok(snap, T0 + 101);
    expect(r.snap.value).toBe("failed");
    expect(r.snap.context.error).toBe("wall_clock_exceeded");
    expect(dispatched(r.actions)).toEqual([]);
  });

  it("fails a job whose step outlives the wall clock when its timer fires", () => {
    const { snap } = start({ goal: "g", steps: [{ type: "ci" }], limits: { maxSteps: 5, maxWallMs: 100 } });
    const r = send(snap, { type: "WALL_CLOCK", at: T0 + 101, rand: 0, timerId: "job1.wall" });
    expect(r.snap.value).toBe("failed");
    expect(r.snap.context.error).toBe("wall_clock_exceeded");
    expect(r.actions.find((a) => a.params?.type === "run.finished")?.params.data).toEqual({ status: "failed", error: "wall_clock_exceeded" });
    // The late result of that step changes nothing.
    expect(ok(r.snap, T0 + 200).snap).toBe(r.snap);
  });

  it("cancels a running job at once and ignores the in-flight result", () => {
    const { snap } = start({ goal: "g", steps: [{ type: "ci" }], limits: { maxSteps: 5 } });
    const r = send(snap, { type: "CANCEL", at: T0 + 5, rand: 0, reason: "user" });
    expect(r.snap.value).toBe("canceled");
    expect(emitted(r.actions)).toEqual(["run.cancel_requested", "run.finished"]);
    expect(statusOf(r.snap.value)).toBe("canceled");
    expect(send(r.snap, { type: "CANCEL", at: T0 + 6, rand: 0 }).snap).toBe(r.snap);
  });

  it("cancels a queued job", () => {
    const [s0] = initialTransition(jobMachine, { jobId: "j", projectId: "p", mode: "mock", packet: TaskPacket.parse({ goal: "g", limits: { maxSteps: 1 } }), createdAt: T0 });
    expect(s0.value).toBe("queued");
    expect(statusOf(s0.value)).toBe("queued");
    const r = send(s0, { type: "CANCEL", at: T0 + 1, rand: 0 });
    expect(r.snap.value).toBe("canceled");
  });

  it("records and ignores a result for an attempt it is not waiting for", () => {
    const { snap } = start({ goal: "g", steps: [{ type: "ci" }], limits: { maxSteps: 5 } });
    const r = send(snap, { type: "STEP_RESULT", at: T0 + 1, rand: 0, attemptId: "job1.0.7", ok: true });
    expect(r.snap.value).toEqual({ running: "awaiting" });
    expect(emitted(r.actions)).toEqual(["step.result_ignored"]);
    expect(r.snap.context.stepsRun).toBe(0);
  });

  it("ignores a retry timer of an earlier attempt", () => {
    let { snap } = start({ goal: "g", steps: [{ type: "ci" }], limits: { maxSteps: 5 } });
    ({ snap } = failed(snap, T0 + 1));
    const r = send(snap, { type: "RETRY_TIMER", at: T0 + 2, rand: 0, timerId: "job1.retry.0.9" });
    expect(r.snap.value).toEqual({ running: "backoff" });
    expect(dispatched(r.actions)).toEqual([]);
  });

  it("restores a persisted snapshot and continues from it", () => {
    const { snap } = start({ goal: "g", steps: [{ type: "ci" }, { type: "docs" }], limits: { maxSteps: 5 } });
    const persisted = JSON.parse(JSON.stringify({ value: snap.value, context: snap.context }));
    const restored = jobMachine.resolveState(persisted);
    expect(restored.value).toEqual(snap.value);
    const r = ok(restored, T0 + 1);
    expect(dispatched(r.actions)).toEqual(["job1.1.0"]);
    const done = jobMachine.resolveState({ value: "succeeded", context: r.snap.context });
    expect(done.status).toBe("done");
  });
});
