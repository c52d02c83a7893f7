import { IssueNotes, Issues } from "@gitbeaker/rest";
import { issueClosingState, type Ticket, type TicketQuery, type TicketRef } from "@orch/contracts";
import { TrackerApiError, TrackerNotFoundError, TrackerRequestError } from "./errors.js";
import { issueId, issueOf, issueState, issueStateType, labelsFor, linkComment, linkKey, repositoryOf, selection, stateWanted, wantsClosed } from "./issues.js";
import { commentMarker, type TicketingProvider, type TrackerClientOptions, type WriteOutcome } from "./types.js";

/**
 * `ticketing.gitlab_issues`: a project's issues as tickets, through @gitbeaker/rest as the forge
 * code builds it (GitLab's REST API v4 at `apiUrl`: `https://gitlab.com/api/v4`, or a self-managed
 * `https://<host>/api/v4`). Calls:
 *
 *   GET /projects/:id/issues?labels=&assignee_username[]=&state=opened&order_by=updated_at&sort=desc
 *       (`scope=assigned_to_me` for the key's own user), by offset pages
 *   GET /projects/:id/issues/:iid              an issue's labels and state
 *   PUT /projects/:id/issues/:iid              `labels` (the state label replaced), `state_event=close`
 *                                              for a closing state
 *   GET /projects/:id/issues/:iid/notes        the markers already written
 *   POST /projects/:id/issues/:iid/notes       a keyed comment; the pull request's link is one
 *
 * GitLab has no "not planned": a cancelled issue is closed with the cancelled state's label.
 * The client itself retries 429 and 502 a few times within a quarter second; past that the
 * intake's backoff and circuit breaker decide.
 */

interface GitlabIssue {
  iid: number;
  title: string;
  description?: string | null;
  web_url: string;
  state: string;
  labels: (string | { name?: string })[];
  assignees?: { username?: string }[] | null;
  assignee?: { username?: string } | null;
  updated_at: string;
  references?: { full?: string };
}

const labelNames = (labels: GitlabIssue["labels"]) => labels.map((l) => (typeof l === "string" ? l : (l.name ?? ""))).filter(Boolean);

export class GitlabIssuesTracker implements TicketingProvider {
  readonly id = "ticketing.gitlab_issues" as const;
  readonly #o: TrackerClientOptions;
  readonly #issues: InstanceType<typeof Issues<false>>;
  readonly #notes: InstanceType<typeof IssueNotes<false>>;

  constructor(opts: TrackerClientOptions) {
    this.#o = opts;
    // gitbeaker appends `/api/v4` to its host itself.
    const host = opts.apiUrl.replace(/\/+$/, "").replace(/\/api\/v4$/, "");
    const o = { host, token: opts.token, queryTimeout: opts.timeoutMs } as const;
    this.#issues = new Issues(o);
    this.#notes = new IssueNotes(o);
  }

