import { jitterOf } from "./schedules.js";
import type { RunSummary, RunViewInput as RunView, StepViewInput as StepView } from "@orch/contracts";
import type { CompiledDefinition, RetryPolicy, StepDef } from "./definition.js";
import { stepStatus, type RunState, type Snap } from "./kernel.js";
import { attemptIdOf, type StepContext } from "./step-machine.js";
import { checksState, type PrState } from "./pull-requests.js";
import { workerRetry } from "./worker.js";

/**
 * A run as the core publishes it (contracts' RunView): its steps in order with what they did, facts,
 * usage, gate. Pure: the core computes it with each transition; readers never see the kernel's state.
 */

type Described = Pick<StepDef, "id" | "role" | "type" | "title" | "payload" | "model" | "retry" | "qa"> & {
  index: number;
  stage: string;
  phase?: string | undefined;
  /** What a step the run brought or added is given (its inputs are the run's, not the definition's templates). */
  given?: Record<string, unknown>;
};

/**
 * Views of steps by the snapshot they describe: a step that did not move in a transition (most of
 * them) is described once, not again with every transition of its run.
 */
const VIEWS = new WeakMap<object, { d: Described; usage: unknown; meta: unknown; view: StepView }>();

function stepView(d: Described, snap: Snap<StepContext> | undefined, state: RunState, retry: RetryPolicy): StepView {
  const usage = state.ledger.byStep[d.id];
  const meta = state.stepMetadata?.[d.id];
  const hit = snap ? VIEWS.get(snap) : undefined;
  if (hit && hit.d === d && hit.usage === usage && hit.meta === meta) return hit.view;
  const view = describeStep(d, snap, usage, retry, meta);
  if (snap) VIEWS.set(snap, { d, usage, meta, view });
  return view;
}

function describeStep(
  d: Described,
  snap: Snap<StepContext> | undefined,
  usage: StepView["usage"] | undefined,
  retry: RetryPolicy,
  meta: Record<string, unknown> | undefined,
): StepView {
  const c = snap?.context;
  const status = stepStatus(snap);
  const out: StepView = {
    id: d.id,
    index: d.index,
    status,
    role: d.role,
    type: d.type,
    stage: d.stage,
    maxAttempts: d.retry?.maxAttempts ?? retry.maxAttempts,
  };
  // Counters that are 0 are left out (the view's schema reads them as 0).
  if (c?.attempt) out.attempt = c.attempt;
  if (c?.retries) out.retries = c.retries;
  if (c?.reworks) out.reworks = c.reworks;
  if (c?.iteration) out.iteration = c.iteration;
  if (d.title !== undefined) out.title = d.title;
  if (d.phase !== undefined) out.phase = d.phase;
  if (d.payload !== undefined) out.payload = d.payload;
  if (d.given !== undefined && Object.keys(d.given).length > 0) out.inputs = d.given;
  if (meta !== undefined) out.metadata = meta;
  if (d.model !== undefined) out.model = d.model;
  if (d.qa) out.qaRole = d.qa.role ?? "qa";
  if (c && c.attempt > 0) {
    out.attemptId = attemptIdOf(c);
    if (status === "running" || status === "qa") out.inflight = true;
  }
  if (c?.revision !== undefined) out.revision = c.revision;
  if (c?.error !== undefined) {
    out.error = c.error.message;
    out.errorCode = c.error.code;
  }
  if (c?.output !== undefined) out.output = c.output;
  if (c?.notes?.length) out.notes = c.notes;
  if (c?.startedAt !== undefined) out.startedAt = c.startedAt;
  if (c?.finishedAt !== undefined) out.finishedAt = c.finishedAt;
  if (usage) out.usage = usage;
  return out;
}

/** The described definitions of a run's steps (its definition's, then those it brought or added), built once per list. */
const DESCRIBED = new WeakMap<object, { cd: CompiledDefinition; defs: readonly Described[] }>();

function describedSteps(cd: CompiledDefinition, extra: RunState["extraSteps"]): readonly Described[] {
  if (extra.length === 0) return cd.steps;
  const hit = DESCRIBED.get(extra);
  if (hit && hit.cd === cd) return hit.defs;
  const firstStage = cd.stages.find((s) => !s.terminal)?.id ?? cd.initialStage;
  const defs: Described[] = [
    ...cd.steps,
    ...extra.map((s, i) => ({
      ...s,
      given: s.inputs,
      index: cd.steps.length + i,
      stage: s.stage ?? firstStage,
      phase: s.phase ?? (cd.def.stages.length > 0 ? (s.stage ?? firstStage) : s.id),
    })),
  ];
  DESCRIBED.set(extra, { cd, defs });
  return defs;
}

