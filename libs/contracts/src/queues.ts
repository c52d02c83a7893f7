import { z } from "zod";
import { Id, Millis } from "./run-views.js";
import { WorkKind } from "./vocabulary.js";

/**
 * The work queues as the event-bus's jobs projection shows them: each dispatched attempt is a job on
 * its role's queue (`role.<role>`), `queued` until an agent hub takes it, `started` while one works
 * on it, then `finished` or `failed`. Ended jobs are the most recent ones only (like RQ's finished
 * and failed registries, it looks back so far). Asked over NATS (`<p>.q.jobs.list`, `<p>.q.queues.stats`).
 */

export const QUEUE_JOB_STATUSES = ["queued", "started", "finished", "failed"] as const;
export const QueueJobStatus = z.enum(QUEUE_JOB_STATUSES);
export type QueueJobStatus = z.infer<typeof QueueJobStatus>;

export const QueueJob = z.object({
  /** The attempt id. */
  jobId: z.string(),
  status: QueueJobStatus,
  queue: z.string(),
  runId: Id,
  projectId: Id,
  stepId: z.string(),
  kind: WorkKind,
  role: z.string(),
  type: z.string(),
  attempt: z.int().nonnegative(),
  definition: z.object({ id: z.string(), version: z.int() }).optional(),
  /** When it was dispatched. */
  createdAt: Millis.optional(),
  startedAt: Millis.optional(),
  endedAt: Millis.optional(),
  error: z.string().optional(),
  result: z.unknown().optional(),
  /** The stream sequence of the transition that dispatched it (or, once ended, that ended it). */
  seq: z.int().nonnegative(),
});
export type QueueJob = z.infer<typeof QueueJob>;

export const QueueCounts = z.object({ queued: z.int(), started: z.int(), finished: z.int(), failed: z.int() });
export type QueueCounts = z.infer<typeof QueueCounts>;

export const JobsQuery = z.strictObject({
  status: QueueJobStatus.optional(),
  limit: z.int().min(1).max(10_000).default(2_000),
});
export type JobsQuery = z.input<typeof JobsQuery>;

export const JobsResult = z.object({ jobs: z.array(QueueJob) });
export type JobsResult = z.infer<typeof JobsResult>;

export const QueueStatsResult = z.object({ queues: z.record(z.string(), QueueCounts) });
export type QueueStatsResult = z.infer<typeof QueueStatsResult>;

export const JOBS_QUERY = "jobs.list";
export const QUEUE_STATS_QUERY = "queues.stats";
