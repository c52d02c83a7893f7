import { newRunId } from "@orch/bus";
import {
  CATCH_UP_POLICIES,
  DEFAULT_PROJECT,
  ErrorCode,
  OrchError,
  OVERLAP_POLICIES,
  RUN_STATUSES,
  type RunView,
  type ScheduleSpec,
  type Signal,
} from "@orch/contracts";
import { InvalidScheduleError, parseScheduleSpec } from "@orch/engine";
import { DefinitionNotFoundError, PendingError } from "@orch/runs";
import type { FastifyReply, FastifyRequest, FastifyInstance } from "fastify";
import { z } from "zod";
import { route, ValidationError } from "../../routing.js";
import { actorOf, checkProject, ERRORS, IdParam, iso, listOf, loadRun, tokenProject, type V1 } from "./common.js";

/**
 * Schedules: runs of the `schedule` built-in (version 2), presented as what they are. Every write
 * is the run's own command or signal (create, `schedule_set`, pause, resume, cancel,
 * `schedule_trigger`, `schedule_backfill`); the kernel decides, this only translates.
 */

const TAGS = ["schedules"];
/** The built-in a schedule is a run of, and the version that reads a `ScheduleSpec` (1: a periodic run). */
const SCHEDULE_DEF = { id: "schedule", version: 2 } as const;
const DEF_REF = /^([a-z0-9][a-z0-9._-]{0,127}?)(?:@(\d{1,9}))?$/;
const Json = z.record(z.string(), z.unknown());

const Creates = z.strictObject({
  definition: z
    .union([
      z.string().regex(DEF_REF, "must be a definition id, optionally with @version"),
      z.strictObject({ id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/), version: z.int().min(1).optional() }),
    ])
    .describe("The definition each firing runs: `id`, `id@version` or `{id, version?}`"),
  projectId: IdParam.optional().describe(`The project of the schedule and of the runs it creates. Default: ${DEFAULT_PROJECT}`),
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
  creates: Creates,
  overlap: z.enum(OVERLAP_POLICIES).optional().describe("While a run it created goes: skip (default), queue, cancel_previous, allow (create it anyway)"),
  catchUp: z.enum(CATCH_UP_POLICIES).optional().describe("Due times missed while nothing fired: none, one (default: the latest), all"),
  catchUpMax: z.int().optional().describe("At most this many missed due times caught up (default 10)"),
  jitterMs: z.int().optional().describe("Each firing waits 0…jitterMs more (default 0)"),
  queueMax: z.int().optional().describe("Due times waiting under overlap `queue` (default 10)"),
};
const CreateSchedule = z.strictObject({
  id: IdParam.optional().describe("The schedule's id (its run's); default: a new one"),
  title: z.string().max(500).optional(),
  ...SpecFields,
});
const SetSchedule = z.strictObject(SpecFields);
const Backfill = z.strictObject({ from: z.iso.datetime(), to: z.iso.datetime() });
const ReasonBody = z.strictObject({ reason: z.string().max(10_000).optional() }).optional();

