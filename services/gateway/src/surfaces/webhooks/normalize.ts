import { z } from "zod";
import { type WebhookHeaders, header } from "./headers.js";
import type { WebhookProvider } from "./verify.js";
import { RUN_BRANCH_PREFIX, type CiStatus, type ReviewComment, type ReviewState } from "@orch/contracts";

/**
 * GitHub and GitLab deliveries turned into one shape the webhook routes act on (seed 004: find the
 * run by branch, move its latest step by CI status, complete it when its pull request is merged).
 *
 * Pure and total: any headers and any parsed JSON body give an event, never an exception. A body or
 * event we do not understand, or a required field that is missing or of the wrong type, gives
 * `kind: "unknown"` (the route answers 202 and does nothing). Optional fields of the wrong type are
 * dropped, not fatal: the schemas below are partial (every field optional) and loose (extra fields
 * ignored), and each field `.catch`es to `undefined`.
 *
 * Run ids. An event names a run (`runId`) when either
 * - its branch is the run's default branch `orch/run/<runId>` (what the agent hub creates for a run
 *   whose definition names no branch: services/agent-hub/src/sessions/runner.ts), for a pull or merge
 *   request its source (head) branch; or
 * - failing that, its text has a line `orch-run: <runId>` (case-insensitive, alone on its line, like
 *   a git trailer `Orch-Run: <runId>`): the pull/merge request's description, else the head
 *   commit's message.
 * `<runId>` is a subject token, `[A-Za-z0-9_-]{1,128}`, like every run id. `runIdSource` says which
 * rule matched: a marker is only text, which anyone who can open a pull request or push a commit
 * can write, so a route should trust it only together with another check (the run's branch, say).
 * Runs whose branch is named by their definition (a protocol's name, a SpecKit feature id) carry no
 * run id here: the route finds them by `branch`, as seed 004 does.
 */

export type WebhookEventKind = "push" | "pull_request" | "ci" | "review" | "unknown";
export type { CiStatus, ReviewComment, ReviewState };

export interface CiInfo {
  status: CiStatus;
  /** The provider's own word the status was mapped from: a conclusion, a state or a status. */
  conclusion: string;
  /** The check's, workflow's, status context's, pipeline's or job's name. */
  name?: string;
  /** Where a person can look at it. */
  url?: string;
  /**
   * The host's id of the job, where the event is about one (a GitHub check run or Actions job, whose
   * ids are the same; a GitLab job): what a fix attempt fetches the log of.
   */
  jobId?: number;
}

export interface PullRequestInfo {
  /** GitHub's pull request number; GitLab's merge request `iid` (its number in the project). */
  number: number;
  merged: boolean;
  /** Raw: GitHub's `action` (`opened`, `closed`, `synchronize`, …), GitLab's (`open`, `merge`, …). */
  action: string;
  url?: string;
  headBranch?: string;
  baseBranch?: string;
  /** The head commit. */
  headSha?: string;
  draft?: boolean;
}

export interface ReviewInfo {
  /** The pull request's number (GitLab: the merge request's `iid`). */
  number: number;
  state: ReviewState;
  /** Raw: GitHub's `action` (`submitted`, `dismissed`, `created`, …), GitLab's (`approved`, `create`, …). */
  action: string;
  reviewer?: string;
  /** The review's own text (GitHub), or the comment's (a line comment, a GitLab note). */
  body?: string;
  /** Line comments that came with it. */
  comments?: ReviewComment[];
  url?: string;
  headBranch?: string;
}

interface EventBase {
  provider: WebhookProvider;
  /** `X-GitHub-Delivery`; GitLab's `Idempotency-Key`, else `X-Gitlab-Webhook-UUID`, else `X-Gitlab-Event-UUID`. */
  deliveryId: string | undefined;
  /** The raw event name: `X-GitHub-Event`, or `X-Gitlab-Event` (else the body's `object_kind`); "" if none. */
  event: string;
  /** Without `refs/heads/`; for a pull or merge request its source (head) branch. */
  branch?: string;
  /** The commit the event is about (never the all-zero id of a deleted ref). */
  sha?: string;
  runId?: string;
  runIdSource?: "branch" | "marker";
  /** The repository it happened in: GitHub's `owner/name`, GitLab's project path. */
  repository?: string;
}

