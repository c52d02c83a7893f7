import { StepErrorCode, type ForgeProvider } from "@orch/contracts";

/**
 * Failures of forge I/O: one class per failure mode, each with the step error `code` and the
 * `retryable` verdict the hub reports (a missing token or a refused request will not change by
 * itself; a host that is down or rate limiting may). Messages never carry a token: they are built
 * from the host's own message, passed through the provider's redactor.
 */

/** None of a forge's token variables is set. */
export class ForgeTokenMissingError extends Error {
  override readonly name = "ForgeTokenMissingError";
  readonly code = StepErrorCode.ForgeTokenMissing;
  readonly retryable = false;
  constructor(
    readonly provider: ForgeProvider,
    readonly variables: readonly string[],
  ) {
    super(`no ${provider === "github" ? "GitHub" : "GitLab"} token: set ${variables.join(" or ")} in the agent hub's environment`);
  }
}

/** The host answered an API call with an error status (or could not be reached: `status` undefined). */
export class ForgeApiError extends Error {
  override readonly name = "ForgeApiError";
  readonly code = StepErrorCode.ForgeError;
  readonly retryable: boolean;
  constructor(
    readonly operation: string,
    /** What the host said (already redacted). */
    readonly hostMessage: string,
    readonly status?: number,
  ) {
    super(`${operation}: ${hostMessage}${status ? ` (HTTP ${status})` : ""}`);
    // Unreachable, timed out, rate limited or failing on its side: later may work.
    this.retryable = status === undefined || status === 408 || status === 429 || status >= 500;
  }
}

/** The `gh` CLI could not be started, timed out, or printed what we cannot read. */
export class ForgeCliError extends Error {
  override readonly name = "ForgeCliError";
  readonly code = StepErrorCode.ForgeError;
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** A forge step's payload the hub cannot act on (a bad repository, a missing branch). */
export class ForgeRequestError extends Error {
  override readonly name = "ForgeRequestError";
  readonly code = StepErrorCode.ForgeError;
  readonly retryable = false;
}

/** The run's branch could not be pushed. */
export class PushFailedError extends Error {
  override readonly name = "PushFailedError";
  readonly code = StepErrorCode.PushFailed;
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export type ForgeError = ForgeTokenMissingError | ForgeApiError | ForgeCliError | ForgeRequestError | PushFailedError;
