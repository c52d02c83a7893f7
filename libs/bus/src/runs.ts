import { createHash, randomUUID } from "node:crypto";
import type { PubAck } from "@nats-io/jetstream";
import { createInbox } from "@nats-io/transport-node";
import {
  Command,
  CommandOutcome,
  DEFAULT_PROJECT,
  Header,
  RunRecord,
  isToken,
  jobRunSpec,
  queuedJobView,
  toJobView,
  type JobView,
  type RunCreateCommand,
  type TaskPacket,
  QueryError,
  RunQueryResult,
  type RunQuery,
} from "@orch/contracts";
import { decode, publish } from "./codec.js";
import type { Bus } from "./connect.js";

/** A run record as stored, with the KV revision a compare-and-set update must name. */
export interface StoredRun {
  record: RunRecord;
  revision: number;
  /** Size of the stored record (JSON bytes). */
  bytes: number;
}

export class CorruptRecordError extends Error {
  override readonly name = "CorruptRecordError";
  readonly code = "CORRUPT_RECORD";
}

/** The run's record from the `runs` bucket, or null when the core has not created it (yet). */
export async function getRunRecord(bus: Bus, runId: string): Promise<StoredRun | null> {
  if (!isToken(runId)) return null;
  const kv = await bus.kv(bus.names.buckets.runs);
  const e = await kv.get(runId);
  if (!e || e.operation !== "PUT" || e.length === 0) return null;
  const d = decode(RunRecord, e.value);
  if (!d.ok) throw new CorruptRecordError(`run record ${runId} is unreadable: ${d.error}`);
  return { record: d.value, revision: e.revision, bytes: e.value.length };
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
 * Sends a command and waits for the core's verdict (applied, or refused and why). The command is
 * durable either way: `null` means the core has not answered within `timeoutMs` (it is down or
 * busy) and will apply it when it can. A duplicate command id gets the verdict of its first run.
 */
export async function sendCommandAndWait(
  bus: Bus,
  cmd: Command | RunCreateCommand,
  opts: { timeoutMs?: number; correlationId?: string } = {},
): Promise<CommandOutcome | null> {
  const inbox = createInbox();
  const sub = bus.nc.subscribe(inbox, { max: 1 });
  const timeout = opts.timeoutMs ?? 5_000;
  try {
    const ack = await sendCommand(bus, cmd, { headers: { [Header.ReplyTo]: inbox }, ...(opts.correlationId ? { correlationId: opts.correlationId } : {}) });
    if (ack.duplicate) {
      // Stored before: the first delivery's answer went elsewhere. Report what the run says now.
      const r = await getRunRecord(bus, cmd.runId);
      return { commandId: cmd.commandId, runId: cmd.runId, ok: true, duplicate: true, ...(r ? { status: r.record.status } : {}) };
    }
    const timer = setTimeout(() => sub.unsubscribe(), timeout);
    try {
      for await (const m of sub) {
        const d = decode(CommandOutcome, m.data);
        return d.ok ? d.value : null;
      }
      return null;
    } finally {
      clearTimeout(timer);
    }
  } finally {
    sub.unsubscribe();
  }
}

/** Whether a command for this run is stored (so a job whose record does not exist yet is queued). */
export async function hasStoredCommand(bus: Bus, runId: string): Promise<boolean> {
  if (!isToken(runId)) return false;
  const m = await bus.jsm.streams.getMessage(bus.names.streams.cmd, { last_by_subj: bus.names.subjects.cmd(runId) });
  return m !== null;
}

/**
 * Seed 000's view of a job: from its record, or `queued` while only its create command exists.
 * The record is read first and again after the stream, so a job the core picks up in between is
 * never reported missing.
 */
export async function getJobView(bus: Bus, jobId: string): Promise<JobView | null> {
  const first = await getRunRecord(bus, jobId);
  if (first) return toJobView(first.record);
  if (await hasStoredCommand(bus, jobId)) {
    const again = await getRunRecord(bus, jobId);
    return again ? toJobView(again.record) : queuedJobView(jobId);
  }
  return null;
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

export interface SubmitJobOptions {
  packet: TaskPacket;
  mode: "mock" | "live";
  projectId?: string;
  idempotencyKey?: string;
  actor: string;
  correlationId?: string;
}

/** Submits a validated Task Packet as a run of the `job` definition; durable when it resolves. */
export async function submitJob(bus: Bus, opts: SubmitJobOptions): Promise<string> {
  const jobId = newRunId(opts.idempotencyKey);
  const spec = jobRunSpec(opts.packet);
  await sendCommand(
    bus,
    {
      type: "run.create",
      commandId: `create:${jobId}`,
      runId: jobId,
      issuedAt: Date.now(),
      actor: opts.actor,
      projectId: opts.projectId ?? DEFAULT_PROJECT,
      definition: spec.definition,
      title: spec.title,
      input: spec.input,
      steps: spec.steps,
      limits: spec.limits,
      autoStart: true,
      mode: opts.mode,
    },
    opts.correlationId ? { correlationId: opts.correlationId } : {},
  );
  return jobId;
}

/** Asks the core to cancel a job (idempotent: cancelling a finished job changes nothing). */
export async function cancelJob(bus: Bus, jobId: string, opts: { actor: string; reason?: string; correlationId?: string }): Promise<void> {
  await sendCommand(
    bus,
    {
      type: "run.signal",
      commandId: `cancel:${jobId}:${randomUUID()}`,
      runId: jobId,
      issuedAt: Date.now(),
      actor: opts.actor,
      signal: { name: "cancel" },
      ...(opts.reason === undefined ? {} : { reason: opts.reason }),
    },
    opts.correlationId ? { correlationId: opts.correlationId } : {},
  );
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
