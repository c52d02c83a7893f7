import { DeliverPolicy } from "@nats-io/jetstream";
import { decode, encode, runConsumer, type Bus, type RunningConsumer } from "@orch/bus";
import { QueryError, RunEvent, RunQuery, RunQueryResult, RunSummary, kvStreamOf } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { CursorError, RunIndex } from "./run-index.js";

/**
 * The run index projection: a durable consumer on run-level events updates the in-memory index and
 * the `run_index` bucket; queries (`<prefix>.q.runs.list`) are answered from memory. Writes to the
 * bucket are coalesced (the last summary of each run every FLUSH_MS), and an event is acked only
 * once its summary is stored, so a restart loses nothing: the bucket is loaded back and the consumer
 * resumes after the last acked event (an event seen twice changes nothing: summaries keep the run's
 * sequence).
 */

const FLUSH_MS = 100;

export interface Projection {
  readonly index: RunIndex;
  stop(): Promise<void>;
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
  const kv = await bus.kv(bus.names.buckets.runIndex);

  const dirty = new Map<string, RunSummary>();
  let waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = async () => {
    timer = undefined;
    const batch = [...dirty.values()];
    dirty.clear();
    const w = waiters;
    waiters = [];
    try {
      await Promise.all(batch.map((s) => kv.put(s.runId, encode(RunSummary, s))));
      for (const x of w) x.resolve();
    } catch (err) {
      for (const s of batch) if (!dirty.has(s.runId)) dirty.set(s.runId, s);
      for (const x of w) x.reject(err);
    }
  };
  const persisted = (s: RunSummary) =>
    new Promise<void>((resolve, reject) => {
      dirty.set(s.runId, s);
      waiters.push({ resolve, reject });
      timer ??= setTimeout(() => void flush(), FLUSH_MS);
    });

  const consumer: RunningConsumer = await runConsumer(bus, {
    stream: bus.names.streams.evt,
    consumer: bus.names.consumers.runIndex,
    schema: RunEvent,
    origin: "run-index",
    concurrency: 256,
    keyOf: (e) => e.runId,
    async handler(e) {
      const s = index.apply(e);
      if (s) await persisted(s);
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

  return {
    index,
    async stop() {
      sub.unsubscribe();
      await consumer.stop();
      if (timer) {
        clearTimeout(timer);
        await flush();
      }
    },
  };
}
