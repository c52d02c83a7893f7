import { ForgeStepType } from "@orch/contracts";
import { compileDefinition, parseDefinition, type CompiledDefinition, type DefinitionInput } from "./definition.js";
import { INTAKE_DEFINITION } from "./intake.js";
import { MERGE_QUEUE_DEFINITION } from "./pull-requests.js";

/**
 * The built-in definitions: every seed's workflow as a definition of the one engine. Each seed's
 * vocabulary (job, workflow, protocol, task, ticket) is a view of runs of these.
 */

/**
 * Seed 000: an ad-hoc Task Packet. Its steps come with each run, in order (an empty list runs one
 * implicit `dev.log` step, as the original does); the original's retry rule.
 */
const job: DefinitionInput = {
  id: "job",
  version: 1,
  title: "Ad-hoc job (seed 000 Task Packet)",
  view: "job",
  dynamicSteps: true,
  defaultSteps: [{ id: "s0", type: "dev.log", role: "implementer" }],
  retry: { maxAttempts: 3, initialMs: 100, multiplier: 2, maxMs: 500, jitterMs: 30, nonRetryable: ["UNKNOWN_STEP_TYPE"] },
  limits: { maxConcurrentSteps: 1 },
};

/** Seed 002: SpecKit. Two phases per type, each behind a human approval; rejection sends it back. */
const SPECKIT: Record<string, { title: string; phases: [Phase, Phase] }> = {
  specify: {
    title: "Generate feature specification",
    phases: [
      { role: "architect", title: "Draft the specification", artifact: "spec.md" },
      { role: "reviewer", title: "Clarify and finalise the specification", artifact: "spec.md" },
    ],
  },
  plan: {
    title: "Create implementation plan",
    phases: [
      { role: "architect", title: "Research and technical context", artifact: "research.md" },
      { role: "architect", title: "Design and implementation plan", artifact: "plan.md" },
    ],
  },
  tasks: {
    title: "Generate task breakdown",
    phases: [
      { role: "architect", title: "Break the plan into tasks", artifact: "tasks.md" },
      { role: "reviewer", title: "Review and order the tasks", artifact: "tasks.md" },
    ],
  },
  implement: {
    title: "Execute implementation",
    phases: [
      { role: "implementer", title: "Implement the tasks", artifact: "code" },
      { role: "tester", title: "Test and verify the implementation", artifact: "tests" },
    ],
  },
};

interface Phase {
  role: "architect" | "implementer" | "reviewer" | "tester";
  title: string;
  artifact: string;
}

/** How many rejections a SpecKit phase takes before the workflow fails. */
export const SPECKIT_MAX_REWORKS = 3;

const speckitV1 = (type: string): DefinitionInput => {
  const t = SPECKIT[type]!;
  return {
    id: `speckit.${type}`,
    version: 1,
    title: `SpecKit ${type}: ${t.title}`,
    view: "speckit",
    // spec-kit's layout: one branch per feature, named by its id, with specs/<feature>/ in it.
    workspace: { branch: "${input.feature_id}" },
    steps: t.phases.map((p, i) => ({
      id: `phase_${i + 1}`,
      title: p.title,
      role: p.role,
      type: `speckit.${type}`,
      phase: `phase_${i + 1}`,
      needs: i === 0 ? [] : ["phase_1"],
      approval: { maxReworks: SPECKIT_MAX_REWORKS },
      payload: { workflow: type, phase: i + 1, artifact: p.artifact },
      inputs: {
        feature_description: "${input.feature_description}",
        feature_id: "${input.feature_id}",
        context: "${input.context}",
        ...(i > 0 ? { previous: "${steps.phase_1.output}" } : {}),
      },
    })),
  };
};

/**
 * SpecKit's workflows as they are now: `implement` (version 2) ends with a pull request of the
 * feature's branch, opened once the tests are approved, when the project has a forge (else the step
 * is skipped and the workflow completes as version 1 did). The others are version 1.
 */
