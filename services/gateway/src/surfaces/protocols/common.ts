import { ErrorCode, OrchError, type ProjectRecord } from "@orch/contracts";
import { RefusedError, type RunsApi } from "@orch/runs";
import type { RunView } from "@orch/contracts";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { assertProjectAccess } from "../../auth.js";
import type { Surface } from "../../context.js";
import { echoInput, JsonTooDeepError, toHttp } from "../../errors.js";
import { ValidationError } from "../../routing.js";
import { ProtocolIds } from "./views.js";

/**
 * What every seed 004 route shares: integer ids, lookups of a project, protocol run or step run by
 * its integer id (404 in seed 004's words, then the project check), and its error bodies: FastAPI's
 * `{"detail": "…"}`, and `{"detail": [{type, loc, msg, input}]}` with 422 for a request that does
 * not validate.
 */

export const TAGS = ["tasksgodzilla"];

/** An integer id in a path. */
export const IntId = z
  .string()
  .regex(/^\d{1,15}$/, "Input should be a valid integer, unable to parse string as an integer")
  .transform(Number);

export const ProjectParams = z.object({ project_id: IntId });
export const ProtocolParams = z.object({ protocol_run_id: IntId });
export const StepParams = z.object({ step_id: IntId });

/** A job, as the actions and /queues/jobs show it. */
export const JobOutSchema = z.object({
  job_id: z.string(),
  job_type: z.string(),
  payload: z.record(z.string(), z.unknown()),
  status: z.enum(["queued", "started", "finished", "failed"]),
  queue: z.string(),
  attempts: z.int(),
  max_attempts: z.int().nullable(),
  created_at: z.string().nullable(),
  started_at: z.string().nullable(),
  ended_at: z.string().nullable(),
  result: z.unknown(),
  error: z.string().nullable(),
});
/** A seed 004 error: `{"detail": message}` with the status of `code`. */
export class DetailError extends OrchError {
  override name = "DetailError";
}
export const detail = (code: ErrorCode, message: string) => new DetailError(code, message);
export const notFound = (message: string) => detail(ErrorCode.NotFound, message);
export const conflict = (message: string) => detail(ErrorCode.Conflict, message);

/** A 422 in FastAPI's shape for one field (checks the route's schema cannot express); a long `input` cut short. */
export class Unprocessable extends Error {
  override name = "Unprocessable";
  readonly items: { type: string; loc: (string | number)[]; msg: string; input: unknown }[];
  constructor(items: { type: string; loc: (string | number)[]; msg: string; input: unknown }[]) {
    super(items.map((i) => i.msg).join("; "));
    this.items = items.map((i) => ({ ...i, input: echoInput(i.input) }));
  }
}

