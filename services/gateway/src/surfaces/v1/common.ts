import type { FeedEvent, StoredSessionEvent } from "@orch/bus";
import {
  IntakeView,
  MergeQueueView,
  ProjectForge,
  ProjectMerge,
  PullRequestView,
  RUN_STATUSES,
  type ProjectRecord,
  type RunSummary,
  type SessionRecord,
} from "@orch/contracts";
import type { RunsApi } from "@orch/runs";
import type { FastifyRequest } from "fastify";
import type { RunView } from "@orch/contracts";
import { z } from "zod";
import { assertProjectAccess } from "../../auth.js";
import type { Surface } from "../../context.js";
import type { RouteDefaults } from "../../routing.js";

/**
 * What every /api/v1 module shares: the JSON forms of runs, steps, events, sessions and projects
 * (camelCase, ISO timestamps, ids as `id`), list envelopes, and the project access check.
 */

export interface V1 {
  opts: Surface;
  defaults: RouteDefaults;
}

export const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;
export const IdParam = z.string().regex(TOKEN, "must match [A-Za-z0-9_-]{1,128}");

export const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());
const isoOr = <T extends Record<string, unknown>>(o: T, keys: string[]): T => {
  const out: Record<string, unknown> = { ...o };
  for (const k of keys) {
    if (typeof out[k] === "number") out[k] = iso(out[k] as number);
    else delete out[k];
  }
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out as T;
};

const Timestamp = z.iso.datetime();
const Json = z.record(z.string(), z.unknown());

// ── JSON forms ─────────────────────────────────────────────────────────────────────────────────

export const StepJson = z.object({
  id: z.string(),
  runId: z.string(),
  index: z.int().describe("Position in the run; -1 for the planning step"),
  status: z.string().describe("pending, running, retry_wait, needs_qa, qa, waiting_approval, completed, failed, blocked, skipped, cancelled"),
  role: z.string(),
  type: z.string(),
  title: z.string().optional(),
  stage: z.string(),
  attempt: z.int(),
  retries: z.int(),
  reworks: z.int(),
  iteration: z.int(),
  revision: z.string().optional().describe("The output's revision: pass it back to approve or reject exactly what you saw"),
  error: z.string().optional(),
  errorCode: z.string().optional(),
  output: z.unknown().optional(),
  usage: Json.optional(),
  startedAt: Timestamp.optional(),
  finishedAt: Timestamp.optional(),
});

export const stepJson = (runId: string, s: RunView["steps"][number]) => ({ ...isoOr({ ...s, runId } as Record<string, unknown>, ["startedAt", "finishedAt"]) });

