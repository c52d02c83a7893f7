import { missingTopology, provisionTopology, publish, runConsumer, TopologyMismatchError, type Bus, type TopologySpec } from "@orch/bus";
import { EventBusConfig } from "@orch/config";
import { DeadLetter, RunEvent } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { runService } from "@orch/service";
import { startProjection } from "./projection.js";

/** System events (dead letters, …) live under this project and run id in the events stream. */
export const SYSTEM_PROJECT = "_system";
export const DLQ_RUN = "dlq";

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
 * index behind ListRuns) and watches the dead letters, turning each into a logged, counted
 * `error.dead_letter` event in the events stream.
 */
await runService({
  name: "event-bus",
  config: EventBusConfig,
  waitForTopology: false,
  async start({ logger, bus, topology, signal }) {
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

    let deadLetters = 0;
    const dlq = await runConsumer(bus, {
      stream: bus.names.streams.dlq,
      consumer: bus.names.consumers.dlqMonitor,
      schema: DeadLetter,
      origin: "dlq-monitor",
      async handler(letter, ctx) {
        deadLetters++;
        logger.warn({ origin: letter.origin, subject: letter.subject, reason: letter.reason, error: letter.error, deadLetters }, "dead letter");
        const event: RunEvent = {
          runId: DLQ_RUN,
          projectId: SYSTEM_PROJECT,
          seq: ctx.streamSeq,
          type: "error.dead_letter",
          at: letter.at,
          data: { origin: letter.origin, subject: letter.subject, reason: letter.reason, error: letter.error, dlqSeq: ctx.streamSeq },
        };
        await publish(bus, bus.names.subjects.evt(SYSTEM_PROJECT, DLQ_RUN, event.type), RunEvent, event, { msgId: `dlq-evt:${ctx.streamSeq}` }, "evt.v1");
      },
    });
    return {
      async stop() {
        clearInterval(heal);
        await dlq.stop();
        await projection.stop();
      },
    };
  },
});
