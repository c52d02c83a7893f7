import { FINAL_RUN_STATUSES, RunQuery, type RunQueryResult, type RunSummary } from "@orch/contracts";

/**
 * The run index: one summary per run, as the core publishes it with each transition, ordered newest first for
 * listing. Pure and in memory: the projection around it loads it from and saves it to the
 * `run_index` bucket.
 *
 * Besides the order of all runs, it keeps the same order per project, per status, per definition,
 * per view and per label (`key=value`), and a count per combination of project, status, definition
 * and view. A query walks the smallest ordering its filter allows (a union of orderings, merged, for
 * a set of statuses) from the cursor, so a page costs what that ordering skips, not what the index
 * holds; its `total` is a sum over the combinations (few: projects × statuses × definitions × views),
 * or, with a label filter, a count over the smallest ordering.
 */

export class CursorError extends Error {
  override readonly name = "CursorError";
  readonly code = "BAD_REQUEST";
}

type Key = readonly [number, string];
const keyOf = (s: Pick<RunSummary, "createdAt" | "runId">): Key => [s.createdAt, s.runId];
const cmp = (a: Key, b: Key) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
const cmpTo = (s: RunSummary, k: Key) => s.createdAt - k[0] || (s.runId < k[1] ? -1 : s.runId > k[1] ? 1 : 0);

export function encodeCursor(s: Pick<RunSummary, "createdAt" | "runId">): string {
  return Buffer.from(`${s.createdAt}:${s.runId}`).toString("base64url");
}

function decodeCursor(c: string): Key {
  const m = /^(\d+):([A-Za-z0-9_-]{1,128})$/.exec(Buffer.from(c, "base64url").toString());
  if (!m) throw new CursorError("invalid cursor");
  return [Number(m[1]), m[2]!];
}

/** Summaries ascending by (createdAt, runId). New runs are the newest, so most inserts append. */
class Ordering {
  readonly items: RunSummary[] = [];

  get size(): number {
    return this.items.length;
  }

  /** The position of the first entry not older than `k`. */
  lowerBound(k: Key): number {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cmpTo(this.items[mid]!, k) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insert(s: RunSummary): void {
    const last = this.items.at(-1);
    if (!last || cmp(keyOf(last), keyOf(s)) < 0) this.items.push(s);
    else this.items.splice(this.lowerBound(keyOf(s)), 0, s);
  }

  /** Puts `s` in place of the entry with the same key (the run's newer summary). */
  replace(s: RunSummary): void {
    const i = this.lowerBound(keyOf(s));
    if (this.items[i]?.runId === s.runId) this.items[i] = s;
    else this.insert(s);
  }

  remove(s: RunSummary): void {
    const i = this.lowerBound(keyOf(s));
    if (this.items[i]?.runId === s.runId) this.items.splice(i, 1);
  }
}

/** Orderings by one field's value, created on first use and dropped when empty. */
class Partition {
  readonly #by = new Map<string, Ordering>();

  get(value: string): Ordering | undefined {
    return this.#by.get(value);
  }

  add(value: string, s: RunSummary): void {
    let o = this.#by.get(value);
    if (!o) this.#by.set(value, (o = new Ordering()));
    o.insert(s);
  }

  replace(value: string, s: RunSummary): void {
    this.#by.get(value)?.replace(s);
  }

  delete(value: string, s: RunSummary): void {
    const o = this.#by.get(value);
    if (!o) return;
    o.remove(s);
    if (o.size === 0) this.#by.delete(value);
  }
}

interface Combination {
  projectId: string;
  status: string;
  definitionId: string;
  view: string;
  count: number;
  /** Events of those runs (the sum of their `seq`). */
  events: number;
}

const comboKey = (s: RunSummary) => `${s.projectId}\u0000${s.status}\u0000${s.definition.id}\u0000${s.view}`;
const labelKeys = (s: RunSummary) => Object.entries(s.labels).map(([k, v]) => `${k}=${v}`);
const EMPTY = new Ordering();

/** Walks orderings newest first from below `from` (exclusive; everything when absent), merged. */
function* newestFirst(orderings: readonly Ordering[], from: Key | undefined): Generator<RunSummary> {
  if (orderings.length === 1) {
    const items = orderings[0]!.items;
    for (let i = (from ? orderings[0]!.lowerBound(from) : items.length) - 1; i >= 0; i--) yield items[i]!;
    return;
  }
  const pos = orderings.map((o) => (from ? o.lowerBound(from) : o.size) - 1);
  for (;;) {
    let best = -1;
    for (let j = 0; j < orderings.length; j++) {
      if (pos[j]! < 0) continue;
      if (best < 0 || cmp(keyOf(orderings[j]!.items[pos[j]!]!), keyOf(orderings[best]!.items[pos[best]!]!)) > 0) best = j;
    }
    if (best < 0) return;
    yield orderings[best]!.items[pos[best]!--]!;
  }
}

export class RunIndex {
  readonly #byId = new Map<string, RunSummary>();
  readonly #all = new Ordering();
  readonly #byProject = new Partition();
  readonly #byStatus = new Partition();
  readonly #byDefinition = new Partition();
  readonly #byView = new Partition();
  readonly #byLabel = new Partition();
  readonly #combos = new Map<string, Combination>();

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
    this.#put(prev, s);
  }

