import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { basicAuth, isGitHttpPath, serveGitHttp } from "./git-http.js";

/**
 * What GitHub's and GitLab's fakes share: one local HTTP server per fake serving the forge's REST
 * API (the subclass's routes), git smart HTTP over real bare repositories (`<root>/<path>.git`), and
 * the signed-URL downloads of job logs; the forge's state in memory (pull requests, CI jobs with
 * their logs, reviews, comments), with every branch head read from the bare repository; and the
 * control API tests drive it with (set a check, add a review, make a PR unmergeable, close or merge
 * it) and read it through (`requests`: every request as it arrived).
 */

export type FakeJobStatus = "pending" | "running" | "success" | "failure" | "canceled" | "skipped";
export type FakeReviewState = "approved" | "changes_requested" | "commented";
export type FakeMergeMethod = "merge" | "squash" | "rebase";

export interface FakePull {
  repo: string;
  number: number;
  /** The host's own id (GitHub's `id`, GitLab's global `id`). */
  id: number;
  title: string;
  body: string;
  head: string;
  base: string;
  draft: boolean;
  state: "open" | "closed" | "merged";
  author: string;
  createdAt: string;
  updatedAt: string;
  mergedAt?: string;
  closedAt?: string;
  mergeCommitSha?: string;
  /** The head commit when it was merged or closed (the branch may move or go after that). */
  finalHeadSha?: string;
  /** A test's word on mergeability; undefined: whether base and head merge cleanly. */
  mergeable?: boolean | null;
  /** Its labels (GitHub lists a pull request among the issues, with them). */
  labels?: string[];
}

/** An issue (GitHub: numbered with the pull requests; GitLab: its own `iid`s), with its comments. */
export interface FakeIssue {
  repo: string;
  number: number;
  id: number;
  title: string;
  body: string;
  labels: string[];
  assignees: string[];
  state: "open" | "closed";
  /** GitHub's `state_reason`: `completed` or `not_planned` once closed, `reopened` when opened again. */
  stateReason: "completed" | "not_planned" | "reopened" | null;
  author: string;
  createdAt: string;
  updatedAt: string;
  closedAt?: string;
  comments: FakeComment[];
}

/** A CI job (GitHub: a check run, or a commit status when `kind` is `status`; GitLab: a pipeline job). */
export interface FakeJob {
  id: number;
  repo: string;
  sha: string;
  name: string;
  status: FakeJobStatus;
  log: string;
  kind: "check_run" | "status";
  pipelineId: number;
  allowFailure: boolean;
  createdAt: string;
}

export interface FakeReviewComment {
  body: string;
  path?: string;
  line?: number;
}

export interface FakeReview {
  id: number;
  repo: string;
  number: number;
  state: FakeReviewState;
  author: string;
  body: string;
  comments: FakeReviewComment[];
  submittedAt: string;
}

/** A comment on the pull request's conversation (GitHub: an issue comment; GitLab: a note). */
export interface FakeComment {
  id: number;
  repo: string;
  number: number;
  body: string;
  author: string;
  createdAt: string;
}

export interface RecordedForgeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  /** `api`, `git` (smart HTTP) or `log` (a job log download). */
  kind: "api" | "git" | "log";
  status?: number;
}

export interface FakeForgeOptions {
  /** The token every API and git request must carry. */
  token: string;
  /** The user the token belongs to (authors of what it creates). */
  user?: string;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
  /** Sent as is (text/plain) instead of JSON. */
  text?: string;
  headers?: Record<string, string>;
}

export interface ApiContext {
  req: IncomingMessage;
  method: string;
  /** Path segments, still percent-encoded (`group%2Fname` stays one segment). */
  segments: string[];
  query: Record<string, string>;
  body: unknown;
}

const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_AUTHOR_NAME: "Fake Forge",
  GIT_AUTHOR_EMAIL: "forge@example.invalid",
  GIT_COMMITTER_NAME: "Fake Forge",
  GIT_COMMITTER_EMAIL: "forge@example.invalid",
};

