import type { AnyMachineSnapshot, AnyStateMachine } from "xstate";
import { pureInitial, pureTransition } from "./pure.js";
import { z } from "zod";
import { ciFixFeedback, ciFixVerdict, ciStepAction, resolveCiPolicy, type CiDefaults, type CiRules } from "./ci.js";
import { evaluate, resolveTemplate } from "./conditions.js";
import { Budget, Limits, StepDef, type CiPolicy, type CompiledDefinition, type RetryPolicy, type RunTemplate, type StepDefInput } from "./definition.js";
import { hashJson } from "./hash.js";
import { budgetKey, covers, emptyLedger, exhausted, record, type Extension, type Ledger } from "./ledger.js";
import {
  BRANCH_LABEL,
  FINAL_RUN_STATUSES,
  ForgeStepType,
  MAX_RUN_STEPS,
  PrMergeOutput,
  PrOpenOutput,
  PrReadyOutput,
  RefusalCode,
  RunEventType,
  SCHEDULE_LABEL,
  SCHEDULED_AT_LABEL,
  IntakeRules,
  TicketRunTracker,
  TicketWorkType,
  type TicketSyncPayload,
  type TicketUpdatePayload,
  type ScheduleSpec,
  type CiFailureRef,
  type PrMergePayload,
  type PrOpenPayload,
  type PrReadyPayload,
  type PrSyncPayload,
  type PrUpdatePayload,
  type MergeQueueOutcome,
  type PullRequestRecord,
  type RunStatus,
  type Signal,
  type StepStatus,
} from "@orch/contracts";
import {
  checkCounts,
  checksState,
  sameCommit,
  outputSummary,
  prBody,
  prTitle,
  readyToMerge,
  resolvePrRules,
  reviewFeedback,
  reviewFixVerdict,
  UNNAMED_CHECK,
  type PrDefaults,
  type PrRules,
  type MergeQueueMember,
  type MergeQueueState,
  mergeQueueRunId,
  MERGE_QUEUE_DEFINITION,
  type PrState,
  type RunProject,
} from "./pull-requests.js";
import {
  createTicketRunReporting,
  heldWritesResumed,
  INTAKE_SYNC_STEP,
  prLinkWrite,
  syncAnswered,
  syncFired,
  syncTimerId,
  TICKET_UPDATE_STEP,
  ticketRunEnded,
  ticketWrites,
  TICKETS_SYNC_TYPE,
  writeFailed,
  writeFired,
  writeLanded,
  type IntakeEffects,
  type IntakeState,
} from "./intake.js";
import { dueBetween, jitterOf, LATE_GRACE_MS, MAX_BACKFILL, nextDue, parseScheduleSpec, scheduledRunId } from "./schedules.js";
import { runMachineFor, runStatusOf, type Gate, type RunContext, type RunEvent } from "./run-machine.js";
import { attemptIdOf, stepMachine, type Decision, type StepContext, type StepEvent } from "./step-machine.js";
import type { CancelTimerParams, DispatchParams, EmitParams, StepError, TimerKind, TimerParams, Usage } from "./types.js";
import { resolveWorkerPolicy, workerRetry, type WorkerDefaults, type WorkerRules } from "./worker.js";

/**
 * The kernel: the core's pure step. Given a run's state, an action (a signal, a step result, a
 * timer) and the clock, it returns the next state and the effects to carry out (events to append,
 * work to dispatch, timers to set or cancel), or a typed refusal that changes nothing. No I/O.
 *
 * It drives two kinds of machine (the run machine compiled from the definition, and one step
 * machine per step) and owns what spans them: scheduling ready steps (DAG, concurrency, manual or
 * auto), limits and budgets (checked before each step starts), the usage ledger, facts, loops,
 * triggers and stage events. After every action it settles: it keeps applying the consequences
 * until nothing changes.
 */

export interface Snap<C> {
  value: unknown;
  context: C;
}

export type RunStepDef = StepDef & { index: number; stage: string; phase: string };

export interface RunState {
  runId: string;
  projectId: string;
  definition: { id: string; version: number; hash: string };
  input: Record<string, unknown>;
  createdAt: number;
  run: Snap<RunContext>;
  steps: Record<string, Snap<StepContext>>;
  planning?: Snap<StepContext>;
  /** Steps the run brought or added (dynamic definitions, planning output). */
  extraSteps: StepDef[];
  facts: Record<string, unknown>;
  stepsCompleted: number;
  loops: Record<string, number>;
  ledger: Ledger;
  budgets: Budget[];
  extensions: Record<string, Extension>;
  warned: string[];
  limits: Limits;
  /** Stages the run has entered (entering one again is a rework: its steps run again). */
  stagesVisited?: string[];
  /** Whether the planning step's output has been applied (its steps added). */
  planApplied?: boolean;
  /** The CI policy the run got at its creation (absent: CI reports are only recorded) and its fix attempts so far. */
  /** `fixedFor`: the failure (`<check>@<sha>`) the last fix attempt on an open PR was for (it gets one). */
  ci?: { policy: CiRules; attempts: number; lastAt?: number; fixedFor?: string };
  /** The task worker rules the run got at its creation (its definition's `worker` policy, the core's settings). */
  worker?: WorkerRules;
  /** Steps' metadata (`set_step_metadata`, merged shallowly), by step id. */
  stepMetadata?: Record<string, Record<string, unknown>>;
  /**
   * Steps queued again (`add_steps` with `replace`), with where they stand in the run's queue order
   * now: `[steps the run had then − 1, n-th requeue]`, against `[index, −1]` for the others.
   */
  requeued?: Record<string, [number, number]>;
  requeues?: number;
  /** A periodic run's schedule (`set_schedule`) and the tick timer it has armed. */
  periodic?: PeriodicState;
  /** What the run knows of its project (its forge, its base branch), copied at its creation. */
  project?: RunProject;
  /** The pull request rules the run got at its creation (its definition's policy, the core's settings). */
  prRules?: PrRules;
  /** Its pull request, once one is opened or reported. */
  pr?: PrState;
  /** Its place in its merge queue (`pullRequests.merge.queue`), while it has one. */
  mq?: MergeQueueMember;
  /** How many times it has joined a merge queue. */
  mqJoins?: number;
  /** Why it does not join its queue again until its PR's head changes (a conflict, a failed update). */
  mqHold?: { reason: string; headSha?: string };
  /** A merge queue run's members and turn (the built-in `merge.queue`). */
  mergeQueue?: MergeQueueState;
  /** A schedule run's schedule and where it stands (`schedule` definitions). */
  schedule?: ScheduleState;
  /** The run told when this one ends (`child_ended`): the schedule that created it; `reported` once told. */
  reportTo?: string;
  reported?: boolean;
  /** A ticket intake run's state (`ticket.intake` definitions; intake.ts decides). */
  intake?: IntakeState;
  /** A ticket run's visits of each stage so far (its write-back keys name the visit). */
  ticketVisits?: Record<string, number>;
}

/**
 * A schedule run's state: its spec, the due time its armed timer is for (`nextAt`, absent while
 * paused or ended), the latest due time it has fired or passed over, the runs it created that have
 * not reported their end (`cancelling`: told to cancel by `cancel_previous`), the due times waiting
 * for them (overlap `queue`), and `gen`, which makes each armed timer's id new after an update.
 */
export interface ScheduleState {
  spec: ScheduleSpec;
  gen: number;
  nextAt?: number;
  timerId?: string;
  lastAt?: number;
  active: { runId: string; at: number; cancelling?: boolean }[];
  queued: number[];
  fired: number;
  skipped: number;
}

/** What a periodic run keeps: its schedule, and the slot its armed tick timer is for. */
export interface PeriodicState {
  enabled: boolean;
  everyMs?: number;
  creates?: RunTemplate;
  slot?: number;
  timerId?: string;
}

export interface Clock {
  now: number;
  rand: number;
}

export interface WorkSpec {
  stepId: string;
  attemptId: string;
  attempt: number;
  /** `sync`: the polling fallback's look at the run's PR (`pr.sync`), not a step of the run. */
  kind: "execute" | "qa" | "plan" | "sync";
  index: number;
  role: string;
  type: string;
  phase: string;
  title?: string;
  inputs: Record<string, unknown>;
  payload?: Record<string, unknown>;
  model?: string;
  timeoutMs?: number;
  iteration: number;
  rework: number;
  feedback?: string;
  /** The run's branch and its base, resolved from the definition's `workspace` (omitted when empty). */
  workspace?: { branch?: string; base?: string };
  at: number;
}

export type KernelEffect =
  | { kind: "event"; type: string; at: number; data?: Record<string, unknown> }
  | { kind: "work"; work: WorkSpec }
  | {
      kind: "timer";
      op: "set";
      timerId: string;
      dueAt: number;
      timerKind: TimerKind;
      stepId?: string;
      /** A `command` timer's command: what the scheduler sends when it fires (instead of `timer.fired`). */
      command?: Record<string, unknown>;
    }
  | { kind: "timer"; op: "cancel"; timerId: string };

export interface KernelError {
  code: RefusalCode;
  message: string;
}

export type KernelAction =
  | { type: "signal"; signal: Signal; actor?: string; reason?: string }
  | {
      type: "result";
      stepId: string;
      attemptId: string;
      kind: "execute" | "qa" | "plan";
      ok: boolean;
      output?: unknown;
      notes?: string[];
      error?: StepError;
      usage?: Usage;
      model?: string;
    }
  | { type: "timer"; timerId: string; kind: TimerKind; stepId?: string };

export interface KernelResult {
  state: RunState;
  effects: KernelEffect[];
  error?: KernelError;
  /** False when the action changed nothing (a duplicate, an ignored late timer). */
  changed: boolean;
}

export interface CreateRunOptions {
  runId: string;
  projectId: string;
  title?: string;
  labels?: Record<string, string>;
  input?: Record<string, unknown>;
  steps?: StepDefInput[];
  facts?: Record<string, unknown>;
  /** Validated here (a bad one throws, with the reason). */
  limits?: Record<string, unknown>;
  budgets?: Record<string, unknown>[];
  /** When the run was asked for (its wall clock counts from then); the clock's now by default. */
  createdAt?: number;
  /** Send `start` at once (jobs, auto-run workflows); otherwise the run waits in `pending`. */
  autoStart: boolean;
  actor?: string;
  /** The core's defaults for what the definition's CI policy leaves out (recorded with the run). */
  ciDefaults?: CiDefaults;
  /** The core's task worker settings, for what the definition's worker policy leaves out (recorded with the run). */
  workerDefaults?: WorkerDefaults;
  /** What the run gets of its project: its forge (what forge steps and CI fix attempts need), its base branch. */
  project?: RunProject;
  /** The core's pull request settings (poll interval, public URL), recorded with the run. */
  prDefaults?: PrDefaults;
  /** The run told when this one ends (`child_ended`). */
  reportTo?: string;
}

const ACTIVE: ReadonlySet<StepStatus> = new Set(["running", "retry_wait", "qa"]);
const SETTLED: ReadonlySet<StepStatus> = new Set(["completed", "skipped", "cancelled"]);
const DONE_FOR_NEEDS: ReadonlySet<StepStatus> = new Set(["completed", "skipped"]);

const stepStatus = (s: Snap<StepContext> | undefined): StepStatus => {
  const v = s?.value;
  if (v === "routing") return "running";
  if (v === "qa_routing") return "qa";
  return (typeof v === "string" ? v : "pending") as StepStatus;
};

function revisionOf(output: unknown, attempt: number): string {
  return `${attempt}-${hashJson(output ?? null).slice(0, 12)}`;
}

export function backoffMs(p: RetryPolicy, retry: number, rand: number): number {
  const base = Math.min(p.maxMs, p.initialMs * p.multiplier ** Math.max(0, retry - 1));
  return Math.floor(base) + Math.floor(Math.max(0, Math.min(0.999999, rand)) * p.jitterMs);
}

const MAX_SETTLE_ROUNDS = 500;

const cmpKey = (a: readonly [number, number], b: readonly [number, number]) => a[0] - b[0] || a[1] - b[1];

/** A periodic state without its armed timer. */
function periodicWithout(p: PeriodicState): PeriodicState {
  const { timerId: _t, slot: _s, ...rest } = p;
  return rest;
}

/** The run a periodic run creates for `slot` (its id, and what its create command carries). */
export function periodicRunId(runId: string, everyMs: number, slot: number): string {
  return `${runId}-${everyMs}-${slot}`;
}

class Kernel {
  readonly effects: KernelEffect[] = [];
  readonly state: RunState;
  private runSnap: AnyMachineSnapshot;
  private readonly machine;
  private changed = false;

  constructor(
    private readonly cd: CompiledDefinition,
    state: RunState,
    private readonly clock: Clock,
  ) {
    this.state = {
      ...state,
      steps: { ...state.steps },
      facts: { ...state.facts },
      loops: { ...state.loops },
      extensions: { ...state.extensions },
      warned: [...state.warned],
      extraSteps: [...state.extraSteps],
      stagesVisited: [...(state.stagesVisited ?? [])],
      planApplied: state.planApplied ?? false,
    };
    this.#origExtra = state.extraSteps;
    this.machine = runMachineFor(cd);
    this.runSnap = resolved(this.machine, state.run);
  }

  // ── definitions ──────────────────────────────────────────────────────────

