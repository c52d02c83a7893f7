import { Octokit } from "@octokit/rest";
import { issueClosingState, type Ticket, type TicketQuery, type TicketRef } from "@orch/contracts";
import { hostMessage } from "../forge/github-rest.js";
import { callSignal, TrackerApiError, TrackerNotFoundError, TrackerRequestError } from "./errors.js";
import { issueId, issueOf, issueState, issueStateType, labelsFor, linkComment, linkKey, repositoryOf, selection, stateWanted, wantsClosed } from "./issues.js";
import { commentMarker, type TicketingProvider, type TrackerClientOptions, type WriteOutcome } from "./types.js";

/**
 * `ticketing.github_issues`: a repository's issues as tickets, through Octokit as the forge code
 * builds it (GitHub's REST API v3 at `apiUrl`: api.github.com, or GitHub Enterprise's
 * `https://<host>/api/v3`). Calls:
 *
 *   GET   /user                                   the key's login (the assignee when none is named)
 *   GET   /repos/{o}/{r}/issues?labels=&assignee=&state=open&sort=updated&direction=desc   by `link` pages;
 *         pull requests (which GitHub lists as issues, with `pull_request`) are skipped
 *   GET   /repos/{o}/{r}/issues/{n}               an issue's labels and state
 *   PATCH /repos/{o}/{r}/issues/{n}               its labels (the state label replaced), closed as
 *                                                 `completed` or `not_planned` for a closing state
 *   GET   /repos/{o}/{r}/issues/{n}/comments      the markers already written
 *   POST  /repos/{o}/{r}/issues/{n}/comments      a keyed comment; the pull request's link is one
 */

interface RestIssue {
  number: number;
  title: string;
  body?: string | null;
  html_url: string;
  state: string;
  state_reason?: string | null;
  labels: (string | { name?: string })[];
  assignee?: { login: string } | null;
  assignees?: { login: string }[] | null;
  updated_at: string;
  pull_request?: unknown;
}

function ownerRepo(repository: string): { owner: string; repo: string } {
  const [owner, repo, ...rest] = repository.split("/");
  if (!owner || !repo || rest.length > 0) throw new TrackerRequestError(`not a GitHub repository (owner/name): ${repository}`);
  return { owner, repo };
}

const labelNames = (labels: RestIssue["labels"]) => labels.map((l) => (typeof l === "string" ? l : (l.name ?? ""))).filter(Boolean);

export class GithubIssuesTracker implements TicketingProvider {
  readonly id = "ticketing.github_issues" as const;
  readonly #o: TrackerClientOptions;
  readonly #octokit: Octokit;

