import { DeliverPolicy } from "@nats-io/jetstream";
import { decode, decodeTransitionHead, encode, lastTransition, replayTransitions, runConsumer, type Bus, type RunningConsumer } from "@orch/bus";
import {
  TASKS_QUERIES,
  TASK_DEFINITION,
  TaskGetQuery,
  TaskGetResult,
  TaskRunQuery,
  TaskRunResult,
  TaskRunsQuery,
  TaskRunsResult,
  TasksHeadQuery,
  TasksHeadResult,
  TasksListQuery,
  TasksListResult,
  TasksSizeQuery,
  TasksSizeResult,
  FINAL_RUN_STATUSES,
  JOBS_QUERY,
  JobsQuery,
  JobsResult,
  QUEUE_STATS_QUERY,
  QueryError,
  QueueStatsResult,
  RunQuery,
  RunQueryResult,
  RunSummary,
  kvStreamOf,
} from "@orch/contracts";
import type { Msg } from "@nats-io/transport-node";
import type { Logger } from "@orch/logging";
import { JobsProjection } from "./jobs.js";
import { CursorError, RunIndex } from "./run-index.js";
import { SummaryWriter } from "./summaries.js";
import { TasksProjection } from "./tasks.js";
import type { z } from "zod";

/**
 * The run index projection: a durable consumer on the runs stream puts each transition's summary of
 * its run (the head's `run`, nothing else of the message is read) into the in-memory index and the
 * `run_index` bucket; queries (`<prefix>.q.runs.list`) are answered from memory. Writes to the
 * bucket are coalesced (SummaryWriter: a run's summary when it finishes, or once it has waited 5 s
 * while it runs), and a transition is acked only once its summary is stored, so a restart loses
 * nothing: the bucket is loaded back and the consumer resumes after the last acked transition (one seen twice
 * changes nothing: summaries keep the run's sequence).
 */

export interface Projection {
  readonly index: RunIndex;
  readonly jobs: JobsProjection;
  readonly tasks: TasksProjection;
  stop(): Promise<void>;
}

/** How long a task query waits for the projection to have applied the sequence it names (`minSeq`). */
const MIN_SEQ_WAIT_MS = 4_000;

/**
 * Seed 001's tasks projection at start: every task run the index holds, replayed from its first
 * transition (a few at a time), then the runs stream from the run-index consumer's acknowledgement
 * floor on (what it may not have acknowledged: runs whose summary is not stored yet, which it will
 * deliver again, but only once its ack wait has passed). A transition seen twice changes nothing.
 */