  /** The run's steps in order (the definition's, then those it brought or added); cached per action. */
  steps(): RunStepDef[] {
    if (this.#steps) return this.#steps;
    const base = this.cd.steps as RunStepDef[];
    const cached = this.#origExtra ? derivedSteps.get(this.#origExtra) : undefined;
    if (this.state.extraSteps.length === 0) this.#steps = base;
    else if (cached && cached.cd === this.cd) this.#steps = cached.steps;
    else {
      const firstStage = this.cd.stages.find((s) => !s.terminal)?.id ?? this.cd.initialStage;
      this.#steps = [
        ...base,
        ...this.state.extraSteps.map((s, i) => ({
          ...s,
          index: base.length + i,
          stage: s.stage ?? firstStage,
          phase: s.phase ?? (this.cd.def.stages.length > 0 ? (s.stage ?? firstStage) : s.id),
        })),
      ];
      if (this.#origExtra) derivedSteps.set(this.#origExtra, { cd: this.cd, steps: this.#steps });
    }
    this.#byId = new Map(this.#steps.map((d) => [d.id, d]));
    return this.#steps;
  }

  /** The run's added steps as they were given (unchanged unless steps are added in this action). */
  #origExtra: StepDef[] | undefined;

  #steps: RunStepDef[] | undefined;
  /** True while createRun sets the run up. */
  #creating = false;

  setCreating(v: boolean) {
    this.#creating = v;
  }
  #byId: Map<string, RunStepDef> | undefined;

  stepDef(id: string): RunStepDef | undefined {
    if (this.cd.planning && id === this.cd.planning.id) return this.cd.planning as RunStepDef;
    if (!this.#byId) this.steps();
    return this.#byId!.get(id);
  }

  snapOf(id: string): Snap<StepContext> | undefined {
    if (this.cd.planning && id === this.cd.planning.id) return this.state.planning;
    return this.state.steps[id];
  }

  status(id: string): StepStatus {
    return stepStatus(this.snapOf(id));
  }

  runStatus(): RunStatus {
    return runStatusOf(this.runSnap.value);
  }

  runContext(): RunContext {
    return this.runSnap.context as RunContext;
  }

  // ── machines ─────────────────────────────────────────────────────────────

  canRun(event: RunEvent): boolean {
    return this.runSnap.can(event as never);
  }

  /** Sends an event to the run machine; returns whether anything changed. */
  sendRun(event: RunEvent): boolean {
    const [next, actions] = pureTransition(this.machine, this.runSnap, event);
    if (next === this.runSnap) return false;
    this.runSnap = next;
    this.changed = true;
    for (const a of actions as { type: string; params?: unknown }[]) this.runAction(a);
    return true;
  }

  sendStep(id: string, event: StepEvent): boolean {
    const before = this.snapOf(id);
    if (!before) return false;
    if (event.type === "DISPATCH") {
      // A forge step that cannot run (no forge, merging not enabled, no PR) is skipped or failed instead.
      const d = this.stepDef(id);
      const held = d ? this.forgeHold(d) : null;
      if (held) return this.forgeHeld(id, held, event);
      const hint = this.#hints.get(id);
      if (hint !== undefined && event.hint === undefined) event = { ...event, hint };
      this.#hints.delete(id);
    }
    const prevStatus = stepStatus(before);
    const snap = resolved(stepMachine as unknown as AnyStateMachine, before);
    const [next, actions] = pureTransition(stepMachine as never, snap, event);
    if (next === snap) return false;
    this.fromStatus = prevStatus;
    const persisted = { value: next.value, context: next.context as StepContext };
    RESOLVED.set(persisted, next);
    if (this.cd.planning && id === this.cd.planning.id) this.state.planning = persisted;
    else this.state.steps[id] = persisted;
    this.changed = true;
    for (const a of actions as { type: string; params?: unknown }[]) this.stepAction(id, a);
    const now = stepStatus(persisted);
    if (now !== prevStatus) this.onStepStatus(id, prevStatus, now);
    return true;
  }

  private emit(p: EmitParams | null) {
    if (!p) return;
    this.effects.push(p.data === undefined ? { kind: "event", type: p.type, at: p.at } : { kind: "event", type: p.type, at: p.at, data: p.data });
    // A ticket run's pull request, once it has one, is attached to its ticket.
    if (p.type === "pr.opened") this.ticketPrOpened();
  }

  private runAction(a: { type: string; params?: unknown }) {
    switch (a.type) {
      case "emit": {
        const p = a.params as EmitParams | null;
        this.emit(p);
        // Entering a stage again (rework after review, say) runs its steps again.
        if (p?.type === "run.stage_entered" && typeof p.data?.stage === "string") {
          const visited = this.state.stagesVisited!;
          if (visited.includes(p.data.stage)) this.reentered.push(p.data.stage);
          else visited.push(p.data.stage);
          this.ticketStage(p.data.stage);
        }
        break;
      }
      case "startPlanning":
        this.replan = true;
        break;
      case "armWallClock": {
        const max = this.state.limits.maxWallMs;
        if (max !== undefined) {
          this.effects.push({ kind: "timer", op: "set", timerId: `${this.state.runId}.wall`, dueAt: this.state.createdAt + max + 1, timerKind: "wall_clock" });
        }
        break;
      }
      case "disarmWallClock":
        if (this.state.limits.maxWallMs !== undefined) this.effects.push({ kind: "timer", op: "cancel", timerId: `${this.state.runId}.wall` });
        break;
      case "settleSteps":
        this.pendingSettleSteps = true;
        break;
      default:
        break;
    }
  }

  private pendingSettleSteps = false;
  /** Feedback for a step's next dispatch in this action (a review's fix attempt, through a stage's rework). */
  readonly #hints = new Map<string, string>();
  /** Payload for a step's next dispatch in this action (a CI fix attempt's failing check). */
  readonly #extraPayload = new Map<string, Record<string, unknown>>();
  private readonly reentered: string[] = [];
  private replan = false;
  /** The status of the step being transitioned, before the transition (for events that say "from"). */
  private fromStatus: StepStatus = "pending";

  private stepAction(id: string, a: { type: string; params?: unknown }) {
    switch (a.type) {
      case "emit": {
        const p = a.params as EmitParams | null;
        if (p?.data?.from === "same") p.data = { ...p.data, from: this.fromStatus };
        // What ran (the step's type, role, title, payload) is the work item the same transition
        // dispatches: a start does not repeat it.
        this.emit(p);
        break;
      }
      case "dispatch":
        this.dispatch(id, a.params as DispatchParams);
        break;
      case "setTimer": {
        const p = a.params as TimerParams | null;
        if (p)
          this.effects.push({ kind: "timer", op: "set", timerId: p.timerId, dueAt: p.dueAt, timerKind: p.kind, ...(p.stepId ? { stepId: p.stepId } : {}) });
        break;
      }
      case "cancelTimer": {
        const p = a.params as CancelTimerParams | null;
        if (p) this.effects.push({ kind: "timer", op: "cancel", timerId: p.timerId });
        break;
      }
      default:
        break;
    }
  }

  /** What a step's work sees: its inputs resolved against earlier outputs, facts and the input. */
  scope(): Record<string, unknown> {
    const steps: Record<string, unknown> = {};
    for (const d of this.steps()) {
      const s = this.state.steps[d.id];
      if (!s) continue;
      steps[d.id] = { status: stepStatus(s), output: s.context.output, attempt: s.context.attempt, revision: s.context.revision, error: s.context.error };
    }
    if (this.cd.planning && this.state.planning) {
      steps[this.cd.planning.id] = { status: stepStatus(this.state.planning), output: this.state.planning.context.output };
    }
    const rc = this.runContext();
    return {
      facts: this.state.facts,
      input: this.state.input,
      steps,
      loop: this.state.loops,
      usage: { tokens: this.state.ledger.total.tokens, costUsd: this.state.ledger.total.costUsd },
      run: { stage: rc.stage, status: this.runStatus() },
    };
  }

  private dispatch(id: string, p: DispatchParams) {
    const d = this.stepDef(id)!;
    const s = this.snapOf(id)!.context;
    const isPlan = this.cd.planning !== undefined && id === this.cd.planning.id;
    const scope = this.scope();
    const qa = p.kind === "qa";
    const work: WorkSpec = {
      stepId: id,
      attemptId: attemptIdOf(s),
      attempt: s.attempt,
      kind: isPlan ? "plan" : p.kind,
      index: d.index,
      role: qa ? (d.qa?.role ?? "qa") : d.role,
      type: qa ? (d.qa?.type ?? "qa.review") : d.type,
      phase: d.phase,
      inputs: qa
        ? { output: s.output ?? null, inputs: resolveTemplate(d.inputs, scope) as Record<string, unknown> }
        : (resolveTemplate(d.inputs, scope) as Record<string, unknown>),
      iteration: s.iteration,
      rework: s.reworks,
      at: p.at,
    };
    if (d.title !== undefined) work.title = d.title;
    if (d.payload !== undefined) work.payload = d.payload;
    if (d.model !== undefined) work.model = d.model;
    if (d.timeoutMs !== undefined && !qa) work.timeoutMs = d.timeoutMs;
    // A reviewer's feedback on a rework, and what whoever started this attempt said about it.
    const said = [s.feedback !== undefined && s.reworks > 0 ? s.feedback : undefined, !qa ? s.hint : undefined].filter((x): x is string => x !== undefined);
    if (said.length) work.feedback = said.join("\n\n").slice(0, 10_000);
    const ws = this.workspace(scope);
    if (ws) work.workspace = ws;
    if (!qa && !isPlan) {
      // Forge steps get what the core composes; a session step of a run with an open PR pushes its commits.
      if (d.type === ForgeStepType.Open) work.payload = { ...d.payload, ...this.prOpenPayload(d) };
      else if (d.type === ForgeStepType.Merge) work.payload = { ...d.payload, ...this.prMergePayload(d) };
      else if (d.type === ForgeStepType.Ready) work.payload = { ...d.payload, ...this.prReadyPayload() };
      else if (this.state.pr?.record.state === "open") work.payload = { ...work.payload, push: true };
      const extra = this.#extraPayload.get(id);
      if (extra) work.payload = { ...work.payload, ...extra };
      this.#extraPayload.delete(id);
    }
    this.effects.push({ kind: "work", work });
  }

  /** The run's branch and its base, resolved from the definition's `workspace` (undefined when both are empty). */
  private workspace(scope: Record<string, unknown> = this.scope()): WorkSpec["workspace"] {
    const ws = this.cd.def.workspace;
    if (!ws) return undefined;
    const str = (t: string | undefined) => {
      const v = t === undefined ? undefined : resolveTemplate(t, scope);
      return typeof v === "string" && v.trim() ? v.trim() : undefined;
    };
    const branch = str(ws.branch);
    const base = str(ws.base);
    if (branch === undefined && base === undefined) return undefined;
    return { ...(branch !== undefined ? { branch } : {}), ...(base !== undefined ? { base } : {}) };
  }

  // ── step consequences ────────────────────────────────────────────────────

  private onStepStatus(id: string, from: StepStatus, to: StepStatus) {
    if (this.cd.planning && id === this.cd.planning.id) return;
    const d = this.stepDef(id);
    if (!d) return;
    if (to === "completed") {
      this.state.stepsCompleted += 1;
      if (d.sets?.completed) this.setFacts(d.sets.completed, `step ${id} completed`);
      if (this.afterCompleted(d)) return;
      this.fireTriggers(d, "completed");
      if (d.emits?.completed) this.stageEvent(d.emits.completed, `step ${id} completed`);
    } else if (to === "failed") {
      if (d.sets?.failed) this.setFacts(d.sets.failed, `step ${id} failed`);
      this.fireTriggers(d, "failed");
      if (d.emits?.failed) this.stageEvent(d.emits.failed, `step ${id} failed`);
    }
    void from;
  }

  /** Loop policy; true when the loop sent the group round again. */
  private afterCompleted(d: RunStepDef): boolean {
    const loop = d.loop;
    if (!loop) return false;
    if (evaluate(loop.until, this.scope())) return false;
    const done = this.state.loops[d.id] ?? 0;
    if (done >= loop.maxIterations) {
      this.emit({ type: "loop.exhausted", at: this.clock.now, data: { stepId: d.id, iterations: done } });
      if (loop.onExhausted === "fail")
        this.sendRun({ type: "FAIL", error: `loop at ${d.id} did not converge in ${done} iterations`, at: this.clock.now, rand: this.clock.rand });
      return false;
    }
    const iteration = done + 1;
    this.state.loops[d.id] = iteration;
    const all = this.steps();
    const from = all.findIndex((s) => s.id === loop.backTo);
    const to = all.findIndex((s) => s.id === d.id);
    this.emit({ type: "loop.iteration", at: this.clock.now, data: { stepId: d.id, backTo: loop.backTo, iteration } });
    for (const s of all.slice(from, to + 1)) {
      if (s.stage !== d.stage) continue;
      this.sendStep(s.id, { type: "RESET", reason: "loop", iteration, at: this.clock.now, rand: this.clock.rand });
    }
    return true;
  }

  private fireTriggers(d: RunStepDef, on: "completed" | "failed") {
    const depth = (this.state.steps[d.id]?.context.depth ?? 0) + 1;
    for (const t of d.triggers) {
      if (t.on !== on) continue;
      if (depth > this.state.limits.maxTriggerDepth) {
        this.emit({ type: "trigger.skipped", at: this.clock.now, data: { from: d.id, to: t.step, depth, limit: this.state.limits.maxTriggerDepth } });
        continue;
      }
      const st = this.status(t.step);
      this.emit({ type: "trigger.fired", at: this.clock.now, data: { from: d.id, to: t.step, action: t.action, on, depth } });
      if (t.action === "enqueue" || st === "completed" || st === "skipped") {
        if (st !== "pending") this.sendStep(t.step, { type: "RESET", reason: "trigger", depth, at: this.clock.now, rand: this.clock.rand });
      }
      if (t.action === "run") {
        const now = this.status(t.step);
        if (now === "pending" || now === "failed" || now === "blocked") {
          this.sendStep(t.step, { type: "DISPATCH", reason: "trigger", depth, at: this.clock.now, rand: this.clock.rand, ...this.timeout(t.step) });
        }
      }
    }
  }

  setFacts(facts: Record<string, unknown>, why: string) {
    const changed: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(facts)) {
      if (JSON.stringify(this.state.facts[k]) === JSON.stringify(v)) continue;
      this.state.facts[k] = v;
      changed[k] = v;
    }
    if (Object.keys(changed).length > 0) {
      this.changed = true;
      this.emit({ type: "run.facts_changed", at: this.clock.now, data: { facts: changed, why } });
    }
  }

  /** Fires a stage event; returns why it was refused, or null when it moved the run. */
  stageEvent(name: string, reason?: string, actor?: string): KernelError | null {
    const ev = {
      type: `stage:${name}`,
      scope: this.scope(),
      at: this.clock.now,
      rand: this.clock.rand,
      ...(reason ? { reason } : {}),
      ...(actor ? { actor } : {}),
    } as RunEvent;
    const st = this.runStatus();
    if (FINAL_RUN_STATUSES.has(st)) return { code: RefusalCode.TerminalState, message: `the run is ${st}; ${name} does not apply` };
    if (this.sendRun(ev)) return null;
    const stage = this.runContext().stage;
    const candidates = this.cd.def.transitions.filter((t) => t.on === name && (t.from === stage || t.from === "*"));
    if (st !== "running") return { code: RefusalCode.IllegalTransition, message: `${name} is not accepted while the run is ${st}` };
    if (candidates.length === 0) return { code: RefusalCode.IllegalTransition, message: `no transition on ${name} from ${stage}` };
    return { code: RefusalCode.GuardFailed, message: `${name} from ${stage}: guard failed` };
  }

  // ── decisions ────────────────────────────────────────────────────────────

  policy(d: RunStepDef): RetryPolicy {
    return { ...this.cd.def.retry, ...workerRetry(this.state.worker), ...d.retry } as RetryPolicy;
  }

  /** How ready steps start: by themselves (`auto`, or an enabled task worker), or only when asked. */
  execution(): "auto" | "manual" {
    return this.state.worker?.enabled ? "auto" : this.cd.def.execution;
  }

  /** Whether a step's status keeps the run from going on (fails or blocks it). */
  private broken(d: RunStepDef): boolean {
    const s = this.status(d.id);
    if (s === "failed") return !d.optional && this.cd.def.onStepFailure !== "continue";
    return s === "blocked" && !d.optional;
  }

  /** Whether a step is done as far as its run is concerned (settled, or failed where failures are tolerated). */
  private done_(d: RunStepDef): boolean {
    const s = this.status(d.id);
    return SETTLED.has(s) || (s === "failed" && (d.optional || this.cd.def.onStepFailure === "continue"));
  }

  /** Whether every step of the run is done (none waits, runs or blocks it). */
  private idle(): boolean {
    return this.steps().every((d) => this.done_(d));
  }

  /** Where a step stands in the run's queue: its index, or where it was queued again. */
  private queueKey(d: RunStepDef): [number, number] {
    return this.state.requeued?.[d.id] ?? [d.index, -1];
  }

  timeout(id: string): { timeoutMs?: number } {
    const d = this.stepDef(id);
    return d?.timeoutMs ? { timeoutMs: d.timeoutMs } : {};
  }

  successDecision(d: RunStepDef): Decision {
    if (d.qa) return d.qa.auto ? "qa" : "needs_qa";
    if (d.approval) return "approval";
    return "done";
  }

  failureDecision(d: RunStepDef, s: StepContext, error: StepError | undefined): { decision: Decision; backoffMs?: number } {
    const p = this.policy(d);
    const retryable = (error?.retryable ?? true) && !p.nonRetryable.includes(error?.code ?? "");
    if (retryable && s.tries < p.maxAttempts) return { decision: "retry", backoffMs: backoffMs(p, s.tries, this.clock.rand) };
    return { decision: "fail" };
  }

  // ── settling ─────────────────────────────────────────────────────────────

  settle() {
    for (let round = 0; round < MAX_SETTLE_ROUNDS; round++) {
      // Settled: then where the run stands in its merge queue may move it once more.
      if (!this.settleOnce() && !this.mqAdvance() && !this.schedAdvance() && !this.intakeAdvance() && !this.reportEnd()) return;
    }
    throw new Error("the run did not settle (a loop of triggers or transitions)");
  }

  private settleOnce(): boolean {
    // Every stage entered again in this transition (two events can each re-enter one), in order.
    while (this.reentered.length > 0) {
      const stage = this.reentered.shift()!;
      let moved = false;
      for (const d of this.steps()) {
        if (d.stage !== stage) continue;
        const s = this.status(d.id);
        if (s === "completed" || s === "failed" || s === "skipped" || s === "blocked") {
          moved = this.sendStep(d.id, { type: "RESET", reason: "rework", at: this.clock.now, rand: this.clock.rand }) || moved;
        }
      }
      if (moved) return true;
    }
    const st = this.runStatus();
    if (FINAL_RUN_STATUSES.has(st)) {
      // A periodic run that ends ticks no more.
      const p = this.state.periodic;
      if (p?.timerId !== undefined) {
        this.effects.push({ kind: "timer", op: "cancel", timerId: p.timerId });
        this.state.periodic = periodicWithout(p);
        this.changed = true;
      }
      // Nor does a finished run look at its PR any more.
      this.disarmPoll();
      if (!this.pendingSettleSteps) return false;
      this.pendingSettleSteps = false;
      let moved = false;
      const all = [...this.steps().map((d) => d.id), ...(this.cd.planning ? [this.cd.planning.id] : [])];
      for (const id of all) {
        const s = this.status(id);
        if (s !== "cancelled" && !SETTLED.has(s) && s !== "failed") {
          moved = this.sendStep(id, { type: "CANCEL", reason: `run ${st}`, at: this.clock.now, rand: this.clock.rand }) || moved;
        }
      }
      return moved;
    }
    if (this.applyPlan()) return true;
    if (st === "planning") return this.settlePlanning();
    // A step run by hand while the run planned: once planned, the run runs (and a step that failed
    // meanwhile blocks it, as it would have).
    const startedWhilePlanning = st === "planned" ? this.steps().find((d) => this.status(d.id) !== "pending" && !SETTLED.has(this.status(d.id))) : undefined;
    if (startedWhilePlanning)
      return this.sendRun({
        type: "RUN_STEP",
        stepId: startedWhilePlanning.id,
        reason: "a step started while the run planned",
        at: this.clock.now,
        rand: this.clock.rand,
      });
    if (st === "pending" || st === "planned" || st === "paused" || st === "blocked" || st === "waiting") {
      // Work that is all done completes the run, whatever state it waits in (seed 004: "the
      // protocol completes when all steps are completed/cancelled"); one that follows its open PR waits for it.
      if (this.allWorkDone() && !this.followsPr())
        return this.sendRun({ type: "COMPLETE", result: this.lastOutput(), reason: "every step is done", at: this.clock.now, rand: this.clock.rand });
    }
    if (st === "blocked") {
      // Unblocked by resolving what blocked it (an approval, a skip, a manual completion).
      // Any step that failed or is blocked, in whatever stage, keeps the run blocked.
      const stillBroken = this.steps().some((d) => this.broken(d));
      return stillBroken ? false : this.sendRun({ type: "UNBLOCK", reason: "nothing blocks it any more", at: this.clock.now, rand: this.clock.rand });
    }
    // A run waiting for more work (not at a budget gate) goes on once there is some.
    if (st === "waiting" && (this.cd.def.whenDone === "wait" || this.cd.def.pullRequests?.follow) && this.runContext().gate === undefined && !this.idle())
      return this.sendRun({ type: "WAKE", reason: "a step is queued", at: this.clock.now, rand: this.clock.rand });
    if (st !== "running") return false;

    const stage = this.runContext().stage;
    const inStage = this.steps().filter((d) => d.stage === stage);
    const at = { at: this.clock.now, rand: this.clock.rand };

    // A failed or blocked step fails or blocks the run, whichever stage it belongs to.
    const broken = this.steps().find((d) => this.broken(d));
    if (broken) {
      const err = this.state.steps[broken.id]?.context.error?.message ?? `step ${broken.id} ${this.status(broken.id)}`;
      if (this.cd.def.onStepFailure === "block" || this.status(broken.id) === "blocked")
        return this.sendRun({ type: "BLOCKED", error: err, stepId: broken.id, ...at });
      return this.sendRun({ type: "FAIL", error: err, ...at });
    }
    // Every step done and the definition waits for more: the run waits (no work, no gate).
    if (this.cd.def.whenDone === "wait" && this.idle()) return this.sendRun({ type: "IDLE", reason: "every step is done", ...at });
    // …or for its open pull request to be merged or closed (`pullRequests.follow`).
    if (this.followsPr() && this.idle()) return this.sendRun({ type: "IDLE", reason: "every step is done: the pull request is open", ...at });
    const allSettled = inStage.every((d) => this.done_(d));
    if (allSettled && (inStage.length > 0 || !this.cd.def.dynamicSteps)) {
      if (this.sendRun({ type: "STAGE_DONE", result: this.lastOutput(stage), ...at })) return true;
    }
    if (this.execution() !== "auto") return false;

    let inflight = this.steps().filter((d) => ACTIVE.has(this.status(d.id))).length;
    let moved = false;
    // In queue order: a step queued again goes after those queued before it.
    const ordered = this.state.requeued ? [...inStage].sort((a, b) => cmpKey(this.queueKey(a), this.queueKey(b))) : inStage;
    for (const d of ordered) {
      if (inflight >= this.state.limits.maxConcurrentSteps) break;
      if (this.status(d.id) !== "pending") continue;
      if (!d.needs.every((n) => DONE_FOR_NEEDS.has(this.status(n)))) continue;
      // A merge starts once the PR is approved and green.
      if (this.mergeWaits(d)) continue;
      const refusal = this.guardBeforeStart(d);
      if (refusal) return refusal();
      if (this.sendStep(d.id, { type: "DISPATCH", reason: "auto", ...at, ...this.timeout(d.id) })) {
        moved = true;
        inflight++;
      }
    }
    return moved;
  }

  /**
   * The run's result when it completes: the output of the step that completed last (in the stage
   * that completes the run, else in any), forge steps left out.
   */
  private lastOutput(stage?: string): unknown {
    // What the run made, not the forge I/O that followed it (a PR's opening, its merge).
    const completed = this.steps().filter((d) => this.status(d.id) === "completed" && !isForgeStep(d));
    const pool = stage === undefined ? completed : completed.filter((d) => d.stage === stage);
    const last = (pool.length > 0 ? pool : completed).reduce<RunStepDef | undefined>((best, d) => {
      if (!best) return d;
      const a = this.state.steps[d.id]?.context.finishedAt ?? 0;
      const b = this.state.steps[best.id]?.context.finishedAt ?? 0;
      return a > b || (a === b && d.index > best.index) ? d : best;
    }, undefined);
    return last ? this.state.steps[last.id]?.context.output : undefined;
  }

  /** Whether every step has settled (there is at least one), in a definition without a stage graph. */
  private allWorkDone(): boolean {
    if (this.cd.def.transitions.length > 0 || this.cd.def.whenDone === "wait") return false;
    const all = this.steps();
    return all.length > 0 && all.every((d) => this.done_(d));
  }

  /** A finished planning step's steps are added once, whenever it finishes (even while paused). */
  private applyPlan(): boolean {
    const p = this.cd.planning;
    if (!p || !this.state.planning) return false;
    if (this.replan) {
      this.replan = false;
      const s = this.status(p.id);
      if (s !== "pending" && s !== "running" && s !== "retry_wait") {
        this.state.planApplied = false;
        if (s === "cancelled") this.state.planning = this.freshStep(p.id, -1);
        else this.sendStep(p.id, { type: "RESET", reason: "retry", at: this.clock.now, rand: this.clock.rand });
        return true;
      }
    }
    if (this.state.planApplied || this.status(p.id) !== "completed") return false;
    this.state.planApplied = true;
    this.changed = true;
    const planned = (this.state.planning.context.output as { steps?: unknown } | undefined)?.steps;
    if (Array.isArray(planned)) this.addSteps(planned as StepDefInput[], "planning");
    return true;
  }

  private settlePlanning(): boolean {
    const p = this.cd.planning;
    const at = { at: this.clock.now, rand: this.clock.rand };
    if (!p || !this.state.planning) return this.sendRun({ type: "PLANNED", ...at });
    const s = this.status(p.id);
    if (s === "pending" || s === "failed" || s === "cancelled" || s === "completed") {
      if (s === "completed") return this.sendRun({ type: "PLANNED", ...at });
      if (s === "failed") return this.sendRun({ type: "PLAN_FAILED", error: this.state.planning.context.error?.message ?? "planning failed", ...at });
      if (s === "pending" || s === "cancelled") {
        if (s === "cancelled") this.state.planning = this.freshStep(p.id, -1);
        return this.sendStep(p.id, { type: "DISPATCH", reason: "auto", ...at, ...this.timeout(p.id) });
      }
    }
    return false;
  }

  /** Loop guard and budgets before a step starts; returns the refusal to apply, if any. */
  private guardBeforeStart(d: RunStepDef): (() => boolean) | null {
    const at = { at: this.clock.now, rand: this.clock.rand };
    const { maxWallMs, maxSteps } = this.state.limits;
    if (maxWallMs !== undefined && this.clock.now > this.state.createdAt + maxWallMs) {
      return () => this.sendRun({ type: "FAIL", error: "wall_clock_exceeded", ...at });
    }
    if (maxSteps !== undefined && this.state.stepsCompleted >= maxSteps) {
      return () => this.sendRun({ type: "FAIL", error: "step_budget_exceeded", ...at });
    }
    const x = exhausted(this.state.ledger, this.state.budgets, this.state.extensions).find(
      (e) => e.budget.mode === "strict" && covers(e, { id: d.id, phase: d.phase, role: d.role }),
    );
    if (x) {
      return () => {
        const ext = this.state.extensions[x.key];
        const key = `${x.key}/${x.subject}${ext ? `+${ext.tokens}/${ext.costUsd}` : ""}`;
        if (!this.state.warned.includes(key)) {
          this.state.warned.push(key);
          this.emit({
            type: "budget.exceeded",
            at: this.clock.now,
            data: { budget: x.key, subject: x.subject, mode: x.budget.mode, usage: x.usage, limit: x.limit },
          });
        }
        return this.sendRun({ type: "GATE", gate: this.gateOf(x), ...at });
      };
    }
    return null;
  }

  private gateOf(x: ReturnType<typeof exhausted>[number]): Gate {
    // `phase:*(design)`: an untargeted budget names the phase, role or step that used it up.
    const named = x.budget.target === undefined && x.budget.scope !== "run";
    return { kind: "budget", budget: `${x.key}${named ? `(${x.subject})` : ""}`, usage: x.usage, limit: x.limit };
  }

  /** Books usage and applies budgets after a result. */
  book(d: RunStepDef, usage: Usage | undefined, model: string | undefined) {
    if (!usage) return;
    this.state.ledger = record(this.state.ledger, usage, {
      step: d.id,
      phase: d.phase,
      role: d.role,
      ...(model ? { model } : d.model ? { model: d.model } : {}),
    });
    // Recorded once per budget (and extension); a strict one gates the next step that it covers
    // (guardBeforeStart), so the step that used it up still completes, and a run with nothing left
    // to do still finishes.
    for (const x of exhausted(this.state.ledger, this.state.budgets, this.state.extensions)) {
      const ext = this.state.extensions[x.key];
      const key = `${x.key}/${x.subject}${ext ? `+${ext.tokens}/${ext.costUsd}` : ""}`;
      if (this.state.warned.includes(key)) continue;
      this.state.warned.push(key);
      this.emit({
        type: "budget.exceeded",
        at: this.clock.now,
        data: { budget: x.key, subject: x.subject, mode: x.budget.mode, usage: x.usage, limit: x.limit },
      });
    }
  }

  freshStep(id: string, index: number): Snap<StepContext> {
    // The step machine's initial context is its input plus constants: its initial snapshot, once,
    // with this step's input in place of the template's (what pureInitial would build, for less).
    FRESH ??= pureInitial<AnyMachineSnapshot>(stepMachine as never, { runId: "", stepId: "", index: 0, now: 0 })[0] as unknown as Snap<StepContext>;
    return { value: FRESH.value, context: { ...FRESH.context, runId: this.state.runId, stepId: id, index, now: this.clock.now } };
  }

  addSteps(input: StepDefInput[], why: string, replace = false): KernelError | null {
    const parsed: StepDef[] = [];
    /** Steps the run has, replaced (the last definition of each given). */
    const replaced = new Map<string, StepDef>();
    const existing = new Set(this.steps().map((s) => s.id));
    if (this.cd.planning) existing.add(this.cd.planning.id);
    const stageIds = new Set(this.cd.stages.map((s) => s.id));
    for (const raw of input) {
      const r = StepDef.safeParse(raw);
      if (!r.success)
        return { code: RefusalCode.Invalid, message: `invalid step: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}` };
      const s = r.data;
      if (existing.has(s.id)) {
        if (!replace || parsed.some((p) => p.id === s.id)) continue;
        if (!this.state.extraSteps.some((x) => x.id === s.id))
          return { code: RefusalCode.Invalid, message: `step ${s.id} is the definition's own: only a step the run brought or added can be replaced` };
        if (s.stage && !stageIds.has(s.stage)) return { code: RefusalCode.Invalid, message: `step ${s.id}: unknown stage '${s.stage}'` };
        for (const n of s.needs) if (!existing.has(n) || n === s.id) return { code: RefusalCode.Invalid, message: `step ${s.id} needs unknown step '${n}'` };
        replaced.set(s.id, s);
        continue;
      }
      if (s.stage && !stageIds.has(s.stage)) return { code: RefusalCode.Invalid, message: `step ${s.id}: unknown stage '${s.stage}'` };
      for (const n of s.needs)
        if (!existing.has(n) && !parsed.some((p) => p.id === n)) return { code: RefusalCode.Invalid, message: `step ${s.id} needs unknown step '${n}'` };
      parsed.push(s);
      existing.add(s.id);
    }
    const base = this.steps().length;
    // Steps are numbered by their index among every run's (seed 004: run number × MAX_RUN_STEPS + index).
    if (base + parsed.length > MAX_RUN_STEPS)
      return { code: RefusalCode.Invalid, message: `a run has at most ${MAX_RUN_STEPS} steps: it has ${base}, and ${parsed.length} more were added` };
    this.#steps = undefined;
    this.#byId = undefined;
    this.#origExtra = undefined;
    parsed.forEach((s, i) => {
      this.state.extraSteps.push(s);
      this.state.steps[s.id] = this.freshStep(s.id, base + i);
      // Steps a run is created with are listed in run.created; later additions are events of their own.
      if (!this.#creating) this.emit({ type: "step.added", at: this.clock.now, data: { stepId: s.id, index: base + i, role: s.role, type: s.type, why } });
    });
    if (parsed.length > 0) this.changed = true;
    for (const s of replaced.values()) this.requeue(s, why);
    return null;
  }

  /**
   * A step the run brought or added, replaced by a new definition of it and queued again: pending,
   * as if just added (its attempt, when it had one in flight, withdrawn; its output and metadata
   * gone), and last in the run's queue order. Its attempt numbers go on from where they were, so a
   * late result of an earlier attempt is still recognised and ignored.
   */
  private requeue(s: StepDef, why: string) {
    const at = { at: this.clock.now, rand: this.clock.rand };
    const from = this.status(s.id);
    if (ACTIVE.has(from) || from === "needs_qa" || from === "waiting_approval") this.sendStep(s.id, { type: "CANCEL", reason: "queued again", ...at });
    const i = this.state.extraSteps.findIndex((x) => x.id === s.id);
    this.state.extraSteps[i] = s;
    this.#steps = undefined;
    this.#byId = undefined;
    this.#origExtra = undefined;
    const d = this.stepDef(s.id)!;
    const attempt = this.snapOf(s.id)?.context.attempt ?? 0;
    const fresh = this.freshStep(s.id, d.index);
    this.state.steps[s.id] = { value: fresh.value, context: { ...fresh.context, attempt } };
    if (this.state.stepMetadata?.[s.id]) {
      const { [s.id]: _gone, ...rest } = this.state.stepMetadata;
      this.state.stepMetadata = rest;
    }
    const n = this.state.requeues ?? 0;
    this.state.requeued = { ...this.state.requeued, [s.id]: [this.steps().length - 1, n] };
    this.state.requeues = n + 1;
    this.changed = true;
    this.emit({ type: "step.requeued", at: this.clock.now, data: { stepId: s.id, index: d.index, role: s.role, type: s.type, from, why } });
  }

  // ── the action ───────────────────────────────────────────────────────────

  apply(action: KernelAction): KernelError | null {
    switch (action.type) {
      case "result":
        this.result(action);
        this.flushUsage();
        return null;
      case "timer":
        this.timer(action);
        return null;
      case "signal":
        return this.signal(action.signal, action.actor, action.reason);
    }
  }

  private result(given: Extract<KernelAction, { type: "result" }>) {
    let r = given;
    const d = this.stepDef(r.stepId);
    const snap = this.snapOf(r.stepId);
    if (!d || !snap) {
      this.emit({ type: "step.result_ignored", at: this.clock.now, data: { stepId: r.stepId, attemptId: r.attemptId, why: "unknown step" } });
      this.changed = true;
      return;
    }
    const at = { at: this.clock.now, rand: this.clock.rand };
    const s = snap.context;
    this.pendingUsage = { d, usage: r.usage, model: r.model };
    if (r.kind === "qa") {
      const decision: Decision = r.ok ? (d.approval ? "approval" : "done") : "fail";
      this.sendStep(r.stepId, {
        type: "QA_RESULT",
        attemptId: r.attemptId,
        ok: r.ok,
        decision,
        ...(r.output !== undefined ? { output: r.output } : {}),
        ...(r.error ? { error: r.error } : {}),
        ...(r.usage ? { usage: r.usage } : {}),
        ...(decision === "approval"
          ? { revision: revisionOf(s.output, s.attempt), ...(d.approval?.timeoutMs ? { approvalTimeoutMs: d.approval.timeoutMs } : {}) }
          : {}),
        ...at,
      }) || this.ignored(r);
      return;
    }
    // A forge step's output is checked, and what it did recorded, with its completion.
    let merged: PrMergeOutput | undefined;
    let readied = false;
    if (r.ok && r.kind === "execute" && this.status(r.stepId) === "running" && attemptIdOf(s) === r.attemptId) {
      if (d.type === ForgeStepType.Open) {
        const out = PrOpenOutput.safeParse(r.output);
        if (out.success) this.recordOpened(out.data.pullRequest, { created: out.data.created, stepId: d.id });
        else r = { ...r, ok: false, error: invalidOutput(d.type, out.error) };
      } else if (d.type === ForgeStepType.Merge) {
        const out = PrMergeOutput.safeParse(r.output);
        if (!out.success) r = { ...r, ok: false, error: invalidOutput(d.type, out.error) };
        else if (!out.data.merged)
          r = {
            ...r,
            ok: false,
            error: { code: "NOT_MERGED", message: `the pull request was not merged: ${out.data.message ?? "the host refused"}`, retryable: false },
          };
        else merged = out.data;
      } else if (d.type === ForgeStepType.Ready) {
        const out = PrReadyOutput.safeParse(r.output);
        if (!out.success) r = { ...r, ok: false, error: invalidOutput(d.type, out.error) };
        else if (!out.data.ready)
          r = {
            ...r,
            ok: false,
            error: {
              code: "NOT_READY",
              message: `the pull request was not marked ready for review: ${out.data.message ?? "the host refused"}`,
              retryable: false,
            },
          };
        else readied = true;
      }
    }
    const next = r.ok ? { decision: this.successDecision(d) } : this.failureDecision(d, s, r.error);
    const sent = this.sendStep(r.stepId, {
      type: "RESULT",
      attemptId: r.attemptId,
      ok: r.ok,
      ...next,
      ...(r.output !== undefined ? { output: r.output } : {}),
      ...(r.ok ? { revision: revisionOf(r.output, s.attempt) } : {}),
      ...(r.notes ? { notes: r.notes } : {}),
      ...(r.error ? { error: r.error } : {}),
      ...(r.usage ? { usage: r.usage } : {}),
      ...(d.approval?.timeoutMs ? { approvalTimeoutMs: d.approval.timeoutMs } : {}),
      ...at,
    });
    if (!sent) this.ignored(r);
    else if (readied) this.recordReady(d.id);
    else if (merged)
      this.pullRequest(
        { name: "pr_merged", ...(this.state.pr?.record.number ? { number: this.state.pr.record.number } : {}) },
        undefined,
        `merged by step ${d.id}`,
        merged.sha,
      );
  }

  private pendingUsage: { d: RunStepDef; usage: Usage | undefined; model: string | undefined } | undefined;

  /** Books the usage of the result just applied (after the step has moved on). */
  flushUsage() {
    const u = this.pendingUsage;
    this.pendingUsage = undefined;
    if (u) this.book(u.d, u.usage, u.model);
  }

  private ignored(r: { stepId: string; attemptId: string }): boolean {
    this.emit({ type: "step.result_ignored", at: this.clock.now, data: { stepId: r.stepId, attemptId: r.attemptId } });
    this.changed = true;
    return true;
  }

  private timer(t: Extract<KernelAction, { type: "timer" }>) {
    const at = { at: this.clock.now, rand: this.clock.rand };
    switch (t.kind) {
      case "wall_clock":
        this.sendRun({ type: "WALL_CLOCK", timerId: t.timerId, ...at });
        return;
      case "retry":
        if (t.stepId) this.sendStep(t.stepId, { type: "RETRY_TIMER", timerId: t.timerId, ...at, ...this.timeout(t.stepId) });
        return;
      case "step_timeout": {
        if (!t.stepId) return;
        const d = this.stepDef(t.stepId);
        const s = this.snapOf(t.stepId);
        if (!d || !s) return;
        const err: StepError = { code: "STEP_TIMEOUT", message: `step ${t.stepId} timed out after ${d.timeoutMs} ms`, retryable: true };
        const next = this.failureDecision(d, s.context, err);
        this.sendStep(t.stepId, { type: "TIMEOUT", timerId: t.timerId, error: err, ...next, ...at });
        return;
      }
      case "approval_timeout":
        if (t.stepId) this.sendStep(t.stepId, { type: "APPROVAL_TIMEOUT", timerId: t.timerId, ...at });
        return;
      case "tick":
        if (this.state.schedule) this.schedTick(t.timerId);
        else this.tick(t.timerId);
        return;
      case "pr_poll":
        this.pollFired(t.timerId);
        return;
      case "intake_sync":
        this.intakeSyncFired(t.timerId);
        return;
      case "intake_write":
        this.intakeWriteFired(t.timerId);
        return;
      case "command":
        // Its firing is its command, sent elsewhere: nothing comes back to this run.
        return;
    }
  }

  /** The step that started last (retry_latest's candidate); with `work`, not counting forge steps (what CI and reviews are about). */
  private latestStarted(work = false): RunStepDef | undefined {
    const ran = this.steps().filter((d) => (this.state.steps[d.id]?.context.attempt ?? 0) > 0 && !(work && isForgeStep(d)));
    ran.sort((a, b) => (this.state.steps[a.id]!.context.startedAt ?? 0) - (this.state.steps[b.id]!.context.startedAt ?? 0) || a.index - b.index);
    return ran.at(-1);
  }

  private refuse(code: RefusalCode, message: string): KernelError {
    return { code, message };
  }

  private signal(sig: Signal, actor?: string, reason?: string): KernelError | null {
    const at = { at: this.clock.now, rand: this.clock.rand, ...(actor ? { actor } : {}), ...(reason ? { reason } : {}) };
    const st = this.runStatus();
    const final = FINAL_RUN_STATUSES.has(st);
    const stepAt = { at: this.clock.now, rand: this.clock.rand };
    const runEvent = (e: RunEvent, refusal: string): KernelError | null =>
      this.sendRun(e) ? null : this.refuse(final ? RefusalCode.TerminalState : RefusalCode.IllegalTransition, refusal);

    switch (sig.name) {
      case "start":
        return runEvent({ type: "START", ...at }, `the run is ${st}: it is already running or terminal`);
      case "pause":
        if (st === "paused") return null;
        return runEvent({ type: "PAUSE", ...at }, `the run is ${st}: it cannot be paused`);
      case "resume":
        return runEvent({ type: "RESUME", ...at }, `the run is ${st}: it is not paused`);
      case "cancel":
        if (final) return null;
        return runEvent({ type: "CANCEL", ...at }, `the run is ${st}`);
      case "abort":
        return runEvent({ type: "ABORT", ...at }, `the run is ${st}: nothing to abort (it is not waiting at a budget gate)`);
      case "extend_budget": {
        if (st !== "waiting")
          return this.refuse(final ? RefusalCode.TerminalState : RefusalCode.IllegalTransition, `the run is ${st}: there is no budget gate to extend`);
        const gate = this.runContext().gate;
        const key = gate?.budget.replace(/\(.*\)$/, "") ?? "run:*";
        const b = this.state.budgets.find((x) => budgetKey(x) === key);
        const add = { tokens: sig.tokens ?? b?.tokens ?? 0, costUsd: sig.costUsd ?? b?.costUsd ?? 0 };
        const prev = this.state.extensions[key] ?? { tokens: 0, costUsd: 0 };
        this.state.extensions[key] = { tokens: prev.tokens + add.tokens, costUsd: prev.costUsd + add.costUsd };
        this.emit({ type: "budget.extended", at: this.clock.now, data: { budget: key, ...add, ...(actor ? { actor } : {}), ...(reason ? { reason } : {}) } });
        return runEvent({ type: "EXTEND", ...at }, "cannot extend");
      }
      case "run_next_step":
      case "retry_latest":
      case "run_step": {
        // A step named by hand may run while the run plans (seed 004: a step runs from pending,
        // blocked or failed, whatever its protocol is doing); the run goes on planning, then runs.
        const whilePlanning = st === "planning" && sig.name === "run_step";
        // retry_latest says first whether there is anything to retry, whatever the run's state (seed
        // 004: 404 "No failed or blocked steps to retry", also for a protocol that completed).
        const latest = sig.name === "retry_latest" ? this.latestStarted() : undefined;
        if (sig.name === "retry_latest" && (!latest || !["failed", "blocked"].includes(this.status(latest.id))))
          return this.refuse(RefusalCode.NotFound, "No failed or blocked steps to retry");
        if (final || (st === "planning" && !whilePlanning))
          return this.refuse(final ? RefusalCode.TerminalState : RefusalCode.IllegalTransition, `the run is ${st}`);
        if (st === "waiting" && this.runContext().gate)
          return this.refuse(RefusalCode.BudgetGate, "the run waits at a budget gate: extend_budget or abort first");
        let id: string | undefined;
        if (sig.name === "run_next_step") {
          id = this.steps().find((d) => ["pending", "blocked", "failed"].includes(this.status(d.id)))?.id;
          if (!id) return this.refuse(RefusalCode.NotFound, "No pending or failed steps to run");
        } else if (sig.name === "retry_latest") {
          id = latest!.id;
        } else {
          id = sig.stepId;
          if (!this.stepDef(id)) return this.refuse(RefusalCode.NotFound, `no step '${id}'`);
          if (!["pending", "blocked", "failed"].includes(this.status(id)))
            return this.refuse(RefusalCode.IllegalTransition, "Step already running or completed");
        }
        const held = this.forgeHold(this.stepDef(id)!);
        if (held && this.status(id) !== "pending" && !("skip" in held)) return this.refuse(RefusalCode.IllegalTransition, held.fail);
        // A manual start passes the same loop guard and budgets as an automatic one: a used-up strict
        // budget opens the gate (the run waits) instead of starting the step.
        const refusal = this.guardBeforeStart(this.stepDef(id)!);
        if (refusal && whilePlanning) return this.refuse(RefusalCode.GuardFailed, "the run's limits or budgets let no other step start while it plans");
        if (refusal) {
          if (st !== "running") this.sendRun({ type: "RUN_STEP", stepId: id, ...at });
          refusal();
          return null;
        }
        const hint = sig.name === "run_step" || sig.name === "retry_latest" ? sig.feedback : undefined;
        this.sendStep(id, { type: "DISPATCH", reason: "manual", ...stepAt, ...this.timeout(id), ...(hint !== undefined ? { hint } : {}) });
        this.sendRun({ type: "RUN_STEP", stepId: id, ...at });
        return null;
      }
      case "run_qa": {
        if (!this.stepDef(sig.stepId)) return this.refuse(RefusalCode.NotFound, `no step '${sig.stepId}'`);
        const s = this.status(sig.stepId);
        if (s === "completed" || s === "cancelled" || final) return this.refuse(RefusalCode.IllegalTransition, "Step already completed or cancelled");
        if (!this.sendStep(sig.stepId, { type: "RUN_QA", ...stepAt }))
          return this.refuse(RefusalCode.IllegalTransition, `step ${sig.stepId} is ${s}: QA cannot start now`);
        return null;
      }
      case "approve":
      case "reject": {
        if (final) return this.refuse(RefusalCode.TerminalState, `the run is ${st}`);
        if (sig.name === "approve" && sig.force) {
          if (!sig.stepId || !this.stepDef(sig.stepId)) return this.refuse(RefusalCode.NotFound, `no step '${sig.stepId ?? ""}'`);
          if (this.status(sig.stepId) === "completed") return null;
          if (
            !this.sendStep(sig.stepId, {
              type: "APPROVE",
              force: true,
              ...stepAt,
              ...(actor ? { actor } : {}),
              ...(reason ? { reason } : {}),
              ...(sig.output !== undefined ? { output: sig.output } : {}),
            })
          ) {
            return this.refuse(RefusalCode.IllegalTransition, `step ${sig.stepId} is ${this.status(sig.stepId)}`);
          }
          return null;
        }
        const id = sig.stepId ?? this.steps().find((d) => this.status(d.id) === "waiting_approval")?.id;
        if (!id) return this.refuse(final ? RefusalCode.TerminalState : RefusalCode.IllegalTransition, "nothing is waiting for approval");
        if (!this.stepDef(id)) return this.refuse(RefusalCode.NotFound, `no step '${id}'`);
        if (this.status(id) !== "waiting_approval")
          return this.refuse(RefusalCode.IllegalTransition, `step ${id} is ${this.status(id)}, not waiting for approval`);
        const current = this.state.steps[id]!.context.revision;
        if (sig.revision !== undefined && sig.revision !== current) {
          return this.refuse(RefusalCode.StaleRevision, `revision ${sig.revision} of step ${id} is not the current one (${current ?? "none"})`);
        }
        if (sig.name === "approve") {
          this.sendStep(id, {
            type: "APPROVE",
            ...stepAt,
            ...(actor ? { actor } : {}),
            ...(reason ? { reason } : {}),
            ...(sig.output !== undefined ? { output: sig.output } : {}),
          });
        } else {
          const d = this.stepDef(id)!;
          const rework = this.state.steps[id]!.context.reworks < (d.approval?.maxReworks ?? 0);
          this.sendStep(id, { type: "REJECT", rework, ...stepAt, ...(actor ? { actor } : {}), ...(reason ? { reason } : {}) });
        }
        return null;
      }
      case "complete_step":
      case "fail_step": {
        if (final) return this.refuse(RefusalCode.TerminalState, `the run is ${st}`);
        const id = sig.stepId ?? this.steps().find((d) => this.status(d.id) === "running")?.id;
        if (!id) return this.refuse(RefusalCode.IllegalTransition, "no step is running");
        const d = this.stepDef(id);
        if (!d) return this.refuse(RefusalCode.NotFound, `no step '${id}'`);
        // A step waiting for QA can be failed from outside too (seed 004: CI failed; needs_qa → failed).
        const failable = sig.name === "fail_step" && this.status(id) === "needs_qa";
        if (this.status(id) !== "running" && !failable) return this.refuse(RefusalCode.IllegalTransition, `step ${id} is ${this.status(id)}, not running`);
        if (sig.name === "complete_step") {
          const decision = this.successDecision(d);
          const attempt = this.state.steps[id]!.context.attempt;
          this.sendStep(id, {
            type: "COMPLETE",
            decision,
            revision: revisionOf(sig.output, attempt),
            ...(sig.output !== undefined ? { output: sig.output } : {}),
            ...(actor ? { actor } : {}),
            ...(d.approval?.timeoutMs ? { approvalTimeoutMs: d.approval.timeoutMs } : {}),
            ...stepAt,
          });
        } else {
          this.sendStep(id, { type: "FAIL", error: { code: "FAILED", message: sig.error, retryable: false }, ...stepAt, ...(actor ? { actor } : {}) });
          if (sig.block) this.sendRun({ type: "BLOCKED", error: sig.error, stepId: id, ...at });
        }
        return null;
      }
      case "block_step": {
        if (final) return this.refuse(RefusalCode.TerminalState, `the run is ${st}`);
        const pick = (st: StepStatus) => this.steps().find((d) => this.status(d.id) === st)?.id;
        const id = sig.stepId ?? pick("running") ?? pick("retry_wait") ?? pick("pending");
        if (!id || !this.stepDef(id)) return this.refuse(RefusalCode.NotFound, sig.stepId ? `no step '${sig.stepId}'` : "no step to block");
        if (!this.sendStep(id, { type: "BLOCK", ...stepAt, ...(reason ? { reason } : {}) })) {
          return this.refuse(RefusalCode.IllegalTransition, `step ${id} is ${this.status(id)}: it cannot be blocked`);
        }
        return null;
      }
      case "skip_step": {
        if (!this.stepDef(sig.stepId)) return this.refuse(RefusalCode.NotFound, `no step '${sig.stepId}'`);
        if (!this.sendStep(sig.stepId, { type: "SKIP", ...stepAt, ...(reason ? { reason } : {}) })) {
          return this.refuse(
            RefusalCode.IllegalTransition,
            `step ${sig.stepId} is ${this.status(sig.stepId)}: only a pending, failed or blocked step can be skipped`,
          );
        }
        return null;
      }
      case "event": {
        if (sig.facts) this.setFacts(sig.facts, actor ? `set by ${actor} with ${sig.event}` : `set with ${sig.event}`);
        const refused = this.stageEvent(sig.event, reason, actor);
        // A refused event leaves facts as they were too: nothing changes.
        if (!refused) this.prAdvance(actor);
        return refused;
      }
      case "set_facts":
        if (final) return this.refuse(RefusalCode.TerminalState, `the run is ${st}`);
        this.setFacts(sig.facts, actor ? `set by ${actor}` : "set");
        return null;
      case "add_steps": {
        if (!this.cd.def.dynamicSteps) return this.refuse(RefusalCode.IllegalTransition, `definition ${this.cd.key} does not take added steps`);
        if (final) return this.refuse(RefusalCode.TerminalState, `the run is ${st}`);
        return this.addSteps(sig.steps as StepDefInput[], actor ? `added by ${actor}` : "added", sig.replace === true);
      }
      case "open_pr": {
        if (final) return this.refuse(RefusalCode.TerminalState, `the run is ${st}`);
        if (!this.cd.def.dynamicSteps) return this.refuse(RefusalCode.IllegalTransition, `definition ${this.cd.key} does not take added steps`);
        let id = "open_pr";
        for (let k = 2; this.stepDef(id); k++) id = `open_pr_${k}`;
        const step: StepDefInput = {
          id,
          title: sig.title ?? "Open PR/MR",
          role: "maintainer",
          type: ForgeStepType.Open,
          ...(sig.payload ? { payload: sig.payload } : {}),
          ...(sig.inputs ? { inputs: sig.inputs } : {}),
        } as StepDefInput;
        // Both or neither: a refused start returns the run as it was (applyAction).
        return this.addSteps([step], actor ? `added by ${actor}` : "added") ?? this.signal({ name: "run_step", stepId: id }, actor, reason);
      }
      case "withdraw_step": {
        if (!this.stepDef(sig.stepId)) return this.refuse(RefusalCode.NotFound, `no step '${sig.stepId}'`);
        // Already out of the way (done, skipped, cancelled, or its run ended): nothing to do.
        const s = this.status(sig.stepId);
        const why = { reason: reason ?? "withdrawn" };
        if (s === "pending" || s === "failed" || s === "blocked") this.sendStep(sig.stepId, { type: "SKIP", ...stepAt, ...why });
        else if (ACTIVE.has(s) || s === "needs_qa" || s === "waiting_approval") this.sendStep(sig.stepId, { type: "CANCEL", ...stepAt, ...why });
        return null;
      }
      case "set_step_metadata": {
        if (!this.stepDef(sig.stepId)) return this.refuse(RefusalCode.NotFound, `no step '${sig.stepId}'`);
        const prev = this.state.stepMetadata?.[sig.stepId] ?? {};
        const next = { ...prev, ...sig.metadata };
        if (JSON.stringify(next) === JSON.stringify(prev)) return null;
        this.state.stepMetadata = { ...this.state.stepMetadata, [sig.stepId]: next };
        this.changed = true;
        this.emit({ type: "step.metadata_set", at: this.clock.now, data: { stepId: sig.stepId, metadata: sig.metadata, ...(actor ? { actor } : {}) } });
        return null;
      }
      case "set_schedule":
        return this.setSchedule(sig, actor);
      case "schedule_set":
      case "schedule_trigger":
      case "schedule_backfill":
        return this.scheduleSignal(sig, actor);
      case "child_ended":
        return this.state.intake ? this.intakeChildEnded(sig) : this.childEnded(sig);
      case "set_intake":
      case "tickets_synced":
        return this.intakeSignal(sig, actor);
      case "ticket_write_failed":
      case "ticket_written":
        return this.intakeWriteSignal(sig);
      case "ci_report":
        return this.ciReport(sig, actor, reason);
      case "pr_opened":
      case "pr_closed":
      case "pr_merged":
        return this.pullRequest(sig, actor, reason);
      case "review_report":
        return this.reviewReport(sig, actor, reason);
      case "mq_enqueue":
      case "mq_leave":
        return this.queueSignal(sig, actor);
      case "mq_turn":
        return this.mqTurn(sig.queue);
      case "mq_updated":
        return this.mqUpdated(sig, actor);
    }
  }

  // ── periodic runs ──────────────────────────────────────────────────────

  /**
   * `set_schedule`: a periodic run's interval and the run each tick creates, or off. The same
   * schedule again changes nothing; a new one withdraws the armed tick and arms the current slot's
   * (which fires at once: a slot whose run exists already is not created again).
   */
  private setSchedule(sig: Extract<Signal, { name: "set_schedule" }>, actor?: string): KernelError | null {
    if (!this.cd.def.periodic) return this.refuse(RefusalCode.IllegalTransition, `definition ${this.cd.key} does not tick`);
    const st = this.runStatus();
    if (FINAL_RUN_STATUSES.has(st)) return this.refuse(RefusalCode.TerminalState, `the run is ${st}`);
    if (sig.enabled && (sig.everyMs === undefined || sig.creates === undefined))
      return this.refuse(RefusalCode.Invalid, "an enabled schedule needs everyMs and creates");
    const want: PeriodicState = {
      enabled: sig.enabled,
      ...(sig.everyMs !== undefined ? { everyMs: sig.everyMs } : {}),
      ...(sig.creates !== undefined ? { creates: sig.creates } : {}),
    };
    const prev = this.state.periodic;
    if (prev && JSON.stringify(periodicWithout(prev)) === JSON.stringify(want)) return null;
    if (prev?.timerId !== undefined) this.effects.push({ kind: "timer", op: "cancel", timerId: prev.timerId });
    this.state.periodic = want;
    this.changed = true;
    let next: number | undefined;
    if (want.enabled) next = this.armTick(Math.floor(this.clock.now / want.everyMs!));
    this.emit({
      type: "schedule.set",
      at: this.clock.now,
      data: {
        enabled: want.enabled,
        ...(want.everyMs !== undefined ? { everyMs: want.everyMs } : {}),
        ...(next !== undefined ? { next } : {}),
        ...(actor ? { actor } : {}),
      },
    });
    return null;
  }

  /** Arms the tick of `slot` (due when the slot starts, or now); returns when it is due. */
  private armTick(slot: number): number {
    const p = this.state.periodic!;
    const every = p.everyMs!;
    const timerId = `${this.state.runId}.tick.${every}.${slot}`;
    const dueAt = Math.max(slot * every, this.clock.now);
    this.effects.push({ kind: "timer", op: "set", timerId, dueAt, timerKind: "tick" });
    this.state.periodic = { ...p, slot, timerId };
    return dueAt;
  }

  /**
   * A tick: the slot's run is created (a `command` timer, due now, carries its create: the run id and
   * the command id follow from the slot, so however often it is sent, it is created once), and the
   * next slot's tick is armed (slots missed while nothing fired are skipped: the current one is next).
   */
  private tick(timerId: string) {
    const p = this.state.periodic;
    if (!p?.enabled || p.timerId !== timerId || p.slot === undefined || !p.everyMs || !p.creates) return;
    const { slot, everyMs: every, creates } = p;
    const runId = periodicRunId(this.state.runId, every, slot);
    const scope = { slot, at: slot * every, runId, everyMs: every, schedule: this.state.runId };
    const t = resolveTemplate(creates, scope) as RunTemplate;
    const command: Record<string, unknown> = {
      type: "run.create",
      commandId: `create:${runId}`,
      runId,
      issuedAt: this.clock.now,
      actor: "schedule",
      projectId: this.state.projectId,
      definition: t.definition,
      ...(t.title !== undefined ? { title: t.title } : {}),
      ...(t.labels !== undefined ? { labels: t.labels } : {}),
      ...(t.input !== undefined ? { input: t.input } : {}),
      ...(t.steps !== undefined ? { steps: t.steps } : {}),
      ...(t.facts !== undefined ? { facts: t.facts } : {}),
      autoStart: true,
      mode: t.mode ?? "mock",
    };
    this.effects.push({
      kind: "timer",
      op: "set",
      timerId: `${this.state.runId}.create.${every}.${slot}`,
      dueAt: this.clock.now,
      timerKind: "command",
      command,
    });
    this.changed = true;
    this.emit({ type: "schedule.ticked", at: this.clock.now, data: { slot, everyMs: every, runId, lateMs: Math.max(0, this.clock.now - slot * every) } });
    this.armTick(Math.max(slot + 1, Math.floor(this.clock.now / every)));
  }

  // ── schedules ──────────────────────────────────────────────────────────
  //
  // A schedule run (`schedule` definitions) keeps one timer armed for its next due time while it is
  // neither paused nor ended (`schedAdvance`, after every action). Its tick fires the due times that
  // came (catch-up decides which of those it missed), each through the overlap policy; a firing is
  // a `run.create` sent through a `command` timer, its run id and command id made from the schedule
  // and the due time, so a tick fired twice, a redelivered command or a restarted core creates it once.

  private scheduleSignal(sig: Extract<Signal, { name: "schedule_set" | "schedule_trigger" | "schedule_backfill" }>, actor?: string): KernelError | null {
    const s = this.state.schedule;
    if (!s) return this.refuse(RefusalCode.IllegalTransition, `${sig.name}: run ${this.state.runId} is not a schedule`);
    const st = this.runStatus();
    if (FINAL_RUN_STATUSES.has(st)) return this.refuse(RefusalCode.TerminalState, `the schedule is ${st}`);
    const by = actor ? { actor } : {};
    switch (sig.name) {
      case "schedule_set": {
        let spec: ScheduleSpec;
        try {
          spec = parseScheduleSpec(sig.spec);
        } catch (err) {
          return this.refuse(RefusalCode.Invalid, (err as Error).message);
        }
        if (hashJson(spec) === hashJson(s.spec)) return null;
        if (s.timerId !== undefined) this.effects.push({ kind: "timer", op: "cancel", timerId: s.timerId });
        const { nextAt: _n, timerId: _t, ...rest } = s;
        this.state.schedule = { ...rest, spec, gen: s.gen + 1 };
        this.changed = true;
        this.emit({ type: "schedule.updated", at: this.clock.now, data: { spec, ...by } });
        return null;
      }
      case "schedule_trigger":
        this.schedCreate(this.clock.now, true, actor);
        return null;
      case "schedule_backfill": {
        // Only due times the schedule has passed: what is still to come is its timer's.
        const to = Math.min(sig.to, this.clock.now, (s.nextAt ?? this.clock.now + 1) - 1);
        if (sig.from > sig.to) return this.refuse(RefusalCode.Invalid, "backfill: from is after to");
        const { times, more } = dueBetween(s.spec, sig.from, to, MAX_BACKFILL);
        if (more) return this.refuse(RefusalCode.Invalid, `backfill: more than ${MAX_BACKFILL} due times in the range`);
        for (const t of times) this.schedCreate(t, false, actor, true);
        this.changed = true;
        this.emit({ type: "schedule.backfilled", at: this.clock.now, data: { from: sig.from, to, count: times.length, ...by } });
        return null;
      }
    }
  }

  /** The armed due time came: fire what catch-up says of the due times since, then arm the next. */
  private schedTick(timerId: string) {
    const s = this.state.schedule;
    if (!s || s.timerId !== timerId || s.nextAt === undefined) return;
    const { spec } = s;
    const now = this.clock.now;
    const { times, more } = dueBetween(spec, s.nextAt, Math.max(now, s.nextAt), spec.catchUpMax);
    const late = (t: number) => now - t > spec.jitterMs + LATE_GRACE_MS;
    const fire = spec.catchUp === "all" ? times : spec.catchUp === "one" ? times.slice(-1) : times.filter((t) => !late(t));
    const passed = times.filter((t) => !fire.includes(t));
    this.state.schedule = { ...s, lastAt: times[times.length - 1] ?? s.nextAt };
    delete this.state.schedule.nextAt;
    delete this.state.schedule.timerId;
    this.changed = true;
    if (passed.length > 0 || more)
      this.emit({
        type: "schedule.missed",
        at: now,
        data: { policy: spec.catchUp, count: passed.length, more, ...(passed.length ? { first: passed[0], last: passed[passed.length - 1] } : {}) },
      });
    this.state.schedule.skipped += passed.length;
    for (const t of fire) this.schedFire(t);
    // The next due time is armed by schedAdvance (after the latest one considered here).
  }

  /** A due time fires: through the overlap policy while a run it created is still going. */
  private schedFire(at: number) {
    const s = this.state.schedule!;
    const live = s.active.filter((a) => !a.cancelling);
    if (live.length > 0) {
      const ids = live.map((a) => a.runId);
      switch (s.spec.overlap) {
        case "skip":
          this.state.schedule = { ...s, skipped: s.skipped + 1 };
          this.emit({ type: "schedule.skipped", at: this.clock.now, data: { scheduledAt: at, reason: "overlap", active: ids } });
          return;
        case "queue":
          if (s.queued.length >= s.spec.queueMax) {
            this.state.schedule = { ...s, skipped: s.skipped + 1 };
            this.emit({ type: "schedule.skipped", at: this.clock.now, data: { scheduledAt: at, reason: "queue_full", active: ids } });
          } else {
            this.state.schedule = { ...s, queued: [...s.queued, at] };
            this.emit({ type: "schedule.queued", at: this.clock.now, data: { scheduledAt: at, active: ids } });
          }
          return;
        case "cancel_previous":
          for (const a of live)
            this.commandTo({
              type: "run.signal",
              commandId: `sched-cancel.${a.runId}`,
              runId: a.runId,
              issuedAt: this.clock.now,
              actor: "schedule",
              signal: { name: "cancel" },
              reason: `schedule ${this.state.runId}: the next due time came`,
            });
          this.state.schedule = { ...s, active: s.active.map((a) => (a.cancelling ? a : { ...a, cancelling: true })) };
          this.emit({ type: "schedule.cancelled_previous", at: this.clock.now, data: { scheduledAt: at, cancelled: ids } });
          break;
        case "allow":
          break;
      }
    }
    this.schedCreate(at, false);
  }

  /**
   * Creates the run of due time `at` (or, by hand, of now): labelled with the schedule and the due
   * time, told to report its end here. A backfilled run is not followed (it may exist already, ended).
   */
  private schedCreate(at: number, byHand: boolean, actor?: string, backfill = false) {
    const s = this.state.schedule!;
    const runId = scheduledRunId(this.state.runId, at, byHand);
    const scheduledAt = new Date(at).toISOString();
    // `slot` (intervals only): the interval's number since the epoch, as a periodic run (version 1) gave it.
    const slot = s.spec.everyMs !== undefined ? Math.floor(at / s.spec.everyMs) : undefined;
    const scope = { at, scheduledAt, runId, schedule: this.state.runId, ...(slot !== undefined ? { slot } : {}) };
    const t = resolveTemplate(s.spec.creates, scope) as ScheduleSpec["creates"];
    this.commandTo({
      type: "run.create",
      commandId: `create:${runId}`,
      runId,
      issuedAt: this.clock.now,
      actor: actor ?? "schedule",
      projectId: this.state.projectId,
      definition: t.definition,
      title: t.title ?? `${this.state.runId} @ ${scheduledAt}`,
      labels: { ...t.labels, [SCHEDULE_LABEL]: this.state.runId, [SCHEDULED_AT_LABEL]: scheduledAt },
      ...(t.input !== undefined ? { input: t.input } : {}),
      ...(t.steps !== undefined ? { steps: t.steps } : {}),
      ...(t.facts !== undefined ? { facts: t.facts } : {}),
      autoStart: true,
      mode: t.mode ?? "mock",
      ...(backfill ? {} : { reportTo: this.state.runId }),
    });
    const next = this.state.schedule!;
    this.state.schedule = {
      ...next,
      fired: next.fired + 1,
      ...(backfill ? {} : { active: [...next.active, { runId, at }] }),
    };
    this.emit({
      type: "schedule.fired",
      at: this.clock.now,
      data: { scheduledAt: at, runId, lateMs: Math.max(0, this.clock.now - at), ...(byHand ? { byHand } : {}), ...(backfill ? { backfill } : {}) },
    });
  }

  /** `child_ended`: a run this schedule created has ended (its overlap no longer holds the next). */
  private childEnded(sig: Extract<Signal, { name: "child_ended" }>): KernelError | null {
    const s = this.state.schedule;
    if (!s) return this.refuse(RefusalCode.IllegalTransition, `child_ended: run ${this.state.runId} is not a schedule`);
    // An ended schedule follows nothing any more: a report that comes after its end (the run it
    // cancelled, or one still going when it was cancelled) is expected, not refused, and changes nothing.
    if (FINAL_RUN_STATUSES.has(this.runStatus())) return null;
    const a = s.active.find((x) => x.runId === sig.runId);
    if (!a) return null;
    this.state.schedule = { ...s, active: s.active.filter((x) => x.runId !== sig.runId) };
    this.changed = true;
    this.emit({ type: "schedule.run_ended", at: this.clock.now, data: { runId: sig.runId, scheduledAt: a.at, status: sig.status } });
    return null;
  }

  /**
   * Keeps the schedule's timer as its run's status wants it: none while paused or ended, else one,
   * for the first due time after the latest considered (or after now); and, while it is not paused,
   * gives a queued due time its run once none is going. Whether anything changed.
   */
  private schedAdvance(): boolean {
    const s = this.state.schedule;
    if (!s) return false;
    const st = this.runStatus();
    const still = FINAL_RUN_STATUSES.has(st) || st === "paused";
    if (still) {
      if (s.timerId === undefined) return false;
      this.effects.push({ kind: "timer", op: "cancel", timerId: s.timerId });
      const { nextAt: _n, timerId: _t, ...rest } = s;
      this.state.schedule = rest;
      this.changed = true;
      return true;
    }
    if (s.queued.length > 0 && s.active.every((a) => a.cancelling)) {
      const [at, ...queued] = s.queued;
      this.state.schedule = { ...s, queued };
      this.schedCreate(at!, false);
      this.changed = true;
      return true;
    }
    if (s.timerId !== undefined) return false;
    // Resumed or updated: from now (what passed while paused is not caught up); after a tick: right after it.
    const nextAt = nextDue(s.spec, Math.max(this.clock.now, s.lastAt ?? 0));
    const timerId = `${this.state.runId}.sched.${s.gen}.${nextAt}`;
    const dueAt = nextAt + jitterOf(this.state.runId, nextAt, s.spec.jitterMs);
    this.effects.push({ kind: "timer", op: "set", timerId, dueAt, timerKind: "tick" });
    this.state.schedule = { ...s, nextAt, timerId };
    this.changed = true;
    return true;
  }

  /** A run that ends tells the run it reports to (once: by its command id, and `reported`). */
  private reportEnd(): boolean {
    if (this.state.reportTo === undefined || this.state.reported) return false;
    const st = this.runStatus();
    if (!FINAL_RUN_STATUSES.has(st)) return false;
    this.commandTo({
      type: "run.signal",
      commandId: `ended.${this.state.runId}`,
      runId: this.state.reportTo,
      issuedAt: this.clock.now,
      actor: "schedule",
      signal: { name: "child_ended", runId: this.state.runId, status: st },
    });
    this.state.reported = true;
    return true;
  }

  // ── ticket intake ──────────────────────────────────────────────────────
  //
  // An intake run (`ticket.intake` definitions) keeps one sync timer armed while it is neither paused
  // nor ended (`intakeAdvance`). What each timer, answer and ticket run's end does is intake.ts's
  // decision, applied here whole in one transition: its events, its commands to other runs (sent
  // through `command` timers, each with its own command id, so a redelivery creates nothing twice),
  // and the timer it arms. A ticket run tells its ticket what it does (`ticketStage`).

  private intakeSignal(sig: Extract<Signal, { name: "set_intake" | "tickets_synced" }>, actor?: string): KernelError | null {
    const s = this.state.intake;
    if (!s) return this.refuse(RefusalCode.IllegalTransition, `${sig.name}: run ${this.state.runId} is not a ticket intake`);
    if (FINAL_RUN_STATUSES.has(this.runStatus())) {
      // A sync answered after the intake ended is expected; it changes nothing.
      if (sig.name === "tickets_synced") return null;
      return this.refuse(RefusalCode.TerminalState, `the intake is ${this.runStatus()}`);
    }
    if (sig.name === "set_intake") {
      const r = IntakeRules.safeParse(sig.rules);
      if (!r.success) return this.refuse(RefusalCode.Invalid, `set_intake: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
      if (hashJson(r.data) === hashJson(s.rules)) return null;
      this.state.intake = { ...s, rules: r.data };
      this.changed = true;
      this.emit({ type: "intake.updated", at: this.clock.now, data: { provider: r.data.provider, everyMs: r.data.everyMs, ...(actor ? { actor } : {}) } });
      return null;
    }
    const a = sig.answer;
    const answer = a.ok
      ? { attemptId: sig.attemptId, ok: true as const, tickets: a.tickets }
      : { attemptId: sig.attemptId, ok: false as const, error: a.error };
    const r = syncAnswered(this.state.runId, this.state.projectId, s, answer, this.clock.now);
    if (!r) return null;
    this.state.intake = r.state;
    this.changed = true;
    this.intakeEffects(r.effects, s.timer?.timerId);
    return null;
  }

  /** The sync timer fired: a `tickets.sync` work item (the hub answers `tickets_synced`), the next timer armed. */
  private intakeSyncFired(timerId: string) {
    const s = this.state.intake;
    if (!s || FINAL_RUN_STATUSES.has(this.runStatus())) return;
    const r = syncFired(this.state.runId, s, timerId, this.clock.now);
    if (!r) return;
    this.state.intake = r.state;
    this.changed = true;
    const { provider, query } = s.rules;
    const payload: TicketSyncPayload = { provider, query };
    this.effects.push({
      kind: "work",
      work: {
        stepId: INTAKE_SYNC_STEP,
        attemptId: r.attemptId,
        attempt: r.state.n,
        kind: "sync",
        index: -1,
        role: "intake",
        type: TICKETS_SYNC_TYPE,
        phase: INTAKE_SYNC_STEP,
        inputs: {},
        payload: payload as unknown as Record<string, unknown>,
        iteration: 0,
        rework: 0,
        at: this.clock.now,
      },
    });
    // The timer that fired is gone: nothing to withdraw.
    this.intakeEffects(r.effects, timerId);
  }

  /** `child_ended` on an intake: a ticket run it made ended (a failed one is run again, or quarantined). */
  private intakeChildEnded(sig: Extract<Signal, { name: "child_ended" }>): KernelError | null {
    const s = this.state.intake!;
    if (FINAL_RUN_STATUSES.has(this.runStatus())) return null;
    const ticketId = Object.keys(s.taken).find((id) => s.taken[id]!.runId === sig.runId);
    if (ticketId === undefined) return null;
    const status = sig.status === "completed" || sig.status === "failed" ? sig.status : "cancelled";
    const r = ticketRunEnded(s, this.state.projectId, { ticketId, runId: sig.runId, status }, this.clock.now);
    if (!r) return null;
    this.state.intake = r.state;
    this.changed = true;
    this.emit({ type: "intake.run_ended", at: this.clock.now, data: { ticket: s.taken[ticketId]!.key, runId: sig.runId, status } });
    this.intakeEffects(r.effects, s.timer?.timerId);
    return null;
  }

  /**
   * `ticket_write_failed` / `ticket_written`: the hub's word on a ticket's writes (a ticket run's, or
   * ones this intake dispatched again). What waits, is tried again or abandoned is intake.ts's decision.
   */
  private intakeWriteSignal(sig: Extract<Signal, { name: "ticket_write_failed" | "ticket_written" }>): KernelError | null {
    const s = this.state.intake;
    if (!s) return this.refuse(RefusalCode.IllegalTransition, `${sig.name}: run ${this.state.runId} is not a ticket intake`);
    // An ended intake keeps nothing waiting: the report is recorded in the hub's log only.
    if (FINAL_RUN_STATUSES.has(this.runStatus())) return null;
    const r =
      sig.name === "ticket_written"
        ? writeLanded(s, sig)
        : writeFailed(
            this.state.runId,
            s,
            { writeId: sig.writeId, attemptId: sig.attemptId, ticket: sig.ticket, writes: sig.writes, error: sig.error },
            this.clock.now,
          );
    if (!r) return null;
    this.state.intake = r.state;
    this.changed = true;
    this.intakeEffects(r.effects, undefined);
    return null;
  }

  /** A pending write's timer fired: dispatched again, or held while the intake is paused (breaker open, or its run paused). */
  private intakeWriteFired(timerId: string) {
    const s = this.state.intake;
    if (!s || FINAL_RUN_STATUSES.has(this.runStatus())) return;
    const st = this.runStatus();
    const r = writeFired(this.state.runId, s, timerId, this.clock.now, st === "paused" || st === "pending");
    if (!r) return;
    this.state.intake = r.state;
    this.changed = true;
    this.intakeEffects(r.effects, undefined);
  }

  /** Carries out an intake decision: its events, its commands (each ticket run told to report its end here), its timers, its write work. */
  private intakeEffects(e: IntakeEffects, previousTimer: string | undefined) {
    for (const ev of e.events) this.emit({ type: ev.type, at: this.clock.now, data: ev.data });
    for (const c of e.commands) this.commandTo(c.type === "run.create" ? createTicketRunReporting(c, this.state.runId) : c);
    if (e.arm) {
      if (previousTimer !== undefined && previousTimer !== e.arm.timerId) this.effects.push({ kind: "timer", op: "cancel", timerId: previousTimer });
      this.effects.push({ kind: "timer", op: "set", timerId: e.arm.timerId, dueAt: e.arm.dueAt, timerKind: "intake_sync" });
    }
    const fresh = new Set(e.writeTimers?.set.map((t) => t.timerId));
    for (const id of e.writeTimers?.cancel ?? []) if (!fresh.has(id)) this.effects.push({ kind: "timer", op: "cancel", timerId: id });
    for (const t of e.writeTimers?.set ?? []) this.effects.push({ kind: "timer", op: "set", timerId: t.timerId, dueAt: t.dueAt, timerKind: "intake_write" });
    for (const w of e.writeWork ?? []) {
      this.effects.push({
        kind: "work",
        work: {
          stepId: TICKET_UPDATE_STEP,
          attemptId: w.attemptId,
          attempt: w.attempt,
          kind: "sync",
          index: -1,
          role: "intake",
          type: TicketWorkType.Update,
          phase: TICKET_UPDATE_STEP,
          inputs: {},
          payload: w.payload as unknown as Record<string, unknown>,
          iteration: 0,
          rework: 0,
          at: this.clock.now,
        },
      });
    }
  }

  /**
   * Keeps the intake's sync timer as its run's status wants it: none while the run is paused or
   * ended; else one (the first sync at once, when the run starts or resumes). Whether anything changed.
   */
  private intakeAdvance(): boolean {
    const s = this.state.intake;
    if (!s) return false;
    const st = this.runStatus();
    if (FINAL_RUN_STATUSES.has(st) || st === "paused" || st === "pending") {
      if (!s.timer) return false;
      this.effects.push({ kind: "timer", op: "cancel", timerId: s.timer.timerId });
      const { timer: _t, sync: _s, ...rest } = s;
      this.state.intake = rest;
      this.changed = true;
      return true;
    }
    if (!s.paused) {
      // Writes held while the intake was paused go now.
      const r = heldWritesResumed(this.state.runId, s, this.clock.now);
      if (r) {
        this.state.intake = r.state;
        this.changed = true;
        this.intakeEffects(r.effects, undefined);
        return true;
      }
    }
    if (s.timer) return false;
    const timer = { timerId: syncTimerId(this.state.runId, s.n + 1), dueAt: this.clock.now };
    this.effects.push({ kind: "timer", op: "set", timerId: timer.timerId, dueAt: timer.dueAt, timerKind: "intake_sync" });
    this.state.intake = { ...s, timer };
    this.changed = true;
    return true;
  }

  /**
   * A ticket run (its input's `tracker` names its ticket and what it writes back) entered a stage:
   * a `ticket.update` work item with the writes (the stage's tracker state, a comment, the PR's
   * link), keyed by the run, the stage and the visit, so a redelivered item writes nothing twice.
   */
  private ticketStage(stage: string) {
    const t = TicketRunTracker.safeParse(this.state.input.tracker);
    if (!t.success || !t.data.writeBack) return;
    const { writeBack, ...ticket } = t.data;
    const visit = (this.state.ticketVisits?.[stage] ?? 0) + 1;
    this.state.ticketVisits = { ...this.state.ticketVisits, [stage]: visit };
    const record = this.state.pr?.record;
    const summary = outputSummary(this.lastOutput());
    const writes = ticketWrites(writeBack, {
      runId: this.state.runId,
      stage,
      visit,
      ...(summary ? { summary } : {}),
      ...(record?.url ? { pr: { url: record.url, ...(record.number !== undefined ? { number: record.number } : {}) } } : {}),
    });
    this.ticketUpdate(ticket, writes, `${stage}.${visit}`, visit);
  }

  /** The run's pull request was opened (or reported): its link on the ticket, with attachPrLinks. */
  private ticketPrOpened() {
    const t = TicketRunTracker.safeParse(this.state.input.tracker);
    const record = this.state.pr?.record;
    if (!t.success || !t.data.writeBack?.attachPrLinks || !record?.url) return;
    const { writeBack: _w, ...ticket } = t.data;
    const link = prLinkWrite(this.state.runId, { url: record.url, ...(record.number !== undefined ? { number: record.number } : {}) });
    this.ticketUpdate(ticket, [link], `pr.${record.number ?? hashJson(record.url).slice(0, 12)}`, 1);
  }

  /** A `ticket.update` work item (attempt id `<run>.ticket.update.<what>`), its writes keyed. */
  private ticketUpdate(ticket: TicketUpdatePayload["ticket"], writes: TicketUpdatePayload["writes"], what: string, attempt: number) {
    if (writes.length === 0) return;
    // The intake the run reports to keeps the writes the tracker fails for longer than the hub's tries.
    const payload: TicketUpdatePayload = { ticket, writes, ...(this.state.reportTo !== undefined ? { intake: this.state.reportTo } : {}) };
    this.effects.push({
      kind: "work",
      work: {
        stepId: TICKET_UPDATE_STEP,
        attemptId: `${this.state.runId}.ticket.update.${what}`,
        attempt,
        kind: "sync",
        index: -1,
        role: "intake",
        type: TicketWorkType.Update,
        phase: TICKET_UPDATE_STEP,
        inputs: {},
        payload: payload as unknown as Record<string, unknown>,
        iteration: 0,
        rework: 0,
        at: this.clock.now,
      },
    });
  }

  // ── integrations: CI reports and pull requests, by the definition's policies ──

  /** The run's CI policy: as recorded at its creation (runs older than that: the definition's, without the core's defaults). */
  private ciRules(): CiRules | null {
    return this.state.ci?.policy ?? resolveCiPolicy(this.cd.def.ci);
  }

  /**
   * `ci_report`: the report is recorded (`ci`, with the facts it brings and those the policy sets),
   * then the policy acts on the step it is about (ci.ts has the table), and after a failure a fix
   * attempt starts or is refused, all in this one transition.
   */
  private ciReport(sig: Extract<Signal, { name: "ci_report" }>, actor?: string, reason?: string): KernelError | null {
    const st = this.runStatus();
    if (FINAL_RUN_STATUSES.has(st)) return this.refuse(RefusalCode.TerminalState, `the run is ${st}`);
    const planningId = this.cd.planning?.id;
    if (sig.stepId !== undefined && (sig.stepId === planningId || !this.stepDef(sig.stepId)))
      return this.refuse(RefusalCode.NotFound, `no step '${sig.stepId}'`);
    const policy = this.cd.def.ci;
    // A check the policy does not count is recorded (on the PR) and does nothing else.
    const counted = checkCounts(policy !== undefined && policy !== "off" ? policy.checks : undefined, sig.check);
    this.recordCheck(sig, counted);
    if (!counted) {
      this.emit({
        type: "ci.check_ignored",
        at: this.clock.now,
        data: { check: sig.check ?? UNNAMED_CHECK, status: sig.status, why: "the definition's ci.checks do not name it", ...(actor ? { actor } : {}) },
      });
      this.changed = true;
      return null;
    }
    const ci: Record<string, unknown> = {
      status: sig.status,
      conclusion: sig.conclusion ?? sig.status,
      ...(sig.provider ? { provider: sig.provider } : {}),
      at: sig.at ?? this.clock.now,
      ...(sig.check ? { name: sig.check } : {}),
      ...(sig.url ? { url: sig.url } : {}),
      ...(sig.sha ? { sha: sig.sha } : {}),
      ...(sig.jobId !== undefined ? { jobId: sig.jobId } : {}),
    };
    const sets = policy !== undefined && policy !== "off" ? policy.sets?.[sig.status] : undefined;
    this.setFacts({ ...sig.facts, ci, ...sets }, actor ? `set by ${actor}` : "set");
    const rules = this.ciRules();
    const stepId = sig.stepId ?? this.latestStarted()?.id;
    if (!rules || stepId === undefined) {
      this.prAdvance(actor);
      return null;
    }
    const check = sig.check ? ` (${sig.check})` : "";
    switch (ciStepAction(rules, sig.status, this.status(stepId))) {
      case "complete":
        this.signal({ name: "complete_step", stepId }, actor, reason ?? `CI passed${check}`);
        break;
      case "approve":
        this.signal({ name: "approve", stepId, force: true }, actor, reason ?? `CI passed${check}`);
        break;
      case "qa":
        this.signal({ name: "run_qa", stepId }, actor, reason ?? `CI passed${check}: QA started`);
        break;
      case "fail": {
        const block = rules.onFailure === "block";
        const error = block ? `CI failed; ${this.cd.def.view === "protocol" ? "protocol" : "run"} blocked` : "CI failed";
        this.signal({ name: "fail_step", stepId, error, block }, actor, reason ?? `CI failed${check}`);
        break;
      }
      case "none":
        break;
    }
    const now = this.status(stepId);
    if (sig.status === "failure" && rules.onFailure !== "record" && rules.fixAttempts > 0 && (now === "failed" || now === "blocked"))
      this.ciFixAttempt(stepId, rules, sig, actor);
    // A `pr.ready` in flight is not what the failure is about: the fix attempt goes ahead.
    else if (
      sig.status === "failure" &&
      rules.fixAttempts > 0 &&
      policy !== undefined &&
      policy !== "off" &&
      policy.fix &&
      (!ACTIVE.has(now) || this.stepDef(stepId)?.type === ForgeStepType.Ready)
    )
      this.prCiFix(policy.fix, rules, sig, actor);
    this.prAdvance(actor);
    return null;
  }

  /** A bounded fix attempt: the failed step runs again, told what failed; or why not is recorded. */
  private ciFixAttempt(stepId: string, rules: CiRules, sig: Extract<Signal, { name: "ci_report" }>, actor?: string) {
    const count = { attempts: this.state.ci?.attempts ?? 0, ...(this.state.ci?.lastAt !== undefined ? { lastAt: this.state.ci.lastAt } : {}) };
    const now = this.clock.now;
    const max = rules.fixAttempts;
    const refused = (why: string, notBefore?: number) => {
      this.emit({
        type: "ci.fix_refused",
        at: now,
        data: { stepId, reason: why, attempts: count.attempts, max, ...(notBefore !== undefined ? { notBefore } : {}) },
      });
      this.setFacts({ ciFixRefused: { reason: why, stepId, at: now } }, why);
    };
    const verdict = ciFixVerdict(rules, count, now);
    if (!verdict.ok) return refused(verdict.reason, verdict.notBefore);
    const attempt = verdict.attempt;
    const failure = {
      conclusion: sig.conclusion ?? sig.status,
      ...(sig.check ? { name: sig.check } : {}),
      ...(sig.url ? { url: sig.url } : {}),
      ...(sig.sha ? { sha: sig.sha } : {}),
    };
    const feedback = this.ciFixFor(stepId, sig, this.snapOf(stepId)?.context.error?.message, attempt, max);
    const why = `CI fix attempt ${attempt} of ${max}`;
    const cannot = this.signal({ name: "run_step", stepId, feedback }, actor, why);
    this.#extraPayload.delete(stepId);
    if (cannot) return refused(`${why} could not start: ${cannot.message}`);
    this.state.ci = { policy: rules, attempts: attempt, lastAt: now };
    this.changed = true;
    this.emit({ type: "ci.fix_attempt", at: now, data: { stepId, attempt, max, failure } });
    this.setFacts({ ciFixAttempts: attempt, ciFixLastAt: now, ciFix: { attempt, max, stepId, at: now, failure } }, why);
  }

  /**
   * What a CI fix attempt of `stepId` is told (the feedback it returns) and given: the failing check,
   * in its work's `payload.ciFailure`, for the hub to fetch its job's log (the provider: the report's,
   * else the forge's). The payload is taken when the step is dispatched in this transition.
   */
  private ciFixFor(stepId: string, sig: Extract<Signal, { name: "ci_report" }>, stepError: string | undefined, attempt: number, max: number): string {
    const conclusion = sig.conclusion ?? sig.status;
    const forge = this.state.project?.forge;
    const provider = sig.provider ?? forge?.provider;
    if (provider) {
      const ciFailure: CiFailureRef = {
        provider,
        ...(forge ? { forge } : {}),
        ...(sig.check ? { check: sig.check } : {}),
        ...(sig.jobId !== undefined ? { jobId: sig.jobId } : {}),
        ...(sig.sha ? { sha: sig.sha } : {}),
        ...(sig.url ? { url: sig.url } : {}),
        conclusion,
      };
      this.#extraPayload.set(stepId, { ciFailure });
    }
    const told = {
      conclusion,
      ...(sig.provider ? { provider: sig.provider } : {}),
      ...(sig.check ? { check: sig.check } : {}),
      ...(sig.sha ? { sha: sig.sha } : {}),
      ...(sig.url ? { url: sig.url } : {}),
    };
    return ciFixFeedback(told, stepError, attempt, max);
  }

  /**
   * A CI failure on the open pull request's head commit when the step it is about is done already
   * (`ci.fix`: the ticket's implement completed, its PR checked): a bounded fix attempt counted with
   * the run's other CI fix attempts. The policy's stage event (its steps run again, the fixing one
   * told the failure) or the fixing step run again, given the failing job (`payload.ciFailure`) so
   * that the hub fetches its log. A failure of an older commit, or one that already had its attempt
   * (a webhook and a poll both report it), does nothing more; a refused one says why.
   */
  private prCiFix(fix: NonNullable<CiPolicy["fix"]>, rules: CiRules, sig: Extract<Signal, { name: "ci_report" }>, actor?: string) {
    const pr = this.state.pr;
    if (!pr || pr.record.state !== "open") return;
    const head = pr.record.headSha;
    if (sig.sha && head && !sig.sha.startsWith(head) && !head.startsWith(sig.sha)) return;
    const key = `${sig.check ?? UNNAMED_CHECK}@${sig.sha ?? head ?? ""}`;
    if (this.state.ci?.fixedFor === key) return;
    const count = { attempts: this.state.ci?.attempts ?? 0, ...(this.state.ci?.lastAt !== undefined ? { lastAt: this.state.ci.lastAt } : {}) };
    const now = this.clock.now;
    const max = rules.fixAttempts;
    const stepId = this.implementingStep(fix.step);
    const failure = {
      conclusion: sig.conclusion ?? sig.status,
      ...(sig.check ? { name: sig.check } : {}),
      ...(sig.url ? { url: sig.url } : {}),
      ...(sig.sha ? { sha: sig.sha } : {}),
    };
    const refused = (why: string, notBefore?: number) => {
      this.emit({
        type: "ci.fix_refused",
        at: now,
        data: { ...(stepId ? { stepId } : {}), reason: why, attempts: count.attempts, max, ...(notBefore !== undefined ? { notBefore } : {}) },
      });
      this.setFacts({ ciFixRefused: { reason: why, ...(stepId ? { stepId } : {}), at: now } }, why);
    };
    const verdict = ciFixVerdict(rules, count, now);
    if (!verdict.ok) return refused(verdict.reason, verdict.notBefore);
    if (!stepId) return refused("no step has run that could fix it");
    const attempt = verdict.attempt;
    const why = `CI fix attempt ${attempt} of ${max}`;
    const feedback = this.ciFixFor(stepId, sig, undefined, attempt, max);
    // Both are taken when the step is dispatched, in this transition (the stage's steps may be
    // dispatched after the event itself is applied); a kernel lives for one command.
    let cannot: KernelError | null;
    if (fix.onStart) {
      // The stage the event goes back to runs its steps again: the fixing one is told the failure.
      this.#hints.set(stepId, feedback);
      cannot = this.stageEvent(fix.onStart.event, why, actor);
    } else {
      const s = this.status(stepId);
      if (s === "completed" || s === "skipped") this.sendStep(stepId, { type: "RESET", reason: "rework", at: now, rand: this.clock.rand });
      cannot = this.signal({ name: "run_step", stepId, feedback }, actor, why);
    }
    if (cannot) {
      this.#hints.delete(stepId);
      this.#extraPayload.delete(stepId);
      return refused(`${why} could not start: ${cannot.message}`);
    }
    this.state.ci = { policy: rules, attempts: attempt, lastAt: now, fixedFor: key };
    this.changed = true;
    this.emit({ type: "ci.fix_attempt", at: now, data: { stepId, attempt, max, failure } });
    this.setFacts({ ciFixAttempts: attempt, ciFixLastAt: now, ciFix: { attempt, max, stepId, at: now, failure } }, why);
  }

  /**
   * `pr_opened`, `pr_closed`, `pr_merged` (and a `pr.merge` step that merged): recorded (the run's
   * pull request, the `pullRequest` fact with the facts it brings and those the policy sets); the
   * polling fallback starts with an open PR and stops with a closed or merged one; a close or a merge
   * then does what the policy says, in this one transition.
   */
  private pullRequest(
    sig: Extract<Signal, { name: "pr_opened" | "pr_closed" | "pr_merged" }>,
    actor?: string,
    reason?: string,
    mergeSha?: string,
  ): KernelError | null {
    const st = this.runStatus();
    if (FINAL_RUN_STATUSES.has(st)) return this.refuse(RefusalCode.TerminalState, `the run is ${st}`);
    const kind = sig.name === "pr_opened" ? "opened" : sig.name === "pr_closed" ? "closed" : "merged";
    const policy = this.cd.def.pullRequests;
    const at = sig.at ?? this.clock.now;
    const pullRequest: Record<string, unknown> = {
      ...(sig.number !== undefined ? { number: sig.number } : {}),
      action: sig.action ?? kind,
      merged: kind === "merged",
      ...(sig.provider ? { provider: sig.provider } : {}),
      at,
      ...(sig.url ? { url: sig.url } : {}),
    };
    this.setFacts({ ...sig.facts, pullRequest, ...policy?.sets?.[kind] }, actor ? `set by ${actor}` : "set");
    const pr = this.notePr(
      kind === "opened" ? "open" : kind,
      {
        ...(sig.number ? { number: sig.number } : {}),
        ...(sig.url ? { url: sig.url } : {}),
        ...(sig.provider ? { provider: sig.provider } : {}),
        // Marked ready on the host (GitHub's `ready_for_review`): a `pr.ready` step has nothing left to do.
        ...(sig.action === "ready_for_review" ? { draft: false } : {}),
      },
      mergeSha,
    );
    const data: Record<string, unknown> = {
      ...(pr.record.number !== undefined ? { number: pr.record.number } : {}),
      ...(pr.record.provider ? { provider: pr.record.provider } : {}),
      ...(pr.record.url ? { url: pr.record.url } : {}),
      ...(actor ? { actor } : {}),
    };
    const why = reason ?? `pull request ${kind}`;
    if (kind === "opened") {
      this.emit({
        type: "pr.opened",
        at: this.clock.now,
        data: { ...data, state: pr.record.state, ...(pr.record.headSha ? { headSha: pr.record.headSha } : {}) },
      });
      this.prAdvance(actor);
      return null;
    }
    if (kind === "closed") {
      const onClosed = policy?.onClosed;
      if (onClosed === undefined) this.emit({ type: "pr.closed", at: this.clock.now, data: { ...data, outcome: "recorded" } });
      else if (onClosed === "cancel") {
        this.emit({ type: "pr.closed", at: this.clock.now, data: { ...data, outcome: "cancel" } });
        this.sendRun({ type: "CANCEL", reason: why, ...(actor ? { actor } : {}), at: this.clock.now, rand: this.clock.rand });
      } else {
        const refused = this.stageEvent(onClosed.event, why, actor);
        this.emit({
          type: "pr.closed",
          at: this.clock.now,
          data: { ...data, outcome: "event", event: onClosed.event, ...(refused ? { refused: refused.message } : {}) },
        });
      }
      return null;
    }
    const onMerged = policy?.onMerged;
    if (mergeSha) data.sha = mergeSha;
    if (onMerged === undefined) {
      this.emit({ type: "pr.merged", at: this.clock.now, data: { ...data, outcome: "recorded" } });
      return null;
    }
    if (onMerged === "complete") {
      this.emit({ type: "pr.merged", at: this.clock.now, data: { ...data, outcome: "complete" } });
      this.completeEverything(why, actor);
      return null;
    }
    const refused = this.stageEvent(onMerged.event, why, actor);
    // Refused by its guard (or the run's state), the merge stays recorded: its facts stand.
    this.emit({
      type: "pr.merged",
      at: this.clock.now,
      data: { ...data, outcome: "event", event: onMerged.event, ...(refused ? { refused: refused.message } : {}) },
    });
    return null;
  }

  // ── the run's pull request ─────────────────────────────────────────────

  private prRules(): PrRules {
    return this.state.prRules ?? resolvePrRules(this.cd.def.pullRequests);
  }

  /**
   * The run's PR in `state` now, with what a signal tells of it (a different number is another PR:
   * what was known of the earlier one goes). Open: the poll timer is armed; closed or merged: withdrawn.
   */
  private notePr(state: "open" | "closed" | "merged", told: Partial<PrState["record"]>, mergeSha?: string): PrState {
    const prev = this.state.pr;
    const same = prev && (told.number === undefined || prev.record.number === undefined || prev.record.number === told.number);
    const base: PrState = same ? { ...prev } : { record: { state } };
    const forge = this.state.project?.forge;
    const head = this.workspace()?.branch;
    base.record = {
      ...(forge && (told.provider === undefined || told.provider === forge.provider) ? { provider: forge.provider, repository: forge.repository } : {}),
      ...(head ? { head } : {}),
      ...base.record,
      ...told,
      state,
    };
    const now = this.clock.now;
    if (state === "open") base.openedAt ??= now;
    if (state === "closed") base.closedAt = now;
    if (state === "merged") {
      base.mergedAt = now;
      if (mergeSha) base.mergeSha = mergeSha;
    }
    this.state.pr = base;
    this.changed = true;
    if (state === "open") this.armPoll();
    else this.disarmPoll();
    return this.state.pr;
  }

  /** A `pr.open` step's output: the PR recorded open (or as the host says it is), announced, its facts set. */
  private recordOpened(record: PullRequestRecord, o: { created: boolean; stepId: string }) {
    const prev = this.state.pr;
    const same = prev?.record.number === record.number;
    this.state.pr = { ...(same ? prev : {}), record: { ...record } };
    this.notePr(record.state, {});
    const pullRequest = {
      number: record.number,
      action: "opened",
      merged: record.state === "merged",
      provider: record.provider,
      at: this.clock.now,
      url: record.url,
    };
    this.setFacts({ pullRequest, ...this.cd.def.pullRequests?.sets?.opened }, `step ${o.stepId} opened it`);
    this.emit({
      type: "pr.opened",
      at: this.clock.now,
      data: {
        provider: record.provider,
        repository: record.repository,
        number: record.number,
        url: record.url,
        head: record.head,
        base: record.base,
        ...(record.headSha ? { headSha: record.headSha } : {}),
        state: record.state,
        ...(record.draft !== undefined ? { draft: record.draft } : {}),
        created: o.created,
        stepId: o.stepId,
      },
    });
  }

  /** A CI report, on the run's PR: the latest of each check, counted or not. */
  private recordCheck(sig: Extract<Signal, { name: "ci_report" }>, counted: boolean) {
    const pr = this.state.pr;
    if (!pr) return;
    const name = sig.check ?? UNNAMED_CHECK;
    const check = {
      status: sig.status,
      ...(sig.conclusion ? { conclusion: sig.conclusion } : {}),
      ...(sig.url ? { url: sig.url } : {}),
      ...(sig.jobId !== undefined ? { jobId: sig.jobId } : {}),
      ...(sig.sha ? { sha: sig.sha } : {}),
      counted,
      at: sig.at ?? this.clock.now,
    };
    this.state.pr = { ...pr, checks: { ...pr.checks, [name]: check }, checksAt: this.clock.now };
    this.changed = true;
  }

  /** Arms the next look at the open PR (the polling fallback), unless it is armed, off, or there is nothing to look at. */
  private armPoll() {
    const pr = this.state.pr;
    const every = this.prRules().pollMs;
    if (!pr || pr.poll || every <= 0 || pr.record.state !== "open" || pr.record.number === undefined || !this.state.project?.forge) return;
    if (FINAL_RUN_STATUSES.has(this.runStatus())) return;
    const n = (pr.sync ? Number(pr.sync.attemptId.split(".").at(-1)) : 0) + 1;
    const timerId = `${this.state.runId}.pr.poll.${n}`;
    const dueAt = this.clock.now + every;
    this.effects.push({ kind: "timer", op: "set", timerId, dueAt, timerKind: "pr_poll" });
    this.state.pr = { ...pr, poll: { n, timerId, dueAt } };
    this.changed = true;
  }

  private disarmPoll() {
    const pr = this.state.pr;
    if (!pr?.poll) return;
    this.effects.push({ kind: "timer", op: "cancel", timerId: pr.poll.timerId });
    const { poll: _p, ...rest } = pr;
    this.state.pr = rest;
    this.changed = true;
  }

  /** The poll timer fired: the hub looks at the PR (`pr.sync`), and the next look is armed. A stale timer changes nothing. */
  private pollFired(timerId: string) {
    const pr = this.state.pr;
    const forge = this.state.project?.forge;
    if (!pr?.poll || pr.poll.timerId !== timerId || !forge || pr.record.number === undefined) return;
    const n = pr.poll.n;
    const attemptId = `${this.state.runId}.pr.sync.${n}`;
    const head = pr.record.head ?? this.workspace()?.branch;
    const payload: PrSyncPayload = { forge, number: pr.record.number, ...(head ? { head } : {}) };
    const ws = this.workspace();
    this.effects.push({
      kind: "work",
      work: {
        stepId: PR_SYNC_STEP,
        attemptId,
        attempt: n,
        kind: "sync",
        index: -1,
        role: "maintainer",
        type: ForgeStepType.Sync,
        phase: PR_SYNC_STEP,
        inputs: {},
        payload,
        iteration: 0,
        rework: 0,
        ...(ws ? { workspace: ws } : {}),
        at: this.clock.now,
      },
    });
    const { poll: _p, ...rest } = pr;
    this.state.pr = { ...rest, sync: { attemptId, at: this.clock.now } };
    this.changed = true;
    this.armPoll();
  }

  /** Why a forge step cannot run now (then it is skipped or failed instead of dispatched), or null. */
  private forgeHold(d: RunStepDef): { skip: string } | { fail: string; code: string } | null {
    if (!isForgeStep(d)) return null;
    if (!this.state.project?.forge) {
      if (d.whenNoForge === "skip") return { skip: "the run's project has no forge" };
      return {
        code: "NO_FORGE",
        fail: `${d.type} needs a forge and the run's project has none: set \`forge\` on the project (or give it a github.com or gitlab.com git URL), then start a new run`,
      };
    }
    if (d.type === ForgeStepType.Merge) {
      if (!this.prRules().merge.enabled) return { skip: "merging is not enabled (the definition's pullRequests.merge)" };
      const pr = this.state.pr;
      if (pr?.record.number === undefined || pr.record.state !== "open")
        return { code: "NO_PULL_REQUEST", fail: "pr.merge: the run has no open pull request to merge" };
    }
    if (d.type === ForgeStepType.Ready) {
      const pr = this.state.pr;
      if (pr?.record.number === undefined || pr.record.state !== "open")
        return { code: "NO_PULL_REQUEST", fail: "pr.ready: the run has no open pull request to mark ready for review" };
      if (pr.record.draft === false) return { skip: "the pull request is not a draft" };
    }
    return null;
  }

  /** A forge step that cannot run, instead of its dispatch: skipped, or failed at once (not retried). */
  private forgeHeld(id: string, held: { skip: string } | { fail: string; code: string }, event: Extract<StepEvent, { type: "DISPATCH" }>): boolean {
    const at = { at: event.at, rand: event.rand };
    if ("skip" in held) return this.sendStep(id, { type: "SKIP", reason: held.skip, ...at });
    if (this.status(id) !== "pending") return false;
    return this.sendStep(id, { type: "FAIL", error: { code: held.code, message: held.fail, retryable: false }, ...at });
  }

  /** Whether a `pr.merge` step waits: merging is on and possible, but the PR is not approved and green yet. */
  private mergeWaits(d: RunStepDef): boolean {
    if (d.type !== ForgeStepType.Merge || this.forgeHold(d) !== null) return false;
    // Through the merge queue: only on its turn, brought up to the base, CI green on the new head.
    if (this.queueOn()) return this.state.mq?.state !== "merging";
    return !readyToMerge(this.state.pr);
  }

  /** What a `pr.open` step is given: the forge, the base, draft or not, and a title and body made from the run. */
  private prOpenPayload(d: RunStepDef): Partial<PrOpenPayload> {
    const forge = this.state.project?.forge;
    if (!forge) return {};
    const base = this.workspace()?.base ?? this.state.project?.baseBranch;
    const draft = typeof d.payload?.draft === "boolean" ? d.payload.draft : this.prRules().draft;
    const steps = this.steps()
      .filter((x) => !isForgeStep(x) && (this.state.steps[x.id]?.context.attempt ?? 0) > 0)
      .map((x) => {
        const c = this.state.steps[x.id]!.context;
        const summary = outputSummary(c.output);
        return { id: x.id, role: x.role, status: this.status(x.id), ...(x.title ? { title: x.title } : {}), ...(summary ? { summary } : {}) };
      });
    const total = this.state.ledger.total;
    const publicUrl = this.prRules().publicUrl;
    const desc = {
      runId: this.state.runId,
      input: this.state.input,
      steps,
      usage: { tokens: total.tokens, costUsd: total.costUsd },
      ...(publicUrl ? { publicUrl } : {}),
    };
    return { forge, ...(base ? { base } : {}), draft, title: prTitle(desc), body: prBody(desc) };
  }

  /** What a `pr.merge` step is given: the forge, the PR, the method, and the head it was approved at. */
  private prMergePayload(d: RunStepDef): Partial<PrMergePayload> {
    const forge = this.state.project?.forge;
    const pr = this.state.pr?.record;
    if (!forge || pr?.number === undefined) return {};
    const given = d.payload?.method;
    const method = given === "merge" || given === "squash" || given === "rebase" ? given : this.prRules().merge.method;
    // Through the merge queue, the head it was brought up to (and CI passed on) is what merges.
    const sha = this.state.mq?.headSha ?? this.state.pr?.review?.sha ?? pr.headSha;
    return { forge, number: pr.number, method, ...(sha && /^[0-9a-f]{7,64}$/.test(sha) ? { sha } : {}) };
  }

  /** What a `pr.ready` step is given: the forge and the run's PR. */
  private prReadyPayload(): Partial<PrReadyPayload> {
    const forge = this.state.project?.forge;
    const number = this.state.pr?.record.number;
    return forge && number !== undefined ? { forge, number } : {};
  }

  /** A `pr.ready` step's success: the run's PR is no longer a draft (its view says so), announced by `pr.ready`. */
  private recordReady(stepId: string) {
    const pr = this.state.pr;
    if (!pr) return;
    this.state.pr = { ...pr, record: { ...pr.record, draft: false } };
    this.changed = true;
    this.emit({ type: RunEventType.PrReady, at: this.clock.now, data: { number: pr.record.number, ...(pr.record.url ? { url: pr.record.url } : {}), stepId } });
  }

  /**
   * `review_report`: the review recorded (the PR's review state, the `review` fact and those the
   * policy sets), then changes requested start a bounded fix attempt, and the stage graph moves on
   * where the policy says (a review started; approved and green), all in this one transition.
   */
  private reviewReport(sig: Extract<Signal, { name: "review_report" }>, actor?: string, reason?: string): KernelError | null {
    const st = this.runStatus();
    if (FINAL_RUN_STATUSES.has(st)) return this.refuse(RefusalCode.TerminalState, `the run is ${st}`);
    const at = sig.at ?? this.clock.now;
    const pr = this.state.pr ?? this.notePr("open", { ...(sig.number ? { number: sig.number } : {}), ...(sig.provider ? { provider: sig.provider } : {}) });
    const review = {
      state: sig.state,
      ...(sig.reviewer ? { reviewer: sig.reviewer } : {}),
      ...(sig.sha ? { sha: sig.sha } : {}),
      comments: sig.comments?.length ?? 0,
      at,
    };
    this.state.pr = { ...pr, review };
    this.changed = true;
    const sets = this.cd.def.pullRequests?.sets;
    const policySets = sig.state === "approved" ? sets?.approved : sig.state === "changes_requested" ? sets?.changesRequested : undefined;
    this.setFacts({ ...sig.facts, review: { ...review, ...(sig.url ? { url: sig.url } : {}) }, ...policySets }, actor ? `set by ${actor}` : "set");
    this.emit({
      type: "pr.reviewed",
      at: this.clock.now,
      data: {
        state: sig.state,
        ...(sig.reviewer ? { reviewer: sig.reviewer } : {}),
        ...(pr.record.number !== undefined ? { number: pr.record.number } : {}),
        comments: review.comments,
        ...(sig.sha ? { sha: sig.sha } : {}),
        ...(actor ? { actor } : {}),
      },
    });
    if (sig.state === "changes_requested") {
      // The review starts first (seed 003: ReviewStarted), then its changes go back to the implementer.
      const onStarted = this.cd.def.pullRequests?.review?.onStarted;
      if (onStarted) this.stageEvent(onStarted.event, "a review of the pull request started", actor);
      this.reviewFix(sig, actor, reason);
    }
    this.prAdvance(actor);
    return null;
  }

  /** The step a review's changes are made by: the one named (else the review policy's), else the implementer's that started last, else any work step. */
  private implementingStep(preferred?: string): string | undefined {
    const named = preferred ?? this.cd.def.pullRequests?.review?.step;
    if (named !== undefined && this.stepDef(named)) return named;
    const ran = this.steps().filter((d) => !isForgeStep(d) && (this.state.steps[d.id]?.context.attempt ?? 0) > 0);
    const last = (ds: RunStepDef[]) =>
      ds.sort((a, b) => (this.state.steps[a.id]!.context.startedAt ?? 0) - (this.state.steps[b.id]!.context.startedAt ?? 0) || a.index - b.index).at(-1);
    return (last(ran.filter((d) => d.role === "implementer")) ?? last(ran))?.id;
  }

  /** A review's bounded fix attempt: the implementing step runs again, told the review; or why not is recorded. */
  private reviewFix(sig: Extract<Signal, { name: "review_report" }>, actor?: string, reason?: string) {
    const rules = this.prRules();
    const pr = this.state.pr!;
    const count = pr.reviewFix ?? { attempts: 0 };
    const now = this.clock.now;
    const max = rules.reviewFixAttempts;
    const stepId = this.implementingStep();
    const refused = (why: string, notBefore?: number) => {
      this.emit({
        type: "review.fix_refused",
        at: now,
        data: { ...(stepId ? { stepId } : {}), reason: why, attempts: count.attempts, max, ...(notBefore !== undefined ? { notBefore } : {}) },
      });
      this.setFacts({ reviewFixRefused: { reason: why, ...(stepId ? { stepId } : {}), at: now } }, why);
    };
    const verdict = reviewFixVerdict(rules, count, now);
    if (!verdict.ok) return refused(verdict.reason, verdict.notBefore);
    const attempt = verdict.attempt;
    const why = reason ?? `review fix attempt ${attempt} of ${max}`;
    const feedback = reviewFeedback({ ...sig, ...(pr.record.number !== undefined ? { number: pr.record.number } : {}) }, attempt, max);
    const onChanges = this.cd.def.pullRequests?.review?.onChangesRequested;
    if (onChanges) {
      // The stage the event goes back to runs its steps again: the implementing one is told the review.
      if (stepId) this.#hints.set(stepId, feedback);
      const cannot = this.stageEvent(onChanges.event, why, actor);
      if (cannot) {
        if (stepId) this.#hints.delete(stepId);
        return refused(`${why} could not start: ${cannot.message}`);
      }
    } else {
      if (!stepId) return refused(`${why} could not start: no step has run that could make the changes`);
      const s = this.status(stepId);
      if (s === "completed" || s === "skipped") this.sendStep(stepId, { type: "RESET", reason: "rework", at: now, rand: this.clock.rand });
      const cannot = this.signal({ name: "run_step", stepId, feedback }, actor, why);
      if (cannot) return refused(`${why} could not start: ${cannot.message}`);
    }
    this.state.pr = { ...this.state.pr!, reviewFix: { attempts: attempt, lastAt: now } };
    this.changed = true;
    this.emit({
      type: "review.fix_attempt",
      at: now,
      data: { ...(stepId ? { stepId } : {}), attempt, max, ...(sig.reviewer ? { reviewer: sig.reviewer } : {}) },
    });
    this.setFacts({ reviewFixAttempts: attempt, reviewFix: { attempt, max, ...(stepId ? { stepId } : {}), at: now } }, why);
  }

  /**
   * Where the PR moves the run's stage graph, when the policy names the events and the graph takes
   * them now: a review exists (`onStarted`), approved and green (`onReady`). An event the graph does
   * not take here changes nothing.
   */
  private prAdvance(actor?: string) {
    const pr = this.state.pr;
    const review = this.cd.def.pullRequests?.review;
    if (!pr || pr.record.state !== "open" || !review) return;
    if (pr.review && review.onStarted) this.stageEvent(review.onStarted.event, "a review of the pull request started", actor);
    if (readyToMerge(pr) && review.onReady) this.stageEvent(review.onReady.event, "the pull request is approved and its checks are green", actor);
  }

  // ── the merge queue ────────────────────────────────────────────────────

  /** Whether the run's PR merges through its merge queue (the definition's `pullRequests.merge.queue`, a forge). */
  private queueOn(): boolean {
    const m = this.prRules().merge;
    return m.enabled && m.queue === true && this.state.project?.forge !== undefined;
  }

  /** A command to another run, sent now through a `command` timer (the scheduler's), once by its id. */
  private commandTo(command: Record<string, unknown> & { commandId: string }) {
    this.effects.push({ kind: "timer", op: "set", timerId: `${this.state.runId}.${command.commandId}`, dueAt: this.clock.now, timerKind: "command", command });
    this.changed = true;
  }

  /**
   * Where the run stands in its merge queue, after whatever changed: it joins when its PR is
   * approved and green (unless held since a conflict or a failed update, until its head moves);
   * it leaves when the PR closes, merges or loses its approval, when its checks fail, or when the
   * run ends; checking → merging once CI passed on the updated head. Whether anything changed.
   */
  private mqAdvance(): boolean {
    const mq = this.state.mq;
    if (!this.queueOn()) return mq !== undefined && this.mqLeave("cancelled", "the run no longer merges through a queue");
    const pr = this.state.pr;
    const st = this.runStatus();
    if (mq) {
      if (FINAL_RUN_STATUSES.has(st)) return this.mqLeave(pr?.record.state === "merged" ? "merged" : "cancelled", `the run is ${st}`);
      if (!pr || pr.record.state !== "open")
        return this.mqLeave(pr?.record.state === "merged" ? "merged" : "closed", `the pull request is ${pr?.record.state ?? "gone"}`);
      if (pr.review?.state !== "approved") return this.mqLeave("reapproval", "the pull request's approval is gone");
      if (checksState(pr.checks, pr.record.headSha) === "failure" && mq.state !== "updating") return this.mqLeave("failed", "a check failed");
      if (mq.state === "checking" && this.greenOn(mq.headSha, mq.since)) {
        this.state.mq = { ...mq, state: "merging" };
        this.changed = true;
        this.emit({ type: "mq.merging", at: this.clock.now, data: { queue: mq.queue, ...(mq.headSha ? { headSha: mq.headSha } : {}) } });
        return true;
      }
      return false;
    }
    if (FINAL_RUN_STATUSES.has(st) || !readyToMerge(pr) || pr!.record.number === undefined) return false;
    const hold = this.state.mqHold;
    if (hold && (hold.headSha === undefined || hold.headSha === pr!.record.headSha)) return false;
    return this.mqJoin();
  }

  /** Whether the counted checks passed on `sha` (reported for it, or, without a commit, since `since`). */
  private greenOn(sha: string | undefined, since: number): boolean {
    const counted = Object.values(this.state.pr?.checks ?? {}).filter((c) => c.counted);
    const current = counted.filter((c) => (c.sha && sha ? sameCommit(c.sha, sha) : c.at > since));
    return current.length > 0 && current.length === counted.length && current.every((c) => c.status === "success");
  }

  /** Joins the queue of the PR's base: created by the first run that needs it, then told (create-or-signal). */
  private mqJoin(): boolean {
    const pr = this.state.pr!;
    const base = pr.record.base ?? this.workspace()?.base ?? this.state.project?.baseBranch;
    if (!base) return false;
    const queue = mergeQueueRunId(this.state.projectId, base);
    const n = (this.state.mqJoins ?? 0) + 1;
    this.commandTo({
      type: "run.create",
      commandId: `mq-join.${this.state.runId}.${n}`,
      runId: queue,
      issuedAt: this.clock.now,
      actor: "merge-queue",
      projectId: this.state.projectId,
      definition: { id: MERGE_QUEUE_DEFINITION },
      title: `Merge queue: ${base}`,
      labels: { base },
      input: { base },
      autoStart: true,
      then: { name: "mq_enqueue", runId: this.state.runId, ...(pr.record.number !== undefined ? { number: pr.record.number } : {}) },
    });
    this.state.mq = { queue, state: "queued", n, since: this.clock.now };
    this.state.mqJoins = n;
    delete this.state.mqHold;
    this.changed = true;
    this.emit({ type: "mq.joined", at: this.clock.now, data: { queue, base, ...(pr.record.number !== undefined ? { number: pr.record.number } : {}) } });
    return true;
  }

  /** Leaves the queue (it gives the next run its turn). */
  private mqLeave(outcome: MergeQueueOutcome, why: string): boolean {
    const mq = this.state.mq;
    if (!mq) return false;
    this.commandTo({
      type: "run.signal",
      commandId: `mq-leave.${this.state.runId}.${mq.n}`,
      runId: mq.queue,
      issuedAt: this.clock.now,
      actor: "merge-queue",
      signal: { name: "mq_leave", runId: this.state.runId, outcome },
    });
    delete this.state.mq;
    this.changed = true;
    this.emit({ type: "mq.left", at: this.clock.now, data: { queue: mq.queue, outcome, reason: why } });
    return true;
  }

  /** `mq_turn`: the queue gives the run its turn: it is brought up to the latest base (`pr.update`). */
  private mqTurn(queue: string): KernelError | null {
    const mq = this.state.mq;
    const pr = this.state.pr;
    const forge = this.state.project?.forge;
    if (!mq || mq.queue !== queue) {
      // Not (or no longer) in that queue: it must not wait for this run.
      this.commandTo({
        type: "run.signal",
        commandId: `mq-leave.${this.state.runId}.stale.${this.clock.now}`,
        runId: queue,
        issuedAt: this.clock.now,
        actor: "merge-queue",
        signal: { name: "mq_leave", runId: this.state.runId, outcome: "cancelled" },
      });
      return null;
    }
    if (mq.state !== "queued") return null;
    if (!pr || pr.record.number === undefined || !forge || !pr.record.head || !pr.record.base) {
      this.mqLeave("failed", "no pull request to update");
      return null;
    }
    const attemptId = `${this.state.runId}.pr.update.${mq.n}`;
    const approvedSha = pr.review?.sha ?? pr.record.headSha;
    const payload: PrUpdatePayload = {
      forge,
      number: pr.record.number,
      head: pr.record.head,
      base: pr.record.base,
      ...(approvedSha && /^[0-9a-f]{7,64}$/.test(approvedSha) ? { approvedSha } : {}),
      strategy: this.prRules().merge.update ?? "rebase",
    };
    const ws = this.workspace();
    this.effects.push({
      kind: "work",
      work: {
        stepId: PR_UPDATE_STEP,
        attemptId,
        attempt: mq.n,
        kind: "sync",
        index: -1,
        role: "maintainer",
        type: ForgeStepType.Update,
        phase: PR_UPDATE_STEP,
        inputs: {},
        payload,
        iteration: 0,
        rework: 0,
        ...(ws ? { workspace: ws } : {}),
        at: this.clock.now,
      },
    });
    this.state.mq = { ...mq, state: "updating", attemptId, since: this.clock.now };
    this.changed = true;
    this.emit({ type: "mq.turn", at: this.clock.now, data: { queue, attemptId, base: pr.record.base } });
    return null;
  }

  /**
   * `mq_updated`: the hub brought the branch up to the base. Unchanged in what was approved (the
   * same patch id): CI runs again on the new head, then the merge. Changed: the approval no longer
   * covers it, so it is asked for again (the review dismissed, the run out of the queue). A conflict:
   * out of the queue, and back to the implementer with the conflict. A stale answer changes nothing.
   */
  private mqUpdated(sig: Extract<Signal, { name: "mq_updated" }>, actor?: string): KernelError | null {
    const mq = this.state.mq;
    if (!mq || mq.state !== "updating" || mq.attemptId !== sig.attemptId) return null;
    const pr = this.state.pr!;
    const now = this.clock.now;
    if (sig.error !== undefined) {
      this.state.mqHold = { reason: sig.error, ...(pr.record.headSha ? { headSha: pr.record.headSha } : {}) };
      this.emit({ type: "mq.update_failed", at: now, data: { queue: mq.queue, error: sig.error } });
      this.mqLeave("failed", `the update failed: ${sig.error}`);
      this.mergeFailed(`the update onto ${pr.record.base ?? "the base"} failed`, actor);
      return null;
    }
    if (sig.conflict) {
      this.state.mqHold = { reason: "conflict", ...(pr.record.headSha ? { headSha: pr.record.headSha } : {}) };
      this.emit({ type: "mq.conflict", at: now, data: { queue: mq.queue, files: sig.conflict.files } });
      this.mqLeave("conflict", `bringing it up to ${pr.record.base ?? "the base"} conflicts`);
      this.mergeFailed(`bringing the branch up to ${pr.record.base ?? "the base"} conflicts`, actor);
      this.conflictFix(sig.conflict, pr.record.base, actor);
      return null;
    }
    const headSha = sig.headSha ?? pr.record.headSha;
    if (headSha) this.state.pr = { ...pr, record: { ...pr.record, headSha } };
    // Unchanged only when both changes are known and the same (or both empty); what cannot be compared is asked again.
    const changed = sig.approvedPatchId !== sig.patchId;
    this.emit({
      type: "mq.updated",
      at: now,
      data: { queue: mq.queue, ...(headSha ? { headSha } : {}), ...(sig.strategy ? { strategy: sig.strategy } : {}), changed },
    });
    if (changed) {
      // What will merge is not what was approved: ask again.
      const review = this.state.pr!.review;
      this.state.pr = { ...this.state.pr!, review: { state: "dismissed", comments: 0, at: now, ...(review?.reviewer ? { reviewer: review.reviewer } : {}) } };
      this.emit({
        type: "pr.approval_invalidated",
        at: now,
        data: {
          reason: "the update onto the base changed what was approved",
          before: sig.approvedPatchId,
          after: sig.patchId,
          ...(headSha ? { headSha } : {}),
        },
      });
      this.setFacts(
        { review: { state: "dismissed", at: now }, ...this.cd.def.pullRequests?.sets?.changesRequested },
        "the approval no longer covers the pull request",
      );
      this.mqLeave("reapproval", "the update changed what was approved");
      this.mergeFailed("the update changed what was approved: approval asked for again", actor);
      return null;
    }
    this.state.mq = { ...mq, state: "checking", since: now, ...(headSha ? { headSha } : {}), ...(sig.strategy ? { strategy: sig.strategy } : {}) };
    this.changed = true;
    return null;
  }

  /** Out of PendingMerge (or wherever its merge step's failure leads): the event a failed merge step emits. */
  private mergeFailed(why: string, actor?: string) {
    const merge = this.steps().find((d) => d.type === ForgeStepType.Merge);
    const event = merge?.emits?.failed;
    if (event) this.stageEvent(event, why, actor);
  }

  /** A conflict goes back to the implementer: the fixing step runs again (or the fix's stage event), told the conflict. */
  private conflictFix(conflict: { files: string[]; message: string }, base: string | undefined, actor?: string) {
    const ci = this.cd.def.ci;
    const fix = ci !== undefined && ci !== "off" ? ci.fix : undefined;
    const stepId = this.implementingStep(fix?.step);
    if (!stepId) return;
    const feedback = [
      `Bringing the branch up to ${base ?? "the base"} conflicts in: ${conflict.files.join(", ") || "(files not named)"}.`,
      conflict.message.trim().slice(0, 4_000),
      `Rebase the work onto the latest ${base ?? "base"} and resolve the conflicts, keeping both sides' intent.`,
    ]
      .filter(Boolean)
      .join("\n\n")
      .slice(0, 10_000);
    const why = "a merge conflict with the base";
    const onStart = fix?.onStart ?? this.cd.def.pullRequests?.review?.onChangesRequested;
    let cannot: KernelError | null;
    if (onStart) {
      this.#hints.set(stepId, feedback);
      cannot = this.stageEvent(onStart.event, why, actor);
    } else {
      const s = this.status(stepId);
      if (s === "completed" || s === "skipped") this.sendStep(stepId, { type: "RESET", reason: "rework", at: this.clock.now, rand: this.clock.rand });
      cannot = this.signal({ name: "run_step", stepId, feedback }, actor, why);
    }
    if (cannot) this.#hints.delete(stepId);
    this.emit({ type: "mq.conflict_fix", at: this.clock.now, data: { stepId, files: conflict.files, ...(cannot ? { refused: cannot.message } : {}) } });
  }

  /**
   * A merge queue run (`mergeQueue` definitions): `mq_enqueue` adds a run at the end (once),
   * `mq_leave` takes it out; whenever the first is not the one whose turn it is, the first gets its
   * turn (`mq_turn`). Its members, in order, are its view.
   */
  private queueSignal(sig: Extract<Signal, { name: "mq_enqueue" | "mq_leave" }>, actor?: string): KernelError | null {
    if (!this.cd.def.mergeQueue) return this.refuse(RefusalCode.IllegalTransition, `${sig.name}: run ${this.state.runId} is not a merge queue`);
    const q: MergeQueueState = this.state.mergeQueue ?? { entries: [], turns: 0 };
    const now = this.clock.now;
    let entries = q.entries;
    if (sig.name === "mq_enqueue") {
      if (entries.some((e) => e.runId === sig.runId)) return null;
      entries = [...entries, { runId: sig.runId, ...(sig.number !== undefined ? { number: sig.number } : {}), at: now }];
      this.emit({ type: "mq.entered", at: now, data: { runId: sig.runId, position: entries.length, ...(actor ? { actor } : {}) } });
    } else {
      if (!entries.some((e) => e.runId === sig.runId)) return null;
      entries = entries.filter((e) => e.runId !== sig.runId);
      this.emit({ type: "mq.removed", at: now, data: { runId: sig.runId, outcome: sig.outcome, ...(actor ? { actor } : {}) } });
    }
    let next: MergeQueueState = { ...q, entries };
    if (next.head && !entries.some((e) => e.runId === next.head!.runId)) {
      const { head: _h, ...rest } = next;
      next = rest;
    }
    const first = entries[0];
    if (first && !next.head) {
      const turn = next.turns + 1;
      next = { ...next, head: { runId: first.runId, at: now, turn }, turns: turn };
      this.commandTo({
        type: "run.signal",
        commandId: `mq-turn.${this.state.runId}.${turn}`,
        runId: first.runId,
        issuedAt: now,
        actor: "merge-queue",
        signal: { name: "mq_turn", queue: this.state.runId },
      });
      this.emit({ type: "mq.turn_given", at: now, data: { runId: first.runId, turn, waiting: entries.length - 1 } });
    }
    this.state.mergeQueue = next;
    this.changed = true;
    return null;
  }

  /** Whether the run waits for its open PR instead of completing (`pullRequests.follow`). */
  private followsPr(): boolean {
    return this.cd.def.pullRequests?.follow === true && this.state.pr?.record.state === "open";
  }

  /** Every step not done yet completes (a forced approval), then the run: seed 004's merged pull request. */
  private completeEverything(why: string, actor?: string) {
    const at = { at: this.clock.now, rand: this.clock.rand };
    const ids = [...(this.cd.planning ? [this.cd.planning.id] : []), ...this.steps().map((d) => d.id)];
    for (const id of ids) {
      if (FINAL_RUN_STATUSES.has(this.runStatus())) return;
      if (!SETTLED.has(this.status(id))) this.sendStep(id, { type: "APPROVE", force: true, reason: why, ...(actor ? { actor } : {}), ...at });
    }
    // A run still planning has its plan now (approved): planned first, then completed.
    if (this.runStatus() === "planning") this.sendRun({ type: "PLANNED", ...at });
    if (!FINAL_RUN_STATUSES.has(this.runStatus()))
      this.sendRun({ type: "COMPLETE", result: this.lastOutput(), reason: why, ...(actor ? { actor } : {}), ...at });
  }

  snapshotRun(): Snap<RunContext> {
    const persisted = { value: this.runSnap.value, context: this.runSnap.context as RunContext };
    RESOLVED.set(persisted, this.runSnap);
    return persisted;
  }

  done(): KernelResult {
    // Unchanged added steps keep their array, so the next action finds its derived steps cached.
    const extraSteps = this.#origExtra ?? this.state.extraSteps;
    return { state: { ...this.state, extraSteps, run: this.snapshotRun() }, effects: endLast(this.effects), changed: this.changed };
  }
}

/** The step id a `pr.sync` work item names (it is not a step of the run). */
export const PR_SYNC_STEP = "pull_request";

/** The step id a `pr.update` work item (the merge queue's turn) names: it is not a step of the run. */
export const PR_UPDATE_STEP = "merge_queue";

/** Whether a step is forge I/O (`pr.open`, `pr.ready`, `pr.merge`) rather than an agent's work. */
export function isForgeStep(d: { type: string }): boolean {
  return d.type === ForgeStepType.Open || d.type === ForgeStepType.Ready || d.type === ForgeStepType.Merge;
}

/** A forge step's output that is not what its type answers: the step fails, not retried. */
function invalidOutput(type: string, err: { issues: { path: PropertyKey[]; message: string }[] }): StepError {
  const issues = err.issues.map((i) => `${i.path.map(String).join(".") || "output"}: ${i.message}`).join("; ");
  return { code: "INVALID_OUTPUT", message: `${type} answered an output that is not its result: ${issues}`.slice(0, 2_000), retryable: false };
}

/**
 * A run's end is its last event: what settling a finished run does (its steps cancelled) is recorded
 * before `run.finished`, so a reader that stops at `run.finished` has seen the whole run.
 */
function endLast(effects: KernelEffect[]): KernelEffect[] {
  const i = effects.findIndex((e) => e.kind === "event" && e.type === "run.finished");
  if (i < 0 || i === effects.length - 1) return effects;
  return [...effects.slice(0, i), ...effects.slice(i + 1), effects[i]!];
}

/**
 * Machine snapshots by the persisted `{value, context}` they were saved as: a run the core keeps in
 * memory between commands is transitioned again without XState rebuilding its snapshots. A persisted
 * snapshot read back from storage is a new object, and is resolved as before.
 */
const RESOLVED = new WeakMap<object, AnyMachineSnapshot>();

function resolved(machine: AnyStateMachine, persisted: Snap<unknown>): AnyMachineSnapshot {
  const hit = RESOLVED.get(persisted);
  if (hit) return hit;
  const snap = machine.resolveState(persisted as never) as AnyMachineSnapshot;
  RESOLVED.set(persisted, snap);
  return snap;
}

/** The step machine's initial snapshot (see freshStep). */
let FRESH: Snap<StepContext> | undefined;

/** A run's own limits (built once: zod compiles a schema on first use). */
const LimitsOverride = Limits.partial();

/** Step lists derived from a definition and a run's added steps, reused while both are unchanged. */
const derivedSteps = new WeakMap<StepDef[], { cd: CompiledDefinition; steps: RunStepDef[] }>();

/** Starts a run of `cd`: its record, its first events, and (with autoStart) its first work. */

/**
 * A run's labels at creation: the ones it was given, plus its git branch (the definition's
 * `workspace.branch` resolved from the input and facts) under `branch` unless it names one itself.
 */
export function runLabels(
  cd: CompiledDefinition,
  labels: Record<string, string> | undefined,
  input: Record<string, unknown> | undefined,
  facts?: Record<string, unknown>,
): Record<string, string> | undefined {
  const t = cd.def.workspace?.branch;
  if (t === undefined || labels?.[BRANCH_LABEL] !== undefined) return labels;
  const v = resolveTemplate(t, { input: input ?? {}, facts: { ...cd.def.facts, ...facts } });
  if (typeof v !== "string" || !v.trim() || v.trim().length > 256 || v.includes("${")) return labels;
  return { ...labels, [BRANCH_LABEL]: v.trim() };
}

/**
 * Why a run of `cd` bringing `steps` cannot be created, or null. A definition whose runs bring their
 * steps and run them by themselves, with no step of its own, no default steps and no planning step
 * to add some, would wait for ever on a run that brings none: such a run needs `steps`.
 */
export function missingSteps(cd: CompiledDefinition, steps: readonly unknown[] | undefined): string | null {
  if (!cd.def.dynamicSteps || cd.def.execution !== "auto" || cd.planning || cd.steps.length > 0) return null;
  if ((steps?.length ?? 0) > 0 || (cd.def.defaultSteps?.length ?? 0) > 0) return null;
  return `definition ${cd.key} runs the steps its runs bring, and this one brings none: steps is required`;
}

export function createRun(cd: CompiledDefinition, opts: CreateRunOptions, clock: Clock): KernelResult {
  const missing = missingSteps(cd, opts.steps);
  if (missing) throw new Error(missing);
  const createdAt = opts.createdAt ?? clock.now;
  const [runSnap, runActions] = pureInitial<AnyMachineSnapshot>(runMachineFor(cd), {
    runId: opts.runId,
    projectId: opts.projectId,
    createdAt,
    initialStage: cd.initialStage,
  });
  const parsed = <T>(what: string, r: { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } }): T => {
    if (r.success) return r.data;
    throw new Error(`invalid ${what}: ${r.error.issues.map((i) => `${i.path.join(".") || what}: ${i.message}`).join("; ")}`);
  };
  // Only the limits the run names override the definition's (zod fills in defaults for the rest).
  const given = parsed("limits", LimitsOverride.safeParse(opts.limits ?? {})) as Record<string, unknown>;
  const overrides = Object.fromEntries(
    Object.keys(opts.limits ?? {})
      .filter((k) => k in given)
      .map((k) => [k, given[k]]),
  );
  const limits = { ...cd.def.limits, ...overrides } as Limits;
  const budgets = [...cd.def.budgets, ...(opts.budgets ?? []).map((b, i) => parsed(`budgets.${i}`, Budget.safeParse(b)))];
  for (const d of cd.def.steps) if (d.budget) budgets.push({ scope: "step", target: d.id, ...d.budget, mode: "strict" });
  const base: RunState = {
    runId: opts.runId,
    projectId: opts.projectId,
    definition: { id: cd.def.id, version: cd.def.version, hash: cd.hash },
    input: opts.input ?? {},
    createdAt,
    run: { value: runSnap.value, context: runSnap.context as RunContext },
    steps: {},
    extraSteps: [],
    facts: { ...cd.def.facts, ...opts.facts },
    stepsCompleted: 0,
    loops: {},
    ledger: emptyLedger(),
    budgets,
    extensions: {},
    warned: [],
    limits,
    stagesVisited: [],
    planApplied: false,
  };
  const ci = resolveCiPolicy(cd.def.ci, opts.ciDefaults);
  if (ci) base.ci = { policy: ci, attempts: 0 };
  const worker = resolveWorkerPolicy(cd.def.worker, opts.workerDefaults);
  if (worker) base.worker = worker;
  if (opts.project && (opts.project.forge || opts.project.baseBranch || opts.project.merge)) base.project = opts.project;
  const pr = resolvePrRules(cd.def.pullRequests, opts.prDefaults, opts.project?.merge);
  base.prRules = pr;
  if (opts.reportTo !== undefined) base.reportTo = opts.reportTo;
  // A schedule's input is its schedule: refused whole when it is not one.
  if (cd.def.schedule) base.schedule = { spec: parseScheduleSpec(opts.input ?? {}), gen: 0, active: [], queued: [], fired: 0, skipped: 0 };
  // An intake's input is its rules: refused whole when they are not.
  if (cd.def.intake) base.intake = { rules: parsed("intake rules", IntakeRules.safeParse(opts.input ?? {})), n: 0, failures: 0, taken: {} };
  const k = new Kernel(cd, base, clock);
  void runActions;
  const labels = runLabels(cd, opts.labels, opts.input, opts.facts);
  k.effects.push({
    kind: "event",
    type: "run.created",
    at: createdAt,
    data: {
      definition: { id: cd.def.id, version: cd.def.version },
      view: cd.def.view,
      input: opts.input ?? {},
      ...(opts.title !== undefined ? { title: opts.title } : {}),
      ...(labels !== undefined ? { labels } : {}),
      ...(opts.actor ? { actor: opts.actor } : {}),
      ...(ci ? { ci } : {}),
      ...(worker ? { worker } : {}),
      ...(base.project?.forge ? { forge: base.project.forge } : {}),
    },
  });
  cd.steps.forEach((s) => (k.state.steps[s.id] = k.freshStep(s.id, s.index)));
  if (cd.planning) k.state.planning = k.freshStep(cd.planning.id, -1);
  // A run that brings no steps gets the definition's default ones (seed 000's implicit dev.log).
  const steps = opts.steps?.length ? opts.steps : cd.def.defaultSteps;
  if (steps?.length) {
    if (!cd.def.dynamicSteps) throw new Error(`definition ${cd.key} does not take steps at creation`);
    k.setCreating(true);
    const err = k.addSteps(steps, "created with the run");
    k.setCreating(false);
    if (err) throw new Error(err.message);
  }
  const created = k.effects[0];
  if (created?.kind === "event") created.data = { ...created.data, steps: k.steps().map((d) => d.id) };
  if (opts.autoStart) k.apply({ type: "signal", signal: { name: "start" }, ...(opts.actor ? { actor: opts.actor } : {}) });
  k.settle();
  return k.done();
}

/** Applies one action to a run. A refusal returns the state unchanged and no effects. */
export function applyAction(cd: CompiledDefinition, state: RunState, action: KernelAction, clock: Clock): KernelResult {
  const k = new Kernel(cd, state, clock);
  const error = k.apply(action);
  if (error) return { state, effects: [], error, changed: false };
  k.settle();
  return k.done();
}

/** A step's persisted status. */
export { stepStatus };

/**
 * Whether a dispatched attempt is still the one the run waits for: its step is running (or in QA)
 * with that attempt, and the run is not finished. An agent hub whose session's attempt is no longer
 * in flight (the run was cancelled, the step timed out or was retried) stops the session.
 */
export function attemptInFlight(state: RunState, stepId: string, attemptId: string): boolean {
  const snap = state.planning && state.planning.context.stepId === stepId ? state.planning : state.steps[stepId];
  if (!snap) return false;
  const status = stepStatus(snap);
  return (status === "running" || status === "qa") && attemptIdOf(snap.context) === attemptId;
}
