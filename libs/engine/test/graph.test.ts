import { describe, expect, it } from "vitest";
import { getShortestPaths } from "@xstate/graph";
import { initialTransition, transition, type AnyMachineSnapshot } from "xstate";
import { FINAL_RUN_STATUSES, STEP_STATUSES } from "@orch/contracts";
import {
  approvalTimerId,
  attemptIdOf,
  BUILTIN_DEFINITIONS,
  builtin,
  retryTimerId,
  runMachineFor,
  runStatusOf,
  stageOfValue,
  stepMachine,
  timeoutTimerId,
  type CompiledDefinition,
  type Condition,
  type RunContext,
  type RunEvent,
  type StepContext,
  type StepEvent,
} from "../src/index.js";

/**
 * Generated paths (@xstate/graph) over the compiled run machine of every built-in and over the step
 * machine: every status (and every stage) is reachable, and every final state is final (no event
 * leaves it, nothing is emitted).
 */

const AT = 1_000;
const clock = { at: AT, rand: 0 };

const BUILTINS = BUILTIN_DEFINITIONS.map((d) => d.id);

/** Every `facts.<name>` a condition reads. */
function factsOf(c: Condition | undefined): string[] {
  if (c === undefined) return [];
  if (typeof c === "string") return c.startsWith("facts.") ? [c.slice(6)] : [];
  if ("all" in c) return c.all.flatMap(factsOf);
  if ("any" in c) return c.any.flatMap(factsOf);
  if ("not" in c) return factsOf(c.not);
  return c.path.startsWith("facts.") ? [c.path.slice(6)] : [];
}

/** Scopes for stage events: one where every guard's facts hold, one where none does. */
function scopesFor(cd: CompiledDefinition): Record<string, unknown>[] {
  const names = [...new Set(cd.def.transitions.flatMap((t) => factsOf(t.guard)))];
  return [{ facts: Object.fromEntries(names.map((n) => [n, true])) }, { facts: Object.fromEntries(names.map((n) => [n, false])) }];
}

/** Every event a run machine can be sent, with plausible payloads. */
function runEventsFor(cd: CompiledDefinition): RunEvent[] {
  const stageEvents = [...new Set(cd.def.transitions.map((t) => t.on))].flatMap((on) =>
    scopesFor(cd).map((scope) => ({ type: `stage:${on}`, scope, ...clock }) as RunEvent),
  );
  return [
    { type: "START", ...clock },
    { type: "PAUSE", ...clock },
    { type: "RESUME", ...clock },
    { type: "CANCEL", ...clock },
    { type: "PLANNED", ...clock },
    { type: "PLAN_FAILED", error: "no plan", ...clock },
    { type: "RUN_STEP", stepId: "s", ...clock },
    { type: "STAGE_DONE", result: { last: true }, ...clock },
    { type: "UNBLOCK", ...clock },
    { type: "COMPLETE", result: { ok: true }, ...clock },
    { type: "FAIL", error: "boom", ...clock },
    { type: "BLOCKED", error: "stuck", stepId: "s", ...clock },
    { type: "GATE", gate: { kind: "budget", budget: "run:*", usage: { tokens: 10, costUsd: 0 }, limit: { tokens: 5 } }, ...clock },
    { type: "EXTEND", ...clock },
    { type: "ABORT", ...clock },
    { type: "WALL_CLOCK", timerId: "r.wall", ...clock },
    ...stageEvents,
  ];
}

const runInput = (cd: CompiledDefinition) => ({ runId: "r", projectId: "p", createdAt: 0, initialStage: cd.initialStage });

const serializeRun = (s: AnyMachineSnapshot) => JSON.stringify([s.value, (s.context as RunContext).stage, (s.context as RunContext).error ?? null]);

function runPaths(cd: CompiledDefinition) {
  const events = runEventsFor(cd);
  return getShortestPaths(runMachineFor(cd), { input: runInput(cd), events: (() => events) as never, serializeState: serializeRun as never });
}

