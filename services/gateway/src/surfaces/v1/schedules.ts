import {
  BackfillScheduleRequest,
  CreateScheduleRequest,
  DEFAULT_PROJECT,
  ScheduleJson,
  SetScheduleRequest,
  type RunView,
  type ScheduleSpec,
  type Signal,
} from "@orch/contracts";
import { asSchedule, backfillSignal, createSchedule, listSchedules, PendingError, ScheduleRequestError, scheduleJson, scheduleSpecOf } from "@orch/runs";
import type { FastifyReply, FastifyRequest, FastifyInstance } from "fastify";
import { z } from "zod";
import { route, ValidationError } from "../../routing.js";
import { actorOf, checkProject, ERRORS, IdParam, listOf, loadRun, tokenProject, type V1 } from "./common.js";

/**
 * Schedules over HTTP: the requests and the schedule's JSON are contracts' (`CreateScheduleRequest`,
 * `ScheduleJson`), what they do is `@orch/runs`' (shared with gRPC `SchedulerService`); this adds
 * the project access checks and translates to HTTP.
 */

const TAGS = ["schedules"];
const ReasonBody = z.strictObject({ reason: z.string().max(10_000).optional() }).optional();
const Accepted = z.object({ id: z.string(), accepted: z.literal(true) });
const Params = z.object({ id: IdParam });

export function scheduleRoutes(app: FastifyInstance, { opts, defaults }: V1): void {
  const { runs } = opts;

  /** The spec the kernel will take (a bad cron is a 400 naming it), and its project. */
  async function specOf(body: SetScheduleRequest): Promise<{ spec: ScheduleSpec; projectId?: string }> {
    try {
      return await scheduleSpecOf(runs, body);
    } catch (err) {
      if (!(err instanceof ScheduleRequestError)) throw err;
      throw new ValidationError("body", [{ path: err.path, message: err.reason, code: "custom" }]);
    }
  }

  async function loadSchedule(req: FastifyRequest, id: string): Promise<RunView> {
    return asSchedule(await loadRun(opts, req, id));
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
      body: CreateScheduleRequest,
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
      const made = await createSchedule(runs, { ...(id !== undefined ? { id } : {}), ...(title !== undefined ? { title } : {}), spec, projectId }, who);
      if ("existing" in made) {
        await checkProject(opts, req, made.existing.projectId);
        return reply.status(200).send(scheduleJson(made.existing));
      }
      const runId = "created" in made ? made.created.runId : made.accepted.runId;
      const location = `/api/v1/schedules/${runId}`;
      if ("accepted" in made) return reply.status(202).header("location", location).send({ id: runId, accepted: true });
      req.log.info({ runId }, "schedule created");
      return reply.status(201).header("location", location).send(scheduleJson(made.created));
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
      const { items, nextCursor } = await listSchedules(runs, {
        ...(projectId ? { projectId } : {}),
        limit: query.limit,
        ...(query.cursor ? { cursor: query.cursor } : {}),
      });
      return { items, ...(nextCursor ? { nextCursor } : {}), total: items.length };
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
      body: SetScheduleRequest,
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
      body: BackfillScheduleRequest,
      headers: { "X-Actor": "Who acts" },
      projectScoped: true,
      responses: answers("The schedule after the backfill"),
    },
    async (req, reply, { params, body }) => act(req, reply, params.id, backfillSignal(body)),
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
