import { createHash } from "node:crypto";
import { LinearClient, LinearError, LinearErrorType } from "@linear/sdk";
import type { Ticket, TicketQuery, TicketRef, TrackerStateType } from "@orch/contracts";
import { callSignal, TrackerApiError, TrackerNotFoundError, TrackerUnknownStateError } from "./errors.js";
import { commentMarker, type TicketingProvider, type TrackerClientOptions, type WriteOutcome } from "./types.js";

/**
 * `ticketing.linear`: Linear's GraphQL API through the official SDK's client (`@linear/sdk`: its
 * auth, its HTTPS-or-loopback rule, its typed errors). The queries are our own few compact
 * documents, sent with `rawRequest`, rather than the SDK's generated models, which fetch each
 * relation (a ticket's state, labels, team) with a request of its own: a sync is one request.
 * Every field used is in Linear's published schema (and in the fake's copy of it, which validates).
 */

const ISSUE_FIELDS = `id identifier title description url updatedAt
  state { id name type } labels(first: 50) { nodes { name } } assignee { name }`;

export const LINEAR_DOCUMENTS = {
  issues: `query OrchIssues($first: Int!, $filter: IssueFilter) {
  issues(first: $first, filter: $filter, orderBy: updatedAt) { nodes { ${ISSUE_FIELDS} } }
}`,
  issueForMove: `query OrchIssueStates($id: String!) {
  issue(id: $id) { id state { id name } team { states(first: 100) { nodes { id name type } } } }
}`,
  issueUpdate: `mutation OrchIssueMove($id: String!, $stateId: String!) {
  issueUpdate(id: $id, input: { stateId: $stateId }) { success issue { id state { name } } }
}`,
  issueWrites: `query OrchIssueWrites($id: String!) {
  issue(id: $id) { id comments(first: 250) { nodes { id body } } attachments(first: 250) { nodes { id url } } }
}`,
  commentCreate: `mutation OrchComment($input: CommentCreateInput!) {
  commentCreate(input: $input) { success comment { id } }
}`,
  attachmentCreate: `mutation OrchAttach($input: AttachmentCreateInput!) {
  attachmentCreate(input: $input) { success attachment { id } }
}`,
} as const;

interface IssueNode {
  id: string;
  identifier: string;
  title: string;
  description?: string | null;
  url: string;
  updatedAt: string;
  state: { id: string; name: string; type: string };
  labels: { nodes: { name: string }[] };
  assignee?: { name: string } | null;
}

const STATE_TYPES: ReadonlySet<string> = new Set(["triage", "backlog", "unstarted", "started", "completed", "canceled"]);