const at = (v: unknown, path: PropertyKey[]): unknown => {
  let cur = v;
  for (const k of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
};

const TYPE_NAMES: Record<string, [string, string]> = {
  string: ["string_type", "Input should be a valid string"],
  number: ["int_type", "Input should be a valid integer"],
  int: ["int_type", "Input should be a valid integer"],
  boolean: ["bool_type", "Input should be a valid boolean"],
  object: ["dict_type", "Input should be a valid dictionary"],
  record: ["dict_type", "Input should be a valid dictionary"],
  array: ["list_type", "Input should be a valid list"],
};

const quoteList = (vs: unknown[]) => {
  const q = vs.map((v) => `'${String(v)}'`);
  return q.length <= 1 ? (q[0] ?? "") : `${q.slice(0, -1).join(", ")} or ${q.at(-1)}`;
};

/** FastAPI's 422 items for a request that failed its route's schema. */
export function fastapiDetail(err: ValidationError, req: FastifyRequest): { type: string; loc: (string | number)[]; msg: string; input: unknown }[] {
  const raw = err.part === "body" ? req.body : err.part === "query" ? req.query : req.params;
  const where = err.part === "params" ? "path" : err.part;
  const issues = err.zodError?.issues ?? [];
  if (issues.length === 0)
    return err.issues.map((i) => ({ type: "value_error", loc: [where, ...i.path.split(".").filter(Boolean)], msg: i.message, input: null }));
  return issues.map((i) => {
    const path = i.path.map((p) => (typeof p === "number" ? p : String(p)));
    const loc: (string | number)[] = [where, ...path];
    const input = at(raw, i.path);
    if (where !== "body" && (i.code === "invalid_type" || i.code === "invalid_format") && input !== undefined) {
      return { type: "int_parsing", loc, msg: "Input should be a valid integer, unable to parse string as an integer", input };
    }
    switch (i.code) {
      case "invalid_type": {
        if (input === undefined) return { type: "missing", loc, msg: "Field required", input: path.length ? (at(raw, i.path.slice(0, -1)) ?? null) : null };
        const [type, msg] = TYPE_NAMES[String((i as { expected?: string }).expected)] ?? ["type_error", i.message];
        return { type, loc, msg, input };
      }
      case "too_small": {
        const m = i as unknown as { origin?: string; minimum?: number | bigint; inclusive?: boolean };
        if (m.origin === "string")
          return { type: "string_too_short", loc, msg: `String should have at least ${m.minimum} character${Number(m.minimum) === 1 ? "" : "s"}`, input };
        if (m.origin === "array")
          return { type: "too_short", loc, msg: `List should have at least ${m.minimum} item${Number(m.minimum) === 1 ? "" : "s"}`, input };
        return m.inclusive === false
          ? { type: "greater_than", loc, msg: `Input should be greater than ${m.minimum}`, input }
          : { type: "greater_than_equal", loc, msg: `Input should be greater than or equal to ${m.minimum}`, input };
      }
      case "too_big": {
        const m = i as unknown as { origin?: string; maximum?: number | bigint };
        if (m.origin === "string") return { type: "string_too_long", loc, msg: `String should have at most ${m.maximum} characters`, input };
        return { type: "less_than_equal", loc, msg: `Input should be less than or equal to ${m.maximum}`, input };
      }
      case "invalid_value":
        return { type: "enum", loc, msg: `Input should be ${quoteList((i as { values?: unknown[] }).values ?? [])}`, input };
      default:
        return { type: "value_error", loc, msg: i.message, input: input ?? null };
    }
  });
}

/** The plugin's error handler and its body parser (an empty JSON body is no body: actions are body-less). */
export function installSeed004Errors(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    if (err instanceof ValidationError) return reply.status(422).send({ detail: fastapiDetail(err, req).map((i) => ({ ...i, input: echoInput(i.input) })) });
    if (err instanceof Unprocessable) return reply.status(422).send({ detail: err.items });
    const code = (err as { code?: string }).code;
    if (code === "FST_ERR_CTP_INVALID_JSON_BODY" || err instanceof JsonTooDeepError) {
      return reply
        .status(422)
        .send({ detail: [{ type: "json_invalid", loc: ["body", 0], msg: "JSON decode error", input: {}, ctx: { error: (err as Error).message } }] });
    }
    const { status, body } = toHttp(err);
    if (status >= 500 && status !== 503) req.log.error({ err }, "request failed");
    return reply.status(status).send({ detail: body.error.message });
  });
  const jsonParser = app.getDefaultJsonParser("error", "ignore");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    if (typeof body === "string" && body.trim() === "") return done(null, undefined);
    jsonParser(req, body as string, done);
  });
}

/** What the seed 004 routes work with. */
export class Seed004 {
  readonly ids: ProtocolIds;
  readonly runs: RunsApi;
  constructor(readonly opts: Surface) {
    this.ids = new ProtocolIds(opts.runs);
    this.runs = opts.runs;
  }

  /** The project with integer id `n`, checked against the request's tokens; 404 "Project not found". */
  async project(req: FastifyRequest, n: number): Promise<ProjectRecord> {
    const id = await this.ids.projectOf(n);
    const p = id ? await this.runs.getProject(id) : null;
    if (!p) throw notFound("Project not found");
    assertProjectAccess(req, p);
    return p;
  }

  /** Access to the project a run belongs to (which may have no project record: runs made elsewhere). */
  async assertRunAccess(req: FastifyRequest, projectId: string): Promise<ProjectRecord | null> {
    const p = await this.runs.getProject(projectId);
    assertProjectAccess(req, p ?? { id: projectId });
    return p;
  }

  /** The protocol run with integer id `n`; 404 "Protocol run not found". */
  async protocol(req: FastifyRequest, n: number): Promise<{ run: RunView; project: ProjectRecord | null; projectN: number }> {
    const runId = await this.ids.runOf(n);
    const run = runId ? await this.runs.get(runId) : null;
    if (!run) throw notFound("Protocol run not found");
    const project = await this.assertRunAccess(req, run.projectId);
    return { run, project, projectN: await this.ids.projectInt(run.projectId, project) };
  }

  /** The step run with integer id `n`; 404 "Step run not found". */
  async step(req: FastifyRequest, n: number): Promise<{ run: RunView; stepId: string; protocolN: number }> {
    const ref = await this.ids.stepOf(n);
    const run = ref ? await this.runs.get(ref.runId) : null;
    if (!ref || !run || !run.steps.some((s) => s.id === ref.stepId)) throw notFound("Step run not found");
    await this.assertRunAccess(req, run.projectId);
    return { run, stepId: ref.stepId, protocolN: await this.ids.protocolInt(run.runId) };
  }

  /** Sends an action; a refusal goes to `refused` (which answers the HTTP error), others pass. */
  async signal(req: FastifyRequest, runId: string, signal: Record<string, unknown>, refused: (e: RefusedError) => Error | undefined): Promise<RunView> {
    try {
      return await this.runs.signal(runId, signal, { actor: "tasksgodzilla", correlationId: req.id });
    } catch (e) {
      if (e instanceof RefusedError) throw refused(e) ?? conflict(e.message);
      throw e;
    }
  }
}
