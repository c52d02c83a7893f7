import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentHubConfig, loadConfig } from "@orch/config";
import { type ProjectRecord, RepoReply, RepoRequest } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { GitCli, type GitPolicy, WorkspaceManager } from "../src/git/index.js";
import { CodeMachineConfigError, RepoService, loadCodeMachine, parseJsLike } from "../src/repos.js";

/**
 * The agent hub's repository requests (`<p>.q.repo`): branches listed and deleted on real
 * repositories (a bare origin, or local branches only), the merged check and its setting, the
 * CodeMachine loader and its path checks, and bad requests answered, never thrown.
 */

const HERMETIC = { GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" };
const ID = { GIT_AUTHOR_NAME: "A User", GIT_AUTHOR_EMAIL: "user@example.test", GIT_COMMITTER_NAME: "A User", GIT_COMMITTER_EMAIL: "user@example.test" };
const tmp = realpathSync(mkdtempSync(join(tmpdir(), "orch-repos-")));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const logger = createLogger({ service: "test", level: "silent" }, new Writable({ write: (_c, _e, cb) => cb() }));

let n = 0;
const dir = (name: string): string => join(tmp, `${name}-${++n}`);

function sh(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, env: { ...process.env, ...HERMETIC, ...ID }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

const write = (path: string, text: string) => {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
};

/** A `.codemachine` workspace under `root`. */
function codemachine(root: string): void {
  write(
    join(root, ".codemachine", "config", "main.agents.js"),
    "module.exports = [\n  { id: 'plan-agent', name: 'Planner', promptPath: 'prompts/plan.md', engineId: 'codex' },\n  { id: 'code-agent', promptPath: 'prompts/code.md', model: 'gpt-x' },\n];\n",
  );
  write(join(root, ".codemachine", "config", "sub.agents.js"), "export default [{ id: 'helper', prompt: 'prompts/help.md' }];");
  write(
    join(root, ".codemachine", "config", "modules.js"),
    JSON.stringify([{ id: "loop", targetAgentId: "code-agent", behavior: { type: "loop", stepBack: 1 } }]),
  );
  write(join(root, ".codemachine", "config", "placeholders.js"), "const placeholders = { project: 'demo', /* why */ n: 2, };");
  write(join(root, ".codemachine", "template.json"), JSON.stringify({ name: "t" }));
}

/**
 * A bare origin with `main`, `merged-b` (at main), `unmerged-b` and `feature/nested` (one commit
 * ahead), and a clone of it on `main`.
 */
function originAndClone(): { origin: string; work: string } {
  const origin = dir("origin.git");
  const work = dir("work");
  sh(tmp, "init", "-q", "--bare", "-b", "main", origin);
  sh(tmp, "clone", "-q", origin, work);
  sh(work, "checkout", "-q", "-b", "main");
  writeFileSync(join(work, "README.md"), "# demo\n");
  codemachine(work);
  sh(work, "add", "-A");
  sh(work, "commit", "-q", "-m", "init");
  sh(work, "push", "-q", "origin", "main", "main:merged-b");
  sh(work, "checkout", "-q", "-b", "unmerged-b");
  writeFileSync(join(work, "x.txt"), "x\n");
  sh(work, "add", "-A");
  sh(work, "commit", "-q", "-m", "x");
  sh(work, "push", "-q", "origin", "unmerged-b", "unmerged-b:feature/nested");
  sh(work, "checkout", "-q", "main");
  return { origin, work };
}

/** A repository without origin: `main`, `merged-l`, `unmerged-l`, and `other` checked out (merged). */
function localOnly(): string {
  const d = dir("local");
  mkdirSync(d);
  sh(d, "init", "-q", "-b", "main");
  writeFileSync(join(d, "a.txt"), "a\n");
  sh(d, "add", "-A");
  sh(d, "commit", "-q", "-m", "a");
  sh(d, "branch", "merged-l");
  sh(d, "checkout", "-q", "-b", "unmerged-l");
  writeFileSync(join(d, "b.txt"), "b\n");
  sh(d, "add", "-A");
  sh(d, "commit", "-q", "-m", "b");
  sh(d, "checkout", "-q", "main");
  sh(d, "checkout", "-q", "-b", "other");
  return d;
}

const project = (over: Partial<ProjectRecord> = {}): ProjectRecord => ({ id: "p1", name: "p", createdAt: 0, updatedAt: 0, ...over });

function service(projects: ProjectRecord[], policy: Partial<GitPolicy> = {}) {
  const workspace = dir("ws");
  const cfg = loadConfig(AgentHubConfig, { ORCH_WORKSPACE: workspace });
  const git = new GitCli({
    authorName: "Orchestrator Test",
    authorEmail: "orch@test.invalid",
    policy,
    env: HERMETIC,
    timeoutMs: 30_000,
    networkTimeoutMs: 30_000,
  });
  const workspaces = new WorkspaceManager(cfg, git, logger);
  const byId = new Map(projects.map((p) => [p.id, p]));
  return { svc: new RepoService({ git, workspaces, project: async (id) => byId.get(id), logger }), workspace, workspaces };
}

const fail = (code: string, message: string | RegExp) => ({ ok: false, error: { code, message } });

describe("parseJsLike", () => {
  it("reads JSON and plain JS literals without evaluating them", () => {
    expect(parseJsLike('[{"id": "a"}]')).toEqual([{ id: "a" }]);
    expect(parseJsLike("module.exports = [{ id: 'a', promptPath: 'p.md', }, ];")).toEqual([{ id: "a", promptPath: "p.md" }]);
    expect(parseJsLike("export default { a: 'it\\'s', b: [1, 2,] }")).toEqual({ a: "it's", b: [1, 2] });
    expect(parseJsLike("const x = {\n  // a comment\n  a: 1, /* another */ b: 'two'\n};")).toEqual({ a: 1, b: "two" });
  });

  it("refuses code", () => {
    expect(() => parseJsLike("module.exports = require('./other')")).toThrow();
    expect(() => parseJsLike("export default [foo()]")).toThrow();
    expect(() => parseJsLike("")).toThrow();
  });
});

describe("loadCodeMachine", () => {
  it("loads main and sub agents, modules, placeholders and the template", async () => {
    const root = dir("cm");
    codemachine(root);
    const cm = await loadCodeMachine(root);
    expect(cm.main).toEqual([
      { id: "plan-agent", name: "Planner", promptPath: "prompts/plan.md", engineId: "codex" },
      { id: "code-agent", promptPath: "prompts/code.md", model: "gpt-x" },
    ]);
    expect(cm.sub).toEqual([{ id: "helper", promptPath: "prompts/help.md" }]);
    expect(cm.modules).toEqual([{ id: "loop", targetAgentId: "code-agent", behavior: { type: "loop", stepBack: 1 } }]);
    expect(cm.placeholders).toEqual({ project: "demo", n: 2 });
    expect(cm.template).toEqual({ name: "t" });
    // The `.codemachine` directory itself works as the root too.
    expect((await loadCodeMachine(join(root, ".codemachine"))).main).toHaveLength(2);
  });

  it("an empty workspace has no agents; malformed ones are refused with what is wrong", async () => {
    const empty = dir("cm-empty");
    mkdirSync(empty);
    expect(await loadCodeMachine(empty)).toEqual({ main: [], sub: [], modules: [], placeholders: {}, template: {} });
    const bad = async (file: string, text: string) => {
      const root = dir("cm-bad");
      write(join(root, ".codemachine", "config", file), text);
      const e = await loadCodeMachine(root).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(CodeMachineConfigError);
      return (e as Error).message;
    };
    expect(await bad("main.agents.js", "module.exports = { id: 'a' }")).toBe("main agents config must be a list");
    expect(await bad("main.agents.js", "[{ id: 'a' }]")).toBe("main agent a is missing promptPath");
    expect(await bad("main.agents.js", "[{ promptPath: 'a' }]")).toBe("main agent is missing an id");
    expect(await bad("main.agents.js", "[oops(]")).toMatch(/^Unable to parse config file config\/main\.agents\.js: /);
    expect(await bad("modules.js", "{}")).toBe("modules config must be a list");
    expect(await bad("modules.js", "[1]")).toBe("module entry must be an object");
  });

  it("reads no file whose real path is outside the repository", async () => {
    const repo = dir("cm-repo");
    const secret = dir("secret");
    write(join(secret, "list.js"), "[{ id: 'x', promptPath: 'y' }]");
    mkdirSync(join(repo, ".codemachine", "config"), { recursive: true });
    symlinkSync(join(secret, "list.js"), join(repo, ".codemachine", "config", "main.agents.js"));
    await expect(loadCodeMachine(repo)).rejects.toThrow("Config file config/main.agents.js is outside the project's repository");
    // Inside the repository a symlink is fine.
    expect((await loadCodeMachine(repo, tmp)).main).toEqual([{ id: "x", promptPath: "y" }]);
  });
});

describe("RepoService: branches on origin", () => {
  let work: string;
  let origin: string;
  beforeAll(() => ({ origin, work } = originAndClone()));

  it("lists origin's branches, sorted, with their heads", async () => {
    const { svc } = service([project({ localPath: work })]);
    const r = await svc.handle({ op: "branches", projectId: "p1" });
    expect(r.ok).toBe(true);
    const data = (r as { data: { remote: boolean; branches: { name: string; sha: string }[] } }).data;
    expect(data.remote).toBe(true);
    expect(data.branches.map((b) => b.name)).toEqual(["feature/nested", "main", "merged-b", "unmerged-b"]);
    expect(data.branches.find((b) => b.name === "unmerged-b")?.sha).toBe(sh(origin, "rev-parse", "refs/heads/unmerged-b"));
  });

  it("deletes a merged branch on origin; refuses the base branch, unmerged, unknown and invalid ones", async () => {
    const { svc } = service([project({ localPath: work })]);
    const del = (branch: string) => svc.handle({ op: "delete_branch", projectId: "p1", branch });
    expect(await del("main")).toEqual(fail("CONFLICT", "Refusing to delete the base branch main"));
    expect(await del("unmerged-b")).toEqual(fail("CONFLICT", "Branch unmerged-b is not merged into main; set allow_delete_unmerged_branches to delete it"));
    expect(await del("feature/nested")).toEqual(
      fail("CONFLICT", "Branch feature/nested is not merged into main; set allow_delete_unmerged_branches to delete it"),
    );
    expect(await del("nope")).toEqual(fail("NOT_FOUND", "Branch nope not found on origin"));
    for (const bad of ["-x", "a..b", "x.lock", "a/", "a b", "a@{1}"]) expect(await del(bad)).toEqual(fail("BAD_REQUEST", `Invalid branch name '${bad}'`));
    expect(await del("merged-b")).toEqual({ ok: true, data: { deleted: true, branch: "merged-b", remote: true } });
    expect(sh(origin, "branch", "--list", "--format=%(refname:short)").split("\n").sort()).toEqual(["feature/nested", "main", "unmerged-b"]);
    expect(await del("merged-b")).toEqual(fail("NOT_FOUND", "Branch merged-b not found on origin"));
    // A project whose base branch origin does not have cannot tell.
    const other = service([project({ localPath: work, baseBranch: "develop" })]).svc;
    expect(await other.handle({ op: "delete_branch", projectId: "p1", branch: "unmerged-b" })).toEqual(
      fail("CONFLICT", "Base branch develop not found; cannot tell whether unmerged-b is merged"),
    );
  });

  it("deletes an unmerged branch with allow_delete_unmerged_branches", async () => {
    const { svc } = service([project({ localPath: work })], { allowDeleteUnmergedBranches: true });
    expect(await svc.handle({ op: "delete_branch", projectId: "p1", branch: "feature/nested" })).toEqual({
      ok: true,
      data: { deleted: true, branch: "feature/nested", remote: true },
    });
    expect(sh(origin, "branch", "--list", "feature/nested")).toBe("");
    expect(await svc.handle({ op: "delete_branch", projectId: "p1", branch: "main" })).toEqual(fail("CONFLICT", "Refusing to delete the base branch main"));
  });

  it("an unreachable origin is UNAVAILABLE", async () => {
    const d = dir("lost-origin");
    sh(tmp, "clone", "-q", origin, d);
    sh(d, "remote", "set-url", "origin", join(tmp, "gone.git"));
    const { svc } = service([project({ localPath: d })]);
    const r = await svc.handle({ op: "branches", projectId: "p1" });
    expect(r).toMatchObject(fail("UNAVAILABLE", /^Unable to list origin's branches: .+/));
  });
});

describe("RepoService: local branches (no origin)", () => {
  it("lists and deletes local branches with the same checks", async () => {
    const repo = localOnly();
    const { svc } = service([project({ localPath: repo })]);
    const r = await svc.handle({ op: "branches", projectId: "p1" });
    expect(r).toMatchObject({ ok: true, data: { remote: false } });
    expect((r as { data: { branches: { name: string }[] } }).data.branches.map((b) => b.name)).toEqual(["main", "merged-l", "other", "unmerged-l"]);
    const del = (branch: string) => svc.handle({ op: "delete_branch", projectId: "p1", branch });
    expect(await del("unmerged-l")).toEqual(fail("CONFLICT", "Branch unmerged-l is not merged into main; set allow_delete_unmerged_branches to delete it"));
    expect(await del("gone")).toEqual(fail("NOT_FOUND", "Branch gone not found"));
    // git refuses the branch checked out.
    expect(await del("other")).toMatchObject(fail("CONFLICT", /^Failed to delete branch other: .*other/));
    expect(await del("merged-l")).toEqual({ ok: true, data: { deleted: true, branch: "merged-l", remote: false } });
    expect(sh(repo, "branch", "--list", "merged-l")).toBe("");
  });
});

describe("RepoService: where the repository is", () => {
  it("a local path that is missing or not a repository, a project not cloned yet, no project", async () => {
    const plain = dir("plain");
    mkdirSync(plain);
    const { svc, workspaces } = service([
      project({ id: "p1", localPath: join(tmp, "missing") }),
      project({ id: "p2", localPath: plain }),
      project({ id: "p3", gitUrl: "https://example.invalid/x.git" }),
    ]);
    expect(await svc.handle({ op: "branches", projectId: "p1" })).toEqual(fail("CONFLICT", `Repository path ${join(tmp, "missing")} does not exist`));
    expect(await svc.handle({ op: "branches", projectId: "p2" })).toEqual(fail("CONFLICT", `${plain} is not a git repository`));
    expect(await svc.handle({ op: "branches", projectId: "p3" })).toEqual(
      fail("CONFLICT", "The repository has not been cloned yet (the project's setup run clones it)"),
    );
    expect(await svc.handle({ op: "codemachine", projectId: "p3" })).toEqual(
      fail("CONFLICT", "The repository has not been cloned yet (the project's setup run clones it)"),
    );
    expect(await svc.handle({ op: "branches", projectId: "nope" })).toEqual(fail("NOT_FOUND", "Project not found"));
    // Nothing was cloned by asking.
    expect(await svc.handle({ op: "branches", projectId: "p3" })).toMatchObject({ ok: false });
    expect(workspaces.reposRoot.startsWith(tmp)).toBe(true);
  });

  it("uses the hub's clone under <workspace>/repos/<project id> once the setup run made it", async () => {
    const { origin } = originAndClone();
    const { svc, workspaces } = service([project({ id: "p9", gitUrl: origin })]);
    // What the setup run does: the workspace manager clones it.
    const repo = await workspaces.repoFor(project({ id: "p9", gitUrl: origin }), "p9");
    expect(repo).toBe(join(realpathSync(workspaces.reposRoot), "p9"));
    const r = await svc.handle({ op: "branches", projectId: "p9" });
    expect(r).toMatchObject({ ok: true, data: { remote: true } });
    const cm = await svc.handle({ op: "codemachine", projectId: "p9" });
    expect(cm).toMatchObject({ ok: true, data: { workspacePath: ".", root: repo } });
  });
});

describe("RepoService: CodeMachine", () => {
  it("loads the repository's workspace, or one inside it; refuses paths outside and bad workspaces", async () => {
    const { work } = originAndClone();
    codemachine(join(work, "nested", "ws"));
    mkdirSync(join(work, "empty"));
    write(join(work, "broken", ".codemachine", "config", "main.agents.js"), "module.exports = [");
    const { svc } = service([project({ localPath: work })]);
    const cm = (workspacePath?: string) => svc.handle({ op: "codemachine", projectId: "p1", ...(workspacePath !== undefined ? { workspacePath } : {}) });
    const root = await cm();
    expect(root).toMatchObject({
      ok: true,
      data: { workspacePath: ".", root: realpathSync(work), modules: [{ id: "loop" }], placeholders: { project: "demo", n: 2 } },
    });
    expect((root as { data: { main: { id: string }[] } }).data.main.map((a) => a.id)).toEqual(["plan-agent", "code-agent"]);
    expect(await cm("")).toMatchObject({ ok: true, data: { workspacePath: "." } });
    expect(await cm("nested/ws")).toMatchObject({ ok: true, data: { workspacePath: "nested/ws", root: join(realpathSync(work), "nested", "ws") } });
    expect(await cm(join(work, "nested", "ws"))).toMatchObject({ ok: true, data: { workspacePath: "nested/ws" } });
    expect(await cm("/")).toEqual(fail("BAD_REQUEST", "workspace_path must be inside the project's repository"));
    expect(await cm("../")).toEqual(fail("BAD_REQUEST", "workspace_path must be inside the project's repository"));
    expect(await cm("nope")).toEqual(fail("BAD_REQUEST", "Workspace path nope does not exist"));
    expect(await cm("empty")).toEqual(fail("BAD_REQUEST", "No CodeMachine main agents found (.codemachine/config/main.agents.js)"));
    expect(await cm("broken")).toMatchObject(fail("BAD_REQUEST", /^Unable to parse config file config\/main\.agents\.js: /));
    // Symlinked out of the repository: refused like a path outside.
    symlinkSync(tmp, join(work, "escape"));
    expect(await cm("escape")).toEqual(fail("BAD_REQUEST", "workspace_path must be inside the project's repository"));
  });
});

describe("RepoService: the wire", () => {
  const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
  const dec = (b: Uint8Array) => RepoReply.parse(JSON.parse(new TextDecoder().decode(b)));

  it("answers bad requests with BAD_REQUEST and never throws", async () => {
    const { svc } = service([]);
    expect(dec(await svc.answer(enc("not json")))).toMatchObject(fail("BAD_REQUEST", /^Invalid repository request: not JSON/));
    expect(dec(await svc.answer(enc({ op: "rm -rf", projectId: "p1" })))).toMatchObject(fail("BAD_REQUEST", /^Invalid repository request: /));
    expect(dec(await svc.answer(enc({ op: "branches", projectId: "../etc" })))).toMatchObject(fail("BAD_REQUEST", /projectId/));
    expect(dec(await svc.answer(enc({ op: "delete_branch", projectId: "p1" })))).toMatchObject(fail("BAD_REQUEST", /branch/));
    expect(dec(await svc.answer(enc({ op: "branches", projectId: "p1" })))).toEqual(fail("NOT_FOUND", "Project not found"));
  });

  it("a request encoded with the contract gets the answer; one too large for the bus is UNAVAILABLE", async () => {
    const { work } = originAndClone();
    const { svc } = service([project({ localPath: work })]);
    const req = enc(RepoRequest.parse({ op: "branches", projectId: "p1" }));
    expect(dec(await svc.answer(req))).toMatchObject({ ok: true, data: { remote: true } });
    expect(dec(await svc.answer(req, 50))).toMatchObject(fail("UNAVAILABLE", /larger than the bus allows \(50\)/));
  });

  it("a failing project store is UNAVAILABLE, not a crash", async () => {
    const git = new GitCli({ authorName: "t", authorEmail: "t@t", env: HERMETIC });
    const workspaces = new WorkspaceManager(loadConfig(AgentHubConfig, { ORCH_WORKSPACE: dir("ws") }), git, logger);
    const svc = new RepoService({ git, workspaces, logger, project: () => Promise.reject(new Error("bucket gone")) });
    expect(await svc.handle({ op: "branches", projectId: "p1" })).toEqual(fail("UNAVAILABLE", "The repository operation failed: bucket gone"));
  });
});
