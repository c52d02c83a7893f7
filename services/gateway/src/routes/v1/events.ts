import { countEvents, decode, type Bus } from "@orch/bus";
import { DEFAULT_PROJECT, ErrorCode, FINAL_RUN_STATUSES, FINAL_SESSION_STATUSES, OrchError, RunEvent, type SessionStatus } from "@orch/contracts";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { route, ValidationError } from "../../routing.js";
import { streamEvents as sseStream, type StreamSpec } from "../../sse.js";
import {
  actorOf,
  checkProject,
  ERRORS,
  EventJson,
  eventJson,
  IdParam,
  listOf,
  loadRun,
  SessionEventJson,
  sessionEventJson,
  SessionJson,
  sessionJson,
  tokenProject,
  type V1,
} from "./common.js";

const SSE = { description: "The event stream (`text/event-stream`)", contentType: "text/event-stream" };
const StreamQuery = z.object({
  last_event_id: z.string().max(20).optional().describe("Resume after this id (for clients that cannot send `Last-Event-ID`)"),
  access_token: z.string().max(2_000).optional().describe("A stream token from `POST /api/v1/stream-tokens` (EventSource cannot send headers)"),
});
const STREAM_HEADERS = { "Last-Event-ID": "Resume after this event id: no gap, no duplicate" };

/** Streams, and logs when the stream ends (the client left, the run finished, or it was too slow). */
async function streamEvents<T>(spec: StreamSpec<T>): Promise<void> {
  const started = Date.now();
  await sseStream(spec);
  spec.req.log.info({ path: spec.req.url.split("?")[0], ms: Date.now() - started }, "event stream ended");
}

/** Where an ordered consumer starts: after stream sequence `after`, or at the beginning. */
const from = (after: number | undefined) =>
  after ? { deliver_policy: "by_start_sequence" as const, opt_start_seq: after + 1 } : { deliver_policy: "all" as const };

/** How many messages matching `filter` a stream holds after sequence `after` (one consumer-info request). */
async function remaining(bus: Bus, stream: string, filter: string, after: number | undefined): Promise<number> {
  const c = await bus.js.consumers.get(stream, {
    filter_subjects: filter,
    ...from(after),
  });
  try {
    return (await c.info(true)).num_pending;
  } finally {
    await c.delete().catch(() => undefined);
  }
}

/** Up to `limit` run events matching `filter` after stream sequence `after`, oldest first. */
async function readPage(bus: Bus, filter: string, after: number | undefined, limit: number) {
  const stream = bus.names.streams.evt;
  const c = await bus.js.consumers.get(stream, {
    filter_subjects: filter,
    ...from(after),
  });
  try {
    const pending = (await c.info(true)).num_pending;
    const out: { streamSeq: number; event: RunEvent }[] = [];
    if (pending === 0) return { events: out, more: false };
    const want = Math.min(limit, pending);
    const it = await c.fetch({ max_messages: want, expires: 5_000 });
    let more = pending > want;
    let seen = 0;
    for await (const m of it) {
      seen++;
      const d = decode(RunEvent, m.data);
      if (d.ok) out.push({ streamSeq: m.seq, event: d.value });
      if (seen >= want || m.info.pending === 0) {
        more = m.info.pending > 0;
        break;
      }
    }
    it.stop();
    return { events: out, more };
  } finally {
    await c.delete().catch(() => undefined);
  }
}

