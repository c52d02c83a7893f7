import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Kvm } from "@nats-io/kv";
import { connectBus, DEFAULT_TOPOLOGY, provisionTopology, topologySpec, type Bus } from "@orch/bus";
import { createLogger } from "@orch/logging";
import { kvStreamOf } from "@orch/contracts";
import { KeyStore, Numbers } from "@orch/runs";
import { startNats, type NatsServer } from "@orch/testing";
import { NumberWriter } from "../../services/orchestrator/src/writes/numbers.js";
import { importLegacyAliases } from "../../services/orchestrator/src/writes/legacy.js";

/**
 * An upgrade from a version that kept every seed surface's ids in one `aliases` bucket, on a real
 * nats-server: the core carries its counters over as floors (no feature number or project number is
 * handed out twice) and binds the project numbers of projects made elsewhere; twice is the same as
 * once. Seed 001's task records are not carried over (tasks are steps of their runs now).
 */

let nats: NatsServer;
let bus: Bus;
const logger = createLogger({ service: "test", level: "silent" });

beforeAll(async () => {
  nats = await startNats();
  bus = await connectBus({ url: nats.url, name: "test", prefix: "up", logger });
  await provisionTopology(bus, topologySpec(bus.names, DEFAULT_TOPOLOGY));
  const old = await new Kvm(bus.js).create(bus.names.legacyBuckets.aliases, { history: 1 });
  await old.put("seq.speckit-feature", "41");
  await old.put("seq.project", "7");
  await old.put("seq.protocol", "300");
  await old.put("tg-project-of.billing", JSON.stringify({ n: 5 }));
  await old.put("tg-project.5", JSON.stringify({ projectId: "billing" }));
  await old.put("seq.s001task", "12");
  await old.put("s001task.t-1", JSON.stringify({ id: "t-1", seq: 12 }));
  await old.put("s001queue.000000000012", JSON.stringify({ taskId: "t-1", seq: 12 }));
  await old.put("delivery.github-abc", JSON.stringify({ at: 1 }));
});

afterAll(async () => {
  await bus?.close();
  await nats?.stop();
});

describe("importing the old aliases bucket", () => {
  it("keeps counters as floors, binds project numbers, and is idempotent", async () => {
    const numbers = new NumberWriter(bus);
    await importLegacyAliases(bus, numbers, logger);
    await importLegacyAliases(bus, numbers, logger);

    expect(await numbers.assign("feature", "run-a")).toBe(42);
    expect(await numbers.assign("project", "fresh")).toBe(8);
    const read = new Numbers(bus);
    expect(await read.of("project", "billing")).toBe(5);
    expect(await read.keyOf("project", 5)).toBe("billing");
    // Seed 001's task records are not carried anywhere (there is no tasks bucket).
    await expect(bus.jsm.streams.info(kvStreamOf("up_tasks"))).rejects.toThrow();
    // Delivery claims and the old protocol numbers are not carried over.
    expect(await new KeyStore(bus, bus.names.buckets.deliveries).get("delivery", "github-abc")).toBeNull();
  });

  it("does nothing where there is no old bucket", async () => {
    const other = await connectBus({ url: nats.url, name: "test", prefix: "fresh", logger });
    await provisionTopology(other, topologySpec(other.names, DEFAULT_TOPOLOGY));
    await importLegacyAliases(other, new NumberWriter(other), logger);
    expect(await new NumberWriter(other).assign("feature", "first")).toBe(1);
    await other.close();
  });
});
