import type { WorkItem } from "./messages.js";
import type { RunSummary } from "./run-views.js";
import type { RunEvent } from "./transitions.js";
import { RunEventType } from "./vocabulary.js";
import { jobStatusOf, Seed000Event, type JobLogLine, type JobView, type Seed000Frame } from "./seed000.js";

/** Seed views over runs and run events: pure functions, shared by the gateway and the gRPC API. */

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
