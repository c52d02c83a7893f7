import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, realpath, rename, rm, rmdir } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join, resolve, sep } from "node:path";
import type { AgentHubConfig } from "@orch/config";
import type { ProjectRecord, SessionWorktree } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import {
  BaseNotFoundError,
  BranchMissingError,
  CloneFailedError,
  GitCommandError,
  GitRefConflictError,
  GitTimeoutError,
  GitTooOldError,
  InvalidBranchNameError,
  InvalidIdError,
  NotARepositoryError,
  RepositoryMismatchError,
  RunBranchCheckedOutError,
  WorkspaceConflictError,
  WorkspaceContendedError,
  WorktreePathInUseError,
  WrongBranchError,
} from "./errors.js";
import type { ChangedFile, GitCli, WorktreeEntry } from "./git.js";
import { KeyedMutex } from "./mutex.js";

/**
 * The git side of worker sessions (seed 003's worktrees). Every step session gets its own branch
 * `orch/session/<sessionId>`, forked from the run's branch and checked out in its own worktree
 * `<worktreesRoot>/<projectId>/<sessionId>`; after the executor, its work is committed and
 * integrated into the run's branch, so the steps after it (which fork from the run's branch) see
 * it. Layout:
 *
 *     <projectsRoot>/<projectId>        clone of the project's gitUrl, or a scratch repository
 *                                       (projectsRoot: ORCH_PROJECTS_ROOT, else <workspace>/repos)
 *     <worktreesRoot>/<projectId>/<id>  a session's worktree (worktreesRoot: <workspace>/worktrees)
 *
 * Run branches are moved with `update-ref <ref> <new> <old>` only (compare-and-set, nobody's
 * checkout is touched), so a run branch must not be checked out anywhere: when it is (a user
 * checked out the SpecKit feature branch in their own clone, say), creating a session on it and
 * integrating into it are refused with `RunBranchCheckedOutError` rather than leaving that
 * checkout's files silently behind its branch.
 *
 * Operations that write one repository's refs or worktree metadata run one at a time per
 * repository (a mutex in this process); git lock files held by other processes are retried by
 * `GitCli`.
 */

export type WorkspaceConfig = Pick<AgentHubConfig, "ORCH_WORKSPACE" | "ORCH_WORKTREES_ROOT" | "ORCH_KEEP_FAILED_WORKTREES"> &
  Partial<Pick<AgentHubConfig, "ORCH_PROJECTS_ROOT" | "ORCH_GIT_PREFER_SSH">>;

/** Session branches live here; run branches may not. */
export const SESSION_BRANCH_PREFIX = "orch/session/";

export function sessionBranch(sessionId: string): string {
  return `${SESSION_BRANCH_PREFIX}${sessionId}`;
}

/** seed 003's default workspace, under the home directory. */
export const DEFAULT_WORKSPACE = join(".local", "share", "orchestrator", "workspace");

export interface WorkspaceOptions {
  /** Where `~` and the default workspace are; the user's home directory when unset. */
  homeDir?: string;
  /** Compare-and-set attempts of one integration before `WorkspaceContendedError`; 5 when unset. */
  integrationAttempts?: number;
  /**
   * What a clone or fetch of a project's origin is given to authenticate (an askpass program and the
   * forge's token, for a private https origin on the project's forge); undefined: nothing.
   */
  credentials?: (origin: string, project: ProjectRecord | undefined) => Readonly<Record<string, string>> | undefined;
}

export interface CreateSessionWorktreeRequest {
  /** The repository, as `repoFor` returned it. */
  repo: string;
  /** The run's branch (`ensureRunBranch` created it). */
  runBranch: string;
  sessionId: string;
  projectId: string;
}

export interface CommitResult {
  sha: string;
  /** What the commit changed (a rename is a delete and an add). */
  files: ChangedFile[];
}

export interface CleanupOptions {
  /** Whether the session succeeded (its commits were integrated). */
  success: boolean;
  /** Keep a failed session's worktree; `ORCH_KEEP_FAILED_WORKTREES` when unset. */
  keepFailed?: boolean;
}

