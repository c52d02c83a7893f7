import { missingTopology, type Bus, type TopologySpec } from "@orch/bus";
import type { FastifyInstance } from "fastify";

export interface HealthOptions {
  bus: Bus;
  topology: TopologySpec;
  version: string;
}

/**
 * `/health`: the process is up. `/ready`: it can do its job: NATS connected and the topology
 * provisioned (503 with what is missing otherwise, so an orchestrator can hold traffic back).
 */
export async function healthRoutes(app: FastifyInstance, opts: HealthOptions): Promise<void> {
  const started = Date.now();
  app.get("/health", async () => ({
    status: "ok",
    service: "gateway",
    version: opts.version,
    uptime_seconds: Math.floor((Date.now() - started) / 1000),
  }));

  app.get("/ready", async (_req, reply) => {
    const checks: Record<string, string> = {};
    const nc = opts.bus.nc;
    checks.nats = nc.isClosed() ? "closed" : nc.isDraining() ? "draining" : "connected";
    if (checks.nats === "connected") {
      try {
        const missing = await missingTopology(opts.bus, opts.topology);
        checks.topology = missing.length === 0 ? "present" : `missing: ${missing.join(", ")}`;
      } catch (err) {
        checks.topology = `unknown: ${(err as Error).message}`;
      }
    }
    const ready = checks.nats === "connected" && checks.topology === "present";
    return reply.status(ready ? 200 : 503).send({ status: ready ? "ready" : "degraded", checks });
  });
}
