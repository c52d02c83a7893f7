import type { ProjectForge } from "@orch/contracts";
import { ForgeRequestError } from "./errors.js";
import type { Check, CheckStatus, PullRequest, Review, ReviewComment, ReviewState } from "./types.js";

/**
 * GitHub's REST v3 shapes (pulls, check runs, commit statuses, reviews, review comments) turned
 * into ours. Shared by `vcs_repos.github_rest` (Octokit) and `vcs_repos.github_gh_cli`, whose
 * `gh api` prints the same JSON.
 */

export interface RestPull {
  number: number;
  /** The pull request's GraphQL id (what `markPullRequestReadyForReview` takes). */
  node_id?: string;
  html_url: string;
  state: string;
  draft?: boolean;
  merged?: boolean;
  merged_at?: string | null;
  mergeable?: boolean | null;
  merge_commit_sha?: string | null;
  head: { ref: string; sha: string };
  base: { ref: string };
}

export function pullFromRest(p: RestPull, forge: ProjectForge): PullRequest {
  const merged = p.merged === true || (p.merged_at !== undefined && p.merged_at !== null);
  return {
    provider: "github",
    repository: forge.repository,
    number: p.number,
    url: p.html_url,
    head: p.head.ref,
    base: p.base.ref,
    ...(p.head.sha ? { headSha: p.head.sha } : {}),
    state: merged ? "merged" : p.state === "open" ? "open" : "closed",
    draft: p.draft === true,
    mergeable: p.mergeable ?? null,
    merged,
    ...(merged && p.merge_commit_sha ? { mergeCommitSha: p.merge_commit_sha } : {}),
  };
}

export interface RestCheckRun {
  id: number;
  name: string;
  status: string;
  conclusion: string | null;
  html_url?: string | null;
  details_url?: string | null;
}

export interface RestStatus {
  id: number;
  context: string;
  state: string;
  target_url?: string | null;
}

const PASSING = new Set(["success", "neutral", "skipped"]);

function runStatus(r: RestCheckRun): CheckStatus {
  if (r.status !== "completed") return "pending";
  return PASSING.has(r.conclusion ?? "") ? "success" : "failure";
}

/** Check runs and commit statuses as one list; several of one name: the latest (highest id). */
export function checksFromRest(runs: readonly RestCheckRun[], statuses: readonly RestStatus[]): Check[] {
  const byName = new Map<string, { id: number; check: Check }>();
  const put = (id: number, check: Check) => {
    const prior = byName.get(check.name);
    if (!prior || prior.id < id) byName.set(check.name, { id, check });
  };
  for (const r of runs) {
    const url = r.html_url ?? r.details_url ?? undefined;
    put(r.id, {
      name: r.name,
      status: runStatus(r),
      ...(r.conclusion ? { conclusion: r.conclusion } : { conclusion: r.status }),
      jobId: String(r.id),
      ...(url ? { url } : {}),
    });
  }
  for (const s of statuses) {
    const status: CheckStatus = s.state === "success" ? "success" : s.state === "pending" ? "pending" : "failure";
    put(s.id, { name: s.context, status, conclusion: s.state, ...(s.target_url ? { url: s.target_url } : {}) });
  }
  return [...byName.values()].map((v) => v.check).sort((a, b) => a.name.localeCompare(b.name));
}

export interface RestReview {
  id: number;
  user: { login: string } | null;
  body: string | null;
  state: string;
  submitted_at?: string | null;
  /** The commit the review is of. */
  commit_id?: string | null;
}

export interface RestReviewComment {
  pull_request_review_id: number | null;
  body: string;
  path?: string;
  line?: number | null;
  original_line?: number | null;
}

const REVIEW_STATE: Record<string, ReviewState> = { APPROVED: "approved", CHANGES_REQUESTED: "changes_requested", COMMENTED: "commented" };

/** Submitted reviews (pending and dismissed ones left out), each with its line comments. */
export function reviewsFromRest(reviews: readonly RestReview[], comments: readonly RestReviewComment[]): Review[] {
  const byReview = new Map<number, ReviewComment[]>();
  for (const c of comments) {
    if (c.pull_request_review_id === null) continue;
    const line = c.line ?? c.original_line ?? undefined;
    const list = byReview.get(c.pull_request_review_id) ?? [];
    list.push({ body: c.body, ...(c.path ? { path: c.path } : {}), ...(line ? { line } : {}) });
    byReview.set(c.pull_request_review_id, list);
  }
  const out: Review[] = [];
  for (const r of reviews) {
    const state = REVIEW_STATE[r.state];
    if (!state) continue;
    out.push({
      id: String(r.id),
      state,
      author: r.user?.login ?? "ghost",
      body: r.body ?? "",
      comments: byReview.get(r.id) ?? [],
      ...(r.submitted_at ? { submittedAt: r.submitted_at } : {}),
      ...(r.commit_id ? { sha: r.commit_id } : {}),
    });
  }
  return out;
}

/**
 * GitHub's GraphQL endpoint for a REST base: `https://api.github.com` → `https://api.github.com/graphql`;
 * GitHub Enterprise's `https://<host>/api/v3` → `https://<host>/api/graphql`; any other base (a
 * local test server) → `<base>/graphql`.
 */
export function githubGraphqlUrl(apiUrl: string): string {
  const base = apiUrl.replace(/\/+$/, "");
  return /\/api\/v3$/.test(base) ? base.replace(/\/api\/v3$/, "/api/graphql") : `${base}/graphql`;
}

/** The mutation that marks a draft ready for review (GitHub's REST API cannot). */
export const MARK_READY_MUTATION = `mutation MarkPullRequestReadyForReview($pullRequestId: ID!) {
  markPullRequestReadyForReview(input: { pullRequestId: $pullRequestId }) {
    pullRequest { isDraft }
  }
}`;

/** `owner/name` split, for the REST paths. */
export function ownerRepo(forge: ProjectForge): { owner: string; repo: string } {
  const [owner, repo, ...rest] = forge.repository.split("/");
  if (!owner || !repo || rest.length > 0) throw new ForgeRequestError(`not a GitHub repository (owner/name): ${forge.repository}`);
  return { owner, repo };
}

/** A merge the host refused: GitHub answers 405 (not mergeable), 409 (head moved) or 422 (invalid). */
export const MERGE_REFUSED_STATUSES: ReadonlySet<number> = new Set([405, 409, 422]);
