import { MAX_RUN_STEPS, MERGE_METHODS } from "@orch/contracts";
import { z } from "zod";
import { parse as parseYaml } from "yaml";
import { Condition, templatePaths } from "./conditions.js";
import { hashJson } from "./hash.js";

/**
 * Workflow definitions: declarative, versioned, validated. A definition is data; the engine compiles
 * it into a run machine (its stages become machine states) and schedules its steps. A run keeps the
 * (id, version) it started with, and a stored version never changes, so editing a definition never
 * breaks a run in flight.
 */

import { ROLES, Role } from "@orch/contracts";
export { ROLES, Role };

const ID = /^[A-Za-z0-9_-]{1,64}$/;
export const StepId = z.string().regex(ID, "must match [A-Za-z0-9_-]{1,64}");
export const StageId = z.string().regex(ID, "must match [A-Za-z0-9_-]{1,64}");
export const DefinitionId = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/, "must be lowercase [a-z0-9._-], starting with a letter or digit");
const EventName = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, "must be a name like PlanCommitted");
const Json = z.record(z.string(), z.unknown());

export const RetryPolicy = z.strictObject({
  /** Attempts in all, the first included. */
  maxAttempts: z.int().min(1).max(100).default(3),
  /** Delay before retry n (1-based) is min(maxMs, initialMs · multiplier^(n-1)) + U(0, jitterMs). */
  initialMs: z.int().min(0).max(86_400_000).default(1_000),
  multiplier: z.number().min(1).max(10).default(2),
  maxMs: z.int().min(0).max(86_400_000).default(60_000),
  jitterMs: z.int().min(0).max(60_000).default(250),
  /** Error codes that fail the step at once. */
  nonRetryable: z.array(z.string().min(1)).default([]),
});
export type RetryPolicy = z.output<typeof RetryPolicy>;

export const ApprovalPolicy = z.strictObject({
  /** Rejections that send the step back for rework before it fails for good. */
  maxReworks: z.int().min(0).max(100).default(3),
  /** Fail the step when nobody decides within this time. */
  timeoutMs: z.int().min(1).optional(),
});

export const QaPolicy = z.strictObject({
  role: Role.default("qa"),
  type: z.string().min(1).default("qa.review"),
  /** Start QA as soon as the step's execution succeeds (else it waits in needs_qa for run_qa). */
  auto: z.boolean().default(true),
});

export const LoopPolicy = z.strictObject({
  /** The first step of the group this step closes; the group runs again from there. */
  backTo: StepId,
  /** Stop looping once this holds (evaluated after this step completes). */
  until: Condition,
  maxIterations: z.int().min(1).max(1_000),
  /** What to do when the iterations run out and `until` still fails. */
  onExhausted: z.enum(["continue", "fail"]).default("continue"),
});

export const Trigger = z.strictObject({
  on: z.enum(["completed", "failed"]),
  /** `run`: dispatch the target now, whatever its dependencies; `enqueue`: make it pending again. */
  action: z.enum(["run", "enqueue"]),
  step: StepId,
});

export const Budget = z
  .strictObject({
    scope: z.enum(["run", "phase", "role", "step"]),
    /** The phase, role or step it applies to; every one of them when omitted. */
    target: z.string().min(1).optional(),
    tokens: z.int().min(1).optional(),
    costUsd: z.number().positive().optional(),
    mode: z.enum(["strict", "warn", "off"]).default("strict"),
  })
  .refine((b) => b.tokens !== undefined || b.costUsd !== undefined, { message: "a budget needs tokens or costUsd" });
export type Budget = z.output<typeof Budget>;

export const Limits = z.strictObject({
  /** Steps that may complete; the loop guard fails the run before one more would start. */
  maxSteps: z.int().min(1).max(100_000).optional(),
  /** Wall-clock time from creation; the run fails when it runs out, even mid-step. */
  maxWallMs: z
    .int()
    .min(1)
    .max(30 * 86_400_000)
    .optional(),
  maxConcurrentSteps: z.int().min(1).max(1_000).default(8),
  maxTriggerDepth: z.int().min(0).max(20).default(3),
});
export type Limits = z.output<typeof Limits>;

