import {
  cancelledOnTracker,
  type IntakeRules as IntakeRulesSpec,
  TICKET_LABEL,
  TicketWorkType,
  ticketRunId,
  TRACKER_STATE_LABEL,
  trackerStateFor,
  type Ticket,
  type TicketingProviderId,
  type TicketRef,
  type TicketUpdatePayload,
  type TicketWrite,
  type TrackerFailure,
  type WorkflowStateMapping,
} from "@orch/contracts";

/**
 * Ticket intake, decided by the kernel: an intake is a long-lived run of the built-in
 * `ticket.intake` (one per tracker) that syncs on an interval and takes each new matching ticket in
 * as one `ticket` run. Pure: the kernel applies what these return in one transition of the intake.
 *
 *   sync timer fires ──▶ `tickets.sync` work (attempt n), next timer armed at now + every
 *   answer for attempt n (a stale n changes nothing):
 *     tickets ──▶ failures = 0 (a paused intake resumes: intake.resumed); for each ticket:
 *       not seen, not cancelled on the tracker ──▶ run.create of ticketRunId(provider, id), command
 *         id `create:<that id>` (at most maxNewPerSync per sync; the rest the next time)
 *       seen, its run active, cancelled on the tracker ──▶ the run is sent `Cancelled` (Abandoned)
 *     an error ──▶ failures + 1; retryable and under the breaker's count: the next sync after the
 *       backoff; at breaker.failures in a row, or not retryable: paused (intake.paused, the view says
 *       why and until when), one sync after the cool-down tries again
 *   a ticket run ends (ticket_run_ended): failed ──▶ again as `<id>-r<k>` until quarantineAfter
 *     failed runs, then quarantined (recorded, never restarted: intake.quarantined)
 *
 * Exactly once: the run id and command id follow from (provider, ticket id, attempt), so two syncs
 * answered at once (only the current attempt is applied), a redelivered answer, or a core restart
 * (the intake's state is its run's) create nothing twice, and the core's create of an existing run
 * is a no-op past the de-duplication window too.
 */

/** The built-in definition of intake runs. */
export const INTAKE_DEFINITION = "ticket.intake";
/** The step id a `tickets.sync` work item names (it is not a step of the run). */
export const INTAKE_SYNC_STEP = "tickets_sync";
/** The step id a `ticket.update` work item (a ticket run's write-back) names: not a step of the run. */
export const TICKET_UPDATE_STEP = "ticket_update";
/** The work type of a sync. */
export const TICKETS_SYNC_TYPE = TicketWorkType.Sync;

/** The intake run of a tracker: one per provider. */
export const intakeRunId = (provider: TicketingProviderId): string => `intake-${provider.slice("ticketing.".length).replace(/_/g, "-")}`;

/** What the intake was set up with (its input, and `set_intake`: the core's settings at start). */
export type IntakeRules = IntakeRulesSpec;

export const INTAKE_DEFAULTS = Object.freeze({
  retry: Object.freeze({ initialMs: 5_000, multiplier: 2, maxMs: 300_000 }),
  breaker: Object.freeze({ failures: 5, coolDownMs: 600_000 }),
  quarantineAfter: 3,
  writeAbandonAfter: 10,
  maxNewPerSync: 25,
  definition: Object.freeze({ id: "ticket" }),
  /** The `ticket` pipeline's first event: the ticket is accepted. */
  acceptEvent: "TicketAccepted",
});

export type TicketRunStatus = "active" | "failed" | "ended" | "quarantined";

/**
 * One ticket the intake has taken in. `failed`: its last run failed and it is not quarantined yet:
 * the next sync that still finds it (not cancelled) runs it again, with what the ticket says then.
 */
export interface TakenTicket {
  key: string;
  runId: string;
  /** Runs made for it (the first is 1). */
  runs: number;
  failedRuns: number;
  status: TicketRunStatus;
  at: number;
}