export interface CleanupResult {
  worktreeRemoved: boolean;
  branchDeleted: boolean;
}

export interface RecoveryReport {
  /** The repositories looked at. */
  repos: string[];
  /** Worktree entries forgotten because their directories were gone. */
  pruned: string[];
  /** Leftovers of interrupted creations that were deleted (half-made clones, half-added worktrees). */
  removed: string[];
}

const ID = /^[A-Za-z0-9_-]{1,128}$/;
const TMP_MARK = ".tmp-";

function expandHome(p: string, home: string): string {
  return p === "~" ? home : p.startsWith("~/") ? join(home, p.slice(2)) : p;
}

const GITHUB_HTTPS = /^https:\/\/(?:[^/@]*@)?github\.com\/([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+?)(?:\.git)?\/?$/i;

/**
 * Seed 004's TASKSGODZILLA_GH_SSH (ORCH_GIT_PREFER_SSH): `https://github.com/<owner>/<repo>(.git)`
 * becomes `git@github.com:<owner>/<repo>.git` (any user-info dropped: SSH authenticates with keys);
 * every other URL is returned as it is.
 */
export function preferGitHubSsh(url: string): string {
  const m = GITHUB_HTTPS.exec(url.trim());
  return m ? `git@github.com:${m[1]}/${m[2]}.git` : url;
}

/** A URL without its user-info, so a rotated token is not a different repository. */
function withoutCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/]*@/i, "$1");
}

function version(v: string): [number, number] {
  const [major = 0, minor = 0] = v.split(".").map((n) => Number.parseInt(n, 10));
  return [major, minor];
}

export class WorkspaceManager {
  readonly workspace: string;
  readonly worktreesRoot: string;
  readonly reposRoot: string;
  readonly #git: GitCli;
  readonly #log: Logger;
  readonly #home: string;
  readonly #keepFailed: boolean;
  readonly #preferSsh: boolean;
  readonly #attempts: number;
  readonly #mutex = new KeyedMutex();
  readonly #fetches = new Map<string, Promise<void>>();
  readonly #credentials: WorkspaceOptions["credentials"];
  /** Repositories handed out since start: `recover()` looks at them too. */
  readonly #known = new Set<string>();
  #mergeTreeChecked: Promise<void> | undefined;

