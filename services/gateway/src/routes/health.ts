import { decode, missingTopology, type Bus, type TopologySpec } from "@orch/bus";
import { AgentReadiness } from "@orch/contracts";
import type { FastifyInstance } from "fastify";

export interface HealthOptions {
  bus: Bus;
  topology: TopologySpec;
  version: string;
  /** ORCH_CHECK_LLM: readiness includes the agent hub's model endpoints. */
  checkLlm?: boolean;
}

const AGENTS_TIMEOUT_MS = 5_000;

/**
 * `/health`: the process is up. `/ready`: it can do its job: NATS connected and the topology
 * provisioned (503 with what is missing otherwise, so an orchestrator can hold traffic back); with
 * ORCH_CHECK_LLM, also an agent hub that reaches the model servers its roles are routed to.
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
    if (opts.checkLlm && checks.nats === "connected") {
      try {
        const m = await opts.bus.nc.request(opts.bus.names.subjects.query("agents.ready"), undefined, { timeout: AGENTS_TIMEOUT_MS });
        const d = decode(AgentReadiness, m.data);
        if (!d.ok) checks.llm = "unknown: unreadable answer";
        else checks.llm = d.value.ok ? "ok" : `failing: ${d.value.executors.filter((e) => !e.ok).map((e) => `${e.name}: ${e.detail}`).join("; ")}`;
      } catch {
        checks.llm = "no agent hub answered";
      }
    }
    const ready = checks.nats === "connected" && checks.topology === "present" && (!opts.checkLlm || checks.llm === "ok");
    return reply.status(ready ? 200 : 503).send({ status: ready ? "ready" : "degraded", checks });
  });
}