export const StepDef = z.strictObject({
  id: StepId,
  title: z.string().max(500).optional(),
  role: Role.default("implementer"),
  /** What the agent hub runs: an adapter (`dev.log`, `ci`, …) or `agent` (the role's executor). */
  type: z.string().min(1).max(200).default("agent"),
  stage: StageId.optional(),
  /** The phase its usage is booked under (budgets, ledger); the stage, else the step id. */
  phase: z.string().min(1).max(64).optional(),
  needs: z.array(StepId).default([]),
  /** Templates over earlier outputs, facts and the run's input: `${steps.plan.output.plan}`. */
  inputs: Json.default({}),
  payload: Json.optional(),
  retry: RetryPolicy.partial().optional(),
  timeoutMs: z
    .int()
    .min(1)
    .max(30 * 86_400_000)
    .optional(),
  approval: ApprovalPolicy.optional(),
  qa: QaPolicy.optional(),
  loop: LoopPolicy.optional(),
  triggers: z.array(Trigger).default([]),
  budget: z.strictObject({ tokens: z.int().min(1).optional(), costUsd: z.number().positive().optional() }).optional(),
  model: z.string().min(1).max(200).optional(),
  /** Its failure does not fail (or block) the run. */
  optional: z.boolean().default(false),
  /** Facts to set on the run when the step completes or fails. */
  sets: z.strictObject({ completed: Json.optional(), failed: Json.optional() }).optional(),
  /** Stage events to fire when the step completes or fails. */
  emits: z.strictObject({ completed: EventName.optional(), failed: EventName.optional() }).optional(),
  /**
   * A forge step (`pr.open`, `pr.ready`, `pr.merge`) of a run whose project has no forge: `fail` (at once, not
   * retried, saying so; the default) or `skip` (the step is on only when the project has a forge).
   */
  whenNoForge: z.enum(["fail", "skip"]).optional(),
});
export type StepDefInput = z.input<typeof StepDef>;
export type StepDef = z.output<typeof StepDef>;

export const Stage = z.strictObject({
  id: StageId,
  title: z.string().max(500).optional(),
  /** Where the run goes once every step of this stage has settled. */
  next: StageId.optional(),
  /** Entering this stage ends the run. */
  terminal: z.enum(["completed", "failed", "cancelled"]).optional(),
});
export type Stage = z.output<typeof Stage>;

export const Transition = z.strictObject({
  from: z.union([StageId, z.literal("*")]),
  to: StageId,
  on: EventName,
  guard: Condition.optional(),
});
export type Transition = z.output<typeof Transition>;

/** What a CI success does to the step the report is about (`ci_report`). */
export const CI_ON_SUCCESS = ["complete", "qa", "record"] as const;
/** What a CI failure does to it. */
export const CI_ON_FAILURE = ["block", "fail", "record"] as const;

/**
 * What a CI report (the `ci_report` signal) does to a run, on the step it is about (the one started
 * last). A setting left out takes the core's default at the run's creation (ORCH_AUTO_QA_ON_CI,
 * ORCH_CI_FIX_MAX_ATTEMPTS, ORCH_CI_FIX_COOLDOWN_MS), then the one given here; the policy a run got
 * is recorded with it (`resolveCiPolicy`).
 *
 *   onSuccess: complete (the step completes: from running, or forced from needs_qa, failed, blocked)
 *              | qa (its QA starts) | record (the facts only); default complete
 *   onFailure: block (the step fails, the run blocks) | fail (the step fails, the run does what
 *              onStepFailure says) | record; default block
 *   fixAttempts: a failed step runs again with the failure as feedback, at most this many times per
 *              run (0: never); default 0
 *   fixCooldownMs: …and no sooner than this after the previous attempt; default 600000
 *   fix:       where a fix attempt goes when the step the failure is about is done already (a run
 *              that follows its open pull request: the ticket's implement completed, its PR checked):
 *              `step` runs again, told the failure and given the failing job (`payload.ciFailure`,
 *              whose log the hub fetches), default the implementing step; with `onStart` the attempt
 *              is that stage event (seed 003: ImplementationResumed, back to Implementing, whose
 *              steps run again and push to the PR). Only for a failure on the PR's head commit, once
 *              per check and commit.
 */
