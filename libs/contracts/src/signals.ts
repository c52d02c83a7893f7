import { z } from "zod";
import { FORGE_PROVIDERS, type ForgeProvider } from "./forges.js";
import { DefinitionRef } from "./messages.js";
import {
  IntakeRules,
  TicketRef,
  TicketSyncAnswer,
  TicketWrite,
  TrackerFailure,
  type IntakeRules as IntakeRulesValue,
  type TicketRef as TicketRefValue,
  type TicketSyncAnswer as TicketSyncAnswerValue,
  type TicketWrite as TicketWriteValue,
  type TrackerFailure as TrackerFailureValue,
} from "./ticketing.js";
import { CI_STATUSES, REVIEW_STATES, RunMode, type CiStatus, type ReviewState } from "./vocabulary.js";

/**
 * Signals: what anyone outside the core may ask of a run (the API, the seed surfaces, webhooks, the
 * command stream's `run.signal`). Validated here, at the edge and again by the core; the kernel
 * decides what each does to the run, by the run's definition, or refuses with a typed code.
 */

export { CI_STATUSES, REVIEW_STATES, type CiStatus, type ReviewState } from "./vocabulary.js";

/** The CIs that report: the forges' (a pipeline of GitHub Actions or GitLab CI). */
export const CI_PROVIDERS = FORGE_PROVIDERS;
export type CiProvider = ForgeProvider;

/** A review's comment: on a line of a file, or on the whole change. */
export interface ReviewComment {
  path?: string;
  line?: number;
  body: string;
}

/** Why the core refused a command: the code a refusal carries on the wire and every surface maps. */
export const RefusalCode = {
  /** What was asked does not apply to the run's or the step's state (a step already running, …). */
  IllegalTransition: "ILLEGAL_TRANSITION",
  /** The run waits at a budget gate: `extend_budget` or `abort` first. */
  BudgetGate: "BUDGET_GATE",
  NotFound: "NOT_FOUND",
  StaleRevision: "STALE_REVISION",
  GuardFailed: "GUARD_FAILED",
  TerminalState: "TERMINAL_STATE",
  Invalid: "INVALID",
} as const;
export type RefusalCode = (typeof RefusalCode)[keyof typeof RefusalCode];

/** What every integration's report carries: where it comes from, when, and facts to record with it (the delivery). */
interface Report {
  provider?: CiProvider;
  url?: string;
  at?: number;
  facts?: Record<string, unknown>;
}