export abstract class FakeForge {
  readonly requests: RecordedForgeRequest[] = [];
  readonly token: string;
  readonly user: string;
  /** Where the bare repositories are (`<root>/<path>.git`). */
  readonly root = mkdtempSync(join(tmpdir(), "orch-fake-forge-"));
  protected readonly pulls: FakePull[] = [];
  protected readonly jobs: FakeJob[] = [];
  protected readonly reviews: FakeReview[] = [];
  protected readonly comments: FakeComment[] = [];
  protected readonly issues: FakeIssue[] = [];
  #failure: { status: number; times: number } | undefined;
  #clock = 0;
  readonly #repos = new Set<string>();
  readonly #holds: { match: (r: RecordedForgeRequest) => boolean; seen: (r: RecordedForgeRequest) => void; released: Promise<void> }[] = [];
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  #port = 0;
  #ids = 1000;

  constructor(opts: FakeForgeOptions) {
    this.token = opts.token;
    this.user = opts.user ?? "orchestrator-bot";
  }

  /** The forge's web and git origin: `http://127.0.0.1:<port>`. */
  get url(): string {
    if (!this.#server) throw new Error("the fake forge is not started");
    return `http://127.0.0.1:${this.#port}`;
  }

  /** What a client takes as its API base. */
  abstract get apiUrl(): string;

  /** The repository's https-like clone URL on this forge. */
  cloneUrl(repo: string): string {
    return `${this.url}/${repo}.git`;
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ message: `fake forge: ${(err as Error).message}` }));
      });
    });
    server.on("connection", (s: Socket) => {
      this.#sockets.add(s);
      s.once("close", () => this.#sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    for (const sock of this.#sockets) sock.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    rmSync(this.root, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  // Repositories.

  /** A new bare repository with one commit on `defaultBranch` (a README). */
  createRepository(repo: string, opts: { defaultBranch?: string; files?: Record<string, string> } = {}): string {
    const bare = this.barePath(repo);
    mkdirSync(bare, { recursive: true });
    const branch = opts.defaultBranch ?? "main";
    this.git(repo, ["init", "-q", "--bare", "-b", branch, "."]);
    const files = opts.files ?? { "README.md": `# ${repo}\n` };
    const entries = Object.entries(files).map(([name, content]) => {
      const blob = execFileSync("git", ["hash-object", "-w", "--stdin"], { cwd: bare, env: GIT_ENV, input: content, encoding: "utf8" }).trim();
      return `100644 blob ${blob}\t${name}`;
    });
    const tree = execFileSync("git", ["mktree"], { cwd: bare, env: GIT_ENV, input: `${entries.join("\n")}\n`, encoding: "utf8" }).trim();
    const commit = this.git(repo, ["commit-tree", tree, "-m", "Initial commit"]);
    this.git(repo, ["update-ref", `refs/heads/${branch}`, commit]);
    this.#repos.add(repo);
    return bare;
  }

  barePath(repo: string): string {
    return join(this.root, `${repo}.git`);
  }

  hasRepository(repo: string): boolean {
    return this.#repos.has(repo);
  }

  /** Runs git in the repository's bare directory; its trimmed stdout. */
  git(repo: string, args: string[]): string {
    return execFileSync("git", args, { cwd: this.barePath(repo), env: GIT_ENV, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  }

  /** A branch's head commit, from the bare repository; null when there is no such branch. */
  headOf(repo: string, branch: string): string | null {
    try {
      return this.git(repo, ["rev-parse", "--verify", "--quiet", `refs/heads/${branch}^{commit}`]) || null;
    } catch {
      return null;
    }
  }

  /** Whether the head merges into the base without conflicts. */
  mergesCleanly(repo: string, base: string, head: string): boolean {
    const b = this.headOf(repo, base);
    const h = this.headOf(repo, head);
    if (!b || !h) return false;
    try {
      this.git(repo, ["merge-tree", "--write-tree", b, h]);
      return true;
    } catch {
      return false;
    }
  }

  // Control API.

  nextId(): number {
    return ++this.#ids;
  }

  pull(repo: string, number: number): FakePull | undefined {
    return this.pulls.find((p) => p.repo === repo && p.number === number);
  }

  pullsOf(repo: string): FakePull[] {
    return this.pulls.filter((p) => p.repo === repo);
  }

  /** The pull request's head commit now (the branch's), or when it was closed or merged. */
  headShaOf(p: FakePull): string | null {
    return p.state === "open" ? this.headOf(p.repo, p.head) : (p.finalHeadSha ?? this.headOf(p.repo, p.head));
  }

  /** Whether the host would merge it now: a test's word, else open with a clean merge. */
  isMergeable(p: FakePull): boolean | null {
    if (p.mergeable !== undefined) return p.mergeable;
    return p.state === "open" && this.mergesCleanly(p.repo, p.base, p.head);
  }

  /** The number a new pull request or issue of the repository gets (GitLab numbers each kind on its own). */
  protected nextNumber(repo: string, kind: "pull" | "issue"): number {
    return (kind === "pull" ? this.pullsOf(repo).length : this.issuesOf(repo).length) + 1;
  }

  /** Now, strictly later than the last time this gave (so "most recently updated" is never a tie). */
  protected tick(): string {
    this.#clock = Math.max(Date.now(), this.#clock + 1);
    return new Date(this.#clock).toISOString();
  }

  openPull(repo: string, fields: { title: string; body?: string; head: string; base: string; draft?: boolean; author?: string }): FakePull {
    const now = new Date().toISOString();
    const p: FakePull = {
      repo,
      number: this.nextNumber(repo, "pull"),
      id: this.nextId(),
      title: fields.title,
      body: fields.body ?? "",
      head: fields.head,
      base: fields.base,
      draft: fields.draft ?? false,
      state: "open",
      author: fields.author ?? this.user,
      createdAt: now,
      updatedAt: now,
    };
    this.pulls.push(p);
    return p;
  }

  /**
   * Marks a draft ready for review (or back to a draft), as its author would on the host; made
   * ready, a title loses its `Draft:` prefix (GitLab's way of saying draft).
   */
  setDraft(repo: string, number: number, draft: boolean): void {
    const p = this.#mustPull(repo, number);
    p.draft = draft;
    if (!draft) p.title = p.title.replace(/^\s*(\[draft\]|\(draft\)|draft:|draft\s-\s)\s*/i, "");
    p.updatedAt = new Date().toISOString();
  }

  /**
   * Holds the answer to the next API request `match` accepts: the forge does what it asks (opens
   * the pull request, merges it) and then waits to answer until `release()`. A test's window for a
   * crash between the host acting and its client hearing of it. `seen` resolves with the request
   * once it has been acted on.
   */
  holdAnswer(match: (r: RecordedForgeRequest) => boolean): { seen: Promise<RecordedForgeRequest>; release: () => void } {
    let seen!: (r: RecordedForgeRequest) => void;
    let release!: () => void;
    const seenP = new Promise<RecordedForgeRequest>((r) => (seen = r));
    const released = new Promise<void>((r) => (release = r));
    this.#holds.push({ match, seen, released });
    return { seen: seenP, release };
  }

  /** Sets a test's word on mergeability (undefined: back to computing it). */
  setMergeable(repo: string, number: number, mergeable: boolean | null | undefined): void {
    this.#mustPull(repo, number).mergeable = mergeable;
  }

  closePull(repo: string, number: number): void {
    const p = this.#mustPull(repo, number);
    p.finalHeadSha = this.headOf(repo, p.head) ?? undefined;
    p.state = "closed";
    p.closedAt = p.updatedAt = new Date().toISOString();
  }

  /**
   * Merges in the bare repository: `merge` makes a merge commit, `squash` and `rebase` one commit
   * on the base with the merged tree. Throws when it conflicts.
   */
  mergePull(repo: string, number: number, method: FakeMergeMethod = "merge", message?: string): string {
    const p = this.#mustPull(repo, number);
    const base = this.headOf(repo, p.base);
    const head = this.headOf(repo, p.head);
    if (!base || !head) throw new Error(`cannot merge #${number}: a branch is missing`);
    const tree = this.git(repo, ["merge-tree", "--write-tree", base, head]).split("\n")[0]!;
    const msg = message ?? (method === "merge" ? `Merge pull request #${number} from ${p.head}` : `${p.title} (#${number})`);
    const parents = method === "merge" ? ["-p", base, "-p", head] : ["-p", base];
    const sha = this.git(repo, ["commit-tree", tree, ...parents, "-m", msg]);
    this.git(repo, ["update-ref", `refs/heads/${p.base}`, sha, base]);
    p.finalHeadSha = head;
    p.state = "merged";
    p.mergeCommitSha = sha;
    p.mergedAt = p.closedAt = p.updatedAt = new Date().toISOString();
    return sha;
  }

  /**
   * Reports a CI job on a commit with its log (each call a new job; several of one name: a re-run).
   * GitLab groups the jobs of a commit into one pipeline, unless `newPipeline`.
   */
  setCheck(
    repo: string,
    sha: string,
    check: { name: string; status: FakeJobStatus; log?: string; kind?: "check_run" | "status"; allowFailure?: boolean; newPipeline?: boolean },
  ): FakeJob {
    const prior = [...this.jobs].reverse().find((j) => j.repo === repo && j.sha === sha);
    const job: FakeJob = {
      id: this.nextId(),
      repo,
      sha,
      name: check.name,
      status: check.status,
      log: check.log ?? "",
      kind: check.kind ?? "check_run",
      pipelineId: prior && !check.newPipeline ? prior.pipelineId : this.nextId(),
      allowFailure: check.allowFailure ?? false,
      createdAt: new Date().toISOString(),
    };
    this.jobs.push(job);
    return job;
  }

  jobsOf(repo: string, sha?: string): FakeJob[] {
    return this.jobs.filter((j) => j.repo === repo && (sha === undefined || j.sha === sha));
  }

  addReview(repo: string, number: number, review: { state: FakeReviewState; author?: string; body?: string; comments?: FakeReviewComment[] }): FakeReview {
    this.#mustPull(repo, number);
    const r: FakeReview = {
      id: this.nextId(),
      repo,
      number,
      state: review.state,
      author: review.author ?? "reviewer",
      body: review.body ?? "",
      comments: review.comments ?? [],
      submittedAt: new Date().toISOString(),
    };
    this.reviews.push(r);
    return r;
  }

  /** Opens an issue, as a person would on the host. */
  openIssue(repo: string, fields: { title: string; body?: string; labels?: string[]; assignees?: string[]; author?: string }): FakeIssue {
    if (!this.hasRepository(repo)) throw new Error(`no repository ${repo}`);
    const now = this.tick();
    const i: FakeIssue = {
      repo,
      number: this.nextNumber(repo, "issue"),
      id: this.nextId(),
      title: fields.title,
      body: fields.body ?? "",
      labels: [...(fields.labels ?? [])],
      assignees: [...(fields.assignees ?? [])],
      state: "open",
      stateReason: null,
      author: fields.author ?? "someone",
      createdAt: now,
      updatedAt: now,
      comments: [],
    };
    this.issues.push(i);
    return i;
  }

  issue(repo: string, number: number): FakeIssue | undefined {
    return this.issues.find((i) => i.repo === repo && i.number === number);
  }

  issuesOf(repo: string): FakeIssue[] {
    return this.issues.filter((i) => i.repo === repo);
  }

  /** Closes (`completed`, `not_planned`) or reopens (null) an issue, as a person would. */
  setIssueState(repo: string, number: number, closed: "completed" | "not_planned" | null): void {
    const i = this.issue(repo, number);
    if (!i) throw new Error(`no issue ${repo}#${number}`);
    i.state = closed ? "closed" : "open";
    i.stateReason = closed;
    i.updatedAt = this.tick();
    if (closed) i.closedAt = i.updatedAt;
    else delete i.closedAt;
  }

  commentOnIssue(i: FakeIssue, body: string, author = this.user): FakeComment {
    const c: FakeComment = { id: this.nextId(), repo: i.repo, number: i.number, body, author, createdAt: this.tick() };
    i.comments.push(c);
    i.updatedAt = c.createdAt;
    return c;
  }

  /**
   * The next `times` API requests are answered `status` in the host's error shape, whatever they
   * ask (a host that is down, failing or rate limiting); `heal()` ends it sooner.
   */
  fail(status: number, times = Infinity): void {
    this.#failure = { status, times };
  }

  heal(): void {
    this.#failure = undefined;
  }

  /** The host's answer to a request while `fail` is in force. */
  protected abstract failure(status: number): ApiResponse;

  commentsOf(repo: string, number: number): FakeComment[] {
    return this.comments.filter((c) => c.repo === repo && c.number === number);
  }

  addComment(repo: string, number: number, body: string, author = this.user): FakeComment {
    const c: FakeComment = { id: this.nextId(), repo, number, body, author, createdAt: new Date().toISOString() };
    this.comments.push(c);
    return c;
  }

  #mustPull(repo: string, number: number): FakePull {
    const p = this.pull(repo, number);
    if (!p) throw new Error(`no pull request ${repo}#${number}`);
    return p;
  }

  /** The requests the API was sent (git and log downloads left out). */
  apiRequests(): RecordedForgeRequest[] {
    return this.requests.filter((r) => r.kind === "api");
  }

  // Serving.

  /** The token an API request carries, in the forge's header(s). */
  protected abstract tokenOf(req: IncomingMessage): string | undefined;
  /** The forge's answer to a request without a valid token. */
  protected abstract unauthorized(): ApiResponse;
  protected abstract notFound(): ApiResponse;
  /** Its API routes; undefined when none matches. */
  protected abstract route(ctx: ApiContext): ApiResponse | undefined | Promise<ApiResponse | undefined>;
  /** The API's path prefix (`` for GitHub, `/api/v4` for GitLab). */
  protected abstract readonly apiPrefix: string;

  /** Where a job's log is downloaded from (a signed URL on the real hosts: no token needed). */
  logUrl(job: FakeJob): string {
    return `${this.url}/_fake/logs/${job.id}`;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? "/", "http://127.0.0.1");
    const query = Object.fromEntries(u.searchParams);
    const rec: RecordedForgeRequest = { method: req.method ?? "GET", path: u.pathname, query, headers: { ...req.headers }, body: undefined, kind: "api" };
    this.requests.push(rec);

    if (isGitHttpPath(u.pathname)) {
      rec.kind = "git";
      const auth = basicAuth(req.headers.authorization);
      if (!auth || auth.password !== this.token) {
        rec.status = 401;
        res.writeHead(401, { "www-authenticate": 'Basic realm="fake forge"', "content-type": "text/plain" });
        res.end("HTTP Basic: Access denied\n");
        return;
      }
      const repo = u.pathname.slice(1).replace(/\.git\/.*$/, "");
      if (!this.#repos.has(decodeURIComponent(repo))) {
        rec.status = 404;
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("Repository not found\n");
        return;
      }
      rec.status = 200;
      serveGitHttp(req, res, { root: this.root, path: u.pathname, query: u.search.slice(1), user: auth.user });
      return;
    }

    const log = /^\/_fake\/logs\/(\d+)$/.exec(u.pathname);
    if (log && req.method === "GET") {
      rec.kind = "log";
      const job = this.jobs.find((j) => j.id === Number(log[1]));
      rec.status = job ? 200 : 404;
      res.writeHead(rec.status, { "content-type": "text/plain; charset=utf-8" });
      res.end(job ? job.log : "BlobNotFound");
      return;
    }

    const raw = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => resolve(Buffer.concat(chunks)));
      req.on("error", reject);
    });
    const text = raw.toString("utf8");
    let body: unknown = text || undefined;
    if (text && /json/.test(String(req.headers["content-type"] ?? ""))) {
      try {
        body = JSON.parse(text);
      } catch {
        // kept as text
      }
    } else if (text && /x-www-form-urlencoded/.test(String(req.headers["content-type"] ?? ""))) {
      body = Object.fromEntries(new URLSearchParams(text));
    }
    rec.body = body;

    let answer: ApiResponse;
    const failing = this.#failure;
    if (failing && failing.times > 0 && u.pathname.startsWith(`${this.apiPrefix}/`)) {
      if (--failing.times <= 0) this.#failure = undefined;
      answer = this.failure(failing.status);
    } else if (!u.pathname.startsWith(`${this.apiPrefix}/`)) answer = this.notFound();
    else if (this.tokenOf(req) !== this.token) answer = this.unauthorized();
    else {
      const segments = u.pathname.slice(this.apiPrefix.length + 1).split("/");
      answer = (await this.route({ req, method: req.method ?? "GET", segments, query, body })) ?? this.notFound();
    }
    rec.status = answer.status;
    const hold = this.#holds.findIndex((h) => h.match(rec));
    if (hold >= 0) {
      const h = this.#holds.splice(hold, 1)[0]!;
      h.seen(rec);
      await h.released;
      if (res.destroyed) return;
    }
    if (answer.text !== undefined) {
      res.writeHead(answer.status, { "content-type": "text/plain; charset=utf-8", ...answer.headers });
      res.end(answer.text);
    } else if (answer.body === undefined) {
      res.writeHead(answer.status, { ...answer.headers });
      res.end();
    } else {
      res.writeHead(answer.status, { "content-type": "application/json; charset=utf-8", ...answer.headers });
      res.end(JSON.stringify(answer.body));
    }
  }
}

