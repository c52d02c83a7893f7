import { decode, isNoAnswer } from "@orch/bus";
import { ErrorCode, OrchError, TIMER_KINDS, TIMERS_QUERY, TimersResult } from "@orch/contracts";
import { queueStats } from "@orch/runs";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { forbidden } from "../../auth.js";
import { route, ValidationError } from "../../routing.js";
import { checkProject, ERRORS, IdParam, iso, listOf, loadRun, type V1 } from "./common.js";

const TimerJson = z.object({
  id: z.string().describe("The timer id"),
  runId: z.string(),
  kind: z.enum(TIMER_KINDS),
  stepId: z.string().optional(),
  dueAt: z.iso.datetime(),
  setAt: z.iso.datetime(),
});

const QueueJson = z.object({
  name: z.string().describe("The work queue (`role.<role>`, `adapter`)"),
  queued: z.int().describe("Stored, not yet delivered to an agent hub"),
  started: z.int().describe("Delivered to an agent hub, not yet acknowledged"),
  finished: z.int().describe("Ended successfully, among the recent run events"),
  failed: z.int().describe("Ended in failure (or a retry), among the recent run events"),
});

const StreamTokenJson = z.object({ token: z.string(), expiresAt: z.iso.datetime(), path: z.string() });

/** Our own event streams, and how to find the project each belongs to. */
const OWN_STREAMS: { re: RegExp; project: (v1: V1, req: FastifyRequest, id: string) => Promise<void> }[] = [
  { re: /^\/api\/v1\/runs\/([A-Za-z0-9_-]{1,128})\/events$/, project: async ({ opts }, req, id) => void (await loadRun(opts, req, id)) },
  { re: /^\/api\/v1\/projects\/([A-Za-z0-9_-]{1,128})\/events$/, project: async ({ opts }, req, id) => void (await checkProject(opts, req, id)) },
  {
    re: /^\/api\/v1\/sessions\/([A-Za-z0-9_-]{1,128})\/events$/,
    project: async ({ opts }, req, id) => {
      const s = await opts.runs.session(id);
      if (!s) throw new OrchError(ErrorCode.NotFound, `session ${id} not found`);
      await checkProject(opts, req, s.projectId);
    },
  },
];

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export function opsRoutes(app: FastifyInstance, v1: V1): void {
  const { opts, defaults } = v1;
  const { bus } = opts;

  route(
    app,
    {
      method: "GET",
      url: "/timers",
      operationId: "v1ListTimers",
      tags: ["queues"],
      summary: "Armed timers (read only)",
      description: [
        "The scheduler's armed timers (its `timers` bucket): retry backoffs, step and approval timeouts, wall-clock",
        "limits, each with its run, kind and due time; soonest first. Read only: timers are set and cancelled by the",
        "runs themselves (cancel the run, or act on the step, to change them). A schedule's next due time is one of",
        "them (kind `tick`); schedules themselves are `/api/v1/schedules`. `scheduler` names the active scheduler",
        "(the replica holding the leader lease) that answered, and its lease's epoch.",
      ].join("\n"),
      query: z.object({ runId: IdParam.optional() }),
      responses: {
        200: {
          description: "Timers",
          schema: listOf(TimerJson).extend({
            scheduler: z
              .object({ instanceId: z.string(), epoch: z.int().describe("Takeovers of the lease so far, this holder's included") })
              .optional()
              .describe("The active scheduler that answered"),
          }),
        },
        400: ERRORS[400],
        401: ERRORS[401],
        503: { description: "`UNAVAILABLE`: no active scheduler answered (between a crash and a standby's takeover)" },
      },
    },
    async (_req, _reply, { query }) => {
      const m = await bus.nc
        .request(bus.names.subjects.query(TIMERS_QUERY), JSON.stringify(query.runId ? { runId: query.runId } : {}), { timeout: 5_000 })
        .catch((err: unknown) => {
          // Between an active scheduler's death and a standby's takeover (about ORCH_SCHEDULER_LEASE_TTL_MS), or with none running.
          if (bus.connected && isNoAnswer(err))
            throw new OrchError(ErrorCode.Unavailable, "no active scheduler answered; a standby takes over within its lease TTL", { cause: err });
          throw err;
        });
      const d = decode(TimersResult, m.data);
      if (!d.ok) throw new OrchError(ErrorCode.Unavailable, `the scheduler's answer is unreadable: ${d.error}`);
      const items: z.infer<typeof TimerJson>[] = d.value.timers.map((t) => ({
        id: t.timerId,
        runId: t.runId,
        kind: t.kind,
        ...(t.stepId !== undefined ? { stepId: t.stepId } : {}),
        dueAt: iso(t.dueAt)!,
        setAt: iso(t.setAt)!,
      }));
      items.sort((a, b) => a.dueAt.localeCompare(b.dueAt) || a.id.localeCompare(b.id));
      return { items, total: items.length, ...(d.value.scheduler ? { scheduler: d.value.scheduler } : {}) };
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/queues",
      operationId: "v1ListQueues",
      tags: ["queues"],
      summary: "Work queues: what is queued, running, finished and failed per queue",
      description:
        "From the event-bus's jobs projection: attempts dispatched and not yet answered are queued until an agent hub takes them, then started; finished and failed look back over the last 10,000 ended.",
      responses: { 200: { description: "Queues by name", schema: listOf(QueueJson) }, 401: ERRORS[401] },
    },
    async () => {
      const stats = await queueStats(bus);
      const items = Object.entries(stats)
        .map(([name, c]) => ({ name, ...c }))
        .sort((a, b) => a.name.localeCompare(b.name));
      return { items, total: items.length };
    },
  );

  route(
    app,
    {
      method: "POST",
      url: "/stream-tokens",
      operationId: "v1CreateStreamToken",
      tags: ["runs"],
      summary: "A short-lived token for one event stream (EventSource cannot send headers)",
      description: [
        "Give the path of an event stream (`/api/v1/runs/{id}/events`, any surface's SSE route); open it with",
        "`?access_token=<token>`. The token opens that path only, for GET, until `expiresAt` (`ORCH_SSE_TOKEN_TTL_MS`).",
      ].join("\n"),
      json: true,
      body: z.strictObject({
        path: z
          .string()
          .min(1)
          .max(1_000)
          .regex(/^\/[^?#\s]*$/, "must be a path (no query)")
          .describe("The stream's path, e.g. /api/v1/runs/<id>/events"),
      }),
      projectScoped: true,
      responses: {
        201: { description: "The token", schema: StreamTokenJson },
        400: { description: "Not the path of an event stream" },
        401: ERRORS[401],
        403: ERRORS[403],
        404: ERRORS[404],
        415: { description: "Not JSON" },
      },
    },
    async (req, reply, { body }) => {
      const path = body.path.replace(/(.)\/$/, "$1");
      const isStream = app.documented.some(
        (r) =>
          r.method === "GET" &&
          Object.values(r.spec.responses).some((x) => x.contentType === "text/event-stream") &&
          new RegExp(`^${escape(r.path).replace(/\\\{[^}]+\\\}/g, "[^/]+")}$`).test(path),
      );
      if (!isStream)
        throw new ValidationError("body", [{ path: "path", message: "is not the path of an event stream (GET, text/event-stream)", code: "custom" }]);
      const own = OWN_STREAMS.map((o) => ({ o, m: o.re.exec(path) })).find((x) => x.m);
      if (own) await own.o.project(v1, req, own.m![1]!);
      else if (req.auth.kind === "project") throw forbidden(`This token is limited to project ${req.auth.projectId}`);
      const t = opts.auth.issueStreamToken(path);
      return reply
        .status(201)
        .header("cache-control", "no-store")
        .send({ token: t.token, expiresAt: iso(t.expiresAt)!, path });
    },
    defaults,
  );
}
