import { setTimeout as sleep } from "node:timers/promises";
import {
  TICKET_WORK_TYPES,
  TicketWorkType,
  TRACKER_TOKEN_ENV,
  type RunSignalCommand,
  type TicketSyncAnswer,
  type TicketUpdateAnswer,
  type WorkItem,
} from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { secretRedactor } from "../supervisor/index.js";
import type { Env } from "./factory.js";
import type { TicketingService } from "./work.js";

/**
 * Ticket intake's work items as the hub's consumer takes them from the runs stream:
 *
 *   tickets.sync   ──TicketingService.sync──▶ `tickets_synced` {attemptId, answer} to the intake run
 *                  (command id `tickets-synced:<attemptId>`: a redelivered item's second answer is a
 *                  duplicate the core drops, and a stale attempt changes nothing there)
 *   ticket.update  ──TicketingService.update──▶ the tracker; each write keyed, so a redelivered item
 *                  (the hub killed mid-update) writes only what is not written yet. A retryable
 *                  failure is tried again here with backoff (never by failing the transition: the
 *                  steps it dispatched too would be redelivered); then it is logged and dropped.
 *
 * Every text that leaves (answers, logs) is redacted of every tracker key in the environment.
 */

/** Whether a work item is ticket intake's (not a step of a run). */
export function isTicketWork(item: Pick<WorkItem, "type">): boolean {
  return (TICKET_WORK_TYPES as readonly string[]).includes(item.type);
}

/** The most of a sync answer's descriptions, in characters (an answer is one NATS message). */
export const SYNC_DESCRIPTIONS_BUDGET = 400_000;
/** Each ticket keeps at least this much of its description, however many there are. */
const MIN_DESCRIPTION = 1_000;

export interface TicketWorkOptions {
  service: TicketingService;
  send: (cmd: RunSignalCommand, correlationId?: string) => Promise<unknown>;
  logger: Logger;
  signal: AbortSignal;
  env?: Env;
  /** `ticket.update`'s tries on a retryable failure, and the first wait between them (doubling). */
  updateTries?: number;
  updateBackoffMs?: number;
}

/** The tracker keys in the environment, as a redactor of text. */
export function trackerRedactor(env: Env = process.env): (text: string) => string {
  const keys = Object.values(TRACKER_TOKEN_ENV)
    .flat()
    .map((v) => env[v])
    .filter((v): v is string => typeof v === "string" && v.length > 0);
  return secretRedactor(keys);
}

/** Runs one ticket work item; answers a sync on the command stream. Never throws but for an abort. */
export async function runTicketWork(item: WorkItem, opts: TicketWorkOptions, correlationId?: string): Promise<void> {
  const redact = trackerRedactor(opts.env);
  const log = opts.logger.child({ runId: item.runId, attemptId: item.attemptId, workType: item.type, ...(correlationId ? { correlationId } : {}) });
  const startedAt = Date.now();
  if (item.type === TicketWorkType.Sync) {
    const got = await opts.service.sync(item.payload, opts.signal);
    // Only a failure's text can carry a key (a server echoing a header); tickets are the tracker's own words.
    const answer = got.ok ? bounded(got) : { ok: false as const, error: { ...got.error, message: redact(got.error.message) } };
    await opts.send(syncedCommand(item, answer), correlationId);
    if (answer.ok) log.info({ tickets: answer.tickets.length, ms: Date.now() - startedAt }, "tickets synced");
    else log.warn({ code: answer.error.code, retryable: answer.error.retryable, ms: Date.now() - startedAt }, `tickets.sync failed: ${answer.error.message}`);
    return;
  }
  const tries = opts.updateTries ?? 5;
  let wait = opts.updateBackoffMs ?? 1_000;
  for (let n = 1; ; n++) {
    const got: TicketUpdateAnswer = await opts.service.update(item.payload, opts.signal);
    const answer = got.error ? { ...got, error: { ...got.error, message: redact(got.error.message) } } : got;
    if (answer.ok) {
      log.info({ written: answer.written, ms: Date.now() - startedAt }, "ticket updated");
      return;
    }
    const e = answer.error;
    if (!e?.retryable || n >= tries) {
      log.warn({ code: e?.code, tries: n, written: answer.written }, `ticket.update failed: ${e?.message ?? "unknown"}`);
      return;
    }
    log.info({ code: e.code, try: n, waitMs: wait }, "ticket.update failed; trying again");
    await sleep(wait, undefined, { signal: opts.signal });
    wait = Math.min(wait * 2, 30_000);
  }
}

/** The `run.signal` that answers a sync attempt. */
export function syncedCommand(item: Pick<WorkItem, "runId" | "attemptId">, answer: TicketSyncAnswer): RunSignalCommand {
  return {
    type: "run.signal",
    commandId: `tickets-synced:${item.attemptId}`,
    runId: item.runId,
    issuedAt: Date.now(),
    actor: "agent-hub",
    signal: { name: "tickets_synced", attemptId: item.attemptId, answer },
  };
}

/** A sync answer whose descriptions fit one message: each cut to its share of the budget. */
function bounded(answer: TicketSyncAnswer): TicketSyncAnswer {
  if (!answer.ok) return answer;
  const total = answer.tickets.reduce((n, t) => n + t.description.length, 0);
  if (total <= SYNC_DESCRIPTIONS_BUDGET) return answer;
  const share = Math.max(MIN_DESCRIPTION, Math.floor(SYNC_DESCRIPTIONS_BUDGET / answer.tickets.length));
  return { ok: true, tickets: answer.tickets.map((t) => (t.description.length > share ? { ...t, description: `${t.description.slice(0, share - 1)}…` } : t)) };
}
