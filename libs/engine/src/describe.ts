import type { RunSummary, RunView, StepView } from "@orch/contracts";
import type { CompiledDefinition, RetryPolicy, StepDef } from "./definition.js";
import { stepStatus, type RunState, type Snap } from "./kernel.js";
import { attemptIdOf, type StepContext } from "./step-machine.js";

/**
 * A run as the core publishes it (contracts' RunView): its steps in order with what they did, facts,
 * usage, gate. Pure: the core computes it with each transition; readers never see the kernel's state.
 */

type Described = Pick<StepDef, "id" | "role" | "type" | "title" | "payload" | "model" | "retry" | "qa"> & {
  index: number;
  stage: string;
  phase?: string | undefined;
};

function stepView(d: Described, snap: Snap<StepContext> | undefined, state: RunState, retry: RetryPolicy): StepView {
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
    attempt: c?.attempt ?? 0,
    retries: c?.retries ?? 0,
    reworks: c?.reworks ?? 0,
    iteration: c?.iteration ?? 0,
  };
  if (d.title !== undefined) out.title = d.title;
  if (d.phase !== undefined) out.phase = d.phase;
  if (d.payload !== undefined) out.payload = d.payload;
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
  const u = state.ledger.byStep[d.id];
  if (u) out.usage = u;
  return out;
}

/** The run's view: its summary (built by the core from the same state) and its steps described. */
export function runView(cd: CompiledDefinition, state: RunState, summary: RunSummary & Pick<RunView, "mode" | "stepsRun">): RunView {
  const firstStage = cd.stages.find((s) => !s.terminal)?.id ?? cd.initialStage;
  const defs: Described[] = [
    ...cd.steps,
    ...state.extraSteps.map((s, i) => ({
      ...s,
      index: cd.steps.length + i,
      stage: s.stage ?? firstStage,
      phase: s.phase ?? (cd.def.stages.length > 0 ? (s.stage ?? firstStage) : s.id),
    })),
  ];
  const retry = cd.def.retry as RetryPolicy;
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
  return v;
}
