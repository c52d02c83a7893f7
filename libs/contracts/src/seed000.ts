import { z } from "zod";

/**
 * Seed 000 ("Orchestrator v0"): the Task Packet, the job view and the SSE frames, exactly as its
 * document and its original implementation define them (see shared/seeds/CONTRACTS.md).
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

export const Mode = { Mock: "mock", Live: "live" } as const;
export type Mode = (typeof Mode)[keyof typeof Mode];

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
