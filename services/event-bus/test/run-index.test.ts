import { describe, expect, it } from "vitest";
import { RunQueryResult, type RunQuery, type RunStatus, type RunSummary } from "@orch/contracts";
import { CursorError, RunIndex } from "../src/run-index.js";

/** The run index, fed the summaries the core publishes, against a brute-force reading of the same summaries. */

const PROJECTS = ["alpha", "beta", "gamma"];
const DEFS = ["job", "ticket", "speckit.plan"];
const VIEWS = ["job", "ticket", "speckit"];
const STATUSES = ["pending", "running", "waiting", "paused", "completed", "failed", "cancelled"] as const satisfies readonly RunStatus[];

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

/** A run's summary as a transition publishes it. */
const summary = (runId: string, o: Partial<RunSummary> = {}): RunSummary => ({
  runId,
  projectId: "alpha",
  definition: { id: "job", version: 1 },
  view: "job",
  labels: {},
  status: "pending",
  createdAt: 1_000,
  updatedAt: o.createdAt ?? 1_000,
  seq: 1,
  ...o,
});

/** Every page of a query, following cursors; every page must be a valid RunQueryResult. */
function pages(index: RunIndex, q: RunQuery): { ids: string[]; totals: number[]; events: number[]; pages: number } {
  const ids: string[] = [];
  const totals: number[] = [];
  const events: number[] = [];
  let cursor: string | undefined;
  let n = 0;
  do {
    const r = index.query({ ...q, ...(cursor ? { cursor } : {}) });
    expect(RunQueryResult.parse(r)).toEqual(r);
    ids.push(...r.runs.map((s) => s.runId));
    totals.push(r.total);
    events.push(r.events ?? -1);
    cursor = r.nextCursor;
    n++;
    if (n > 10_000) throw new Error("cursor loop");
  } while (cursor);
  return { ids, totals, events, pages: n };
}

const matches = (s: RunSummary, q: RunQuery) =>
  (q.projectId === undefined || s.projectId === q.projectId) &&
  (q.status === undefined || q.status.includes(s.status)) &&
  (q.definitionId === undefined || s.definition.id === q.definitionId) &&
  (q.view === undefined || s.view === q.view) &&
  Object.entries(q.labels ?? {}).every(([k, v]) => s.labels[k] === v);

function reference(summaries: RunSummary[], q: RunQuery): { ids: string[]; events: number } {
  const hits = summaries.filter((s) => matches(s, q)).sort((a, b) => b.createdAt - a.createdAt || (a.runId < b.runId ? 1 : a.runId > b.runId ? -1 : 0));
  return { ids: hits.map((s) => s.runId), events: hits.reduce((n, s) => n + s.seq, 0) };
}

