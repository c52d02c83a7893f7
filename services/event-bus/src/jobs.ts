import type { QueueCounts, QueueJob, QueueJobStatus, RunEvent, TransitionHead, TransitionReader, RunView, WorkItem } from "@orch/contracts";

/**
 * The jobs projection: every attempt the runs dispatch, on its role's queue, from the transitions the
 * event-bus already reads for the run index. An attempt is live from the transition that dispatches
 * it until the one that reports its result (the cause names the attempt) or withdraws it; live ones
 * are `queued` or `started` by whether an agent hub has taken their transition yet (the hub's
 * consumer's delivered sequence, given at query time). The most recent `window` ended ones are kept.
 *
 * Pure and in memory. At start the event-bus feeds it the last `window` transitions, and the attempts
 * in flight in runs whose summary says they have some (older than the window).
 */

const ENDED_OK = new Set(["step.succeeded", "step.qa_passed"]);
const ENDED_BAD = new Set(["step.retrying", "step.failed", "step.qa_failed"]);

export class JobsProjection {
  readonly #live = new Map<string, QueueJob>();
  readonly #ended: QueueJob[] = [];
  /** Attempts ended recently: a transition seen again must not bring one back to life. */
  readonly #endedIds = new Set<string>();

  constructor(readonly window = 10_000) {}

  get live(): number {
    return this.#live.size;
  }

  /** What one transition (at `streamSeq`) changes: the work it dispatches, the attempts it ends. */
  apply(streamSeq: number, head: TransitionHead, transition: Pick<TransitionReader, "events">): void {
    for (const w of head.work ?? []) {
      // A PR's sync is no role's job: nothing reports it (it answers with signals).
      if (w.kind === "sync" || this.#endedIds.has(w.attemptId)) continue;
      this.#live.set(w.attemptId, jobOf(w, streamSeq));
    }
    const answered = head.cause.type === "step.result" ? head.cause.attemptId : undefined;
    const withdrawn = head.withdrawn ?? [];
    if (answered === undefined && withdrawn.length === 0) return;
    let events: RunEvent[] = [];
    try {
      events = transition.events();
    } catch {
      events = [];
    }
    if (answered !== undefined) {
      const job = this.#live.get(answered);
      if (job) {
        const end = events.find((e) => e.data?.stepId === job.stepId && (ENDED_OK.has(e.type) || ENDED_BAD.has(e.type)));
        this.#end(job, end ? (ENDED_OK.has(end.type) ? "finished" : "failed") : "failed", streamSeq, head.at, end);
      }
    }
    for (const id of withdrawn) {
      const job = this.#live.get(id);
      if (job) this.#end(job, "failed", streamSeq, head.at, undefined, "withdrawn: the run no longer waits for it");
    }
  }

  /** The attempts a run's view shows in flight (at start, for runs dispatched before the window). */
  seed(view: RunView, streamSeq: number): void {
    for (const s of view.steps) {
      if (!s.inflight || !s.attemptId || this.#live.has(s.attemptId) || this.#endedIds.has(s.attemptId)) continue;
      const kind = view.planning?.id === s.id ? "plan" : s.status === "qa" ? "qa" : "execute";
      const role = kind === "qa" ? (s.qaRole ?? "qa") : s.role;
      this.#live.set(s.attemptId, {
        jobId: s.attemptId,
        status: "queued",
        queue: `role.${role}`,
        runId: view.runId,
        projectId: view.projectId,
        stepId: s.id,
        kind,
        role,
        type: s.type,
        attempt: s.attempt,
        definition: view.definition,
        ...(s.startedAt !== undefined ? { createdAt: s.startedAt } : {}),
        seq: streamSeq,
      });
    }
  }

  #end(job: QueueJob, status: "finished" | "failed", streamSeq: number, at: number, e?: RunEvent, why?: string): void {
    this.#live.delete(job.jobId);
    const ended: QueueJob = { ...job, status, startedAt: job.createdAt ?? at, endedAt: at, seq: streamSeq };
    const d = e?.data ?? {};
    if (typeof d.error === "string") ended.error = d.error;
    else if (why && status === "failed") ended.error = why;
    if (status === "finished" && d.output !== undefined) ended.result = d.output;
    else if (status === "finished" && d.report !== undefined) ended.result = d.report;
    this.#ended.push(ended);
    this.#endedIds.add(job.jobId);
    while (this.#ended.length > this.window) {
      const old = this.#ended.shift();
      if (old) this.#endedIds.delete(old.jobId);
    }
  }

  /** The jobs with a status (all when omitted): live ones in dispatch order, then ended ones newest first. */
  jobs(delivered: number, status?: QueueJobStatus, limit = 2_000): QueueJob[] {
    const out: QueueJob[] = [];
    if (status === undefined || status === "queued" || status === "started") {
      for (const j of this.#live.values()) {
        const s: QueueJobStatus = j.seq <= delivered ? "started" : "queued";
        if (status === undefined || status === s) out.push(s === j.status ? j : { ...j, status: s });
        if (out.length >= limit) return out;
      }
    }
    if (status === undefined || status === "finished" || status === "failed") {
      for (let i = this.#ended.length - 1; i >= 0 && out.length < limit; i--) {
        const j = this.#ended[i]!;
        if (status === undefined || j.status === status) out.push(j);
      }
    }
    return out;
  }

  /** Counts per queue: every queue with work now or in the window. */
  stats(delivered: number): Record<string, QueueCounts> {
    const out: Record<string, QueueCounts> = {};
    const count = (queue: string, s: QueueJobStatus) => {
      const c = (out[queue] ??= { queued: 0, started: 0, finished: 0, failed: 0 });
      c[s] += 1;
    };
    for (const j of this.#live.values()) count(j.queue, j.seq <= delivered ? "started" : "queued");
    for (const j of this.#ended) count(j.queue, j.status);
    return out;
  }
}

function jobOf(w: WorkItem, streamSeq: number): QueueJob {
  return {
    jobId: w.attemptId,
    status: "queued",
    queue: `role.${w.role}`,
    runId: w.runId,
    projectId: w.projectId,
    stepId: w.stepId,
    kind: w.kind,
    role: w.role,
    type: w.type,
    attempt: w.attempt,
    definition: w.definition,
    createdAt: w.dispatchedAt,
    seq: streamSeq,
  };
}
