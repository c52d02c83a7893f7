import { createHash } from "node:crypto";
import { getRunView, retryWhileUnavailable, sendCommand, type Bus } from "@orch/bus";
import type { AgentHubConfig } from "@orch/config";
import {
  FINAL_SESSION_STATUSES,
  ProjectRecord,
  StepErrorCode,
  type SessionRecord,
  type SessionWorktree,
  type StepError,
  type StepResultCommand,
  type WorkItem,
  runBranchOf,
} from "@orch/contracts";
import { advanceSession, createSession, type PersistedSession, type SessionEvent as LifecycleEvent } from "./lifecycle.js";
import type { Logger } from "@orch/logging";
import { MockDirective } from "../adapters/index.js";
import type { Executor, ExecutorResult, SessionContext } from "../executors/types.js";
import type { ForgeService } from "../forge/steps.js";
import type { WorkspaceManager } from "../git/workspace.js";
import type { Limits } from "./limits.js";
import { isAlive, killGroup, processStartTime } from "./processes.js";
import { SessionConflictError, SessionEmitter, type SessionStore, type Stored } from "./store.js";
import type { RunWatch } from "./watch.js";

/**
 * The session runner: one worker session per dispatched step attempt of a role.
 *
 *   record created (bucket `sessions`, compare-and-set) → wait for the executor's and provider's
 *   concurrency slots → git worktree on a branch of its own → START → executor runs, emitting
 *   session events; heartbeats → commit what it left → integrate into the run's branch → COMPLETE
 *   or FAIL → worktree cleaned up (kept on failure when configured) → step result to the core.
 *
 * It stops a session when the run no longer waits for its attempt (cancelled, timed out by the
 * core, retried), when someone cancels it, when it sends no heartbeat past its deadline, and when
 * the hub shuts down; the executor's process group is killed within the grace period. A session
 * found unfinished with no live owner (its hub died) is failed as lost and its step reported failed
 * (retryable), so the core retries it: none is left running forever.
 */

/** What the runner needs of the workspace manager (git/workspace.ts). */
export type Workspaces = Pick<WorkspaceManager, "repoFor" | "ensureRunBranch" | "createSessionWorktree" | "commitAll" | "integrate" | "cleanup">;

export interface Router {
  /** The executor routed to a role (its name even when it is not available here). */
  nameFor(role: string): string;
  get(name: string): Executor | undefined;
  /** The model for a role, for executors that take one from routing. */
  modelFor(role: string, executor: string): string | undefined;
}

export interface RunnerOptions {
  bus: Bus;
  logger: Logger;
  cfg: Pick<AgentHubConfig, "ORCH_SESSION_HEARTBEAT_MS" | "ORCH_SESSION_TIMEOUT_MS" | "ORCH_SESSION_KILL_GRACE_MS" | "ORCH_KEEP_FAILED_WORKTREES"> &
    Partial<Pick<AgentHubConfig, "ORCH_SESSION_DELTA_FLUSH_MS">>;
  hubId: string;
  store: SessionStore;
  limits: Limits;
  router: Router;
  workspaces: Workspaces;
  /** Says when the run no longer waits for an attempt. */
  watch: Pick<RunWatch, "watch">;
  /** Aborted when the hub stops. */
  signal: AbortSignal;
  /** Forge I/O around a session: a CI fix attempt's failing log before, a push after (forge/steps.ts). */
  forge?: Pick<ForgeService, "ciFailureFeedback" | "pushAfterSession">;
}

/** Why a session was stopped from outside the executor. */
type StopReason = { kind: "cancel"; reason: string; actor?: string } | { kind: "timeout" } | { kind: "step_timeout" } | { kind: "shutdown" };

class StopError extends Error {
  constructor(readonly stop: StopReason) {
    super(stop.kind);
  }
}

interface Active {
  runId: string;
  stepId: string;
  attemptId: string;
  stop(reason: StopReason): void;
  done: Promise<void>;
}

