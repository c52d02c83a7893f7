import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  TICKET_WORK_TYPES,
  TicketWorkType,
  TicketUpdatePayload,
  TRACKER_TOKEN_ENV,
  type RunSignalCommand,
  type TicketWrite,
  type TrackerFailure,
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
 *                  failure is tried again here a few times with a short backoff (never by failing
 *                  the transition: the steps it dispatched too would be redelivered, and the hub's
 *                  consumer slot is shared with agent sessions); then, or when the hub is stopping,
 *                  the writes not made yet go to the intake (`ticket_write_failed`, command id
 *                  `ticket-write-failed:<attemptId>`: a redelivered item reports once), which keeps
 *                  them durably and dispatches them again after its backoff (payload `writeId`:
 *                  tried once here, answered `ticket_written` or `ticket_write_failed`). A write
 *                  with no intake to tell (a run created without one) is logged and dropped.
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
  const parsed = TicketUpdatePayload.safeParse(item.payload);
  const intake = parsed.success ? parsed.data.intake : undefined;
  const writeId = parsed.success ? parsed.data.writeId : undefined;
  // A write the intake dispatched again is tried once: the intake's backoff is its retry.
  const tries = writeId !== undefined ? 1 : (opts.updateTries ?? 5);
  let wait = opts.updateBackoffMs ?? 1_000;
  // What any try wrote: only the rest is handed to the intake.
  const done = new Set<string>();
  for (let n = 1; ; n++) {
    const got: TicketUpdateAnswer = await opts.service.update(item.payload, opts.signal);
    for (const w of got.written) done.add(w.key);
    const answer = got.error ? { ...got, error: { ...got.error, message: redact(got.error.message) } } : got;
    if (answer.ok) {
      log.info({ written: answer.written, ms: Date.now() - startedAt, ...(writeId ? { writeId } : {}) }, "ticket updated");
      if (intake !== undefined && writeId !== undefined) await opts.send(writtenCommand(item, intake, writeId), correlationId);
      return;
    }
    const e: TrackerFailure = answer.error ?? { code: "UNKNOWN", message: "the tracker's answer says nothing", retryable: false };
    const handOver = async (why: string) => {
      if (intake === undefined || !parsed.success) {
        log.warn({ code: e.code, tries: n, written: answer.written }, `ticket.update failed: ${e.message}`);
        return;
      }
      const writes = parsed.data.writes.filter((w) => !done.has(w.key));
      if (writes.length === 0) return;
      await opts.send(
        writeFailedCommand(item, { intake, writeId: writeId ?? item.attemptId, ticket: parsed.data.ticket, writes, error: e, tries: n }),
        correlationId,
      );
      log.warn(
        { code: e.code, tries: n, written: answer.written, intake, retryable: e.retryable },
        `ticket.update failed (${why}), handed to the intake: ${e.message}`,
      );
    };
    if (!e.retryable || n >= tries) return handOver(e.retryable ? `${n} tries` : "not retryable");
    log.info({ code: e.code, try: n, waitMs: wait }, "ticket.update failed; trying again");
    try {
      await sleep(wait, undefined, { signal: opts.signal });
    } catch (err) {
      // The hub is stopping: the writes wait in the intake rather than in a redelivery.
      if (intake === undefined) throw err;
      return handOver("the hub is stopping");
    }
    wait = Math.min(wait * 2, 30_000);
  }
}

/** The `run.signal` that hands a ticket's writes the hub could not make to its intake. */
export function writeFailedCommand(
  item: Pick<WorkItem, "attemptId">,
  f: { intake: string; writeId: string; ticket: TicketUpdatePayload["ticket"]; writes: TicketWrite[]; error: TrackerFailure; tries: number },
): RunSignalCommand {
  return {
    type: "run.signal",
    commandId: commandIdOf("ticket-write-failed", item.attemptId),
    runId: f.intake,
    issuedAt: Date.now(),
    actor: "agent-hub",
    signal: {
      name: "ticket_write_failed",
      writeId: f.writeId,
      attemptId: item.attemptId,
      ticket: f.ticket,
      writes: f.writes,
      error: { ...f.error, message: f.error.message.slice(0, 10_000) },
      tries: Math.min(f.tries, 100),
    },
  };
}

/** The `run.signal` that tells the intake the writes it dispatched again are written. */
export function writtenCommand(item: Pick<WorkItem, "attemptId">, intake: string, writeId: string): RunSignalCommand {
  return {
    type: "run.signal",
    commandId: commandIdOf("ticket-written", item.attemptId),
    runId: intake,
    issuedAt: Date.now(),
    actor: "agent-hub",
    signal: { name: "ticket_written", writeId, attemptId: item.attemptId },
  };
}

/** `<what>:<attemptId>`, or its hash when that is longer than a command id may be. */
function commandIdOf(what: string, attemptId: string): string {
  const id = `${what}:${attemptId}`;
  return id.length <= 256 ? id : `${what}:${createHash("sha256").update(attemptId).digest("hex")}`;
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
