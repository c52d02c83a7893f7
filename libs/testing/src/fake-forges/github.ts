import type { IncomingMessage } from "node:http";
import {
  FakeForge,
  linkHeader,
  pageOf,
  type ApiContext,
  type ApiResponse,
  type FakeComment,
  type FakeIssue,
  type FakeJob,
  type FakeMergeMethod,
  type FakePull,
} from "./base.js";

/**
 * A local GitHub: the REST API v3 calls the agent hub makes (pulls list/create/get/merge, reviews
 * and review comments, issue comments, check runs and the combined status of a commit, Actions job
 * logs; issues: the key's user, issues listed with `labels`, `assignee`, `state`, `sort`, `direction`
 * and pull requests among them with `pull_request`, read, updated with PATCH, commented),
 * in GitHub's request and response shapes as its REST reference gives them, and the one
 * GraphQL mutation REST has no call for (`POST /graphql`: `markPullRequestReadyForReview`, by the
 * pull request's `node_id`; answered `{data}` or `{errors: [{message}]}` with 200): `token`/`Bearer`
 * auth, `{message, documentation_url}` errors with GitHub's statuses (401, 404, 405, 409, 422),
 * `link` pagination, the job log as a 302 to a download URL. Repositories are `owner/name`, cloned
 * and pushed over smart HTTP at `<url>/<owner>/<name>.git` with the token as password.
 */

const DOCS = "https://docs.github.com/rest";

const error = (status: number, message: string, extra: Record<string, unknown> = {}): ApiResponse => ({
  status,
  body: { message, documentation_url: DOCS, ...extra, status: String(status) },
});

const JOB_STATE: Record<FakeJob["status"], { status: string; conclusion: string | null; state: string }> = {
  pending: { status: "queued", conclusion: null, state: "pending" },
  running: { status: "in_progress", conclusion: null, state: "pending" },
  success: { status: "completed", conclusion: "success", state: "success" },
  failure: { status: "completed", conclusion: "failure", state: "failure" },
  canceled: { status: "completed", conclusion: "cancelled", state: "error" },
  skipped: { status: "completed", conclusion: "skipped", state: "success" },
};

export class FakeGitHub extends FakeForge {
  protected readonly apiPrefix = "";

  get apiUrl(): string {
    return this.url;
  }

  protected tokenOf(req: IncomingMessage): string | undefined {
    return /^(?:token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
  }

  protected unauthorized(): ApiResponse {
    return error(401, "Bad credentials");
  }

  protected notFound(): ApiResponse {
    return error(404, "Not Found");
  }

  protected failure(status: number): ApiResponse {
    if (status === 429 || status === 403) {
      const reset = String(Math.ceil(Date.now() / 1000) + 60);
      return {
        ...error(status, "API rate limit exceeded for user ID 1."),
        headers: { "x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset, "retry-after": "60" },
      };
    }
    return error(status, status === 503 ? "Service Unavailable" : "Server Error");
  }

  /** Issues and pull requests share one sequence of numbers per repository. */
  protected override nextNumber(repo: string): number {
    return this.pullsOf(repo).length + this.issuesOf(repo).length + 1;
  }

  #labelJson(repo: string, name: string) {
    return {
      id: this.#labelIds(repo, name),
      node_id: `LA_${name}`,
      url: `${this.apiUrl}/repos/${repo}/labels/${encodeURIComponent(name)}`,
      name,
      color: "ededed",
      default: false,
      description: null,
    };
  }

  readonly #labels = new Map<string, number>();
  #labelIds(repo: string, name: string): number {
    const k = `${repo}\u0000${name.toLowerCase()}`;
    if (!this.#labels.has(k)) this.#labels.set(k, this.nextId());
    return this.#labels.get(k)!;
  }

  #userJson(login: string) {
    return { login, id: login.length, node_id: `U_${login}`, type: "User", site_admin: false, html_url: `${this.url}/${login}` };
  }

