import { decode, encode, runConsumer, sendCommand } from "@orch/bus";
import { SchedulerConfig } from "@orch/config";
import { StoredTimer, TimerRequest } from "@orch/contracts";
import { runService } from "@orch/service";
import { startTaskLoops } from "./tasks.js";
import { TimerQueue } from "./timers.js";

/**
 * The scheduler owns durable timers (retry backoff, wall-clock limits, later step and approval
 * timeouts and cron). A timer request is stored in the `timers` bucket before it is acked; every
 * stored timer is armed again at start, so a timer fires after any restart (at once if overdue).
 * Firing publishes the timer's command to the core, de-duplicated by timer id, then forgets it.
 */
await runService({
  name: "scheduler",
  config: SchedulerConfig,
  async start({ logger, bus, cfg }) {
    const kv = await bus.kv(bus.names.buckets.timers);

    const fire = (timerId: string, t: StoredTimer) => {
      const attempt = (n: number): void => {
        sendCommand(bus, t.command)
          .then(() => kv.delete(timerId))
          .then(() => logger.debug({ timerId, runId: t.command.runId, kind: t.command.kind, lateMs: Date.now() - t.dueAt }, "timer fired"))
          .catch((err: unknown) => {
            logger.warn({ err, timerId, attempt: n }, "could not fire timer; retrying");
            setTimeout(() => attempt(n + 1), Math.min(5_000, 100 * 2 ** n)).unref();
          });
      };
      attempt(0);
    };
    const queue = new TimerQueue<StoredTimer>(fire);

    let restored = 0;
    for await (const key of await kv.keys()) {
      const e = await kv.get(key);
      if (!e || e.operation !== "PUT") continue;
      const d = decode(StoredTimer, e.value);
      if (!d.ok) {
        logger.error({ timerId: key, error: d.error }, "dropping an unreadable stored timer");
        await kv.delete(key);
        continue;
      }
      queue.set(key, d.value.dueAt, d.value);
      restored++;
    }
    logger.info({ restored }, "timers restored");

    const consumer = await runConsumer(bus, {
      stream: bus.names.streams.sched,
      consumer: bus.names.consumers.scheduler,
      schema: TimerRequest,
      origin: "scheduler",
      concurrency: 32,
      keyOf: (r) => r.timerId,
      async handler(req) {
        if (req.op === "set") {
          const stored: StoredTimer = { timerId: req.timerId, dueAt: req.dueAt, command: req.command, setAt: Date.now() };
          await kv.put(req.timerId, encode(StoredTimer, stored));
          queue.set(req.timerId, req.dueAt, stored);
        } else {
          queue.delete(req.timerId);
          await kv.delete(req.timerId);
        }
      },
    });
    // Seed 001's worker and periodic runs (off unless enabled).
    const taskLoops = startTaskLoops({ bus, cfg, logger });
    return {
      async stop() {
        await taskLoops.stop();
        await consumer.stop();
        queue.stop();
      },
    };
  },
});
