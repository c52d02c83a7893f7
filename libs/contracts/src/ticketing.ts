import { z } from "zod";
import { FORGE_DEFAULT_API_URL, FORGE_TOKEN_ENV } from "./forges.js";
import { RunMode } from "./vocabulary.js";

/**
 * Ticket intake: the trackers work comes from (seed 003's `ticketing` providers, and beyond it
 * GitHub and GitLab issues), what the system knows of a ticket, and the work the core dispatches
 * to the agent hub about them:
 *
 *   intake run ──tickets.sync (TicketSyncPayload)──▶ hub lists the matching tickets (Ticket[])
 *   ticket run's stage changes ──ticket.update (TicketUpdatePayload)──▶ hub moves the ticket's
 *     state, comments, attaches the PR link: each write keyed, so a redelivery writes nothing twice
 *
 * The core decides (which ticket is new, which state a stage maps to, when to write); the hub only
 * talks to the tracker. Keys come from the hub's environment only (TRACKER_TOKEN_ENV).
 */

export const TICKETING_PROVIDER_IDS = ["ticketing.linear", "ticketing.shortcut", "ticketing.github_issues", "ticketing.gitlab_issues"] as const;
export type TicketingProviderId = (typeof TICKETING_PROVIDER_IDS)[number];

/** Where each tracker's key comes from, in order: the environment only. */
export const TRACKER_TOKEN_ENV: Readonly<Record<TicketingProviderId, readonly string[]>> = Object.freeze({
  "ticketing.linear": Object.freeze(["LINEAR_API_KEY"]),
  "ticketing.shortcut": Object.freeze(["SHORTCUT_API_TOKEN"]),
  // Issues are the forges': their tokens are the forges' own.
  "ticketing.github_issues": FORGE_TOKEN_ENV.github,
  "ticketing.gitlab_issues": FORGE_TOKEN_ENV.gitlab,
});

/** Seed 003's defaults for `[linear] api_url` and `[shortcut] api_url`; the forges' public APIs for their issues. */
export const TRACKER_DEFAULT_API_URL: Readonly<Record<TicketingProviderId, string>> = Object.freeze({
  "ticketing.linear": "https://api.linear.app/graphql",
  "ticketing.shortcut": "https://api.app.shortcut.com/api/v3",
  "ticketing.github_issues": FORGE_DEFAULT_API_URL.github,
  "ticketing.gitlab_issues": FORGE_DEFAULT_API_URL.gitlab,
});

/**
 * A tracker state's kind, in the tracker's own words where it has them (Linear's `WorkflowState.type`;
 * Shortcut's workflow state `type` is `unstarted | started | done`; an issue is open or closed).
 */
export const TRACKER_STATE_TYPES = ["triage", "backlog", "unstarted", "started", "completed", "canceled"] as const;
export type TrackerStateType = (typeof TRACKER_STATE_TYPES)[number];

/** Which ticket, on which tracker: what a ticket run carries to write back. */
export const TicketRef = z.object({
  provider: z.enum(TICKETING_PROVIDER_IDS),
  /**
   * The tracker's stable id (Linear's issue UUID, Shortcut's story id; an issue's repository and
   * number, `owner/name#12` on GitHub, `group/project#12` on GitLab: numbers repeat across repositories).
   */
  id: z.string().min(1).max(256),
  /** What people call it: ENG-42, sc-123, #12. */
  key: z.string().min(1).max(256),
  url: z.string().max(2048).optional(),
  /** The forge repository of a GitHub or GitLab issue (`owner/name`, the project path). */
  repository: z.string().max(255).optional(),
});
export type TicketRef = z.infer<typeof TicketRef>;

/** A ticket as a sync finds it. */
export const Ticket = TicketRef.extend({
  title: z.string().max(1024),
  description: z.string().max(65_536).default(""),
  labels: z.array(z.string().max(256)).max(100).default([]),
  /** Its state's name (Linear: the workflow state; Shortcut: the workflow state; issues: open, closed). */
  state: z.string().max(256),
  stateType: z.enum(TRACKER_STATE_TYPES).optional(),
  assignee: z.string().max(256).optional(),
  updatedAt: z.string().max(64).optional(),
});
export type Ticket = z.infer<typeof Ticket>;

/** What a sync asks the tracker for (the intake's settings, resolved by the core). */
export const TicketQuery = z.object({
  /** Only tickets assigned to the key's user (seed 003's `sync_assigned_to_me`). */
  assignedToMe: z.boolean().default(true),
  /** Only tickets in these states (by name, case-insensitive); empty: any state. */
  states: z.array(z.string().min(1).max(256)).max(50).default([]),
  /** At most this many, most recently updated first (seed 003's `fetch_limit`). */
  limit: z.number().int().min(1).max(250).default(100),
  /**
   * Issues (GitHub, GitLab): the repository (`owner/name`, the project's path), and the label and/or
   * the assignee (a user name) that select them; with neither, the key's own user is the assignee
   * when `assignedToMe` (a query that would select every open issue is refused).
   */
  label: z.string().max(256).optional(),
  assignee: z.string().max(256).optional(),
  repository: z.string().max(255).optional(),
});
export type TicketQuery = z.input<typeof TicketQuery>;

