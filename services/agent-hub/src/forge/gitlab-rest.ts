import { Jobs, MergeRequestApprovals, MergeRequestNotes, MergeRequests, Pipelines } from "@gitbeaker/rest";
import type { ProjectForge } from "@orch/contracts";
import type { Redactor } from "../harness/redact.js";
import { ForgeApiError } from "./errors.js";
import type { Check, CheckStatus, MergeOutcome, MergeRequest, OpenPullRequest, PullRequest, ReadyOutcome, RepositoryHost, Review } from "./types.js";

/**
 * `vcs_repos.gitlab_rest`: GitLab's REST API v4 through @gitbeaker/rest, at `apiUrl`
 * (`https://gitlab.com/api/v4`, or a self-managed `https://<host>/api/v4`). Merge requests, the
 * latest pipeline of a commit and its jobs, job traces, approvals and notes, merge.
 *
 * GitLab's words, mapped: a draft is a title starting `Draft: ` (marked ready: the title without it,
 * as `PUT …/merge_requests/:iid` takes it; the API has no draft attribute to set); `opened` is open; the merge method
 * is the project's setting (merge commit, semi-linear, fast-forward), so `squash` asks for a squash
 * and `merge` and `rebase` do not; reviews are approvals (`approved`), the "requested changes"
 * system note (`changes_requested`) and users' notes (`commented`, diff notes with path and line).
 */

export interface GitlabRestOptions {
  forge: ProjectForge;
  apiUrl: string;
  token: string;
  timeoutMs: number;
  redact: Redactor;
}

interface GitlabMr {
  iid: number;
  title?: string;
  web_url: string;
  state: string;
  draft?: boolean;
  work_in_progress?: boolean;
  source_branch: string;
  target_branch: string;
  sha?: string | null;
  merge_commit_sha?: string | null;
  squash_commit_sha?: string | null;
  detailed_merge_status?: string;
  merge_status?: string;
  has_conflicts?: boolean;
}

interface GitlabJob {
  id: number;
  name: string;
  status: string;
  web_url?: string;
  allow_failure?: boolean;
}

interface GitlabNote {
  id: number;
  body: string;
  system: boolean;
  author?: { username?: string };
  created_at?: string;
  type?: string | null;
  position?: { new_path?: string; new_line?: number | null; old_path?: string; old_line?: number | null } | null;
}

/** Merge statuses while GitLab is still working out whether it can merge. */
const MERGE_STATUS_PENDING = new Set(["unchecked", "checking", "preparing", "approvals_syncing"]);
/** The merge endpoint's refusals: 405 (cannot be merged now), 406 (conflicts), 409 (head moved), 422 (invalid). */
const MERGE_REFUSED = new Set([401, 405, 406, 409, 422]);
const JOB_PASSING = new Set(["success", "skipped", "manual"]);
const JOB_FAILING = new Set(["failed", "canceled"]);

const DRAFT_PREFIX = /^\s*(\[draft\]|\(draft\)|draft:|draft\s-\s|draft\s)/i;

export class GitlabRestHost implements RepositoryHost {
  readonly provider = "vcs_repos.gitlab_rest" as const;
  readonly forge: ProjectForge;
  readonly #project: string;
  readonly #redact: Redactor;
  readonly #mrs: InstanceType<typeof MergeRequests<false>>;
  readonly #pipelines: InstanceType<typeof Pipelines<false>>;
  readonly #jobs: InstanceType<typeof Jobs<false>>;
  readonly #approvals: InstanceType<typeof MergeRequestApprovals<false>>;
  readonly #notes: InstanceType<typeof MergeRequestNotes<false>>;

  constructor(opts: GitlabRestOptions) {
    this.forge = opts.forge;
    this.#project = opts.forge.repository;
    this.#redact = opts.redact;
    // gitbeaker appends `/api/v4` to its host itself.
    const host = opts.apiUrl.replace(/\/+$/, "").replace(/\/api\/v4$/, "");
    const o = { host, token: opts.token, queryTimeout: opts.timeoutMs } as const;
    this.#mrs = new MergeRequests(o);
    this.#pipelines = new Pipelines(o);
    this.#jobs = new Jobs(o);
    this.#approvals = new MergeRequestApprovals(o);
    this.#notes = new MergeRequestNotes(o);
  }

