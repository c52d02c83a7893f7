import { ErrorCode, OrchError } from "@orch/contracts";
import { DefinitionError } from "@orch/engine";
import { DefinitionConflictError, DefinitionNotFoundError } from "@orch/runs";
import type { FastifyInstance } from "fastify";
import type { Surface } from "../../context.js";
import { toHttp } from "../../errors.js";
import type { V1 } from "./common.js";
import { askRoutes } from "./ask.js";
import { definitionRoutes } from "./definitions.js";
import { diffRoutes } from "./diffs.js";
import { eventRoutes } from "./events.js";
import { opsRoutes } from "./ops.js";
import { projectRoutes } from "./projects.js";
import { runRoutes } from "./runs.js";
import { scheduleRoutes } from "./schedules.js";

/**
 * Our own API under /api/v1: what the console, the CLI and new clients use. JSON bodies in
 * camelCase, ISO timestamps, one error shape `{ "error": { "code", "message", "details"? } }`,
 * lists as `{ items, nextCursor?, total }`. Every handler is a thin mapping of the runs API.
 */

/** Errors of the libraries below, in our vocabulary. */
function ours(err: unknown): unknown {
  if (err instanceof DefinitionError) {
    return new OrchError(ErrorCode.BadRequest, err.message, { details: { fields: err.issues.map((i) => ({ path: i.path, message: i.message })) } });
  }
  if (err instanceof DefinitionNotFoundError) return new OrchError(ErrorCode.NotFound, err.message);
  if (err instanceof DefinitionConflictError) return new OrchError(ErrorCode.Conflict, err.message);
  return err;
}

const TEXT_TYPES = ["application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"];

export async function apiV1Routes(app: FastifyInstance, opts: Surface): Promise<void> {
  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toHttp(ours(err), opts.bus);
    if (status === 503) req.log.warn({ err }, "request failed: NATS unavailable");
    else if (status >= 500) req.log.error({ err }, "request failed");
    else req.log.info({ code: body.error.code, msg: body.error.message }, "request refused");
    return reply.status(status).send(body);
  });

  // An empty JSON body is no body (an action without fields from a client that always sends
  // Content-Type); anything else goes through fastify's prototype-poisoning-safe parser.
  const jsonParser = app.getDefaultJsonParser("error", "ignore");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    if (typeof body === "string" && body.trim() === "") return done(null, undefined);
    jsonParser(req, body as string, done);
  });
  // Definitions also come as YAML (or JSON) text.
  app.removeContentTypeParser("text/plain");
  app.addContentTypeParser(TEXT_TYPES, { parseAs: "string" }, (_req, body, done) => done(null, body));

  const v1: V1 = { opts, defaults: { rateLimit: opts.rateLimit, bodyLimit: opts.cfg.ORCH_MAX_REQUEST_BYTES } };
  projectRoutes(app, v1);
  definitionRoutes(app, v1);
  runRoutes(app, v1);
  scheduleRoutes(app, v1);
  askRoutes(app, v1);
  diffRoutes(app, v1);
  eventRoutes(app, v1);
  opsRoutes(app, v1);
}
