import { DeliverPolicy } from "@nats-io/jetstream";
import { EVENTS_PER_TRANSITION, SessionEvent, TransitionHead, TransitionReader, type RunEvent, type WorkItem } from "@orch/contracts";
import type { z } from "zod";
import { decode, type Decoded } from "./codec.js";
import { PULL_EXPIRES_MS } from "./consumer.js";
import type { Bus } from "./connect.js";

/**
 * Reading runs' histories. Each stored message on the runs stream is one transition carrying the
 * events it appended (contracts/transitions.ts); readers see the events one by one, each with its
 * position in the stream: `streamSeq × EVENTS_PER_TRANSITION + index` (the transition's stream
 * sequence, the event's index in it), an integer that grows with every event stored, whatever the
 * run. It is the `id` of events on our API, their SSE `id:`, what `Last-Event-ID` resumes after, and
 * gRPC's `seq`; a resume starts reading at the transition it names. An event's `seq` is its own
 * number in its run (gapless from 1).
 */

/** One event read from the runs stream. */
export interface FeedEvent {
  /** The transition's stream sequence. */
  streamSeq: number;
  /** The event's index in its transition. */
  index: number;
  /** The event's position in the stream (see above). */
  id: number;
  event: RunEvent;
  /** What the event's transition dispatched for its step (the work a `step.started` stands for). */
  work?: WorkItem;
  head: TransitionHead;
}

/** A position in the stream: a transition and an event's index in it. */
export interface FeedPosition {
  streamSeq: number;
  index: number;
}

export const feedId = (p: FeedPosition): number => p.streamSeq * EVENTS_PER_TRANSITION + p.index;

/** The position an event id names (`Last-Event-ID`, a cursor), or null when it is not one. */
export function parseFeedPosition(id: string | number | undefined): FeedPosition | null {
  if (id === undefined) return null;
  const n = typeof id === "number" ? id : /^\d{1,16}$/.test(id.trim()) ? Number(id.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) return null;
  return { streamSeq: Math.floor(n / EVENTS_PER_TRANSITION), index: n % EVENTS_PER_TRANSITION };
}

export interface ReplayOptions {
  /** First stream sequence to deliver; from the beginning when omitted. */
  startSeq?: number;
  signal?: AbortSignal;
  /** Stop at the last message stored when the replay started (a finite read) instead of following live ones. */
  untilCaughtUp?: boolean;
}

/** One stored transition and where it sits in the runs stream. */
export interface ReadTransition {
  streamSeq: number;
  subject: string;
  transition: TransitionReader;
}

/**
 * Every transition matching `filter` from the beginning (or `startSeq`), then live ones as they are
 * stored, through an ordered consumer: no acks, no server-side state left behind.
 */
export async function* replayTransitions(bus: Bus, filter: string, opts: ReplayOptions = {}): AsyncGenerator<ReadTransition> {
  for await (const m of replayRaw(bus, bus.names.streams.runs, filter, opts)) {
    yield { streamSeq: m.seq, subject: m.subject, transition: new TransitionReader(m.data) };
  }
}

export interface EventReplayOptions extends Omit<ReplayOptions, "startSeq"> {
  /** Resume in a feed: the events after this position. */
  after?: FeedPosition;
  /** Resume in one run: the events whose `seq` is above this. */
  afterRunSeq?: number;
}

/**
 * Events matching `filter` one by one (replayed, then live), each with its position and the work its
 * transition dispatched. A transition that fails its schema is skipped and logged: the runs stream is
 * written by the core alone, so that is a bug to see, not input to park.
 */
export async function* replayEvents(bus: Bus, filter: string, opts: EventReplayOptions = {}): AsyncGenerator<FeedEvent> {
  const { after, afterRunSeq = 0, ...rest } = opts;
  for await (const t of replayTransitions(bus, filter, { ...rest, ...(after ? { startSeq: after.streamSeq } : {}) })) {
    let head: TransitionHead;
    let events: RunEvent[];
    try {
      head = t.transition.head();
      if (head.seq <= afterRunSeq || head.events === 0) continue;
      events = t.transition.events();
    } catch (err) {
      bus.logger.error({ subject: t.subject, streamSeq: t.streamSeq, err }, "skipping an unreadable transition");
      continue;
    }
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      if (after && t.streamSeq === after.streamSeq && i <= after.index) continue;
      if (event.seq <= afterRunSeq) continue;
      const work = workOf(head, event);
      yield { streamSeq: t.streamSeq, index: i, id: feedId({ streamSeq: t.streamSeq, index: i }), event, ...(work ? { work } : {}), head };
    }
  }
}