/** The run's view: its summary (built by the core from the same state) and its steps described. */
export function runView(cd: CompiledDefinition, state: RunState, summary: RunSummary & Pick<RunView, "mode" | "stepsRun">): RunView {
  const defs = describedSteps(cd, state.extraSteps);
  const retry = { ...cd.def.retry, ...workerRetry(state.worker) } as RetryPolicy;
  const steps = defs.map((d) => stepView(d, state.steps[d.id], state, retry));
  const rc = state.run.context;
  const v: RunView = {
    ...summary,
    input: state.input,
    steps,
    facts: state.facts,
    usage: state.ledger.total,
    usageBy: { phase: state.ledger.byPhase, role: state.ledger.byRole, model: state.ledger.byModel },
  };
  if (rc.result !== undefined) v.result = rc.result;
  if (cd.planning) {
    const p = stepView(cd.planning, state.planning, state, retry);
    v.planning = p;
    v.steps = [p, ...steps];
  }
  if (rc.gate) v.gate = rc.gate.budget;
  if (state.pr) v.pullRequest = pullRequestView(state.pr);
  if (state.mq) {
    const m = state.mq;
    v.mergeQueue = {
      queue: m.queue,
      state: m.state,
      since: m.since,
      ...(m.headSha ? { headSha: m.headSha } : {}),
      ...(m.strategy ? { strategy: m.strategy } : {}),
      ...(m.state === "updating" && m.attemptId ? { attemptId: m.attemptId } : {}),
    };
  } else if (state.mergeQueue) {
    const q = state.mergeQueue;
    const base = typeof state.input.base === "string" ? state.input.base : undefined;
    v.mergeQueue = {
      ...(base ? { base } : {}),
      entries: q.entries.map((e, i) => ({ runId: e.runId, ...(e.number !== undefined ? { number: e.number } : {}), at: e.at, position: i + 1 })),
      ...(q.head ? { head: q.head.runId } : {}),
    };
  }
  if (state.schedule) {
    const s = state.schedule;
    v.schedule = {
      spec: s.spec as unknown as Record<string, unknown>,
      ...(s.nextAt !== undefined ? { nextAt: s.nextAt, nextFireAt: s.nextAt + jitterOf(state.runId, s.nextAt, s.spec.jitterMs) } : {}),
      ...(s.lastAt !== undefined ? { lastAt: s.lastAt } : {}),
      active: s.active.map((a) => ({ runId: a.runId, at: a.at })),
      queued: s.queued,
      fired: s.fired,
      skipped: s.skipped,
    };
  }
  if (state.intake) {
    const s = state.intake;
    const all = Object.entries(s.taken);
    const count = (st: string) => all.filter(([, t]) => t.status === st).length;
    v.intake = {
      provider: s.rules.provider,
      state: s.paused ? "paused" : "active",
      ...(s.paused ? { paused: s.paused } : {}),
      everyMs: s.rules.everyMs,
      syncs: s.n,
      ...(s.sync ? { sync: s.sync } : {}),
      ...(s.timer ? { nextSyncAt: s.timer.dueAt } : {}),
      ...(s.lastSyncAt !== undefined ? { lastSyncAt: s.lastSyncAt } : {}),
      failures: s.failures,
      ...(s.lastError ? { lastError: s.lastError } : {}),
      counts: { taken: all.length, active: count("active") + count("failed"), ended: count("ended"), quarantined: count("quarantined") },
      quarantined: all
        .filter(([, t]) => t.status === "quarantined")
        .slice(-100)
        .map(([ticketId, t]) => ({ ticketId, key: t.key, runId: t.runId, failedRuns: t.failedRuns })),
      pendingWrites: Object.keys(s.writes ?? {}).length,
      ...(s.writes && Object.keys(s.writes).length > 0
        ? {
            writes: Object.values(s.writes)
              .sort((a, b) => a.firstAt - b.firstAt)
              .slice(0, 100)
              .map((w) => ({
                writeId: w.writeId,
                ticket: w.ticket.key,
                keys: w.writes.map((x) => x.key),
                failures: w.failures,
                state: w.state,
                ...(w.timer ? { dueAt: w.timer.dueAt } : {}),
                lastError: { code: w.lastError.code, message: w.lastError.message },
              })),
          }
        : {}),
    };
  }
  return v;
}

/** The run's pull request as the view shows it (contracts' PullRequestView). */
function pullRequestView(pr: PrState): NonNullable<RunView["pullRequest"]> {
  const out: NonNullable<RunView["pullRequest"]> = { ...pr.record };
  if (pr.openedAt !== undefined) out.openedAt = pr.openedAt;
  if (pr.closedAt !== undefined) out.closedAt = pr.closedAt;
  if (pr.mergedAt !== undefined) out.mergedAt = pr.mergedAt;
  if (pr.mergeSha !== undefined) out.mergeSha = pr.mergeSha;
  const state = checksState(pr.checks, pr.record.headSha);
  if (pr.checks && Object.keys(pr.checks).length > 0) out.checks = { state: state ?? "pending", at: pr.checksAt ?? 0, byName: pr.checks };
  if (pr.review) out.review = pr.review;
  if (pr.reviewFix) out.reviewFixAttempts = pr.reviewFix.attempts;
  if (pr.sync) out.sync = pr.sync;
  if (pr.poll) out.nextPollAt = pr.poll.dueAt;
  return out;
}
