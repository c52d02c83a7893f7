import { DEFAULT_PROJECT, FINAL_RUN_STATUSES, RUN_STATUSES, type RunStatus } from "@orch/contracts";
import { resolveTemplate } from "@orch/engine";
import { runBranchOf, type RunView, type Signal, type StepView } from "@orch/contracts";
import { RefusedError, type Actor, type RunsApi } from "@orch/runs";
import type { NormalizedEvent } from "./normalize.js";
import { ProtocolIds, type JobOut } from "../protocols/views.js";
import { BRANCH_LABEL, PROTOCOL_NAME_LABEL } from "@orch/contracts";

/**
 * What a verified, normalized webhook delivery does to runs: the gateway translates, the core
 * decides (docs/architecture.md).
 *
 * 1. Find the run. An event that names a run by its branch (`orch/run/<runId>`) is about that run.
 *    One that names it only by an `orch-run:` line (text anyone who can push can write) is trusted
 *    when the delivery was authenticated, or when the run's branch is the event's branch. Else the
 *    run whose branch is the event's branch: a protocol's name, a SpecKit feature id, a ticket's
 *    `branch`, or whatever a definition's `workspace.branch` names; the newest run that is not
 *    finished first. None → `no_run` (404 "No protocol run for branch <b>").
 * 2. Send it one signal, by the actor `webhook:<provider>`, with the delivery's id as its
 *    idempotency key: `ci_report` for a CI status (with the host's job id); `pr_opened`, `pr_closed`,
 *    `pr_merged` for a pull request opened, closed unmerged or merged; `review_report` for a review,
 *    a line comment, a GitLab approval or comment; `set_facts` for anything else (a push, another
 *    pull request action). Each carries the fact `webhook` (the event, provider, delivery, branch, sha,
 *    when). The run's definition decides what the signal does, in one transition (its `ci` and
 *    `pullRequests` policies, docs/workflows.md): a protocol's latest step completed, failed, its QA
 *    started, the protocol blocked, a bounded CI fix attempt, the protocol completed by a merge; a
 *    ticket's facts and its `ReviewApprovedAndMerged`; any other run: the facts.
 * 3. Answer from the view the core replied with: what changed (logged), and the QA job a CI success
 *    started, in seed 004's job shape.
 */

export interface ApplyDeps {
  runs: RunsApi;
  now?: () => number;
  correlationId?: string;
}

export type ApplyResult =
  | { status: "ignored"; reason: string; runId?: string }
  | { status: "no_run"; branch: string }
  | { status: "recorded"; runId: string; view: string; effects: string[]; job: JobOut | null };

/** The name of what happened: `ci.success`, `ci.failure`, `ci.pending`, `pr.merged`, `pr.<action>`, `push`. */
export function eventName(e: NormalizedEvent): string {
  switch (e.kind) {
    case "ci":
      return `ci.${e.ci.status}`;
    case "pull_request":
      return e.pr.merged ? "pr.merged" : `pr.${e.pr.action || "updated"}`;
    case "review":
      return `review.${e.review.state}`;
    case "push":
      return "push";
    default:
      return "unknown";
  }
}

/** Statuses of runs that may still change (the index is asked for them first). */
const OPEN: RunStatus[] = RUN_STATUSES.filter((s) => !FINAL_RUN_STATUSES.has(s));
const CLOSED: RunStatus[] = RUN_STATUSES.filter((s) => FINAL_RUN_STATUSES.has(s));

const str = (v: unknown): string | undefined => (typeof v === "string" && v.trim() ? v.trim() : undefined);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** Every branch a run may be found by: its workspace branch (else `orch/run/<runId>`) and its protocol name label. */
export async function branchesOf(
  runs: RunsApi,
  run: { runId: string; definition: { id: string; version: number }; labels: Record<string, string> },
  input?: Record<string, unknown>,
  facts?: Record<string, unknown>,
): Promise<Set<string>> {
  const out = new Set<string>();
  const label = str(run.labels[PROTOCOL_NAME_LABEL]);
  if (label) out.add(label);
  let template: string | undefined;
  try {
    template = (await runs.definitions.get(run.definition)).def.workspace?.branch;
  } catch {
    template = undefined;
  }
  if (template !== undefined) {
    let scope = { input: input ?? {}, facts: facts ?? {} };
    if (input === undefined) {
      const v = await runs.get(run.runId);
      scope = { input: v?.input ?? {}, facts: v?.facts ?? {} };
    }
    const b = str(resolveTemplate(template, scope));
    out.add(b ?? runBranchOf(run.runId));
  } else {
    out.add(runBranchOf(run.runId));
  }
  return out;
}

