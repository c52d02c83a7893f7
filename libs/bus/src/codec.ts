import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import type { PubAck } from "@nats-io/jetstream";
import { Header } from "@orch/contracts";
import type { z } from "zod";
import type { Bus } from "./connect.js";
import { publishToStream } from "./replies.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A message that failed its schema on the way out: a bug in the sender, never sent. */
export class EncodeError extends Error {
  override readonly name = "EncodeError";
  readonly code = "ENCODE_FAILED";
  constructor(
    readonly subject: string,
    readonly issues: unknown,
  ) {
    super(`refusing to publish an invalid message on ${subject}: ${JSON.stringify(issues)}`);
  }
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: "undecodable" | "invalid"; error: string };

export function encode<S extends z.ZodType>(schema: S, value: z.input<S>, subject = "(local)"): Uint8Array {
  const r = schema.safeParse(value);
  if (!r.success) throw new EncodeError(subject, r.error.issues);
  return enc.encode(JSON.stringify(r.data));
}

export function decode<S extends z.ZodType>(schema: S, data: Uint8Array): Decoded<z.output<S>> {
  let raw: unknown;
  try {
    raw = JSON.parse(dec.decode(data));
  } catch (err) {
    return { ok: false, reason: "undecodable", error: `not JSON: ${(err as Error).message}` };
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 5).map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    return { ok: false, reason: "invalid", error: issues.join("; ") };
  }
  return { ok: true, value: r.data };
}

export interface PublishOptions {
  /** JetStream de-duplication id (`Nats-Msg-Id`): a republish within the window is a no-op. */
  msgId: string;
  correlationId?: string;
  /** W3C trace context, carried as-is. */
  traceparent?: string;
  tracestate?: string;
  /** Stored only if the subject's last message is this one (0: none): a compare-and-set. */
  expect?: { lastSubjectSequence: number };
  timeoutMs?: number;
  /** Further headers (a reply subject, say). */
  headers?: Record<string, string>;
}

export function buildHeaders(opts: Omit<PublishOptions, "expect" | "timeoutMs" | "msgId">, schemaName?: string): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(opts.headers ?? {})) h.set(k, v);
  if (opts.correlationId) h.set(Header.CorrelationId, opts.correlationId);
  if (opts.traceparent) h.set(Header.TraceParent, opts.traceparent);
  if (opts.tracestate) h.set(Header.TraceState, opts.tracestate);
  if (schemaName) h.set(Header.Schema, schemaName);
  return h;
}

/**
 * Publishes one validated message to JetStream and waits for the stream's acknowledgement.
 * Every message carries a `Nats-Msg-Id`, so a retry after a lost ack is never stored twice.
 */
export async function publish<S extends z.ZodType>(
  bus: Bus,
  subject: string,
  schema: S,
  value: z.input<S>,
  opts: PublishOptions,
  schemaName?: string,
): Promise<PubAck> {
  const data = encode(schema, value, subject);
  return publishToStream(bus, subject, data, {
    msgId: opts.msgId,
    headers: buildHeaders(opts, schemaName),
    ...(opts.expect?.lastSubjectSequence !== undefined ? { expectLastSubjectSequence: opts.expect.lastSubjectSequence } : {}),
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
  });
}

export function headersToRecord(h: MsgHdrs | undefined): Record<string, string> | undefined {
  if (!h) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of h) out[k] = v.join(",");
  return out;
}
