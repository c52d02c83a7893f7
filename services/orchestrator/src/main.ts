import { runConsumer } from "@orch/bus";
import { OrchestratorConfig } from "@orch/config";
import { Command } from "@orch/contracts";
import { runService } from "@orch/service";
import { Header } from "@orch/contracts";
import { DefinitionStore } from "./core/definitions.js";
import { Engine } from "./core/engine.js";
import { startGrpcServer } from "./grpc/server.js";

/**
 * The core: consumes the command stream, applies each command to its run's machine, persists the
 * snapshot with compare-and-set and publishes the effects; serves the gRPC API.
 */
await runService({
  name: "orchestrator",
  config: OrchestratorConfig,
  async start({ cfg, logger, bus }) {
    const definitions = new DefinitionStore(bus);
    const engine = new Engine({ bus, logger, definitions, cacheSize: cfg.ORCH_CORE_CACHE_SIZE });
    const consumer = await runConsumer(bus, {
      stream: bus.names.streams.cmd,
      consumer: bus.names.consumers.core,
      schema: Command,
      origin: "core",
      concurrency: cfg.ORCH_CORE_CONCURRENCY,
      keyOf: (cmd) => cmd.runId,
      handler: (cmd, ctx) => engine.apply(cmd, ctx.correlationId, ctx.msg.headers?.get(Header.ReplyTo) || undefined),
    });
    const importRoots = (cfg.ORCH_IMPORT_ROOTS ?? process.cwd()).split(",").map((r) => r.trim()).filter(Boolean);
    const grpc = await startGrpcServer({ bus, logger, definitions, host: cfg.ORCH_GRPC_HOST, port: cfg.ORCH_GRPC_PORT, mode: cfg.ORCH_MODE, importRoots });
    return {
      async stop() {
        await grpc.stop();
        await consumer.stop();
      },
    };
  },
});
