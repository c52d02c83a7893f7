import { randomUUID } from "node:crypto";
import { lastTransition, sendCommand, type Bus } from "@orch/bus";
import type { OrchestratorConfig } from "@orch/config";
import {
  DEFAULT_PROJECT,
  FINAL_RUN_STATUSES,
  TASKS_PERIODIC_SCHEDULE,
  TASKS_SCHEDULE_RUN,
  periodicTaskRunTemplate,
  type ScheduleSpecInput,
  type Signal,
} from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { liveInChain } from "./run-chains.js";

/**
 * Seed 001's periodic runs (ORCH_SCHEDULER_ENABLED, ORCH_SCHEDULE_*) as a schedule the core keeps:
 * `tasks-periodic`, a run of the `schedule` built-in (version 2), listed, paused and resumed in
 * `/api/v1/schedules` like any. At start each core replica sends what the settings say, idempotently,
 * so replicas and restarts agree: on, the schedule is created (command id from its run id) or given
 * the settings' spec (`schedule_set`: the same spec changes nothing, and a pause made in the API is
 * kept); off, it is cancelled. One cancelled (turned off, or deleted in the API) is not brought back:
 * turned on again, the next in its chain is created (`<id>-<its last stream sequence>`). The periodic
 * run of version 1 (`tasks-schedule`) is cancelled once: this replaces it.
 */
export async function keepTaskSchedule(bus: Bus, cfg: Readonly<OrchestratorConfig>, logger: Logger): Promise<void> {
  const signal = (runId: string, s: { name: Signal["name"] } & Record<string, unknown>, reason: string) =>
    sendCommand(bus, {
      type: "run.signal",
      runId,
      issuedAt: Date.now(),
      actor: "orchestrator",
      // Unique: the same signal again is a no-op by meaning, not by id (a toggled setting must apply).
      commandId: `schedule:${runId}:${randomUUID()}`,
      signal: s,
      reason,
    });

  const old = await lastTransition(bus, TASKS_SCHEDULE_RUN);
  const was = old?.transition.view();
  if (was && !FINAL_RUN_STATUSES.has(was.status)) {
    await signal(TASKS_SCHEDULE_RUN, { name: "cancel" }, `replaced by the schedule ${TASKS_PERIODIC_SCHEDULE}`);
    logger.info({ runId: TASKS_SCHEDULE_RUN, by: TASKS_PERIODIC_SCHEDULE }, "periodic run (version 1) replaced");
  }

  const { runId, live } = await liveInChain(bus, TASKS_PERIODIC_SCHEDULE);
  if (!cfg.ORCH_SCHEDULER_ENABLED) {
    if (!live) return;
    await signal(runId, { name: "cancel" }, "ORCH_SCHEDULER_ENABLED is off");
    logger.info({ runId }, "periodic runs off");
    return;
  }
  const spec: ScheduleSpecInput = {
    everyMs: cfg.ORCH_SCHEDULE_INTERVAL_MS,
    // As the periodic runs always were: the current slot after downtime; each slot's run whatever goes
    // (a task queue run waits for more tasks: it does not end by itself).
    catchUp: "one",
    overlap: "allow",
    creates: periodicTaskRunTemplate({
      roles: cfg.ORCH_SCHEDULE_ROLES,
      description: cfg.ORCH_SCHEDULE_DESCRIPTION,
      intervalMs: cfg.ORCH_SCHEDULE_INTERVAL_MS,
      mode: cfg.ORCH_MODE,
    }),
  };
  if (live) await signal(runId, { name: "schedule_set", spec }, "ORCH_SCHEDULE_* at start");
  else
    await sendCommand(bus, {
      type: "run.create",
      runId,
      issuedAt: Date.now(),
      actor: "orchestrator",
      commandId: `create:${runId}`,
      projectId: DEFAULT_PROJECT,
      definition: { id: "schedule", version: 2 },
      title: "seed 001 periodic runs",
      input: spec as Record<string, unknown>,
      autoStart: true,
      mode: cfg.ORCH_MODE,
    });
  logger.info({ runId, intervalMs: cfg.ORCH_SCHEDULE_INTERVAL_MS, roles: cfg.ORCH_SCHEDULE_ROLES }, "periodic runs on");
}
