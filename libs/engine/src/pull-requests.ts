import type { CiStatus, MergeMethod, ProjectForge, ProjectMerge, PullRequestRecord, PullRequestState, ReviewComment, ReviewState } from "@orch/contracts";
import type { PullRequestPolicy } from "./definition.js";

/**
 * Pull requests, decided by the kernel: the rules a run got at its creation (its definition's
 * `pullRequests` policy, the core's settings), what the run records of its PR (from a `pr.open`
 * step's output and the signals: `pr_opened`, `pr_closed`, `pr_merged`, `ci_report`,
 * `review_report`), whether a review's fix attempt may start and what its agent is told, and the
 * title and body a `pr.open` step is given. Pure: the kernel applies these in one transition.
 *
 *   PR recorded open ──▶ poll timer armed (every pollMs; 0: never) ──fires──▶ `pr.sync` work, next timer
 *        │ review_report changes_requested ──▶ fix attempt (cap, cooldown) | refused, recorded
 *        │ approved, and the counted checks green ──▶ `pr.merge` steps may start; onReady event
 *        └─ pr_merged | pr_closed ──▶ timer withdrawn; onMerged | onClosed
 */

/** The core's settings (ORCH_PR_POLL_INTERVAL_SECS, ORCH_PUBLIC_URL), for runs created from now on. */
export interface PrDefaults {
  /** Between two looks at an open PR (the polling fallback); 0: no polling. */
  pollIntervalMs?: number;
  /** Where the API is reached from outside: a PR's body links back to the run there. */
  publicUrl?: string;
}

/** What a run knows of its project, copied at its creation (the core owns projects; a run keeps what it started with). */
export interface RunProject {
  forge?: ProjectForge;
  baseBranch?: string;
  /** The project's merge settings (they enable merging besides the definition, and their method wins). */
  merge?: ProjectMerge;
}

/** A run's pull request rules as resolved at its creation, kept in its state. */
export interface PrRules {
  pollMs: number;
  publicUrl?: string;
  draft: boolean;
  reviewFixAttempts: number;
  reviewFixCooldownMs: number;
  merge: { enabled: boolean; method: MergeMethod; queue?: boolean; update?: "rebase" | "merge" };
}

export const PR_POLICY_DEFAULTS = Object.freeze({ pollMs: 15_000, reviewFixAttempts: 0, reviewFixCooldownMs: 600_000, method: "squash" as MergeMethod });

export function resolvePrRules(policy: PullRequestPolicy | undefined, defaults: PrDefaults = {}, project: ProjectMerge = {}): PrRules {
  return {
    pollMs: defaults.pollIntervalMs ?? PR_POLICY_DEFAULTS.pollMs,
    ...(defaults.publicUrl ? { publicUrl: defaults.publicUrl.replace(/\/+$/, "") } : {}),
    draft: policy?.draft ?? false,
    reviewFixAttempts: policy?.review?.fixAttempts ?? PR_POLICY_DEFAULTS.reviewFixAttempts,
    reviewFixCooldownMs: policy?.review?.fixCooldownMs ?? PR_POLICY_DEFAULTS.reviewFixCooldownMs,
    merge: {
      enabled: policy?.merge?.enabled === true || project.enabled === true,
      method: project.method ?? policy?.merge?.method ?? PR_POLICY_DEFAULTS.method,
      ...(policy?.merge?.queue || project.queue ? { queue: true } : {}),
      ...(policy?.merge?.update ? { update: policy.merge.update } : {}),
    },
  };
}

/** One check as the run recorded it (the latest report of that name). */
export interface CheckRecord {
  status: CiStatus;
  conclusion?: string;
  url?: string;
  jobId?: number | string;
  sha?: string;
  counted: boolean;
  at: number;
}

/** What a run keeps of its pull request (in its kernel state; the view publishes it). */
export interface PrState {
  record: Partial<PullRequestRecord> & { state: PullRequestState };
  openedAt?: number;
  closedAt?: number;
  mergedAt?: number;
  mergeSha?: string;
  checks?: Record<string, CheckRecord>;
  checksAt?: number;
  review?: { state: ReviewState; reviewer?: string; sha?: string; comments: number; at: number };
  reviewFix?: { attempts: number; lastAt?: number };
  /** The armed poll timer: the n-th look, its id and when it is due. */
  poll?: { n: number; timerId: string; dueAt: number };
  sync?: { attemptId: string; at: number };
}

