import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { AgentHubConfig, loadConfig } from "@orch/config";
import { StepErrorCode, type ProjectForge } from "@orch/contracts";
import { GH_PR_FIELDS, GhCliHost, createRepositoryHost, forgeRedactor, trimLog } from "../../services/agent-hub/src/forge/index.js";

/**
 * `vcs_repos.github_gh_cli` against a fake `gh` on the PATH. The real gh talks https to github.com
 * (or GH_HOST) only and cannot be pointed at a local plain-HTTP server, so this fake stands in: it
 * checks the argument vector it is started with against the scenario, records it with its stdin and
 * whether GH_TOKEN holds the token, and prints gh output recorded from real runs
 * (services/agent-hub/test/fixtures/gh). The provider itself runs as in production: a real child
 * process, no shell, a clean environment.
 */

const FIXTURES = resolve(import.meta.dirname, "../../services/agent-hub/test/fixtures/gh");
const TOKEN = "ghp_cliToken0123456789abcdefABCDEF";
const tmp = mkdtempSync(join(tmpdir(), "orch-gh-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const bin = join(tmp, "bin");
mkdirSync(bin);
const scenarioFile = join(tmp, "scenario.json");
const callsFile = join(tmp, "calls.jsonl");

interface Step {
  args: string[];
  stdout?: string;
  stderr?: string;
  exit?: number;
}

writeFileSync(
  join(bin, "gh"),
  `#!${process.execPath}
const fs = require("node:fs");
const path = require("node:path");
const args = process.argv.slice(2);
const stdin = fs.readFileSync(0, "utf8");
const env = process.env;
fs.appendFileSync(${JSON.stringify(callsFile)}, JSON.stringify({ args, stdin, tokenOk: env.GH_TOKEN === ${JSON.stringify(TOKEN)}, githubToken: "GITHUB_TOKEN" in env, prompt: env.GH_PROMPT_DISABLED, host: env.GH_HOST }) + "\\n");
const steps = JSON.parse(fs.readFileSync(${JSON.stringify(scenarioFile)}, "utf8"));
const step = steps.find((s) => JSON.stringify(s.args) === JSON.stringify(args));
if (!step) { process.stderr.write("fake gh: unexpected arguments " + JSON.stringify(args) + "\\n"); process.exit(2); }
const read = (f) => fs.readFileSync(path.join(${JSON.stringify(FIXTURES)}, f), "utf8");
if (step.stdout) process.stdout.write(read(step.stdout));
if (step.stderr) process.stderr.write(read(step.stderr));
process.exit(step.exit ?? 0);
`,
);
chmodSync(join(bin, "gh"), 0o755);

const forge: ProjectForge = { provider: "github", repository: "acme/widgets" };
const SHA = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
const JSON_FIELDS = GH_PR_FIELDS.join(",");
const env = { PATH: `${bin}:${process.env.PATH}`, HOME: tmp, GITHUB_TOKEN: TOKEN };
const cfg = loadConfig(AgentHubConfig, { ORCH_CONFIG: "none", ORCH_VCS_REPO_PROVIDER: "vcs_repos.github_gh_cli" });

const scenario = (...steps: Step[]) => writeFileSync(scenarioFile, JSON.stringify(steps));
const calls = (): { args: string[]; stdin: string; tokenOk: boolean; githubToken: boolean; prompt?: string; host?: string }[] =>
  existsSync(callsFile)
    ? readFileSync(callsFile, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l))
    : [];

const view = (n: number) => ["pr", "view", String(n), "--repo", "acme/widgets", "--json", JSON_FIELDS];

beforeEach(() => rmSync(callsFile, { force: true }));

describe("vcs_repos.github_gh_cli", () => {
  const host = createRepositoryHost(forge, cfg, env);

  it("is the configured provider for GitHub forges (a GitLab forge still gets gitlab_rest)", () => {
    expect(host).toBeInstanceOf(GhCliHost);
    expect(createRepositoryHost({ provider: "gitlab", repository: "g/p" }, cfg, { GITLAB_TOKEN: "glpat-xxxxxxxx" }).provider).toBe("vcs_repos.gitlab_rest");
  });

  it("finds no open PR, opens one with the body on stdin (no shell: metacharacters arrive verbatim), then reads it back", async () => {
    const title = `Fix "$(touch ${join(tmp, "pwned")})"; rm -rf / && echo done`;
    scenario(
      {
        args: ["pr", "list", "--repo", "acme/widgets", "--head", "orch/run/r-gh", "--state", "open", "--limit", "10", "--json", JSON_FIELDS],
        stdout: "pr-list-empty.json",
      },
      {
        args: ["pr", "create", "--repo", "acme/widgets", "--head", "orch/run/r-gh", "--base", "main", "--title", title, "--body-file", "-", "--draft"],
        stdout: "pr-create.txt",
      },
      { args: view(42), stdout: "pr-view-open.json" },
    );
    expect(await host.findOpenPullRequest("orch/run/r-gh")).toBeNull();
    const pr = await host.openPullRequest({ title, body: "The run's summary.\n\n- step one", head: "orch/run/r-gh", base: "main", draft: true });
    expect(pr).toEqual({
      provider: "github",
      repository: "acme/widgets",
      number: 42,
      url: "https://github.com/acme/widgets/pull/42",
      head: "orch/run/r-gh",
      base: "main",
      headSha: SHA,
      state: "open",
      draft: true,
      mergeable: true,
      merged: false,
    });
    const c = calls();
    expect(c.map((x) => x.args[1])).toEqual(["list", "create", "view"]);
    expect(c[1]!.stdin).toBe("The run's summary.\n\n- step one");
    expect(c.every((x) => x.tokenOk && !x.githubToken && x.prompt === "1" && x.host === undefined)).toBe(true);
    expect(existsSync(join(tmp, "pwned"))).toBe(false);
  });

  it("finds the open PR for its branch, and takes gh's 'already exists' as the PR it names", async () => {
    scenario(
      {
        args: ["pr", "list", "--repo", "acme/widgets", "--head", "orch/run/r-gh", "--state", "open", "--limit", "10", "--json", JSON_FIELDS],
        stdout: "pr-list-open.json",
      },
      {
        args: ["pr", "create", "--repo", "acme/widgets", "--head", "orch/run/r-gh", "--base", "main", "--title", "Again", "--body-file", "-"],
        stderr: "pr-create-exists.stderr",
        exit: 1,
      },
      { args: view(42), stdout: "pr-view-open.json" },
    );
    expect((await host.findOpenPullRequest("orch/run/r-gh"))?.number).toBe(42);
    expect((await host.openPullRequest({ title: "Again", body: "", head: "orch/run/r-gh", base: "main", draft: false })).number).toBe(42);
  });

  it("lists checks and statuses through gh api (latest run of a name), and fetches a job's log", async () => {
    scenario(
      { args: ["api", `repos/acme/widgets/commits/${SHA}/check-runs?per_page=100`], stdout: "api-check-runs.json" },
      { args: ["api", `repos/acme/widgets/commits/${SHA}/status?per_page=100`], stdout: "api-status.json" },
      { args: ["api", "repos/acme/widgets/actions/jobs/28123456790/logs"], stdout: "api-job-logs.txt" },
    );
    expect(await host.listChecks(SHA)).toEqual([
      {
        name: "build",
        status: "failure",
        conclusion: "failure",
        jobId: "28123456790",
        url: "https://github.com/acme/widgets/actions/runs/9876543210/job/28123456790",
      },
      { name: "ci/circleci: test", status: "success", conclusion: "success", url: "https://circleci.com/gh/acme/widgets/1234" },
      {
        name: "lint",
        status: "pending",
        conclusion: "in_progress",
        jobId: "28123456791",
        url: "https://github.com/acme/widgets/actions/runs/9876543210/job/28123456791",
      },
    ]);
    const log = trimLog(await host.jobLog("28123456790"));
    expect(log.text).toContain("AssertionError: expected 2 to be 3");
    expect(log.text).not.toMatch(/^2026-11-30T/m);
  });

  it("lists reviews with their line comments (pending ones left out)", async () => {
    scenario(
      { args: ["api", "repos/acme/widgets/pulls/42/reviews?per_page=100"], stdout: "api-reviews.json" },
      { args: ["api", "repos/acme/widgets/pulls/42/comments?per_page=100"], stdout: "api-review-comments.json" },
    );
    expect(await host.listReviews(42)).toEqual([
      {
        id: "2456789012",
        state: "changes_requested",
        author: "alice",
        body: "Please rename the counter.",
        comments: [{ body: "`n` says nothing: call it `count`.", path: "src/widget.ts", line: 3 }],
        submittedAt: "2026-11-30T11:00:00Z",
        sha: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
      },
      {
        id: "2456789099",
        state: "approved",
        author: "bob",
        body: "",
        comments: [],
        submittedAt: "2026-11-30T12:00:00Z",
        sha: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
      },
    ]);
  });

  it("merges through gh api (a 405 is merged:false with GitHub's message), and comments with the body on stdin", async () => {
    const merge = ["api", "repos/acme/widgets/pulls/42/merge", "--method", "PUT", "-f", "merge_method=squash", "-f", `sha=${SHA}`];
    scenario({ args: view(42), stdout: "pr-view-open.json" }, { args: merge, stdout: "api-merge-405.json", stderr: "api-merge-405.stderr", exit: 1 });
    expect(await host.merge(42, { method: "squash", sha: SHA })).toEqual({ merged: false, message: "Pull Request is not mergeable" });
    scenario({ args: view(42), stdout: "pr-view-open.json" }, { args: merge, stdout: "api-merge-ok.json" });
    expect(await host.merge(42, { method: "squash", sha: SHA })).toEqual({ merged: true, sha: "9fceb02d0ae598e95dc970b74767f19372d61af8" });
    scenario({ args: view(42), stdout: "pr-view-merged.json" });
    expect(await host.merge(42, { method: "squash", sha: SHA })).toEqual({ merged: true, sha: "9fceb02d0ae598e95dc970b74767f19372d61af8" });
    scenario({ args: ["pr", "comment", "42", "--repo", "acme/widgets", "--body-file", "-"], stdout: "pr-comment.txt" });
    await host.comment(42, "Merged by the run.");
    expect(calls().at(-1)?.stdin).toBe("Merged by the run.");
  });

  it("marks a draft ready with gh pr ready (ready already is fine too); a closed PR is gh's refusal, an answer", async () => {
    const ready = ["pr", "ready", "42", "--repo", "acme/widgets"];
    scenario({ args: ready, stderr: "pr-ready.stderr" });
    expect(await host.markReady(42)).toEqual({ ready: true });
    scenario({ args: ready, stderr: "pr-ready-already.stderr" });
    expect(await host.markReady(42)).toEqual({ ready: true });
    scenario({ args: ready, stderr: "pr-ready-closed.stderr", exit: 1 });
    expect(await host.markReady(42)).toEqual({
      ready: false,
      message: 'Pull request acme/widgets#42 is closed. Only draft pull requests can be marked as "ready for review"',
    });
    scenario({ args: ready, stderr: "auth-401.stderr", exit: 1 });
    await expect(host.markReady(42)).rejects.toMatchObject({ code: StepErrorCode.ForgeError, status: 401, retryable: false });
    expect(calls().every((c) => c.tokenOk && c.stdin === "")).toBe(true);
  });

  it("turns gh's failures into typed errors: bad credentials (HTTP 401, not retryable), a missing binary", async () => {
    scenario({ args: view(7), stderr: "auth-401.stderr", exit: 1 });
    await expect(host.getPullRequest(7)).rejects.toMatchObject({ code: StepErrorCode.ForgeError, status: 401, retryable: false });
    const missing = createRepositoryHost(
      forge,
      loadConfig(AgentHubConfig, { ORCH_CONFIG: "none", ORCH_VCS_REPO_PROVIDER: "vcs_repos.github_gh_cli", ORCH_GH_BINARY: join(tmp, "no-gh") }),
      env,
    );
    await expect(missing.getPullRequest(7)).rejects.toMatchObject({
      code: StepErrorCode.ForgeError,
      retryable: false,
      message: expect.stringContaining("ORCH_GH_BINARY"),
    });
  });

  it("for GitHub Enterprise names the host in --repo and --hostname, with GH_HOST and GH_ENTERPRISE_TOKEN", () => {
    const ghe = new GhCliHost({ forge, apiUrl: "https://ghe.example.com/api/v3", token: TOKEN, binary: "gh", timeoutMs: 1000, redact: forgeRedactor({}) });
    expect(ghe.args.view(3)).toEqual(["pr", "view", "3", "--repo", "ghe.example.com/acme/widgets", "--json", JSON_FIELDS]);
    expect(ghe.args.ready(3)).toEqual(["pr", "ready", "3", "--repo", "ghe.example.com/acme/widgets"]);
    expect(ghe.args.api("repos/acme/widgets/pulls/3/reviews")).toEqual(["api", "--hostname", "ghe.example.com", "repos/acme/widgets/pulls/3/reviews"]);
  });
});
