import type { FeedEvent } from "@orch/bus";
import {
  DEFAULT_PROJECT,
  FORGE_STEP_TYPES,
  PROTOCOL_NAME_LABEL,
  type ProjectRecord,
  type RunEvent,
  type RunStatus,
  type RunView,
  type StepStatus,
  type StepView,
  type WorkKind,
} from "@orch/contracts";
import { runNumberOf, runOfNumber, splitStepNumber, stepNumber, type RunsApi } from "@orch/runs";

/**
 * Seed 004 (TasksGodzilla) over runs: its integer ids, its status vocabularies and its views of
 * projects, protocol runs, step runs, events and jobs. A protocol run is any run with a project
 * (runs of the `protocol` definition made here, and runs made through other surfaces); a step run
 * is one of its steps. Shared by the seed 004 routes and the webhooks (a QA job in seed 004's shape).
 *
 * Integer ids are read, never allocated on a read: a protocol run's is its run number and a step
 * run's its step number (run-numbers.ts: derived from the runs stream, nothing stored); a project's
 * is the number the core gave it when it was created, or when its first run was (on its record,
 * and in the `ids` bucket).
 */

export interface StepRef {
  runId: string;
  stepId: string;
}

const CACHE_MAX = 10_000;

/**
 * Seed 004's integer ids ↔ our project, run and step ids. Everything it finds is kept (numbers and
 * step indexes never change); nothing it does writes.
 */
export class ProtocolIds {
  readonly #runs: RunsApi;
  readonly #runNumbers = new Map<string, number>();
  /** `<runId> <stepId>` → the step's index in its run. */
  readonly #indexes = new Map<string, number>();

  constructor(runs: RunsApi) {
    this.#runs = runs;
  }

  /** The project whose number is `n`, or null. */
  projectOf(n: number): Promise<string | null> {
    return this.#runs.numbers.keyOf("project", n);
  }