/**
 * The newest run (open ones first) whose branch is `branch`: one run-index query per label (the
 * core labels every run with the branch its definition's workspace names, `branch`; protocols are
 * also labelled with their name), never a scan.
 */
async function findByBranch(runs: RunsApi, branch: string): Promise<RunView | null> {
  for (const status of [OPEN, CLOSED]) {
    for (const label of [BRANCH_LABEL, PROTOCOL_NAME_LABEL]) {
      const page = await runs.list({ labels: { [label]: branch }, status: [...status], limit: 1 });
      const hit = page.runs[0];
      if (hit) {
        const v = await runs.get(hit.runId);
        if (v) return v;
      }
    }
  }
  return null;
}

/** The run an event is about, or why none. */
export async function findRun(
  runs: RunsApi,
  e: NormalizedEvent,
  authenticated: boolean,
): Promise<{ run: RunView } | { none: "no_branch" } | { none: "no_run"; branch: string }> {
  if (e.runId) {
    const v = await runs.get(e.runId);
    if (v) {
      if (e.runIdSource === "branch" || authenticated) return { run: v };
      if (e.branch && (await branchesOf(runs, v, v.input, v.facts)).has(e.branch)) return { run: v };
    }
  }
  if (!e.branch) return { none: "no_branch" };
  const v = await findByBranch(runs, e.branch);
  return v ? { run: v } : { none: "no_run", branch: e.branch };
}

/** Provider words (GitHub's `action`, GitLab's) for a pull request that is opened, or closed without a merge. */
const OPENED = new Set(["opened", "reopened", "ready_for_review", "open", "reopen"]);
const CLOSED_PR = new Set(["closed", "close"]);

/** A string for a bounded signal field: trimmed, cut to `max`, absent when empty. */
const field = (v: string | undefined, max: number): string | undefined => str(v)?.slice(0, max);

/** The one signal a delivery sends its run (null: nothing to send). */
export function signalOf(e: NormalizedEvent, at: number): Signal | null {
  const webhook: Record<string, unknown> = { event: eventName(e), provider: e.provider, at };
  if (e.deliveryId) webhook.deliveryId = e.deliveryId;
  if (e.branch) webhook.branch = e.branch;
  if (e.sha) webhook.sha = e.sha;
  const facts = { webhook };
  const sha = field(e.sha, 200);
  switch (e.kind) {
    case "ci": {
      const conclusion = field(e.ci.conclusion, 100);
      const check = field(e.ci.name, 500);
      const url = field(e.ci.url, 2_000);
      return {
        name: "ci_report",
        status: e.ci.status,
        provider: e.provider,
        at,
        facts,
        ...(conclusion ? { conclusion } : {}),
        ...(check ? { check } : {}),
        ...(url ? { url } : {}),
        ...(sha ? { sha } : {}),
        ...(e.ci.jobId !== undefined ? { jobId: e.ci.jobId } : {}),
      };
    }
    case "pull_request": {
      const url = field(e.pr.url, 2_000);
      const action = field(e.pr.action, 100);
      const kind = e.pr.merged ? "pr_merged" : OPENED.has(e.pr.action) ? "pr_opened" : CLOSED_PR.has(e.pr.action) ? "pr_closed" : null;
      const number = e.pr.number >= 0 ? { number: e.pr.number } : {};
      if (kind) return { name: kind, ...number, provider: e.provider, at, facts, ...(action ? { action } : {}), ...(url ? { url } : {}) };
      // Another action (synchronize, edited, …): the pull request as it stands, recorded.
      const pullRequest = { number: e.pr.number, action: e.pr.action, merged: false, provider: e.provider, at, ...(url ? { url } : {}) };
      return { name: "set_facts", facts: { ...facts, pullRequest } };
    }
    case "review": {
      const r = e.review;
      const reviewer = field(r.reviewer, 200);
      const body = r.body?.trim() ? r.body.slice(0, 20_000) : undefined;
      const url = field(r.url, 2_000);
      const comments = (r.comments ?? [])
        .filter((c) => c.body.trim())
        .slice(0, 200)
        .map((c) => ({
          body: c.body.slice(0, 10_000),
          ...(c.path ? { path: c.path.slice(0, 1_000) } : {}),
          ...(c.line !== undefined && c.line >= 1 ? { line: c.line } : {}),
        }));
      return {
        name: "review_report",
        state: r.state,
        number: r.number,
        provider: e.provider,
        at,
        facts,
        ...(reviewer ? { reviewer } : {}),
        ...(body ? { body } : {}),
        ...(comments.length ? { comments } : {}),
        ...(sha ? { sha } : {}),
        ...(url ? { url } : {}),
      };
    }
    case "push":
      return { name: "set_facts", facts };
    default:
      return null;
  }
}

