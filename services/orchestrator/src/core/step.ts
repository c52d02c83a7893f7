import type { Command, CommandOutcome, Effect, RunEvent, RunRecord, RunStatus, TimerRequest, WorkItem } from "@orch/contracts";
import {
  applyAction,
  createRun,
  FINAL_RUN_STATUSES,
  runStatusOf,
  SignalSchema,
  type CompiledDefinition,
  type KernelAction,
  runLabels,
  type KernelEffect,
  type KernelResult,
  type RunState,
} from "@orch/engine";

/** How many applied command ids a record remembers (beyond that, commands are idempotent by meaning). */
export const RECENT_COMMANDS = 64;

export interface Clock {
  now: number;
  rand: number;
}

/** Budgets every new run gets besides its own (seed 004's per-step and per-protocol token budgets). */
export type DefaultBudgets = Record<string, unknown>[];

export type StepOutcome =
  | { kind: "apply"; record: RunRecord; outcome: CommandOutcome }
  /** Nothing to write: a duplicate, a refusal, a command about a run that does not exist. */
  | { kind: "noop"; reason: string; outcome: CommandOutcome };

const ok = (cmd: Command, status?: RunStatus, duplicate?: boolean): CommandOutcome => ({
  commandId: cmd.commandId,
  runId: cmd.runId,
  ok: true,
  ...(status ? { status } : {}),
  ...(duplicate ? { duplicate } : {}),
});
const refused = (cmd: Command, code: string, message: string, status?: RunStatus): CommandOutcome => ({
  commandId: cmd.commandId,
  runId: cmd.runId,
  ok: false,
  error: { code, message },
  ...(status ? { status } : {}),
});

/** A command → the engine's action (null when the command creates a run). */
function toAction(cmd: Command): KernelAction | { invalid: string } | null {
  switch (cmd.type) {
    case "run.create":
      return null;
    case "run.signal": {
      const s = SignalSchema.safeParse(cmd.signal);
      if (!s.success) return { invalid: `invalid signal: ${s.error.issues.map((i) => `${i.path.join(".") || "signal"}: ${i.message}`).join("; ")}` };
      return { type: "signal", signal: s.data, ...(cmd.actor ? { actor: cmd.actor } : {}), ...(cmd.reason ? { reason: cmd.reason } : {}) };
    }
    case "step.result":
      return {
        type: "result",
        stepId: cmd.stepId,
        attemptId: cmd.attemptId,
        kind: cmd.kind,
        ok: cmd.ok,
        ...(cmd.output !== undefined ? { output: cmd.output } : {}),
        ...(cmd.notes ? { notes: cmd.notes } : {}),
        ...(cmd.error ? { error: cmd.error } : {}),
        ...(cmd.usage ? { usage: { ...cmd.usage, wallMs: cmd.usage.wallMs || Math.max(0, cmd.finishedAt - cmd.startedAt) } } : {}),
        ...(cmd.model ? { model: cmd.model } : {}),
      };
    case "timer.fired":
      return { type: "timer", timerId: cmd.timerId, kind: cmd.kind, ...(cmd.stepId ? { stepId: cmd.stepId } : {}) };
  }
}

