import { encode, getRunRecord, publish, type Bus } from "@orch/bus";
import { CommandOutcome, RunEvent, TimerRequest, WorkItem, type Command, type Effect, type RunRecord } from "@orch/contracts";
import type { CompiledDefinition } from "@orch/engine";
import type { Logger } from "@orch/logging";
import { DefinitionNotFoundError, type DefinitionStore } from "@orch/runs";
import { step, type Clock, type DefaultBudgets } from "./step.js";

interface Entry {
  record: RunRecord;
  revision: number;
  /** Whether this process has published the record's outbox (false right after a load). */
  published: boolean;
  /** Size of the record as stored (JSON bytes): what the cache's memory budget counts. */
  bytes: number;
}

export interface EngineOptions {
  bus: Bus;
  logger: Logger;
  definitions: DefinitionStore;
  defaultBudgets?: DefaultBudgets;
  /** Records kept in memory; the KV bucket stays the system of record. */
  cacheSize: number;
  /** The most stored bytes of records kept in memory (records are evicted oldest-used first). */
  cacheBytes?: number;
  clock?: () => Clock;
}

const CAS_RETRIES = 5;

const isCasConflict = (err: unknown) => /wrong last sequence|key exists/i.test((err as Error)?.message ?? "");

/**
 * Applies commands to runs: load (cache, else KV) → pure step → persist with compare-and-set →
 * publish the outbox → return (the consumer then acks). Commands of one run arrive one at a time
 * (the consumer serialises by run id). Crash anywhere and the command is redelivered: a record
 * whose outbox this process has not published is republished first (every effect has a
 * de-duplication id), and an already applied command id is a no-op.
 */
export class Engine {
  readonly #bus: Bus;
  readonly #log: Logger;
  readonly #cache = new Map<string, Entry>();
  readonly #cacheSize: number;
  readonly #cacheBytes: number;
  #cachedBytes = 0;
  readonly #clock: () => Clock;
  readonly #defs: DefinitionStore;
  readonly #budgets: DefaultBudgets;

  constructor(opts: EngineOptions) {
    this.#budgets = opts.defaultBudgets ?? [];
    this.#bus = opts.bus;
    this.#defs = opts.definitions;
    this.#log = opts.logger;
    this.#cacheSize = opts.cacheSize;
    this.#cacheBytes = opts.cacheBytes ?? Number.POSITIVE_INFINITY;
    this.#clock = opts.clock ?? (() => ({ now: Date.now(), rand: Math.random() }));
  }

