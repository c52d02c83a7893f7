import { ErrorCode, OrchError } from "@orch/contracts";
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteShorthandOptions } from "fastify";
import { z } from "zod";

/**
 * Routes are declared once, with zod schemas for their params, query, body and responses: the
 * schemas validate requests here and generate the OpenAPI document (`openapi.ts`), so the document
 * cannot drift from what the gateway does. Every surface (ours and the seeds') declares its routes
 * this way; each surface decides how a validation failure looks to its clients (its error handler
 * sees a `ValidationError`).
 */

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  /** Default `application/json`. */
  contentType?: string;
  /** Other content types the same status may come in (chosen by the request's `Accept`). */
  alternatives?: { contentType: string; schema?: z.ZodType }[];
}

export interface RouteSpec<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  method: Method;
  /** fastify syntax (`/runs/:id`), relative to the surface's prefix. */
  url: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  params?: P;
  query?: Q;
  body?: B;
  /** Extra request headers worth documenting (`Last-Event-ID`, `Idempotency-Key`, …). */
  headers?: Record<string, string>;
  responses: Record<number, ResponseSpec>;
  /** `bearer` (the default): behind the API token. `none`: open (health, metrics, console). */
  auth?: "bearer" | "none";
  /** The route works on one project's resources and checks access to it (`assertProjectAccess`). */
  projectScoped?: boolean;
  /** POSTs are rate limited unless this is false. */
  rateLimit?: boolean;
  bodyLimit?: number;
  /** The body must be JSON (`Content-Type: application/json`), else 415, checked before anything else. */
  json?: boolean;
  /** Left out of the OpenAPI document (aliases, the docs themselves). */
  hidden?: boolean;
}

export interface Parsed<P, Q, B> {
  params: P;
  query: Q;
  body: B;
}

/** A registered route, as the OpenAPI generator sees it. */
export interface DocumentedRoute {
  method: Method;
  /** Full path in OpenAPI syntax (`/api/v1/runs/{id}`). */
  path: string;
  spec: RouteSpec<z.ZodType, z.ZodType, z.ZodType>;
}

/** A request that does not match its route's schema: the fields and what is wrong with each. */
export class ValidationError extends OrchError {
  override name = "ValidationError";
  constructor(
    readonly part: "params" | "query" | "body",
    readonly issues: { path: string; message: string; code: string }[],
    readonly zodError?: z.ZodError,
  ) {
    super(ErrorCode.BadRequest, `Invalid ${part}: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; ")}`, {
      details: { fields: issues.map((i) => ({ path: i.path, message: i.message })) },
    });
  }
}

declare module "fastify" {
  interface FastifyInstance {
    documented: DocumentedRoute[];
  }
  interface FastifyContextConfig {
    /** Set by `route()`: whether the route is open without a token. */
    auth?: "bearer" | "none";
  }
}

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i;
const unsupportedMediaType = () => new OrchError(ErrorCode.UnsupportedMediaType, "Content-Type must be application/json");

const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, "{$1}").replace(/\/$/, "") || "/";

/** A key or a message taken from the client's input (an unknown key is named in its message): kept short. */
const short = (s: string, max = 200) => (s.length <= max ? s : `${s.slice(0, max)}…`);

function parse<T extends z.ZodType>(part: "params" | "query" | "body", schema: T | undefined, value: unknown): z.output<T> {
  if (!schema) return value as z.output<T>;
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new ValidationError(
    part,
    r.error.issues.map((i) => ({ path: short(i.path.map(String).join(".")), message: short(i.message), code: i.code })),
    r.error,
  );
}

export interface RouteDefaults {
  rateLimit?: { max: number; timeWindow: number } | false;
  bodyLimit?: number;
}

/**
 * Declares a route: registers it with fastify and records it for the document. The handler gets the
 * parsed params, query and body.
 */
export function route<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType>(
  app: FastifyInstance,
  spec: RouteSpec<P, Q, B>,
  handler: (req: FastifyRequest, reply: FastifyReply, input: Parsed<z.output<P>, z.output<Q>, z.output<B>>) => Promise<unknown>,
  defaults: RouteDefaults = {},
): void {
  const prefix = app.prefix ?? "";
  if (!spec.hidden) app.documented.push({ method: spec.method, path: toOpenApiPath(prefix + spec.url), spec: spec as never });
  const opts: RouteShorthandOptions = { config: { auth: spec.auth ?? "bearer", ...(spec.projectScoped ? { projectScoped: true } : {}) } };
  if (spec.method !== "GET" && spec.rateLimit !== false && defaults.rateLimit) {
    (opts.config as Record<string, unknown>).rateLimit = defaults.rateLimit;
  }
  const limit = spec.bodyLimit ?? defaults.bodyLimit;
  if (limit !== undefined) opts.bodyLimit = limit;
  app.route({
    method: spec.method,
    url: spec.url,
    ...opts,
    handler: async (req, reply) => {
      if (spec.json && !JSON_TYPE.test(req.headers["content-type"] ?? "")) throw unsupportedMediaType();
      const params = parse("params", spec.params, req.params);
      const query = parse("query", spec.query, req.query);
      const body = parse("body", spec.body, req.body);
      return handler(req, reply, { params, query, body });
    },
  });
}

/** Query values arrive as strings: a boolean flag that reads `1`, `true`, `0`, `false`. */
export const queryBool = () =>
  z
    .string()
    .optional()
    .transform((v) => v === "1" || v === "true")
    .describe("1 or true");