  constructor(opts: TrackerClientOptions) {
    this.#o = opts;
    this.#octokit = new Octokit({
      auth: opts.token,
      baseUrl: opts.apiUrl.replace(/\/+$/, ""),
      userAgent: "orchestrator-agent-hub",
      log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
      // Retries are the intake's (backoff, then its circuit breaker), not the client's.
      request: { retries: 0 },
    });
  }

  async list(query: TicketQuery, signal?: AbortSignal): Promise<Ticket[]> {
    const repository = repositoryOf(query, this.id);
    const repo = ownerRepo(repository);
    const sel = selection(query, this.id);
    const assignee = sel.assignee ?? (sel.me ? await this.#login(signal) : undefined);
    const limit = query.limit ?? 100;
    const wanted = new Set((query.states ?? []).map((s) => s.trim().toLowerCase()));
    const perPage = Math.min(100, limit);
    // Bounded: pages until `limit` issues match, at most ceil(limit / per_page) + 8 pages (pull requests and the states filter skip some).
    const maxPages = Math.ceil(limit / perPage) + 8;
    const out: Ticket[] = [];
    let pages = 0;
    await this.#call(
      "list issues",
      (request) =>
        this.#octokit.paginate(
          this.#octokit.rest.issues.listForRepo,
          {
            ...repo,
            state: wantsClosed(wanted) ? "all" : "open",
            ...(sel.label ? { labels: sel.label } : {}),
            ...(assignee ? { assignee } : {}),
            sort: "updated",
            direction: "desc",
            per_page: perPage,
            request,
          },
          (res, done) => {
            for (const raw of res.data as RestIssue[]) {
              if (raw.pull_request || out.length >= limit) continue;
              const t = this.#ticket(repository, raw);
              if (stateWanted(wanted, t.state, raw.state === "closed")) out.push(t);
            }
            if (out.length >= limit || ++pages >= maxPages) done();
            return [];
          },
        ),
      signal,
    );
    return out;
  }

  async moveTo(ticket: TicketRef, state: string, signal?: AbortSignal): Promise<WriteOutcome> {
    const { repository, number } = issueOf(ticket);
    const issue = await this.#issue(repository, number, ticket, signal);
    const closing = issueClosingState(state);
    const labels = labelsFor(labelNames(issue.labels), state);
    const close = closing !== undefined && issue.state !== "closed";
    if (!labels && !close) return { changed: false };
    await this.#call(
      "move issue",
      (request) =>
        this.#octokit.rest.issues.update({
          ...ownerRepo(repository),
          issue_number: number,
          ...(labels ? { labels } : {}),
          ...(close ? { state: "closed" as const, state_reason: closing === "canceled" ? ("not_planned" as const) : ("completed" as const) } : {}),
          request,
        }),
      signal,
    );
    return { changed: true };
  }

  async comment(ticket: TicketRef, key: string, body: string, signal?: AbortSignal): Promise<WriteOutcome> {
    const { repository, number } = issueOf(ticket);
    const marker = commentMarker(key);
    const comments = await this.#call(
      "read comments",
      (request) => this.#octokit.paginate(this.#octokit.rest.issues.listComments, { ...ownerRepo(repository), issue_number: number, per_page: 100, request }),
      signal,
      `GitHub issue ${ticket.key}`,
    );
    if (comments.some((c) => (c.body ?? "").includes(marker))) return { changed: false };
    await this.#call(
      "comment",
      (request) => this.#octokit.rest.issues.createComment({ ...ownerRepo(repository), issue_number: number, body: `${body}\n\n${marker}`, request }),
      signal,
    );
    return { changed: true };
  }

  attachLink(ticket: TicketRef, url: string, title: string, signal?: AbortSignal): Promise<WriteOutcome> {
    // Issues have no attachments: the link is a comment, written once per URL.
    return this.comment(ticket, linkKey(url), linkComment(url, title), signal);
  }

  #ticket(repository: string, i: RestIssue): Ticket {
    const labels = labelNames(i.labels);
    const closed = i.state === "closed";
    const state = issueState(labels, closed);
    const type = issueStateType(state, closed, i.state_reason === "not_planned");
    const assignee = i.assignee?.login ?? i.assignees?.[0]?.login;
    return {
      provider: this.id,
      id: issueId(repository, i.number),
      key: `#${i.number}`,
      url: i.html_url,
      repository,
      title: i.title,
      description: i.body ?? "",
      labels,
      state,
      ...(type ? { stateType: type } : {}),
      ...(assignee ? { assignee } : {}),
      updatedAt: i.updated_at,
    };
  }

  async #issue(repository: string, number: number, ticket: TicketRef, signal?: AbortSignal): Promise<RestIssue> {
    const r = await this.#call(
      "read issue",
      (request) => this.#octokit.rest.issues.get({ ...ownerRepo(repository), issue_number: number, request }),
      signal,
      `GitHub issue ${ticket.key}`,
    );
    return r.data as RestIssue;
  }

  async #login(signal?: AbortSignal): Promise<string> {
    const r = await this.#call("read the key's user", (request) => this.#octokit.rest.users.getAuthenticated({ request }), signal);
    return r.data.login;
  }

  async #call<T>(operation: string, fn: (request: { signal: AbortSignal }) => Promise<T>, signal?: AbortSignal, notFound?: string): Promise<T> {
    const s = callSignal(this.#o.timeoutMs, signal);
    try {
      return await fn({ signal: s });
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      if (err instanceof TrackerRequestError) throw err;
      const e = err as { status?: unknown; message?: unknown; response?: { data?: unknown; headers?: Record<string, string | undefined> } };
      const status = typeof e.status === "number" && e.status > 0 ? e.status : undefined;
      if (status === 404 && notFound) throw new TrackerNotFoundError(notFound);
      const raw = s.aborted
        ? `no answer within ${this.#o.timeoutMs} ms`
        : (hostMessage(e.response?.data) ?? (typeof e.message === "string" ? e.message : String(err)));
      // GitHub's rate limits answer 403 as well as 429: its headers say which.
      const h = e.response?.headers ?? {};
      const limited = status === 403 && (h["x-ratelimit-remaining"] === "0" || h["retry-after"] !== undefined);
      throw new TrackerApiError(operation, raw.split(this.#o.token).join("[redacted]"), status, limited ? { retryable: true } : undefined);
    }
  }
}
