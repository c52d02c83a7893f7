import type { Bus } from "@orch/bus";
import { kvStreamOf } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import type { RunIndex } from "./run-index.js";

export interface RetentionOptions {
  /** How long a finished run is kept after it ends. */
  retentionMs: number;
  /** How often finished runs are looked for (default: a quarter of the retention, at most an hour). */
  everyMs?: number;
  now?: () => number;
  /** Told of each run purged (after the index forgot it): other projections forget it too. */
  onPurged?: (runId: string) => void;
}

/**
 * Purges finished runs once their retention has passed: the run's transitions (its history, its
 * state), then its summary in the `run_index` bucket, then its place in the index. Each step is
 * idempotent and the index is the last to forget the run, so a sweep cut short (a crash, a lost
 * connection) is finished by the next one. A run that has not finished is never purged.
 */
export class RetentionSweeper {
  readonly #retentionMs: number;
  readonly #everyMs: number;
  readonly #now: () => number;
  readonly #onPurged: ((runId: string) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<number> | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly index: RunIndex,
    private readonly log: Logger,
    opts: RetentionOptions,
  ) {
    this.#retentionMs = opts.retentionMs;
    this.#everyMs = opts.everyMs ?? Math.min(3_600_000, Math.max(1_000, Math.floor(opts.retentionMs / 4)));
    this.#now = opts.now ?? Date.now;
    this.#onPurged = opts.onPurged;
  }

  /** Sweeps now, then every `everyMs`. */
  start(): void {
    const tick = () => {
      this.sweep().catch((err: unknown) => this.log.warn({ err }, "retention sweep failed; trying again at the next"));
    };
    tick();
    this.#timer = setInterval(tick, this.#everyMs);
    this.#timer.unref();
  }

  /** Purges every finished run past its retention; resolves with how many were purged. */
  sweep(): Promise<number> {
    this.#sweeping ??= this.#sweep().finally(() => (this.#sweeping = undefined));
    return this.#sweeping;
  }

  async #sweep(): Promise<number> {
    const cutoff = this.#now() - this.#retentionMs;
    const due = [...this.index.finishedBefore(cutoff)];
    if (due.length === 0) return 0;
    const t0 = Date.now();
    const runs = this.bus.names.streams.runs;
    const bucket = this.bus.names.buckets.runIndex;
    let purged = 0;
    for (const s of due) {
      await this.bus.jsm.streams.purge(runs, { filter: this.bus.names.subjects.run(s.projectId, s.runId) });
      await this.bus.jsm.streams.purge(kvStreamOf(bucket), { filter: `$KV.${bucket}.${s.runId}` });
      if (this.index.remove(s.runId)) purged++;
      this.#onPurged?.(s.runId);
    }
    this.log.info({ purged, retentionDays: this.#retentionMs / 86_400_000, ms: Date.now() - t0 }, "finished runs past their retention purged");
    return purged;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#sweeping?.catch(() => undefined);
  }
}
