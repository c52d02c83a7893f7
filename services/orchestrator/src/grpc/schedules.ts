import { status } from "@grpc/grpc-js";
import {
  BackfillScheduleRequest,
  CreateScheduleRequest,
  DEFAULT_PROJECT,
  SetScheduleRequest,
  isToken,
  type RunView,
  type ScheduleJson,
  type Signal,
} from "@orch/contracts";
import type { Logger } from "@orch/logging";
import {
  jsonToStruct,
  structToJson,
  type BackfillScheduleRequestMessage,
  type CreateScheduleRequestMessage,
  type GetScheduleRequestMessage,
  type ListSchedulesRequestMessage,
  type ListSchedulesResponseMessage,
  type ScheduleActionRequestMessage,
  type ScheduleMessage,
  type ScheduleSpecMessage,
  type SchedulerServiceHandlers,
  type UpdateScheduleRequestMessage,
} from "@orch/proto";
import { asSchedule, backfillSignal, createSchedule, listSchedules, PendingError, scheduleJson, scheduleSpecOf, type RunsApi } from "@orch/runs";
import { GrpcFailure, unary } from "./runs.js";

/**
 * `SchedulerService`: `/api/v1/schedules` over gRPC. Its messages are mapped onto the same request
 * contracts (`CreateScheduleRequest`, …) and served by the same `@orch/runs` schedule functions; this
 * only translates fields and errors.
 */

const snake = (path: string) => path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** A proto request mapped to JSON, decoded by the HTTP API's own schema: its issues are INVALID_ARGUMENT. */
function decode<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } } },
  json: unknown,
): T {
  const r = schema.safeParse(json);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => (i.path.length ? `${snake(i.path.join("."))}: ${i.message}` : i.message));
  throw new GrpcFailure(status.INVALID_ARGUMENT, issues.join("; "));
}

/** ScheduleSpec (proto) → the JSON of `/api/v1/schedules`' spec fields. */
function specJson(spec: ScheduleSpecMessage | null | undefined): Record<string, unknown> {
  if (!spec) throw new GrpcFailure(status.INVALID_ARGUMENT, "spec is required");
  const c = spec.creates;
  const def = c?.definition;
  const creates = c
    ? {
        ...(def?.id ? { definition: def.version > 0 ? { id: def.id, version: def.version } : def.id } : {}),
        ...(c.project_id ? { projectId: c.project_id } : {}),
        ...(c.title ? { title: c.title } : {}),
        ...(Object.keys(c.labels ?? {}).length ? { labels: c.labels } : {}),
        ...(c.input ? { input: structToJson(c.input) } : {}),
        ...(c.steps?.length ? { steps: c.steps.map((s) => structToJson(s) ?? {}) } : {}),
        ...(c.facts ? { facts: structToJson(c.facts) } : {}),
      }
    : undefined;
  return {
    ...(spec.cron !== undefined ? { cron: spec.cron } : {}),
    ...(spec.timezone !== undefined ? { timezone: spec.timezone } : {}),
    ...(spec.every_ms !== undefined ? { everyMs: Number(spec.every_ms) } : {}),
    ...(creates ? { creates } : {}),
    ...(spec.overlap !== undefined ? { overlap: spec.overlap } : {}),
    ...(spec.catch_up !== undefined ? { catchUp: spec.catch_up } : {}),
    ...(spec.catch_up_max !== undefined ? { catchUpMax: spec.catch_up_max } : {}),
    ...(spec.jitter_ms !== undefined ? { jitterMs: spec.jitter_ms } : {}),
    ...(spec.queue_max !== undefined ? { queueMax: spec.queue_max } : {}),
  };
}

function toMessage(j: ScheduleJson): ScheduleMessage {
  const s = j.schedule;
  return {
    id: j.id,
    project_id: j.projectId,
    title: j.title ?? "",
    status: j.status,
    created_at: j.createdAt,
    updated_at: j.updatedAt,
    ...(s
      ? {
          schedule: {
            spec: jsonToStruct(s.spec),
            ...(s.nextAt !== undefined ? { next_at: s.nextAt } : {}),
            ...(s.nextFireAt !== undefined ? { next_fire_at: s.nextFireAt } : {}),
            ...(s.lastAt !== undefined ? { last_at: s.lastAt } : {}),
            active: s.active.map((a) => ({ run_id: a.runId, scheduled_at: a.scheduledAt })),
            queued: s.queued,
            fired: s.fired,
            skipped: s.skipped,
          },
        }
      : {}),
  };
}

