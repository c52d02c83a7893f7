import { z } from "zod";
import { DEFAULT_PROJECT } from "./names.js";
import { RUN_STATUSES } from "./vocabulary.js";
import { CATCH_UP_POLICIES, OVERLAP_POLICIES } from "./signals.js";

/**
 * Schedules as the APIs take and give them (HTTP `/api/v1/schedules` and gRPC `SchedulerService`,
 * which map their fields onto these): a request is checked here, then its spec by the kernel's
 * `parseScheduleSpec`. The schedule itself is a run of the `schedule` built-in (`SCHEDULE_DEFINITION`).
 */

/** The built-in a schedule is a run of, and the version that reads a `ScheduleSpec` (1: a periodic run). */
export const SCHEDULE_DEFINITION = Object.freeze({ id: "schedule", version: 2 } as const);

/** `id` or `id@version`. */
export const DEFINITION_REF_TEXT = /^([a-z0-9][a-z0-9._-]{0,127}?)(?:@(\d{1,9}))?$/;
const ScheduleIdRef = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "must match [A-Za-z0-9_-]{1,128}");
const Json = z.record(z.string(), z.unknown());

/** What each firing creates, with the project the schedule and its runs are in. */
export const ScheduleCreates = z.strictObject({
  definition: z
    .union([
      z.string().regex(DEFINITION_REF_TEXT, "must be a definition id, optionally with @version"),
      z.strictObject({ id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/), version: z.int().min(1).optional() }),
    ])
    .describe("The definition each firing runs: `id`, `id@version` or `{id, version?}`"),
  projectId: ScheduleIdRef.optional().describe(`The project of the schedule and of the runs it creates. Default: ${DEFAULT_PROJECT}`),
  title: z.string().max(500).optional(),
  labels: z.record(z.string().max(64), z.string().max(256)).optional().describe("Added to each run (with `schedule` and `scheduled_at`)"),
  input: Json.optional().describe("Templates over `${at}`, `${scheduledAt}`, `${runId}`, `${schedule}`"),
  steps: z.array(Json).max(1_000).optional(),
  facts: Json.optional(),
});

const SpecFields = {
  cron: z.string().max(200).optional().describe("5 fields, or 6 with seconds first; exactly one of `cron` and `everyMs`"),
  timezone: z.string().max(64).optional().describe("IANA time zone of `cron` (default UTC)"),
  everyMs: z.int().optional().describe("Every this many ms since the epoch (at least 1000)"),
  creates: ScheduleCreates,
  overlap: z.enum(OVERLAP_POLICIES).optional().describe("While a run it created goes: skip (default), queue, cancel_previous, allow (create it anyway)"),
  catchUp: z.enum(CATCH_UP_POLICIES).optional().describe("Due times missed while nothing fired: none, one (default: the latest), all"),
  catchUpMax: z.int().optional().describe("At most this many missed due times caught up (default 10)"),
  jitterMs: z.int().optional().describe("Each firing waits 0…jitterMs more (default 0)"),
  queueMax: z.int().optional().describe("Due times waiting under overlap `queue` (default 10)"),
};

/** A schedule's spec as a request gives it (`PUT /schedules/:id`, `UpdateSchedule`). */
export const SetScheduleRequest = z.strictObject(SpecFields);
export type SetScheduleRequest = z.infer<typeof SetScheduleRequest>;

/** A new schedule (`POST /schedules`, `CreateSchedule`). */
export const CreateScheduleRequest = z.strictObject({
  id: ScheduleIdRef.optional().describe("The schedule's id (its run's); default: a new one"),
  title: z.string().max(500).optional(),
  ...SpecFields,
});
export type CreateScheduleRequest = z.infer<typeof CreateScheduleRequest>;

/** A run for each past due time in [from, to] that has none. */
export const BackfillScheduleRequest = z.strictObject({ from: z.iso.datetime(), to: z.iso.datetime() });
export type BackfillScheduleRequest = z.infer<typeof BackfillScheduleRequest>;

/** A schedule as the APIs answer it. */
export const ScheduleJson = z.object({
  id: z.string(),
  projectId: z.string(),
  title: z.string().optional(),
  status: z.enum(RUN_STATUSES).describe("waiting: armed; paused; cancelled: deleted"),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  schedule: z
    .object({
      spec: Json.describe("The schedule, its defaults filled in"),
      nextAt: z.iso.datetime().optional().describe("The next due time (absent while paused or ended)"),
      nextFireAt: z.iso.datetime().optional().describe("When it fires (with jitter)"),
      lastAt: z.iso.datetime().optional(),
      active: z.array(z.object({ runId: z.string(), scheduledAt: z.iso.datetime() })),
      queued: z.array(z.iso.datetime()),
      fired: z.int(),
      skipped: z.int(),
    })
    .optional()
    .describe("Absent until the core has created it"),
});
export type ScheduleJson = z.infer<typeof ScheduleJson>;
