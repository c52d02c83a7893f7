import { isBusUnavailable } from "@orch/bus";
import { ErrorCode, OrchError, errorBody, type ErrorBody } from "@orch/contracts";
import type { FastifyError, FastifyInstance } from "fastify";

/** Our error codes → HTTP statuses: the one table. */
export const STATUS_OF: Readonly<Record<ErrorCode, number>> = Object.freeze({
  [ErrorCode.BadRequest]: 400,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.UnsupportedMediaType]: 415,
  [ErrorCode.PayloadTooLarge]: 413,
  [ErrorCode.RateLimited]: 429,
  [ErrorCode.UriTooLong]: 414,
  [ErrorCode.IllegalTransition]: 409,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.Unauthorized]: 401,
  [ErrorCode.Forbidden]: 403,
  [ErrorCode.Unavailable]: 503,
  [ErrorCode.NatsUnavailable]: 503,
  [ErrorCode.Internal]: 500,
  [ErrorCode.LlmPolicyRefused]: 403,
  [ErrorCode.LlmError]: 502,
  [ErrorCode.SupervisorUnavailable]: 503,
  [ErrorCode.GitError]: 502,
});

/** fastify's own error codes → ours, so a client never sees a `FST_…` body. */
const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = Object.freeze({
  FST_ERR_CTP_BODY_TOO_LARGE: ErrorCode.PayloadTooLarge,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ErrorCode.UnsupportedMediaType,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ErrorCode.BadRequest,
  FST_ERR_CTP_EMPTY_JSON_BODY: ErrorCode.BadRequest,
  FST_ERR_CTP_INVALID_JSON_BODY: ErrorCode.BadRequest,
  FST_ERR_VALIDATION: ErrorCode.BadRequest,
  FST_ERR_BAD_URL: ErrorCode.BadRequest,
  FST_ERR_MAX_PARAM_LENGTH: ErrorCode.UriTooLong,
  FST_ERR_ASYNC_CONSTRAINT: ErrorCode.BadRequest,
});

export class HttpError extends OrchError {
  override name = "HttpError";
}

/**
 * How deep a JSON body may nest (objects and arrays). No route needs more than a few levels; an
 * input thousands of levels deep only exhausts the stack of whatever walks it (a validator, a
 * serializer echoing it back). Checked once, after parsing, for every route (`app.ts`).
 */
export const MAX_JSON_DEPTH = 64;

/** Whether `value` nests objects or arrays deeper than `max` (iterative: never recurses). */
export function jsonTooDeep(value: unknown, max = MAX_JSON_DEPTH): boolean {
  if (value === null || typeof value !== "object") return false;
  const stack: [object, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (depth > max) return true;
    for (const child of Object.values(v)) if (child !== null && typeof child === "object") stack.push([child as object, depth + 1]);
  }
  return false;
}

/** A JSON body nested deeper than MAX_JSON_DEPTH: invalid JSON, as each surface words it. */
export class JsonTooDeepError extends OrchError {
  override name = "JsonTooDeepError";
  constructor(readonly max = MAX_JSON_DEPTH) {
    super(ErrorCode.BadRequest, `JSON body nested deeper than ${max} levels`);
  }
}

/** How much of a client's input an error body echoes (FastAPI's `input`): at most this many characters of it. */
export const ECHO_MAX_CHARS = 200;

/**
 * A client's input as an error body may echo it: as it is when it is small, else the start of its
 * JSON text, cut at ECHO_MAX_CHARS and marked with `…`. Never the whole of an unbounded input.
 */
export function echoInput(input: unknown): unknown {
  if (input === null || input === undefined || typeof input === "number" || typeof input === "boolean") return input ?? null;
  if (typeof input === "string") return input.length <= ECHO_MAX_CHARS ? input : `${input.slice(0, ECHO_MAX_CHARS)}…`;
  let text: string;
  try {
    text = JSON.stringify(input) ?? "";
  } catch {
    return Array.isArray(input) ? "[…" : "{…";
  }
  return text.length <= ECHO_MAX_CHARS ? input : `${text.slice(0, ECHO_MAX_CHARS)}…`;
}

export const badRequest = (message: string, details?: unknown) => new HttpError(ErrorCode.BadRequest, message, { details });
export const notFound = (message: string) => new HttpError(ErrorCode.NotFound, message);
export const unsupportedMediaType = (message: string) => new HttpError(ErrorCode.UnsupportedMediaType, message);
export const unavailable = (message: string, cause?: unknown) => new HttpError(ErrorCode.Unavailable, message, { cause });

/**
 * Maps any error to `{ status, body }`; 5xx only for our own failures, never for bad input. Given the
 * NATS connection, a NATS failure while it is down says so (NATS_UNAVAILABLE) rather than blaming
 * what did not answer.
 */
export function toHttp(err: unknown, nats?: { readonly connected: boolean }): { status: number; body: ErrorBody } {
  if (err instanceof OrchError) {
    return { status: STATUS_OF[err.code], body: errorBody(err.code, err.message, err.details) };
  }
  if (isBusUnavailable(err)) {
    if (nats && !nats.connected)
      return {
        status: 503,
        body: errorBody(ErrorCode.NatsUnavailable, "NATS is unavailable: no connection to it (the gateway keeps reconnecting); try again shortly"),
      };
    return { status: 503, body: errorBody(ErrorCode.Unavailable, "The job store is unavailable right now; try again shortly") };
  }
  const fe = err as Partial<FastifyError> & { statusCode?: number };
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  // fastify's own message would quote the whole URL back.
  if (mapped === ErrorCode.UriTooLong) return { status: 414, body: errorBody(mapped, "A segment of the URL's path is longer than 100 characters") };
  if (mapped) return { status: STATUS_OF[mapped], body: errorBody(mapped, fe.message ?? mapped) };
  if (fe.statusCode === 429) return { status: 429, body: errorBody(ErrorCode.RateLimited, fe.message ?? "Too many requests") };
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: errorBody(ErrorCode.BadRequest, fe.message ?? "Bad request") };
  }
  return { status: 500, body: errorBody(ErrorCode.Internal, "Internal error") };
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toHttp(err, app.surface?.bus);
    if (status === 503) req.log.warn({ err }, "request failed: NATS unavailable");
    else if (status >= 500) req.log.error({ err }, "request failed");
    else req.log.info({ code: body.error.code, msg: body.error.message }, "request refused");
    return reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send(errorBody(ErrorCode.NotFound, `Route ${req.method} ${req.url.split("?")[0]} not found`)));
}
