export { RunsApi, RefusedError, PendingError, type AcceptedRun, type CreateRunInput, type Actor, type RunsApiOptions } from "./api.js";
export {
  DefinitionStore,
  DefinitionNotFoundError,
  DefinitionConflictError,
  definitionKvKey,
  definitionSummaryOf,
  type DefinitionSummary,
} from "./definitions.js";
export { CoreWrites, WriteRefusedError, type ProjectWritten } from "./core-writes.js";
export { KeyStore, keyPart } from "./key-store.js";
export { Numbers, numberNs, keyOfNumberNs } from "./numbers.js";
export { runNumberOf, runOfNumber, stepNumber, splitStepNumber } from "./run-numbers.js";
export * from "./queues.js";
export * from "./jobs.js";
export * from "./tasks.js";
export { SupervisorAnswer, SupervisorError, SupervisorAbortedError, SUPERVISOR_ACCEPT_MS, type AnswerPiece } from "./supervisor.js";
export { requestStepDiff, StepDiffError, STEP_DIFF_TIMEOUT_MS } from "./diffs.js";
export {
  ScheduleRequestError,
  isScheduleRun,
  asSchedule,
  scheduleSpecOf,
  createSchedule,
  listSchedules,
  backfillSignal,
  scheduleJson,
  type ScheduleCreated,
} from "./schedules.js";