const speckit = (type: string): DefinitionInput => {
  const v1 = speckitV1(type);
  if (type !== "implement") return v1;
  return {
    ...v1,
    version: 2,
    steps: [
      ...(v1.steps ?? []),
      {
        id: "pull_request",
        title: "Open the pull request",
        role: "maintainer",
        type: ForgeStepType.Open,
        phase: "pull_request",
        needs: ["phase_2"],
        whenNoForge: "skip",
        inputs: { feature_id: "${input.feature_id}" },
      },
    ],
  };
};

/**
 * Seed 004: a protocol run. Started by hand, it plans first (a planning step whose output may add
 * steps), then steps run when asked (run_next_step, a step's run); a failed step blocks the protocol
 * until someone retries it.
 */
const protocol: DefinitionInput = {
  id: "protocol",
  version: 1,
  title: "Protocol run (seed 004)",
  view: "protocol",
  // Seed 004: a protocol's name is its branch (webhooks find the run by branch).
  workspace: { branch: "${input.protocol_name}", base: "${input.base_branch}" },
  execution: "manual",
  onStepFailure: "block",
  dynamicSteps: true,
  planning: { id: "plan", title: "Plan the protocol", role: "architect", type: "protocol.plan", inputs: { protocol: "${input}" } },
  retry: { maxAttempts: 3, initialMs: 1_000, multiplier: 2, maxMs: 30_000, jitterMs: 250 },
  // Seed 004's webhooks: CI success completes the latest step (or starts its QA: ORCH_AUTO_QA_ON_CI),
  // failure fails it and blocks the protocol (then fix attempts: ORCH_CI_FIX_*); a merge completes it.
  ci: { onFailure: "block" },
  pullRequests: { onMerged: "complete" },
};

/** Seed 001: one task for one role, queued until dispatched. */
const task: DefinitionInput = {
  id: "task",
  version: 1,
  title: "Task dispatched to a role (seed 001)",
  view: "task",
  dynamicSteps: true,
  retry: { maxAttempts: 3, initialMs: 1_000, multiplier: 2, maxMs: 30_000, jitterMs: 250 },
};

/**
 * Seed 001's tasks (`POST /tasks`), as the first version had them: a failed task blocked the run, and
 * the run completed once every task had (a task added later went to a continuation run). Kept so
 * the runs created then still load; new runs are of version 2.
 */
const taskQueueV1: DefinitionInput = {
  id: "task.queue",
  version: 1,
  title: "Tasks queued until dispatched (seed 001)",
  view: "task",
  execution: "manual",
  onStepFailure: "block",
  dynamicSteps: true,
  retry: { maxAttempts: 1 },
};

/**
 * Seed 001's tasks (`POST /tasks`): a run groups tasks, each a step for one role (type `task`, its
 * inputs the task's id, description and payload), added with `add_steps` (`replace`: a task queued
 * again is reset and queued again in its run). Steps wait until dispatched (`run_step`: `POST
 * /tasks/dispatch`), one attempt per dispatch, unless the core's task worker is on for the run
 * (`worker`: ORCH_WORKER_ENABLED, recorded at its creation): then its tasks start by themselves, one
 * at a time in the order they were queued (`maxConcurrentSteps: 1`), and a failed attempt is retried
 * (ORCH_WORKER_MAX_RETRIES, ORCH_WORKER_BACKOFF_MS). A failed task neither fails nor blocks the run
 * (`continue`): its other tasks go on. The run never completes by itself (`whenDone: wait`): with
 * every task done it waits, and a task added later runs in it; seed 001's status of a run is derived
 * from its tasks.
 */
const taskQueue: DefinitionInput = {
  id: "task.queue",
  version: 2,
  title: "Tasks queued until dispatched (seed 001)",
  view: "task",
  execution: "manual",
  onStepFailure: "continue",
  whenDone: "wait",
  dynamicSteps: true,
  retry: { maxAttempts: 1 },
  worker: {},
  limits: { maxConcurrentSteps: 1 },
};

/**
 * A periodic run (the core's schedule of seed 001's periodic runs): no steps; `set_schedule` gives it
 * an interval and the run each tick creates. It waits between ticks and never ends by itself.
 */