  async list(query: TicketQuery, signal?: AbortSignal): Promise<Ticket[]> {
    const project = repositoryOf(query, this.id);
    const sel = selection(query, this.id);
    const limit = query.limit ?? 100;
    const wanted = new Set((query.states ?? []).map((s) => s.trim().toLowerCase()));
    const perPage = Math.min(100, limit);
    // The states filter skips some: up to 8 pages more than the limit needs.
    const maxPages = Math.ceil(limit / perPage) + (wanted.size > 0 ? 8 : 0);
    const issues = (await this.#call(
      "list issues",
      () =>
        this.#issues.all({
          projectId: project,
          ...(wantsClosed(wanted) ? {} : { state: "opened" }),
          ...(sel.label ? { labels: sel.label } : {}),
          ...(sel.assignee ? { assigneeUsername: [sel.assignee] } : {}),
          ...(sel.me ? { scope: "assigned_to_me" } : {}),
          orderBy: "updated_at",
          sort: "desc",
          perPage,
          maxPages,
        }),
      signal,
    )) as unknown as GitlabIssue[];
    const out: Ticket[] = [];
    for (const i of issues) {
      const t = this.#ticket(project, i);
      if (!stateWanted(wanted, t.state, i.state === "closed")) continue;
      out.push(t);
      if (out.length >= limit) break;
    }
    return out;
  }

  async moveTo(ticket: TicketRef, state: string, signal?: AbortSignal): Promise<WriteOutcome> {
    const { repository, number } = issueOf(ticket);
    const issue = (await this.#call(
      "read issue",
      () => this.#issues.show(number, { projectId: repository }),
      signal,
      `GitLab issue ${ticket.key}`,
    )) as unknown as GitlabIssue;
    const labels = labelsFor(labelNames(issue.labels), state);
    const close = issueClosingState(state) !== undefined && issue.state !== "closed";
    if (!labels && !close) return { changed: false };
    await this.#call(
      "move issue",
      () => this.#issues.edit(repository, number, { ...(labels ? { labels: labels.join(",") } : {}), ...(close ? { stateEvent: "close" } : {}) }),
      signal,
    );
    return { changed: true };
  }

  async comment(ticket: TicketRef, key: string, body: string, signal?: AbortSignal): Promise<WriteOutcome> {
    const { repository, number } = issueOf(ticket);
    const marker = commentMarker(key);
    const notes = (await this.#call(
      "read notes",
      () => this.#notes.all(repository, number, { perPage: 100 }),
      signal,
      `GitLab issue ${ticket.key}`,
    )) as unknown as { body: string }[];
    if (notes.some((n) => (n.body ?? "").includes(marker))) return { changed: false };
    await this.#call("comment", () => this.#notes.create(repository, number, `${body}\n\n${marker}`), signal);
    return { changed: true };
  }

  attachLink(ticket: TicketRef, url: string, title: string, signal?: AbortSignal): Promise<WriteOutcome> {
    // Issues have no attachments: the link is a note, written once per URL.
    return this.comment(ticket, linkKey(url), linkComment(url, title), signal);
  }

  #ticket(project: string, i: GitlabIssue): Ticket {
    const labels = labelNames(i.labels);
    const closed = i.state === "closed";
    const state = issueState(labels, closed);
    const type = issueStateType(state, closed);
    // The project's path as GitLab writes it (`group/project#12`), whichever way the sync named it.
    const repository = i.references?.full?.replace(/#\d+$/, "") || project;
    const assignee = i.assignee?.username ?? i.assignees?.[0]?.username;
    return {
      provider: this.id,
      id: issueId(repository, i.iid),
      key: `#${i.iid}`,
      url: i.web_url,
      repository,
      title: i.title,
      description: i.description ?? "",
      labels,
      state,
      ...(type ? { stateType: type } : {}),
      ...(assignee ? { assignee } : {}),
      updatedAt: i.updated_at,
    };
  }

  /** gitbeaker takes no abort signal: an aborted call is not started, and its own timeout bounds a started one. */
  async #call<T>(operation: string, fn: () => Promise<T>, signal?: AbortSignal, notFound?: string): Promise<T> {
    signal?.throwIfAborted();
    try {
      return await fn();
    } catch (err) {
      if (err instanceof TrackerRequestError) throw err;
      const e = err as { name?: unknown; message?: unknown; cause?: { description?: unknown; response?: { status?: unknown } } };
      const status = typeof e.cause?.response?.status === "number" ? e.cause.response.status : undefined;
      if (status === 404 && notFound) throw new TrackerNotFoundError(notFound);
      const raw =
        e.name === "GitbeakerTimeoutError"
          ? `no answer within ${this.#o.timeoutMs} ms`
          : typeof e.cause?.description === "string" && e.cause.description
            ? e.cause.description
            : typeof e.message === "string"
              ? e.message
              : String(err);
      throw new TrackerApiError(operation, raw.split(this.#o.token).join("[redacted]"), status);
    }
  }
}