export const RunJson = z.object({
  id: z.string(),
  projectId: z.string(),
  definition: z.object({ id: z.string(), version: z.int() }),
  view: z.string(),
  mode: z.enum(["mock", "live"]),
  title: z.string().optional(),
  labels: z.record(z.string(), z.string()),
  status: z.enum(RUN_STATUSES),
  stage: z.string().optional(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  startedAt: Timestamp.optional(),
  finishedAt: Timestamp.optional(),
  error: z.string().optional(),
  result: z.unknown().optional(),
  stepsRun: z.int(),
  seq: z.int().describe("Sequence of the run's last event"),
  input: Json,
  steps: z.array(StepJson),
  facts: Json,
  usage: Json,
  usageBy: Json,
  gate: z.string().optional().describe("Set while the run waits at a budget gate (extend_budget or abort)"),
  mergeQueue: MergeQueueView.optional().describe(
    "A run whose pull request merges through its base's merge queue: the queue (a run of view merge_queue), its state there (queued, updating onto the base, checking: CI on the updated head, merging), its position (1: its turn); a merge queue run: its base, members in order and whose turn it is",
  ),
  pullRequest: PullRequestView.optional().describe(
    "The run's pull request (GitLab: merge request), once one is opened or reported: its record, state, checks, latest review, review fix attempts and the polling fallback's latest sync (times in epoch ms)",
  ),
  intake: IntakeView.optional().describe(
    "A ticket intake run (definition ticket.intake): active, or paused by its circuit breaker (why, and until when one sync tries again); its syncs, last error, the tickets it took in, and those quarantined (times in epoch ms)",
  ),
});

/** A merge queue member's view with its position in the queue now (read from the queue's view). */
export async function withQueuePosition(runs: Pick<RunsApi, "get">, v: RunView): Promise<RunView> {
  const queue = v.mergeQueue?.queue;
  if (!queue) return v;
  const q = await runs.get(queue).catch(() => null);
  const i = q?.mergeQueue?.entries?.findIndex((e) => e.runId === v.runId) ?? -1;
  return i < 0 ? v : { ...v, mergeQueue: { ...v.mergeQueue, position: i + 1 } };
}

export function runJson(v: RunView): Record<string, unknown> {
  const { runId, planning: _planning, steps, ...rest } = v;
  return isoOr({ id: runId, ...rest, steps: steps.map((s) => stepJson(runId, s)) } as Record<string, unknown>, [
    "createdAt",
    "updatedAt",
    "startedAt",
    "finishedAt",
  ]);
}

export const RunSummaryJson = RunJson.pick({
  id: true,
  projectId: true,
  definition: true,
  view: true,
  title: true,
  labels: true,
  status: true,
  stage: true,
  createdAt: true,
  updatedAt: true,
  startedAt: true,
  finishedAt: true,
  error: true,
  seq: true,
});

export function summaryJson(s: RunSummary): Record<string, unknown> {
  const { runId, ...rest } = s;
  return isoOr({ id: runId, ...rest } as Record<string, unknown>, ["createdAt", "updatedAt", "startedAt", "finishedAt"]);
}

export const EventJson = z.object({
  id: z.int().describe("The event's position in the runs stream (its SSE `id:`, a cursor); grows with every event"),
  runId: z.string(),
  projectId: z.string(),
  seq: z.int().describe("Gapless per run, from 1"),
  type: z.string(),
  at: Timestamp,
  data: Json.optional(),
});

export const eventJson = ({ id, event }: FeedEvent) => ({
  id,
  runId: event.runId,
  projectId: event.projectId,
  seq: event.seq,
  type: event.type,
  at: iso(event.at)!,
  ...(event.data !== undefined ? { data: event.data } : {}),
});

export const SessionJson = z.object({
  id: z.string(),
  runId: z.string(),
  projectId: z.string(),
  stepId: z.string(),
  attemptId: z.string(),
  attempt: z.int(),
  kind: z.enum(["execute", "qa", "plan"]),
  role: z.string(),
  type: z.string(),
  executor: z.string(),
  model: z.string().optional(),
  hub: z.string(),
  status: z.string().describe("created, starting, running, waiting_input, completed, failed, cancelled, timed_out"),
  worktree: Json.optional(),
  createdAt: Timestamp,
  startedAt: Timestamp.optional(),
  heartbeatAt: Timestamp,
  deadlineAt: Timestamp,
  finishedAt: Timestamp.optional(),
  error: Json.optional(),
  result: Json.optional(),
  usage: Json.optional(),
  seq: z.int(),
});

export function sessionJson(s: SessionRecord): Record<string, unknown> {
  const { sessionId, snapshot: _s, pid: _p, pidStart: _ps, hubProcess: _hp, hubSeenAt: _hs, v: _v, ...rest } = s;
  return isoOr({ id: sessionId, ...rest } as Record<string, unknown>, ["createdAt", "startedAt", "heartbeatAt", "deadlineAt", "finishedAt"]);
}

export const SessionEventJson = z.object({
  id: z.int(),
  sessionId: z.string(),
  runId: z.string(),
  projectId: z.string(),
  stepId: z.string(),
  attemptId: z.string(),
  seq: z.int(),
  type: z.string(),
  at: Timestamp,
  data: Json,
});

export const sessionEventJson = ({ streamSeq, event }: StoredSessionEvent) => ({ id: streamSeq, ...event, at: iso(event.at)! });

export const ProjectJson = z.object({
  id: z.string(),
  name: z.string(),
  localPath: z.string().optional(),
  gitUrl: z.string().optional(),
  baseBranch: z.string().optional(),
  ciProvider: z.string().optional(),
  defaultModels: z.record(z.string(), z.string()).optional(),
  forge: ProjectForge.optional().describe("Where the repository is hosted: set on the project, or derived from `gitUrl` (`forgeSource`)"),
  forgeSource: z.enum(["set", "derived"]).optional(),
  merge: ProjectMerge.optional(),
  hasToken: z.boolean().describe("Whether the project has a token of its own (the token itself is never returned)"),
  alias: z.string().optional(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

export function projectJson(p: ProjectRecord): Record<string, unknown> {
  const { tokenSha256, ...rest } = p;
  return isoOr({ ...rest, hasToken: tokenSha256 !== undefined } as Record<string, unknown>, ["createdAt", "updatedAt"]);
}

/** `{ items, nextCursor?, total }` */
export const listOf = (item: z.ZodType) => z.object({ items: z.array(item), nextCursor: z.string().optional(), total: z.int() });

export const ERRORS = {
  400: { description: "Invalid request: `details.fields` lists each field and what is wrong with it" },
  401: { description: "No valid token" },
  403: { description: "The token does not open this resource" },
  404: { description: "Not found" },
} as const;

// ── access ─────────────────────────────────────────────────────────────────────────────────────

/** Checks that the request may touch the project (its own token, a project token); answers its record. */
export async function checkProject(opts: Surface, req: FastifyRequest, projectId: string): Promise<ProjectRecord | null> {
  const p = await opts.runs.getProject(projectId);
  assertProjectAccess(req, p ?? { id: projectId });
  return p;
}

/** The run, after the access check on its project (404 when there is no such run). */
export async function loadRun(opts: Surface, req: FastifyRequest, runId: string): Promise<RunView> {
  const run = await opts.runs.require(runId);
  await checkProject(opts, req, run.projectId);
  return run;
}

/** Who is acting: `X-Actor` (else `api`), with `X-Reason` or a body's `reason`. */
export function actorOf(req: FastifyRequest, reason?: string): { actor: string; reason?: string; correlationId: string; idempotencyKey?: string } {
  const h = req.headers["x-actor"];
  const r = reason ?? (typeof req.headers["x-reason"] === "string" ? req.headers["x-reason"] : undefined);
  const key = req.headers["idempotency-key"];
  return {
    actor: typeof h === "string" && h.trim() ? h.trim().slice(0, 200) : "api",
    correlationId: req.id,
    ...(r ? { reason: r.slice(0, 10_000) } : {}),
    ...(typeof key === "string" && key.length > 0 ? { idempotencyKey: key.slice(0, 200) } : {}),
  };
}

/** The project a project token is limited to, if the request carries one. */
export const tokenProject = (req: FastifyRequest): string | undefined => (req.auth?.kind === "project" ? req.auth.projectId : undefined);

/** A query value that may repeat (`?status=a&status=b`) or be a comma list (`?status=a,b`). */
export const listParam = <T extends string>(values?: readonly T[]) =>
  z
    .union([z.string(), z.array(z.string())])
    .optional()
    .transform((v, ctx) => {
      const parts = [v ?? []]
        .flat()
        .flatMap((s) => s.split(","))
        .map((s) => s.trim())
        .filter(Boolean);
      if (values) {
        for (const p of parts) {
          if (!(values as readonly string[]).includes(p)) ctx.addIssue({ code: "custom", message: `'${p}' is not one of ${values.join(", ")}` });
        }
      }
      return parts as T[];
    });
