import { TASK_ROLES, TASK_STATUSES } from "@orch/contracts";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { Surface } from "../../context.js";
import { toHttp } from "../../errors.js";
import { route, ValidationError } from "../../routing.js";
import { runView, taskView } from "./mapping.js";
import { TaskSurface } from "./service.js";

/**
 * Seed 001, "Orchestrator Service": `/tasks` (create, list, get, history, metadata, dispatch) and
 * `/runs` (list, get, tasks), no prefix. A thin mapping over runs of the `task.queue` definition
 * (`TaskSurface`): a task is a step, queued, started and annotated by the core through commands; the
 * queue, the task-id index and the runs' statuses are the event-bus's projection of the runs'
 * transitions. Nothing lives in the gateway's memory. Errors have the seed's shape:
 * `{"ok":false,"error":"<snake_code>"}`.
 */

const TAGS = ["tasks (seed 001)"];
/** Seed 001's own rate limit of POST /tasks. */
export const TASKS_RATE_LIMIT = { max: 20, timeWindow: 60_000 };
/** How long POST /tasks/dispatch waits for the dispatched task to finish. */
export const DISPATCH_WAIT_MS = 120_000;

const Role = z.enum(TASK_ROLES);
const Status = z.enum(TASK_STATUSES);
const Fail = z.object({ ok: z.literal(false), error: z.string() });
const Totals = z.object({ tokens: z.number(), tokensIn: z.number(), tokensOut: z.number(), costUsd: z.number(), wallMs: z.number(), calls: z.number() });
const Llm = z.object({ executor: z.string().optional(), model: z.string().optional(), usage: Totals.optional() });
const Result = z.object({ taskId: z.string(), status: Status, notes: z.string().optional(), output: z.unknown().optional(), llm: Llm.optional() });
const Task = z.object({
  id: z.string(),
  runId: z.string(),
  role: Role,
  description: z.string(),
  payload: z.unknown(),
  status: Status,
  attempts: z.int(),
  history: z.array(z.object({ status: Status, timestamp: z.iso.datetime() })),
  metadata: z.record(z.string(), z.unknown()),
  llm: Llm.nullable().describe("The executor, model and usage of the task's last attempt; null before it ran"),
  result: Result.optional().describe("Once completed or failed"),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
const Run = z.object({
  id: z.string(),
  type: z.string().describe("`manual` (POST /tasks without runId) or `scheduled` (the periodic scheduler)"),
  status: Status.describe("Derived from its tasks"),
  payload: z.unknown(),
  taskIds: z.array(z.string()),
  metadata: z.record(z.string(), z.unknown()),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
const TaskBody = z.object({
  id: z.string().min(1).max(200),
  role: Role,
  description: z.string().min(1).max(10_000),
  payload: z.unknown().optional(),
  runId: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,110}$/)
    .optional(),
});
const IdParams = z.object({ id: z.string().min(1).max(200) });
const RunIdParams = z.object({ id: z.string().min(1).max(200) });

/** Seed 001's error codes by HTTP status. */
const CODE_OF: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "rate_limit_exceeded",
  503: "unavailable",
};

/** A 4xx this surface answers in its own words. */
class Seed001Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(code);
  }
}

const int = (def: number) =>
  z
    .string()
    .regex(/^\d{1,9}$/, "must be a non-negative integer")
    .optional()
    .transform((v) => (v === undefined ? def : Number(v)));

const errors = (extra: Record<number, string> = {}) =>
  Object.fromEntries(
    Object.entries({ 401: "unauthorized", ...extra }).map(([k, v]) => [Number(k), { description: `\`{"ok":false,"error":"${v}"}\``, schema: Fail }]),
  );

