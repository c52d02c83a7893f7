import { existsSync } from "node:fs";
import { decode, encode, getRunView, listRunSessions, type Bus } from "@orch/bus";
import {
  CommitSha,
  STEP_DIFF,
  STEP_DIFF_FILE_MAX_BYTES,
  STEP_DIFF_MAX_BYTES,
  StepDiffErrorCode,
  StepDiffReply,
  StepDiffRequest,
  type DiffCommit,
  type SessionRecord,
  type StepDiff,
} from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { GitCommandError, GitOutputLimitError, GitTimeoutError, type GitCli } from "../git/index.js";
import { RepoFailure } from "../repos.js";
import type { Redact } from "../supervisor/index.js";
import { boundFiles, parseNumstat, parsePatch, type Bounds } from "./patch.js";

/**
 * The agent hub's side of a step's diff (@orch/contracts `diffs.ts`): any hub of the `agent-hub`
 * queue group answers. The commits are read from the run's session records (those of the step's
 * attempt that committed), so only what the run made is ever shown; git runs where the project's
 * repository is (sessions' worktrees share its objects), read only. Secrets this hub knows are
 * redacted from the whole patch before it is cut, so no secret is ever half shown.
 */

export interface StepDiffDeps {
  bus: Bus;
  /** A GitCli with an output limit: a commit whose patch is larger is listed by `--numstat` only. */
  git: Pick<GitCli, "showCommit">;
  /** The project's repository on this hub (throws RepoFailure). */
  repository: (projectId: string) => Promise<string>;
  redact: Redact;
  logger: Logger;
  /** Whether a path exists (tests may pass it). */
  exists?: (path: string) => boolean;
  /** The run's sessions (tests may pass them). */
  sessions?: (runId: string) => Promise<SessionRecord[]>;
}