export function scheduleHandlers(opts: { logger: Logger; api: RunsApi }): SchedulerServiceHandlers {
  const { logger: log, api } = opts;

  async function load(id: string): Promise<RunView> {
    if (!isToken(id)) throw new GrpcFailure(status.INVALID_ARGUMENT, "id must match [A-Za-z0-9_-]{1,128}");
    const v = await api.get(id);
    if (!v) throw new GrpcFailure(status.NOT_FOUND, `schedule ${id} not found`);
    return asSchedule(v);
  }

  /** Sends the schedule's signal; the schedule after it, or as it was with `accepted` when the core has not answered yet. */
  async function act(id: string, signal: Signal, who: { actor: string; reason: string }): Promise<ScheduleMessage> {
    const before = await load(id);
    try {
      const after = await api.signal(id, signal, { actor: who.actor || "grpc", ...(who.reason ? { reason: who.reason } : {}) });
      log.info({ runId: id, action: signal.name }, "schedule action applied");
      return toMessage(scheduleJson(after));
    } catch (err) {
      if (err instanceof PendingError) return { ...toMessage(scheduleJson(before)), accepted: true };
      throw err;
    }
  }

  const simple = (name: "pause" | "resume" | "cancel" | "schedule_trigger", rpc: string) =>
    unary<ScheduleActionRequestMessage, ScheduleMessage>(log, rpc, (req) => act(req.id, { name }, req));

  return {
    CreateSchedule: unary<CreateScheduleRequestMessage, ScheduleMessage>(log, "CreateSchedule", async (req) => {
      const body = decode(CreateScheduleRequest, { ...(req.id ? { id: req.id } : {}), ...(req.title ? { title: req.title } : {}), ...specJson(req.spec) });
      const { id, title, ...fields } = body;
      const { spec, projectId = DEFAULT_PROJECT } = await scheduleSpecOf(api, fields);
      const made = await createSchedule(
        api,
        { ...(id !== undefined ? { id } : {}), ...(title !== undefined ? { title } : {}), spec, projectId },
        { actor: req.actor || "grpc", ...(req.idempotency_key ? { idempotencyKey: req.idempotency_key } : {}) },
      );
      if ("existing" in made) return { ...toMessage(scheduleJson(made.existing)), created: false };
      if ("created" in made) {
        log.info({ runId: made.created.runId }, "schedule created");
        return { ...toMessage(scheduleJson(made.created)), created: true };
      }
      const a = made.accepted;
      return { id: a.runId, project_id: a.projectId, title: title ?? "", status: a.status, accepted: true, created: true };
    }),

    ListSchedules: unary<ListSchedulesRequestMessage, ListSchedulesResponseMessage>(log, "ListSchedules", async (req) => {
      if (req.project_id && !isToken(req.project_id)) throw new GrpcFailure(status.INVALID_ARGUMENT, "project_id must match [A-Za-z0-9_-]{1,128}");
      if (req.limit < 0 || req.limit > 200) throw new GrpcFailure(status.INVALID_ARGUMENT, "limit must be 1-200 (0: 50)");
      const { items, nextCursor } = await listSchedules(api, {
        ...(req.project_id ? { projectId: req.project_id } : {}),
        limit: req.limit || 50,
        ...(req.cursor ? { cursor: req.cursor } : {}),
      });
      return { schedules: items.map(toMessage), next_cursor: nextCursor ?? "" };
    }),

    GetSchedule: unary<GetScheduleRequestMessage, ScheduleMessage>(log, "GetSchedule", async (req) => toMessage(scheduleJson(await load(req.id)))),

    UpdateSchedule: unary<UpdateScheduleRequestMessage, ScheduleMessage>(log, "UpdateSchedule", async (req) => {
      const { spec, projectId } = await scheduleSpecOf(api, decode(SetScheduleRequest, specJson(req.spec)));
      const v = await load(req.id);
      if (projectId !== undefined && projectId !== v.projectId)
        throw new GrpcFailure(status.INVALID_ARGUMENT, `spec.creates.project_id: the schedule is in project ${v.projectId}`);
      return act(req.id, { name: "schedule_set", spec }, { actor: req.actor, reason: "" });
    }),

    PauseSchedule: simple("pause", "PauseSchedule"),
    ResumeSchedule: simple("resume", "ResumeSchedule"),
    DeleteSchedule: simple("cancel", "DeleteSchedule"),
    TriggerSchedule: simple("schedule_trigger", "TriggerSchedule"),

    BackfillSchedule: unary<BackfillScheduleRequestMessage, ScheduleMessage>(log, "BackfillSchedule", async (req) => {
      const range = decode(BackfillScheduleRequest, { from: req.from, to: req.to });
      return act(req.id, backfillSignal(range), { actor: req.actor, reason: "" });
    }),
  };
}
