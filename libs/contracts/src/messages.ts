import { z } from "zod";
import { isToken } from "./names.js";

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

/** Statuses every run has, whatever its definition; each seed's vocabulary is a view of them. */
export const RUN_STATUSES = ["pending", "planning", "planned", "running", "paused", "blocked", "waiting", "completed", "failed", "cancelled"] as const;
export const RunStatus = z.enum(RUN_STATUSES);
export type RunStatus = z.infer<typeof RunStatus>;
export const FINAL_RUN_STATUSES: ReadonlySet<RunStatus> = new Set(["completed", "failed", "cancelled"]);

export const Usage = z.object({
  tokensIn: z.int().nonnegative(),
  tokensOut: z.int().nonnegative(),
  costUsd: z.number().nonnegative(),
  wallMs: z.int().nonnegative(),
});
export type Usage = z.infer<typeof Usage>;

export const DefinitionRef = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/),
  /** Omitted: the latest version. */
  version: z.int().min(1).optional(),
});
export type DefinitionRef = z.infer<typeof DefinitionRef>;

const JsonObject = z.record(z.string(), z.unknown());

/** Creates a run of a definition. The run id is the client's (or derived from an idempotency key). */
export const RunCreateCommand = z.object({
  ...CommandBase,
  type: z.literal("run.create"),
  projectId: Id,
  definition: DefinitionRef,
  title: z.string().max(500).optional(),
  /** Small, indexed key/values: seed ids (`feature_id`), `workflow_type`, a ticket key. */
  labels: z.record(z.string().max(64), z.string().max(256)).optional(),
  input: JsonObject.optional(),
  /** Steps the run brings (definitions with dynamic steps: a Task Packet's, a task's). */
  steps: z.array(JsonObject).max(1_000).optional(),
  facts: JsonObject.optional(),
  limits: JsonObject.optional(),
  budgets: z.array(JsonObject).max(100).optional(),
  autoStart: z.boolean().default(true),
  mode: z.enum(["mock", "live"]).default("mock"),
});

/**
 * An action on a run: start, pause, resume, cancel, run_next_step, retry_latest, approve, reject,
 * … (the engine's Signal). The engine validates it against the run; a refused one changes nothing.
 */
export const RunSignalCommand = z.object({
  ...CommandBase,
  type: z.literal("run.signal"),
  signal: z.looseObject({ name: z.string().min(1).max(64) }),
  reason: z.string().max(10_000).optional(),
});

export const StepResultCommand = z.object({
  ...CommandBase,
  type: z.literal("step.result"),
  stepId: z.string().min(1).max(64),
  attemptId: z.string().min(1).max(300),
  kind: z.enum(["execute", "qa", "plan"]),
  ok: z.boolean(),
  notes: z.array(z.string().max(10_000)).max(1_000).optional(),
  output: z.unknown().optional(),
  error: StepError.optional(),
  usage: Usage.optional(),
  model: z.string().max(200).optional(),
  startedAt: Millis,
  finishedAt: Millis,
});

export const TimerKind = z.enum(["retry", "step_timeout", "approval_timeout", "wall_clock"]);
export type TimerKind = z.infer<typeof TimerKind>;

export const TimerFiredCommand = z.object({
  ...CommandBase,
  type: z.literal("timer.fired"),
  timerId: z.string().min(1).max(300),
  kind: TimerKind,
  stepId: z.string().min(1).max(64).optional(),
});

export const Command = z.discriminatedUnion("type", [RunCreateCommand, RunSignalCommand, StepResultCommand, TimerFiredCommand]);
export type Command = z.infer<typeof Command>;
export type RunCreateCommand = z.input<typeof RunCreateCommand>;
export type RunSignalCommand = z.infer<typeof RunSignalCommand>;
export type StepResultCommand = z.infer<typeof StepResultCommand>;
export type TimerFiredCommand = z.infer<typeof TimerFiredCommand>;

/** What the core answers (on the command's reply subject, when it has one) once it has applied or refused it. */
export const CommandOutcome = z.object({
  commandId: z.string(),
  runId: z.string(),
  ok: z.boolean(),
  /** Refusals: ILLEGAL_TRANSITION, NOT_FOUND, STALE_REVISION, GUARD_FAILED, TERMINAL_STATE, INVALID. */
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  status: RunStatus.optional(),
  duplicate: z.boolean().optional(),
});
export type CommandOutcome = z.infer<typeof CommandOutcome>;