/**
 * A merge queue: one run per project and base branch (id from `mergeQueueRunId`), created by the
 * first run whose PR merges through it. Its members, in order, are its view; the first has its turn
 * (brought up to the base, CI again, merged), then leaves and the next gets it.
 */
const mergeQueue: DefinitionInput = {
  id: MERGE_QUEUE_DEFINITION,
  version: 1,
  title: "Merge queue: pull requests into one base branch, one at a time",
  view: "merge_queue",
  execution: "manual",
  whenDone: "wait",
  mergeQueue: {},
};

/**
 * A schedule (version 2): its input is the schedule (`ScheduleSpec`: cron or interval, the run to
 * create, overlap, catch-up, jitter); it arms its next due time, creates that run at each, and hears
 * back when each ends (`child_ended`). Paused, it fires nothing; cancelled, it is deleted.
 */
const schedule: DefinitionInput = {
  id: "schedule",
  version: 2,
  title: "Schedule: creates a run at each due time (cron or interval)",
  view: "generic",
  execution: "manual",
  whenDone: "wait",
  schedule: {},
};

/**
 * A ticket intake (one per tracker, id from `intakeRunId`): its input is its rules; it syncs its
 * tracker on a timer and takes each new matching ticket in as a `ticket` run (libs/engine/src/intake.ts
 * decides). Its breaker pauses the syncs (not the run); paused, the run syncs nothing; cancelled, it ends.
 */
const ticketIntake: DefinitionInput = {
  id: INTAKE_DEFINITION,
  version: 1,
  title: "Ticket intake: takes a tracker's new tickets in as ticket runs",
  view: "generic",
  execution: "manual",
  whenDone: "wait",
  intake: {},
};

/** Version 1: seed 001's periodic run (`set_schedule`), kept for its runs. */
const scheduleV1: DefinitionInput = {
  id: "schedule",
  version: 1,
  title: "Periodic run: creates a run every interval",
  view: "generic",
  execution: "manual",
  whenDone: "wait",
  periodic: {},
};

/**
 * Seed 003: the ticket pipeline as the first version had it: its draft PR step had an agent write the
 * pull request's description on the branch. Kept so the runs created then still load.
 */
