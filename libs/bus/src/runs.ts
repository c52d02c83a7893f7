import { createHash, randomUUID } from "node:crypto";
import type { PubAck } from "@nats-io/jetstream";
import {
  Command,
  CommandOutcome,
  DEFAULT_PROJECT,
  FINAL_RUN_STATUSES,
  Header,
  QueryError,
  RunQueryResult,
  TransitionReader,
  isToken,
  type RunCreateCommand,
  type RunQuery,
  type RunSummary,
  type RunView,
} from "@orch/contracts";
import { decode, publish } from "./codec.js";
import { repliesOf } from "./replies.js";
import type { Bus } from "./connect.js";
import type { FeedPosition } from "./events.js";

/** A run's latest transition as stored: where it is (the stream sequence a compare-and-set names) and its parts. */
export interface StoredTransition {
  streamSeq: number;
  subject: string;
  transition: TransitionReader;
  /** Size of the stored message. */
  bytes: number;
}

/**
 * The run's latest transition (the run as it stands), or null when the core has not created it.
 * A direct get of the last message on the run's subject: any replica answers, unless `leader`
 * asks for the stream leader's answer (after a lost compare-and-set, to read what won).
 */
export async function lastTransition(bus: Bus, runId: string, opts: { leader?: boolean } = {}): Promise<StoredTransition | null> {
  if (!isToken(runId)) return null;
  const stream = bus.names.streams.runs;
  const query = { last_by_subj: bus.names.subjects.runOf(runId) };
  const m = opts.leader ? await bus.jsm.streams.getMessage(stream, query) : await bus.jsm.direct.getMessage(stream, query);
  if (!m) return null;
  return { streamSeq: m.seq, subject: m.subject, transition: new TransitionReader(m.data), bytes: m.data.length };
}

/** The run as the core last published it, or null. */
export async function getRunView(bus: Bus, runId: string): Promise<RunView | null> {
  const t = await lastTransition(bus, runId);
  return t ? t.transition.view() : null;
}

/**
 * Whether the run has finished and has no event after position `after` (so its event stream,
 * resumed there, has nothing more to send). A position past the run's last transition counts.
 */
export async function finishedBefore(bus: Bus, runId: string, after: FeedPosition): Promise<boolean> {
  const t = await lastTransition(bus, runId);
  const head = t?.transition.head();
  if (!t || !head?.run || !FINAL_RUN_STATUSES.has(head.run.status)) return false;
  if (after.streamSeq !== t.streamSeq) return after.streamSeq > t.streamSeq;
  return after.index >= head.events - 1;
}

/** The run's summary (what lists show), or null. */
export async function getRunSummary(bus: Bus, runId: string): Promise<RunSummary | null> {
  const t = await lastTransition(bus, runId);
  return t?.transition.head().run ?? null;
}

/**
 * Sends a command to the core through the command stream. Durable when this resolves; the
 * command id is the de-duplication id, so sending the same command twice applies it once.
 */
export async function sendCommand(
  bus: Bus,
  cmd: Command | RunCreateCommand,
  opts: { correlationId?: string; traceparent?: string; headers?: Record<string, string> } = {},
): Promise<PubAck> {
  return publish(bus, bus.names.subjects.cmd(cmd.runId), Command, cmd, { msgId: cmd.commandId, ...opts }, "cmd.v1");
}

/**
 * Sends a command and waits for the core's verdict (applied, or refused and why), which carries the
 * run's summary after it. The command is durable either way: `null` means the core has not answered
 * within `timeoutMs` (it is down or busy) and will apply it when it can. A command id sent before
 * is stored once; its answer then is what the run says now.
 */
export async function sendCommandAndWait(
  bus: Bus,
  cmd: Command | RunCreateCommand,
  opts: { timeoutMs?: number; correlationId?: string } = {},
): Promise<CommandOutcome | null> {
  const wait = repliesOf(bus).expect(opts.timeoutMs ?? 5_000);
  let ack: PubAck;
  try {
    ack = await sendCommand(bus, cmd, { headers: { [Header.ReplyTo]: wait.subject }, ...(opts.correlationId ? { correlationId: opts.correlationId } : {}) });
  } catch (err) {
    wait.cancel();
    throw err;
  }
  if (ack.duplicate) {
    // Stored before: the first delivery's answer went elsewhere. Report what the run says now.
    wait.cancel();
    const run = await getRunView(bus, cmd.runId);
    return { commandId: cmd.commandId, runId: cmd.runId, ok: true, duplicate: true, ...(run ? { run } : {}) };
  }
  const m = await wait.reply;
  if (!m) return null;
  const d = decode(CommandOutcome, m.data);
  return d.ok ? d.value : null;
}

/** Whether a command for this run is stored (so a job whose run does not exist yet is queued). */
export async function hasStoredCommand(bus: Bus, runId: string): Promise<boolean> {
  if (!isToken(runId)) return false;
  const m = await bus.jsm.direct.getMessage(bus.names.streams.cmd, { last_by_subj: bus.names.subjects.cmd(runId) });
  return m !== null;
}

/** A v4 UUID, or (with an idempotency key) a stable UUID derived from the key: same key, same job. */
export function newRunId(idempotencyKey?: string): string {
  if (idempotencyKey === undefined || idempotencyKey === "") return randomUUID();
  const b = createHash("sha256").update(`orch-run:${idempotencyKey}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80; // version 8: custom, name-based
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class QueryRefusedError extends Error {
  override readonly name = "QueryRefusedError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A page of the run index (kept by the event-bus), newest first. */
export async function listRuns(bus: Bus, query: RunQuery, timeoutMs = 5_000): Promise<RunQueryResult> {
  const m = await bus.nc.request(bus.names.subjects.query("runs.list"), JSON.stringify(query), { timeout: timeoutMs });
  const ok = decode(RunQueryResult, m.data);
  if (ok.ok) return ok.value;
  const err = decode(QueryError, m.data);
  if (err.ok) throw new QueryRefusedError(err.value.error.code, err.value.error.message);
  throw new Error(`unreadable run query answer: ${ok.error}`);
}