export const CiPolicy = z.strictObject({
  onSuccess: z.enum(CI_ON_SUCCESS).optional(),
  onFailure: z.enum(CI_ON_FAILURE).optional(),
  fixAttempts: z.int().min(0).max(100).optional(),
  fixCooldownMs: z.int().min(0).max(86_400_000).optional(),
  /** Facts a report sets besides `ci` (seed 003's `testsPassed`). */
  sets: z.strictObject({ success: Json.optional(), failure: Json.optional(), pending: Json.optional() }).optional(),
  /**
   * The checks that count, by name (`*` matches any run of characters): a report of another check
   * is recorded (on the run's pull request) and does nothing else. Absent: every check counts.
   */
  checks: z.array(z.string().min(1).max(256)).min(1).max(100).optional(),
  fix: z.strictObject({ step: StepId.optional(), onStart: z.strictObject({ event: EventName }).optional() }).optional(),
});
export type CiPolicy = z.output<typeof CiPolicy>;

/**
 * What a review does (`review_report`). Changes requested start a bounded fix attempt: the
 * implementing step (`step`; else the one of role implementer that started last) runs again with the
 * review's body and comments as feedback, at most `fixAttempts` times per run and no sooner than
 * `fixCooldownMs` after the previous one; with `onChangesRequested` the attempt is that stage event
 * (seed 003: back to Implementing, whose steps run again, the implementing one told the review).
 * Stage events it fires (each only where the run's stage graph accepts it, else nothing):
 *   onStarted           a review of the open PR exists (seed 003: ReviewStarted)
 *   onReady             the PR is approved and its counted checks are green (seed 003: MergeInitiated)
 *   onChangesRequested  see above (seed 003: ReviewChangesRequested)
 */
export const ReviewPolicy = z.strictObject({
  fixAttempts: z.int().min(0).max(100).optional(),
  fixCooldownMs: z.int().min(0).max(86_400_000).optional(),
  step: StepId.optional(),
  onStarted: z.strictObject({ event: EventName }).optional(),
  onReady: z.strictObject({ event: EventName }).optional(),
  onChangesRequested: z.strictObject({ event: EventName }).optional(),
});
export type ReviewPolicy = z.output<typeof ReviewPolicy>;

/**
 * What pull request signals (`pr_opened`, `pr_closed`, `pr_merged`, and a `pr.open` step's output)
 * do to a run besides recording its `pullRequest`: the facts each sets, and what a merge does:
 * `complete` (every step not done yet completes with the run: seed 004's protocol), or a stage event
 * fired with the facts (seed 003's `ReviewApprovedAndMerged`; refused by its guard, the facts are
 * recorded all the same). Absent: a merge is recorded only. Likewise a close without merge
 * (`onClosed`: `cancel` the run, or a stage event: seed 003's `Cancelled`).
 *
 *   draft    a `pr.open` step opens a draft unless its payload says `draft` itself; default false
 *   follow   a run whose steps are all done waits (status waiting) while its PR is open, instead of
 *            completing: a review's fix attempt wakes it, the merge or the close ends it
 *   review   what reviews do (ReviewPolicy)
 *   merge    whether a `pr.merge` step merges (it starts once the PR is approved and green; not
 *            enabled: it is skipped) and how; default not enabled, squash
 */
export const PullRequestPolicy = z.strictObject({
  onMerged: z.union([z.literal("complete"), z.strictObject({ event: EventName })]).optional(),
  onClosed: z.union([z.literal("cancel"), z.strictObject({ event: EventName })]).optional(),
  sets: z
    .strictObject({
      opened: Json.optional(),
      closed: Json.optional(),
      merged: Json.optional(),
      approved: Json.optional(),
      changesRequested: Json.optional(),
    })
    .optional(),
  draft: z.boolean().optional(),
  follow: z.boolean().optional(),
  review: ReviewPolicy.optional(),
  merge: z
    .strictObject({
      enabled: z.boolean(),
      method: z.enum(MERGE_METHODS).optional(),
      /**
       * Merge through the project's merge queue for the PR's base branch (one run of the built-in
       * `merge.queue` per project and base): one at a time, each brought up to the latest base
       * (`update`: rebase, or merge when the hub may not force-push), its CI run again, then merged;
       * an update that changes what was approved asks for approval again; a conflict goes back to
       * the implementer. Absent or false: the PR merges as soon as it is approved and green.
       */
      queue: z.boolean().optional(),
      update: z.enum(["rebase", "merge"]).optional(),
    })
    .optional(),
});
export type PullRequestPolicy = z.output<typeof PullRequestPolicy>;

