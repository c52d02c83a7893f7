import { DEFAULT_PROJECT, FINAL_RUN_STATUSES, RUN_STATUSES, type RunStatus } from "@orch/contracts";
import { BRANCH_LABEL, resolveTemplate } from "@orch/engine";
import type { RunView, StepView } from "@orch/contracts";
import { PROTOCOL_NAME_LABEL, ProtocolIds, RefusedError, type Actor, type JobOut, type KeyStore, type RunsApi } from "@orch/runs";
import type { NormalizedEvent } from "./normalize.js";

/**
 * What a verified, normalized webhook delivery does to runs (seed 004, and seed 003's tickets).
 *
 * 1. Find the run. An event that names a run by its branch (`orch/run/<runId>`) is about that run.
 *    One that names it only by an `orch-run:` line (text anyone who can push can write) is trusted
 *    when the delivery was authenticated, or when the run's branch is the event's branch. Else the
 *    run whose branch is the event's branch: a protocol's name, a SpecKit feature id, a ticket's
 *    `branch`, or whatever a definition's `workspace.branch` names; the newest run that is not
 *    finished first. None → `no_run` (404 "No protocol run for branch <b>").
 * 2. Record it on the run as facts (`webhook`, and `ci` or `pullRequest`), with the actor
 *    `webhook:<provider>`: the kernel's `event` signal only takes names a definition has a
 *    transition for (a protocol has none, so `ci.success` would be refused), and `set_facts`
 *    records any (`run.facts_changed`, in the run's history and event streams).
 * 3. Act, by the run's definition:
 *    - a protocol (seed 004), on its latest step (the one started last; not the planning step):
 *      CI success completes it (`complete_step` while it runs, a forced `approve` when it waits in
 *      needs_qa or failed), or with auto-QA on CI starts its QA (`run_qa`, answered as a QA job);
 *      CI pending changes nothing; CI failure fails it and blocks the protocol (`fail_step` with
 *      `block: true`, "CI failed; protocol blocked"), then, with CI fix attempts on, runs it again
 *      (`run_step`) at most `ciFixMaxAttempts` times, `ciFixCooldownMs` apart (facts
 *      `ciFixAttempts`, `ciFixLastAt`; a refusal is recorded as `ciFixRefused`); a merged pull
 *      request completes the protocol (every step not done yet is approved, forced).
 *    - a ticket (seed 003): CI sets `testsPassed`; an opened pull request `pr` and `draftPr`, a
 *      closed one `pr: false`; a merge sets `mergeCompleted` and fires `ReviewApprovedAndMerged`
 *      (the ticket is Done).
 *    - any other run: the facts only.
 *
 * Every command carries an idempotency key made of the delivery id, so a delivery that is applied
 * again (after a failure half-way) does not act twice.
 */

export interface WebhookSettings {
  /** ORCH_AUTO_QA_ON_CI: a CI success starts the step's QA instead of completing it. */
  autoQaOnCi: boolean;
  /** ORCH_CI_FIX_MAX_ATTEMPTS: fix attempts per run after CI failures (0: none). */
  ciFixMaxAttempts: number;
  /** ORCH_CI_FIX_COOLDOWN_MS: the least time between two fix attempts of a run. */
  ciFixCooldownMs: number;
}