/** The name a report without a check name is recorded under. */
export const UNNAMED_CHECK = "ci";

/** Whether a check counts under the policy's names (`*` matches any run of characters; no names: all count). */
export function checkCounts(patterns: readonly string[] | undefined, name: string | undefined): boolean {
  if (!patterns || patterns.length === 0 || name === undefined) return true;
  return patterns.some((p) => globRegExp(p).test(name));
}

function globRegExp(p: string): RegExp {
  return new RegExp(`^${p.split("*").map(escapeRegExp).join(".*")}$`, "i");
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Whether a check reported for `sha` is about the head `head` (either may be abbreviated; unknown counts). */
export const sameCommit = (sha: string | undefined, head: string | undefined): boolean => !sha || !head || sha.startsWith(head) || head.startsWith(sha);

/**
 * The counted checks summed up: failure if one failed, pending if one is pending, success if all
 * passed; none: undefined. Given the PR's `head`, a check reported for another commit is stale: it
 * counts as pending until it reports on the head (green on an old head proves nothing about a new one).
 */
export function checksState(checks: Record<string, CheckRecord> | undefined, head?: string): CiStatus | undefined {
  const counted = Object.values(checks ?? {}).filter((c) => c.counted);
  if (counted.length === 0) return undefined;
  const status = (c: CheckRecord): CiStatus => (sameCommit(c.sha, head) ? c.status : "pending");
  if (counted.some((c) => status(c) === "failure")) return "failure";
  if (counted.some((c) => status(c) === "pending")) return "pending";
  return "success";
}

/** Whether the PR is open, approved and green: what merging it waits for. */
export function readyToMerge(pr: PrState | undefined): boolean {
  return pr?.record.state === "open" && pr.review?.state === "approved" && checksState(pr.checks, pr.record.headSha) === "success";
}

export type FixVerdict = { ok: true; attempt: number } | { ok: false; reason: string; notBefore?: number };

/** Whether review fix attempt n+1 may start at `now`, or why not. */
export function reviewFixVerdict(rules: PrRules, count: { attempts: number; lastAt?: number }, now: number): FixVerdict {
  const max = rules.reviewFixAttempts;
  if (count.attempts >= max) return { ok: false, reason: `review fix attempts used up (${count.attempts} of ${max})` };
  if (count.lastAt !== undefined && now - count.lastAt < rules.reviewFixCooldownMs) {
    const notBefore = count.lastAt + rules.reviewFixCooldownMs;
    return {
      ok: false,
      reason: `review fix attempt ${count.attempts + 1} of ${max} waits for the cooldown: not before ${new Date(notBefore).toISOString()}`,
      notBefore,
    };
  }
  return { ok: true, attempt: count.attempts + 1 };
}

/** What the agent of a review's fix attempt is told: who asked for what, and every comment with its place. */
export function reviewFeedback(
  r: { reviewer?: string; body?: string; comments?: ReviewComment[]; number?: number; url?: string },
  attempt: number,
  max: number,
): string {
  const where = (c: ReviewComment) => (c.path ? `${c.path}${c.line !== undefined ? `:${c.line}` : ""}: ` : "");
  return [
    `Changes were requested in the review of the pull request${r.number !== undefined ? ` #${r.number}` : ""}${r.reviewer ? ` by ${r.reviewer}` : ""}.`,
    ...(r.url ? [`Review: ${r.url}`] : []),
    ...(r.body?.trim() ? ["", r.body.trim()] : []),
    ...(r.comments?.length ? ["", "Comments:", ...r.comments.map((c) => `- ${where(c)}${c.body.trim()}`)] : []),
    "",
    `Make the changes the review asks for (fix attempt ${attempt} of ${max}); they are pushed to the pull request.`,
  ]
    .join("\n")
    .slice(0, 10_000);
}

/** What a pull request's title and body are made from: the run as it stands. */
export interface PrDescription {
  runId: string;
  input: Record<string, unknown>;
  /** The steps that ran, in order. */
  steps: { id: string; title?: string; role: string; status: string; summary?: string }[];
  usage: { tokens: number; costUsd: number };
  publicUrl?: string;
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v.trim() ? v.trim() : undefined);
const rec = (v: unknown): Record<string, unknown> | undefined => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);