/** Kernel effects → persisted effects: events numbered gaplessly from the run's last sequence. */
export function toEffects(
  effects: KernelEffect[],
  ctx: { runId: string; projectId: string; definition: { id: string; version: number }; mode: "mock" | "live"; goal?: string },
  lastSeq: number,
): { effects: Effect[]; seq: number } {
  let seq = lastSeq;
  const out: Effect[] = [];
  for (const e of effects) {
    if (e.kind === "event") {
      const event: RunEvent = { runId: ctx.runId, projectId: ctx.projectId, seq: ++seq, type: e.type, at: e.at };
      if (e.data !== undefined) event.data = e.data;
      out.push({ kind: "event", event });
    } else if (e.kind === "work") {
      const w = e.work;
      const item: WorkItem = {
        runId: ctx.runId,
        projectId: ctx.projectId,
        definition: ctx.definition,
        stepId: w.stepId,
        attemptId: w.attemptId,
        attempt: w.attempt,
        kind: w.kind,
        index: w.index,
        role: w.role,
        type: w.type,
        phase: w.phase,
        inputs: w.inputs,
        iteration: w.iteration,
        rework: w.rework,
        mode: ctx.mode,
        dispatchedAt: w.at,
      };
      if (w.title !== undefined) item.title = w.title;
      if (w.payload !== undefined) item.payload = w.payload;
      if (w.model !== undefined) item.model = w.model;
      if (w.timeoutMs !== undefined) item.timeoutMs = w.timeoutMs;
      if (w.feedback !== undefined) item.feedback = w.feedback;
      if (w.workspace !== undefined) item.workspace = w.workspace;
      if (ctx.goal !== undefined) item.goal = ctx.goal;
      out.push({ kind: "work", queue: `role.${w.role}`, item });
    } else if (e.op === "set") {
      const request: TimerRequest = {
        op: "set",
        timerId: e.timerId,
        dueAt: e.dueAt,
        command: {
          type: "timer.fired",
          commandId: `timer:${e.timerId}`,
          runId: ctx.runId,
          issuedAt: e.dueAt,
          actor: "scheduler",
          timerId: e.timerId,
          kind: e.timerKind,
          ...(e.stepId ? { stepId: e.stepId } : {}),
        },
      };
      out.push({ kind: "timer", request });
    } else {
      out.push({ kind: "timer", request: { op: "cancel", timerId: e.timerId } });
    }
  }
  return { effects: out, seq };
}

/** The record that stands for a run after a kernel step: summary fields from the engine's state. */
function recordOf(prev: RunRecord | null, cmd: Command, cd: CompiledDefinition, r: KernelResult, clock: Clock): RunRecord {
  const st = r.state;
  const rc = st.run.context;
  const base = prev ?? {
    mode: cmd.type === "run.create" ? (cmd.mode ?? "mock") : "mock",
    labels: cmd.type === "run.create" ? (runLabels(cd, cmd.labels, cmd.input, cmd.facts) ?? {}) : {},
    title: cmd.type === "run.create" ? cmd.title : undefined,
  };
  const goal = typeof st.input.goal === "string" ? st.input.goal : undefined;
  const { effects, seq } = toEffects(
    r.effects,
    {
      runId: st.runId,
      projectId: st.projectId,
      definition: { id: st.definition.id, version: st.definition.version },
      mode: base.mode,
      ...(goal ? { goal } : {}),
    },
    prev?.seq ?? 0,
  );
  const status = runStatusOf(st.run.value) as RunStatus;
  const rec: RunRecord = {
    v: 2,
    runId: st.runId,
    projectId: st.projectId,
    definition: st.definition,
    view: cd.def.view,
    mode: base.mode,
    labels: base.labels,
    status,
    createdAt: st.createdAt,
    updatedAt: clock.now,
    stepsRun: st.stepsCompleted,
    seq,
    state: st as unknown as Record<string, unknown>,
    outbox: effects,
    recent: [...(prev?.recent ?? []), cmd.commandId].slice(-RECENT_COMMANDS),
  };
  if (base.title !== undefined) rec.title = base.title;
  if (rc.stage) rec.stage = rc.stage;
  if (rc.startedAt !== undefined) rec.startedAt = rc.startedAt;
  if (rc.finishedAt !== undefined) rec.finishedAt = rc.finishedAt;
  if (rc.error !== undefined) rec.error = rc.error;
  if (rc.result !== undefined) rec.result = rc.result;
  return rec;
}

/** A run whose creation was refused: a failed record, so it never looks queued forever. */
function refusedCreate(cmd: Extract<Command, { type: "run.create" }>, message: string, clock: Clock): RunRecord {
  const event: RunEvent = {
    runId: cmd.runId,
    projectId: cmd.projectId,
    seq: 1,
    type: "run.finished",
    at: clock.now,
    data: { status: "failed", error: message },
  };
  return {
    v: 2,
    runId: cmd.runId,
    projectId: cmd.projectId,
    definition: { id: cmd.definition.id, version: cmd.definition.version ?? 0, hash: "" },
    view: "generic",
    mode: cmd.mode ?? "mock",
    labels: cmd.labels ?? {},
    ...(cmd.title !== undefined ? { title: cmd.title } : {}),
    status: "failed",
    createdAt: cmd.issuedAt,
    updatedAt: clock.now,
    finishedAt: clock.now,
    error: message,
    stepsRun: 0,
    seq: 1,
    state: {},
    outbox: [{ kind: "event", event }],
    recent: [cmd.commandId],
  };
}

