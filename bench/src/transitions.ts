/**
 * Reading ours through its public wire format: every run's transitions are published on
 * `<prefix>.run.<projectId>.<runId>`, each message being JSON lines, of which the harness reads the
 * first two: the head (`runId`, `run.status`) and the events appended (`type`, `at`, `data`).
 */

/** The head of a run transition, as far as the harness reads it. */
export interface TransitionHeadPayload {
  runId?: unknown;
  run?: { status?: unknown } | null;
}

export interface EventPayload {
  type?: unknown;
  at?: unknown;
  data?: { status?: unknown; stepId?: unknown; i?: unknown } | null;
}

/** The subject every transition of every run is published on (a core NATS subscription's filter). */
export const allTransitions = (prefix = "orch") => `${prefix}.run.>`;

export const FINAL_STATUSES: ReadonlySet<unknown> = new Set(["completed", "failed", "cancelled"]);

const dec = new TextDecoder();

/** The head, and (with `withEvents`) the events, of a transition message. */
export function transitionParts(data: Uint8Array, withEvents: boolean): { head: TransitionHeadPayload; events: EventPayload[] } {
  const nl = data.indexOf(10);
  const head = JSON.parse(dec.decode(nl < 0 ? data : data.subarray(0, nl))) as TransitionHeadPayload;
  if (!withEvents || nl < 0) return { head, events: [] };
  const nl2 = data.indexOf(10, nl + 1);
  const events = JSON.parse(dec.decode(data.subarray(nl + 1, nl2 < 0 ? data.length : nl2))) as EventPayload[];
  return { head, events };
}
