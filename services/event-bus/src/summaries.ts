import { FINAL_RUN_STATUSES, type RunSummary } from "@orch/contracts";

/**
 * Coalesces the writes of run summaries to the `run_index` bucket: a run's summary is written when
 * the run finishes, or once it has stayed unwritten for `holdMs` (a long run: at most one write per
 * hold), never once per transition. Whoever asked for a summary to be stored is answered when a
 * summary of that run at least as new has been written; the transitions that brought them are
 * acknowledged then, so a restart (the bucket loaded back, the unacknowledged transitions delivered
 * again) loses nothing. A job that runs in milliseconds costs one write.
 */
export class SummaryWriter {
  readonly #pending = new Map<string, { summary: RunSummary; since: number; waiters: { resolve: () => void; reject: (e: unknown) => void }[] }>();
  readonly #timer: NodeJS.Timeout;
  #flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly write: (s: RunSummary) => Promise<void>,
    private readonly holdMs = 5_000,
    tickMs = 50,
    private readonly now: () => number = Date.now,
  ) {
    this.#timer = setInterval(() => void this.flush(false), tickMs);
    this.#timer.unref();
  }

  /** Resolves once `s` (or a newer summary of its run) is stored. */
  store(s: RunSummary): Promise<void> {
    return new Promise((resolve, reject) => {
      const p = this.#pending.get(s.runId);
      if (p) {
        p.summary = s;
        p.waiters.push({ resolve, reject });
      } else {
        this.#pending.set(s.runId, { summary: s, since: this.now(), waiters: [{ resolve, reject }] });
      }
      if (FINAL_RUN_STATUSES.has(s.status)) void this.flush(false);
    });
  }

  /** Writes what is due (finished runs, those held long enough), or everything with `all`. */
  flush(all: boolean): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      const cutoff = this.now() - this.holdMs;
      const due = [...this.#pending.values()].filter((p) => all || FINAL_RUN_STATUSES.has(p.summary.status) || p.since <= cutoff);
      for (const p of due) this.#pending.delete(p.summary.runId);
      await Promise.all(
        due.map(async (p) => {
          try {
            await this.write(p.summary);
            for (const w of p.waiters) w.resolve();
          } catch (err) {
            for (const w of p.waiters) w.reject(err);
          }
        }),
      );
    });
    return this.#flushing;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush(true);
  }
}
