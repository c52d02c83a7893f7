import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AgentHubConfig, loadConfig } from "@orch/config";
import {
  DestructiveOperationRefusedError,
  ForcePushRefusedError,
  GitCli,
  type GitCliOptions,
  GitCommandError,
  GitInvalidArgumentError,
  GitLockedError,
  GitNotFoundError,
  GitOutputLimitError,
  GitRefConflictError,
  GitTimeoutError,
  type GitPolicy,
  UnmergedBranchDeleteRefusedError,
  redactCredentials,
} from "../src/git/index.js";

/** No user or system git configuration: the tests see git's defaults only. */
const HERMETIC = { GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" };
const ID = {
  GIT_AUTHOR_NAME: "Someone Else",
  GIT_AUTHOR_EMAIL: "else@example.test",
  GIT_COMMITTER_NAME: "Someone Else",
  GIT_COMMITTER_EMAIL: "else@example.test",
};
const tmp = mkdtempSync(join(tmpdir(), "orch-git-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
const dir = (name: string): string => join(tmp, `${name}-${++n}`);
const cli = (policy: Partial<GitPolicy> = {}, extra: Partial<GitCliOptions> = {}) =>
  new GitCli({ authorName: "Orchestrator Test", authorEmail: "orch@test.invalid", policy, env: HERMETIC, ...extra });

/** Plain git, as a user (or another process) would run it. */
function sh(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, env: { ...process.env, ...HERMETIC, ...ID }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** A repository on `main` with one commit holding `a.txt` and `b.txt`. */
async function repo(): Promise<string> {
  const d = dir("repo");
  const git = cli();
  await git.init(d, { initialBranch: "main" });
  writeFileSync(join(d, "a.txt"), "a\n");
  writeFileSync(join(d, "b.txt"), "b\n");
  await git.addAll(d);
  await git.commit(d, "initial");
  return d;
}

function commitFile(cwd: string, file: string, content: string): string {
  writeFileSync(join(cwd, file), content);
  sh(cwd, "add", "-A");
  sh(cwd, "commit", "-q", "-m", `write ${file}`);
  return sh(cwd, "rev-parse", "HEAD");
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

describe("GitCli", () => {
  it("commits as the configured identity, and reports nothing to commit as null", async () => {
    const d = await repo();
    const git = cli();
    expect(sh(d, "log", "-1", "--format=%an <%ae>|%cn <%ce>")).toBe("Orchestrator Test <orch@test.invalid>|Orchestrator Test <orch@test.invalid>");
    expect(await git.commit(d, "nothing")).toBeNull();
    expect(await git.status(d)).toEqual([]);
  });

  it("takes the binary, identity and safety flags from the agent hub's configuration", () => {
    const cfg = loadConfig(AgentHubConfig, { ORCH_GIT_BINARY: "/opt/git/bin/git", ORCH_GIT_AUTHOR_NAME: "Bot", ORCH_GIT_ALLOW_FORCE_PUSH: "true" });
    const git = GitCli.fromConfig(cfg);
    expect(git.binary).toBe("/opt/git/bin/git");
    expect(git.policy).toEqual({ allowForcePush: true, allowDeleteUnmergedBranches: false, allowDestructiveAutomation: false });
    expect(GitCli.fromConfig(loadConfig(AgentHubConfig, {})).policy).toEqual({
      allowForcePush: false,
      allowDeleteUnmergedBranches: false,
      allowDestructiveAutomation: false,
    });
  });

  it("lists status, commits adds, modifications and deletions, and diffs them by name", async () => {
    const d = await repo();
    const git = cli();
    const before = await git.revParse(d, "HEAD");
    writeFileSync(join(d, "a.txt"), "changed\n");
    rmSync(join(d, "b.txt"));
    mkdirSync(join(d, "dir"));
    writeFileSync(join(d, "dir", "new file.txt"), "new\n");
    const status = await git.status(d);
    expect(status.map((s) => s.path).sort()).toEqual(["a.txt", "b.txt", "dir/new file.txt"]);
    await git.addAll(d);
    const sha = await git.commit(d, "change things");
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    expect(await git.revParse(d, "HEAD")).toBe(sha);
    const files = await git.diffNameStatus(d, before, sha!);
    expect(files.sort((x, y) => x.path.localeCompare(y.path))).toEqual([
      { path: "a.txt", change: "modify" },
      { path: "b.txt", change: "delete" },
      { path: "dir/new file.txt", change: "add" },
    ]);
    expect(await git.isAncestor(d, before, sha!)).toBe(true);
    expect(await git.isAncestor(d, sha!, before)).toBe(false);
  });

  it("merges two commits without a working tree: a clean tree, or the conflicting files", async () => {
    const d = await repo();
    const git = cli();
    const base = sh(d, "rev-parse", "HEAD");
    sh(d, "checkout", "-q", "-b", "left");
    const left = commitFile(d, "a.txt", "left\n");
    sh(d, "checkout", "-q", "-b", "right", base);
    const right = commitFile(d, "c.txt", "right\n");
    const clean = await git.mergeTree(d, left, right);
    expect(clean.clean).toBe(true);
    const merge = await git.commitTree(d, clean.tree, [left, right], "merge");
    expect(sh(d, "log", "-1", "--format=%P", merge)).toBe(`${left} ${right}`);
    expect(sh(d, "ls-tree", "--name-only", merge).split("\n").sort()).toEqual(["a.txt", "b.txt", "c.txt"]);
    sh(d, "checkout", "-q", "-b", "other", base);
    const other = commitFile(d, "a.txt", "other\n");
    const conflict = await git.mergeTree(d, left, other);
    expect(conflict).toMatchObject({ clean: false, conflicts: ["a.txt"] });
  });

  it("updates refs by compare-and-set only", async () => {
    const d = await repo();
    const git = cli();
    const first = sh(d, "rev-parse", "HEAD");
    const second = commitFile(d, "c.txt", "c\n");
    await git.updateRef(d, "refs/heads/run", first, null);
    const stale = await rejection(git.updateRef(d, "refs/heads/run", second, second));
    expect(stale).toBeInstanceOf(GitRefConflictError);
    expect((stale as GitRefConflictError).code).toBe("GIT_REF_CONFLICT");
    expect(await rejection(git.updateRef(d, "refs/heads/run", second, null))).toBeInstanceOf(GitRefConflictError);
    await git.updateRef(d, "refs/heads/run", second, first);
    expect(sh(d, "rev-parse", "run")).toBe(second);
  });

  it("validates branch names with check-ref-format and refuses option-like arguments", async () => {
    const d = await repo();
    const git = cli();
    expect(await git.isValidBranchName(d, "001-add-user-auth")).toBe(true);
    expect(await git.isValidBranchName(d, "orch/run/r-1")).toBe(true);
    for (const bad of ["a..b", "-x", "@{-1}", "HEAD", "with space", "trailing/", ""]) expect(await git.isValidBranchName(d, bad), bad).toBe(false);
    const e = await rejection(git.createBranch(d, "--upload-pack=touch pwned", "HEAD"));
    expect(e).toBeInstanceOf(GitInvalidArgumentError);
    expect(existsSync(join(d, "pwned"))).toBe(false);
  });

  it("ignores GIT_DIR and friends from its own environment", async () => {
    const d = await repo();
    const other = await repo();
    const saved = process.env.GIT_DIR;
    process.env.GIT_DIR = join(other, ".git");
    try {
      const git = cli();
      writeFileSync(join(d, "only-here.txt"), "x\n");
      expect((await git.status(d)).map((s) => s.path)).toEqual(["only-here.txt"]);
    } finally {
      if (saved === undefined) delete process.env.GIT_DIR;
      else process.env.GIT_DIR = saved;
    }
  });

  it("runs no hooks", async () => {
    const d = await repo();
    const git = cli();
    for (const hook of ["pre-commit", "commit-msg", "post-commit", "post-checkout"]) {
      writeFileSync(join(d, ".git", "hooks", hook), `#!/bin/sh\necho ran >> "${join(d, ".git", "hook-ran")}"\nexit 1\n`);
      chmodSync(join(d, ".git", "hooks", hook), 0o755);
    }
    writeFileSync(join(d, "c.txt"), "c\n");
    await git.addAll(d);
    expect(await git.commit(d, "with hooks present")).toMatch(/^[0-9a-f]{40}$/);
    await git.worktreeAdd(d, dir("wt"), { branch: "w", startPoint: "HEAD" });
    expect(existsSync(join(d, ".git", "hook-ran"))).toBe(false);
  });

  describe("safety flags", () => {
    it("refuses a force push unless allow_force_push, and then force-pushes", async () => {
      const remote = dir("remote.git");
      sh(tmp, "init", "-q", "--bare", "-b", "main", remote);
      const d = await repo();
      const base = sh(d, "rev-parse", "HEAD");
      const pushed = commitFile(d, "c.txt", "c\n");
      await cli().push(d, remote, ["main:main"]);
      expect(sh(remote, "rev-parse", "main")).toBe(pushed);
      sh(d, "checkout", "-q", "-b", "rewritten", base);
      const rewritten = commitFile(d, "d.txt", "d\n");

      expect(await rejection(cli().push(d, remote, ["rewritten:main"]))).toBeInstanceOf(GitCommandError);
      const refused = await rejection(cli().push(d, remote, ["rewritten:main"], { force: true }));
      expect(refused).toBeInstanceOf(ForcePushRefusedError);
      expect((refused as ForcePushRefusedError).code).toBe("GIT_FORCE_PUSH_REFUSED");
      expect(refused.message).toMatch(/ORCH_GIT_ALLOW_FORCE_PUSH/);
      expect(await rejection(cli().push(d, remote, ["+rewritten:main"]))).toBeInstanceOf(ForcePushRefusedError);
      expect(await rejection(cli({ allowForcePush: true }).push(d, remote, [":main"]))).toBeInstanceOf(GitInvalidArgumentError);
      expect(sh(remote, "rev-parse", "main")).toBe(pushed);

      await cli({ allowForcePush: true }).push(d, remote, ["rewritten:main"], { force: true });
      expect(sh(remote, "rev-parse", "main")).toBe(rewritten);
    });

    it("deletes merged branches, and unmerged ones only with allow_delete_unmerged_branches", async () => {
      const d = await repo();
      sh(d, "branch", "merged");
      sh(d, "checkout", "-q", "-b", "unmerged");
      commitFile(d, "c.txt", "c\n");
      sh(d, "checkout", "-q", "main");

      expect(await cli().deleteBranch(d, "merged", { target: "main" })).toBe(true);
      expect(sh(d, "branch", "--list", "merged")).toBe("");
      const refused = await rejection(cli().deleteBranch(d, "unmerged", { target: "main" }));
      expect(refused).toBeInstanceOf(UnmergedBranchDeleteRefusedError);
      expect((refused as UnmergedBranchDeleteRefusedError).code).toBe("GIT_DELETE_UNMERGED_REFUSED");
      expect(sh(d, "branch", "--list", "unmerged")).not.toBe("");
      expect(await cli({ allowDeleteUnmergedBranches: true }).deleteBranch(d, "unmerged", { target: "main" })).toBe(true);
      expect(sh(d, "branch", "--list", "unmerged")).toBe("");
      expect(await cli().deleteBranch(d, "unmerged", { target: "main" })).toBe(false);
    });

    it("removes a clean worktree, and one with uncommitted changes only with allow_destructive_automation", async () => {
      const d = await repo();
      const clean = dir("clean");
      const dirty = dir("dirty");
      await cli().worktreeAdd(d, clean, { branch: "clean", startPoint: "main" });
      await cli().worktreeAdd(d, dirty, { branch: "dirty", startPoint: "main" });
      await cli().worktreeRemove(d, clean);
      expect(existsSync(clean)).toBe(false);

      writeFileSync(join(dirty, "untracked.txt"), "work\n");
      const refused = await rejection(cli().worktreeRemove(d, dirty));
      expect(refused).toBeInstanceOf(DestructiveOperationRefusedError);
      expect((refused as DestructiveOperationRefusedError).code).toBe("GIT_DESTRUCTIVE_REFUSED");
      expect(refused.message).toMatch(/untracked\.txt/);
      expect(readFileSync(join(dirty, "untracked.txt"), "utf8")).toBe("work\n");

      await cli({ allowDestructiveAutomation: true }).worktreeRemove(d, dirty);
      expect(existsSync(dirty)).toBe(false);
      expect((await cli().worktreeList(d)).map((w) => w.branch)).toEqual(["refs/heads/main"]);
    });

    it("refuses reset --hard, clean and a non-fast-forward ref update unless allow_destructive_automation", async () => {
      const d = await repo();
      const base = sh(d, "rev-parse", "HEAD");
      const next = commitFile(d, "c.txt", "c\n");
      writeFileSync(join(d, "a.txt"), "uncommitted\n");
      writeFileSync(join(d, "untracked.txt"), "untracked\n");

      expect(await rejection(cli().resetHard(d, "HEAD"))).toBeInstanceOf(DestructiveOperationRefusedError);
      expect(await rejection(cli().clean(d))).toBeInstanceOf(DestructiveOperationRefusedError);
      expect(await rejection(cli().updateRef(d, "refs/heads/main", base, next))).toBeInstanceOf(DestructiveOperationRefusedError);
      expect(readFileSync(join(d, "a.txt"), "utf8")).toBe("uncommitted\n");
      expect(existsSync(join(d, "untracked.txt"))).toBe(true);
      expect(sh(d, "rev-parse", "main")).toBe(next);

      const destructive = cli({ allowDestructiveAutomation: true });
      await destructive.resetHard(d, "HEAD");
      await destructive.clean(d);
      expect(readFileSync(join(d, "a.txt"), "utf8")).toBe("a\n");
      expect(existsSync(join(d, "untracked.txt"))).toBe(false);
      sh(d, "checkout", "-q", "--detach");
      await destructive.updateRef(d, "refs/heads/main", base, next);
      expect(sh(d, "rev-parse", "main")).toBe(base);
    });
  });

  describe("failures", () => {
    it("redacts credentials in URLs", () => {
      expect(redactCredentials("fatal: unable to access 'https://alice:ghp_s3cret@example.com/o/r.git/': refused")).toBe(
        "fatal: unable to access 'https://***@example.com/o/r.git/': refused",
      );
      expect(redactCredentials("https://x-access-token:p@ss@host/r and http://tok@h/")).toBe("https://***@host/r and http://***@h/");
      expect(redactCredentials("git@github.com:o/r.git and /a/b")).toBe("git@github.com:o/r.git and /a/b");
    });

    it("never puts a URL's token into an error", async () => {
      const url = "https://alice:s3cr3t-t0ken@127.0.0.1:9/o/r.git";
      const e = await rejection(cli().clone(url, dir("clone")));
      expect(e).toBeInstanceOf(GitCommandError);
      const ce = e as GitCommandError;
      expect(ce.code).toBe("GIT_COMMAND_FAILED");
      for (const text of [ce.message, ce.stderr, ce.command, JSON.stringify(ce), String(ce.stack)]) expect(text).not.toContain("s3cr3t");
      expect(ce.message).toContain("https://***@127.0.0.1:9/o/r.git");

      const d = await repo();
      const push = await rejection(cli().push(d, url, ["main:main"], { force: true }));
      expect(push).toBeInstanceOf(ForcePushRefusedError);
      expect(push.message).not.toContain("s3cr3t");
      const nul = await rejection(cli().clone(`${url}\0`, dir("clone")));
      expect(nul).toBeInstanceOf(GitInvalidArgumentError);
      expect(nul.message).not.toContain("s3cr3t");
    });

    it("retries while another process holds a lock, and gives up with GitLockedError", async () => {
      const d = await repo();
      writeFileSync(join(d, "c.txt"), "c\n");
      const lock = join(d, ".git", "index.lock");
      writeFileSync(lock, "");
      setTimeout(() => rmSync(lock), 150);
      await cli().addAll(d);
      expect((await cli().status(d)).map((s) => `${s.x}${s.y} ${s.path}`)).toEqual(["A  c.txt"]);

      writeFileSync(lock, "");
      const e = await rejection(cli({}, { lockRetries: 2 }).addAll(d));
      expect(e).toBeInstanceOf(GitLockedError);
      expect((e as GitLockedError).code).toBe("GIT_LOCKED");
      expect(e.message).toMatch(/index\.lock/);
      rmSync(lock);
    });

    it("kills a command that outlives its timeout, or prints more than the cap", async () => {
      const slow = join(tmp, "slow-git.sh");
      // The child `sleep` holds stdout open: only killing the whole process group ends the wait
      // before the test's own timeout.
      writeFileSync(slow, "#!/bin/sh\nsleep 120\n");
      chmodSync(slow, 0o755);
      const t = await rejection(cli({}, { binary: slow, timeoutMs: 200 }).version());
      expect(t).toBeInstanceOf(GitTimeoutError);
      expect((t as GitTimeoutError).code).toBe("GIT_TIMEOUT");

      const loud = join(tmp, "loud-git.sh");
      writeFileSync(loud, "#!/bin/sh\nhead -c 1000000 /dev/zero\n");
      chmodSync(loud, 0o755);
      const o = await rejection(cli({}, { binary: loud, maxOutputBytes: 1_000 }).version());
      expect(o).toBeInstanceOf(GitOutputLimitError);
      expect((o as GitOutputLimitError).code).toBe("GIT_OUTPUT_LIMIT");
    });

    it("tells a missing binary from a failing command", async () => {
      const e = await rejection(cli({}, { binary: join(tmp, "no-such-git") }).version());
      expect(e).toBeInstanceOf(GitNotFoundError);
      expect((e as GitNotFoundError).code).toBe("GIT_NOT_FOUND");
      const f = await rejection(cli().status(join(tmp, "no-such-dir")));
      expect(f).toBeInstanceOf(GitCommandError);
      expect(f.message).toMatch(/does not exist/);
      const g = await rejection(cli().revParse(tmp, "HEAD"));
      expect(g).toBeInstanceOf(GitCommandError);
      expect(g.message).toMatch(/^git rev-parse .*not a git repository/s);
    });
  });
});
