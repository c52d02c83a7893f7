/**
 * The parts of the gateway's `/api/v1` answers `orch` reads (docs/http-api.md). Loose on purpose:
 * a newer gateway may add fields, and the CLI prints what it does not know as it came (`--json`).
 */

export interface StepJson {
  id: string;
  index: number;
  status: string;
  role: string;
  type: string;
  title?: string;
  stage: string;
  attempt: number;
  retries: number;
  reworks: number;
  revision?: string;
  error?: string;
  startedAt?: string;
  finishedAt?: string;
}

export interface RunSummaryJson {
  id: string;
  projectId: string;
  definition: { id: string; version: number };
  view: string;
  title?: string;
  labels: Record<string, string>;
  status: string;
  stage?: string;
  createdAt: string;
  updatedAt: string;
  startedAt?: string;
  finishedAt?: string;
  error?: string;
}

export interface RunJson extends RunSummaryJson {
  input?: unknown;
  steps: StepJson[];
  facts?: Record<string, unknown>;
  usage?: Record<string, unknown>;
  gate?: string;
}

export interface ListJson<T> {
  items: T[];
  total: number;
  nextCursor?: string;
}

export interface SessionJson {
  id: string;
  runId: string;
  stepId: string;
  attempt: number;
  role: string;
  executor: string;
  model?: string;
  status: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  heartbeatAt?: string;
  error?: { code?: string; message?: string };
  usage?: { tokensIn?: number; tokensOut?: number; costUsd?: number; wallMs?: number };
}

export interface RunEventJson {
  id: number;
  runId: string;
  seq: number;
  type: string;
  at: string;
  data?: Record<string, unknown>;
}

export interface SessionEventJson {
  id: number;
  sessionId: string;
  stepId: string;
  seq: number;
  type: string;
  at: string;
  data: Record<string, unknown>;
}

export const FINAL_RUN_STATUSES: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);
export const FINAL_SESSION_STATUSES: ReadonlySet<string> = new Set(["completed", "failed", "cancelled", "timed_out"]);

/** `GET /api/v1/runs/{id}/steps/{stepId}/diff`. */
export interface StepDiffJson {
  stepId: string;
  attempt: number;
  commits: {
    sha: string;
    message: string;
    branch: string;
    files: { path: string; change: "add" | "modify" | "delete"; additions: number; deletions: number; binary?: boolean; patch: string; truncated?: boolean }[];
    truncated?: boolean;
  }[];
  truncated: boolean;
}

/** A schedule (`GET /api/v1/schedules`): a run of the `schedule` built-in and its section. */
export interface ScheduleJson {
  id: string;
  status: string;
  title?: string;
  schedule?: {
    spec: { cron?: string; timezone?: string; everyMs?: number; creates?: { definition?: { id?: string } } };
    nextAt?: string;
    fired: number;
    skipped: number;
  };
}
