import rateLimit from "@fastify/rate-limit";
import type { Bus, TopologySpec } from "@orch/bus";
import type { GatewayConfig } from "@orch/config";
import { ErrorCode } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from "fastify";
import { randomUUID } from "node:crypto";
import { HttpError, installErrorHandling, toHttp } from "./errors.js";
import { healthRoutes } from "./routes/health.js";
import { seed000Routes } from "./routes/seed000.js";

/** A registered route, as `routeTable` lists them (for the OpenAPI check and, later, /docs). */
export interface RouteEntry {
  method: string;
  url: string;
}

declare module "fastify" {
  interface FastifyInstance {
    routeTable: RouteEntry[];
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

/** The gateway's HTTP app, separate from `listen` so tests can `inject()` or bind port 0. */
export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const { cfg } = opts;
  const app = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger,
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
    frameworkErrors: (err, _req, reply: FastifyReply) => {
      const { status, body } = toHttp(err);
      void reply.status(status).send(body);
    },
    return503OnClosing: true,
  });
  const routeTable: RouteEntry[] = [];
  app.decorate("routeTable", routeTable);
  app.addHook("onRoute", (r) => {
    for (const method of [r.method].flat()) routeTable.push({ method, url: r.url });
  });
  installErrorHandling(app);
  app.addHook("onSend", async (req, reply) => {
    reply.header("x-request-id", req.id);
    reply.header("x-content-type-options", "nosniff");
    reply.header("referrer-policy", "no-referrer");
  });

  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_req, ctx) =>
      Object.assign(new HttpError(ErrorCode.RateLimited, `Rate limit exceeded: retry in ${ctx.after}`), { statusCode: 429 }),
  });
  await app.register(healthRoutes, { bus: opts.bus, topology: opts.topology, version: opts.version, checkLlm: cfg.ORCH_CHECK_LLM });
  if (cfg.ORCH_ENABLED) {
    await app.register(seed000Routes, { prefix: "/api/orchestrator", bus: opts.bus, cfg });
  } else {
    opts.logger.info("ORCH_ENABLED=false: /api/orchestrator/* answers 404");
  }
  return app;
}
