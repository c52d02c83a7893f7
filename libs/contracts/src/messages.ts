import { z } from "zod";
import { Id, Millis, RunSummary, RunView } from "./run-views.js";
import { RunMode, RunStatus, TimerKind, WorkKind } from "./vocabulary.js";

/**
 * Every message that crosses NATS, as zod schemas used as codecs: the publisher validates before it
 * sends, the consumer validates before it acts, and whatever fails on the way in is a dead letter.
 */

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
  mode: RunMode.default("mock"),
  /**
   * Create-or-signal: a signal applied in the same transition, to the run just created, or to the
   * run as it stands when it exists already (a run one of many others share, created by the first
   * that needs it: a merge queue). Without it, creating a run that exists changes nothing.
   */
  then: z.looseObject({ name: z.string().min(1).max(64) }).optional(),
  /** A run told when this one ends (`child_ended`): the schedule that created it. */
  reportTo: Id.optional(),
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
  kind: WorkKind,
  ok: z.boolean(),
  notes: z.array(z.string().max(10_000)).max(1_000).optional(),
  output: z.unknown().optional(),
  error: StepError.optional(),
  usage: Usage.optional(),
  model: z.string().max(200).optional(),
  startedAt: Millis,
  finishedAt: Millis,
});

export const TimerFiredCommand = z.object({
  ...CommandBase,
  type: z.literal("timer.fired"),
  timerId: z.string().min(1).max(300),
  kind: TimerKind,
  stepId: z.string().min(1).max(64).optional(),
});

export const Command = z.discriminatedUnion("type", [RunCreateCommand, RunSignalCommand, StepResultCommand, TimerFiredCommand]);

/**
 * The command a `command` timer carries (the scheduler sends it when the timer fires): any command,
 * checked by its schema when it is sent (a periodic run's tick carries the create of its slot's run).
 */
export const TimerCommand = z.looseObject({ type: z.string().min(1).max(64), commandId: z.string().min(1).max(256), runId: Id });
export type TimerCommand = z.infer<typeof TimerCommand>;
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
  /** The run as it stands after the command (so the caller need not read it again). */
  run: RunView.optional(),
  duplicate: z.boolean().optional(),
  /** Where the transition the command wrote is in the runs stream (a reader that must have seen it waits for it). */
  streamSeq: z.int().positive().optional(),
});
export type CommandOutcome = z.output<typeof CommandOutcome>;
/** An outcome as the core writes it (its view's zero counters may be left out). */
export type CommandOutcomeInput = z.input<typeof CommandOutcome>;

/** A step dispatched to the agent hub. At-least-once: `attemptId` makes its result idempotent. */
export const WorkItem = z.object({
  runId: Id,
  projectId: Id,
  definition: z.object({ id: z.string(), version: z.int() }),
  stepId: z.string().min(1).max(64),
  attemptId: z.string().min(1).max(300),
  attempt: z.int().nonnegative(),
  kind: WorkKind,
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
  mode: RunMode,
  goal: z.string().max(10_000).optional(),
  /** The run's git branch and what it starts from (the agent hub picks defaults when absent). */
  workspace: z.object({ branch: z.string().min(1).max(255).optional(), base: z.string().min(1).max(255).optional() }).optional(),
  dispatchedAt: Millis,
});
export type WorkItem = z.infer<typeof WorkItem>;

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
  /** Runs matching. */
  total: z.int().nonnegative(),
  /** Events those runs have (each run's events are numbered gaplessly: its last one's number is its count). */
  events: z.int().nonnegative().optional(),
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
  /**
   * On every transition: the timers it sets or cancels (a TimerHead, as JSON), or `-` when it touches
   * none, so the scheduler reads transitions headers only and never receives their bodies. (Its
   * absence marks a transition written before the header existed.)
   */
  Timers: "Orch-Timers",
} as const;

/**
 * A timer the scheduler keeps in its bucket (key = timer id): one set by a transition that was still
 * armed when the scheduler made it durable. It fires `timer.fired` to the run when due.
 */
export const StoredTimer = z.object({
  timerId: z.string().min(1).max(300),
  runId: Id,
  dueAt: Millis,
  kind: TimerKind,
  stepId: z.string().min(1).max(64).optional(),
  /** What a `command` timer sends when it fires. */
  command: TimerCommand.optional(),
  setAt: Millis,
});
export type StoredTimer = z.infer<typeof StoredTimer>;

/** The scheduler's armed timers (`<p>.q.timers.list`), soonest first, optionally of one run. */
export const TIMERS_QUERY = "timers.list";
export const TimersQuery = z.strictObject({ runId: Id.optional() });
export const TimersResult = z.object({
  timers: z.array(StoredTimer),
  /** Who answered: the active scheduler (the holder of the leader lease), and its lease's epoch. */
  scheduler: z.object({ instanceId: z.string(), epoch: z.int() }).optional(),
});
export type TimersResult = z.infer<typeof TimersResult>;
