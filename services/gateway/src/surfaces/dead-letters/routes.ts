import { buildHeaders, decode, isJsNotFound, type Bus } from "@orch/bus";
import { DeadLetter, ErrorCode } from "@orch/contracts";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { Surface } from "../../context.js";
import { notFound, toHttp } from "../../errors.js";
import { route, ValidationError } from "../../routing.js";

/**
 * Dead letters: the messages a consumer could not decode or handle, parked on the JetStream
 * dead-letter stream (`parkDeadLetter` in libs/bus). Seed 001's users' routes (`/dlq`, its
 * `{ok, …}` bodies) and ours (`/api/v1/dead-letters`, our error shape) over the same stream. A dead
 * letter's id is its sequence in that stream. Replaying one republishes its original payload to its
 * original subject with its original headers, then deletes it; one that fails again comes back as a
 * new dead letter (a new id).
 */

const LIST_MAX = 1_000;
const READ_GUARD_MS = 5_000;
const PUBLISH_TIMEOUT_MS = 5_000;

/** A dead letter as both surfaces show it. */
const DeadLetterItem = z.object({
  id: z.int().describe("Its sequence in the dead-letter stream"),
  origin: z.string().describe("The consumer that parked it (`core`, `agent-hub`, …)"),
  subject: z.string().describe("The subject it was published to, where a replay republishes it"),
  reason: z.enum(["undecodable", "invalid", "handler_failed"]),
  error: z.string(),
  at: z.iso.datetime(),
  deliveries: z.int().describe("How many times it was delivered before it was parked"),
  payload: z.unknown().optional().describe("The original payload, when it is JSON"),
});
type DeadLetterItem = z.infer<typeof DeadLetterItem>;

/** Ours adds where it came from; the detail view adds the raw payload and headers. */
const OurItem = DeadLetterItem.extend({
  stream: z.string().optional().describe("The stream the original message was in"),
  streamSeq: z.int().optional().describe("Its sequence there"),
});
const OurDetail = OurItem.extend({
  data: z.string().describe("The original payload, base64"),
  headers: z.record(z.string(), z.string()).optional().describe("The original message's headers"),
  size: z.int().describe("The original payload's size in bytes"),
});

interface Letter {
  seq: number;
  dlqSubject: string;
  storedAt: Date;
  data: Uint8Array;
  letter?: DeadLetter;
  unreadable?: string;
}

export interface ReplayOutcome {
  id: number;
  status: "replayed" | "failed" | "not_found";
  error?: string;
}

/** The dead-letter stream, read and written through JetStream (no copy anywhere else). */
export class DeadLetterQueue {
  constructor(private readonly bus: Bus) {}

  get stream(): string {
    return this.bus.names.streams.dlq;
  }

