import { describe, expect, it } from "vitest";
import { Command, RunRecord, TaskPacket, jobRunSpec, type Effect } from "@orch/contracts";
import { builtin, type RunState } from "@orch/engine";
import { RECENT_COMMANDS, step } from "../src/core/step.js";

/** The core's pure step: records, outbox, outcomes; nothing executed. */

const clock = (now: number) => ({ now, rand: 0 });
const job = builtin("job");
const speckit = builtin("speckit.specify");

const createJob = (runId = "job1", issuedAt = 1_000): Command => {
  const spec = jobRunSpec(TaskPacket.parse({ goal: "ship it", steps: [{ type: "ci" }, { type: "docs", id: "docs-1" }], limits: { maxSteps: 5 } }));
  return Command.parse({
    type: "run.create",
    commandId: `create:${runId}`,
    runId,
    issuedAt,
    projectId: "_default",
    definition: spec.definition,
    title: spec.title,
    input: spec.input,
    steps: spec.steps,
    limits: spec.limits,
    mode: "mock",
  });
};

const result = (runId: string, stepId: string, attemptId: string, commandId = `result:${attemptId}`, ok = true): Command => ({
  type: "step.result",
  commandId,
  runId,
  issuedAt: 2_000,
  stepId,
  attemptId,
  kind: "execute",
  ok,
  startedAt: 1_500,
  finishedAt: 2_000,
  ...(ok ? {} : { error: { code: "X", message: "boom", retryable: false } }),
});

const kinds = (effects: Effect[]) =>
  effects.map((e) =>
    e.kind === "event"
      ? `event:${e.event.type}#${e.event.seq}`
      : e.kind === "work"
        ? `work:${e.queue}:${e.item.attemptId}`
        : `timer:${e.request.op}:${e.request.timerId}`,
  );

function apply(prev: RunRecord | null, cmd: Command, now: number, cd = job): RunRecord {
  const out = step(prev, cmd, cd, clock(now));
  if (out.kind !== "apply") throw new Error(`expected a change, got noop: ${out.reason}`);
  expect(out.outcome.ok).toBe(true);
  // What the engine persists must pass the schema readers decode it with.
  return RunRecord.parse(JSON.parse(JSON.stringify(out.record)));
}

