import type { StepStatus } from "@orch/contracts";
import { assign, setup } from "xstate";
import type { EmitParams, TimerParams, DispatchParams, CancelTimerParams, StepError, Usage } from "./types.js";

/**
 * A step run's lifecycle, pure (XState v5, no I/O). The kernel decides policy (may it retry? does QA
 * or an approval follow?) and passes the decision in the event, so the definition stays the one
 * place where policy lives and this machine only says what each decision does.
 *
 *   pending ─DISPATCH─▶ running ─RESULT(done)──────────────▶ completed
 *                          │     RESULT(qa)──▶ qa ──QA_RESULT(done|approval|fail)
 *                          │     RESULT(needs_qa)──▶ needs_qa ──RUN_QA──▶ qa;  ─FAIL─▶ failed
 *                          │     RESULT(approval)──▶ waiting_approval ─APPROVE─▶ completed
 *                          │                                         └REJECT─▶ pending (rework) | failed
 *                          │     RESULT(retry)──▶ retry_wait ──RETRY_TIMER──▶ running
 *                          └──── RESULT(fail), TIMEOUT, FAIL ──▶ failed ──DISPATCH (retry_latest)──▶ running
 *   any non-final ─CANCEL─▶ cancelled (final);  ─BLOCK─▶ blocked ─DISPATCH─▶ running
 *   completed | failed | blocked | skipped ─RESET─▶ pending (loops, triggers);  pending ─SKIP─▶ skipped
 *
 * Attempt numbers never repeat within a run (`attempt` only grows), so a result always names the
 * attempt it answers and a late one is recognised and ignored.
 */

export interface StepContext {
  runId: string;
  stepId: string;
  index: number;
  /** Dispatches so far (execution and QA); the current attempt id ends with it. */
  attempt: number;
  /** Execution dispatches in the current cycle (reset by rework, loops, manual retries): the retry counter. */
  tries: number;
  /** Manual retries (seed 004's `retries`). */
  retries: number;
  reworks: number;
  iteration: number;
  /** Trigger chain depth that (re)started this step. */
  depth: number;
  now: number;
  output?: unknown;
  revision?: string;
  notes?: string[];
  error?: StepError;
  usage: Usage;
  feedback?: string;
  /** What whoever started this attempt by hand said about it (a CI failure to fix): for this attempt only. */
  hint?: string;
  startedAt?: number;
  finishedAt?: number;
  /** Which kind of work is in flight (execute or qa), for a result to be matched against. */
  inflight?: "execute" | "qa";
  /** Timers this step has armed and not yet disarmed (so a cancel is sent only for real ones). */
  armed?: { timeout?: string; approval?: string; retry?: string };
}

export interface StepInput {
  runId: string;
  stepId: string;
  index: number;
  now: number;
}

interface Clock {
  at: number;
  rand: number;
}

export type Decision = "done" | "qa" | "needs_qa" | "approval" | "retry" | "fail";

export type StepEvent =
  | ({ type: "DISPATCH"; reason: "auto" | "manual" | "trigger" | "retry" | "rework"; timeoutMs?: number; depth?: number; hint?: string } & Clock)
  | ({
      type: "RESULT";
      attemptId: string;
      ok: boolean;
      decision: Decision;
      output?: unknown;
      revision?: string;
      notes?: string[];
      error?: StepError;
      usage?: Usage;
      backoffMs?: number;
      approvalTimeoutMs?: number;
      timeoutMs?: number;
    } & Clock)
  | ({
      type: "QA_RESULT";
      attemptId: string;
      ok: boolean;
      decision: Decision;
      output?: unknown;
      revision?: string;
      error?: StepError;
      usage?: Usage;
      approvalTimeoutMs?: number;
    } & Clock)
  | ({ type: "RETRY_TIMER"; timerId: string; timeoutMs?: number } & Clock)
  | ({ type: "TIMEOUT"; timerId: string; decision: Decision; backoffMs?: number; error?: StepError } & Clock)
  | ({ type: "APPROVAL_TIMEOUT"; timerId: string } & Clock)
  | ({ type: "RUN_QA" } & Clock)
  | ({ type: "APPROVE"; actor?: string; reason?: string; output?: unknown; force?: boolean } & Clock)
  | ({ type: "REJECT"; actor?: string; reason?: string; rework: boolean } & Clock)
  | ({ type: "COMPLETE"; output?: unknown; revision?: string; decision: Decision; actor?: string; approvalTimeoutMs?: number } & Clock)
  | ({ type: "FAIL"; error: StepError; actor?: string } & Clock)
  | ({ type: "CANCEL"; reason?: string } & Clock)
  | ({ type: "BLOCK"; reason?: string } & Clock)
  | ({ type: "SKIP"; reason?: string } & Clock)
  | ({ type: "RESET"; reason: "loop" | "trigger" | "rework" | "retry"; depth?: number; iteration?: number } & Clock);

