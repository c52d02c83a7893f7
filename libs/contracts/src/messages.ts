import { z } from "zod";
import { isToken } from "./names.js";
import { JOB_STATUSES, TaskPacket, TaskStep } from "./seed000.js";

/**
 * Every message that crosses NATS, as zod schemas used as codecs: the publisher validates before it
 * sends, the consumer validates before it acts, and whatever fails on the way in is a dead letter.
 */

/** An id that can be a subject token (run ids, project ids). */
export const Id = z.string().refine(isToken, { message: "must match [A-Za-z0-9_-]{1,128}" });
/** Epoch milliseconds. */
export const Millis = z.int().nonnegative();

const CommandBase = {
  /** Idempotency key: a command with an id already applied to the run changes nothing. */
  commandId: z.string().min(1).max(256),
  runId: Id,
  issuedAt: Millis,
  /** Who asked: `api`, `grpc`, `agent-hub`, `scheduler`, or a user id. */
  actor: z.string().max(200).optional(),
};

export const StepError = z.object({
  code: z.string().min(1).max(100),
  message: z.string().max(10_000),
  /** False stops the core's retries at once (an unknown step type, a refused tool). */
  retryable: z.boolean(),
});
export type StepError = z.infer<typeof StepError>;

export const JobCreateCommand = z.object({
  ...CommandBase,
  type: z.literal("job.create"),
  projectId: Id,
  packet: TaskPacket,
  mode: z.enum(["mock", "live"]),
});

export const JobCancelCommand = z.object({
  ...CommandBase,
  type: z.literal("job.cancel"),
  reason: z.string().max(2_000).optional(),
});

export const StepResultCommand = z.object({
  ...CommandBase,
  type: z.literal("step.result"),
  attemptId: z.string().min(1).max(300),
  index: z.int().nonnegative(),
  ok: z.boolean(),
  notes: z.array(z.string().max(10_000)).max(1_000).optional(),
  output: z.unknown().optional(),
  error: StepError.optional(),
  startedAt: Millis,
  finishedAt: Millis,
});

export const TimerKind = z.enum(["retry", "wall_clock"]);
export type TimerKind = z.infer<typeof TimerKind>;

export const TimerFiredCommand = z.object({
  ...CommandBase,
  type: z.literal("timer.fired"),
  timerId: z.string().min(1).max(300),
  kind: TimerKind,
});

export const Command = z.discriminatedUnion("type", [
  JobCreateCommand,
  JobCancelCommand,
  StepResultCommand,
  TimerFiredCommand,
]);
export type Command = z.infer<typeof Command>;
export type JobCreateCommand = z.infer<typeof JobCreateCommand>;
export type JobCancelCommand = z.infer<typeof JobCancelCommand>;
export type StepResultCommand = z.infer<typeof StepResultCommand>;
export type TimerFiredCommand = z.infer<typeof TimerFiredCommand>;

/** A step dispatched to the agent hub. At-least-once: `attemptId` makes its result idempotent. */
export const WorkItem = z.object({
  runId: Id,
  projectId: Id,
  attemptId: z.string().min(1).max(300),
  index: z.int().nonnegative(),
  /** 0 for the first attempt, 1 and 2 for the retries. */
  attempt: z.int().nonnegative(),
  step: TaskStep,
  mode: z.enum(["mock", "live"]),
  goal: z.string(),
  dispatchedAt: Millis,
});
export type WorkItem = z.infer<typeof WorkItem>;

export const TimerSet = z.object({
  op: z.literal("set"),
  timerId: z.string().min(1).max(300),
  dueAt: Millis,
  /** Published to the command stream when the timer fires. */
  command: TimerFiredCommand,
});
export const TimerCancel = z.object({
  op: z.literal("cancel"),
  timerId: z.string().min(1).max(300),
});
export const TimerRequest = z.discriminatedUnion("op", [TimerSet, TimerCancel]);
export type TimerSet = z.infer<typeof TimerSet>;
export type TimerCancel = z.infer<typeof TimerCancel>;
export type TimerRequest = z.infer<typeof TimerRequest>;

