import { randomUUID } from "node:crypto";
import { listRunSessions, readEvents, type Bus, type FeedEvent } from "@orch/bus";
import {
  AGENT_ROLES,
  ErrorCode,
  OrchError,
  isToken,
  type AgentRole,
  type RunView,
  type SessionRecord,
  type StepStatus,
  type StepView,
  type Totals,
} from "@orch/contracts";
import { KeyStore, keyPart } from "./key-store.js";
import { RefusedError, type RunsApi } from "./api.js";

/**
 * Seed 001's tasks and runs, as a thin view over runs of the `task.queue` definition: a seed 001
 * run is an engine run (continued by further engine runs, `<runId>_2`, … once it has finished and
 * a task is added to it), a task is one of its steps (role = the task's role, type `task`, inputs
 * its description and payload). What the engine does not keep is kept durably in the `tasks`
 * bucket: the task record (its client-supplied id → run and step, its metadata), the run record
 * (type, payload, metadata) and the queue (one entry per queued task, keyed by a global sequence,
 * so the queue's order survives any restart). The gateway (`POST /tasks/dispatch`) and the
 * scheduler's worker both dispatch through `dispatchNext`, so they share one queue.
 */

/** A task's role: one of the agent roles. */
export const TASK_ROLES = AGENT_ROLES;
export type TaskRole = AgentRole;
export const TASK_STATUSES = ["queued", "running", "completed", "failed"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
/** A seed 001 run's status, derived from its tasks. */
export type TaskRunStatus = TaskStatus;

export const TASK_DEFINITION = "task.queue";
/** The step type of a task (the agent hub runs it with the role's executor). */
export const TASK_STEP_TYPE = "task";

const NS_TASK = "s001task";
const NS_RUN = "s001run";
const NS_QUEUE = "s001queue";
const NS_SLOT = "s001slot";

interface TaskRecord {
  id: string;
  runId: string;
  engineRunId: string;
  stepId: string;
  seq: number;
  role: TaskRole;
  description: string;
  payload: unknown;
  metadata: Record<string, unknown>;
  queuedAt: number;
}

interface RunRecord001 {
  id: string;
  type: string;
  payload: unknown;
  metadata: Record<string, unknown>;
  createdAt: number;
  seq: number;
}

interface QueueEntry {
  taskId: string;
  engineRunId: string;
  stepId: string;
  seq: number;
}

export interface TaskInput {
  id: string;
  role: TaskRole;
  description: string;
  payload?: unknown;
  runId?: string;
}

export interface TaskLlm {
  executor?: string;
  model?: string;
  usage?: Totals;
}

export interface TaskResult {
  taskId: string;
  status: TaskStatus;
  notes?: string;
  output?: unknown;
  llm?: TaskLlm;
}

export interface TaskView {
  id: string;
  runId: string;
  role: TaskRole;
  description: string;
  payload: unknown;
  status: TaskStatus;
  attempts: number;
  history: { status: TaskStatus; timestamp: string }[];
  metadata: Record<string, unknown>;
  llm: TaskLlm | null;
  result?: TaskResult;
  createdAt: string;
  updatedAt: string;
}

export interface TaskRunView {
  id: string;
  type: string;
  status: TaskRunStatus;
  payload: unknown;
  taskIds: string[];
  metadata: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

export type DispatchOutcome = { dispatched: false } | { dispatched: true; task: TaskView; error?: "no_agent" | "agent_error"; finished: boolean };

const pad = (n: number) => String(n).padStart(15, "0");
const iso = (ms: number) => new Date(ms).toISOString();
const ACTIVE: ReadonlySet<StepStatus> = new Set(["running", "retry_wait", "qa", "needs_qa", "waiting_approval"]);
/** A client-supplied run id: the engine's id rules, with room for the continuation suffix. */
const RUN_ID = /^[A-Za-z0-9_-]{1,110}$/;

export function taskStatusOf(s: StepStatus | undefined): TaskStatus {
  if (s === undefined || s === "pending") return "queued";
  if (ACTIVE.has(s)) return "running";
  if (s === "completed") return "completed";
  return "failed";
}

/** Seed 001: all queued → queued; all terminal → failed if any failed else completed; else running. */
export function deriveRunStatus(statuses: TaskStatus[]): TaskRunStatus {
  if (statuses.every((s) => s === "queued")) return "queued";
  if (statuses.every((s) => s === "completed" || s === "failed")) return statuses.includes("failed") ? "failed" : "completed";
  return "running";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One request's reads of engine runs, their events and sessions (each read once). */
class Reads {
  readonly records = new Map<string, Promise<RunView | null>>();
  readonly events = new Map<string, Promise<FeedEvent[]>>();
  readonly sessions = new Map<string, Promise<SessionRecord[]>>();
  constructor(private readonly svc: TaskService) {}
  record(id: string) {
    let p = this.records.get(id);
    if (!p) this.records.set(id, (p = this.svc.runs.get(id)));
    return p;
  }
  eventsOf(id: string) {
    let p = this.events.get(id);
    if (!p) this.events.set(id, (p = readEvents(this.svc.runs.bus, this.svc.runs.bus.names.subjects.runOf(id)).catch(() => [])));
    return p;
  }
  sessionsOf(id: string) {
    let p = this.sessions.get(id);
    if (!p) this.sessions.set(id, (p = listRunSessions(this.svc.runs.bus, id).catch(() => [])));
    return p;
  }
}

const notFound = (what: string) => new OrchError(ErrorCode.NotFound, `${what} not found`);

export class TaskService {
  readonly store: KeyStore;
  readonly #bus: Bus;

  constructor(
    readonly runs: RunsApi,
    opts: { actor?: string } = {},
  ) {
    this.#bus = runs.bus;
    this.store = new KeyStore(runs.bus, runs.bus.names.buckets.tasks);
    this.actor = opts.actor ?? "seed001";
  }

  readonly actor: string;

  // ── writes ────────────────────────────────────────────────────────────────────────────────────

  /**
   * Queues a task (a repeat id overwrites the task and queues it again: a new step, the old one
   * skipped when it had not run or had failed). Without a run id a `manual` run is created; an
   * unknown run id creates that run.
   */
  async submit(input: TaskInput, who: { correlationId?: string } = {}): Promise<{ queued: number; runId: string }> {
    const [run] = await this.#createOrFindRun(input.runId, "manual", {}, {});
    await this.#enqueue(run, [input], who);
    return { queued: await this.queueSize(), runId: run.id };
  }

  /** A run with one task per role, created at once (the periodic scheduler's runs). */
  async createRun(
    type: string,
    payload: unknown,
    tasks: Omit<TaskInput, "runId">[],
    opts: { metadata?: Record<string, unknown>; runId?: string } = {},
  ): Promise<TaskRunView> {
    const [run] = await this.#createOrFindRun(opts.runId, type, payload, opts.metadata ?? {});
    await this.#enqueue(run, tasks, {});
    return this.requireRun(run.id);
  }

  async #createOrFindRun(runId: string | undefined, type: string, payload: unknown, metadata: Record<string, unknown>): Promise<[RunRecord001, boolean]> {
    if (runId !== undefined) {
      if (!RUN_ID.test(runId)) throw new OrchError(ErrorCode.BadRequest, "runId must match [A-Za-z0-9_-]{1,110}");
      const known = await this.store.get<RunRecord001>(NS_RUN, runId);
      if (known) return [known, false];
      const engine = await this.runs.get(runId);
      if (engine && (engine.definition.id !== TASK_DEFINITION || (engine.labels.s001run ?? runId) !== runId)) {
        throw new OrchError(ErrorCode.Conflict, `run ${runId} is not a run of tasks`);
      }
    }
    const rec: RunRecord001 = { id: runId ?? `run-${randomUUID()}`, type, payload, metadata, createdAt: Date.now(), seq: await this.store.next(NS_RUN) };
    const claimed = await this.store.claim(NS_RUN, rec.id, rec);
    return [claimed.value, claimed.created];
  }

  /** Adds the tasks' steps to the run's open engine run (a continuation when it has finished). */
  async #enqueue(run: RunRecord001, inputs: Omit<TaskInput, "runId">[], who: { correlationId?: string }): Promise<void> {
    if (inputs.length === 0) return;
    const now = Date.now();
    const prepared: { rec: TaskRecord; step: Record<string, unknown> }[] = [];
    for (const t of inputs) {
      const seq = await this.store.next(NS_TASK);
      const stepId = `t${seq}`;
      const payloadObj = t.payload && typeof t.payload === "object" && !Array.isArray(t.payload) ? (t.payload as Record<string, unknown>) : undefined;
      const step = {
        id: stepId,
        role: t.role,
        type: TASK_STEP_TYPE,
        title: t.description.slice(0, 500),
        inputs: { taskId: t.id, description: t.description, ...(t.payload !== undefined ? { payload: t.payload } : {}) },
        ...(payloadObj ? { payload: payloadObj } : {}),
      };
      prepared.push({
        rec: {
          id: t.id,
          runId: run.id,
          engineRunId: "",
          stepId,
          seq,
          role: t.role,
          description: t.description,
          payload: t.payload ?? null,
          metadata: {},
          queuedAt: now,
        },
        step,
      });
    }
    const steps = prepared.map((p) => p.step as Record<string, unknown>);
    const engineRunId = await this.#addSteps(run, steps, who);
    for (const p of prepared) {
      p.rec.engineRunId = engineRunId;
      const prev = await this.store.get<TaskRecord>(NS_TASK, p.rec.id);
      await this.store.put(NS_TASK, p.rec.id, p.rec);
      await this.store.put<QueueEntry>(NS_QUEUE, pad(p.rec.seq), { taskId: p.rec.id, engineRunId, stepId: p.rec.stepId, seq: p.rec.seq });
      if (prev && (prev.engineRunId !== engineRunId || prev.stepId !== p.rec.stepId)) await this.#retire(prev);
    }
  }

  /** The step a task used to be: out of the queue, and skipped unless it is running or done. */
  async #retire(prev: TaskRecord): Promise<void> {
    await this.store.delete(NS_QUEUE, pad(prev.seq)).catch(() => undefined);
    const run = await this.runs.get(prev.engineRunId);
    const st = run?.steps.find((x) => x.id === prev.stepId)?.status;
    if (st === "pending" || st === "failed" || st === "blocked") {
      await this.runs
        .signal(prev.engineRunId, { name: "skip_step", stepId: prev.stepId }, { actor: this.actor, reason: `task ${prev.id} queued again` })
        .catch(() => undefined);
    }
  }

  /** The engine runs of a seed 001 run, in order (the first has the run's own id). */
  async #segments(runId: string, reads?: Reads): Promise<RunView[]> {
    const out: RunView[] = [];
    for (let n = 1; n < 10_000; n++) {
      const id = n === 1 ? runId : `${runId}_${n}`;
      const rec = reads ? await reads.record(id) : await this.runs.get(id);
      if (!rec || rec.definition.id !== TASK_DEFINITION || (rec.labels.s001run ?? runId) !== runId) break;
      out.push(rec);
    }
    return out;
  }

  async #addSteps(run: RunRecord001, steps: Record<string, unknown>[], who: { correlationId?: string }): Promise<string> {
    const actor = { actor: this.actor, ...(who.correlationId ? { correlationId: who.correlationId } : {}) };
    const has = (rec: RunView | null) => !!rec && steps.every((s) => rec.steps.some((x) => x.id === s.id));
    for (let round = 0; round < 20; round++) {
      const segs = await this.#segments(run.id);
      const last = segs.at(-1);
      if (last && !["completed", "failed", "cancelled"].includes(last.status)) {
        try {
          await this.runs.signal(last.runId, { name: "add_steps", steps }, actor);
          return last.runId;
        } catch (err) {
          if (err instanceof RefusedError && err.kernelCode === "TERMINAL_STATE") continue;
          throw err;
        }
      }
      const id = segs.length === 0 ? run.id : `${run.id}_${segs.length + 1}`;
      const created = await this.runs.create(
        {
          definition: { id: TASK_DEFINITION },
          runId: id,
          title: `${run.type} run`,
          labels: { s001run: run.id, s001type: run.type.slice(0, 256) },
          input: { type: run.type, payload: run.payload ?? null },
          steps,
        },
        actor,
      );
      if ("accepted" in created) throw new OrchError(ErrorCode.Unavailable, "the core has not created the run yet; try again shortly");
      // A concurrent submitter may have created this engine run first (without our steps).
      if (has(await this.runs.get(id))) return id;
    }
    throw new OrchError(ErrorCode.Conflict, `could not add the task to run ${run.id}`);
  }

  /** Shallow-merges into a task's metadata (compare-and-set on the task record). */
  async patchMetadata(taskId: string, patch: Record<string, unknown>): Promise<void> {
    const kv = await this.#bus.kv(this.#bus.names.buckets.tasks);
    const key = `${NS_TASK}.${keyPart(taskId)}`;
    for (let i = 0; i < 50; i++) {
      const e = await kv.get(key);
      if (!e || e.operation !== "PUT" || e.length === 0) throw notFound(`task ${taskId}`);
      const rec = JSON.parse(e.string()) as TaskRecord;
      rec.metadata = { ...rec.metadata, ...patch };
      try {
        await kv.update(key, JSON.stringify(rec), e.revision);
        return;
      } catch (err) {
        if (!/wrong last sequence/i.test((err as Error).message)) throw err;
      }
    }
    throw new OrchError(ErrorCode.Conflict, `task ${taskId} is being changed too often`);
  }

  // ── the queue ─────────────────────────────────────────────────────────────────────────────────

  async #queue(): Promise<QueueEntry[]> {
    const entries = await this.store.entries<QueueEntry>(NS_QUEUE);
    return entries.map((e) => e.value).sort((a, b) => a.seq - b.seq);
  }

  /** Tasks waiting in the queue. */
  async queueSize(): Promise<number> {
    const kv = await this.#bus.kv(this.#bus.names.buckets.tasks);
    let n = 0;
    for await (const _ of await kv.keys(`${NS_QUEUE}.>`)) n++;
    return n;
  }

  /**
   * Takes the oldest queued task, dispatches its step (`run_step`) and waits (at most `waitMs`)
   * for its attempt to end. Another dispatcher taking the same task first is not an error: the
   * next one is taken.
   */
  async dispatchNext(opts: { waitMs?: number; correlationId?: string } = {}): Promise<DispatchOutcome> {
    for (const q of await this.#queue()) {
      const rec = await this.store.get<TaskRecord>(NS_TASK, q.taskId);
      if (!rec || rec.engineRunId !== q.engineRunId || rec.stepId !== q.stepId) {
        await this.store.delete(NS_QUEUE, pad(q.seq));
        continue;
      }
      try {
        await this.runs.signal(
          q.engineRunId,
          { name: "run_step", stepId: q.stepId },
          { actor: this.actor, ...(opts.correlationId ? { correlationId: opts.correlationId } : {}) },
        );
      } catch (err) {
        if (err instanceof RefusedError) {
          // Taken by someone else, or no longer runnable: it is not queued any more.
          await this.store.delete(NS_QUEUE, pad(q.seq));
          continue;
        }
        throw err;
      }
      await this.store.delete(NS_QUEUE, pad(q.seq));
      return this.#await(rec, opts.waitMs ?? 120_000);
    }
    return { dispatched: false };
  }

  /** Dispatches a failed task's step again (the worker's retries). */
  async redispatch(taskId: string, opts: { waitMs?: number } = {}): Promise<DispatchOutcome> {
    const rec = await this.store.get<TaskRecord>(NS_TASK, taskId);
    if (!rec) throw notFound(`task ${taskId}`);
    await this.runs.signal(rec.engineRunId, { name: "run_step", stepId: rec.stepId }, { actor: this.actor, reason: "worker retry" });
    return this.#await(rec, opts.waitMs ?? 120_000);
  }

  async #await(rec: TaskRecord, waitMs: number): Promise<DispatchOutcome> {
    const until = Date.now() + waitMs;
    let delay = 50;
    for (;;) {
      const engine = await this.runs.get(rec.engineRunId);
      const step = engine?.steps.find((x) => x.id === rec.stepId);
      const st = step?.status;
      const finished = st !== undefined && st !== "pending" && !ACTIVE.has(st);
      if (finished || Date.now() >= until) {
        const task = await this.#view(rec, new Reads(this));
        const code = step?.errorCode;
        const error = st === "failed" && code === "NO_EXECUTOR" ? "no_agent" : st === "cancelled" || st === "blocked" ? "agent_error" : undefined;
        return { dispatched: true, task, finished, ...(error ? { error } : {}) };
      }
      await sleep(delay);
      delay = Math.min(250, delay * 2);
    }
  }

  // ── reads ─────────────────────────────────────────────────────────────────────────────────────

  async getTask(taskId: string): Promise<TaskView | null> {
    const rec = await this.store.get<TaskRecord>(NS_TASK, taskId);
    return rec ? this.#view(rec, new Reads(this)) : null;
  }

  async requireTask(taskId: string): Promise<TaskView> {
    const t = await this.getTask(taskId);
    if (!t) throw notFound(`task ${taskId}`);
    return t;
  }

  /** Every task, in the order they were queued (last queued last). */
  async listTasks(filter: { status?: TaskStatus } = {}): Promise<TaskView[]> {
    const recs = (await this.store.entries<TaskRecord>(NS_TASK)).map((e) => e.value).sort((a, b) => a.seq - b.seq);
    const reads = new Reads(this);
    const views = await Promise.all(recs.map((r) => this.#view(r, reads)));
    return filter.status ? views.filter((v) => v.status === filter.status) : views;
  }

  async #view(rec: TaskRecord, reads: Reads): Promise<TaskView> {
    const engine = await reads.record(rec.engineRunId);
    const step = engine?.steps.find((x) => x.id === rec.stepId);
    const status = taskStatusOf(step?.status);
    const history: TaskView["history"] = [{ status: "queued", timestamp: iso(rec.queuedAt) }];
    let updatedAt = rec.queuedAt;
    if (step && step.attempt > 0) {
      for (const { event } of await reads.eventsOf(rec.engineRunId)) {
        if (event.data?.stepId !== rec.stepId) continue;
        const to =
          event.type === "step.started"
            ? "running"
            : event.type === "step.succeeded" || event.type === "step.failed" || event.type === "step.cancelled" || event.type === "step.blocked"
              ? taskStatusOf(event.data.to as StepStatus)
              : undefined;
        if (!to) continue;
        history.push({ status: to, timestamp: iso(event.at) });
        updatedAt = Math.max(updatedAt, event.at);
      }
    }
    const llm = step && step.attempt > 0 ? await this.#llm(rec, step, reads) : null;
    const view: TaskView = {
      id: rec.id,
      runId: rec.runId,
      role: rec.role,
      description: rec.description,
      payload: rec.payload,
      status,
      attempts: step?.attempt ?? 0,
      history,
      metadata: rec.metadata,
      llm,
      createdAt: iso(rec.queuedAt),
      updatedAt: iso(Math.max(updatedAt, step?.finishedAt ?? 0)),
    };
    if (status === "completed" || status === "failed") {
      const notes = step?.notes?.length ? step.notes.join("\n") : step?.error;
      view.result = {
        taskId: rec.id,
        status,
        ...(notes !== undefined ? { notes } : {}),
        ...(step?.output !== undefined ? { output: step.output } : {}),
        ...(llm ? { llm } : {}),
      };
    }
    return view;
  }

  async #llm(rec: TaskRecord, step: StepView, reads: Reads): Promise<TaskLlm | null> {
    const sessions = (await reads.sessionsOf(rec.engineRunId)).filter((s) => s.stepId === rec.stepId);
    const session = sessions.find((s) => s.attemptId === step.attemptId) ?? sessions.at(-1);
    const llm: TaskLlm = {
      ...(session?.executor ? { executor: session.executor } : {}),
      ...(session?.model ? { model: session.model } : {}),
      ...(step.usage ? { usage: step.usage } : {}),
    };
    return Object.keys(llm).length > 0 ? llm : null;
  }

  // ── runs ──────────────────────────────────────────────────────────────────────────────────────

  async getRun(runId: string): Promise<TaskRunView | null> {
    if (!isToken(runId)) return null;
    const rec = await this.store.get<RunRecord001>(NS_RUN, runId);
    return rec ? (await this.#runView(rec, new Reads(this))).view : null;
  }

  async requireRun(runId: string): Promise<TaskRunView> {
    const r = await this.getRun(runId);
    if (!r) throw notFound(`run ${runId}`);
    return r;
  }

  async runTasks(runId: string): Promise<TaskView[]> {
    const rec = isToken(runId) ? await this.store.get<RunRecord001>(NS_RUN, runId) : null;
    if (!rec) throw notFound(`run ${runId}`);
    return (await this.#runView(rec, new Reads(this))).tasks;
  }

  /** Runs in creation order, filtered by derived status, a page of them, and how many match. */
  async listRuns(q: { status?: TaskRunStatus; offset: number; limit: number }): Promise<{ data: TaskRunView[]; total: number }> {
    const recs = (await this.store.entries<RunRecord001>(NS_RUN)).map((e) => e.value).sort((a, b) => a.seq - b.seq);
    const reads = new Reads(this);
    if (!q.status) {
      const page = recs.slice(q.offset, q.offset + q.limit);
      return { data: (await Promise.all(page.map((r) => this.#runView(r, reads)))).map((v) => v.view), total: recs.length };
    }
    const all = (await Promise.all(recs.map((r) => this.#runView(r, reads)))).map((v) => v.view).filter((v) => v.status === q.status);
    return { data: all.slice(q.offset, q.offset + q.limit), total: all.length };
  }

  async #runView(rec: RunRecord001, reads: Reads): Promise<{ view: TaskRunView; tasks: TaskView[] }> {
    const segs = await this.#segments(rec.id, reads);
    let updatedAt = rec.createdAt;
    for (const seg of segs) updatedAt = Math.max(updatedAt, seg.updatedAt);
    // The run's tasks where they are now (a task queued again elsewhere belongs there), in queue order.
    const mine = (await this.store.entries<TaskRecord>(NS_TASK))
      .map((e) => e.value)
      .filter((t) => t.runId === rec.id && segs.some((seg) => seg.runId === t.engineRunId && seg.steps.some((x) => x.id === t.stepId)))
      .sort((a, b) => a.seq - b.seq);
    const tasks = await Promise.all(mine.map((t) => this.#view(t, reads)));
    const view: TaskRunView = {
      id: rec.id,
      type: rec.type,
      status: deriveRunStatus(tasks.map((t) => t.status)),
      payload: rec.payload ?? null,
      taskIds: tasks.map((t) => t.id),
      metadata: rec.metadata,
      createdAt: iso(rec.createdAt),
      updatedAt: iso(updatedAt),
    };
    return { view, tasks };
  }

  /** Claims a periodic slot once across schedulers: true for the one that should create its run. */
  async claimSlot(slot: string, runId: string): Promise<boolean> {
    return (await this.store.claim(NS_SLOT, slot, { runId, at: Date.now() })).created;
  }
}
