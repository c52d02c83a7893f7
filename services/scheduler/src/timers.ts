/**
 * Armed timers in memory: a min-heap on due time with lazy deletion (a cancelled or re-set timer
 * stays in the heap until it surfaces, and is skipped then), and one Node timer for the earliest.
 */
export class TimerQueue<T> {
  readonly #heap: { dueAt: number; id: string; gen: number }[] = [];
  readonly #live = new Map<string, { dueAt: number; gen: number; value: T }>();
  #gen = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(
    private readonly onDue: (id: string, value: T) => void,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.#live.size;
  }

  has(id: string): boolean {
    return this.#live.has(id);
  }

  set(id: string, dueAt: number, value: T): void {
    const gen = ++this.#gen;
    this.#live.set(id, { dueAt, gen, value });
    this.#push({ dueAt, id, gen });
    this.#arm();
  }

  delete(id: string): boolean {
    const had = this.#live.delete(id);
    if (had) this.#arm();
    return had;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  #push(n: { dueAt: number; id: string; gen: number }) {
    const h = this.#heap;
    h.push(n);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.dueAt <= h[i]!.dueAt) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  #pop() {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.dueAt < h[m]!.dueAt) m = l;
        if (r < h.length && h[r]!.dueAt < h[m]!.dueAt) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }

  /** Drops heap entries that no longer stand for a live timer. */
  #peek() {
    for (;;) {
      const top = this.#heap[0];
      if (!top) return undefined;
      const live = this.#live.get(top.id);
      if (live && live.gen === top.gen) return top;
      this.#pop();
    }
  }

  #arm() {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const top = this.#peek();
    if (!top) return;
    // Node timers overflow past ~24.8 days: wake at least hourly and look again.
    const wait = Math.min(Math.max(0, top.dueAt - this.now()), 3_600_000);
    this.#timer = setTimeout(() => this.#fire(), wait);
  }

  #fire() {
    this.#timer = undefined;
    const now = this.now();
    for (let top = this.#peek(); top && top.dueAt <= now; top = this.#peek()) {
      this.#pop();
      const live = this.#live.get(top.id)!;
      this.#live.delete(top.id);
      this.onDue(top.id, live.value);
    }
    this.#arm();
  }
}
