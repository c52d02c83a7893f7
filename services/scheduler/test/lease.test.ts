import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createLogger } from "@orch/logging";
import { startNatsServer, type NatsServer } from "@orch/nats-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LEASE_KEY, LeaderLease, heldUntil, isOwnDeadHolder, standbyMove, type LeaseEntry, type Seen } from "../src/lease.js";

const TTL = 1_000;
const value = (owner: string, epoch = 1, ttlMs = TTL) => ({ owner, epoch, ttlMs, at: 0 });

describe("standbyMove", () => {
  it("creates the lease when it is gone", () => {
    expect(standbyMove(null, undefined, 0, TTL)).toEqual({ kind: "create" });
    expect(standbyMove(null, { revision: 7, since: 0 }, 5_000, TTL)).toEqual({ kind: "create" });
  });

  it("waits on a revision it has just seen, counting from when it first saw it", () => {
    const entry: LeaseEntry = { revision: 3, value: value("a") };
    const first = standbyMove(entry, undefined, 10_000, TTL);
    expect(first).toEqual({ kind: "wait", seen: { revision: 3, since: 10_000 }, owner: "a" });
    const later = standbyMove(entry, { revision: 3, since: 10_000 }, 10_999, TTL);
    expect(later).toMatchObject({ kind: "wait", seen: { revision: 3, since: 10_000 } });
  });

  it("takes over a revision left unrenewed for the holder's TTL, at that revision, with the next epoch", () => {
    const entry: LeaseEntry = { revision: 3, value: value("a", 4) };
    expect(standbyMove(entry, { revision: 3, since: 10_000 }, 11_000, TTL)).toEqual({ kind: "take", revision: 3, epoch: 5 });
  });

  it("starts counting again when the holder renews", () => {
    const renewed: LeaseEntry = { revision: 4, value: value("a") };
    expect(standbyMove(renewed, { revision: 3, since: 10_000 }, 11_500, TTL)).toEqual({ kind: "wait", seen: { revision: 4, since: 11_500 }, owner: "a" });
  });

  it("waits for the holder's TTL, not its own", () => {
    const entry: LeaseEntry = { revision: 3, value: value("a", 1, 10_000) };
    expect(standbyMove(entry, { revision: 3, since: 0 }, 9_999, TTL).kind).toBe("wait");
    expect(standbyMove(entry, { revision: 3, since: 0 }, 10_000, TTL).kind).toBe("take");
    // An unreadable value: its own TTL.
    expect(standbyMove({ revision: 3, value: null }, { revision: 3, since: 0 }, TTL, TTL)).toEqual({ kind: "take", revision: 3, epoch: 1 });
  });

  it("takes over at once a lease whose holder is known dead", () => {
    const entry: LeaseEntry = { revision: 3, value: value("a", 2) };
    expect(standbyMove(entry, undefined, 0, TTL, true)).toEqual({ kind: "take", revision: 3, epoch: 3 });
  });

  it("knows its own dead holder: its name, with this process's pid or one that is gone; nobody else's", () => {
    const alive = (pid: number) => pid === 200;
    const v = (owner: string, pid?: number) => ({ ...value(owner), ...(pid === undefined ? {} : { pid }) });
    expect(isOwnDeadHolder(v("me", 100), "me", 300, alive)).toBe(true); // its process is gone
    expect(isOwnDeadHolder(v("me", 300), "me", 300, alive)).toBe(true); // the same pid (a container's pid 1): this process now
    expect(isOwnDeadHolder(v("me", 200), "me", 300, alive)).toBe(false); // a live twin under the same name
    expect(isOwnDeadHolder(v("other", 100), "me", 300, alive)).toBe(false);
    expect(isOwnDeadHolder(v("me"), "me", 300, alive)).toBe(false); // no pid: not known
    expect(isOwnDeadHolder(null, "me", 300, alive)).toBe(false);
  });

  it("never takes over while the holder may still act, however the write and the reads interleave", () => {
    // The holder sends a renewal at `sent`; the server writes it at `written` ≥ sent; a standby reads
    // it first at `seen` ≥ written and then every `poll`: its takeover comes after the holder's hold.
    for (const ttl of [500, 1_000, 5_000, 60_000])
      for (const latency of [0, 1, 50, 400])
        for (const lag of [0, 7, 250])
          for (const poll of [1, 125, 1_250]) {
            const sent = 1_000;
            const seenAt = sent + latency + lag;
            let seen: Seen | undefined;
            let took: number | undefined;
            for (let now = seenAt; took === undefined; now += poll) {
              const m = standbyMove({ revision: 9, value: value("a", 1, ttl) }, seen, now, ttl);
              if (m.kind === "take") took = now;
              else if (m.kind === "wait") seen = m.seen;
            }
            expect(took).toBeGreaterThan(heldUntil(sent, ttl));
          }
  });
});

