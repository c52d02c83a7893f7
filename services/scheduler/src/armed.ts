import type { KV } from "@nats-io/kv";
import { encode } from "@orch/bus";
import { StoredTimer, type TimerOp } from "@orch/contracts";
import { TimerQueue } from "./timers.js";

/**
 * The timers the scheduler holds. A transition that sets a timer is not acknowledged until the
 * timer is safe: written to the `timers` bucket, or withdrawn (a later transition cancels it), or
 * fired. A timer is written only once it has stayed armed for `holdMs`: most are withdrawn sooner
 * (a job that ends well inside its wall clock, a step that answers inside its timeout), and those
 * cost no write at all. If the scheduler dies meanwhile, the unacknowledged transition comes back
 * and the timer is armed again.
 */

type SetOp = Extract<TimerOp, { op: "set" }>;

interface Held {
  timer: StoredTimer;
  /** Settles the transition that set it (so it can be acknowledged). */
  release: () => void;
  /** Fails it (this scheduler stopped being the active one: the transition is left to the next). */
  abandon: (err: Error) => void;
  durable: boolean;
}

/** This scheduler is no longer the active one: what it held is left to the one that is. */
export class NotActiveError extends Error {
  override readonly name = "NotActiveError";
  readonly code = "SCHEDULER_NOT_ACTIVE";
}

export interface ArmedTimersOptions {
  kv: KV;
  holdMs: number;
  /** Fires a due timer (publishes its command); resolves once it is durable. */
  fire: (t: StoredTimer) => Promise<void>;
  onError: (err: unknown, timerId: string) => void;
  /** Whether this scheduler may act now (holds the leader lease): checked before each write and firing. */
  active: () => boolean;
  now?: () => number;
}

export class ArmedTimers {
  readonly #o: ArmedTimersOptions;
  readonly #held = new Map<string, Held>();
  readonly #queue: TimerQueue<StoredTimer>;
  readonly #flush: NodeJS.Timeout;
  readonly #now: () => number;
  #abandoned = false;
  /** Timers whose deletion from the bucket is under way: the watch's sight of their last write is stale. */
  readonly #removing = new Set<string>();

  constructor(o: ArmedTimersOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#queue = new TimerQueue<StoredTimer>((id, t) => void this.#fire(id, t), this.#now);
    this.#flush = setInterval(() => void this.#persistOld(), Math.max(50, Math.floor(o.holdMs / 2)));
    this.#flush.unref();
  }

  get size(): number {
    return this.#queue.size;
  }

  /** Every armed timer (of one run), soonest first. */
  list(runId?: string): StoredTimer[] {
    return [...this.#held.values()]
      .map((h) => h.timer)
      .filter((t) => runId === undefined || t.runId === runId)
      .sort((a, b) => a.dueAt - b.dueAt || a.timerId.localeCompare(b.timerId));
  }

  /** Arms a timer stored before a restart: it is durable already. */
  restore(t: StoredTimer): void {
    this.#held.set(t.timerId, { timer: t, release: () => undefined, abandon: () => undefined, durable: true });
    this.#queue.set(t.timerId, t.dueAt, t);
  }

  /**
   * A write to the bucket seen after start (the bucket is watched while this scheduler is active):
   * armed unless this scheduler holds that timer already (its own write, or a newer state) or is
   * deleting it, and only while that write is still the key's latest. What it catches is the write
   * of a scheduler that lost the lease and had not noticed yet (paused past its hold): the transition
   * it then acknowledged never comes here, so its timer would otherwise be lost.
   */
  async adopt(t: StoredTimer, revision: number): Promise<void> {
    if (this.#abandoned || this.#held.has(t.timerId) || this.#removing.has(t.timerId)) return;
    const now = await this.#o.kv.get(t.timerId);
    if (!now || now.operation !== "PUT" || now.revision !== revision) return;
    if (this.#abandoned || this.#held.has(t.timerId) || this.#removing.has(t.timerId)) return;
    this.restore(t);
  }

  /** Arms a timer a transition sets; resolves when it is safe to acknowledge that transition. */
  set(runId: string, op: SetOp): Promise<void> {
    const timer: StoredTimer = {
      timerId: op.timerId,
      runId,
      dueAt: op.dueAt,
      kind: op.kind,
      ...(op.stepId ? { stepId: op.stepId } : {}),
      ...(op.command ? { command: op.command } : {}),
      setAt: this.#now(),
    };
    if (this.#abandoned) return Promise.reject(new NotActiveError("this scheduler is not the active one"));
    const prev = this.#held.get(op.timerId);
    prev?.release();
    return new Promise<void>((resolve, reject) => {
      this.#held.set(op.timerId, { timer, release: resolve, abandon: reject, durable: prev?.durable ?? false });
      this.#queue.set(op.timerId, op.dueAt, timer);
      if (prev?.durable) void this.#persist(op.timerId);
    });
  }

  /** Withdraws a timer; resolves once it is gone from the bucket (when it was written there). */
  async cancel(timerId: string): Promise<void> {
    if (this.#abandoned) throw new NotActiveError("this scheduler is not the active one");
    const h = this.#held.get(timerId);
    this.#queue.delete(timerId);
    if (!h) return;
    this.#held.delete(timerId);
    h.release();
    if (h.durable) await this.#unstore(timerId);
  }

  stop(): void {
    clearInterval(this.#flush);
    this.#queue.stop();
  }

  /**
   * Stops at once, writing and firing nothing more: this scheduler lost the lease. The transitions
   * waiting on their timers fail (so they are not acknowledged, and come back to the active one).
   */
  abandon(): void {
    this.#abandoned = true;
    this.stop();
    const err = new NotActiveError("this scheduler lost the leader lease");
    for (const h of this.#held.values()) h.abandon(err);
    this.#held.clear();
  }

  /** Writes every timer armed for longer than the hold, and lets their transitions be acknowledged. */
  async #persistOld(): Promise<void> {
    const cutoff = this.#now() - this.#o.holdMs;
    const due = [...this.#held.entries()].filter(([, h]) => !h.durable && h.timer.setAt <= cutoff).map(([id]) => id);
    await Promise.all(due.map((id) => this.#persist(id)));
  }

  async #persist(timerId: string): Promise<void> {
    const h = this.#held.get(timerId);
    if (!h || this.#abandoned || !this.#o.active()) return;
    try {
      await this.#o.kv.put(timerId, encode(StoredTimer, h.timer));
      // Withdrawn or set again while it was being written: the newer state decides.
      if (this.#held.get(timerId) !== h || this.#abandoned) return;
      h.durable = true;
      h.release();
    } catch (err) {
      this.#o.onError(err, timerId);
    }
  }

  async #fire(timerId: string, t: StoredTimer): Promise<void> {
    for (let n = 0; ; n++) {
      if (this.#abandoned) return;
      try {
        if (!this.#o.active()) throw new NotActiveError("the leader lease is not renewed");
        await this.#o.fire(t);
        break;
      } catch (err) {
        if (!(err instanceof NotActiveError)) this.#o.onError(err, timerId);
        await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** n)).unref?.());
      }
    }
    const h = this.#held.get(timerId);
    if (!h || h.timer !== t) return;
    this.#held.delete(timerId);
    h.release();
    if (h.durable) await this.#unstore(timerId).catch((err: unknown) => this.#o.onError(err, timerId));
  }

  async #unstore(timerId: string): Promise<void> {
    this.#removing.add(timerId);
    try {
      await this.#o.kv.delete(timerId);
    } finally {
      this.#removing.delete(timerId);
    }
  }
}