/**
 * What the core's task worker (its ORCH_WORKER_* settings) does to a definition's runs: with
 * `enabled`, ready steps start by themselves (as with `execution: auto`) and a failed attempt is
 * retried up to `maxRetries` times, retry n after `backoffMs · 2^(n−1)` (at most 60 s), through the
 * scheduler's timers. A setting left out takes the core's at the run's creation; the rules a run got
 * are recorded with it (`resolveWorkerPolicy`). Absent: the definition's own execution and retry.
 */
export const WorkerPolicy = z.strictObject({
  enabled: z.boolean().optional(),
  maxRetries: z.int().min(0).max(100).optional(),
  backoffMs: z.int().min(0).max(3_600_000).optional(),
});
export type WorkerPolicy = z.output<typeof WorkerPolicy>;

/** What a periodic run's tick creates (`set_schedule`'s `creates`): a contract, re-exported here. */
export { RunTemplate } from "@orch/contracts";

export const VIEWS = ["generic", "job", "speckit", "protocol", "task", "ticket", "merge_queue"] as const;

export const Definition = z
  .strictObject({
    id: DefinitionId,
    version: z.int().min(1),
    title: z.string().max(500).optional(),
    description: z.string().max(10_000).optional(),
    /** Which seed's vocabulary presents its runs. */
    view: z.enum(VIEWS).default("generic"),
    /** `auto`: ready steps start by themselves. `manual`: only run_next_step or a step's `run` starts one. */
    execution: z.enum(["auto", "manual"]).default("auto"),
    /** A failed step fails the run, blocks it until someone retries, or neither (`continue`: its other steps go on). */
    onStepFailure: z.enum(["fail", "block", "continue"]).default("fail"),
    /**
     * What a run does once every step has settled: `complete` it, or `wait` (status `waiting`, no
     * work) until a step is added or queued again (seed 001: a task can be added to any run).
     * Absent: `complete`.
     */
    whenDone: z.enum(["complete", "wait"]).optional(),
    /** Whether a run may bring its own steps (at creation, or added later). */
    dynamicSteps: z.boolean().default(false),
    /** With `dynamicSteps`: the steps a run gets when it brings none (seed 000: one `dev.log`). */
    defaultSteps: z.array(StepDef).optional(),
    /** A step run at start (status `planning`); its output may add steps (`output.steps`). */
    planning: StepDef.optional(),
    stages: z.array(Stage).default([]),
    transitions: z.array(Transition).default([]),
    steps: z.array(StepDef).max(MAX_RUN_STEPS).default([]),
    facts: Json.default({}),
    retry: RetryPolicy.default(RetryPolicy.parse({})),
    limits: Limits.default(Limits.parse({})),
    budgets: z.array(Budget).default([]),
    /** What CI reports do to its runs (`ci_report`); absent or `off`: they are recorded only. */
    ci: z.union([z.literal("off"), CiPolicy]).optional(),
    /** What pull request events do to its runs (`pr_opened`, `pr_closed`, `pr_merged`); absent: they are recorded only. */
    pullRequests: PullRequestPolicy.optional(),
    /** Whether the core's task worker settings apply to its runs (see WorkerPolicy); absent: they do not. */
    worker: WorkerPolicy.optional(),
    /**
     * Its runs tick: `set_schedule` gives one an interval and the run each tick creates (`RunTemplate`),
     * and its timer fires once per slot of that interval (the core's periodic runs).
     */
    periodic: z.strictObject({}).optional(),
    /** Its runs are merge queues (the built-in `merge.queue`): they take `mq_enqueue` and `mq_leave` and give turns. */
    mergeQueue: z.strictObject({}).optional(),
    /**
     * Its runs are schedules (the built-in `schedule`, version 2): the run's input is a `ScheduleSpec`,
     * and the run creates the run it describes at each due time (`schedule_set`, `schedule_trigger`,
     * `schedule_backfill`; pause, resume and cancel are the run's own).
     */
    schedule: z.strictObject({}).optional(),
    /**
     * Its runs are ticket intakes (the built-in `ticket.intake`): the run's input is its rules
     * (`IntakeRules`, replaced by `set_intake`); it syncs its tracker on a timer (`tickets.sync` work,
     * answered by `tickets_synced`) and creates one ticket run per new ticket, told their ends (`child_ended`).
     */
    intake: z.strictObject({}).optional(),
    /**
     * The git branch a run's sessions work on (templates over the run's input): SpecKit uses its
     * feature id, a protocol its name. Unset or empty: the agent hub's `orch/run/<runId>`.
     */
    workspace: z
      .strictObject({
        branch: z.string().max(255).optional(),
        /** What the run's branch starts from; the project's base branch when unset or empty. */
        base: z.string().max(255).optional(),
      })
      .optional(),
  })
  .superRefine((d, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
    const stepIds = new Set<string>();
    d.steps.forEach((s, i) => {
      if (stepIds.has(s.id)) issue(["steps", i, "id"], `duplicate step id '${s.id}'`);
      stepIds.add(s.id);
    });
    if (d.planning && stepIds.has(d.planning.id)) issue(["planning", "id"], `the planning step's id '${d.planning.id}' is also a step id`);
    if (d.defaultSteps && !d.dynamicSteps) issue(["defaultSteps"], "only a definition with dynamicSteps takes default steps");
    const stageIds = new Set(d.stages.map((s) => s.id));
    if (stageIds.size !== d.stages.length) issue(["stages"], "duplicate stage ids");
    d.stages.forEach((s, i) => {
      if (s.next && !stageIds.has(s.next)) issue(["stages", i, "next"], `unknown stage '${s.next}'`);
      if (s.next && s.terminal) issue(["stages", i], "a terminal stage has no next stage");
    });
    if (d.stages.length > 0 && d.stages[0]!.terminal) issue(["stages", 0], "the first stage cannot be terminal");
    d.transitions.forEach((t, i) => {
      if (t.from !== "*" && !stageIds.has(t.from)) issue(["transitions", i, "from"], `unknown stage '${t.from}'`);
      if (!stageIds.has(t.to)) issue(["transitions", i, "to"], `unknown stage '${t.to}'`);
    });
    d.steps.forEach((s, i) => {
      for (const n of s.needs) if (!stepIds.has(n)) issue(["steps", i, "needs"], `unknown step '${n}'`);
      for (const t of s.triggers) if (!stepIds.has(t.step)) issue(["steps", i, "triggers"], `unknown step '${t.step}'`);
      if (s.loop && !stepIds.has(s.loop.backTo)) issue(["steps", i, "loop", "backTo"], `unknown step '${s.loop.backTo}'`);
      if (s.loop && d.steps.findIndex((x) => x.id === s.loop!.backTo) > i) issue(["steps", i, "loop", "backTo"], "a loop goes back to an earlier step");
      if (d.stages.length > 0) {
        if (!s.stage) issue(["steps", i, "stage"], "with stages declared, every step names its stage");
        else if (!stageIds.has(s.stage)) issue(["steps", i, "stage"], `unknown stage '${s.stage}'`);
        else if (d.stages.find((x) => x.id === s.stage)?.terminal) issue(["steps", i, "stage"], "a terminal stage has no steps");
      } else if (s.stage) issue(["steps", i, "stage"], "no stages are declared");
      for (const p of templatePaths(s.inputs)) {
        const m = /^steps\.([^.]+)/.exec(p);
        if (m && !stepIds.has(m[1]!)) issue(["steps", i, "inputs"], `refers to unknown step '${m[1]}'`);
      }
    });
    for (const key of ["branch", "base"] as const) {
      for (const p of templatePaths(d.workspace?.[key] ?? "")) {
        if (!/^(input|facts)(\.|$)/.test(p)) issue(["workspace", key], `may refer to input and facts only, not '${p}'`);
      }
    }
    const prEvents: [string[], { event: string } | string | undefined][] = [
      [["pullRequests", "onMerged", "event"], d.pullRequests?.onMerged],
      [["pullRequests", "onClosed", "event"], d.pullRequests?.onClosed],
      [["pullRequests", "review", "onStarted", "event"], d.pullRequests?.review?.onStarted],
      [["pullRequests", "review", "onReady", "event"], d.pullRequests?.review?.onReady],
      [["pullRequests", "review", "onChangesRequested", "event"], d.pullRequests?.review?.onChangesRequested],
      [["ci", "fix", "onStart", "event"], d.ci !== undefined && d.ci !== "off" ? d.ci.fix?.onStart : undefined],
    ];
    for (const [path, on] of prEvents) {
      if (on === undefined || typeof on === "string") continue;
      if (!d.transitions.some((t) => t.on === on.event)) issue(path, `no transition is on '${on.event}'`);
    }
    const reviewStep = d.pullRequests?.review?.step;
    if (reviewStep !== undefined && !d.dynamicSteps && !stepIds.has(reviewStep)) issue(["pullRequests", "review", "step"], `unknown step '${reviewStep}'`);
    const ciFixStep = d.ci !== undefined && d.ci !== "off" ? d.ci.fix?.step : undefined;
    if (ciFixStep !== undefined && !d.dynamicSteps && !stepIds.has(ciFixStep)) issue(["ci", "fix", "step"], `unknown step '${ciFixStep}'`);
    const cycle = findCycle(d.steps);
    if (cycle) issue(["steps"], `dependency cycle: ${cycle.join(" → ")}`);
  });