describe("LeaderLease on a real nats-server", () => {
  let nats: NatsServer;
  const conns: NatsConnection[] = [];
  const logger = createLogger({ service: "scheduler-test", level: "silent" });

  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(async () => {
    await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
    await nats?.stop();
  });

  async function replica(id: string, bucket: string, pid?: number) {
    const nc = await connect({ servers: nats.url, reconnect: false });
    conns.push(nc);
    const kv = await new Kvm(nc).create(bucket, { history: 1 });
    const log: string[] = [];
    const acquiredAt: number[] = [];
    const lease: LeaderLease = new LeaderLease(
      { kv, instanceId: id, ttlMs: TTL, logger, ...(pid === undefined ? {} : { pid }) },
      {
        async acquired(epoch) {
          acquiredAt.push(performance.now());
          log.push(`acquired ${epoch}`);
        },
        async lost(why) {
          log.push(`lost ${why}`);
        },
      },
    );
    return { nc, kv, lease, log, acquiredAt };
  }
  const until = async (cond: () => boolean, ms = 10_000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error("timed out");
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  it("one replica holds the lease; when it is cut off, it stops before the standby takes over", async () => {
    const a = await replica("a", "lease_cut");
    const b = await replica("b", "lease_cut");
    a.lease.start();
    await until(() => a.lease.active);
    b.lease.start();
    // Two TTLs: a renews, b stands by.
    const both: boolean[] = [];
    const sample = setInterval(() => both.push(a.lease.active && b.lease.active), 5);
    await new Promise((r) => setTimeout(r, 2 * TTL));
    expect(a.lease.active).toBe(true);
    expect(b.lease.active).toBe(false);
    expect(b.log).toEqual([]);

    // a loses its connection (a partition, a dead process): its renewals fail, and it stops by its own clock.
    let aStoppedAt: number | undefined;
    const watch = setInterval(() => {
      if (aStoppedAt === undefined && !a.lease.active) aStoppedAt = performance.now();
    }, 1);
    await a.nc.close();
    await until(() => b.lease.active);
    clearInterval(watch);
    clearInterval(sample);
    expect(aStoppedAt).toBeDefined();
    expect(b.acquiredAt[0]! - aStoppedAt!).toBeGreaterThan(0);
    expect(both.some(Boolean)).toBe(false);
    expect(b.log).toEqual(["acquired 2"]);
    await until(() => a.log.length > 1);
    expect(a.log).toEqual(["acquired 1", "lost not renewed in time"]);
    const stored = JSON.parse(new TextDecoder().decode((await b.kv.get(LEASE_KEY))!.value));
    expect(stored).toMatchObject({ owner: "b", epoch: 2, ttlMs: TTL });
    await b.lease.stop();
  });

  it("a stopping holder runs its last work under the lease, then hands it over at once", async () => {
    const a = await replica("a", "lease_handover");
    const b = await replica("b", "lease_handover");
    a.lease.start();
    await until(() => a.lease.active);
    b.lease.start();
    const stopping = Date.now();
    await a.lease.stop();
    expect(a.log).toEqual(["acquired 1", "lost stopping"]);
    await until(() => b.lease.active);
    // Deleted, so created anew (epoch 1) well within a TTL.
    expect(Date.now() - stopping).toBeLessThan(TTL);
    expect(b.log).toEqual(["acquired 1"]);
    await b.lease.stop();
  });

  it("an instance restarted under its name takes its lease back at once; a live twin under that name waits", async () => {
    const bucket = "lease_restart";
    const nc = await connect({ servers: nats.url });
    conns.push(nc);
    const kv = await new Kvm(nc).create(bucket, { history: 1 });
    // What a crashed process left: this name, a pid that is gone.
    await kv.put(LEASE_KEY, JSON.stringify({ ...value("me", 4, 60_000), pid: 999_999_999 }));
    const restarted = await replica("me", bucket);
    restarted.lease.start();
    await until(() => restarted.lease.active, TTL / 2);
    expect(restarted.log).toEqual(["acquired 5"]);
    // A second live process with the same name (another pid): the holder's process is alive, so it waits.
    const twin = await replica("me", bucket, process.pid + 1);
    twin.lease.start();
    await new Promise((r) => setTimeout(r, 2 * TTL));
    expect(twin.log).toEqual([]);
    expect(restarted.lease.active).toBe(true);
    await twin.lease.stop();
    await restarted.lease.stop();
  });

  it("a holder whose lease was taken (it was paused past its TTL) gives up at its next renewal", async () => {
    const a = await replica("a", "lease_taken");
    a.lease.start();
    await until(() => a.lease.active);
    // Someone else wrote the key (what a takeover does): a's next renewal is refused.
    const e = (await a.kv.get(LEASE_KEY))!;
    await a.kv.update(LEASE_KEY, JSON.stringify(value("z", 9)), e.revision);
    await until(() => a.log.includes("lost another scheduler holds the lease"));
    expect(a.lease.active).toBe(false);
    await a.lease.stop();
    // Not ours: left alone.
    expect(JSON.parse(new TextDecoder().decode((await a.kv.get(LEASE_KEY))!.value)).owner).toBe("z");
  });
});
