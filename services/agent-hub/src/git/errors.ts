/**
 * Failures of the git layer: one class per failure mode, each with a stable `code` and a
 * `retryable` verdict the session runner copies into the step error (a transient lock or a moved
 * ref is worth another attempt; a refused operation or a missing repository is not).
 *
 * Messages name the command and carry git's stderr, always passed through `redactCredentials`,
 * so a token in a remote URL never reaches a log, an event or an API answer.
 */

export const GitErrorCode = {
  /** The git binary could not be started. */
  NotFound: "GIT_NOT_FOUND",
  /** git exited with a status the operation does not expect. */
  CommandFailed: "GIT_COMMAND_FAILED",
  Timeout: "GIT_TIMEOUT",
  /** git printed more than the output cap; it was killed. */
  OutputLimit: "GIT_OUTPUT_LIMIT",
  /** Another process held a `*.lock` file for longer than the brief retries. */
  Locked: "GIT_LOCKED",
  /** A compare-and-set ref update found the ref elsewhere than expected. */
  RefConflict: "GIT_REF_CONFLICT",
  /** A name or value that git would read as an option, or an invalid ref name. */
  InvalidArgument: "GIT_INVALID_ARGUMENT",
  /** `[git] allow_force_push` is off. */
  ForcePushRefused: "GIT_FORCE_PUSH_REFUSED",
  /** `[git] allow_delete_unmerged_branches` is off. */
  DeleteUnmergedRefused: "GIT_DELETE_UNMERGED_REFUSED",
  /** `[git] allow_destructive_automation` is off. */
  DestructiveRefused: "GIT_DESTRUCTIVE_REFUSED",
} as const;
export type GitErrorCode = (typeof GitErrorCode)[keyof typeof GitErrorCode];

export const WorkspaceErrorCode = {
  /** A project's `localPath` (or a managed directory) is not a git repository. */
  NotARepository: "WORKSPACE_NOT_A_REPOSITORY",
  /** The managed clone under `<workspace>/repos` belongs to another repository than the project's. */
  RepositoryMismatch: "WORKSPACE_REPOSITORY_MISMATCH",
  InvalidBranch: "WORKSPACE_INVALID_BRANCH",
  /** A project or session id that cannot be a path segment and branch name component. */
  InvalidId: "WORKSPACE_INVALID_ID",
  BaseNotFound: "WORKSPACE_BASE_NOT_FOUND",
  /** The run branch (or a session's branch) is not there. */
  BranchMissing: "WORKSPACE_BRANCH_MISSING",
  /** The run branch is checked out in some worktree, which moving it would leave stale. */
  RunBranchCheckedOut: "WORKSPACE_RUN_BRANCH_CHECKED_OUT",
  /** The session's worktree path holds something that is not the session's worktree. */
  PathInUse: "WORKSPACE_PATH_IN_USE",
  /** The session's worktree is no longer on the session's branch. */
  WrongBranch: "WORKSPACE_WRONG_BRANCH",
  /** The session's commits and the run branch change the same lines. */
  Conflict: "WORKSPACE_CONFLICT",
  /** The run branch kept moving under every compare-and-set attempt. */
  Contended: "WORKSPACE_CONTENDED",
  /** The git binary is too old for an operation (merge integration needs git ≥ 2.38). */
  GitTooOld: "WORKSPACE_GIT_TOO_OLD",
  /** A project's `gitUrl` could not be cloned. */
  CloneFailed: "WORKSPACE_CLONE_FAILED",
} as const;
export type WorkspaceErrorCode = (typeof WorkspaceErrorCode)[keyof typeof WorkspaceErrorCode];

/**
 * Replaces the user-info part of every URL (`https://user:token@host` → `https://***@host`).
 * The whole user-info goes, not only the password: hosts accept a bare token as the user name.
 */
export function redactCredentials(text: string): string {
  // Greedy up to the last `@` before the path: a password with an unencoded `@` still goes whole.
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/'"]+@/gi, "$1***@");
}

/** The command as a human would type it, credentials redacted. */
export function describeCommand(args: readonly string[]): string {
  return redactCredentials(["git", ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" "));
}

const STDERR_IN_MESSAGE = 2_000;

function tail(stderr: string): string {
  const s = redactCredentials(stderr.trim());
  return s.length > STDERR_IN_MESSAGE ? `…${s.slice(-STDERR_IN_MESSAGE)}` : s;
}

