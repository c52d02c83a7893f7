import { RunQuery, RunStatus, type RunEvent, type RunQueryResult, type RunSummary } from "@orch/contracts";

/**
 * The run index: one summary per run, built from run-level events, ordered newest first for
 * listing. Pure and in memory: the projection around it loads it from and saves it to the
 * `run_index` bucket. Listing walks the order from the cursor and filters as it goes, so a page
 * costs what it skips, not what the index holds.
 */

export class CursorError extends Error {
  override readonly name = "CursorError";
  readonly code = "BAD_REQUEST";
}

const STATUSES = new Set<string>(RunStatus.options);

type Key = readonly [number, string];
const keyOf = (s: Pick<RunSummary, "createdAt" | "runId">): Key => [s.createdAt, s.runId];
const cmp = (a: Key, b: Key) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);

export function encodeCursor(s: Pick<RunSummary, "createdAt" | "runId">): string {
  return Buffer.from(`${s.createdAt}:${s.runId}`).toString("base64url");
}

function decodeCursor(c: string): Key {
  const m = /^(\d+):([A-Za-z0-9_-]{1,128})$/.exec(Buffer.from(c, "base64url").toString());
  if (!m) throw new CursorError("invalid cursor");
  return [Number(m[1]), m[2]!];
}

export class RunIndex {
  readonly #byId = new Map<string, RunSummary>();
  /** Ascending by (createdAt, runId); listing reads it backwards. */
  readonly #order: RunSummary[] = [];

  get size(): number {
    return this.#byId.size;
  }

  get(runId: string): RunSummary | undefined {
    return this.#byId.get(runId);
  }

  /** Puts a stored summary back (at start). */
  load(s: RunSummary): void {
    const prev = this.#byId.get(s.runId);
    if (prev && prev.seq >= s.seq) return;
    if (prev) this.#remove(prev);
    this.#insert(s);
  }

  #insert(s: RunSummary): void {
    this.#byId.set(s.runId, s);
    const k = keyOf(s);
    const last = this.#order.at(-1);
    if (!last || cmp(keyOf(last), k) < 0) {
      this.#order.push(s);
      return;
    }
    let lo = 0;
    let hi = this.#order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cmp(keyOf(this.#order[mid]!), k) < 0) lo = mid + 1;
      else hi = mid;
    }
    this.#order.splice(lo, 0, s);
  }

  #remove(s: RunSummary): void {
    const i = this.#indexOf(keyOf(s));
    if (i >= 0 && this.#order[i]!.runId === s.runId) this.#order.splice(i, 1);
    this.#byId.delete(s.runId);
  }

  #indexOf(k: Key): number {
    let lo = 0;
    let hi = this.#order.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = cmp(keyOf(this.#order[mid]!), k);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Applies a run-level event; returns the updated summary, or undefined when it changed nothing. */
  apply(e: RunEvent): RunSummary | undefined {
    const prev = this.#byId.get(e.runId);
    if (prev && e.seq <= prev.seq) return undefined;
    const d = e.data ?? {};
    const s: RunSummary = prev
      ? { ...prev, labels: { ...prev.labels } }
      : { runId: e.runId, projectId: e.projectId, definition: { id: "", version: 0 }, view: "generic", labels: {}, status: "pending", createdAt: e.at, updatedAt: e.at, seq: 0 };
    s.seq = e.seq;
    s.updatedAt = Math.max(s.updatedAt, e.at);
    switch (e.type) {
      case "run.created": {
        const def = d.definition as { id?: unknown; version?: unknown } | undefined;
        if (def && typeof def.id === "string" && typeof def.version === "number") s.definition = { id: def.id, version: def.version };
        if (typeof d.view === "string") s.view = d.view;
        if (typeof d.title === "string") s.title = d.title;
        if (d.labels && typeof d.labels === "object") {
          for (const [k, v] of Object.entries(d.labels)) if (typeof v === "string") s.labels[k] = v;
        }
        s.createdAt = e.at;
        break;
      }
      case "run.status_changed":
        if (typeof d.to === "string" && STATUSES.has(d.to)) s.status = d.to as RunSummary["status"];
        if (d.from === "pending" && d.to !== "cancelled") s.startedAt ??= e.at;
        break;
      case "run.stage_entered":
        if (typeof d.stage === "string") s.stage = d.stage;
        break;
      case "run.finished":
        if (typeof d.status === "string" && STATUSES.has(d.status)) s.status = d.status as RunSummary["status"];
        if (typeof d.stage === "string" && d.stage) s.stage = d.stage;
        if (typeof d.error === "string") s.error = d.error;
        s.finishedAt = e.at;
        break;
      default:
        break;
    }
    if (prev) this.#remove(prev);
    this.#insert(s);
    return s;
  }

  /** A page of runs, newest first. */
  query(input: RunQuery): RunQueryResult {
    const q = RunQuery.parse(input);
    const statuses = q.status ? new Set<string>(q.status) : undefined;
    const labels = q.labels ? Object.entries(q.labels) : [];
    const match = (s: RunSummary) =>
      (q.projectId === undefined || s.projectId === q.projectId) &&
      (statuses === undefined || statuses.has(s.status)) &&
      (q.definitionId === undefined || s.definition.id === q.definitionId) &&
      (q.view === undefined || s.view === q.view) &&
      labels.every(([k, v]) => s.labels[k] === v);
    let start = this.#order.length - 1;
    if (q.cursor) {
      const k = decodeCursor(q.cursor);
      // The first entry strictly older than the cursor.
      let lo = 0;
      let hi = this.#order.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cmp(keyOf(this.#order[mid]!), k) < 0) lo = mid + 1;
        else hi = mid;
      }
      start = lo - 1;
    }
    const runs: RunSummary[] = [];
    let i = start;
    for (; i >= 0 && runs.length < q.limit; i--) {
      const s = this.#order[i]!;
      if (match(s)) runs.push(s);
    }
    let more = false;
    for (; i >= 0; i--) {
      if (match(this.#order[i]!)) {
        more = true;
        break;
      }
    }
    const unfiltered = q.projectId === undefined && !statuses && q.definitionId === undefined && q.view === undefined && labels.length === 0;
    const total = unfiltered ? this.#order.length : this.#order.reduce((n, s) => n + (match(s) ? 1 : 0), 0);
    const last = runs.at(-1);
    return { runs, total, ...(more && last ? { nextCursor: encodeCursor(last) } : {}) };
  }
}
