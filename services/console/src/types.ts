import type { MergeQueueView, PullRequestView, RunSummary, RunView, SessionRecord, StepView, Totals } from "@orch/contracts";

/**
 * The JSON forms `/api/v1` answers, derived from the views the core publishes (`@orch/contracts`):
 * ids as `id`, times as ISO strings (the gateway's `runJson`, `stepJson`, `sessionJson`).
 */

type Iso<T, K extends keyof T> = Omit<T, K> & { [P in K]?: string };

export type Step = Iso<StepView, "startedAt" | "finishedAt"> & { runId: string };

export type RunSummaryJson = Omit<Iso<RunSummary, "createdAt" | "updatedAt" | "startedAt" | "finishedAt">, "runId"> & {
  id: string;
  createdAt: string;
  updatedAt: string;
};

export type Run = Omit<Iso<RunView, "createdAt" | "updatedAt" | "startedAt" | "finishedAt">, "runId" | "steps" | "planning"> & {
  id: string;
  createdAt: string;
  updatedAt: string;
  steps: Step[];
  pullRequest?: PullRequestView;
  mergeQueue?: MergeQueueView;
};

export type { Totals };

export interface RunEvent {
  id: number;
  runId: string;
  projectId: string;
  seq: number;
  type: string;
  at: string;
  data?: Record<string, unknown>;
}

export type Session = Omit<
  Iso<SessionRecord, "createdAt" | "startedAt" | "heartbeatAt" | "deadlineAt" | "finishedAt">,
  "sessionId" | "snapshot" | "pid" | "pidStart" | "hubProcess" | "hubSeenAt" | "v"
> & { id: string };

export interface SessionEvent {
  id: number;
  sessionId: string;
  runId: string;
  stepId: string;
  attemptId: string;
  seq: number;
  type: string;
  at: string;
  data: Record<string, unknown>;
}

export interface Project {
  id: string;
  name: string;
  localPath?: string;
  gitUrl?: string;
  baseBranch?: string;
  ciProvider?: string;
  forge?: { provider: string; repository: string; apiUrl?: string };
  hasToken: boolean;
  alias?: string;
  createdAt: string;
  updatedAt: string;
}

export interface Definition {
  id: string;
  version: number;
  title?: string;
  view: string;
  source: string;
  hash: string;
}

export interface Approval {
  runId: string;
  projectId: string;
  definition: { id: string; version: number };
  runTitle?: string;
  step: Step;
}

export interface Queue {
  name: string;
  queued: number;
  started: number;
  finished: number;
  failed: number;
}

/** An armed timer of the scheduler (`/api/v1/timers`). */
export interface Timer {
  id: string;
  runId: string;
  kind: string;
  stepId?: string;
  dueAt: string;
  setAt: string;
}

/** A schedule (`/api/v1/schedules`): a run of the `schedule` built-in. */
export interface Schedule {
  id: string;
  projectId: string;
  title?: string;
  status: string;
  schedule?: {
    spec: { cron?: string; timezone?: string; everyMs?: number; overlap?: string; creates?: { definition?: { id?: string } } };
    nextAt?: string;
    lastAt?: string;
    active: { runId: string; scheduledAt: string }[];
    fired: number;
    skipped: number;
  };
}

export interface DeadLetter {
  id: number;
  origin: string;
  subject: string;
  reason: string;
  error: string;
  at: string;
  deliveries: number;
  stream?: string;
  streamSeq?: number;
  payload?: unknown;
}

export interface Page<T> {
  items: T[];
  nextCursor?: string;
  total: number;
}

export interface StepDiffFile {
  path: string;
  change: "add" | "modify" | "delete";
  additions: number;
  deletions: number;
  binary?: boolean;
  patch: string;
  truncated?: boolean;
}

/** `GET /api/v1/runs/{id}/steps/{stepId}/diff`. */
export interface StepDiff {
  stepId: string;
  attempt: number;
  commits: { sha: string; message: string; branch: string; files: StepDiffFile[]; truncated?: boolean }[];
  truncated: boolean;
}
