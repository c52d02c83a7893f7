/**
 * Stable error codes. HTTP statuses are mapped from these in one table (the gateway's), gRPC
 * statuses in another (the orchestrator's); messages are for humans, codes are for programs.
 */
export const ErrorCode = {
  BadRequest: "BAD_REQUEST",
  NotFound: "NOT_FOUND",
  UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
  PayloadTooLarge: "PAYLOAD_TOO_LARGE",
  RateLimited: "RATE_LIMITED",
  /** A URL (a path segment) longer than the gateway takes. */
  UriTooLong: "URI_TOO_LONG",
  IllegalTransition: "ILLEGAL_TRANSITION",
  /** A write that lost a race or names a stale revision (an approval of an output that changed). */
  Conflict: "CONFLICT",
  Unauthorized: "UNAUTHORIZED",
  Forbidden: "FORBIDDEN",
  /** Something we depend on did not answer (the core, the event-bus, JetStream). */
  Unavailable: "UNAVAILABLE",
  /** There is no connection to NATS at all (it is down, or the process is reconnecting to it). */
  NatsUnavailable: "NATS_UNAVAILABLE",
  Internal: "INTERNAL",
  /** The LLM policy refuses the model server a request needs (`ORCH_LLM_POLICY`, `ALLOW_HOSTED_LLM`, `LOCAL_LLM_ALLOWED_HOSTS`). */
  LlmPolicyRefused: "LLM_POLICY_REFUSED",
  /** A model server failed, refused or could not be reached (the supervisor's). */
  LlmError: "LLM_ERROR",
  /** No agent hub answered a question for the supervisor in time. */
  SupervisorUnavailable: "SUPERVISOR_UNAVAILABLE",
  /** git failed on a repository an agent hub keeps (a step's diff). */
  GitError: "GIT_ERROR",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Codes a step can fail with. `retryable` travels beside the code, so a code never decides alone. */
export const StepErrorCode = {
  UnknownStepType: "UNKNOWN_STEP_TYPE",
  MockFailure: "MOCK_FAILURE",
  AdapterError: "ADAPTER_ERROR",
  Aborted: "ABORTED",
  /** The role's executor is not configured or not available on this hub. */
  NoExecutor: "NO_EXECUTOR",
  /** The LLM policy refused the endpoint (`ORCH_LLM_POLICY`, `ALLOW_HOSTED_LLM`, `LOCAL_LLM_ALLOWED_HOSTS`). */
  LlmPolicyRefused: "LLM_POLICY_REFUSED",
  /** The model server failed, timed out or answered something unusable. */
  LlmError: "LLM_ERROR",
  /** The model's answer did not match AgentResponseSchema, even after the repair attempt. */
  InvalidAgentResponse: "INVALID_AGENT_RESPONSE",
  /** The agent reported that it could not do the work. */
  AgentFailed: "AGENT_FAILED",
  /** A coding-agent CLI failed: not installed, did not start in time, exited non-zero, or reported failure. */
  HarnessError: "HARNESS_ERROR",
  /** The step's git worktree could not be prepared, committed or integrated. */
  WorkspaceError: "WORKSPACE_ERROR",
  /** The session sent no heartbeat past its deadline. */
  SessionTimedOut: "SESSION_TIMED_OUT",
  /** The session's process died with its agent hub. */
  SessionLost: "SESSION_LOST",
  /** Someone cancelled the session. */
  SessionCancelled: "SESSION_CANCELLED",
  /** None of the forge's token variables is set (FORGE_TOKEN_ENV); the message names them. */
  ForgeTokenMissing: "FORGE_TOKEN_MISSING",
  /** The forge's API or CLI failed or refused (retryable when the host may answer differently later). */
  ForgeError: "FORGE_ERROR",
  /** The run's branch could not be pushed to its origin (rejected, unreachable, not authorised). */
  PushFailed: "PUSH_FAILED",
} as const;
export type StepErrorCode = (typeof StepErrorCode)[keyof typeof StepErrorCode];

/** Base of every failure we raise on purpose: a stable `code`, optional `details`, optional `cause`. */
export class OrchError extends Error {
  override name = "OrchError";
  readonly code: ErrorCode;
  readonly details: unknown;
  constructor(code: ErrorCode, message: string, opts: { details?: unknown; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.details = opts.details;
  }
}

export class BadRequestError extends OrchError {
  override name = "BadRequestError";
  constructor(message: string, details?: unknown) {
    super(ErrorCode.BadRequest, message, { details });
  }
}

export class NotFoundError extends OrchError {
  override name = "NotFoundError";
  constructor(message: string) {
    super(ErrorCode.NotFound, message);
  }
}

export class UnavailableError extends OrchError {
  override name = "UnavailableError";
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.Unavailable, message, { cause });
  }
}

/** The body every error on our API has. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

export function errorBody(code: string, message: string, details?: unknown): ErrorBody {
  return details === undefined ? { error: { code, message } } : { error: { code, message, details } };
}