/** Base of every failure of a git command or of a refused git operation. */
export class GitError extends Error {
  override name = "GitError";
  readonly code: GitErrorCode;
  readonly retryable: boolean;
  constructor(code: GitErrorCode, message: string, opts: { retryable: boolean; cause?: unknown }) {
    super(redactCredentials(message), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.retryable = opts.retryable;
  }
}

export class GitNotFoundError extends GitError {
  override name = "GitNotFoundError";
  constructor(readonly binary: string) {
    super(GitErrorCode.NotFound, `git binary not found: ${binary} (set ORCH_GIT_BINARY)`, { retryable: false });
  }
}

/** What the command was, where, and what git said; shared by the failures of a command that ran. */
export interface GitCommandInfo {
  /** The arguments after `git` (redacted wherever they are shown). */
  args: readonly string[];
  cwd: string;
  stderr: string;
}

export class GitCommandError extends GitError {
  override name = "GitCommandError";
  readonly command: string;
  readonly cwd: string;
  readonly stderr: string;
  constructor(
    info: GitCommandInfo,
    readonly exitCode: number | null,
    detail?: string,
  ) {
    const command = describeCommand(info.args);
    super(
      GitErrorCode.CommandFailed,
      `${command} (in ${info.cwd}) ${detail ?? `exited with ${exitCode ?? "a signal"}`}${info.stderr.trim() ? `: ${tail(info.stderr)}` : ""}`,
      // An unknown failure may be transient (network, disk): the step's bounded retries decide.
      { retryable: true },
    );
    this.command = command;
    this.cwd = info.cwd;
    this.stderr = redactCredentials(info.stderr);
  }
}

export class GitTimeoutError extends GitError {
  override name = "GitTimeoutError";
  constructor(
    info: GitCommandInfo,
    readonly timeoutMs: number,
  ) {
    super(
      GitErrorCode.Timeout,
      `${describeCommand(info.args)} (in ${info.cwd}) timed out after ${timeoutMs} ms${info.stderr.trim() ? `: ${tail(info.stderr)}` : ""}`,
      {
        retryable: true,
      },
    );
  }
}

export class GitOutputLimitError extends GitError {
  override name = "GitOutputLimitError";
  constructor(
    info: GitCommandInfo,
    readonly maxBytes: number,
  ) {
    super(GitErrorCode.OutputLimit, `${describeCommand(info.args)} (in ${info.cwd}) printed more than ${maxBytes} bytes and was stopped`, { retryable: false });
  }
}

export class GitLockedError extends GitError {
  override name = "GitLockedError";
  constructor(
    info: GitCommandInfo,
    readonly attempts: number,
  ) {
    super(
      GitErrorCode.Locked,
      `${describeCommand(info.args)} (in ${info.cwd}) found the repository locked ${attempts} times (another git process, or a stale lock file left by a crash): ${tail(info.stderr)}`,
      { retryable: true },
    );
  }
}

export class GitRefConflictError extends GitError {
  override name = "GitRefConflictError";
  constructor(
    readonly ref: string,
    readonly expected: string | null,
    stderr: string,
  ) {
    super(GitErrorCode.RefConflict, `${ref} is not at ${expected ?? "(absent)"} any more: ${tail(stderr)}`, { retryable: true });
  }
}

export class GitInvalidArgumentError extends GitError {
  override name = "GitInvalidArgumentError";
  constructor(message: string) {
    super(GitErrorCode.InvalidArgument, message, { retryable: false });
  }
}

export class ForcePushRefusedError extends GitError {
  override name = "ForcePushRefusedError";
  constructor(
    readonly remote: string,
    readonly refspecs: readonly string[],
  ) {
    super(
      GitErrorCode.ForcePushRefused,
      `force push to ${remote} (${refspecs.join(" ")}) refused: set ORCH_GIT_ALLOW_FORCE_PUSH=true ([git] allow_force_push) to allow it`,
      {
        retryable: false,
      },
    );
  }
}

export class UnmergedBranchDeleteRefusedError extends GitError {
  override name = "UnmergedBranchDeleteRefusedError";
  constructor(
    readonly branch: string,
    readonly target: string,
  ) {
    super(
      GitErrorCode.DeleteUnmergedRefused,
      `deleting branch ${branch} refused: it is not merged into ${target}; set ORCH_GIT_ALLOW_DELETE_UNMERGED_BRANCHES=true ([git] allow_delete_unmerged_branches) to allow it`,
      { retryable: false },
    );
  }
}

export class DestructiveOperationRefusedError extends GitError {
  override name = "DestructiveOperationRefusedError";
  constructor(
    readonly operation: string,
    reason: string,
  ) {
    super(
      GitErrorCode.DestructiveRefused,
      `${operation} refused: ${reason}; set ORCH_GIT_ALLOW_DESTRUCTIVE_AUTOMATION=true ([git] allow_destructive_automation) to allow it`,
      { retryable: false },
    );
  }
}

/** Base of the workspace manager's own failures (repositories, branches, worktrees, integration). */
export class WorkspaceError extends Error {
  override name = "WorkspaceError";
  readonly code: WorkspaceErrorCode;
  readonly retryable: boolean;
  constructor(code: WorkspaceErrorCode, message: string, opts: { retryable: boolean; cause?: unknown }) {
    super(redactCredentials(message), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.retryable = opts.retryable;
  }
}

export class NotARepositoryError extends WorkspaceError {
  override name = "NotARepositoryError";
  constructor(
    readonly path: string,
    what: string,
  ) {
    super(WorkspaceErrorCode.NotARepository, `${what} ${path} is not a git repository`, { retryable: false });
  }
}

export class RepositoryMismatchError extends WorkspaceError {
  override name = "RepositoryMismatchError";
  constructor(
    readonly path: string,
    expected: string,
    found: string | null,
  ) {
    super(
      WorkspaceErrorCode.RepositoryMismatch,
      `${path} is a clone of ${found ?? "nothing (no origin remote)"}, not of ${expected}; move it away to have it cloned again`,
      { retryable: false },
    );
  }
}

export class InvalidBranchNameError extends WorkspaceError {
  override name = "InvalidBranchNameError";
  constructor(
    readonly branch: string,
    why = "git check-ref-format --branch rejects it",
  ) {
    super(WorkspaceErrorCode.InvalidBranch, `invalid branch name ${JSON.stringify(branch)}: ${why}`, { retryable: false });
  }
}

export class InvalidIdError extends WorkspaceError {
  override name = "InvalidIdError";
  constructor(
    readonly value: string,
    what: string,
  ) {
    super(WorkspaceErrorCode.InvalidId, `invalid ${what} ${JSON.stringify(value)}: must be [A-Za-z0-9_-], 1-128 chars`, { retryable: false });
  }
}

export class BaseNotFoundError extends WorkspaceError {
  override name = "BaseNotFoundError";
  constructor(
    readonly repo: string,
    readonly base: string,
  ) {
    super(WorkspaceErrorCode.BaseNotFound, `base ${base} not found in ${repo} (neither a local branch nor origin/${base})`, { retryable: false });
  }
}

export class BranchMissingError extends WorkspaceError {
  override name = "BranchMissingError";
  constructor(
    readonly repo: string,
    readonly branch: string,
    hint: string,
  ) {
    super(WorkspaceErrorCode.BranchMissing, `branch ${branch} does not exist in ${repo} (${hint})`, { retryable: false });
  }
}

export class RunBranchCheckedOutError extends WorkspaceError {
  override name = "RunBranchCheckedOutError";
  constructor(
    readonly runBranch: string,
    readonly worktreePath: string,
  ) {
    super(
      WorkspaceErrorCode.RunBranchCheckedOut,
      `run branch ${runBranch} is checked out in ${worktreePath}; the agent hub moves run branches without touching any checkout, ` +
        `which would leave that one stale: check out another branch there (or look at the run's work with \`git worktree add\`)`,
      { retryable: false },
    );
  }
}

export class WorktreePathInUseError extends WorkspaceError {
  override name = "WorktreePathInUseError";
  constructor(
    readonly path: string,
    what: string,
  ) {
    super(WorkspaceErrorCode.PathInUse, `session worktree path ${path} is in use: ${what}`, { retryable: false });
  }
}

export class WrongBranchError extends WorkspaceError {
  override name = "WrongBranchError";
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly found: string | null,
  ) {
    super(
      WorkspaceErrorCode.WrongBranch,
      `worktree ${path} is on ${found ?? "a detached HEAD"}, not on the session's branch ${expected}; its work would not be integrated`,
      { retryable: false },
    );
  }
}

export class WorkspaceConflictError extends WorkspaceError {
  override name = "WorkspaceConflictError";
  constructor(
    readonly runBranch: string,
    readonly branch: string,
    readonly files: readonly string[],
  ) {
    super(WorkspaceErrorCode.Conflict, `${branch} conflicts with ${runBranch} in ${files.length} file(s): ${files.join(", ")}`, {
      // A new attempt starts from the run branch as it is now, with the other side's change in it.
      retryable: true,
    });
  }
}

export class WorkspaceContendedError extends WorkspaceError {
  override name = "WorkspaceContendedError";
  constructor(
    readonly runBranch: string,
    readonly attempts: number,
  ) {
    super(WorkspaceErrorCode.Contended, `run branch ${runBranch} moved under each of ${attempts} integration attempts`, { retryable: true });
  }
}

export class GitTooOldError extends WorkspaceError {
  override name = "GitTooOldError";
  constructor(
    readonly version: string,
    readonly needed: string,
    what: string,
  ) {
    super(WorkspaceErrorCode.GitTooOld, `${what} needs git ≥ ${needed}; found ${version}`, { retryable: false });
  }
}

/**
 * What git prints when the network or the remote's server failed, rather than the repository
 * (missing, no access, not a repository): another attempt may well succeed.
 */
const TRANSIENT_REMOTE =
  /could not resolve (host|proxy)|failed to connect|couldn.t connect to server|temporary failure in name resolution|network is unreachable|no route to host|connection (timed out|refused|reset)|operation timed out|timed out after|early eof|the remote end hung up unexpectedly|rpc failed|(returned error|http): (408|429|5\d\d)|gnutls|ssl_(connect|read|error)|tls connection/i;

/**
 * A project's repository could not be cloned. Retryable only when git's failure was the network's
 * (a timeout, an unreachable or failing host): a repository that does not exist, or that we may not
 * read, does not appear on a second attempt.
 */
export class CloneFailedError extends WorkspaceError {
  override name = "CloneFailedError";
  constructor(
    readonly url: string,
    cause: GitError,
  ) {
    const transient = cause instanceof GitTimeoutError || (cause instanceof GitCommandError && TRANSIENT_REMOTE.test(cause.stderr));
    super(WorkspaceErrorCode.CloneFailed, `could not clone ${url}: ${cause.message}`, { retryable: transient, cause });
  }
}
