import { decode, missingTopology } from "@orch/bus";
import { AgentReadiness } from "@orch/contracts";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { Surface } from "../../context.js";
import { route } from "../../routing.js";

const AGENTS_TIMEOUT_MS = 5_000;

/**
 * `/health`: the process is up (open, for probes). `/ready`: it can do its job: NATS connected and
 * the topology provisioned (503 with what is missing otherwise, so an orchestrator can hold traffic
 * back); with ORCH_CHECK_LLM, also an agent hub that reaches the model servers its roles use.
 */
export async function healthRoutes(app: FastifyInstance, opts: Surface): Promise<void> {
  const started = Date.now();
  route(
    app,
    {
      method: "GET",
      url: "/health",
      operationId: "health",
      tags: ["ops"],
      summary: "Liveness",
      description: '`{"status":"ok"}` (seed 004\'s and seed 001\'s shape) with the service, version and uptime.',
      auth: "none",
      responses: {
        200: {
          description: "Up",
          schema: z.object({ status: z.literal("ok"), service: z.string(), version: z.string(), uptime_seconds: z.int() }),
        },
      },
    },
    async () => ({
      status: "ok",
      service: "gateway",
      version: opts.version,
      uptime_seconds: Math.floor((Date.now() - started) / 1000),
    }),
  );

  route(
    app,
    {
      method: "GET",
      url: "/ready",
      operationId: "ready",
      tags: ["ops"],
      summary: "Readiness: NATS, the topology, and (ORCH_CHECK_LLM) the model endpoints",
      responses: {
        200: { description: "Ready", schema: z.object({ status: z.literal("ready"), checks: z.record(z.string(), z.string()) }) },
        503: { description: "Not ready, with what is missing", schema: z.object({ status: z.literal("degraded"), checks: z.record(z.string(), z.string()) }) },
      },
    },
    async (_req, reply) => {
      const checks: Record<string, string> = {};
      const nc = opts.bus.nc;
      // The connection's own state, as its status events report it: while NATS is down this
      // answers at once, instead of waiting for a request to time out.
      checks.nats = nc.isClosed() ? "closed" : nc.isDraining() ? "draining" : opts.bus.connected ? "connected" : "disconnected";
      if (checks.nats === "connected") {
        try {
          const missing = await missingTopology(opts.bus, opts.topology);
          checks.topology = missing.length === 0 ? "present" : `missing: ${missing.join(", ")}`;
        } catch (err) {
          checks.topology = `unknown: ${(err as Error).message}`;
        }
      }
      const checkLlm = opts.cfg.ORCH_CHECK_LLM;
      if (checkLlm && checks.nats === "connected") {
        try {
          const m = await opts.bus.nc.request(opts.bus.names.subjects.query("agents.ready"), undefined, { timeout: AGENTS_TIMEOUT_MS });
          const d = decode(AgentReadiness, m.data);
          if (!d.ok) checks.llm = "unknown: unreadable answer";
          else
            checks.llm = d.value.ok
              ? "ok"
              : `failing: ${d.value.executors
                  .filter((e) => !e.ok)
                  .map((e) => `${e.name}: ${e.detail}`)
                  .join("; ")}`;
        } catch {
          checks.llm = "no agent hub answered";
        }
      }
      const ready = checks.nats === "connected" && checks.topology === "present" && (!checkLlm || checks.llm === "ok");
      return reply.status(ready ? 200 : 503).send({ status: ready ? "ready" : "degraded", checks });
    },
  );
}
