import { getSessionRecord, parseFeedPosition, replayEvents, sessionKeys, type Bus, type FeedEvent } from "@orch/bus";
import {
  DEFAULT_PROJECT,
  ErrorCode,
  EVENTS_PER_TRANSITION,
  FINAL_SESSION_STATUSES,
  OrchError,
  SESSION_STATUSES,
  type SessionRecord,
  type SessionStatus,
} from "@orch/contracts";
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
  listParam,
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

/** How many session events a session's stream holds after stream sequence `after` (one consumer-info request). */
async function remaining(bus: Bus, filter: string, after: number | undefined): Promise<number> {
  const c = await bus.js.consumers.get(bus.names.streams.sess, {
    filter_subjects: filter,
    ...(after ? { deliver_policy: "by_start_sequence" as const, opt_start_seq: after + 1 } : { deliver_policy: "all" as const }),
  });
  try {
    return (await c.info(true)).num_pending;
  } finally {
    await c.delete().catch(() => undefined);
  }
}

/** A `Last-Event-ID` or cursor that names an event position (400 otherwise). */
function position(id: string | undefined, field: string) {
  if (id === undefined) return undefined;
  const p = parseFeedPosition(id);
  if (!p) throw new ValidationError("query", [{ path: field, message: "must be an event id", code: "custom" }]);
  return p;
}

/**
 * Up to `limit` events matching `filter` after a position, oldest first, and whether more follow.
 * Reads one transition past the page at most (a transition holds several events).
 */
