import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, getRunSummary, lastTransition, provisionTopology, topologySpec, DEFAULT_TOPOLOGY, type Bus } from "@orch/bus";
import type { Command } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { startNats, type NatsServer } from "@orch/testing";
import { DefinitionStore } from "@orch/runs";
import { CommandApplier } from "../../services/orchestrator/src/core/applier.js";

/**
 * The core's run cache against a real nats-server: bounded by count and by bytes, and a run evicted
 * from it carries on from its last stored transition exactly as a cached one does.
 */

let nats: NatsServer;
let bus: Bus;
const logger = createLogger({ service: "test", level: "silent" });

beforeAll(async () => {
  nats = await startNats();
  bus = await connectBus({ url: nats.url, name: "test", prefix: "cc", logger });
  await provisionTopology(bus, topologySpec(bus.names, DEFAULT_TOPOLOGY));
});

afterAll(async () => {
  await bus?.close();
  await nats?.stop();
});

const create = (runId: string): Command => ({
  type: "run.create",
  commandId: `create:${runId}`,
  runId,
  issuedAt: Date.now(),
  projectId: "p1",
  // A run that waits (for tasks to be dispatched): it stays in the cache as it is.
  definition: { id: "task.queue" },
  title: `task ${runId} ${"x".repeat(400)}`,
  autoStart: true,
  mode: "mock",
});

describe("the core's run cache", () => {
  it("keeps no more stored bytes than its budget, evicting the least recently used", async () => {
    const definitions = new DefinitionStore(bus);
    const budget = 12 * 1024;
    const engine = new CommandApplier({ bus, logger, definitions, cacheSize: 1_000, cacheBytes: budget });
    let stored = 0;
    for (let i = 0; i < 20; i++) {
      await engine.apply(create(`cache-${i}`));
      stored += (await lastTransition(bus, `cache-${i}`))!.bytes;
    }
    const { runs, bytes } = engine.cached;
    expect(bytes).toBeLessThanOrEqual(budget);
    expect(runs).toBeGreaterThan(0);
    expect(runs).toBeLessThan(20);
    expect(stored).toBeGreaterThan(budget);
    // Every run is in the stream, cached or not, and an evicted run takes the next command.
    await engine.apply({ type: "run.signal", commandId: "cancel:cache-0", runId: "cache-0", issuedAt: Date.now(), signal: { name: "cancel" } } as Command);
    expect((await getRunSummary(bus, "cache-0"))!.status).toBe("cancelled");
    expect(engine.cached.bytes).toBeLessThanOrEqual(budget);
  });

  it("counts entries too, and keeps nothing at size 0", async () => {
    const definitions = new DefinitionStore(bus);
    const small = new CommandApplier({ bus, logger, definitions, cacheSize: 3 });
    for (let i = 0; i < 6; i++) await small.apply(create(`count-${i}`));
    expect(small.cached.runs).toBe(3);
    const none = new CommandApplier({ bus, logger, definitions, cacheSize: 0 });
    await none.apply(create("none-1"));
    expect(none.cached).toEqual({ runs: 0, bytes: 0 });
    expect((await getRunSummary(bus, "none-1"))!.runId).toBe("none-1");
  });
});