export type Signal =
  | { name: "start" }
  | { name: "pause" }
  | { name: "resume" }
  | { name: "cancel" }
  | { name: "run_next_step" }
  | { name: "retry_latest"; feedback?: string }
  | { name: "run_step"; stepId: string; feedback?: string }
  | { name: "run_qa"; stepId: string }
  | { name: "approve"; stepId?: string; revision?: string; force?: boolean; output?: unknown }
  | { name: "reject"; stepId?: string; revision?: string }
  | { name: "complete_step"; stepId?: string; output?: unknown }
  | { name: "fail_step"; stepId?: string; error: string; block?: boolean }
  | { name: "block_step"; stepId?: string }
  | { name: "skip_step"; stepId: string }
  | { name: "event"; event: string; facts?: Record<string, unknown> }
  | { name: "set_facts"; facts: Record<string, unknown> }
  /** A CI report on the step it is about (the one started last, or `stepId`): recorded, then the run's CI policy applies. */
  | ({ name: "ci_report"; status: CiStatus; conclusion?: string; check?: string; sha?: string; stepId?: string; jobId?: number | string } & Report)
  /** A pull request opened, closed unmerged, or merged: recorded, then the definition's pull request policy applies. */
  | ({ name: "pr_opened" | "pr_closed" | "pr_merged"; number?: number; action?: string } & Report)
  /**
   * A review of the run's pull request: recorded (the PR's review state), then the definition's
   * review policy applies (changes requested: a bounded fix attempt with the comments as feedback).
   */
  | ({
      name: "review_report";
      state: ReviewState;
      reviewer?: string;
      body?: string;
      comments?: ReviewComment[];
      sha?: string;
      number?: number;
    } & Report)
  /**
   * The merge queue (one per project and base branch, a run of the built-in `merge.queue`): a run
   * whose PR is ready to merge joins it (`mq_enqueue`), and leaves it merged, closed, cancelled or
   * sent back (`mq_leave`); the queue gives its head its turn (`mq_turn`), and the member's update
   * onto the latest base is answered by the agent hub (`mq_updated`, for the `pr.update` attempt).
   */
  | { name: "mq_enqueue"; runId: string; number?: number }
  | { name: "mq_leave"; runId: string; outcome: MergeQueueOutcome }
  | { name: "mq_turn"; queue: string }
  | {
      name: "mq_updated";
      attemptId: string;
      headSha?: string;
      strategy?: "rebase" | "merge";
      /** `git patch-id --stable` of the PR's change before the update (at the approved commit) and after. */
      approvedPatchId?: string;
      patchId?: string;
      conflict?: { files: string[]; message: string };
      error?: string;
    }
  | { name: "extend_budget"; tokens?: number; costUsd?: number }
  | { name: "abort" }
  /**
   * Steps in the definition's step format (the kernel validates each against the definition); with
   * `replace`, a step the run already brought or added is replaced and queued again (pending, its
   * attempt in flight withdrawn).
   */
  | { name: "add_steps"; steps: Record<string, unknown>[]; replace?: boolean }
  /**
   * Opens the run's pull request now (seed 004's `open_pr`): one `pr.open` step (role maintainer,
   * id `open_pr`, `open_pr_2`, …) added and started in one transition, or neither. `title`,
   * `payload` and `inputs` dress the step (a surface's own fields); the core composes the rest.
   */
  | { name: "open_pr"; title?: string; payload?: Record<string, unknown>; inputs?: Record<string, unknown> }
  /** A step that is no longer wanted: skipped when waiting or failed, cancelled (its attempt withdrawn) when active; else nothing. */
  | { name: "withdraw_step"; stepId: string }
  /** Merges keys into a step's metadata (shallow). */
  | { name: "set_step_metadata"; stepId: string; metadata: Record<string, unknown> }
  /** A periodic run's schedule: every `everyMs`, create the run `creates` describes (once per slot); or stop. */
  | { name: "set_schedule"; enabled: boolean; everyMs?: number; creates?: RunTemplate }
  /** A schedule run's schedule, replaced (the next due time is armed again from now). */
  | { name: "schedule_set"; spec: ScheduleSpecInput }
  /** A schedule run: one firing now, whatever its overlap policy. */
  | { name: "schedule_trigger" }
  /** A schedule run: a firing for every due time in `[from, to]` that has none yet. */
  | { name: "schedule_backfill"; from: number; to: number }
  /** A run this one created (`reportTo`) has ended: a schedule's overlap policy goes on, an intake's quarantine counts. */
  | { name: "child_ended"; runId: string; status: string }
  /** A ticket intake's rules, replaced (the core's settings at start; the same rules change nothing). */
  | { name: "set_intake"; rules: IntakeRulesValue }
  /** The agent hub's answer to a ticket intake's `tickets.sync` attempt (a stale attempt changes nothing). */
  | { name: "tickets_synced"; attemptId: string; answer: TicketSyncAnswerValue }
  /**
   * The agent hub to a ticket intake: a `ticket.update` attempt (`attemptId`) gave up on the tracker;
   * `writes` (those not written yet) wait in the intake, as `writeId`, and are tried again after its
   * backoff, or abandoned (not retryable, or too many tries).
   */
  | {
      name: "ticket_write_failed";
      writeId: string;
      attemptId: string;
      ticket: TicketRefValue;
      writes: TicketWriteValue[];
      error: TrackerFailureValue;
      tries?: number;
    }
  /** The agent hub to a ticket intake: the writes it dispatched again (`writeId`, attempt `attemptId`) are written. */
  | { name: "ticket_written"; writeId: string; attemptId: string };

export type SignalName = Signal["name"];

/** Why a run left its merge queue. */
export const MERGE_QUEUE_OUTCOMES = ["merged", "closed", "cancelled", "conflict", "reapproval", "failed"] as const;
export type MergeQueueOutcome = (typeof MERGE_QUEUE_OUTCOMES)[number];

/**
 * A run a periodic run (a tick) creates (`set_schedule`'s `creates`): the definition, what it is
 * given (templates over `slot`, the interval's number since the epoch; `at`, when it starts; `runId`,
 * the created run's id; and `everyMs`), created once per slot, with the run id
 * `<the periodic run>-<everyMs>-<slot>`.
 */
export const RunTemplate = z.strictObject({
  definition: DefinitionRef.strict(),
  title: z.string().max(500).optional(),
  labels: z.record(z.string().max(64), z.string().max(256)).optional(),
  input: z.record(z.string(), z.unknown()).optional(),
  steps: z.array(z.record(z.string(), z.unknown())).max(1_000).optional(),
  facts: z.record(z.string(), z.unknown()).optional(),
  mode: RunMode.optional(),
});
export type RunTemplate = z.output<typeof RunTemplate>;

