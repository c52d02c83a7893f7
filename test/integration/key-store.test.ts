import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, DEFAULT_TOPOLOGY, provisionTopology, topologySpec, type Bus } from "@orch/bus";
import { createLogger } from "@orch/logging";
import { KeyStore, keyPart } from "@orch/runs";
import { startNats, type NatsServer } from "@orch/testing";

/** Namespaced keys in a KV bucket (`tasks`, `deliveries`, `ids`), on a real nats-server: counters, records, claims, any key. */

let nats: NatsServer;
let bus: Bus;
let buses: Bus[] = [];

beforeAll(async () => {
  nats = await startNats();
  const logger = createLogger({ service: "test", level: "silent" });
  bus = await connectBus({ url: nats.url, name: "key-store", logger });
  await provisionTopology(bus, topologySpec(bus.names, DEFAULT_TOPOLOGY));
  buses = await Promise.all([1, 2, 3].map((i) => connectBus({ url: nats.url, name: `key-store-${i}`, logger })));
});

afterAll(async () => {
  await Promise.all([bus, ...buses].map((b) => b?.close()));
  await nats?.stop();
});

describe("KeyStore", () => {
  const store = (b: Bus) => new KeyStore(b, b.names.buckets.ids);

  it("hands out every number of a counter once, across concurrent gateways", async () => {
    const gateways = buses.map(store);
    const got = await Promise.all(Array.from({ length: 60 }, (_, i) => gateways[i % 3]!.next("race")));
    expect([...got].sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(await store(bus).next("other")).toBe(1);
    expect(await store(bus).current("race")).toBe(60);
  });

  it("maps any string to a target and back, whatever characters it has", async () => {
    const a = store(bus);
    const odd = ["task 1", "ünïcödé/ä", "a.b.c", "~tilde", "=eq", "x".repeat(300), "plain_id-1"];
    for (const [i, k] of odd.entries()) await a.put("tasks", k, { n: i });
    for (const [i, k] of odd.entries()) expect(await a.get("tasks", k)).toEqual({ n: i });
    const entries = await a.entries<{ n: number }>("tasks");
    expect(new Map(entries.map((e) => [e.key, e.value.n]))).toEqual(new Map(odd.map((k, i) => [k, i])));
    expect(keyPart("plain_id-1")).toBe("plain_id-1");
    expect(keyPart("a.b")).not.toBe(keyPart("a_b"));
    // Too long for a key: stored under its hash, found again by the same string, never by another.
    const long = "y".repeat(2_000);
    await a.put("long", long, { n: 1 });
    expect(await a.get("long", long)).toEqual({ n: 1 });
    expect(await a.get("long", `${long}z`)).toBeNull();
    expect(keyPart(long)).toMatch(/^==[0-9a-f]{64}$/);
    await a.delete("tasks", "task 1");
    expect(await a.get("tasks", "task 1")).toBeNull();
  });

  it("claims once: a second claim of the same key gets the first target", async () => {
    const a = store(bus);
    const [x, y] = await Promise.all([a.claim("delivery", "gh:abc-1", { by: 1 }), store(buses[0]!).claim("delivery", "gh:abc-1", { by: 2 })]);
    expect([x.created, y.created].sort()).toEqual([false, true]);
    expect(x.value).toEqual(y.value);
  });

  it("raises a counter to a floor and never lowers it", async () => {
    const a = store(bus);
    await a.atLeast("floor", 41);
    expect(await a.next("floor")).toBe(42);
    await a.atLeast("floor", 10);
    expect(await a.next("floor")).toBe(43);
  });

  it("keeps buckets apart: a key in one is not in another", async () => {
    await new KeyStore(bus, bus.names.buckets.deliveries).put("delivery", "gh:1", { at: 1 });
    expect(await store(bus).get("delivery", "gh:1")).toBeNull();
  });
});
