import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus, DEFAULT_TOPOLOGY, getRunView, provisionTopology, readEvents, topologySpec, type Bus } from "@orch/bus";
import { kvStreamOf, MAX_RUN_STEPS, type Command } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { DefinitionStore, runNumberOf, runOfNumber, splitStepNumber, stepNumber } from "@orch/runs";
import { startNats, type NatsServer } from "@orch/testing";
import { CommandApplier } from "../../services/orchestrator/src/core/applier.js";

/**
 * Run and step numbers against a real nats-server, on runs the real core applier wrote: a run's
 * number is the stream sequence of its first transition, found from the run and back, unchanged by
 * later transitions; a step's number gives back its run and index; reading writes nothing.
 */

let nats: NatsServer;
let bus: Bus;
let core: CommandApplier;
const logger = createLogger({ service: "test", level: "silent" });

const base = { issuedAt: Date.now(), actor: "test" } as const;
const create = (runId: string, projectId: string): Command => ({
  ...base,
  type: "run.create",
  commandId: `create:${runId}`,
  runId,
  projectId,
  definition: { id: "protocol" },
  title: runId,
  autoStart: false,
  mode: "mock",
});
const signal = (runId: string, k: number, sig: Record<string, unknown>): Command =>
  ({ ...base, type: "run.signal", commandId: `signal:${runId}:${k}`, runId, signal: sig }) as Command;

beforeAll(async () => {
  nats = await startNats();
  bus = await connectBus({ url: nats.url, name: "test", prefix: "rn", logger });
  await provisionTopology(bus, topologySpec(bus.names, DEFAULT_TOPOLOGY));
  core = new CommandApplier({ bus, logger, definitions: new DefinitionStore(bus), cacheSize: 100 });
});

afterAll(async () => {
  await bus?.close();
  await nats?.stop();
});

describe("run numbers", () => {
  it("are the sequence of a run's first transition, from the run and back, whatever follows", async () => {
    await core.apply(create("alpha", "p1"));
    await core.apply(create("beta", "p2"));
    const first = (await readEvents(bus, bus.names.subjects.runOf("alpha")))[0]!;
    const alpha = await runNumberOf(bus, "alpha");
    expect(alpha).toBe(first.streamSeq);
    const beta = await runNumberOf(bus, "beta");
    expect(beta).toBeGreaterThan(alpha!);

    // Later transitions of either run change neither number.
    await core.apply(signal("alpha", 1, { name: "add_steps", steps: [{ id: "a" }, { id: "b" }] }));
    await core.apply(signal("beta", 1, { name: "set_facts", facts: { x: 1 } }));
    await core.apply(signal("alpha", 2, { name: "set_facts", facts: { y: 2 } }));
    expect(await runNumberOf(bus, "alpha")).toBe(alpha);
    expect(await runNumberOf(bus, "beta")).toBe(beta);

    expect(await runOfNumber(bus, alpha!)).toEqual({ projectId: "p1", runId: "alpha" });
    expect(await runOfNumber(bus, beta!)).toEqual({ projectId: "p2", runId: "beta" });
  });

  it("name no run for a later transition's sequence, a sequence past the end, or no run", async () => {
    const info = await bus.jsm.streams.info(bus.names.streams.runs);
    const last = info.state.last_seq;
    const latest = await bus.jsm.direct.getMessage(bus.names.streams.runs, { seq: last });
    expect(latest).not.toBeNull();
    // The last message is alpha's third transition: a sequence, but not a run's number.
    expect(bus.names.subjects.runOfSubject(latest!.subject)).toEqual({ projectId: "p1", runId: "alpha" });
    expect(await runOfNumber(bus, last)).toBeNull();
    expect(await runOfNumber(bus, last + 1_000)).toBeNull();
    for (const n of [0, -1, 1.5, Number.NaN]) expect(await runOfNumber(bus, n)).toBeNull();
    expect(await runNumberOf(bus, "no-such-run")).toBeNull();
    expect(await runNumberOf(bus, "bad.id")).toBeNull();
  });

  it("give a step's number back as its run and index", async () => {
    const alpha = (await runNumberOf(bus, "alpha"))!;
    for (const [index, stepId] of [
      [0, "a"],
      [1, "b"],
    ] as const) {
      const n = stepNumber(alpha, index);
      expect(n).toBe(alpha * MAX_RUN_STEPS + index);
      const parts = splitStepNumber(n)!;
      expect(parts).toEqual({ runNumber: alpha, index });
      const run = (await runOfNumber(bus, parts.runNumber))!;
      const view = (await getRunView(bus, run.runId))!;
      expect(view.steps.find((s) => s.index === parts.index)?.id).toBe(stepId);
    }
  });

  it("are read without writing anything", async () => {
    const state = async () => {
      const runs = (await bus.jsm.streams.info(bus.names.streams.runs)).state;
      const ids = (await bus.jsm.streams.info(kvStreamOf(bus.names.buckets.ids))).state;
      return { runs: [runs.messages, runs.last_seq], ids: [ids.messages, ids.last_seq] };
    };
    const before = await state();
    for (let i = 0; i < 5; i++) {
      const n = (await runNumberOf(bus, "alpha"))!;
      await runOfNumber(bus, n);
      await runOfNumber(bus, n + 1);
    }
    expect(await state()).toEqual(before);
  });
});