  /** The definition a command runs against (or why there is none). */
  async #definition(prev: RunRecord | null, cmd: Command): Promise<CompiledDefinition | { missing: string }> {
    const ref = prev ? { id: prev.definition.id, version: prev.definition.version } : cmd.type === "run.create" ? cmd.definition : undefined;
    if (!ref || ref.version === 0) return { missing: "the run has no definition" };
    try {
      return await this.#defs.get(ref);
    } catch (err) {
      if (err instanceof DefinitionNotFoundError) return { missing: err.message };
      throw err;
    }
  }

  #reply(replyTo: string | undefined, outcome: CommandOutcome): void {
    if (!replyTo) return;
    try {
      this.#bus.nc.publish(replyTo, encode(CommandOutcome, outcome));
    } catch (err) {
      this.#log.warn({ err, replyTo }, "could not answer a command");
    }
  }

  async apply(cmd: Command, correlationId?: string, replyTo?: string): Promise<void> {
    const kv = await this.#bus.kv(this.#bus.names.buckets.runs);
    for (let attempt = 0; ; attempt++) {
      const entry = await this.#load(cmd.runId);
      if (entry && !entry.published) {
        await this.#publish(entry.record, correlationId);
        entry.published = true;
      }
      const cd = await this.#definition(entry?.record ?? null, cmd);
      const out = step(entry?.record ?? null, cmd, cd, this.#clock(), this.#budgets);
      if (out.kind === "noop") {
        if (out.outcome.ok) this.#log.debug({ runId: cmd.runId, command: cmd.type, reason: out.reason }, "command changes nothing");
        else this.#log.info({ runId: cmd.runId, command: cmd.type, error: out.outcome.error, correlationId }, "command refused");
        this.#reply(replyTo, out.outcome);
        return;
      }
      // The record is written only here and validated by every reader; its effects were built by
      // the kernel from typed data. Plain JSON keeps the hot path free of a 4 KiB schema walk.
      const data = new TextEncoder().encode(JSON.stringify(out.record));
      let revision: number;
      try {
        revision = entry ? await kv.update(cmd.runId, data, entry.revision) : await kv.create(cmd.runId, data);
      } catch (err) {
        // Someone else wrote the record since we read it: drop our copy, read again, re-decide.
        this.#forget(cmd.runId);
        if (isCasConflict(err) && attempt < CAS_RETRIES) continue;
        throw err;
      }
      const next: Entry = { record: out.record, revision, published: false, bytes: data.length };
      this.#remember(cmd.runId, next);
      await this.#publish(out.record, correlationId);
      next.published = true;
      this.#reply(replyTo, out.outcome);
      const fields = {
        runId: cmd.runId,
        definition: out.record.definition.id,
        command: cmd.type,
        status: out.record.status,
        seq: out.record.seq,
        correlationId,
      };
      if (out.record.status !== entry?.record.status) {
        this.#log.info(out.record.error === undefined ? fields : { ...fields, error: out.record.error }, `run ${out.record.status}`);
      } else {
        this.#log.debug(fields, "applied");
      }
      return;
    }
  }

  /** Drops what this process remembers of the runs of a partition (its owner may have changed). */
  forgetPartition(partition: number): void {
    for (const runId of [...this.#cache.keys()]) {
      if (this.#bus.names.subjects.partitionOf(runId) === partition) this.#forget(runId);
    }
  }

  async #load(runId: string): Promise<Entry | null> {
    const hit = this.#cache.get(runId);
    if (hit) {
      this.#cache.delete(runId);
      this.#cache.set(runId, hit);
      return hit;
    }
    const stored = await getRunRecord(this.#bus, runId);
    if (!stored) return null;
    const entry: Entry = { ...stored, published: false };
    this.#remember(runId, entry);
    return entry;
  }

  /** Records in memory and their stored size (for tests and metrics). */
  get cached(): { runs: number; bytes: number } {
    return { runs: this.#cache.size, bytes: this.#cachedBytes };
  }

  #forget(runId: string): void {
    const e = this.#cache.get(runId);
    if (!e) return;
    this.#cache.delete(runId);
    this.#cachedBytes -= e.bytes;
  }

  /**
   * Keeps a record in memory, most recently used last, then evicts from the least recently used end
   * until both the count and the byte budget hold. A record larger than the whole budget is not kept.
   */
  #remember(runId: string, entry: Entry): void {
    this.#forget(runId);
    if (this.#cacheSize === 0 || entry.bytes > this.#cacheBytes) return;
    this.#cache.set(runId, entry);
    this.#cachedBytes += entry.bytes;
    while (this.#cache.size > this.#cacheSize || this.#cachedBytes > this.#cacheBytes) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#forget(oldest);
    }
  }

  /** Publishes every effect of the record's latest transition, in order, each de-duplicated. */
  async #publish(record: RunRecord, correlationId?: string): Promise<void> {
    const bus = this.#bus;
    const s = bus.names.subjects;
    const opts = (msgId: string) => (correlationId ? { msgId, correlationId } : { msgId });
    // Issued in order on one connection, so events land in the stream in sequence order.
    const acks = record.outbox.map((e: Effect) => {
      switch (e.kind) {
        case "event":
          return publish(bus, s.evt(record.projectId, record.runId, e.event.type), RunEvent, e.event, opts(`evt:${record.runId}:${e.event.seq}`), "evt.v1");
        case "work":
          return publish(bus, s.work(e.queue), WorkItem, e.item, opts(`work:${e.item.attemptId}`), "work.v1");
        case "timer":
          return publish(bus, s.sched(e.request.op), TimerRequest, e.request, opts(`${e.request.op}:${e.request.timerId}`), "sched.v1");
      }
    });
    await Promise.all(acks);
  }
}
