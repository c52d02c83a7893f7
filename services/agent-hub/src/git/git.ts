import { type ChildProcessByStdio, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Readable, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { AgentHubConfig } from "@orch/config";
import {
  DestructiveOperationRefusedError,
  ForcePushRefusedError,
  GitCommandError,
  type GitCommandInfo,
  type GitError,
  GitInvalidArgumentError,
  GitLockedError,
  GitNotFoundError,
  GitOutputLimitError,
  GitRefConflictError,
  GitTimeoutError,
  UnmergedBranchDeleteRefusedError,
  describeCommand,
  redactCredentials,
} from "./errors.js";

/**
 * The git CLI, as the agent hub uses it (seed 003's `vcs.git_cli`). Every operation is a typed
 * method that runs the binary with an argv array (never a shell), in a given directory, with a
 * timeout and an output cap. There is deliberately no "run these arguments" method: the `[git]`
 * safety flags are enforced here, in the operations that could lose work, so no caller can go
 * around them:
 *
 * - `push` with force (or a `+` refspec) needs `allowForcePush`;
 * - `deleteBranch` (and `deleteRemoteBranch`) of a branch not merged into its target needs
 *   `allowDeleteUnmergedBranches`;
 * - `worktreeRemove` of a worktree with uncommitted changes, `resetHard`, `clean`, and an
 *   `updateRef` that is not a fast-forward need `allowDestructiveAutomation`.
 *
 * Every command runs with `GIT_TERMINAL_PROMPT=0` (a missing credential fails instead of waiting
 * for a terminal), no pager, the C locale (messages are matched), the configured author and
 * committer, and:
 * - no hooks (`core.hooksPath=/dev/null`, `commit --no-verify`): the hub's commits are mechanical
 *   snapshots of an agent's work; a project's hooks (formatters, linters, husky installs) are for
 *   humans and belong to the review and test phases, and may prompt or hang;
 * - no commit signing: the commits are the hub's, under its identity, not the user's;
 * - `gc.autoDetach=false`: an automatic gc runs inside the command that triggered it, where the
 *   workspace manager's mutex covers it, rather than in the background holding ref locks;
 * - `GIT_OPTIONAL_LOCKS=0`: `status` does not take `index.lock` to refresh stat data.
 *
 * A command that finds a `*.lock` held by another process is retried briefly with backoff.
 */

/** The `[git]` safety flags of seed 003; all off by default. */
export interface GitPolicy {
  allowForcePush: boolean;
  allowDeleteUnmergedBranches: boolean;
  allowDestructiveAutomation: boolean;
}

export interface GitCliOptions {
  /** `git` (from the PATH) when unset. */
  binary?: string;
  authorName: string;
  authorEmail: string;
  policy?: Partial<GitPolicy>;
  /** Local operations; 60 s when unset. */
  timeoutMs?: number;
  /** clone, fetch and push; 10 min when unset. */
  networkTimeoutMs?: number;
  /** Beyond this much stdout the command is killed; 16 MiB when unset. */
  maxOutputBytes?: number;
  /** Retries of a command that found a lock file held; 6 (about 1.5 s in all) when unset. */
  lockRetries?: number;
  /** Added to the environment (after ours): tests point `GIT_CONFIG_GLOBAL` at an empty file. */
  env?: Readonly<Record<string, string | undefined>>;
}

export type GitConfig = Pick<
  AgentHubConfig,
  | "ORCH_GIT_BINARY"
  | "ORCH_GIT_AUTHOR_NAME"
  | "ORCH_GIT_AUTHOR_EMAIL"
  | "ORCH_GIT_ALLOW_FORCE_PUSH"
  | "ORCH_GIT_ALLOW_DELETE_UNMERGED_BRANCHES"
  | "ORCH_GIT_ALLOW_DESTRUCTIVE_AUTOMATION"
>;

export interface WorktreeEntry {
  path: string;
  /** Null for a bare repository's entry. */
  head: string | null;
  /** The full ref (`refs/heads/…`) checked out there; null when detached or bare. */
  branch: string | null;
  bare: boolean;
  detached: boolean;
  /** The lock reason ("" when locked without one); null when not locked. */
  locked: string | null;
  /** Why git would prune the entry (its directory is gone); null when it is fine. */
  prunable: string | null;
}

/** One line of `git status --porcelain=v1`: `x` the index's side, `y` the working tree's. */
export interface StatusEntry {
  x: string;
  y: string;
  path: string;
  /** The original path of a rename or copy. */
  from?: string;
}

export type FileChange = "add" | "modify" | "delete";

export interface ChangedFile {
  path: string;
  change: FileChange;
}

/** A rebase or merge in a worktree: done, or abandoned for its conflicts (the worktree as it was before). */
export type BranchUpdateResult = { clean: true } | { clean: false; conflicts: string[]; message: string };

export type MergeTreeResult = { clean: true; tree: string } | { clean: false; tree: string; conflicts: string[] };

interface RunOptions {
  /** Exit codes that are answers rather than failures (`merge-base --is-ancestor` answers 1). */
  ok?: readonly number[];
  timeoutMs?: number;
  /** Added to this one command's environment (a push's askpass and the token it answers with). */
  env?: Readonly<Record<string, string>>;
  /** Written to the command's stdin (`patch-id` reads a diff there); stdin is empty when unset. */
  input?: string;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const GLOBAL_ARGS = ["--no-pager", "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgSign=false", "-c", "gc.autoDetach=false"];

/** Variables that would point git at another repository than the directory it runs in. */
const REPOSITORY_ENV = [
  "GIT_DIR",
  "GIT_WORK_TREE",
  "GIT_INDEX_FILE",
  "GIT_OBJECT_DIRECTORY",
  "GIT_ALTERNATE_OBJECT_DIRECTORIES",
  "GIT_COMMON_DIR",
  "GIT_NAMESPACE",
  "GIT_PREFIX",
];

const LOCK_CONTENTION = /Unable to create '[^']*\.lock': File exists|could not lock config file/;
const REF_CONFLICT = /but expected|reference already exists|unable to resolve reference/;
const NOT_A_REPOSITORY = /not a git repository/i;
const STDERR_CAP = 64 * 1024;
const REMOTE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Refuses a value git would read as an option (`--upload-pack=…` as a branch name, say). */
function arg(value: string, what: string): string {
  if (value === "" || value.startsWith("-")) throw new GitInvalidArgumentError(`invalid ${what}: ${JSON.stringify(redactCredentials(value))}`);
  return value;
}

function fields(stdout: string): string[] {
  const parts = stdout.split("\0");
  if (parts.at(-1) === "") parts.pop();
  return parts;
}

/** `<sha> refs/heads/<name>` lines (for-each-ref, ls-remote) as name → sha. */
function refHeads(stdout: string): Map<string, string> {
  const heads = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const [sha, ref] = line.trim().split(/\s+/);
    if (sha && ref?.startsWith("refs/heads/")) heads.set(ref.slice("refs/heads/".length), sha);
  }
  return heads;
}

