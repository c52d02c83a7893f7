import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { AgentHubConfig, loadConfig } from "@orch/config";
import type { ProjectRecord } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { GitCli, WorkspaceManager, preferGitHubSsh } from "../src/git/index.js";
import { RepoService } from "../src/repos.js";

/**
 * Seed 004's TASKSGODZILLA_PROJECTS_ROOT (ORCH_PROJECTS_ROOT), TASKSGODZILLA_GH_SSH
 * (ORCH_GIT_PREFER_SSH) and TASKSGODZILLA_GIT_USER/EMAIL (ORCH_GIT_AUTHOR_*), on real git
 * repositories in a temporary directory. "GitHub" is a bare repository on disk that git reaches
 * through `url.<file URL>.insteadOf git@github.com:` (set for our GitCli only), so the clone goes
 * over the SSH URL as far as the workspace is concerned, without any network.
 */

const HERMETIC = { GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" };
const ID = { GIT_AUTHOR_NAME: "A User", GIT_AUTHOR_EMAIL: "user@example.test", GIT_COMMITTER_NAME: "A User", GIT_COMMITTER_EMAIL: "user@example.test" };
const tmp = realpathSync(mkdtempSync(join(tmpdir(), "orch-seed-vars-")));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const logger = createLogger({ service: "test", level: "silent" }, new Writable({ write: (_c, _e, cb) => cb() }));

let n = 0;
const dir = (name: string): string => join(tmp, `${name}-${++n}`);
const sh = (cwd: string, ...args: string[]): string =>
  execFileSync("git", args, { cwd, env: { ...process.env, ...HERMETIC, ...ID }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
const project = (over: Partial<ProjectRecord> = {}): ProjectRecord => ({ id: "p", name: "p", createdAt: 0, updatedAt: 0, ...over });

/** A bare repository at `<root>/acme/widget.git` with one commit, as "GitHub" serves it. */
function fakeGitHub(): string {
  const root = dir("github");
  const work = dir("work");
  mkdirSync(work);
  sh(work, "init", "-q", "-b", "main");
  writeFileSync(join(work, "README.md"), "widget\n");
  sh(work, "add", "-A");
  sh(work, "commit", "-q", "-m", "initial");
  mkdirSync(join(root, "acme"), { recursive: true });
  sh(tmp, "clone", "-q", "--bare", work, join(root, "acme", "widget.git"));
  return root;
}

/** Our GitCli, with git@github.com: (and https://github.com/) rewritten to the fake (as ~/.gitconfig's insteadOf would). */
function gitFor(github: string, author = { authorName: "Orchestrator Test", authorEmail: "orch@test.invalid" }): GitCli {
  return new GitCli({
    ...author,
    env: {
      ...HERMETIC,
      GIT_CONFIG_COUNT: "2",
      GIT_CONFIG_KEY_0: `url.file://${github}/.insteadOf`,
      GIT_CONFIG_VALUE_0: "git@github.com:",
      // https too, so no test ever reaches the network.
      GIT_CONFIG_KEY_1: `url.file://${github}/.insteadOf`,
      GIT_CONFIG_VALUE_1: "https://github.com/",
    },
  });
}

describe("preferGitHubSsh (ORCH_GIT_PREFER_SSH, seed 004's TASKSGODZILLA_GH_SSH)", () => {
  it("turns GitHub https URLs into SSH ones", () => {
    expect(preferGitHubSsh("https://github.com/acme/widget")).toBe("git@github.com:acme/widget.git");
    expect(preferGitHubSsh("https://github.com/acme/widget.git")).toBe("git@github.com:acme/widget.git");
    expect(preferGitHubSsh("https://github.com/acme/widget/")).toBe("git@github.com:acme/widget.git");
    expect(preferGitHubSsh("https://x-access-token:ghs_abc@github.com/Acme-Org/my.repo.git")).toBe("git@github.com:Acme-Org/my.repo.git");
    expect(preferGitHubSsh("HTTPS://GitHub.com/acme/widget")).toBe("git@github.com:acme/widget.git");
  });

  it("leaves every other URL as it is", () => {
    for (const u of [
      "git@github.com:acme/widget.git",
      "https://gitlab.com/acme/widget.git",
      "https://github.example.com/acme/widget.git",
      "http://github.com/acme/widget.git",
      "https://github.com/acme",
      "https://github.com/acme/widget/tree/main",
      "file:///srv/repo.git",
      "/srv/repo.git",
    ]) {
      expect(preferGitHubSsh(u)).toBe(u);
    }
  });
});

describe("ORCH_PROJECTS_ROOT (seed 004's TASKSGODZILLA_PROJECTS_ROOT)", () => {
  it("defaults to <ORCH_WORKSPACE>/repos; set (or its seed 004 alias), clones and scratch repositories go there", async () => {
    const workspace = dir("ws");
    expect(new WorkspaceManager(loadConfig(AgentHubConfig, { ORCH_WORKSPACE: workspace }), gitFor(tmp), logger).reposRoot).toBe(join(workspace, "repos"));

    const root = dir("projects");
    const cfg = loadConfig(AgentHubConfig, { ORCH_WORKSPACE: workspace, TASKSGODZILLA_PROJECTS_ROOT: root });
    expect(cfg.ORCH_PROJECTS_ROOT).toBe(root);
    const ws = new WorkspaceManager(cfg, gitFor(tmp), logger);
    expect(ws.reposRoot).toBe(root);
    const scratch = await ws.repoFor(undefined, "scratch");
    expect(scratch).toBe(join(root, "scratch"));
    expect(sh(scratch, "symbolic-ref", "--short", "HEAD")).toBe("main");
    expect(existsSync(join(workspace, "repos"))).toBe(false);
    expect(new WorkspaceManager(loadConfig(AgentHubConfig, { ORCH_PROJECTS_ROOT: "~/src" }), gitFor(tmp), logger, { homeDir: "/home/someone" }).reposRoot).toBe(
      "/home/someone/src",
    );
  });

  it("the repository service finds clones there too", async () => {
    const root = dir("projects");
    const git = gitFor(tmp);
    const workspaces = new WorkspaceManager(loadConfig(AgentHubConfig, { ORCH_WORKSPACE: dir("ws"), ORCH_PROJECTS_ROOT: root }), git, logger);
    const p = project({ id: "p1", gitUrl: "/nowhere.git" });
    const svc = new RepoService({ git, workspaces, project: async (id) => (id === "p1" ? p : undefined), logger });
    // Not cloned yet: refused, as for the default root.
    const before = await svc.handle({ op: "branches", projectId: "p1" });
    expect(before).toMatchObject({ ok: false, error: { code: "CONFLICT" } });
    // A clone at <root>/p1 is found.
    const work = join(root, "p1");
    mkdirSync(work, { recursive: true });
    sh(work, "init", "-q", "-b", "main");
    sh(work, "commit", "-q", "--allow-empty", "-m", "initial");
    sh(work, "branch", "feature-x");
    const after = await svc.handle({ op: "branches", projectId: "p1" });
    expect(after.ok, JSON.stringify(after)).toBe(true);
    expect(after.ok && (after.data as { branches: { name: string }[] }).branches.map((b) => b.name)).toEqual(["feature-x", "main"]);
  });
});

describe("ORCH_GIT_PREFER_SSH: cloning", () => {
  it("clones a GitHub https git_url over SSH and sets origin to the SSH URL; off, origin stays https", async () => {
    const github = fakeGitHub();
    const url = "https://github.com/acme/widget";

    const ssh = new WorkspaceManager(loadConfig(AgentHubConfig, { ORCH_WORKSPACE: dir("ws"), TASKSGODZILLA_GH_SSH: "true" }), gitFor(github), logger);
    const repo = await ssh.repoFor(project({ gitUrl: url }), "widget");
    expect(readFileSync(join(repo, "README.md"), "utf8")).toBe("widget\n");
    expect(sh(repo, "config", "--get", "remote.origin.url")).toBe("git@github.com:acme/widget.git");
    // Again (a fetch over SSH): the same clone.
    expect(await ssh.repoFor(project({ gitUrl: url }), "widget")).toBe(repo);

    // A clone made over https before the flag was turned on gets its origin moved to SSH.
    const root = dir("projects");
    const existing = join(root, "widget");
    mkdirSync(root);
    sh(tmp, "clone", "-q", join(github, "acme", "widget.git"), existing);
    sh(existing, "remote", "set-url", "origin", `${url}.git`);
    const later = new WorkspaceManager(loadConfig(AgentHubConfig, { ORCH_PROJECTS_ROOT: root, ORCH_GIT_PREFER_SSH: "true" }), gitFor(github), logger);
    expect(await later.repoFor(project({ gitUrl: url }), "widget")).toBe(existing);
    expect(sh(existing, "config", "--get", "remote.origin.url")).toBe("git@github.com:acme/widget.git");

    // Off (the default): the URL is used as given (checked without cloning from the network: the
    // existing SSH clone is moved back to https, not refused as another repository).
    const off = new WorkspaceManager(loadConfig(AgentHubConfig, { ORCH_PROJECTS_ROOT: root }), gitFor(github), logger);
    await off.repoFor(project({ gitUrl: url }), "widget");
    expect(sh(existing, "config", "--get", "remote.origin.url")).toBe(url);
  });
});

describe("TASKSGODZILLA_GIT_USER / TASKSGODZILLA_GIT_EMAIL", () => {
  it("are the agent hub's git identity (ORCH_GIT_AUTHOR_NAME / _EMAIL; ours win)", async () => {
    const cfg = loadConfig(AgentHubConfig, { TASKSGODZILLA_GIT_USER: "Godzilla Bot", TASKSGODZILLA_GIT_EMAIL: "bot@tg.example" });
    expect([cfg.ORCH_GIT_AUTHOR_NAME, cfg.ORCH_GIT_AUTHOR_EMAIL]).toEqual(["Godzilla Bot", "bot@tg.example"]);
    const ours = loadConfig(AgentHubConfig, { TASKSGODZILLA_GIT_USER: "Godzilla Bot", ORCH_GIT_AUTHOR_NAME: "Ours" });
    expect(ours.ORCH_GIT_AUTHOR_NAME).toBe("Ours");

    // The scratch repository's initial commit is made with that identity.
    const ws = new WorkspaceManager(loadConfig(AgentHubConfig, { ORCH_WORKSPACE: dir("ws") }), GitCli.fromConfig(cfg, { env: HERMETIC }), logger);
    const repo = await ws.repoFor(undefined, "ident");
    expect(sh(repo, "log", "-1", "--format=%an <%ae>")).toBe("Godzilla Bot <bot@tg.example>");
  });
});
