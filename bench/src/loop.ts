import { CpuMeter, type ProcRef } from "./proc.js";
import { percentile } from "./stats.js";

/** How one workflow ended: `ok`, or why not (a status other than succeeded, a timeout). */
export type Outcome = { ok: true } | { ok: false; reason: string };

/** What every suite offers the driver: start one workflow, and learn when it has finished. */
export interface Target {
  /** Starts one workflow and resolves once it has finished (one way or another). */
  run(): Promise<Outcome>;
  /** Processes whose CPU the measurement accounts, by name (`{ tree: pid }`: with all its descendants). */
  pids(): Record<string, ProcRef | undefined>;
}

/**
 * Pairs finish notifications (from one subscription for all workflows) with the workflows waiting
 * for them. A notification may arrive before its waiter exists (the job finished before CreateJob's
 * answer came back): it is kept until the waiter asks for it.
 */
export class Completions<T> {
  readonly #waiting = new Map<string, { resolve: (v: T) => void; timer: NodeJS.Timeout }>();
  readonly #early = new Map<string, T>();

  wait(id: string, timeoutMs: number, onTimeout: T): Promise<T> {
    const early = this.#early.get(id);
    if (early !== undefined) {
      this.#early.delete(id);
      return Promise.resolve(early);
    }
    return new Promise<T>((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        resolve(onTimeout);
      }, timeoutMs);
      this.#waiting.set(id, { resolve, timer });
    });
  }

  settle(id: string, value: T): void {
    const w = this.#waiting.get(id);
    if (!w) {
      // Bounded: only a workflow whose submit is still in flight lands here; the cap guards
      // against a foreign publisher on the same subjects.
      if (this.#early.size < 100_000) this.#early.set(id, value);
      return;
    }
    this.#waiting.delete(id);
    clearTimeout(w.timer);
    w.resolve(value);
  }

  /** Forgets early notifications nobody claimed (between measurements). */
  reset(): void {
    this.#early.clear();
  }

  get pending(): number {
    return this.#waiting.size;
  }
}

export interface MeasureOptions {
  inFlight: number;
  warmupMs: number;
  durationMs: number;
  /** A workflow not finished after this long counts as failed. */
  timeoutMs?: number;
  /** Called when the measured window opens and closes (to start and stop a profiler). */
  onWindow?: (edge: "start" | "end") => void;
}

export interface Measurement {
  inFlight: number;
  durationMs: number;
  completed: number;
  failed: number;
  /** Completions per second inside the measured window. */
  wfPerSec: number;
  /** Workflow latency (start → finished seen by the driver), ms, of those finished in the window. */
  p50Ms: number | null;
  p99Ms: number | null;
  /** % of one core per process over the window. */
  cpu: Record<string, number>;
  failures: string[];
}

/**
 * A closed loop: `inFlight` workflows outstanding at every moment (each slot starts a new one as soon
 * as its previous one finished). A warm-up lets JITs and connection pools settle; only workflows
 * finishing inside the window count. After the window the slots stop starting new workflows and the
 * outstanding ones are drained, so nothing leaks into the next measurement.
 */
export async function measure(target: Target, opts: MeasureOptions): Promise<Measurement> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const meter = new CpuMeter(() => target.pids());
  const t0 = performance.now();
  const start = t0 + opts.warmupMs;
  const end = start + opts.durationMs;
  const latencies: number[] = [];
  const failures: string[] = [];
  let completed = 0;
  let failed = 0;
  let meterStarted = false;
  let meterResult: Record<string, number> = {};
  const meterBegin = setTimeout(
    () => {
      meter.begin();
      meterStarted = true;
      opts.onWindow?.("start");
    },
    Math.max(0, start - performance.now()),
  );
  const meterEnd = setTimeout(
    () => {
      if (meterStarted) meterResult = meter.end();
      opts.onWindow?.("end");
    },
    Math.max(0, end - performance.now()),
  );

  const slot = async () => {
    while (performance.now() < end) {
      const s = performance.now();
      let outcome: Outcome;
      try {
        outcome = await withTimeout(target.run(), timeoutMs);
      } catch (err) {
        outcome = { ok: false, reason: (err as Error).message };
      }
      const f = performance.now();
      if (f < start || f > end) continue;
      if (outcome.ok) {
        completed++;
        latencies.push(f - s);
      } else {
        failed++;
        if (failures.length < 10) failures.push(outcome.reason);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.inFlight }, slot));
  clearTimeout(meterBegin);
  clearTimeout(meterEnd);
  if (meterStarted && Object.keys(meterResult).length === 0) meterResult = meter.end();
  return {
    inFlight: opts.inFlight,
    durationMs: opts.durationMs,
    completed,
    failed,
    wfPerSec: completed / (opts.durationMs / 1000),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    cpu: meterResult,
    failures,
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no result after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(t);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
