import { createHash } from "node:crypto";
import {
  FINAL_RUN_STATUSES,
  PrSyncPayload,
  SignalSchema,
  type Command,
  type ForgeProvider,
  type PullRequestView,
  type RunView,
  type Signal,
  type WorkItem,
} from "@orch/contracts";
import type { Logger } from "@orch/logging";
import type { Check, PullRequest, Review } from "./types.js";

/**
 * The polling fallback (`pr.sync`, work of kind `sync`): what the host says of the run's pull
 * request, compared with what the run's view already holds, becomes signals the core applies like
 * a webhook's (actor `poll:<provider>`). The hub decides nothing: it reports facts, once each.
 *
 *   the view's pullRequest.sync.attemptId is this item's, and the PR is open   (else: stale, nothing)
 *   host: the PR merged ─▶ pr_merged  |  closed ─▶ pr_closed                    (and nothing else)
 *   host: a check of the head sha whose status the view has not for that sha ─▶ ci_report
 *   host: a review newer than the view's ─▶ review_report (oldest first)
 *
 * Every signal's command id is made from the fact it reports (`poll:<runId>:ci:<check>:<sha>:<status>…`),
 * so a redelivered sync, two hubs, or a sync that overlaps the next one send nothing twice: JetStream
 * drops a repeat within its window, and the core a command id the run has applied. No step result is
 * sent (the core ignores results of `sync` work).
 *
 * Reviews: an approval or a changes request newer than the view's review is sent; a plain comment
 * only while the view has no review (it says a review started, and must not stand over an approval as
 * the PR's latest word). Reviews without a time (GitLab's approvals: who approves now) count as the
 * newest: one is sent unless the view already says approved by one of them.
 */

/** What the host says of a pull request now. */
export interface Observed {
  pr: PullRequest;
  /** The checks of the PR's head commit (empty when the host has no head sha). */
  checks: Check[];
  reviews: Review[];
}

export interface SyncCommand {
  commandId: string;
  signal: Signal;
}

/** The command ids' maximum length (the command schema's); longer ones end in a hash. */
const MAX_ID = 256;

function commandId(parts: (string | number)[]): string {
  const id = ["poll", ...parts.map((p) => String(p).replace(/[^A-Za-z0-9_.\-/]/g, (c) => encodeURIComponent(c)))].join(":");
  if (id.length <= MAX_ID) return id;
  return `${id.slice(0, MAX_ID - 17)}~${createHash("sha256").update(id).digest("hex").slice(0, 16)}`;
}

/** Whether a sync is the one the run waits for: its view names this attempt, the PR is open and the run is not finished. */
export function syncIsCurrent(item: Pick<WorkItem, "attemptId">, view: Pick<RunView, "pullRequest" | "status"> | null | undefined): boolean {
  const pr = view?.pullRequest;
  return pr?.sync?.attemptId === item.attemptId && pr.state === "open" && !FINAL_RUN_STATUSES.has(view!.status);
}

const time = (iso: string | undefined): number | undefined => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : undefined;
};

/** The signals a sync sends: what the host says and the run's view does not (pure). */
export function syncCommands(runId: string, provider: ForgeProvider, known: PullRequestView, seen: Observed): SyncCommand[] {
  const { pr } = seen;
  const report = { provider, url: pr.url };
  if (pr.merged || pr.state === "merged") {
    return [{ commandId: commandId([runId, "pr", pr.number, "merged"]), signal: { name: "pr_merged", number: pr.number, action: "merged", ...report } }];
  }
  if (pr.state === "closed") {
    return [{ commandId: commandId([runId, "pr", pr.number, "closed"]), signal: { name: "pr_closed", number: pr.number, action: "closed", ...report } }];
  }
  const out: SyncCommand[] = [];
  const sha = pr.headSha;
  if (sha) {
    const byName = known.checks?.byName ?? {};
    for (const c of seen.checks) {
      const had = byName[c.name];
      if (had && had.sha === sha && had.status === c.status) continue;
      out.push({
        commandId: commandId([runId, "ci", c.name, sha, c.status, ...(c.jobId ? [c.jobId] : [])]),
        signal: {
          name: "ci_report",
          status: c.status,
          check: c.name,
          sha,
          provider,
          ...(c.conclusion ? { conclusion: c.conclusion.slice(0, 100) } : {}),
          ...(c.jobId && /^\d{1,20}$/.test(c.jobId) ? { jobId: c.jobId } : {}),
          ...(c.url ? { url: c.url } : {}),
        },
      });
    }
  }
  out.push(...reviewCommands(runId, provider, known, seen));
  return out;
}