export function eventRoutes(app: FastifyInstance, { opts, defaults }: V1): void {
  const { runs, bus } = opts;
  const s = bus.names.subjects;

  route(
    app,
    {
      method: "GET",
      url: "/runs/:id/events",
      operationId: "v1RunEvents",
      tags: ["runs"],
      summary: "A run's events as Server-Sent Events",
      description: [
        "Every event of the run from its first: `event:` its type (`run.created`, `step.started`, …), `data:` the event",
        "(as in history), `id:` its JetStream sequence. Reconnect with `Last-Event-ID` (or `?last_event_id=`) to resume",
        "with no gap and no duplicate. `: ping` heartbeats (`ORCH_SSE_HEARTBEAT_MS`). Ends after `run.finished`.",
        "A client too slow to keep up gets `event: resume` with `{reason, last_event_id}` and is disconnected.",
      ].join("\n"),
      params: z.object({ id: IdParam }),
      query: StreamQuery,
      headers: STREAM_HEADERS,
      projectScoped: true,
      responses: { 200: SSE, ...ERRORS },
    },
    async (req, reply, { params }) => {
      const run = await loadRun(opts, req, params.id);
      const filter = s.evtRun(run.runId);
      const final = FINAL_RUN_STATUSES.has(run.status);
      await streamEvents({
        req,
        reply,
        limits: opts.sse,
        source: async function* (after, signal) {
          // A finished run's stream is its history: a client resuming past its end is done at once.
          if (final && (await remaining(bus, bus.names.streams.evt, filter, after)) === 0) return;
          yield* runs.watch(run.runId, { ...(after ? { afterSeq: after } : {}), signal });
        },
        frame: (e) => ({ event: e.event.type, data: eventJson(e), id: e.streamSeq }),
        last: (e) => e.event.type === "run.finished",
      });
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/projects/:id/events",
      operationId: "v1ProjectEvents",
      tags: ["projects"],
      summary: "Every event of a project's runs as Server-Sent Events",
      description: "Like a run's stream, for all the project's runs (replayed from the first, then live); it does not end.",
      params: z.object({ id: IdParam }),
      query: StreamQuery,
      headers: STREAM_HEADERS,
      projectScoped: true,
      responses: { 200: SSE, ...ERRORS },
    },
    async (req, reply, { params }) => {
      const p = await checkProject(opts, req, params.id);
      if (!p && params.id !== DEFAULT_PROJECT && (await runs.list({ projectId: params.id, limit: 1 })).total === 0) {
        throw new OrchError(ErrorCode.NotFound, `project ${params.id} not found`);
      }
      await streamEvents({
        req,
        reply,
        limits: opts.sse,
        source: (after, signal) => runs.watchProject(params.id, { ...(after ? { afterSeq: after } : {}), signal }),
        frame: (e) => ({ event: e.event.type, data: eventJson(e), id: e.streamSeq }),
      });
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/events",
      operationId: "v1ListEvents",
      tags: ["runs"],
      summary: "Stored run events (JSON), oldest first",
      description: "Of one project (`projectId`), one run (`runId`), or all. Page with `cursor` (an event id): the events after it.",
      query: z.object({
        projectId: IdParam.optional(),
        runId: IdParam.optional(),
        cursor: z
          .string()
          .regex(/^\d{1,15}$/, "must be an event id")
          .optional(),
        limit: z.coerce.number().int().min(1).max(1_000).default(100),
      }),
      projectScoped: true,
      responses: { 200: { description: "Events", schema: listOf(EventJson) }, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403], 404: ERRORS[404] },
    },
    async (req, _reply, { query }) => {
      let filter: string;
      if (query.runId) {
        const run = await loadRun(opts, req, query.runId);
        if (query.projectId && query.projectId !== run.projectId) {
          throw new ValidationError("query", [{ path: "runId", message: `run ${run.runId} is not in project ${query.projectId}`, code: "custom" }]);
        }
        filter = s.evtRun(run.runId);
      } else {
        const projectId = query.projectId ?? tokenProject(req);
        if (projectId) await checkProject(opts, req, projectId);
        filter = projectId ? s.evtProject(projectId) : s.evtAll();
      }
      const after = query.cursor ? Number(query.cursor) : undefined;
      const [page, total] = await Promise.all([readPage(bus, filter, after, query.limit), countEvents(bus, filter)]);
      const items = page.events.map(eventJson);
      return { items, ...(page.more && items.length ? { nextCursor: String(items[items.length - 1]!.id) } : {}), total };
    },
  );

  // ── sessions ───────────────────────────────────────────────────────────────────────────────

  const loadSession = async (req: Parameters<typeof checkProject>[1], id: string) => {
    const rec = await runs.session(id);
    if (!rec) throw new OrchError(ErrorCode.NotFound, `session ${id} not found`);
    await checkProject(opts, req, rec.projectId);
    return rec;
  };

  route(
    app,
    {
      method: "GET",
      url: "/runs/:id/sessions",
      operationId: "v1RunSessions",
      tags: ["sessions"],
      summary: "A run's worker sessions, oldest first",
      params: z.object({ id: IdParam }),
      projectScoped: true,
      responses: { 200: { description: "Sessions", schema: listOf(SessionJson) }, ...ERRORS },
    },
    async (req, _reply, { params }) => {
      await loadRun(opts, req, params.id);
      const items = (await runs.sessions(params.id)).map(sessionJson);
      return { items, total: items.length };
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/sessions/:id",
      operationId: "v1GetSession",
      tags: ["sessions"],
      summary: "A worker session: executor, status, worktree, result, usage",
      params: z.object({ id: IdParam }),
      projectScoped: true,
      responses: { 200: { description: "The session", schema: SessionJson }, ...ERRORS },
    },
    async (req, _reply, { params }) => sessionJson(await loadSession(req, params.id)),
  );

  route(
    app,
    {
      method: "GET",
      url: "/sessions/:id/events",
      operationId: "v1SessionEvents",
      tags: ["sessions"],
      summary: "A session's events as Server-Sent Events",
      description: [
        "Lifecycle (`session.running`, `session.completed`, …), the agent's deltas and messages, tool calls and",
        "results, file edits, usage, commits; `id:` = JetStream sequence, resumable with `Last-Event-ID`. Ends after",
        "the session's final status.",
      ].join("\n"),
      params: z.object({ id: IdParam }),
      query: StreamQuery,
      headers: STREAM_HEADERS,
      projectScoped: true,
      responses: { 200: SSE, ...ERRORS },
    },
    async (req, reply, { params }) => {
      const rec = await loadSession(req, params.id);
      const filter = s.sessSession(rec.sessionId);
      const final = FINAL_SESSION_STATUSES.has(rec.status);
      await streamEvents({
        req,
        reply,
        limits: opts.sse,
        source: async function* (after, signal) {
          if (final && (await remaining(bus, bus.names.streams.sess, filter, after)) === 0) return;
          yield* runs.watchSessions({ sessionId: rec.sessionId }, { ...(after ? { afterSeq: after } : {}), signal });
        },
        frame: (e) => ({ event: e.event.type, data: sessionEventJson(e), id: e.streamSeq }),
        last: (e) => e.event.type.startsWith("session.") && FINAL_SESSION_STATUSES.has(e.event.type.slice(8) as SessionStatus),
      });
    },
  );

  route(
    app,
    {
      method: "POST",
      url: "/sessions/:id/cancel",
      operationId: "v1CancelSession",
      tags: ["sessions"],
      summary: "Stop a running session (its processes are killed; the step fails as cancelled)",
      description: "Answers with the session once it has ended. 409 when it has already ended.",
      params: z.object({ id: IdParam }),
      body: z.strictObject({ reason: z.string().max(2_000).optional() }).optional(),
      headers: { "X-Actor": "Who cancels" },
      projectScoped: true,
      responses: { 200: { description: "The ended session", schema: SessionJson }, ...ERRORS, 409: { description: "The session has already ended" } },
    },
    async (req, _reply, { params, body }) => {
      const rec = await loadSession(req, params.id);
      const who = actorOf(req, body?.reason);
      const after = await runs.cancelSession(rec.sessionId, { actor: who.actor, ...(who.reason ? { reason: who.reason } : {}) });
      req.log.info({ sessionId: rec.sessionId, actor: who.actor }, "session cancelled");
      return sessionJson(after);
    },
    defaults,
  );
}