  /** Replaces `prev` (if any) by `s` in every ordering and count. */
  #put(prev: RunSummary | undefined, s: RunSummary): void {
    this.#byId.set(s.runId, s);
    if (prev && cmp(keyOf(prev), keyOf(s)) !== 0) {
      // Its place in time moved (an event arrived before `run.created`): out of everything, back in.
      this.#unlink(prev);
      prev = undefined;
    }
    if (!prev) {
      this.#all.insert(s);
      this.#byProject.add(s.projectId, s);
      this.#byStatus.add(s.status, s);
      this.#byDefinition.add(s.definition.id, s);
      this.#byView.add(s.view, s);
      for (const l of labelKeys(s)) this.#byLabel.add(l, s);
      this.#count(s, 1);
      return;
    }
    this.#all.replace(s);
    this.#move(this.#byProject, prev.projectId, s.projectId, s);
    this.#move(this.#byStatus, prev.status, s.status, s);
    this.#move(this.#byDefinition, prev.definition.id, s.definition.id, s);
    this.#move(this.#byView, prev.view, s.view, s);
    const before = new Set(labelKeys(prev));
    for (const l of labelKeys(s)) {
      if (before.delete(l)) this.#byLabel.replace(l, s);
      else this.#byLabel.add(l, s);
    }
    for (const l of before) this.#byLabel.delete(l, prev);
    const [a, b] = [comboKey(prev), comboKey(s)];
    if (a !== b) {
      this.#count(prev, -1);
      this.#count(s, 1);
    } else {
      const c = this.#combos.get(a);
      if (c) c.events += s.seq - prev.seq;
    }
  }

  #move(p: Partition, from: string, to: string, s: RunSummary): void {
    if (from === to) {
      p.replace(to, s);
      return;
    }
    p.delete(from, s);
    p.add(to, s);
  }

  #unlink(s: RunSummary): void {
    this.#all.remove(s);
    this.#byProject.delete(s.projectId, s);
    this.#byStatus.delete(s.status, s);
    this.#byDefinition.delete(s.definition.id, s);
    this.#byView.delete(s.view, s);
    for (const l of labelKeys(s)) this.#byLabel.delete(l, s);
    this.#count(s, -1);
  }

  #count(s: RunSummary, delta: number): void {
    const k = comboKey(s);
    const c = this.#combos.get(k);
    if (c) {
      c.count += delta;
      c.events += delta * s.seq;
      if (c.count <= 0) this.#combos.delete(k);
    } else if (delta > 0) {
      this.#combos.set(k, { projectId: s.projectId, status: s.status, definitionId: s.definition.id, view: s.view, count: delta, events: delta * s.seq });
    }
  }

  /** Finished runs that ended before `cutoff` (epoch ms), oldest index order. */
  *finishedBefore(cutoff: number): Iterable<RunSummary> {
    for (const s of this.#byId.values()) if (FINAL_RUN_STATUSES.has(s.status) && (s.finishedAt ?? s.updatedAt) < cutoff) yield s;
  }

  /** Takes a run out of every ordering and count (its history was purged). */
  remove(runId: string): boolean {
    const s = this.#byId.get(runId);
    if (!s) return false;
    this.#unlink(s);
    this.#byId.delete(runId);
    return true;
  }

  /** Runs whose summary says they wait for results of attempts in flight. */
  *inflight(): Iterable<RunSummary> {
    for (const s of this.#byId.values()) if ((s.inflight ?? 0) > 0) yield s;
  }

  /**
   * Puts the run's summary as a transition published it; returns it, or undefined when the index
   * already holds a newer one (a transition seen twice, or out of order, changes nothing).
   */
  put(s: RunSummary): RunSummary | undefined {
    const prev = this.#byId.get(s.runId);
    if (prev && (prev.seq > s.seq || (prev.seq === s.seq && prev.updatedAt >= s.updatedAt))) return undefined;
    this.#put(prev, s);
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

    // The smallest ordering (or union of orderings) that holds every match.
    const candidates: Ordering[][] = [[this.#all]];
    if (q.projectId !== undefined) candidates.push([this.#byProject.get(q.projectId) ?? EMPTY]);
    if (statuses) candidates.push([...statuses].map((st) => this.#byStatus.get(st) ?? EMPTY));
    if (q.definitionId !== undefined) candidates.push([this.#byDefinition.get(q.definitionId) ?? EMPTY]);
    if (q.view !== undefined) candidates.push([this.#byView.get(q.view) ?? EMPTY]);
    for (const [k, v] of labels) candidates.push([this.#byLabel.get(`${k}=${v}`) ?? EMPTY]);
    const sizeOf = (os: Ordering[]) => os.reduce((n, o) => n + o.size, 0);
    const source = candidates.reduce((best, c) => (sizeOf(c) < sizeOf(best) ? c : best));

    const runs: RunSummary[] = [];
    let more = false;
    for (const s of newestFirst(source, q.cursor ? decodeCursor(q.cursor) : undefined)) {
      if (!match(s)) continue;
      if (runs.length === q.limit) {
        more = true;
        break;
      }
      runs.push(s);
    }

    let total = 0;
    let events = 0;
    if (labels.length > 0) {
      for (const o of source)
        for (const s of o.items)
          if (match(s)) {
            total++;
            events += s.seq;
          }
    } else {
      for (const c of this.#combos.values()) {
        if (
          (q.projectId === undefined || c.projectId === q.projectId) &&
          (statuses === undefined || statuses.has(c.status)) &&
          (q.definitionId === undefined || c.definitionId === q.definitionId) &&
          (q.view === undefined || c.view === q.view)
        ) {
          total += c.count;
          events += c.events;
        }
      }
    }
    const last = runs.at(-1);
    return { runs, total, events, ...(more && last ? { nextCursor: encodeCursor(last) } : {}) };
  }
}
