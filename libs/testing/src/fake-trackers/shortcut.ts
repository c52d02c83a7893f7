import type { IncomingMessage } from "node:http";
import { FakeTrackerServer, type RecordedTrackerRequest } from "./http.js";

/**
 * A local Shortcut: the REST API v3 calls the client uses, in Shortcut's shapes (`/api/v3/member`,
 * `/api/v3/workflows`, `/api/v3/search/stories` with its `owner:` and `is:archived` operators and
 * `next` paging, `/api/v3/stories/{id}` GET and PUT, `/api/v3/stories/{id}/comments`), auth by the
 * `Shortcut-Token` header. State in memory: one workflow, stories with comments and external links.
 */

export interface FakeShortcutStory {
  id: number;
  name: string;
  description: string;
  workflow_state_id: number;
  labels: { name: string }[];
  owner_ids: string[];
  archived: boolean;
  updated_at: string;
  /** A deleted comment stays listed, `deleted: true`, its text gone (Shortcut's StoryComment.text is optional). */
  comments: { id: number; text: string | null; deleted: boolean; author_id: string; created_at: string }[];
  external_links: string[];
}

export const FAKE_SHORTCUT_STATES = [
  { id: 500000001, name: "Backlog", type: "unstarted" },
  { id: 500000002, name: "Ready for Development", type: "unstarted" },
  { id: 500000003, name: "In Progress", type: "started" },
  { id: 500000004, name: "In Review", type: "started" },
  { id: 500000005, name: "Done", type: "done" },
  { id: 500000006, name: "Canceled", type: "done" },
] as const;

export class FakeShortcut extends FakeTrackerServer {
  readonly me = { id: "11111111-1111-4111-8111-111111111111", mention_name: "orchbot", name: "Orchestrator Bot" };
  readonly other = { id: "22222222-2222-4222-8222-222222222222", mention_name: "someone", name: "Someone Else" };
  readonly stories = new Map<number, FakeShortcutStory>();
  #n = 100;
  #comment = 1;

  constructor(readonly token: string) {
    super();
  }

  /** What `[shortcut] api_url` is set to. */
  get apiUrl(): string {
    return `${this.url}/api/v3`;
  }

  addStory(s: { name: string; description?: string; state?: string; labels?: string[]; assignedToMe?: boolean; archived?: boolean }): FakeShortcutStory {
    const id = ++this.#n;
    const story: FakeShortcutStory = {
      id,
      name: s.name,
      description: s.description ?? "",
      workflow_state_id: FAKE_SHORTCUT_STATES.find((x) => x.name === (s.state ?? "Ready for Development"))!.id,
      labels: (s.labels ?? []).map((name) => ({ name })),
      owner_ids: [s.assignedToMe === false ? this.other.id : this.me.id],
      archived: s.archived ?? false,
      updated_at: new Date(Date.UTC(2025, 0, 1, 0, 0, id - 100)).toISOString(),
      comments: [],
      external_links: [],
    };
    this.stories.set(id, story);
    return story;
  }

  stateOf(id: number): string | undefined {
    return FAKE_SHORTCUT_STATES.find((s) => s.id === this.stories.get(id)?.workflow_state_id)?.name;
  }

  move(id: number, state: string): void {
    const s = this.stories.get(id)!;
    s.workflow_state_id = FAKE_SHORTCUT_STATES.find((x) => x.name === state)!.id;
    s.updated_at = new Date().toISOString();
  }

  /** Deletes a comment as a person would: it stays in the story's list, deleted and without its text. */
  deleteComment(storyId: number, commentId: number): void {
    const c = this.stories.get(storyId)?.comments.find((x) => x.id === commentId);
    if (!c) throw new Error(`no comment ${commentId} on story ${storyId}`);
    c.deleted = true;
    c.text = null;
  }

