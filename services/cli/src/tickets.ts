import { DEFAULT_WORKFLOW_STATE_MAP, TICKET_DEFINITION, TICKET_LABEL, TRACKER_STATE_LABEL, trackerStateFor } from "@orch/contracts";
import type { RunSummaryJson } from "./api.js";

/**
 * The terminal UI's ticket picker (seed 003's): tickets are runs of the `ticket` definition and any
 * other run carrying a ticket (a `ticket` label). A ticket's tracker state is its `tracker_state`
 * label (what ticket intake records from the tracker) or, without one, its pipeline stage in the
 * tracker's words, through seed 003's default `workflow_state_map` (a stage the map has no row for
 * shows as itself). The picker orders tickets by the position of that state in
 * `[ui] ticket_picker_priority_states`; unknown states come last, newest first within a state.
 */

export interface Ticket {
  run: RunSummaryJson;
  /** The ticket's key (ENG-42): its `ticket` label, else the run's title. */
  key: string;
  state: string | undefined;
}

export const isTicket = (r: RunSummaryJson): boolean => r.definition.id === TICKET_DEFINITION || r.labels[TICKET_LABEL] !== undefined;

export function trackerState(r: RunSummaryJson): string | undefined {
  return r.labels[TRACKER_STATE_LABEL] ?? (r.stage ? (trackerStateFor(DEFAULT_WORKFLOW_STATE_MAP, r.stage) ?? r.stage) : undefined);
}

export function ticketsByPriority(runs: readonly RunSummaryJson[], priority: readonly string[]): Ticket[] {
  const rank = (s: string | undefined) => {
    const i = s === undefined ? -1 : priority.findIndex((p) => p.toLowerCase() === s.toLowerCase());
    return i === -1 ? priority.length : i;
  };
  return runs
    .filter(isTicket)
    .map((run) => ({ run, key: run.labels[TICKET_LABEL] ?? run.title ?? run.id, state: trackerState(run) }))
    .sort((a, b) => rank(a.state) - rank(b.state) || b.run.createdAt.localeCompare(a.run.createdAt));
}
