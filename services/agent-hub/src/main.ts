import { ACK_WAIT_MS, runConsumer } from "@orch/bus";
import { AgentHubConfig } from "@orch/config";
import { WorkItem } from "@orch/contracts";
import { runService } from "@orch/service";
import { runStep } from "./worker.js";

/**
 * The agent hub: takes dispatched steps off the work queue (at most ORCH_AGENT_CONCURRENCY at
 * once; the rest wait in the stream), runs each through its adapter and reports the result.
 */
await runService({
  name: "agent-hub",
  config: AgentHubConfig,
  async start({ cfg, logger, bus, signal }) {
    const consumer = await runConsumer(bus, {
      stream: bus.names.streams.work,
      consumer: bus.names.consumers.agentHub,
      schema: WorkItem,
      origin: "agent-hub",
      concurrency: cfg.ORCH_AGENT_CONCURRENCY,
      heartbeatMs: Math.floor(ACK_WAIT_MS.agentHub / 3),
      handler: (item, ctx) => runStep(item, { bus, logger, signal, executor: cfg.ORCH_AGENT_EXECUTOR ?? "local" }, ctx.correlationId),
    });
    logger.info({ concurrency: cfg.ORCH_AGENT_CONCURRENCY, executor: cfg.ORCH_AGENT_EXECUTOR }, "taking work");
    return { stop: () => consumer.stop() };
  },
});
