import { z } from "zod";
import { getRunView, retryWhileUnavailable, sendCommand, type Bus } from "@orch/bus";
import {
  CiFailureRef,
  FORGE_STEP_TYPES,
  ForgeStepType,
  PrMergePayload,
  PrOpenPayload,
  PrReadyPayload,
  PrSyncPayload,
  ProjectForge,
  StepErrorCode,
  forgeFromOrigin,
  runBranchOf,
  type ForgeProvider,
  type PrMergeOutput,
  type PrOpenOutput,
  type PrReadyOutput,
  type ProjectRecord,
  type PullRequestRecord,
  type StepError,
  type WorkItem,
} from "@orch/contracts";
import type { Logger } from "@orch/logging";
import type { AdapterResult } from "../adapters/index.js";
import type { GitCli, WorkspaceManager } from "../git/index.js";
import type { Redactor } from "../harness/redact.js";
import { reportStepResult } from "../worker.js";
import { apiUrlFor, forgeRedactor, gitHostsFor, type Env } from "./credentials.js";
import { ForgeApiError, ForgeRequestError } from "./errors.js";
import { apiUrlsOf, createRepositoryHost, type ForgeConfig } from "./factory.js";
import { trimLog } from "./log-tail.js";
import { pushRunBranch, type PushResult } from "./push.js";
import { runPrSync, type Observed } from "./sync.js";
import { runPrUpdateStep } from "./update.js";
import type { PullRequest, RepositoryHost } from "./types.js";

/**
 * Forge work in the agent hub, done without a model:
 *
 * - `pr.open` (PrOpenPayload): push the run's branch (the branch its sessions integrate into:
 *   `item.workspace.branch`, else `orch/run/<runId>`) to origin, then find the pull request open for
 *   it or open one. Idempotent: a retry, a redelivery, or a crash between the host creating it and
 *   the step result finds the one already open (`created: false`) and never opens another; two hubs
 *   racing lose to each other the same way (the host refuses the second, which then finds the first).
 * - `pr.ready` (PrReadyPayload): mark the draft ready for review; one ready already is `ready: true`,
 *   one the host will not mark (closed, merged) `ready: false` with why.
 * - `pr.merge` (PrMergePayload): merge through the host; a refusal is `merged: false` with the host's
 *   reason, a PR merged already (a retry whose first answer was lost) is `merged: true`.
 * - `pr.sync` (PrSyncPayload, work of kind `sync`): the polling fallback; what the host says of the
 *   PR, sent to the run as signals, with no step result (sync.ts).
 *
 * And around a role's session, from what its work item's payload carries (SessionForgePayload,
 * set by the core):
 * - `ciFailure` (CiFailureRef): a CI fix attempt. Before the executor runs, the failing job's log is
 *   fetched through the provider, trimmed to its useful tail (ORCH_CI_LOG_MAX_BYTES) and added to the
 *   item's `feedback`, which every executor's prompt shows under "what went wrong before".
 * - `push: true`, or any CI fix attempt: the run has a pull request open, so after the session
 *   succeeds and is integrated, the run's branch is pushed again (the fix reaches the PR and CI runs).
 *   The forge whose token authenticates the push: `payload.forge`, else `ciFailure.forge`, else the
 *   project's, else the one the origin URL names.
 *
 * Failures become step errors with typed codes: FORGE_TOKEN_MISSING (non-retryable, naming the
 * variable), FORGE_ERROR (retryable when the host may answer differently later), PUSH_FAILED.
 * Every message is redacted of every forge token before it leaves.
 */

/** What a role step's payload may carry for the forge (see above). */
export const SessionForgePayload = z.object({
  ciFailure: CiFailureRef.optional(),
  push: z.boolean().optional(),
  forge: ProjectForge.optional(),
});
export type SessionForgePayload = z.infer<typeof SessionForgePayload>;

/** Whether a work item is forge work (`pr.open`, `pr.merge`, `pr.sync`) rather than an adapter's or a role's. */
export function isForgeStep(item: Pick<WorkItem, "type">): boolean {
  return (FORGE_STEP_TYPES as readonly string[]).includes(item.type);
}

