import { pino, type Logger, type LoggerOptions } from "pino";

export type { Logger } from "pino";

/**
 * Paths pino blanks before a line is written. Tokens, keys and secrets never reach a log, whatever
 * object they travel in; add a path here rather than trusting call sites to leave them out.
 */
export const REDACT_PATHS = [
  "token",
  "*.token",
  "apiKey",
  "*.apiKey",
  "api_key",
  "*.api_key",
  "password",
  "*.password",
  "secret",
  "*.secret",
  "secrets",
  "*.secrets",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "req.headers.authorization",
  'req.headers["x-project-token"]',
  'req.headers["x-hub-signature-256"]',
  'req.headers["x-gitlab-token"]',
  "req.headers.cookie",
  'res.headers["set-cookie"]',
];

export interface LoggerConfig {
  service: string;
  level?: string;
  /** Extra bindings on every line (instance id, version). */
  base?: Record<string, unknown>;
}

/** One JSON logger per process, bound to its service; children add run, step and request ids. */
export function createLogger(cfg: LoggerConfig, destination?: NodeJS.WritableStream): Logger {
  const opts: LoggerOptions = {
    level: cfg.level ?? process.env.ORCH_LOG_LEVEL ?? "info",
    base: { service: cfg.service, pid: process.pid, ...cfg.base },
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination ? pino(opts, destination as never) : pino(opts);
}

export type LogFormat = "json" | "pretty";

/**
 * How the dev runner prints logs: `ORCH_LOG_FORMAT` (`json` or `pretty`), else seed 004's
 * `TASKSGODZILLA_LOG_JSON` (`true`: json, `false`: pretty), else pretty on a terminal and json
 * otherwise. The services themselves always write JSON lines. Throws on a value it does not know,
 * so a typo is not silently the default.
 */
export function logFormat(env: Record<string, string | undefined>, isTTY: boolean): LogFormat {
  const ours = env.ORCH_LOG_FORMAT?.trim().toLowerCase();
  if (ours) {
    if (ours === "json" || ours === "pretty") return ours;
    throw new Error(`ORCH_LOG_FORMAT: must be json or pretty, not ${JSON.stringify(env.ORCH_LOG_FORMAT)}`);
  }
  const seed = env.TASKSGODZILLA_LOG_JSON?.trim().toLowerCase();
  if (seed) {
    if (["true", "1", "yes", "on"].includes(seed)) return "json";
    if (["false", "0", "no", "off"].includes(seed)) return "pretty";
    throw new Error(`TASKSGODZILLA_LOG_JSON: must be true or false, not ${JSON.stringify(env.TASKSGODZILLA_LOG_JSON)}`);
  }
  return isTTY ? "pretty" : "json";
}
