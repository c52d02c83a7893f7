import helmet from "@fastify/helmet";
import rateLimit from "@fastify/rate-limit";
import type { Bus, TopologySpec } from "@orch/bus";
import type { GatewayConfig } from "@orch/config";
import { ErrorCode } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { DefinitionStore, KeyStore, RunsApi } from "@orch/runs";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from "fastify";
import { randomUUID } from "node:crypto";
import { Authenticator, installAuth } from "./auth.js";
import type { Surface } from "./context.js";
import { HttpError, installErrorHandling, JsonTooDeepError, jsonTooDeep, toHttp } from "./errors.js";
import type { DocumentedRoute } from "./routing.js";
import { SURFACES } from "./surfaces/index.js";

/** A registered route, as `routeTable` lists them (for the OpenAPI check). */
export interface RouteEntry {
  method: string;
  url: string;
  /** Whether the route has a rate limit. */
  rateLimited: boolean;
  /** Open without a token (`auth: "none"`). */
  open: boolean;
}

declare module "fastify" {
  interface FastifyInstance {
    routeTable: RouteEntry[];
    surface: Surface;
  }
}

export interface AppOptions {
  cfg: Readonly<GatewayConfig>;
  bus: Bus;
  topology: TopologySpec;
  logger: Logger;
  version: string;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A URL as logs may show it: query tokens replaced. */
export const redactUrl = (url: string) => url.replace(/([?&](?:access_token|token)=)[^&]*/gi, "$1[redacted]");

/** The gateway's HTTP app, separate from `listen` so tests can `inject()` or bind port 0. */
export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const { cfg } = opts;
  const logger = (opts.logger as unknown as { child: (b: object, o: object) => Logger }).child(
    {},
    {
      serializers: {
        req: (req: { method: string; url: string; id: string; ip?: string }) => ({
          method: req.method,
          url: redactUrl(req.url),
          id: req.id,
          remoteAddress: req.ip,
        }),
      },
    },
  );
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: cfg.ORCH_MAX_REQUEST_BYTES,
    // A client's X-Request-ID is kept when it is sane, otherwise we make one.
    requestIdHeader: false,
    genReqId: (req) => {
      const h = req.headers["x-request-id"];
      return typeof h === "string" && REQUEST_ID.test(h) ? h : randomUUID();
    },
    logController: new LogController({ requestIdLogLabel: "requestId" }),
    forceCloseConnections: true,
    // Errors raised before routing (a malformed URL escape, a bad Content-Type header) get the
    // same body as every other error.
    frameworkErrors: (err, req, reply: FastifyReply) => {
      const { status, body } = toHttp(err);
      void reply.header("x-request-id", req.id).status(status).send(body);
    },
    return503OnClosing: true,
  });
  const routeTable: RouteEntry[] = [];
  app.decorate("routeTable", routeTable);
  app.decorate("documented", [] as DocumentedRoute[]);
  app.addHook("onRoute", (r) => {
    const config = (r.config ?? {}) as { rateLimit?: unknown; auth?: string };
    for (const method of [r.method].flat())
      routeTable.push({ method, url: r.url, rateLimited: config.rateLimit !== undefined && config.rateLimit !== false, open: config.auth === "none" });
  });
  installErrorHandling(app);
  // One bound on JSON nesting for every route, after whichever parser read the body: deeper input is
  // refused as invalid JSON (by each surface in its own words) before anything walks or echoes it.
  app.addHook("preValidation", async (req) => {
    if (!Buffer.isBuffer(req.body) && jsonTooDeep(req.body)) throw new JsonTooDeepError();
  });
  // Security headers on every answer: the only pages are /docs, /redoc and the console under
  // /console (each sets its own content policy: its own scripts and styles, API calls to itself); CORS stays each surface's business (seed 000 opens its routes).
  await app.register(helmet, {
    global: true,
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    crossOriginResourcePolicy: false,
    crossOriginEmbedderPolicy: false,
    referrerPolicy: { policy: "no-referrer" },
    hsts: false,
  });
  app.addHook("onSend", async (req, reply) => {
    reply.header("x-request-id", req.id);
  });

  const auth = new Authenticator(cfg.ORCH_API_TOKEN, opts.bus, cfg.ORCH_SSE_TOKEN_TTL_MS);
  const surface: Surface = {
    bus: opts.bus,
    cfg,
    runs: new RunsApi(opts.bus, { definitions: new DefinitionStore(opts.bus), mode: cfg.ORCH_MODE }),
    deliveries: new KeyStore(opts.bus, opts.bus.names.buckets.deliveries),
    auth,
    topology: opts.topology,
    version: opts.version,
    sse: { heartbeatMs: cfg.ORCH_SSE_HEARTBEAT_MS, maxBufferBytes: cfg.ORCH_SSE_MAX_BUFFER_BYTES },
    rateLimit: cfg.ORCH_RATE_LIMIT_ENABLED ? { max: cfg.ORCH_RATE_LIMIT_MAX, timeWindow: cfg.ORCH_RATE_LIMIT_WINDOW_MS } : false,
  };
  app.decorate("surface", surface);
  installAuth(app, auth);

  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_req, ctx) => Object.assign(new HttpError(ErrorCode.RateLimited, `Rate limit exceeded: retry in ${ctx.after}`), { statusCode: 429 }),
  });
  for (const s of SURFACES) {
    if (s.enabled && !s.enabled(cfg)) {
      opts.logger.info(`${s.name}: off (${s.offReason ?? "disabled"})`);
      continue;
    }
    await app.register(s.plugin, { ...surface, ...(s.prefix ? { prefix: s.prefix } : {}) });
  }
  return app;
}
