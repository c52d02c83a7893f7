import { z } from "zod";
import { ProjectForge, ProjectMerge } from "./forges.js";
import { WorkKind } from "./vocabulary.js";

/**
 * Worker sessions: one per step attempt that an executor (stub, local LLM, coding-agent harness)
 * runs in its own git worktree. The agent hub owns them; each is a record in the `sessions` bucket
 * (its lifecycle machine's snapshot, written with compare-and-set) and a stream of session events on
 * `<p>.sess.<projectId>.<runId>.<sessionId>.<type…>` (stream `<P>_SESS`): lifecycle changes, the
 * agent's token deltas and messages, tool calls and their results, file edits, usage, commits.
 */

const Id = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "must be [A-Za-z0-9_-], 1-128 chars");
const Millis = z.int().nonnegative();

export const SESSION_STATUSES = ["created", "starting", "running", "waiting_input", "completed", "failed", "cancelled", "timed_out"] as const;
export const SessionStatus = z.enum(SESSION_STATUSES);
export type SessionStatus = z.infer<typeof SessionStatus>;
export const FINAL_SESSION_STATUSES: ReadonlySet<SessionStatus> = new Set(["completed", "failed", "cancelled", "timed_out"]);

/** Session event types. Lifecycle changes are `session.<status>`; what the agent does is `agent.*`. */
export const SessionEventType = {
  /** A lifecycle change: `data {from, to, reason?, error?}`; the subject's type is `session.<to>`. */
  Status: "session.status",
  /** A piece of the agent's text as it streams: `data {text, channel?: "reasoning"}`. */
  Delta: "agent.delta",
  /** A whole message of the agent: `data {role, text}`. */
  Message: "agent.message",
  /** The agent asked for a tool: `data {callId, name, args}`. */
  ToolCall: "agent.tool_call",
  /** A tool's outcome: `data {callId, name, ok, output?, error?, refused?}` (output capped). */
  ToolResult: "agent.tool_result",
  /** A file the agent created, changed or deleted: `data {path, change: "add" | "modify" | "delete"}`. */
  FileEdit: "agent.file_edit",
  /** Token usage reported by the model or harness: `data {tokensIn, tokensOut, costUsd?, model?}`. */
  Usage: "agent.usage",
  /** A commit the hub made in the session's worktree: `data {sha, branch, files, message}`. */
  Commit: "agent.commit",
  /** A log line of the executor: `data {level, msg}`. */
  Log: "agent.log",
  /** A harness's event as the CLI printed it (only with raw event logging on): `data {provider, event}`. */
  Raw: "agent.raw",
} as const;
export type SessionEventType = (typeof SessionEventType)[keyof typeof SessionEventType];

/** What an executor emits; the hub adds the ids, sequence and time. */
export interface SessionEventInput {
  type: Exclude<SessionEventType, "session.status">;
  data: Record<string, unknown>;
}

export const SessionEvent = z.object({
  sessionId: Id,
  runId: Id,
  projectId: Id,
  stepId: z.string().min(1).max(64),
  attemptId: z.string().min(1).max(300),
  /** Gapless per session, from 1. */
  seq: z.int().min(1),
  type: z.string().min(1).max(100),
  at: Millis,
  data: z.record(z.string(), z.unknown()),
});
export type SessionEvent = z.infer<typeof SessionEvent>;

export const SessionWorktree = z.object({
  /** The project's repository (its main checkout). */
  repo: z.string().min(1),
  /** The session's worktree. */
  path: z.string().min(1),
  /** The session's own branch, created from `base`. */
  branch: z.string().min(1),
  /** What the branch started from (a commit sha). */
  base: z.string().min(1),
  /** The run's branch, which the session's commits are integrated into when it succeeds. */
  runBranch: z.string().min(1),
});
export type SessionWorktree = z.infer<typeof SessionWorktree>;

export const SessionUsage = z.object({
  tokensIn: z.int().nonnegative(),
  tokensOut: z.int().nonnegative(),
  costUsd: z.number().nonnegative(),
  wallMs: z.int().nonnegative(),
});

