/**
 * One async mutex per key, in this process. The workspace manager keys it by repository: git
 * takes lock files (`index.lock`, `<ref>.lock`, `packed-refs.lock`) and fails instead of waiting,
 * so concurrent sessions of one repository would otherwise fail each other's ref and worktree
 * writes. Not re-entrant: a holder that asks for the same key again waits for itself forever.
 */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      // The last holder leaves no entry behind, so keys do not accumulate.
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }

  /** Whether anyone holds or waits for `key` (for tests and diagnostics). */
  busy(key: string): boolean {
    return this.#tails.has(key);
  }
}
