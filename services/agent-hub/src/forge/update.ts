import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { retryWhileUnavailable, sendCommand, type Bus } from "@orch/bus";
import { PrUpdatePayload, runBranchOf, type ProjectRecord, type RunSignalCommand, type Signal, type WorkItem } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { GitRefConflictError, type GitCli, type WorkspaceManager } from "../git/index.js";
import { apiUrlFor, forgeRedactor, type Env } from "./credentials.js";
import { ForgeRequestError } from "./errors.js";
import { apiUrlsOf, type ForgeConfig } from "./factory.js";
import { askpassEnv } from "./push.js";
import type { ForgeService, ForgeStepOptions } from "./steps.js";

/**
 * `pr.update`, the merge queue's turn for a run (PrUpdatePayload; work of kind `sync`): bring the
 * PR's branch up to the latest base, and tell the core whether what will merge is still what was
 * approved. Answered with the signal `mq_updated` on the command stream (never a step result):
 *
 *   1. fetch origin's base and head (the forge's token through the askpass program, as a push)
 *   2. before = patch-id of diff(merge-base(approved, base)..approved), approved = `approvedSha` or
 *      the head fetched
 *   3. head already contains base: nothing to do, nothing pushed. Else, in a temporary worktree
 *      detached at the head (the repository's own checkout is never touched):
 *        rebase  when asked, the hub may force-push (ORCH_GIT_ALLOW_FORCE_PUSH) and head is the run's
 *                branch: `git rebase <base>`, pushed with `--force-with-lease=<head>:<old head>`
 *        merge   otherwise: `git merge <base>`, a plain push (the new head descends from the old)
 *   4. after = patch-id of diff(merge-base(new head, base)..new head)
 *
 * A conflict abandons the update (rebase or merge aborted, nothing pushed) and is answered with its
 * files and git's message; any other failure (no token, the host unreachable, a push refused) with
 * `error`. Every text that leaves is redacted of every forge token. The answer's command id is
 * `mq-updated:<attemptId>`, so a redelivered item's second answer is dropped as a duplicate.
 *
 * Equal patch-ids mean the approval still covers the change (it moved, it did not change);
 * absent ones mean no change at all (or, for `approvedPatchId`, an approved commit the origin no
 * longer has), which the core must not take as "equal" to a change.
 */

export type MqUpdated = Omit<Extract<Signal, { name: "mq_updated" }>, "name">;

export type UpdateStrategy = NonNullable<MqUpdated["strategy"]>;

export interface PrUpdateOptions {
  git: GitCli;
  workspaces: Pick<WorkspaceManager, "repoFor">;
  project: (projectId: string) => Promise<ProjectRecord | undefined>;
  cfg: Pick<ForgeConfig, "ORCH_GITHUB_API_URL" | "ORCH_GITLAB_API_URL">;
  /** Where tokens come from; process.env when unset. */
  env?: Env;
  askpassDir?: string;
  /** Where temporary worktrees are made; the system's temporary directory when unset. */
  tmpDir?: string;
}

/** How an answer goes out: `sendCommand` on the bus, retried through an outage (see `sendThrough`). */
export type SendCommand = (cmd: RunSignalCommand, correlationId?: string) => Promise<unknown>;

const MESSAGE_MAX = 4_000;

/** The merge queue's update of one run's PR; always an answer (never throws but for a bug). */
export async function updatePullRequest(item: WorkItem, opts: PrUpdateOptions, log: Logger): Promise<MqUpdated> {
  const redact = forgeRedactor(opts.env ?? process.env);
  const p = PrUpdatePayload.safeParse(item.payload ?? {});
  if (!p.success) {
    const issues = p.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; ");
    return { attemptId: item.attemptId, error: redact(`invalid ${item.type} payload: ${issues}`).slice(0, MESSAGE_MAX) };
  }
  const u = new Update(item, p.data, opts, log);
  try {
    // git's messages (a conflict's included) may quote a URL or a server's reply.
    return redact(await u.run());
  } catch (err) {
    const message = redact(err instanceof Error ? err.message : String(err)).slice(0, MESSAGE_MAX);
    log.warn({ code: (err as { code?: unknown }).code, strategy: u.strategy }, `pr.update failed: ${message}`);
    return { attemptId: item.attemptId, ...(u.strategy ? { strategy: u.strategy } : {}), error: message };
  }
}

/** The `run.signal` command that answers a `pr.update` attempt. */
export function mqUpdatedCommand(item: Pick<WorkItem, "runId" | "attemptId">, answer: MqUpdated): RunSignalCommand {
  return {
    type: "run.signal",
    commandId: `mq-updated:${item.attemptId}`,
    runId: item.runId,
    issuedAt: Date.now(),
    actor: "agent-hub",
    signal: { name: "mq_updated", ...answer },
  };
}

