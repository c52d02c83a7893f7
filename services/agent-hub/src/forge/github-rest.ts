import { Octokit } from "@octokit/rest";
import type { ProjectForge } from "@orch/contracts";
import type { Redactor } from "../harness/redact.js";
import { ForgeApiError } from "./errors.js";
import {
  MARK_READY_MUTATION,
  MERGE_REFUSED_STATUSES,
  checksFromRest,
  githubGraphqlUrl,
  ownerRepo,
  pullFromRest,
  reviewsFromRest,
  type RestCheckRun,
  type RestPull,
  type RestReview,
  type RestReviewComment,
  type RestStatus,
} from "./github-shapes.js";
import type { Check, MergeOutcome, MergeRequest, OpenPullRequest, PullRequest, ReadyOutcome, RepositoryHost, Review } from "./types.js";

/**
 * `vcs_repos.github_rest`: GitHub's REST API v3 through Octokit, at `apiUrl` (api.github.com, or a
 * GitHub Enterprise `https://<host>/api/v3`). Lists are paginated by the `link` header. Marking a
 * draft ready is GraphQL's `markPullRequestReadyForReview` (REST cannot), at `githubGraphqlUrl`. Every
 * failure becomes a ForgeApiError carrying the host's message (redacted) and status, never the
 * request (whose headers hold the token).
 */

export interface GithubRestOptions {
  forge: ProjectForge;
  apiUrl: string;
  token: string;
  timeoutMs: number;
  redact: Redactor;
}

export class GithubRestHost implements RepositoryHost {
  readonly provider = "vcs_repos.github_rest" as const;
  readonly forge: ProjectForge;
  readonly #octokit: Octokit;
  readonly #graphql: Octokit["graphql"];
  readonly #repo: { owner: string; repo: string };
  readonly #redact: Redactor;
  readonly #timeoutMs: number;