  #read(seq: number, subject: string, storedAt: Date, data: Uint8Array): Letter {
    const d = decode(DeadLetter, data);
    return d.ok ? { seq, dlqSubject: subject, storedAt, data, letter: d.value } : { seq, dlqSubject: subject, storedAt, data, unreadable: d.error };
  }

  async size(): Promise<number> {
    return (await this.bus.jsm.streams.info(this.stream)).state.messages;
  }

  async get(id: number): Promise<Letter | null> {
    try {
      const m = await this.bus.jsm.direct.getMessage(this.stream, { seq: id });
      if (!m || m.seq !== id) return null;
      return this.#read(m.seq, m.subject, m.time, m.data);
    } catch (err) {
      if (isJsNotFound(err)) return null;
      throw err;
    }
  }

  /** Up to `limit` dead letters with an id above `after`, oldest first; `more` when others follow. */
  async page(after: number, limit: number): Promise<{ letters: Letter[]; total: number; more: boolean }> {
    const { jsm, js, names } = this.bus;
    const info = await jsm.streams.info(this.stream);
    const total = info.state.messages;
    if (total === 0 || after >= info.state.last_seq) return { letters: [], total, more: false };
    // The first one above `after` (there may be gaps: replayed or deleted letters).
    let first;
    try {
      first = await jsm.direct.getMessage(this.stream, { seq: after + 1, next_by_subj: names.subjects.dlqAll() });
    } catch (err) {
      if (isJsNotFound(err)) return { letters: [], total, more: false };
      throw err;
    }
    if (!first) return { letters: [], total, more: false };
    const letters: Letter[] = [];
    let more = false;
    const consumer = await js.consumers.get(this.stream, { opt_start_seq: first.seq, filter_subjects: names.subjects.dlqAll() });
    const messages = await consumer.consume({ max_messages: Math.min(limit, 256) });
    const guard = setTimeout(() => messages.stop(), READ_GUARD_MS);
    try {
      for await (const m of messages) {
        letters.push(this.#read(m.seq, m.subject, new Date(Math.floor(m.info.timestampNanos / 1e6)), m.data));
        more = m.info.pending > 0;
        if (letters.length >= limit || !more) break;
      }
    } finally {
      clearTimeout(guard);
      messages.stop();
      consumer.delete().catch(() => undefined);
    }
    return { letters, total, more };
  }

  /** Republishes one dead letter to its original subject, then deletes it. */
  async #replayOne(l: Letter): Promise<ReplayOutcome> {
    const fail = (error: string): ReplayOutcome => ({ id: l.seq, status: "failed", error });
    if (!l.letter) return fail(`unreadable dead letter: ${l.unreadable ?? "unknown"}`);
    const { subject, headers, data } = l.letter;
    const p = this.bus.names.prefix;
    if (!subject.startsWith(`${p}.`) || subject.startsWith(`${p}.dlq.`)) return fail(`subject ${subject} is not one a replay may publish to`);
    // The original headers, minus JetStream's own (`Nats-Expected-*` would refuse the publish). The
    // de-duplication id is the replay's: the original one is still in the stream's duplicate window
    // for two minutes, which would drop the republish silently; this one makes a repeated replay of
    // the same dead letter a no-op.
    const kept: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers ?? {})) if (!/^nats-/i.test(k)) kept[k] = v;
    kept["Orch-Replay-Of"] = `${this.stream}:${l.seq}`;
    if (headers?.["Nats-Msg-Id"]) kept["Orch-Original-Msg-Id"] = headers["Nats-Msg-Id"];
    try {
      await this.bus.js.publish(subject, Buffer.from(data, "base64"), {
        msgID: `replay:${this.stream}:${l.seq}`,
        headers: buildHeaders({ headers: kept }),
        timeout: PUBLISH_TIMEOUT_MS,
      });
    } catch (err) {
      return fail(`republish failed: ${(err as Error).message}`);
    }
    try {
      await this.bus.jsm.streams.deleteMessage(this.stream, l.seq, false);
    } catch (err) {
      if (!isJsNotFound(err)) this.bus.logger.warn({ err, seq: l.seq }, "dead letter replayed but not deleted");
    }
    return { id: l.seq, status: "replayed" };
  }

  /** Replays the dead letters named (or the oldest `limit`), in order. */
  async replay(sel: { ids?: number[] | undefined; limit?: number | undefined }): Promise<{ replayed: number; failed: number; results: ReplayOutcome[] }> {
    const results: ReplayOutcome[] = [];
    if (sel.ids) {
      for (const id of [...new Set(sel.ids)].sort((a, b) => a - b)) {
        const l = await this.get(id);
        results.push(l ? await this.#replayOne(l) : { id, status: "not_found", error: "no such dead letter" });
      }
    } else {
      const { letters } = await this.page(0, sel.limit ?? LIST_MAX);
      for (const l of letters) results.push(await this.#replayOne(l));
    }
    const replayed = results.filter((r) => r.status === "replayed").length;
    return { replayed, failed: results.length - replayed, results };
  }

  async purge(): Promise<number> {
    return (await this.bus.jsm.streams.purge(this.stream)).purged;
  }
}

function payloadOf(data: string): unknown {
  try {
    return JSON.parse(Buffer.from(data, "base64").toString("utf8"));
  } catch {
    return undefined;
  }
}

function itemOf(l: Letter): DeadLetterItem & { stream?: string; streamSeq?: number } {
  if (!l.letter) {
    return {
      id: l.seq,
      origin: l.dlqSubject.split(".").pop() ?? "unknown",
      subject: "",
      reason: "undecodable",
      error: `unreadable dead letter: ${l.unreadable ?? "unknown"}`,
      at: l.storedAt.toISOString(),
      deliveries: 0,
    };
  }
  const d = l.letter;
  const item: DeadLetterItem & { stream?: string; streamSeq?: number } = {
    id: l.seq,
    origin: d.origin,
    subject: d.subject,
    reason: d.reason,
    error: d.error,
    at: new Date(d.at).toISOString(),
    deliveries: d.deliveries ?? 0,
  };
  const payload = payloadOf(d.data);
  if (payload !== undefined) item.payload = payload;
  if (d.stream !== undefined) item.stream = d.stream;
  if (d.streamSeq !== undefined) item.streamSeq = d.streamSeq;
  return item;
}

const seedItem = (l: Letter): DeadLetterItem => {
  const { stream: _s, streamSeq: _q, ...rest } = itemOf(l);
  return rest;
};

const Id = z.union([
  z.int().positive(),
  z
    .string()
    .regex(/^[1-9][0-9]{0,15}$/)
    .transform(Number),
]);
const ReplayBody = z
  .object({
    ids: z.array(Id).min(1).max(LIST_MAX).optional().describe("The dead letters to replay (their ids); all of them (up to `limit`) when absent"),
    limit: z.int().min(1).max(LIST_MAX).optional().describe(`At most this many, oldest first (default and maximum ${LIST_MAX})`),
  })
  .optional();

/** A body-less POST or DELETE that still says `Content-Type: application/json` is "no body". */
function tolerateEmptyJson(app: FastifyInstance): void {
  const jsonParser = app.getDefaultJsonParser("error", "ignore");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    if (typeof body !== "string" || body.trim() === "") return done(null, undefined);
    jsonParser(req, body, done);
  });
}

