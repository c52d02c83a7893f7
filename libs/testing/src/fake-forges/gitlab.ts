import type { IncomingMessage } from "node:http";
import { FakeForge, linkHeader, pageOf, type ApiContext, type ApiResponse, type FakeComment, type FakeIssue, type FakeJob, type FakePull } from "./base.js";

/**
 * A local GitLab: the REST API v4 calls the agent hub makes (merge requests list/create/show/merge,
 * approvals, notes, a commit's pipelines and their jobs, a job's trace; issues listed with `labels`,
 * `assignee_username`, `scope`, `state`, `order_by`, `sort`, read, updated with `labels`,
 * `add_labels`, `remove_labels` and `state_event`, and their notes), in GitLab's shapes as its
 * API docs give them (a merge request's draft is its title's `Draft:` prefix: an update of the title
 * without one marks it ready, with one a draft again): `PRIVATE-TOKEN` or `Bearer` auth, `{message}` errors (`"401 Unauthorized"`,
 * `"404 Project Not Found"`, 405/406/409 on a refused merge), offset pagination with `x-page`,
 * `x-per-page`, `x-total`, `x-total-pages`, `x-next-page` and `link`; projects addressed by
 * URL-encoded path (`group%2Fname`) or numeric id. Repositories are cloned and pushed over smart
 * HTTP at `<url>/<path>.git` (user `oauth2`, the token as password).
 */

const error = (status: number, message: unknown): ApiResponse => ({ status, body: { message } });

/** The title prefixes GitLab reads as "draft". */
const DRAFT_TITLE = /^\s*(\[draft\]|\(draft\)|draft:|draft\s-\s|draft\s)/i;

/** GitLab's job statuses for ours. */
const JOB_STATUS: Record<FakeJob["status"], string> = {
  pending: "pending",
  running: "running",
  success: "success",
  failure: "failed",
  canceled: "canceled",
  skipped: "skipped",
};

export class FakeGitLab extends FakeForge {
  protected readonly apiPrefix = "/api/v4";
  readonly #projectIds = new Map<string, number>();

  get apiUrl(): string {
    return `${this.url}/api/v4`;
  }

  protected tokenOf(req: IncomingMessage): string | undefined {
    const pt = req.headers["private-token"];
    if (typeof pt === "string") return pt;
    return /^bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
  }

  protected unauthorized(): ApiResponse {
    return error(401, "401 Unauthorized");
  }

  protected notFound(): ApiResponse {
    return error(404, "404 Not found");
  }

  protected failure(status: number): ApiResponse {
    // GitLab's rate limiter answers in plain text, with the headers its docs list.
    if (status === 429) return { status, text: "Retry later", headers: { "retry-after": "60", "ratelimit-remaining": "0" } };
    return error(status, status === 503 ? "503 Service Unavailable" : `${status} Internal Server Error`);
  }

