import { getRunView, listRunSessions, replayEvents, replaySessionEvents, type Bus } from "@orch/bus";
import { FINAL_SESSION_STATUSES, type RunEvent, type SessionEvent, type SessionRecord } from "@orch/contracts";
import { MAX_SESSIONS, type SessionContext, type SupervisorContext } from "./prompt.js";

/**
 * What the supervisor reads of a run, through the bus like any reader: the run's view (its last
 * transition), its events, its sessions and the tail of their events. Memory stays bounded however
 * long the run: events are read through and only a tail (and the latest failures) kept.
 */

/** The run's latest events kept. */
const EVENTS_KEPT = 400;
/** Failure events kept besides them, the latest ones. */
const FAILURES_KEPT = 100;
/** A session's latest events kept. */
const SESSION_EVENTS_KEPT = 400;

const FAILURE = /fail|error|retry|refused|timed_out|dead_letter/;
/**
 * A kept event's strings are cut to this (and larger nested values to their JSON's start): the
 * prompt shows at most 2,000 characters of any one value, so nothing past this ever reaches it,
 * and 400 kept events stay a few MB however large what they carried.
 */
const VALUE_KEPT = 8_000;

function trimmed<E extends { data?: Record<string, unknown> | undefined }>(e: E): E {
  if (!e.data) return e;
  const data: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e.data)) {
    if (typeof v === "string") data[k] = v.length > VALUE_KEPT ? v.slice(0, VALUE_KEPT) : v;
    else if (v !== null && typeof v === "object") {
      const j = JSON.stringify(v);
      data[k] = j.length > VALUE_KEPT ? j.slice(0, VALUE_KEPT) : v;
    } else data[k] = v;
  }
  return { ...e, data };
}

/** A ring of the last `n` items, counting what fell out. */
class Tail<T> {
  readonly items: T[] = [];
  dropped = 0;
  constructor(private readonly n: number) {}
  push(x: T): T | undefined {
    this.items.push(x);
    if (this.items.length <= this.n) return undefined;
    this.dropped++;
    return this.items.shift();
  }
}

async function runEvents(bus: Bus, runId: string, signal: AbortSignal): Promise<{ events: RunEvent[]; omitted: number }> {
  const tail = new Tail<RunEvent>(EVENTS_KEPT);
  const failures = new Tail<RunEvent>(FAILURES_KEPT);
  for await (const { event } of replayEvents(bus, bus.names.subjects.runOf(runId), { untilCaughtUp: true, signal })) {
    const out = tail.push(trimmed(event));
    if (out && FAILURE.test(out.type)) failures.push(out);
  }
  const events = [...failures.items, ...tail.items];
  return { events, omitted: tail.dropped - failures.items.length };
}

async function sessionTail(bus: Bus, record: SessionRecord, signal: AbortSignal): Promise<SessionContext> {
  const tail = new Tail<SessionEvent>(SESSION_EVENTS_KEPT);
  for await (const { event } of replaySessionEvents(bus, bus.names.subjects.sessSession(record.sessionId), { untilCaughtUp: true, signal }))
    tail.push(trimmed(event));
  return { record, events: tail.items, omitted: tail.dropped };
}

/** The sessions worth showing: the focused step's, then failed ones, then the latest; newest first. */
export function pickSessions(all: readonly SessionRecord[], stepId: string | undefined, max = MAX_SESSIONS): SessionRecord[] {
  const newest = [...all].sort((a, b) => b.createdAt - a.createdAt);
  const rank = (s: SessionRecord) =>
    (stepId !== undefined && s.stepId === stepId ? 0 : 4) +
    (s.status === "failed" || s.status === "timed_out" ? 0 : !FINAL_SESSION_STATUSES.has(s.status) ? 1 : 2);
  return newest
    .map((s, i) => ({ s, i }))
    .sort((a, b) => rank(a.s) - rank(b.s) || a.i - b.i)
    .slice(0, max)
    .map((x) => x.s)
    .sort((a, b) => b.createdAt - a.createdAt);
}

export type RunContext = Omit<SupervisorContext, "question" | "stepId" | "now">;

/** The run as the supervisor sees it, or null when there is no such run. */
export async function readRunContext(bus: Bus, runId: string, stepId: string | undefined, signal: AbortSignal): Promise<RunContext | null> {
  const run = await getRunView(bus, runId);
  if (!run) return null;
  const [{ events, omitted }, records] = await Promise.all([runEvents(bus, runId, signal), listRunSessions(bus, runId)]);
  const sessions = await Promise.all(pickSessions(records, stepId).map((r) => sessionTail(bus, r, signal)));
  return { run, events, omittedEvents: omitted, sessions };
}
