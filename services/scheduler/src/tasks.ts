import type { Bus } from "@orch/bus";
import type { SchedulerConfig } from "@orch/config";
import type { Logger } from "@orch/logging";
import { DefinitionStore, RunsApi, TaskService } from "@orch/runs";
import { randomUUID } from "node:crypto";

/**
 * Seed 001's worker and periodic scheduler, both off unless enabled, both talking to the core only
 * through NATS (the runs API), never to the gateway.
 *
 * - The worker (`ORCH_WORKER_ENABLED`) takes the oldest queued task, dispatches it and waits for its
 *   attempt to end, again and again until the queue is empty, then looks every
 *   `ORCH_WORKER_POLL_INTERVAL_MS`. A failed attempt is dispatched again, at most
 *   `ORCH_WORKER_MAX_RETRIES` times, after `ORCH_WORKER_BACKOFF_MS · 2^(n−1)` (at most 60 s), worked
 *   out from the task's record each time (nothing waits in memory): the retries are the worker's (each is the engine's `run_step` of the failed step, a new attempt),
 *   because tasks run one attempt per dispatch (`task.queue` has `maxAttempts: 1`) so that
 *   `POST /tasks/dispatch` answers with one attempt's outcome, as the seed's does.
 * - The periodic scheduler (`ORCH_SCHEDULER_ENABLED`) creates a run of type `scheduled` every
 *   `ORCH_SCHEDULE_INTERVAL_MS`, one task per role of `ORCH_SCHEDULE_ROLES`, described by
 *   `ORCH_SCHEDULE_DESCRIPTION`. Each interval's slot is claimed in the `tasks` bucket first, so
 *   several schedulers (or a restarted one) create each run once.
 */

export interface TaskLoops {
  stop(): Promise<void>;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

/** Retry n (1-based) waits this long. */
export const workerBackoff = (baseMs: number, retry: number) => Math.min(60_000, baseMs * 2 ** Math.max(0, retry - 1));

export function startTaskLoops(opts: { bus: Bus; cfg: Readonly<SchedulerConfig>; logger: Logger }): TaskLoops {
  const { bus, cfg, logger } = opts;
  const ac = new AbortController();
  const loops: Promise<void>[] = [];
  if (!cfg.ORCH_WORKER_ENABLED && !cfg.ORCH_SCHEDULER_ENABLED) return { async stop() {} };
  const runs = new RunsApi(bus, { definitions: new DefinitionStore(bus), mode: cfg.ORCH_MODE });
  const tasks = new TaskService(runs, { actor: "scheduler" });

  /** The failed task whose retry is due soonest (retry n waits `workerBackoff(n)` after the failure), if any. */
  async function dueRetry() {
    if (cfg.ORCH_WORKER_MAX_RETRIES === 0) return undefined;
    const now = Date.now();
    return (await tasks.listTasks({ status: "failed" }))
      .filter((t) => t.attempts >= 1 && t.attempts <= cfg.ORCH_WORKER_MAX_RETRIES)
      .map((t) => ({ t, due: Date.parse(t.history.at(-1)?.timestamp ?? t.updatedAt) + workerBackoff(cfg.ORCH_WORKER_BACKOFF_MS, t.attempts) }))
      .filter((x) => x.due <= now)
      .sort((a, b) => a.due - b.due)[0]?.t;
  }

  if (cfg.ORCH_WORKER_ENABLED) {
    logger.info({ pollMs: cfg.ORCH_WORKER_POLL_INTERVAL_MS, maxRetries: cfg.ORCH_WORKER_MAX_RETRIES, backoffMs: cfg.ORCH_WORKER_BACKOFF_MS }, "task worker on");
    loops.push(
      (async () => {
        while (!ac.signal.aborted) {
          let idle = true;
          try {
            // A failed task due for a retry first, then the head of the queue. Retries are read from
            // the task records each time (attempts, when the last one failed), so a scheduler that
            // restarts in the middle of a backoff picks them up where they were.
            const retry = await dueRetry();
            if (retry) logger.info({ taskId: retry.id, retry: retry.attempts }, "task failed; retrying");
            const out = retry ? await tasks.redispatch(retry.id, { waitMs: 120_000 }) : await tasks.dispatchNext({ waitMs: 120_000 });
            if (out.dispatched) {
              idle = false;
              logger.info({ taskId: out.task.id, runId: out.task.runId, status: out.task.status, attempts: out.task.attempts }, "task dispatched");
            }
          } catch (err) {
            logger.warn({ err }, "task worker: dispatch failed; trying again shortly");
          }
          if (idle) await sleep(cfg.ORCH_WORKER_POLL_INTERVAL_MS, ac.signal);
        }
      })(),
    );
  }

  if (cfg.ORCH_SCHEDULER_ENABLED) {
    const every = cfg.ORCH_SCHEDULE_INTERVAL_MS;
    logger.info({ intervalMs: every, roles: cfg.ORCH_SCHEDULE_ROLES }, "periodic task runs on");
    loops.push(
      (async () => {
        while (!ac.signal.aborted) {
          const slot = Math.floor(Date.now() / every);
          try {
            const runId = `run-${randomUUID()}`;
            if (await tasks.claimSlot(`${every}-${slot}`, runId)) {
              const run = await tasks.createRun(
                "scheduled",
                { roles: cfg.ORCH_SCHEDULE_ROLES, description: cfg.ORCH_SCHEDULE_DESCRIPTION, slot },
                cfg.ORCH_SCHEDULE_ROLES.map((role) => ({ id: `${runId}-${role}`, role, description: cfg.ORCH_SCHEDULE_DESCRIPTION })),
                { runId, metadata: { scheduled: true, slot, intervalMs: every } },
              );
              logger.info({ runId: run.id, tasks: run.taskIds.length }, "periodic run created");
            }
          } catch (err) {
            logger.warn({ err }, "could not create the periodic run");
          }
          // Until the next slot starts.
          await sleep(Math.max(10, (slot + 1) * every - Date.now()), ac.signal);
        }
      })(),
    );
  }

  return {
    async stop() {
      ac.abort();
      await Promise.race([Promise.allSettled(loops), new Promise((r) => setTimeout(r, 5_000))]);
    },
  };
}
