export * from "./conditions.js";
export * from "./definition.js";
export * from "./hash.js";
export * from "./ledger.js";
export * from "./types.js";
export {
  stepMachine,
  attemptIdOf,
  retryTimerId,
  timeoutTimerId,
  approvalTimerId,
  STEP_STATUSES,
  type StepStatus,
  type StepContext,
  type StepEvent,
  type Decision,
} from "./step-machine.js";
export {
  runMachineFor,
  runStatusOf,
  stageOfValue,
  RUN_STATUSES,
  FINAL_RUN_STATUSES,
  type RunStatus,
  type RunContext,
  type RunEvent,
  type Gate,
} from "./run-machine.js";
export * from "./kernel.js";
export * from "./builtins.js";
export * from "./describe.js";
export * from "./session-machine.js";
