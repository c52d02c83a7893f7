import { randomUUID } from "node:crypto";
import { lastTransition, sendCommand, type Bus } from "@orch/bus";
import type { OrchestratorConfig } from "@orch/config";
import { DEFAULT_PROJECT, TASKS_SCHEDULE_RUN, periodicTaskRunTemplate } from "@orch/contracts";
import type { Logger } from "@orch/logging";

/**
 * Seed 001's periodic runs (ORCH_SCHEDULER_ENABLED, ORCH_SCHEDULE_*) as a run the core keeps: the
 * schedule run `tasks-schedule` (the `schedule` built-in). At start, each core replica sends it what
 * the settings say (its creation, then `set_schedule`): both are idempotent (the run is created once;
 * the same schedule again changes nothing), so replicas and restarts agree. The run arms a tick timer
 * per interval slot; the scheduler fires it; the tick's transition arms the next tick and a timer
 * whose firing is the create of the slot's run (run id and command id from the slot), so each slot's
 * run is created once, whatever fires twice. With the setting off, an existing schedule is stopped.
 */
export async function keepTaskSchedule(bus: Bus, cfg: Readonly<OrchestratorConfig>, logger: Logger): Promise<void> {
  const runId = TASKS_SCHEDULE_RUN;
  const base = { runId, issuedAt: Date.now(), actor: "orchestrator" } as const;
  if (!cfg.ORCH_SCHEDULER_ENABLED) {
    if (!(await lastTransition(bus, runId))) return;
    await sendCommand(bus, { ...base, type: "run.signal", commandId: `schedule:${runId}:${randomUUID()}`, signal: { name: "set_schedule", enabled: false } });
    logger.info({ runId }, "periodic runs off");
    return;
  }
  await sendCommand(bus, {
    ...base,
    type: "run.create",
    commandId: `create:${runId}`,
    projectId: DEFAULT_PROJECT,
    // Version 1 (periodic): the run this has always been (a version 2 schedule takes a ScheduleSpec).
    definition: { id: "schedule", version: 1 },
    title: "seed 001 periodic runs",
    autoStart: true,
    mode: cfg.ORCH_MODE,
  });
  const creates = periodicTaskRunTemplate({
    roles: cfg.ORCH_SCHEDULE_ROLES,
    description: cfg.ORCH_SCHEDULE_DESCRIPTION,
    intervalMs: cfg.ORCH_SCHEDULE_INTERVAL_MS,
    mode: cfg.ORCH_MODE,
  });
  await sendCommand(bus, {
    ...base,
    type: "run.signal",
    // Unique: the same schedule sent again is a no-op by meaning, not by id (a toggled setting must apply).
    commandId: `schedule:${runId}:${randomUUID()}`,
    signal: { name: "set_schedule", enabled: true, everyMs: cfg.ORCH_SCHEDULE_INTERVAL_MS, creates },
  });
  logger.info({ runId, intervalMs: cfg.ORCH_SCHEDULE_INTERVAL_MS, roles: cfg.ORCH_SCHEDULE_ROLES }, "periodic runs on");
}
