import { performance } from "node:perf_hooks";
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Logger } from "@orch/logging";
import { z } from "zod";

/**
 * The scheduler's leader lease: one key in the `leases` bucket, held by the one active scheduler
 * among replicas. The holder renews it with compare-and-set on its last revision every quarter of
 * the TTL; a standby reads it as often and takes it over (compare-and-set on the revision it read)
 * once it has seen that same revision for a whole TTL, or creates it when it is gone.
 *
 * No clock is compared across hosts: the standby measures staleness from when *it* first saw a
 * revision, on its own monotonic clock, which is no earlier than the write; the holder counts its
 * hold from before it sent the renewal that succeeded, and gives up a quarter TTL early. So, process
 * pauses aside, the holder has stopped before anyone takes over. Correctness does not rest on that:
 * a timer fired twice (a paused holder waking up) is applied once by the core (the command's id is
 * remembered by its run, and a timer's firing is accepted only while that timer is armed there).
 *
 *   standby --(key gone: create | same revision seen for ttl: update at it)--> active
 *   active  --(renewal refused: someone else's revision | no renewal for 3/4 ttl)--> standby
 */

export const LEASE_KEY = "scheduler";

export const LeaseValue = z.object({
  owner: z.string().min(1),
  /** The holder's process id (optional: written by every version that reads it). */
  pid: z.int().optional(),
  /** Takeovers so far, this one included. */
  epoch: z.int().min(1),
  /** The holder's TTL: a standby waits for this (not its own setting) before taking over. */
  ttlMs: z.int().min(1),
  /** When it was written (wall clock; for people, never compared). */
  at: z.int(),
});
export type LeaseValue = z.infer<typeof LeaseValue>;

/** The lease key as read: absent (never written, deleted, or purged), or a revision with its value. */
export type LeaseEntry = { revision: number; value: LeaseValue | null } | null;

/** What a standby has seen of the lease: the revision, and when (its monotonic clock) it first saw it. */
export interface Seen {
  revision: number;
  since: number;
}

export type StandbyMove = { kind: "create" } | { kind: "take"; revision: number; epoch: number } | { kind: "wait"; seen: Seen; owner: string | undefined };

/**
 * A standby's move, given the key now: create it when it is gone; take it over (at the revision it
 * read) once that revision has stood unchanged for the holder's TTL (ours, when its value is
 * unreadable), or at once when the holder is known dead (this very instance before a restart);
 * else wait, remembering the revision and since when.
 */
export function standbyMove(entry: LeaseEntry, seen: Seen | undefined, now: number, ownTtlMs: number, holderDead = false): StandbyMove {
  if (entry === null) return { kind: "create" };
  const since = seen?.revision === entry.revision ? seen.since : now;
  const ttl = entry.value?.ttlMs ?? ownTtlMs;
  if (holderDead || now - since >= ttl) return { kind: "take", revision: entry.revision, epoch: (entry.value?.epoch ?? 0) + 1 };
  return { kind: "wait", seen: { revision: entry.revision, since }, owner: entry.value?.owner };
}

/** Renewals per TTL. */
export const RENEWALS_PER_TTL = 4;

/** Until when a holder may act, counting from before it sent the write that succeeded. */
export const heldUntil = (sentAt: number, ttlMs: number): number => sentAt + ttlMs - ttlMs / RENEWALS_PER_TTL;

export interface LeaseHooks {
  /** This instance now holds the lease: arm and fire (renewals go on meanwhile). A failure gives the lease back. */
  acquired(epoch: number): Promise<void>;
  /** It no longer does (or is stopping): stop firing. */
  lost(why: string): Promise<void>;
}

export interface LeaderLeaseOptions {
  kv: KV;
  /** This instance's name: the same across its restarts (see `isOwnDeadHolder`). */
  instanceId: string;
  ttlMs: number;
  logger: Logger;
  /** Monotonic milliseconds. */
  now?: () => number;
  /** This process's id (written in the lease), and whether a process of this host is alive (`process.kill(pid, 0)`). */
  pid?: number;
  alive?: (pid: number) => boolean;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Whether the holder is this instance before a restart (a crash, then its supervisor starting it
 * again): same name, and its process is this one's pid or gone. Then there is nothing to wait for.
 * Asked once, when this process first reads the lease: two live processes sharing a name across
 * process namespaces (where the other's pid looks gone) trade the lease once at most, not forever.
 */
export function isOwnDeadHolder(v: LeaseValue | null | undefined, instanceId: string, pid: number, alive: (pid: number) => boolean): boolean {
  if (!v || v.owner !== instanceId || v.pid === undefined) return false;
  return v.pid === pid || !alive(v.pid);
}

/** A write refused because the key is not at the revision given: someone else wrote it. */
const isConflict = (err: unknown) =>
  err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);

const enc = new TextEncoder();
const dec = new TextDecoder();

export class LeaderLease {
  readonly #o: LeaderLeaseOptions;
  readonly #now: () => number;
  readonly #pid: number;
  readonly #hooks: LeaseHooks;
  #held: { revision: number; epoch: number; until: number } | undefined;
  #seen: Seen | undefined;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> = Promise.resolve();
  /** `acquired` under way or done (it never rejects). */
  #starting: Promise<void> = Promise.resolve();
  #stopped = false;
  /** Whether this process has read the lease yet (see `isOwnDeadHolder`). */
  #looked = false;
  /** Stopping: renew what is held, acquire nothing. */
  #draining = false;

