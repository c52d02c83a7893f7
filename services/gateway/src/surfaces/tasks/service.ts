import { randomUUID } from "node:crypto";
import { listRunSessions, replayTransitions } from "@orch/bus";
import {
  ErrorCode,
  OrchError,
  StepErrorCode,
  TASK_DEFINITION,
  TASK_RUN_TYPES,
  isToken,
  taskRunInput,
  taskStatusOf,
  taskStep,
  type RunView,
  type SessionRecord,
  type StepView,
  type TaskRecord,
  type TaskRole,
  type TaskRunRecord,
  type TaskStatus,
} from "@orch/contracts";
import { PendingError, RefusedError, TasksQueries, type RunsApi } from "@orch/runs";
import type { TaskLlm } from "./mapping.js";

/**
 * Seed 001's tasks over the runs: the surface's commands and queries, deciding nothing. A task is
 * queued by the core (`add_steps` with `replace` on its run, or the run's creation with it), taken
 * by the core (`run_step`, refused atomically when it is no longer queued), annotated by the core
 * (`set_step_metadata`); the queue, the task-id index and the runs' derived statuses are the
 * event-bus's projection (`TasksQueries`). Every write waits until the projection has applied it
 * (the query's `minSeq`), so what a client reads next includes it. Nothing is kept here.
 */

export interface TaskInput {
  id: string;
  role: TaskRole;
  description: string;
  payload?: unknown;
  runId?: string;
}

export interface Who {
  correlationId?: string;
}

export interface DispatchResult {
  taskId: string;
  status: TaskStatus;
  notes?: string;
  output?: unknown;
  llm?: TaskLlm;
}

export type DispatchOutcome = { dispatched: false } | { dispatched: true; result: DispatchResult; error?: "no_agent" | "agent_error" };

const notFound = (what: string) => new OrchError(ErrorCode.NotFound, `${what} not found`);

/** A refusal or an answer that did not come in time (the command is stored): nothing to undo. */
const settled = (err: unknown) => err instanceof RefusedError || err instanceof PendingError;

export class TaskSurface {
  readonly queries: TasksQueries;
  readonly #actor: string;

  constructor(
    readonly runs: RunsApi,
    opts: { actor?: string } = {},
  ) {
    this.queries = new TasksQueries(runs.bus);
    this.#actor = opts.actor ?? "seed001";
  }

  #who(w: Who, reason?: string) {
    return { actor: this.#actor, ...(w.correlationId ? { correlationId: w.correlationId } : {}), ...(reason ? { reason } : {}) };
  }

  // ── writes ────────────────────────────────────────────────────────────────────────────────────

  /**
   * Queues a task: in a new `manual` run without `runId`, else in that run (created with it when it
   * does not exist). A repeat id overwrites the task and queues it again: in the same run its step
   * is reset and queued again (one signal); in another run it is added there and the place it had
   * is withdrawn (each an idempotent command). Answers with the queue's size, this task included.
   */
  async submit(input: TaskInput, who: Who = {}): Promise<{ queued: number; runId: string }> {
    const step = taskStep({
      taskId: input.id,
      role: input.role,
      description: input.description,
      ...(input.payload !== undefined ? { payload: input.payload } : {}),
    });
    const before = await this.queries.get({ taskId: input.id });
    let runId: string;
    let seq: number | undefined;
    if (input.runId === undefined) {
      runId = `run-${randomUUID()}`;
      seq = await this.#create(runId, step, who);
    } else {
      runId = input.runId;
      const summary = await this.runs.summary(runId);
      if (summary && summary.definition.id !== TASK_DEFINITION) throw new OrchError(ErrorCode.Conflict, `run ${runId} is not a run of tasks`);
      seq = summary ? await this.#add(runId, step, who) : await this.#create(runId, step, who);
    }
    const elsewhere = [...(before.task ? [{ runId: before.task.runId, stepId: before.task.stepId }] : []), ...before.others].filter((p) => p.runId !== runId);
    for (const p of elsewhere) {
      await this.runs
        .signal(p.runId, { name: "withdraw_step", stepId: p.stepId }, this.#who(who, `task ${input.id} queued again in run ${runId}`))
        .catch((err: unknown) => {
          if (!settled(err)) throw err;
        });
    }
    return { queued: await this.queries.size(seq !== undefined ? { minSeq: seq } : {}), runId };
  }

  /** Creates the run with the task; when someone else created it first, adds the task to it. */
  async #create(runId: string, step: Record<string, unknown>, who: Who): Promise<number | undefined> {
    const type = TASK_RUN_TYPES.manual;
    const r = await this.runs.createAt(
      { runId, definition: { id: TASK_DEFINITION }, title: `${type} run`, input: taskRunInput(type, null), steps: [step] },
      this.#who(who),
    );
    if ("accepted" in r.run) throw new OrchError(ErrorCode.Unavailable, "the core has not created the run yet: it will; try again shortly");
    if (r.streamSeq !== undefined) return r.streamSeq;
    return this.#add(runId, step, who);
  }