/** A name for a reached run state: its status, and its stage while running (or where it ended). */
function nameOf(s: AnyMachineSnapshot): string {
  const status = runStatusOf(s.value);
  const stage = stageOfValue(s.value);
  if (stage) return `running.${stage}`;
  if (FINAL_RUN_STATUSES.has(status) && (s.context as RunContext).stage) return `${status}@${(s.context as RunContext).stage}`;
  return status;
}

describe.each(BUILTINS)("the run machine of %s (@xstate/graph)", (id) => {
  const cd = builtin(id);
  const paths = runPaths(cd);
  const reached = new Set(paths.map((p) => runStatusOf(p.state.value)));
  const names = new Set(paths.map((p) => nameOf(p.state)));

  it("reaches every run status it can have", () => {
    const expected = [
      "pending",
      "running",
      "paused",
      "blocked",
      "waiting",
      "completed",
      "failed",
      "cancelled",
      ...(cd.planning ? ["planning", "planned"] : []),
    ];
    expect([...reached].sort()).toEqual(expected.sort());
    // Transient states never rest.
    for (const p of paths) expect(p.state.value).not.toBe("started_");
    for (const p of paths) expect(stageOfValue(p.state.value)).not.toBe("route");
  });

  it("reaches every stage of the definition", () => {
    for (const st of cd.stages) {
      if (st.terminal) expect(names, st.id).toContain(`${st.terminal}@${st.id}`);
      else expect(names, st.id).toContain(`running.${st.id}`);
    }
  });

  it("makes every final state final: no event leaves it or emits anything", () => {
    const finals = paths.filter((p) => FINAL_RUN_STATUSES.has(runStatusOf(p.state.value)));
    expect(new Set(finals.map((p) => runStatusOf(p.state.value)))).toEqual(new Set(["completed", "failed", "cancelled"]));
    for (const p of finals) {
      expect(p.state.status).toBe("done");
      for (const e of runEventsFor(cd)) {
        const [next, actions] = transition(runMachineFor(cd), p.state, e as never);
        expect(next, `${nameOf(p.state)} + ${e.type}`).toBe(p.state);
        expect(actions).toEqual([]);
      }
    }
  });

  it("ends with one event: every change to a final status emits run.finished (from, trigger), never run.status_changed", () => {
    let ends = 0;
    for (const p of paths) {
      const from = runStatusOf(p.state.value);
      if (FINAL_RUN_STATUSES.has(from)) continue;
      for (const e of runEventsFor(cd)) {
        const [next, actions] = transition(runMachineFor(cd), p.state, { ...e, actor: "ops", reason: "why" } as never);
        const emitted = (actions as { type: string; params?: { type?: string; data?: Record<string, unknown> } | null }[])
          .filter((a) => a.type === "emit" && a.params)
          .map((a) => a.params!);
        const status = runStatusOf(next.value);
        const label = `${nameOf(p.state)} + ${e.type}`;
        for (const x of emitted) if (x.type === "run.status_changed") expect(FINAL_RUN_STATUSES.has(x.data!.to as never), label).toBe(false);
        const finished = emitted.filter((x) => x.type === "run.finished");
        if (!FINAL_RUN_STATUSES.has(status)) {
          expect(finished, label).toEqual([]);
          continue;
        }
        ends++;
        expect(finished, label).toHaveLength(1);
        expect(finished[0]!.data, label).toMatchObject({ status, from, trigger: e.type, actor: "ops", reason: "why" });
      }
    }
    expect(ends).toBeGreaterThan(0);
  });

  it("cancels from every non-final state", () => {
    for (const p of paths) {
      if (FINAL_RUN_STATUSES.has(runStatusOf(p.state.value))) continue;
      const [next] = transition(runMachineFor(cd), p.state, { type: "CANCEL", ...clock } as never);
      expect(runStatusOf(next.value), nameOf(p.state)).toBe("cancelled");
    }
  });
});