/** What an intake run keeps (in its kernel state; the view publishes a summary). */
export interface IntakeState {
  rules: IntakeRules;
  /** Syncs dispatched so far; the current one's attempt id ends in it. */
  n: number;
  sync?: { attemptId: string; at: number };
  timer?: { timerId: string; dueAt: number };
  /** Failed syncs in a row. */
  failures: number;
  lastError?: { code: string; message: string; at: number };
  paused?: { at: number; until: number; reason: string };
  lastSyncAt?: number;
  /** By ticket id. Bounded: see MAX_TAKEN. */
  taken: Record<string, TakenTicket>;
  /** Ticket writes the hub gave up on for now, by write id (bounded: MAX_PENDING_WRITES). */
  writes?: Record<string, PendingWrite>;
  /** The write tries dispatched so far (their attempt and timer ids end in it). */
  writeSeq?: number;
  /** The last write ids that landed or were abandoned: a late duplicate of their failure changes nothing. */
  writesConcluded?: string[];
}

/**
 * A ticket's writes waiting in the intake: `waiting` for its timer, `held` while the intake is
 * paused (its breaker open, or the run paused), `in_flight` dispatched again as `attemptId`.
 */
export interface PendingWrite {
  writeId: string;
  ticket: TicketRef;
  writes: TicketWrite[];
  /** Tries that failed (the hub's first, in-process tries count as one). */
  failures: number;
  state: "waiting" | "held" | "in_flight";
  /** The attempt whose answer is awaited (in flight), or the one that failed last. */
  attemptId: string;
  /** Waiting: when it is tried again; in flight: when it counts as failed if no answer came. */
  timer?: { timerId: string; dueAt: number };
  lastError: { code: string; message: string; at: number };
  firstAt: number;
}

/** Pending writes an intake keeps; past it, the oldest is abandoned (`intake.write_abandoned`). */
export const MAX_PENDING_WRITES = 200;
/** Concluded write ids remembered. */
const MAX_CONCLUDED = 200;
/** A write dispatched again and not answered within this (or the backoff's max, if longer) counts as a failed try. */
export const WRITE_ANSWER_TIMEOUT_MS = 600_000;

/** Tickets remembered; past it, the oldest that ended are forgotten (their run ids still name them). */
export const MAX_TAKEN = 10_000;

/** What the kernel does with a decision: events to emit, commands to other runs, the timer to (re)arm. */
export interface IntakeEffects {
  events: { type: string; data: Record<string, unknown> }[];
  commands: (Record<string, unknown> & { commandId: string })[];
  /** Arm this timer (withdrawing the armed one, if another). */
  arm?: { timerId: string; dueAt: number };
  /** Pending writes' timers to arm (`intake_write`) and to withdraw, and their `ticket.update` work to dispatch. */
  writeTimers?: { set: { timerId: string; dueAt: number }[]; cancel: string[] };
  writeWork?: { attemptId: string; attempt: number; payload: TicketUpdatePayload }[];
}

/** The answer of a sync, as the agent hub sends it (`tickets_synced`). */
export type SyncAnswer =
  { attemptId: string; ok: true; tickets: Ticket[] } | { attemptId: string; ok: false; error: { code: string; message: string; retryable: boolean } };

export function syncTimerId(runId: string, n: number): string {
  return `${runId}.tickets.sync.${n}`;
}

/** The run a ticket's k-th run is (the first is the ticket's own id). */
export function ticketRunIdFor(provider: TicketingProviderId, ticketId: string, k: number): string {
  const base = ticketRunId(provider, ticketId);
  return k <= 1 ? base : `${base}-r${k}`;
}

export function backoffAfter(rules: IntakeRules, failures: number): number {
  const r = rules.retry;
  return Math.min(r.maxMs, Math.floor(r.initialMs * r.multiplier ** Math.max(0, failures - 1)));
}

/**
 * The sync timer fired: the attempt to dispatch, and the next timer (the interval; while paused, the
 * cool-down: a paused intake stays paused until an answer says the tracker is back). Stale: null.
 */
