import { z } from "zod";
import { PullRequestRecord } from "./forges.js";
import { isToken } from "./names.js";
import { CI_STATUSES, REVIEW_STATES, RunMode, RunStatus, StepStatus } from "./vocabulary.js";

/**
 * What the core publishes about a run with each of its transitions: the summary every list shows,
 * and the whole view (its steps, facts, usage) that the API, SSE, gRPC and the run index read. They
 * are the only description of a run outside the core: the kernel's own state is the core's alone.
 * Versioned with the transition message that carries them (`TRANSITION_VERSION`); within a version,
 * fields are only ever added, optional, so a reader of an earlier revision reads a later view
 * (`RUN_VIEW_REVISION` says what each revision added).
 */

/**
 * The view's revisions within transition version 1:
 *   1  the run, its steps, facts, usage, gate
 *   2  `pullRequest`: the run's pull request and what the system knows of it
 *   3  `mergeQueue`: a run's place in its merge queue, or a merge queue's members
 *   4  `schedule`: a schedule run's schedule, next due time and the runs it has going
 *   5  `intake`: a ticket intake's state (active, or paused by its circuit breaker), counts, quarantine
 */
export const RUN_VIEW_REVISION = 5;

/** An id that can be a subject token (run ids, project ids). */
export const Id = z.string().refine(isToken, { message: "must match [A-Za-z0-9_-]{1,128}" });
/** Epoch milliseconds. */
export const Millis = z.int().nonnegative();

/** Usage summed over some calls: tokens, cost, wall time. */
export const Totals = z.object({
  tokens: z.number().nonnegative(),
  tokensIn: z.number().nonnegative(),
  tokensOut: z.number().nonnegative(),
  costUsd: z.number().nonnegative(),
  wallMs: z.number().nonnegative(),
  calls: z.number().nonnegative(),
});
export type Totals = z.infer<typeof Totals>;

/**
 * The most steps a run has: its steps' indexes are `0 … MAX_RUN_STEPS - 1` (the kernel refuses a
 * step past them), so `runNumber × MAX_RUN_STEPS + index` names a step among every run's (seed 004).
 */
export const MAX_RUN_STEPS = 10_000;

/** One step of a run as it stands. */
export const StepView = z.object({
  id: z.string(),
  index: z.int(),
  status: StepStatus,
  role: z.string(),
  type: z.string(),
  title: z.string().optional(),
  stage: z.string(),
  phase: z.string().optional(),
  /** What the definition gives the step's executor (seed 004 keeps its step fields here). */
  payload: z.record(z.string(), z.unknown()).optional(),
  /** What a step the run brought or added is given (seed 001: a task's description and payload). */
  inputs: z.record(z.string(), z.unknown()).optional(),
  /** Keys set on the step (`set_step_metadata`, seed 001's task metadata). */
  metadata: z.record(z.string(), z.unknown()).optional(),
  /** The model the definition names for it. */
  model: z.string().optional(),
  /** Attempts its retry policy allows. */
  maxAttempts: z.int().positive(),
  /** The role that checks it, when it has QA. */
  qaRole: z.string().optional(),
  /** Dispatches so far (execution and QA). Counters left out are 0. */
  attempt: z.int().nonnegative().default(0),
  /** Manual retries (seed 004's `retries`). */
  retries: z.int().nonnegative().default(0),
  reworks: z.int().nonnegative().default(0),
  iteration: z.int().nonnegative().default(0),
  /** The latest attempt's id (what its work item and its result name). */
  attemptId: z.string().optional(),
  /** Whether the run waits for that attempt's result (the step runs, or is being checked). */
  inflight: z.boolean().optional(),
  /** The hash-bearing revision of its output that an approval names. */
  revision: z.string().optional(),
  error: z.string().optional(),
  errorCode: z.string().optional(),
  output: z.unknown().optional(),
  /** What the executor or adapter noted about the latest attempt. */
  notes: z.array(z.string()).optional(),
  usage: Totals.optional(),
  startedAt: Millis.optional(),
  finishedAt: Millis.optional(),
});
export type StepView = z.output<typeof StepView>;
/** A step's view as the core writes it (counters that are 0 may be left out). */
export type StepViewInput = z.input<typeof StepView>;