export type DefinitionInput = z.input<typeof Definition>;
export type Definition = z.output<typeof Definition>;

function findCycle(steps: { id: string; needs: string[] }[]): string[] | null {
  const needs = new Map(steps.map((s) => [s.id, s.needs]));
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (id: string): string[] | null => {
    if (state.get(id) === 2) return null;
    if (state.get(id) === 1) return [...stack.slice(stack.indexOf(id)), id];
    state.set(id, 1);
    stack.push(id);
    for (const n of needs.get(id) ?? []) {
      const c = visit(n);
      if (c) return c;
    }
    stack.pop();
    state.set(id, 2);
    return null;
  };
  for (const s of steps) {
    const c = visit(s.id);
    if (c) return c;
  }
  return null;
}

/** The implicit stage of a definition that declares none. */
export const MAIN_STAGE = "main";

/** A definition ready to run: defaults applied, stages explicit, steps indexed, hashed. */
export interface CompiledDefinition {
  readonly def: Definition;
  readonly key: string;
  readonly hash: string;
  readonly stages: readonly Stage[];
  readonly initialStage: string;
  readonly steps: readonly (StepDef & { index: number; stage: string; phase: string })[];
  readonly planning: (StepDef & { index: number; stage: string; phase: string }) | undefined;
}

export class DefinitionError extends Error {
  override readonly name = "DefinitionError";
  readonly code = "INVALID_DEFINITION";
  constructor(
    message: string,
    readonly issues: { path: string; message: string }[] = [],
  ) {
    super(issues.length ? `${message}: ${issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ")}` : message);
  }
}