export function syncFired(
  runId: string,
  s: IntakeState,
  timerId: string,
  now: number,
): { state: IntakeState; attemptId: string; effects: IntakeEffects } | null {
  if (s.timer?.timerId !== timerId) return null;
  const n = s.n + 1;
  const attemptId = `${runId}.tickets.sync.${n}`;
  const timer = { timerId: syncTimerId(runId, n + 1), dueAt: now + (s.paused ? s.rules.breaker.coolDownMs : s.rules.everyMs) };
  const events = s.paused ? [{ type: "intake.probing", data: { attempt: n, pausedSince: s.paused.at } }] : [];
  return { state: { ...s, n, sync: { attemptId, at: now }, timer }, attemptId, effects: { events, commands: [], arm: timer } };
}

/** The hub's answer to a sync. A stale attempt (not the current one) changes nothing: null. */
export function syncAnswered(
  runId: string,
  projectId: string,
  s: IntakeState,
  a: SyncAnswer,
  now: number,
): { state: IntakeState; effects: IntakeEffects } | null {
  if (s.sync?.attemptId !== a.attemptId) return null;
  const { sync: _s, ...rest } = s;
  const effects: IntakeEffects = { events: [], commands: [] };
  if (!a.ok) return failed(runId, rest, a.error, now, effects);

  const state: IntakeState = { ...rest, failures: 0, lastSyncAt: now, taken: { ...s.taken } };
  delete state.lastError;
  if (s.paused) {
    delete state.paused;
    effects.events.push({ type: "intake.resumed", data: { pausedSince: s.paused.at, failures: s.failures } });
    // Back to the normal interval.
    state.timer = { timerId: syncTimerId(runId, s.n + 1), dueAt: now + s.rules.everyMs };
    effects.arm = state.timer;
  }
  const rules = s.rules;
  let created = 0;
  let deferred = 0;
  for (const t of a.tickets) {
    const cancelled = cancelledOnTracker(rules.stateMap, t.state, t.stateType);
    const seen = state.taken[t.id];
    if (!seen) {
      if (cancelled) continue;
      if (created >= rules.maxNewPerSync) {
        deferred++;
        continue;
      }
      const runId = ticketRunIdFor(rules.provider, t.id, 1);
      effects.commands.push(createTicketRun(rules, projectId, t, runId, now));
      state.taken[t.id] = { key: t.key, runId, runs: 1, failedRuns: 0, status: "active", at: now };
      effects.events.push({ type: "intake.ticket_taken", data: { ticket: t.key, ticketId: t.id, runId } });
      created++;
    } else if (seen.status === "failed") {
      if (cancelled) {
        state.taken[t.id] = { ...seen, status: "ended" };
        continue;
      }
      if (created >= rules.maxNewPerSync) {
        deferred++;
        continue;
      }
      const runs = seen.runs + 1;
      const runId = ticketRunIdFor(rules.provider, t.id, runs);
      effects.commands.push(createTicketRun(rules, projectId, t, runId, now));
      state.taken[t.id] = { ...seen, runId, runs, status: "active", at: now };
      effects.events.push({ type: "intake.ticket_retried", data: { ticket: seen.key, runId, failedRuns: seen.failedRuns } });
      created++;
    } else if (cancelled && seen.status === "active") {
      effects.commands.push({
        type: "run.signal",
        commandId: `intake-cancel.${seen.runId}`,
        runId: seen.runId,
        issuedAt: now,
        actor: `intake:${rules.provider}`,
        signal: { name: "event", event: "Cancelled" },
      });
      state.taken[t.id] = { ...seen, status: "ended" };
      effects.events.push({ type: "intake.ticket_cancelled", data: { ticket: t.key, runId: seen.runId, state: t.state } });
    }
  }
  effects.events.push({ type: "intake.synced", data: { attempt: s.n, tickets: a.tickets.length, created, ...(deferred ? { deferred } : {}) } });
  state.taken = bounded(state.taken);
  return { state, effects };
}