export type NormalizedEvent =
  | (EventBase & {
      kind: "push";
      /** A tag push: the tag's name, and no `branch`. */
      tag?: string;
      /** The ref was deleted (no `sha` then). */
      deleted?: boolean;
      ci?: undefined;
      pr?: undefined;
      review?: undefined;
    })
  | (EventBase & { kind: "pull_request"; pr: PullRequestInfo; ci?: undefined; review?: undefined })
  | (EventBase & { kind: "ci"; ci: CiInfo; pr?: undefined; review?: undefined })
  | (EventBase & { kind: "review"; review: ReviewInfo; ci?: undefined; pr?: undefined })
  | (EventBase & { kind: "unknown"; ci?: undefined; pr?: undefined; review?: undefined });

/* ───────────────────────── CI status ───────────────────────── */

/**
 * Seed 004's mapping, widened to every value GitHub (check run/suite conclusions and statuses,
 * workflow runs, commit status states) and GitLab (pipeline and job statuses) send:
 * - success: success, neutral, passed, and skipped (GitHub counts a skipped check as passing);
 * - pending: in_progress, queued, pending, running, created, waiting, requested, and GitLab's
 *   waiting_for_resource, preparing, scheduled, manual (waiting for someone to start a job), canceling,
 *   and rerequested (a GitHub check asked to run again, below);
 * - failure: failure, failed, timed_out, cancelled, canceled, action_required, error (a commit
 *   status), startup_failure, stale (GitHub gave up on a check that never finished).
 * Anything else is not mapped, and the event is `unknown` rather than guessed at.
 */
const CI_STATUS: ReadonlyMap<string, CiStatus> = new Map([
  ...["success", "neutral", "passed", "skipped"].map((s) => [s, "success"] as const),
  ...[
    "in_progress",
    "queued",
    "pending",
    "running",
    "created",
    "waiting",
    "requested",
    "waiting_for_resource",
    "preparing",
    "scheduled",
    "manual",
    "canceling",
    "rerequested",
  ].map((s) => [s, "pending"] as const),
  ...["failure", "failed", "timed_out", "cancelled", "canceled", "action_required", "error", "startup_failure", "stale"].map((s) => [s, "failure"] as const),
]);

export function ciStatusOf(raw: string | undefined): CiStatus | undefined {
  return raw === undefined ? undefined : CI_STATUS.get(raw.trim().toLowerCase());
}

/* ───────────────────────── refs and run ids ───────────────────────── */

export { RUN_BRANCH_PREFIX };
const RUN_ID = /^[A-Za-z0-9_-]{1,128}$/;
const RUN_MARKER = /^[ \t]*orch-run:[ \t]*([A-Za-z0-9_-]{1,128})[ \t]*$/im;
const ZERO_SHA = /^0+$/;

/** `refs/heads/x` → branch x; `refs/tags/v` → tag v; other `refs/…` → neither; a bare name is a branch. */
export function parseRef(ref: string | undefined): { branch?: string; tag?: string } {
  if (!ref) return {};
  if (ref.startsWith("refs/heads/")) return nonEmpty("branch", ref.slice("refs/heads/".length));
  if (ref.startsWith("refs/tags/")) return nonEmpty("tag", ref.slice("refs/tags/".length));
  if (ref.startsWith("refs/")) return {};
  return { branch: ref };
}

function nonEmpty<K extends "branch" | "tag">(k: K, v: string): { [P in K]?: string } {
  return (v === "" ? {} : { [k]: v }) as { [P in K]?: string };
}

/** The run id in a branch named `orch/run/<runId>`, else `undefined`. */
export function runIdFromBranch(branch: string | undefined): string | undefined {
  if (!branch?.startsWith(RUN_BRANCH_PREFIX)) return undefined;
  const id = branch.slice(RUN_BRANCH_PREFIX.length);
  return RUN_ID.test(id) ? id : undefined;
}

/** The run id of the first `orch-run: <runId>` line in a text, else `undefined`. */
export function runIdFromText(text: string | undefined): string | undefined {
  if (!text) return undefined;
  return RUN_MARKER.exec(text)?.[1];
}

