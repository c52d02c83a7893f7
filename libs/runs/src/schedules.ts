import { newRunId } from "@orch/bus";
import {
  DEFINITION_REF_TEXT,
  ErrorCode,
  OrchError,
  SCHEDULE_DEFINITION,
  type BackfillScheduleRequest,
  type ScheduleJson,
  type ScheduleSpec,
  type SetScheduleRequest,
  type RunView,
  type Signal,
} from "@orch/contracts";
import { InvalidScheduleError, parseScheduleSpec } from "@orch/engine";
import type { AcceptedRun, Actor, RunsApi } from "./api.js";
import { DefinitionNotFoundError } from "./definitions.js";

/**
 * Schedules as every API serves them (HTTP `/api/v1/schedules`, gRPC `SchedulerService`): runs of
 * the `schedule` built-in, version 2. Each write is that run's own command or signal (create,
 * `schedule_set`, pause, resume, cancel, `schedule_trigger`, `schedule_backfill`); the kernel decides.
 * Who may touch which project is the surface's business, not this module's.
 */

/** A schedule request the kernel would not take: `path` names the field (empty: the spec as a whole). */
export class ScheduleRequestError extends OrchError {
  override name = "ScheduleRequestError";
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(ErrorCode.BadRequest, path ? `${path}: ${reason}` : reason);
  }
}

/** Whether a run is a schedule (version 1 runs of the built-in are periodic runs, not schedules). */
export const isScheduleRun = (v: { definition: { id: string; version: number } }): boolean =>
  v.definition.id === SCHEDULE_DEFINITION.id && v.definition.version >= SCHEDULE_DEFINITION.version;

/** The run as a schedule; a run of anything else is NOT_FOUND as a schedule. */
export function asSchedule(v: RunView): RunView {
  if (!isScheduleRun(v)) throw new OrchError(ErrorCode.NotFound, `${v.runId} is a run, not a schedule`);
  return v;
}

/**
 * The spec the kernel will take, and the project it names: the definition must exist and the spec
 * parse (a bad cron, time zone or policy is refused here with its reason, not later by the core).
 */
export async function scheduleSpecOf(runs: RunsApi, req: SetScheduleRequest): Promise<{ spec: ScheduleSpec; projectId?: string }> {
  const { creates, ...when } = req;
  const { projectId, definition, ...template } = creates;
  let ref: { id: string; version?: number };
  if (typeof definition === "string") {
    const m = DEFINITION_REF_TEXT.exec(definition);
    if (!m) throw new ScheduleRequestError("creates.definition", "must be a definition id, optionally with @version");
    ref = { id: m[1]!, ...(m[2] ? { version: Number(m[2]) } : {}) };
  } else ref = definition;
  try {
    await runs.definitions.get(ref);
  } catch (err) {
    if (!(err instanceof DefinitionNotFoundError)) throw err;
    throw new ScheduleRequestError("creates.definition", err.message);
  }
  try {
    const spec = parseScheduleSpec({ ...when, creates: { ...template, definition: ref } });
    return { spec, ...(projectId ? { projectId } : {}) };
  } catch (err) {
    if (!(err instanceof InvalidScheduleError)) throw err;
    throw new ScheduleRequestError("", err.message);
  }
}

/** What `createSchedule` found or made. */
export type ScheduleCreated = { created: RunView } | { accepted: AcceptedRun } | { existing: RunView };

/**
 * Creates the schedule's run, or answers the schedule that has this id (a run of another kind with
 * it is a CONFLICT). The id is the caller's, or one derived from the idempotency key, or a new one.
 */
export async function createSchedule(
  runs: RunsApi,
  req: { id?: string; title?: string; spec: ScheduleSpec; projectId: string },
  who: Actor,
): Promise<ScheduleCreated> {
  const runId = req.id ?? newRunId(who.idempotencyKey ? `api-v1-schedule:${who.idempotencyKey}` : undefined);
  const existing = await runs.get(runId);
  if (existing) {
    if (!isScheduleRun(existing)) throw new OrchError(ErrorCode.Conflict, `${runId} is a run, not a schedule`);
    return { existing };
  }
  const created = await runs.create(
    {
      runId,
      projectId: req.projectId,
      definition: { ...SCHEDULE_DEFINITION },
      ...(req.title !== undefined ? { title: req.title } : {}),
      input: req.spec as Record<string, unknown>,
    },
    { ...(who.actor ? { actor: who.actor } : {}), ...(who.correlationId ? { correlationId: who.correlationId } : {}) },
  );
  return "accepted" in created ? { accepted: created } : { created };
}

/** A page of schedules, newest first, from the run index (each read in full for its schedule). */
export async function listSchedules(
  runs: RunsApi,
  query: { projectId?: string; limit: number; cursor?: string },
): Promise<{ items: ScheduleJson[]; nextCursor?: string }> {
  const page = await runs.list({
    ...(query.projectId ? { projectId: query.projectId } : {}),
    definitionId: SCHEDULE_DEFINITION.id,
    limit: query.limit,
    ...(query.cursor ? { cursor: query.cursor } : {}),
  });
  const views = await Promise.all(page.runs.filter(isScheduleRun).map((s) => runs.get(s.runId)));
  const items = views.filter((v): v is RunView => v !== null).map(scheduleJson);
  return { items, ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
}

/** The signal a backfill of [from, to] is. */
export const backfillSignal = (req: BackfillScheduleRequest): Signal => ({ name: "schedule_backfill", from: Date.parse(req.from), to: Date.parse(req.to) });

const iso = (ms: number) => new Date(ms).toISOString();

/** A schedule's run as the APIs answer it. */
export function scheduleJson(v: RunView): ScheduleJson {
  const s = v.schedule;
  return {
    id: v.runId,
    projectId: v.projectId,
    ...(v.title !== undefined ? { title: v.title } : {}),
    status: v.status,
    createdAt: iso(v.createdAt),
    updatedAt: iso(v.updatedAt),
    ...(s
      ? {
          schedule: {
            spec: s.spec,
            ...(s.nextAt !== undefined ? { nextAt: iso(s.nextAt) } : {}),
            ...(s.nextFireAt !== undefined ? { nextFireAt: iso(s.nextFireAt) } : {}),
            ...(s.lastAt !== undefined ? { lastAt: iso(s.lastAt) } : {}),
            active: s.active.map((a) => ({ runId: a.runId, scheduledAt: iso(a.at) })),
            queued: s.queued.map(iso),
            fired: s.fired,
            skipped: s.skipped,
          },
        }
      : {}),
  };
}
