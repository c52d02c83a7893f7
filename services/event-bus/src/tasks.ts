import {
  TASK_DEFINITION,
  TASK_STEP_TYPE,
  deriveRunStatus,
  taskStatusOf,
  type RunEvent,
  type StepView,
  type TaskLocation,
  type TaskRecord,
  type TaskRunRecord,
  type TaskStatus,
  type TransitionHead,
  type TransitionReader,
  type RunView,
} from "@orch/contracts";

/**
 * Seed 001's task queue as a projection of the runs' transitions (pure, in memory): every run of
 * the `task.queue` definition is a seed 001 run, every step of it a task. A task is queued by the
 * transition that adds it (`run.created` with it, `step.added`, `step.requeued`), and its place in
 * the queue is that transition's runs-stream sequence, so the queue's order is the order tasks were
 * queued in, whatever the run. A client's task id may have been queued in several runs (a repeat id
 * with another run): its latest place is the task, the others are left behind (and withdrawn by
 * whoever queued it again). The task's status, attempts, result and metadata are its step's, as
 * each transition's view shows it; its history is its step's status changes, from the events.
 *
 * Fed by the event-bus's run-index consumer (in stream order), and at start by the replay of each
 * task run the run index holds, one run after the other: what decides is always a sequence, never
 * arrival order, and a transition seen twice (its run's number `n` not above the last one applied)
 * changes nothing.
 */

const OPEN: ReadonlySet<string> = new Set(["pending", "running", "retry_wait", "qa", "needs_qa", "waiting_approval", "failed", "blocked"]);

interface Place {
  runId: string;
  stepId: string;
  taskId: string;
  /** The sequence of the transition that queued it (last). */
  seq: number;
  queuedAt: number;
  /** The step's attempts when it was queued (last): the task's attempts are those since. */
  attemptBase: number;
  history: { status: TaskStatus; at: number }[];
  step: StepView | undefined;
  /** The step's view as JSON, to tell a change. */
  sig: string;
  updatedAt: number;
}

interface Run {
  id: string;
  projectId: string;
  type: string;
  payload: unknown;
  metadata: Record<string, unknown>;
  createdAt: number;
  /** The sequence of the first transition seen (its creation): orders runs created in the same millisecond. */
  firstSeq: number;
  updatedAt: number;
  /** The last transition applied (its number in the run). */
  n: number;
  places: Map<string, Place>;
}

const obj = (v: unknown): Record<string, unknown> => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

export class TasksProjection {
  readonly #runs = new Map<string, Run>();
  /** Every place a client task id was queued. */
  readonly #byTask = new Map<string, Place[]>();
  /** The queue: tasks (latest places) waiting for a dispatch. */
  readonly #queued = new Set<Place>();
  /** How far the live feed has applied the runs stream. */
  #applied = 0;
  readonly #waiters: { seq: number; resolve: () => void }[] = [];

  get runs(): number {
    return this.#runs.size;
  }

  get applied(): number {
    return this.#applied;
  }

