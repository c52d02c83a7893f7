import { finishedBefore, getRunSummary, parseFeedPosition, readEvents, replayEvents } from "@orch/bus";
import {
  cancelJob,
  getJobView,
  JOB_STATUSES,
  LOGS_DEFAULT_N,
  LOGS_MAX_N,
  Seed000Event,
  submitJob,
  TaskPacket,
  toJobLogLines,
  toSeed000Frame,
} from "@orch/runs";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { notFound, toHttp } from "../../errors.js";
import type { Surface } from "../../context.js";
import { queryBool, route, ValidationError } from "../../routing.js";
import { streamEvents } from "../../sse.js";

/**
 * Seed 000, "Orchestrator v0", under /api/orchestrator: its three documented endpoints plus the
 * routes its users have (logs, cancel, ping), with its CORS and security headers. Handlers only
 * translate HTTP into a command or a query.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const JobId = z
  .string()
  .regex(UUID, "Invalid job id: expected a UUID")
  .transform((s) => s.toLowerCase());
const JobParams = z.object({ id: JobId });

const JobView = z.object({
  job_id: z.uuid(),
  status: z.enum(JOB_STATUSES),
  started_at: z.iso.datetime().optional(),
  finished_at: z.iso.datetime().optional(),
  error: z.string().optional().describe("`wall_clock_exceeded`, `step_budget_exceeded`, or the failing step's error"),
  stepsRun: z.int(),
});
const LogLine = z.object({ t: z.int(), level: z.enum(["info", "warn", "error"]), msg: z.string(), data: z.record(z.string(), z.unknown()).optional() });

const CORS_HEADERS = {
  "access-control-allow-origin": "*",
} as const;

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
} as const;

const TAGS = ["jobs"];

export async function seed000Routes(app: FastifyInstance, opts: Surface): Promise<void> {
  const { bus, cfg } = opts;

  // Its one error body, with "Invalid Task Packet" and the flattened fields for a bad packet.
  app.setErrorHandler((err, req, reply) => {
    if (err instanceof ValidationError && err.part === "body" && err.zodError) {
      return reply.status(400).send({ error: { code: "BAD_REQUEST", message: "Invalid Task Packet", details: z.flattenError(err.zodError) } });
    }
    const { status, body } = toHttp(err);
    if (status >= 500) req.log.error({ err }, "request failed");
    return reply.status(status).send(body);
  });

  // An empty JSON body is "no body" here (a body-less POST .../cancel from a client that always
  // sends Content-Type); anything else goes through fastify's prototype-poisoning-safe parser.
  const jsonParser = app.getDefaultJsonParser("error", "ignore");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    if (body === "" || (typeof body === "string" && body.trim() === "")) return done(null, undefined);
    jsonParser(req, body as string, done);
  });

  app.addHook("onSend", async (_req, reply) => {
    reply.headers({ ...SECURITY_HEADERS, ...CORS_HEADERS });
    reply.removeHeader("access-control-allow-credentials");
  });

  app.options("/*", { config: { auth: "none" } }, async (_req, reply) =>
    reply
      .status(204)
      .headers({
        ...CORS_HEADERS,
        "access-control-allow-methods": "GET, POST, OPTIONS",
        "access-control-allow-headers": "content-type, last-event-id, idempotency-key, x-request-id, authorization",
        "access-control-max-age": "600",
      })
      .send(),
  );

  const defaults = { rateLimit: opts.rateLimit, bodyLimit: cfg.ORCH_MAX_REQUEST_BYTES };

  route(
    app,
    {
      method: "POST",
      url: "/jobs",
      operationId: "createJob",
      tags: TAGS,
      summary: "Submit a Task Packet",
      description: [
        "Durable once answered: the job is stored on the command stream and runs even if the gateway stops",
        "right after. Rate limited per client (`ORCH_RATE_LIMIT_MAX` per `ORCH_RATE_LIMIT_WINDOW_MS`); bodies",
        "above `ORCH_MAX_REQUEST_BYTES` (32768) get 413. `limits` also accepts `max_steps` / `max-steps`,",
        "`max_wall_ms` / `max-wall-ms`, `max_tokens` / `max-tokens`. In `ORCH_MODE=mock` a step's",
        "`payload.mock` can make its adapter fail (`failTimes`, `error`, `retryable`) or take time (`delayMs`).",
      ].join("\n"),
      json: true,
      body: TaskPacket,
      headers: { "Idempotency-Key": "The same key always yields the same job id, and the job is created once." },
      responses: {
        200: { description: "Accepted; the job is queued (`Cache-Control: no-store`).", schema: z.object({ job_id: z.uuid() }) },
        400: { description: "Invalid Task Packet, with the fields" },
        413: { description: "Body too large" },
        415: { description: "Not JSON" },
        429: { description: "Rate limited" },
      },
    },
    async (req, reply, { body }) => {
      const key = req.headers["idempotency-key"];
      const id = await submitJob(bus, {
        packet: body,
        mode: cfg.ORCH_MODE,
        actor: "api",
        correlationId: req.id,
        ...(typeof key === "string" && key.length > 0 ? { idempotencyKey: key.slice(0, 256) } : {}),
      });
      req.log.info({ jobId: id }, "job submitted");
      return reply.header("cache-control", "no-store").send({ job_id: id });
    },
    defaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/jobs/:id",
      operationId: "getJob",
      tags: TAGS,
      summary: "A job's status",
      params: JobParams,
      responses: { 200: { description: "The job", schema: JobView }, 400: { description: "Malformed id" }, 404: { description: "No such job" } },
    },
    async (_req, reply, { params }) => {
      const view = await getJobView(bus, params.id);
      if (!view) throw notFound(`Job ${params.id} not found`);
      return reply.header("cache-control", "no-store").send(view);
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/jobs/:id/logs",
      operationId: "getJobLogs",
      tags: TAGS,
      summary: "A job's last log lines (the last is `job.end` once it finished)",
      params: JobParams,
      query: z.object({ n: z.coerce.number().int().min(1).max(LOGS_MAX_N).default(LOGS_DEFAULT_N) }),
      responses: {
        200: { description: "Log lines, oldest first", schema: z.object({ job_id: z.uuid(), logs: z.array(LogLine) }) },
        400: { description: `Malformed id, or n not an integer from 1 to ${LOGS_MAX_N}` },
        404: { description: "No such job" },
      },
    },
    async (_req, reply, { params, query }) => {
      const id = params.id;
      if (!(await getJobView(bus, id))) throw notFound(`Job ${id} not found`);
      const events = await readEvents(bus, bus.names.subjects.runOf(id));
      const logs = events.flatMap((e) => toJobLogLines(e.event, e.work)).filter((l) => l.level !== "debug");
      return reply.header("cache-control", "no-store").send({ job_id: id, logs: logs.slice(-query.n) });
    },
  );

  route(
    app,
    {
      method: "POST",
      url: "/jobs/:id/cancel",
      operationId: "cancelJob",
      tags: TAGS,
      summary: "Cancel a job (idempotent; a finished job stays as it is)",
      params: JobParams,
      responses: {
        200: { description: "Cancellation requested", schema: z.object({ ok: z.literal(true) }) },
        400: { description: "Malformed id" },
        404: { description: "No such job" },
      },
    },
    async (req, _reply, { params }) => {
      const id = params.id;
      if (!(await getJobView(bus, id))) throw notFound(`Job ${id} not found`);
      await cancelJob(bus, id, { actor: "api", correlationId: req.id });
      req.log.info({ jobId: id }, "job cancel requested");
      return { ok: true };
    },
    defaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/ping",
      operationId: "ping",
      tags: TAGS,
      summary: "Liveness of the job API, with the mode",
      responses: { 200: { description: "Up", schema: z.object({ ok: z.literal(true), mode: z.enum(["mock", "live"]) }) } },
    },
    async () => ({ ok: true, mode: cfg.ORCH_MODE }),
  );

  route(
    app,
    {
      method: "GET",
      url: "/events",
      operationId: "jobEvents",
      tags: TAGS,
      summary: "A job's events as Server-Sent Events",
      description: [
        "First `event: ready` with `{job_id, mode}` (`once=1` closes after it), then every event of the job",
        "from its first (`start`, `step.start`, `step.ok`, `step.retry`, `step.error`, `end`) with",
        "`id:` = the event's position in the runs stream; reconnect with `Last-Event-ID` to resume with no",
        "gap and no duplicate. `: ping` every 15 s. The stream ends after `end`; resumed after `end`, it",
        "answers 204 (an EventSource then stops reconnecting).",
      ].join("\n"),
      query: z.object({ job: JobId, once: queryBool(), last_event_id: z.string().optional(), access_token: z.string().optional() }),
      headers: { "Last-Event-ID": "Resume after this event id" },
      responses: {
        200: { description: "The event stream", contentType: "text/event-stream" },
        400: { description: "Malformed job id" },
        404: { description: "No such job" },
      },
    },
    async (req, reply, { query }) => {
      const id = query.job;
      if (!(await getJobView(bus, id))) throw notFound(`Job ${id} not found`);
      const run = await getRunSummary(bus, id);
      const ready = { event: Seed000Event.Ready, data: { job_id: id, mode: run?.mode ?? cfg.ORCH_MODE } };
      await streamEvents({
        req,
        reply,
        limits: opts.sse,
        headers: { ...SECURITY_HEADERS, ...CORS_HEADERS },
        preamble: [ready],
        finished: async (last) => {
          const after = parseFeedPosition(last);
          return after !== null && (await finishedBefore(bus, id, after));
        },
        source: (last, signal) => {
          if (query.once) return (async function* () {})();
          const after = parseFeedPosition(last);
          return replayEvents(bus, bus.names.subjects.runOf(id), { signal, ...(after ? { after } : {}) });
        },
        frame: ({ id: eventId, event, work }) => {
          const f = toSeed000Frame(event, work);
          return f ? { event: f.type, data: f, id: eventId } : null;
        },
        last: ({ event }) => toSeed000Frame(event)?.type === Seed000Event.End,
      });
    },
  );
}