/** Applies a delivery: finds its run and sends it the delivery's signal. */
export async function applyWebhook(deps: ApplyDeps, e: NormalizedEvent, authenticated: boolean): Promise<ApplyResult> {
  if (e.kind === "unknown") return { status: "ignored", reason: `event '${e.event || "?"}' is not acted on` };
  if (e.kind === "push" && (e.tag !== undefined || e.deleted)) return { status: "ignored", reason: e.tag !== undefined ? "a tag push" : "a deleted branch" };
  const found = await findRun(deps.runs, e, authenticated);
  if ("none" in found)
    return found.none === "no_branch" ? { status: "ignored", reason: "the event names no branch" } : { status: "no_run", branch: found.branch };
  const before = found.run;
  if (FINAL_RUN_STATUSES.has(before.status)) return { status: "ignored", reason: `run ${before.runId} is ${before.status}`, runId: before.runId };
  const at = (deps.now ?? Date.now)();
  const signal = signalOf(e, at);
  if (!signal) return { status: "ignored", reason: `event '${e.event || "?"}' is not acted on`, runId: before.runId };
  const who: Actor = { actor: `webhook:${e.provider}` };
  if (deps.correlationId) who.correlationId = deps.correlationId;
  // The delivery's id makes its one command idempotent: a delivery applied again changes nothing.
  const id = e.deliveryId?.replace(/[^A-Za-z0-9_.:-]/g, "_").slice(0, 120);
  if (id) who.idempotencyKey = `webhook:${e.provider}:${id}`;
  let after: RunView;
  try {
    after = await deps.runs.signal(before.runId, signal, who);
  } catch (err) {
    if (err instanceof RefusedError) return { status: "ignored", reason: `run ${before.runId}: ${err.message}`, runId: before.runId };
    throw err;
  }
  const started = after.steps.find((s) => s.status === "qa" && !wasInQa(before, s));
  return {
    status: "recorded",
    runId: after.runId,
    view: after.view,
    effects: effectsOf(before, after),
    job: started ? await qaJob(deps.runs, after, started, at) : null,
  };
}

const wasInQa = (run: RunView, s: StepView) => run.steps.some((b) => b.id === s.id && b.status === "qa" && b.attempt === s.attempt);

/** What the delivery's transition changed, for the log: steps, fix attempts, the stage, the run's status. */
export function effectsOf(before: RunView, after: RunView): string[] {
  const out = ["recorded"];
  const was = new Map(before.steps.map((s) => [s.id, s]));
  for (const s of after.steps) {
    const b = was.get(s.id);
    if (b && b.status === s.status && b.attempt === s.attempt) continue;
    const what = s.status === "completed" ? "step_completed" : s.status === "qa" ? "qa_started" : s.status === "running" ? "step_started" : `step_${s.status}`;
    out.push(`${what}:${s.id}`);
  }
  const attempts = (v: RunView) => num(v.facts.ciFixAttempts) ?? 0;
  if (attempts(after) > attempts(before)) out.push(`ci_fix_attempt:${attempts(after)}`);
  if (after.facts.ciFixRefused !== undefined && JSON.stringify(after.facts.ciFixRefused) !== JSON.stringify(before.facts.ciFixRefused))
    out.push("ci_fix_refused");
  if (after.stage && after.stage !== before.stage) out.push(`stage:${after.stage}`);
  if (after.status !== before.status) out.push(`run_${after.status}`);
  return out;
}

/** The QA job a CI success started, in seed 004's job shape. */
async function qaJob(runs: RunsApi, run: RunView, s: StepView, at: number): Promise<JobOut> {
  const payload: Record<string, unknown> = { run_id: run.runId, step_id: s.id };
  if (run.projectId !== DEFAULT_PROJECT) {
    const ids = new ProtocolIds(runs);
    payload.protocol_run_id = await ids.protocolInt(run.runId);
    payload.step_run_id = await ids.stepInt(run.runId, s.id);
  }
  return {
    job_id: `${run.runId}.${s.id}.${s.attempt}`,
    job_type: "run_quality_job",
    payload,
    status: "queued",
    queue: "role.qa",
    attempts: 0,
    max_attempts: 1,
    created_at: new Date(at).toISOString(),
    started_at: null,
    ended_at: null,
    result: null,
    error: null,
  };
}
