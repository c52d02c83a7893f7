import { and, assign, setup } from "xstate";
import {
  IMPLICIT_STEP,
  JobError,
  MAX_STEP_RETRIES,
  RunEventType,
  retryBackoffMs,
  type JobStatus,
  type Mode,
  type StepError,
  type TaskPacket,
  type TaskStep,
} from "@orch/contracts";

/**
 * Seed 000's job as a pure XState v5 machine: no I/O, no clock, no randomness. Every event carries
 * `at` (the core's clock) and `rand` (jitter), so a transition is a function of snapshot and event.
 * Side effects are named actions with resolved params (`emit`, `dispatch`, `setTimer`,
 * `cancelTimer`) that the core persists as its outbox and then publishes.
 *
 *   queued ──START──▶ running ─┬─ check ──▶ awaiting ──ok──▶ check ──all done──▶ succeeded
 *                              │      │         └─fail─▶ backoff ──timer──▶ awaiting (≤ 2 retries)
 *                              │      └─ wall clock / step budget ──▶ failed
 *                              └─ WALL_CLOCK ──▶ failed;  CANCEL (queued or running) ──▶ canceled
 *
 * The loop guard runs before each step, in the original's order: wall clock past
 * `createdAt + maxWallMs`, then `stepsRun >= maxSteps`. A durable wall-clock timer also ends a job
 * whose step hangs. Results for any attempt but the one awaited are recorded and ignored.
 */

export interface JobInput {
  jobId: string;
  projectId: string;
  mode: Mode;
  packet: TaskPacket;
  createdAt: number;
}

export interface JobContext extends JobInput {
  /** The steps that run: the packet's, or the one implicit `dev.log` step. */
  steps: TaskStep[];
  now: number;
  rand: number;
  index: number;
  /** 0 for a step's first attempt. */
  attempt: number;
  stepsRun: number;
  startedAt?: number;
  finishedAt?: number;
  error?: string;
}

interface Clock {
  at: number;
  rand: number;
}

export type JobEvent =
  | ({ type: "START" } & Clock)
  | ({ type: "CANCEL"; reason?: string; actor?: string } & Clock)
  | ({ type: "STEP_RESULT"; attemptId: string; ok: boolean; notes?: string[]; error?: StepError; output?: unknown } & Clock)
  | ({ type: "RETRY_TIMER"; timerId: string } & Clock)
  | ({ type: "WALL_CLOCK"; timerId: string } & Clock);

export const attemptIdOf = (c: Pick<JobContext, "jobId" | "index" | "attempt">) => `${c.jobId}.${c.index}.${c.attempt}`;
export const retryTimerIdOf = (c: Pick<JobContext, "jobId" | "index" | "attempt">) => `${c.jobId}.retry.${c.index}.${c.attempt}`;
export const wallTimerIdOf = (c: Pick<JobContext, "jobId">) => `${c.jobId}.wall`;

/** The agent hub queue a step type goes to. */
export const QUEUE_ADAPTER = "adapter";

export interface EmitParams {
  type: string;
  at: number;
  data?: Record<string, unknown>;
}
export interface DispatchParams {
  queue: string;
  attemptId: string;
  index: number;
  attempt: number;
  step: TaskStep;
  at: number;
}
export interface SetTimerParams {
  timerId: string;
  dueAt: number;
  kind: "retry" | "wall_clock";
}
export interface CancelTimerParams {
  timerId: string;
}

type ActionArgs = { context: JobContext; event: JobEvent };

/** The retry number (1, 2) and its backoff for the attempt that just failed. */
function retryOf({ context, event }: ActionArgs) {
  const retry = context.attempt + 1;
  return { retry, backoffMs: retryBackoffMs(retry, event.rand) };
}

function finish(status: Exclude<JobStatus, "queued" | "running">) {
  return [
    { type: "markFinished" as const },
    {
      type: "emit" as const,
      params: ({ context }: ActionArgs): EmitParams => ({
        type: RunEventType.Finished,
        at: context.now,
        data: context.error === undefined ? { status } : { status, error: context.error },
      }),
    },
    { type: "cancelTimer" as const, params: ({ context }: ActionArgs): CancelTimerParams => ({ timerId: wallTimerIdOf(context) }) },
  ];
}

