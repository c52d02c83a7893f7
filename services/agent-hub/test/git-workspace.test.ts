import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { AgentHubConfig, loadConfig } from "@orch/config";
import type { ProjectRecord, SessionWorktree } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import {
  BaseNotFoundError,
  BranchMissingError,
  CloneFailedError,
  DestructiveOperationRefusedError,
  GitCli,
  type GitPolicy,
  InvalidBranchNameError,
  InvalidIdError,
  NotARepositoryError,
  RepositoryMismatchError,
  RunBranchCheckedOutError,
  UnmergedBranchDeleteRefusedError,
  WorkspaceConflictError,
  WorkspaceManager,
  WrongBranchError,
  sessionBranch,
} from "../src/git/index.js";

const HERMETIC = { GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" };
const ID = { GIT_AUTHOR_NAME: "A User", GIT_AUTHOR_EMAIL: "user@example.test", GIT_COMMITTER_NAME: "A User", GIT_COMMITTER_EMAIL: "user@example.test" };
const tmp = realpathSync(mkdtempSync(join(tmpdir(), "orch-git-ws-")));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const logger = createLogger({ service: "test", level: "silent" }, new Writable({ write: (_c, _e, cb) => cb() }));

let n = 0;
const dir = (name: string): string => join(tmp, `${name}-${++n}`);
const cli = (policy: Partial<GitPolicy> = {}) => new GitCli({ authorName: "Orchestrator Test", authorEmail: "orch@test.invalid", policy, env: HERMETIC });

interface Setup {
  ws: WorkspaceManager;
  workspace: string;
  git: GitCli;
}

function setup(env: Record<string, string> = {}, policy: Partial<GitPolicy> = {}, git: GitCli = cli(policy)): Setup {
  const workspace = dir("ws");
  const cfg = loadConfig(AgentHubConfig, { ORCH_WORKSPACE: workspace, ...env });
  return { ws: new WorkspaceManager(cfg, git, logger), workspace, git };
}

function sh(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, env: { ...process.env, ...HERMETIC, ...ID }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** A user's repository on `main` with README.md, committed. */
function userRepo(): string {
  const d = dir("user");
  mkdirSync(d);
  sh(d, "init", "-q", "-b", "main");
  writeFileSync(join(d, "README.md"), "hello\n");
  sh(d, "add", "-A");
  sh(d, "commit", "-q", "-m", "initial");
  return d;
}

const project = (over: Partial<ProjectRecord> = {}): ProjectRecord => ({ id: "p", name: "p", createdAt: 0, updatedAt: 0, ...over });
const tree = (repo: string, rev: string): string[] => sh(repo, "ls-tree", "-r", "--name-only", rev).split("\n").filter(Boolean).sort();
const branches = (repo: string, pattern: string): string[] => sh(repo, "branch", "--list", "--format=%(refname:short)", pattern).split("\n").filter(Boolean);

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

/** A scratch project with its run branch: what every session test starts from. */
async function run(s: Setup, runBranch = "001-add-user-auth", projectId = "p"): Promise<{ repo: string; runBranch: string; projectId: string }> {
  const repo = await s.ws.repoFor(undefined, projectId);
  await s.ws.ensureRunBranch(repo, runBranch);
  return { repo, runBranch, projectId };
}

describe("WorkspaceManager: repositories", () => {
  it("defaults the workspace to seed 003's, and worktrees under it", () => {
    const cfg = loadConfig(AgentHubConfig, {});
    const ws = new WorkspaceManager(cfg, cli(), logger, { homeDir: "/home/someone" });
    expect(ws.workspace).toBe("/home/someone/.local/share/orchestrator/workspace");
    expect(ws.worktreesRoot).toBe("/home/someone/.local/share/orchestrator/workspace/worktrees");
    expect(ws.reposRoot).toBe("/home/someone/.local/share/orchestrator/workspace/repos");
    const custom = new WorkspaceManager(loadConfig(AgentHubConfig, { ORCH_WORKSPACE: "~/ws", ORCH_WORKTREES_ROOT: "/srv/wt" }), cli(), logger, {
      homeDir: "/home/someone",
    });
    expect([custom.workspace, custom.worktreesRoot]).toEqual(["/home/someone/ws", "/srv/wt"]);
  });

  it("creates a scratch repository on main with an initial commit, once", async () => {
    const s = setup();
    const repo = await s.ws.repoFor(undefined, "scratch");
    expect(repo).toBe(join(s.workspace, "repos", "scratch"));
    expect(sh(repo, "symbolic-ref", "--short", "HEAD")).toBe("main");
    expect(sh(repo, "rev-list", "--count", "main")).toBe("1");
    const head = sh(repo, "rev-parse", "main");
    expect(await s.ws.repoFor(project({ id: "scratch" }), "scratch")).toBe(repo);
    expect(sh(repo, "rev-parse", "main")).toBe(head);
    expect(await rejection(s.ws.repoFor(undefined, "../escape"))).toBeInstanceOf(InvalidIdError);
  });

  it("uses a project's local checkout, at its top level, and refuses one that is not a repository", async () => {
    const s = setup();
    const user = userRepo();
    mkdirSync(join(user, "sub"));
    expect(await s.ws.repoFor(project({ localPath: join(user, "sub") }), "p")).toBe(user);
    const plain = dir("plain");
    mkdirSync(plain);
    const e = await rejection(s.ws.repoFor(project({ localPath: plain }), "p"));
    expect(e).toBeInstanceOf(NotARepositoryError);
    expect((e as NotARepositoryError).code).toBe("WORKSPACE_NOT_A_REPOSITORY");
    expect(e.message).toContain(plain);
    expect(await rejection(s.ws.repoFor(project({ localPath: join(tmp, "missing") }), "p"))).toBeInstanceOf(NotARepositoryError);
  });

  it("clones a gitUrl once, fetches it afterwards, and starts run branches from origin", async () => {
    const s = setup();
    const user = userRepo();
    const origin = dir("origin.git");
    sh(tmp, "clone", "-q", "--bare", user, origin);
    const repo = await s.ws.repoFor(project({ gitUrl: `file://${origin}` }), "cloned");
    expect(repo).toBe(join(s.workspace, "repos", "cloned"));
    expect(readFileSync(join(repo, "README.md"), "utf8")).toBe("hello\n");

    // Someone pushes to origin: the next call fetches, and a new run starts from it.
    writeFileSync(join(user, "more.txt"), "more\n");
    sh(user, "add", "-A");
    sh(user, "commit", "-q", "-m", "more");
    sh(user, "push", "-q", origin, "main:main");
    expect(await s.ws.repoFor(project({ gitUrl: `file://${origin}` }), "cloned")).toBe(repo);
    expect(await s.ws.ensureRunBranch(repo, "orch/run/r1")).toBe(sh(user, "rev-parse", "main"));

    // A path works as a gitUrl too; another URL for the same clone is refused.
    const byPath = await s.ws.repoFor(project({ gitUrl: origin }), "by-path");
    expect(tree(byPath, "HEAD")).toEqual(["README.md", "more.txt"]);
    const e = await rejection(s.ws.repoFor(project({ gitUrl: `file://${userRepo()}` }), "cloned"));
    expect(e).toBeInstanceOf(RepositoryMismatchError);
    expect((e as RepositoryMismatchError).code).toBe("WORKSPACE_REPOSITORY_MISMATCH");
  });

  it("a gitUrl that cannot be cloned: CLONE_FAILED, retryable only when the network failed", async () => {
    const s = setup();
    // No such repository: another attempt would fail the same way.
    const missing = await rejection(s.ws.repoFor(project({ gitUrl: "file:///nonexistent/repo.git" }), "missing"));
    expect(missing).toBeInstanceOf(CloneFailedError);
    expect(missing).toMatchObject({ code: "WORKSPACE_CLONE_FAILED", retryable: false });
    expect(missing.message).toMatch(/^could not clone file:\/\/\/nonexistent\/repo\.git: git clone .*does not appear to be a git repository/s);
    expect(existsSync(join(s.workspace, "repos", "missing"))).toBe(false);
    // A host that refuses the connection: the network's failure, worth the run's retries.
    const closed = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, "127.0.0.1", () => {
        const port = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(port));
      });
    });
    const refused = await rejection(s.ws.repoFor(project({ gitUrl: `http://127.0.0.1:${closed}/repo.git` }), "refused"));
    expect(refused).toBeInstanceOf(CloneFailedError);
    expect(refused).toMatchObject({ code: "WORKSPACE_CLONE_FAILED", retryable: true });
  });

  it("creates a run branch from the base branch, else from HEAD's branch, once", async () => {
    const s = setup();
    const user = userRepo();
    const main = sh(user, "rev-parse", "main");
    sh(user, "checkout", "-q", "-b", "develop");
    writeFileSync(join(user, "dev.txt"), "dev\n");
    sh(user, "add", "-A");
    sh(user, "commit", "-q", "-m", "dev");
    const develop = sh(user, "rev-parse", "develop");
    sh(user, "checkout", "-q", "main");
    const repo = await s.ws.repoFor(project({ localPath: user }), "p");

    expect(await s.ws.ensureRunBranch(repo, "001-add-user-auth")).toBe(main);
    expect(await s.ws.ensureRunBranch(repo, "orch/run/r2", "develop")).toBe(develop);
    expect(await s.ws.ensureRunBranch(repo, "001-add-user-auth", "develop")).toBe(main);
    expect(sh(user, "symbolic-ref", "--short", "HEAD")).toBe("main");
    expect(sh(user, "status", "--porcelain")).toBe("");

    const invalid = await rejection(s.ws.ensureRunBranch(repo, "bad..name"));
    expect(invalid).toBeInstanceOf(InvalidBranchNameError);
    expect((invalid as InvalidBranchNameError).code).toBe("WORKSPACE_INVALID_BRANCH");
    expect(await rejection(s.ws.ensureRunBranch(repo, "@{-1}"))).toBeInstanceOf(InvalidBranchNameError);
    expect(await rejection(s.ws.ensureRunBranch(repo, sessionBranch("x")))).toBeInstanceOf(InvalidBranchNameError);
    const missing = await rejection(s.ws.ensureRunBranch(repo, "orch/run/r3", "no-such-branch"));
    expect(missing).toBeInstanceOf(BaseNotFoundError);
    expect(branches(repo, "orch/run/r3")).toEqual([]);
  });
});