/** One write to a ticket; `key` makes it idempotent (the same key is written once, however often it is asked). */
export const TicketWrite = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("state"), key: z.string().min(1).max(256), state: z.string().min(1).max(256) }),
  z.object({ kind: z.literal("comment"), key: z.string().min(1).max(256), body: z.string().min(1).max(65_536) }),
  z.object({ kind: z.literal("link"), key: z.string().min(1).max(256), url: z.string().min(1).max(2048), title: z.string().max(1024) }),
]);
export type TicketWrite = z.infer<typeof TicketWrite>;

/** One row of seed 003's `workflow_state_map`: a pipeline stage and the tracker state it shows as. */
export const WorkflowStateMapping = z.object({ workflow_state: z.string().min(1).max(256), linear_state: z.string().min(1).max(256) });
export type WorkflowStateMapping = z.infer<typeof WorkflowStateMapping>;

/** Seed 003's default `[linear] workflow_state_map` (its example file, as written). */
export const DEFAULT_WORKFLOW_STATE_MAP: readonly WorkflowStateMapping[] = Object.freeze([
  { workflow_state: "Implementing", linear_state: "In Progress" },
  { workflow_state: "PRDrafted", linear_state: "In Review" },
  { workflow_state: "AwaitingYourReview", linear_state: "In Review" },
  { workflow_state: "ReadyForReview", linear_state: "In Review" },
  { workflow_state: "InReview", linear_state: "In Review" },
  { workflow_state: "PendingMerge", linear_state: "In Review" },
  { workflow_state: "Done", linear_state: "Done" },
  { workflow_state: "Abandoned", linear_state: "Canceled" },
]);

/** The pipeline stage that a ticket moved to a cancelled state stands for: it abandons the run. */
export const ABANDONED_STAGE = "Abandoned";

/** The tracker state a pipeline stage shows as (the first row for it), or undefined: the ticket is not moved. */
export function trackerStateFor(map: readonly WorkflowStateMapping[], stage: string): string | undefined {
  return map.find((m) => m.workflow_state === stage)?.linear_state;
}

const same = (a: string, b: string) => a.trim().toLowerCase() === b.trim().toLowerCase();

/**
 * The other way: whether a ticket's tracker state says its run should be abandoned (a state the map
 * gives the Abandoned stage, or one the tracker itself calls cancelled). Nothing else a person does
 * on the tracker moves a run: the pipeline's own stages are decided by the run.
 */
export function cancelledOnTracker(map: readonly WorkflowStateMapping[], state: string, stateType?: TrackerStateType): boolean {
  if (stateType === "canceled") return true;
  return map.some((m) => m.workflow_state === ABANDONED_STAGE && same(m.linear_state, state));
}

/**
 * Issues have no workflow states: a GitHub or GitLab issue shows its state as one label
 * `state:<tracker state>` (moving it replaces the previous one), and these tracker states also
 * close it, as done or as not planned (GitHub's `state_reason`). Keys are lower case.
 */
export const ISSUE_STATE_LABEL_PREFIX = "state:";
export const ISSUE_CLOSING_STATES: Readonly<Record<string, Extract<TrackerStateType, "completed" | "canceled">>> = Object.freeze({
  done: "completed",
  completed: "completed",
  closed: "completed",
  canceled: "canceled",
  cancelled: "canceled",
  abandoned: "canceled",
  "not planned": "canceled",
});

/** Whether the tracker state `name` closes an issue, and how (undefined: the issue stays open). */
export function issueClosingState(name: string): "completed" | "canceled" | undefined {
  return ISSUE_CLOSING_STATES[name.trim().toLowerCase()];
}

/** The built-in definition a ticket's run is of (seed 003's ticket pipeline). */
export const TICKET_DEFINITION = "ticket";

/** The labels a ticket run carries: what the ticket picker and the write-back read. */
export const TICKET_LABEL = "ticket";
export const TRACKER_STATE_LABEL = "tracker_state";

/** A run id from (provider, ticket id): the same ticket always names the same run, so it is created once. */
export function ticketRunId(provider: TicketingProviderId, ticketId: string): string {
  const short = provider.slice("ticketing.".length).replace(/_/g, "-");
  const slug = ticketId
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 48);
  let h = 0x811c9dc5;
  for (const ch of `${provider}\u0000${ticketId}`) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `tk-${short}-${slug || "t"}-${h.toString(16).padStart(8, "0")}`;
}

/** The work types of ticket intake (dispatched by the core, done by the agent hub; not steps of a run). */
export const TicketWorkType = { Sync: "tickets.sync", Update: "ticket.update" } as const;
export type TicketWorkType = (typeof TicketWorkType)[keyof typeof TicketWorkType];
export const TICKET_WORK_TYPES: readonly TicketWorkType[] = Object.values(TicketWorkType);