export interface ForgeServiceOptions {
  cfg: ForgeConfig & { ORCH_CI_LOG_MAX_BYTES: number };
  git: GitCli;
  workspaces: Pick<WorkspaceManager, "repoFor">;
  project: (projectId: string) => Promise<ProjectRecord | undefined>;
  logger: Logger;
  /** Where tokens come from; process.env when unset. */
  env?: Env;
  /** The repository host for a forge; the `vcs_repos` factory when unset. */
  hostFor?: (forge: ProjectForge) => RepositoryHost;
  askpassDir?: string;
}

function record(pr: PullRequest, headSha?: string): PullRequestRecord {
  const { mergeable: _m, merged: _d, mergeCommitSha: _c, ...rest } = pr;
  return { ...rest, ...(headSha ? { headSha } : {}) };
}

export class ForgeService {
  readonly #o: ForgeServiceOptions;
  readonly #redact: Redactor;
  readonly #env: Env;

  constructor(opts: ForgeServiceOptions) {
    this.#o = opts;
    this.#env = opts.env ?? process.env;
    this.#redact = forgeRedactor(this.#env);
  }

  /** What `pr.update` (update.ts) works with: the same git, repositories, configuration and tokens. */
  get options(): Readonly<ForgeServiceOptions> {
    return this.#o;
  }

  host(forge: ProjectForge): RepositoryHost {
    return this.#o.hostFor ? this.#o.hostFor(forge) : createRepositoryHost(forge, this.#o.cfg, this.#env);
  }

  /** A forge step's result (never throws but for an abort). */
  async execute(item: WorkItem, log: Logger, signal?: AbortSignal): Promise<AdapterResult> {
    try {
      if (item.type === ForgeStepType.Open) {
        const p = PrOpenPayload.safeParse(item.payload ?? {});
        if (!p.success) return this.#invalid(item, p.error);
        const out = await this.openPullRequest(item, p.data, log, signal);
        const pr = out.pullRequest;
        return { ok: true, notes: [`${out.created ? "opened" : "already open:"} ${pr.provider === "gitlab" ? "!" : "#"}${pr.number} ${pr.url}`], output: out };
      }
      if (item.type === ForgeStepType.Merge) {
        const p = PrMergePayload.safeParse(item.payload ?? {});
        if (!p.success) return this.#invalid(item, p.error);
        const out: PrMergeOutput = await this.host(p.data.forge).merge(
          p.data.number,
          { method: p.data.method, ...(p.data.sha ? { sha: p.data.sha } : {}) },
          signal,
        );
        log.info({ number: p.data.number, merged: out.merged, sha: out.sha }, out.merged ? "merged" : `not merged: ${out.message ?? ""}`);
        return { ok: true, notes: [out.merged ? `merged${out.sha ? ` as ${out.sha}` : ""}` : `not merged: ${out.message ?? "refused"}`], output: out };
      }
      if (item.type === ForgeStepType.Ready) {
        const p = PrReadyPayload.safeParse(item.payload ?? {});
        if (!p.success) return this.#invalid(item, p.error);
        const out: PrReadyOutput = await this.host(p.data.forge).markReady(p.data.number, signal);
        log.info({ number: p.data.number, ready: out.ready }, out.ready ? "ready for review" : `not ready: ${out.message ?? ""}`);
        return { ok: true, notes: [out.ready ? "ready for review" : `not marked ready: ${out.message ?? "refused"}`], output: out };
      }
      const message = item.type === ForgeStepType.Sync ? "pr.sync answers with signals, not a result (runForgeStep)" : `not a forge step: ${item.type}`;
      return { ok: false, notes: [], error: { code: StepErrorCode.UnknownStepType, message, retryable: false } };
    } catch (err) {
      if (signal?.aborted) throw err;
      const error = this.stepError(err);
      log.warn({ code: error.code, retryable: error.retryable }, error.message);
      return { ok: false, notes: [error.message], error };
    }
  }