/** A session id for a step attempt: readable (step, attempt) and unique (a hash of the attempt id). */
export function sessionIdOf(item: Pick<WorkItem, "stepId" | "attempt" | "attemptId" | "kind">): string {
  const h = createHash("sha256").update(item.attemptId).digest("hex").slice(0, 12);
  const kind = item.kind === "execute" ? "" : `${item.kind}-`;
  return `${item.stepId.slice(0, 64)}-${kind}a${item.attempt}-${h}`;
}

const HUB_PROCESS = `${process.pid}:${processStartTime(process.pid) ?? "0"}`;

const errorOf = (err: unknown, fallback: { code: string; retryable: boolean }): StepError => {
  const e = err as { code?: unknown; message?: unknown; retryable?: unknown };
  return {
    code: typeof e?.code === "string" && /^[A-Z][A-Z0-9_]*$/.test(e.code) ? e.code : fallback.code,
    message: typeof e?.message === "string" ? e.message : String(err),
    retryable: typeof e?.retryable === "boolean" ? e.retryable : fallback.retryable,
  };
};

export class SessionRunner {
  readonly #active = new Map<string, Active>();
  readonly #o: RunnerOptions;

  constructor(opts: RunnerOptions) {
    this.#o = opts;
  }

  /** Sessions running in this hub. */
  get active(): ReadonlyMap<string, Active> {
    return this.#active;
  }

  /** Stops a local session; false when it does not run here. */
  cancel(sessionId: string, reason: string, actor?: string): boolean {
    const a = this.#active.get(sessionId);
    if (!a) return false;
    a.stop({ kind: "cancel", reason, ...(actor ? { actor } : {}) });
    return true;
  }