/** The session record (bucket `sessions`, key = session id). */
export const SessionRecord = z.object({
  v: z.literal(1),
  sessionId: Id,
  runId: Id,
  projectId: Id,
  stepId: z.string().min(1).max(64),
  attemptId: z.string().min(1).max(300),
  attempt: z.int().nonnegative(),
  kind: WorkKind,
  role: z.string().min(1).max(64),
  type: z.string().min(1).max(200),
  /** The executor that runs it (`stub`, `local`, `codex`, `claude`, `opencode`). */
  executor: z.string().min(1).max(64),
  model: z.string().max(200).optional(),
  /** The agent hub instance that owns it. */
  hub: z.string().min(1).max(64),
  /** The owning hub's process (`<pid>:<start time>`), so a restarted hub knows its predecessor's sessions are orphans. */
  hubProcess: z.string().max(64).optional(),
  /** When the owning hub last showed it is alive (every heartbeat tick, whatever the agent does). */
  hubSeenAt: Millis.optional(),
  status: SessionStatus,
  /** The lifecycle machine's persisted snapshot. */
  snapshot: z.record(z.string(), z.unknown()),
  /** The child process, for harness sessions: its pid is also its process group. */
  pid: z.int().positive().optional(),
  /** The process's start time (`/proc/<pid>/stat` field 22), so a reused pid is never killed. */
  pidStart: z.string().max(32).optional(),
  worktree: SessionWorktree.optional(),
  createdAt: Millis,
  startedAt: Millis.optional(),
  heartbeatAt: Millis,
  /** No heartbeat by then and the session is timed out. */
  deadlineAt: Millis,
  finishedAt: Millis.optional(),
  error: z.object({ code: z.string(), message: z.string(), retryable: z.boolean() }).optional(),
  /** The step result the hub reported (kept so a redelivered step is answered without running again). */
  result: z
    .object({
      ok: z.boolean(),
      summary: z.string().max(10_000).optional(),
      notes: z.array(z.string().max(10_000)).max(1_000),
      output: z.unknown().optional(),
      commit: z.string().max(64).optional(),
    })
    .optional(),
  usage: SessionUsage.optional(),
  /** The last session event's sequence. */
  seq: z.int().nonnegative(),
});
export type SessionRecord = z.infer<typeof SessionRecord>;

/**
 * What a model answers when structured output is asked for (`ORCH_LLM_RESPONSE_FORMAT=structured-json`):
 * the step's outcome, a summary, and what the step produces. A planning step lists the steps to add
 * in `output.steps`; a QA step passes or fails with `status`.
 */
export const AgentResponseSchema = z.object({
  status: z.enum(["completed", "failed", "needs_input"]).default("completed"),
  summary: z.string().min(1).max(10_000),
  notes: z.array(z.string().max(10_000)).max(100).default([]),
  /** Files the agent wrote, relative to the worktree. */
  files: z.array(z.string().max(1_000)).max(1_000).default([]),
  output: z.record(z.string(), z.unknown()).optional(),
  /** Why it failed or what it needs, when `status` is not `completed`. */
  reason: z.string().max(10_000).optional(),
});
export type AgentResponse = z.infer<typeof AgentResponseSchema>;

/** A project: where its repository is. Bucket `projects`, key = project id. */
export const ProjectRecord = z.object({
  id: Id,
  name: z.string().min(1).max(200),
  /** A local checkout the agent hub can reach. */
  localPath: z.string().max(4_096).optional(),
  /** Cloned into the workspace when there is no local path. */
  gitUrl: z.string().max(4_096).optional(),
  /** What run branches start from (the repository's current branch when unset). */
  baseBranch: z.string().max(255).optional(),
  /** The CI that reports on its branches (`github`, `gitlab`, …). */
  ciProvider: z.string().max(64).optional(),
  /**
   * Where its repository is hosted: set on the project, or derived by the core from `gitUrl`
   * (github.com, gitlab.com, the hosts of `ORCH_FORGE_HOSTS`; else the host with `ciProvider` as the
   * provider). A run gets its project's forge at its creation.
   */
  forge: ProjectForge.optional(),
  /** `set`: given on the project; `derived`: the core derived it from `gitUrl` (and derives it again when that changes). */
  forgeSource: z.enum(["set", "derived"]).optional(),
  /** Whether the system merges its runs' pull requests, how, through the merge queue or not. */
  merge: ProjectMerge.optional(),
  /** Model per role for its runs (seed 004's `default_models`). */
  defaultModels: z.record(z.string().max(64), z.string().max(200)).optional(),
  /**
   * SHA-256 (hex) of the project's own API token (`X-Project-Token`). The token itself is never
   * stored or returned.
   */
  tokenSha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  /** A seed surface's own id for it (seed 004's integer id). */
  alias: z.string().max(64).optional(),
  createdAt: Millis,
  updatedAt: Millis,
});
export type ProjectRecord = z.infer<typeof ProjectRecord>;

/** An agent hub's answer to `<p>.q.agents.ready`: whether the executors it routes to can work. */
export const AgentReadiness = z.object({
  ok: z.boolean(),
  hub: z.string(),
  executors: z.array(z.object({ name: z.string(), ok: z.boolean(), detail: z.string() })),
});
export type AgentReadiness = z.infer<typeof AgentReadiness>;

/** A request to cancel a running session (`<p>.ctl.session.cancel`, answered by the hub that owns it). */
export const SessionCancelRequest = z.object({
  sessionId: Id,
  actor: z.string().max(200).optional(),
  reason: z.string().max(2_000).optional(),
});
export type SessionCancelRequest = z.infer<typeof SessionCancelRequest>;