  async #add(runId: string, step: Record<string, unknown>, who: Who): Promise<number | undefined> {
    return (await this.runs.signalAt(runId, { name: "add_steps", steps: [step], replace: true }, this.#who(who))).streamSeq;
  }

  /** Shallow-merges into a task's metadata (the core merges it into its step's). */
  async patchMetadata(taskId: string, patch: Record<string, unknown>, who: Who = {}): Promise<void> {
    const { task } = await this.queries.get({ taskId });
    if (!task) throw notFound(`task ${taskId}`);
    const r = await this.runs.signalAt(task.runId, { name: "set_step_metadata", stepId: task.stepId, metadata: patch }, this.#who(who));
    if (r.streamSeq !== undefined) await this.queries.size({ minSeq: r.streamSeq });
  }

  /**
   * Takes the head of the queue: asks the core to start it (`run_step`; refused when someone took it
   * first, then the next one is taken), follows the run's transitions until that attempt has ended
   * (or `waitMs` has passed), and answers with its outcome. One attempt per dispatch.
   */
  async dispatchNext(opts: { waitMs: number } & Who): Promise<DispatchOutcome> {
    let after = 0;
    for (;;) {
      const head = await this.queries.head({ afterSeq: after });
      if (!head) return { dispatched: false };
      after = head.seq;
      let started: { run: RunView; streamSeq?: number };
      try {
        started = await this.runs.signalAt(head.runId, { name: "run_step", stepId: head.stepId }, this.#who(opts));
      } catch (err) {
        // Taken by someone else (or gone) meanwhile: not queued any more; the next one.
        if (err instanceof RefusedError) continue;
        throw err;
      }
      const { view, streamSeq } = await this.#attemptEnd(head, started, opts.waitMs);
      if (streamSeq !== undefined) await this.queries.size({ minSeq: streamSeq });
      const step = view.steps.find((s) => s.id === head.stepId);
      const status = taskStatusOf(step?.status);
      const error =
        step?.status === "failed" && step.errorCode === StepErrorCode.NoExecutor
          ? "no_agent"
          : step?.status === "cancelled" || step?.status === "blocked"
            ? "agent_error"
            : undefined;
      const llm = step ? this.#llmOf(step, await this.#sessions(head.runId)) : null;
      const notes = step?.notes?.length ? step.notes.join("\n") : step?.error;
      const result: DispatchResult = {
        taskId: head.id,
        status,
        ...((status === "completed" || status === "failed") && notes !== undefined ? { notes } : {}),
        ...((status === "completed" || status === "failed") && step?.output !== undefined ? { output: step.output } : {}),
        ...(llm ? { llm } : {}),
      };
      return { dispatched: true, result, ...(error ? { error } : {}) };
    }
  }

  /** The run's transitions after the one that started the attempt, until one shows it ended. */
  async #attemptEnd(head: TaskRecord, started: { run: RunView; streamSeq?: number }, waitMs: number): Promise<{ view: RunView; streamSeq?: number }> {
    const attemptId = started.run.steps.find((s) => s.id === head.stepId)?.attemptId;
    const ended = (v: RunView) => {
      const s = v.steps.find((x) => x.id === head.stepId);
      return !s || s.attemptId !== attemptId || !s.inflight;
    };
    let last: { view: RunView; streamSeq?: number } = { view: started.run, ...(started.streamSeq !== undefined ? { streamSeq: started.streamSeq } : {}) };
    if (ended(started.run) || started.streamSeq === undefined) return last;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), waitMs);
    try {
      for await (const t of replayTransitions(this.runs.bus, this.runs.bus.names.subjects.runOf(head.runId), {
        startSeq: started.streamSeq + 1,
        signal: ac.signal,
      })) {
        const view = t.transition.view();
        if (!view) continue;
        last = { view, streamSeq: t.streamSeq };
        if (ended(view)) break;
      }
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
    return last;
  }

  // ── reads ─────────────────────────────────────────────────────────────────────────────────────

  async getTask(taskId: string): Promise<{ task: TaskRecord; llm: TaskLlm | null } | null> {
    const { task } = await this.queries.get({ taskId });
    if (!task) return null;
    return { task, llm: await this.#llm(task, new Map()) };
  }

  async listTasks(filter: { status?: TaskStatus } = {}): Promise<{ task: TaskRecord; llm: TaskLlm | null }[]> {
    return this.#withLlm(await this.queries.list(filter));
  }

  async getRun(runId: string): Promise<TaskRunRecord | null> {
    if (!isToken(runId)) return null;
    return (await this.queries.run({ runId })).run;
  }

  async runTasks(runId: string): Promise<{ task: TaskRecord; llm: TaskLlm | null }[]> {
    const r = isToken(runId) ? await this.queries.run({ runId }) : { run: null, tasks: [] };
    if (!r.run) throw notFound(`run ${runId}`);
    return this.#withLlm(r.tasks);
  }

  listRuns(q: { status?: TaskStatus; offset: number; limit: number }) {
    return this.queries.runs(q);
  }

  // ── the executor and model of an attempt: its session's ───────────────────────────────────────

  async #withLlm(tasks: TaskRecord[]): Promise<{ task: TaskRecord; llm: TaskLlm | null }[]> {
    const sessions = new Map<string, Promise<SessionRecord[]>>();
    return Promise.all(tasks.map(async (task) => ({ task, llm: await this.#llm(task, sessions) })));
  }

  #sessions(runId: string, cache?: Map<string, Promise<SessionRecord[]>>): Promise<SessionRecord[]> {
    let p = cache?.get(runId);
    if (!p) {
      p = listRunSessions(this.runs.bus, runId).catch(() => []);
      cache?.set(runId, p);
    }
    return p;
  }

  async #llm(task: TaskRecord, cache: Map<string, Promise<SessionRecord[]>>): Promise<TaskLlm | null> {
    if (task.attempts === 0) return null;
    return this.#llmOf({ id: task.stepId, attemptId: task.attemptId, usage: task.usage }, await this.#sessions(task.runId, cache));
  }

  #llmOf(step: Pick<StepView, "id" | "attemptId" | "usage">, sessions: SessionRecord[]): TaskLlm | null {
    const mine = sessions.filter((s) => s.stepId === step.id);
    const session = mine.find((s) => s.attemptId === step.attemptId) ?? mine.at(-1);
    const llm: TaskLlm = {
      ...(session?.executor ? { executor: session.executor } : {}),
      ...(session?.model ? { model: session.model } : {}),
      ...(step.usage ? { usage: step.usage } : {}),
    };
    return Object.keys(llm).length > 0 ? llm : null;
  }
}
