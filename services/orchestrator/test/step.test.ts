import { describe, expect, it } from "vitest";
import { Command, RunRecord, TaskPacket, type Effect } from "@orch/contracts";
import { RECENT_COMMANDS, step } from "../src/core/step.js";

const clock = (now: number) => ({ now, rand: 0 });
const create = (runId = "job1"): Command => ({
  type: "job.create",
  commandId: `create:${runId}`,
  runId,
  issuedAt: 1_000,
  projectId: "_default",
  packet: TaskPacket.parse({ goal: "ship it", steps: [{ type: "ci" }, { type: "docs", id: "d" }], limits: { maxSteps: 5 } }),
  mode: "mock",
});
const result = (attemptId: string, commandId = `result:${attemptId}`, ok = true): Command => ({
  type: "step.result",
  commandId,
  runId: "job1",
  issuedAt: 2_000,
  attemptId,
  index: Number(attemptId.split(".")[1]),
  ok,
  startedAt: 1_500,
  finishedAt: 2_000,
});

const kinds = (effects: Effect[]) =>
  effects.map((e) => (e.kind === "event" ? `event:${e.event.type}#${e.event.seq}` : e.kind === "work" ? `work:${e.item.attemptId}` : `timer:${e.request.op}:${e.request.timerId}`));

function apply(prev: RunRecord | null, cmd: Command, now: number): RunRecord {
  const out = step(prev, cmd, clock(now));
  if (out.kind !== "apply") throw new Error(`expected a change, got noop: ${out.reason}`);
  // What the engine persists must pass the schema readers decode it with.
  return RunRecord.parse(JSON.parse(JSON.stringify(out.record)));
}

describe("core step", () => {
  it("creates a run, starts it and puts every effect in the outbox, numbered", () => {
    const r = apply(null, create(), 1_100);
    expect(r).toMatchObject({ runId: "job1", projectId: "_default", kind: "job", status: "running", createdAt: 1_000, startedAt: 1_100, stepsRun: 0, seq: 3 });
    expect(kinds(r.outbox)).toEqual(["event:run.created#1", "event:run.started#2", "timer:set:job1.wall", "event:step.started#3", "work:job1.0.0"]);
    const work = r.outbox.find((e) => e.kind === "work");
    expect(work).toMatchObject({ queue: "adapter", item: { runId: "job1", index: 0, attempt: 0, step: { type: "ci" }, mode: "mock", goal: "ship it" } });
    const timer = r.outbox.find((e) => e.kind === "timer");
    expect(timer).toMatchObject({ request: { op: "set", dueAt: 11_001, command: { type: "timer.fired", commandId: "timer:job1.wall", kind: "wall_clock", runId: "job1" } } });
  });

  it("numbers events gaplessly across transitions", () => {
    let r = apply(null, create(), 1_100);
    r = apply(r, result("job1.0.0"), 1_200);
    expect(kinds(r.outbox)).toEqual(["event:step.succeeded#4", "event:step.started#5", "work:job1.1.0"]);
    r = apply(r, result("job1.1.0"), 1_300);
    expect(kinds(r.outbox)).toEqual(["event:step.succeeded#6", "event:run.finished#7", "timer:cancel:job1.wall"]);
    expect(r).toMatchObject({ status: "succeeded", stepsRun: 2, finishedAt: 1_300, seq: 7 });
  });

  it("applies a command id once", () => {
    const r = apply(null, create(), 1_100);
    expect(step(r, create(), clock(1_200))).toEqual({ kind: "noop", reason: "duplicate command" });
    const r2 = apply(r, result("job1.0.0"), 1_200);
    expect(step(r2, result("job1.0.0"), clock(1_300)).kind).toBe("noop");
  });

  it("never records a step completed twice, even under a new command id", () => {
    let r = apply(null, create(), 1_100);
    r = apply(r, result("job1.0.0"), 1_200);
    const again = apply(r, result("job1.0.0", "result:job1.0.0:redelivered"), 1_250);
    expect(kinds(again.outbox)).toEqual(["event:step.result_ignored#6"]);
    expect(again.stepsRun).toBe(1);
  });

  it("changes nothing for commands about unknown or finished runs", () => {
    expect(step(null, result("job1.0.0"), clock(1)).kind).toBe("noop");
    let r = apply(null, create(), 1_100);
    r = apply(r, { type: "job.cancel", commandId: "c1", runId: "job1", issuedAt: 1_150 }, 1_150);
    expect(r.status).toBe("canceled");
    expect(step(r, result("job1.0.0"), clock(1_200))).toEqual({ kind: "noop", reason: "run is canceled" });
  });

  it("remembers a bounded number of command ids", () => {
    let r = apply(null, create(), 1_100);
    for (let i = 0; i < RECENT_COMMANDS + 10; i++) r = apply(r, result("job1.0.9", `stale-${i}`), 1_200 + i);
    expect(r.recent).toHaveLength(RECENT_COMMANDS);
    expect(r.recent.at(-1)).toBe(`stale-${RECENT_COMMANDS + 9}`);
  });
});