const ScheduleJson = z.object({
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
const Accepted = z.object({ id: z.string(), accepted: z.literal(true) });
const Params = z.object({ id: IdParam });

function scheduleJson(v: RunView): z.infer<typeof ScheduleJson> {
  const s = v.schedule;
  return {
    id: v.runId,
    projectId: v.projectId,
    ...(v.title !== undefined ? { title: v.title } : {}),
    status: v.status,
    createdAt: iso(v.createdAt)!,
    updatedAt: iso(v.updatedAt)!,
    ...(s
      ? {
          schedule: {
            spec: s.spec,
            ...(s.nextAt !== undefined ? { nextAt: iso(s.nextAt)! } : {}),
            ...(s.nextFireAt !== undefined ? { nextFireAt: iso(s.nextFireAt)! } : {}),
            ...(s.lastAt !== undefined ? { lastAt: iso(s.lastAt)! } : {}),
            active: s.active.map((a) => ({ runId: a.runId, scheduledAt: iso(a.at)! })),
            queued: s.queued.map((t) => iso(t)!),
            fired: s.fired,
            skipped: s.skipped,
          },
        }
      : {}),
  };
}

const isSchedule = (v: { definition: { id: string; version: number } }) => v.definition.id === SCHEDULE_DEF.id && v.definition.version >= SCHEDULE_DEF.version;

export function scheduleRoutes(app: FastifyInstance, { opts, defaults }: V1): void {
  const { runs } = opts;

  /** The spec the kernel will take (checked here too, so a bad cron is a 400 naming it), and its project. */
  async function specOf(body: z.infer<typeof SetSchedule>): Promise<{ spec: ScheduleSpec; projectId?: string }> {
    const { creates, ...when } = body;
    const { projectId, definition, ...template } = creates;
    let ref: { id: string; version?: number };
    if (typeof definition === "string") {
      const m = DEF_REF.exec(definition)!;
      ref = { id: m[1]!, ...(m[2] ? { version: Number(m[2]) } : {}) };
    } else ref = definition;
    try {
      await runs.definitions.get(ref);
    } catch (err) {
      if (!(err instanceof DefinitionNotFoundError)) throw err;
      throw new ValidationError("body", [{ path: "creates.definition", message: err.message, code: "custom" }]);
    }
    try {
      const spec = parseScheduleSpec({ ...when, creates: { ...template, definition: ref } });
      return { spec, ...(projectId ? { projectId } : {}) };
    } catch (err) {
      if (!(err instanceof InvalidScheduleError)) throw err;
      throw new ValidationError("body", [{ path: "", message: err.message, code: "custom" }]);
    }
  }

  async function loadSchedule(req: FastifyRequest, id: string): Promise<RunView> {
    const v = await loadRun(opts, req, id);
    if (!isSchedule(v)) throw new OrchError(ErrorCode.NotFound, `${id} is a run, not a schedule`);
    return v;
  }

  /** Sends the signal; answers the schedule (200) or, when the core has not answered yet, 202. */
  async function act(req: FastifyRequest, reply: FastifyReply, id: string, signal: Signal, reason?: string) {
    await loadSchedule(req, id);
    try {
      const after = await runs.signal(id, signal, actorOf(req, reason));
      req.log.info({ runId: id, action: signal.name }, "schedule action applied");
      return reply.send(scheduleJson(after));
    } catch (err) {
      if (err instanceof PendingError) return reply.status(202).send({ id, accepted: true });
      throw err;
    }
  }

  const answers = (what: string) => ({
    200: { description: what, schema: ScheduleJson },
    202: { description: "Stored; the core will apply it", schema: Accepted },
    ...ERRORS,
    409: { description: "Refused: the schedule has ended (cancelled), or cannot do it now" },
  });

  route(
    app,
    {
      method: "POST",
      url: "/schedules",
      operationId: "v1CreateSchedule",
      tags: TAGS,
      summary: "Create a schedule: a run each due time (cron in a time zone, or an interval)",
      description: [
        "A schedule is a run of the `schedule` built-in (version 2): its runs are labelled `schedule` (its id) and",
        "`scheduled_at` (the due time), with ids `<schedule>-<due ms>`, each created once. 201 once the core has",
        "created it; 202 when it has not answered yet (it will). The same `id` again answers 200 with what exists.",
      ].join("\n"),
      json: true,
      body: CreateSchedule,
      headers: { "X-Actor": "Who creates it" },
      projectScoped: true,
      responses: {
        200: { description: "A schedule with this id exists", schema: ScheduleJson },
        201: { description: "Created", schema: ScheduleJson },
        202: { description: "Stored; the core will create it", schema: Accepted },
        ...ERRORS,
        415: { description: "Not JSON" },
      },
    },
    async (req, reply, { body }) => {
      const { id, title, ...fields } = body;
      const { spec, projectId = DEFAULT_PROJECT } = await specOf(fields);
      await checkProject(opts, req, projectId);
      const who = actorOf(req);
      const runId = id ?? newRunId(who.idempotencyKey ? `api-v1-schedule:${who.idempotencyKey}` : undefined);
      const existing = await runs.get(runId);
      if (existing) {
        if (!isSchedule(existing)) throw new OrchError(ErrorCode.Conflict, `${runId} is a run, not a schedule`);
        await checkProject(opts, req, existing.projectId);
        return reply.status(200).send(scheduleJson(existing));
      }
      const created = await runs.create(
        { runId, projectId, definition: { ...SCHEDULE_DEF }, ...(title !== undefined ? { title } : {}), input: spec as Record<string, unknown> },
        { actor: who.actor, correlationId: req.id },
      );
      const location = `/api/v1/schedules/${runId}`;
      if ("accepted" in created) return reply.status(202).header("location", location).send({ id: runId, accepted: true });
      req.log.info({ runId }, "schedule created");
      return reply.status(201).header("location", location).send(scheduleJson(created));
    },
    defaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/schedules",
      operationId: "v1ListSchedules",
      tags: TAGS,
      summary: "Schedules, newest first",
      description: "Runs of the `schedule` built-in (version 2) from the run index, each with its schedule. Armed timers: `GET /api/v1/timers`.",
      query: z.object({
        projectId: IdParam.optional(),
        limit: z.coerce.number().int().min(1).max(200).default(50),
        cursor: z.string().max(512).optional(),
      }),
      projectScoped: true,
      responses: { 200: { description: "A page of schedules", schema: listOf(ScheduleJson) }, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403] },
    },
    async (req, _reply, { query }) => {
      const projectId = query.projectId ?? tokenProject(req);
      if (projectId) await checkProject(opts, req, projectId);
      const page = await runs.list({
        ...(projectId ? { projectId } : {}),
        definitionId: SCHEDULE_DEF.id,
        limit: query.limit,
        ...(query.cursor ? { cursor: query.cursor } : {}),
      });
      // Version 1 runs of the built-in are periodic runs, not schedules: left out.
      const views = await Promise.all(page.runs.filter(isSchedule).map((s) => runs.get(s.runId)));
      const items = views.filter((v): v is RunView => v !== null).map(scheduleJson);
      return { items, ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}), total: items.length };
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/schedules/:id",
      operationId: "v1GetSchedule",
      tags: TAGS,
      summary: "A schedule: its spec, next due time and the runs it has going",
      params: Params,
      projectScoped: true,
      responses: { 200: { description: "The schedule", schema: ScheduleJson }, ...ERRORS },
    },
    async (req, _reply, { params }) => scheduleJson(await loadSchedule(req, params.id)),
  );

  route(
    app,
    {
      method: "PUT",
      url: "/schedules/:id",
      operationId: "v1SetSchedule",
      tags: TAGS,
      summary: "Replace a schedule's spec (its next due time is armed again from now)",
      description: "The project stays the schedule's (a `creates.projectId` that differs is a 400).",
      params: Params,
      json: true,
      body: SetSchedule,
      headers: { "X-Actor": "Who changes it" },
      projectScoped: true,
      responses: answers("The schedule after the change"),
    },
    async (req, reply, { params, body }) => {
      const { spec, projectId } = await specOf(body);
      const v = await loadSchedule(req, params.id);
      if (projectId !== undefined && projectId !== v.projectId)
        throw new ValidationError("body", [{ path: "creates.projectId", message: `the schedule is in project ${v.projectId}`, code: "custom" }]);
      return act(req, reply, params.id, { name: "schedule_set", spec });
    },
    defaults,
  );

  const simple = [
    { url: "/schedules/:id/pause", op: "v1PauseSchedule", summary: "Pause: nothing fires until resumed", signal: { name: "pause" } },
    {
      url: "/schedules/:id/resume",
      op: "v1ResumeSchedule",
      summary: "Resume: armed again from now (what passed while paused is not caught up)",
      signal: { name: "resume" },
    },
    { url: "/schedules/:id/trigger", op: "v1TriggerSchedule", summary: "Fire now: one run, whatever the overlap policy", signal: { name: "schedule_trigger" } },
  ] as const satisfies readonly { url: string; op: string; summary: string; signal: Signal }[];
  for (const a of simple) {
    route(
      app,
      {
        method: "POST",
        url: a.url,
        operationId: a.op,
        tags: TAGS,
        summary: a.summary,
        params: Params,
        body: ReasonBody,
        headers: { "X-Actor": "Who acts", "X-Reason": "Why" },
        projectScoped: true,
        responses: answers("The schedule after the action"),
      },
      async (req, reply, { params, body }) => act(req, reply, params.id, a.signal, body?.reason),
      defaults,
    );
  }

  route(
    app,
    {
      method: "POST",
      url: "/schedules/:id/backfill",
      operationId: "v1BackfillSchedule",
      tags: TAGS,
      summary: "A run for each past due time in [from, to] that has none (at most 1000)",
      params: Params,
      json: true,
      body: Backfill,
      headers: { "X-Actor": "Who acts" },
      projectScoped: true,
      responses: answers("The schedule after the backfill"),
    },
    async (req, reply, { params, body }) => act(req, reply, params.id, { name: "schedule_backfill", from: Date.parse(body.from), to: Date.parse(body.to) }),
    defaults,
  );

  route(
    app,
    {
      method: "DELETE",
      url: "/schedules/:id",
      operationId: "v1DeleteSchedule",
      tags: TAGS,
      summary: "Delete a schedule: its run is cancelled (nothing fires again; runs it created go on)",
      params: Params,
      headers: { "X-Actor": "Who deletes it", "X-Reason": "Why" },
      projectScoped: true,
      responses: answers("The schedule, cancelled"),
    },
    async (req, reply, { params }) => act(req, reply, params.id, { name: "cancel" }),
    defaults,
  );
}
