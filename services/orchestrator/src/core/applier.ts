import { headers as natsHeaders } from "@nats-io/transport-node";
import { decode, isCasConflict, lastTransition, publishToStream, type Bus } from "@orch/bus";
import { Header, ProjectRecord, encodeTransition, timersHeader, type Command, type CommandOutcomeInput as CommandOutcome } from "@orch/contracts";
import type { CiDefaults, CompiledDefinition, PrDefaults, RunProject, WorkerDefaults } from "@orch/engine";
import { projectForge, type ForgeHosts } from "../forges.js";
import type { Logger } from "@orch/logging";
import { DefinitionNotFoundError, type DefinitionStore } from "@orch/runs";
import { decide, restoredState, storedState, type Clock, type DefaultBudgets, type RunAsStored } from "./decide.js";

/** A run as this process holds it: as stored, and where (the stream sequence its next write names). */
interface Entry {
  run: RunAsStored;
  streamSeq: number;
  /** Size of the stored transition: what the cache's memory budget counts. */
  bytes: number;
}

export interface ApplierOptions {
  bus: Bus;
  logger: Logger;
  definitions: DefinitionStore;
  defaultBudgets?: DefaultBudgets;
  /** What runs' CI policies take for what their definitions leave out (recorded with each run at its creation). */
  ciDefaults?: CiDefaults;
  /** Likewise the task worker settings, for runs whose definition has a worker policy (seed 001's task.queue). */
  workerDefaults?: WorkerDefaults;
  /** The pull request settings runs get at their creation (poll interval, public URL). */
  prDefaults?: PrDefaults;
  /** Enterprise and self-managed forge hosts, for projects written before forges were (their forge is derived at a run's creation). */
  forgeHosts?: ForgeHosts;
  /** Runs kept in memory; the runs stream stays the system of record. */
  cacheSize: number;
  /** The most stored bytes of runs kept in memory (runs are evicted oldest-used first). */
  cacheBytes?: number;
  clock?: () => Clock;
}

const CAS_RETRIES = 5;

/** A stored run the core cannot read back (written by a version it does not know). */
export class UnreadableRunError extends Error {
  override readonly name = "UnreadableRunError";
  readonly code = "UNREADABLE_RUN";
}

/**
 * Applies commands to runs: load (cache, else the run's last transition) → decide (pure) → write the
 * transition with compare-and-set on the run's subject → answer → return (the consumer then acks).
 * Commands of one run arrive one at a time (the consumer serialises by run id).
 *
 * One write per command: the transition is at once the run's new state and every effect of the
 * command (its events, the work it dispatches, the timers it sets), so there is no outbox to
 * publish after it and nothing to publish again after a crash. Crash anywhere and the command is
 * redelivered: if its transition was stored, the run's recent command ids hold it and it changes
 * nothing, however late it comes back; if not, it is applied then. A write that loses the
 * compare-and-set (another process wrote the run) reads the run again and decides again.
 */
export class CommandApplier {
  readonly #bus: Bus;
  readonly #log: Logger;
  readonly #cache = new Map<string, Entry>();
  readonly #cacheSize: number;
  readonly #cacheBytes: number;
  #cachedBytes = 0;
  readonly #clock: () => Clock;
  readonly #defs: DefinitionStore;
  readonly #budgets: DefaultBudgets;
  readonly #ciDefaults: CiDefaults;
  readonly #workerDefaults: WorkerDefaults;
  readonly #prDefaults: PrDefaults;
  readonly #forgeHosts: ForgeHosts;

  constructor(opts: ApplierOptions) {
    this.#prDefaults = opts.prDefaults ?? {};
    this.#forgeHosts = opts.forgeHosts ?? {};
    this.#budgets = opts.defaultBudgets ?? [];
    this.#ciDefaults = opts.ciDefaults ?? {};
    this.#workerDefaults = opts.workerDefaults ?? {};
    this.#bus = opts.bus;
    this.#defs = opts.definitions;
    this.#log = opts.logger;
    this.#cacheSize = opts.cacheSize;
    this.#cacheBytes = opts.cacheBytes ?? Number.POSITIVE_INFINITY;
    this.#clock = opts.clock ?? (() => ({ now: Date.now(), rand: Math.random() }));
  }