  #userJson(username: string) {
    return { id: username.length, username, name: username, state: "active", web_url: `${this.url}/${username}` };
  }

  issueJson(i: FakeIssue): Record<string, unknown> {
    return {
      id: i.id,
      iid: i.number,
      project_id: this.projectId(i.repo),
      title: i.title,
      description: i.body,
      state: i.state === "open" ? "opened" : "closed",
      created_at: i.createdAt,
      updated_at: i.updatedAt,
      closed_at: i.closedAt ?? null,
      closed_by: i.state === "closed" ? this.#userJson(this.user) : null,
      labels: i.labels,
      milestone: null,
      assignees: i.assignees.map((a) => this.#userJson(a)),
      assignee: i.assignees[0] ? this.#userJson(i.assignees[0]) : null,
      author: this.#userJson(i.author),
      type: "ISSUE",
      issue_type: "issue",
      user_notes_count: i.comments.length,
      confidential: false,
      web_url: `${this.url}/${i.repo}/-/issues/${i.number}`,
      references: { short: `#${i.number}`, relative: `#${i.number}`, full: `${i.repo}#${i.number}` },
    };
  }

  /** `labels` as GitLab reads it: a comma-separated string (or an array, `labels[]`). */
  #labelList(v: unknown): string[] {
    const raw = Array.isArray(v) ? v.map(String) : typeof v === "string" ? v.split(",") : [];
    return raw.map((l) => l.trim()).filter(Boolean);
  }

  /** `GET /projects/:id/issues`: every state by default, newest created first. */
  #listIssues(ctx: ApiContext, repo: string, path: string): ApiResponse {
    const q = ctx.query;
    const state = q.state ?? "all";
    if (!["opened", "closed", "all"].includes(state)) return error(400, "state does not have a valid value");
    const labels = this.#labelList(q.labels);
    const assignee = q.assignee_username ?? q["assignee_username[]"];
    const scope = q.scope ?? "all";
    if (!["created_by_me", "assigned_to_me", "all"].includes(scope)) return error(400, "scope does not have a valid value");
    const orderBy = q.order_by ?? "created_at";
    if (!["created_at", "updated_at"].includes(orderBy)) return error(400, "order_by does not have a valid value");
    const key = orderBy === "updated_at" ? "updatedAt" : "createdAt";
    const lower = (x: string) => x.toLowerCase();
    const list = this.issuesOf(repo)
      .filter((i) => state === "all" || (state === "opened" ? i.state === "open" : i.state === "closed"))
      .filter((i) => {
        if (labels.length === 1 && lower(labels[0]!) === "none") return i.labels.length === 0;
        if (labels.length === 1 && lower(labels[0]!) === "any") return i.labels.length > 0;
        return labels.every((w) => i.labels.some((l) => lower(l) === lower(w)));
      })
      .filter((i) => !assignee || i.assignees.some((a) => lower(a) === lower(assignee)))
      .filter((i) => (scope === "assigned_to_me" ? i.assignees.includes(this.user) : scope === "created_by_me" ? i.author === this.user : true))
      .sort((a, b) => {
        const d = a[key] < b[key] ? -1 : a[key] > b[key] ? 1 : a.number - b.number;
        return q.sort === "asc" ? d : -d;
      })
      .map((i) => this.issueJson(i));
    return this.#list(ctx, path, list);
  }

  /** `PUT /projects/:id/issues/:iid`: labels (replaced), add_labels, remove_labels, state_event, title, description. */
  #updateIssue(i: FakeIssue, body: Record<string, unknown>): ApiResponse {
    const known = ["labels", "add_labels", "remove_labels", "state_event", "title", "description", "assignee_ids"];
    if (!known.some((k) => body[k] !== undefined)) return error(400, `${known.join(", ")} are missing, at least one parameter must be provided`);
    if (body.state_event !== undefined && body.state_event !== "close" && body.state_event !== "reopen")
      return error(400, "state_event does not have a valid value");
    if (typeof body.title === "string") i.title = body.title;
    if (typeof body.description === "string") i.body = body.description;
    const dedupe = (ls: string[]) => [...new Map(ls.map((l) => [l.toLowerCase(), l] as const)).values()];
    if (body.labels !== undefined) i.labels = dedupe(this.#labelList(body.labels));
    if (body.add_labels !== undefined) i.labels = dedupe([...i.labels, ...this.#labelList(body.add_labels)]);
    if (body.remove_labels !== undefined) {
      const gone = new Set(this.#labelList(body.remove_labels).map((l) => l.toLowerCase()));
      i.labels = i.labels.filter((l) => !gone.has(l.toLowerCase()));
    }
    if (body.state_event === "close" && i.state === "open") {
      i.state = "closed";
      i.stateReason = "completed";
      i.closedAt = this.tick();
    } else if (body.state_event === "reopen" && i.state === "closed") {
      i.state = "open";
      i.stateReason = null;
      delete i.closedAt;
    }
    i.updatedAt = this.tick();
    return { status: 200, body: this.issueJson(i) };
  }

  #issueNoteJson(i: FakeIssue, c: FakeComment) {
    return {
      id: c.id,
      type: null,
      body: c.body,
      author: this.#userJson(c.author),
      created_at: c.createdAt,
      updated_at: c.createdAt,
      system: false,
      noteable_id: i.id,
      noteable_type: "Issue",
      noteable_iid: i.number,
      project_id: this.projectId(i.repo),
      resolvable: false,
      confidential: false,
      internal: false,
    };
  }

  projectId(repo: string): number {
    let id = this.#projectIds.get(repo);
    if (id === undefined) {
      id = this.#projectIds.size + 1;
      this.#projectIds.set(repo, id);
    }
    return id;
  }

  #repoOf(idOrPath: string): string | undefined {
    if (/^\d+$/.test(idOrPath)) return [...this.#projectIds].find(([, id]) => id === Number(idOrPath))?.[0];
    return this.hasRepository(idOrPath) ? idOrPath : undefined;
  }

  #mergeStatus(p: FakePull): string {
    if (p.state !== "open") return "not_open";
    if (p.draft) return "draft_status";
    const m = this.isMergeable(p);
    if (m === null) return "checking";
    return m ? "mergeable" : this.mergesCleanly(p.repo, p.base, p.head) ? "not_approved" : "conflict";
  }

  mrJson(p: FakePull): Record<string, unknown> {
    const merged = p.state === "merged";
    const detailed = this.#mergeStatus(p);
    return {
      id: p.id,
      iid: p.number,
      project_id: this.projectId(p.repo),
      title: p.title,
      description: p.body,
      state: p.state === "open" ? "opened" : p.state,
      created_at: p.createdAt,
      updated_at: p.updatedAt,
      merged_at: p.mergedAt ?? null,
      closed_at: p.state === "closed" ? (p.closedAt ?? null) : null,
      target_branch: p.base,
      source_branch: p.head,
      source_project_id: this.projectId(p.repo),
      target_project_id: this.projectId(p.repo),
      author: { id: 1, username: p.author, name: p.author, state: "active" },
      draft: p.draft,
      work_in_progress: p.draft,
      merge_status: detailed === "mergeable" ? "can_be_merged" : detailed === "checking" ? "checking" : "cannot_be_merged",
      detailed_merge_status: detailed,
      has_conflicts: p.state === "open" && !this.mergesCleanly(p.repo, p.base, p.head),
      sha: this.headShaOf(p),
      merge_commit_sha: merged ? (p.mergeCommitSha ?? null) : null,
      squash_commit_sha: null,
      squash: false,
      web_url: `${this.url}/${p.repo}/-/merge_requests/${p.number}`,
      references: { short: `!${p.number}`, full: `${p.repo}!${p.number}` },
    };
  }

  #list(ctx: ApiContext, path: string, items: unknown[]): ApiResponse {
    const pg = pageOf(items, ctx.query, 20);
    const headers: Record<string, string> = {
      "x-page": String(pg.page),
      "x-per-page": String(pg.perPage),
      "x-total": String(items.length),
      "x-total-pages": String(pg.totalPages),
      "x-next-page": pg.page < pg.totalPages ? String(pg.page + 1) : "",
      "x-prev-page": pg.page > 1 ? String(pg.page - 1) : "",
    };
    const link = linkHeader(`${this.apiUrl}/${path}`, ctx.query, pg.page, pg.totalPages, pg.perPage);
    if (link) headers.link = link;
    return { status: 200, body: pg.items, headers };
  }

  #pipelines(repo: string): { id: number; sha: string; jobs: FakeJob[] }[] {
    const byId = new Map<number, { id: number; sha: string; jobs: FakeJob[] }>();
    for (const j of this.jobsOf(repo)) {
      const p = byId.get(j.pipelineId) ?? { id: j.pipelineId, sha: j.sha, jobs: [] };
      p.jobs.push(j);
      byId.set(j.pipelineId, p);
    }
    return [...byId.values()];
  }

  #pipelineStatus(jobs: FakeJob[]): string {
    const s = jobs.map((j) => j.status);
    if (s.some((x) => x === "running")) return "running";
    if (s.some((x) => x === "pending")) return "pending";
    if (jobs.some((j) => j.status === "failure" && !j.allowFailure)) return "failed";
    if (s.every((x) => x === "canceled")) return "canceled";
    return "success";
  }

  protected route(ctx: ApiContext): ApiResponse | undefined {
    const raw = ctx.segments;
    if (raw[0] !== "projects" || raw.length < 2) return undefined;
    const repo = this.#repoOf(decodeURIComponent(raw[1]!));
    if (!repo) return error(404, "404 Project Not Found");
    const s = raw.slice(2).map(decodeURIComponent);
    const m = ctx.method;
    const path = raw.join("/");
    const body = (typeof ctx.body === "object" && ctx.body !== null ? ctx.body : {}) as Record<string, unknown>;
    const pipelineJson = (p: { id: number; sha: string; jobs: FakeJob[] }) => ({
      id: p.id,
      iid: p.id,
      project_id: this.projectId(repo),
      sha: p.sha,
      ref: this.pullsOf(repo).find((x) => this.headShaOf(x) === p.sha)?.head ?? "main",
      status: this.#pipelineStatus(p.jobs),
      source: "push",
      created_at: p.jobs[0]?.createdAt,
      updated_at: p.jobs.at(-1)?.createdAt,
      web_url: `${this.url}/${repo}/-/pipelines/${p.id}`,
    });

    if (s.length === 0 && m === "GET") {
      return {
        status: 200,
        body: {
          id: this.projectId(repo),
          path_with_namespace: repo,
          default_branch: "main",
          web_url: `${this.url}/${repo}`,
          http_url_to_repo: this.cloneUrl(repo),
        },
      };
    }

    if (s[0] === "merge_requests" && s.length === 1) {
      if (m === "GET") {
        const state = ctx.query.state ?? "all";
        const list = this.pullsOf(repo)
          .filter((p) => state === "all" || (state === "opened" ? p.state === "open" : p.state === state))
          .filter((p) => !ctx.query.source_branch || p.head === ctx.query.source_branch)
          .filter((p) => !ctx.query.target_branch || p.base === ctx.query.target_branch)
          .sort((a, b) => b.number - a.number)
          .map((p) => this.mrJson(p));
        return this.#list(ctx, path, list);
      }
      if (m === "POST") {
        const source = typeof body.source_branch === "string" ? body.source_branch : "";
        const target = typeof body.target_branch === "string" ? body.target_branch : "";
        const title = typeof body.title === "string" ? body.title : "";
        if (!source || !target || !title) return error(400, `${!source ? "source_branch" : !target ? "target_branch" : "title"} is missing`);
        if (!this.headOf(repo, source)) return error(422, [`Source branch "${source}" does not exist`]);
        if (!this.headOf(repo, target)) return error(422, [`Target branch "${target}" does not exist`]);
        const open = this.pullsOf(repo).find((p) => p.state === "open" && p.head === source && p.base === target);
        if (open) return error(409, [`Another open merge request already exists for this source branch: !${open.number}`]);
        const draft = DRAFT_TITLE.test(title);
        const p = this.openPull(repo, { title, body: typeof body.description === "string" ? body.description : "", head: source, base: target, draft });
        return { status: 201, body: this.mrJson(p) };
      }
    }

    if (s[0] === "merge_requests" && s[1] && /^\d+$/.test(s[1])) {
      const p = this.pull(repo, Number(s[1]));
      if (!p) return error(404, "404 Not found");
      if (s.length === 2 && m === "GET") return { status: 200, body: this.mrJson(p) };
      if (s.length === 2 && m === "PUT") {
        // Update MR: at least one attribute; the title decides whether it is a draft.
        const title = typeof body.title === "string" ? body.title : undefined;
        const description = typeof body.description === "string" ? body.description : undefined;
        if (title === undefined && description === undefined) return error(400, "title, description are missing, at least one parameter must be provided");
        if (title !== undefined) {
          if (!title.trim()) return error(400, { title: ["can't be blank"] });
          p.title = title;
          p.draft = DRAFT_TITLE.test(title);
        }
        if (description !== undefined) p.body = description;
        p.updatedAt = new Date().toISOString();
        return { status: 200, body: this.mrJson(p) };
      }
      if (s[2] === "merge" && m === "PUT") {
        if (p.state !== "open" || p.draft) return error(405, "405 Method Not Allowed");
        if (typeof body.sha === "string" && body.sha !== this.headShaOf(p)) return error(409, `SHA does not match HEAD of source branch: ${this.headShaOf(p)}`);
        if (!this.mergesCleanly(p.repo, p.base, p.head)) return error(406, "Branch cannot be merged");
        if (this.isMergeable(p) !== true) return error(405, "405 Method Not Allowed");
        this.mergePull(repo, p.number, body.squash === true ? "squash" : "merge");
        return { status: 200, body: this.mrJson(p) };
      }
      if (s[2] === "approvals" && m === "GET") {
        const approvedBy = this.reviews
          .filter((r) => r.repo === repo && r.number === p.number && r.state === "approved")
          .map((r) => ({ user: { id: r.id, username: r.author, name: r.author, state: "active" } }));
        return {
          status: 200,
          body: {
            id: p.id,
            iid: p.number,
            project_id: this.projectId(repo),
            title: p.title,
            state: p.state === "open" ? "opened" : p.state,
            merge_status: this.mrJson(p).merge_status,
            approved: approvedBy.length > 0,
            approvals_required: 1,
            approvals_left: approvedBy.length > 0 ? 0 : 1,
            approved_by: approvedBy,
          },
        };
      }
      if (s[2] === "notes") {
        const noteJson = (n: {
          id: number;
          body: string;
          author: string;
          createdAt: string;
          system: boolean;
          position?: { path?: string; line?: number };
        }) => ({
          id: n.id,
          type: n.position ? "DiffNote" : null,
          body: n.body,
          author: { id: 1, username: n.author, name: n.author },
          created_at: n.createdAt,
          updated_at: n.createdAt,
          system: n.system,
          noteable_id: p.id,
          noteable_type: "MergeRequest",
          noteable_iid: p.number,
          resolvable: n.position !== undefined,
          ...(n.position
            ? { position: { position_type: "text", new_path: n.position.path, old_path: n.position.path, new_line: n.position.line ?? null, old_line: null } }
            : {}),
        });
        if (m === "POST") {
          if (typeof body.body !== "string" || body.body === "") return error(400, "body is missing");
          const c = this.addComment(repo, p.number, body.body);
          return { status: 201, body: noteJson({ ...c, system: false }) };
        }
        if (m === "GET") {
          const notes = [
            ...this.commentsOf(repo, p.number).map((c) => ({ ...c, system: false })),
            ...this.reviews
              .filter((r) => r.repo === repo && r.number === p.number)
              .flatMap((r) => {
                if (r.state === "approved")
                  return [{ id: r.id, body: "approved this merge request", author: r.author, createdAt: r.submittedAt, system: true }];
                if (r.state === "changes_requested") {
                  return [
                    { id: r.id, body: "requested changes", author: r.author, createdAt: r.submittedAt, system: true },
                    ...(r.body ? [{ id: r.id * 100, body: r.body, author: r.author, createdAt: r.submittedAt, system: false }] : []),
                    ...r.comments.map((c, i) => ({
                      id: r.id * 100 + i + 1,
                      body: c.body,
                      author: r.author,
                      createdAt: r.submittedAt,
                      system: false,
                      position: c,
                    })),
                  ];
                }
                return [
                  ...(r.body ? [{ id: r.id, body: r.body, author: r.author, createdAt: r.submittedAt, system: false }] : []),
                  ...r.comments.map((c, i) => ({
                    id: r.id * 100 + i + 1,
                    body: c.body,
                    author: r.author,
                    createdAt: r.submittedAt,
                    system: false,
                    position: c,
                  })),
                ];
              }),
          ].sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id - b.id));
          const ordered = ctx.query.sort === "desc" ? notes.reverse() : notes;
          return this.#list(ctx, path, ordered.map(noteJson));
        }
      }
    }

    if (s[0] === "issues" && s.length === 1 && m === "GET") return this.#listIssues(ctx, repo, path);
    if (s[0] === "issues" && s[1] && /^\d+$/.test(s[1])) {
      const i = this.issue(repo, Number(s[1]));
      if (!i) return error(404, "404 Not found");
      if (s.length === 2 && m === "GET") return { status: 200, body: this.issueJson(i) };
      if (s.length === 2 && m === "PUT") return this.#updateIssue(i, body);
      if (s[2] === "notes" && s.length === 3) {
        if (m === "POST") {
          if (typeof body.body !== "string" || body.body === "") return error(400, "body is missing");
          return { status: 201, body: this.#issueNoteJson(i, this.commentOnIssue(i, body.body)) };
        }
        if (m === "GET") {
          const notes = [...i.comments].sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id - b.id));
          // GitLab lists notes newest first unless asked otherwise.
          const ordered = ctx.query.sort === "asc" ? notes : notes.reverse();
          return this.#list(
            ctx,
            path,
            ordered.map((c) => this.#issueNoteJson(i, c)),
          );
        }
      }
    }

    if (s[0] === "pipelines" && s.length === 1 && m === "GET") {
      const list = this.#pipelines(repo)
        .filter((p) => !ctx.query.sha || p.sha === ctx.query.sha)
        .sort((a, b) => (ctx.query.sort === "asc" ? a.id - b.id : b.id - a.id))
        .map(pipelineJson);
      return this.#list(ctx, path, list);
    }
    if (s[0] === "pipelines" && s[1] && s[2] === "jobs" && m === "GET") {
      const pipeline = this.#pipelines(repo).find((p) => p.id === Number(s[1]));
      if (!pipeline) return error(404, "404 Not found");
      const jobs = pipeline.jobs
        .sort((a, b) => b.id - a.id)
        .map((j) => ({
          id: j.id,
          name: j.name,
          stage: "test",
          status: JOB_STATUS[j.status],
          ref: pipelineJson(pipeline).ref,
          allow_failure: j.allowFailure,
          created_at: j.createdAt,
          started_at: j.createdAt,
          finished_at: ["pending", "running"].includes(j.status) ? null : j.createdAt,
          web_url: `${this.url}/${repo}/-/jobs/${j.id}`,
          commit: { id: j.sha, short_id: j.sha.slice(0, 8) },
          pipeline: { id: pipeline.id, project_id: this.projectId(repo), sha: pipeline.sha, status: this.#pipelineStatus(pipeline.jobs) },
        }));
      return this.#list(ctx, path, jobs);
    }
    if (s[0] === "jobs" && s[1] && s[2] === "trace" && m === "GET") {
      const job = this.jobs.find((j) => j.repo === repo && j.id === Number(s[1]));
      if (!job) return error(404, "404 Not found");
      return { status: 200, text: job.log };
    }
    return undefined;
  }
}