/** Seed 001's error codes: `{"ok":false,"error":"<snake_code>"}`. */
const SEED001_CODES: Partial<Record<string, string>> = {
  [ErrorCode.BadRequest]: "invalid_request",
  [ErrorCode.NotFound]: "not_found",
  [ErrorCode.Unauthorized]: "unauthorized",
  [ErrorCode.Forbidden]: "forbidden",
  [ErrorCode.PayloadTooLarge]: "payload_too_large",
  [ErrorCode.UnsupportedMediaType]: "unsupported_media_type",
  [ErrorCode.RateLimited]: "rate_limit_exceeded",
  [ErrorCode.Unavailable]: "unavailable",
  [ErrorCode.NatsUnavailable]: "unavailable",
  [ErrorCode.Internal]: "internal_error",
};

const Seed001Error = z.object({ ok: z.literal(false), error: z.string(), retryAfter: z.int().optional() });

/** Seed 001's users' dead-letter queue, at the root: `/dlq`, `/dlq/size`, `/dlq/replay`. */
export async function dlqRoutes(app: FastifyInstance, opts: Surface): Promise<void> {
  const dlq = new DeadLetterQueue(opts.bus);
  tolerateEmptyJson(app);
  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toHttp(err);
    if (status >= 500) req.log.error({ err }, "request failed");
    const out: Record<string, unknown> = {
      ok: false,
      error: err instanceof ValidationError ? "invalid_request" : (SEED001_CODES[body.error.code] ?? "bad_request"),
    };
    if (status === 429) {
      const after = Number(reply.getHeader("retry-after"));
      if (Number.isFinite(after)) out.retryAfter = after;
    }
    return reply.status(status).send(out);
  });
  const defaults = { rateLimit: opts.rateLimit, bodyLimit: opts.cfg.ORCH_MAX_REQUEST_BYTES };
  const TAGS = ["tasks"];
  const errors = {
    400: { description: "Bad input: `invalid_request`", schema: Seed001Error },
    401: { description: "No valid bearer token: `unauthorized`", schema: Seed001Error },
  };

  route(
    app,
    {
      method: "GET",
      url: "/dlq",
      operationId: "seed001ListDeadLetters",
      tags: TAGS,
      summary: "Dead letters, oldest first (seed 001)",
      description: `At most \`limit\` (default and maximum ${LIST_MAX}); \`id\` is the letter's sequence in the dead-letter stream.`,
      query: z.object({ limit: z.coerce.number().int().min(1).max(LIST_MAX).default(LIST_MAX) }),
      responses: { 200: { description: "The dead letters", schema: z.object({ ok: z.literal(true), data: z.array(DeadLetterItem) }) }, ...errors },
    },
    async (_req, _reply, { query }) => ({ ok: true, data: (await dlq.page(0, query.limit)).letters.map(seedItem) }),
  );
  route(
    app,
    {
      method: "GET",
      url: "/dlq/size",
      operationId: "seed001DeadLetterCount",
      tags: TAGS,
      summary: "How many dead letters there are (seed 001)",
      responses: { 200: { description: "The count", schema: z.object({ ok: z.literal(true), size: z.int() }) }, 401: errors[401] },
    },
    async () => ({ ok: true, size: await dlq.size() }),
  );
  route(
    app,
    {
      method: "POST",
      url: "/dlq/replay",
      operationId: "seed001ReplayDeadLetters",
      tags: TAGS,
      summary: "Replay dead letters (seed 001)",
      description: [
        "Republishes each dead letter's original payload to its original subject, with its headers, and deletes",
        "the ones republished. The body is optional: `ids` to replay only those, `limit` to replay the oldest N.",
        "One that fails again is parked again, as a new dead letter. `failed` counts the ones that could not be",
        "republished (unreadable, or unknown ids); they stay.",
      ].join("\n"),
      body: ReplayBody,
      responses: { 200: { description: "Replayed", schema: z.object({ ok: z.literal(true), replayed: z.int(), failed: z.int() }) }, ...errors },
    },
    async (_req, _reply, { body }) => {
      const r = await dlq.replay({ ids: body?.ids, limit: body?.limit });
      return { ok: true, replayed: r.replayed, failed: r.failed };
    },
    defaults,
  );
  route(
    app,
    {
      method: "DELETE",
      url: "/dlq",
      operationId: "seed001PurgeDeadLetters",
      tags: TAGS,
      summary: "Delete every dead letter (seed 001)",
      responses: { 200: { description: "Purged", schema: z.object({ ok: z.literal(true), purged: z.int() }) }, 401: errors[401] },
    },
    async () => ({ ok: true, purged: await dlq.purge() }),
    defaults,
  );
}

