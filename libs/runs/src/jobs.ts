import { randomUUID } from "node:crypto";
import { z } from "zod";
import { getRunSummary, hasStoredCommand, newRunId, sendCommand, type Bus } from "@orch/bus";
import { DEFAULT_PROJECT, RunEventType, type RunEvent, type RunSummary, type WorkItem } from "@orch/contracts";

/**
 * Seed 000's jobs ("Orchestrator v0"), served by the gateway's `/api/orchestrator` surface and the
 * gRPC `CreateJob`/`GetJob`/`WatchJob`: the Task Packet, the job view, its SSE frames and log lines,
 * exactly as its document and its original implementation define them (see shared/seeds/CONTRACTS.md),
 * as views over runs of the `job` definition; and the commands that submit and cancel a job.
 */

export const JobStatus = {
  Queued: "queued",
  Running: "running",
  Succeeded: "succeeded",
  Failed: "failed",
  Canceled: "canceled",
} as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];
export const JOB_STATUSES = Object.values(JobStatus) as [JobStatus, ...JobStatus[]];
export const TERMINAL_JOB_STATUSES: ReadonlySet<JobStatus> = new Set([JobStatus.Succeeded, JobStatus.Failed, JobStatus.Canceled]);

/** Loop-guard failure reasons, as the original reports them in `error`. */
export const JobError = {
  WallClockExceeded: "wall_clock_exceeded",
  StepBudgetExceeded: "step_budget_exceeded",
} as const;

export const MAX_STEPS_LIMIT = 100;
export const MAX_WALL_MS_LIMIT = 600_000;
export const DEFAULT_MAX_WALL_MS = 10_000;
/** At most this many retries per step (so three attempts in all). */
export const MAX_STEP_RETRIES = 2;

const JsonObject = z.record(z.string(), z.unknown());

export const TaskStep = z.object({
  id: z.string().min(1).max(200).optional(),
  type: z.string().min(1).max(200),
  payload: JsonObject.optional(),
});
export type TaskStep = z.infer<typeof TaskStep>;

export const TaskLimits = z.object({
  maxSteps: z.int().min(1).max(MAX_STEPS_LIMIT),
  maxWallMs: z.int().min(1).max(MAX_WALL_MS_LIMIT).default(DEFAULT_MAX_WALL_MS),
  maxTokens: z.int().min(1).optional(),
});
export type TaskLimits = z.infer<typeof TaskLimits>;

/** snake_case and kebab-case limit keys its clients send, mapped to the canonical camelCase. */
const LIMIT_ALIASES: Record<string, keyof TaskLimits> = {
  max_steps: "maxSteps",
  "max-steps": "maxSteps",
  max_wall_ms: "maxWallMs",
  "max-wall-ms": "maxWallMs",
  max_tokens: "maxTokens",
  "max-tokens": "maxTokens",
};

function normaliseLimits(v: unknown): unknown {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v)) {
    const canon = LIMIT_ALIASES[k];
    if (canon === undefined) out[k] = val;
    else if (!(canon in v)) out[canon] = val;
  }
  return out;
}

export const TaskPacket = z.object({
  goal: z.string().min(1).max(10_000),
  scope: z.string().max(10_000).optional(),
  planRef: z.string().max(2_000).optional(),
  steps: z.array(TaskStep).max(1_000).default([]),
  limits: z.preprocess(normaliseLimits, TaskLimits),
  flags: JsonObject.optional(),
});
/** What a client sends. */
export type TaskPacketInput = z.input<typeof TaskPacket>;
/** What the engine runs: defaults applied, limit keys normalised. */
export type TaskPacket = z.output<typeof TaskPacket>;

/** A job's status from its run's (seed 000 says `queued`, `succeeded`, `canceled`). */
export function jobStatusOf(runStatus: string): JobStatus {
  switch (runStatus) {
    case "pending":
      return JobStatus.Queued;
    case "completed":
      return JobStatus.Succeeded;
    case "failed":
      return JobStatus.Failed;
    case "cancelled":
      return JobStatus.Canceled;
    default:
      return JobStatus.Running;
  }
}

/**
 * The `job` definition's run for a Task Packet: its steps in order, its limits, the packet as input.
 * An empty `steps` list stays empty here: the definition runs its implicit `dev.log` step, whatever
 * the surface that created the run.
 */
export interface JobRunSpec {
  definition: { id: "job"; version: 1 };
  title: string;
  input: Record<string, unknown>;
  steps: { id: string; title?: string; type: string; role: "implementer"; needs: string[]; payload?: Record<string, unknown> }[];
  limits: { maxSteps: number; maxWallMs: number };
}

