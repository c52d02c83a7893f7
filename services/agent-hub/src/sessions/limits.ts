/**
 * Concurrency limits per executor and per model provider (`ORCH_EXECUTOR_CONCURRENCY`,
 * `ORCH_PROVIDER_CONCURRENCY`). A session waits for both before it starts; meanwhile its work
 * message stays unacked (and marked in progress), and the work consumer's max-ack-pending keeps the
 * rest of a burst in the stream: runs wait instead of overloading the machine.
 */

export class Semaphore {
  #free: number;
  readonly #waiters: (() => void)[] = [];

  constructor(readonly size: number) {
    this.#free = size;
  }

  get available(): number {
    return this.#free;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  /** Resolves with a release function once a slot is free; rejects if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    const release = once(() => {
      const next = this.#waiters.shift();
      if (next) next();
      else this.#free++;
    });
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve(release);
      };
      const onAbort = () => {
        const i = this.#waiters.indexOf(grant);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(signal?.reason ?? new Error("aborted"));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(grant);
    });
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

export class Limits {
  readonly #executors = new Map<string, Semaphore>();
  readonly #providers = new Map<string, Semaphore>();

  constructor(
    private readonly executorLimits: Readonly<Record<string, number>>,
    private readonly providerLimits: Readonly<Record<string, number>>,
    /** For names without a limit of their own. */
    private readonly fallback: number,
  ) {}

  #get(map: Map<string, Semaphore>, limits: Readonly<Record<string, number>>, name: string): Semaphore {
    let s = map.get(name);
    if (!s) map.set(name, (s = new Semaphore(limits[name] ?? this.fallback)));
    return s;
  }

  /** Waits for a slot of the executor, then of its provider; resolves with one release for both. */
  async acquire(executor: string, provider: string, signal?: AbortSignal): Promise<() => void> {
    const releaseExecutor = await this.#get(this.#executors, this.executorLimits, executor).acquire(signal);
    try {
      const releaseProvider = await this.#get(this.#providers, this.providerLimits, provider).acquire(signal);
      return () => {
        releaseProvider();
        releaseExecutor();
      };
    } catch (err) {
      releaseExecutor();
      throw err;
    }
  }

  /** What is in use and waiting, per executor and provider (for logs and metrics). */
  snapshot(): { executors: Record<string, { free: number; waiting: number }>; providers: Record<string, { free: number; waiting: number }> } {
    const view = (m: Map<string, Semaphore>) => Object.fromEntries([...m].map(([k, s]) => [k, { free: s.available, waiting: s.waiting }]));
    return { executors: view(this.#executors), providers: view(this.#providers) };
  }
}
