import { z } from "zod";

/**
 * Forges: the hosts a project's repository lives on (GitHub, GitLab), the providers that talk to
 * them (seed 003's `vcs_repos` factory), and what the system records of a pull request (GitLab: a
 * merge request). The core records; the agent hub does the forge I/O; the gateway turns webhook
 * deliveries into signals.
 */

export const FORGE_PROVIDERS = ["github", "gitlab"] as const;
export type ForgeProvider = (typeof FORGE_PROVIDERS)[number];

/** The repository-host providers (config `vcs_repo_provider`, CLI `--vcs-repo-provider`). */
export const VCS_REPO_PROVIDERS = ["vcs_repos.github_rest", "vcs_repos.github_gh_cli", "vcs_repos.gitlab_rest"] as const;
export type VcsRepoProvider = (typeof VCS_REPO_PROVIDERS)[number];

/** Which forge each provider speaks to. */
export const VCS_REPO_PROVIDER_FORGE: Readonly<Record<VcsRepoProvider, ForgeProvider>> = Object.freeze({
  "vcs_repos.github_rest": "github",
  "vcs_repos.github_gh_cli": "github",
  "vcs_repos.gitlab_rest": "gitlab",
});

/** Where each forge's token comes from, in order: the environment only, never config or a request. */
export const FORGE_TOKEN_ENV: Readonly<Record<ForgeProvider, readonly string[]>> = Object.freeze({
  github: Object.freeze(["GITHUB_TOKEN", "GH_TOKEN"]),
  gitlab: Object.freeze(["GITLAB_TOKEN"]),
});

/** The public API of each forge (overridden by `ORCH_GITHUB_API_URL`, `ORCH_GITLAB_API_URL`, or a project's `apiUrl`). */
export const FORGE_DEFAULT_API_URL: Readonly<Record<ForgeProvider, string>> = Object.freeze({
  github: "https://api.github.com",
  gitlab: "https://gitlab.com/api/v4",
});

/** `owner/name` on GitHub; the project path (`group/subgroup/name`) on GitLab. */
export const ForgeRepository = z
  .string()
  .min(3)
  .max(255)
  .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$/, "expected owner/name (GitLab: the project path)");

/** A project's forge: set on the project, or derived from its origin URL (`forgeFromOrigin`). */
export const ProjectForge = z.strictObject({
  provider: z.enum(FORGE_PROVIDERS),
  repository: ForgeRepository,
  /** The API base for GitHub Enterprise or self-managed GitLab; absent: the provider's default or configured one. */
  apiUrl: z
    .url({ protocol: /^https?$/ })
    .max(2_048)
    .optional(),
});
export type ProjectForge = z.infer<typeof ProjectForge>;

export const PULL_REQUEST_STATES = ["open", "closed", "merged"] as const;
export type PullRequestState = (typeof PULL_REQUEST_STATES)[number];

export const MERGE_METHODS = ["merge", "squash", "rebase"] as const;
export type MergeMethod = (typeof MERGE_METHODS)[number];

/**
 * A project's merge settings: whether its runs' pull requests are merged by the system once approved
 * and green (the definition's `pullRequests.merge` enables it too), how, and whether through the merge
 * queue of their base. A run gets them at its creation; the project's `method` wins over the
 * definition's.
 */
export const ProjectMerge = z.strictObject({
  enabled: z.boolean().optional(),
  method: z.enum(MERGE_METHODS).optional(),
  queue: z.boolean().optional(),
});
export type ProjectMerge = z.infer<typeof ProjectMerge>;

/** A pull request as the system records it on a run (and as `pr.opened` announces it). */
export const PullRequestRecord = z.object({
  provider: z.enum(FORGE_PROVIDERS),
  repository: ForgeRepository,
  number: z.int().min(1),
  url: z.string().max(2_048),
  /** The run's branch (the PR's head) and the branch it merges into. */
  head: z.string().max(255),
  base: z.string().max(255),
  headSha: z
    .string()
    .regex(/^[0-9a-f]{7,64}$/)
    .optional(),
  state: z.enum(PULL_REQUEST_STATES),
  draft: z.boolean().optional(),
});
export type PullRequestRecord = z.infer<typeof PullRequestRecord>;