class DiffFailure extends Error {
  override readonly name = "DiffFailure";
  constructor(
    readonly code: StepDiffErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const REPO_CODES: Record<string, StepDiffErrorCode> = { NOT_FOUND: StepDiffErrorCode.NotFound, BAD_REQUEST: StepDiffErrorCode.BadRequest };

/** What git said went wrong (its last stderr line). */
function why(e: unknown): string {
  if (e instanceof GitCommandError) return e.stderr.trim().split("\n").at(-1) || "git failed";
  if (e instanceof GitTimeoutError) return `timed out after ${e.timeoutMs} ms`;
  return e instanceof Error ? e.message : String(e);
}

export class StepDiffService {
  constructor(private readonly deps: StepDiffDeps) {}

  start(): { stop(): void } {
    const { bus, logger } = this.deps;
    const sub = bus.nc.subscribe(bus.names.subjects.query(STEP_DIFF), {
      queue: "agent-hub",
      callback: (_err, msg) => {
        this.answer(msg.data, bus.nc.info?.max_payload)
          .then((out) => msg.respond(out))
          .catch((err: unknown) => logger.warn({ err }, "could not answer a diff request"));
      },
    });
    return { stop: () => sub.unsubscribe() };
  }

  /**
   * An encoded reply (never throws). An answer over `maxBytes` (the server's max payload; JSON
   * escaping can double a patch) is built again with half the patch text, until it fits.
   */
  async answer(data: Uint8Array, maxBytes = Number.POSITIVE_INFINITY): Promise<Uint8Array> {
    const d = decode(StepDiffRequest, data);
    if (!d.ok) return this.#error(StepDiffErrorCode.BadRequest, `Invalid diff request: ${d.error}`);
    const req = d.value;
    try {
      const sessions = await this.#sessions(req);
      for (let budget = STEP_DIFF_MAX_BYTES; ; budget = Math.floor(budget / 2)) {
        const out = encode(StepDiffReply, { ok: true, diff: await this.#diff(req, sessions, budget) });
        if (out.length <= maxBytes || budget < 1024)
          return out.length <= maxBytes ? out : this.#error(StepDiffErrorCode.Unavailable, "The diff is larger than the bus allows");
      }
    } catch (e) {
      if (e instanceof DiffFailure) return this.#error(e.code, e.message);
      this.deps.logger.warn({ err: e, runId: req.runId, stepId: req.stepId }, "diff request failed");
      return this.#error(StepDiffErrorCode.Unavailable, "The diff could not be read; try again shortly");
    }
  }

  #error(code: StepDiffErrorCode, message: string): Uint8Array {
    return encode(StepDiffReply, { ok: false, error: { code, message: this.deps.redact(message) } });
  }

  /** The step's sessions of that attempt that committed, oldest first. */
  async #sessions(req: StepDiffRequest): Promise<SessionRecord[]> {
    const all = await (this.deps.sessions ?? ((id: string) => listRunSessions(this.deps.bus, id)))(req.runId);
    if (all.length === 0 && !(await getRunView(this.deps.bus, req.runId))) throw new DiffFailure(StepDiffErrorCode.NotFound, `Run ${req.runId} not found`);
    const step = all.filter((s) => s.stepId === req.stepId);
    const mine = step.filter((s) => s.attempt === req.attempt && s.result?.commit && CommitSha.safeParse(s.result.commit).success);
    if (mine.length === 0)
      throw new DiffFailure(
        StepDiffErrorCode.NotFound,
        step.length === 0 ? `Step ${req.stepId} of run ${req.runId} ran no session` : `Step ${req.stepId} made no commit in attempt ${req.attempt}`,
      );
    return mine.sort((a, b) => a.createdAt - b.createdAt);
  }

  async #diff(req: StepDiffRequest, sessions: SessionRecord[], budget: number): Promise<StepDiff> {
    const repo = await this.#repository(sessions[0]!);
    const bounds: Bounds = { fileMax: Math.min(STEP_DIFF_FILE_MAX_BYTES, budget), left: budget };
    const seen = new Set<string>();
    const commits: DiffCommit[] = [];
    let truncated = false;
    for (const s of sessions) {
      const sha = s.result!.commit!;
      if (seen.has(sha)) continue;
      seen.add(sha);
      const c = await this.#commit(repo, sha, s.worktree?.branch ?? s.worktree?.runBranch ?? "", bounds);
      truncated ||= c.truncated === true;
      commits.push(c);
    }
    return { runId: req.runId, stepId: req.stepId, attempt: req.attempt, commits, truncated };
  }

  /**
   * Where the commits are: the project's repository on this hub; for a project with no record (its
   * sessions work in a scratch repository) or none here yet, the repository the session recorded,
   * when this hub has it.
   */
  async #repository(s: SessionRecord): Promise<string> {
    try {
      return await this.deps.repository(s.projectId);
    } catch (e) {
      if (!(e instanceof RepoFailure)) throw e;
      const recorded = s.worktree?.repo;
      if (recorded && (this.deps.exists ?? existsSync)(recorded)) return recorded;
      throw new DiffFailure(REPO_CODES[e.code] ?? StepDiffErrorCode.Unavailable, e.message);
    }
  }

  async #commit(repo: string, sha: string, branch: string, bounds: Bounds): Promise<DiffCommit> {
    const { git, redact } = this.deps;
    const gitFailed = (e: unknown) => new DiffFailure(StepDiffErrorCode.GitError, `git could not show commit ${sha.slice(0, 12)}: ${why(e)}`);
    try {
      const shown = await git.showCommit(repo, sha);
      const files = parsePatch(shown.body).map((f) => ({ ...f, patch: redact(f.patch) }));
      const truncated = boundFiles(files, bounds);
      return { sha, message: redact(shown.message), branch, files, ...(truncated ? { truncated } : {}) };
    } catch (e) {
      if (!(e instanceof GitOutputLimitError)) throw gitFailed(e);
    }
    // Too large to read whole: which files changed, and by how much.
    try {
      const shown = await git.showCommit(repo, sha, { stat: true });
      return { sha, message: redact(shown.message), branch, files: parseNumstat(shown.body), truncated: true };
    } catch (e) {
      throw gitFailed(e);
    }
  }
}