  /** An issue in GitHub's shape; a pull request as the issues endpoints list it (with `pull_request`). */
  issueJson(x: { kind: "issue"; issue: FakeIssue } | { kind: "pull"; pull: FakePull }): Record<string, unknown> {
    const i =
      x.kind === "issue"
        ? x.issue
        : {
            ...x.pull,
            labels: x.pull.labels ?? [],
            assignees: [] as string[],
            state: x.pull.state === "open" ? ("open" as const) : ("closed" as const),
            stateReason: null,
            comments: this.commentsOf(x.pull.repo, x.pull.number),
          };
    const base = `${this.apiUrl}/repos/${i.repo}/issues/${i.number}`;
    return {
      url: base,
      repository_url: `${this.apiUrl}/repos/${i.repo}`,
      labels_url: `${base}/labels{/name}`,
      comments_url: `${base}/comments`,
      html_url: `${this.url}/${i.repo}/${x.kind === "issue" ? "issues" : "pull"}/${i.number}`,
      id: i.id,
      node_id: `${x.kind === "issue" ? "I" : "PR"}_${i.id}`,
      number: i.number,
      title: i.title,
      user: this.#userJson(i.author),
      labels: i.labels.map((l) => this.#labelJson(i.repo, l)),
      state: i.state,
      locked: false,
      assignee: i.assignees[0] ? this.#userJson(i.assignees[0]) : null,
      assignees: i.assignees.map((a) => this.#userJson(a)),
      comments: i.comments.length,
      created_at: i.createdAt,
      updated_at: i.updatedAt,
      closed_at: i.closedAt ?? null,
      author_association: "MEMBER",
      state_reason: i.stateReason,
      body: i.body,
      ...(x.kind === "pull"
        ? {
            draft: x.pull.draft,
            pull_request: {
              url: `${this.apiUrl}/repos/${i.repo}/pulls/${i.number}`,
              html_url: `${this.url}/${i.repo}/pull/${i.number}`,
              diff_url: `${this.url}/${i.repo}/pull/${i.number}.diff`,
              patch_url: `${this.url}/${i.repo}/pull/${i.number}.patch`,
              merged_at: x.pull.mergedAt ?? null,
            },
          }
        : {}),
    };
  }

  #commentJson(repo: string, number: number, kind: "issues" | "pull", c: FakeComment) {
    return {
      id: c.id,
      node_id: `IC_${c.id}`,
      url: `${this.apiUrl}/repos/${repo}/issues/comments/${c.id}`,
      body: c.body,
      user: this.#userJson(c.author),
      created_at: c.createdAt,
      updated_at: c.createdAt,
      html_url: `${this.url}/${repo}/${kind}/${number}#issuecomment-${c.id}`,
      issue_url: `${this.apiUrl}/repos/${repo}/issues/${number}`,
      author_association: "MEMBER",
    };
  }

  /** `GET /repos/{o}/{r}/issues`: open by default, newest created first, pull requests included. */
  #listIssues(ctx: ApiContext, repo: string, path: string): ApiResponse {
    const q = ctx.query;
    const state = q.state ?? "open";
    if (!["open", "closed", "all"].includes(state))
      return error(422, "Validation Failed", { errors: [{ resource: "Issue", field: "state", code: "invalid" }] });
    const wantLabels = (q.labels ?? "")
      .split(",")
      .map((l) => l.trim().toLowerCase())
      .filter(Boolean);
    const all = [
      ...this.issuesOf(repo).map((issue) => ({ json: this.issueJson({ kind: "issue", issue }), i: issue })),
      ...this.pullsOf(repo).map((pull) => ({
        json: this.issueJson({ kind: "pull", pull }),
        i: { ...pull, labels: pull.labels ?? [], assignees: [] as string[], state: pull.state === "open" ? "open" : "closed" },
      })),
    ];
    const sortKey = q.sort === "updated" ? "updatedAt" : "createdAt";
    const list = all
      .filter(({ i }) => state === "all" || i.state === state)
      .filter(({ i }) => wantLabels.every((w) => i.labels.some((l) => l.toLowerCase() === w)))
      .filter(({ i }) => {
        const a = q.assignee;
        if (a === undefined || a === "") return true;
        if (a === "none") return i.assignees.length === 0;
        if (a === "*") return i.assignees.length > 0;
        return i.assignees.some((x) => x.toLowerCase() === a.toLowerCase());
      })
      .sort((a, b) => {
        const d = a.i[sortKey] < b.i[sortKey] ? -1 : a.i[sortKey] > b.i[sortKey] ? 1 : a.i.number - b.i.number;
        return q.direction === "asc" ? d : -d;
      })
      .map(({ json }) => json);
    return this.#list(ctx, path, list);
  }