  #full(s: FakeShortcutStory) {
    const { archived, ...rest } = s;
    return { ...rest, archived, entity_type: "story", story_type: "feature", app_url: `https://app.shortcut.com/acme/story/${s.id}` };
  }

  protected async handle(req: IncomingMessage, body: unknown, _rec: RecordedTrackerRequest) {
    if (req.headers["shortcut-token"] !== this.token) return { status: 401, body: { message: "Unauthorized" } };
    const url = new URL(req.url ?? "/", "http://x");
    const p = url.pathname.replace(/^\/api\/v3/, "");
    const m = req.method ?? "GET";
    if (m === "GET" && p === "/member") return { status: 200, body: { ...this.me, workspace2: { url_slug: "acme" } } };
    if (m === "GET" && p === "/workflows")
      return {
        status: 200,
        body: [
          { id: 500000000, name: "Engineering", entity_type: "workflow", states: FAKE_SHORTCUT_STATES.map((s) => ({ ...s, entity_type: "workflow-state" })) },
        ],
      };
    if (m === "GET" && p === "/search/stories") return this.#search(url);
    const story = /^\/stories\/(\d+)(\/comments)?$/.exec(p);
    if (story) {
      const s = this.stories.get(Number(story[1]));
      if (!s) return { status: 404, body: { message: "Resource not found." } };
      if (story[2] && m === "POST") {
        const text = (body as { text?: unknown })?.text;
        if (typeof text !== "string" || !text) return { status: 400, body: { message: "text is required" } };
        const c = {
          id: this.#comment++,
          text,
          deleted: false,
          author_id: this.me.id,
          created_at: new Date().toISOString(),
          entity_type: "story-comment",
          story_id: s.id,
        };
        s.comments.push(c);
        return { status: 201, body: c };
      }
      if (!story[2] && m === "GET") return { status: 200, body: this.#full(s) };
      if (!story[2] && m === "PUT") {
        const b = (body ?? {}) as { workflow_state_id?: unknown; external_links?: unknown };
        if (b.workflow_state_id !== undefined) {
          if (!FAKE_SHORTCUT_STATES.some((x) => x.id === b.workflow_state_id)) return { status: 422, body: { message: "workflow_state_id is not a state" } };
          s.workflow_state_id = b.workflow_state_id as number;
        }
        if (b.external_links !== undefined) {
          if (!Array.isArray(b.external_links) || !b.external_links.every((x) => typeof x === "string"))
            return { status: 400, body: { message: "external_links must be strings" } };
          s.external_links = [...new Set(b.external_links as string[])];
        }
        s.updated_at = new Date().toISOString();
        return { status: 200, body: this.#full(s) };
      }
    }
    return { status: 404, body: { message: "Resource not found." } };
  }

  /** Shortcut's search: `owner:<mention_name>`, `is:archived` / `!is:archived`; pages of page_size with `next`. */
  #search(url: URL) {
    const query = url.searchParams.get("query") ?? "";
    const size = Number(url.searchParams.get("page_size") ?? 25);
    if (!Number.isInteger(size) || size < 1 || size > 25) return { status: 400, body: { message: "page_size must be between 1 and 25" } };
    // `next` is an opaque token in Shortcut's `next` path; here, the offset it stands for.
    const token = url.searchParams.get("next");
    const from = token
      ? Number(
          Buffer.from(token, "base64url")
            .toString("utf8")
            .replace(/^from:/, ""),
        )
      : 0;
    const full = url.searchParams.get("detail") === "full";
    let hits = [...this.stories.values()];
    for (const term of query.split(/\s+/).filter(Boolean)) {
      const neg = term.startsWith("!");
      const [op, value] = (neg ? term.slice(1) : term).split(":");
      if (op === "owner") {
        const who = [this.me, this.other].find((x) => x.mention_name === value);
        hits = hits.filter((s) => (who ? s.owner_ids.includes(who.id) : false) !== neg);
      } else if (op === "is" && value === "archived") hits = hits.filter((s) => s.archived !== neg);
    }
    hits.sort((a, b) => b.updated_at.localeCompare(a.updated_at));
    const page = hits.slice(from, from + size);
    const more = from + size < hits.length;
    const next = new URLSearchParams(url.searchParams);
    next.set("next", Buffer.from(`from:${from + size}`).toString("base64url"));
    return {
      status: 200,
      body: {
        data: page.map((s) => {
          const f = this.#full(s);
          if (full) return f;
          const { description: _d, comments: _c, ...slim } = f;
          return slim;
        }),
        next: more ? `/api/v3/search/stories?${next}` : null,
        total: hits.length,
      },
    };
  }
}