function reviewCommands(runId: string, provider: ForgeProvider, known: PullRequestView, seen: Observed): SyncCommand[] {
  const { pr } = seen;
  const last = known.review;
  const signal = (r: Review, at?: number): Signal => ({
    name: "review_report",
    state: r.state,
    reviewer: r.author.slice(0, 200) || "unknown",
    ...(r.body ? { body: r.body.slice(0, 20_000) } : {}),
    ...(r.comments.length
      ? {
          comments: r.comments.slice(0, 200).map((c) => ({
            body: c.body.slice(0, 10_000) || "(empty)",
            ...(c.path ? { path: c.path.slice(0, 1_000) } : {}),
            ...(c.line !== undefined && c.line >= 1 ? { line: c.line } : {}),
          })),
        }
      : {}),
    ...((r.sha ?? pr.headSha) ? { sha: r.sha ?? pr.headSha } : {}),
    number: pr.number,
    provider,
    ...(pr.url ? { url: pr.url } : {}),
    ...(at !== undefined ? { at } : {}),
  });
  const out: SyncCommand[] = [];
  let hasReview = last !== undefined;
  const timed = seen.reviews
    .map((r) => ({ r, at: time(r.submittedAt) }))
    .filter((x): x is { r: Review; at: number } => x.at !== undefined)
    .sort((a, b) => a.at - b.at);
  for (const { r, at } of timed) {
    if (last && at <= last.at) continue;
    if (r.state === "commented" && hasReview) continue;
    hasReview = true;
    out.push({ commandId: commandId([runId, "review", r.id, r.state]), signal: signal(r, at) });
  }
  const untimed = seen.reviews.filter((r) => time(r.submittedAt) === undefined && r.state === "approved");
  const latest = out.at(-1)?.signal;
  const standing = latest && latest.name === "review_report" ? { state: latest.state, reviewer: latest.reviewer } : last;
  const approvedByOne = standing?.state === "approved" && untimed.some((r) => r.author === standing.reviewer);
  const first = untimed[0];
  if (first && !approvedByOne) {
    out.push({ commandId: commandId([runId, "review", first.id, first.state, pr.headSha ?? "nosha"]), signal: signal(first) });
  }
  return out;
}

export interface SyncDeps {
  /** Sends a command to the core (durable when it resolves; the command stream in the hub). */
  send: (cmd: Extract<Command, { type: "run.signal" }>) => Promise<void>;
  logger: Logger;
  /** The run's published view (null: no such run). */
  view: (runId: string) => Promise<RunView | null>;
  /** What the host says of the PR. */
  observe: (payload: PrSyncPayload, signal?: AbortSignal) => Promise<Observed>;
  /** What an error may say in a log (tokens redacted). */
  describe: (err: unknown) => string;
  signal?: AbortSignal;
}

/**
 * Runs one `pr.sync` work item: nothing when it is stale; else what the host says and the view
 * does not, sent to the run as signals. Errors are logged, never thrown: the next sync looks again.
 * Returns the command ids it sent (for tests and logs).
 */
export async function runPrSync(item: WorkItem, deps: SyncDeps): Promise<string[]> {
  const log = deps.logger.child({ runId: item.runId, attemptId: item.attemptId, stepType: item.type });
  try {
    const p = PrSyncPayload.safeParse(item.payload ?? {});
    if (!p.success) {
      log.warn({ issues: p.error.issues.map((i) => i.message) }, "pr.sync with an invalid payload: nothing done");
      return [];
    }
    const view = await deps.view(item.runId);
    if (!syncIsCurrent(item, view)) {
      log.debug("pr.sync is stale (the run looks again later, or its PR is no longer open): nothing done");
      return [];
    }
    const seen = await deps.observe(p.data, deps.signal);
    const cmds = syncCommands(item.runId, p.data.forge.provider, view!.pullRequest!, seen);
    const sent: string[] = [];
    for (const c of cmds) {
      const valid = SignalSchema.safeParse(c.signal);
      if (!valid.success) {
        log.warn(
          { commandId: c.commandId, issues: valid.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`) },
          "pr.sync: a signal it made is invalid; not sent",
        );
        continue;
      }
      await deps.send({
        type: "run.signal",
        commandId: c.commandId,
        runId: item.runId,
        issuedAt: Date.now(),
        actor: `poll:${p.data.forge.provider}`,
        signal: { ...valid.data },
      });
      sent.push(c.commandId);
    }
    if (sent.length > 0) log.info({ number: p.data.number, sent }, "pr.sync: reported what changed");
    return sent;
  } catch (err) {
    if (deps.signal?.aborted) throw err;
    log.warn(`pr.sync failed; the next one looks again: ${deps.describe(err)}`);
    return [];
  }
}