/** One check as the run's CI reports tell it (the latest report of each check name). */
export const CheckView = z.object({
  status: z.enum(CI_STATUSES),
  conclusion: z.string().optional(),
  url: z.string().optional(),
  jobId: z.union([z.int(), z.string()]).optional(),
  sha: z.string().optional(),
  /** Whether it counts (the definition's `ci.checks` names it, or names none); others are recorded only. */
  counted: z.boolean(),
  at: Millis,
});
export type CheckView = z.infer<typeof CheckView>;

/**
 * A run's pull request (view revision 2): the record (from a `pr.open` step's output, or what a
 * `pr_opened` signal tells), its state, and what the system knows of it: its checks, its latest
 * review, the fix attempts reviews started, the polling fallback's latest sync.
 */
export const PullRequestView = PullRequestRecord.partial().extend({
  state: PullRequestRecord.shape.state,
  openedAt: Millis.optional(),
  closedAt: Millis.optional(),
  mergedAt: Millis.optional(),
  /** The merge commit, when the system merged it (`pr.merge`). */
  mergeSha: z.string().optional(),
  /** The counted checks, summed up: failure if one failed, pending if one is pending, else success. */
  checks: z
    .object({
      state: z.enum(CI_STATUSES),
      at: Millis,
      byName: z.record(z.string(), CheckView),
    })
    .optional(),
  review: z
    .object({
      state: z.enum(REVIEW_STATES),
      reviewer: z.string().optional(),
      sha: z.string().optional(),
      comments: z.int().nonnegative(),
      at: Millis,
    })
    .optional(),
  /** Fix attempts started by reviews that requested changes. */
  reviewFixAttempts: z.int().nonnegative().optional(),
  /** The polling fallback's latest `pr.sync` (the one a hub may run; earlier ones are stale). */
  sync: z.object({ attemptId: z.string(), at: Millis }).optional(),
  /** When the polling fallback looks next (absent: it does not poll). */
  nextPollAt: Millis.optional(),
});
export type PullRequestView = z.infer<typeof PullRequestView>;

/**
 * The merge queue as a run shows it. A member: its queue (a run id), its state there (queued,
 * updating onto the base, checking: CI runs again on the updated head, merging), since when, its
 * position (1: its turn) as of its last change. A queue (view `merge_queue`): its base and members
 * in order, the first one's turn.
 */
export const MergeQueueView = z.object({
  queue: z.string().optional(),
  state: z.enum(["queued", "updating", "checking", "merging"]).optional(),
  since: Millis.optional(),
  headSha: z.string().optional(),
  strategy: z.enum(["rebase", "merge"]).optional(),
  /** A member's `pr.update` in flight (while `updating`): the one a hub may run. */
  attemptId: z.string().optional(),
  base: z.string().optional(),
  entries: z.array(z.object({ runId: z.string(), number: z.int().optional(), at: Millis, position: z.int().min(1) })).optional(),
  /** Whose turn it is (a queue). */
  head: z.string().optional(),
  /** A member's position in its queue (1: its turn), as the API reads it from the queue when it answers. */
  position: z.int().min(1).optional(),
});
export type MergeQueueView = z.infer<typeof MergeQueueView>;

/** A schedule run (the `schedule` built-in, version 2): what it is, what is next, what it has going. */
export const ScheduleView = z.object({
  /** The schedule as given (`ScheduleSpec`, its defaults filled in). */
  spec: z.record(z.string(), z.unknown()),
  /** The due time the armed timer is for (absent: paused or ended), and when it fires (with jitter). */
  nextAt: Millis.optional(),
  nextFireAt: Millis.optional(),
  /** The latest due time fired or passed over. */
  lastAt: Millis.optional(),
  /** Runs it created that have not ended, and the due times waiting for them (overlap `queue`). */
  active: z.array(z.object({ runId: z.string(), at: Millis })),
  queued: z.array(Millis),
  fired: z.int().nonnegative(),
  skipped: z.int().nonnegative(),
});
export type ScheduleView = z.infer<typeof ScheduleView>;

/**
 * A ticket intake run (the `ticket.intake` built-in): whether it syncs (`active`) or its circuit
 * breaker paused it (`paused`: why, and until when one sync tries again), its last sync and error,
 * what it has taken in, and the tickets quarantined (their runs failed too often; never restarted).
 */
