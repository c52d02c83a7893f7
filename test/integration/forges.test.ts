import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentHubConfig, loadConfig } from "@orch/config";
import { PrMergeOutput, PrOpenOutput, PrReadyOutput, StepErrorCode, type ForgeProvider, type ProjectForge, type RunView, type WorkItem } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { FakeGitHub, FakeGitLab, type FakeForge } from "@orch/testing";
import { ForgeService, createRepositoryHost, runPrSync, trimLog, type RepositoryHost } from "../../services/agent-hub/src/forge/index.js";
import { GitCli } from "../../services/agent-hub/src/git/index.js";

/**
 * The agent hub's forge I/O against local GitHub and GitLab fakes that speak the real REST shapes
 * over real HTTP, with real bare repositories behind them: Octokit (`vcs_repos.github_rest`) and
 * gitbeaker (`vcs_repos.gitlab_rest`) as they ship, real `git push` over smart HTTP through the
 * askpass program, and the forge steps (`pr.open`, `pr.ready`, `pr.merge`, `pr.sync`) as the hub runs them.
 */

const TOKEN = { github: "ghp_fakeToken0123456789abcdefABCDEF", gitlab: "glpat-fakeToken0123456789abcd" } as const;
const HERMETIC = { GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" };
const ID = { GIT_AUTHOR_NAME: "Test", GIT_AUTHOR_EMAIL: "t@example.test", GIT_COMMITTER_NAME: "Test", GIT_COMMITTER_EMAIL: "t@example.test" };

const tmp = mkdtempSync(join(tmpdir(), "orch-forges-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** git, wrapped: every argument vector it is started with is written to `argvLog` (to show the token is never one). */
const argvLog = join(tmp, "git-argv.log");
const gitBinary = join(tmp, "bin", "git-logged");
mkdirSync(join(tmp, "bin"));
writeFileSync(gitBinary, `#!/bin/sh\nprintf '%s ' "$@" >> '${argvLog}'\nprintf '\\n' >> '${argvLog}'\nexec git "$@"\n`);
chmodSync(gitBinary, 0o755);

const sh = (cwd: string, ...args: string[]) => execFileSync("git", args, { cwd, env: { ...process.env, ...HERMETIC, ...ID }, encoding: "utf8" }).trim();

let n = 0;
function workItem(type: string, payload: Record<string, unknown>, runId: string): WorkItem {
  n++;
  return {
    runId,
    projectId: "p1",
    definition: { id: "ticket", version: 1 },
    stepId: type.replace(".", "_"),
    attemptId: `${runId}:${type}:${n}`,
    attempt: 1,
    kind: "execute",
    index: 0,
    role: "maintainer",
    type,
    phase: "pr",
    inputs: {},
    payload,
    iteration: 0,
    rework: 0,
    mode: "live",
    dispatchedAt: Date.now(),
  } as WorkItem;
}

interface Harness {
  fake: FakeForge;
  forge: ProjectForge;
  service: ForgeService;
  host: RepositoryHost;
  repo: string;
  logs: string[];
  /** Commits a file on `branch` of the local repository (created from main when missing). */
  commit(branch: string, file: string, content: string): string;
}

const providers: { provider: ForgeProvider; repository: string; make: (token: string) => FakeForge; user: string }[] = [
  { provider: "github", repository: "acme/widgets", make: (token) => new FakeGitHub({ token }), user: "x-access-token" },
  { provider: "gitlab", repository: "acme/platform/widgets", make: (token) => new FakeGitLab({ token }), user: "oauth2" },
];

describe.each(providers)("$provider: the hub's forge I/O against the fake", ({ provider, repository, make, user }) => {
  const token = TOKEN[provider];
  let h: Harness;

  beforeAll(async () => {
    const fake = await make(token).start();
    const bare = fake.createRepository(repository);
    const repo = join(tmp, `${provider}-local`);
    sh(tmp, "clone", "-q", bare, repo);
    // The origin is the forge's https-like URL, with no credentials in it.
    sh(repo, "remote", "set-url", "origin", fake.cloneUrl(repository));
    const logs: string[] = [];
    const logger = createLogger({ service: "test", level: "debug" }, new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) }));
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, [provider === "github" ? "GITHUB_TOKEN" : "GITLAB_TOKEN"]: token };
    const cfg = loadConfig(AgentHubConfig, {
      ORCH_CONFIG: "none",
      ORCH_GITHUB_API_URL: provider === "github" ? fake.apiUrl : undefined,
      ORCH_GITLAB_API_URL: provider === "gitlab" ? fake.apiUrl : undefined,
      ORCH_CI_LOG_MAX_BYTES: "4096",
    });
    const git = new GitCli({ binary: gitBinary, authorName: "Orchestrator", authorEmail: "orch@test.invalid", env: HERMETIC });
    const service = new ForgeService({ cfg, git, workspaces: { repoFor: async () => repo }, project: async () => undefined, logger, env });
    const forge: ProjectForge = { provider, repository };
    h = {
      fake,
      forge,
      service,
      host: createRepositoryHost(forge, cfg, env),
      repo,
      logs,
      commit(branch, file, content) {
        const has = sh(repo, "branch", "--list", branch) !== "";
        sh(repo, "checkout", "-q", ...(has ? [branch] : ["-b", branch, "main"]));
        writeFileSync(join(repo, file), content);
        sh(repo, "add", "-A");
        sh(repo, "commit", "-q", "-m", `change ${file}`);
        const sha = sh(repo, "rev-parse", "HEAD");
        sh(repo, "checkout", "-q", "main");
        return sha;
      },
    };
  });
  afterAll(async () => {
    await h?.fake.stop();
  });

  it("pushes the run's branch over smart HTTP with the token from askpass, never in argv, the remote URL or a log", async () => {
    const sha = h.commit("orch/run/r-push", "push.txt", "pushed\n");
    const out = await h.service.push(h.repo, "orch/run/r-push", h.forge, createLogger({ service: "test", level: "silent" }));
    expect(out).toEqual({ sha, authenticated: true });
    expect(h.fake.headOf(repository, "orch/run/r-push")).toBe(sha);
    const gitRequests = h.fake.requests.filter((r) => r.kind === "git");
    const authed = gitRequests.filter((r) => r.status === 200 && typeof r.headers.authorization === "string");
    expect(authed.length).toBeGreaterThan(0);
    expect(Buffer.from(String(authed[0]!.headers.authorization).slice(6), "base64").toString()).toBe(`${user}:${token}`);
    expect(readFileSync(argvLog, "utf8")).not.toContain(token);
    expect(sh(h.repo, "remote", "get-url", "origin")).toBe(h.fake.cloneUrl(repository));
    expect(sh(h.repo, "config", "--list")).not.toContain(token);
    expect(h.logs.join("")).not.toContain(token);
  });

  it("never force-pushes: a rewritten branch is refused as PUSH_FAILED, not retried", async () => {
    h.commit("orch/run/r-force", "a.txt", "one\n");
    await h.service.push(h.repo, "orch/run/r-force", h.forge, createLogger({ service: "test", level: "silent" }));
    sh(h.repo, "branch", "-f", "orch/run/r-force", "main");
    h.commit("orch/run/r-force", "b.txt", "other\n");
    await expect(h.service.push(h.repo, "orch/run/r-force", h.forge, createLogger({ service: "test", level: "silent" }))).rejects.toMatchObject({
      code: StepErrorCode.PushFailed,
      retryable: false,
    });
  });

  it("pr.open pushes and opens once: a retry or a redelivery finds the one already open", async () => {
    const sha = h.commit("orch/run/r-open", "feature.txt", "feature\n");
    const payload = { forge: h.forge, base: "main", title: "Add the feature", body: "What the run did.", draft: true };
    const first = await h.service.execute(workItem("pr.open", payload, "r-open"), createLogger({ service: "test", level: "silent" }));
    expect(first.ok).toBe(true);
    const out = PrOpenOutput.parse(first.output);
    expect(out.created).toBe(true);
    expect(out.pullRequest).toMatchObject({ provider, repository, number: 1, head: "orch/run/r-open", base: "main", headSha: sha, state: "open", draft: true });
    expect(h.fake.headOf(repository, "orch/run/r-open")).toBe(sha);

    // The hub crashed after the host created it and before the result was recorded: the step runs again.
    const again = await h.service.execute(workItem("pr.open", payload, "r-open"), createLogger({ service: "test", level: "silent" }));
    expect(PrOpenOutput.parse(again.output)).toMatchObject({ created: false, pullRequest: { number: 1, url: out.pullRequest.url } });
    expect(h.fake.pullsOf(repository).filter((p) => p.head === "orch/run/r-open")).toHaveLength(1);
    expect(h.fake.pull(repository, 1)).toMatchObject({
      title: provider === "gitlab" ? "Draft: Add the feature" : "Add the feature",
      body: "What the run did.",
    });
  });

  it("normalizes checks (latest run of a name wins) and trims a failing job's log to its useful tail", async () => {
    const sha = h.commit("orch/run/r-ci", "ci.txt", "ci\n");
    const noise = Array.from({ length: 3000 }, (_, i) => `step ${i}: compiling module ${i} ok`);
    const log = [
      ...noise.slice(0, 1500),
      "src/widget.ts(12,5): error TS2322: Type 'string' is not assignable to type 'number'.",
      ...noise.slice(1500),
      "Error: Process completed with exit code 2.",
    ].join("\n");
    const first = h.fake.setCheck(repository, sha, { name: "build", status: "failure", log: "old failure" });
    const failing = h.fake.setCheck(repository, sha, { name: "build", status: "failure", log });
    h.fake.setCheck(repository, sha, { name: "lint", status: "success", log: "all good" });
    h.fake.setCheck(repository, sha, { name: "e2e", status: "running" });
    const checks = await h.host.listChecks(sha);
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ["build", "failure"],
      ["e2e", "pending"],
      ["lint", "success"],
    ]);
    expect(checks[0]!.jobId).toBe(String(failing.id));
    expect(checks[0]!.jobId).not.toBe(String(first.id));

    const raw = await h.host.jobLog(String(failing.id));
    expect(raw).toBe(log);
    const t = trimLog(raw, { maxBytes: 4096 });
    expect(Buffer.byteLength(t.text)).toBeLessThanOrEqual(4096);
    expect(t.text).toContain("error TS2322");
    expect(t.text).toContain("exit code 2");
    expect(t.text).toMatch(/lines omitted/);

    const item = workItem("code", { ciFailure: { provider, forge: h.forge, check: "build", jobId: failing.id, sha, conclusion: "failure" } }, "r-ci");
    const fb = await h.service.ciFailureFeedback(item, createLogger({ service: "test", level: "silent" }));
    expect(fb?.text).toContain("## CI failed: build (failure)");
    expect(fb?.text).toContain("error TS2322");
    expect(Buffer.byteLength(fb!.text)).toBeLessThan(4096 + 400);
  });

  it("lists reviews: approved, changes requested with line comments, commented", async () => {
    h.commit("orch/run/r-review", "review.txt", "review\n");
    const open = await h.service.execute(
      workItem("pr.open", { forge: h.forge, base: "main", title: "Review me", body: "" }, "r-review"),
      createLogger({ service: "test", level: "silent" }),
    );
    const number = PrOpenOutput.parse(open.output).pullRequest.number;
    h.fake.addReview(repository, number, {
      state: "changes_requested",
      author: "alice",
      body: "Please rename it.",
      comments: [{ path: "review.txt", line: 1, body: "Use a better name" }],
    });
    h.fake.addReview(repository, number, { state: "approved", author: "bob" });
    const reviews = await h.host.listReviews(number);
    const changes = reviews.find((r) => r.state === "changes_requested");
    expect(changes?.author).toBe("alice");
    expect(reviews.some((r) => r.state === "approved" && r.author === "bob")).toBe(true);
    const lineComment = reviews.flatMap((r) => r.comments).find((c) => c.path === "review.txt");
    expect(lineComment).toEqual({ body: "Use a better name", path: "review.txt", line: 1 });
    await h.host.comment(number, "CI is green; merging.");
    expect(h.fake.commentsOf(repository, number).map((c) => c.body)).toContain("CI is green; merging.");
  });

  it("pr.merge: a refusal is merged:false with the host's reason; then it merges, and merging again says merged", async () => {
    h.commit("orch/run/r-merge", "merge.txt", "merge\n");
    const open = await h.service.execute(
      workItem("pr.open", { forge: h.forge, base: "main", title: "Merge me", body: "" }, "r-merge"),
      createLogger({ service: "test", level: "silent" }),
    );
    const pr = PrOpenOutput.parse(open.output).pullRequest;
    const merge = (extra: Record<string, unknown> = {}) =>
      h.service.execute(
        workItem("pr.merge", { forge: h.forge, number: pr.number, method: "squash", ...extra }, "r-merge"),
        createLogger({ service: "test", level: "silent" }),
      );

    h.fake.setMergeable(repository, pr.number, false);
    const refused = await merge();
    expect(refused.ok).toBe(true);
    expect(PrMergeOutput.parse(refused.output)).toMatchObject({
      merged: false,
      message: provider === "github" ? "Pull Request is not mergeable" : "405 Method Not Allowed",
    });

    h.fake.setMergeable(repository, pr.number, undefined);
    const moved = await merge({ sha: "0".repeat(40) });
    expect(PrMergeOutput.parse(moved.output).merged).toBe(false);
    expect(PrMergeOutput.parse(moved.output).message).toMatch(/modified|does not match/);

    const merged = PrMergeOutput.parse((await merge({ sha: pr.headSha })).output);
    expect(merged.merged).toBe(true);
    expect(h.fake.headOf(repository, "main")).toBe(merged.sha);
    expect(sh(tmp, "--git-dir", h.fake.barePath(repository), "show", `${merged.sha}:merge.txt`)).toBe("merge");
    expect((await h.host.getPullRequest(pr.number)).state).toBe("merged");
    expect(PrMergeOutput.parse((await merge()).output)).toEqual({ merged: true, sha: merged.sha });
  });

  it("pr.ready: a draft becomes ready for review (then the host merges it); ready again is fine; a closed one is ready:false", async () => {
    h.commit("orch/run/r-ready", "ready.txt", "ready\n");
    const log = createLogger({ service: "test", level: "silent" });
    const open = await h.service.execute(workItem("pr.open", { forge: h.forge, base: "main", draft: true, title: "Ready me", body: "" }, "r-ready"), log);
    const pr = PrOpenOutput.parse(open.output).pullRequest;
    expect(pr.draft).toBe(true);
    expect(h.fake.pull(repository, pr.number)?.draft).toBe(true);
    const ready = async () => {
      const r = await h.service.execute(workItem("pr.ready", { forge: h.forge, number: pr.number }, "r-ready"), log);
      expect(r.ok).toBe(true);
      return PrReadyOutput.parse(r.output);
    };

    const before = h.fake.apiRequests().length;
    expect(await ready()).toEqual({ ready: true });
    const calls = h.fake.apiRequests().slice(before);
    if (provider === "github") {
      // REST cannot undraft: GraphQL's mutation, by the pull request's node_id.
      const gql = calls.find((c) => c.path === "/graphql");
      expect(gql).toMatchObject({ method: "POST", status: 200 });
      expect(String((gql!.body as { query: string }).query)).toContain("markPullRequestReadyForReview");
      expect((gql!.body as { variables: Record<string, unknown> }).variables).toMatchObject({ pullRequestId: `PR_${h.fake.pull(repository, pr.number)!.id}` });
    } else {
      // GitLab: the title without its Draft: prefix.
      const put = calls.find((c) => c.method === "PUT");
      expect(put?.body).toMatchObject({ title: "Ready me" });
    }
    expect(h.fake.pull(repository, pr.number)).toMatchObject({ draft: false, title: "Ready me" });
    expect((await h.host.getPullRequest(pr.number)).draft).toBe(false);

    // Ready already: nothing to change, and nothing changed.
    const again = h.fake.apiRequests().length;
    expect(await ready()).toEqual({ ready: true });
    expect(
      h.fake
        .apiRequests()
        .slice(again)
        .every((c) => c.method === "GET"),
    ).toBe(true);

    // Not a draft any more, the host merges it.
    const merged = await h.service.execute(workItem("pr.merge", { forge: h.forge, number: pr.number, method: "squash" }, "r-ready"), log);
    expect(PrMergeOutput.parse(merged.output).merged).toBe(true);

    // A closed (here: merged) one cannot be marked: an answer, not an error.
    expect(await ready()).toMatchObject({ ready: false, message: expect.stringMatching(/merged/) });
  });

  it.skipIf(provider !== "github")("pr.ready through GraphQL: the host's errors are ready:false with its message", async () => {
    h.commit("orch/run/r-ready-gql", "ready-gql.txt", "ready\n");
    const log = createLogger({ service: "test", level: "silent" });
    const open = await h.service.execute(workItem("pr.open", { forge: h.forge, base: "main", draft: true, title: "Closed", body: "" }, "r-ready-gql"), log);
    const pr = PrOpenOutput.parse(open.output).pullRequest;
    // Closed between our look and the mutation: GitHub's GraphQL answers 200 with `errors`.
    const held = h.fake.holdAnswer((r) => r.method === "GET" && r.path.endsWith(`/pulls/${pr.number}`));
    const pending = h.service.execute(workItem("pr.ready", { forge: h.forge, number: pr.number }, "r-ready-gql"), log);
    await held.seen;
    h.fake.closePull(repository, pr.number);
    held.release();
    const r = await pending;
    expect(r.ok).toBe(true);
    expect(PrReadyOutput.parse(r.output)).toEqual({ ready: false, message: "Pull request Pull request is closed" });
    expect(h.fake.pull(repository, pr.number)?.draft).toBe(true);
  });

  it("pr.sync: what the forge says and the run's view does not, as signals; again, nothing; closed, pr_closed alone", async () => {
    const silent = createLogger({ service: "test", level: "silent" });
    h.commit("orch/run/r-sync", "sync.txt", "sync\n");
    const open = await h.service.execute(workItem("pr.open", { forge: h.forge, base: "main", title: "Sync me", body: "" }, "r-sync"), silent);
    const pr = PrOpenOutput.parse(open.output).pullRequest;
    const failing = h.fake.setCheck(repository, pr.headSha!, { name: "build", status: "failure", log: "boom" });
    h.fake.setCheck(repository, pr.headSha!, { name: "lint", status: "success" });
    h.fake.addReview(repository, pr.number, { state: "approved", author: "lee" });

    const item = { ...workItem("pr.sync", { forge: h.forge, number: pr.number, head: pr.head }, "r-sync"), kind: "sync" } as WorkItem;
    let pullRequest: NonNullable<RunView["pullRequest"]> = { state: "open", number: pr.number, sync: { attemptId: item.attemptId, at: Date.now() } };
    const sent: any[] = [];
    const sync = () =>
      runPrSync(item, {
        send: async (c) => void sent.push(c),
        logger: silent,
        view: async () => ({ status: "running", pullRequest }) as RunView,
        observe: (p, signal) => h.service.observe(p, signal),
        describe: (e) => h.service.stepError(e).message,
      });

    await sync();
    const signals = sent.map((c) => c.signal);
    expect(sent.every((c) => c.type === "run.signal" && c.actor === `poll:${provider}` && c.runId === "r-sync")).toBe(true);
    expect(signals).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "ci_report", check: "build", status: "failure", sha: pr.headSha, jobId: String(failing.id), provider }),
        expect.objectContaining({ name: "ci_report", check: "lint", status: "success", sha: pr.headSha }),
        expect.objectContaining({ name: "review_report", state: "approved", reviewer: "lee", number: pr.number, sha: pr.headSha }),
      ]),
    );
    expect(signals).toHaveLength(3);

    // The run recorded them (as the core would, in its view): the next look sends nothing.
    const review = signals.find((x) => x.name === "review_report");
    pullRequest = {
      ...pullRequest,
      checks: {
        state: "failure",
        at: Date.now(),
        byName: Object.fromEntries(
          signals.filter((x) => x.name === "ci_report").map((x) => [x.check, { status: x.status, sha: x.sha, counted: true, at: Date.now() }]),
        ),
      },
      review: { state: "approved", reviewer: "lee", comments: 0, at: review.at ?? Date.now() },
    };
    sent.length = 0;
    await sync();
    expect(sent).toEqual([]);

    h.fake.closePull(repository, pr.number);
    await sync();
    expect(sent.map((c) => [c.commandId, c.signal.name])).toEqual([[`poll:r-sync:pr:${pr.number}:closed`, "pr_closed"]]);
  });

  it("a session step's push (payload.push, no forge named) authenticates with the project's forge, whose host no setting names", async () => {
    // No API URL configured for the fake: only the project's forge (with its apiUrl) says where the origin is.
    const cfg = loadConfig(AgentHubConfig, { ORCH_CONFIG: "none" });
    const git = new GitCli({ binary: gitBinary, authorName: "Orchestrator", authorEmail: "orch@test.invalid", env: HERMETIC });
    const service = new ForgeService({
      cfg: { ...cfg, ORCH_CI_LOG_MAX_BYTES: 4096 },
      git,
      workspaces: { repoFor: async () => h.repo },
      project: async () => ({ id: "p1", name: "P", forge: { ...h.forge, apiUrl: h.fake.apiUrl } }) as never,
      logger: createLogger({ service: "test", level: "silent" }),
      env: { [provider === "github" ? "GITHUB_TOKEN" : "GITLAB_TOKEN"]: token },
    });
    const sha = h.commit("orch/run/r-session-push", "session.txt", "s\n");
    const item = workItem("agent", { push: true }, "r-session-push");
    const pushed = await service.pushAfterSession(item, h.repo, "orch/run/r-session-push", createLogger({ service: "test", level: "silent" }));
    expect(pushed).toEqual({ sha, authenticated: true });
    expect(h.fake.headOf(repository, "orch/run/r-session-push")).toBe(sha);
  });

  it("without a token: FORGE_TOKEN_MISSING, not retryable, naming the variable, before anything is pushed", async () => {
    const cfg = loadConfig(AgentHubConfig, { ORCH_CONFIG: "none", ORCH_GITHUB_API_URL: h.fake.apiUrl, ORCH_GITLAB_API_URL: h.fake.apiUrl });
    const git = new GitCli({ binary: gitBinary, authorName: "Orchestrator", authorEmail: "orch@test.invalid", env: HERMETIC });
    const bare = new ForgeService({
      cfg,
      git,
      workspaces: { repoFor: async () => h.repo },
      project: async () => undefined,
      logger: createLogger({ service: "test", level: "silent" }),
      env: {},
    });
    h.commit("orch/run/r-token", "token.txt", "t\n");
    const r = await bare.execute(
      workItem("pr.open", { forge: h.forge, base: "main", title: "No token", body: "" }, "r-token"),
      createLogger({ service: "test", level: "silent" }),
    );
    expect(r.ok).toBe(false);
    expect(r.error).toMatchObject({ code: StepErrorCode.ForgeTokenMissing, retryable: false });
    expect(r.error!.message).toContain(provider === "github" ? "GITHUB_TOKEN or GH_TOKEN" : "GITLAB_TOKEN");
    expect(h.fake.headOf(repository, "orch/run/r-token")).toBeNull();
  });

  it("a wrong token is a non-retryable FORGE_ERROR whose message never carries a token", async () => {
    const cfg = loadConfig(AgentHubConfig, { ORCH_CONFIG: "none", ORCH_GITHUB_API_URL: h.fake.apiUrl, ORCH_GITLAB_API_URL: h.fake.apiUrl });
    const wrong = `${token}-wrong`;
    const host = createRepositoryHost(h.forge, cfg, { GITHUB_TOKEN: wrong, GITLAB_TOKEN: wrong });
    const err = await host.findOpenPullRequest("main").catch((e: unknown) => e as { code: string; retryable: boolean; message: string; status: number });
    expect(err).toMatchObject({ code: StepErrorCode.ForgeError, retryable: false, status: 401 });
    expect(err.message).not.toContain(wrong);
    expect(JSON.stringify(err)).not.toContain(wrong);
  });

  it("records every API call with the token in the forge's header, and none in a URL", () => {
    const api = h.fake.apiRequests();
    expect(api.length).toBeGreaterThan(5);
    for (const r of api) {
      expect(JSON.stringify(r.query)).not.toContain(token);
      expect(r.path).not.toContain(token);
    }
    const header = provider === "github" ? api[0]!.headers.authorization : api[0]!.headers["private-token"];
    expect(String(header)).toContain(token);
  });
});
