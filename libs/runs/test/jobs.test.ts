import { describe, expect, it } from "vitest";
import { z } from "zod";
import type { RunEvent, WorkItem } from "@orch/contracts";
import { retryBackoffMs, TaskPacket, toJobLogLines, toJobView, toSeed000Frame } from "../src/jobs.js";

describe("Task Packet", () => {
  it("applies the original's defaults", () => {
    expect(TaskPacket.parse({ goal: "hello", limits: { maxSteps: 3 } })).toEqual({ goal: "hello", steps: [], limits: { maxSteps: 3, maxWallMs: 10_000 } });
  });

  it("accepts the documented example", () => {
    const p = TaskPacket.parse({
      goal: "hello",
      scope: "repo",
      planRef: "plan-1",
      steps: [{ id: "s1", type: "dev.log", payload: { message: "hi" } }],
      limits: { maxSteps: 3, maxWallMs: 5000 },
      flags: { key: "value" },
    });
    expect(p.steps[0]).toEqual({ id: "s1", type: "dev.log", payload: { message: "hi" } });
  });

  it("normalises snake_case and kebab-case limit keys", () => {
    expect(TaskPacket.parse({ goal: "g", limits: { max_steps: 2, "max-wall-ms": 900 } }).limits).toEqual({ maxSteps: 2, maxWallMs: 900 });
    expect(TaskPacket.parse({ goal: "g", limits: { "max-steps": 4, max_tokens: 10 } }).limits).toEqual({ maxSteps: 4, maxWallMs: 10_000, maxTokens: 10 });
    // The canonical key wins over an alias.
    expect(TaskPacket.parse({ goal: "g", limits: { maxSteps: 5, max_steps: 1 } }).limits.maxSteps).toBe(5);
  });

  it.each([
    [{}, "goal"],
    [{ goal: "", limits: { maxSteps: 1 } }, "goal"],
    [{ goal: "g" }, "limits"],
    [{ goal: "g", limits: {} }, "limits"],
    [{ goal: "g", limits: { maxSteps: 0 } }, "limits"],
    [{ goal: "g", limits: { maxSteps: 101 } }, "limits"],
    [{ goal: "g", limits: { maxSteps: 1.5 } }, "limits"],
    [{ goal: "g", limits: { maxSteps: 1, maxWallMs: 600_001 } }, "limits"],
    [{ goal: "g", limits: { maxSteps: 1 }, steps: [{ type: "" }] }, "steps"],
    [{ goal: "g", limits: { maxSteps: 1 }, steps: [{}] }, "steps"],
    [{ goal: "g", limits: { maxSteps: 1 }, steps: "x" }, "steps"],
    [{ goal: 5, limits: { maxSteps: 1 } }, "goal"],
    [{ goal: "g", limits: { maxSteps: 1 }, flags: [] }, "flags"],
  ])("refuses %j (field %s)", (body, field) => {
    const r = TaskPacket.safeParse(body);
    expect(r.success).toBe(false);
    expect(Object.keys(z.flattenError(r.error!).fieldErrors)).toContain(field);
  });
});

describe("backoff", () => {
  it("is min(500, 50·2^attempt) plus 0–30 ms of jitter", () => {
    expect(retryBackoffMs(1, 0)).toBe(100);
    expect(retryBackoffMs(2, 0)).toBe(200);
    expect(retryBackoffMs(4, 0)).toBe(500);
    expect(retryBackoffMs(9, 0)).toBe(500);
    expect(retryBackoffMs(1, 0.999)).toBe(129);
    for (let i = 0; i < 100; i++) {
      const b = retryBackoffMs(1, Math.random());
      expect(b).toBeGreaterThanOrEqual(100);
      expect(b).toBeLessThanOrEqual(130);
    }
  });
});