/**
 * The forge a remote URL points at, or undefined: github.com and gitlab.com, and the enterprise or
 * self-managed hosts given (host → provider). https, ssh (`git@host:path`, `ssh://`) and git URLs.
 */
export function forgeFromOrigin(origin: string, hosts: Readonly<Record<string, ForgeProvider>> = {}): ProjectForge | undefined {
  const known: Record<string, ForgeProvider> = { "github.com": "github", "gitlab.com": "gitlab", ...lowerKeys(hosts) };
  let host: string;
  let path: string;
  const scp = /^(?:[^@/\s]+@)?([^:/\s]+):(?!\/)(.+)$/.exec(origin);
  if (scp && !/^[a-z][a-z0-9+.-]*:\/\//i.test(origin)) {
    host = scp[1]!;
    path = scp[2]!;
  } else {
    let u: URL;
    try {
      u = new URL(origin);
    } catch {
      return undefined;
    }
    host = u.host;
    path = u.pathname;
  }
  const provider = known[host.toLowerCase()] ?? known[host.toLowerCase().replace(/:\d+$/, "")];
  if (!provider) return undefined;
  const repository = path
    .replace(/^\/+/, "")
    .replace(/\/+$/, "")
    .replace(/\.git$/, "");
  const parsed = ForgeRepository.safeParse(repository);
  if (!parsed.success) return undefined;
  if (provider === "github" && repository.split("/").length !== 2) return undefined;
  return { provider, repository };
}

function lowerKeys<T>(o: Readonly<Record<string, T>>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.toLowerCase(), v]));
}

/**
 * Forge work: steps the core dispatches to the agent hub like any step, whose work is forge I/O
 * (push, API calls) rather than an agent's. The core decides and composes what goes in (title and
 * body from the run, the base, draft or not, the merge method); the hub pushes and calls the forge.
 */
export const ForgeStepType = { Open: "pr.open", Ready: "pr.ready", Merge: "pr.merge", Sync: "pr.sync", Update: "pr.update" } as const;
export type ForgeStepType = (typeof ForgeStepType)[keyof typeof ForgeStepType];
export const FORGE_STEP_TYPES: readonly ForgeStepType[] = Object.values(ForgeStepType);

/** `pr.open`: push the run's branch, then find the PR open for it or open one (never two). */
export const PrOpenPayload = z.object({
  forge: ProjectForge,
  /** What it merges into; absent: the project's base branch. */
  base: z.string().min(1).max(255).optional(),
  draft: z.boolean().default(false),
  title: z.string().min(1).max(256),
  body: z.string().max(65_536),
});
export type PrOpenPayload = z.infer<typeof PrOpenPayload>;

export const PrOpenOutput = z.object({
  pullRequest: PullRequestRecord,
  /** false: it was already open for the branch (a retry, a redelivery, a crash after creating it). */
  created: z.boolean(),
});
export type PrOpenOutput = z.infer<typeof PrOpenOutput>;

/**
 * `pr.ready`: mark the run's draft PR ready for review (GitHub: the GraphQL mutation
 * `markPullRequestReadyForReview`, REST cannot; GitLab: the `Draft:` prefix taken off the merge
 * request's title). One that is ready already is `ready: true`.
 */
export const PrReadyPayload = z.object({
  forge: ProjectForge,
  number: z.int().min(1),
});
export type PrReadyPayload = z.infer<typeof PrReadyPayload>;

export const PrReadyOutput = z.object({
  ready: z.boolean(),
  /** Why not, as the host says (closed, merged, not allowed). */
  message: z.string().max(2_000).optional(),
});
export type PrReadyOutput = z.infer<typeof PrReadyOutput>;

/** `pr.merge`: merge the run's PR through the host, if its head is still `sha` (when given). */
export const PrMergePayload = z.object({
  forge: ProjectForge,
  number: z.int().min(1),
  method: z.enum(MERGE_METHODS).default("squash"),
  sha: z
    .string()
    .regex(/^[0-9a-f]{7,64}$/)
    .optional(),
});
export type PrMergePayload = z.infer<typeof PrMergePayload>;

