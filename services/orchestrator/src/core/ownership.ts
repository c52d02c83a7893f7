import type { KV, KvEntry } from "@nats-io/kv";
import type { Bus } from "@orch/bus";
import { fnv1a } from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { z } from "zod";

/**
 * Partitioned ownership of the command stream among orchestrator replicas. Every replica heartbeats
 * a membership key; each partition's owner is chosen among live members by rendezvous hashing, so
 * membership changes move only the partitions they must; the owner holds a lease (a KV key updated
 * with compare-and-set) and consumes that partition's durable consumer. A replica that dies stops
 * renewing; its leases expire after LEASE_TTL_MS and the survivors take its partitions over.
 *
 * Leases give mutual exclusion for efficiency (one cache per run, commands of a run in order); they
 * are not what keeps runs correct: every write of a run is a compare-and-set, so even two owners at
 * once (a partition, a paused process) cannot double-apply a command.
 */

export const LEASE_RENEW_MS = 1_000;
export const LEASE_TTL_MS = 4_000;

const Lease = z.object({ owner: z.string(), epoch: z.int(), at: z.int() });
type Lease = z.infer<typeof Lease>;
const Member = z.object({ id: z.string(), at: z.int(), pid: z.int() });

const enc = new TextEncoder();
const dec = new TextDecoder();
const json = (v: unknown) => enc.encode(JSON.stringify(v));

export interface OwnershipHooks {
  /** This replica now owns `partition`: start consuming it. */
  acquire(partition: number): Promise<void>;
  /** This replica must give `partition` up: stop consuming it (in-flight work finishes first). */
  release(partition: number): Promise<void>;
}

/** murmur3's 32-bit finaliser: FNV-1a alone barely separates names that differ in one character. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Rendezvous (highest random weight) choice of a partition's owner among members. */
export function ownerOf(partition: number, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const m of members) {
    const score = mix32(fnv1a(`${m}#${partition}`));
    if (score > bestScore || (score === bestScore && best !== undefined && m < best)) {
      best = m;
      bestScore = score;
    }
  }
  return best;
}

export class PartitionOwnership {
  readonly #owned = new Map<number, { revision: number; epoch: number }>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #busy: Promise<void> = Promise.resolve();

  constructor(
    private readonly bus: Bus,
    private readonly instanceId: string,
    private readonly hooks: OwnershipHooks,
    private readonly log: Logger,
  ) {}

  get owned(): number[] {
    return [...this.#owned.keys()].sort((a, b) => a - b);
  }

  async start(): Promise<void> {
    await this.#tick();
    this.#timer = setInterval(() => {
      this.#busy = this.#busy.then(() => this.#tick()).catch((err: unknown) => this.log.warn({ err }, "ownership round failed"));
    }, LEASE_RENEW_MS);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#busy.catch(() => undefined);
    const kv = await this.#kv();
    for (const [k, l] of this.#owned) {
      await this.hooks.release(k);
      await kv.delete(leaseKey(k), { previousSeq: l.revision }).catch(() => undefined);
    }
    this.#owned.clear();
    await kv.delete(memberKey(this.instanceId)).catch(() => undefined);
  }

  #kv(): Promise<KV> {
    return this.bus.kv(this.bus.names.buckets.leases);
  }

  async #members(kv: KV): Promise<string[]> {
    const now = Date.now();
    const live: string[] = [];
    for await (const k of await kv.keys("member.*")) {
      const e = await kv.get(k);
      if (!e || e.operation !== "PUT") continue;
      if (now - e.created.getTime() > LEASE_TTL_MS) continue;
      const m = Member.safeParse(JSON.parse(dec.decode(e.value)));
      if (m.success) live.push(m.data.id);
    }
    if (!live.includes(this.instanceId)) live.push(this.instanceId);
    return live.sort();
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    const kv = await this.#kv();
    await kv.put(memberKey(this.instanceId), json({ id: this.instanceId, at: Date.now(), pid: process.pid }));
    const members = await this.#members(kv);
    const partitions = this.bus.names.partitions;
    for (let k = 0; k < partitions; k++) {
      if (this.#stopped) return;
      const mine = ownerOf(k, members) === this.instanceId;
      const held = this.#owned.get(k);
      if (held) {
        if (!mine) {
          await this.#release(kv, k, held.revision, "another replica should own it");
          continue;
        }
        try {
          const revision = await kv.update(leaseKey(k), json({ owner: this.instanceId, epoch: held.epoch, at: Date.now() } satisfies Lease), held.revision);
          held.revision = revision;
        } catch {
          this.#owned.delete(k);
          this.log.warn({ partition: k }, "lost a partition lease");
          await this.hooks.release(k);
        }
        continue;
      }
      if (!mine) continue;
      await this.#tryAcquire(kv, k);
    }
  }

  async #tryAcquire(kv: KV, k: number): Promise<void> {
    const e: KvEntry | null = await kv.get(leaseKey(k));
    let epoch = 1;
    let revision: number;
    try {
      if (!e || e.operation !== "PUT") {
        revision = await kv.create(leaseKey(k), json({ owner: this.instanceId, epoch, at: Date.now() } satisfies Lease));
      } else {
        const prev = Lease.safeParse(JSON.parse(dec.decode(e.value)));
        const stale = Date.now() - e.created.getTime() > LEASE_TTL_MS;
        const ours = prev.success && prev.data.owner === this.instanceId;
        if (!stale && !ours) return;
        epoch = (prev.success ? prev.data.epoch : 0) + 1;
        revision = await kv.update(leaseKey(k), json({ owner: this.instanceId, epoch, at: Date.now() } satisfies Lease), e.revision);
      }
    } catch {
      return; // someone else got there first
    }
    this.#owned.set(k, { revision, epoch });
    this.log.info({ partition: k, epoch }, "partition acquired");
    try {
      await this.hooks.acquire(k);
    } catch (err) {
      this.log.error({ err, partition: k }, "could not start consuming a partition; releasing it");
      await this.#release(kv, k, revision, "start failed");
    }
  }

  async #release(kv: KV, k: number, revision: number, why: string): Promise<void> {
    this.#owned.delete(k);
    await this.hooks.release(k);
    await kv.delete(leaseKey(k), { previousSeq: revision }).catch(() => undefined);
    this.log.info({ partition: k, why }, "partition released");
  }
}

const leaseKey = (k: number) => `partition.${k}`;
const memberKey = (id: string) => `member.${id.replace(/[^A-Za-z0-9_-]/g, "_")}`;