  /** Runs the step attempt's session (or answers for one that already ran). */
  async run(item: WorkItem, correlationId?: string): Promise<void> {
    const sessionId = sessionIdOf(item);
    const log = this.#o.logger.child({
      runId: item.runId,
      stepId: item.stepId,
      attemptId: item.attemptId,
      sessionId,
      ...(correlationId ? { correlationId } : {}),
    });
    const existing = this.#active.get(sessionId);
    if (existing) return existing.done;

    const executorName = this.#o.router.nameFor(item.role);
    let stored: Stored | null = null;
    for (let i = 0; i < 5 && !stored; i++) {
      const prior = await this.#o.store.get(item.runId, sessionId);
      if (prior) {
        await this.#resume(prior, item, log, correlationId);
        return;
      }
      stored = await this.#o.store.create(this.#newRecord(item, sessionId, executorName));
    }
    if (!stored) throw new Error(`session ${sessionId} could not be created`);

    let stop!: (r: StopReason) => void;
    const stopped = new Promise<StopReason>((resolve) => (stop = resolve));
    const ac = new AbortController();
    const active: Active = {
      runId: item.runId,
      stepId: item.stepId,
      attemptId: item.attemptId,
      stop: (r) => {
        stop(r);
        if (!ac.signal.aborted) ac.abort(new StopError(r));
      },
      done: Promise.resolve(),
    };
    const onShutdown = () => active.stop({ kind: "shutdown" });
    this.#o.signal.addEventListener("abort", onShutdown, { once: true });
    this.#active.set(sessionId, active);
    active.done = this.#execute(item, stored, executorName, ac, stopped, log, correlationId).finally(() => {
      this.#o.signal.removeEventListener("abort", onShutdown);
      this.#active.delete(sessionId);
    });
    return active.done;
  }

  #newRecord(item: WorkItem, sessionId: string, executor: string): SessionRecord {
    const now = Date.now();
    const s = createSession({ sessionId, timeoutMs: this.#o.cfg.ORCH_SESSION_TIMEOUT_MS, at: now });
    const model = item.model ?? this.#o.router.modelFor(item.role, executor);
    return {
      v: 1,
      sessionId,
      runId: item.runId,
      projectId: item.projectId,
      stepId: item.stepId,
      attemptId: item.attemptId,
      attempt: item.attempt,
      kind: item.kind,
      role: item.role,
      type: item.type,
      executor,
      ...(model ? { model } : {}),
      hub: this.#o.hubId,
      hubProcess: HUB_PROCESS,
      hubSeenAt: now,
      status: s.status,
      snapshot: s.snapshot as unknown as Record<string, unknown>,
      createdAt: now,
      heartbeatAt: now,
      deadlineAt: s.snapshot.context.deadlineAt,
      seq: 0,
    };
  }

  /**
   * A session record exists for this attempt: answer with its result if it finished; otherwise
   * its owner is either alive (retry later: the work message is redelivered) or gone, and then the
   * session is lost: its process group killed, the step reported failed (retryable).
   */
  async #resume(prior: Stored, item: WorkItem, log: Logger, correlationId?: string): Promise<void> {
    const r = prior.record;
    if (FINAL_SESSION_STATUSES.has(r.status)) {
      if (r.result) await this.#report(item, r, correlationId);
      return;
    }
    if (!this.#ownerGone(r)) throw new Error(`session ${r.sessionId} is still owned by agent hub ${r.hub}; the step will be redelivered`);
    await this.recoverLost(prior, log, "its agent hub stopped while it ran");
  }

  /** Whether the hub that owns an unfinished session is gone. */
  #ownerGone(r: SessionRecord): boolean {
    if (r.hubProcess === HUB_PROCESS) return !this.#active.has(r.sessionId);
    if (r.hub === this.#o.hubId && r.hubProcess) {
      // The same instance on this host: its process tells.
      const [pid, start] = r.hubProcess.split(":");
      if (pid && !isAlive(Number(pid), start)) return true;
    }
    const seen = r.hubSeenAt ?? r.heartbeatAt;
    return Date.now() - seen > 3 * this.#o.cfg.ORCH_SESSION_HEARTBEAT_MS || Date.now() >= r.deadlineAt;
  }

  /** Fails an orphaned session as lost and reports its step failed (retryable). `log` is bound to the session. */
  async recoverLost(prior: Stored, log: Logger, why: string): Promise<void> {
    const r = prior.record;
    if (r.pid) await killGroup(r.pid, { ...(r.pidStart ? { startTime: r.pidStart } : {}), graceMs: this.#o.cfg.ORCH_SESSION_KILL_GRACE_MS });
    const error: StepError = { code: StepErrorCode.SessionLost, message: `session lost: ${why}`, retryable: true };
    const now = Date.now();
    const step = advanceSession(r.snapshot as unknown as PersistedSession, { type: "LOST", at: now, error });
    const next: SessionRecord = {
      ...r,
      status: step.status,
      snapshot: step.snapshot as unknown as Record<string, unknown>,
      finishedAt: now,
      error,
      result: { ok: false, notes: [error.message] },
    };
    const emitter = new SessionEmitter(this.#o.store, r, await this.#o.store.eventCount(r.sessionId), log);
    for (const c of step.changes) emitter.status(c.to, { from: c.from, to: c.to, error });
    next.seq = emitter.seq;
    try {
      await this.#o.store.update(next, prior.revision);
    } catch (err) {
      if (err instanceof SessionConflictError) return; // someone else recovered it
      throw err;
    }
    await emitter.flush();
    // A run that no longer waits for this attempt (finished, retried since) is told nothing.
    const run = await getRunView(this.#o.bus, r.runId).catch(() => undefined);
    const awaited = run === undefined || (run !== null && run.steps.some((s) => s.attemptId === r.attemptId && s.inflight));
    // `log` names the session already (its callers bind runId and sessionId once).
    log.warn(
      { executor: r.executor, pid: r.pid },
      awaited ? `session lost: ${why}; its step is reported failed and will be retried` : `session lost: ${why}; its run no longer waits for it`,
    );
    if (r.worktree) {
      await this.#o.workspaces
        .cleanup(r.worktree, { success: false, keepFailed: this.#o.cfg.ORCH_KEEP_FAILED_WORKTREES })
        .catch((err: unknown) => log.warn({ err }, "could not clean up a lost session's worktree"));
    }
    if (!awaited) return;
    await this.#sendResult(
      { runId: r.runId, stepId: r.stepId, attemptId: r.attemptId, kind: r.kind },
      { ok: false, notes: [error.message], error },
      r.createdAt,
      undefined,
    );
  }

  async #execute(
    item: WorkItem,
    created: Stored,
    executorName: string,
    ac: AbortController,
    stopped: Promise<StopReason>,
    log: Logger,
    correlationId?: string,
  ): Promise<void> {
    const o = this.#o;
    let cur = created;
    const emitter = new SessionEmitter(
      o.store,
      { sessionId: cur.record.sessionId, runId: item.runId, projectId: item.projectId, stepId: item.stepId, attemptId: item.attemptId },
      0,
      log,
      o.cfg.ORCH_SESSION_DELTA_FLUSH_MS,
    );
    let lastActivity = Date.now();
    let writing = Promise.resolve();
    /** Applies a lifecycle event and writes the record (one writer at a time). */
    const transition = (ev: LifecycleEvent | null, patch: Partial<SessionRecord> = {}): Promise<void> => {
      writing = writing.then(async () => {
        const step = ev ? advanceSession(cur.record.snapshot as unknown as PersistedSession, ev) : undefined;
        for (const c of step?.changes ?? [])
          emitter.status(c.to, { from: c.from, to: c.to, ...(c.reason ? { reason: c.reason } : {}), ...(c.error ? { error: c.error } : {}) });
        const ctx = step?.snapshot.context;
        const next: SessionRecord = {
          ...cur.record,
          ...patch,
          ...(step ? { status: step.status, snapshot: step.snapshot as unknown as Record<string, unknown> } : {}),
          ...(ctx
            ? {
                heartbeatAt: ctx.heartbeatAt,
                deadlineAt: ctx.deadlineAt,
                ...(ctx.startedAt !== undefined ? { startedAt: ctx.startedAt } : {}),
                ...(ctx.finishedAt !== undefined ? { finishedAt: ctx.finishedAt } : {}),
                ...(ctx.error ? { error: ctx.error } : {}),
              }
            : {}),
          hubSeenAt: Date.now(),
          seq: emitter.seq,
        };
        cur = await retryWhileUnavailable(() => o.store.update(next, cur.revision), { deadlineMs: 30_000 });
      });
      return writing;
    };

    const executor = o.router.get(executorName);
    if (!executor) {
      const error: StepError = {
        code: StepErrorCode.NoExecutor,
        message: `no executor '${executorName}' for role ${item.role} on this agent hub`,
        retryable: false,
      };
      await transition({ type: "CANCEL", at: Date.now(), reason: error.message }, { error, result: { ok: false, notes: [error.message] } });
      await emitter.flush();
      await this.#sendResult(item, { ok: false, notes: [error.message], error }, cur.record.createdAt, correlationId);
      return;
    }

    // Step timeout, heartbeats, deadline, and whether the run still waits for this attempt.
    const stepTimer = item.timeoutMs ? setTimeout(() => this.#active.get(cur.record.sessionId)?.stop({ kind: "step_timeout" }), item.timeoutMs) : undefined;
    const unwatch = o.watch.watch(item.runId, item.attemptId, (reason) => this.#active.get(cur.record.sessionId)?.stop({ kind: "cancel", reason }));
    let ticking = false;
    const tick = setInterval(() => {
      if (ticking) return;
      ticking = true;
      void (async () => {
        const now = Date.now();
        if (now >= cur.record.deadlineAt && lastActivity <= cur.record.heartbeatAt) {
          this.#active.get(cur.record.sessionId)?.stop({ kind: "timeout" });
          return;
        }
        await transition(lastActivity > cur.record.heartbeatAt ? { type: "HEARTBEAT", at: lastActivity } : null);
      })()
        .catch((err: unknown) => log.warn({ err }, "session heartbeat failed"))
        .finally(() => (ticking = false));
    }, o.cfg.ORCH_SESSION_HEARTBEAT_MS);

    let worktree: SessionWorktree | undefined;
    let release: (() => void) | undefined;
    let outcome: ExecutorResult;
    let commit: Awaited<ReturnType<Workspaces["commitAll"]>> = null;
    const startedAt = Date.now();
    try {
      release = await o.limits.acquire(executor.name, executor.provider, ac.signal);
      const project = await this.#project(item.projectId);
      const repo = await o.workspaces.repoFor(project, item.projectId);
      const runBranch = item.workspace?.branch ?? runBranchOf(item.runId);
      const base = item.workspace?.base ?? project?.baseBranch;
      await o.workspaces.ensureRunBranch(repo, runBranch, base);
      worktree = await o.workspaces.createSessionWorktree({ repo, runBranch, sessionId: cur.record.sessionId, projectId: item.projectId });
      await transition({ type: "START", at: Date.now() }, { worktree });
      // A CI fix attempt is told what failed, with the failing job's log (its useful tail).
      let told = item;
      const ci = await o.forge?.ciFailureFeedback(item, log, ac.signal);
      if (ci) {
        told = { ...item, feedback: item.feedback ? `${item.feedback}\n\n${ci.text}` : ci.text };
        emitter.emit({
          type: "agent.log",
          data: { level: "info", msg: "the failing CI job's log was added to the agent's feedback", keptLines: ci.keptLines, totalLines: ci.totalLines },
        });
      }
      const ctx: SessionContext = {
        item: told,
        sessionId: cur.record.sessionId,
        worktree: { path: worktree.path, branch: worktree.branch, base: worktree.base, repo: worktree.repo },
        ...(cur.record.model ? { model: cur.record.model } : {}),
        signal: ac.signal,
        logger: log,
        emit: (e) => {
          lastActivity = Date.now();
          emitter.emit(e);
        },
        heartbeat: () => {
          lastActivity = Date.now();
        },
        registerProcess: (pid) => {
          const pidStart = processStartTime(pid);
          void transition(null, { pid, ...(pidStart ? { pidStart } : {}) }).catch((err: unknown) =>
            log.warn({ err, pid }, "could not record the session's process"),
          );
        },
      };
      await transition({ type: "STARTED", at: Date.now() });
      log.info({ executor: executor.name, worktree: worktree.path, branch: worktree.branch, runBranch }, "session started");
      outcome = await Promise.race([this.#runExecutor(executor, ctx), stopped.then((r) => Promise.reject(new StopError(r)))]);
      // Whatever the outcome, what the agent left is committed on its branch (kept for inspection on failure).
      commit = await o.workspaces.commitAll(worktree, outcome.commitMessage ?? `${item.role}: ${item.title ?? item.stepId}`);
      if (commit)
        emitter.emit({ type: "agent.commit", data: { sha: commit.sha, branch: worktree.branch, files: commit.files, message: outcome.commitMessage ?? "" } });
      if (outcome.ok) {
        const head = await o.workspaces.integrate(worktree);
        log.info({ runBranch, head, commit: commit?.sha }, "session integrated into the run's branch");
        // The run has a pull request open: its branch goes to the origin again.
        const pushed = await o.forge?.pushAfterSession(item, repo, runBranch, log).catch((err: unknown) => {
          const e = err as { code?: string; message?: string; retryable?: boolean };
          outcome = {
            ...outcome,
            ok: false,
            summary: `the work was integrated but could not be pushed: ${e.message ?? String(err)}`,
            error: { code: e.code ?? StepErrorCode.PushFailed, message: e.message ?? String(err), retryable: e.retryable ?? true },
          };
          return undefined;
        });
        if (pushed) emitter.emit({ type: "agent.log", data: { level: "info", msg: `pushed ${runBranch} to origin`, sha: pushed.sha } });
      }
    } catch (err) {
      const stop = err instanceof StopError ? err.stop : ac.signal.aborted && ac.signal.reason instanceof StopError ? ac.signal.reason.stop : undefined;
      outcome = this.#stoppedOutcome(stop, err, executor.name);
      if (worktree && stop === undefined) {
        // An error after the agent finished (commit, integration): keep its work on its branch.
        commit = commit ?? (await o.workspaces.commitAll(worktree, `${item.role}: ${item.title ?? item.stepId} (unfinished)`).catch(() => null));
      }
    } finally {
      if (stepTimer) clearTimeout(stepTimer);
      clearInterval(tick);
      unwatch();
      release?.();
    }

    // A killed executor's process group goes too (executors kill what they spawn; this is the backstop).
    if (cur.record.pid)
      await killGroup(cur.record.pid, { ...(cur.record.pidStart ? { startTime: cur.record.pidStart } : {}), graceMs: o.cfg.ORCH_SESSION_KILL_GRACE_MS });
    if (worktree) {
      await o.workspaces
        .cleanup(worktree, { success: outcome.ok, keepFailed: o.cfg.ORCH_KEEP_FAILED_WORKTREES })
        .catch((err: unknown) => log.warn({ err }, "could not clean up the session's worktree"));
    }

    const now = Date.now();
    const ended = this.#lifecycleEnd(outcome, now, cur.record.deadlineAt);
    const usage = outcome.usage ? { ...outcome.usage, wallMs: now - startedAt } : undefined;
    const output = outcome.output
      ? {
          ...outcome.output,
          session: {
            id: cur.record.sessionId,
            ...(worktree ? { branch: worktree.branch, runBranch: worktree.runBranch } : {}),
            ...(commit ? { commit: commit.sha } : {}),
          },
        }
      : undefined;
    if (outcome.usage) emitter.emit({ type: "agent.usage", data: { ...outcome.usage, ...(outcome.model ? { model: outcome.model } : {}) } });
    await transition(ended, {
      result: {
        ok: outcome.ok,
        summary: outcome.summary.slice(0, 10_000),
        notes: outcome.notes,
        ...(output ? { output } : {}),
        ...(commit ? { commit: commit.sha } : {}),
      },
      ...(usage ? { usage } : {}),
      ...(outcome.model ? { model: outcome.model } : {}),
    }).catch((err: unknown) => log.error({ err }, "could not record the session's end"));
    await emitter.flush();
    log.info({ ok: outcome.ok, status: cur.record.status, ms: now - startedAt, commit: commit?.sha, error: outcome.error?.code }, "session finished");
    await this.#sendResult(item, { ...outcome, ...(output ? { output } : {}) }, startedAt, correlationId);
  }

  async #runExecutor(executor: Executor, ctx: SessionContext): Promise<ExecutorResult> {
    const { item } = ctx;
    if (item.mode === "mock" && item.payload?.mock !== undefined) {
      const d = MockDirective.safeParse(item.payload.mock);
      if (!d.success) {
        const message = `invalid payload.mock: ${d.error.issues.map((i) => `${i.path.join(".") || "mock"}: ${i.message}`).join("; ")}`;
        return { ok: false, summary: message, notes: [], error: { code: StepErrorCode.AdapterError, message, retryable: false } };
      }
      // A mock delay is a silent agent: it sends no heartbeat (how timeouts are shown).
      if (d.data.delayMs) {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, d.data.delayMs);
          ctx.signal.addEventListener("abort", () => (clearTimeout(t), reject(ctx.signal.reason)), { once: true });
        });
      }
      if (d.data.failTimes !== undefined && item.attempt <= d.data.failTimes) {
        const message = d.data.error ?? `mock failure ${item.attempt} of ${d.data.failTimes}`;
        return { ok: false, summary: message, notes: [message], error: { code: StepErrorCode.MockFailure, message, retryable: d.data.retryable ?? true } };
      }
    }
    try {
      return await executor.run(ctx);
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason ?? err;
      const error = errorOf(err, {
        code: executor.name === "local" ? StepErrorCode.LlmError : executor.name === "stub" ? StepErrorCode.AdapterError : StepErrorCode.HarnessError,
        retryable: true,
      });
      return { ok: false, summary: error.message, notes: [error.message], error };
    }
  }

  #stoppedOutcome(stop: StopReason | undefined, err: unknown, executor: string): ExecutorResult {
    const fail = (error: StepError): ExecutorResult => ({ ok: false, summary: error.message, notes: [error.message], error });
    switch (stop?.kind) {
      case "cancel":
        return fail({ code: StepErrorCode.SessionCancelled, message: `session cancelled: ${stop.reason}`, retryable: false });
      case "timeout":
        return fail({
          code: StepErrorCode.SessionTimedOut,
          message: `session timed out: no heartbeat for ${this.#o.cfg.ORCH_SESSION_TIMEOUT_MS} ms`,
          retryable: true,
        });
      case "step_timeout":
        return fail({ code: "STEP_TIMEOUT", message: "the step's time ran out", retryable: true });
      case "shutdown":
        return fail({ code: StepErrorCode.SessionLost, message: "the agent hub stopped while the session ran", retryable: true });
      default: {
        const code = (err as { code?: unknown })?.code;
        const workspace = typeof code === "string" && code.startsWith("WORKSPACE");
        return fail(
          errorOf(err, {
            code: workspace ? StepErrorCode.WorkspaceError : executor === "local" ? StepErrorCode.LlmError : StepErrorCode.HarnessError,
            retryable: true,
          }),
        );
      }
    }
  }

  /** The lifecycle event that ends the session (a timeout is stamped no earlier than the deadline it is about). */
  #lifecycleEnd(outcome: ExecutorResult, at: number, deadlineAt: number): LifecycleEvent {
    if (outcome.ok) return { type: "COMPLETE", at };
    const code = outcome.error?.code;
    if (code === StepErrorCode.SessionCancelled) return { type: "CANCEL", at, reason: outcome.error!.message.replace(/^session cancelled: /, "") };
    if (code === StepErrorCode.SessionTimedOut) return { type: "TIMEOUT", at: Math.max(at, deadlineAt) };
    if (code === StepErrorCode.SessionLost) return { type: "LOST", at, error: outcome.error! };
    return { type: "FAIL", at, error: outcome.error ?? { code: StepErrorCode.AgentFailed, message: outcome.summary, retryable: false } };
  }

  async #project(projectId: string): Promise<ProjectRecord | undefined> {
    const kv = await this.#o.bus.kv(this.#o.bus.names.buckets.projects);
    const e = await kv.get(projectId);
    if (!e || e.operation !== "PUT" || e.length === 0) return undefined;
    const d = ProjectRecord.safeParse(JSON.parse(new TextDecoder().decode(e.value)));
    return d.success ? d.data : undefined;
  }

  async #report(item: WorkItem, r: SessionRecord, correlationId?: string): Promise<void> {
    const res = r.result!;
    await this.#sendResult(
      item,
      {
        ok: res.ok,
        summary: res.summary ?? "",
        notes: res.notes,
        ...(res.output !== undefined ? { output: res.output as Record<string, unknown> } : {}),
        ...(r.error && !res.ok ? { error: r.error } : {}),
        ...(r.usage ? { usage: r.usage } : {}),
        ...(r.model ? { model: r.model } : {}),
      },
      r.startedAt ?? r.createdAt,
      correlationId,
    );
  }

  async #sendResult(
    item: Pick<WorkItem, "runId" | "stepId" | "attemptId" | "kind">,
    outcome: Pick<ExecutorResult, "ok" | "notes" | "output" | "error" | "usage" | "model"> & { summary?: string },
    startedAt: number,
    correlationId: string | undefined,
  ): Promise<void> {
    const finishedAt = Date.now();
    const cmd: StepResultCommand = {
      type: "step.result",
      commandId: `result:${item.attemptId}`,
      runId: item.runId,
      issuedAt: finishedAt,
      actor: "agent-hub",
      stepId: item.stepId,
      attemptId: item.attemptId,
      kind: item.kind,
      ok: outcome.ok,
      notes: outcome.notes.slice(0, 1_000).map((n) => n.slice(0, 10_000)),
      startedAt,
      finishedAt,
    };
    if (outcome.output !== undefined) cmd.output = outcome.output;
    if (!outcome.ok) cmd.error = outcome.error ?? { code: StepErrorCode.AgentFailed, message: outcome.notes[0] ?? "the agent failed", retryable: false };
    if (outcome.usage)
      cmd.usage = { tokensIn: outcome.usage.tokensIn, tokensOut: outcome.usage.tokensOut, costUsd: outcome.usage.costUsd, wallMs: finishedAt - startedAt };
    if (outcome.model) cmd.model = outcome.model;
    await retryWhileUnavailable(() => sendCommand(this.#o.bus, cmd, correlationId ? { correlationId } : {}), { deadlineMs: 60_000 });
  }
}
