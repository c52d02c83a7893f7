import type { GatewayConfig } from "@orch/config";
import type { FastifyInstance } from "fastify";
import type { Surface } from "../context.js";
import { apiV1Routes } from "./v1/index.js";
import { docsRoutes } from "./ops/docs.js";
import { consoleRoutes } from "./ops/console.js";
import { deadLetterRoutes, dlqRoutes } from "./dead-letters/routes.js";
import { metricsRoutes } from "./ops/metrics.js";
import { healthRoutes } from "./ops/health.js";
import { seed000Routes } from "./jobs/routes.js";
import { seed002Routes } from "./workflows/routes.js";
import { webhookRoutes } from "./webhooks/routes.js";
import { seed004Routes } from "./protocols/routes.js";
import { tasksRoutes } from "./tasks/index.js";

/**
 * Every HTTP surface the gateway serves, in registration order. Each is a fastify plugin with its
 * own error shape (ours, or its seed's) over the same runs API.
 */
export interface SurfaceEntry {
  name: string;
  plugin: (app: FastifyInstance, opts: Surface) => Promise<void>;
  prefix?: string;
  enabled?: (cfg: Readonly<GatewayConfig>) => boolean;
  offReason?: string;
}

export const SURFACES: SurfaceEntry[] = [
  // First: not encapsulated, its onResponse hook (request metrics) must reach every later route.
  { name: "metrics and /openapi.yaml", plugin: metricsRoutes },
  { name: "health", plugin: healthRoutes },
  { name: "docs", plugin: docsRoutes },
  { name: "web console (/console)", plugin: consoleRoutes },
  { name: "dead letters (seed 001: /dlq)", plugin: dlqRoutes },
  { name: "our API (/api/v1)", plugin: apiV1Routes, prefix: "/api/v1" },
  { name: "dead letters (/api/v1/dead-letters)", plugin: deadLetterRoutes, prefix: "/api/v1" },
  {
    name: "seed 000 jobs (/api/orchestrator)",
    plugin: seed000Routes,
    prefix: "/api/orchestrator",
    enabled: (c) => c.ORCH_ENABLED,
    offReason: "ORCH_ENABLED=false: /api/orchestrator/* answers 404",
  },
  { name: "seed 002 workflows (/workflows)", plugin: seed002Routes },
  { name: "seed 001 tasks and runs (/tasks, /runs)", plugin: tasksRoutes },
  { name: "webhooks (/webhooks/github, /webhooks/gitlab)", plugin: webhookRoutes },
  { name: "seed 004 TasksGodzilla (/projects, /protocols, /steps, /events, /queues)", plugin: seed004Routes },
];