/** What the scheduler keeps for each armed timer (KV bucket `timers`, key = timer id). */
export const StoredTimer = z.object({
  timerId: z.string().min(1),
  dueAt: Millis,
  command: TimerFiredCommand,
  setAt: Millis,
});
export type StoredTimer = z.infer<typeof StoredTimer>;

/**
 * Run event vocabulary. Seed surfaces are views: seed 000's `step.start` is `step.started`, and so on.
 */
export const RunEventType = {
  Created: "run.created",
  Started: "run.started",
  CancelRequested: "run.cancel_requested",
  Finished: "run.finished",
  StepStarted: "step.started",
  StepSucceeded: "step.succeeded",
  StepRetrying: "step.retrying",
  StepFailed: "step.failed",
  /** A step result that arrived for an attempt the run no longer waits for (kept for audit). */
  StepResultIgnored: "step.result_ignored",
} as const;
export type RunEventType = (typeof RunEventType)[keyof typeof RunEventType];

export const RunEvent = z.object({
  runId: Id,
  projectId: Id,
  /** Gapless per run, from 1. */
  seq: z.int().min(1),
  type: z.string().min(1).max(100),
  at: Millis,
  data: z.record(z.string(), z.unknown()).optional(),
});
export type RunEvent = z.infer<typeof RunEvent>;

/** Side effects of one transition, persisted with the snapshot before any is published (outbox). */
export const Effect = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("event"), event: RunEvent }),
  z.object({ kind: z.literal("work"), queue: z.string().min(1), item: WorkItem }),
  z.object({ kind: z.literal("timer"), request: TimerRequest }),
]);
export type Effect = z.infer<typeof Effect>;

export const RunKind = z.enum(["job"]);

/**
 * A run as persisted in the `runs` bucket, written only by the core with compare-and-set.
 * The view fields are denormalised from the machine on every transition so readers never need
 * the machine; `machine` is the XState snapshot (`value` + `context`) the core restores.
 */
export const RunRecord = z.object({
  v: z.literal(1),
  runId: Id,
  projectId: Id,
  kind: RunKind,
  mode: z.enum(["mock", "live"]),
  status: z.enum(JOB_STATUSES),
  createdAt: Millis,
  updatedAt: Millis,
  startedAt: Millis.optional(),
  finishedAt: Millis.optional(),
  error: z.string().optional(),
  stepsRun: z.int().nonnegative(),
  /** Sequence of the last event this run has emitted. */
  seq: z.int().nonnegative(),
  machine: z.object({ value: z.unknown(), context: z.unknown() }),
  /** Effects of the latest transition: republished (idempotently) by whoever loads the record. */
  outbox: z.array(Effect),
  /** Ids of recently applied commands, newest last (bounded). */
  recent: z.array(z.string()),
});
export type RunRecord = z.infer<typeof RunRecord>;

/** What a consumer parks when it cannot decode or handle a message. */
export const DeadLetter = z.object({
  origin: z.string(),
  stream: z.string().optional(),
  subject: z.string(),
  streamSeq: z.int().optional(),
  deliveries: z.int().optional(),
  reason: z.enum(["undecodable", "invalid", "handler_failed"]),
  error: z.string(),
  at: Millis,
  headers: z.record(z.string(), z.string()).optional(),
  /** The original payload, base64. */
  data: z.string(),
});
export type DeadLetter = z.infer<typeof DeadLetter>;

/** Header names the bus sets on every message. */
export const Header = {
  MsgId: "Nats-Msg-Id",
  CorrelationId: "Orch-Correlation-Id",
  Schema: "Orch-Schema",
  TraceParent: "traceparent",
  TraceState: "tracestate",
} as const;