describe("the ticket run machine implements seed 003's table", () => {
  const cd = builtin("ticket");
  const machine = runMachineFor(cd);
  const NON_TERMINAL = cd.stages.filter((s) => !s.terminal).map((s) => s.id);
  const at = (stage: string) => {
    const [s0] = initialTransition(machine, runInput(cd));
    return machine.resolveState({ value: { running: stage }, context: { ...(s0.context as RunContext), stage } } as never);
  };
  const send = (snap: AnyMachineSnapshot, on: string, facts: Record<string, boolean>) =>
    transition(machine, snap, { type: `stage:${on}`, scope: { facts }, ...clock } as never)[0];

  const rows = cd.def.transitions.flatMap((t) => (t.from === "*" ? NON_TERMINAL : [t.from]).map((from) => ({ ...t, from })));

  for (const row of rows) {
    const guard = factsOf(row.guard);
    it(`${row.from} → ${row.to} on ${row.on}`, () => {
      const from = at(row.from);
      const next = send(from, row.on, Object.fromEntries(guard.map((f) => [f, true])));
      const terminal = cd.stages.find((s) => s.id === row.to)?.terminal;
      if (terminal) {
        expect(next.value).toBe(terminal);
        expect((next.context as RunContext).stage).toBe(row.to);
      } else {
        expect(next.value).toEqual({ running: row.to });
      }
      if (guard.length) expect(send(from, row.on, Object.fromEntries(guard.map((f) => [f, false])))).toBe(from);
    });
  }

  it("accepts no other reason from any stage", () => {
    const reasons = [...new Set(rows.map((r) => r.on))];
    const ALL = { sessionActive: true, planReady: true, testsPassed: true, draftPr: true, pr: true, approval: true, mergeCompleted: true };
    for (const stage of NON_TERMINAL) {
      for (const on of reasons) {
        if (rows.some((r) => r.from === stage && r.on === on)) continue;
        const s = at(stage);
        expect(send(s, on, ALL), `${on} from ${stage}`).toBe(s);
      }
    }
  });
});

// ── the step machine ─────────────────────────────────────────────────────────

const ERR = { code: "X", message: "x", retryable: true };

function stepEvents(s: { context: StepContext }): StepEvent[] {
  const c = s.context;
  const attemptId = attemptIdOf(c);
  const result = (decision: "done" | "qa" | "needs_qa" | "approval" | "retry" | "fail", ok = true) =>
    ({
      type: "RESULT",
      attemptId,
      ok,
      decision,
      output: { n: c.attempt },
      revision: `${c.attempt}-r`,
      ...(decision === "retry" ? { backoffMs: 10 } : {}),
      ...(ok ? {} : { error: ERR }),
      ...clock,
    }) as StepEvent;
  return [
    { type: "DISPATCH", reason: "auto", timeoutMs: 100, ...clock },
    { type: "DISPATCH", reason: "manual", ...clock },
    result("done"),
    result("qa"),
    result("needs_qa"),
    result("approval"),
    result("retry", false),
    result("fail", false),
    { type: "RESULT", attemptId: "stale", ok: true, decision: "done", ...clock },
    { type: "QA_RESULT", attemptId, ok: true, decision: "done", ...clock },
    { type: "QA_RESULT", attemptId, ok: true, decision: "approval", revision: "q", ...clock },
    { type: "QA_RESULT", attemptId, ok: false, decision: "fail", error: ERR, ...clock },
    { type: "RETRY_TIMER", timerId: retryTimerId(c), ...clock },
    { type: "TIMEOUT", timerId: timeoutTimerId(c), decision: "retry", backoffMs: 5, ...clock },
    { type: "TIMEOUT", timerId: timeoutTimerId(c), decision: "fail", ...clock },
    { type: "APPROVAL_TIMEOUT", timerId: approvalTimerId(c), ...clock },
    { type: "RUN_QA", ...clock },
    { type: "APPROVE", actor: "a", ...clock },
    { type: "APPROVE", force: true, ...clock },
    { type: "REJECT", rework: true, reason: "again", ...clock },
    { type: "REJECT", rework: false, reason: "no", ...clock },
    { type: "COMPLETE", decision: "done", output: 1, ...clock },
    { type: "COMPLETE", decision: "approval", output: 1, revision: "c", ...clock },
    { type: "FAIL", error: ERR, ...clock },
    { type: "CANCEL", reason: "run cancelled", ...clock },
    { type: "BLOCK", reason: "stuck", ...clock },
    { type: "SKIP", ...clock },
    { type: "RESET", reason: "loop", iteration: 1, ...clock },
  ];
}