export const IntakeView = z.object({
  provider: z.string(),
  state: z.enum(["active", "paused"]),
  paused: z.object({ at: Millis, until: Millis, reason: z.string() }).optional(),
  everyMs: z.int().nonnegative(),
  syncs: z.int().nonnegative(),
  /** The sync in flight (its attempt), the next one's time, the last answered one's. */
  sync: z.object({ attemptId: z.string(), at: Millis }).optional(),
  nextSyncAt: Millis.optional(),
  lastSyncAt: Millis.optional(),
  failures: z.int().nonnegative(),
  lastError: z.object({ code: z.string(), message: z.string(), at: Millis }).optional(),
  counts: z.object({ taken: z.int().nonnegative(), active: z.int().nonnegative(), ended: z.int().nonnegative(), quarantined: z.int().nonnegative() }),
  quarantined: z.array(z.object({ ticketId: z.string(), key: z.string(), runId: z.string(), failedRuns: z.int().nonnegative() })),
  /** Ticket writes the tracker refused for now, waiting in the intake to be tried again (`writes`: their tries, next time, last error). */
  pendingWrites: z.int().nonnegative().default(0),
  writes: z
    .array(
      z.object({
        writeId: z.string(),
        ticket: z.string(),
        keys: z.array(z.string()),
        failures: z.int().nonnegative(),
        state: z.enum(["waiting", "held", "in_flight"]),
        dueAt: Millis.optional(),
        lastError: z.object({ code: z.string(), message: z.string() }).optional(),
      }),
    )
    .optional(),
});
export type IntakeView = z.infer<typeof IntakeView>;

/** One run in lists and in the run index. */
export const RunSummary = z.object({
  runId: Id,
  projectId: Id,
  definition: z.object({ id: z.string(), version: z.int() }),
  /** The vocabulary it is presented in (`job`, `speckit`, `protocol`, `ticket`, `generic`, …). */
  view: z.string(),
  mode: RunMode.optional(),
  title: z.string().optional(),
  labels: z.record(z.string(), z.string()),
  status: RunStatus,
  stage: z.string().optional(),
  createdAt: Millis,
  updatedAt: Millis,
  startedAt: Millis.optional(),
  finishedAt: Millis.optional(),
  error: z.string().optional(),
  /** Steps completed so far. */
  stepsRun: z.int().nonnegative().optional(),
  /** Attempts the run waits for a result of (steps running or being checked). */
  inflight: z.int().nonnegative().optional(),
  /** The sequence of the run's last event (events at or below it are duplicates). */
  seq: z.int().nonnegative(),
});
export type RunSummary = z.infer<typeof RunSummary>;

/** A run with its steps described: what a run's page and every surface's run view are made of. */
export const RunView = RunSummary.extend({
  mode: RunMode,
  stepsRun: z.int().nonnegative(),
  result: z.unknown().optional(),
  input: z.record(z.string(), z.unknown()),
  /** The steps in order (the planning step, when the definition has one, first). */
  steps: z.array(StepView),
  planning: StepView.optional(),
  facts: z.record(z.string(), z.unknown()),
  usage: Totals,
  usageBy: z.object({
    phase: z.record(z.string(), Totals),
    role: z.record(z.string(), Totals),
    model: z.record(z.string(), Totals),
  }),
  /** Set while the run waits at a budget gate (extend_budget or abort). */
  gate: z.string().optional(),
  /** Its pull request, once one is opened or reported (revision 2). */
  pullRequest: PullRequestView.optional(),
  /** Revision 3: a member's place in its merge queue, or (a `merge_queue` run) the queue itself. */
  mergeQueue: MergeQueueView.optional(),
  /** Revision 4: a schedule run's schedule. */
  schedule: ScheduleView.optional(),
  /** Revision 5: a ticket intake run's state. */
  intake: IntakeView.optional(),
});
export type RunView = z.output<typeof RunView>;
/** A run's view as the core writes it. */
export type RunViewInput = z.input<typeof RunView>;

export const emptyTotals = (): Totals => ({ tokens: 0, tokensIn: 0, tokensOut: 0, costUsd: 0, wallMs: 0, calls: 0 });
