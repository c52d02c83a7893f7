import { describe, expect, it } from "vitest";
import type { RunEvent, RunQuery, RunSummary } from "@orch/contracts";
import { CursorError, RunIndex } from "../src/run-index.js";

/** The run index against a brute-force reading of the same summaries. */

const PROJECTS = ["alpha", "beta", "gamma"];
const DEFS = ["job", "ticket", "speckit.plan"];
const VIEWS = ["job", "ticket", "speckit"];
const STATUSES = ["pending", "running", "waiting", "paused", "completed", "failed", "cancelled"] as const;

/** A deterministic PRNG, so a failure names a seed that reproduces it. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const created = (runId: string, projectId: string, seq: number, at: number, def: string, view: string, labels: Record<string, string>): RunEvent => ({
  runId,
  projectId,
  seq,
  type: "run.created",
  at,
  data: { definition: { id: def, version: 1 }, view, title: `run ${runId}`, labels },
});
const status = (runId: string, projectId: string, seq: number, at: number, from: string, to: string): RunEvent => ({
  runId,
  projectId,
  seq,
  type: "run.status_changed",
  at,
  data: { from, to },
});

/** Every page of a query, following cursors. */
function pages(index: RunIndex, q: RunQuery): { ids: string[]; totals: number[]; pages: number } {
  const ids: string[] = [];
  const totals: number[] = [];
  let cursor: string | undefined;
  let n = 0;
  do {
    const r = index.query({ ...q, ...(cursor ? { cursor } : {}) });
    ids.push(...r.runs.map((s) => s.runId));
    totals.push(r.total);
    cursor = r.nextCursor;
    n++;
    if (n > 10_000) throw new Error("cursor loop");
  } while (cursor);
  return { ids, totals, pages: n };
}

function reference(summaries: RunSummary[], q: RunQuery): string[] {
  return summaries
    .filter(
      (s) =>
        (q.projectId === undefined || s.projectId === q.projectId) &&
        (q.status === undefined || q.status.includes(s.status)) &&
        (q.definitionId === undefined || s.definition.id === q.definitionId) &&
        (q.view === undefined || s.view === q.view) &&
        Object.entries(q.labels ?? {}).every(([k, v]) => s.labels[k] === v),
    )
    .sort((a, b) => b.createdAt - a.createdAt || (a.runId < b.runId ? 1 : a.runId > b.runId ? -1 : 0))
    .map((s) => s.runId);
}