/** What a schedule does when a firing comes while a run it created is still going (`allow`: creates it anyway). */
export const OVERLAP_POLICIES = ["skip", "queue", "cancel_previous", "allow"] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];
/** What a schedule does with the due times it missed (nothing fired them: no scheduler ran). */
export const CATCH_UP_POLICIES = ["none", "one", "all"] as const;
export type CatchUpPolicy = (typeof CATCH_UP_POLICIES)[number];

/** Labels a schedule puts on each run it creates: which schedule, and the due time it is for (ISO 8601). */
export const SCHEDULE_LABEL = "schedule";
export const SCHEDULED_AT_LABEL = "scheduled_at";

/** Whether `tz` is an IANA time zone this runtime knows. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * A schedule (the `schedule` built-in's input, and `schedule_set`): when it is due (a cron
 * expression, 5 fields or 6 with seconds first, in an IANA time zone; or every `everyMs` since the
 * epoch), the run each firing creates (`RunTemplate`, templates over `${at}`, `${scheduledAt}`,
 * `${runId}`, `${schedule}`), and its policies. The cron expression itself is checked by the kernel.
 */
export const ScheduleSpec = z
  .strictObject({
    cron: z.string().min(9).max(200).optional(),
    timezone: z.string().min(1).max(64).refine(isTimeZone, { message: "not an IANA time zone" }).default("UTC"),
    everyMs: z
      .int()
      .min(1_000)
      .max(366 * 86_400_000)
      .optional(),
    creates: RunTemplate,
    overlap: z.enum(OVERLAP_POLICIES).default("skip"),
    /** After downtime: fire none of the missed due times, the latest one, or all of them (the latest `catchUpMax`). */
    catchUp: z.enum(CATCH_UP_POLICIES).default("one"),
    catchUpMax: z.int().min(1).max(1_000).default(10),
    /** Each firing waits 0…jitterMs more (the same for a given due time: derived from it). */
    jitterMs: z.int().min(0).max(3_600_000).default(0),
    /** At most this many due times wait for a run to end (overlap `queue`); beyond: skipped. */
    queueMax: z.int().min(1).max(1_000).default(10),
  })
  .refine((s) => (s.cron === undefined) !== (s.everyMs === undefined), { message: "exactly one of cron and everyMs", path: ["cron"] });
export type ScheduleSpec = z.output<typeof ScheduleSpec>;
export type ScheduleSpecInput = z.input<typeof ScheduleSpec>;

const StepIdRef = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
const RunIdRef = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/);
const Json = z.record(z.string(), z.unknown());
const ReportFields = {
  provider: z.enum(CI_PROVIDERS).optional(),
  url: z.string().min(1).max(2_000).optional(),
  at: z.int().min(0).optional(),
  facts: Json.optional(),
};
const PrReport = (name: "pr_opened" | "pr_closed" | "pr_merged") =>
  z.strictObject({ name: z.literal(name), number: z.int().min(0).optional(), action: z.string().min(1).max(100).optional(), ...ReportFields });

