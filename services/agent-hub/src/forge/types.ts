import type { MergeMethod, ProjectForge, PrMergeOutput, PrReadyOutput, PullRequestRecord, VcsRepoProvider } from "@orch/contracts";

/**
 * A repository host as the agent hub uses it (seed 003's `vcs_repos` providers): pull requests
 * (GitLab: merge requests) found, opened, read and merged; the checks of a commit, a failing job's
 * log, reviews, comments. Every provider answers in these shapes, so nothing above this line knows
 * which host or client it talks to.
 */

/** A pull request as the host reports it now. */
export interface PullRequest extends PullRequestRecord {
  /** Whether the host would merge it now: null while it is still computing that (GitHub). */
  mergeable: boolean | null;
  merged: boolean;
  /** The commit its merge made on the base, once merged. */
  mergeCommitSha?: string;
}

export const CHECK_STATUSES = ["success", "failure", "pending"] as const;
export type CheckStatus = (typeof CHECK_STATUSES)[number];

/** One check of a commit: a GitHub check run or commit status, a GitLab pipeline job. */
export interface Check {
  name: string;
  status: CheckStatus;
  /** The host's own conclusion or status word (`timed_out`, `canceled`, `skipped`, …). */
  conclusion?: string;
  /** The job whose log can be fetched (GitHub Actions job / check run id, GitLab job id); absent for plain statuses. */
  jobId?: string;
  url?: string;
}

export const REVIEW_STATES = ["approved", "changes_requested", "commented"] as const;
export type ReviewState = (typeof REVIEW_STATES)[number];

export interface ReviewComment {
  body: string;
  path?: string;
  line?: number;
}

export interface Review {
  id: string;
  state: ReviewState;
  author: string;
  body: string;
  comments: ReviewComment[];
  submittedAt?: string;
  /** The commit it is a review of, when the host says (GitHub's `commit_id`; GitLab's approvals do not). */
  sha?: string;
}

export interface OpenPullRequest {
  title: string;
  body: string;
  /** The run's branch. */
  head: string;
  base: string;
  draft: boolean;
}

export interface MergeRequest {
  method: MergeMethod;
  /** Merge only if the head is still this commit. */
  sha?: string;
}

/** A merge the host refused is an answer (`merged: false` with its reason), not an error. */
export type MergeOutcome = PrMergeOutput;

/** Likewise a pull request the host would not mark ready (closed, merged): `ready: false` with why. */
export type ReadyOutcome = PrReadyOutput;

export interface RepositoryHost {
  readonly provider: VcsRepoProvider;
  readonly forge: ProjectForge;
  /** The pull request open for `head` (the run's branch), if any. */
  findOpenPullRequest(head: string, signal?: AbortSignal): Promise<PullRequest | null>;
  openPullRequest(req: OpenPullRequest, signal?: AbortSignal): Promise<PullRequest>;
  getPullRequest(number: number, signal?: AbortSignal): Promise<PullRequest>;
  /** The checks of a commit, normalized (several runs of one name: the latest). */
  listChecks(sha: string, signal?: AbortSignal): Promise<Check[]>;
  /** A job's whole log, as the host serves it (see `trimLog` for what an agent is given). */
  jobLog(jobId: string, signal?: AbortSignal): Promise<string>;
  listReviews(number: number, signal?: AbortSignal): Promise<Review[]>;
  merge(number: number, req: MergeRequest, signal?: AbortSignal): Promise<MergeOutcome>;
  /** Marks a draft ready for review; one that is ready already is `ready: true`, and nothing is changed. */
  markReady(number: number, signal?: AbortSignal): Promise<ReadyOutcome>;
  comment(number: number, body: string, signal?: AbortSignal): Promise<void>;
}
