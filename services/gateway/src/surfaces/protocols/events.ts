import { DEFAULT_PROJECT, QUEUE_JOB_STATUSES, type QueueJob } from "@orch/contracts";
import { parseFeedPosition, replayEvents, type FeedEvent, type FeedPosition } from "@orch/bus";
import { listJobs, queueStats } from "@orch/runs";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { assertProjectAccess } from "../../auth.js";
import { route } from "../../routing.js";
import { streamEvents } from "../../sse.js";
import { JobOutSchema, ProjectParams, ProtocolParams, TAGS, type Seed004 } from "./common.js";
import { EventMapper, jobTypeOf, runEventIdOf, type EventOut, type JobOut } from "./views.js";

/**
 * Seed 004's events (lists and live streams) and queue inspection. Events are the runs' own events
 * in seed 004's words (`EventMapper`); `id` is an integer from the run event's position in the runs
 * stream (`eventIdOf`), which is also the SSE `id:` a client resumes from with `Last-Event-ID`.
 */

const EventOutSchema = z.object({
  id: z.int(),
  protocol_run_id: z.int(),
  step_run_id: z.int().nullable(),
  event_type: z.string(),
  message: z.string(),
  created_at: z.string(),
  metadata: z.record(z.string(), z.unknown()),
  protocol_name: z.string(),
  project_id: z.int(),
  project_name: z.string().nullable(),
});
const Detail = z.object({ detail: z.string() });
const QueueCountsSchema = z.object({ queued: z.int(), started: z.int(), finished: z.int(), failed: z.int() });

/** How far back `GET /events` without a project looks (stream messages). */
const RECENT_SCAN_MAX = 50_000;

const isOnboarding = (e: EventOut) => e.event_type.startsWith("setup_") || e.protocol_name.startsWith("setup-");