function runIdOf(branch: string | undefined, ...texts: (string | undefined)[]): Pick<EventBase, "runId" | "runIdSource"> {
  const fromBranch = runIdFromBranch(branch);
  if (fromBranch) return { runId: fromBranch, runIdSource: "branch" };
  for (const t of texts) {
    const fromText = runIdFromText(t);
    if (fromText) return { runId: fromText, runIdSource: "marker" };
  }
  return {};
}

/** GitHub's review states, in its webhook's lowercase (the REST API says `APPROVED`, …). */
export function reviewStateOf(raw: string | undefined): ReviewState | undefined {
  switch (raw?.toLowerCase()) {
    case "approved":
      return "approved";
    case "changes_requested":
      return "changes_requested";
    case "commented":
      return "commented";
    case "dismissed":
      return "dismissed";
    default:
      return undefined;
  }
}

const shaOf = (s: string | undefined): string | undefined => (s && !ZERO_SHA.test(s) ? s : undefined);

/* ───────────────────────── partial, loose schemas ───────────────────────── */

// Each field: its type or `undefined` (null and wrong types included); objects ignore unknown keys.
const str = z.string().optional().catch(undefined);
const int = z.int().optional().catch(undefined);
const bool = z.boolean().optional().catch(undefined);
const obj = <S extends Record<string, z.ZodType>>(shape: S) => z.object(shape).optional().catch(undefined);
const list = <T extends z.ZodType>(item: T) => z.array(item).optional().catch(undefined);

const GhCommit = obj({ id: str, message: str });
const GhRepository = obj({ full_name: str });
const GhUser = obj({ login: str });
const GhPullRequest = obj({ number: int, html_url: str, body: str, head: obj({ ref: str, sha: str }) });
const GhHeadRef = obj({ head: obj({ ref: str }) });

const GitHub = {
  push: z.object({ ref: str, after: str, deleted: bool, head_commit: GhCommit }),
  pull_request: z.object({
    action: str,
    number: int,
    pull_request: obj({
      number: int,
      merged: bool,
      merged_at: str,
      html_url: str,
      body: str,
      draft: bool,
      head: obj({ ref: str, sha: str }),
      base: obj({ ref: str }),
    }),
  }),
  pull_request_review: z.object({
    action: str,
    review: obj({ state: str, body: str, html_url: str, commit_id: str, user: GhUser }),
    pull_request: GhPullRequest,
  }),
  pull_request_review_comment: z.object({
    action: str,
    comment: obj({ body: str, path: str, line: int, original_line: int, html_url: str, commit_id: str, user: GhUser }),
    pull_request: GhPullRequest,
  }),
  workflow_job: z.object({
    action: str,
    workflow_job: obj({ id: int, name: str, status: str, conclusion: str, head_branch: str, head_sha: str, html_url: str }),
  }),
  check_run: z.object({
    action: str,
    check_run: obj({
      id: int,
      name: str,
      status: str,
      conclusion: str,
      head_sha: str,
      html_url: str,
      details_url: str,
      check_suite: obj({ head_branch: str }),
      pull_requests: list(GhHeadRef),
    }),
  }),
  check_suite: z.object({
    action: str,
    check_suite: obj({
      status: str,
      conclusion: str,
      head_branch: str,
      head_sha: str,
      app: obj({ name: str }),
      head_commit: GhCommit,
      pull_requests: list(GhHeadRef),
    }),
  }),
  status: z.object({
    sha: str,
    state: str,
    context: str,
    target_url: str,
    branches: list(obj({ name: str })),
    commit: obj({ commit: obj({ message: str }) }),
  }),
  workflow_run: z.object({
    action: str,
    workflow_run: obj({
      name: str,
      status: str,
      conclusion: str,
      head_branch: str,
      head_sha: str,
      html_url: str,
      head_commit: GhCommit,
    }),
  }),
};

const GlCommit = obj({ id: str, message: str });
const GlProject = obj({ web_url: str, path_with_namespace: str });
const GlUser = obj({ username: str });
const GlReviewer = obj({ username: str, state: str });

