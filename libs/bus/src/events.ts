import { DeliverPolicy } from "@nats-io/jetstream";
import { RunEvent, SessionEvent } from "@orch/contracts";
import type { z } from "zod";
import { decode } from "./codec.js";
import { PULL_EXPIRES_MS } from "./consumer.js";
import type { Bus } from "./connect.js";

/** One stored run event and where it sits in the events stream (SSE `id:`, resume point). */
export interface StoredEvent {
  streamSeq: number;
  event: RunEvent;
}

export interface ReplayOptions {
  /** First stream sequence to deliver; from the beginning when omitted. */
  startSeq?: number;
  signal?: AbortSignal;
  /** Stop at the last message stored when the replay started (a finite read) instead of following live ones. */
  untilCaughtUp?: boolean;
}

/**
 * Every event matching `filter` from the beginning (or `startSeq`), then live ones as they are
 * stored, through an ordered consumer: no acks, no server-side state left behind. Messages that
 * fail the schema are skipped and logged (their producer parked nothing: events are ours).
 */
export async function* replayEvents(bus: Bus, filter: string, opts: ReplayOptions = {}): AsyncGenerator<StoredEvent> {
  for await (const { streamSeq, value } of replay(bus, bus.names.streams.evt, RunEvent, filter, opts)) yield { streamSeq, event: value };
}

/** One stored session event and its place in the sessions stream. */
export interface StoredSessionEvent {
  streamSeq: number;
  event: SessionEvent;
}

/** Session events matching `filter`, replayed then live, like `replayEvents`. */
export async function* replaySessionEvents(bus: Bus, filter: string, opts: ReplayOptions = {}): AsyncGenerator<StoredSessionEvent> {
  for await (const { streamSeq, value } of replay(bus, bus.names.streams.sess, SessionEvent, filter, opts)) yield { streamSeq, event: value };
}

/** How long the server keeps a replay's consumer once nothing pulls from it. */
const REPLAY_INACTIVE_MS = 15_000;

async function* replay<S extends z.ZodType>(
  bus: Bus,
  stream: string,
  schema: S,
  filter: string,
  opts: ReplayOptions,
): AsyncGenerator<{ streamSeq: number; value: z.output<S> }> {
  const consumer = await bus.js.consumers.get(stream, {
    filter_subjects: filter,
    // Gone from the server soon after the reader stops pulling (an SSE client left), instead of
    // the client library's 5 minutes: one per connected watcher, not one per watcher ever.
    inactive_threshold: REPLAY_INACTIVE_MS,
    ...(opts.startSeq && opts.startSeq > 1
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: opts.startSeq }
      : { deliver_policy: DeliverPolicy.All }),
  });
  if (opts.untilCaughtUp && (await consumer.info(true)).num_pending === 0) return;
  const messages = await consumer.consume({ max_messages: 256, expires: PULL_EXPIRES_MS });
  const onAbort = () => messages.stop();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (opts.signal?.aborted) return;
    for await (const m of messages) {
      const d = decode(schema, m.data);
      if (d.ok) yield { streamSeq: m.seq, value: d.value };
      else bus.logger.error({ subject: m.subject, streamSeq: m.seq, error: d.error }, "skipping an invalid event");
      if (opts.untilCaughtUp && m.info.pending === 0) return;
    }
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    messages.stop();
  }
}

/** How many stored messages match `filter` (one stream-info request). */
export async function countEvents(bus: Bus, filter: string): Promise<number> {
  const info = await bus.jsm.streams.info(bus.names.streams.evt, { subjects_filter: filter });
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
}

/** The events matching `filter` that are stored now: a finite read, for history and logs. */
export async function readEvents(bus: Bus, filter: string): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  for await (const e of replayEvents(bus, filter, { untilCaughtUp: true })) out.push(e);
  return out;
}