async function readPage(bus: Bus, filter: string, after: string | undefined, limit: number): Promise<{ events: FeedEvent[]; more: boolean }> {
  const out: FeedEvent[] = [];
  const ac = new AbortController();
  const from = position(after, "cursor");
  try {
    for await (const e of replayEvents(bus, filter, { ...(from ? { after: from } : {}), untilCaughtUp: true, signal: ac.signal })) {
      if (out.length === limit) return { events: out, more: true };
      out.push(e);
    }
  } finally {
    ac.abort();
  }
  return { events: out, more: false };
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
        "(as in history), `id:` its position in the runs stream. Reconnect with `Last-Event-ID` (or `?last_event_id=`) to",
        "resume with no gap and no duplicate. `: ping` heartbeats (`ORCH_SSE_HEARTBEAT_MS`). Ends after `run.finished`;",
        "resumed after it, answers 204 (an EventSource then stops reconnecting).",
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
      await streamEvents({
        req,
        reply,
        limits: opts.sse,
        finished: async (last) => runs.finishedBefore(run.runId, position(last, "Last-Event-ID")!),
        source: (last, signal) => {
          const after = position(last, "Last-Event-ID");
          return runs.watch(run.runId, { ...(after ? { after } : {}), signal });
        },
        frame: (e) => ({ event: e.event.type, data: eventJson(e), id: e.id }),
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
        source: (last, signal) => {
          const after = position(last, "Last-Event-ID");
          return runs.watchProject(params.id, { ...(after ? { after } : {}), signal });
        },
        frame: (e) => ({ event: e.event.type, data: eventJson(e), id: e.id }),
      });
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/events/stream",
      operationId: "v1EventFeed",
      tags: ["runs"],
      summary: "Every run's events as they happen (Server-Sent Events): the live event feed",
      description: [
        "Events of all runs (or of one project, `projectId`) from now on, after the last `recent` transitions (0 to 500,",
        "default 0): `id:`, `event:` and `data:` as in a run's stream. Reconnect with `Last-Event-ID` (or",
        "`?last_event_id=`) to resume after that id with no gap and no duplicate. It does not end.",
      ].join("\n"),
      query: StreamQuery.extend({
        projectId: IdParam.optional(),
        recent: z.coerce.number().int().min(0).max(500).default(0).describe("Start this many transitions back (a little history first)"),
      }),
      headers: STREAM_HEADERS,
      responses: { 200: SSE, 400: ERRORS[400], 401: ERRORS[401], 404: ERRORS[404] },
    },
    async (req, reply, { query }) => {
      if (query.projectId) await checkProject(opts, req, query.projectId);
      const filter = query.projectId ? s.runsOfProject(query.projectId) : s.runsAll();
      // Where "now" is: the runs stream's last transition, less the history asked for.
      const last = (await bus.jsm.streams.info(bus.names.streams.runs)).state.last_seq;
      const from = last - query.recent;
      await streamEvents({
        req,
        reply,
        limits: opts.sse,
        source: (lastId, signal) => {
          const after = position(lastId, "Last-Event-ID") ?? (from > 0 ? { streamSeq: from, index: EVENTS_PER_TRANSITION - 1 } : undefined);
          return replayEvents(bus, filter, { ...(after ? { after } : {}), signal });
        },
        frame: (e) => ({ event: e.event.type, data: eventJson(e), id: e.id }),
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
          .regex(/^\d{1,16}$/, "must be an event id")
          .optional(),
        limit: z.coerce.number().int().min(1).max(1_000).default(100),
      }),
      projectScoped: true,
      responses: { 200: { description: "Events", schema: listOf(EventJson) }, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403], 404: ERRORS[404] },
    },
    async (req, _reply, { query }) => {
      let filter: string;
      let total: () => Promise<number>;
      if (query.runId) {
        const run = await loadRun(opts, req, query.runId);
        if (query.projectId && query.projectId !== run.projectId) {
          throw new ValidationError("query", [{ path: "runId", message: `run ${run.runId} is not in project ${query.projectId}`, code: "custom" }]);
        }
        filter = s.runOf(run.runId);
        // Events are numbered gaplessly per run: its last one's number is how many it has.
        total = async () => (await runs.summary(run.runId))?.seq ?? run.seq;
      } else {
        const projectId = query.projectId ?? tokenProject(req);
        if (projectId) await checkProject(opts, req, projectId);
        filter = projectId ? s.runsOfProject(projectId) : s.runsAll();
        total = async () => (await runs.list({ ...(projectId ? { projectId } : {}), limit: 1 })).events ?? 0;
      }
      const page = await readPage(bus, filter, query.cursor, query.limit);
      const items = page.events.map(eventJson);
      return { items, ...(page.more && items.length ? { nextCursor: String(items[items.length - 1]!.id) } : {}), total: await total() };
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
      url: "/sessions",
      operationId: "v1ListSessions",
      tags: ["sessions"],
      summary: "Worker sessions across runs, newest first",
      description: "Every session the agent hubs keep (`?status=` filters, repeat it or give a comma list), newest first, at most `limit`.",
      query: z.object({
        status: listParam(SESSION_STATUSES).describe("created, starting, running, waiting_input, completed, failed, cancelled, timed_out"),
        limit: z.coerce.number().int().min(1).max(500).default(100),
      }),
      responses: { 200: { description: "Sessions", schema: listOf(SessionJson) }, 400: ERRORS[400], 401: ERRORS[401] },
    },
    async (_req, _reply, { query }) => {
      const keys = await sessionKeys(bus);
      const records: SessionRecord[] = [];
      for (let i = 0; i < keys.length; i += 64) {
        const batch = await Promise.all(
          keys.slice(i, i + 64).map((k) => {
            const dot = k.indexOf(".");
            return getSessionRecord(bus, k.slice(0, dot), k.slice(dot + 1));
          }),
        );
        for (const b of batch) if (b && (query.status.length === 0 || query.status.includes(b.record.status))) records.push(b.record);
      }
      records.sort((a, b) => b.createdAt - a.createdAt || a.sessionId.localeCompare(b.sessionId));
      return { items: records.slice(0, query.limit).map(sessionJson), total: records.length };
    },
  );

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
      const seqOf = (last: string | undefined) => (last !== undefined && /^\d{1,16}$/.test(last) ? Number(last) : undefined);
      await streamEvents({
        req,
        reply,
        limits: opts.sse,
        finished: async (last) => {
          const now = await runs.session(rec.sessionId);
          return !!now && FINAL_SESSION_STATUSES.has(now.status) && (await remaining(bus, filter, seqOf(last))) === 0;
        },
        source: (last, signal) => runs.watchSessions({ sessionId: rec.sessionId }, { ...(seqOf(last) ? { afterSeq: seqOf(last)! } : {}), signal }),
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
