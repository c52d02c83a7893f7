import { missingTopology, provisionTopology, publishToStream, runConsumer, TopologyMismatchError, type Bus, type TopologySpec } from "@orch/bus";
import { EventBusConfig } from "@orch/config";
import { DeadLetter, RunEventType, SYSTEM_PROJECT, TRANSITION_VERSION, encodeTransition, type TransitionParts } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { runService } from "@orch/service";
import { startProjection } from "./projection.js";
import { RetentionSweeper } from "./retention.js";

/** The system feed dead letters are reported on (`<p>.run._system.dlq`). */
export const DLQ_FEED = "dlq";

async function provision(bus: Bus, spec: TopologySpec, logger: Logger): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      const { created, updated } = await provisionTopology(bus, spec);
      logger.info({ created, updated }, "stream topology provisioned");
      return;
    } catch (err) {
      if (err instanceof TopologyMismatchError) throw err;
      logger.warn({ err, attempt }, "could not provision the topology yet; retrying");
      await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * 2 ** attempt)));
    }
  }
}

/**
 * The event-bus service owns the stream topology: it provisions every stream, consumer and bucket
 * at start (idempotently) and puts back whatever goes missing. It keeps the projections (the run
 * index behind ListRuns), purges finished runs past their retention, and watches the dead letters, turning each into a logged, counted
 * `error.dead_letter` event on the system feed of the runs stream.
 */
await runService({
  name: "event-bus",
  config: EventBusConfig,
  waitForTopology: false,
  async start({ cfg, logger, bus, topology, signal }) {
    try {
      await provision(bus, topology, logger);
    } catch (err) {
      logger.fatal({ err: (err as Error).message }, "the stream topology cannot be provisioned");
      process.exit(2);
    }

    const heal = setInterval(() => {
      missingTopology(bus, topology)
        .then(async (missing) => {
          if (missing.length === 0 || signal.aborted) return;
          logger.warn({ missing }, "topology incomplete; provisioning again");
          await provisionTopology(bus, topology);
        })
        .catch((err: unknown) => logger.warn({ err }, "topology check failed"));
    }, 5_000);

    const projection = await startProjection(bus, logger);
    const retention = new RetentionSweeper(bus, projection.index, logger, {
      retentionMs: cfg.ORCH_RUN_RETENTION_DAYS * 86_400_000,
      onPurged: (runId) => projection.tasks.remove(runId),
    });
    retention.start();

    let deadLetters = 0;
    const dlq = await runConsumer(bus, {
      stream: bus.names.streams.dlq,
      consumer: bus.names.consumers.dlqMonitor,
      schema: DeadLetter,
      origin: "dlq-monitor",
      async handler(letter, ctx) {
        deadLetters++;
        logger.warn({ origin: letter.origin, subject: letter.subject, reason: letter.reason, error: letter.error, deadLetters }, "dead letter");
        // One message per dead letter, numbered by its place in the dead-letter stream.
        const report: TransitionParts = {
          head: {
            v: TRANSITION_VERSION,
            runId: DLQ_FEED,
            projectId: SYSTEM_PROJECT,
            n: ctx.streamSeq,
            seq: ctx.streamSeq,
            events: 1,
            at: letter.at,
            cause: { type: "dead_letter", commandId: `dlq:${ctx.streamSeq}`, actor: "event-bus" },
          },
          events: [
            {
              seq: ctx.streamSeq,
              type: RunEventType.DeadLetter,
              at: letter.at,
              data: { origin: letter.origin, subject: letter.subject, reason: letter.reason, error: letter.error, dlqSeq: ctx.streamSeq },
            },
          ],
        };
        await publishToStream(bus, bus.names.subjects.system(DLQ_FEED), encodeTransition(report), { msgId: `dlq-evt:${ctx.streamSeq}` });
      },
    });
    return {
      async stop() {
        clearInterval(heal);
        await retention.stop();
        await dlq.stop();
        await projection.stop();
      },
    };
  },
});
