import { z } from "zod";
import { fnv1a } from "./names.js";
import { Millis, Totals } from "./run-views.js";
import { AGENT_ROLES, type AgentRole, type StepStatus } from "./vocabulary.js";

/**
 * Seed 001's tasks and runs, as views of runs of the `task.queue` definition: a seed 001 run is one
 * engine run (its input `{type, payload, metadata}`), a task one of its steps (type `task`, role the
 * task's, inputs `{taskId, description, payload}`: the client's task id is kept in the step, and is
 * the step's id too when it can be one). The queue is a projection the event-bus keeps from the
 * runs' transitions (`<p>.q.tasks.*`, below); what is written is written by the core. Pure: shared by
 * the core (periodic runs), the event-bus (the projection) and the gateway (the surface).
 */

export const TASK_DEFINITION = "task.queue";
/** The step type of a task (the agent hub runs it with the role's executor). */
export const TASK_STEP_TYPE = "task";
/** A task's role: one of the agent roles. */
export const TASK_ROLES = AGENT_ROLES;
export type TaskRole = AgentRole;

export const TASK_STATUSES = ["queued", "running", "completed", "failed"] as const;
export const TaskStatus = z.enum(TASK_STATUSES);
export type TaskStatus = z.infer<typeof TaskStatus>;

/** The periodic run (the `schedule` built-in, version 1) of earlier releases: the core cancels it at start (`TASKS_PERIODIC_SCHEDULE` replaces it). */
export const TASKS_SCHEDULE_RUN = "tasks-schedule";
/**
 * The schedule (the `schedule` built-in, version 2) that creates seed 001's periodic runs since
 * issue 12: visible and pausable in `/api/v1/schedules`. Turned off and on again, the next one is
 * `tasks-periodic-<the last stream sequence of the one before>` (every replica derives the same).
 */
export const TASKS_PERIODIC_SCHEDULE = "tasks-periodic";

/** What a seed 001 run is: one made by `POST /tasks` (`manual`) or by the periodic runs (`scheduled`). */
export const TASK_RUN_TYPES = { manual: "manual", scheduled: "scheduled" } as const;

const STEP_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The step id of a task: the client's id when it is a valid step id, else one derived from it (96
 * bits of FNV-1a; the same id always derives the same step id, so a repeat id finds its step).
 */
export function taskStepId(taskId: string): string {
  if (STEP_ID.test(taskId)) return taskId;
  const h = (salt: string) =>
    fnv1a(salt + taskId)
      .toString(16)
      .padStart(8, "0");
  return `t-${h("")}${h("\u0001")}${h("\u0002")}`;
}

export interface TaskInput {
  taskId: string;
  role: TaskRole;
  description: string;
  payload?: unknown;
}

/** The step of a task (what `add_steps` adds, what a run is created with). */
export function taskStep(t: TaskInput, opts: { stepId?: string } = {}): Record<string, unknown> {
  const payloadObj = t.payload !== null && typeof t.payload === "object" && !Array.isArray(t.payload) ? (t.payload as Record<string, unknown>) : undefined;
  return {
    id: opts.stepId ?? taskStepId(t.taskId),
    role: t.role,
    type: TASK_STEP_TYPE,
    title: t.description.slice(0, 500),
    inputs: { taskId: t.taskId, description: t.description, ...(t.payload !== undefined ? { payload: t.payload } : {}) },
    // The agent sees it as the step's details (and, in mock mode, `payload.mock` directs the run).
    ...(payloadObj ? { payload: payloadObj } : {}),
  };
}

/** The input of a seed 001 run. */
export function taskRunInput(type: string, payload: unknown, metadata: Record<string, unknown> = {}): Record<string, unknown> {
  return { type, payload: payload ?? null, metadata };
}

/**
 * A task's status from its step's: waiting → queued; running or being checked → running; completed;
 * anything else failed (an attempt failed and waits for its retry, failed, cancelled, skipped).
 */
export function taskStatusOf(s: StepStatus | undefined): TaskStatus {
  switch (s) {
    case undefined:
    case "pending":
      return "queued";
    case "running":
    case "qa":
    case "needs_qa":
    case "waiting_approval":
      return "running";
    case "completed":
      return "completed";
    default:
      return "failed";
  }
}

/** Seed 001: all queued → queued; all terminal → failed if any failed else completed; else running. */
export function deriveRunStatus(statuses: readonly TaskStatus[]): TaskStatus {
  if (statuses.every((s) => s === "queued")) return "queued";
  if (statuses.every((s) => s === "completed" || s === "failed")) return statuses.includes("failed") ? "failed" : "completed";
  return "running";
}

/**
 * The template of a periodic run (its schedule's `creates`): a `scheduled` run of one task per
 * role, the slot in its payload and metadata; each task's id (and step id) `<run id>-<role>`.
 */
