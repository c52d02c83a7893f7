import { retryWhileUnavailable, sendCommand, type Bus } from "@orch/bus";
import { StepErrorCode, type StepResultCommand, type WorkItem } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { ADAPTERS, AbortedError, MockDirective, sleep, type Adapter, type AdapterResult } from "./adapters/index.js";

/**
 * Seed 000's steps: a job's step types run in their log-only adapters, here, without a session or a
 * worktree. Every other step is a role's work and runs in a worker session (sessions/runner.ts).
 */

export interface WorkerOptions {
  bus: Bus;
  logger: Logger;
  /** Aborted when the hub stops: in-flight steps give up and are redelivered elsewhere. */
  signal: AbortSignal;
}

/** Whether a work item is for an adapter (seed 000) rather than a role's executor. */
export function isAdapterStep(item: WorkItem): boolean {
  return item.definition.id === "job" || ADAPTERS[item.type] !== undefined;
}

/** Runs one dispatched adapter step and reports its result to the core (idempotent by attempt id). */
export async function runStep(item: WorkItem, opts: WorkerOptions, correlationId?: string): Promise<void> {
  const log = opts.logger.child({ runId: item.runId, attemptId: item.attemptId, stepType: item.type, ...(correlationId ? { correlationId } : {}) });
  const startedAt = Date.now();
  const result = await execute(item, log, opts.signal);
  await reportStepResult(opts.bus, item, result, startedAt, correlationId);
  log.info({ ok: result.ok, ms: Date.now() - startedAt }, "step finished");
}

/** Sends a step's result to the core (its command id is the attempt's, so a repeat is applied once). */
export async function reportStepResult(bus: Bus, item: WorkItem, result: AdapterResult, startedAt: number, correlationId?: string): Promise<void> {
  const cmd: StepResultCommand = {
    type: "step.result",
    commandId: `result:${item.attemptId}`,
    runId: item.runId,
    issuedAt: Date.now(),
    actor: "agent-hub",
    stepId: item.stepId,
    attemptId: item.attemptId,
    kind: item.kind,
    ok: result.ok,
    notes: result.notes,
    startedAt,
    finishedAt: Date.now(),
  };
  if (result.output !== undefined) cmd.output = result.output;
  if (result.error) cmd.error = result.error;
  if (result.usage) cmd.usage = { ...result.usage, wallMs: result.usage.wallMs || cmd.finishedAt - startedAt };
  if (result.model) cmd.model = result.model;
  // The step is done: report it even through a NATS outage, rather than run it again.
  await retryWhileUnavailable(() => sendCommand(bus, cmd, correlationId ? { correlationId } : {}), { deadlineMs: 60_000 });
}

/** A seed 000 step type's adapter; an unknown type fails the step for good. */
function runnerFor(item: WorkItem): Adapter | { unknown: string } {
  return ADAPTERS[item.type] ?? { unknown: `unknown step type '${item.type}': expected one of ${Object.keys(ADAPTERS).join(", ")}` };
}

export async function execute(item: WorkItem, log: Logger, signal: AbortSignal): Promise<AdapterResult> {
  const runner = runnerFor(item);
  if (!(typeof runner === "function")) {
    return { ok: false, notes: [], error: { code: StepErrorCode.UnknownStepType, message: runner.unknown, retryable: false } };
  }
  if (item.mode === "mock" && item.payload?.mock !== undefined) {
    const d = MockDirective.safeParse(item.payload.mock);
    if (!d.success) {
      const issues = d.error.issues.map((i) => `${i.path.join(".") || "mock"}: ${i.message}`).join("; ");
      return { ok: false, notes: [], error: { code: StepErrorCode.AdapterError, message: `invalid payload.mock: ${issues}`, retryable: false } };
    }
    const m = d.data;
    if (m.delayMs) await sleep(m.delayMs, signal);
    // Attempts count from 1 and never repeat within a run: the first failTimes of them fail.
    if (m.failTimes !== undefined && item.attempt <= m.failTimes) {
      const message = m.error ?? `mock failure ${item.attempt} of ${m.failTimes}`;
      log.warn({ attempt: item.attempt }, message);
      return { ok: false, notes: [message], error: { code: StepErrorCode.MockFailure, message, retryable: m.retryable ?? true } };
    }
  }
  try {
    return await runner({ item, logger: log, signal });
  } catch (err) {
    if (err instanceof AbortedError) throw err;
    return { ok: false, notes: [], error: { code: StepErrorCode.AdapterError, message: (err as Error).message ?? String(err), retryable: true } };
  }
}