  /** The project's number (0 for a project the core has not numbered: made before numbers were). */
  async projectInt(projectId: string, record?: ProjectRecord | null): Promise<number> {
    return (await this.#runs.projectNumber(projectId, record)) ?? 0;
  }

  /** The run whose protocol number is `n` (a run with a project), or null. */
  async runOf(n: number): Promise<string | null> {
    const r = await runOfNumber(this.#runs.bus, n);
    if (!r || r.projectId === DEFAULT_PROJECT) return null;
    remember(this.#runNumbers, r.runId, n);
    return r.runId;
  }

  /** The run's protocol number (0 when the run does not exist). */
  async protocolInt(runId: string): Promise<number> {
    const hit = this.#runNumbers.get(runId);
    if (hit !== undefined) return hit;
    const n = await runNumberOf(this.#runs.bus, runId);
    if (n === null) return 0;
    remember(this.#runNumbers, runId, n);
    return n;
  }

  /**
   * The step's number, from its index in the run (`run`, when the caller has it; else the run as it
   * stands), or null when the run has no such step.
   */
  async stepInt(runId: string, stepId: string, run?: RunView): Promise<number | null> {
    const index = await this.#indexOf(runId, stepId, run);
    if (index === null) return null;
    const runN = await this.protocolInt(runId);
    return runN > 0 ? stepNumber(runN, index) : null;
  }

  /** The step run whose number is `n` (a step of a run with a project), or null. */
  async stepOf(n: number): Promise<StepRef | null> {
    const parts = splitStepNumber(n);
    if (!parts) return null;
    const runId = await this.runOf(parts.runNumber);
    const run = runId ? await this.#runs.get(runId) : null;
    const step = run?.steps.find((s) => s.index === parts.index && s.index >= 0);
    if (!run || !step) return null;
    this.#learn(run);
    return { runId: run.runId, stepId: step.id };
  }

  async #indexOf(runId: string, stepId: string, run?: RunView): Promise<number | null> {
    const key = `${runId} ${stepId}`;
    let hit = this.#indexes.get(key);
    if (hit !== undefined) return hit;
    const view = run?.steps.some((s) => s.id === stepId) ? run : await this.#runs.get(runId);
    if (!view) return null;
    this.#learn(view);
    hit = this.#indexes.get(key);
    return hit ?? null;
  }

  #learn(run: RunView): void {
    for (const s of run.steps) if (s.index >= 0) remember(this.#indexes, `${run.runId} ${s.id}`, s.index);
  }
}

function remember<V>(m: Map<string, V>, k: string, v: V): void {
  if (m.has(k)) return;
  if (m.size >= CACHE_MAX) m.delete(m.keys().next().value!);
  m.set(k, v);
}

// ── statuses ────────────────────────────────────────────────────────────────────────────────

export const PROTOCOL_STATUSES = ["pending", "planning", "planned", "running", "paused", "blocked", "failed", "cancelled", "completed"] as const;
export type ProtocolStatus = (typeof PROTOCOL_STATUSES)[number];
export const STEP_RUN_STATUSES = ["pending", "running", "needs_qa", "completed", "failed", "cancelled", "blocked"] as const;
export type StepRunStatus = (typeof STEP_RUN_STATUSES)[number];

/** A run's status in seed 004's words: a run waiting at a budget gate is `blocked`. */
export function protocolStatusOf(s: RunStatus): ProtocolStatus {
  return s === "waiting" ? "blocked" : s;
}

/**
 * A step's status in seed 004's words: waiting for a retry is still `running`; QA running, or an
 * approval pending, is `needs_qa`; a skipped step is `cancelled` (it will not run).
 */
export function stepStatusOf(s: StepStatus): StepRunStatus {
  switch (s) {
    case "retry_wait":
      return "running";
    case "qa":
    case "waiting_approval":
      return "needs_qa";
    case "skipped":
      return "cancelled";
    default:
      return s;
  }
}

// ── views ───────────────────────────────────────────────────────────────────────────────────

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

export interface ProjectOut {
  id: number;
  name: string;
  git_url: string | null;
  local_path: string | null;
  base_branch: string;
  ci_provider: string | null;
  default_models: Record<string, string> | null;
  created_at: string;
  updated_at: string;
}

/** A project as seed 004 shows it. Its secrets are never shown (the token is kept only as a hash). */
export function toProjectOut(p: ProjectRecord, n: number): ProjectOut {
  return {
    id: n,
    name: p.name,
    git_url: p.gitUrl ?? null,
    local_path: p.localPath ?? null,
    base_branch: p.baseBranch ?? "main",
    ci_provider: p.ciProvider ?? null,
    default_models: p.defaultModels ?? null,
    created_at: iso(p.createdAt)!,
    updated_at: iso(p.updatedAt)!,
  };
}

export interface ProtocolOut {
  id: number;
  project_id: number;
  protocol_name: string;
  status: ProtocolStatus;
  base_branch: string;
  worktree_path: string | null;
  protocol_root: string | null;
  description: string | null;
  template_config: Record<string, unknown> | null;
  template_source: Record<string, unknown> | null;
  spec_hash: string | null;
  spec_validation_status: string | null;
  spec_validated_at: string | null;
  /** Ours: the run behind it, its definition, and why it failed or blocked. */
  run_id: string;
  definition_id: string;
  error: string | null;
  created_at: string;
  updated_at: string;
}

/** The protocol name of any run: its seed 004 name, else its title, else its run id. */
export function protocolNameOf(run: Pick<RunView, "input" | "labels" | "title" | "runId">): string {
  return str(run.input.protocol_name) ?? run.labels[PROTOCOL_NAME_LABEL] ?? run.title ?? run.runId;
}

export function toProtocolOut(run: RunView, ids: { n: number; projectN: number }): ProtocolOut {
  const i = run.input;
  const tc = i.template_config && typeof i.template_config === "object" ? (i.template_config as Record<string, unknown>) : null;
  const meta = obj(tc?.spec_meta);
  return {
    id: ids.n,
    project_id: ids.projectN,
    protocol_name: protocolNameOf(run),
    status: protocolStatusOf(run.status),
    base_branch: str(i.base_branch) ?? "main",
    worktree_path: str(i.worktree_path),
    protocol_root: str(i.protocol_root),
    description: str(i.description) ?? null,
    template_config: tc,
    template_source: i.template_source && typeof i.template_source === "object" ? (i.template_source as Record<string, unknown>) : null,
    spec_hash: str(i.spec_hash),
    spec_validation_status: str(meta.status),
    spec_validated_at: str(meta.validated_at),
    run_id: run.runId,
    definition_id: run.definition.id,
    error: run.error ?? null,
    created_at: iso(run.createdAt)!,
    updated_at: iso(run.updatedAt)!,
  };
}

export interface StepOut {
  id: number;
  protocol_run_id: number;
  step_index: number;
  step_name: string;
  step_type: string;
  status: StepRunStatus;
  retries: number;
  model: string | null;
  engine_id: string | null;
  policy: unknown;
  summary: string | null;
  runtime_state: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

/** The steps seed 004 shows: every step but the planning one (planning is the protocol's own status). */
export function visibleSteps(run: RunView): StepView[] {
  return run.steps.filter((s) => !run.planning || s.id !== run.planning.id);
}

export function toStepOut(run: RunView, step: StepView, ids: { n: number; protocolN: number }): StepOut {
  const p = obj(step.payload);
  const firstIndex = visibleSteps(run)[0]?.index ?? 0;
  const out = obj(step.output);
  const runtime: Record<string, unknown> = {
    step_id: step.id,
    engine_status: step.status,
    role: step.role,
    attempt: step.attempt,
    reworks: step.reworks,
    iteration: step.iteration,
  };
  if (step.error !== undefined) runtime.error = step.error;
  if (step.errorCode !== undefined) runtime.error_code = step.errorCode;
  if (step.output !== undefined) runtime.output = step.output;
  if (step.usage) runtime.usage = step.usage;
  if (step.startedAt !== undefined) runtime.started_at = iso(step.startedAt);
  if (step.finishedAt !== undefined) runtime.finished_at = iso(step.finishedAt);
  return {
    id: ids.n,
    protocol_run_id: ids.protocolN,
    step_index: typeof p.step_index === "number" ? p.step_index : step.index - firstIndex,
    step_name: str(p.step_name) ?? step.title ?? step.id,
    step_type: str(p.step_type) ?? step.type,
    status: stepStatusOf(step.status),
    retries: step.retries,
    model: step.model ?? str(p.model),
    engine_id: str(p.engine_id),
    policy: p.policy ?? null,
    summary: str(p.summary) ?? str(out.summary) ?? step.error ?? null,
    runtime_state: runtime,
    created_at: iso(step.startedAt ?? run.createdAt)!,
    updated_at: iso(step.finishedAt ?? step.startedAt ?? run.createdAt)!,
  };
}

// ── events ──────────────────────────────────────────────────────────────────────────────────

export interface EventOut {
  id: number;
  protocol_run_id: number;
  step_run_id: number | null;
  event_type: string;
  message: string;
  created_at: string;
  metadata: Record<string, unknown>;
  protocol_name: string;
  project_id: number;
  project_name: string | null;
}

const STEP_EVENT: Record<string, [string, (d: Record<string, unknown>) => string]> = {
  "step.added": ["step_added", (d) => `Step ${d.stepId} added${d.why ? ` (${d.why})` : ""}.`],
  "step.started": ["step_started", (d) => `Step ${d.title ?? d.stepId} started (attempt ${d.attempt}).`],
  "step.succeeded": ["step_completed", (d) => `Step ${d.stepId} executed successfully.`],
  "step.retrying": ["step_retry_scheduled", (d) => `Step ${d.stepId} failed (${d.error ?? "error"}); retrying.`],
  "step.failed": ["step_failed", (d) => `Step ${d.stepId} failed: ${d.error ?? "error"}.`],
  "step.qa_started": ["qa_started", (d) => `QA of ${d.stepId} started.`],
  "step.needs_qa": ["step_needs_qa", (d) => `Step ${d.stepId} awaits QA.`],
  "step.qa_passed": ["qa_passed", (d) => `QA of ${d.stepId} passed.`],
  "step.qa_failed": ["qa_failed", (d) => `QA of ${d.stepId} failed${d.error ? `: ${d.error}` : ""}.`],
  "step.awaiting_approval": ["step_awaiting_approval", (d) => `Step ${d.stepId} awaits approval.`],
  "step.approved": ["manual_approval", (d) => `Step ${d.stepId} marked as completed${d.forced ? " manually" : ""}.`],
  "step.rejected": ["step_rejected", (d) => `Step ${d.stepId} rejected.`],
  "step.cancelled": ["step_cancelled", (d) => `Step ${d.stepId} cancelled.`],
  "step.blocked": ["step_blocked", (d) => `Step ${d.stepId} blocked${d.reason ? `: ${d.reason}` : ""}.`],
  "step.skipped": ["step_skipped", (d) => `Step ${d.stepId} skipped.`],
  "step.reset": ["step_reset", (d) => `Step ${d.stepId} reset (${d.reason ?? "reset"}).`],
  "step.result_ignored": ["step_result_ignored", (d) => `A late result of ${d.stepId} was ignored.`],
};

/**
 * A run event as a seed 004 event: its type in seed 004's words (`step_completed`, `paused`,
 * `setup_completed`, …; anything else with dots made underscores), a sentence, and the event's
 * data as metadata (with our own type and sequence).
 */
/**
 * A run's end is one event (`run.finished`, with the status it left and the one it reached); seed
 * 004 reports it as two: the status change (`protocol_completed`, `cancelled`, …), then
 * `protocol_finished`. This is the first one's type, as `seedEventsOf` gives it.
 */
const TERMINAL_STATUS = "run.finished.status";

/** The seed 004 events one run event stands for (a run's end is two). */
export function seedEventsOf(e: RunEvent): RunEvent[] {
  if (e.type !== "run.finished") return [e];
  const d = e.data ?? {};
  return [{ ...e, type: TERMINAL_STATUS, data: { ...d, to: d.status } }, e];
}

export function describeEvent(e: RunEvent, protocolName: string): { event_type: string; message: string } {
  const d = e.data ?? {};
  const setup = protocolName.startsWith("setup-");
  const step = STEP_EVENT[e.type];
  if (step) return { event_type: step[0], message: step[1](d) };
  switch (e.type) {
    case "run.facts_changed": {
      const c = (d.facts as Record<string, unknown> | undefined)?.clarifications as { questions?: unknown; blocking?: unknown } | undefined;
      if (setup && c && Array.isArray(c.questions)) {
        const qs = c.questions.map(String);
        return {
          event_type: "setup_clarifications",
          message: `Onboarding clarifications${c.blocking ? " (setup waits until the clarifications step is approved)" : ""}: ${qs.join(" ")}`,
        };
      }
      return { event_type: "facts_changed", message: "Protocol facts changed." };
    }
    case "run.created":
      return { event_type: setup ? "setup_enqueued" : "protocol_created", message: setup ? "Project setup enqueued." : `Protocol ${protocolName} created.` };
    case "run.status_changed": {
      const to = String(d.to);
      const from = String(d.from);
      const err = typeof d.error === "string" ? `: ${d.error}` : "";
      if (to === "planning")
        return setup
          ? { event_type: "setup_started", message: "Project setup started: resolving the repository." }
          : { event_type: "planning_started", message: "Planning started." };
      if (to === "planned")
        return setup
          ? { event_type: "setup_completed", message: "Project setup completed: repository resolved and setup plan committed." }
          : { event_type: "planning_completed", message: "Planning completed." };
      if (to === "paused") return { event_type: "paused", message: "Protocol paused." };
      if (to === "running" && from === "paused") return { event_type: "resumed", message: "Protocol resumed." };
      if (to === "cancelled") return { event_type: "cancelled", message: "Protocol cancelled." };
      if (to === "blocked" || to === "waiting") return { event_type: "protocol_blocked", message: `Protocol blocked${err}.` };
      if (to === "completed") return { event_type: "protocol_completed", message: "Protocol completed." };
      if (to === "failed")
        return setup
          ? { event_type: "setup_failed", message: `Project setup failed${err}.` }
          : { event_type: "protocol_failed", message: `Protocol failed${err}.` };
      return { event_type: "status_changed", message: `Protocol ${from} → ${to}.` };
    }
    case "run.finished":
      return { event_type: "protocol_finished", message: `Protocol finished: ${String(d.status)}.` };
    case TERMINAL_STATUS:
      return describeEvent({ ...e, type: "run.status_changed" }, protocolName);
    case "budget.exceeded":
      return { event_type: "budget_exceeded", message: `Token budget ${String(d.budget)} exceeded (${String(d.mode)}).` };
    case "budget.extended":
      return { event_type: "budget_extended", message: "Token budget extended." };
    case "loop.iteration":
      return { event_type: "loop_iteration", message: "Loop policy reset steps for another iteration." };
    case "loop.exhausted":
      return { event_type: "loop_exhausted", message: "Loop policy ran out of iterations." };
    case "trigger.fired":
      return { event_type: "trigger_fired", message: "Trigger policy fired." };
    case "ci.fix_attempt":
      return { event_type: "ci_fix_attempt", message: `CI fix attempt ${String(d.attempt)} of ${String(d.max)}: step ${String(d.stepId)} runs again.` };
    case "ci.fix_refused":
      return { event_type: "ci_fix_refused", message: `No CI fix attempt: ${String(d.reason)}.` };
    case "pr.merged":
      return { event_type: "pr_merged", message: d.outcome === "complete" ? "Pull request merged; the protocol completes." : "Pull request merged." };
    default:
      return { event_type: e.type.replace(/\./g, "_"), message: e.type };
  }
}

export interface EventContext {
  protocolN: number;
  protocolName: string;
  projectN: number;
  projectName: string | null;
  stepN: number | null;
}

/**
 * A seed 004 event id: an integer, unique and increasing across every run: the run event's position
 * in the runs stream (its id everywhere else), doubled, plus which of the seed events it stands for
 * (`k`: a run's end is two).
 */
export const eventIdOf = (se: Pick<FeedEvent, "id">, k = 0): number => se.id * 2 + Math.min(k, 1);
/** The run event a seed 004 event id came from (its position in the runs stream). */
export const runEventIdOf = (seedEventId: number): number => Math.floor(seedEventId / 2);

export function toEventOut(se: FeedEvent, e: RunEvent, k: number, ctx: EventContext): EventOut {
  const { event_type, message } = describeEvent(e, ctx.protocolName);
  return {
    id: eventIdOf(se, k),
    protocol_run_id: ctx.protocolN,
    step_run_id: ctx.stepN,
    event_type,
    message,
    created_at: iso(e.at)!,
    metadata: { ...(e.data ?? {}), type: e.type, seq: e.seq, run_id: e.runId },
    protocol_name: ctx.protocolName,
    project_id: ctx.projectN,
    project_name: ctx.projectName,
  };
}

/**
 * Turns stored events into seed 004 events, looking up integer ids as it goes (never giving any),
 * with small caches so a page of events costs one lookup per run and step.
 */
export class EventMapper {
  readonly #runs = new Map<string, Promise<{ n: number; name: string; projectN: number; projectName: string | null } | null>>();
  readonly #steps = new Map<string, Promise<number | null>>();
  readonly #projects = new Map<string, Promise<ProjectRecord | null>>();

  constructor(
    private readonly runs: RunsApi,
    private readonly ids: ProtocolIds,
  ) {}

  #project(projectId: string): Promise<ProjectRecord | null> {
    let p = this.#projects.get(projectId);
    if (!p) this.#projects.set(projectId, (p = this.runs.getProject(projectId)));
    return p;
  }

  #run(runId: string) {
    let r = this.#runs.get(runId);
    if (!r) {
      r = (async () => {
        const run = await this.runs.get(runId);
        if (!run || run.projectId === DEFAULT_PROJECT) return null;
        const project = await this.#project(run.projectId);
        return {
          n: await this.ids.protocolInt(runId),
          name: protocolNameOf(run),
          projectN: await this.ids.projectInt(run.projectId, project),
          projectName: project?.name ?? null,
        };
      })();
      this.#runs.set(runId, r);
    }
    return r;
  }

  async map(se: FeedEvent): Promise<EventOut[]> {
    const run = await this.#run(se.event.runId);
    if (!run) return [];
    const stepId = typeof se.event.data?.stepId === "string" ? (se.event.data.stepId as string) : undefined;
    let stepN: number | null = null;
    if (stepId !== undefined && stepId !== "plan") {
      const key = `${se.event.runId}:${stepId}`;
      let s = this.#steps.get(key);
      if (!s) this.#steps.set(key, (s = this.ids.stepInt(se.event.runId, stepId)));
      stepN = await s;
    }
    const ctx = { protocolN: run.n, protocolName: run.name, projectN: run.projectN, projectName: run.projectName, stepN };
    // A start shows what it dispatched (its transition's work item), as seed 004's events did.
    const w = se.work;
    const event = w ? { ...se.event, data: { ...se.event.data, type: w.type, role: w.role, ...(w.title !== undefined ? { title: w.title } : {}) } } : se.event;
    return seedEventsOf(event).map((e, k) => toEventOut(se, e, k, ctx));
  }
}

// ── jobs ────────────────────────────────────────────────────────────────────────────────────

export type JobType = "plan_protocol_job" | "execute_step_job" | "run_quality_job" | "open_pr_job";

export interface JobOut {
  job_id: string;
  job_type: string;
  payload: Record<string, unknown>;
  status: "queued" | "started" | "finished" | "failed";
  queue: string;
  attempts: number;
  max_attempts: number | null;
  created_at: string | null;
  started_at: string | null;
  ended_at: string | null;
  result: unknown;
  error: string | null;
}

/** The job a work item stands for, in seed 004's words (a PR's opening, merge or sync is the PR's job). */
export function jobTypeOf(kind: WorkKind, type?: string): JobType {
  if (kind === "plan") return "plan_protocol_job";
  if (kind === "qa") return "run_quality_job";
  if (kind === "sync") return "open_pr_job";
  return type === "protocol.open_pr" || type === "ticket.draft_pr" || (type !== undefined && (FORGE_STEP_TYPES as readonly string[]).includes(type))
    ? "open_pr_job"
    : "execute_step_job";
}