export function jobRunSpec(packet: TaskPacket): JobRunSpec {
  return {
    definition: { id: "job", version: 1 },
    title: packet.goal.slice(0, 500),
    input: {
      goal: packet.goal,
      ...(packet.scope === undefined ? {} : { scope: packet.scope }),
      ...(packet.planRef === undefined ? {} : { planRef: packet.planRef }),
      ...(packet.flags === undefined ? {} : { flags: packet.flags }),
      ...(packet.limits.maxTokens === undefined ? {} : { maxTokens: packet.limits.maxTokens }),
    },
    // Step ids are the engine's (s0, s1, …); a packet step's own id travels as its title.
    steps: packet.steps.map((st, i) => ({
      id: `s${i}`,
      ...(st.id === undefined ? {} : { title: st.id }),
      type: st.type,
      role: "implementer" as const,
      needs: i === 0 ? [] : [`s${i - 1}`],
      ...(st.payload === undefined ? {} : { payload: st.payload }),
    })),
    limits: { maxSteps: packet.limits.maxSteps, maxWallMs: packet.limits.maxWallMs },
  };
}

/** `GET /api/orchestrator/jobs/:id`. */
export interface JobView {
  job_id: string;
  status: JobStatus;
  started_at?: string;
  finished_at?: string;
  error?: string;
  stepsRun: number;
}

/** SSE event names of seed 000, in the order a job produces them. */
export const Seed000Event = {
  Ready: "ready",
  Start: "start",
  StepStart: "step.start",
  StepOk: "step.ok",
  StepRetry: "step.retry",
  StepError: "step.error",
  End: "end",
} as const;
export type Seed000Event = (typeof Seed000Event)[keyof typeof Seed000Event];

/** `data:` of a seed 000 SSE frame. */
export interface Seed000Frame {
  job_id: string;
  t: number;
  type: Seed000Event;
  data?: Record<string, unknown>;
}

/** One line of `GET /api/orchestrator/jobs/:id/logs`. */
export interface JobLogLine {
  t: number;
  level: "debug" | "info" | "warn" | "error";
  msg: string;
  data?: Record<string, unknown>;
}

export const LOGS_DEFAULT_N = 50;
export const LOGS_MAX_N = 200;