async function loadTasks(bus: Bus, index: RunIndex, tasks: TasksProjection, log: Logger): Promise<void> {
  const t0 = Date.now();
  const runIds: string[] = [];
  let cursor: string | undefined;
  do {
    const page = index.query({ definitionId: TASK_DEFINITION, limit: 500, ...(cursor ? { cursor } : {}) });
    runIds.push(...page.runs.map((r) => r.runId));
    cursor = page.nextCursor;
  } while (cursor);
  let read = 0;
  const next = async (): Promise<void> => {
    for (let id = runIds.pop(); id !== undefined; id = runIds.pop()) {
      for await (const t of replayTransitions(bus, bus.names.subjects.runOf(id), { untilCaughtUp: true })) {
        try {
          tasks.apply(t.streamSeq, t.transition.head(), t.transition);
        } catch (err) {
          log.warn({ err, runId: id, streamSeq: t.streamSeq }, "tasks projection: skipping an unreadable transition");
        }
        read++;
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, next));
  const consumer = await bus.jsm.consumers.info(bus.names.streams.runs, bus.names.consumers.runIndex).catch(() => null);
  let last = 0;
  for await (const t of replayTransitions(bus, bus.names.subjects.runsAll(), { startSeq: (consumer?.ack_floor.stream_seq ?? 0) + 1, untilCaughtUp: true })) {
    try {
      tasks.apply(t.streamSeq, t.transition.head(), t.transition);
    } catch {
      /* an unreadable transition is the run index consumer's to park */
    }
    last = t.streamSeq;
    read++;
  }
  // Everything stored when the load began is applied: a query naming a sequence up to there need not wait.
  tasks.noteApplied(last);
  log.info({ runs: tasks.runs, transitions: read, queued: tasks.size(), ms: Date.now() - t0 }, "tasks projection loaded");
}

/**
 * The jobs projection at start: the last `window` transitions, then the attempts in flight in runs
 * the index says have some (dispatched before the window).
 */
async function loadJobs(bus: Bus, index: RunIndex, jobs: JobsProjection, log: Logger): Promise<void> {
  const t0 = Date.now();
  const info = await bus.jsm.streams.info(bus.names.streams.runs);
  if (info.state.messages === 0) return;
  const start = Math.max(1, info.state.first_seq, info.state.last_seq - jobs.window + 1);
  let read = 0;
  for await (const t of replayTransitions(bus, bus.names.subjects.runsAll(), { startSeq: start, untilCaughtUp: true })) {
    try {
      jobs.apply(t.streamSeq, t.transition.head(), t.transition);
    } catch {
      /* an unreadable transition is the run index consumer's to park */
    }
    read++;
  }
  let seeded = 0;
  for (const s of index.inflight()) {
    if (FINAL_RUN_STATUSES.has(s.status)) continue;
    const t = await lastTransition(bus, s.runId).catch(() => null);
    const view = t?.transition.view();
    if (t && view) {
      jobs.seed(view, t.streamSeq);
      seeded++;
    }
  }
  log.info({ transitions: read, runsInFlight: seeded, live: jobs.live, ms: Date.now() - t0 }, "jobs projection loaded");
}

async function loadIndex(bus: Bus, index: RunIndex, log: Logger): Promise<void> {
  const t0 = Date.now();
  const stream = kvStreamOf(bus.names.buckets.runIndex);
  const info = await bus.jsm.streams.info(stream);
  if (info.state.messages === 0) return;
  const consumer = await bus.js.consumers.get(stream, { deliver_policy: DeliverPolicy.LastPerSubject });
  const messages = await consumer.consume({ max_messages: 1_000 });
  let bad = 0;
  for await (const m of messages) {
    if (m.data.length > 0) {
      const d = decode(RunSummary, m.data);
      if (d.ok) index.load(d.value);
      else bad++;
    }
    if (m.info.pending === 0) break;
  }
  messages.stop();
  log.info({ runs: index.size, unreadable: bad, ms: Date.now() - t0 }, "run index loaded");
}

export async function startProjection(bus: Bus, log: Logger): Promise<Projection> {
  const index = new RunIndex();
  await loadIndex(bus, index, log);
  const jobs = new JobsProjection();
  await loadJobs(bus, index, jobs, log);
  const tasks = new TasksProjection();
  await loadTasks(bus, index, tasks, log);
  const kv = await bus.kv(bus.names.buckets.runIndex);

  const summaries = new SummaryWriter(async (s) => void (await kv.put(s.runId, encode(RunSummary, s))));

  const consumer: RunningConsumer = await runConsumer(bus, {
    stream: bus.names.streams.runs,
    consumer: bus.names.consumers.runIndex,
    decode: decodeTransitionHead,
    origin: "run-index",
    // Transitions wait here until their run's summary is written (see SummaryWriter): many at once.
    // Each is applied in stream order as it arrives; the index keeps a run's newest summary whatever
    // order the writes end in.
    concurrency: 10_000,
    async handler({ head, transition }, ctx) {
      jobs.apply(ctx.streamSeq, head, transition);
      try {
        tasks.apply(ctx.streamSeq, head, transition);
      } catch (err) {
        log.warn({ err, runId: head.runId, streamSeq: ctx.streamSeq }, "tasks projection: skipping an unreadable transition");
      }
      tasks.noteApplied(ctx.streamSeq);
      if (!head.run) return;
      const s = index.put(head.run);
      if (s) await summaries.store(s);
    },
  });

  const sub = bus.nc.subscribe(bus.names.subjects.query("runs.list"), {
    queue: "event-bus",
    callback: (err, msg) => {
      if (err) return;
      const d = decode(RunQuery, msg.data);
      if (!d.ok) {
        msg.respond(encode(QueryError, { error: { code: "BAD_REQUEST", message: d.error } }));
        return;
      }
      try {
        msg.respond(encode(RunQueryResult, index.query(d.value)));
      } catch (e) {
        const code = e instanceof CursorError ? "BAD_REQUEST" : "INTERNAL";
        if (code === "INTERNAL") log.error({ err: e }, "run query failed");
        msg.respond(encode(QueryError, { error: { code, message: (e as Error).message } }));
      }
    },
  });

  /** How far the agent hubs have taken transitions: what is dispatched at or below it has started. */
  const delivered = async () =>
    (await bus.jsm.consumers.info(bus.names.streams.runs, bus.names.consumers.agentHub).catch(() => null))?.delivered.stream_seq ?? 0;
  const answer = (msg: Msg, work: () => Promise<Uint8Array>) =>
    work()
      .then((out) => msg.respond(out))
      .catch((e: unknown) => {
        log.error({ err: e }, "jobs query failed");
        msg.respond(encode(QueryError, { error: { code: "INTERNAL", message: (e as Error).message } }));
      });
  const jobsSub = bus.nc.subscribe(bus.names.subjects.query(JOBS_QUERY), {
    queue: "event-bus",
    callback: (err, msg) => {
      if (err) return;
      const d = decode(JobsQuery, msg.data);
      if (!d.ok) return void msg.respond(encode(QueryError, { error: { code: "BAD_REQUEST", message: d.error } }));
      void answer(msg, async () => encode(JobsResult, { jobs: jobs.jobs(await delivered(), d.value.status, d.value.limit) }));
    },
  });
  const statsSub = bus.nc.subscribe(bus.names.subjects.query(QUEUE_STATS_QUERY), {
    queue: "event-bus",
    callback: (err, msg) => {
      if (err) return;
      void answer(msg, async () => encode(QueueStatsResult, { queues: jobs.stats(await delivered()) }));
    },
  });

  // Seed 001's queue: each query answered once the projection has applied what it must have seen.
  const taskQuery = <Q extends z.ZodType<{ minSeq?: number | undefined }>, R extends z.ZodType>(
    name: string,
    query: Q,
    result: R,
    answer: (q: z.output<Q>) => z.input<R>,
  ) =>
    bus.nc.subscribe(bus.names.subjects.query(name), {
      queue: "event-bus",
      callback: (err, msg) => {
        if (err) return;
        const d = decode(query, msg.data);
        if (!d.ok) return void msg.respond(encode(QueryError, { error: { code: "BAD_REQUEST", message: d.error } }));
        void tasks
          .caughtUp(d.value.minSeq, MIN_SEQ_WAIT_MS)
          .then((caught) => {
            if (!caught)
              log.warn({ query: name, minSeq: d.value.minSeq, applied: tasks.applied }, "tasks query answered before the projection reached its sequence");
            msg.respond(encode(result, answer(d.value)));
          })
          .catch((e: unknown) => {
            log.error({ err: e }, "tasks query failed");
            msg.respond(encode(QueryError, { error: { code: "INTERNAL", message: (e as Error).message } }));
          });
      },
    });
  const taskSubs = [
    taskQuery(TASKS_QUERIES.head, TasksHeadQuery, TasksHeadResult, (q) => ({ task: tasks.head(q.afterSeq) })),
    taskQuery(TASKS_QUERIES.size, TasksSizeQuery, TasksSizeResult, () => ({ size: tasks.size() })),
    taskQuery(TASKS_QUERIES.get, TaskGetQuery, TaskGetResult, (q) => tasks.get(q.taskId)),
    taskQuery(TASKS_QUERIES.list, TasksListQuery, TasksListResult, (q) => ({
      tasks: tasks.list({ ...(q.status ? { status: q.status } : {}), ...(q.runId ? { runId: q.runId } : {}) }),
    })),
    taskQuery(TASKS_QUERIES.runs, TaskRunsQuery, TaskRunsResult, (q) =>
      tasks.listRuns({ ...(q.status ? { status: q.status } : {}), offset: q.offset, limit: q.limit }),
    ),
    taskQuery(TASKS_QUERIES.run, TaskRunQuery, TaskRunResult, (q) => tasks.run(q.runId)),
  ];

  return {
    index,
    jobs,
    tasks,
    async stop() {
      sub.unsubscribe();
      jobsSub.unsubscribe();
      statsSub.unsubscribe();
      for (const s of taskSubs) s.unsubscribe();
      await consumer.stop();
      await summaries.stop();
    },
  };
}
