import type { Ticket, TicketingProviderId, TicketQuery, TicketRef } from "@orch/contracts";

/**
 * A tracker as the agent hub uses it (seed 003's `ticketing` provider factory): every provider
 * answers in these shapes, so nothing above this line knows which tracker or client it talks to.
 * Every write is idempotent by itself: asked twice (a redelivery, a retry whose first answer was
 * lost), it changes the ticket once and answers `changed: false` the second time.
 */
export interface TicketingProvider {
  readonly id: TicketingProviderId;
  /** The matching tickets, most recently updated first, at most `query.limit`. */
  list(query: TicketQuery, signal?: AbortSignal): Promise<Ticket[]>;
  /** Moves the ticket to the state named `state` (its team's or workflow's state of that name). */
  moveTo(ticket: TicketRef, state: string, signal?: AbortSignal): Promise<WriteOutcome>;
  /** Comments once per `key`. */
  comment(ticket: TicketRef, key: string, body: string, signal?: AbortSignal): Promise<WriteOutcome>;
  /** Attaches a link (the run's pull request) once per URL. */
  attachLink(ticket: TicketRef, url: string, title: string, signal?: AbortSignal): Promise<WriteOutcome>;
}

export interface WriteOutcome {
  /** False when the ticket already had it (nothing was written). */
  changed: boolean;
}

/** What every provider is built with: where the API is, its key, how long one call may take. */
export interface TrackerClientOptions {
  apiUrl: string;
  token: string;
  timeoutMs: number;
}

/** The hidden marker a keyed comment carries, so a second ask finds the first. */
export const commentMarker = (key: string) => `<!-- orchestrator:${key} -->`;