/** Sends commands on `bus`, through a NATS outage of up to a minute (the work is done: answer it rather than do it again). */
export function sendThrough(bus: Bus): SendCommand {
  return (cmd, correlationId) => retryWhileUnavailable(() => sendCommand(bus, cmd, correlationId ? { correlationId } : {}), { deadlineMs: 60_000 });
}

/** A `pr.update` work item as the hub's forge work runs it (steps.ts routes it here): answered on the bus. */
export async function runPrUpdateStep(
  item: WorkItem,
  forge: ForgeService,
  opts: Pick<ForgeStepOptions, "bus" | "logger">,
  correlationId?: string,
): Promise<void> {
  await runPrUpdate(item, { ...forge.options, send: sendThrough(opts.bus), logger: opts.logger }, correlationId);
}

/** Runs one dispatched `pr.update` and answers the run with `mq_updated`. */
export async function runPrUpdate(item: WorkItem, opts: PrUpdateOptions & { send: SendCommand; logger: Logger }, correlationId?: string): Promise<MqUpdated> {
  const log = opts.logger.child({
    runId: item.runId,
    attemptId: item.attemptId,
    stepType: item.type,
    ...(correlationId ? { correlationId } : {}),
  });
  const startedAt = Date.now();
  const answer = await updatePullRequest(item, opts, log);
  await opts.send(mqUpdatedCommand(item, answer), correlationId);
  log.info(
    {
      ms: Date.now() - startedAt,
      strategy: answer.strategy,
      headSha: answer.headSha,
      same: answer.patchId !== undefined && answer.patchId === answer.approvedPatchId,
      conflict: answer.conflict?.files,
      error: answer.error !== undefined,
    },
    "pr.update answered",
  );
  return answer;
}

class Update {
  strategy: UpdateStrategy | undefined;
  readonly #git: GitCli;

  constructor(
    readonly item: WorkItem,
    readonly p: PrUpdatePayload,
    readonly o: PrUpdateOptions,
    readonly log: Logger,
  ) {
    this.#git = o.git;
  }