function failed(runId: string, s: IntakeState, error: { code: string; message: string; retryable: boolean }, now: number, effects: IntakeEffects) {
  const failures = s.failures + 1;
  const state: IntakeState = { ...s, failures, lastError: { code: error.code, message: error.message.slice(0, 2_000), at: now } };
  const trip = !error.retryable || failures >= s.rules.breaker.failures;
  effects.events.push({
    type: "intake.sync_failed",
    data: { attempt: s.n, failures, code: error.code, message: error.message.slice(0, 500), retryable: error.retryable },
  });
  if (trip) {
    const until = now + s.rules.breaker.coolDownMs;
    const reason = error.retryable
      ? `${failures} syncs failed in a row: ${error.message.slice(0, 200)}`
      : `the tracker refused: ${error.message.slice(0, 200)}`;
    if (!s.paused) effects.events.push({ type: "intake.paused", data: { failures, until, reason, code: error.code } });
    state.paused = { at: s.paused?.at ?? now, until, reason };
    state.timer = { timerId: syncTimerId(runId, s.n + 1), dueAt: until };
  } else {
    state.timer = { timerId: syncTimerId(runId, s.n + 1), dueAt: now + backoffAfter(s.rules, failures) };
  }
  effects.arm = state.timer;
  return { state, effects };
}

/**
 * A ticket run ended (its own transition tells the intake): a failed one is run again (at once with
 * `ticket`; without it, when the next sync finds the ticket), or quarantined.
 */
export function ticketRunEnded(
  s: IntakeState,
  projectId: string,
  e: { ticketId: string; runId: string; status: "completed" | "failed" | "cancelled"; ticket?: Ticket },
  now: number,
): { state: IntakeState; effects: IntakeEffects } | null {
  const seen = s.taken[e.ticketId];
  if (!seen || seen.runId !== e.runId || seen.status !== "active") return null;
  const effects: IntakeEffects = { events: [], commands: [] };
  const taken = { ...s.taken };
  if (e.status !== "failed") {
    taken[e.ticketId] = { ...seen, status: "ended" };
    return { state: { ...s, taken }, effects };
  }
  const failedRuns = seen.failedRuns + 1;
  if (failedRuns >= s.rules.quarantineAfter) {
    taken[e.ticketId] = { ...seen, failedRuns, status: "quarantined" };
    effects.events.push({ type: "intake.quarantined", data: { ticket: seen.key, runId: e.runId, failedRuns } });
    return { state: { ...s, taken }, effects };
  }
  if (!e.ticket) {
    taken[e.ticketId] = { ...seen, failedRuns, status: "failed", at: now };
    effects.events.push({ type: "intake.ticket_failed", data: { ticket: seen.key, runId: e.runId, failedRuns } });
    return { state: { ...s, taken }, effects };
  }
  const runs = seen.runs + 1;
  const runId = ticketRunIdFor(s.rules.provider, e.ticketId, runs);
  effects.commands.push(createTicketRun(s.rules, projectId, e.ticket, runId, now));
  taken[e.ticketId] = { ...seen, runId, runs, failedRuns, status: "active", at: now };
  effects.events.push({ type: "intake.ticket_retried", data: { ticket: seen.key, runId, failedRuns } });
  return { state: { ...s, taken }, effects };
}

/** The create of a ticket's run: its input is the ticket (title, description, labels, link), its labels name it. */
export function createTicketRun(rules: IntakeRules, projectId: string, t: Ticket, runId: string, now: number): Record<string, unknown> & { commandId: string } {
  return {
    type: "run.create",
    commandId: `create:${runId}`,
    runId,
    issuedAt: now,
    actor: `intake:${rules.provider}`,
    projectId,
    definition: rules.definition,
    title: `${t.key}: ${t.title}`.slice(0, 500),
    labels: { [TICKET_LABEL]: t.key.slice(0, 256), [TRACKER_STATE_LABEL]: t.state.slice(0, 256), tracker: rules.provider },
    input: {
      key: t.key,
      title: t.title,
      description: t.description ?? "",
      labels: t.labels ?? [],
      ...(t.url ? { url: t.url } : {}),
      tracker: {
        provider: t.provider,
        id: t.id,
        key: t.key,
        ...(t.url ? { url: t.url } : {}),
        ...(t.repository ? { repository: t.repository } : {}),
        writeBack: { stateMap: rules.stateMap, commentSummaries: rules.commentSummaries, attachPrLinks: rules.attachPrLinks },
      },
    },
    autoStart: true,
    ...(rules.mode ? { mode: rules.mode } : {}),
    // Taken in is accepted: the pipeline starts (a create that finds the run changes nothing then either).
    ...(rules.acceptEvent ? { then: { name: "event", event: rules.acceptEvent } } : {}),
  };
}

