import { decode, type Bus } from "@orch/bus";
import { RunEvent, WorkItem } from "@orch/contracts";

/**
 * Queue inspection over the real JetStream work stream (seed 004's `/queues`, /api/v1 later).
 *
 * The work stream (`<P>_WORK`, subjects `<p>.work.<queue>`, work-queue retention) holds every
 * dispatched step attempt until the agent hub acknowledges it; its one durable consumer
 * (`agent-hub`) says how far it has delivered. So, per queue (`role.<role>`):
 *
 * - `queued`: attempts stored and not yet delivered to an agent hub (stream sequence above the
 *   consumer's delivered sequence);
 * - `started`: attempts delivered and not yet acknowledged (an agent hub is working on them);
 * - `finished` / `failed`: attempts that ended, successfully or not (`step.succeeded` or
 *   `step.qa_passed`; `step.retrying`, `step.failed` or `step.qa_failed`), among the step events of
 *   the last `window` run events. Acknowledged work leaves the work stream, so this history comes
 *   from the run events, and like RQ's finished and failed registries it only looks back so far.
 */

export interface QueueCounts {
  queued: number;
  started: number;
  finished: number;
  failed: number;
}

export type JobStatus = "queued" | "started" | "finished" | "failed";
export const JOB_STATUSES: readonly JobStatus[] = ["queued", "started", "finished", "failed"];

export interface QueueJob {
  /** The attempt id (`<runId>.<stepId>.<attempt>`). */
  jobId: string;
  status: JobStatus;
  queue: string;
  runId: string;
  projectId: string;
  stepId: string;
  kind: "execute" | "qa" | "plan";
  role: string;
  type: string;
  attempt: number;
  definition?: { id: string; version: number };
  /** When it was dispatched (queued, started) or started (finished, failed). */
  createdAt?: number;
  startedAt?: number;
  endedAt?: number;
  error?: string;
  result?: unknown;
  /** The work stream sequence (queued, started) or the event stream sequence of its end. */
  seq: number;
}

export interface QueueOptions {
  /** How many recent run events `finished` / `failed` look at. */
  window?: number;
  /** At most this many stored work messages are read (queued + started). */
  maxLive?: number;
}

const DEFAULT_WINDOW = 10_000;
const DEFAULT_MAX_LIVE = 2_000;

/** The attempts in the work stream now: queued (not delivered yet) and started (delivered, unacknowledged). */
export async function liveJobs(bus: Bus, opts: QueueOptions = {}): Promise<QueueJob[]> {
  const stream = bus.names.streams.work;
  const max = opts.maxLive ?? DEFAULT_MAX_LIVE;
  const [info, consumer] = await Promise.all([bus.jsm.streams.info(stream), bus.jsm.consumers.info(stream, bus.names.consumers.agentHub).catch(() => null)]);
  const delivered = consumer?.delivered.stream_seq ?? 0;
  const prefix = `${bus.names.prefix}.work.`;
  const out: QueueJob[] = [];
  if (info.state.messages === 0) return out;
  let seq = Math.max(1, info.state.first_seq);
  while (out.length < max && seq <= info.state.last_seq) {
    const m = await bus.jsm.streams.getMessage(stream, { seq, next_by_subj: bus.names.subjects.workAll() } as never);
    if (!m) break;
    seq = m.seq + 1;
    const d = decode(WorkItem, m.data);
    if (!d.ok) continue;
    const w = d.value;
    out.push({
      jobId: w.attemptId,
      status: m.seq <= delivered ? "started" : "queued",
      queue: m.subject.startsWith(prefix) ? m.subject.slice(prefix.length) : m.subject,
      runId: w.runId,
      projectId: w.projectId,
      stepId: w.stepId,
      kind: w.kind,
      role: w.role,
      type: w.type,
      attempt: w.attempt,
      definition: w.definition,
      createdAt: w.dispatchedAt,
      seq: m.seq,
    });
  }
  return out;
}

