import { cancelJob, getJobView, getRunRecord, readEvents, replayEvents, submitJob, type Bus } from "@orch/bus";
import type { GatewayConfig } from "@orch/config";
import {
  LOGS_DEFAULT_N,
  LOGS_MAX_N,
  Seed000Event,
  TaskPacket,
  toJobLogLines,
  toSeed000Frame,
} from "@orch/contracts";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { badRequest, notFound, unsupportedMediaType } from "../errors.js";
import { SseStream } from "../sse.js";

/**
 * Seed 000, "Orchestrator v0", under /api/orchestrator: its three documented endpoints plus the
 * routes its users have (logs, cancel, ping), with its CORS and security headers. Handlers only
 * translate HTTP into a command or a query.
 */

export interface Seed000Options {
  bus: Bus;
  cfg: Readonly<GatewayConfig>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i;

const jobId = (raw: unknown): string => {
  if (typeof raw !== "string" || !UUID.test(raw)) throw badRequest("Invalid job id: expected a UUID");
  return raw.toLowerCase();
};

const LogsQuery = z.object({
  n: z.coerce.number().int().min(1).max(LOGS_MAX_N).default(LOGS_DEFAULT_N),
});

const CORS_HEADERS = {
  "access-control-allow-origin": "*",
} as const;

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
} as const;

export async function seed000Routes(app: FastifyInstance, opts: Seed000Options): Promise<void> {
  const { bus, cfg } = opts;

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

  app.options("/*", async (_req, reply) =>
    reply
      .status(204)
      .headers({
        ...CORS_HEADERS,
        "access-control-allow-methods": "GET, POST, OPTIONS",
        "access-control-allow-headers": "content-type, last-event-id, idempotency-key, x-request-id",
        "access-control-max-age": "600",
      })
      .send(),
  );

  const rateLimit = { max: cfg.ORCH_RATE_LIMIT_MAX, timeWindow: cfg.ORCH_RATE_LIMIT_WINDOW_MS };

  app.post(
    "/jobs",
    { bodyLimit: cfg.ORCH_MAX_REQUEST_BYTES, config: { rateLimit } },
    async (req: FastifyRequest, reply: FastifyReply) => {
      if (!JSON_TYPE.test(req.headers["content-type"] ?? "")) {
        throw unsupportedMediaType("Content-Type must be application/json");
      }
      const parsed = TaskPacket.safeParse(req.body);
      if (!parsed.success) throw badRequest("Invalid Task Packet", z.flattenError(parsed.error));
      const key = req.headers["idempotency-key"];
      const id = await submitJob(bus, {
        packet: parsed.data,
        mode: cfg.ORCH_MODE,
        actor: "api",
        correlationId: req.id,
        ...(typeof key === "string" && key.length > 0 ? { idempotencyKey: key.slice(0, 256) } : {}),
      });
      req.log.info({ jobId: id }, "job submitted");
      return reply.header("cache-control", "no-store").send({ job_id: id });
    },
  );

  app.get("/jobs/:id", async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const id = jobId(req.params.id);
    const view = await getJobView(bus, id);
    if (!view) throw notFound(`Job ${id} not found`);
    return reply.header("cache-control", "no-store").send(view);
  });

  app.get("/jobs/:id/logs", async (req: FastifyRequest<{ Params: { id: string }; Querystring: unknown }>, reply) => {
    const id = jobId(req.params.id);
    const q = LogsQuery.safeParse(req.query);
    if (!q.success) throw badRequest(`Invalid n: expected an integer from 1 to ${LOGS_MAX_N}`, z.flattenError(q.error));
    if (!(await getJobView(bus, id))) throw notFound(`Job ${id} not found`);
    const events = await readEvents(bus, bus.names.subjects.evtRun(id));
    const logs = events.flatMap((e) => toJobLogLines(e.event)).filter((l) => l.level !== "debug");
    return reply.header("cache-control", "no-store").send({ job_id: id, logs: logs.slice(-q.data.n) });
  });

  app.post(
    "/jobs/:id/cancel",
    { bodyLimit: cfg.ORCH_MAX_REQUEST_BYTES, config: { rateLimit } },
    async (req: FastifyRequest<{ Params: { id: string } }>) => {
      const id = jobId(req.params.id);
      if (!(await getJobView(bus, id))) throw notFound(`Job ${id} not found`);
      await cancelJob(bus, id, { actor: "api", correlationId: req.id });
      req.log.info({ jobId: id }, "job cancel requested");
      return { ok: true };
    },
  );

  app.get("/ping", async () => ({ ok: true, mode: cfg.ORCH_MODE }));

  app.get("/events", async (req: FastifyRequest<{ Querystring: { job?: string; once?: string } }>, reply) => {
    const id = jobId(req.query.job);
    const once = req.query.once === "1" || req.query.once === "true";
    if (!(await getJobView(bus, id))) throw notFound(`Job ${id} not found`);
    const stored = await getRunRecord(bus, id);
    const lastEventId = Number(req.headers["last-event-id"]);
    const startSeq = Number.isSafeInteger(lastEventId) && lastEventId > 0 ? lastEventId + 1 : undefined;

    reply.hijack();
    const sse = new SseStream(reply.raw, { ...SECURITY_HEADERS, ...CORS_HEADERS, "x-request-id": req.id }, cfg.ORCH_SSE_HEARTBEAT_MS);
    await sse.send(Seed000Event.Ready, { job_id: id, mode: stored?.record.mode ?? cfg.ORCH_MODE });
    if (once) return sse.close();

    const ac = new AbortController();
    reply.raw.once("close", () => ac.abort());
    try {
      for await (const { streamSeq, event } of replayEvents(bus, bus.names.subjects.evtRun(id), {
        signal: ac.signal,
        ...(startSeq === undefined ? {} : { startSeq }),
      })) {
        const frame = toSeed000Frame(event);
        if (!frame) continue;
        await sse.send(frame.type, frame, streamSeq);
        if (frame.type === Seed000Event.End || sse.closed) break;
      }
    } catch (err) {
      if (!ac.signal.aborted) req.log.error({ err, jobId: id }, "event stream failed");
    } finally {
      sse.close();
    }
  });
}