  /** The live feed has applied the runs stream up to `streamSeq` (every transition, a task run's or not). */
  noteApplied(streamSeq: number): void {
    if (streamSeq <= this.#applied) return;
    this.#applied = streamSeq;
    for (let i = this.#waiters.length - 1; i >= 0; i--) {
      const w = this.#waiters[i]!;
      if (w.seq <= streamSeq) {
        this.#waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** Resolves once the live feed has applied `seq` (true), or after `timeoutMs` (false). */
  async caughtUp(seq: number | undefined, timeoutMs: number): Promise<boolean> {
    if (seq === undefined || seq <= this.#applied) return true;
    return new Promise<boolean>((resolve) => {
      const w = { seq, resolve: () => (clearTimeout(t), resolve(true)) };
      const t = setTimeout(() => {
        const i = this.#waiters.indexOf(w);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve(false);
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  /** What one transition (at `streamSeq`) changes; transitions of other runs change nothing. */
  apply(streamSeq: number, head: TransitionHead, transition: Pick<TransitionReader, "events" | "view">): void {
    const summary = head.run;
    if (!summary || summary.definition.id !== TASK_DEFINITION) return;
    const known = this.#runs.get(head.runId);
    if (known && head.n <= known.n) return;
    const view = transition.view();
    if (!view) return;
    const run = known ?? this.#newRun(view, streamSeq);
    run.n = head.n;
    run.updatedAt = Math.max(run.updatedAt, head.at);
    const steps = new Map(view.steps.map((s) => [s.id, s]));
    const events: RunEvent[] = head.events > 0 ? transition.events() : [];
    const touched = new Set<Place>();
    for (const e of events) {
      const d = e.data ?? {};
      if (e.type === "run.created" && Array.isArray(d.steps)) {
        for (const id of d.steps) if (typeof id === "string") touched.add(this.#queue(run, steps.get(id), id, streamSeq, e.at));
      } else if ((e.type === "step.added" || e.type === "step.requeued") && typeof d.stepId === "string") {
        touched.add(this.#queue(run, steps.get(d.stepId), d.stepId, streamSeq, e.at));
      } else if (e.type.startsWith("step.") && typeof d.stepId === "string" && typeof d.to === "string") {
        const p = run.places.get(d.stepId);
        if (!p) continue;
        const status = taskStatusOf(d.to as StepView["status"]);
        if (p.history.at(-1)?.status !== status) p.history.push({ status, at: e.at });
        touched.add(p);
      }
    }
    for (const s of view.steps) {
      let p = run.places.get(s.id);
      // A task step no event queued (a run seen first in the middle): queued where it was seen.
      if (!p && s.type === TASK_STEP_TYPE) p = this.#queue(run, s, s.id, streamSeq, head.at);
      if (!p) continue;
      const sig = JSON.stringify(s);
      if (sig !== p.sig) {
        p.step = s;
        p.sig = sig;
        p.updatedAt = Math.max(p.updatedAt, head.at);
        touched.add(p);
      }
    }
    for (const p of touched) this.#refreshTask(p.taskId);
  }

  #newRun(view: RunView, streamSeq: number): Run {
    const input = obj(view.input);
    const run: Run = {
      id: view.runId,
      projectId: view.projectId,
      type: typeof input.type === "string" ? input.type : "manual",
      payload: input.payload ?? null,
      metadata: obj(input.metadata),
      createdAt: view.createdAt,
      firstSeq: streamSeq,
      updatedAt: view.createdAt,
      n: 0,
      places: new Map(),
    };
    this.#runs.set(run.id, run);
    return run;
  }

  /** A step queued (added, or queued again) by the transition at `seq`. */
  #queue(run: Run, step: StepView | undefined, stepId: string, seq: number, at: number): Place {
    const taskId = typeof step?.inputs?.taskId === "string" ? step.inputs.taskId : stepId;
    let p = run.places.get(stepId);
    if (!p) {
      p = { runId: run.id, stepId, taskId, seq, queuedAt: at, attemptBase: 0, history: [], step: undefined, sig: "", updatedAt: at };
      run.places.set(stepId, p);
    } else {
      // Queued again: a new task where the old one was (its attempts counted from here).
      const before = this.#byTask.get(p.taskId);
      if (p.taskId !== taskId && before)
        this.#byTask.set(
          p.taskId,
          before.filter((x) => x !== p),
        );
      p.attemptBase = p.step?.attempt ?? 0;
      p.taskId = taskId;
      p.seq = seq;
      p.queuedAt = at;
      p.updatedAt = at;
    }
    p.history = [{ status: "queued", at }];
    const places = this.#byTask.get(taskId) ?? [];
    if (!places.includes(p)) places.push(p);
    this.#byTask.set(taskId, places);
    return p;
  }

  /** The task's latest place (the one queued last). */
  #current(taskId: string): Place | undefined {
    let best: Place | undefined;
    for (const p of this.#byTask.get(taskId) ?? []) if (!best || p.seq > best.seq) best = p;
    return best;
  }

  #statusOf(p: Place): TaskStatus {
    return p.step ? taskStatusOf(p.step.status) : (p.history.at(-1)?.status ?? "queued");
  }

  /** Puts the task's places in or out of the queue: only its latest place can be queued. */
  #refreshTask(taskId: string): void {
    const current = this.#current(taskId);
    for (const p of this.#byTask.get(taskId) ?? []) {
      if (p === current && this.#statusOf(p) === "queued") this.#queued.add(p);
      else this.#queued.delete(p);
    }
  }

  #record(p: Place): TaskRecord {
    const s = p.step;
    const inputs = s?.inputs ?? {};
    const r: TaskRecord = {
      id: p.taskId,
      runId: p.runId,
      stepId: p.stepId,
      seq: p.seq,
      role: s?.role ?? "implementer",
      description: typeof inputs.description === "string" ? inputs.description : (s?.title ?? ""),
      payload: "payload" in inputs ? inputs.payload : null,
      status: this.#statusOf(p),
      attempts: Math.max(0, (s?.attempt ?? 0) - p.attemptBase),
      history: p.history.map((h) => ({ ...h })),
      metadata: s?.metadata ?? {},
      queuedAt: p.queuedAt,
      updatedAt: Math.max(p.updatedAt, p.history.at(-1)?.at ?? 0),
    };
    if (s && r.attempts > 0) {
      if (s.attemptId !== undefined) r.attemptId = s.attemptId;
      if (s.notes?.length) r.notes = s.notes;
      if (s.error !== undefined) r.error = s.error;
      if (s.errorCode !== undefined) r.errorCode = s.errorCode;
      if (s.output !== undefined) r.output = s.output;
      if (s.usage !== undefined) r.usage = s.usage;
    }
    return r;
  }

  /** The tasks whose latest place is in `run`, in queue order. */
  #tasksOf(run: Run): Place[] {
    return [...run.places.values()].filter((p) => this.#current(p.taskId) === p).sort((a, b) => a.seq - b.seq);
  }

  #runRecord(run: Run, places = this.#tasksOf(run)): TaskRunRecord {
    return {
      id: run.id,
      projectId: run.projectId,
      type: run.type,
      payload: run.payload,
      metadata: run.metadata,
      status: deriveRunStatus(places.map((p) => this.#statusOf(p))),
      taskIds: places.map((p) => p.taskId),
      createdAt: run.createdAt,
      updatedAt: run.updatedAt,
    };
  }

  // ── queries ────────────────────────────────────────────────────────────────────────────────

  /** The oldest queued task (with a place after `afterSeq`), or null. */
  head(afterSeq = 0): TaskRecord | null {
    let best: Place | undefined;
    for (const p of this.#queued) if (p.seq > afterSeq && (!best || p.seq < best.seq)) best = p;
    return best ? this.#record(best) : null;
  }

  size(): number {
    return this.#queued.size;
  }

  get(taskId: string): { task: TaskRecord | null; others: TaskLocation[] } {
    const current = this.#current(taskId);
    const others = (this.#byTask.get(taskId) ?? [])
      .filter((p) => p !== current && p.step !== undefined && OPEN.has(p.step.status))
      .map((p) => ({ runId: p.runId, stepId: p.stepId }));
    return { task: current ? this.#record(current) : null, others };
  }

  /** Every task (its latest place), in queue order. */
  list(filter: { status?: TaskStatus; runId?: string } = {}): TaskRecord[] {
    const out: Place[] = [];
    for (const [taskId, places] of this.#byTask) {
      const p = this.#current(taskId);
      if (!p || !places.length) continue;
      if (filter.runId !== undefined && p.runId !== filter.runId) continue;
      if (filter.status !== undefined && this.#statusOf(p) !== filter.status) continue;
      out.push(p);
    }
    return out.sort((a, b) => a.seq - b.seq).map((p) => this.#record(p));
  }

  /** Runs oldest first, by derived status, a page of them and how many match. */
  listRuns(q: { status?: TaskStatus; offset: number; limit: number }): { runs: TaskRunRecord[]; total: number } {
    const all = [...this.#runs.values()].sort((a, b) => a.createdAt - b.createdAt || a.firstSeq - b.firstSeq).map((r) => this.#runRecord(r));
    const matching = q.status === undefined ? all : all.filter((r) => r.status === q.status);
    return { runs: matching.slice(q.offset, q.offset + q.limit), total: matching.length };
  }

  run(runId: string): { run: TaskRunRecord | null; tasks: TaskRecord[] } {
    const run = this.#runs.get(runId);
    if (!run) return { run: null, tasks: [] };
    const places = this.#tasksOf(run);
    return { run: this.#runRecord(run, places), tasks: places.map((p) => this.#record(p)) };
  }

  /** Forgets a run whose history was purged. */
  remove(runId: string): void {
    const run = this.#runs.get(runId);
    if (!run) return;
    this.#runs.delete(runId);
    for (const p of run.places.values()) {
      this.#queued.delete(p);
      const left = (this.#byTask.get(p.taskId) ?? []).filter((x) => x !== p);
      if (left.length) this.#byTask.set(p.taskId, left);
      else this.#byTask.delete(p.taskId);
      this.#refreshTask(p.taskId);
    }
  }
}