  /** Pushes the run's branch, then finds the pull request open for it or opens one. */
  async openPullRequest(item: WorkItem, payload: PrOpenPayload, log: Logger, signal?: AbortSignal): Promise<PrOpenOutput> {
    const host = this.host(payload.forge);
    const project = await this.#o.project(item.projectId);
    const repo = await this.#o.workspaces.repoFor(project, item.projectId);
    const branch = item.workspace?.branch ?? runBranchOf(item.runId);
    const base = payload.base ?? item.workspace?.base ?? project?.baseBranch ?? (await this.#o.git.currentBranch(repo));
    if (!base) throw new ForgeRequestError("no base branch for the pull request: set the step's base or the project's base branch");
    const pushed = await this.push(repo, branch, payload.forge, log);

    const existing = await host.findOpenPullRequest(branch, signal);
    if (existing) return { pullRequest: record(existing, pushed.sha), created: false };
    let created: PullRequest;
    try {
      created = await host.openPullRequest({ title: payload.title, body: payload.body, head: branch, base, draft: payload.draft }, signal);
    } catch (err) {
      // Another attempt opened it between our look and our create: the host refuses a second one.
      if (err instanceof ForgeApiError && (err.status === 422 || err.status === 409)) {
        const again = await host.findOpenPullRequest(branch, signal);
        if (again) return { pullRequest: record(again, pushed.sha), created: false };
      }
      throw err;
    }
    log.info({ number: created.number, url: created.url, head: branch, base }, "pull request opened");
    return { pullRequest: record(created, pushed.sha), created: true };
  }

  /** What the host says of a pull request now: its state and head, the head's checks and the reviews (those two only while it is open). */
  async observe(payload: PrSyncPayload, signal?: AbortSignal): Promise<Observed> {
    const host = this.host(payload.forge);
    const pr = await host.getPullRequest(payload.number, signal);
    if (pr.state !== "open" || pr.merged) return { pr, checks: [], reviews: [] };
    const [checks, reviews] = await Promise.all([pr.headSha ? host.listChecks(pr.headSha, signal) : Promise.resolve([]), host.listReviews(pr.number, signal)]);
    return { pr, checks, reviews };
  }

  /** Pushes `branch` of `repo` to origin, with `forge`'s token when the origin is on its host. */
  push(repo: string, branch: string, forge: ProjectForge | undefined, log: Logger): Promise<PushResult> {
    return pushRunBranch({
      git: this.#o.git,
      repo,
      branch,
      ...(forge ? { forge, apiUrl: apiUrlFor(forge, apiUrlsOf(this.#o.cfg)) } : {}),
      env: this.#env,
      redact: this.#redact,
      logger: log,
      ...(this.#o.askpassDir ? { askpassDir: this.#o.askpassDir } : {}),
    });
  }

  /**
   * For a CI fix attempt (`payload.ciFailure`): what the agent is told about the failure, with the
   * failing job's trimmed log when it can be fetched (a log that cannot is said so, and the attempt
   * goes on without it). Undefined for any other item.
   */
  async ciFailureFeedback(item: WorkItem, log: Logger, signal?: AbortSignal): Promise<{ text: string; keptLines?: number; totalLines?: number } | undefined> {
    const p = SessionForgePayload.safeParse(item.payload ?? {});
    const ref = p.success ? p.data.ciFailure : undefined;
    if (!ref) return undefined;
    const head = [
      `## CI failed: ${ref.check ?? "a check"}${ref.conclusion ? ` (${ref.conclusion})` : ""}${ref.sha ? ` on ${ref.sha.slice(0, 12)}` : ""}`,
      ...(ref.url ? [ref.url] : []),
    ];
    const forge = ref.forge ?? (p.success ? p.data.forge : undefined);
    if (ref.jobId === undefined || !forge) {
      return { text: [...head, "(no job log: the failure names no job or no forge)"].join("\n") };
    }
    try {
      const raw = await this.host(forge).jobLog(String(ref.jobId), signal);
      const t = trimLog(this.#redact(raw), { maxBytes: this.#o.cfg.ORCH_CI_LOG_MAX_BYTES });
      const what = t.truncated ? `its useful tail: ${t.keptLines} of ${t.totalLines} lines` : `${t.totalLines} lines`;
      return { text: [...head, `The failing job's log (${what}):`, "```text", t.text, "```"].join("\n"), keptLines: t.keptLines, totalLines: t.totalLines };
    } catch (err) {
      if (signal?.aborted) throw err;
      const e = this.stepError(err);
      log.warn({ code: e.code, jobId: ref.jobId }, `could not fetch the failing job's log: ${e.message}`);
      return { text: [...head, `(the job's log could not be fetched: ${e.message})`].join("\n") };
    }
  }

  /**
   * After a session that succeeded: pushes the run's branch when the item asks for it (`push: true`
   * or a CI fix attempt). Undefined when it does not. The token is the forge's the payload names,
   * else the project's (a forge set on the project, say with its own `apiUrl`, is known to no
   * origin-URL rule), else the one the origin URL names.
   */
  async pushAfterSession(item: WorkItem, repo: string, runBranch: string, log: Logger): Promise<PushResult | undefined> {
    const p = SessionForgePayload.safeParse(item.payload ?? {});
    if (!p.success || !(p.data.push === true || p.data.ciFailure)) return undefined;
    const forge = p.data.forge ?? p.data.ciFailure?.forge ?? (await this.#o.project(item.projectId))?.forge ?? (await this.#originForge(repo));
    return this.push(repo, runBranch, forge, log);
  }

  /** A failure as the step error the hub reports, its message redacted. */
  stepError(err: unknown): StepError {
    const e = err as { code?: unknown; message?: unknown; retryable?: unknown };
    const code = typeof e?.code === "string" && /^[A-Z][A-Z0-9_]*$/.test(e.code) ? e.code : StepErrorCode.ForgeError;
    const message = this.#redact(typeof e?.message === "string" ? e.message : String(err)).slice(0, 10_000);
    return { code, message, retryable: typeof e?.retryable === "boolean" ? e.retryable : true };
  }

  async #originForge(repo: string): Promise<ProjectForge | undefined> {
    const origin = await this.#o.git.remoteUrl(repo, "origin");
    if (!origin) return undefined;
    const hosts: Record<string, ForgeProvider> = {};
    const urls = apiUrlsOf(this.#o.cfg);
    for (const provider of ["github", "gitlab"] as const) {
      const u = urls[provider];
      if (u) for (const h of gitHostsFor(u)) hosts[h] = provider;
    }
    return forgeFromOrigin(origin, hosts);
  }

  #invalid(item: WorkItem, error: z.ZodError): AdapterResult {
    const issues = error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; ");
    const message = `invalid ${item.type} payload: ${issues}`;
    return { ok: false, notes: [message], error: { code: StepErrorCode.ForgeError, message, retryable: false } };
  }
}

export interface ForgeStepOptions {
  bus: Bus;
  logger: Logger;
  signal: AbortSignal;
}

/**
 * Runs one dispatched forge step and reports its result to the core (idempotent by attempt id); a
 * `pr.sync` sends signals instead, and only while the run's view names it.
 */
export async function runForgeStep(item: WorkItem, forge: ForgeService, opts: ForgeStepOptions, correlationId?: string): Promise<void> {
  if (item.type === ForgeStepType.Update) return runPrUpdateStep(item, forge, opts, correlationId);
  if (item.type === ForgeStepType.Sync) {
    await runPrSync(item, {
      send: async (cmd) => {
        await retryWhileUnavailable(() => sendCommand(opts.bus, cmd, correlationId ? { correlationId } : {}), { deadlineMs: 30_000 });
      },
      logger: opts.logger,
      view: (runId) => getRunView(opts.bus, runId),
      observe: (payload, signal) => forge.observe(payload, signal),
      describe: (err) => forge.stepError(err).message,
      signal: opts.signal,
    });
    return;
  }
  const log = opts.logger.child({
    runId: item.runId,
    stepId: item.stepId,
    attemptId: item.attemptId,
    stepType: item.type,
    ...(correlationId ? { correlationId } : {}),
  });
  const startedAt = Date.now();
  const result = await forge.execute(item, log, opts.signal);
  await reportStepResult(opts.bus, item, result, startedAt, correlationId);
  log.info({ ok: result.ok, ms: Date.now() - startedAt, error: result.error?.code }, "forge step finished");
}
