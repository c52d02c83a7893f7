/**
 * `orch`'s exit codes, one per way a command can end, and the one error class that carries them.
 * docs/cli.md and `orch --help` list the same table.
 */
export const ExitCode = {
  Ok: 0,
  /** `orch watch`: the run failed or was cancelled. */
  RunFailed: 1,
  /** A bad command line (unknown option or value, missing argument), or a request the server found invalid (400). */
  Usage: 2,
  /** The gateway could not be reached (connection refused, DNS, timeout). */
  Unreachable: 3,
  /** The token is missing or wrong (401), or does not open this (403). */
  Auth: 4,
  /** No such run, step, session or route (404). */
  NotFound: 5,
  /** The server refused the action in the run's state (409, 422): its reason is printed. */
  Refused: 6,
  /** The server failed or is unavailable (5xx, 429, an answer that is not what the API says). */
  Server: 7,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODE_HELP = `Exit codes:
  0  ok
  1  the watched run failed or was cancelled (orch watch, orch submit --watch)
  2  usage error: bad option or value, or a request the server found invalid (400)
  3  the gateway cannot be reached (ORCH_URL, --url)
  4  bad or missing token (401, 403 FORBIDDEN: ORCH_API_TOKEN, --token)
  5  unknown run, step, session or resource (404)
  6  refused action (409, 422, other 403s): the server's reason is printed
  7  server error or unavailable (5xx, 429)`;

/** The server's error body, `{error: {code, message, details?}}`, when it sent one. */
export interface ServerError {
  code: string;
  message: string;
  details?: unknown;
}

export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    readonly server?: ServerError,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const usage = (message: string): CliError => new CliError(ExitCode.Usage, message);

/**
 * The exit code an HTTP status means. A 403 is the token's only when the server says so
 * (`FORBIDDEN`); another 403 is a refusal (the supervisor's `LLM_POLICY_REFUSED`).
 */
export function exitCodeOf(status: number, code?: string): ExitCode {
  if (status === 400 || status === 413 || status === 414 || status === 415) return ExitCode.Usage;
  if (status === 401 || (status === 403 && (code === undefined || code === "FORBIDDEN"))) return ExitCode.Auth;
  if (status === 403) return ExitCode.Refused;
  if (status === 404) return ExitCode.NotFound;
  if (status === 409 || status === 422) return ExitCode.Refused;
  return ExitCode.Server;
}