export class GitCli {
  readonly binary: string;
  readonly policy: Readonly<GitPolicy>;
  readonly #env: NodeJS.ProcessEnv;
  readonly #timeoutMs: number;
  readonly #networkTimeoutMs: number;
  readonly #maxOutputBytes: number;
  readonly #lockRetries: number;

  constructor(opts: GitCliOptions) {
    this.binary = opts.binary ?? "git";
    this.policy = Object.freeze({
      allowForcePush: opts.policy?.allowForcePush ?? false,
      allowDeleteUnmergedBranches: opts.policy?.allowDeleteUnmergedBranches ?? false,
      allowDestructiveAutomation: opts.policy?.allowDestructiveAutomation ?? false,
    });
    this.#timeoutMs = opts.timeoutMs ?? 60_000;
    this.#networkTimeoutMs = opts.networkTimeoutMs ?? 600_000;
    this.#maxOutputBytes = opts.maxOutputBytes ?? 16 * 1024 * 1024;
    this.#lockRetries = opts.lockRetries ?? 6;
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of REPOSITORY_ENV) delete env[k];
    Object.assign(env, {
      GIT_TERMINAL_PROMPT: "0",
      GIT_PAGER: "cat",
      PAGER: "cat",
      LC_ALL: "C",
      LANGUAGE: "C",
      GIT_OPTIONAL_LOCKS: "0",
      GIT_AUTHOR_NAME: opts.authorName,
      GIT_AUTHOR_EMAIL: opts.authorEmail,
      GIT_COMMITTER_NAME: opts.authorName,
      GIT_COMMITTER_EMAIL: opts.authorEmail,
    });
    for (const [k, v] of Object.entries(opts.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    this.#env = env;
  }

  static fromConfig(cfg: GitConfig, extra: Omit<GitCliOptions, "binary" | "authorName" | "authorEmail" | "policy"> = {}): GitCli {
    return new GitCli({
      ...extra,
      binary: cfg.ORCH_GIT_BINARY,
      authorName: cfg.ORCH_GIT_AUTHOR_NAME,
      authorEmail: cfg.ORCH_GIT_AUTHOR_EMAIL,
      policy: {
        allowForcePush: cfg.ORCH_GIT_ALLOW_FORCE_PUSH,
        allowDeleteUnmergedBranches: cfg.ORCH_GIT_ALLOW_DELETE_UNMERGED_BRANCHES,
        allowDestructiveAutomation: cfg.ORCH_GIT_ALLOW_DESTRUCTIVE_AUTOMATION,
      },
    });
  }

  /** `2.39.5` from `git version 2.39.5`. */
  async version(): Promise<string> {
    const r = await this.#run(process.cwd(), ["version"]);
    return /(\d+\.\d+(?:\.\d+)?)/.exec(r.stdout)?.[1] ?? r.stdout.trim();
  }

  // Repositories.

  /** A new repository at `dir` (created when missing) whose unborn branch is `initialBranch`. */
  async init(dir: string, opts: { initialBranch: string }): Promise<void> {
    const d = resolve(dir);
    await this.#run(dirname(d), ["init", "-q", "-b", arg(opts.initialBranch, "branch name"), "--", d]);
  }

  /**
   * Clones `source` (a URL or a path) into `dest`, whose parent must exist. `env` goes to this git
   * only (an askpass program and the token it answers with, for a private https origin).
   */
  async clone(source: string, dest: string, opts: { env?: Readonly<Record<string, string>> } = {}): Promise<void> {
    const d = resolve(dest);
    await this.#run(dirname(d), ["clone", "-q", "--", arg(source, "clone source"), d], {
      timeoutMs: this.#networkTimeoutMs,
      ...(opts.env ? { env: opts.env } : {}),
    });
  }

  async fetch(repo: string, remote = "origin", opts: { env?: Readonly<Record<string, string>> } = {}): Promise<void> {
    await this.#run(repo, ["fetch", "-q", "--prune", this.#remote(remote)], { timeoutMs: this.#networkTimeoutMs, ...(opts.env ? { env: opts.env } : {}) });
  }

  async remoteUrl(repo: string, remote = "origin"): Promise<string | null> {
    const r = await this.#run(repo, ["config", "--get", `remote.${this.#remote(remote)}.url`], { ok: [0, 1] });
    return r.code === 0 ? r.stdout.trim() : null;
  }

  async setRemoteUrl(repo: string, remote: string, url: string): Promise<void> {
    await this.#run(repo, ["remote", "set-url", this.#remote(remote), arg(url, "remote URL")]);
  }

  /**
   * The repository containing `dir`: its top-level directory, or the git directory of a bare
   * repository; null when `dir` is in no repository.
   */
  async repositoryRoot(dir: string): Promise<string | null> {
    let bare: RunResult;
    try {
      bare = await this.#run(dir, ["rev-parse", "--is-bare-repository"]);
    } catch (e) {
      if (e instanceof GitCommandError && NOT_A_REPOSITORY.test(e.stderr)) return null;
      throw e;
    }
    const r = await this.#run(dir, ["rev-parse", bare.stdout.trim() === "true" ? "--absolute-git-dir" : "--show-toplevel"]);
    return r.stdout.trim();
  }

  // Revisions.

  /** The commit `rev` names, or null when it names none. */
  async resolveCommit(cwd: string, rev: string): Promise<string | null> {
    const r = await this.#run(cwd, ["rev-parse", "--verify", "--quiet", "--end-of-options", `${arg(rev, "revision")}^{commit}`], { ok: [0, 1] });
    return r.code === 0 ? r.stdout.trim() : null;
  }

  /** Like `resolveCommit`, for a revision that must exist. */
  async revParse(cwd: string, rev: string): Promise<string> {
    const sha = await this.resolveCommit(cwd, rev);
    if (sha === null) throw new GitInvalidArgumentError(`unknown revision ${JSON.stringify(rev)} in ${cwd}`);
    return sha;
  }

  /** The branch HEAD is on (short name), or null when HEAD is detached. */
  async currentBranch(cwd: string): Promise<string | null> {
    const r = await this.#run(cwd, ["symbolic-ref", "-q", "HEAD"], { ok: [0, 1] });
    const ref = r.stdout.trim();
    return r.code === 0 && ref.startsWith("refs/heads/") ? ref.slice("refs/heads/".length) : null;
  }

  /** Whether `a` is `b` or one of its ancestors. */
  async isAncestor(cwd: string, a: string, b: string): Promise<boolean> {
    const r = await this.#run(cwd, ["merge-base", "--is-ancestor", arg(a, "revision"), arg(b, "revision")], { ok: [0, 1] });
    return r.code === 0;
  }

  async mergeBase(cwd: string, a: string, b: string): Promise<string | null> {
    const r = await this.#run(cwd, ["merge-base", arg(a, "revision"), arg(b, "revision")], { ok: [0, 1] });
    return r.code === 0 ? r.stdout.trim() : null;
  }

  // Branches.

  /**
   * Whether `name` is a valid branch name (`git check-ref-format --branch`). The `@{-N}` syntax,
   * which that command would expand to the N-th previous branch, is refused.
   */
  async isValidBranchName(cwd: string, name: string): Promise<boolean> {
    if (name === "" || name.startsWith("-") || name.includes("@{")) return false;
    const r = await this.#run(cwd, ["check-ref-format", "--branch", name], { ok: [0, 128] });
    return r.code === 0 && r.stdout.trim() === name;
  }

  async branchExists(repo: string, name: string): Promise<boolean> {
    const r = await this.#run(repo, ["show-ref", "--verify", "--quiet", `refs/heads/${arg(name, "branch name")}`], { ok: [0, 1] });
    return r.code === 0;
  }

  /** The local branches: short name → head commit. */
  async branchHeads(repo: string): Promise<Map<string, string>> {
    const r = await this.#run(repo, ["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads"]);
    return refHeads(r.stdout);
  }

  /** Creates `name` at `startPoint`; fails when it exists. */
  async createBranch(repo: string, name: string, startPoint: string): Promise<void> {
    await this.#run(repo, ["branch", "--no-track", arg(name, "branch name"), arg(startPoint, "start point")]);
  }

  /**
   * Deletes branch `name` when it is merged into `target` (its head is an ancestor of `target`);
   * an unmerged branch only with `allowDeleteUnmergedBranches`. git itself refuses a branch that
   * is checked out in a worktree. False when there was no such branch.
   */
  async deleteBranch(repo: string, name: string, opts: { target: string }): Promise<boolean> {
    const head = await this.resolveCommit(repo, `refs/heads/${arg(name, "branch name")}`);
    if (head === null) return false;
    if (!this.policy.allowDeleteUnmergedBranches) {
      const target = await this.resolveCommit(repo, opts.target);
      if (target === null || !(await this.isAncestor(repo, head, target))) throw new UnmergedBranchDeleteRefusedError(name, opts.target);
    }
    await this.#run(repo, ["branch", "-D", "--", name]);
    return true;
  }

  /**
   * Points `ref` at `next` if it is still at `expected` (null: if it does not exist yet), in one
   * compare-and-set; `GitRefConflictError` otherwise. Moving it anywhere but forward (dropping
   * commits from it) needs `allowDestructiveAutomation`.
   */
  async updateRef(cwd: string, ref: string, next: string, expected: string | null, reason = "orchestrator"): Promise<void> {
    if (!/^refs\/\S+$/.test(ref)) throw new GitInvalidArgumentError(`not a full ref name: ${JSON.stringify(ref)}`);
    arg(next, "revision");
    if (expected !== null) {
      arg(expected, "revision");
      if (!this.policy.allowDestructiveAutomation && !(await this.isAncestor(cwd, expected, next))) {
        throw new DestructiveOperationRefusedError(`moving ${ref} from ${expected} to ${next}`, "it is not a fast-forward, commits would be dropped from it");
      }
    }
    try {
      await this.#run(cwd, ["update-ref", "-m", reason, ref, next, expected ?? ""]);
    } catch (e) {
      if (e instanceof GitCommandError && REF_CONFLICT.test(e.stderr)) throw new GitRefConflictError(ref, expected, e.stderr);
      throw e;
    }
  }

  // Worktrees.

  /**
   * Adds a worktree at `path`: on a new branch `branch` at `startPoint` when given, else on the
   * existing branch `branch`.
   */
  async worktreeAdd(repo: string, path: string, opts: { branch: string; startPoint?: string }): Promise<void> {
    const p = resolve(path);
    const branch = arg(opts.branch, "branch name");
    const args =
      opts.startPoint === undefined
        ? ["worktree", "add", "-q", "--", p, branch]
        : ["worktree", "add", "-q", "--no-track", "-b", branch, "--", p, arg(opts.startPoint, "start point")];
    await this.#run(repo, args);
  }

  /**
   * Removes the worktree at `path`. One with uncommitted changes (untracked files included) is
   * removed, discarding them, only with `allowDestructiveAutomation`. A directory that is already
   * gone is pruned.
   */
  async worktreeRemove(repo: string, path: string): Promise<void> {
    const p = resolve(path);
    if (!existsSync(p)) return this.worktreePrune(repo);
    const changes = await this.status(p);
    if (changes.length > 0 && !this.policy.allowDestructiveAutomation) {
      const sample = changes
        .slice(0, 5)
        .map((c) => c.path)
        .join(", ");
      throw new DestructiveOperationRefusedError(
        `removing worktree ${p}`,
        `it has ${changes.length} uncommitted change(s) (${sample}${changes.length > 5 ? ", …" : ""})`,
      );
    }
    await this.#run(repo, ["worktree", "remove", ...(changes.length > 0 ? ["--force"] : []), "--", p]);
  }

  /**
   * Removes a worktree git left locked while creating it (`worktree add` locks with the reason
   * "initializing" until its checkout is complete): a crash there leaves no work in it, only a
   * partial checkout, so no safety flag is involved.
   */
  async worktreeRemoveHalfCreated(repo: string, path: string): Promise<void> {
    const p = resolve(path);
    const entry = (await this.worktreeList(repo)).find((w) => w.path === p);
    if (entry?.locked !== "initializing") throw new GitInvalidArgumentError(`${p} is not a worktree left half-created`);
    await this.#run(repo, ["worktree", "remove", "--force", "--force", "--", p]);
  }

  async worktreeList(repo: string): Promise<WorktreeEntry[]> {
    const r = await this.#run(repo, ["worktree", "list", "--porcelain", "-z"]);
    const out: WorktreeEntry[] = [];
    let cur: WorktreeEntry | null = null;
    for (const f of r.stdout.split("\0")) {
      if (f === "") {
        if (cur) out.push(cur);
        cur = null;
        continue;
      }
      const sp = f.indexOf(" ");
      const key = sp < 0 ? f : f.slice(0, sp);
      const value = sp < 0 ? "" : f.slice(sp + 1);
      if (key === "worktree") cur = { path: value, head: null, branch: null, bare: false, detached: false, locked: null, prunable: null };
      else if (!cur) continue;
      else if (key === "HEAD") cur.head = value;
      else if (key === "branch") cur.branch = value;
      else if (key === "bare") cur.bare = true;
      else if (key === "detached") cur.detached = true;
      else if (key === "locked") cur.locked = value;
      else if (key === "prunable") cur.prunable = value;
    }
    if (cur) out.push(cur);
    return out;
  }

  /** Forgets worktrees whose directories are gone. */
  async worktreePrune(repo: string): Promise<void> {
    await this.#run(repo, ["worktree", "prune"]);
  }

  // Working tree and commits.

  /** Uncommitted changes, untracked files included; empty when the working tree is clean. */
  async status(cwd: string): Promise<StatusEntry[]> {
    const r = await this.#run(cwd, ["status", "--porcelain=v1", "-z", "--untracked-files=all"]);
    const f = fields(r.stdout);
    const out: StatusEntry[] = [];
    for (let i = 0; i < f.length; i++) {
      const line = f[i] ?? "";
      const x = line.charAt(0);
      const y = line.charAt(1);
      const entry: StatusEntry = { x, y, path: line.slice(3) };
      if (x === "R" || x === "C" || y === "R" || y === "C") {
        const from = f[++i];
        if (from !== undefined) entry.from = from;
      }
      out.push(entry);
    }
    return out;
  }

  async addAll(cwd: string): Promise<void> {
    await this.#run(cwd, ["add", "-A"]);
  }

  /** Commits what is staged; null when nothing is (unless `allowEmpty`). Returns the new commit. */
  async commit(cwd: string, message: string, opts: { allowEmpty?: boolean } = {}): Promise<string | null> {
    if (message.trim() === "") throw new GitInvalidArgumentError("empty commit message");
    if (!opts.allowEmpty) {
      const staged = await this.#run(cwd, ["diff", "--cached", "--quiet", "--no-ext-diff"], { ok: [0, 1] });
      if (staged.code === 0) return null;
    }
    await this.#run(cwd, ["commit", "-q", "--no-verify", ...(opts.allowEmpty ? ["--allow-empty"] : []), "-m", message]);
    return this.revParse(cwd, "HEAD");
  }

  /** Files changed between two commits; a rename is a delete and an add. */
  async diffNameStatus(cwd: string, from: string, to: string): Promise<ChangedFile[]> {
    const r = await this.#run(cwd, ["diff", "--name-status", "-z", "--no-renames", "--no-ext-diff", arg(from, "revision"), arg(to, "revision"), "--"]);
    const f = fields(r.stdout);
    const out: ChangedFile[] = [];
    for (let i = 0; i + 1 < f.length; i += 2) {
      const status = f[i] ?? "";
      const path = f[i + 1] ?? "";
      out.push({ path, change: status.startsWith("A") ? "add" : status.startsWith("D") ? "delete" : "modify" });
    }
    return out;
  }

  /**
   * Merges two commits without any working tree (`merge-tree --write-tree`, git ≥ 2.38): the
   * merged tree, or the files that conflict.
   */
  async mergeTree(cwd: string, ours: string, theirs: string): Promise<MergeTreeResult> {
    const r = await this.#run(cwd, ["merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", arg(ours, "revision"), arg(theirs, "revision")], {
      ok: [0, 1],
    });
    const [tree = "", ...rest] = r.stdout.split("\0");
    if (r.code === 0) return { clean: true, tree: tree.trim() };
    const conflicts: string[] = [];
    for (const f of rest) {
      if (f === "") break;
      conflicts.push(f);
    }
    return { clean: false, tree: tree.trim(), conflicts };
  }

  async commitTree(cwd: string, tree: string, parents: readonly string[], message: string): Promise<string> {
    if (message.trim() === "") throw new GitInvalidArgumentError("empty commit message");
    const r = await this.#run(cwd, ["commit-tree", arg(tree, "tree"), ...parents.flatMap((p) => ["-p", arg(p, "parent")]), "-m", message]);
    return r.stdout.trim();
  }

  /** `reset --hard`: discards uncommitted changes; only with `allowDestructiveAutomation`. */
  async resetHard(cwd: string, rev: string): Promise<void> {
    if (!this.policy.allowDestructiveAutomation) throw new DestructiveOperationRefusedError(`git reset --hard in ${cwd}`, "it discards uncommitted changes");
    await this.#run(cwd, ["reset", "-q", "--hard", arg(rev, "revision")]);
  }

  /** `clean -fd`: deletes untracked files; only with `allowDestructiveAutomation`. */
  async clean(cwd: string): Promise<void> {
    if (!this.policy.allowDestructiveAutomation) throw new DestructiveOperationRefusedError(`git clean in ${cwd}`, "it deletes untracked files");
    await this.#run(cwd, ["clean", "-q", "-f", "-d"]);
  }

  // Remotes.

  /**
   * Pushes `refspecs` to `remote` (a remote name, URL or path). A force push (`force`, or a
   * refspec starting with `+`) needs `allowForcePush`. Deleting remote refs (`:dst`) is not
   * offered here (`deleteRemoteBranch` does it, with its checks). `env` goes to this push's git
   * only (forge/push.ts passes an askpass program and the token it answers with that way).
   */
  async push(cwd: string, remote: string, refspecs: readonly string[], opts: { force?: boolean; env?: Readonly<Record<string, string>> } = {}): Promise<void> {
    arg(remote, "remote");
    for (const r of refspecs) {
      arg(r, "refspec");
      if (r.startsWith(":") || r.startsWith("+:")) throw new GitInvalidArgumentError(`push does not delete remote refs: ${JSON.stringify(r)}`);
    }
    const forced = opts.force === true || refspecs.some((r) => r.startsWith("+"));
    if (forced && !this.policy.allowForcePush) throw new ForcePushRefusedError(redactCredentials(remote), refspecs);
    await this.#run(cwd, ["push", "-q", ...(opts.force === true ? ["--force"] : []), remote, ...refspecs], {
      timeoutMs: this.#networkTimeoutMs,
      ...(opts.env ? { env: opts.env } : {}),
    });
  }

  /** `remote`'s branches (`ls-remote --heads`): short name → head commit. */
  async remoteBranchHeads(repo: string, remote = "origin"): Promise<Map<string, string>> {
    const r = await this.#run(repo, ["ls-remote", "--heads", this.#remote(remote)], { timeoutMs: this.#networkTimeoutMs });
    return refHeads(r.stdout);
  }

  /** Fetches the commits of `remote`'s `branches` (into FETCH_HEAD only: no ref of the repository moves). */
  async fetchBranches(repo: string, remote: string, branches: readonly string[]): Promise<void> {
    const refs = branches.map((b) => `refs/heads/${arg(b, "branch name")}`);
    await this.#run(repo, ["fetch", "-q", "--no-tags", this.#remote(remote), ...refs], { timeoutMs: this.#networkTimeoutMs });
  }

  /**
   * Deletes branch `name` on `remote` if it is still at `head` (a lease: a branch pushed to since
   * is left alone). One not merged into `target` (its head not an ancestor of that commit, which
   * must be in the repository, as `head` must: `fetchBranches` first), or with no `target`, only
   * with `allowDeleteUnmergedBranches`.
   */
  async deleteRemoteBranch(repo: string, remote: string, name: string, opts: { head: string; target?: string; targetName?: string }): Promise<void> {
    arg(name, "branch name");
    arg(opts.head, "revision");
    if (!this.policy.allowDeleteUnmergedBranches) {
      const merged = opts.target !== undefined && (await this.isAncestor(repo, opts.head, opts.target));
      if (!merged) throw new UnmergedBranchDeleteRefusedError(name, opts.targetName ?? opts.target ?? "its target");
    }
    await this.#run(repo, ["push", "-q", `--force-with-lease=refs/heads/${name}:${opts.head}`, this.#remote(remote), `:refs/heads/${name}`], {
      timeoutMs: this.#networkTimeoutMs,
    });
  }

  // Bringing a branch up to its base (the merge queue's `pr.update`, forge/update.ts).

  /**
   * Fetches `remote`'s `branches` into its remote-tracking refs (`refs/remotes/<remote>/<b>`,
   * forced, as a plain fetch would): no local branch moves. `env` goes to this fetch's git only
   * (an askpass program and the token it answers with).
   */
  async fetchRemoteBranches(repo: string, remote: string, branches: readonly string[], opts: { env?: Readonly<Record<string, string>> } = {}): Promise<void> {
    const r = this.#remote(remote);
    const refspecs = branches.map((b) => `+refs/heads/${arg(b, "branch name")}:refs/remotes/${r}/${b}`);
    await this.#run(repo, ["fetch", "-q", "--no-tags", r, ...refspecs], { timeoutMs: this.#networkTimeoutMs, ...(opts.env ? { env: opts.env } : {}) });
  }

  /** Fetches one commit by its id (into FETCH_HEAD only); false when the remote would not give it. */
  async fetchCommit(repo: string, remote: string, sha: string, opts: { env?: Readonly<Record<string, string>> } = {}): Promise<boolean> {
    if (!/^[0-9a-f]{7,64}$/.test(sha)) throw new GitInvalidArgumentError(`not a commit id: ${JSON.stringify(sha)}`);
    const r = await this.#run(repo, ["fetch", "-q", "--no-tags", this.#remote(remote), sha], {
      ok: [0, 1, 128],
      timeoutMs: this.#networkTimeoutMs,
      ...(opts.env ? { env: opts.env } : {}),
    });
    return r.code === 0;
  }

  /** Adds a worktree at `path` with HEAD detached at `commit` (no branch is created or checked out). */
  async worktreeAddDetached(repo: string, path: string, commit: string): Promise<void> {
    await this.#run(repo, ["worktree", "add", "-q", "--detach", "--", resolve(path), arg(commit, "commit")]);
  }

  /**
   * Rebases HEAD (of the worktree `cwd`) onto `upstream`. A conflict aborts the rebase (the
   * worktree is back where it was) and is answered with the conflicting paths and what git said;
   * any other failure is thrown, after the abort. The repository's `rebase.updateRefs` is
   * overridden: no other branch moves with HEAD.
   */
  async rebase(cwd: string, upstream: string): Promise<BranchUpdateResult> {
    const r = await this.#run(cwd, ["-c", "rebase.updateRefs=false", "rebase", "--no-autostash", "--no-verify", arg(upstream, "upstream")], { ok: [0, 1] });
    if (r.code === 0) return { clean: true };
    return this.#abandon(cwd, r, ["rebase", "--abort"]);
  }

  /**
   * Merges `rev` into HEAD (of the worktree `cwd`) with `message`, committing the merge. A conflict
   * aborts the merge and is answered like `rebase`'s.
   */
  async merge(cwd: string, rev: string, message: string): Promise<BranchUpdateResult> {
    if (message.trim() === "") throw new GitInvalidArgumentError("empty merge message");
    const r = await this.#run(cwd, ["merge", "--no-edit", "--no-verify", "--no-verify-signatures", "--no-autostash", "-m", message, arg(rev, "revision")], {
      ok: [0, 1],
    });
    if (r.code === 0) return { clean: true };
    return this.#abandon(cwd, r, ["merge", "--abort"]);
  }

  /**
   * `git patch-id --stable` of the change from `from` to `to` (`git diff from to`): the same for
   * the same change wherever it sits (line numbers and whitespace ignored). Null for no change.
   */
  async patchId(cwd: string, from: string, to: string): Promise<string | null> {
    const diff = await this.#run(cwd, ["diff", "--no-color", "--no-ext-diff", "--no-textconv", "--binary", arg(from, "revision"), arg(to, "revision"), "--"]);
    if (diff.stdout === "") return null;
    const r = await this.#run(cwd, ["patch-id", "--stable"], { input: diff.stdout });
    return /^([0-9a-f]{40,64})\b/.exec(r.stdout.trim())?.[1] ?? null;
  }

  /**
   * A commit's message and its patch against its first parent (what the commit itself changed;
   * none of the repository's diff drivers, textconv or colour; renames as a delete and an add).
   * `stat` instead of the patch: `--numstat` lines, for a commit whose patch is over the output limit.
   */
  async showCommit(cwd: string, sha: string, opts: { stat?: boolean } = {}): Promise<{ message: string; body: string }> {
    if (!/^[0-9a-f]{7,64}$/.test(sha)) throw new GitInvalidArgumentError(`not a commit id: ${JSON.stringify(sha)}`);
    const r = await this.#run(cwd, [
      "-c",
      "core.quotePath=false",
      "show",
      "--no-color",
      "--no-ext-diff",
      "--no-textconv",
      "--no-renames",
      "--diff-merges=first-parent",
      "--format=%B%x00",
      opts.stat ? "--numstat" : "--patch",
      "--end-of-options",
      `${sha}^{commit}`,
      "--",
    ]);
    const nul = r.stdout.indexOf("\0");
    return nul < 0 ? { message: "", body: r.stdout } : { message: r.stdout.slice(0, nul).trim(), body: r.stdout.slice(nul + 1).replace(/^\n/, "") };
  }

  /**
   * Force-pushes `commit` to `remote`'s branch `branch` if that is still at `expected` (a lease:
   * whatever was pushed there since is never overwritten). Needs `allowForcePush`.
   */
  async pushWithLease(
    cwd: string,
    remote: string,
    commit: string,
    branch: string,
    expected: string,
    opts: { env?: Readonly<Record<string, string>> } = {},
  ): Promise<void> {
    const ref = `refs/heads/${arg(branch, "branch name")}`;
    const refspec = `${arg(commit, "commit")}:${ref}`;
    if (!this.policy.allowForcePush) throw new ForcePushRefusedError(redactCredentials(remote), [refspec]);
    await this.#run(cwd, ["push", "-q", `--force-with-lease=${ref}:${arg(expected, "revision")}`, arg(remote, "remote"), refspec], {
      timeoutMs: this.#networkTimeoutMs,
      ...(opts.env ? { env: opts.env } : {}),
    });
  }

  /**
   * Moves the local branch `name` to `next`, a commit just force-pushed for it, if it is still at
   * `expected`, the head that push replaced (so it held nothing the remote did not): the local side
   * of a push `allowForcePush` allowed, which it needs too. `GitRefConflictError` when it moved.
   */
  async followForcePush(repo: string, name: string, next: string, expected: string): Promise<void> {
    const ref = `refs/heads/${arg(name, "branch name")}`;
    if (!this.policy.allowForcePush) throw new ForcePushRefusedError("(the local branch)", [`${next}:${ref}`]);
    try {
      await this.#run(repo, ["update-ref", "-m", "orchestrator: follow a force push", ref, arg(next, "revision"), arg(expected, "revision")]);
    } catch (e) {
      if (e instanceof GitCommandError && REF_CONFLICT.test(e.stderr)) throw new GitRefConflictError(ref, expected, e.stderr);
      throw e;
    }
  }

  /** After a rebase or merge that stopped: its conflicts (after aborting it), or the failure thrown. */
  async #abandon(cwd: string, r: RunResult, abort: readonly string[]): Promise<BranchUpdateResult> {
    const unmerged = await this.#run(cwd, ["diff", "--name-only", "--diff-filter=U", "-z"], { ok: [0, 1, 128] });
    const conflicts = unmerged.code === 0 ? [...new Set(fields(unmerged.stdout))] : [];
    await this.#run(cwd, abort, { ok: [0, 1, 128] });
    if (conflicts.length === 0) throw new GitCommandError({ args: abort.slice(0, 1), cwd, stderr: r.stderr || r.stdout }, r.code);
    return { clean: false, conflicts, message: redactCredentials(`${r.stdout}\n${r.stderr}`.trim()) };
  }

  #remote(name: string): string {
    if (!REMOTE_NAME.test(name)) throw new GitInvalidArgumentError(`invalid remote name: ${JSON.stringify(name)}`);
    return name;
  }

  // Running git.

  async #run(cwd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const ok = opts.ok ?? [0];
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const r = await this.#spawn(cwd, args, timeoutMs, opts.env, opts.input);
      if (r.code !== null && ok.includes(r.code)) return { code: r.code, stdout: r.stdout, stderr: r.stderr };
      const info: GitCommandInfo = { args, cwd, stderr: r.stderr };
      if (LOCK_CONTENTION.test(r.stderr)) {
        if (attempt <= this.#lockRetries) {
          await sleep(25 * 2 ** (attempt - 1) * (1 + Math.random()));
          continue;
        }
        throw new GitLockedError(info, attempt);
      }
      throw new GitCommandError(info, r.code);
    }
  }

  #spawn(
    cwd: string,
    args: readonly string[],
    timeoutMs: number,
    extraEnv?: Readonly<Record<string, string>>,
    input?: string,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolvePromise, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let outBytes = 0;
      let errBytes = 0;
      let failure: GitError | undefined;
      let settled = false;
      const info = (): GitCommandInfo => ({ args, cwd, stderr: Buffer.concat(err).toString("utf8") });
      let child: ChildProcessByStdio<Writable, Readable, Readable>;
      try {
        // Its own process group, so a timeout also kills what git started (remote helpers, ssh).
        child = spawn(this.binary, [...GLOBAL_ARGS, ...args], {
          cwd,
          env: extraEnv ? { ...this.#env, ...extraEnv } : this.#env,
          stdio: ["pipe", "pipe", "pipe"],
          detached: true,
          windowsHide: true,
        });
      } catch (e) {
        // Node's message quotes the offending argument (a NUL byte in a URL, say): redacted here.
        reject(new GitInvalidArgumentError(`could not start ${describeCommand(args)}: ${e instanceof Error ? e.message : String(e)}`));
        return;
      }
      // Closed at once (no input: git reads an empty stdin, as from /dev/null). git may exit before
      // reading all of it (a failure): EPIPE is then its answer, not ours.
      child.stdin.on("error", () => {});
      child.stdin.end(input);
      const kill = (): void => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        } catch {
          child.kill("SIGKILL");
        }
      };
      const timer = setTimeout(() => {
        failure ??= new GitTimeoutError(info(), timeoutMs);
        kill();
      }, timeoutMs);
      child.stdout.on("data", (b: Buffer) => {
        outBytes += b.length;
        if (outBytes > this.#maxOutputBytes) {
          failure ??= new GitOutputLimitError(info(), this.#maxOutputBytes);
          kill();
          return;
        }
        out.push(b);
      });
      child.stderr.on("data", (b: Buffer) => {
        if (errBytes >= STDERR_CAP) return;
        err.push(b);
        errBytes += b.length;
      });
      child.on("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        if (e.code === "ENOENT" && !existsSync(cwd)) reject(new GitCommandError(info(), null, "could not start: the directory does not exist"));
        else if (e.code === "ENOENT") reject(new GitNotFoundError(this.binary));
        // Not `cause: e`: Node's spawn errors carry the arguments (`spawnargs`), URLs included.
        else reject(new GitCommandError(info(), null, `could not start: ${e.code ?? e.message}`));
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        if (failure) reject(failure);
        else resolvePromise({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
      });
    });
  }
}
