import { JetStreamApiCodes, JetStreamApiError, JetStreamError } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";
import { TransitionDecodeError } from "@orch/contracts";

const TRANSIENT = [
  errors.TimeoutError,
  errors.NoRespondersError,
  errors.RequestError,
  errors.ClosedConnectionError,
  errors.DrainingConnectionError,
  errors.ConnectionError,
  JetStreamError,
  JetStreamApiError,
] as const;

/**
 * Whether an error means "NATS (or JetStream) could not do it right now": a timeout, no
 * responders, a closed connection, a stream that is not there. Callers answer "unavailable, try
 * again" (HTTP 503, gRPC UNAVAILABLE) instead of a 500.
 */
export function isBusUnavailable(err: unknown): boolean {
  if (err instanceof TransitionDecodeError) return false;
  return TRANSIENT.some((C) => err instanceof C) || (err instanceof Error && err.cause !== undefined && isBusUnavailable(err.cause));
}

/**
 * Whether an error means "nobody answered this request": it timed out, or nobody subscribes to its
 * subject. By its class, never its message.
 */
export function isNoAnswer(err: unknown): boolean {
  if (err instanceof errors.TimeoutError || err instanceof errors.NoRespondersError) return true;
  return err instanceof Error && err.cause !== undefined && isNoAnswer(err.cause);
}

/**
 * Whether a compare-and-set write lost: the subject (or KV key) is not at the sequence it named, or
 * a KV `create` found the key there. By JetStream's error code, never its message.
 */
export function isCasConflict(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/**
 * Retries `fn` while it fails with a transient bus error (see isBusUnavailable), with capped
 * exponential backoff, until `deadlineMs` has passed or `signal` aborts. For idempotent operations
 * only: a publish with a message id, a KV read.
 */
export async function retryWhileUnavailable<T>(fn: () => Promise<T>, opts: { deadlineMs?: number; signal?: AbortSignal } = {}): Promise<T> {
  const deadline = Date.now() + (opts.deadlineMs ?? 30_000);
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isBusUnavailable(err) || Date.now() > deadline || opts.signal?.aborted) throw err;
      await new Promise((r) => setTimeout(r, Math.min(2_000, 50 * 2 ** attempt)));
    }
  }
}