/** Ours, under /api/v1: paginated, one by id, replay with a result per letter. Our error shape. */
export async function deadLetterRoutes(app: FastifyInstance, opts: Surface): Promise<void> {
  const dlq = new DeadLetterQueue(opts.bus);
  tolerateEmptyJson(app);
  const defaults = { rateLimit: opts.rateLimit, bodyLimit: opts.cfg.ORCH_MAX_REQUEST_BYTES };
  const TAGS = ["queues"];
  const errors = { 400: { description: "Bad input" }, 401: { description: "No valid bearer token" } };

  route(
    app,
    {
      method: "GET",
      url: "/dead-letters",
      operationId: "listDeadLetters",
      tags: TAGS,
      summary: "Dead letters, oldest first",
      description: "A page of at most `limit`; pass the answer's `nextAfter` as `after` for the next page.",
      query: z.object({
        limit: z.coerce.number().int().min(1).max(500).default(50),
        after: z.coerce.number().int().min(0).default(0).describe("Only dead letters with an id above this one"),
      }),
      responses: {
        200: {
          description: "A page",
          schema: z.object({ items: z.array(OurItem), total: z.int().describe("Dead letters in the stream"), nextAfter: z.int().optional() }),
        },
        ...errors,
      },
    },
    async (_req, _reply, { query }) => {
      const p = await dlq.page(query.after, query.limit);
      const items = p.letters.map(itemOf);
      return { items, total: p.total, ...(p.more && items.length > 0 ? { nextAfter: items[items.length - 1]!.id } : {}) };
    },
  );
  route(
    app,
    {
      method: "GET",
      url: "/dead-letters/:id",
      operationId: "getDeadLetter",
      tags: TAGS,
      summary: "One dead letter, with its raw payload and headers",
      params: z.object({
        id: z
          .string()
          .regex(/^[1-9][0-9]{0,15}$/, "expected a dead letter id (a positive integer)")
          .transform(Number),
      }),
      responses: { 200: { description: "The dead letter", schema: OurDetail }, 404: { description: "No such dead letter" }, ...errors },
    },
    async (_req, _reply, { params }) => {
      const l = await dlq.get(params.id);
      if (!l) throw notFound(`dead letter ${params.id} not found`);
      const item = itemOf(l);
      const raw = l.letter ? Buffer.from(l.letter.data, "base64") : Buffer.from(l.data);
      return { ...item, data: raw.toString("base64"), size: raw.length, ...(l.letter?.headers ? { headers: l.letter.headers } : {}) };
    },
  );
  route(
    app,
    {
      method: "POST",
      url: "/dead-letters/replay",
      operationId: "replayDeadLetters",
      tags: TAGS,
      summary: "Replay dead letters",
      description: [
        "Republishes each dead letter's original payload to its original subject, with its headers, and deletes",
        "the ones republished; `results` says what happened to each. The body is optional: `ids` to replay",
        "only those, `limit` to replay the oldest N. One that fails again is parked again, as a new dead letter.",
      ].join("\n"),
      body: ReplayBody,
      responses: {
        200: {
          description: "What happened to each",
          schema: z.object({
            replayed: z.int(),
            failed: z.int(),
            results: z.array(z.object({ id: z.int(), status: z.enum(["replayed", "failed", "not_found"]), error: z.string().optional() })),
          }),
        },
        ...errors,
      },
    },
    async (_req, _reply, { body }) => dlq.replay({ ids: body?.ids, limit: body?.limit }),
    defaults,
  );
  route(
    app,
    {
      method: "DELETE",
      url: "/dead-letters",
      operationId: "purgeDeadLetters",
      tags: TAGS,
      summary: "Delete every dead letter",
      responses: { 200: { description: "Purged", schema: z.object({ purged: z.int() }) }, 401: errors[401] },
    },
    async () => ({ purged: await dlq.purge() }),
    defaults,
  );
}