/** A step dispatched to the agent hub. At-least-once: `attemptId` makes its result idempotent. */
export const WorkItem = z.object({
  runId: Id,
  projectId: Id,
  definition: z.object({ id: z.string(), version: z.int() }),
  stepId: z.string().min(1).max(64),
  attemptId: z.string().min(1).max(300),
  attempt: z.int().nonnegative(),
  /** `execute` the step, check it (`qa`), or plan the run (`plan`). */
  kind: z.enum(["execute", "qa", "plan"]),
  index: z.int(),
  role: z.string().min(1).max(64),
  /** An adapter (`dev.log`, `ci`, …) or what the role's executor should do (`speckit.specify`, `agent`). */
  type: z.string().min(1).max(200),
  phase: z.string().max(64),
  title: z.string().max(500).optional(),
  inputs: JsonObject,
  payload: JsonObject.optional(),
  model: z.string().max(200).optional(),
  timeoutMs: z.int().positive().optional(),
  iteration: z.int().nonnegative(),
  rework: z.int().nonnegative(),
  feedback: z.string().max(10_000).optional(),
  mode: z.enum(["mock", "live"]),
  goal: z.string().max(10_000).optional(),
  /** The run's git branch and what it starts from (the agent hub picks defaults when absent). */
  workspace: z.object({ branch: z.string().min(1).max(255).optional(), base: z.string().min(1).max(255).optional() }).optional(),
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
  StatusChanged: "run.status_changed",
  StageEntered: "run.stage_entered",
  StageChanged: "run.stage_changed",
  FactsChanged: "run.facts_changed",
  Finished: "run.finished",
  StepAdded: "step.added",
  StepStarted: "step.started",
  StepSucceeded: "step.succeeded",
  StepRetrying: "step.retrying",
  StepFailed: "step.failed",
  StepQaStarted: "step.qa_started",
  StepNeedsQa: "step.needs_qa",
  StepQaPassed: "step.qa_passed",
  StepQaFailed: "step.qa_failed",
  StepAwaitingApproval: "step.awaiting_approval",
  StepApproved: "step.approved",
  StepRejected: "step.rejected",
  StepCancelled: "step.cancelled",
  StepBlocked: "step.blocked",
  StepSkipped: "step.skipped",
  StepReset: "step.reset",
  /** A step result that arrived for an attempt the run no longer waits for (kept for audit). */
  StepResultIgnored: "step.result_ignored",
  BudgetExceeded: "budget.exceeded",
  BudgetExtended: "budget.extended",
  LoopIteration: "loop.iteration",
  LoopExhausted: "loop.exhausted",
  TriggerFired: "trigger.fired",
  TriggerSkipped: "trigger.skipped",
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

/**
 * A run as persisted in the `runs` bucket, written only by the core with compare-and-set. The summary
 * fields are denormalised on every transition so readers (the gateway, the index) never need the
 * engine; `state` is the engine's (opaque here), `outbox` the effects of the latest transition.
 */
export const RunRecord = z.object({
  v: z.literal(2),
  runId: Id,
  projectId: Id,
  definition: z.object({ id: z.string(), version: z.int(), hash: z.string() }),
  /** Which seed's vocabulary presents it. */
  view: z.string(),
  mode: z.enum(["mock", "live"]),
  title: z.string().optional(),
  labels: z.record(z.string(), z.string()),
  status: RunStatus,
  stage: z.string().optional(),
  createdAt: Millis,
  updatedAt: Millis,
  startedAt: Millis.optional(),
  finishedAt: Millis.optional(),
  error: z.string().optional(),
  result: z.unknown().optional(),
  stepsRun: z.int().nonnegative(),
  /** Sequence of the last event this run has emitted. */
  seq: z.int().nonnegative(),
  state: z.record(z.string(), z.unknown()),
  outbox: z.array(Effect),
  /** Ids of recently applied commands, newest last (bounded). */
  recent: z.array(z.string()),
});
export type RunRecord = z.infer<typeof RunRecord>;

/** One run in the run index (what lists show), kept by the event-bus from run-level events. */
export const RunSummary = z.object({
  runId: Id,
  projectId: Id,
  definition: z.object({ id: z.string(), version: z.int() }),
  view: z.string(),
  title: z.string().optional(),
  labels: z.record(z.string(), z.string()),
  status: RunStatus,
  stage: z.string().optional(),
  createdAt: Millis,
  updatedAt: Millis,
  startedAt: Millis.optional(),
  finishedAt: Millis.optional(),
  error: z.string().optional(),
  /** The last run event applied (events at or below it are duplicates). */
  seq: z.int().nonnegative(),
});
export type RunSummary = z.infer<typeof RunSummary>;

export const RunQuery = z.strictObject({
  projectId: Id.optional(),
  status: z.array(RunStatus).max(10).optional(),
  definitionId: z.string().max(128).optional(),
  view: z.string().max(32).optional(),
  labels: z.record(z.string().max(64), z.string().max(256)).optional(),
  limit: z.int().min(1).max(500).default(50),
  /** Opaque: the `nextCursor` of the previous page. */
  cursor: z.string().max(512).optional(),
});
export type RunQuery = z.input<typeof RunQuery>;

export const RunQueryResult = z.object({
  runs: z.array(RunSummary),
  nextCursor: z.string().optional(),
  total: z.int().nonnegative(),
});
export type RunQueryResult = z.infer<typeof RunQueryResult>;

/** A refused query (bad filter, bad cursor). */
export const QueryError = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

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
  /** Where the core answers a command's outcome (a core NATS inbox; optional). */
  ReplyTo: "Orch-Reply-To",
} as const;