/** One page of a list: `page` and `per_page` as both forges take them (1-based; GitHub caps at 100). */
export function pageOf<T>(
  list: readonly T[],
  query: Record<string, string>,
  defaultPerPage: number,
): { items: T[]; page: number; perPage: number; totalPages: number } {
  const perPage = Math.min(100, Math.max(1, Number(query.per_page) || defaultPerPage));
  const page = Math.max(1, Number(query.page) || 1);
  const totalPages = Math.max(1, Math.ceil(list.length / perPage));
  return { items: list.slice((page - 1) * perPage, page * perPage), page, perPage, totalPages };
}

/** An RFC 8288 `link` header for a page (`next`, `last`, `first`, `prev`), as both forges send it. */
export function linkHeader(url: string, query: Record<string, string>, page: number, totalPages: number, perPage: number): string | undefined {
  const at = (n: number) => {
    const u = new URL(url);
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
    u.searchParams.set("page", String(n));
    u.searchParams.set("per_page", String(perPage));
    return u.toString();
  };
  const rels: string[] = [];
  if (page > 1) rels.push(`<${at(page - 1)}>; rel="prev"`);
  if (page < totalPages) rels.push(`<${at(page + 1)}>; rel="next"`);
  if (totalPages > 1) rels.push(`<${at(1)}>; rel="first"`, `<${at(totalPages)}>; rel="last"`);
  return rels.length > 0 ? rels.join(", ") : undefined;
}