/** Backoff of the original: `min(500, 50·2^attempt)` ms plus 0–30 ms of jitter. */
export function retryBackoffMs(attempt: number, rand: number): number {
  const base = Math.min(500, 50 * 2 ** attempt);
  return base + Math.floor(Math.max(0, Math.min(1, rand)) * 30);
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

export function toJobView(r: Pick<RunSummary, "runId" | "status" | "startedAt" | "finishedAt" | "error" | "stepsRun">): JobView {
  const v: JobView = { job_id: r.runId, status: jobStatusOf(r.status), stepsRun: r.stepsRun ?? 0 };
  const started = iso(r.startedAt);
  const finished = iso(r.finishedAt);
  if (started !== undefined) v.started_at = started;
  if (finished !== undefined) v.finished_at = finished;
  if (r.error !== undefined) v.error = r.error;
  return v;
}

/** A job the core has not picked up yet: its create command is stored, its record is not. */
export function queuedJobView(jobId: string): JobView {
  return { job_id: jobId, status: "queued", stepsRun: 0 };
}

const num = (v: unknown) => (typeof v === "number" ? v : undefined);

/** The packet step a job's step start dispatched: `{ id?, type, payload? }`. */
function packetStep(w: WorkItem | undefined): Record<string, unknown> {
  if (!w) return {};
  return {
    ...(w.title !== undefined ? { id: w.title } : {}),
    type: w.type,
    ...(w.payload !== undefined ? { payload: w.payload } : {}),
  };
}

/**
 * The seed 000 SSE frame for a run event, or `null` when seed 000 has no such event. A retry
 * re-dispatches a step without a second `step.start`, as the original does. `work` is what the
 * event's transition dispatched for its step (a start's packet step).
 */
export function toSeed000Frame(e: RunEvent, work?: WorkItem): Seed000Frame | null {
  const d = e.data ?? {};
  const base = { job_id: e.runId, t: e.at };
  switch (e.type) {
    case RunEventType.StatusChanged:
      // The run's start is its one change out of `pending`.
      return d.from === "pending" && d.to !== "cancelled" ? { ...base, type: Seed000Event.Start } : null;
    case RunEventType.StepStarted:
      if ((num(d.try) ?? 1) > 1) return null;
      return { ...base, type: Seed000Event.StepStart, data: { i: d.index, step: packetStep(work) } };
    case RunEventType.StepSucceeded:
      return { ...base, type: Seed000Event.StepOk, data: { i: d.index } };
    case RunEventType.StepRetrying:
      return { ...base, type: Seed000Event.StepRetry, data: { i: d.index, attempt: d.retry, backoffMs: d.backoffMs } };
    case RunEventType.StepFailed:
      return { ...base, type: Seed000Event.StepError, data: { i: d.index, error: d.error } };
    case RunEventType.Finished:
      return { ...base, type: Seed000Event.End, data: { status: jobStatusOf(String(d.status)) } };
    default:
      return null;
  }
}

/** Log lines of one run event for `GET /jobs/:id/logs`; adapter notes become lines of their own. */
export function toJobLogLines(e: RunEvent, work?: WorkItem): JobLogLine[] {
  const d = e.data ?? {};
  const t = e.at;
  switch (e.type) {
    case RunEventType.Created: {
      const input = (d.input ?? {}) as Record<string, unknown>;
      return [{ t, level: "info", msg: "job.queued", data: { goal: input.goal } }];
    }
    case RunEventType.StepStarted:
      return [{ t, level: "info", msg: "step.start", data: { i: d.index, type: work?.type, attempt: d.try } }];
    case RunEventType.StepSucceeded: {
      const notes = Array.isArray(d.notes) ? (d.notes as unknown[]) : [];
      return [
        ...notes.map((n): JobLogLine => ({ t, level: "info", msg: String(n), data: { i: d.index } })),
        { t, level: "info", msg: "step.ok", data: { i: d.index } },
      ];
    }
    case RunEventType.StepRetrying:
      return [{ t, level: "warn", msg: "step.retry", data: { i: d.index, attempt: d.retry, backoffMs: d.backoffMs, error: d.error } }];
    case RunEventType.StepFailed:
      return [{ t, level: "error", msg: "step.error", data: { i: d.index, error: d.error } }];
    case RunEventType.StatusChanged:
      return d.from === "pending" && d.to !== "cancelled" ? [{ t, level: "info", msg: "job.start" }] : [];
    case RunEventType.StepResultIgnored:
      return [{ t, level: "debug", msg: "step.result_ignored", data: { attemptId: d.attemptId } }];
    case RunEventType.Finished: {
      const status = jobStatusOf(String(d.status));
      const data: Record<string, unknown> = { status };
      if (d.error !== undefined) data.error = d.error;
      const end: JobLogLine = { t, level: status === "succeeded" ? "info" : "warn", msg: "job.end", data };
      if (d.status !== "cancelled") return [end];
      return [d.reason === undefined ? { t, level: "info", msg: "job.cancel" } : { t, level: "info", msg: "job.cancel", data: { reason: d.reason } }, end];
    }
    default:
      return [];
  }
}

/**
 * Seed 000's view of a job: from its run, or `queued` while only its create command exists. The run
 * is read first and again after the stream, so a job the core picks up in between is never
 * reported missing.
 */
export async function getJobView(bus: Bus, jobId: string): Promise<JobView | null> {
  const first = await getRunSummary(bus, jobId);
  if (first) return toJobView(first);
  if (await hasStoredCommand(bus, jobId)) {
    const again = await getRunSummary(bus, jobId);
    return again ? toJobView(again) : queuedJobView(jobId);
  }
  return null;
}

export interface SubmitJobOptions {
  packet: TaskPacket;
  mode: "mock" | "live";
  projectId?: string;
  idempotencyKey?: string;
  actor: string;
  correlationId?: string;
}

/** Submits a validated Task Packet as a run of the `job` definition; durable when it resolves. */
export async function submitJob(bus: Bus, opts: SubmitJobOptions): Promise<string> {
  const jobId = newRunId(opts.idempotencyKey);
  const spec = jobRunSpec(opts.packet);
  await sendCommand(
    bus,
    {
      type: "run.create",
      commandId: `create:${jobId}`,
      runId: jobId,
      issuedAt: Date.now(),
      actor: opts.actor,
      projectId: opts.projectId ?? DEFAULT_PROJECT,
      definition: spec.definition,
      title: spec.title,
      input: spec.input,
      steps: spec.steps,
      limits: spec.limits,
      autoStart: true,
      mode: opts.mode,
    },
    opts.correlationId ? { correlationId: opts.correlationId } : {},
  );
  return jobId;
}

/** Asks the core to cancel a job (idempotent: cancelling a finished job changes nothing). */
export async function cancelJob(bus: Bus, jobId: string, opts: { actor: string; reason?: string; correlationId?: string }): Promise<void> {
  await sendCommand(
    bus,
    {
      type: "run.signal",
      commandId: `cancel:${jobId}:${randomUUID()}`,
      runId: jobId,
      issuedAt: Date.now(),
      actor: opts.actor,
      signal: { name: "cancel" },
      ...(opts.reason === undefined ? {} : { reason: opts.reason }),
    },
    opts.correlationId ? { correlationId: opts.correlationId } : {},
  );
}
