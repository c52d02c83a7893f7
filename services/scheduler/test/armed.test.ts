import { Kvm, type KV } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startNatsServer, type NatsServer } from "@orch/nats-server";
import type { StoredTimer } from "@orch/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ArmedTimers, NotActiveError } from "../src/armed.js";

/** ArmedTimers on a real timers bucket: what it adopts from the bucket, and what it does once it is no longer the active scheduler. */

let nats: NatsServer;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

const timer = (timerId: string, dueAt: number): StoredTimer => ({ timerId, runId: "run-1", dueAt, kind: "wall_clock", setAt: Date.now() });
const json = (t: StoredTimer) => JSON.stringify(t);

function armedOn(kv: KV, active: { on: boolean }) {
  const fired: string[] = [];
  const armed = new ArmedTimers({
    kv,
    holdMs: 60_000,
    active: () => active.on,
    async fire(t) {
      fired.push(t.timerId);
    },
    onError: () => undefined,
  });
  return { armed, fired };
}
const until = async (cond: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("ArmedTimers", () => {
  it("adopts a timer another scheduler wrote, while that write is the key's latest, and fires it once", async () => {
    const kv = await new Kvm(nc).create("timers_adopt", { history: 1 });
    const { armed, fired } = armedOn(kv, { on: true });
    const rev = await kv.put("late", json(timer("late", Date.now() + 50)));
    await armed.adopt(timer("late", Date.now() + 50), rev);
    // A write since superseded (deleted: fired or withdrawn by its writer) is not adopted.
    const gone = await kv.put("gone", json(timer("gone", Date.now())));
    await kv.delete("gone");
    await armed.adopt(timer("gone", Date.now()), gone);
    await until(() => fired.length > 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(fired).toEqual(["late"]);
    // Fired, then deleted from the bucket.
    await until(() => armed.size === 0);
    expect((await kv.get("late"))?.operation).toBe("DEL");
    armed.stop();
  });

  it("ignores the bucket's copy of a timer it holds (its own write, or an older state)", async () => {
    const kv = await new Kvm(nc).create("timers_own", { history: 1 });
    const { armed, fired } = armedOn(kv, { on: true });
    const later = Date.now() + 60_000;
    const safe = armed.set("run-1", { op: "set", timerId: "mine", dueAt: later, kind: "wall_clock" });
    const rev = await kv.put("mine", json(timer("mine", Date.now())));
    await armed.adopt(timer("mine", Date.now()), rev);
    await new Promise((r) => setTimeout(r, 100));
    expect(fired).toEqual([]);
    expect(armed.list().map((t) => t.dueAt)).toEqual([later]);
    armed.abandon();
    await expect(safe).rejects.toBeInstanceOf(NotActiveError);
  });

  it("fires nothing while not active, and, abandoned, fails what it held and writes nothing more", async () => {
    const kv = await new Kvm(nc).create("timers_inactive", { history: 1 });
    const active = { on: false };
    const { armed, fired } = armedOn(kv, active);
    armed.restore(timer("due", Date.now()));
    const held = armed.set("run-1", { op: "set", timerId: "held", dueAt: Date.now() + 60_000, kind: "wall_clock" });
    await new Promise((r) => setTimeout(r, 300));
    expect(fired).toEqual([]);
    armed.abandon();
    await expect(held).rejects.toBeInstanceOf(NotActiveError);
    await expect(armed.set("run-1", { op: "set", timerId: "next", dueAt: Date.now(), kind: "wall_clock" })).rejects.toBeInstanceOf(NotActiveError);
    await expect(armed.cancel("due")).rejects.toBeInstanceOf(NotActiveError);
    active.on = true;
    await new Promise((r) => setTimeout(r, 300));
    expect(fired).toEqual([]);
    expect(await kv.get("held")).toBeNull();
  });
});