  constructor(config: WorkspaceConfig, git: GitCli, logger: Logger, opts: WorkspaceOptions = {}) {
    this.#home = opts.homeDir ?? homedir();
    this.workspace = resolve(expandHome(config.ORCH_WORKSPACE ?? join(this.#home, DEFAULT_WORKSPACE), this.#home));
    this.worktreesRoot = resolve(expandHome(config.ORCH_WORKTREES_ROOT ?? join(this.workspace, "worktrees"), this.#home));
    this.reposRoot = resolve(expandHome(config.ORCH_PROJECTS_ROOT ?? join(this.workspace, "repos"), this.#home));
    this.#preferSsh = config.ORCH_GIT_PREFER_SSH ?? false;
    this.#git = git;
    this.#credentials = opts.credentials;
    this.#log = logger.child({ component: "workspace" });
    this.#keepFailed = config.ORCH_KEEP_FAILED_WORKTREES;
    this.#attempts = opts.integrationAttempts ?? 5;
  }

  /**
   * The repository a project's sessions work in: its `localPath` (which must be in a git
   * repository; its top level is used); else a clone of its `gitUrl` (over SSH with
   * ORCH_GIT_PREFER_SSH, when it is a GitHub https URL) at `<reposRoot>/<projectId>`, cloned once and fetched on later calls (a failed fetch is
   * logged and the clone used as it is, so an offline laptop keeps working); else a scratch
   * repository there, made once with branch `main` and an empty initial commit, so runs of
   * projects without a repository still get real worktrees and commits.
   */
  async repoFor(project: ProjectRecord | undefined, projectId: string): Promise<string> {
    this.#id(projectId, "project id");
    let repo: string;
    if (project?.localPath) {
      const p = resolve(expandHome(project.localPath, this.#home));
      const what = `project ${projectId}'s localPath`;
      if (!existsSync(p)) throw new NotARepositoryError(p, what);
      const root = await this.#git.repositoryRoot(p);
      if (root === null) throw new NotARepositoryError(p, what);
      repo = await realpath(root);
    } else {
      await mkdir(this.reposRoot, { recursive: true });
      const dest = join(await realpath(this.reposRoot), projectId);
      repo = project?.gitUrl ? await this.#cloned(project.gitUrl, dest, project) : await this.#scratch(dest);
    }
    this.#known.add(repo);
    return repo;
  }

  /**
   * Creates the run's branch, if it does not exist, at the base: `baseBranch` (the project's),
   * else the branch the repository's HEAD is on (its commit when detached). In a managed clone the
   * base is `origin/<base>` (fetched; local branches there are never updated), elsewhere the local
   * branch, falling back to `origin/<base>`. Returns the run branch's head.
   */
  async ensureRunBranch(repo: string, runBranch: string, baseBranch?: string): Promise<string> {
    const r = await this.#canonical(repo);
    await this.#validateRunBranch(r, runBranch);
    if (baseBranch !== undefined && !(await this.#git.isValidBranchName(r, baseBranch))) throw new InvalidBranchNameError(baseBranch);
    return this.#mutex.run(r, async () => {
      const ref = `refs/heads/${runBranch}`;
      const existing = await this.#git.resolveCommit(r, ref);
      if (existing !== null) return existing;
      const { name, sha } = await this.#base(r, baseBranch);
      try {
        await this.#git.updateRef(r, ref, sha, null, `orchestrator: run branch from ${name}`);
      } catch (e) {
        // Another process made it first: theirs is as good as ours.
        if (e instanceof GitRefConflictError) return this.#git.revParse(r, ref);
        throw e;
      }
      this.#log.info({ repo: r, runBranch, base: name, head: sha }, `run branch ${runBranch} created from ${name}`);
      return sha;
    });
  }

  /**
   * A new branch `orch/session/<sessionId>` at the run branch's head, checked out in a new
   * worktree `<worktreesRoot>/<projectId>/<sessionId>`. Idempotent per session id, for a session
   * run again after a crash: a leftover worktree or branch holding nothing (clean, no commits of
   * its own) is recreated at the run branch's current head; one holding work (uncommitted changes
   * or commits) is reused as it is, so nothing is discarded, with `base` the commit it forked from.
   */
  async createSessionWorktree(req: CreateSessionWorktreeRequest): Promise<SessionWorktree> {
    this.#id(req.sessionId, "session id");
    this.#id(req.projectId, "project id");
    const repo = await this.#canonical(req.repo);
    await this.#validateRunBranch(repo, req.runBranch);
    const branch = sessionBranch(req.sessionId);
    const parent = join(this.worktreesRoot, req.projectId);
    await mkdir(parent, { recursive: true });
    const path = join(await realpath(parent), req.sessionId);
    return this.#mutex.run(repo, async () => {
      const runHead = await this.#git.resolveCommit(repo, `refs/heads/${req.runBranch}`);
      if (runHead === null) throw new BranchMissingError(repo, req.runBranch, "ensureRunBranch creates run branches");
      const worktrees = await this.#git.worktreeList(repo);
      this.#refuseCheckedOut(worktrees, req.runBranch);
      const base = await this.#prepareSession(repo, path, branch, runHead, worktrees);
      this.#log.debug({ repo, path, branch, base, runBranch: req.runBranch }, `session worktree ${path}`);
      return { repo, path, branch, base, runBranch: req.runBranch };
    });
  }

  /**
   * Commits everything in the session's worktree (untracked files included, ignored ones not) on
   * the session's branch; null when there is nothing to commit.
   */
  async commitAll(worktree: SessionWorktree, message: string): Promise<CommitResult | null> {
    const current = await this.#git.currentBranch(worktree.path);
    if (current !== worktree.branch) throw new WrongBranchError(worktree.path, worktree.branch, current);
    // The worktree's own index: no other session contends for it.
    await this.#git.addAll(worktree.path);
    return this.#mutex.run(await this.#canonical(worktree.repo), async () => {
      const parent = await this.#git.revParse(worktree.path, "HEAD");
      const sha = await this.#git.commit(worktree.path, message);
      if (sha === null) return null;
      return { sha, files: await this.#git.diffNameStatus(worktree.path, parent, sha) };
    });
  }

  /**
   * Brings the session branch's commits into the run branch; returns the run branch's new head.
   * When the run branch has not moved since the session forked, it is fast-forwarded to the
   * session's head; when it has (parallel steps), a merge commit of both heads is made without
   * any working tree (`merge-tree --write-tree`, `commit-tree`). Either way the run branch moves
   * by compare-and-set, retried when another process moved it in between. Conflicting changes are
   * a `WorkspaceConflictError` listing the files, and leave the run branch as it was.
   */
  async integrate(worktree: SessionWorktree): Promise<string> {
    const repo = await this.#canonical(worktree.repo);
    const runRef = `refs/heads/${worktree.runBranch}`;
    return this.#mutex.run(repo, async () => {
      for (let attempt = 1; attempt <= this.#attempts; attempt++) {
        const head = await this.#git.resolveCommit(repo, `refs/heads/${worktree.branch}`);
        if (head === null) throw new BranchMissingError(repo, worktree.branch, "the session's branch was deleted before integration");
        const runHead = await this.#git.resolveCommit(repo, runRef);
        if (runHead === null) throw new BranchMissingError(repo, worktree.runBranch, "the run branch was deleted");
        this.#refuseCheckedOut(await this.#git.worktreeList(repo), worktree.runBranch);
        if (await this.#git.isAncestor(repo, head, runHead)) return runHead;
        let next: string;
        let how: string;
        if (await this.#git.isAncestor(repo, runHead, head)) {
          next = head;
          how = "fast-forward";
        } else {
          await this.#requireMergeTree();
          const merged = await this.#git.mergeTree(repo, runHead, head);
          if (!merged.clean) throw new WorkspaceConflictError(worktree.runBranch, worktree.branch, merged.conflicts);
          next = await this.#git.commitTree(repo, merged.tree, [runHead, head], `Merge ${worktree.branch} into ${worktree.runBranch}`);
          how = "merge";
        }
        try {
          await this.#git.updateRef(repo, runRef, next, runHead, `orchestrator: integrate ${worktree.branch}`);
        } catch (e) {
          if (!(e instanceof GitRefConflictError)) throw e;
          this.#log.debug({ repo, runBranch: worktree.runBranch, attempt }, "run branch moved during integration, again");
          continue;
        }
        this.#log.info(
          { repo, runBranch: worktree.runBranch, branch: worktree.branch, how, head: next },
          `integrated ${worktree.branch} into ${worktree.runBranch} (${how})`,
        );
        return next;
      }
      throw new WorkspaceContendedError(worktree.runBranch, this.#attempts);
    });
  }

  /**
   * After the session: its worktree is removed, except a failed session's when `keepFailed`.
   * Removing a worktree with uncommitted changes is refused (`DestructiveOperationRefusedError`)
   * unless destructive automation is allowed, which discards them. The session's branch is deleted
   * when the run branch holds all of it (integrated, or no commits of its own) and kept otherwise:
   * an unmerged branch is a failed session's work, and deleting it is for a person (or a caller
   * of `GitCli.deleteBranch` with `allowDeleteUnmergedBranches`). Stale worktree entries are pruned.
   */
  async cleanup(worktree: SessionWorktree, opts: CleanupOptions): Promise<CleanupResult> {
    const repo = await this.#canonical(worktree.repo);
    const keep = !opts.success && (opts.keepFailed ?? this.#keepFailed);
    return this.#mutex.run(repo, async () => {
      const result: CleanupResult = { worktreeRemoved: false, branchDeleted: false };
      if (!keep) {
        const entry = (await this.#git.worktreeList(repo)).find((w) => w.path === worktree.path);
        if (entry) {
          await this.#git.worktreeRemove(repo, worktree.path);
          result.worktreeRemoved = true;
        } else if (existsSync(worktree.path)) {
          this.#log.warn({ repo, path: worktree.path }, `${worktree.path} is not a worktree of ${repo}; left alone`);
        }
        const head = await this.#git.resolveCommit(repo, `refs/heads/${worktree.branch}`);
        const runHead = await this.#git.resolveCommit(repo, `refs/heads/${worktree.runBranch}`);
        if (head !== null && runHead !== null && (await this.#git.isAncestor(repo, head, runHead))) {
          result.branchDeleted = await this.#git.deleteBranch(repo, worktree.branch, { target: runHead });
        } else if (head !== null) {
          this.#log.info({ repo, branch: worktree.branch, head }, `kept ${worktree.branch}: it holds commits ${worktree.runBranch} does not`);
        }
      }
      await this.#git.worktreePrune(repo);
      return result;
    });
  }

  /**
   * After a crash: forgets worktree entries whose directories vanished, removes worktrees left
   * half-added under the worktrees root and half-made clones or scratch repositories. Looks at
   * `repos`, the repositories handed out since start, the managed ones under the projects root,
   * and those of the worktrees still under the worktrees root. A repository that fails is logged
   * and skipped.
   */
  async recover(repos: readonly string[] = []): Promise<RecoveryReport> {
    const report: RecoveryReport = { repos: [], pruned: [], removed: [] };
    const candidates = new Set<string>([...repos, ...this.#known]);
    for (const name of await this.#dirs(this.reposRoot)) {
      const p = join(this.reposRoot, name);
      if (name.includes(TMP_MARK)) {
        await rm(p, { recursive: true, force: true });
        report.removed.push(p);
      } else candidates.add(p);
    }
    for (const project of await this.#dirs(this.worktreesRoot)) {
      for (const session of await this.#dirs(join(this.worktreesRoot, project))) {
        const repo = await this.#repoOfWorktree(join(this.worktreesRoot, project, session));
        if (repo !== null) candidates.add(repo);
      }
    }
    const root = existsSync(this.worktreesRoot) ? await realpath(this.worktreesRoot) : this.worktreesRoot;
    for (const candidate of candidates) {
      if (!existsSync(candidate)) continue;
      const repo = await this.#canonical(candidate);
      if (report.repos.includes(repo)) continue;
      report.repos.push(repo);
      try {
        await this.#mutex.run(repo, async () => {
          for (const w of await this.#git.worktreeList(repo)) {
            if (w.prunable !== null) report.pruned.push(w.path);
            else if (w.locked === "initializing" && w.path.startsWith(root + sep)) {
              await this.#git.worktreeRemoveHalfCreated(repo, w.path);
              report.removed.push(w.path);
            }
          }
          await this.#git.worktreePrune(repo);
        });
      } catch (e) {
        this.#log.warn({ repo, err: e }, `recovery of ${repo} failed`);
      }
    }
    if (report.pruned.length + report.removed.length > 0) this.#log.info(report, "workspace recovered");
    return report;
  }

  // Repositories.

  async #cloned(url: string, dest: string, project: ProjectRecord | undefined): Promise<string> {
    const given = url.startsWith("~") || url.startsWith(".") ? resolve(expandHome(url, this.#home)) : url;
    const source = this.#preferSsh ? preferGitHubSsh(given) : given;
    const env = this.#credentials?.(source, project);
    const fresh = await this.#mutex.run(dest, async () => {
      if (!existsSync(dest)) {
        await this.#viaTemp(dest, (tmp) =>
          this.#git.clone(source, tmp, env ? { env } : {}).catch((err: unknown) => {
            throw err instanceof GitCommandError || err instanceof GitTimeoutError ? new CloneFailedError(withoutCredentials(source), err) : err;
          }),
        );
        this.#log.info({ repo: dest }, `cloned ${withoutCredentials(source)} into ${dest}`);
        return true;
      }
      await this.#requireRepoAt(dest);
      const origin = await this.#git.remoteUrl(dest);
      if (origin !== source) {
        // The same repository, over https or (ORCH_GIT_PREFER_SSH turned on or off since) SSH.
        const same = (a: string) => preferGitHubSsh(withoutCredentials(a));
        if (origin === null || same(origin) !== same(source)) throw new RepositoryMismatchError(dest, source, origin);
        await this.#git.setRemoteUrl(dest, "origin", source);
      }
      return false;
    });
    if (!fresh) await this.#fetch(dest, env);
    return dest;
  }

  /** One fetch per repository at a time: callers arriving while one runs share it. */
  async #fetch(repo: string, env?: Readonly<Record<string, string>>): Promise<void> {
    let pending = this.#fetches.get(repo);
    if (!pending) {
      pending = this.#mutex
        .run(repo, () => this.#git.fetch(repo, "origin", env ? { env } : {}))
        .catch((e: unknown) => this.#log.warn({ repo, err: e }, `fetch of ${repo} failed; working from what it has`))
        .finally(() => this.#fetches.delete(repo));
      this.#fetches.set(repo, pending);
    }
    await pending;
  }

  async #scratch(dest: string): Promise<string> {
    await this.#mutex.run(dest, async () => {
      if (existsSync(dest)) return this.#requireRepoAt(dest);
      await this.#viaTemp(dest, async (tmp) => {
        await this.#git.init(tmp, { initialBranch: "main" });
        await this.#git.commit(tmp, "Initial commit", { allowEmpty: true });
      });
      this.#log.info({ repo: dest }, `scratch repository ${dest} created`);
    });
    return dest;
  }

  /** Builds a directory beside `dest` and renames it into place: a crash leaves no half-made `dest`. */
  async #viaTemp(dest: string, build: (tmp: string) => Promise<void>): Promise<void> {
    const tmp = `${dest}${TMP_MARK}${randomBytes(4).toString("hex")}`;
    try {
      await build(tmp);
      await rename(tmp, dest);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  async #requireRepoAt(dir: string): Promise<void> {
    const root = await this.#git.repositoryRoot(dir);
    if (root === null || (await realpath(root)) !== dir) throw new NotARepositoryError(dir, "managed repository");
  }

  async #base(repo: string, baseBranch: string | undefined): Promise<{ name: string; sha: string }> {
    const name = baseBranch ?? (await this.#git.currentBranch(repo));
    if (name === null) return { name: "HEAD", sha: await this.#git.revParse(repo, "HEAD") };
    const local = `refs/heads/${name}`;
    const remote = `refs/remotes/origin/${name}`;
    for (const ref of (await this.#isManagedClone(repo)) ? [remote, local] : [local, remote]) {
      const sha = await this.#git.resolveCommit(repo, ref);
      if (sha !== null) return { name: ref.replace(/^refs\/(heads|remotes)\//, ""), sha };
    }
    throw new BaseNotFoundError(repo, name);
  }

  async #isManagedClone(repo: string): Promise<boolean> {
    const root = await this.#canonical(this.reposRoot);
    return repo.startsWith(root + sep) && (await this.#git.remoteUrl(repo)) !== null;
  }

  // Sessions.

  /** Makes `path` a worktree on `branch` for the session; returns the commit the branch forked from. */
  async #prepareSession(repo: string, path: string, branch: string, runHead: string, worktrees: WorktreeEntry[]): Promise<string> {
    const ref = `refs/heads/${branch}`;
    const entry = worktrees.find((w) => w.path === path);
    if (entry && (entry.prunable !== null || !existsSync(path))) {
      await this.#git.worktreePrune(repo);
    } else if (entry?.locked === "initializing") {
      await this.#git.worktreeRemoveHalfCreated(repo, path);
    } else if (entry && entry.branch === ref && entry.head !== null) {
      const dirty = (await this.#git.status(path)).length > 0;
      const ownCommits = !(await this.#git.isAncestor(repo, entry.head, runHead));
      if (dirty || ownCommits) {
        const base = (await this.#git.mergeBase(repo, entry.head, runHead)) ?? runHead;
        this.#log.warn({ repo, path, branch, dirty, ownCommits }, `reusing ${path} as a previous run of the session left it`);
        return base;
      }
      await this.#git.worktreeRemove(repo, path);
    } else if (entry) {
      throw new WorktreePathInUseError(path, `a worktree on ${entry.branch ?? "a detached HEAD"}`);
    } else if (existsSync(path)) {
      if ((await readdir(path)).length === 0) await rmdir(path);
      else if (this.#git.policy.allowDestructiveAutomation) await rm(path, { recursive: true, force: true });
      else throw new WorktreePathInUseError(path, "a directory git does not know as a worktree (move it away, or allow destructive automation)");
    }

    const existing = await this.#git.resolveCommit(repo, ref);
    if (existing === null) {
      await this.#git.worktreeAdd(repo, path, { branch, startPoint: runHead });
      return runHead;
    }
    const holder = (await this.#git.worktreeList(repo)).find((w) => w.branch === ref);
    if (holder) throw new WorktreePathInUseError(path, `its branch ${branch} is checked out in ${holder.path}`);
    if (await this.#git.isAncestor(repo, existing, runHead)) {
      // Nothing of its own: forward to the run branch's head, as if new.
      if (existing !== runHead) await this.#git.updateRef(repo, ref, runHead, existing, "orchestrator: session branch forward");
      await this.#git.worktreeAdd(repo, path, { branch });
      return runHead;
    }
    this.#log.warn({ repo, path, branch, head: existing }, `reusing ${branch} with the commits a previous run of the session left`);
    await this.#git.worktreeAdd(repo, path, { branch });
    return (await this.#git.mergeBase(repo, existing, runHead)) ?? runHead;
  }

  #refuseCheckedOut(worktrees: readonly WorktreeEntry[], runBranch: string): void {
    const holder = worktrees.find((w) => w.branch === `refs/heads/${runBranch}`);
    if (holder) throw new RunBranchCheckedOutError(runBranch, holder.path);
  }

  async #validateRunBranch(repo: string, runBranch: string): Promise<void> {
    if (runBranch.startsWith(SESSION_BRANCH_PREFIX)) throw new InvalidBranchNameError(runBranch, `${SESSION_BRANCH_PREFIX} is reserved for session branches`);
    if (!(await this.#git.isValidBranchName(repo, runBranch))) throw new InvalidBranchNameError(runBranch);
  }

  #requireMergeTree(): Promise<void> {
    this.#mergeTreeChecked ??= this.#git.version().then((v) => {
      const [major, minor] = version(v);
      if (major < 2 || (major === 2 && minor < 38)) throw new GitTooOldError(v, "2.38", "integrating parallel sessions (git merge-tree --write-tree)");
    });
    // A failed check is asked again next time (the binary may be upgraded in place).
    return this.#mergeTreeChecked.catch((e: unknown) => {
      this.#mergeTreeChecked = undefined;
      throw e;
    });
  }

  // Paths.

  #id(value: string, what: string): void {
    if (!ID.test(value)) throw new InvalidIdError(value, what);
  }

  /** The real path, so that one repository is one mutex key however it is spelled. */
  async #canonical(p: string): Promise<string> {
    try {
      return await realpath(p);
    } catch {
      return resolve(p);
    }
  }

  async #dirs(dir: string): Promise<string[]> {
    try {
      return (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      return [];
    }
  }

  /** The repository a worktree directory belongs to, from its `.git` file (`gitdir: <common>/worktrees/<name>`). */
  async #repoOfWorktree(dir: string): Promise<string | null> {
    let text: string;
    try {
      text = await readFile(join(dir, ".git"), "utf8");
    } catch {
      return null;
    }
    const gitdir = /^gitdir: (.+)$/m.exec(text)?.[1]?.trim();
    if (!gitdir) return null;
    const common = dirname(dirname(resolve(dir, gitdir)));
    return basename(common) === ".git" ? dirname(common) : common;
  }
}
