import {
  EVENTS_PER_TRANSITION,
  Json,
  jsonOnce,
  FINAL_RUN_STATUSES,
  TRANSITION_VERSION,
  type Command,
  type CommandOutcomeInput as CommandOutcome,
  type RunMode,
  type RunStatus,
  type RunSummary,
  type RunViewInput as RunView,
  type StoredEvent,
  type TimerCommand,
  type TimerOp,
  type TransitionCause,
  type TransitionHead,
  type TransitionParts,
  type WorkItem,
  SignalSchema,
} from "@orch/contracts";
import { createHash } from "node:crypto";
import {
  applyAction,
  attemptInFlight,
  createRun,
  runLabels,
  runStatusOf,
  runView,
  packState,
  unpackState,
  stepStatus,
  attemptIdOf,
  type CiDefaults,
  type CompiledDefinition,
  type KernelAction,
  type KernelEffect,
  type KernelResult,
  type PrDefaults,
  type RunProject,
  type RunState,
  type WorkerDefaults,
} from "@orch/engine";

/** How many applied command ids a run remembers (beyond that, commands are idempotent by meaning). */
export const RECENT_COMMANDS = 64;

export interface Clock {
  now: number;
  rand: number;
}

/** Budgets every new run gets besides its own (seed 004's per-step and per-protocol token budgets). */
export type DefaultBudgets = Record<string, unknown>[];

/**
 * The core's own state of a run, stored as the last line of each transition and read by the core
 * only: the kernel's state (null for a run whose creation was refused) and the keys of the recent
 * command ids (`commandKey`).
 */
export interface CoreState {
  v: 1;
  kernel: RunState | null;
  recent: string[];
}

/** A command id as a run remembers it: 16 characters of its SHA-256 (ids are often long, and repeat the run's). */
export const commandKey = (commandId: string): string => createHash("sha256").update(commandId).digest("base64url").slice(0, 16);

/**
 * The core's state as stored: the kernel's packed (what can be rebuilt is left out), written as
 * JSON from fragments (a step that did not move is not written out again).
 */
export function storedState(s: CoreState): Json {
  return new Json(`{"v":${s.v},"kernel":${s.kernel ? kernelJson(packState(s.kernel)) : "null"},"recent":${JSON.stringify(s.recent)}}`);
}

function kernelJson(packed: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(packed)) {
    if (v === undefined) continue;
    if (k === "steps") {
      const steps = Object.entries(v as Record<string, object>).map(([id, step]) => `${JSON.stringify(id)}:${jsonOnce(step)}`);
      parts.push(`"steps":{${steps.join(",")}}`);
    } else if (k === "extraSteps" || k === "planning") parts.push(`${JSON.stringify(k)}:${jsonOnce(v as object)}`);
    else parts.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
  }
  return `{${parts.join(",")}}`;
}

/** The core's state from what `storedState` wrote, or null when it is not a state this core writes. */
export function restoredState(raw: unknown): CoreState | null {
  const s = raw as { v?: unknown; kernel?: unknown; recent?: unknown } | null;
  if (!s || s.v !== 1 || !Array.isArray(s.recent)) return null;
  return { v: 1, kernel: s.kernel ? unpackState(s.kernel as Record<string, unknown>) : null, recent: s.recent as string[] };
}

/** A run as the core holds it: its last transition's head (the summary, its number) and state. */
export interface RunAsStored {
  head: TransitionHead;
  /** The run's summary as of that transition (every run has one). */
  run: RunSummary;
  state: CoreState;
}

export type Decision =
  /** A transition to write: the run's next state with its events, work and timers. */
  | { kind: "write"; transition: TransitionParts & { head: TransitionHead & { run: RunSummary }; state: CoreState }; outcome: CommandOutcome }
  /** Nothing to write: a duplicate, a refusal, a command about a run that does not exist. */
  | { kind: "noop"; reason: string; outcome: CommandOutcome };

const ok = (cmd: Command, run?: RunView, duplicate?: boolean): CommandOutcome => ({
  commandId: cmd.commandId,
  runId: cmd.runId,
  ok: true,
  ...(run ? { run } : {}),
  ...(duplicate ? { duplicate } : {}),
});
const refused = (cmd: Command, code: string, message: string, run?: RunView): CommandOutcome => ({
  commandId: cmd.commandId,
  runId: cmd.runId,
  ok: false,
  error: { code, message },
  ...(run ? { run } : {}),
});