export function periodicTaskRunTemplate(o: { roles: readonly TaskRole[]; description: string; intervalMs: number; mode: "mock" | "live" }) {
  return {
    definition: { id: TASK_DEFINITION },
    title: `${TASK_RUN_TYPES.scheduled} run`,
    input: taskRunInput(
      TASK_RUN_TYPES.scheduled,
      { roles: [...o.roles], description: o.description, slot: "${slot}" },
      { scheduled: true, slot: "${slot}", intervalMs: o.intervalMs },
    ),
    steps: o.roles.map((role) => taskStep({ taskId: `\${runId}-${role}`, role, description: o.description }, { stepId: `\${runId}-${role}` })),
    mode: o.mode,
  };
}

// ── the projection (event-bus) ──────────────────────────────────────────────────────────────────

/** A task's place: its run and step. */
export const TaskLocation = z.object({ runId: z.string(), stepId: z.string() });
export type TaskLocation = z.infer<typeof TaskLocation>;

/** A task as the projection holds it (timestamps in ms; the surface shapes it as seed 001 does). */
export const TaskRecord = z.object({
  /** The client's task id. */
  id: z.string(),
  runId: z.string(),
  stepId: z.string(),
  /** Its place in the queue: the runs-stream sequence of the transition that queued it (last). */
  seq: z.int().nonnegative(),
  role: z.string(),
  description: z.string(),
  payload: z.unknown(),
  status: TaskStatus,
  /** Attempts since it was queued (last). */
  attempts: z.int().nonnegative(),
  history: z.array(z.object({ status: TaskStatus, at: Millis })),
  metadata: z.record(z.string(), z.unknown()),
  /** Its latest attempt. */
  attemptId: z.string().optional(),
  notes: z.array(z.string()).optional(),
  error: z.string().optional(),
  errorCode: z.string().optional(),
  output: z.unknown().optional(),
  usage: Totals.optional(),
  queuedAt: Millis,
  updatedAt: Millis,
});
export type TaskRecord = z.infer<typeof TaskRecord>;

/** A seed 001 run as the projection holds it. */
export const TaskRunRecord = z.object({
  id: z.string(),
  projectId: z.string(),
  type: z.string(),
  payload: z.unknown(),
  metadata: z.record(z.string(), z.unknown()),
  /** Derived from its tasks. */
  status: TaskStatus,
  /** Its tasks (those whose latest place is this run), in queue order. */
  taskIds: z.array(z.string()),
  createdAt: Millis,
  updatedAt: Millis,
});
export type TaskRunRecord = z.infer<typeof TaskRunRecord>;

/**
 * Every query takes `minSeq`: the answer waits (a little) until the projection has applied the
 * runs stream up to that sequence, so a caller reads its own write (`CommandOutcome.streamSeq`).
 */
const MinSeq = { minSeq: z.int().positive().optional() };

export const TASKS_QUERIES = {
  head: "tasks.head",
  size: "tasks.size",
  get: "tasks.get",
  list: "tasks.list",
  runs: "tasks.runs",
  run: "tasks.run",
} as const;

/** The oldest queued task (after `afterSeq`: the next one, when the one before was taken meanwhile). */
export const TasksHeadQuery = z.strictObject({ afterSeq: z.int().nonnegative().optional(), ...MinSeq });
export const TasksHeadResult = z.object({ task: TaskRecord.nullable() });
export const TasksSizeQuery = z.strictObject({ ...MinSeq });
export const TasksSizeResult = z.object({ size: z.int().nonnegative() });
/** A task by its id, and the other places it was queued before that may still be open (to withdraw). */
export const TaskGetQuery = z.strictObject({ taskId: z.string().min(1).max(200), ...MinSeq });
export const TaskGetResult = z.object({ task: TaskRecord.nullable(), others: z.array(TaskLocation) });
/** Every task (of a status, of a run), in queue order. */
export const TasksListQuery = z.strictObject({ status: TaskStatus.optional(), runId: z.string().max(128).optional(), ...MinSeq });
export const TasksListResult = z.object({ tasks: z.array(TaskRecord) });
/** Seed 001 runs, oldest first, by derived status, a page of them and how many match. */
export const TaskRunsQuery = z.strictObject({
  status: TaskStatus.optional(),
  offset: z.int().nonnegative().default(0),
  limit: z.int().min(1).max(1_000).default(50),
  ...MinSeq,
});
export const TaskRunsResult = z.object({ runs: z.array(TaskRunRecord), total: z.int().nonnegative() });
export const TaskRunQuery = z.strictObject({ runId: z.string().min(1).max(200), ...MinSeq });
export const TaskRunResult = z.object({ run: TaskRunRecord.nullable(), tasks: z.array(TaskRecord) });

export type TasksHeadQuery = z.input<typeof TasksHeadQuery>;
export type TasksSizeQuery = z.input<typeof TasksSizeQuery>;
export type TaskGetQuery = z.input<typeof TaskGetQuery>;
export type TasksListQuery = z.input<typeof TasksListQuery>;
export type TaskRunsQuery = z.input<typeof TaskRunsQuery>;
export type TaskRunQuery = z.input<typeof TaskRunQuery>;
export type TaskGetResult = z.infer<typeof TaskGetResult>;
export type TaskRunResult = z.infer<typeof TaskRunResult>;
export type TaskRunsResult = z.infer<typeof TaskRunsResult>;