/** The work item a step's start dispatched in the same transition (matched by step). */
function workOf(head: TransitionHead, e: RunEvent): WorkItem | undefined {
  if (!head.work || (e.type !== "step.started" && e.type !== "step.qa_started")) return undefined;
  const stepId = e.data?.stepId;
  return head.work.find((w) => w.stepId === stepId);
}

/** The events matching `filter` that are stored now: a finite read, for history and logs. */
export async function readEvents(bus: Bus, filter: string, opts: Omit<EventReplayOptions, "untilCaughtUp"> = {}): Promise<FeedEvent[]> {
  const out: FeedEvent[] = [];
  for await (const e of replayEvents(bus, filter, { ...opts, untilCaughtUp: true })) out.push(e);
  return out;
}

/** One stored session event and its place in the sessions stream. */
export interface StoredSessionEvent {
  streamSeq: number;
  event: SessionEvent;
}

/** Session events matching `filter`, replayed then live, like `replayEvents`. */
export async function* replaySessionEvents(bus: Bus, filter: string, opts: ReplayOptions = {}): AsyncGenerator<StoredSessionEvent> {
  for await (const m of replayRaw(bus, bus.names.streams.sess, filter, opts)) {
    const d = decode(SessionEvent as z.ZodType<SessionEvent>, m.data);
    if (d.ok) yield { streamSeq: m.seq, event: d.value };
    else bus.logger.error({ subject: m.subject, streamSeq: m.seq, error: d.error }, "skipping an invalid session event");
  }
}

/** How long the server keeps a replay's consumer once nothing pulls from it. */
const REPLAY_INACTIVE_MS = 15_000;
/** What a replay fetches ahead of its reader, at most (see replayRaw). */
const REPLAY_PREFETCH_BYTES = 2 * 1024 * 1024;

async function* replayRaw(bus: Bus, stream: string, filter: string, opts: ReplayOptions): AsyncGenerator<{ seq: number; subject: string; data: Uint8Array }> {
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
  // Prefetch bounded by bytes (transitions carry whole views): a reader that stops
  // reading holds at most this much, whatever the backlog. Above the largest message NATS carries,
  // or a pull could never deliver it.
  const maxBytes = Math.max(REPLAY_PREFETCH_BYTES, 2 * (bus.nc.info?.max_payload ?? 0));
  // (nats.js takes one limit or the other; with bytes it asks for at most 100 messages a pull.)
  const messages = await consumer.consume({ max_bytes: maxBytes, expires: PULL_EXPIRES_MS });
  const onAbort = () => messages.stop();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (opts.signal?.aborted) return;
    for await (const m of messages) {
      yield { seq: m.seq, subject: m.subject, data: m.data };
      if (opts.untilCaughtUp && m.info.pending === 0) return;
    }
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    messages.stop();
  }
}

/** How many transitions match `filter` (one stream-info request). */
export async function countTransitions(bus: Bus, filter: string): Promise<number> {
  const info = await bus.jsm.streams.info(bus.names.streams.runs, { subjects_filter: filter });
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
}

/** A transition as a consumer receives it: its head read (and validated), the rest on demand. */
export interface ConsumedTransition<H = TransitionHead> {
  head: H;
  transition: TransitionReader;
}

/**
 * The `decode` of a durable consumer on the runs stream: the head, validated by the schema of what
 * the consumer reads of it (a pick of TransitionHead), the other parts left to whoever needs them.
 * With `only`, a transition whose head has no such field (`work`, `timers`) is passed on with a null
 * head, unparsed: most transitions are of no interest to such a consumer. An unreadable head is a
 * dead letter.
 */
export function transitionDecoder<S extends z.ZodType>(
  schema: S,
  opts: { only: string },
): (data: Uint8Array) => Decoded<ConsumedTransition<z.output<S> | null>>;
export function transitionDecoder<S extends z.ZodType>(schema: S): (data: Uint8Array) => Decoded<ConsumedTransition<z.output<S>>>;
export function transitionDecoder<S extends z.ZodType>(schema: S, opts: { only?: string } = {}) {
  return (data: Uint8Array): Decoded<ConsumedTransition<z.output<S> | null>> => {
    const transition = new TransitionReader(data);
    try {
      if (opts.only !== undefined && !transition.headHas(opts.only)) return { ok: true, value: { head: null, transition } };
      return { ok: true, value: { head: transition.headAs(schema), transition } };
    } catch (err) {
      return { ok: false, reason: "invalid", error: (err as Error).message };
    }
  };
}

/** The whole head (the run index reads all of it). */
export const decodeTransitionHead = transitionDecoder(TransitionHead);
