import type { GatewayConfig } from "@orch/config";
import type { FastifyInstance } from "fastify";
import type { Surface } from "./context.js";
import { docsRoutes } from "./routes/docs.js";
import { healthRoutes } from "./routes/health.js";
import { seed000Routes } from "./routes/seed000.js";

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
  { name: "health", plugin: healthRoutes },
  { name: "docs", plugin: docsRoutes },
  { name: "seed 000 jobs (/api/orchestrator)", plugin: seed000Routes, prefix: "/api/orchestrator", enabled: (c) => c.ORCH_ENABLED, offReason: "ORCH_ENABLED=false: /api/orchestrator/* answers 404" },
];