describe("run index", () => {
  it("lists newest first, pages with cursors, and counts what matches", () => {
    const index = new RunIndex();
    for (let i = 0; i < 7; i++) index.apply(created(`r${i}`, i % 2 ? "alpha" : "beta", 1, 1_000 + i, "job", "job", { team: i < 3 ? "a" : "b" }));
    index.apply(status("r2", "beta", 2, 2_000, "pending", "running"));
    expect(index.query({ limit: 3 })).toMatchObject({ runs: [{ runId: "r6" }, { runId: "r5" }, { runId: "r4" }], total: 7, nextCursor: expect.any(String) });
    const all = pages(index, { limit: 3 });
    expect(all.ids).toEqual(["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
    expect(all.pages).toBe(3);
    expect(index.query({ projectId: "alpha" }).runs.map((s) => s.runId)).toEqual(["r5", "r3", "r1"]);
    expect(index.query({ status: ["running"] })).toMatchObject({ runs: [{ runId: "r2", status: "running" }], total: 1 });
    expect(index.query({ status: ["running", "pending"], projectId: "beta" }).total).toBe(4);
    expect(index.query({ labels: { team: "a" }, limit: 2 })).toMatchObject({ runs: [{ runId: "r2" }, { runId: "r1" }], total: 3 });
    expect(index.query({ projectId: "nowhere" })).toEqual({ runs: [], total: 0 });
  });

  it("ignores an event it has already applied and refuses a forged cursor", () => {
    const index = new RunIndex();
    index.apply(created("r1", "alpha", 1, 1_000, "job", "job", {}));
    expect(index.apply(status("r1", "alpha", 2, 1_100, "pending", "running"))).toMatchObject({ status: "running", startedAt: 1_100 });
    expect(index.apply(status("r1", "alpha", 2, 1_100, "pending", "running"))).toBeUndefined();
    expect(index.apply(status("r1", "alpha", 1, 1_100, "pending", "failed"))).toBeUndefined();
    expect(index.get("r1")?.status).toBe("running");
    expect(() => index.query({ cursor: "bm90IGEgY3Vyc29y" })).toThrow(CursorError);
  });

  it("keeps a run in its place when a later event arrives before run.created", () => {
    const index = new RunIndex();
    index.apply(created("r1", "alpha", 1, 1_000, "job", "job", {}));
    // r2's status change is seen first (stamped later than its creation), then its creation.
    index.apply(status("r2", "alpha", 2, 3_000, "pending", "running"));
    index.apply(created("r3", "alpha", 1, 2_500, "job", "job", {}));
    expect(index.query({}).runs.map((s) => s.runId)).toEqual(["r2", "r3", "r1"]);
    index.apply(created("r2", "alpha", 1, 2_000, "ticket", "ticket", { k: "v" }));
    // seq 1 < 2: the creation is older than what is known, so it changes nothing …
    expect(index.get("r2")?.definition.id).toBe("");
    // … whereas a load of a newer summary moves it.
    index.load({ ...index.get("r2")!, createdAt: 2_000, seq: 3, definition: { id: "ticket", version: 1 }, view: "ticket" });
    expect(index.query({}).runs.map((s) => s.runId)).toEqual(["r3", "r2", "r1"]);
    expect(index.query({ definitionId: "ticket" })).toMatchObject({ runs: [{ runId: "r2" }], total: 1 });
    expect(index.query({ definitionId: "" }).total).toBe(0);
  });

  it("answers every filter like a brute-force scan, across random histories", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rand = rng(seed);
      const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
      const index = new RunIndex();
      const runs = new Map<string, { projectId: string; seq: number; status: string }>();
      for (let i = 0; i < 400; i++) {
        const existing = [...runs.keys()];
        if (existing.length === 0 || rand() < 0.4) {
          const runId = `r${i}`;
          const projectId = pick(PROJECTS);
          const labels: Record<string, string> = rand() < 0.5 ? { team: pick(["a", "b"]) } : {};
          if (rand() < 0.3) labels.prio = pick(["hi", "lo"]);
          // Creation times collide on purpose (ties are broken by run id).
          index.apply(created(runId, projectId, 1, 1_000 + Math.floor(rand() * 50), pick(DEFS), pick(VIEWS), labels));
          runs.set(runId, { projectId, seq: 1, status: "pending" });
        } else {
          const runId = pick(existing);
          const r = runs.get(runId)!;
          const to = pick(STATUSES);
          index.apply(status(runId, r.projectId, ++r.seq, 2_000 + i, r.status, to));
          r.status = to;
        }
      }
      const summaries = [...runs.keys()].map((id) => index.get(id)!);
      const queries: RunQuery[] = [
        {},
        { projectId: "alpha" },
        { status: ["running"] },
        { status: ["failed", "cancelled", "paused"] },
        { projectId: "beta", status: ["running", "waiting"] },
        { definitionId: "ticket", view: "ticket" },
        { labels: { team: "a" } },
        { labels: { team: "b", prio: "hi" }, projectId: "gamma" },
        { projectId: "gamma", definitionId: "job", status: ["completed"] },
        { view: "speckit", status: ["pending", "completed"] },
      ];
      for (const q of queries) {
        for (const limit of [1, 7, 50]) {
          const want = reference(summaries, q);
          const got = pages(index, { ...q, limit });
          expect(got.ids, `seed ${seed} ${JSON.stringify(q)} limit ${limit}`).toEqual(want);
          expect(new Set(got.totals), `seed ${seed} ${JSON.stringify(q)} totals`).toEqual(new Set([want.length]));
        }
      }
    }
  });
});