  async findOpenPullRequest(head: string): Promise<PullRequest | null> {
    const mrs = (await this.#call("list merge requests", () =>
      this.#mrs.all({ projectId: this.#project, sourceBranch: head, state: "opened", perPage: 20, maxPages: 1 }),
    )) as unknown as GitlabMr[];
    const match = mrs.find((m) => m.source_branch === head);
    return match ? this.#pr(match) : null;
  }

  async openPullRequest(req: OpenPullRequest): Promise<PullRequest> {
    const title = req.draft && !DRAFT_PREFIX.test(req.title) ? `Draft: ${req.title}` : req.title;
    const mr = (await this.#call("open a merge request", () =>
      this.#mrs.create(this.#project, req.head, req.base, title, { description: req.body }),
    )) as unknown as GitlabMr;
    return this.#pr(mr);
  }

  async getPullRequest(number: number): Promise<PullRequest> {
    const mr = (await this.#call(`get merge request !${number}`, () => this.#mrs.show(this.#project, number))) as unknown as GitlabMr;
    return this.#pr(mr);
  }

  async listChecks(sha: string): Promise<Check[]> {
    const pipelines = (await this.#call("list pipelines", () =>
      this.#pipelines.all(this.#project, { sha, orderBy: "id", sort: "desc", perPage: 1, maxPages: 1 }),
    )) as unknown as { id: number }[];
    const latest = pipelines[0];
    if (!latest) return [];
    const jobs = (await this.#call(`list the jobs of pipeline ${latest.id}`, () =>
      this.#jobs.all(this.#project, { pipelineId: latest.id, perPage: 100 }),
    )) as unknown as GitlabJob[];
    const byName = new Map<string, GitlabJob>();
    for (const j of jobs) {
      const prior = byName.get(j.name);
      if (!prior || prior.id < j.id) byName.set(j.name, j);
    }
    return [...byName.values()]
      .map((j): Check => {
        const status: CheckStatus =
          JOB_PASSING.has(j.status) || (JOB_FAILING.has(j.status) && j.allow_failure === true) ? "success" : JOB_FAILING.has(j.status) ? "failure" : "pending";
        return { name: j.name, status, conclusion: j.status, jobId: String(j.id), ...(j.web_url ? { url: j.web_url } : {}) };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async jobLog(jobId: string): Promise<string> {
    const trace: unknown = await this.#call(`get the trace of job ${jobId}`, () => this.#jobs.showLog(this.#project, Number(jobId)));
    if (typeof trace === "string") return trace;
    if (trace instanceof Blob) return await trace.text();
    return String(trace ?? "");
  }

  async listReviews(number: number): Promise<Review[]> {
    const [approvals, notes] = await Promise.all([
      this.#call(`get the approvals of !${number}`, () => this.#approvals.showConfiguration(this.#project, { mergerequestIId: number })) as Promise<unknown>,
      this.#call(`list the notes of !${number}`, () =>
        this.#notes.all(this.#project, number, { sort: "asc", orderBy: "created_at", perPage: 100 }),
      ) as Promise<unknown>,
    ]);
    const out: Review[] = [];
    const approvedBy = (approvals as { approved_by?: { user?: { username?: string } }[] }).approved_by ?? [];
    for (const a of approvedBy) {
      const who = a.user?.username ?? "unknown";
      out.push({ id: `approval:${who}`, state: "approved", author: who, body: "", comments: [] });
    }
    for (const n of notes as GitlabNote[]) {
      const author = n.author?.username ?? "unknown";
      if (n.system) {
        if (/^requested changes\b/i.test(n.body.trim())) {
          out.push({
            id: String(n.id),
            state: "changes_requested",
            author,
            body: n.body,
            comments: [],
            ...(n.created_at ? { submittedAt: n.created_at } : {}),
          });
        }
        continue;
      }
      const path = n.position?.new_path ?? n.position?.old_path;
      const line = n.position?.new_line ?? n.position?.old_line ?? undefined;
      out.push({
        id: String(n.id),
        state: "commented",
        author,
        body: n.body,
        comments: [{ body: n.body, ...(path ? { path } : {}), ...(line ? { line } : {}) }],
        ...(n.created_at ? { submittedAt: n.created_at } : {}),
      });
    }
    return out;
  }

  async merge(number: number, req: MergeRequest): Promise<MergeOutcome> {
    const before = await this.getPullRequest(number);
    if (before.merged) return { merged: true, ...(before.mergeCommitSha ? { sha: before.mergeCommitSha } : {}) };
    try {
      const mr = (await this.#call(`merge !${number}`, () =>
        this.#mrs.merge(this.#project, number, { squash: req.method === "squash", ...(req.sha ? { sha: req.sha } : {}) }),
      )) as unknown as GitlabMr;
      if (mr.state === "merged") {
        const sha = mr.merge_commit_sha ?? mr.squash_commit_sha ?? undefined;
        return { merged: true, ...(sha ? { sha } : {}) };
      }
      return { merged: false, message: `GitLab left it ${mr.state} (${mr.detailed_merge_status ?? mr.merge_status ?? "no merge status"})` };
    } catch (err) {
      if (err instanceof ForgeApiError && err.status !== undefined && MERGE_REFUSED.has(err.status) && err.status !== 401) {
        return { merged: false, message: err.hostMessage.slice(0, 2_000) };
      }
      throw err;
    }
  }

  async markReady(number: number): Promise<ReadyOutcome> {
    const mr = (await this.#call(`get merge request !${number}`, () => this.#mrs.show(this.#project, number))) as unknown as GitlabMr;
    const before = this.#pr(mr);
    if (before.state !== "open") return { ready: false, message: `merge request !${number} is ${before.state}` };
    if (!before.draft) return { ready: true };
    let title = mr.title ?? "";
    while (DRAFT_PREFIX.test(title)) title = title.replace(DRAFT_PREFIX, "").trimStart();
    if (!title) return { ready: false, message: `merge request !${number} has no title but its draft prefix` };
    const after = (await this.#call(`mark merge request !${number} ready`, () => this.#mrs.edit(this.#project, number, { title }))) as unknown as GitlabMr;
    return this.#pr(after).draft ? { ready: false, message: "GitLab left it a draft" } : { ready: true };
  }

  async comment(number: number, body: string): Promise<void> {
    await this.#call(`comment on !${number}`, () => this.#notes.create(this.#project, number, body));
  }

  #pr(mr: GitlabMr): PullRequest {
    const merged = mr.state === "merged";
    const status = mr.detailed_merge_status ?? mr.merge_status ?? "";
    const mergeable = merged ? false : MERGE_STATUS_PENDING.has(status) ? null : status === "mergeable" || status === "can_be_merged";
    const mergeCommitSha = mr.merge_commit_sha ?? mr.squash_commit_sha ?? undefined;
    return {
      provider: "gitlab",
      repository: this.forge.repository,
      number: mr.iid,
      url: mr.web_url,
      head: mr.source_branch,
      base: mr.target_branch,
      ...(mr.sha ? { headSha: mr.sha } : {}),
      state: merged ? "merged" : mr.state === "opened" ? "open" : "closed",
      draft: mr.draft === true || mr.work_in_progress === true,
      mergeable,
      merged,
      ...(merged && mergeCommitSha ? { mergeCommitSha } : {}),
    };
  }

  async #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const e = err as { message?: unknown; cause?: { description?: unknown; response?: { status?: unknown } } };
      const status = typeof e.cause?.response?.status === "number" ? e.cause.response.status : undefined;
      const raw =
        typeof e.cause?.description === "string" && e.cause.description ? e.cause.description : typeof e.message === "string" ? e.message : String(err);
      throw new ForgeApiError(operation, this.#redact(raw), status);
    }
  }
}