export async function tasksRoutes(app: FastifyInstance, opts: Surface): Promise<void> {
  const { cfg } = opts;
  const tasks = new TaskSurface(opts.runs, { actor: "api" });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof Seed001Error) return reply.status(err.status).send({ ok: false, error: err.code });
    if (err instanceof ValidationError) {
      const url = req.routeOptions.url ?? "";
      const code =
        err.part === "body" && url === "/tasks"
          ? "invalid_task"
          : err.part === "body" && url.endsWith("/metadata")
            ? "invalid_metadata"
            : err.part === "query" && err.issues.some((i) => i.path === "status")
              ? "invalid_status"
              : "bad_request";
      return reply.status(400).send({ ok: false, error: code });
    }
    const { status } = toHttp(err);
    if (status >= 500) {
      req.log.error({ err }, "request failed");
      return reply.status(status).send({ ok: false, error: status === 503 ? "unavailable" : "internal_error" });
    }
    if (status === 429) {
      const after = Number(reply.getHeader("retry-after") ?? 60);
      return reply.status(429).send({ ok: false, error: "rate_limit_exceeded", retryAfter: Number.isFinite(after) ? after : 60 });
    }
    return reply.status(status).send({ ok: false, error: CODE_OF[status] ?? "bad_request" });
  });

  // A body-less POST /tasks/dispatch from a client that always sends Content-Type: JSON.
  const jsonParser = app.getDefaultJsonParser("error", "ignore");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    if (typeof body === "string" && body.trim() === "") return done(null, undefined);
    jsonParser(req, body as string, done);
  });

  // ORCH_RATE_LIMIT_ENABLED=false (opts.rateLimit false) turns POST /tasks's own limit off too.
  const bodyLimit = cfg.ORCH_MAX_REQUEST_BYTES;
  const tasksDefaults = { rateLimit: opts.rateLimit ? TASKS_RATE_LIMIT : (false as const), bodyLimit };
  const defaults = { rateLimit: opts.rateLimit, bodyLimit };

  route(
    app,
    {
      method: "POST",
      url: "/tasks",
      operationId: "seed001CreateTask",
      tags: TAGS,
      summary: "Queue a task for a role",
      description: [
        "The id is the client's; a repeat id overwrites the task and queues it again (in the same run: reset",
        "there; in another: added there and withdrawn where it was). Without `runId` a run of type `manual`",
        "is created (an unknown `runId` creates that run). `queued` is the queue's size, this task included.",
        "Rate limited: 20 per 60 s per client (`ORCH_RATE_LIMIT_ENABLED=false` turns it off) → 429 with",
        "`Retry-After`. Durable once answered.",
      ].join("\n"),
      json: true,
      body: TaskBody,
      responses: {
        200: { description: "Queued", schema: z.object({ ok: z.literal(true), queued: z.int(), runId: z.string() }) },
        ...errors({ 400: "invalid_task", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type" }),
        429: { description: '`{"ok":false,"error":"rate_limit_exceeded","retryAfter":N}`', schema: Fail.extend({ retryAfter: z.number() }) },
      },
    },
    async (req, _reply, { body }) => {
      const r = await tasks.submit(
        {
          id: body.id,
          role: body.role,
          description: body.description,
          ...(body.payload !== undefined ? { payload: body.payload } : {}),
          ...(body.runId ? { runId: body.runId } : {}),
        },
        { correlationId: req.id },
      );
      req.log.info({ taskId: body.id, runId: r.runId }, "task queued");
      return { ok: true, queued: r.queued, runId: r.runId };
    },
    tasksDefaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/tasks",
      operationId: "seed001ListTasks",
      tags: TAGS,
      summary: "Every task, in the order they were queued",
      query: z.object({ status: Status.optional() }),
      responses: { 200: { description: "Tasks", schema: z.object({ ok: z.literal(true), data: z.array(Task) }) }, ...errors({ 400: "invalid_status" }) },
    },
    async (_req, _reply, { query }) => ({
      ok: true,
      data: (await tasks.listTasks(query.status ? { status: query.status } : {})).map(({ task, llm }) => taskView(task, llm)),
    }),
  );

  route(
    app,
    {
      method: "POST",
      url: "/tasks/dispatch",
      operationId: "seed001Dispatch",
      tags: TAGS,
      summary: "Run the oldest queued task with its role's agent and answer with its result",
      description: [
        "No body. Takes the oldest queued task (the order tasks were queued in, across runs; one taken by",
        "someone else meanwhile is skipped), starts it, and answers once that attempt has ended (at most",
        "120 s; a task still running then is answered with `status: running`). One attempt per dispatch.",
        '`{ok:false,error:"no_agent"}` when no executor serves the role, `agent_error` when the attempt was',
        "cancelled or blocked.",
      ].join("\n"),
      responses: {
        200: {
          description: "`{ok:true,dispatched:false}` (empty queue), `{ok:true,dispatched:true,result}`, or `{ok:false,error}`",
          schema: z.union([
            z.object({ ok: z.literal(true), dispatched: z.literal(false) }),
            z.object({ ok: z.literal(true), dispatched: z.literal(true), result: Result.extend({ status: Status }) }),
            z.object({ ok: z.literal(false), error: z.enum(["no_agent", "agent_error"]) }),
          ]),
        },
        ...errors(),
      },
    },
    async (req) => {
      const out = await tasks.dispatchNext({ waitMs: DISPATCH_WAIT_MS, correlationId: req.id });
      if (!out.dispatched) return { ok: true, dispatched: false };
      if (out.error) return { ok: false, error: out.error };
      return { ok: true, dispatched: true, result: out.result };
    },
    defaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/tasks/:id",
      operationId: "seed001GetTask",
      tags: TAGS,
      summary: "A task",
      params: IdParams,
      responses: { 200: { description: "The task", schema: z.object({ ok: z.literal(true), data: Task }) }, ...errors({ 404: "not_found" }) },
    },
    async (_req, _reply, { params }) => {
      const t = await found(tasks.getTask(params.id));
      return { ok: true, data: taskView(t.task, t.llm) };
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/tasks/:id/history",
      operationId: "seed001TaskHistory",
      tags: TAGS,
      summary: "A task's status changes, oldest first",
      params: IdParams,
      responses: {
        200: { description: "History", schema: z.object({ ok: z.literal(true), data: z.array(z.object({ status: Status, timestamp: z.iso.datetime() })) }) },
        ...errors({ 404: "not_found" }),
      },
    },
    async (_req, _reply, { params }) => {
      const t = await found(tasks.getTask(params.id));
      return { ok: true, data: taskView(t.task, null).history };
    },
  );

  route(
    app,
    {
      method: "PATCH",
      url: "/tasks/:id/metadata",
      operationId: "seed001PatchTaskMetadata",
      tags: TAGS,
      summary: "Shallow-merge keys into a task's metadata",
      params: IdParams,
      json: true,
      body: z.record(z.string(), z.unknown()),
      responses: {
        200: { description: "Merged", schema: z.object({ ok: z.literal(true) }) },
        ...errors({ 400: "invalid_metadata", 404: "not_found", 415: "unsupported_media_type" }),
      },
    },
    async (req, _reply, { params, body }) => {
      await tasks.patchMetadata(params.id, body, { correlationId: req.id });
      return { ok: true };
    },
    defaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/runs",
      operationId: "seed001ListRuns",
      tags: TAGS,
      summary: "Runs of tasks, oldest first, with their derived status",
      query: z.object({ status: Status.optional(), offset: int(0), limit: int(50) }),
      responses: {
        200: { description: "A page of runs", schema: z.object({ ok: z.literal(true), data: z.array(Run), total: z.int(), offset: z.int(), limit: z.int() }) },
        ...errors({ 400: "invalid_status" }),
      },
    },
    async (_req, _reply, { query }) => {
      const limit = Math.min(200, Math.max(1, query.limit));
      const offset = query.offset;
      const page = await tasks.listRuns({ ...(query.status ? { status: query.status } : {}), offset, limit });
      return { ok: true, data: page.runs.map(runView), total: page.total, offset, limit };
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/runs/:id",
      operationId: "seed001GetRun",
      tags: TAGS,
      summary: "A run of tasks",
      params: RunIdParams,
      responses: { 200: { description: "The run", schema: z.object({ ok: z.literal(true), data: Run }) }, ...errors({ 404: "not_found" }) },
    },
    async (_req, _reply, { params }) => ({ ok: true, data: runView(await found(tasks.getRun(params.id))) }),
  );

  route(
    app,
    {
      method: "GET",
      url: "/runs/:id/tasks",
      operationId: "seed001RunTasks",
      tags: TAGS,
      summary: "A run's tasks",
      params: RunIdParams,
      responses: { 200: { description: "Its tasks", schema: z.object({ ok: z.literal(true), data: z.array(Task) }) }, ...errors({ 404: "not_found" }) },
    },
    async (_req, _reply, { params }) => ({ ok: true, data: (await tasks.runTasks(params.id)).map(({ task, llm }) => taskView(task, llm)) }),
  );
}

async function found<T>(p: Promise<T | null>): Promise<T> {
  const v = await p;
  if (v === null) throw new Seed001Error(404, "not_found");
  return v;
}
