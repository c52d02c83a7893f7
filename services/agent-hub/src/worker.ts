import { retryWhileUnavailable, sendCommand, type Bus } from "@orch/bus";
import { StepErrorCode, type StepResultCommand, type WorkItem } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { ADAPTERS, AbortedError, MockDirective, sleep, type Adapter, type AdapterResult } from "./adapters/index.js";
import { stubExecutor } from "./executors/stub.js";

/** Step types no adapter knows go to the role's executor; `stub` is the offline one. */
const EXECUTORS: Readonly<Record<string, Adapter>> = Object.freeze({ stub: stubExecutor });

export interface WorkerOptions {
  bus: Bus;
  logger: Logger;
  /** The executor for role steps (`stub`). */
  executor: string;
  /** Aborted when the hub stops: in-flight steps give up and are redelivered elsewhere. */
  signal: AbortSignal;
}

/** Runs one dispatched step and reports its result to the core (idempotent by attempt id). */
export async function runStep(item: WorkItem, opts: WorkerOptions, correlationId?: string): Promise<void> {
  const log = opts.logger.child({ runId: item.runId, attemptId: item.attemptId, stepType: item.type, ...(correlationId ? { correlationId } : {}) });
  const startedAt = Date.now();
  const result = await execute(item, log, opts.signal, opts.executor);
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
  await retryWhileUnavailable(() => sendCommand(opts.bus, cmd, correlationId ? { correlationId } : {}), { deadlineMs: 60_000 });
  log.info({ ok: result.ok, ms: cmd.finishedAt - startedAt }, "step finished");
}

/**
 * Seed 000's step types run in their adapters. Any other work of a role step (`agent`, `speckit.*`,
 * QA, planning) goes to the configured executor; a job (seed 000) step of an unknown type fails.
 */
function runnerFor(item: WorkItem, executor: string): Adapter | { unknown: string } {
  const adapter = ADAPTERS[item.type];
  if (adapter) return adapter;
  if (item.definition.id === "job") {
    return { unknown: `unknown step type '${item.type}': expected one of ${Object.keys(ADAPTERS).join(", ")}` };
  }
  return EXECUTORS[executor] ?? { unknown: `no executor '${executor}' for role ${item.role}` };
}

export async function execute(item: WorkItem, log: Logger, signal: AbortSignal, executor = "stub"): Promise<AdapterResult> {
  const runner = runnerFor(item, executor);
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
