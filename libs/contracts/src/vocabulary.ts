import { z } from "zod";

/**
 * The words every service shares about runs, defined once: statuses, event types, timer and work
 * kinds. Each is an `as const` list or object with its union type derived from it; the engine, the
 * core and every reader import them from here.
 */

/** Statuses every run has, whatever its definition; each seed's vocabulary is a view of them. */
export const RUN_STATUSES = ["pending", "planning", "planned", "running", "paused", "blocked", "waiting", "completed", "failed", "cancelled"] as const;
export const RunStatus = z.enum(RUN_STATUSES);
export type RunStatus = z.infer<typeof RunStatus>;
export const FINAL_RUN_STATUSES: ReadonlySet<RunStatus> = new Set(["completed", "failed", "cancelled"]);

/** A step run's statuses (the step machine's states; `routing` states show as the status they lead to). */
export const STEP_STATUSES = [
  "pending",
  "running",
  "retry_wait",
  "needs_qa",
  "qa",
  "waiting_approval",
  "completed",
  "failed",
  "blocked",
  "skipped",
  "cancelled",
] as const;
export const StepStatus = z.enum(STEP_STATUSES);
export type StepStatus = z.infer<typeof StepStatus>;

/**
 * What a dispatched piece of work asks: execute the step, check it (`qa`), plan the run (`plan`), or
 * look at the run's pull request on its forge (`sync`: the polling fallback, `pr.sync`; not a step
 * of the run, and answered with signals rather than a step result).
 */
export const WORK_KINDS = ["execute", "qa", "plan", "sync"] as const;
export const WorkKind = z.enum(WORK_KINDS);
export type WorkKind = z.infer<typeof WorkKind>;

/**
 * What a timer is for: a step's retry, timeout or approval timeout, a run's wall clock, a periodic
 * run's next slot (`tick`), a command to send when it fires (`command`: the scheduler sends the
 * command the timer carries instead of `timer.fired`), or the next look at an open pull request
 * (`pr_poll`: the polling fallback, armed while the run's PR is open), or a ticket intake's next sync
 * (`intake_sync`: armed while the intake runs), or a ticket intake's next try of writes the tracker
 * failed (`intake_write`).
 */
export const TIMER_KINDS = ["retry", "step_timeout", "approval_timeout", "wall_clock", "tick", "command", "pr_poll", "intake_sync", "intake_write"] as const;
export const TimerKind = z.enum(TIMER_KINDS);
export type TimerKind = z.infer<typeof TimerKind>;

/** What a CI report says of a check (`ci_report`). */
export const CI_STATUSES = ["success", "failure", "pending"] as const;
export type CiStatus = (typeof CI_STATUSES)[number];

/** What a review says (`review_report`; GitHub's review states; GitLab: an approval is `approved`, a note `commented`). */
export const REVIEW_STATES = ["approved", "changes_requested", "commented", "dismissed"] as const;
export type ReviewState = (typeof REVIEW_STATES)[number];

export const MODES = ["mock", "live"] as const;
export const RunMode = z.enum(MODES);
export type RunMode = z.infer<typeof RunMode>;

/**
 * Run event vocabulary. Seed surfaces are views: seed 000's `step.start` is `step.started`, and so on.
 * A run's end is one event, `run.finished` (with its status); `run.status_changed` is every other
 * change of status.
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
  /** A CI failure started a fix attempt of its step (the run's CI policy: `fixAttempts`), or was refused one (why). */
  CiFixAttempt: "ci.fix_attempt",
  CiFixRefused: "ci.fix_refused",
  /** A pull request was merged: what the run's pull request policy did with it (`outcome`). */
  PrMerged: "pr.merged",
  /** The run's draft pull request was marked ready for review (its `pr.ready` step). */
  PrReady: "pr.ready",
  /** A dead letter, as the event-bus reports it (on the system feed, not a run's). */
  DeadLetter: "error.dead_letter",
} as const;
export type RunEventType = (typeof RunEventType)[keyof typeof RunEventType];

/** The roles steps are done by: seed 001's five agent roles, and `qa` (who checks a step). */
export const ROLES = ["architect", "implementer", "reviewer", "tester", "maintainer", "qa"] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;
/** The roles that do a step's work (seed 001's agents, its tasks' roles): every role but `qa`. */
export const AGENT_ROLES = ["architect", "implementer", "reviewer", "tester", "maintainer"] as const satisfies readonly Role[];
export type AgentRole = (typeof AGENT_ROLES)[number];

/**
 * The git branch a run works on when its definition names none: `orch/run/<runId>` (the agent hub
 * creates it; a webhook about such a branch is about that run).
 */
export const RUN_BRANCH_PREFIX = "orch/run/";
export const runBranchOf = (runId: string): string => `${RUN_BRANCH_PREFIX}${runId}`;

/** The label a run's git branch is indexed under (the core sets it from the definition; webhooks find runs by it). */
export const BRANCH_LABEL = "branch";
/** The label every protocol run made through seed 004 carries: its name, which is its branch. */
export const PROTOCOL_NAME_LABEL = "protocol_name";
