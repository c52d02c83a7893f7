import { describe, expect, it } from "vitest";
import type { RunSummary } from "@orch/contracts";
import { SummaryWriter } from "../src/summaries.js";

/** The run index's writes: one per finished run, at most one per hold for a running one. */

const summary = (runId: string, seq: number, status: RunSummary["status"] = "running"): RunSummary => ({
  runId,
  projectId: "p",
  definition: { id: "job", version: 1 },
  view: "job",
  labels: {},
  status,
  createdAt: 1,
  updatedAt: seq,
  seq,
});

describe("SummaryWriter", () => {
  it("writes a run once when it finishes, answering every transition that brought a summary", async () => {
    const written: string[] = [];
    let now = 0;
    const w = new SummaryWriter(
      async (s) => void written.push(`${s.runId}@${s.seq}`),
      1_000,
      60_000,
      () => now,
    );
    const acks = [w.store(summary("a", 1)), w.store(summary("a", 3)), w.store(summary("a", 5, "completed"))];
    await Promise.all(acks);
    expect(written).toEqual(["a@5"]);
    await w.stop();
  });

  it("holds a running run's summary until the hold has passed, then writes its newest", async () => {
    const written: string[] = [];
    let now = 0;
    const w = new SummaryWriter(
      async (s) => void written.push(`${s.runId}@${s.seq}`),
      1_000,
      60_000,
      () => now,
    );
    let acked = 0;
    void w.store(summary("b", 1)).then(() => acked++);
    void w.store(summary("b", 2)).then(() => acked++);
    await w.flush(false);
    expect(written).toEqual([]);
    now = 1_000;
    await w.flush(false);
    expect(written).toEqual(["b@2"]);
    expect(acked).toBe(2);
    // A summary after the write starts a new hold.
    void w.store(summary("b", 3));
    await w.flush(false);
    expect(written).toEqual(["b@2"]);
    await w.stop();
    expect(written).toEqual(["b@2", "b@3"]);
  });

  it("rejects the waiters of a write that failed, so their transitions come back", async () => {
    const w = new SummaryWriter(
      async () => {
        throw new Error("no JetStream");
      },
      1_000,
      60_000,
    );
    await expect(w.store(summary("c", 1, "failed"))).rejects.toThrow("no JetStream");
    await w.stop();
  });
});