  constructor(opts: GithubRestOptions) {
    this.forge = opts.forge;
    this.#repo = ownerRepo(opts.forge);
    this.#redact = opts.redact;
    this.#timeoutMs = opts.timeoutMs;
    this.#octokit = new Octokit({
      auth: opts.token,
      baseUrl: opts.apiUrl,
      userAgent: "orchestrator-agent-hub",
      // Octokit logs warnings and errors to the console by default: ours go through our logger.
      log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
      request: { retries: 0 },
    });
    this.#graphql = this.#octokit.graphql.defaults({ url: githubGraphqlUrl(opts.apiUrl) });
  }

  async findOpenPullRequest(head: string, signal?: AbortSignal): Promise<PullRequest | null> {
    const pulls = await this.#call(
      "list pull requests",
      (request) => this.#octokit.rest.pulls.list({ ...this.#repo, head: `${this.#repo.owner}:${head}`, state: "open", per_page: 10, request }),
      signal,
    );
    const match = (pulls.data as RestPull[]).find((p) => p.head.ref === head);
    return match ? pullFromRest(match, this.forge) : null;
  }

  async openPullRequest(req: OpenPullRequest, signal?: AbortSignal): Promise<PullRequest> {
    const r = await this.#call(
      "open a pull request",
      (request) =>
        this.#octokit.rest.pulls.create({ ...this.#repo, title: req.title, body: req.body, head: req.head, base: req.base, draft: req.draft, request }),
      signal,
    );
    return pullFromRest(r.data as RestPull, this.forge);
  }

  async getPullRequest(number: number, signal?: AbortSignal): Promise<PullRequest> {
    const r = await this.#call(
      `get pull request #${number}`,
      (request) => this.#octokit.rest.pulls.get({ ...this.#repo, pull_number: number, request }),
      signal,
    );
    return pullFromRest(r.data as RestPull, this.forge);
  }

  async listChecks(sha: string, signal?: AbortSignal): Promise<Check[]> {
    const [runs, statuses] = await Promise.all([
      this.#call(
        "list check runs",
        (request) => this.#octokit.paginate(this.#octokit.rest.checks.listForRef, { ...this.#repo, ref: sha, per_page: 100, request }),
        signal,
      ),
      this.#call(
        "get the combined status",
        (request) => this.#octokit.rest.repos.getCombinedStatusForRef({ ...this.#repo, ref: sha, per_page: 100, request }),
        signal,
      ),
    ]);
    return checksFromRest(runs as RestCheckRun[], statuses.data.statuses as RestStatus[]);
  }

  async jobLog(jobId: string, signal?: AbortSignal): Promise<string> {
    // Answered with a redirect to the log's storage, which fetch follows (without our Authorization
    // header when it is another origin).
    const r = await this.#call(
      `download the log of job ${jobId}`,
      (request) => this.#octokit.rest.actions.downloadJobLogsForWorkflowRun({ ...this.#repo, job_id: Number(jobId), request }),
      signal,
    );
    const data: unknown = r.data;
    if (typeof data === "string") return data;
    if (data instanceof ArrayBuffer) return Buffer.from(data).toString("utf8");
    return typeof data === "object" && data !== null ? JSON.stringify(data) : String(data);
  }

  async listReviews(number: number, signal?: AbortSignal): Promise<Review[]> {
    const [reviews, comments] = await Promise.all([
      this.#call(
        `list the reviews of #${number}`,
        (request) => this.#octokit.paginate(this.#octokit.rest.pulls.listReviews, { ...this.#repo, pull_number: number, per_page: 100, request }),
        signal,
      ),
      this.#call(
        `list the review comments of #${number}`,
        (request) => this.#octokit.paginate(this.#octokit.rest.pulls.listReviewComments, { ...this.#repo, pull_number: number, per_page: 100, request }),
        signal,
      ),
    ]);
    return reviewsFromRest(reviews as RestReview[], comments as RestReviewComment[]);
  }

  async merge(number: number, req: MergeRequest, signal?: AbortSignal): Promise<MergeOutcome> {
    // Merged already (a retry after a merge whose answer was lost): that is the answer.
    const pr = await this.getPullRequest(number, signal);
    if (pr.merged) return { merged: true, ...(pr.mergeCommitSha ? { sha: pr.mergeCommitSha } : {}) };
    try {
      const r = await this.#call(
        `merge pull request #${number}`,
        (request) =>
          this.#octokit.rest.pulls.merge({ ...this.#repo, pull_number: number, merge_method: req.method, ...(req.sha ? { sha: req.sha } : {}), request }),
        signal,
      );
      return r.data.merged ? { merged: true, sha: r.data.sha } : { merged: false, message: this.#redact(r.data.message).slice(0, 2_000) };
    } catch (err) {
      if (err instanceof ForgeApiError && err.status !== undefined && MERGE_REFUSED_STATUSES.has(err.status)) {
        return { merged: false, message: err.hostMessage.slice(0, 2_000) };
      }
      throw err;
    }
  }

  async markReady(number: number, signal?: AbortSignal): Promise<ReadyOutcome> {
    const r = await this.#call(
      `get pull request #${number}`,
      (request) => this.#octokit.rest.pulls.get({ ...this.#repo, pull_number: number, request }),
      signal,
    );
    const raw = r.data as RestPull;
    const pr = pullFromRest(raw, this.forge);
    if (pr.state !== "open") return { ready: false, message: `pull request #${number} is ${pr.state}` };
    if (!pr.draft) return { ready: true };
    if (!raw.node_id) return { ready: false, message: `GitHub gave no node_id for pull request #${number}` };
    const nodeId = raw.node_id;
    type Marked = { markPullRequestReadyForReview?: { pullRequest?: { isDraft?: boolean } } };
    const out = await this.#call(
      `mark pull request #${number} ready for review`,
      async (request): Promise<{ data?: Marked; errors?: string[] }> => {
        try {
          return { data: await this.#graphql<Marked>(MARK_READY_MUTATION, { pullRequestId: nodeId, request }) };
        } catch (err) {
          // GraphQL answers a refusal with 200 and `errors` (octokit's GraphqlResponseError): an answer, not a failure.
          const e = err as { name?: unknown; errors?: { message?: unknown }[] };
          if (e.name === "GraphqlResponseError" && Array.isArray(e.errors))
            return { errors: e.errors.map((x) => (typeof x?.message === "string" ? x.message : "error")) };
          throw err;
        }
      },
      signal,
    );
    if (out.errors) return { ready: false, message: this.#redact(out.errors.join("; ")).slice(0, 2_000) };
    const isDraft = out.data?.markPullRequestReadyForReview?.pullRequest?.isDraft;
    return isDraft === false ? { ready: true } : { ready: false, message: "GitHub left it a draft" };
  }

  async comment(number: number, body: string, signal?: AbortSignal): Promise<void> {
    await this.#call(
      `comment on #${number}`,
      (request) => this.#octokit.rest.issues.createComment({ ...this.#repo, issue_number: number, body, request }),
      signal,
    );
  }

  async #call<T>(operation: string, fn: (request: { signal: AbortSignal }) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    try {
      return await fn({ signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      const e = err as { status?: unknown; message?: unknown; response?: { data?: unknown } };
      const status = typeof e.status === "number" && e.status > 0 ? e.status : undefined;
      const message = timeout.aborted
        ? `no answer within ${this.#timeoutMs} ms`
        : (hostMessage(e.response?.data) ?? (typeof e.message === "string" ? e.message : String(err)));
      throw new ForgeApiError(operation, this.#redact(message), status);
    }
  }
}

/** GitHub's own words in an error body: `message`, and the `errors[].message` of a validation failure. */
export function hostMessage(data: unknown): string | undefined {
  if (typeof data !== "object" || data === null) return undefined;
  const d = data as { message?: unknown; errors?: unknown };
  if (typeof d.message !== "string") return undefined;
  const details = Array.isArray(d.errors)
    ? d.errors
        .map((x: { message?: unknown; field?: unknown; code?: unknown }) =>
          typeof x?.message === "string" ? x.message : [x?.field, x?.code].filter(Boolean).join(" "),
        )
        .filter(Boolean)
    : [];
  return details.length > 0 ? `${d.message}: ${details.join("; ")}` : d.message;
}