  async run(): Promise<MqUpdated> {
    const { item, p } = this;
    const git = this.#git;
    const repo = await this.o.workspaces.repoFor(await this.o.project(item.projectId), item.projectId);
    for (const b of [p.head, p.base]) {
      if (!(await git.isValidBranchName(repo, b))) throw new ForgeRequestError(`invalid branch name ${JSON.stringify(b)}`);
    }
    if (p.head === p.base) throw new ForgeRequestError(`the pull request's head and base are both ${p.base}`);
    this.strategy = this.#strategy();

    const origin = await git.remoteUrl(repo, "origin");
    if (origin === null) throw new ForgeRequestError("the repository has no origin to update the pull request's branch on");
    const env = askpassEnv({
      origin,
      forge: p.forge,
      apiUrl: apiUrlFor(p.forge, apiUrlsOf(this.o.cfg)),
      ...(this.o.env ? { env: this.o.env } : {}),
      ...(this.o.askpassDir ? { askpassDir: this.o.askpassDir } : {}),
      logger: this.log,
      what: `updating ${p.head}`,
    });
    const auth = env ? { env } : {};
    await git.fetchRemoteBranches(repo, "origin", [p.base, p.head], auth);
    const base = await git.resolveCommit(repo, `refs/remotes/origin/${p.base}`);
    if (base === null) throw new ForgeRequestError(`origin has no branch ${p.base}`);
    const head = await git.resolveCommit(repo, `refs/remotes/origin/${p.head}`);
    if (head === null) throw new ForgeRequestError(`origin has no branch ${p.head}`);

    const approvedPatchId = await this.#approvedChange(repo, head, base, auth);
    const answer = (headSha: string, patchId: string | undefined): MqUpdated => ({
      attemptId: item.attemptId,
      headSha,
      ...(this.strategy ? { strategy: this.strategy } : {}),
      ...(approvedPatchId ? { approvedPatchId } : {}),
      ...(patchId ? { patchId } : {}),
    });

    if (await git.isAncestor(repo, base, head)) {
      this.log.info({ head, base }, `${p.head} already contains ${p.base}: nothing to update`);
      return answer(head, await this.#change(repo, head, base));
    }

    const dir = await mkdtemp(join(this.o.tmpDir ?? tmpdir(), "orch-pr-update-"));
    const wt = join(dir, "worktree");
    try {
      await git.worktreeAddDetached(repo, wt, head);
      const outcome = this.strategy === "rebase" ? await git.rebase(wt, base) : await git.merge(wt, base, `Merge ${p.base} into ${p.head}`);
      if (!outcome.clean) {
        this.log.info({ files: outcome.conflicts, strategy: this.strategy }, `updating ${p.head} onto ${p.base} conflicts; left as it was`);
        return { ...answer(head, undefined), conflict: { files: outcome.conflicts.slice(0, 200), message: trimMessage(outcome.message) } };
      }
      const next = await git.revParse(wt, "HEAD");
      if (next !== head) {
        if (this.strategy === "rebase") await git.pushWithLease(wt, "origin", next, p.head, head, auth);
        else await git.push(wt, "origin", [`${next}:refs/heads/${p.head}`], auth);
        this.log.info({ from: head, to: next, strategy: this.strategy }, `${p.head} updated onto ${p.base} and pushed`);
        await this.#followLocally(repo, head, next);
      }
      return answer(next, await this.#change(repo, next, base));
    } finally {
      await this.#removeWorktree(repo, dir, wt);
    }
  }

  /** Rebase only when asked, allowed to force-push, and pushing to the run's own branch. */
  #strategy(): UpdateStrategy {
    if (this.p.strategy !== "rebase") return "merge";
    if (!this.#git.policy.allowForcePush) {
      this.log.info("force pushes are not allowed (ORCH_GIT_ALLOW_FORCE_PUSH): merging the base instead of rebasing");
      return "merge";
    }
    const runBranch = this.item.workspace?.branch ?? runBranchOf(this.item.runId);
    if (this.p.head !== runBranch) {
      this.log.warn({ head: this.p.head, runBranch }, "the pull request's head is not the run's branch: merging the base instead of force-pushing it");
      return "merge";
    }
    return "rebase";
  }

  /** The change the approval was given to; undefined when the approved commit cannot be had. */
  async #approvedChange(repo: string, head: string, base: string, auth: { env?: Record<string, string> }): Promise<string | undefined> {
    const want = this.p.approvedSha;
    if (want === undefined) return this.#change(repo, head, base);
    let approved = await this.#git.resolveCommit(repo, want);
    if (approved === null && (await this.#git.fetchCommit(repo, "origin", want, auth))) approved = await this.#git.resolveCommit(repo, want);
    if (approved === null) {
      this.log.warn({ approvedSha: want }, "the approved commit is not in the repository nor on origin: no patch-id for what was approved");
      return undefined;
    }
    return this.#change(repo, approved, base);
  }

  /** The PR's change at `tip`: patch-id of merge-base(tip, base)..tip. */
  async #change(repo: string, tip: string, base: string): Promise<string | undefined> {
    const from = (await this.#git.mergeBase(repo, tip, base)) ?? base;
    return (await this.#git.patchId(repo, from, tip)) ?? undefined;
  }

  /**
   * The local run branch follows what was pushed when it was at the old head (it held nothing
   * more), so the run's next session forks from the updated branch and its push is not refused.
   * A local branch with commits of its own, or checked out somewhere, is left alone.
   */
  async #followLocally(repo: string, from: string, to: string): Promise<void> {
    const git = this.#git;
    const branch = this.p.head;
    const local = await git.resolveCommit(repo, `refs/heads/${branch}`);
    if (local === null || local === to) return;
    const holder = (await git.worktreeList(repo).catch(() => [])).find((w) => w.branch === `refs/heads/${branch}`);
    if (local !== from || holder) {
      this.log.warn({ branch, local, from, checkedOut: holder?.path }, `the local ${branch} was not at the head updated (or is checked out): left as it is`);
      return;
    }
    try {
      if (this.strategy === "rebase") await git.followForcePush(repo, branch, to, from);
      else await git.updateRef(repo, `refs/heads/${branch}`, to, from, "orchestrator: merge queue update");
    } catch (err) {
      // The update is pushed: the answer stands whatever happens to the local copy.
      const why = err instanceof GitRefConflictError ? "it moved meanwhile" : (err as Error).message;
      this.log.warn({ branch }, `the local ${branch} was not moved to the update (${why}): left as it is`);
    }
  }

  /**
   * The temporary worktree goes whatever happened. Nothing in it is anyone's work (a detached
   * checkout of pushed commits, and a rebase or merge of them), so one `worktree remove` refuses
   * (a failure left it dirty) is deleted and pruned.
   */
  async #removeWorktree(repo: string, dir: string, wt: string): Promise<void> {
    try {
      await this.#git.worktreeRemove(repo, wt);
    } catch (err) {
      this.log.debug({ err }, "temporary worktree not removed cleanly: deleting it");
    }
    await rm(dir, { recursive: true, force: true });
    await this.#git.worktreePrune(repo).catch((err: unknown) => this.log.warn({ err }, "could not prune the temporary worktree"));
  }
}

/** git's message, without its hints and progress, bounded. */
function trimMessage(message: string): string {
  const lines = message
    .split(/\r\n|\r|\n/)
    .map((l) => l.trimEnd())
    .filter((l) => l !== "" && !/^hint:/.test(l) && !/^Rebasing \(\d+\/\d+\)$/.test(l));
  const text = lines.join("\n");
  return text.length > MESSAGE_MAX ? `${text.slice(0, MESSAGE_MAX - 1)}…` : text;
}