const GitLab = {
  push: z.object({ ref: str, after: str, checkout_sha: str, commits: list(GlCommit) }),
  merge_request: z.object({
    user: GlUser,
    /** GitLab 17+: a reviewer's state changing (a review submitted with "Request changes"). */
    changes: obj({ reviewers: obj({ previous: list(GlReviewer), current: list(GlReviewer) }) }),
    object_attributes: obj({
      iid: int,
      action: str,
      state: str,
      url: str,
      source_branch: str,
      target_branch: str,
      description: str,
      draft: bool,
      last_commit: GlCommit,
    }),
  }),
  note: z.object({
    user: GlUser,
    object_attributes: obj({
      note: str,
      noteable_type: str,
      system: bool,
      action: str,
      url: str,
      position: obj({ new_path: str, new_line: int }),
    }),
    merge_request: obj({ iid: int, source_branch: str, description: str, last_commit: GlCommit }),
  }),
  pipeline: z.object({
    object_attributes: obj({ id: int, name: str, ref: str, tag: bool, sha: str, status: str, url: str }),
    merge_request: obj({ source_branch: str }),
    commit: GlCommit,
    project: GlProject,
  }),
  build: z.object({
    ref: str,
    tag: bool,
    sha: str,
    build_id: int,
    build_name: str,
    build_status: str,
    commit: obj({ sha: str, message: str }),
    project: GlProject,
    repository: obj({ homepage: str }),
  }),
};

/** Where each forge says which repository a delivery is about. */
const REPOSITORY = { github: z.object({ repository: GhRepository }), gitlab: z.object({ project: GlProject }) };

/** `X-Gitlab-Event` → `object_kind`, for a body that lacks one. */
const GITLAB_EVENT_KIND: ReadonlyMap<string, string> = new Map([
  ["Push Hook", "push"],
  ["Tag Push Hook", "tag_push"],
  ["Merge Request Hook", "merge_request"],
  ["Pipeline Hook", "pipeline"],
  ["Job Hook", "build"],
  ["Note Hook", "note"],
]);

/* ───────────────────────── entry points ───────────────────────── */

export function normalizeWebhook(provider: WebhookProvider, headers: WebhookHeaders, body: unknown): NormalizedEvent {
  return provider === "github" ? normalizeGitHub(headers, body) : normalizeGitLab(headers, body);
}

export function normalizeGitHub(headers: WebhookHeaders, body: unknown): NormalizedEvent {
  let base: EventBase = { provider: "github", deliveryId: undefined, event: "" };
  try {
    base = { provider: "github", deliveryId: header(headers, "x-github-delivery"), event: header(headers, "x-github-event") ?? "" };
    const repository = parse(REPOSITORY.github, body)?.repository?.full_name;
    if (repository) base.repository = repository;
    return gitHubEvent(base, body) ?? { ...base, kind: "unknown" };
  } catch {
    return { ...base, kind: "unknown" };
  }
}