export const attemptIdOf = (c: Pick<StepContext, "runId" | "stepId" | "attempt">) => `${c.runId}.${c.stepId}.${c.attempt}`;
export const retryTimerId = (c: Pick<StepContext, "runId" | "stepId" | "attempt">) => `${c.runId}.${c.stepId}.${c.attempt}.retry`;
export const timeoutTimerId = (c: Pick<StepContext, "runId" | "stepId" | "attempt">) => `${c.runId}.${c.stepId}.${c.attempt}.timeout`;
export const approvalTimerId = (c: Pick<StepContext, "runId" | "stepId" | "attempt">) => `${c.runId}.${c.stepId}.${c.attempt}.approval`;

const ZERO: Usage = { tokensIn: 0, tokensOut: 0, costUsd: 0, wallMs: 0 };
const addUsage = (a: Usage, b: Usage | undefined): Usage =>
  b ? { tokensIn: a.tokensIn + b.tokensIn, tokensOut: a.tokensOut + b.tokensOut, costUsd: a.costUsd + b.costUsd, wallMs: a.wallMs + b.wallMs } : a;

type Args = { context: StepContext; event: StepEvent };

/** `step.<what>` with the step's identity, the status change, and extra data. */
const emit = (what: string, from: StepStatus | "same", to: StepStatus, data?: (a: Args) => Record<string, unknown>) => ({
  type: "emit" as const,
  params: (a: Args): EmitParams => ({
    type: `step.${what}`,
    at: a.event.at,
    data: { stepId: a.context.stepId, index: a.context.index, attempt: a.context.attempt, from, to, ...data?.(a) },
  }),
});

const dispatch = (kind: "execute" | "qa") => ({
  type: "dispatch" as const,
  params: ({ context, event }: Args): DispatchParams => ({ stepId: context.stepId, kind, attempt: context.attempt, at: event.at }),
});

const armTimeout = [
  {
    type: "setTimer" as const,
    params: ({ context, event }: Args): TimerParams | null => {
      const t = "timeoutMs" in event ? event.timeoutMs : undefined;
      return t ? { timerId: timeoutTimerId(context), dueAt: event.at + t, kind: "step_timeout", stepId: context.stepId } : null;
    },
  },
  "noteTimeoutArmed" as const,
];
const armApprovalTimeout = [
  {
    type: "setTimer" as const,
    params: ({ context, event }: Args): TimerParams | null => {
      const t = "approvalTimeoutMs" in event ? event.approvalTimeoutMs : undefined;
      return t ? { timerId: approvalTimerId(context), dueAt: event.at + t, kind: "approval_timeout", stepId: context.stepId } : null;
    },
  },
  "noteApprovalArmed" as const,
];
const armRetry = (timer: (a: Args) => TimerParams) => [{ type: "setTimer" as const, params: timer }, "noteRetryArmed" as const];
/** Cancels an armed timer of this kind, if there is one, and forgets it. */
const disarm = (kind: "timeout" | "approval" | "retry") => [
  {
    type: "cancelTimer" as const,
    params: ({ context }: Args): CancelTimerParams | null => {
      const id = context.armed?.[kind];
      return id ? { timerId: id } : null;
    },
  },
  { type: "forget" as const, params: { kind } },
];
const disarmTimeout = disarm("timeout");
const disarmApprovalTimeout = disarm("approval");
const disarmRetry = disarm("retry");

/** A result for an attempt this step no longer awaits: recorded, changes nothing. */
const ignored = {
  type: "emit" as const,
  params: ({ context, event }: Args): EmitParams => ({
    type: "step.result_ignored",
    at: event.at,
    data: { stepId: context.stepId, index: context.index, attemptId: "attemptId" in event ? event.attemptId : null, current: attemptIdOf(context) },
  }),
};

