/**
 * Why a model call failed. `transient` failures (the server unreachable, a 5xx, a 429, a timeout, a
 * stream cut short) may succeed on a later attempt, so `LOCAL_LLM_ERROR_MODE=throw` makes them
 * retryable step errors; anything else (a 401, an unknown model, an unusable answer) would fail the
 * same way again.
 */
export const LlmFailure = {
  Connect: "connect",
  Status: "status",
  Timeout: "timeout",
  Stream: "stream",
  Protocol: "protocol",
} as const;
export type LlmFailure = (typeof LlmFailure)[keyof typeof LlmFailure];

export class LlmError extends Error {
  override readonly name = "LlmError";
  readonly code = "LLM_ERROR";
  /** The HTTP status, when the server answered with an error. */
  readonly status: number | undefined;
  constructor(
    message: string,
    readonly failure: LlmFailure,
    readonly transient: boolean,
    opts: { status?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.status = opts.status;
  }
}
