import type { Ticket, TicketQuery, TicketRef, TrackerStateType } from "@orch/contracts";
import { callSignal, TrackerApiError, TrackerNotFoundError, TrackerUnknownStateError } from "./errors.js";
import { commentMarker, type TicketingProvider, type TrackerClientOptions, type WriteOutcome } from "./types.js";

/**
 * `ticketing.shortcut`: Shortcut's REST API v3 over fetch (`Shortcut-Token` header). Calls, as
 * Shortcut publishes them:
 *
 *   GET  /member                       who the token is (its `mention_name`, for `owner:`)
 *   GET  /workflows                    every workflow's states (id → name, type)
 *   GET  /search/stories?query=…&detail=full&page_size=25   the matching stories, page by page (`next`)
 *   GET  /stories/{id}                 a story with its comments and external links
 *   PUT  /stories/{id}                 its workflow state, its external links
 *   POST /stories/{id}/comments        a comment
 *
 * Shortcut has no cancelled state type (`unstarted | started | done`): a cancelled story is one in
 * the state the map gives the Abandoned stage.
 */

interface Member {
  id: string;
  mention_name?: string;
  profile?: { mention_name?: string };
}
interface WorkflowState {
  id: number;
  name: string;
  type: string;
}
interface Story {
  id: number;
  name: string;
  description?: string;
  app_url: string;
  workflow_state_id: number;
  labels?: { name: string }[];
  owner_ids?: string[];
  updated_at?: string;
  /** A deleted comment has no text (StoryComment.text is optional in Shortcut's schema). */
  comments?: { id: number; text?: string | null; deleted?: boolean }[];
  external_links?: string[];
}
interface SearchPage {
  data: Story[];
  next: string | null;
}

const TYPES: Readonly<Record<string, TrackerStateType>> = { unstarted: "unstarted", started: "started", done: "completed" };
const PAGE_SIZE = 25;

export class ShortcutTracker implements TicketingProvider {
  readonly id = "ticketing.shortcut" as const;
  readonly #o: TrackerClientOptions;
  readonly #base: string;

  constructor(opts: TrackerClientOptions) {
    this.#o = opts;
    this.#base = opts.apiUrl.replace(/\/+$/, "");
  }