export async function seed004EventRoutes(app: FastifyInstance, s: Seed004): Promise<void> {
  const { runs, ids, opts } = s;
  const { bus } = opts;

  const mapAll = async (events: FeedEvent[]): Promise<EventOut[]> => {
    const m = new EventMapper(runs, ids);
    const out: EventOut[] = [];
    for (const e of events) out.push(...(await m.map(e)));
    return out;
  };

  route(
    app,
    {
      method: "GET",
      url: "/protocols/:protocol_run_id/events",
      operationId: "tgProtocolEvents",
      tags: TAGS,
      summary: "A protocol run's events, oldest first",
      projectScoped: true,
      params: ProtocolParams,
      responses: { 200: { description: "Events", schema: z.array(EventOutSchema) }, 404: { description: "No such protocol run", schema: Detail } },
    },
    async (req, _reply, { params }) => {
      const { run } = await s.protocol(req, params.protocol_run_id);
      return mapAll(await runs.history(run.runId));
    },
  );

  /**
   * The last `limit` events matching `filter` (every project's by default: runs without a project
   * left out), newest first: read backwards in growing spans of the stream, never the whole history.
   */
  const recent = async (limit: number, filter = bus.names.subjects.runsAll()): Promise<EventOut[]> => {
    const info = await bus.jsm.streams.info(bus.names.streams.runs);
    if (info.state.messages === 0) return [];
    const m = new EventMapper(runs, ids);
    let span = Math.max(limit * 4, 200);
    for (;;) {
      const start = Math.max(info.state.first_seq, info.state.last_seq - span + 1, 1);
      const picked: FeedEvent[] = [];
      const ac = new AbortController();
      const guard = setTimeout(() => ac.abort(), 10_000);
      const it = replayEvents(bus, filter, { after: { streamSeq: start, index: -1 }, signal: ac.signal, untilCaughtUp: true });
      try {
        for await (const e of it) {
          if (e.event.projectId !== DEFAULT_PROJECT) picked.push(e);
          if (e.streamSeq >= info.state.last_seq) break;
        }
      } finally {
        clearTimeout(guard);
        ac.abort();
      }
      if (picked.length >= limit || start <= info.state.first_seq || span >= RECENT_SCAN_MAX) {
        const out: EventOut[] = [];
        for (const e of picked.reverse()) {
          out.push(...(await m.map(e)).reverse());
          if (out.length >= limit) break;
        }
        return out.slice(0, limit);
      }
      span *= 4;
    }
  };

  route(
    app,
    {
      method: "GET",
      url: "/events",
      operationId: "tgRecentEvents",
      tags: TAGS,
      summary: "Recent events, newest first (of one project with `project_id`)",
      description: "`kind=onboarding` keeps the setup runs' events. Without `project_id` it looks at the most recent run events only.",
      projectScoped: true,
      query: z.object({
        limit: z.coerce.number().int().min(1).max(1_000).default(50),
        project_id: z
          .string()
          .regex(/^\d{1,15}$/)
          .transform(Number)
          .optional(),
        kind: z.string().max(64).optional(),
      }),
      responses: { 200: { description: "Events", schema: z.array(EventOutSchema) }, 404: { description: "No such project", schema: Detail } },
    },
    async (req, _reply, { query }) => {
      let events: EventOut[];
      let projectN = query.project_id;
      if (projectN === undefined && req.auth.kind === "project") projectN = await ids.projectInt(req.auth.projectId);
      if (projectN !== undefined) {
        const p = await s.project(req, projectN);
        events = await recent(query.kind === "onboarding" ? Math.min(query.limit * 10, 1_000) : query.limit, bus.names.subjects.runsOfProject(p.id));
      } else {
        events = await recent(query.kind === "onboarding" ? Math.min(query.limit * 10, 1_000) : query.limit);
      }
      if (query.kind === "onboarding") events = events.filter(isOnboarding);
      return events.slice(0, query.limit);
    },
  );

  /** Where a seed 004 `Last-Event-ID` resumes: after the run event it came from (its other seed event, if any, filtered by id). */
  const resumePoint = (last: string | undefined): { after?: FeedPosition; lastId?: number } => {
    if (last === undefined || !/^\d{1,16}$/.test(last)) return {};
    const lastId = Number(last);
    const p = parseFeedPosition(runEventIdOf(lastId));
    return p ? { after: { streamSeq: p.streamSeq, index: p.index - 1 }, lastId } : {};
  };

  /** A stream of events as SSE: every frame is `event: <event_type>`, `id: <event id>`, the event as data. */
  const stream = (source: (after: FeedPosition | undefined, signal: AbortSignal) => AsyncIterable<FeedEvent>, end?: (e: FeedEvent) => boolean) => {
    const m = new EventMapper(runs, ids);
    async function* mapped(last: string | undefined, signal: AbortSignal): AsyncGenerator<{ se: FeedEvent; out: EventOut[] }> {
      const { after, lastId } = resumePoint(last);
      for await (const se of source(after, signal)) {
        const out = (await m.map(se)).filter((o) => lastId === undefined || o.id > lastId);
        yield { se, out };
      }
    }
    return {
      source: mapped,
      frame: ({ out }: { se: FeedEvent; out: EventOut[] }) => out.map((o) => ({ event: o.event_type, data: o, id: o.id })),
      ...(end ? { last: ({ se }: { se: FeedEvent; out: EventOut[] }) => end(se) } : {}),
    };
  };

  route(
    app,
    {
      method: "GET",
      url: "/protocols/:protocol_run_id/events/stream",
      operationId: "tgProtocolEventStream",
      tags: TAGS,
      summary: "A protocol run's events as Server-Sent Events",
      description:
        "Every event from the first (or after `Last-Event-ID`), then live ones; `event:` is the event type, `id:` its id. Ends after the run finishes; resumed after its end, answers 204.",
      projectScoped: true,
      params: ProtocolParams,
      query: z.object({ last_event_id: z.string().optional(), access_token: z.string().optional() }),
      headers: { "Last-Event-ID": "Resume after this event id" },
      responses: { 200: { description: "The event stream", contentType: "text/event-stream" }, 404: { description: "No such protocol run", schema: Detail } },
    },
    async (req, reply, { params }) => {
      const { run } = await s.protocol(req, params.protocol_run_id);
      await streamEvents({
        req,
        reply,
        limits: opts.sse,
        // The run's end is two seed events (its status, then protocol_finished): after the second, nothing follows.
        finished: async (last) => {
          const { after, lastId } = resumePoint(last);
          return after !== undefined && lastId! % 2 === 1 && (await runs.finishedBefore(run.runId, { streamSeq: after.streamSeq, index: after.index + 1 }));
        },
        ...stream(
          (after, signal) => runs.watch(run.runId, { ...(after ? { after } : {}), signal }),
          (se) => se.event.type === "run.finished",
        ),
      });
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/projects/:project_id/events/stream",
      operationId: "tgProjectEventStream",
      tags: TAGS,
      summary: "A project's events as Server-Sent Events",
      description: "Every event of the project's runs from the first (or after `Last-Event-ID`), then live ones.",
      projectScoped: true,
      params: ProjectParams,
      query: z.object({ last_event_id: z.string().optional(), access_token: z.string().optional() }),
      headers: { "Last-Event-ID": "Resume after this event id" },
      responses: { 200: { description: "The event stream", contentType: "text/event-stream" }, 404: { description: "No such project", schema: Detail } },
    },
    async (req, reply, { params }) => {
      const p = await s.project(req, params.project_id);
      assertProjectAccess(req, p);
      await streamEvents({
        req,
        reply,
        limits: opts.sse,
        ...stream((after, signal) => runs.watchProject(p.id, { ...(after ? { after } : {}), signal })),
      });
    },
  );

  // ── queues ──────────────────────────────────────────────────────────────────────────────────

  route(
    app,
    {
      method: "GET",
      url: "/queues",
      operationId: "tgQueueStats",
      tags: TAGS,
      summary: "Queue statistics of the dispatched work",
      description: [
        "`backend` is `jetstream`; then one entry per work queue (`role.<role>`): `queued` = step attempts dispatched",
        "and not yet taken by an agent hub; `started` = taken and not yet reported; `finished` / `failed` = the last",
        "10,000 attempts that ended well or badly.",
      ].join("\n"),
      responses: { 200: { description: "Counts per queue", schema: z.object({ backend: z.literal("jetstream") }).catchall(QueueCountsSchema) } },
    },
    async () => ({ backend: "jetstream", ...(await queueStats(bus)) }),
  );

  const toJobOut = async (j: QueueJob): Promise<JobOut> => {
    const payload: Record<string, unknown> = { run_id: j.runId, step_id: j.stepId, project_id: j.projectId };
    if (j.projectId !== DEFAULT_PROJECT) {
      payload.protocol_run_id = await ids.protocolInt(j.runId);
      if (j.kind !== "plan") payload.step_run_id = await ids.stepInt(j.runId, j.stepId);
    }
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    return {
      job_id: j.jobId,
      job_type: jobTypeOf(j.kind, j.type),
      payload,
      status: j.status,
      queue: j.queue,
      attempts: j.attempt,
      max_attempts: null,
      created_at: iso(j.createdAt),
      started_at: iso(j.startedAt),
      ended_at: iso(j.endedAt),
      result: j.result ?? null,
      error: j.error ?? null,
    };
  };

  route(
    app,
    {
      method: "GET",
      url: "/queues/jobs",
      operationId: "tgQueueJobs",
      tags: TAGS,
      summary: "Jobs by status (queued, started: dispatched work now; finished, failed: the most recent)",
      query: z.object({ status: z.enum(QUEUE_JOB_STATUSES).optional() }),
      responses: { 200: { description: "Jobs", schema: z.array(JobOutSchema) }, 422: { description: "Unknown status" } },
    },
    async (_req, _reply, { query }) => {
      const jobs = await listJobs(bus, query.status);
      const out: JobOut[] = [];
      for (const j of jobs.slice(0, 500)) out.push(await toJobOut(j));
      return out;
    },
  );
}