export interface ApplyDeps {
  runs: RunsApi;
  /** Once-only claims of deliveries (and of CI fix attempts). */
  deliveries: KeyStore;
  settings: WebhookSettings;
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
    out.add(b ?? `orch/run/${run.runId}`);
  } else {
    out.add(`orch/run/${run.runId}`);
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

/** The step a CI report is about: the one started last (the planning step aside). */
export function latestStep(run: RunView): StepView | undefined {
  const started = run.steps.filter((s) => s.attempt > 0 && (!run.planning || s.id !== run.planning.id));
  started.sort((a, b) => (a.startedAt ?? 0) - (b.startedAt ?? 0) || a.index - b.index);
  return started.at(-1);
}

const OPENED = new Set(["opened", "reopened", "ready_for_review", "open", "reopen"]);
const CLOSED_PR = new Set(["closed", "close"]);

/** Applies a delivery: finds its run, records it, and acts on it. */
export async function applyWebhook(deps: ApplyDeps, e: NormalizedEvent, authenticated: boolean): Promise<ApplyResult> {
  if (e.kind === "unknown") return { status: "ignored", reason: `event '${e.event || "?"}' is not acted on` };
  if (e.kind === "push" && (e.tag !== undefined || e.deleted)) return { status: "ignored", reason: e.tag !== undefined ? "a tag push" : "a deleted branch" };
  const found = await findRun(deps.runs, e, authenticated);
  if ("none" in found)
    return found.none === "no_branch" ? { status: "ignored", reason: "the event names no branch" } : { status: "no_run", branch: found.branch };
  return new Application(deps, e, found.run).apply();
}

class Application {
  readonly effects: string[] = [];
  job: JobOut | null = null;
  #n = 0;
  readonly at: number;
  readonly name: string;

  constructor(
    readonly deps: ApplyDeps,
    readonly e: NormalizedEvent,
    public run: RunView,
  ) {
    this.at = (deps.now ?? Date.now)();
    this.name = eventName(e);
  }

  get runs(): RunsApi {
    return this.deps.runs;
  }

  /** Who sends each command: the provider, the delivery (its id makes each command idempotent). */
  #who(reason: string): Actor {
    const who: Actor = { actor: `webhook:${this.e.provider}`, reason };
    if (this.deps.correlationId) who.correlationId = this.deps.correlationId;
    const id = this.e.deliveryId?.replace(/[^A-Za-z0-9_.:-]/g, "_").slice(0, 120);
    if (id) who.idempotencyKey = `webhook:${this.e.provider}:${id}:${this.#n}`;
    this.#n++;
    return who;
  }

  /** Sends one action; a refusal is an answer (returned), anything else is thrown. */
  async signal(signal: Record<string, unknown>, reason: string): Promise<RefusedError | null> {
    try {
      this.run = await this.runs.signal(this.run.runId, signal, this.#who(reason));
      return null;
    } catch (err) {
      if (err instanceof RefusedError) return err;
      throw err;
    }
  }

  /** What every delivery records: the event, and its CI or pull request details. */
  facts(): Record<string, unknown> {
    const e = this.e;
    const webhook: Record<string, unknown> = { event: this.name, provider: e.provider, at: this.at };
    if (e.deliveryId) webhook.deliveryId = e.deliveryId;
    if (e.branch) webhook.branch = e.branch;
    if (e.sha) webhook.sha = e.sha;
    const facts: Record<string, unknown> = { webhook };
    if (e.kind === "ci") {
      facts.ci = {
        status: e.ci.status,
        conclusion: e.ci.conclusion,
        provider: e.provider,
        at: this.at,
        ...(e.ci.name ? { name: e.ci.name } : {}),
        ...(e.ci.url ? { url: e.ci.url } : {}),
        ...(e.sha ? { sha: e.sha } : {}),
      };
    }
    if (e.kind === "pull_request") {
      facts.pullRequest = {
        number: e.pr.number,
        action: e.pr.action,
        merged: e.pr.merged,
        provider: e.provider,
        at: this.at,
        ...(e.pr.url ? { url: e.pr.url } : {}),
      };
    }
    return facts;
  }

  async apply(): Promise<ApplyResult> {
    if (FINAL_RUN_STATUSES.has(this.run.status)) return { status: "ignored", reason: `run ${this.run.runId} is ${this.run.status}`, runId: this.run.runId };
    if (this.run.view === "ticket") {
      const refused = await this.ticket();
      if (refused) return { status: "ignored", reason: `run ${this.run.runId}: ${refused.message}`, runId: this.run.runId };
    } else {
      const refused = await this.signal({ name: "set_facts", facts: this.facts() }, `${this.name} recorded`);
      if (refused) return { status: "ignored", reason: `run ${this.run.runId}: ${refused.message}`, runId: this.run.runId };
      this.effects.push("recorded");
      if (this.run.view === "protocol") await this.protocol();
    }
    return { status: "recorded", runId: this.run.runId, view: this.run.view, effects: this.effects, job: this.job };
  }

  // ── seed 003: tickets ─────────────────────────────────────────────────────────────────────────

  async ticket(): Promise<RefusedError | null> {
    const e = this.e;
    const facts = this.facts();
    if (e.kind === "ci" && e.ci.status !== "pending") facts.testsPassed = e.ci.status === "success";
    if (e.kind === "pull_request" && !e.pr.merged) {
      if (OPENED.has(e.pr.action)) Object.assign(facts, { pr: true, draftPr: true });
      else if (CLOSED_PR.has(e.pr.action)) facts.pr = false;
    }
    if (e.kind === "pull_request" && e.pr.merged) {
      Object.assign(facts, { pr: true, mergeCompleted: true });
      // The facts and the stage event in one action: a guard refusal leaves both as they were.
      const refused = await this.signal({ name: "event", event: "ReviewApprovedAndMerged", facts }, "pull request merged");
      if (!refused) {
        this.effects.push("recorded", "ReviewApprovedAndMerged");
        return null;
      }
    }
    const refused = await this.signal({ name: "set_facts", facts }, `${this.name} recorded`);
    if (!refused) this.effects.push("recorded");
    return refused;
  }

  // ── seed 004: protocols ───────────────────────────────────────────────────────────────────────

  async protocol(): Promise<void> {
    const e = this.e;
    if (e.kind === "pull_request" && e.pr.merged) return this.merged();
    if (e.kind !== "ci") return;
    const step = latestStep(this.run);
    if (!step) return;
    if (e.ci.status === "success") return this.ciSuccess(step);
    if (e.ci.status === "failure") return this.ciFailure(step);
    // pending: a step that runs goes on running; one that does not is not started again by CI.
  }

  async ciSuccess(step: StepView): Promise<void> {
    const why = `CI passed${this.e.ci?.name ? ` (${this.e.ci.name})` : ""}`;
    if (this.deps.settings.autoQaOnCi && ["running", "needs_qa", "failed", "blocked"].includes(step.status)) {
      if (!(await this.signal({ name: "run_qa", stepId: step.id }, `${why}: QA started`))) {
        this.effects.push(`qa_started:${step.id}`);
        await this.qaJob(step.id);
      }
      return;
    }
    if (step.status === "running") {
      if (!(await this.signal({ name: "complete_step", stepId: step.id }, why))) this.effects.push(`step_completed:${step.id}`);
    } else if (step.status === "needs_qa" || step.status === "failed" || step.status === "blocked") {
      if (!(await this.signal({ name: "approve", stepId: step.id, force: true }, why))) this.effects.push(`step_completed:${step.id}`);
    }
  }

  async ciFailure(step: StepView): Promise<void> {
    if (step.status === "running" || step.status === "needs_qa") {
      const refused = await this.signal(
        { name: "fail_step", stepId: step.id, error: "CI failed; protocol blocked", block: true },
        `CI failed${this.e.ci?.name ? ` (${this.e.ci.name})` : ""}`,
      );
      if (!refused) this.effects.push(`step_failed:${step.id}`, "protocol_blocked");
    }
    const now = this.run.steps.find((s) => s.id === step.id);
    if (now && (now.status === "failed" || now.status === "blocked")) await this.fixAttempt(now);
  }

  /** A bounded fix attempt: the failed step runs again, at most N times per run, a cooldown apart. */
  async fixAttempt(step: StepView): Promise<void> {
    const { ciFixMaxAttempts: max, ciFixCooldownMs: cooldown } = this.deps.settings;
    if (max <= 0) return;
    const attempts = num(this.run.facts.ciFixAttempts) ?? 0;
    const lastAt = num(this.run.facts.ciFixLastAt);
    const refuse = async (reason: string) => {
      await this.signal({ name: "set_facts", facts: { ciFixRefused: { reason, stepId: step.id, at: this.at } } }, reason);
      this.effects.push("ci_fix_refused");
    };
    if (attempts >= max) return refuse(`CI fix attempts used up (${attempts} of ${max})`);
    if (lastAt !== undefined && this.at - lastAt < cooldown)
      return refuse(`CI fix attempt ${attempts + 1} of ${max} waits for the cooldown: not before ${new Date(lastAt + cooldown).toISOString()}`);
    // Claimed first, so two deliveries (or two gateways) never both start attempt n.
    const claim = await this.deps.deliveries.claim("cifix", `${this.run.runId}-${attempts + 1}`, { at: this.at });
    if (!claim.created) return refuse(`CI fix attempt ${attempts + 1} of ${max} was already started`);
    const attempt = attempts + 1;
    const failure =
      this.e.kind === "ci"
        ? {
            conclusion: this.e.ci.conclusion,
            ...(this.e.ci.name ? { name: this.e.ci.name } : {}),
            ...(this.e.ci.url ? { url: this.e.ci.url } : {}),
            ...(this.e.sha ? { sha: this.e.sha } : {}),
          }
        : {};
    await this.signal(
      { name: "set_facts", facts: { ciFixAttempts: attempt, ciFixLastAt: this.at, ciFix: { attempt, max, stepId: step.id, at: this.at, failure } } },
      `CI fix attempt ${attempt} of ${max}`,
    );
    // The agent is told what failed: the check, its conclusion, where to read the log.
    const ci = this.e.kind === "ci" ? this.e.ci : undefined;
    const feedback = [
      `CI failed on ${this.e.provider}${ci?.name ? ` (${ci.name})` : ""}: ${ci?.conclusion ?? "failure"}${this.e.sha ? ` at ${this.e.sha}` : ""}.`,
      ...(ci?.url ? [`Details: ${ci.url}`] : []),
      step.error ? `The step's last error: ${step.error}` : undefined,
      `Fix what makes it fail (fix attempt ${attempt} of ${max}).`,
    ]
      .filter((x): x is string => x !== undefined)
      .join("\n")
      .slice(0, 10_000);
    const refused = await this.signal({ name: "run_step", stepId: step.id, feedback }, `CI fix attempt ${attempt} of ${max}`);
    if (!refused) this.effects.push(`ci_fix_attempt:${attempt}`);
    else await refuse(`CI fix attempt ${attempt} of ${max} could not start: ${refused.message}`);
  }

  /** A merged pull request completes the protocol: every step not done yet is approved (forced). */
  async merged(): Promise<void> {
    const pending = (r: RunView) => r.steps.filter((s) => !["completed", "skipped", "cancelled"].includes(s.status));
    for (const s of pending(this.run)) {
      if (FINAL_RUN_STATUSES.has(this.run.status)) break;
      await this.signal({ name: "approve", stepId: s.id, force: true }, "pull request merged");
    }
    this.effects.push(this.run.status === "completed" ? "protocol_completed" : "pr_merged");
  }

  /** The QA job a CI success started, in seed 004's job shape. */
  async qaJob(stepId: string): Promise<void> {
    const s = this.run.steps.find((x) => x.id === stepId);
    if (!s || s.status !== "qa") return;
    const payload: Record<string, unknown> = { run_id: this.run.runId, step_id: stepId };
    if (this.run.projectId !== DEFAULT_PROJECT) {
      const ids = new ProtocolIds(this.deps.runs);
      payload.protocol_run_id = await ids.protocolInt(this.run.runId);
      payload.step_run_id = await ids.stepInt(this.run.runId, stepId, this.run);
    }
    this.job = {
      job_id: `${this.run.runId}.${stepId}.${s.attempt}`,
      job_type: "run_quality_job",
      payload,
      status: "queued",
      queue: "role.qa",
      attempts: 0,
      max_attempts: 1,
      created_at: new Date(this.at).toISOString(),
      started_at: null,
      ended_at: null,
      result: null,
      error: null,
    };
  }
}