const ticketV1: DefinitionInput = {
  id: "ticket",
  version: 1,
  title: "Ticket pipeline (seed 003)",
  view: "ticket",
  workspace: { branch: "${input.branch}" },
  facts: { sessionActive: false, planReady: false, testsPassed: false, draftPr: false, pr: false, approval: false, mergeCompleted: false },
  stages: [
    { id: "New" },
    { id: "Planning" },
    { id: "Implementing" },
    { id: "PRDrafted", next: "AwaitingYourReview" },
    { id: "AwaitingYourReview" },
    { id: "ReadyForReview" },
    { id: "InReview" },
    { id: "PendingMerge" },
    { id: "Done", terminal: "completed" },
    { id: "Abandoned", terminal: "cancelled" },
  ],
  steps: [
    {
      id: "plan",
      title: "Plan the ticket",
      stage: "Planning",
      role: "architect",
      type: "ticket.plan",
      inputs: { ticket: "${input}" },
      sets: { completed: { planReady: true, sessionActive: true } },
      emits: { completed: "PlanCommitted" },
    },
    {
      id: "implement",
      title: "Implement",
      stage: "Implementing",
      role: "implementer",
      type: "ticket.implement",
      inputs: { ticket: "${input}", plan: "${steps.plan.output}" },
    },
    {
      id: "test",
      title: "Run the tests",
      stage: "Implementing",
      role: "tester",
      type: "ticket.test",
      needs: ["implement"],
      inputs: { ticket: "${input}" },
      sets: { completed: { testsPassed: true } },
    },
    {
      id: "draft_pr",
      title: "Open a draft pull request",
      stage: "Implementing",
      role: "maintainer",
      type: "ticket.draft_pr",
      needs: ["test"],
      inputs: { ticket: "${input}" },
      sets: { completed: { draftPr: true, pr: true } },
      emits: { completed: "DraftPullRequestCreated" },
    },
  ],
  transitions: [
    { from: "New", to: "Planning", on: "TicketAccepted" },
    { from: "Planning", to: "Implementing", on: "PlanCommitted", guard: { all: ["facts.sessionActive", "facts.planReady"] } },
    { from: "Planning", to: "Implementing", on: "ImplementationResumed", guard: "facts.sessionActive" },
    { from: "Implementing", to: "PRDrafted", on: "DraftPullRequestCreated", guard: { all: ["facts.testsPassed", "facts.draftPr"] } },
    { from: "PRDrafted", to: "AwaitingYourReview", on: "AwaitingApproval" },
    { from: "AwaitingYourReview", to: "ReadyForReview", on: "ApprovalGranted", guard: { all: ["facts.approval", "facts.pr"] } },
    { from: "AwaitingYourReview", to: "Implementing", on: "ApprovalRejected", guard: "facts.sessionActive" },
    { from: "AwaitingYourReview", to: "Implementing", on: "ImplementationResumed", guard: "facts.sessionActive" },
    { from: "ReadyForReview", to: "InReview", on: "ReviewStarted", guard: "facts.pr" },
    { from: "InReview", to: "PendingMerge", on: "MergeInitiated", guard: "facts.pr" },
    { from: "PendingMerge", to: "InReview", on: "MergeFailed", guard: "facts.pr" },
    { from: "PRDrafted", to: "Implementing", on: "ImplementationResumed", guard: "facts.sessionActive" },
    { from: "ReadyForReview", to: "Implementing", on: "ImplementationResumed", guard: "facts.sessionActive" },
    { from: "InReview", to: "Implementing", on: "ImplementationResumed", guard: "facts.sessionActive" },
    { from: "InReview", to: "Implementing", on: "ReviewChangesRequested", guard: "facts.sessionActive" },
    { from: "*", to: "Done", on: "ReviewApprovedAndMerged", guard: "facts.mergeCompleted" },
    { from: "*", to: "Abandoned", on: "Cancelled" },
  ],
  // Integrations set the guards' facts: CI whether the tests pass, pull requests whether there is one;
  // a merge fires ReviewApprovedAndMerged (with its facts, so its guard holds).
  ci: { onSuccess: "record", onFailure: "record", sets: { success: { testsPassed: true }, failure: { testsPassed: false } } },
  pullRequests: {
    onMerged: { event: "ReviewApprovedAndMerged" },
    sets: { opened: { pr: true, draftPr: true }, closed: { pr: false }, merged: { pr: true, mergeCompleted: true } },
  },
};

/**
 * Seed 003: the ticket pipeline, with its guarded transition table (guards read the run's facts,
 * which steps set when they finish and integrations set through signals), driven by its pull
 * request (version 2):
 *
 *   Implementing: plan's implement → test → draft_pr (`pr.open`, a draft, on the project's forge;
 *     without a forge it fails, saying so) ──DraftPullRequestCreated──▶ PRDrafted ──▶ AwaitingYourReview
 *   AwaitingYourReview ──ApprovalGranted {approval} (you)──▶ ReadyForReview: `ready` (`pr.ready`)
 *     marks the draft PR ready for review (skipped when it is not a draft)
 *   ReadyForReview ──a review (review_report)──▶ InReview (ReviewStarted)
 *   InReview ──approved and the checks green──▶ PendingMerge (MergeInitiated): `merge` (`pr.merge`)
 *     runs ──merged──▶ Done (ReviewApprovedAndMerged); not merged ──MergeFailed──▶ InReview
 *   InReview ──changes requested──▶ Implementing (ReviewChangesRequested): a fix attempt, the
 *     implementer told the review (at most 3, a minute apart); its steps run again and push to the PR
 *   PRDrafted, AwaitingYourReview, ReadyForReview, InReview ──a check failed on the PR's head──▶
 *     Implementing (ImplementationResumed): a CI fix attempt, the implementer told the failure and
 *     given the failing job's log (at most 3, a minute apart); its steps run again and push
 *   any ──the PR closed unmerged──▶ Abandoned (Cancelled);  any ──merged (by anyone)──▶ Done
 */