/** What every non-final state accepts: CANCEL, and an approval forced past the step's state (seed 004). */
const ANYWHERE = {
  CANCEL: {
    target: "#step.cancelled",
    actions: [
      "tick",
      "finish",
      ...disarmTimeout,
      ...disarmRetry,
      ...disarmApprovalTimeout,
      emit("cancelled", "same", "cancelled", ({ event }) => (event.type === "CANCEL" && event.reason ? { reason: event.reason } : {})),
    ],
  },
  APPROVE: {
    guard: "forced",
    target: "#step.completed",
    actions: ["tick", "approveWith", "finish", ...disarmTimeout, ...disarmRetry, ...disarmApprovalTimeout, emit("approved", "same", "completed", approvalData)],
  },
} as const;

const decided =
  (d: Decision) =>
  ({ event }: Args) =>
    "decision" in event && event.decision === d;
const matches = ({ context, event }: Args) => "attemptId" in event && event.attemptId === attemptIdOf(context);

export const stepMachine = setup({
  types: { context: {} as StepContext, events: {} as StepEvent, input: {} as StepInput },
  actions: {
    emit: (_, _p: EmitParams) => undefined,
    dispatch: (_, _p: DispatchParams) => undefined,
    setTimer: (_, _p: TimerParams | null) => undefined,
    cancelTimer: (_, _p: CancelTimerParams | null) => undefined,
    tick: assign(({ event }) => ({ now: event.at })),
    startAttempt: assign(({ context, event }) => ({
      attempt: context.attempt + 1,
      tries: event.type === "DISPATCH" && (event.reason === "manual" || event.reason === "trigger") && context.tries > 0 ? 1 : context.tries + 1,
      retries: event.type === "DISPATCH" && event.reason === "manual" && context.attempt > 0 ? context.retries + 1 : context.retries,
      depth: event.type === "DISPATCH" && event.depth !== undefined ? event.depth : context.depth,
      hint: event.type === "DISPATCH" ? event.hint : undefined,
      startedAt: context.startedAt ?? event.at,
      inflight: "execute" as const,
      error: undefined,
      finishedAt: undefined,
    })),
    startQa: assign(({ context }) => ({ attempt: context.attempt + 1, inflight: "qa" as const })),
    record: assign(({ context, event }) => {
      if (event.type !== "RESULT" && event.type !== "QA_RESULT" && event.type !== "COMPLETE") return {};
      const u = "usage" in event ? event.usage : undefined;
      return {
        usage: addUsage(context.usage, u),
        ...(event.type !== "QA_RESULT" && event.output !== undefined ? { output: event.output } : {}),
        ...(event.revision !== undefined ? { revision: event.revision } : {}),
        ...(event.type === "RESULT" && event.notes !== undefined ? { notes: event.notes } : {}),
        ...("error" in event && event.error !== undefined ? { error: event.error } : {}),
        inflight: undefined,
      };
    }),
    failWith: assign(({ event }) => ({
      error:
        event.type === "FAIL"
          ? event.error
          : event.type === "TIMEOUT"
            ? (event.error ?? { code: "STEP_TIMEOUT", message: "the step timed out", retryable: true })
            : undefined,
      inflight: undefined,
    })),
    finish: assign(({ event }) => ({ finishedAt: event.at, inflight: undefined })),
    rework: assign(({ context, event }) => ({
      reworks: context.reworks + 1,
      tries: 0,
      feedback: event.type === "REJECT" ? event.reason : context.feedback,
      revision: undefined,
    })),
    reset: assign(({ context, event }) => ({
      tries: 0,
      iteration: event.type === "RESET" && event.iteration !== undefined ? event.iteration : context.iteration,
      depth: event.type === "RESET" && event.depth !== undefined ? event.depth : context.depth,
      error: undefined,
      revision: undefined,
      finishedAt: undefined,
      inflight: undefined,
    })),
    approveWith: assign(({ event }) => (event.type === "APPROVE" && event.output !== undefined ? { output: event.output } : {})),
    noteTimeoutArmed: assign(({ context, event }) =>
      "timeoutMs" in event && event.timeoutMs ? { armed: { ...context.armed, timeout: timeoutTimerId(context) } } : {},
    ),
    noteApprovalArmed: assign(({ context, event }) =>
      "approvalTimeoutMs" in event && event.approvalTimeoutMs ? { armed: { ...context.armed, approval: approvalTimerId(context) } } : {},
    ),
    noteRetryArmed: assign(({ context }) => ({ armed: { ...context.armed, retry: retryTimerId(context) } })),
    forget: assign(({ context }, p: { kind: "timeout" | "approval" | "retry" }) =>
      context.armed?.[p.kind] ? { armed: { ...context.armed, [p.kind]: undefined } } : {},
    ),
  },
  guards: {
    matches,
    decidedDone: decided("done"),
    decidedQa: decided("qa"),
    decidedNeedsQa: decided("needs_qa"),
    decidedApproval: decided("approval"),
    decidedRetry: decided("retry"),
    isCurrentRetryTimer: ({ context, event }) => event.type === "RETRY_TIMER" && event.timerId === retryTimerId(context),
    isCurrentTimeout: ({ context, event }) => event.type === "TIMEOUT" && event.timerId === timeoutTimerId(context),
    isCurrentApprovalTimeout: ({ context, event }) => event.type === "APPROVAL_TIMEOUT" && event.timerId === approvalTimerId(context),
    reworkAllowed: ({ event }) => event.type === "REJECT" && event.rework,
    forced: ({ event }) => event.type === "APPROVE" && event.force === true,
  },
}).createMachine({
  id: "step",
  initial: "pending",
  // Evaluated without input too (see the run machine): no throw.
  context: ({ input }) => ({
    ...(input ?? { runId: "", stepId: "", index: 0, now: 0 }),
    attempt: 0,
    tries: 0,
    retries: 0,
    reworks: 0,
    iteration: 0,
    depth: 0,
    usage: ZERO,
  }),
  states: {
    pending: {
      on: {
        ...ANYWHERE,
        DISPATCH: { target: "running", actions: ["tick", "startAttempt", dispatchedEvent("pending"), dispatch("execute"), ...armTimeout] },
        SKIP: { target: "skipped", actions: ["tick", "finish", emit("skipped", "pending", "skipped")] },
        BLOCK: { target: "blocked", actions: ["tick", emit("blocked", "pending", "blocked", reasonOf)] },
        RUN_QA: { target: "qa", actions: ["tick", "startQa", emit("qa_started", "pending", "qa"), dispatch("qa")] },
        FAIL: { target: "failed", actions: ["tick", "failWith", "finish", emit("failed", "pending", "failed", errorData)] },
      },
    },
    running: {
      on: {
        ...ANYWHERE,
        RESULT: [{ guard: { type: "matches" }, target: "routing", actions: ["tick", "record", ...disarmTimeout] }, { actions: ["tick", ignored] }],
        COMPLETE: { target: "routing", actions: ["tick", "record", ...disarmTimeout] },
        TIMEOUT: [{ guard: "isCurrentTimeout", target: "routing", actions: ["tick", "failWith", { type: "forget", params: { kind: "timeout" as const } }] }],
        FAIL: { target: "failed", actions: ["tick", "failWith", "finish", ...disarmTimeout, emit("failed", "running", "failed", errorData)] },
        BLOCK: { target: "blocked", actions: ["tick", ...disarmTimeout, emit("blocked", "running", "blocked", reasonOf)] },
        RUN_QA: { target: "qa", actions: ["tick", "startQa", ...disarmTimeout, emit("qa_started", "running", "qa"), dispatch("qa")] },
      },
    },
    /** Where a result (or timeout) leads, per the kernel's decision. */
    routing: {
      always: [
        { guard: "decidedDone", target: "completed", actions: ["finish", emit("succeeded", "running", "completed", resultData)] },
        {
          guard: "decidedQa",
          target: "qa",
          actions: [emit("succeeded", "running", "qa", resultData), "startQa", emit("qa_started", "running", "qa"), dispatch("qa")],
        },
        {
          guard: "decidedNeedsQa",
          target: "needs_qa",
          actions: [emit("succeeded", "running", "needs_qa", resultData), emit("needs_qa", "running", "needs_qa")],
        },
        {
          guard: "decidedApproval",
          target: "waiting_approval",
          actions: [
            emit("succeeded", "running", "waiting_approval", resultData),
            emit("awaiting_approval", "running", "waiting_approval", revisionData),
            ...armApprovalTimeout,
          ],
        },
        {
          guard: "decidedRetry",
          target: "retry_wait",
          actions: [
            emit("retrying", "running", "retry_wait", ({ context, event }) => ({
              retry: context.tries,
              backoffMs: backoffOf(event),
              error: context.error ?? null,
            })),
            ...armRetry(({ context, event }) => ({
              timerId: retryTimerId(context),
              dueAt: event.at + backoffOf(event),
              kind: "retry",
              stepId: context.stepId,
            })),
          ],
        },
        { target: "failed", actions: ["finish", emit("failed", "running", "failed", errorData)] },
      ],
    },
    retry_wait: {
      on: {
        ...ANYWHERE,
        RETRY_TIMER: [
          // A timer of an earlier attempt matches no transition: nothing changes.
          {
            guard: "isCurrentRetryTimer",
            target: "running",
            actions: [
              "tick",
              { type: "forget", params: { kind: "retry" as const } },
              "startAttempt",
              dispatchedEvent("retry_wait"),
              dispatch("execute"),
              ...armTimeout,
            ],
          },
        ],
        RESULT: { actions: ["tick", ignored] },
        FAIL: { target: "failed", actions: ["tick", "failWith", "finish", ...disarmRetry, emit("failed", "retry_wait", "failed", errorData)] },
        BLOCK: { target: "blocked", actions: ["tick", ...disarmRetry, emit("blocked", "retry_wait", "blocked", reasonOf)] },
      },
    },
    needs_qa: {
      on: {
        ...ANYWHERE,
        RUN_QA: { target: "qa", actions: ["tick", "startQa", emit("qa_started", "needs_qa", "qa"), dispatch("qa")] },
        // Judged from outside while it waits for QA (seed 004: a CI failure; needs_qa → failed).
        FAIL: { target: "failed", actions: ["tick", "failWith", "finish", emit("failed", "needs_qa", "failed", errorData)] },
        RESULT: { actions: ["tick", ignored] },
      },
    },
    qa: {
      on: {
        ...ANYWHERE,
        QA_RESULT: [{ guard: { type: "matches" }, target: "qa_routing", actions: ["tick", "record"] }, { actions: ["tick", ignored] }],
        RESULT: { actions: ["tick", ignored] },
        RUN_QA: { actions: ["tick", "startQa", emit("qa_started", "qa", "qa"), dispatch("qa")] },
      },
    },
    qa_routing: {
      always: [
        { guard: "decidedDone", target: "completed", actions: ["finish", emit("qa_passed", "qa", "completed", qaData)] },
        {
          guard: "decidedApproval",
          target: "waiting_approval",
          actions: [
            emit("qa_passed", "qa", "waiting_approval", qaData),
            emit("awaiting_approval", "qa", "waiting_approval", revisionData),
            ...armApprovalTimeout,
          ],
        },
        { target: "failed", actions: ["finish", emit("qa_failed", "qa", "failed", qaData)] },
      ],
    },
    waiting_approval: {
      on: {
        CANCEL: ANYWHERE.CANCEL,
        APPROVE: {
          target: "completed",
          actions: ["tick", "approveWith", "finish", ...disarmApprovalTimeout, emit("approved", "waiting_approval", "completed", approvalData)],
        },
        REJECT: [
          {
            guard: "reworkAllowed",
            target: "pending",
            actions: ["tick", ...disarmApprovalTimeout, emit("rejected", "waiting_approval", "pending", rejectionData), "rework"],
          },
          {
            target: "failed",
            actions: [
              "tick",
              ...disarmApprovalTimeout,
              assign({
                error: ({ event }) => ({
                  code: "REJECTED",
                  message: event.type === "REJECT" && event.reason ? `rejected: ${event.reason}` : "rejected",
                  retryable: false,
                }),
              }),
              "finish",
              emit("rejected", "waiting_approval", "failed", rejectionData),
            ],
          },
        ],
        APPROVAL_TIMEOUT: [
          {
            guard: "isCurrentApprovalTimeout",
            target: "failed",
            actions: [
              "tick",
              { type: "forget", params: { kind: "approval" as const } },
              assign({ error: { code: "APPROVAL_TIMEOUT", message: "nobody approved or rejected in time", retryable: false } }),
              "finish",
              emit("failed", "waiting_approval", "failed", errorData),
            ],
          },
        ],
        RUN_QA: { target: "qa", actions: ["tick", "startQa", ...disarmApprovalTimeout, emit("qa_started", "waiting_approval", "qa"), dispatch("qa")] },
        RESULT: { actions: ["tick", ignored] },
      },
    },
    completed: {
      on: {
        RESET: { target: "pending", actions: ["tick", "reset", emit("reset", "completed", "pending", resetData)] },
        RESULT: { actions: ["tick", ignored] },
      },
    },
    failed: {
      on: {
        ...ANYWHERE,
        SKIP: { target: "skipped", actions: ["tick", "finish", emit("skipped", "failed", "skipped")] },
        DISPATCH: { target: "running", actions: ["tick", "startAttempt", dispatchedEvent("failed"), dispatch("execute"), ...armTimeout] },
        RESET: { target: "pending", actions: ["tick", "reset", emit("reset", "failed", "pending", resetData)] },
        RUN_QA: { target: "qa", actions: ["tick", "startQa", emit("qa_started", "failed", "qa"), dispatch("qa")] },
        RESULT: { actions: ["tick", ignored] },
      },
    },
    blocked: {
      on: {
        ...ANYWHERE,
        SKIP: { target: "skipped", actions: ["tick", "finish", emit("skipped", "blocked", "skipped")] },
        DISPATCH: { target: "running", actions: ["tick", "startAttempt", dispatchedEvent("blocked"), dispatch("execute"), ...armTimeout] },
        RESET: { target: "pending", actions: ["tick", "reset", emit("reset", "blocked", "pending", resetData)] },
        RUN_QA: { target: "qa", actions: ["tick", "startQa", emit("qa_started", "blocked", "qa"), dispatch("qa")] },
        RESULT: { actions: ["tick", ignored] },
      },
    },
    skipped: {
      on: { ...ANYWHERE, RESET: { target: "pending", actions: ["tick", "reset", emit("reset", "skipped", "pending", resetData)] } },
    },
    cancelled: { type: "final" },
  },
});

