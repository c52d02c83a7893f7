import type { CompiledDefinition } from "./definition.js";
import { stepStatus, type RunState } from "./kernel.js";
import type { Totals } from "./ledger.js";
import type { StepStatus } from "./step-machine.js";

/** A run as an API shows it: its steps in order with what they did, facts, usage, gate. Pure. */

export interface StepDescription {
  id: string;
  index: number;
  status: StepStatus;
  role: string;
  type: string;
  title?: string;
  stage: string;
  attempt: number;
  retries: number;
  reworks: number;
  iteration: number;
  revision?: string;
  error?: string;
  errorCode?: string;
  output?: unknown;
  usage?: Totals;
  startedAt?: number;
  finishedAt?: number;
}

export interface RunDescription {
  steps: StepDescription[];
  planning?: StepDescription;
  facts: Record<string, unknown>;
  usage: Totals;
  gate?: string;
}

export function describeRun(cd: CompiledDefinition, state: RunState): RunDescription {
  const firstStage = cd.stages.find((s) => !s.terminal)?.id ?? cd.initialStage;
  const defs = [...cd.steps, ...state.extraSteps.map((s, i) => ({ ...s, index: cd.steps.length + i, stage: s.stage ?? firstStage }))];
  const describe = (d: { id: string; index: number; role: string; type: string; title?: string | undefined; stage: string }): StepDescription => {
    const snap = cd.planning && d.id === cd.planning.id ? state.planning : state.steps[d.id];
    const c = snap?.context;
    const out: StepDescription = {
      id: d.id,
      index: d.index,
      status: stepStatus(snap),
      role: d.role,
      type: d.type,
      stage: d.stage,
      attempt: c?.attempt ?? 0,
      retries: c?.retries ?? 0,
      reworks: c?.reworks ?? 0,
      iteration: c?.iteration ?? 0,
    };
    if (d.title !== undefined) out.title = d.title;
    if (c?.revision !== undefined) out.revision = c.revision;
    if (c?.error !== undefined) {
      out.error = c.error.message;
      out.errorCode = c.error.code;
    }
    if (c?.output !== undefined) out.output = c.output;
    if (c?.startedAt !== undefined) out.startedAt = c.startedAt;
    if (c?.finishedAt !== undefined) out.finishedAt = c.finishedAt;
    const u = state.ledger.byStep[d.id];
    if (u) out.usage = u;
    return out;
  };
  const r: RunDescription = { steps: defs.map(describe), facts: state.facts, usage: state.ledger.total };
  if (cd.planning) r.planning = describe(cd.planning);
  if (state.run.context.gate) r.gate = state.run.context.gate.budget;
  return r;
}