export function normalizeGitLab(headers: WebhookHeaders, body: unknown): NormalizedEvent {
  let base: EventBase = { provider: "gitlab", deliveryId: undefined, event: "" };
  try {
    const objectKind = isRecord(body) && typeof body.object_kind === "string" ? body.object_kind : undefined;
    const event = header(headers, "x-gitlab-event");
    const deliveryId = header(headers, "idempotency-key") ?? header(headers, "x-gitlab-webhook-uuid") ?? header(headers, "x-gitlab-event-uuid");
    base = { provider: "gitlab", deliveryId, event: event ?? objectKind ?? "" };
    const repository = parse(REPOSITORY.gitlab, body)?.project?.path_with_namespace;
    if (repository) base.repository = repository;
    const kind = objectKind ?? (event !== undefined ? GITLAB_EVENT_KIND.get(event) : undefined);
    return (kind !== undefined ? gitLabEvent(base, kind, body) : undefined) ?? { ...base, kind: "unknown" };
  } catch {
    return { ...base, kind: "unknown" };
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parsed with one of the schemas above, or `undefined` for a body that is not even an object. */
function parse<T extends z.ZodType>(schema: T, body: unknown): z.output<T> | undefined {
  if (!isRecord(body)) return undefined;
  const r = schema.safeParse(body);
  return r.success ? r.data : undefined;
}

function ci(
  base: EventBase,
  raw: string | undefined,
  extra: {
    name?: string | undefined;
    url?: string | undefined;
    branch?: string | undefined;
    sha?: string | undefined;
    texts?: (string | undefined)[];
    jobId?: number | undefined;
  },
): NormalizedEvent | undefined {
  const status = ciStatusOf(raw);
  if (status === undefined || raw === undefined) return undefined;
  const info: CiInfo = { status, conclusion: raw };
  if (extra.name) info.name = extra.name;
  if (extra.url) info.url = extra.url;
  if (extra.jobId !== undefined && extra.jobId > 0) info.jobId = extra.jobId;
  return { ...base, ...where(extra.branch, extra.sha), ...runIdOf(extra.branch, ...(extra.texts ?? [])), kind: "ci", ci: info };
}

function where(branch: string | undefined, sha: string | undefined): { branch?: string; sha?: string } {
  const w: { branch?: string; sha?: string } = {};
  if (branch) w.branch = branch;
  const s = shaOf(sha);
  if (s) w.sha = s;
  return w;
}

/* ───────────────────────── GitHub ───────────────────────── */

/**
 * A check run or suite whose checks were asked to run again: what the payload carries is the old
 * result, and a new run is on its way, so it is pending (conclusion `rerequested`).
 */
const RERUN = "rerequested";

function gitHubEvent(base: EventBase, body: unknown): NormalizedEvent | undefined {
  switch (base.event) {
    case "push": {
      const p = parse(GitHub.push, body);
      if (!p || p.ref === undefined) return undefined;
      const { branch, tag } = parseRef(p.ref);
      const deleted = p.deleted === true || (p.after !== undefined && ZERO_SHA.test(p.after));
      return {
        ...base,
        ...where(branch, deleted ? undefined : (p.after ?? p.head_commit?.id)),
        ...runIdOf(branch, p.head_commit?.message),
        kind: "push",
        ...(tag ? { tag } : {}),
        ...(deleted ? { deleted } : {}),
      };
    }
    case "pull_request": {
      const p = parse(GitHub.pull_request, body);
      const pr = p?.pull_request;
      const number = p?.number ?? pr?.number;
      if (!p || !pr || number === undefined || p.action === undefined) return undefined;
      const head = pr.head?.ref;
      const info: PullRequestInfo = { number, merged: pr.merged ?? pr.merged_at !== undefined, action: p.action };
      if (pr.html_url) info.url = pr.html_url;
      if (head) info.headBranch = head;
      if (pr.base?.ref) info.baseBranch = pr.base.ref;
      const headSha = shaOf(pr.head?.sha);
      if (headSha) info.headSha = headSha;
      if (pr.draft !== undefined) info.draft = pr.draft;
      return { ...base, ...where(head, pr.head?.sha), ...runIdOf(head, pr.body), kind: "pull_request", pr: info };
    }
    case "pull_request_review": {
      const p = parse(GitHub.pull_request_review, body);
      const r = p?.review;
      const pr = p?.pull_request;
      const state = reviewStateOf(r?.state);
      if (!p || !r || !pr || pr.number === undefined || state === undefined || p.action === undefined) return undefined;
      const head = pr.head?.ref;
      const info: ReviewInfo = { number: pr.number, state: p.action === "dismissed" ? "dismissed" : state, action: p.action };
      if (r.user?.login) info.reviewer = r.user.login;
      if (r.body) info.body = r.body;
      if (r.html_url) info.url = r.html_url;
      if (head) info.headBranch = head;
      return { ...base, ...where(head, r.commit_id ?? pr.head?.sha), ...runIdOf(head, pr.body), kind: "review", review: info };
    }
    case "pull_request_review_comment": {
      const p = parse(GitHub.pull_request_review_comment, body);
      const c = p?.comment;
      const pr = p?.pull_request;
      // A comment deleted says nothing new.
      if (!p || !c || !pr || pr.number === undefined || !c.body || p.action === undefined || p.action === "deleted") return undefined;
      const head = pr.head?.ref;
      const comment: ReviewComment = { body: c.body };
      if (c.path) comment.path = c.path;
      const line = c.line ?? c.original_line;
      if (line !== undefined) comment.line = line;
      const info: ReviewInfo = { number: pr.number, state: "commented", action: p.action, body: c.body, comments: [comment] };
      if (c.user?.login) info.reviewer = c.user.login;
      if (c.html_url) info.url = c.html_url;
      if (head) info.headBranch = head;
      return { ...base, ...where(head, c.commit_id ?? pr.head?.sha), ...runIdOf(head, pr.body), kind: "review", review: info };
    }
    case "workflow_job": {
      const j = parse(GitHub.workflow_job, body)?.workflow_job;
      if (!j) return undefined;
      const raw = j.status === "completed" ? j.conclusion : j.status;
      return ci(base, raw, { name: j.name, url: j.html_url, branch: j.head_branch, sha: j.head_sha, jobId: j.id });
    }
    case "check_run": {
      const run = parse(GitHub.check_run, body);
      const c = run?.check_run;
      if (!run || !c) return undefined;
      const raw = run.action === RERUN ? RERUN : c.status === "completed" ? c.conclusion : c.status;
      const branch = c.check_suite?.head_branch ?? c.pull_requests?.[0]?.head?.ref;
      return ci(base, raw, { name: c.name, url: c.html_url ?? c.details_url, branch, sha: c.head_sha, jobId: c.id });
    }
    case "check_suite": {
      const suite = parse(GitHub.check_suite, body);
      const c = suite?.check_suite;
      if (!suite || !c) return undefined;
      const raw = suite.action === RERUN ? RERUN : c.status === "completed" ? c.conclusion : c.status;
      const branch = c.head_branch ?? c.pull_requests?.[0]?.head?.ref;
      return ci(base, raw, { name: c.app?.name, branch, sha: c.head_sha, texts: [c.head_commit?.message] });
    }
    case "workflow_run": {
      const w = parse(GitHub.workflow_run, body)?.workflow_run;
      if (!w) return undefined;
      const raw = w.status === "completed" ? w.conclusion : w.status;
      return ci(base, raw, { name: w.name, url: w.html_url, branch: w.head_branch, sha: w.head_sha, texts: [w.head_commit?.message] });
    }
    case "status": {
      const s = parse(GitHub.status, body);
      if (!s) return undefined;
      return ci(base, s.state, { name: s.context, url: s.target_url, branch: statusBranch(s.branches), sha: s.sha, texts: [s.commit?.commit?.message] });
    }
    default:
      // `ping` (sent when a hook is created) and every other event: recognized by name, not acted on.
      return undefined;
  }
}

/**
 * A commit status names no branch, only the branches whose head is that commit (up to ten). The
 * branch is the one that names a run (`orch/run/<id>`) if any, else the only one; with several and
 * none a run's, there is no telling which was meant, so none.
 */
function statusBranch(branches: ({ name?: string | undefined } | undefined)[] | undefined): string | undefined {
  const names = (branches ?? []).map((b) => b?.name).filter((n): n is string => !!n);
  return names.find((n) => runIdFromBranch(n) !== undefined) ?? (names.length === 1 ? names[0] : undefined);
}

/* ───────────────────────── GitLab ───────────────────────── */

type GlReviewers =
  { previous?: ({ username?: string; state?: string } | undefined)[]; current?: ({ username?: string; state?: string } | undefined)[] } | undefined;

/**
 * The reviewer who just requested changes (GitLab 17+: a review submitted with "Request changes"
 * is a merge request update whose `changes.reviewers` shows that reviewer's state become
 * `requested_changes`), "" when the name is missing, undefined when nobody did.
 */
function changesRequestedBy(r: GlReviewers): string | undefined {
  const before = new Map((r?.previous ?? []).map((x) => [x?.username, x?.state]));
  const who = (r?.current ?? []).find((x) => x?.state === "requested_changes" && before.get(x.username) !== "requested_changes");
  return who ? (who.username ?? "") : undefined;
}

/**
 * Merge request actions that are approvals: `approval` / `unapproval` (one person's), `approved` /
 * `unapproved` (all required approvals given, or no longer).
 */
const GITLAB_APPROVAL_ACTIONS: ReadonlyMap<string, ReviewState> = new Map([
  ["approval", "approved"],
  ["approved", "approved"],
  ["unapproval", "dismissed"],
  ["unapproved", "dismissed"],
]);

function gitLabEvent(base: EventBase, kind: string, body: unknown): NormalizedEvent | undefined {
  switch (kind) {
    case "push":
    case "tag_push": {
      const p = parse(GitLab.push, body);
      if (!p || p.ref === undefined) return undefined;
      const { branch, tag } = parseRef(p.ref);
      // A deleted ref: `after` is all zeros and `checkout_sha` null.
      const deleted = p.after !== undefined && ZERO_SHA.test(p.after);
      const sha = deleted ? undefined : (p.checkout_sha ?? p.after);
      const head = p.commits?.find((c) => c?.id !== undefined && c.id === sha) ?? p.commits?.at(-1);
      return {
        ...base,
        ...where(branch, sha),
        ...runIdOf(branch, head?.message),
        kind: "push",
        ...(tag ? { tag } : {}),
        ...(deleted ? { deleted } : {}),
      };
    }
    case "merge_request": {
      const a = parse(GitLab.merge_request, body)?.object_attributes;
      if (!a || a.iid === undefined) return undefined;
      const action = a.action ?? "";
      const requested = action === "update" ? changesRequestedBy(parse(GitLab.merge_request, body)?.changes?.reviewers) : undefined;
      const approval = requested !== undefined ? "changes_requested" : GITLAB_APPROVAL_ACTIONS.get(action);
      if (approval !== undefined) {
        const user = requested || parse(GitLab.merge_request, body)?.user?.username;
        const review: ReviewInfo = { number: a.iid, state: approval, action };
        if (user) review.reviewer = user;
        if (a.url) review.url = a.url;
        if (a.source_branch) review.headBranch = a.source_branch;
        return {
          ...base,
          ...where(a.source_branch, a.last_commit?.id),
          ...runIdOf(a.source_branch, a.description, a.last_commit?.message),
          kind: "review",
          review,
        };
      }
      const info: PullRequestInfo = { number: a.iid, merged: a.state === "merged" || action === "merge", action };
      if (a.url) info.url = a.url;
      if (a.source_branch) info.headBranch = a.source_branch;
      if (a.target_branch) info.baseBranch = a.target_branch;
      const headSha = shaOf(a.last_commit?.id);
      if (headSha) info.headSha = headSha;
      if (a.draft !== undefined) info.draft = a.draft;
      return {
        ...base,
        ...where(a.source_branch, a.last_commit?.id),
        ...runIdOf(a.source_branch, a.description, a.last_commit?.message),
        kind: "pull_request",
        pr: info,
      };
    }
    case "pipeline": {
      const p = parse(GitLab.pipeline, body);
      const a = p?.object_attributes;
      if (!p || !a) return undefined;
      // A merge request pipeline runs on `refs/merge-requests/<iid>/head`: its branch is the source branch.
      const branch = a.tag ? undefined : (parseRef(a.ref).branch ?? (a.ref?.startsWith("refs/merge-requests/") ? p.merge_request?.source_branch : undefined));
      const url = a.url ?? (p.project?.web_url && a.id !== undefined ? `${p.project.web_url}/-/pipelines/${a.id}` : undefined);
      return ci(base, a.status, { name: a.name, url, branch, sha: a.sha ?? p.commit?.id, texts: [p.commit?.message] });
    }
    case "build": {
      const j = parse(GitLab.build, body);
      if (!j) return undefined;
      const web = j.project?.web_url ?? j.repository?.homepage;
      const url = web && j.build_id !== undefined ? `${web}/-/jobs/${j.build_id}` : undefined;
      const branch = j.tag ? undefined : parseRef(j.ref).branch;
      return ci(base, j.build_status, { name: j.build_name, url, branch, sha: j.sha ?? j.commit?.sha, texts: [j.commit?.message], jobId: j.build_id });
    }
    case "note": {
      const n = parse(GitLab.note, body);
      const a = n?.object_attributes;
      const mr = n?.merge_request;
      // Only people's comments on merge requests; system notes ("added 1 commit") are GitLab's own.
      if (!n || !a || !mr || a.noteable_type !== "MergeRequest" || a.system === true || !a.note || mr.iid === undefined) return undefined;
      const comment: ReviewComment = { body: a.note };
      if (a.position?.new_path) comment.path = a.position.new_path;
      if (a.position?.new_line !== undefined) comment.line = a.position.new_line;
      const review: ReviewInfo = { number: mr.iid, state: "commented", action: a.action ?? "create", body: a.note, comments: [comment] };
      if (n.user?.username) review.reviewer = n.user.username;
      if (a.url) review.url = a.url;
      if (mr.source_branch) review.headBranch = mr.source_branch;
      return {
        ...base,
        ...where(mr.source_branch, mr.last_commit?.id),
        ...runIdOf(mr.source_branch, mr.description, mr.last_commit?.message),
        kind: "review",
        review,
      };
    }
    default:
      return undefined;
  }
}