/** A comment id Linear accepts (a UUID v4's shape), the same for the same ticket and key. */
export function linearCommentId(issueId: string, key: string): string {
  const h = createHash("sha256").update(`${issueId}\u0000${key}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export class LinearTracker implements TicketingProvider {
  readonly id = "ticketing.linear" as const;
  readonly #o: TrackerClientOptions;

  constructor(opts: TrackerClientOptions) {
    this.#o = opts;
  }

  async list(query: TicketQuery, signal?: AbortSignal): Promise<Ticket[]> {
    // States match by name whatever their case (the setting is typed by people): one eqIgnoreCase each.
    const and: Record<string, unknown>[] = [];
    if (query.assignedToMe ?? true) and.push({ assignee: { isMe: { eq: true } } });
    if (query.states?.length) and.push({ or: query.states.map((s) => ({ state: { name: { eqIgnoreCase: s } } })) });
    const filter = and.length > 0 ? { and } : {};
    const data = await this.#request<{ issues: { nodes: IssueNode[] } }>("list issues", LINEAR_DOCUMENTS.issues, { first: query.limit ?? 100, filter }, signal);
    return data.issues.nodes.map((n) => ({
      provider: this.id,
      id: n.id,
      key: n.identifier,
      url: n.url,
      title: n.title,
      description: n.description ?? "",
      labels: n.labels.nodes.map((l) => l.name),
      state: n.state.name,
      ...(STATE_TYPES.has(n.state.type) ? { stateType: n.state.type as TrackerStateType } : {}),
      ...(n.assignee?.name ? { assignee: n.assignee.name } : {}),
      updatedAt: n.updatedAt,
    }));
  }

  async moveTo(ticket: TicketRef, state: string, signal?: AbortSignal): Promise<WriteOutcome> {
    const d = await this.#request<{ issue: { state: { id: string; name: string }; team: { states: { nodes: { id: string; name: string }[] } } } | null }>(
      "read issue states",
      LINEAR_DOCUMENTS.issueForMove,
      { id: ticket.id },
      signal,
    );
    if (!d.issue) throw new TrackerNotFoundError(`Linear issue ${ticket.key}`);
    const want = state.trim().toLowerCase();
    if (d.issue.state.name.trim().toLowerCase() === want) return { changed: false };
    const states = d.issue.team.states.nodes;
    const target = states.find((s) => s.name.trim().toLowerCase() === want);
    if (!target)
      throw new TrackerUnknownStateError(
        state,
        states.map((s) => s.name),
      );
    const u = await this.#request<{ issueUpdate: { success: boolean } }>(
      "move issue",
      LINEAR_DOCUMENTS.issueUpdate,
      { id: ticket.id, stateId: target.id },
      signal,
    );
    if (!u.issueUpdate.success) throw new TrackerApiError("move issue", "Linear did not update the issue");
    return { changed: true };
  }

  async comment(ticket: TicketRef, key: string, body: string, signal?: AbortSignal): Promise<WriteOutcome> {
    const marker = commentMarker(key);
    const seen = await this.#writes(ticket, signal);
    const id = linearCommentId(ticket.id, key);
    const mine = (c: { id: string; body: string }) => c.id === id || c.body.includes(marker);
    if (seen.comments.nodes.some(mine)) return { changed: false };
    try {
      const c = await this.#request<{ commentCreate: { success: boolean } }>(
        "comment",
        LINEAR_DOCUMENTS.commentCreate,
        { input: { id, issueId: ticket.id, body: `${body}\n\n${marker}` } },
        signal,
      );
      if (!c.commentCreate.success) throw new TrackerApiError("comment", "Linear did not create the comment");
    } catch (err) {
      // Created by an earlier ask whose answer was lost, between our look and our create: the id is taken.
      if (err instanceof TrackerApiError && !err.retryable) {
        const again = await this.#writes(ticket, signal);
        if (again.comments.nodes.some(mine)) return { changed: false };
      }
      throw err;
    }
    return { changed: true };
  }

  async attachLink(ticket: TicketRef, url: string, title: string, signal?: AbortSignal): Promise<WriteOutcome> {
    const seen = await this.#writes(ticket, signal);
    if (seen.attachments.nodes.some((a) => a.url === url)) return { changed: false };
    // Linear keeps one attachment per (issue, url): a repeat updates it rather than adding another.
    const a = await this.#request<{ attachmentCreate: { success: boolean } }>(
      "attach link",
      LINEAR_DOCUMENTS.attachmentCreate,
      { input: { issueId: ticket.id, url, title } },
      signal,
    );
    if (!a.attachmentCreate.success) throw new TrackerApiError("attach link", "Linear did not create the attachment");
    return { changed: true };
  }

  async #writes(ticket: TicketRef, signal?: AbortSignal) {
    const d = await this.#request<{
      issue: { comments: { nodes: { id: string; body: string }[] }; attachments: { nodes: { id: string; url: string }[] } } | null;
    }>("read issue", LINEAR_DOCUMENTS.issueWrites, { id: ticket.id }, signal);
    if (!d.issue) throw new TrackerNotFoundError(`Linear issue ${ticket.key}`);
    return d.issue;
  }

  async #request<T>(operation: string, query: string, variables: Record<string, unknown>, signal?: AbortSignal): Promise<T> {
    // One client per call: the SDK takes its fetch options (our abort signal) at construction.
    const client = new LinearClient({ apiKey: this.#o.token, apiUrl: this.#o.apiUrl, signal: callSignal(this.#o.timeoutMs, signal) });
    try {
      const r = await client.client.rawRequest<T, Record<string, unknown>>(query, variables);
      return r.data as T;
    } catch (err) {
      if (signal?.aborted) throw err;
      throw linearFailure(operation, err, this.#o.token);
    }
  }
}

const RETRYABLE: ReadonlySet<string> = new Set([LinearErrorType.Ratelimited, LinearErrorType.NetworkError, LinearErrorType.InternalError]);

function linearFailure(operation: string, err: unknown, token: string): TrackerApiError {
  const scrub = (s: string) => (token ? s.split(token).join("[redacted]") : s);
  if (err instanceof LinearError) {
    const status = err.status;
    const retryable = status === undefined || status === 408 || status === 429 || status >= 500 || (err.type !== undefined && RETRYABLE.has(err.type));
    return new TrackerApiError(operation, scrub(err.message.split("\n")[0] ?? "Linear refused"), status, { retryable });
  }
  const e = err as { name?: string; message?: string };
  const why = e?.name === "TimeoutError" ? "timed out" : scrub(e?.message ?? String(err));
  return new TrackerApiError(operation, `Linear unreachable: ${why}`, undefined, { retryable: true });
}
