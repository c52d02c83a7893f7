import { decode, type Bus } from "@orch/bus";
import { JOBS_QUERY, JobsResult, QUEUE_STATS_QUERY, QueryError, QueueStatsResult, type QueueCounts, type QueueJob, type QueueJobStatus } from "@orch/contracts";
import type { z } from "zod";

/**
 * The work queues, as the event-bus's jobs projection answers them (seed 004's `/queues`, /api/v1's
 * queue view): each dispatched attempt is a job on its role's queue.
 */

export class QueueQueryError extends Error {
  override readonly name = "QueueQueryError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function ask<S extends z.ZodType>(bus: Bus, query: string, body: unknown, schema: S): Promise<z.output<S>> {
  const m = await bus.nc.request(bus.names.subjects.query(query), JSON.stringify(body), { timeout: 5_000 });
  const ok = decode(schema, m.data);
  if (ok.ok) return ok.value;
  const err = decode(QueryError, m.data);
  if (err.ok) throw new QueueQueryError(err.value.error.code, err.value.error.message);
  throw new Error(`unreadable ${query} answer: ${ok.error}`);
}

/** Counts per queue. Every queue that has work now or had some recently is listed. */
export async function queueStats(bus: Bus): Promise<Record<string, QueueCounts>> {
  return (await ask(bus, QUEUE_STATS_QUERY, {}, QueueStatsResult)).queues;
}

/** The jobs with a status (all four when omitted): live ones in dispatch order, then ended ones newest first. */
export async function listJobs(bus: Bus, status?: QueueJobStatus): Promise<QueueJob[]> {
  return (await ask(bus, JOBS_QUERY, status ? { status } : {}, JobsResult)).jobs;
}