describe("the step machine (@xstate/graph)", () => {
  const paths = getShortestPaths(stepMachine, {
    input: { runId: "r", stepId: "s", index: 0, now: 0 },
    events: stepEvents as never,
    serializeState: ((s: AnyMachineSnapshot) => JSON.stringify(s.value)) as never,
  });
  const reached = new Set(paths.map((p) => p.state.value as string));

  it("reaches every step status", () => {
    expect([...reached].sort()).toEqual([...STEP_STATUSES].sort());
    // routing and qa_routing are transient: never a resting state.
    expect(reached.has("routing")).toBe(false);
    expect(reached.has("qa_routing")).toBe(false);
  });

  it("makes cancelled final: no event leaves it or emits anything", () => {
    const cancelled = paths.find((p) => p.state.value === "cancelled")!;
    expect(cancelled.state.status).toBe("done");
    for (const e of stepEvents(cancelled.state as never)) {
      const [next, actions] = transition(stepMachine, cancelled.state as never, e);
      expect(next, `${e.type}${"force" in e && e.force ? " (forced)" : ""}`).toBe(cancelled.state);
      expect(actions).toEqual([]);
    }
  });

  it("cancels and force-approves from every other status but completed; resets completed, failed, blocked and skipped to pending", () => {
    for (const p of paths) {
      const from = String(p.state.value);
      if (from === "cancelled") continue;
      const [cancelledNext, cancelActions] = transition(stepMachine, p.state as never, { type: "CANCEL", ...clock });
      const [forcedNext, forceActions] = transition(stepMachine, p.state as never, { type: "APPROVE", force: true, ...clock });
      if (from === "completed") {
        // A completed step stays completed (its run being cancelled, or an approval forced on it).
        expect(cancelledNext, from).toBe(p.state);
        expect(cancelActions).toEqual([]);
        expect(forcedNext, from).toBe(p.state);
        expect(forceActions).toEqual([]);
      } else {
        expect(cancelledNext.value, from).toBe("cancelled");
        expect(forcedNext.value, from).toBe("completed");
      }
      // Without force, only a step waiting for approval can be approved.
      const [plain] = transition(stepMachine, p.state as never, { type: "APPROVE", actor: "a", ...clock });
      if (from === "waiting_approval") expect(plain.value).toBe("completed");
      else expect(plain, from).toBe(p.state);
      const [reset] = transition(stepMachine, p.state as never, { type: "RESET", reason: "loop", ...clock });
      if (["completed", "failed", "blocked", "skipped"].includes(from)) expect(reset.value).toBe("pending");
    }
  });

  it("a result for another attempt is ignored wherever it arrives", () => {
    for (const p of paths) {
      if (p.state.status === "done") continue;
      const [next, actions] = transition(stepMachine, p.state as never, { type: "RESULT", attemptId: "r.s.999", ok: true, decision: "done", ...clock });
      expect(next.value, String(p.state.value)).toBe(p.state.value);
      for (const a of actions as { type: string; params?: { type?: string } }[]) {
        if (a.type === "emit") expect(a.params?.type).toBe("step.result_ignored");
        expect(a.type).not.toBe("dispatch");
      }
    }
  });
});
