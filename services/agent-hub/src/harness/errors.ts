import { StepErrorCode } from "@orch/contracts";

/**
 * A harness run that could not start or did not finish: not installed, misconfigured, did not
 * start in time, timed out, exited non-zero, or reported failure. `retryable` says whether running
 * the step again may help (a missing binary or a missing key will not; a crash or a timeout may).
 */
export class HarnessError extends Error {
  override readonly name = "HarnessError";
  readonly code = StepErrorCode.HarnessError;
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