  /** `PATCH /repos/{o}/{r}/issues/{n}`: title, body, state with state_reason, labels (replaced), assignees. */
  #updateIssue(i: FakeIssue, body: Record<string, unknown>): ApiResponse {
    const invalid = (field: string) => error(422, "Validation Failed", { errors: [{ resource: "Issue", field, code: "invalid" }] });
    if (body.state !== undefined && body.state !== "open" && body.state !== "closed") return invalid("state");
    if (body.state_reason !== undefined && body.state_reason !== null && !["completed", "not_planned", "reopened"].includes(String(body.state_reason)))
      return invalid("state_reason");
    if (body.labels !== undefined && !Array.isArray(body.labels)) return invalid("labels");
    if (typeof body.title === "string") i.title = body.title;
    if (typeof body.body === "string") i.body = body.body;
    if (Array.isArray(body.labels)) {
      const names = body.labels.map((l: unknown) => (typeof l === "string" ? l : String((l as { name?: unknown })?.name ?? "")));
      i.labels = [...new Map(names.filter(Boolean).map((n) => [n.toLowerCase(), n] as const)).values()];
    }
    if (Array.isArray(body.assignees)) i.assignees = body.assignees.map(String);
    if (body.state === "closed" && i.state !== "closed") {
      i.state = "closed";
      i.stateReason = body.state_reason === "not_planned" ? "not_planned" : "completed";
      i.closedAt = this.tick();
    } else if (body.state === "open" && i.state !== "open") {
      i.state = "open";
      i.stateReason = "reopened";
      delete i.closedAt;
    }
    i.updatedAt = this.tick();
    return { status: 200, body: this.issueJson({ kind: "issue", issue: i }) };
  }

  /** A pull request in GitHub's shape (`full`: as a single GET returns it, with `merged` and `mergeable`). */
  pullJson(p: FakePull, full: boolean): Record<string, unknown> {
    const [owner] = p.repo.split("/");
    const headSha = this.headShaOf(p);
    const baseSha = this.headOf(p.repo, p.base);
    const repoJson = { full_name: p.repo, name: p.repo.split("/")[1], owner: { login: owner }, html_url: `${this.url}/${p.repo}` };
    const mergeable = full ? this.isMergeable(p) : undefined;
    return {
      url: `${this.apiUrl}/repos/${p.repo}/pulls/${p.number}`,
      id: p.id,
      node_id: `PR_${p.id}`,
      html_url: `${this.url}/${p.repo}/pull/${p.number}`,
      number: p.number,
      state: p.state === "open" ? "open" : "closed",
      locked: false,
      title: p.title,
      user: { login: p.author, type: "User" },
      body: p.body,
      created_at: p.createdAt,
      updated_at: p.updatedAt,
      closed_at: p.closedAt ?? null,
      merged_at: p.mergedAt ?? null,
      merge_commit_sha: p.mergeCommitSha ?? null,
      draft: p.draft,
      head: { label: `${owner}:${p.head}`, ref: p.head, sha: headSha, user: { login: owner }, repo: repoJson },
      base: { label: `${owner}:${p.base}`, ref: p.base, sha: baseSha, user: { login: owner }, repo: repoJson },
      author_association: "MEMBER",
      ...(full
        ? {
            merged: p.state === "merged",
            mergeable: p.state === "merged" ? false : mergeable,
            mergeable_state: p.state !== "open" ? "unknown" : mergeable === null ? "unknown" : mergeable ? (p.draft ? "draft" : "clean") : "dirty",
            merged_by: p.state === "merged" ? { login: this.user } : null,
            comments: this.commentsOf(p.repo, p.number).length,
            review_comments: this.reviews.filter((r) => r.repo === p.repo && r.number === p.number).reduce((n, r) => n + r.comments.length, 0),
            commits: 1,
          }
        : {}),
    };
  }

  #list(ctx: ApiContext, path: string, items: unknown[], wrap?: (page: unknown[]) => unknown): ApiResponse {
    const pg = pageOf(items, ctx.query, 30);
    const link = linkHeader(`${this.apiUrl}/${path}`, ctx.query, pg.page, pg.totalPages, pg.perPage);
    return { status: 200, body: wrap ? wrap(pg.items) : pg.items, ...(link ? { headers: { link } } : {}) };
  }

  #sha(repo: string, ref: string): string | null {
    return /^[0-9a-f]{40}$/.test(ref) ? ref : this.headOf(repo, ref);
  }

  protected route(ctx: ApiContext): ApiResponse | undefined {
    const s = ctx.segments.map(decodeURIComponent);
    const m = ctx.method;
    if (s.length === 1 && s[0] === "graphql" && m === "POST") return this.#graphql(ctx.body);
    if (s.length === 1 && s[0] === "user" && m === "GET") return { status: 200, body: { ...this.#userJson(this.user), name: this.user } };
    if (s[0] !== "repos" || s.length < 3) return undefined;
    const repo = `${s[1]}/${s[2]}`;
    if (!this.hasRepository(repo)) return this.notFound();
    const rest = s.slice(3);
    const path = s.join("/");
    const body = (ctx.body ?? {}) as Record<string, unknown>;

    if (rest.length === 0 && m === "GET") {
      return {
        status: 200,
        body: { id: 1, full_name: repo, name: s[2], owner: { login: s[1] }, default_branch: "main", private: true, html_url: `${this.url}/${repo}` },
      };
    }

    if (rest[0] === "pulls" && rest.length === 1) {
      if (m === "GET") {
        const state = ctx.query.state ?? "open";
        const head = ctx.query.head;
        const list = this.pullsOf(repo)
          .filter((p) => state === "all" || (state === "open" ? p.state === "open" : p.state !== "open"))
          .filter((p) => !head || `${repo.split("/")[0]}:${p.head}` === head || p.head === head)
          .filter((p) => !ctx.query.base || p.base === ctx.query.base)
          .sort((a, b) => b.number - a.number)
          .map((p) => this.pullJson(p, false));
        return this.#list(ctx, path, list);
      }
      if (m === "POST") {
        const title = typeof body.title === "string" ? body.title : "";
        const head = typeof body.head === "string" ? body.head.replace(/^[^:]+:/, "") : "";
        const base = typeof body.base === "string" ? body.base : "";
        const invalid = (field: string, code = "invalid") =>
          error(422, "Validation Failed", {
            errors: [{ resource: "PullRequest", field, code }],
            documentation_url: `${DOCS}/pulls/pulls#create-a-pull-request`,
          });
        if (!title) return invalid("title", "missing_field");
        if (!this.headOf(repo, head)) return invalid("head");
        if (!this.headOf(repo, base)) return invalid("base");
        if (this.pullsOf(repo).some((p) => p.state === "open" && p.head === head && p.base === base)) {
          return error(422, "Validation Failed", {
            errors: [{ resource: "PullRequest", code: "custom", message: `A pull request already exists for ${repo.split("/")[0]}:${head}.` }],
            documentation_url: `${DOCS}/pulls/pulls#create-a-pull-request`,
          });
        }
        if (this.headOf(repo, head) === this.headOf(repo, base)) {
          return error(422, "Validation Failed", { errors: [{ resource: "PullRequest", code: "custom", message: `No commits between ${base} and ${head}` }] });
        }
        const p = this.openPull(repo, { title, body: typeof body.body === "string" ? body.body : "", head, base, draft: body.draft === true });
        return { status: 201, body: this.pullJson(p, true), headers: { location: `${this.apiUrl}/repos/${repo}/pulls/${p.number}` } };
      }
    }

    if (rest[0] === "pulls" && rest[1] && /^\d+$/.test(rest[1])) {
      const p = this.pull(repo, Number(rest[1]));
      if (!p) return this.notFound();
      if (rest.length === 2 && m === "GET") return { status: 200, body: this.pullJson(p, true) };
      if (rest[2] === "merge" && m === "PUT") return this.#merge(p, body);
      if (rest[2] === "reviews" && m === "GET") {
        const list = this.reviews
          .filter((r) => r.repo === repo && r.number === p.number)
          .map((r) => ({
            id: r.id,
            node_id: `PRR_${r.id}`,
            user: { login: r.author, type: "User" },
            body: r.body,
            state: r.state === "approved" ? "APPROVED" : r.state === "changes_requested" ? "CHANGES_REQUESTED" : "COMMENTED",
            html_url: `${this.url}/${repo}/pull/${p.number}#pullrequestreview-${r.id}`,
            pull_request_url: `${this.apiUrl}/repos/${repo}/pulls/${p.number}`,
            submitted_at: r.submittedAt,
            commit_id: this.headShaOf(p),
            author_association: "MEMBER",
          }));
        return this.#list(ctx, path, list);
      }
      if (rest[2] === "comments" && m === "GET") {
        const list = this.reviews
          .filter((r) => r.repo === repo && r.number === p.number)
          .flatMap((r) =>
            r.comments.map((c, i) => ({
              id: r.id * 100 + i,
              pull_request_review_id: r.id,
              user: { login: r.author },
              body: c.body,
              path: c.path ?? null,
              line: c.line ?? null,
              original_line: c.line ?? null,
              side: "RIGHT",
              commit_id: this.headShaOf(p),
              created_at: r.submittedAt,
              html_url: `${this.url}/${repo}/pull/${p.number}#discussion_r${r.id * 100 + i}`,
            })),
          );
        return this.#list(ctx, path, list);
      }
    }

    if (rest[0] === "issues" && rest.length === 1 && m === "GET") return this.#listIssues(ctx, repo, path);
    if (rest[0] === "issues" && rest[1] && /^\d+$/.test(rest[1])) {
      const issue = this.issue(repo, Number(rest[1]));
      const pull = this.pull(repo, Number(rest[1]));
      if (issue && rest.length === 2 && m === "GET") return { status: 200, body: this.issueJson({ kind: "issue", issue }) };
      if (pull && rest.length === 2 && m === "GET") return { status: 200, body: this.issueJson({ kind: "pull", pull }) };
      if (issue && rest.length === 2 && m === "PATCH") return this.#updateIssue(issue, body);
      if (issue && rest[2] === "comments" && rest.length === 3) {
        const json = (c: FakeComment) => this.#commentJson(repo, issue.number, "issues", c);
        if (m === "POST") {
          if (typeof body.body !== "string" || body.body === "")
            return error(422, "Validation Failed", { errors: [{ resource: "IssueComment", field: "body", code: "missing_field" }] });
          return { status: 201, body: json(this.commentOnIssue(issue, body.body)) };
        }
        if (m === "GET") return this.#list(ctx, path, issue.comments.map(json));
      }
    }

    if (rest[0] === "issues" && rest[1] && /^\d+$/.test(rest[1]) && rest[2] === "comments") {
      const p = this.pull(repo, Number(rest[1]));
      if (!p) return this.notFound();
      const json = (c: { id: number; body: string; author: string; createdAt: string }) => ({
        id: c.id,
        node_id: `IC_${c.id}`,
        body: c.body,
        user: { login: c.author },
        created_at: c.createdAt,
        updated_at: c.createdAt,
        html_url: `${this.url}/${repo}/pull/${p.number}#issuecomment-${c.id}`,
        issue_url: `${this.apiUrl}/repos/${repo}/issues/${p.number}`,
      });
      if (m === "POST") {
        if (typeof body.body !== "string" || body.body === "")
          return error(422, "Validation Failed", { errors: [{ resource: "IssueComment", field: "body", code: "missing_field" }] });
        return { status: 201, body: json(this.addComment(repo, p.number, body.body)) };
      }
      if (m === "GET") return this.#list(ctx, path, this.commentsOf(repo, p.number).map(json));
    }

    if (rest[0] === "commits" && rest[1] && m === "GET") {
      const sha = this.#sha(repo, rest[1]);
      if (!sha) return error(422, `No commit found for SHA: ${rest[1]}`);
      if (rest[2] === "check-runs") {
        const runs = this.jobsOf(repo, sha)
          .filter((j) => j.kind === "check_run")
          .sort((a, b) => b.id - a.id)
          .map((j) => ({
            id: j.id,
            name: j.name,
            head_sha: sha,
            node_id: `CR_${j.id}`,
            external_id: String(j.id),
            status: JOB_STATE[j.status].status,
            conclusion: JOB_STATE[j.status].conclusion,
            started_at: j.createdAt,
            completed_at: JOB_STATE[j.status].conclusion ? j.createdAt : null,
            html_url: `${this.url}/${repo}/actions/runs/${j.pipelineId}/job/${j.id}`,
            details_url: `${this.url}/${repo}/actions/runs/${j.pipelineId}/job/${j.id}`,
            app: { slug: "github-actions", name: "GitHub Actions" },
            output: { title: null, summary: null, annotations_count: 0 },
          }));
        return this.#list(ctx, path, runs, (page) => ({ total_count: runs.length, check_runs: page }));
      }
      if (rest[2] === "status") {
        const statuses = this.jobsOf(repo, sha)
          .filter((j) => j.kind === "status")
          .sort((a, b) => b.id - a.id)
          .map((j) => ({
            id: j.id,
            node_id: `SC_${j.id}`,
            context: j.name,
            state: JOB_STATE[j.status].state,
            description: null,
            target_url: `${this.url}/ci/${j.id}`,
            created_at: j.createdAt,
            updated_at: j.createdAt,
          }));
        const states = statuses.map((x) => x.state);
        const state = states.some((x) => x === "failure" || x === "error")
          ? "failure"
          : states.some((x) => x === "pending") || states.length === 0
            ? "pending"
            : "success";
        return { status: 200, body: { state, sha, total_count: statuses.length, statuses, repository: { full_name: repo } } };
      }
    }

    if (rest[0] === "actions" && rest[1] === "jobs" && rest[2] && rest[3] === "logs" && m === "GET") {
      const job = this.jobs.find((j) => j.repo === repo && j.id === Number(rest[2]));
      if (!job) return this.notFound();
      return { status: 302, headers: { location: this.logUrl(job) } };
    }
    return undefined;
  }

  /** The GraphQL endpoint: only `markPullRequestReadyForReview(input: {pullRequestId})`, by variable or inline id. */
  #graphql(body: unknown): ApiResponse {
    const b = (typeof body === "object" && body !== null ? body : {}) as { query?: unknown; variables?: Record<string, unknown> };
    const query = typeof b.query === "string" ? b.query : "";
    const gqlError = (message: string, type?: string): ApiResponse => ({
      status: 200,
      body: { data: null, errors: [{ ...(type ? { type } : {}), path: ["markPullRequestReadyForReview"], message }] },
    });
    if (!query) return { status: 400, body: { message: "Problems parsing JSON", documentation_url: "https://docs.github.com/graphql" } };
    if (!/\bmarkPullRequestReadyForReview\s*\(/.test(query) || !/^\s*mutation\b/.test(query))
      return { status: 200, body: { errors: [{ message: "fake GitHub: only the markPullRequestReadyForReview mutation is served" }] } };
    const variable = /pullRequestId\s*:\s*\$(\w+)/.exec(query)?.[1];
    const id = variable ? b.variables?.[variable] : /pullRequestId\s*:\s*"([^"]*)"/.exec(query)?.[1];
    if (typeof id !== "string") return { status: 200, body: { errors: [{ message: "Variable $pullRequestId of type ID! was provided invalid value" }] } };
    const p = this.pulls.find((x) => `PR_${x.id}` === id);
    if (!p) return gqlError(`Could not resolve to a node with the global id of '${id}'`, "NOT_FOUND");
    if (p.state !== "open") return gqlError(`Pull request Pull request is ${p.state === "merged" ? "merged" : "closed"}`, "UNPROCESSABLE");
    if (p.draft) this.setDraft(p.repo, p.number, false);
    return { status: 200, body: { data: { markPullRequestReadyForReview: { pullRequest: { isDraft: false } } } } };
  }

  #merge(p: FakePull, body: Record<string, unknown>): ApiResponse {
    const method = (typeof body.merge_method === "string" ? body.merge_method : "merge") as FakeMergeMethod;
    if (!["merge", "squash", "rebase"].includes(method)) return error(422, "Invalid merge_method");
    if (p.state !== "open" || p.draft || this.isMergeable(p) !== true) return error(405, "Pull Request is not mergeable");
    if (typeof body.sha === "string" && body.sha !== this.headShaOf(p)) return error(409, "Head branch was modified. Review and try the merge again.");
    const sha = this.mergePull(p.repo, p.number, method, typeof body.commit_title === "string" ? body.commit_title : undefined);
    return { status: 200, body: { sha, merged: true, message: "Pull Request successfully merged" } };
  }
}