/** What the run is about, in one line: a ticket's key and title, a goal, a feature's or protocol's description. */
export function prTitle(d: PrDescription): string {
  const ticket = rec(d.input.ticket) ?? d.input;
  const key = str(ticket.key);
  const title = str(ticket.title) ?? str(d.input.goal) ?? str(d.input.feature_description) ?? str(d.input.description) ?? str(d.input.protocol_name);
  const line = key && title ? `${key}: ${title}` : (title ?? key ?? `Run ${d.runId}`);
  const first = line.split("\n")[0]!;
  return first.length > 256 ? `${first.slice(0, 255)}…` : first;
}

/**
 * The body: what the run was asked, the spec's summary when it has one, what each step did, the
 * tokens and cost it took, a link back to the run, and a marker naming the run (which PR is whose).
 */
export function prBody(d: PrDescription): string {
  const ask = str(rec(d.input.ticket)?.description) ?? str(d.input.description) ?? str(d.input.goal) ?? str(d.input.feature_description);
  const spec = str(d.input.spec_summary) ?? d.steps.map((s) => s.summary).find((s) => s !== undefined && /spec/i.test(s));
  const link = d.publicUrl ? `${d.publicUrl}/api/v1/runs/${encodeURIComponent(d.runId)}` : undefined;
  const lines = [
    ...(ask ? [ask, ""] : []),
    ...(spec && spec !== ask ? ["## Summary", "", spec, ""] : []),
    "## What each step did",
    "",
    ...(d.steps.length
      ? d.steps.map((s) => `- **${s.title ?? s.id}** (${s.role}): ${s.status}${s.summary ? ` — ${s.summary}` : ""}`)
      : ["- (no step has run)"]),
    "",
    `Usage: ${d.usage.tokens} tokens${d.usage.costUsd > 0 ? `, $${d.usage.costUsd.toFixed(4)}` : ""}.`,
    ...(link ? [`Run: ${link}`] : [`Run: ${d.runId}`]),
    "",
    `<!-- orchestrator:run=${d.runId} -->`,
  ];
  const body = lines.join("\n");
  return body.length > 65_536 ? `${body.slice(0, 65_000)}\n…\n<!-- orchestrator:run=${d.runId} -->` : body;
}

/** A step's output in one line, when it says something short (its `summary`, `message`, or a string). */
export function outputSummary(output: unknown): string | undefined {
  const o = rec(output);
  const s = typeof output === "string" ? output : (str(o?.summary) ?? str(o?.message) ?? str(o?.title));
  if (!s) return undefined;
  const line = s.trim().split("\n")[0]!;
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}

/** A run's place in its merge queue (in its kernel state; the view publishes it). */
export interface MergeQueueMember {
  /** The queue's run id. */
  queue: string;
  /** queued: waiting for its turn; updating: brought up to the base (`pr.update`); checking: its CI runs again; merging. */
  state: "queued" | "updating" | "checking" | "merging";
  /** The n-th time this run joined a queue (command ids are made of it). */
  n: number;
  since: number;
  attemptId?: string;
  /** The head after the update: the commit CI must pass on and the merge expects. */
  headSha?: string;
  strategy?: "rebase" | "merge";
}

/** What a merge queue run keeps: its members in order, and whose turn it is. */
export interface MergeQueueState {
  entries: { runId: string; number?: number; at: number }[];
  head?: { runId: string; at: number; turn: number };
  turns: number;
}

/** The built-in definition of merge queue runs. */
export const MERGE_QUEUE_DEFINITION = "merge.queue";

/** The merge queue run of a project's base branch: one id per (project, base), whatever the base's characters. */
export function mergeQueueRunId(projectId: string, base: string): string {
  const slug = base
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  let h = 0x811c9dc5;
  for (const ch of `${projectId}\u0000${base}`) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `mq-${projectId.slice(0, 60)}-${slug || "base"}-${h.toString(16).padStart(8, "0")}`.slice(0, 128);
}