  /** The definition a command runs against (or why there is none). */
  async #definition(prev: RunAsStored | null, cmd: Command): Promise<CompiledDefinition | { missing: string }> {
    const ref = prev ? prev.run.definition : cmd.type === "run.create" ? cmd.definition : undefined;
    if (!ref || ref.version === 0) return { missing: "the run has no definition" };
    try {
      return await this.#defs.get(ref);
    } catch (err) {
      if (err instanceof DefinitionNotFoundError) return { missing: err.message };
      throw err;
    }
  }

  /**
   * What a new run gets of its project: its forge and base branch, read from the project's record
   * (none: a project without a record). Read once, at the creation: a run keeps what it started with.
   */
  async #project(cmd: Command, prev: RunAsStored | null): Promise<RunProject | undefined> {
    if (cmd.type !== "run.create" || prev) return undefined;
    const e = await (await this.#bus.kv(this.#bus.names.buckets.projects)).get(cmd.projectId);
    if (!e || e.operation !== "PUT" || e.length === 0) return undefined;
    const d = decode(ProjectRecord, e.value);
    if (!d.ok) {
      this.#log.warn({ projectId: cmd.projectId, error: d.error }, "the project's record is unreadable: the run gets no forge");
      return undefined;
    }
    const forge = projectForge(d.value, this.#forgeHosts);
    return {
      ...(forge ? { forge } : {}),
      ...(d.value.baseBranch ? { baseBranch: d.value.baseBranch } : {}),
      ...(d.value.merge ? { merge: d.value.merge } : {}),
    };
  }

  /** Answers the command's sender (built from typed data here; the sender validates what it reads). */
  #reply(replyTo: string | undefined, outcome: CommandOutcome): void {
    if (!replyTo) return;
    try {
      this.#bus.nc.publish(replyTo, JSON.stringify(outcome));
    } catch (err) {
      this.#log.warn({ err, replyTo }, "could not answer a command");
    }
  }

  async apply(cmd: Command, correlationId?: string, replyTo?: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const entry = await this.#load(cmd.runId, attempt > 0);
      const prev = entry?.run ?? null;
      const cd = await this.#definition(prev, cmd);
      const project = await this.#project(cmd, prev);
      const d = decide(prev, cmd, cd, this.#clock(), this.#budgets, this.#ciDefaults, this.#workerDefaults, {
        ...(project ? { project } : {}),
        prDefaults: this.#prDefaults,
      });
      if (d.kind === "noop") {
        if (d.outcome.ok) this.#log.debug({ runId: cmd.runId, command: cmd.type, reason: d.reason }, "command changes nothing");
        else this.#log.info({ runId: cmd.runId, command: cmd.type, error: d.outcome.error, correlationId }, "command refused");
        this.#reply(replyTo, d.outcome);
        return;
      }
      const t = d.transition;
      const data = encodeTransition({ ...t, state: storedState(t.state) });
      let streamSeq: number;
      try {
        const h = natsHeaders();
        if (correlationId) h.set(Header.CorrelationId, correlationId);
        h.set(Header.Timers, timersHeader(t.head));
        const ack = await publishToStream(this.#bus, this.#bus.names.subjects.run(t.head.projectId, t.head.runId), data, {
          expectLastSubjectSequence: entry?.streamSeq ?? 0,
          headers: h,
        });
        streamSeq = ack.seq;
      } catch (err) {
        // Someone else wrote the run since we read it: drop our copy, read again, decide again.
        this.#forget(cmd.runId);
        if (isCasConflict(err) && attempt < CAS_RETRIES) continue;
        throw err;
      }
      this.#remember(cmd.runId, { run: { head: t.head, run: t.head.run, state: t.state }, streamSeq, bytes: data.length });
      // Where it was written: a reader that must have seen it (a projection) waits for that sequence.
      this.#reply(replyTo, { ...d.outcome, streamSeq });
      const run = t.head.run;
      const fields = { runId: cmd.runId, definition: run.definition.id, command: cmd.type, status: run.status, seq: run.seq, correlationId };
      if (run.status !== prev?.run.status) this.#log.info(run.error === undefined ? fields : { ...fields, error: run.error }, `run ${run.status}`);
      else this.#log.debug(fields, "applied");
      return;
    }
  }

  /** Drops what this process remembers of the runs of a partition (its owner may have changed). */
  forgetPartition(partition: number): void {
    for (const runId of [...this.#cache.keys()]) {
      if (this.#bus.names.subjects.partitionOf(runId) === partition) this.#forget(runId);
    }
  }

  /** The run from memory, else its last transition (from the stream leader after a lost write). */
  async #load(runId: string, fromLeader: boolean): Promise<Entry | null> {
    const hit = this.#cache.get(runId);
    if (hit) {
      this.#cache.delete(runId);
      this.#cache.set(runId, hit);
      return hit;
    }
    const stored = await lastTransition(this.#bus, runId, { leader: fromLeader });
    if (!stored) return null;
    const head = stored.transition.head();
    const state = restoredState(stored.transition.state());
    if (!head.run || !state)
      throw new UnreadableRunError(`run ${runId}: its last transition (stream sequence ${stored.streamSeq}) has no state this core can read`);
    const entry: Entry = { run: { head, run: head.run, state }, streamSeq: stored.streamSeq, bytes: stored.bytes };
    this.#remember(runId, entry);
    return entry;
  }

  /** Runs in memory and their stored size (for tests and metrics). */
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
   * Keeps a run in memory, most recently used last, then evicts from the least recently used end
   * until both the count and the byte budget hold. A run larger than the whole budget is not kept.
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
}
