import { ForgeStepType, TicketWorkType, type RunView, type WorkItem } from "@orch/contracts";
/**
 * Whether the run still waits for a work item (what a redelivered or old one is checked against):
 * a step's attempt in flight; the merge queue's `pr.update` while the run is updating with it; the
 * polling fallback's latest `pr.sync` while the PR is open; an intake's sync in flight; a ticket's
 * update always (its writes are keyed: what was written is not written again).
 */
export function stillWanted(view: RunView, w: WorkItem): boolean {
  if (w.type === TicketWorkType.Update) return true;
  if (w.type === TicketWorkType.Sync) return view.intake?.sync?.attemptId === w.attemptId;
  if (w.type === ForgeStepType.Update) return view.mergeQueue?.state === "updating" && view.mergeQueue.attemptId === w.attemptId;
  if (w.type === ForgeStepType.Sync) return view.pullRequest?.state === "open" && view.pullRequest.sync?.attemptId === w.attemptId;
  return view.steps.some((s) => s.attemptId === w.attemptId && s.inflight);
}