describe("WorkspaceManager: sessions", () => {
  it("runs two sessions in sequence: the second sees the first's commit", async () => {
    const s = setup();
    const r = await run(s);
    const one = await s.ws.createSessionWorktree({ ...r, sessionId: "s1" });
    expect(one).toEqual({
      repo: r.repo,
      path: join(s.workspace, "worktrees", "p", "s1"),
      branch: "orch/session/s1",
      base: sh(r.repo, "rev-parse", r.runBranch),
      runBranch: r.runBranch,
    });
    writeFileSync(join(one.path, "first.txt"), "one\n");
    const c1 = await s.ws.commitAll(one, "step one");
    expect(c1?.files).toEqual([{ path: "first.txt", change: "add" }]);
    expect(sh(one.path, "log", "-1", "--format=%an <%ae>")).toBe("Orchestrator Test <orch@test.invalid>");
    expect(await s.ws.integrate(one)).toBe(c1?.sha);
    expect(sh(r.repo, "rev-parse", r.runBranch)).toBe(c1?.sha);
    expect(await s.ws.cleanup(one, { success: true })).toEqual({ worktreeRemoved: true, branchDeleted: true });
    expect(existsSync(one.path)).toBe(false);
    expect(branches(r.repo, "orch/session/*")).toEqual([]);

    const two = await s.ws.createSessionWorktree({ ...r, sessionId: "s2" });
    expect(two.base).toBe(c1?.sha);
    expect(readFileSync(join(two.path, "first.txt"), "utf8")).toBe("one\n");
    writeFileSync(join(two.path, "first.txt"), "one, then two\n");
    const c2 = await s.ws.commitAll(two, "step two");
    expect(await s.ws.integrate(two)).toBe(c2?.sha);
    expect(sh(r.repo, "rev-list", "--count", r.runBranch)).toBe("3");
    // The scratch repository's own checkout never moved.
    expect(sh(r.repo, "symbolic-ref", "--short", "HEAD")).toBe("main");
    expect(sh(r.repo, "rev-list", "--count", "main")).toBe("1");
  });

  it("merges two parallel sessions touching different files", async () => {
    const s = setup();
    const r = await run(s);
    const start = sh(r.repo, "rev-parse", r.runBranch);
    const a = await s.ws.createSessionWorktree({ ...r, sessionId: "a" });
    const b = await s.ws.createSessionWorktree({ ...r, sessionId: "b" });
    writeFileSync(join(a.path, "a.txt"), "a\n");
    writeFileSync(join(b.path, "b.txt"), "b\n");
    const ca = await s.ws.commitAll(a, "a");
    const cb = await s.ws.commitAll(b, "b");
    expect(await s.ws.integrate(a)).toBe(ca?.sha);
    const merged = await s.ws.integrate(b);
    expect(merged).not.toBe(cb?.sha);
    expect(sh(r.repo, "rev-parse", r.runBranch)).toBe(merged);
    expect(sh(r.repo, "log", "-1", "--format=%P", merged)).toBe(`${ca?.sha} ${cb?.sha}`);
    expect(sh(r.repo, "log", "-1", "--format=%s|%an", merged)).toBe(`Merge orch/session/b into ${r.runBranch}|Orchestrator Test`);
    expect(tree(r.repo, r.runBranch)).toEqual(["a.txt", "b.txt"]);
    expect(sh(r.repo, "merge-base", start, merged)).toBe(start);
    // Integrating again changes nothing.
    expect(await s.ws.integrate(b)).toBe(merged);
    for (const w of [a, b]) expect((await s.ws.cleanup(w, { success: true })).branchDeleted).toBe(true);
  });

  it("reports conflicting parallel sessions as WORKSPACE_CONFLICT and leaves the run branch alone", async () => {
    const s = setup();
    const r = await run(s);
    const seed = await s.ws.createSessionWorktree({ ...r, sessionId: "seed" });
    writeFileSync(join(seed.path, "shared.txt"), "base\n");
    await s.ws.commitAll(seed, "seed");
    await s.ws.integrate(seed);
    await s.ws.cleanup(seed, { success: true });

    const a = await s.ws.createSessionWorktree({ ...r, sessionId: "a" });
    const b = await s.ws.createSessionWorktree({ ...r, sessionId: "b" });
    writeFileSync(join(a.path, "shared.txt"), "from a\n");
    writeFileSync(join(b.path, "shared.txt"), "from b\n");
    writeFileSync(join(b.path, "other.txt"), "fine\n");
    await s.ws.commitAll(a, "a");
    await s.ws.commitAll(b, "b");
    const head = await s.ws.integrate(a);
    const e = await rejection(s.ws.integrate(b));
    expect(e).toBeInstanceOf(WorkspaceConflictError);
    expect((e as WorkspaceConflictError).code).toBe("WORKSPACE_CONFLICT");
    expect((e as WorkspaceConflictError).files).toEqual(["shared.txt"]);
    expect(e.message).toContain("shared.txt");
    expect(sh(r.repo, "rev-parse", r.runBranch)).toBe(head);
    expect(readFileSync(join(b.path, "shared.txt"), "utf8")).toBe("from b\n");
    expect(sh(b.path, "status", "--porcelain")).toBe("");
  });

  it("commits adds, modifications and deletions, and nothing when the worktree is clean", async () => {
    const s = setup();
    const r = await run(s);
    const seed = await s.ws.createSessionWorktree({ ...r, sessionId: "seed" });
    expect(await s.ws.commitAll(seed, "nothing yet")).toBeNull();
    writeFileSync(join(seed.path, "keep.txt"), "keep\n");
    writeFileSync(join(seed.path, "gone.txt"), "gone\n");
    writeFileSync(join(seed.path, ".gitignore"), "ignored/\n");
    await s.ws.commitAll(seed, "seed");
    await s.ws.integrate(seed);
    await s.ws.cleanup(seed, { success: true });

    const w = await s.ws.createSessionWorktree({ ...r, sessionId: "w" });
    writeFileSync(join(w.path, "keep.txt"), "changed\n");
    rmSync(join(w.path, "gone.txt"));
    mkdirSync(join(w.path, "src", "deep"), { recursive: true });
    writeFileSync(join(w.path, "src", "deep", "new.ts"), "export {};\n");
    mkdirSync(join(w.path, "ignored"));
    writeFileSync(join(w.path, "ignored", "cache.bin"), "x");
    const c = await s.ws.commitAll(w, "work");
    expect(c?.sha).toBe(sh(w.path, "rev-parse", "HEAD"));
    expect(sh(w.path, "rev-parse", `${c?.sha}^`)).toBe(w.base);
    expect(c?.files.sort((x, y) => x.path.localeCompare(y.path))).toEqual([
      { path: "gone.txt", change: "delete" },
      { path: "keep.txt", change: "modify" },
      { path: "src/deep/new.ts", change: "add" },
    ]);
    expect(await s.ws.commitAll(w, "again")).toBeNull();

    sh(w.path, "checkout", "-q", "-b", "elsewhere");
    writeFileSync(join(w.path, "lost.txt"), "x\n");
    const wrong = await rejection(s.ws.commitAll(w, "on the wrong branch"));
    expect(wrong).toBeInstanceOf(WrongBranchError);
    expect((wrong as WrongBranchError).code).toBe("WORKSPACE_WRONG_BRANCH");
  });

  it("cleans up a failed session: keeps the worktree when asked, keeps an unmerged branch whose deletion needs the flag", async () => {
    const s = setup();
    const r = await run(s);
    const kept = await s.ws.createSessionWorktree({ ...r, sessionId: "kept" });
    writeFileSync(join(kept.path, "half.txt"), "half\n");
    await s.ws.commitAll(kept, "half done");
    expect(await s.ws.cleanup(kept, { success: false, keepFailed: true })).toEqual({ worktreeRemoved: false, branchDeleted: false });
    expect(readFileSync(join(kept.path, "half.txt"), "utf8")).toBe("half\n");
    expect(branches(r.repo, "orch/session/kept")).toEqual(["orch/session/kept"]);

    const failed = await s.ws.createSessionWorktree({ ...r, sessionId: "failed" });
    writeFileSync(join(failed.path, "wip.txt"), "wip\n");
    await s.ws.commitAll(failed, "wip");
    expect(await s.ws.cleanup(failed, { success: false })).toEqual({ worktreeRemoved: true, branchDeleted: false });
    expect(existsSync(failed.path)).toBe(false);
    expect(branches(r.repo, "orch/session/failed")).toEqual(["orch/session/failed"]);
    const refused = await rejection(s.git.deleteBranch(r.repo, failed.branch, { target: r.runBranch }));
    expect(refused).toBeInstanceOf(UnmergedBranchDeleteRefusedError);
    expect(branches(r.repo, "orch/session/failed")).toEqual(["orch/session/failed"]);
    expect(await cli({ allowDeleteUnmergedBranches: true }).deleteBranch(r.repo, failed.branch, { target: r.runBranch })).toBe(true);
    expect(branches(r.repo, "orch/session/failed")).toEqual([]);

    // A failed session that committed nothing leaves nothing behind.
    const empty = await s.ws.createSessionWorktree({ ...r, sessionId: "empty" });
    expect(await s.ws.cleanup(empty, { success: false })).toEqual({ worktreeRemoved: true, branchDeleted: true });
  });

  it("keeps failed worktrees by configuration, and removes one with uncommitted changes only with destructive automation", async () => {
    const keeping = setup({ ORCH_KEEP_FAILED_WORKTREES: "true" });
    const kr = await run(keeping);
    const kw = await keeping.ws.createSessionWorktree({ ...kr, sessionId: "k" });
    expect((await keeping.ws.cleanup(kw, { success: false })).worktreeRemoved).toBe(false);
    expect(existsSync(kw.path)).toBe(true);

    const s = setup();
    const r = await run(s);
    const dirty = await s.ws.createSessionWorktree({ ...r, sessionId: "dirty" });
    writeFileSync(join(dirty.path, "uncommitted.txt"), "work\n");
    const refused = await rejection(s.ws.cleanup(dirty, { success: false }));
    expect(refused).toBeInstanceOf(DestructiveOperationRefusedError);
    expect(readFileSync(join(dirty.path, "uncommitted.txt"), "utf8")).toBe("work\n");

    const destructive = new WorkspaceManager(loadConfig(AgentHubConfig, { ORCH_WORKSPACE: s.workspace }), cli({ allowDestructiveAutomation: true }), logger);
    expect(await destructive.cleanup(dirty, { success: false })).toEqual({ worktreeRemoved: true, branchDeleted: true });
    expect(existsSync(dirty.path)).toBe(false);
  });

  it("is idempotent per session id: recreates an empty leftover, reuses one holding work, survives a vanished directory", async () => {
    const s = setup();
    const r = await run(s);
    const first = await s.ws.createSessionWorktree({ ...r, sessionId: "again" });
    // The run branch moves on while the empty leftover waits: the retry starts from the new head.
    const other = await s.ws.createSessionWorktree({ ...r, sessionId: "other" });
    writeFileSync(join(other.path, "other.txt"), "o\n");
    await s.ws.commitAll(other, "other");
    const moved = await s.ws.integrate(other);
    const retried = await s.ws.createSessionWorktree({ ...r, sessionId: "again" });
    expect(retried.path).toBe(first.path);
    expect(retried.base).toBe(moved);
    expect(existsSync(join(retried.path, "other.txt"))).toBe(true);

    writeFileSync(join(retried.path, "partial.txt"), "partial\n");
    const reused = await s.ws.createSessionWorktree({ ...r, sessionId: "again" });
    expect(reused).toEqual(retried);
    expect(readFileSync(join(reused.path, "partial.txt"), "utf8")).toBe("partial\n");
    await s.ws.commitAll(reused, "partial");

    rmSync(reused.path, { recursive: true, force: true });
    const rebuilt = await s.ws.createSessionWorktree({ ...r, sessionId: "again" });
    expect(readFileSync(join(rebuilt.path, "partial.txt"), "utf8")).toBe("partial\n");
    expect(rebuilt.base).toBe(moved);
    expect((await s.git.worktreeList(r.repo)).filter((w) => w.path === rebuilt.path)).toHaveLength(1);
  });

  it("refuses a run branch that is checked out in the user's checkout, before and at integration", async () => {
    const s = setup();
    const user = userRepo();
    const repo = await s.ws.repoFor(project({ localPath: user }), "p");
    await s.ws.ensureRunBranch(repo, "002-feature");
    const w = await s.ws.createSessionWorktree({ repo, runBranch: "002-feature", sessionId: "s", projectId: "p" });
    writeFileSync(join(w.path, "x.txt"), "x\n");
    await s.ws.commitAll(w, "x");

    sh(user, "checkout", "-q", "002-feature");
    const head = sh(user, "rev-parse", "HEAD");
    const e = await rejection(s.ws.integrate(w));
    expect(e).toBeInstanceOf(RunBranchCheckedOutError);
    expect((e as RunBranchCheckedOutError).code).toBe("WORKSPACE_RUN_BRANCH_CHECKED_OUT");
    expect(e.message).toContain(user);
    expect(sh(user, "rev-parse", "HEAD")).toBe(head);
    expect(existsSync(join(user, "x.txt"))).toBe(false);
    expect(await rejection(s.ws.createSessionWorktree({ repo, runBranch: "002-feature", sessionId: "t", projectId: "p" }))).toBeInstanceOf(
      RunBranchCheckedOutError,
    );

    sh(user, "checkout", "-q", "main");
    expect(await s.ws.integrate(w)).toBe(sh(w.path, "rev-parse", "HEAD"));
    expect(await rejection(s.ws.createSessionWorktree({ repo, runBranch: "003-missing", sessionId: "u", projectId: "p" }))).toBeInstanceOf(BranchMissingError);
  });

  it("retries the compare-and-set when another process moves the run branch during integration", async () => {
    let raced = false;
    let outsider = "";
    class RacingGit extends GitCli {
      override async updateRef(cwd: string, ref: string, next: string, expected: string | null, reason?: string): Promise<void> {
        if (!raced && ref === "refs/heads/001-add-user-auth" && expected !== null) {
          raced = true;
          // Another process commits onto the run branch between our read and our write.
          const tree = sh(cwd, "mktree");
          outsider = sh(cwd, "commit-tree", tree, "-p", expected, "-m", "outsider");
          sh(cwd, "update-ref", ref, outsider, expected);
        }
        return super.updateRef(cwd, ref, next, expected, reason);
      }
    }
    const s = setup({}, {}, new RacingGit({ authorName: "Orchestrator Test", authorEmail: "orch@test.invalid", env: HERMETIC }));
    const r = await run(s);
    const w = await s.ws.createSessionWorktree({ ...r, sessionId: "s" });
    writeFileSync(join(w.path, "mine.txt"), "mine\n");
    const c = await s.ws.commitAll(w, "mine");
    const head = await s.ws.integrate(w);
    expect(raced).toBe(true);
    expect(sh(r.repo, "log", "-1", "--format=%P", head)).toBe(`${outsider} ${c?.sha}`);
    expect(tree(r.repo, r.runBranch)).toEqual(["mine.txt"]);
  });

  it("serialises concurrent sessions: eight at once are all integrated", async () => {
    const s = setup();
    const r = await run(s);
    const ids = Array.from({ length: 8 }, (_, i) => `c${i}`);
    const heads = await Promise.all(
      ids.map(async (id) => {
        const w = await s.ws.createSessionWorktree({ ...r, sessionId: id });
        writeFileSync(join(w.path, `${id}.txt`), `${id}\n`);
        const c = await s.ws.commitAll(w, `session ${id}`);
        const head = await s.ws.integrate(w);
        const cleaned = await s.ws.cleanup(w, { success: true });
        expect(cleaned).toEqual({ worktreeRemoved: true, branchDeleted: true });
        return { id, sha: c?.sha, head };
      }),
    );
    expect(tree(r.repo, r.runBranch)).toEqual(ids.map((id) => `${id}.txt`).sort());
    for (const h of heads) expect(sh(r.repo, "merge-base", "--is-ancestor", h.sha ?? "", r.runBranch)).toBe("");
    expect(branches(r.repo, "orch/session/*")).toEqual([]);
    expect((await s.git.worktreeList(r.repo)).map((w) => w.path)).toEqual([r.repo]);
  });

  it("recovers after a crash: prunes vanished worktrees and removes half-made repositories", async () => {
    const s = setup();
    const r = await run(s);
    const w = await s.ws.createSessionWorktree({ ...r, sessionId: "crashed" });
    rmSync(w.path, { recursive: true, force: true });
    const half = join(s.workspace, "repos", "q.tmp-deadbeef");
    mkdirSync(half);
    const fresh = new WorkspaceManager(loadConfig(AgentHubConfig, { ORCH_WORKSPACE: s.workspace }), s.git, logger);
    const report = await fresh.recover();
    expect(report.repos).toEqual([r.repo]);
    expect(report.pruned).toEqual([w.path]);
    expect(report.removed).toEqual([half]);
    expect(existsSync(half)).toBe(false);
    expect((await s.git.worktreeList(r.repo)).map((x) => x.path)).toEqual([r.repo]);
    const again = await fresh.createSessionWorktree({ ...r, sessionId: "crashed" });
    expect(existsSync(join(again.path, ".git"))).toBe(true);
  });
});