describe("seed 000 views", () => {
  const ev = (type: string, data?: Record<string, unknown>): RunEvent => ({
    runId: "j",
    projectId: "_default",
    seq: 1,
    type,
    at: 42,
    ...(data ? { data } : {}),
  });

  /** What a step start's transition dispatched: the packet step the frame shows. */
  const work = (type: string, extra: Partial<WorkItem> = {}): WorkItem => ({
    runId: "j",
    projectId: "_default",
    definition: { id: "job", version: 1 },
    stepId: "s",
    attemptId: "j.s.1",
    attempt: 1,
    kind: "execute",
    index: 0,
    role: "adapter",
    type,
    phase: "main",
    inputs: {},
    iteration: 0,
    rework: 0,
    mode: "mock",
    dispatchedAt: 42,
    ...extra,
  });

  it("maps run events to the original's SSE frames", () => {
    expect(toSeed000Frame(ev("run.status_changed", { from: "pending", to: "running" }))).toEqual({ job_id: "j", t: 42, type: "start" });
    expect(toSeed000Frame(ev("run.status_changed", { from: "running", to: "completed" }))).toBeNull();
    expect(toSeed000Frame(ev("run.status_changed", { from: "pending", to: "cancelled" }))).toBeNull();
    expect(toSeed000Frame(ev("step.started", { index: 0, attempt: 1, try: 1 }), work("ci"))).toEqual({
      job_id: "j",
      t: 42,
      type: "step.start",
      data: { i: 0, step: { type: "ci" } },
    });
    expect(toSeed000Frame(ev("step.started", { index: 1, attempt: 1, try: 1 }), work("ci", { title: "lint", payload: { a: 1 } }))?.data).toEqual({
      i: 1,
      step: { id: "lint", type: "ci", payload: { a: 1 } },
    });
    expect(toSeed000Frame(ev("step.started", { index: 0, attempt: 2, try: 2 }), work("ci"))).toBeNull();
    expect(toSeed000Frame(ev("step.succeeded", { index: 1, notes: ["x"] }))).toEqual({ job_id: "j", t: 42, type: "step.ok", data: { i: 1 } });
    expect(toSeed000Frame(ev("step.retrying", { index: 0, retry: 2, backoffMs: 215, error: {} }))?.data).toEqual({ i: 0, attempt: 2, backoffMs: 215 });
    expect(toSeed000Frame(ev("step.failed", { index: 0, error: "boom" }))?.data).toEqual({ i: 0, error: "boom" });
    expect(toSeed000Frame(ev("run.finished", { status: "failed", error: "boom" }))?.data).toEqual({ status: "failed" });
    expect(toSeed000Frame(ev("run.finished", { status: "completed" }))?.data).toEqual({ status: "succeeded" });
    expect(toSeed000Frame(ev("run.finished", { status: "cancelled" }))?.data).toEqual({ status: "canceled" });
    expect(toSeed000Frame(ev("run.created"))).toBeNull();
  });

  it("renders a job view with ISO timestamps and only the fields it has", () => {
    expect(toJobView({ runId: "j", status: "running", startedAt: 0, stepsRun: 1 })).toEqual({
      job_id: "j",
      status: "running",
      started_at: "1970-01-01T00:00:00.000Z",
      stepsRun: 1,
    });
    expect(toJobView({ runId: "j", status: "pending", stepsRun: 0 }).status).toBe("queued");
    expect(toJobView({ runId: "j", status: "completed", stepsRun: 2 }).status).toBe("succeeded");
    expect(toJobView({ runId: "j", status: "cancelled", stepsRun: 0 }).status).toBe("canceled");
  });

  it("ends the logs with job.end and gives adapter notes their own lines", () => {
    expect(toJobLogLines(ev("step.succeeded", { index: 0, notes: ["ci: ok"] })).map((l) => l.msg)).toEqual(["ci: ok", "step.ok"]);
    expect(toJobLogLines(ev("run.finished", { status: "failed", error: "x" }))).toEqual([
      { t: 42, level: "warn", msg: "job.end", data: { status: "failed", error: "x" } },
    ]);
    // A cancelled job's end is one event: its log says it was cancelled, then that it ended.
    expect(toJobLogLines(ev("run.finished", { status: "cancelled", reason: "enough" }))).toEqual([
      { t: 42, level: "info", msg: "job.cancel", data: { reason: "enough" } },
      { t: 42, level: "warn", msg: "job.end", data: { status: "canceled" } },
    ]);
    expect(toJobLogLines(ev("step.started", { index: 0, try: 1 }), work("ci"))).toEqual([
      { t: 42, level: "info", msg: "step.start", data: { i: 0, type: "ci", attempt: 1 } },
    ]);
  });
});