describe("core step", () => {
  it("creates a job run: summary fields, and the outbox numbered in order", () => {
    const r = apply(null, createJob(), 1_000);
    expect(r).toMatchObject({
      v: 2,
      runId: "job1",
      projectId: "_default",
      definition: { id: "job", version: 1 },
      view: "job",
      status: "running",
      stage: "main",
      title: "ship it",
      createdAt: 1_000,
      startedAt: 1_000,
      stepsRun: 0,
    });
    expect(kinds(r.outbox)).toEqual([
      "event:run.created#1",
      "timer:set:job1.wall",
      "event:run.status_changed#2",
      "event:step.started#3",
      "work:role.implementer:job1.s0.1",
    ]);
    expect(r.outbox[0]).toMatchObject({ event: { data: { steps: ["s0", "s1"] } } });
    expect(r.seq).toBe(3);
    const work = r.outbox.find((e) => e.kind === "work");
    expect(work).toMatchObject({
      item: {
        runId: "job1",
        stepId: "s0",
        attempt: 1,
        kind: "execute",
        role: "implementer",
        type: "ci",
        mode: "mock",
        goal: "ship it",
        definition: { id: "job", version: 1 },
      },
    });
    const timer = r.outbox.find((e) => e.kind === "timer");
    expect(timer).toMatchObject({
      request: { op: "set", dueAt: 11_001, command: { type: "timer.fired", commandId: "timer:job1.wall", kind: "wall_clock", runId: "job1" } },
    });
  });

  it("continues the event sequence gaplessly and records the finish", () => {
    let r = apply(null, createJob(), 1_000);
    r = apply(r, result("job1", "s0", "job1.s0.1"), 1_100);
    expect(kinds(r.outbox)).toEqual(["event:step.succeeded#4", "event:step.started#5", "work:role.implementer:job1.s1.1"]);
    r = apply(r, result("job1", "s1", "job1.s1.1"), 1_200);
    expect(kinds(r.outbox)).toEqual(["event:step.succeeded#6", "event:run.status_changed#7", "event:run.finished#8", "timer:cancel:job1.wall"]);
    expect(r).toMatchObject({ status: "completed", stepsRun: 2, finishedAt: 1_200, seq: 8 });
  });

  it("applies a command id once, and answers the duplicate", () => {
    const r = apply(null, createJob(), 1_000);
    expect(step(r, createJob(), job, clock(1_200))).toMatchObject({ kind: "noop", outcome: { ok: true, duplicate: true, status: "running" } });
    const r2 = apply(r, result("job1", "s0", "job1.s0.1"), 1_100);
    expect(step(r2, result("job1", "s0", "job1.s0.1"), job, clock(1_300)).kind).toBe("noop");
  });

  it("never records a step completed twice, even under a new command id", () => {
    let r = apply(null, createJob(), 1_000);
    r = apply(r, result("job1", "s0", "job1.s0.1"), 1_100);
    const again = apply(r, result("job1", "s0", "job1.s0.1", "result:job1.s0.1:redelivered"), 1_150);
    expect(kinds(again.outbox)).toEqual(["event:step.result_ignored#6"]);
    expect(again.stepsRun).toBe(1);
  });

  it("answers refusals with the engine's code and changes nothing", () => {
    const r = apply(null, createJob(), 1_000);
    const resume = step(r, { type: "run.signal", commandId: "s1", runId: "job1", issuedAt: 1_100, signal: { name: "resume" } }, job, clock(1_100));
    expect(resume).toMatchObject({ kind: "noop", outcome: { ok: false, error: { code: "ILLEGAL_TRANSITION" }, status: "running" } });
    const bad = step(r, { type: "run.signal", commandId: "s2", runId: "job1", issuedAt: 1_100, signal: { name: "approve", revision: 5 } }, job, clock(1_100));
    expect(bad).toMatchObject({ kind: "noop", outcome: { ok: false, error: { code: "INVALID" } } });
    const unknown = step(null, result("nope", "s0", "nope.s0.1"), job, clock(1_100));
    expect(unknown).toMatchObject({ kind: "noop", outcome: { ok: false, error: { code: "NOT_FOUND" } } });
  });

  it("records a run whose definition is missing as failed, so it never looks queued", () => {
    const cmd = Command.parse({ type: "run.create", commandId: "create:x", runId: "x", issuedAt: 1_000, projectId: "p", definition: { id: "nope" } });
    const out = step(null, cmd, { missing: "no workflow definition 'nope'" }, clock(1_050));
    expect(out).toMatchObject({ kind: "apply", outcome: { ok: false, error: { code: "NOT_FOUND" }, status: "failed" } });
    const rec = RunRecord.parse((out as { record: unknown }).record);
    expect(rec).toMatchObject({ status: "failed", error: "no workflow definition 'nope'", finishedAt: 1_050 });
    expect(kinds(rec.outbox)).toEqual(["event:run.finished#1"]);
    expect(step(rec, { type: "run.signal", commandId: "c", runId: "x", issuedAt: 1_100, signal: { name: "cancel" } }, { missing: "" }, clock(1_100)).kind).toBe(
      "noop",
    );
  });

  it("gives every new run the default budgets besides its own", () => {
    const cmd = Command.parse({
      type: "run.create",
      commandId: "create:w",
      runId: "w",
      issuedAt: 1_000,
      projectId: "p",
      definition: { id: "speckit.specify" },
      input: { feature_description: "x".repeat(20) },
      budgets: [{ scope: "phase", target: "phase_1", tokens: 5 }],
    });
    const out = step(null, cmd, speckit, clock(1_000), [{ scope: "run", tokens: 100, mode: "warn" }]);
    const state = (out as { record: RunRecord }).record.state as unknown as RunState;
    expect(state.budgets.map((b) => `${b.scope}:${b.target ?? "*"}:${b.tokens}:${b.mode}`)).toEqual(["run:*:100:warn", "phase:phase_1:5:strict"]);
  });

  it("fails a job at once whose wall clock ran out before the core saw it", () => {
    const r = apply(null, createJob("late", 1_000), 20_000);
    expect(r).toMatchObject({ status: "failed", error: "wall_clock_exceeded" });
    expect(r.outbox.some((e) => e.kind === "work")).toBe(false);
  });

  it("remembers a bounded number of command ids", () => {
    let r = apply(null, createJob(), 1_000);
    for (let i = 0; i < RECENT_COMMANDS + 10; i++) r = apply(r, result("job1", "s0", "job1.s0.9", `stale-${i}`), 1_100 + i);
    expect(r.recent).toHaveLength(RECENT_COMMANDS);
    expect(r.recent.at(-1)).toBe(`stale-${RECENT_COMMANDS + 9}`);
  });
});