/** `tickets.sync`: list the matching tickets of the intake's tracker. */
export const TicketSyncPayload = z.object({ provider: z.enum(TICKETING_PROVIDER_IDS), query: TicketQuery });
export type TicketSyncPayload = z.infer<typeof TicketSyncPayload>;

/**
 * `ticket.update`: the writes a ticket run's stage change makes, each keyed (written once). `intake`:
 * the intake run the hub tells when the tracker keeps failing (`ticket_write_failed`), so the writes
 * wait there, durably, instead of being lost; `writeId`: set when the intake itself dispatches the
 * writes again (its pending write's id; the hub answers `ticket_written` or `ticket_write_failed`).
 */
export const TicketUpdatePayload = z.object({
  ticket: TicketRef,
  writes: z.array(TicketWrite).min(1).max(10),
  intake: z.string().min(1).max(128).optional(),
  writeId: z.string().min(1).max(300).optional(),
});
export type TicketUpdatePayload = z.infer<typeof TicketUpdatePayload>;

/** A tracker failure as the hub reports it: the core's intake policy reads `retryable`. */
export const TrackerFailure = z.object({ code: z.string().min(1).max(64), message: z.string().max(10_000), retryable: z.boolean() });
export type TrackerFailure = z.infer<typeof TrackerFailure>;

/** The hub's answer to a sync (at most the query's limit of tickets). */
export const TicketSyncAnswer = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), tickets: z.array(Ticket).max(250) }),
  z.object({ ok: z.literal(false), error: TrackerFailure }),
]);
export type TicketSyncAnswer = z.infer<typeof TicketSyncAnswer>;

/** The hub's answer to an update: each write's outcome, in order; a failure stops at the write that failed. */
export const TicketUpdateAnswer = z.object({
  ok: z.boolean(),
  written: z.array(z.object({ key: z.string(), changed: z.boolean() })).max(10),
  error: TrackerFailure.optional(),
});
export type TicketUpdateAnswer = z.infer<typeof TicketUpdateAnswer>;

/**
 * An intake's rules (the `ticket.intake` built-in's input, and `set_intake`): which tracker, how
 * often it syncs and what it asks for, what its ticket runs write back, and its backoff, circuit
 * breaker and quarantine. The core makes them from its settings at start.
 */
export const IntakeRules = z.strictObject({
  provider: z.enum(TICKETING_PROVIDER_IDS),
  everyMs: z.int().min(500).max(86_400_000),
  query: z.strictObject({
    assignedToMe: z.boolean(),
    states: z.array(z.string().min(1).max(256)).max(50),
    limit: z.int().min(1).max(250),
    label: z.string().max(256).optional(),
    assignee: z.string().max(256).optional(),
    repository: z.string().max(255).optional(),
  }),
  stateMap: z.array(WorkflowStateMapping).max(100),
  commentSummaries: z.boolean(),
  attachPrLinks: z.boolean(),
  /** After failure n, the next sync in min(maxMs, initialMs · multiplier^(n−1)). */
  retry: z.strictObject({ initialMs: z.int().min(100).max(86_400_000), multiplier: z.number().min(1).max(10), maxMs: z.int().min(100).max(86_400_000) }),
  /** Paused after this many failed syncs in a row, for coolDownMs. */
  breaker: z.strictObject({ failures: z.int().min(1).max(100), coolDownMs: z.int().min(100).max(86_400_000) }),
  /** A ticket whose runs failed this many times is quarantined. */
  quarantineAfter: z.int().min(1).max(100),
  /**
   * A ticket's writes the hub could not make (the tracker failing) wait in the intake and are tried
   * again after the backoff (`retry`); after this many failed tries they are abandoned.
   */
  writeAbandonAfter: z.int().min(1).max(100).default(10),
  maxNewPerSync: z.int().min(1).max(250),
  /** What each ticket's run is (the `ticket` pipeline by default) and its mode. */
  definition: z.strictObject({ id: z.string().min(1).max(128), version: z.int().min(1).optional() }),
  /** The stage event each ticket run is sent as it is created (the `ticket` pipeline's `TicketAccepted`). */
  acceptEvent: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/)
    .optional(),
  mode: RunMode.optional(),
});
export type IntakeRules = z.output<typeof IntakeRules>;

/**
 * What a ticket run writes back (in its input's `tracker.writeBack`, from its intake's rules): the
 * kernel dispatches `ticket.update` when the run enters a stage.
 */
export const TicketWriteBack = z.object({
  stateMap: z.array(WorkflowStateMapping).max(100),
  commentSummaries: z.boolean(),
  attachPrLinks: z.boolean(),
});
export type TicketWriteBack = z.infer<typeof TicketWriteBack>;

/** A ticket run's `input.tracker`: the ticket it is for, and what it writes back. */
export const TicketRunTracker = TicketRef.extend({ writeBack: TicketWriteBack.optional() });
export type TicketRunTracker = z.infer<typeof TicketRunTracker>;