  constructor(o: LeaderLeaseOptions, hooks: LeaseHooks) {
    this.#o = o;
    this.#now = o.now ?? (() => performance.now());
    this.#pid = o.pid ?? process.pid;
    this.#hooks = hooks;
  }

  /** Whether this instance may fire now: it holds the lease and its hold has not run out. */
  get active(): boolean {
    return this.#held !== undefined && this.#now() < this.#held.until;
  }

  get epoch(): number | undefined {
    return this.#held?.epoch;
  }

  /** Starts the rounds (the first at once); returns without waiting for the lease. */
  start(): void {
    const every = Math.max(50, Math.floor(this.#o.ttlMs / RENEWALS_PER_TTL));
    const loop = () => {
      this.#round = this.#tick()
        .catch((err: unknown) => this.#o.logger.warn({ err, instanceId: this.#o.instanceId }, "lease round failed"))
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(loop, every);
        });
    };
    loop();
  }

  /**
   * Gives the lease up: when it holds it, `lost("stopping")` runs first while the rounds keep
   * renewing it (what stopping does is still covered), then the key is deleted so that a standby
   * takes over at once instead of after a TTL.
   */
  async stop(): Promise<void> {
    this.#draining = true;
    await this.#round;
    await this.#starting;
    if (this.#held) await this.#hooks.lost("stopping");
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#round;
    const held = this.#held;
    this.#held = undefined;
    if (held) {
      await this.#o.kv.delete(LEASE_KEY, { previousSeq: held.revision }).catch(() => undefined);
      this.#o.logger.info({ instanceId: this.#o.instanceId, epoch: held.epoch }, "lease released");
    }
  }

  #value(epoch: number): Uint8Array {
    return enc.encode(JSON.stringify({ owner: this.#o.instanceId, pid: this.#pid, epoch, ttlMs: this.#o.ttlMs, at: Date.now() } satisfies LeaseValue));
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    if (this.#held) {
      if (await this.#renew()) return;
      if (this.#held && this.#now() < this.#held.until) return;
      await this.#lose("not renewed in time");
      return;
    }
    if (this.#draining) return;
    const e = await this.#o.kv.get(LEASE_KEY);
    const entry: LeaseEntry = !e || e.operation !== "PUT" ? null : { revision: e.revision, value: this.#parse(e.value) };
    const ownDead = !this.#looked && isOwnDeadHolder(entry?.value, this.#o.instanceId, this.#pid, this.#o.alive ?? processAlive);
    this.#looked = true;
    const move = standbyMove(entry, this.#seen, this.#now(), this.#o.ttlMs, ownDead);
    if (move.kind === "wait") {
      this.#seen = move.seen;
      return;
    }
    const epoch = move.kind === "take" ? move.epoch : 1;
    const sentAt = this.#now();
    let revision: number;
    try {
      revision =
        move.kind === "create" ? await this.#o.kv.create(LEASE_KEY, this.#value(epoch)) : await this.#o.kv.update(LEASE_KEY, this.#value(epoch), move.revision);
    } catch (err) {
      if (isConflict(err)) return; // another standby got there first
      throw err;
    }
    this.#seen = undefined;
    this.#held = { revision, epoch, until: heldUntil(sentAt, this.#o.ttlMs) };
    this.#o.logger.info(
      { instanceId: this.#o.instanceId, epoch, ttlMs: this.#o.ttlMs, ...(entry?.value ? { previous: entry.value.owner } : {}) },
      "lease acquired",
    );
    // Not awaited by the round: renewals go on while it starts (arming a large bucket takes a while).
    const held = this.#held;
    this.#starting = this.#hooks.acquired(epoch).catch(async (err: unknown) => {
      this.#o.logger.error({ err, instanceId: this.#o.instanceId }, "could not start firing timers; giving the lease back");
      if (this.#held !== held) return;
      this.#held = undefined;
      await this.#hooks.lost("start failed");
      await this.#o.kv.delete(LEASE_KEY, { previousSeq: held.revision }).catch(() => undefined);
    });
  }

  /** Renews the held lease; false when it could not (refused: lost at once; otherwise kept until its hold runs out). */
  async #renew(): Promise<boolean> {
    const held = this.#held;
    if (!held) return false;
    const sentAt = this.#now();
    try {
      const revision = await this.#o.kv.update(LEASE_KEY, this.#value(held.epoch), held.revision);
      if (this.#held !== held) return false;
      held.revision = revision;
      held.until = heldUntil(sentAt, this.#o.ttlMs);
      return true;
    } catch (err) {
      if (isConflict(err) && this.#held === held) {
        await this.#lose("another scheduler holds the lease");
        return false;
      }
      this.#o.logger.warn({ err, instanceId: this.#o.instanceId }, "lease renewal failed; retrying");
      return false;
    }
  }

  async #lose(why: string): Promise<void> {
    if (!this.#held) return;
    this.#held = undefined;
    this.#o.logger.warn({ instanceId: this.#o.instanceId, why }, "lease lost");
    await this.#starting;
    await this.#hooks.lost(why);
  }

  #parse(data: Uint8Array): LeaseValue | null {
    try {
      const v = LeaseValue.safeParse(JSON.parse(dec.decode(data)));
      return v.success ? v.data : null;
    } catch {
      return null;
    }
  }
}