/** A command → the kernel's action (null when the command creates a run). */
function toAction(cmd: Command): KernelAction | { invalid: string } | null {
  switch (cmd.type) {
    case "run.create": {
      // Create-or-signal, on a run that exists: its signal (creating it again changes nothing).
      if (cmd.then === undefined) return null;
      const s = SignalSchema.safeParse(cmd.then);
      if (!s.success) return { invalid: `invalid then: ${s.error.issues.map((i) => `${i.path.join(".") || "signal"}: ${i.message}`).join("; ")}` };
      return { type: "signal", signal: s.data, ...(cmd.actor ? { actor: cmd.actor } : {}) };
    }
    case "run.signal": {
      const s = SignalSchema.safeParse(cmd.signal);
      if (!s.success) return { invalid: `invalid signal: ${s.error.issues.map((i) => `${i.path.join(".") || "signal"}: ${i.message}`).join("; ")}` };
      return { type: "signal", signal: s.data, ...(cmd.actor ? { actor: cmd.actor } : {}), ...(cmd.reason ? { reason: cmd.reason } : {}) };
    }
    case "step.result":
      // A `pr.sync` is answered with signals; a result for one changes nothing.
      if (cmd.kind === "sync") return null;
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

function causeOf(cmd: Command): TransitionCause {
  return {
    type: cmd.type,
    commandId: cmd.commandId,
    ...(cmd.actor ? { actor: cmd.actor } : {}),
    ...(cmd.type === "run.signal" ? { signal: cmd.signal.name } : {}),
    ...(cmd.type === "step.result" ? { attemptId: cmd.attemptId } : {}),
  };
}

interface Carried {
  events: StoredEvent[];
  work: WorkItem[];
  timers: TimerOp[];
  seq: number;
}

/** Kernel effects → what the transition carries: events numbered gaplessly from the run's last, work, timers. */
export function carried(effects: KernelEffect[], st: RunState, mode: RunMode, lastSeq: number): Carried {
  let seq = lastSeq;
  const out: Carried = { events: [], work: [], timers: [], seq };
  const goal = typeof st.input.goal === "string" ? st.input.goal : undefined;
  for (const e of effects) {
    if (e.kind === "event") {
      const ev: StoredEvent = { seq: ++seq, type: e.type, at: e.at };
      if (e.data !== undefined) ev.data = e.data;
      out.events.push(ev);
    } else if (e.kind === "work") {
      const w = e.work;
      const item: WorkItem = {
        runId: st.runId,
        projectId: st.projectId,
        definition: { id: st.definition.id, version: st.definition.version },
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
        mode,
        dispatchedAt: w.at,
      };
      if (w.title !== undefined) item.title = w.title;
      if (w.payload !== undefined) item.payload = w.payload;
      if (w.model !== undefined) item.model = w.model;
      if (w.timeoutMs !== undefined) item.timeoutMs = w.timeoutMs;
      if (w.feedback !== undefined) item.feedback = w.feedback;
      if (w.workspace !== undefined) item.workspace = w.workspace;
      if (goal !== undefined) item.goal = goal;
      out.work.push(item);
    } else if (e.op === "set") {
      out.timers.push({
        op: "set",
        timerId: e.timerId,
        dueAt: e.dueAt,
        kind: e.timerKind,
        ...(e.stepId ? { stepId: e.stepId } : {}),
        // A periodic run's tick: the create of its slot's run, which the scheduler sends when it fires.
        ...(e.command ? { command: e.command as TimerCommand } : {}),
      });
    } else {
      out.timers.push({ op: "cancel", timerId: e.timerId });
    }
  }
  out.seq = seq;
  return out;
}

/** Attempts in flight before that are not after: their sessions can stop (a result for one is the hub's own). */
function withdrawnAttempts(before: RunState, after: RunState, answered?: string): string[] {
  const out: string[] = [];
  const check = (stepId: string) => {
    const snap = before.planning?.context.stepId === stepId ? before.planning : before.steps[stepId];
    if (!snap) return;
    const s = stepStatus(snap);
    if (s !== "running" && s !== "qa") return;
    const id = attemptIdOf(snap.context);
    if (id !== answered && !attemptInFlight(after, stepId, id)) out.push(id);
  };
  for (const stepId of Object.keys(before.steps)) check(stepId);
  if (before.planning) check(before.planning.context.stepId);
  return out;
}

interface Base {
  mode: RunMode;
  labels: Record<string, string>;
  title?: string;
}

function summaryOf(st: RunState, cd: CompiledDefinition, base: Base, seq: number, now: number): RunSummary & Pick<RunView, "mode" | "stepsRun"> {
  const rc = st.run.context;
  const s: RunSummary & Pick<RunView, "mode" | "stepsRun"> = {
    runId: st.runId,
    projectId: st.projectId,
    definition: { id: st.definition.id, version: st.definition.version },
    view: cd.def.view,
    mode: base.mode,
    labels: base.labels,
    status: runStatusOf(st.run.value) as RunStatus,
    createdAt: st.createdAt,
    updatedAt: now,
    stepsRun: st.stepsCompleted,
    seq,
  };
  if (base.title !== undefined) s.title = base.title;
  if (rc.stage) s.stage = rc.stage;
  if (rc.startedAt !== undefined) s.startedAt = rc.startedAt;
  if (rc.finishedAt !== undefined) s.finishedAt = rc.finishedAt;
  if (rc.error !== undefined) s.error = rc.error;
  return s;
}

/** The transition that follows `prev` after a kernel step. */
function transitionOf(prev: RunAsStored | null, cmd: Command, cd: CompiledDefinition, r: KernelResult, base: Base, clock: Clock): Decision {
  const st = r.state;
  const c = carried(r.effects, st, base.mode, prev?.run.seq ?? 0);
  if (c.events.length >= EVENTS_PER_TRANSITION) {
    const message = `the command would append ${c.events.length} events to the run at once (at most ${EVENTS_PER_TRANSITION - 1})`;
    return { kind: "noop", reason: message, outcome: refused(cmd, "INVALID", message) };
  }
  const summary = summaryOf(st, cd, base, c.seq, clock.now);
  const view = runView(cd, st, summary);
  const inflight = view.steps.reduce((n, s) => n + (s.inflight ? 1 : 0), 0);
  if (inflight > 0) {
    summary.inflight = inflight;
    view.inflight = inflight;
  }
  const head: TransitionHead & { run: RunSummary } = {
    v: TRANSITION_VERSION,
    runId: st.runId,
    projectId: st.projectId,
    n: (prev?.head.n ?? 0) + 1,
    seq: c.seq,
    events: c.events.length,
    at: clock.now,
    cause: causeOf(cmd),
    run: summary,
  };
  if (c.work.length) head.work = c.work;
  if (c.timers.length) head.timers = c.timers;
  if (prev?.state.kernel) {
    const withdrawn = withdrawnAttempts(prev.state.kernel, st, cmd.type === "step.result" ? cmd.attemptId : undefined);
    if (withdrawn.length) head.withdrawn = withdrawn;
  }
  const state: CoreState = { v: 1, kernel: st, recent: [...(prev?.state.recent ?? []), commandKey(cmd.commandId)].slice(-RECENT_COMMANDS) };
  return { kind: "write", transition: { head, events: c.events, view, state }, outcome: ok(cmd, view) };
}

/** A run whose creation was refused: it exists, failed, so it never looks queued forever. */
function refusedCreate(cmd: Extract<Command, { type: "run.create" }>, message: string, clock: Clock): Decision & { kind: "write" } {
  const summary: RunSummary & Pick<RunView, "mode" | "stepsRun"> = {
    runId: cmd.runId,
    projectId: cmd.projectId,
    definition: { id: cmd.definition.id, version: cmd.definition.version ?? 0 },
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
  };
  const head: TransitionHead & { run: RunSummary } = {
    v: TRANSITION_VERSION,
    runId: cmd.runId,
    projectId: cmd.projectId,
    n: 1,
    seq: 1,
    events: 1,
    at: clock.now,
    cause: causeOf(cmd),
    run: summary,
  };
  // A run that reports its end (a schedule's) reports this one too, or its schedule would wait for it.
  if (cmd.reportTo !== undefined) {
    const command = {
      type: "run.signal",
      commandId: `ended.${cmd.runId}`,
      runId: cmd.reportTo,
      issuedAt: clock.now,
      actor: "schedule",
      signal: { name: "child_ended", runId: cmd.runId, status: "failed" },
    };
    head.timers = [{ op: "set", timerId: `${cmd.runId}.${command.commandId}`, dueAt: clock.now, kind: "command", command }];
  }
  const view: RunView = {
    ...summary,
    input: cmd.input ?? {},
    steps: [],
    facts: {},
    usage: { tokens: 0, tokensIn: 0, tokensOut: 0, costUsd: 0, wallMs: 0, calls: 0 },
    usageBy: { phase: {}, role: {}, model: {} },
  };
  return {
    kind: "write",
    transition: {
      head,
      events: [{ seq: 1, type: "run.finished", at: clock.now, data: { status: "failed", from: "pending", trigger: "CREATE_REFUSED", error: message } }],
      view,
      state: { v: 1, kernel: null, recent: [commandKey(cmd.commandId)] },
    },
    outcome: refused(cmd, "NOT_FOUND", message, view),
  };
}

/** The view of a run as stored (what a command that changes nothing answers with). */
function viewOf(prev: RunAsStored, cd: CompiledDefinition | { missing: string }): RunView | undefined {
  if (!prev.state.kernel || "missing" in cd) return undefined;
  return runView(cd, prev.state.kernel, { ...prev.run, mode: prev.run.mode ?? "mock", stepsRun: prev.run.stepsRun ?? 0 });
}

/** What a run gets at its creation besides its command: its project's forge and base branch, the core's PR settings. */
export interface RunCreation {
  project?: RunProject;
  prDefaults?: PrDefaults;
}

/**
 * The core's pure decision: (the run as stored, a command, its definition, the clock) → the next
 * transition to write, and the outcome to answer. No I/O: the caller loads the run and the
 * definition, writes the transition with compare-and-set, and answers.
 */
export function decide(
  prev: RunAsStored | null,
  cmd: Command,
  cd: CompiledDefinition | { missing: string },
  clock: Clock,
  defaultBudgets: DefaultBudgets = [],
  ciDefaults: CiDefaults = {},
  workerDefaults: WorkerDefaults = {},
  creation: RunCreation = {},
): Decision {
  if (prev?.state.recent.includes(commandKey(cmd.commandId))) return { kind: "noop", reason: "duplicate command", outcome: ok(cmd, viewOf(prev, cd), true) };
  if (cmd.type === "run.create") {
    if (prev && cmd.then === undefined) return { kind: "noop", reason: "run exists", outcome: ok(cmd, viewOf(prev, cd), true) };
  }
  if (cmd.type === "run.create" && !prev) {
    if ("missing" in cd) {
      const d = refusedCreate(cmd, cd.missing, clock);
      return d;
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
          // What a CI report does to the run: the definition's policy, the core's settings for what it leaves out.
          ciDefaults,
          // Likewise the core's task worker settings (seed 001: ORCH_WORKER_*), for definitions with a worker policy.
          workerDefaults,
          // The project's forge and base branch (the core owns projects: a run keeps what it started with),
          // and the core's pull request settings (ORCH_PR_POLL_INTERVAL_SECS, ORCH_PUBLIC_URL).
          ...(creation.project ? { project: creation.project } : {}),
          ...(creation.prDefaults ? { prDefaults: creation.prDefaults } : {}),
          ...(cmd.reportTo !== undefined ? { reportTo: cmd.reportTo } : {}),
          // The wall clock counts from when the client asked (seed 000); everything else happens now.
          createdAt: Math.min(cmd.issuedAt, clock.now),
        },
        clock,
      );
    } catch (err) {
      const message = `the run could not be created: ${(err as Error).message}`;
      const d = refusedCreate(cmd, message, clock);
      return { ...d, outcome: refused(cmd, "INVALID", message, d.transition.view) };
    }
    if (cmd.then !== undefined) {
      // …and its signal, in the same transition: refused, the run is created all the same.
      const action = toAction(cmd);
      if (action && !("invalid" in action)) {
        const then = applyAction(cd, r.state, action, clock);
        if (!then.error) r = { ...then, effects: [...r.effects, ...then.effects], changed: true };
      }
    }
    const base: Base = {
      mode: cmd.mode ?? "mock",
      labels: runLabels(cd, cmd.labels, cmd.input, cmd.facts) ?? {},
      ...(cmd.title !== undefined ? { title: cmd.title } : {}),
    };
    return transitionOf(null, cmd, cd, r, base, clock);
  }
  if (!prev) return { kind: "noop", reason: "unknown run", outcome: refused(cmd, "NOT_FOUND", `run ${cmd.runId} not found`) };
  const state = prev.state.kernel;
  if (!state) return { kind: "noop", reason: "run was never created", outcome: refused(cmd, "TERMINAL_STATE", prev.run.error ?? "the run failed to start") };
  if ("missing" in cd) return { kind: "noop", reason: cd.missing, outcome: refused(cmd, "NOT_FOUND", cd.missing) };
  const action = toAction(cmd);
  if (action === null) return { kind: "noop", reason: "not an action", outcome: ok(cmd, viewOf(prev, cd)) };
  if ("invalid" in action) return { kind: "noop", reason: action.invalid, outcome: refused(cmd, "INVALID", action.invalid, viewOf(prev, cd)) };
  if (FINAL_RUN_STATUSES.has(runStatusOf(state.run.value)) && cmd.type !== "run.signal") {
    // A late result or timer for a finished run: nothing to answer with but that it changes nothing.
    return { kind: "noop", reason: `run is ${prev.run.status}`, outcome: ok(cmd) };
  }
  const r = applyAction(cd, state, action, clock);
  if (r.error) return { kind: "noop", reason: r.error.message, outcome: refused(cmd, r.error.code, r.error.message, viewOf(prev, cd)) };
  if (!r.changed) return { kind: "noop", reason: "nothing changed", outcome: ok(cmd, viewOf(prev, cd)) };
  const base: Base = { mode: prev.run.mode ?? "mock", labels: prev.run.labels, ...(prev.run.title !== undefined ? { title: prev.run.title } : {}) };
  return transitionOf(prev, cmd, cd, r, base, clock);
}