/** A ticket run's create as an intake sends it: the run tells the intake when it ends (`child_ended`). */
export function createTicketRunReporting<C extends Record<string, unknown> & { commandId: string }>(c: C, intakeRunId: string): C {
  return { ...c, reportTo: intakeRunId };
}

/** The oldest ended or quarantined tickets forgotten past MAX_TAKEN (active ones are always kept). */
function bounded(taken: Record<string, TakenTicket>): Record<string, TakenTicket> {
  const ids = Object.keys(taken);
  if (ids.length <= MAX_TAKEN) return taken;
  const drop = ids
    .filter((id) => taken[id]!.status !== "active")
    .sort((a, b) => taken[a]!.at - taken[b]!.at)
    .slice(0, ids.length - MAX_TAKEN);
  const out = { ...taken };
  for (const id of drop) delete out[id];
  return out;
}

/**
 * What a ticket run writes back when it enters a stage (the `ticket.update` work the kernel
 * dispatches): the state the map gives the stage, a comment summarising it (with
 * commentSummaries), the pull request's link (with attachPrLinks, once it has one). Each write's key
 * names the run, the stage and the visit (a stage entered again is a new visit), so a redelivered
 * update writes nothing twice and a rework writes again.
 */
export function ticketWrites(
  rules: Pick<IntakeRules, "stateMap" | "commentSummaries" | "attachPrLinks">,
  w: { runId: string; stage: string; visit: number; summary?: string; pr?: { url: string; number?: number } },
): TicketWrite[] {
  const out: TicketWrite[] = [];
  const state = trackerStateFor(rules.stateMap, w.stage);
  if (state) out.push({ kind: "state", key: `${w.runId}.state.${w.stage}.${w.visit}`, state });
  if (rules.commentSummaries) {
    const body = [`**${w.stage}**${state ? ` (${state})` : ""}`, ...(w.summary ? ["", w.summary] : [])].join("\n").slice(0, 65_536);
    out.push({ kind: "comment", key: `${w.runId}.stage.${w.stage}.${w.visit}`, body });
  }
  if (rules.attachPrLinks && w.pr) out.push(prLinkWrite(w.runId, w.pr));
  return out;
}

/** A ticket run's pull request as a link on its ticket, keyed by the run and the PR (attached once). */
export function prLinkWrite(runId: string, pr: { url: string; number?: number }): TicketWrite {
  return {
    kind: "link",
    key: `${runId}.pr.${pr.number ?? pr.url}`.slice(0, 256),
    url: pr.url,
    title: `Pull request${pr.number !== undefined ? ` #${pr.number}` : ""}`,
  };
}

// ── writes the tracker failed: they wait in the intake, durably ─────────────────────────────
//
//   ticket.update fails in the hub (its short in-process tries) ──ticket_write_failed──▶ intake:
//     new write id: pending (failures 1); in flight and its attempt: failures + 1; else stale: nothing
//     retryable and failures < writeAbandonAfter ──▶ waiting, an `intake_write` timer at
//       now + backoff(failures) (the intake's retry rules)
//     else ──▶ abandoned (intake.write_abandoned), forgotten
//   its timer fires: the intake paused (breaker open, or the run paused) ──▶ held, tried when it
//     resumes; else ──▶ `ticket.update` work from the intake (attempt `<intake>.ticket.write.<seq>`,
//     payload writeId), in flight, with a timer that counts a missing answer as a failed try
//   ticket_written for the attempt in flight ──▶ landed (intake.write_landed), forgotten
//
// Newest wins: a ticket's newer state write replaces the state writes still waiting for it (a late
// older state would move the ticket back). Writes are keyed, so a write tried again is made once.

function writeTimerId(runId: string, seq: number): string {
  return `${runId}.ticket.write.${seq}`;
}

function keysOf(w: PendingWrite): string[] {
  return w.writes.map((x) => x.key);
}