describe("run index", () => {
  it("lists newest first, pages with cursors, and counts what matches (runs and their events)", () => {
    const index = new RunIndex();
    for (let i = 0; i < 7; i++) {
      const s = summary(`r${i}`, { projectId: i % 2 ? "alpha" : "beta", createdAt: 1_000 + i, seq: i + 1, labels: { team: i < 3 ? "a" : "b" } });
      expect(index.put(s)).toBe(s);
    }
    expect(
      index.put(summary("r2", { projectId: "beta", createdAt: 1_002, updatedAt: 2_000, seq: 5, status: "running", startedAt: 2_000, labels: { team: "a" } })),
    ).toMatchObject({ status: "running", seq: 5 });
    expect(index.size).toBe(7);
    // Events: the sum of the runs' seq (1 + 2 + 5 + 4 + 5 + 6 + 7).
    expect(index.query({ limit: 3 })).toMatchObject({
      runs: [{ runId: "r6" }, { runId: "r5" }, { runId: "r4" }],
      total: 7,
      events: 30,
      nextCursor: expect.any(String),
    });
    const all = pages(index, { limit: 3 });
    expect(all.ids).toEqual(["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
    expect(all.pages).toBe(3);
    expect(new Set(all.events)).toEqual(new Set([30]));
    expect(index.query({ projectId: "alpha" })).toMatchObject({ total: 3, events: 2 + 4 + 6 });
    expect(index.query({ projectId: "alpha" }).runs.map((s) => s.runId)).toEqual(["r5", "r3", "r1"]);
    expect(index.query({ status: ["running"] })).toMatchObject({ runs: [{ runId: "r2", status: "running" }], total: 1, events: 5 });
    expect(index.query({ status: ["running", "pending"], projectId: "beta" })).toMatchObject({ total: 4, events: 1 + 5 + 5 + 7 });
    expect(index.query({ labels: { team: "a" }, limit: 2 })).toMatchObject({ runs: [{ runId: "r2" }, { runId: "r1" }], total: 3, events: 1 + 2 + 5 });
    expect(index.query({ projectId: "nowhere" })).toEqual({ runs: [], total: 0, events: 0 });
    expect(index.query({ labels: { team: "nobody" } })).toEqual({ runs: [], total: 0, events: 0 });
  });

  it("ignores a summary older than the one it holds (a lower seq, or the same seq not updated later) and refuses a forged cursor", () => {
    const index = new RunIndex();
    const first = summary("r1", { seq: 1 });
    expect(index.put(first)).toBe(first);
    const running = summary("r1", { seq: 2, updatedAt: 1_100, status: "running", startedAt: 1_100 });
    expect(index.put(running)).toBe(running);
    // The same summary again, an older one, one with the same seq and an earlier or equal updatedAt.
    expect(index.put({ ...running })).toBeUndefined();
    expect(index.put(summary("r1", { seq: 1, updatedAt: 5_000, status: "failed" }))).toBeUndefined();
    expect(index.put(summary("r1", { seq: 2, updatedAt: 1_100, status: "paused" }))).toBeUndefined();
    expect(index.put(summary("r1", { seq: 2, updatedAt: 1_050, status: "paused" }))).toBeUndefined();
    expect(index.get("r1")).toBe(running);
    expect(index.query({})).toMatchObject({ total: 1, events: 2 });
    // A transition with no events (same seq) published later is newer.
    const quiet = summary("r1", { seq: 2, updatedAt: 1_200, status: "running", inflight: 1 });
    expect(index.put(quiet)).toBe(quiet);
    expect(index.get("r1")).toBe(quiet);
    expect(index.query({ status: ["running"] })).toMatchObject({ total: 1, events: 2 });
    expect(() => index.query({ cursor: "bm90IGEgY3Vyc29y" })).toThrow(CursorError);
  });

  it("moves a run in every ordering and count when a newer summary changes where it sorts or what it matches", () => {
    const index = new RunIndex();
    index.put(summary("r1", { createdAt: 1_000 }));
    index.put(summary("r2", { createdAt: 3_000, seq: 2, labels: { k: "a" } }));
    index.put(summary("r3", { createdAt: 2_500 }));
    expect(index.query({}).runs.map((s) => s.runId)).toEqual(["r2", "r3", "r1"]);
    index.put(
      summary("r2", {
        createdAt: 2_000,
        updatedAt: 3_100,
        seq: 4,
        projectId: "beta",
        definition: { id: "ticket", version: 1 },
        view: "ticket",
        status: "running",
        labels: { k: "b" },
      }),
    );
    expect(index.size).toBe(3);
    expect(index.query({}).runs.map((s) => s.runId)).toEqual(["r3", "r2", "r1"]);
    expect(index.query({})).toMatchObject({ total: 3, events: 1 + 4 + 1 });
    expect(index.query({ definitionId: "ticket" })).toMatchObject({ runs: [{ runId: "r2" }], total: 1, events: 4 });
    expect(index.query({ definitionId: "job" })).toMatchObject({ total: 2, events: 2 });
    expect(index.query({ projectId: "alpha" }).runs.map((s) => s.runId)).toEqual(["r3", "r1"]);
    expect(index.query({ view: "ticket", status: ["running"], projectId: "beta" })).toMatchObject({ total: 1, events: 4 });
    expect(index.query({ status: ["pending"] })).toMatchObject({ total: 2, events: 2 });
    expect(index.query({ labels: { k: "a" } })).toEqual({ runs: [], total: 0, events: 0 });
    expect(index.query({ labels: { k: "b" } })).toMatchObject({ runs: [{ runId: "r2" }], total: 1, events: 4 });
  });

  it("load puts back a stored summary unless it holds one with the same or a higher seq", () => {
    const index = new RunIndex();
    const s2 = summary("r1", { seq: 2, updatedAt: 1_100, status: "running" });
    index.load(s2);
    expect(index.get("r1")).toBe(s2);
    index.load(summary("r1", { seq: 1, updatedAt: 2_000, status: "failed" }));
    index.load(summary("r1", { seq: 2, updatedAt: 2_000, status: "failed" }));
    expect(index.get("r1")).toBe(s2);
    const s3 = summary("r1", { seq: 3, updatedAt: 2_100, status: "completed" });
    index.load(s3);
    expect(index.get("r1")).toBe(s3);
    expect(index.query({ status: ["completed"] })).toMatchObject({ total: 1, events: 3 });
  });

  it("lists the runs whose summary has attempts in flight", () => {
    const index = new RunIndex();
    index.put(summary("a", { status: "running", inflight: 2, seq: 3 }));
    index.put(summary("b", { status: "running", seq: 2 }));
    index.put(summary("c", { status: "running", inflight: 0, seq: 2 }));
    index.put(summary("d", { status: "running", inflight: 1, seq: 2 }));
    expect([...index.inflight()].map((s) => s.runId).sort()).toEqual(["a", "d"]);
    // Its result arrives: no attempt in flight any more.
    index.put(summary("a", { status: "completed", seq: 5, updatedAt: 2_000 }));
    // A stale summary saying otherwise changes nothing.
    index.put(summary("a", { status: "running", inflight: 1, seq: 4, updatedAt: 1_900 }));
    expect([...index.inflight()].map((s) => s.runId)).toEqual(["d"]);
  });

  it("answers every filter like a brute-force scan, across random histories put in random order (stale ones ignored)", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rand = rng(seed);
      const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
      const labelsOf = (): Record<string, string> => {
        const labels: Record<string, string> = rand() < 0.5 ? { team: pick(["a", "b"]) } : {};
        if (rand() < 0.3) labels.prio = pick(["hi", "lo"]);
        return labels;
      };

      // Each run's history: summaries with a non-decreasing seq (a transition may append no event)
      // and an increasing updatedAt; its status, labels and attempts in flight change as it goes, and
      // now and then its project, definition or view (the index must move it wherever it is).
      const history: RunSummary[] = [];
      for (let r = 0; r < 150; r++) {
        const runId = `r${r}`;
        // Creation times collide on purpose (ties are broken by run id).
        const createdAt = 1_000 + Math.floor(rand() * 50);
        let s = summary(runId, {
          projectId: pick(PROJECTS),
          definition: { id: pick(DEFS), version: 1 },
          view: pick(VIEWS),
          labels: labelsOf(),
          createdAt,
          updatedAt: createdAt,
          seq: 1 + Math.floor(rand() * 3),
        });
        history.push(s);
        const versions = Math.floor(rand() * 6);
        for (let v = 0; v < versions; v++) {
          const next: RunSummary = { ...s, status: pick(STATUSES), seq: s.seq + Math.floor(rand() * 4), updatedAt: s.updatedAt + 1 + Math.floor(rand() * 100) };
          if (rand() < 0.3) next.labels = labelsOf();
          if (rand() < 0.5) next.inflight = Math.floor(rand() * 3);
          else delete next.inflight;
          if (rand() < 0.1) next.projectId = pick(PROJECTS);
          if (rand() < 0.1) {
            next.definition = { id: pick(DEFS), version: 1 };
            next.view = pick(VIEWS);
          }
          history.push(next);
          s = next;
        }
      }
      // Published in any order, some twice.
      const puts = [...history, ...history.filter(() => rand() < 0.2).map((s) => ({ ...s }))];
      for (let i = puts.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [puts[i], puts[j]] = [puts[j]!, puts[i]!];
      }

      const index = new RunIndex();
      const held = new Map<string, RunSummary>();
      const newer = (s: RunSummary, cur: RunSummary | undefined) => !cur || s.seq > cur.seq || (s.seq === cur.seq && s.updatedAt > cur.updatedAt);
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
      const check = (when: string) => {
        const summaries = [...held.values()];
        expect(index.size, `seed ${seed} ${when} size`).toBe(summaries.length);
        for (const s of summaries) expect(index.get(s.runId), `seed ${seed} ${when} ${s.runId}`).toBe(s);
        expect(new Set([...index.inflight()].map((s) => s.runId)), `seed ${seed} ${when} inflight`).toEqual(
          new Set(summaries.filter((s) => (s.inflight ?? 0) > 0).map((s) => s.runId)),
        );
        for (const q of queries) {
          const want = reference(summaries, q);
          for (const limit of [1, 7, 50]) {
            const label = `seed ${seed} ${when} ${JSON.stringify(q)} limit ${limit}`;
            const got = pages(index, { ...q, limit });
            expect(got.ids, label).toEqual(want.ids);
            expect(new Set(got.totals), `${label} totals`).toEqual(new Set([want.ids.length]));
            expect(new Set(got.events), `${label} events`).toEqual(new Set([want.events]));
          }
        }
      };

      let stale = 0;
      puts.forEach((s, i) => {
        const cur = held.get(s.runId);
        const r = index.put(s);
        if (newer(s, cur)) {
          expect(r, `seed ${seed} put #${i} ${s.runId}@${s.seq}/${s.updatedAt}`).toBe(s);
          held.set(s.runId, s);
        } else {
          expect(r, `seed ${seed} put #${i} ${s.runId}@${s.seq}/${s.updatedAt} is stale`).toBeUndefined();
          stale++;
        }
        if (i === Math.floor(puts.length / 2)) check("halfway");
      });
      // The random order did deliver stale summaries, and each run ends at its history's last.
      expect(stale).toBeGreaterThan(0);
      const latest = new Map(history.map((s) => [s.runId, s]));
      for (const [runId, s] of latest) expect(index.get(runId), `seed ${seed} ${runId}`).toEqual(s);
      check("at the end");

      // Retention: finished runs that ended before a cutoff go; every ordering and count follows.
      const ended = (x: RunSummary) => x.finishedAt ?? x.updatedAt;
      const finals = [...held.values()].filter((x) => ["completed", "failed", "cancelled"].includes(x.status)).map(ended);
      const cutoff = finals.sort((a, b) => a - b)[Math.floor(finals.length / 2)] ?? 0;
      const expired = [...index.finishedBefore(cutoff)].map((x) => x.runId);
      const want = [...held.values()].filter((x) => ["completed", "failed", "cancelled"].includes(x.status) && ended(x) < cutoff).map((x) => x.runId);
      expect(new Set(expired), `seed ${seed} expired`).toEqual(new Set(want));
      for (const id of expired) {
        expect(index.remove(id)).toBe(true);
        held.delete(id);
      }
      expect(index.remove(expired[0] ?? "none")).toBe(false);
      expect(index.size).toBe(held.size);
      check("after the expired were removed");
    }
  });
});
