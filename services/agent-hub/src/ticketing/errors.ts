import { TRACKER_TOKEN_ENV, type TicketingProviderId } from "@orch/contracts";

/**
 * Failures of tracker I/O: one class per failure mode, each with a stable `code` and the
 * `retryable` verdict the core's intake policy reads (a missing key or an unknown state will not
 * change by itself; a tracker that is down, slow or rate limiting may). Messages never carry a key.
 */

export const TrackerErrorCode = {
  TokenMissing: "TRACKER_TOKEN_MISSING",
  Api: "TRACKER_ERROR",
  UnknownState: "TRACKER_UNKNOWN_STATE",
  NotFound: "TRACKER_NOT_FOUND",
  BadRequest: "TRACKER_BAD_REQUEST",
} as const;
export type TrackerErrorCode = (typeof TrackerErrorCode)[keyof typeof TrackerErrorCode];

/** None of a tracker's key variables is set. */
export class TrackerTokenMissingError extends Error {
  override readonly name = "TrackerTokenMissingError";
  readonly code = TrackerErrorCode.TokenMissing;
  readonly retryable = false;
  constructor(readonly provider: TicketingProviderId) {
    super(`no key for ${provider}: set ${TRACKER_TOKEN_ENV[provider].join(" or ")} in the agent hub's environment`);
  }
}

/** The tracker answered with an error (or could not be reached, or timed out: `status` undefined). */
export class TrackerApiError extends Error {
  override readonly name = "TrackerApiError";
  readonly code = TrackerErrorCode.Api;
  readonly retryable: boolean;
  constructor(
    readonly operation: string,
    readonly trackerMessage: string,
    readonly status?: number,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(`${operation}: ${trackerMessage}${status ? ` (HTTP ${status})` : ""}`, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.retryable = options?.retryable ?? (status === undefined || status === 408 || status === 429 || status >= 500);
  }
}

/** The state a ticket should move to is not one of its team's (or workflow's) states. */
export class TrackerUnknownStateError extends Error {
  override readonly name = "TrackerUnknownStateError";
  readonly code = TrackerErrorCode.UnknownState;
  readonly retryable = false;
  constructor(
    readonly state: string,
    readonly known: readonly string[],
  ) {
    super(`no state named "${state}" for this ticket (its states: ${known.join(", ") || "none"}): fix workflow_state_map`);
  }
}

/** The ticket is not there (deleted, or the key cannot see it). */
export class TrackerNotFoundError extends Error {
  override readonly name = "TrackerNotFoundError";
  readonly code = TrackerErrorCode.NotFound;
  readonly retryable = false;
  constructor(readonly what: string) {
    super(`${what} not found`);
  }
}

/** A query or ticket the tracker cannot be asked about as it is (no repository, nothing selecting the issues). */
export class TrackerRequestError extends Error {
  override readonly name = "TrackerRequestError";
  readonly code = TrackerErrorCode.BadRequest;
  readonly retryable = false;
}

/** A signal for one call: the caller's, and the call's own time limit. */
export function callSignal(timeoutMs: number, signal?: AbortSignal): AbortSignal {
  const t = AbortSignal.timeout(timeoutMs);
  return signal ? AbortSignal.any([signal, t]) : t;
}