export const PrMergeOutput = z.object({
  merged: z.boolean(),
  /** The merge commit on the base. */
  sha: z.string().max(64).optional(),
  /** Why not, as the host says (not mergeable, head moved, checks pending, …). */
  message: z.string().max(2_000).optional(),
});
export type PrMergeOutput = z.infer<typeof PrMergeOutput>;

/**
 * `pr.sync` (work of kind `sync`, not a step of the run): the polling fallback. The core dispatches
 * one each time the run's poll timer fires while its PR is open (every `ORCH_PR_POLL_INTERVAL_SECS`);
 * the hub reads the PR's checks, reviews and state from the host and sends what the run's view does
 * not hold yet as signals (`ci_report`, `review_report`, `pr_merged`, `pr_closed`), with command ids
 * made from each fact, so a redelivered sync sends nothing new and what a webhook already reported
 * (in the view) is not sent again. It answers no step result. A sync is current while the
 * run's view says `pullRequest.sync.attemptId` is its attempt id and the PR is open.
 */
export const PrSyncPayload = z.object({
  forge: ProjectForge,
  number: z.int().min(1),
  /** The run's branch (the PR's head). */
  head: z.string().max(255).optional(),
});
export type PrSyncPayload = z.infer<typeof PrSyncPayload>;

/**
 * A failing check a fix attempt is about (in its work item's `payload.ciFailure`): the hub fetches
 * that job's log (GitHub Actions job logs, GitLab job trace), trims it to its useful tail and gives
 * it to the agent with the feedback.
 */
export const CiFailureRef = z.object({
  provider: z.enum(FORGE_PROVIDERS),
  forge: ProjectForge.optional(),
  check: z.string().max(256).optional(),
  /** The host's job id (GitHub check run / Actions job id, GitLab job id). */
  jobId: z.union([z.int().min(1), z.string().regex(/^\d{1,20}$/)]).optional(),
  sha: z.string().max(64).optional(),
  url: z.string().max(2_048).optional(),
  conclusion: z.string().max(64).optional(),
});
export type CiFailureRef = z.infer<typeof CiFailureRef>;

/**
 * What the core adds to the payload of a session step's work (an agent's step, not a forge step) of
 * a run with a pull request, for the hub to act on:
 *
 *   push       true while the run's PR is open: after the session commits, push the run's branch to
 *              origin (never forced), so a fix reaches the PR and CI runs again
 *   ciFailure  on a CI fix attempt: the failing check, whose job log the hub fetches and gives to the
 *              agent with the feedback
 */
export const ForgeWorkPayload = z.object({
  push: z.boolean().optional(),
  ciFailure: CiFailureRef.optional(),
});
export type ForgeWorkPayload = z.infer<typeof ForgeWorkPayload>;

/**
 * `pr.update` (work of kind `sync`, answered with the signal `mq_updated`, not a step result): the
 * merge queue's turn for a run. The hub fetches the base, brings the run's branch up to it
 * (`rebase`: rebased and pushed with a lease, when the hub may force-push (ORCH_GIT_ALLOW_FORCE_PUSH);
 * otherwise `merge`: the base merged into the branch, a plain push), and answers with the new head,
 * the strategy used, and the PR's change before (at `approvedSha`, against its merge base) and
 * after as `git patch-id --stable`: equal, the approval still covers what will merge; different, the
 * core asks for approval again. A conflict is answered with its files (the update is abandoned,
 * the branch left as it was).
 */
export const PrUpdatePayload = z.object({
  forge: ProjectForge,
  number: z.int().min(1),
  /** The run's branch (the PR's head) and what it merges into. */
  head: z.string().min(1).max(255),
  base: z.string().min(1).max(255),
  /** The commit the PR's approval was given at (its head then); absent: the branch's head now. */
  approvedSha: z
    .string()
    .regex(/^[0-9a-f]{7,64}$/)
    .optional(),
  strategy: z.enum(["rebase", "merge"]).default("rebase"),
});
export type PrUpdatePayload = z.infer<typeof PrUpdatePayload>;
