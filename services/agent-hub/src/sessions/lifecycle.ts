import type { SessionStatus, StepError } from "@orch/contracts";
import { pureInitial, pureTransition } from "@orch/engine";
import { assign, setup } from "xstate";

/**
 * A worker session's lifecycle (seed 003's worker sessions, as an XState machine): pure, persisted
 * as `{value, context}` in the session record, advanced by the agent hub with compare-and-set.
 *
 *   created ─START─▶ starting ─STARTED─▶ running ⇄ waiting_input (WAIT_INPUT / INPUT)
 *   starting | running | waiting_input ─COMPLETE─▶ completed
 *   any non-final ─FAIL | LOST─▶ failed      (from created: its worktree could not be prepared, its hub died)
 *   any non-final ─TIMEOUT [past deadline]─▶ timed_out
 *   any non-final ─CANCEL─▶ cancelled
 *
 * HEARTBEAT moves the deadline (`heartbeatAt + timeoutMs`) in every live state. Each change of state
 * emits `status {from, to, …}`, which the hub publishes as a `session.<to>` event.
 */

/** The machine's states are the session statuses (contracts' vocabulary). */
export type SessionState = SessionStatus;

export type SessionError = StepError;

export interface SessionContext {
  sessionId: string;
  timeoutMs: number;
  createdAt: number;
  startedAt?: number;
  heartbeatAt: number;
  deadlineAt: number;
  finishedAt?: number;
  error?: SessionError;
  /** Who cancelled it and why, or what it waits for. */
  reason?: string;
  actor?: string;
}

export interface SessionInput {
  sessionId: string;
  timeoutMs: number;
  at: number;
}

export type SessionEvent =
  | { type: "START"; at: number }
  | { type: "STARTED"; at: number }
  | { type: "HEARTBEAT"; at: number }
  | { type: "WAIT_INPUT"; at: number; reason?: string }
  | { type: "INPUT"; at: number }
  | { type: "COMPLETE"; at: number }
  | { type: "FAIL"; at: number; error: SessionError }
  | { type: "LOST"; at: number; error: SessionError }
  | { type: "TIMEOUT"; at: number }
  | { type: "CANCEL"; at: number; reason?: string; actor?: string };

export interface StatusChange {
  from: SessionState;
  to: SessionState;
  at: number;
  reason?: string;
  error?: SessionError;
}

type Args = { context: SessionContext; event: SessionEvent };

const status = (from: SessionState, to: SessionState) => ({
  type: "status" as const,
  params: ({ context, event }: Args): StatusChange => {
    const out: StatusChange = { from, to, at: event.at };
    if (event.type === "FAIL" || event.type === "LOST") out.error = event.error;
    if (event.type === "TIMEOUT") out.error = timedOut(context);
    if ((event.type === "CANCEL" || event.type === "WAIT_INPUT") && event.reason !== undefined) out.reason = event.reason;
    return out;
  },
});

const timedOut = (context: SessionContext): SessionError => ({
  code: "SESSION_TIMED_OUT",
  message: `no heartbeat since ${new Date(context.heartbeatAt).toISOString()}`,
  retryable: true,
});

/** Transitions out of a live state that end the session. */
const endings = (from: SessionState) => ({
  COMPLETE: { target: "completed" as const, actions: ["finish" as const, status(from, "completed")] },
  FAIL: { target: "failed" as const, actions: ["finish" as const, status(from, "failed")] },
  LOST: { target: "failed" as const, actions: ["finish" as const, status(from, "failed")] },
  TIMEOUT: { guard: "pastDeadline" as const, target: "timed_out" as const, actions: ["finish" as const, status(from, "timed_out")] },
  CANCEL: { target: "cancelled" as const, actions: ["finish" as const, status(from, "cancelled")] },
  HEARTBEAT: { actions: "beat" as const },
});