  async list(query: TicketQuery, signal?: AbortSignal): Promise<Ticket[]> {
    const limit = query.limit ?? 100;
    const states = await this.#states(signal);
    const terms = ["!is:archived"];
    if (query.assignedToMe ?? true) {
      const me = await this.#call<Member>("read the token's member", "GET", "/member", undefined, signal);
      const mention = me.mention_name ?? me.profile?.mention_name;
      if (!mention)
        throw new TrackerApiError("read the token's member", "Shortcut named no mention_name for the token's member", undefined, { retryable: false });
      terms.push(`owner:${mention}`);
    }
    const wanted = new Set((query.states ?? []).map((s) => s.trim().toLowerCase()));
    const out: Ticket[] = [];
    let next: string | null = `/search/stories?${new URLSearchParams({ query: terms.join(" "), detail: "full", page_size: String(PAGE_SIZE) })}`;
    // Bounded: pages until `limit` stories match, at most ceil(limit / 25) + 8 pages (the states filter skips some).
    for (let page = 0; next && out.length < limit && page < Math.ceil(limit / PAGE_SIZE) + 8; page++) {
      const r: SearchPage = await this.#call<SearchPage>("search stories", "GET", next, undefined, signal);
      for (const s of r.data) {
        const st = states.get(s.workflow_state_id);
        if (wanted.size > 0 && (!st || !wanted.has(st.name.trim().toLowerCase()))) continue;
        out.push(this.#ticket(s, st));
        if (out.length >= limit) break;
      }
      next = r.next ? this.#relative(r.next) : null;
    }
    return out.sort((a, b) => (b.updatedAt ?? "").localeCompare(a.updatedAt ?? ""));
  }

  async moveTo(ticket: TicketRef, state: string, signal?: AbortSignal): Promise<WriteOutcome> {
    const [story, states] = await Promise.all([this.#story(ticket, signal), this.#states(signal)]);
    const want = state.trim().toLowerCase();
    if (states.get(story.workflow_state_id)?.name.trim().toLowerCase() === want) return { changed: false };
    const target = [...states.values()].find((s) => s.name.trim().toLowerCase() === want);
    if (!target) throw new TrackerUnknownStateError(state, [...new Set([...states.values()].map((s) => s.name))]);
    await this.#call("move story", "PUT", `/stories/${encodeURIComponent(ticket.id)}`, { workflow_state_id: target.id }, signal);
    return { changed: true };
  }

  async comment(ticket: TicketRef, key: string, body: string, signal?: AbortSignal): Promise<WriteOutcome> {
    const marker = commentMarker(key);
    const story = await this.#story(ticket, signal);
    if ((story.comments ?? []).some((c) => !c.deleted && (c.text ?? "").includes(marker))) return { changed: false };
    await this.#call("comment", "POST", `/stories/${encodeURIComponent(ticket.id)}/comments`, { text: `${body}\n\n${marker}` }, signal);
    return { changed: true };
  }

  async attachLink(ticket: TicketRef, url: string, _title: string, signal?: AbortSignal): Promise<WriteOutcome> {
    const story = await this.#story(ticket, signal);
    const links = story.external_links ?? [];
    if (links.includes(url)) return { changed: false };
    await this.#call("attach link", "PUT", `/stories/${encodeURIComponent(ticket.id)}`, { external_links: [...links, url] }, signal);
    return { changed: true };
  }

  #ticket(s: Story, st: WorkflowState | undefined): Ticket {
    const type = st ? TYPES[st.type] : undefined;
    return {
      provider: this.id,
      id: String(s.id),
      key: `sc-${s.id}`,
      url: s.app_url,
      title: s.name,
      description: s.description ?? "",
      labels: (s.labels ?? []).map((l) => l.name),
      state: st?.name ?? String(s.workflow_state_id),
      ...(type ? { stateType: type } : {}),
      ...(s.updated_at ? { updatedAt: s.updated_at } : {}),
    };
  }

  async #story(ticket: TicketRef, signal?: AbortSignal): Promise<Story> {
    return this.#call<Story>("read story", "GET", `/stories/${encodeURIComponent(ticket.id)}`, undefined, signal, `Shortcut story ${ticket.key}`);
  }

  async #states(signal?: AbortSignal): Promise<Map<number, WorkflowState>> {
    const workflows = await this.#call<{ states: WorkflowState[] }[]>("read workflows", "GET", "/workflows", undefined, signal);
    return new Map(workflows.flatMap((w) => w.states.map((s) => [s.id, s] as const)));
  }

  /** `next` as Shortcut gives it (a path with its query, from the API's root) relative to our base. */
  #relative(next: string): string {
    const path = next.startsWith("http") ? new URL(next).pathname + new URL(next).search : next;
    const i = path.indexOf("/api/v3");
    return i >= 0 ? path.slice(i + "/api/v3".length) : path;
  }

  async #call<T>(operation: string, method: string, path: string, body: unknown, signal?: AbortSignal, notFound?: string): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.#base}${path}`, {
        method,
        headers: { "Shortcut-Token": this.#o.token, accept: "application/json", ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: callSignal(this.#o.timeoutMs, signal),
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      const e = err as { name?: string; message?: string };
      throw new TrackerApiError(operation, `Shortcut unreachable: ${e?.name === "TimeoutError" ? "timed out" : (e?.message ?? String(err))}`, undefined, {
        cause: err,
      });
    }
    const text = await res.text();
    if (res.status === 404 && notFound) throw new TrackerNotFoundError(notFound);
    if (!res.ok) {
      let message = text.slice(0, 500);
      try {
        const j = JSON.parse(text) as { message?: string };
        if (j.message) message = j.message;
      } catch {
        /* not JSON: its text */
      }
      throw new TrackerApiError(operation, message.split(this.#o.token).join("[redacted]") || res.statusText, res.status);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }
}