const emitCancelRequested = {
  type: "emit" as const,
  params: ({ event }: ActionArgs): EmitParams => {
    const data: Record<string, unknown> = {};
    if (event.type === "CANCEL" && event.reason !== undefined) data.reason = event.reason;
    if (event.type === "CANCEL" && event.actor !== undefined) data.actor = event.actor;
    return { type: RunEventType.CancelRequested, at: event.at, data };
  },
};

const emitIgnored = {
  type: "emit" as const,
  params: ({ event }: ActionArgs): EmitParams => ({
    type: RunEventType.StepResultIgnored,
    at: event.at,
    data: { attemptId: event.type === "STEP_RESULT" ? event.attemptId : null },
  }),
};

const failWith = (error: string) => ({ type: "fail" as const, params: { error } });

export const jobMachine = setup({
  types: {
    context: {} as JobContext,
    events: {} as JobEvent,
    input: {} as JobInput,
  },
  actions: {
    // Effects are data: the core reads them from transition() and carries them out itself.
    emit: (_, _params: EmitParams) => undefined,
    dispatch: (_, _params: DispatchParams) => undefined,
    setTimer: (_, _params: SetTimerParams) => undefined,
    cancelTimer: (_, _params: CancelTimerParams) => undefined,
    // Context updates.
    tick: assign(({ event }) => ({ now: event.at, rand: event.rand })),
    markStarted: assign(({ event }) => ({ startedAt: event.at })),
    markFinished: assign(({ context }) => ({ finishedAt: context.now })),
    fail: assign((_, params: { error: string }) => ({ error: params.error })),
    failFromResult: assign(({ event }) => ({
      error: event.type === "STEP_RESULT" ? (event.error?.message ?? "step failed") : "step failed",
    })),
    advance: assign(({ context }) => ({ stepsRun: context.stepsRun + 1, index: context.index + 1, attempt: 0 })),
    nextAttempt: assign(({ context }) => ({ attempt: context.attempt + 1 })),
  },
  guards: {
    allDone: ({ context }) => context.index >= context.steps.length,
    wallClockExceeded: ({ context }) => context.now > context.createdAt + context.packet.limits.maxWallMs,
    stepBudgetExhausted: ({ context }) => context.stepsRun >= context.packet.limits.maxSteps,
    isAwaitedAttempt: ({ context, event }) => event.type === "STEP_RESULT" && event.attemptId === attemptIdOf(context),
    isCurrentRetryTimer: ({ context, event }) => event.type === "RETRY_TIMER" && event.timerId === retryTimerIdOf(context),
    stepOk: ({ event }) => event.type === "STEP_RESULT" && event.ok,
    retryAllowed: ({ context, event }) =>
      event.type === "STEP_RESULT" && (event.error?.retryable ?? true) && context.attempt < MAX_STEP_RETRIES,
  },
}).createMachine({
  id: "job",
  initial: "queued",
  context: ({ input }) => ({
    ...input,
    steps: input.packet.steps.length > 0 ? input.packet.steps : [IMPLICIT_STEP],
    now: input.createdAt,
    rand: 0,
    index: 0,
    attempt: 0,
    stepsRun: 0,
  }),
  entry: {
    type: "emit",
    params: ({ context }) => ({
      type: RunEventType.Created,
      at: context.createdAt,
      data: {
        goal: context.packet.goal,
        steps: context.steps.length,
        limits: context.packet.limits,
        mode: context.mode,
        ...(context.packet.scope === undefined ? {} : { scope: context.packet.scope }),
        ...(context.packet.planRef === undefined ? {} : { planRef: context.packet.planRef }),
      },
    }),
  },
  states: {
    queued: {
      on: {
        START: { target: "running", actions: ["tick", "markStarted"] },
        CANCEL: { target: "canceled", actions: ["tick", emitCancelRequested] },
      },
    },
    running: {
      initial: "check",
      entry: [
        { type: "emit", params: ({ context }) => ({ type: RunEventType.Started, at: context.now }) },
        {
          type: "setTimer",
          params: ({ context }) => ({
            timerId: wallTimerIdOf(context),
            dueAt: context.createdAt + context.packet.limits.maxWallMs + 1,
            kind: "wall_clock" as const,
          }),
        },
      ],
      on: {
        CANCEL: { target: "canceled", actions: ["tick", emitCancelRequested] },
        WALL_CLOCK: { target: "failed", actions: ["tick", failWith(JobError.WallClockExceeded)] },
      },
      states: {
        /** The loop guard, before every step. */
        check: {
          always: [
            { guard: "allDone", target: "#job.succeeded" },
            { guard: "wallClockExceeded", target: "#job.failed", actions: failWith(JobError.WallClockExceeded) },
            { guard: "stepBudgetExhausted", target: "#job.failed", actions: failWith(JobError.StepBudgetExceeded) },
            { target: "awaiting" },
          ],
        },
        awaiting: {
          entry: [
            {
              type: "emit",
              params: ({ context }) => ({
                type: RunEventType.StepStarted,
                at: context.now,
                data: {
                  index: context.index,
                  attempt: context.attempt,
                  attemptId: attemptIdOf(context),
                  stepType: context.steps[context.index]!.type,
                  step: context.steps[context.index]!,
                },
              }),
            },
            {
              type: "dispatch",
              params: ({ context }) => ({
                queue: QUEUE_ADAPTER,
                attemptId: attemptIdOf(context),
                index: context.index,
                attempt: context.attempt,
                step: context.steps[context.index]!,
                at: context.now,
              }),
            },
          ],
          on: {
            STEP_RESULT: [
              {
                guard: and(["isAwaitedAttempt", "stepOk"]),
                target: "check",
                actions: [
                  "tick",
                  {
                    type: "emit",
                    params: ({ context, event }) => {
                      const data: Record<string, unknown> = { index: context.index, attempt: context.attempt };
                      if (event.type === "STEP_RESULT" && event.notes !== undefined) data.notes = event.notes;
                      if (event.type === "STEP_RESULT" && event.output !== undefined) data.output = event.output;
                      return { type: RunEventType.StepSucceeded, at: event.at, data };
                    },
                  },
                  "advance",
                ],
              },
              {
                guard: and(["isAwaitedAttempt", "retryAllowed"]),
                target: "backoff",
                actions: [
                  "tick",
                  {
                    type: "emit",
                    params: (args) => ({
                      type: RunEventType.StepRetrying,
                      at: args.event.at,
                      data: {
                        index: args.context.index,
                        attempt: retryOf(args).retry,
                        backoffMs: retryOf(args).backoffMs,
                        error: args.event.type === "STEP_RESULT" ? (args.event.error ?? null) : null,
                      },
                    }),
                  },
                  {
                    type: "setTimer",
                    params: (args) => ({
                      timerId: retryTimerIdOf({ ...args.context, attempt: retryOf(args).retry }),
                      dueAt: args.event.at + retryOf(args).backoffMs,
                      kind: "retry" as const,
                    }),
                  },
                  "nextAttempt",
                ],
              },
              {
                guard: "isAwaitedAttempt",
                target: "#job.failed",
                actions: [
                  "tick",
                  "failFromResult",
                  {
                    type: "emit",
                    params: ({ context, event }) => ({
                      type: RunEventType.StepFailed,
                      at: event.at,
                      data: {
                        index: context.index,
                        attempt: context.attempt,
                        error: context.error,
                        ...(event.type === "STEP_RESULT" && event.error ? { code: event.error.code } : {}),
                      },
                    }),
                  },
                ],
              },
              { actions: ["tick", emitIgnored] },
            ],
          },
        },
        backoff: {
          on: {
            RETRY_TIMER: [
              { guard: "isCurrentRetryTimer", target: "retry", actions: "tick" },
              // A timer of an earlier attempt, delivered again: nothing to do.
              { actions: "tick" },
            ],
            STEP_RESULT: { actions: ["tick", emitIgnored] },
          },
        },
        retry: {
          always: [
            { guard: "wallClockExceeded", target: "#job.failed", actions: failWith(JobError.WallClockExceeded) },
            { target: "awaiting" },
          ],
        },
      },
    },
    succeeded: { type: "final", entry: finish("succeeded") },
    failed: { type: "final", entry: finish("failed") },
    canceled: { type: "final", entry: finish("canceled") },
  },
});

export type JobMachine = typeof jobMachine;

/** The seed 000 status a snapshot value stands for. */
export function statusOf(value: unknown): JobStatus {
  if (value === "queued" || value === "succeeded" || value === "failed" || value === "canceled") return value;
  return "running";
}
