import { hostname } from "node:os";
import { ACK_WAIT_MS, runConsumer, type RunningConsumer } from "@orch/bus";
import { OrchestratorConfig } from "@orch/config";
import { Command, Header } from "@orch/contracts";
import { runService } from "@orch/service";
import { DefinitionStore } from "@orch/runs";
import { CommandApplier } from "./core/applier.js";
import { PartitionOwnership } from "./core/ownership.js";
import { startGrpcServer } from "./grpc/server.js";
import { DefinitionWriter } from "./writes/definitions.js";
import { importLegacyAliases } from "./writes/legacy.js";
import { NumberWriter } from "./writes/numbers.js";
import { ProjectWriter } from "./writes/projects.js";
import { serveWrites } from "./writes/server.js";
import { keepTicketIntake } from "./intake.js";
import { keepTaskSchedule } from "./schedule.js";

/**
 * The core: consumes the command stream and applies each command to its run's machines, writing
 * the run's next transition (its state and every effect) with compare-and-set; writes definitions,
 * projects and the numbers that name things for the edges that ask (`<p>.rpc.*`); serves the gRPC API.
 */
await runService({
  name: "orchestrator",
  config: OrchestratorConfig,
  async start({ cfg, logger, bus }) {
    const definitions = new DefinitionStore(bus);
    const defaultBudgets = [
      ...(cfg.ORCH_MAX_TOKENS_PER_STEP ? [{ scope: "step", tokens: cfg.ORCH_MAX_TOKENS_PER_STEP, mode: cfg.ORCH_TOKEN_BUDGET_MODE }] : []),
      ...(cfg.ORCH_MAX_TOKENS_PER_RUN ? [{ scope: "run", tokens: cfg.ORCH_MAX_TOKENS_PER_RUN, mode: cfg.ORCH_TOKEN_BUDGET_MODE }] : []),
    ];
    // Seed 004's CI settings, as defaults of the CI policies of runs created from now on.
    const ciDefaults = {
      onSuccess: cfg.ORCH_AUTO_QA_ON_CI ? ("qa" as const) : ("complete" as const),
      fixAttempts: cfg.ORCH_CI_FIX_MAX_ATTEMPTS,
      fixCooldownMs: cfg.ORCH_CI_FIX_COOLDOWN_MS,
    };
    // Seed 001's worker, as the defaults of the worker policy of runs of tasks created from now on.
    const workerDefaults = { enabled: cfg.ORCH_WORKER_ENABLED, maxRetries: cfg.ORCH_WORKER_MAX_RETRIES, backoffMs: cfg.ORCH_WORKER_BACKOFF_MS };
    if (cfg.ORCH_WORKER_ENABLED) logger.info(workerDefaults, "task worker on: runs of tasks created from now on start their tasks themselves");
    if (cfg.ORCH_WORKER_POLL_INTERVAL_MS !== undefined)
      logger.warn(
        { variable: "ORCH_WORKER_POLL_INTERVAL_MS" },
        "ORCH_WORKER_POLL_INTERVAL_MS is deprecated and ignored: nothing polls the queue any more (the core starts a queued task in the transition that queues it, and a retry when its timer fires)",
      );
    const applier = new CommandApplier({
      bus,
      logger,
      definitions,
      defaultBudgets,
      ciDefaults,
      workerDefaults,
      // Pull requests: how often an open one is looked at (0: never), where a PR's body links back to its run.
      prDefaults: { pollIntervalMs: cfg.ORCH_PR_POLL_INTERVAL_SECS * 1_000, publicUrl: cfg.ORCH_PUBLIC_URL ?? `http://127.0.0.1:${cfg.PORT}` },
      forgeHosts: cfg.ORCH_FORGE_HOSTS,
      cacheSize: cfg.ORCH_CORE_CACHE_SIZE,
      cacheBytes: cfg.ORCH_CORE_CACHE_MB * 1024 * 1024,
    });
    // One consumer per owned partition of the command stream; replicas share the partitions.
    const consumers = new Map<number, RunningConsumer>();
    const perPartition = Math.max(1, Math.ceil(cfg.ORCH_CORE_CONCURRENCY / 4));
    const ownership = new PartitionOwnership(
      bus,
      cfg.ORCH_INSTANCE_ID ?? hostname(),
      {
        async acquire(k) {
          applier.forgetPartition(k);
          consumers.set(
            k,
            await runConsumer(bus, {
              stream: bus.names.streams.cmd,
              consumer: bus.names.consumers.corePartition(k),
              schema: Command,
              origin: "core",
              concurrency: perPartition,
              // A command queued behind others of its run is still ours: tell the server so, well
              // inside the short ack wait (short so a dead core's commands come back fast).
              heartbeatMs: Math.floor(ACK_WAIT_MS.core / 3),
              keyOf: (cmd) => cmd.runId,
              handler: (cmd, ctx) => applier.apply(cmd, ctx.correlationId, ctx.msg.headers?.get(Header.ReplyTo) || undefined),
            }),
          );
        },
        async release(k) {
          const c = consumers.get(k);
          consumers.delete(k);
          await c?.stop();
          applier.forgetPartition(k);
        },
      },
      logger,
    );
    await ownership.start();
    logger.info({ instance: cfg.ORCH_INSTANCE_ID ?? hostname(), partitions: ownership.owned }, "owning partitions");
    const importRoots = (cfg.ORCH_IMPORT_ROOTS ?? process.cwd())
      .split(",")
      .map((r) => r.trim())
      .filter(Boolean);
    const numbers = new NumberWriter(bus);
    const writers = {
      definitions: new DefinitionWriter(bus, definitions),
      projects: new ProjectWriter({ bus, numbers, logger, mode: cfg.ORCH_MODE, forgeHosts: cfg.ORCH_FORGE_HOSTS }),
      numbers,
    };
    // What was written before the core wrote it: the old `aliases` bucket's counters, projects
    // without a number or an indexed token (each step idempotent: replicas agree).
    await importLegacyAliases(bus, numbers, logger);
    const numbered = await writers.projects.reconcile();
    if (numbered > 0) logger.info({ projects: numbered }, "numbered projects that had no number");
    const writes = serveWrites(bus, logger, writers);
    // Seed 001's periodic runs: the schedule run, on or off as configured (idempotent: replicas agree).
    await keepTaskSchedule(bus, cfg, logger);
    // Ticket intake: its run, on or off as configured (idempotent as well).
    await keepTicketIntake(bus, cfg, logger);
    const grpc = await startGrpcServer({
      bus,
      logger,
      definitions,
      writers,
      host: cfg.ORCH_GRPC_HOST,
      port: cfg.ORCH_GRPC_PORT,
      mode: cfg.ORCH_MODE,
      importRoots,
    });
    return {
      async stop() {
        writes.stop();
        await grpc.stop();
        await ownership.stop();
      },
    };
  },
});