function concluded(s: IntakeState, writeId: string): string[] {
  return [...(s.writesConcluded ?? []).filter((id) => id !== writeId), writeId].slice(-MAX_CONCLUDED);
}

function emptyEffects(): IntakeEffects & Required<Pick<IntakeEffects, "writeTimers" | "writeWork">> {
  return { events: [], commands: [], writeTimers: { set: [], cancel: [] }, writeWork: [] };
}

function abandon(
  s: IntakeState,
  w: PendingWrite,
  reason: string,
  error: { code: string; message: string; retryable?: boolean },
  effects: IntakeEffects,
): IntakeState {
  const writes = { ...s.writes };
  delete writes[w.writeId];
  if (w.timer) effects.writeTimers!.cancel.push(w.timer.timerId);
  effects.events.push({
    type: "intake.write_abandoned",
    data: {
      writeId: w.writeId,
      ticket: w.ticket.key,
      keys: keysOf(w),
      failures: w.failures,
      reason,
      code: error.code,
      message: error.message.slice(0, 500),
    },
  });
  return { ...s, writes, writesConcluded: concluded(s, w.writeId) };
}

/** The hub gave up on a ticket's writes for now (`ticket_write_failed`). A stale or duplicate report: null. */
export function writeFailed(
  runId: string,
  s: IntakeState,
  f: { writeId: string; attemptId: string; ticket: TicketRef; writes: TicketWrite[]; error: TrackerFailure },
  now: number,
): { state: IntakeState; effects: IntakeEffects } | null {
  if (s.writesConcluded?.includes(f.writeId)) return null;
  const seen = s.writes?.[f.writeId];
  if (seen && (seen.state !== "in_flight" || seen.attemptId !== f.attemptId)) return null;
  const effects = emptyEffects();
  const message = f.error.message.slice(0, 2_000);
  const w: PendingWrite = {
    writeId: f.writeId,
    ticket: f.ticket,
    writes: f.writes,
    failures: (seen?.failures ?? 0) + 1,
    state: "waiting",
    attemptId: f.attemptId,
    lastError: { code: f.error.code, message, at: now },
    firstAt: seen?.firstAt ?? now,
  };
  if (seen?.timer) effects.writeTimers.cancel.push(seen.timer.timerId);
  let state: IntakeState = { ...s, writes: { ...s.writes } };
  delete state.writes![f.writeId];
  if (!f.error.retryable) return { state: abandon(state, w, "the tracker refused the write", f.error, effects), effects };
  if (w.failures >= s.rules.writeAbandonAfter) return { state: abandon(state, w, `${w.failures} tries failed`, f.error, effects), effects };

  // Newest wins: the ticket's state writes still waiting (not in flight) give way to this one's.
  if (!seen && w.writes.some((x) => x.kind === "state")) {
    for (const other of Object.values(state.writes!)) {
      if (other.ticket.id !== w.ticket.id || other.ticket.provider !== w.ticket.provider || other.state === "in_flight") continue;
      const rest = other.writes.filter((x) => x.kind !== "state");
      if (rest.length === other.writes.length) continue;
      const superseded = other.writes.filter((x) => x.kind === "state").map((x) => x.key);
      if (rest.length === 0) {
        delete state.writes![other.writeId];
        if (other.timer) effects.writeTimers.cancel.push(other.timer.timerId);
        state.writesConcluded = concluded(state, other.writeId);
      } else state.writes![other.writeId] = { ...other, writes: rest };
      effects.events.push({ type: "intake.write_superseded", data: { writeId: other.writeId, ticket: other.ticket.key, keys: superseded, by: w.writeId } });
    }
  }

  const seq = (state.writeSeq ?? 0) + 1;
  w.timer = { timerId: writeTimerId(runId, seq), dueAt: now + backoffAfter(s.rules, w.failures) };
  state.writeSeq = seq;
  state.writes![w.writeId] = w;
  effects.writeTimers.set.push(w.timer);
  effects.events.push({
    type: "intake.write_failed",
    data: {
      writeId: w.writeId,
      ticket: w.ticket.key,
      keys: keysOf(w),
      failures: w.failures,
      code: f.error.code,
      message: message.slice(0, 500),
      nextAt: w.timer.dueAt,
    },
  });

  // Bounded: the oldest pending write is abandoned past the bound.
  const all = Object.values(state.writes!);
  if (all.length > MAX_PENDING_WRITES) {
    const oldest = all.sort((a, b) => a.firstAt - b.firstAt)[0]!;
    state = abandon(state, oldest, `more than ${MAX_PENDING_WRITES} writes pending`, oldest.lastError, effects);
  }
  return { state, effects };
}

