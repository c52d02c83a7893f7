import { DeliverPolicy } from "@nats-io/jetstream";
import { decode, decodeTransitionHead, encode, lastTransition, replayTransitions, runConsumer, type Bus, type RunningConsumer } from "@orch/bus";
import {
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
  stop(): Promise<void>;
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

  return {
    index,
    jobs,
    async stop() {
      sub.unsubscribe();
      jobsSub.unsubscribe();
      statsSub.unsubscribe();
      await consumer.stop();
      await summaries.stop();
    },
  };
}