const ticket: DefinitionInput = {
  ...ticketV1,
  version: 2,
  steps: [
    ...(ticketV1.steps ?? []).filter((s) => s.id !== "draft_pr"),
    {
      id: "draft_pr",
      title: "Open a draft pull request",
      stage: "Implementing",
      role: "maintainer",
      type: ForgeStepType.Open,
      needs: ["test"],
      inputs: { ticket: "${input}" },
      payload: { draft: true },
      sets: { completed: { draftPr: true, pr: true } },
      emits: { completed: "DraftPullRequestCreated" },
    },
    {
      id: "ready",
      title: "Mark the pull request ready for review",
      stage: "ReadyForReview",
      role: "maintainer",
      type: ForgeStepType.Ready,
      // Your approval undrafts it, so reviewers are asked and the host will merge it; a PR that is
      // not a draft (any more) skips it.
      optional: true,
      whenNoForge: "skip",
    },
    {
      id: "merge",
      title: "Merge the pull request",
      stage: "PendingMerge",
      role: "maintainer",
      type: ForgeStepType.Merge,
      // It starts once the PR is approved and green; a merge the host refuses goes back to InReview.
      optional: true,
      whenNoForge: "skip",
      retry: { maxAttempts: 2 },
      emits: { failed: "MergeFailed" },
    },
  ],
  ci: {
    ...(ticketV1.ci as Exclude<DefinitionInput["ci"], "off" | undefined>),
    fixAttempts: 3,
    fixCooldownMs: 60_000,
    fix: { step: "implement", onStart: { event: "ImplementationResumed" } },
  },
  pullRequests: {
    onMerged: { event: "ReviewApprovedAndMerged" },
    onClosed: { event: "Cancelled" },
    sets: { opened: { pr: true, draftPr: true }, closed: { pr: false }, merged: { pr: true, mergeCompleted: true } },
    draft: true,
    review: {
      fixAttempts: 3,
      fixCooldownMs: 60_000,
      step: "implement",
      onStarted: { event: "ReviewStarted" },
      onReady: { event: "MergeInitiated" },
      onChangesRequested: { event: "ReviewChangesRequested" },
    },
    merge: { enabled: true, method: "squash", queue: true },
  },
};

export const BUILTIN_DEFINITIONS: readonly DefinitionInput[] = [
  job,
  speckit("specify"),
  speckit("plan"),
  speckit("tasks"),
  speckit("implement"),
  protocol,
  task,
  taskQueue,
  ticket,
  schedule,
  mergeQueue,
  ticketIntake,
];

/** Earlier versions of built-ins, kept so that the runs created with them still load (never used for new runs). */
export const EARLIER_BUILTIN_DEFINITIONS: readonly DefinitionInput[] = [taskQueueV1, speckitV1("implement"), ticketV1, scheduleV1];

export const SPECKIT_TYPES = Object.keys(SPECKIT) as ("specify" | "plan" | "tasks" | "implement")[];

let compiled: Map<string, CompiledDefinition> | undefined;

/** The built-ins, parsed and compiled once, by id (each at its latest version). */
export function builtinDefinitions(): ReadonlyMap<string, CompiledDefinition> {
  if (!compiled) {
    compiled = new Map(
      BUILTIN_DEFINITIONS.map((d) => {
        const c = compileDefinition(parseDefinition(d));
        return [c.def.id, c];
      }),
    );
  }
  return compiled;
}

let everyVersion: CompiledDefinition[] | undefined;

/** Every built-in version (the latest of each id, and the earlier ones runs may still name). */
export function builtinVersions(): readonly CompiledDefinition[] {
  everyVersion ??= [...EARLIER_BUILTIN_DEFINITIONS.map((d) => compileDefinition(parseDefinition(d))), ...builtinDefinitions().values()];
  return everyVersion;
}

export function builtin(id: string): CompiledDefinition {
  const c = builtinDefinitions().get(id);
  if (!c) throw new Error(`no built-in definition '${id}'`);
  return c;
}
