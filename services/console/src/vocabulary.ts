import type { RunEventType, SessionEventType, SessionStatus } from "@orch/contracts";

/**
 * The event names the console listens for. EventSource reports only the named events it is told of,
 * so the names are listed here; the `Record` types make the compiler refuse a list that misses one
 * of the contracts' names (the engine's domain events, `pr.*`, `mq.*`, …, are added by hand).
 */

const RUN: Record<RunEventType, true> = {
  "run.created": true,
  "run.status_changed": true,
  "run.stage_entered": true,
  "run.stage_changed": true,
  "run.facts_changed": true,
  "run.finished": true,
  "step.added": true,
  "step.started": true,
  "step.succeeded": true,
  "step.retrying": true,
  "step.failed": true,
  "step.qa_started": true,
  "step.needs_qa": true,
  "step.qa_passed": true,
  "step.qa_failed": true,
  "step.awaiting_approval": true,
  "step.approved": true,
  "step.rejected": true,
  "step.cancelled": true,
  "step.blocked": true,
  "step.skipped": true,
  "step.reset": true,
  "step.result_ignored": true,
  "budget.exceeded": true,
  "budget.extended": true,
  "loop.iteration": true,
  "loop.exhausted": true,
  "trigger.fired": true,
  "trigger.skipped": true,
  "ci.fix_attempt": true,
  "ci.fix_refused": true,
  "pr.merged": true,
  "pr.ready": true,
  "error.dead_letter": true,
};

const DOMAIN = [
  "step.metadata_set",
  "step.requeued",
  "ci.check_ignored",
  "pr.opened",
  "pr.closed",
  "pr.reviewed",
  "pr.approval_invalidated",
  "review.fix_attempt",
  "review.fix_refused",
  "schedule.set",
  "schedule.ticked",
  "mq.conflict",
  "mq.conflict_fix",
  "mq.entered",
  "mq.joined",
  "mq.left",
  "mq.merging",
  "mq.removed",
  "mq.turn",
  "mq.turn_given",
  "mq.update_failed",
  "mq.updated",
];

export const RUN_EVENT_TYPES: readonly string[] = [...Object.keys(RUN), ...DOMAIN];

const SESSION: Record<Exclude<SessionEventType, "session.status">, true> = {
  "agent.delta": true,
  "agent.message": true,
  "agent.tool_call": true,
  "agent.tool_result": true,
  "agent.file_edit": true,
  "agent.usage": true,
  "agent.commit": true,
  "agent.log": true,
  "agent.raw": true,
};
const STATUSES: Record<SessionStatus, true> = {
  created: true,
  starting: true,
  running: true,
  waiting_input: true,
  completed: true,
  failed: true,
  cancelled: true,
  timed_out: true,
};
export const FINAL_SESSION = new Set(["completed", "failed", "cancelled", "timed_out"]);

export const SESSION_EVENT_TYPES: readonly string[] = [...Object.keys(SESSION), ...Object.keys(STATUSES).map((s) => `session.${s}`)];

export const TERMINAL_RUN = new Set(["completed", "failed", "cancelled"]);