/** Attempts that ended among the step events of the last `window` run events, newest first. */
export async function endedJobs(bus: Bus, opts: QueueOptions = {}): Promise<QueueJob[]> {
  const stream = bus.names.streams.evt;
  const window = opts.window ?? DEFAULT_WINDOW;
  const info = await bus.jsm.streams.info(stream);
  if (info.state.messages === 0) return [];
  const start = Math.max(info.state.first_seq, info.state.last_seq - window + 1, 1);
  const consumer = await bus.js.consumers.get(stream, {
    filter_subjects: `${bus.names.prefix}.evt.*.*.step.>`,
    // DeliverPolicy.StartSequence (the literal: @orch/runs does not depend on the client directly).
    deliver_policy: "by_start_sequence" as never,
    opt_start_seq: start,
  });
  const ci = await consumer.info(true);
  if (ci.num_pending === 0) return [];
  const started = new Map<
    string,
    { role: string; kind: "execute" | "qa" | "plan"; type: string; at: number; attemptId: string; attempt: number; settled: boolean }
  >();
  const out: QueueJob[] = [];
  const messages = await consumer.consume({ max_messages: 256 });
  const guard = setTimeout(() => messages.stop(), 10_000);
  try {
    for await (const m of messages) {
      const d = decode(RunEvent, m.data);
      if (d.ok) {
        const e = d.value;
        const data = e.data ?? {};
        const stepId = typeof data.stepId === "string" ? data.stepId : undefined;
        if (stepId !== undefined) {
          const key = `${e.runId}:${stepId}`;
          if (e.type === "step.started" || e.type === "step.qa_started") {
            const qa = e.type === "step.qa_started";
            started.set(key, {
              role: typeof data.role === "string" ? data.role : qa ? "qa" : "implementer",
              kind: qa ? "qa" : stepId === "plan" && e.type === "step.started" && data.type === "protocol.plan" ? "plan" : "execute",
              type: typeof data.type === "string" ? data.type : "agent",
              at: e.at,
              attemptId: typeof data.attemptId === "string" ? data.attemptId : `${e.runId}.${stepId}.${data.attempt ?? 0}`,
              attempt: typeof data.attempt === "number" ? data.attempt : 0,
              settled: false,
            });
          } else {
            const ok = e.type === "step.succeeded" || e.type === "step.qa_passed";
            const bad = e.type === "step.retrying" || e.type === "step.failed" || e.type === "step.qa_failed";
            const s = started.get(key);
            if ((ok || bad) && s && !s.settled) {
              s.settled = true;
              const job: QueueJob = {
                jobId: e.type.startsWith("step.qa") ? `${e.runId}.${stepId}.${data.attempt ?? s.attempt}` : s.attemptId,
                status: ok ? "finished" : "failed",
                queue: `role.${s.role}`,
                runId: e.runId,
                projectId: e.projectId,
                stepId,
                kind: s.kind,
                role: s.role,
                type: s.type,
                attempt: s.attempt,
                createdAt: s.at,
                startedAt: s.at,
                endedAt: e.at,
                seq: m.seq,
              };
              if (typeof data.error === "string") job.error = data.error;
              if (ok && data.output !== undefined) job.result = data.output;
              else if (ok && data.report !== undefined) job.result = data.report;
              out.push(job);
            }
          }
        }
      }
      if (m.info.pending === 0) break;
    }
  } finally {
    clearTimeout(guard);
    messages.stop();
  }
  return out.reverse();
}

/** Counts per queue. Every queue that has work now or had some in the window is listed. */
export async function queueStats(bus: Bus, opts: QueueOptions = {}): Promise<Record<string, QueueCounts>> {
  const [live, ended] = await Promise.all([liveJobs(bus, opts), endedJobs(bus, opts)]);
  const out: Record<string, QueueCounts> = {};
  for (const j of [...live, ...ended]) {
    const c = (out[j.queue] ??= { queued: 0, started: 0, finished: 0, failed: 0 });
    c[j.status] += 1;
  }
  return out;
}

/** The jobs with a status (all four when omitted), newest first for ended ones, in order for live ones. */
export async function listJobs(bus: Bus, status?: JobStatus, opts: QueueOptions = {}): Promise<QueueJob[]> {
  if (status === "queued" || status === "started") return (await liveJobs(bus, opts)).filter((j) => j.status === status);
  if (status === "finished" || status === "failed") return (await endedJobs(bus, opts)).filter((j) => j.status === status);
  const [live, ended] = await Promise.all([liveJobs(bus, opts), endedJobs(bus, opts)]);
  return [...live, ...ended];
}