export type StepMachine = typeof stepMachine;

function backoffOf(e: StepEvent): number {
  return "backoffMs" in e && typeof e.backoffMs === "number" ? e.backoffMs : 0;
}

function dispatchedEvent(from: StepStatus) {
  return emit("started", from, "running", ({ context, event }) => ({
    attemptId: attemptIdOf(context),
    try: context.tries,
    reason: event.type === "DISPATCH" ? event.reason : "retry",
    ...(context.feedback !== undefined && context.reworks > 0 ? { feedback: context.feedback, rework: context.reworks } : {}),
    ...(context.hint !== undefined ? { hint: context.hint } : {}),
  }));
}

function errorData({ context, event }: Args): Record<string, unknown> {
  const err = event.type === "FAIL" ? event.error : context.error;
  return err ? { error: err.message, code: err.code } : {};
}

function resultData({ context, event }: Args): Record<string, unknown> {
  const d: Record<string, unknown> = {};
  if (context.notes !== undefined && event.type === "RESULT") d.notes = context.notes;
  if (context.output !== undefined) d.output = context.output;
  if (context.revision !== undefined) d.revision = context.revision;
  if ("usage" in event && event.usage) d.usage = event.usage;
  if (event.type === "COMPLETE") d.external = true;
  return d;
}

function qaData({ event }: Args): Record<string, unknown> {
  if (event.type !== "QA_RESULT") return {};
  return { ok: event.ok, ...(event.output !== undefined ? { report: event.output } : {}), ...(event.error ? { error: event.error.message } : {}) };
}

function revisionData({ context }: Args): Record<string, unknown> {
  return context.revision === undefined ? {} : { revision: context.revision };
}

function approvalData({ context, event }: Args): Record<string, unknown> {
  if (event.type !== "APPROVE") return {};
  return { revision: context.revision ?? null, actor: event.actor ?? null, reason: event.reason ?? null, ...(event.force ? { forced: true } : {}) };
}

function rejectionData({ context, event }: Args): Record<string, unknown> {
  if (event.type !== "REJECT") return {};
  return { revision: context.revision ?? null, actor: event.actor ?? null, reason: event.reason ?? null, rework: context.reworks + (event.rework ? 1 : 0) };
}

function resetData({ event }: Args): Record<string, unknown> {
  return event.type === "RESET" ? { reason: event.reason, ...(event.iteration !== undefined ? { iteration: event.iteration } : {}) } : {};
}

function reasonOf({ event }: Args): Record<string, unknown> {
  return "reason" in event && event.reason ? { reason: event.reason } : {};
}