export function parseDefinition(input: unknown): Definition {
  const r = Definition.safeParse(input);
  if (!r.success) {
    throw new DefinitionError(
      "invalid workflow definition",
      r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
    );
  }
  return r.data;
}

/** A definition file's text (YAML or JSON) → the value it holds, not yet validated (`parseDefinition` does). */
export function readDefinitionText(text: string, source = "definition"): unknown {
  try {
    return parseYaml(text, { maxAliasCount: 50 });
  } catch (err) {
    throw new DefinitionError(`${source} is not valid YAML: ${(err as Error).message}`);
  }
}

/** A definition file's text (YAML or JSON) → a validated definition. */
export function parseDefinitionText(text: string, source = "definition"): Definition {
  return parseDefinition(readDefinitionText(text, source));
}

export const definitionKey = (id: string, version: number) => `${id}@${version}`;

export function compileDefinition(def: Definition): CompiledDefinition {
  const stages: Stage[] = def.stages.length > 0 ? def.stages : [{ id: MAIN_STAGE, terminal: undefined, next: undefined, title: undefined }];
  const withIndex = (s: StepDef, index: number) => {
    const stage = s.stage ?? stages[0]!.id;
    return { ...s, index, stage, phase: s.phase ?? (def.stages.length > 0 ? stage : s.id) };
  };
  return Object.freeze({
    def,
    key: definitionKey(def.id, def.version),
    hash: hashJson(def),
    stages,
    initialStage: stages[0]!.id,
    steps: def.steps.map(withIndex),
    planning: def.planning ? withIndex(def.planning, -1) : undefined,
  });
}
