import type { SessionEventInput, StepError, WorkItem } from "@orch/contracts";
import type { Logger } from "@orch/logging";

/**
 * An executor does a role step's work in a worker session: the stub (offline), the local LLM
 * executor, or a coding-agent harness. An agent is a thin wrapper that routes a role to one of them
 * (seed 001's RoutedAgentExecutor). The session runner around an executor owns everything else:
 * the session record and its lifecycle, the git worktree (created before, committed and integrated
 * after, cleaned up), heartbeats, cancellation, concurrency limits and the step result.
 */

/** The step's git worktree, on its own branch. The executor works only inside `path`. */
export interface Worktree {
  /** Absolute path of the worktree (the agent's working directory). */
  path: string;
  /** The session's branch (checked out in `path`). */
  branch: string;
  /** The commit the branch started from. */
  base: string;
  /** The project's repository (main checkout). */
  repo: string;
}

export interface SessionContext {
  /** The step attempt being run. */
  item: WorkItem;
  sessionId: string;
  worktree: Worktree;
  /** The model to use: the step's, else the role's, else the executor's default. */
  model?: string;
  /** Aborted on cancel, timeout or shutdown. Executors stop promptly and kill what they spawned. */
  signal: AbortSignal;
  logger: Logger;
  /** Publishes a session event (token deltas, messages, tool calls, file edits, usage, logs). */
  emit(event: SessionEventInput): void;
  /** Proof of life; the runner also beats on its own while the executor's promise is pending. */
  heartbeat(): void;
  /**
   * Reports the child process the executor started (harnesses), so that a hub restarted after a
   * crash can kill it. Pass the pid of a process started with `detached: true` (its own group).
   */
  registerProcess(pid: number): void;
}

export interface ExecutorUsage {
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
}

export interface ExecutorResult {
  ok: boolean;
  /** One line on what was done (or why not). */
  summary: string;
  notes: string[];
  /**
   * The step's structured output. A `plan` step lists steps to add in `output.steps`; a `qa` step's
   * verdict is `ok`. Recorded as the step's output (what later steps consume as inputs).
   */
  output?: Record<string, unknown>;
  error?: StepError;
  usage?: ExecutorUsage;
  /** The model that answered. */
  model?: string;
  /**
   * A commit message for what the executor left in the worktree (uncommitted changes are committed
   * by the runner after the executor returns; the executor may commit itself as well).
   */
  commitMessage?: string;
}

export interface ReadinessCheck {
  ok: boolean;
  detail: string;
}

export interface Executor {
  /** The routing name: `stub`, `local`, `codex`, `claude`, `opencode`. */
  readonly name: string;
  /** The model provider it talks to, for per-provider concurrency (`stub`, `ollama`, `openai`, `codex`, …). */
  readonly provider: string;
  run(ctx: SessionContext): Promise<ExecutorResult>;
  /** Whether its backend answers (the LLM endpoint, the CLI binary). */
  check?(signal?: AbortSignal): Promise<ReadinessCheck>;
}

/** Raised inside an executor when the session's signal aborted; the runner knows why. */
export class SessionAbortedError extends Error {
  override readonly name = "SessionAbortedError";
  readonly code = "ABORTED";
}
