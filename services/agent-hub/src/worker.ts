import { retryWhileUnavailable, sendCommand, type Bus } from "@orch/bus";
import { StepErrorCode, type StepResultCommand, type WorkItem } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { ADAPTERS, AbortedError, MockDirective, sleep, type AdapterResult } from "./adapters/index.js";

export interface WorkerOptions {
  bus: Bus;
  logger: Logger;
  /** Aborted when the hub stops: in-flight steps give up and are redelivered elsewhere. */
  signal: AbortSignal;
}

/** Runs one dispatched step and reports its result to the core (idempotent by attempt id). */
export async function runStep(item: WorkItem, opts: WorkerOptions, correlationId?: string): Promise<void> {
  const log = opts.logger.child({ runId: item.runId, attemptId: item.attemptId, stepType: item.step.type, ...(correlationId ? { correlationId } : {}) });
  const startedAt = Date.now();
  const result = await execute(item, log, opts.signal);
  const cmd: StepResultCommand = {
    type: "step.result",
    commandId: `result:${item.attemptId}`,
    runId: item.runId,
    issuedAt: Date.now(),
    actor: "agent-hub",
    attemptId: item.attemptId,
    index: item.index,
    ok: result.ok,
    notes: result.notes,
    startedAt,
    finishedAt: Date.now(),
  };
  if (result.output !== undefined) cmd.output = result.output;
  if (result.error) cmd.error = result.error;
  // The step is done: report it even through a NATS outage, rather than run it again.
  await retryWhileUnavailable(() => sendCommand(opts.bus, cmd, correlationId ? { correlationId } : {}), { deadlineMs: 60_000 });
  log.info({ ok: result.ok, ms: cmd.finishedAt - startedAt }, "step finished");
}

export async function execute(item: WorkItem, log: Logger, signal: AbortSignal): Promise<AdapterResult> {
  const adapter = ADAPTERS[item.step.type];
  if (!adapter) {
    return {
      ok: false,
      notes: [],
      error: {
        code: StepErrorCode.UnknownStepType,
        message: `unknown step type '${item.step.type}': expected one of ${Object.keys(ADAPTERS).join(", ")}`,
        retryable: false,
      },
    };
  }
  if (item.mode === "mock" && item.step.payload?.mock !== undefined) {
    const d = MockDirective.safeParse(item.step.payload.mock);
    if (!d.success) {
      const issues = d.error.issues.map((i) => `${i.path.join(".") || "mock"}: ${i.message}`).join("; ");
      return { ok: false, notes: [], error: { code: StepErrorCode.AdapterError, message: `invalid payload.mock: ${issues}`, retryable: false } };
    }
    const m = d.data;
    if (m.delayMs) await sleep(m.delayMs, signal);
    if (m.failTimes !== undefined && item.attempt < m.failTimes) {
      const message = m.error ?? `mock failure ${item.attempt + 1} of ${m.failTimes}`;
      log.warn({ attempt: item.attempt }, message);
      return { ok: false, notes: [message], error: { code: StepErrorCode.MockFailure, message, retryable: m.retryable ?? true } };
    }
  }
  try {
    return await adapter({ item, logger: log, signal });
  } catch (err) {
    if (err instanceof AbortedError) throw err;
    return { ok: false, notes: [], error: { code: StepErrorCode.AdapterError, message: (err as Error).message ?? String(err), retryable: true } };
  }
}