export const sessionMachine = setup({
  types: { context: {} as SessionContext, events: {} as SessionEvent, input: {} as SessionInput },
  guards: {
    pastDeadline: ({ context, event }) => event.at >= context.deadlineAt,
  },
  actions: {
    status: (_, _params: StatusChange) => undefined,
    beat: assign(({ context, event }) => ({
      heartbeatAt: Math.max(context.heartbeatAt, event.at),
      deadlineAt: Math.max(context.deadlineAt, event.at + context.timeoutMs),
    })),
    started: assign(({ event }) => ({ startedAt: event.at })),
    waiting: assign(({ event }) => (event.type === "WAIT_INPUT" && event.reason !== undefined ? { reason: event.reason } : {})),
    finish: assign(({ context, event }) => {
      const next: Partial<SessionContext> = { finishedAt: event.at };
      if (event.type === "FAIL" || event.type === "LOST") next.error = event.error;
      if (event.type === "TIMEOUT") next.error = timedOut(context);
      if (event.type === "CANCEL") {
        next.error = { code: "SESSION_CANCELLED", message: event.reason ?? "cancelled", retryable: false };
        if (event.reason !== undefined) next.reason = event.reason;
        if (event.actor !== undefined) next.actor = event.actor;
      }
      return next;
    }),
  },
}).createMachine({
  id: "session",
  initial: "created",
  context: ({ input }) => ({
    sessionId: input?.sessionId ?? "",
    timeoutMs: input?.timeoutMs ?? 60_000,
    createdAt: input?.at ?? 0,
    heartbeatAt: input?.at ?? 0,
    deadlineAt: (input?.at ?? 0) + (input?.timeoutMs ?? 60_000),
  }),
  states: {
    created: {
      on: {
        START: { target: "starting", actions: ["beat", status("created", "starting")] },
        // Whatever can end a session before it starts (its workspace failed, its hub died, its
        // time ran out while it waited for a slot) ends it: none stays `created` for ever.
        FAIL: { target: "failed", actions: ["finish", status("created", "failed")] },
        LOST: { target: "failed", actions: ["finish", status("created", "failed")] },
        TIMEOUT: { guard: "pastDeadline", target: "timed_out", actions: ["finish", status("created", "timed_out")] },
        CANCEL: { target: "cancelled", actions: ["finish", status("created", "cancelled")] },
      },
    },
    starting: {
      on: {
        STARTED: { target: "running", actions: ["beat", "started", status("starting", "running")] },
        ...endings("starting"),
      },
    },
    running: {
      on: {
        WAIT_INPUT: { target: "waiting_input", actions: ["beat", "waiting", status("running", "waiting_input")] },
        ...endings("running"),
      },
    },
    waiting_input: {
      on: {
        INPUT: { target: "running", actions: ["beat", status("waiting_input", "running")] },
        ...endings("waiting_input"),
      },
    },
    completed: { type: "final" },
    failed: { type: "final" },
    cancelled: { type: "final" },
    timed_out: { type: "final" },
  },
});

/** What the session record keeps of the machine. */
export interface PersistedSession {
  value: SessionState;
  context: SessionContext;
}

export interface SessionStep {
  snapshot: PersistedSession;
  status: SessionState;
  /** Whether the event was accepted (an illegal or stale one changes nothing). */
  changed: boolean;
  changes: StatusChange[];
}

type Snap = { value: unknown; context: SessionContext; status: string };

function toStep(before: PersistedSession | undefined, next: Snap, actions: { type: string; params?: unknown }[]): SessionStep {
  const snapshot: PersistedSession = { value: next.value as SessionState, context: next.context };
  const changes = actions.filter((a) => a.type === "status").map((a) => a.params as StatusChange);
  const changed = before === undefined || before.value !== snapshot.value || JSON.stringify(before.context) !== JSON.stringify(snapshot.context);
  return { snapshot, status: snapshot.value, changed, changes };
}

export function createSession(input: SessionInput): SessionStep {
  const [snap, actions] = pureInitial<Snap>(sessionMachine, input);
  return toStep(undefined, snap, actions);
}

/** Applies one event to a persisted session; an event the state does not accept changes nothing. */
export function advanceSession(persisted: PersistedSession, event: SessionEvent): SessionStep {
  const snap = sessionMachine.resolveState(persisted as never);
  const [next, actions] = pureTransition<Snap>(sessionMachine, snap, event);
  return toStep(persisted, next, actions);
}