const SIGNAL_SHAPES = [
  z.strictObject({ name: z.literal("start") }),
  z.strictObject({ name: z.literal("pause") }),
  z.strictObject({ name: z.literal("resume") }),
  z.strictObject({ name: z.literal("cancel") }),
  z.strictObject({ name: z.literal("run_next_step") }),
  z.strictObject({ name: z.literal("retry_latest"), feedback: z.string().min(1).max(10_000).optional() }),
  z.strictObject({ name: z.literal("run_step"), stepId: StepIdRef, feedback: z.string().min(1).max(10_000).optional() }),
  z.strictObject({ name: z.literal("run_qa"), stepId: StepIdRef }),
  z.strictObject({
    name: z.literal("approve"),
    stepId: StepIdRef.optional(),
    revision: z.string().max(100).optional(),
    force: z.boolean().optional(),
    output: z.unknown().optional(),
  }),
  z.strictObject({ name: z.literal("reject"), stepId: StepIdRef.optional(), revision: z.string().max(100).optional() }),
  z.strictObject({ name: z.literal("complete_step"), stepId: StepIdRef.optional(), output: z.unknown().optional() }),
  z.strictObject({ name: z.literal("fail_step"), stepId: StepIdRef.optional(), error: z.string().min(1).max(10_000), block: z.boolean().optional() }),
  z.strictObject({ name: z.literal("block_step"), stepId: StepIdRef.optional() }),
  z.strictObject({ name: z.literal("skip_step"), stepId: StepIdRef }),
  z.strictObject({ name: z.literal("event"), event: z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/), facts: Json.optional() }),
  z.strictObject({ name: z.literal("set_facts"), facts: Json }),
  z.strictObject({
    name: z.literal("ci_report"),
    status: z.enum(CI_STATUSES),
    conclusion: z.string().min(1).max(100).optional(),
    check: z.string().min(1).max(500).optional(),
    sha: z.string().min(1).max(200).optional(),
    stepId: StepIdRef.optional(),
    /** The host's job id of the check (GitHub check run / Actions job, GitLab job): a fix attempt's hub fetches its log. */
    jobId: z.union([z.int().min(1), z.string().regex(/^\d{1,20}$/)]).optional(),
    ...ReportFields,
  }),
  PrReport("pr_opened"),
  PrReport("pr_closed"),
  PrReport("pr_merged"),
  z.strictObject({
    name: z.literal("review_report"),
    state: z.enum(REVIEW_STATES),
    reviewer: z.string().min(1).max(200).optional(),
    body: z.string().max(20_000).optional(),
    comments: z
      .array(z.strictObject({ path: z.string().min(1).max(1_000).optional(), line: z.int().min(1).optional(), body: z.string().min(1).max(10_000) }))
      .max(200)
      .optional(),
    sha: z.string().min(1).max(200).optional(),
    number: z.int().min(1).optional(),
    ...ReportFields,
  }),
  z.strictObject({ name: z.literal("mq_enqueue"), runId: RunIdRef, number: z.int().min(1).optional() }),
  z.strictObject({ name: z.literal("mq_leave"), runId: RunIdRef, outcome: z.enum(MERGE_QUEUE_OUTCOMES) }),
  z.strictObject({ name: z.literal("mq_turn"), queue: RunIdRef }),
  z.strictObject({
    name: z.literal("mq_updated"),
    attemptId: z.string().min(1).max(200),
    headSha: z.string().min(7).max(64).optional(),
    strategy: z.enum(["rebase", "merge"]).optional(),
    approvedPatchId: z.string().min(1).max(64).optional(),
    patchId: z.string().min(1).max(64).optional(),
    conflict: z.strictObject({ files: z.array(z.string().min(1).max(1_000)).max(200), message: z.string().max(10_000) }).optional(),
    error: z.string().max(10_000).optional(),
  }),
  z.strictObject({ name: z.literal("extend_budget"), tokens: z.int().min(1).optional(), costUsd: z.number().positive().optional() }),
  z.strictObject({ name: z.literal("abort") }),
  z.strictObject({ name: z.literal("add_steps"), steps: z.array(Json).min(1).max(1_000), replace: z.boolean().optional() }),
  z.strictObject({ name: z.literal("open_pr"), title: z.string().min(1).max(500).optional(), payload: Json.optional(), inputs: Json.optional() }),
  z.strictObject({ name: z.literal("withdraw_step"), stepId: StepIdRef }),
  z.strictObject({ name: z.literal("set_step_metadata"), stepId: StepIdRef, metadata: Json }),
  z.strictObject({
    name: z.literal("set_schedule"),
    enabled: z.boolean(),
    everyMs: z
      .int()
      .min(100)
      .max(30 * 86_400_000)
      .optional(),
    creates: RunTemplate.optional(),
  }),
  z.strictObject({ name: z.literal("schedule_set"), spec: ScheduleSpec }),
  z.strictObject({ name: z.literal("schedule_trigger") }),
  z.strictObject({ name: z.literal("schedule_backfill"), from: z.int().min(0), to: z.int().min(0) }),
  z.strictObject({ name: z.literal("child_ended"), runId: RunIdRef, status: z.string().min(1).max(32) }),
  z.strictObject({ name: z.literal("set_intake"), rules: IntakeRules }),
  z.strictObject({ name: z.literal("tickets_synced"), attemptId: z.string().min(1).max(200), answer: TicketSyncAnswer }),
  z.strictObject({
    name: z.literal("ticket_write_failed"),
    writeId: z.string().min(1).max(300),
    attemptId: z.string().min(1).max(300),
    ticket: TicketRef,
    writes: z.array(TicketWrite).min(1).max(10),
    error: TrackerFailure,
    tries: z.int().min(1).max(100).optional(),
  }),
  z.strictObject({ name: z.literal("ticket_written"), writeId: z.string().min(1).max(300), attemptId: z.string().min(1).max(300) }),
] as const;

/** Signals as they arrive from outside (the API, the command stream): validated before the kernel sees them. */
export const SignalSchema: z.ZodType<Signal> = z.discriminatedUnion("name", SIGNAL_SHAPES) as unknown as z.ZodType<Signal>;

/** Every signal's name, in the order above (the API's list of actions). */
export const SIGNAL_NAMES = SIGNAL_SHAPES.map((s) => s.shape.name.value) as unknown as readonly [SignalName, ...SignalName[]];