/**
 * A pending write's timer fired. Waiting: dispatched again (or held, while `paused`: the intake's
 * breaker is open or its run is paused). In flight: no answer came, a failed try. Stale: null.
 */
export function writeFired(
  runId: string,
  s: IntakeState,
  timerId: string,
  now: number,
  paused: boolean,
): { state: IntakeState; effects: IntakeEffects } | null {
  const w = Object.values(s.writes ?? {}).find((x) => x.timer?.timerId === timerId);
  if (!w) return null;
  if (w.state === "in_flight")
    return writeFailed(runId, s, { ...w, error: { code: "NO_ANSWER", message: "the agent hub did not answer the write in time", retryable: true } }, now);
  const effects = emptyEffects();
  if (paused || s.paused) {
    const { timer: _t, ...rest } = w;
    effects.events.push({ type: "intake.write_held", data: { writeId: w.writeId, ticket: w.ticket.key } });
    return { state: { ...s, writes: { ...s.writes, [w.writeId]: { ...rest, state: "held" } } }, effects };
  }
  return dispatchWrite(runId, s, w, now, effects);
}

function dispatchWrite(runId: string, s: IntakeState, w: PendingWrite, now: number, effects: IntakeEffects): { state: IntakeState; effects: IntakeEffects } {
  const seq = (s.writeSeq ?? 0) + 1;
  const attemptId = `${runId}.ticket.write.${seq}`;
  const timer = { timerId: writeTimerId(runId, seq), dueAt: now + Math.max(WRITE_ANSWER_TIMEOUT_MS, s.rules.retry.maxMs) };
  effects.writeTimers!.set.push(timer);
  effects.writeWork!.push({ attemptId, attempt: w.failures + 1, payload: { ticket: w.ticket, writes: w.writes, intake: runId, writeId: w.writeId } });
  effects.events.push({
    type: "intake.write_retried",
    data: { writeId: w.writeId, ticket: w.ticket.key, keys: keysOf(w), attempt: w.failures + 1, attemptId },
  });
  return { state: { ...s, writeSeq: seq, writes: { ...s.writes, [w.writeId]: { ...w, state: "in_flight", attemptId, timer } } }, effects };
}

/** The hub wrote what the intake dispatched again (`ticket_written`). Stale: null. */
export function writeLanded(s: IntakeState, a: { writeId: string; attemptId: string }): { state: IntakeState; effects: IntakeEffects } | null {
  const w = s.writes?.[a.writeId];
  if (!w || w.state !== "in_flight" || w.attemptId !== a.attemptId) return null;
  const effects = emptyEffects();
  const writes = { ...s.writes };
  delete writes[a.writeId];
  if (w.timer) effects.writeTimers.cancel.push(w.timer.timerId);
  effects.events.push({ type: "intake.write_landed", data: { writeId: w.writeId, ticket: w.ticket.key, keys: keysOf(w), failures: w.failures } });
  return { state: { ...s, writes, writesConcluded: concluded(s, w.writeId) }, effects };
}

/** The intake runs again (its breaker closed, its run resumed): the held writes are dispatched. Nothing held: null. */
export function heldWritesResumed(runId: string, s: IntakeState, now: number): { state: IntakeState; effects: IntakeEffects } | null {
  const held = Object.values(s.writes ?? {}).filter((w) => w.state === "held");
  if (held.length === 0) return null;
  const effects = emptyEffects();
  let state = s;
  for (const w of held) state = dispatchWrite(runId, state, w, now, effects).state;
  return { state, effects };
}