/**
 * The core's pure step: (record, command, definition, clock) → the next record, whose outbox holds
 * the effects to publish, and the outcome to answer. No I/O: the caller loads the record and the
 * definition, persists with compare-and-set, and publishes.
 */
export function step(
  prev: RunRecord | null,
  cmd: Command,
  cd: CompiledDefinition | { missing: string },
  clock: Clock,
  defaultBudgets: DefaultBudgets = [],
): StepOutcome {
  if (prev?.recent.includes(cmd.commandId)) return { kind: "noop", reason: "duplicate command", outcome: ok(cmd, prev.status, true) };
  if (cmd.type === "run.create") {
    if (prev) return { kind: "noop", reason: "run exists", outcome: ok(cmd, prev.status, true) };
    if ("missing" in cd) {
      const rec = refusedCreate(cmd, cd.missing, clock);
      return { kind: "apply", record: rec, outcome: refused(cmd, "NOT_FOUND", cd.missing, "failed") };
    }
    let r: KernelResult;
    try {
      r = createRun(
        cd,
        {
          runId: cmd.runId,
          projectId: cmd.projectId,
          input: cmd.input ?? {},
          ...(cmd.title !== undefined ? { title: cmd.title } : {}),
          ...(cmd.labels !== undefined ? { labels: cmd.labels } : {}),
          ...(cmd.steps ? { steps: cmd.steps as never } : {}),
          ...(cmd.facts ? { facts: cmd.facts } : {}),
          ...(cmd.limits ? { limits: cmd.limits } : {}),
          ...(cmd.budgets || defaultBudgets.length ? { budgets: [...defaultBudgets, ...(cmd.budgets ?? [])] } : {}),
          autoStart: cmd.autoStart ?? true,
          ...(cmd.actor ? { actor: cmd.actor } : {}),
          // The wall clock counts from when the client asked (seed 000); everything else happens now.
          createdAt: Math.min(cmd.issuedAt, clock.now),
        },
        clock,
      );
    } catch (err) {
      const message = `the run could not be created: ${(err as Error).message}`;
      return { kind: "apply", record: refusedCreate(cmd, message, clock), outcome: refused(cmd, "INVALID", message, "failed") };
    }
    const record = recordOf(null, cmd, cd, r, clock);
    return { kind: "apply", record, outcome: ok(cmd, record.status) };
  }
  if (!prev) return { kind: "noop", reason: "unknown run", outcome: refused(cmd, "NOT_FOUND", `run ${cmd.runId} not found`) };
  if (Object.keys(prev.state).length === 0)
    return { kind: "noop", reason: "run was never created", outcome: refused(cmd, "TERMINAL_STATE", prev.error ?? "the run failed to start", prev.status) };
  if ("missing" in cd) return { kind: "noop", reason: cd.missing, outcome: refused(cmd, "NOT_FOUND", cd.missing, prev.status) };
  const action = toAction(cmd);
  if (action === null) return { kind: "noop", reason: "not an action", outcome: ok(cmd, prev.status) };
  if ("invalid" in action) return { kind: "noop", reason: action.invalid, outcome: refused(cmd, "INVALID", action.invalid, prev.status) };
  const state = prev.state as unknown as RunState;
  if (FINAL_RUN_STATUSES.has(runStatusOf(state.run.value)) && cmd.type !== "run.signal") {
    return { kind: "noop", reason: `run is ${prev.status}`, outcome: ok(cmd, prev.status) };
  }
  const r = applyAction(cd, state, action, clock);
  if (r.error) return { kind: "noop", reason: r.error.message, outcome: refused(cmd, r.error.code, r.error.message, prev.status) };
  if (!r.changed) return { kind: "noop", reason: "nothing changed", outcome: ok(cmd, prev.status) };
  const record = recordOf(prev, cmd, cd, r, clock);
  return { kind: "apply", record, outcome: ok(cmd, record.status) };
}
