import { CronExpressionParser } from "cron-parser";
import { ScheduleSpec, type ScheduleSpecInput } from "@orch/contracts";
import { hashJson } from "./hash.js";

/**
 * When a schedule is due, pure: every function here is a function of the spec and the times it is
 * given (no clock of its own), so the kernel's decisions replay the same from a stored run.
 *
 *   due times:  cron  → the expression's times in its time zone (cron-parser, 5 fields or 6 with seconds)
 *               every → k × everyMs since the epoch
 *   a firing of due time t is made at t + jitter(schedule, t) (0…jitterMs, derived from both)
 *   its run:    `<schedule>-<t>` (or `<schedule>-now-<t>` triggered by hand), created by `create:<that id>`
 *
 * A DST gap skips nothing and doubles nothing: a local time that does not exist fires at the first
 * time after it (02:30 on a spring-forward day fires at 03:30), one repeated fires once.
 */

/** A due time later than this after it (beyond its jitter) was missed: no scheduler was there to fire it. */
export const LATE_GRACE_MS = 60_000;
/** The most due times one backfill creates. */
export const MAX_BACKFILL = 1_000;

export class InvalidScheduleError extends Error {
  override readonly name = "InvalidScheduleError";
  readonly code = "INVALID";
}

/** The spec with its defaults, or the reasons it is not one (a bad cron expression among them). */
export function parseScheduleSpec(input: unknown): ScheduleSpec {
  const r = ScheduleSpec.safeParse(input);
  if (!r.success) throw new InvalidScheduleError(r.error.issues.map((i) => `${i.path.join(".") || "spec"}: ${i.message}`).join("; "));
  if (r.data.cron !== undefined) {
    try {
      CronExpressionParser.parse(r.data.cron, { tz: r.data.timezone, strict: false });
    } catch (err) {
      throw new InvalidScheduleError(`cron: ${(err as Error).message}`, { cause: err });
    }
  }
  return r.data;
}

type When = Pick<ScheduleSpec, "cron" | "timezone" | "everyMs">;

/** The first due time strictly after `after`. */
export function nextDue(spec: When, after: number): number {
  if (spec.everyMs !== undefined) return (Math.floor(after / spec.everyMs) + 1) * spec.everyMs;
  const e = CronExpressionParser.parse(spec.cron!, { currentDate: new Date(after), tz: spec.timezone });
  // cron-parser starts at the next whole second: a due time at exactly `after` is not "after".
  for (;;) {
    const t = e.next().getTime();
    if (t > after) return t;
  }
}

/**
 * The due times in `[from, to]`, the latest `max` of them in order, and whether there were more.
 * Walks back from `to` (cron-parser's `prev`), so a long downtime costs `max` steps, not one per due time.
 */
export function dueBetween(spec: When, from: number, to: number, max: number): { times: number[]; more: boolean } {
  if (to < from) return { times: [], more: false };
  if (spec.everyMs !== undefined) {
    const every = spec.everyMs;
    const first = Math.ceil(from / every);
    const last = Math.floor(to / every);
    const count = Math.max(0, last - first + 1);
    const start = Math.max(first, last - max + 1);
    const times: number[] = [];
    for (let k = start; k <= last; k++) times.push(k * every);
    return { times, more: count > times.length };
  }
  // Back from `to` to find where the latest `max` start (cheap however long the range), then forward
  // from there: `prev` skips a local time that DST removed, `next` moves it after the gap, and the
  // due times must be the ones `nextDue` arms.
  const back = CronExpressionParser.parse(spec.cron!, { currentDate: new Date(to + 1), tz: spec.timezone });
  let start = from - 1;
  let seen = 0;
  for (;;) {
    let t: number;
    try {
      t = back.prev().getTime();
    } catch {
      break; // nothing earlier
    }
    if (t > to) continue;
    if (t < from) break;
    if (++seen > max) {
      start = t;
      break;
    }
  }
  const fwd = CronExpressionParser.parse(spec.cron!, { currentDate: new Date(start), tz: spec.timezone });
  const times: number[] = [];
  for (;;) {
    const t = fwd.next().getTime();
    if (t > to) break;
    if (t >= from && t > start) times.push(t);
  }
  return { times: times.slice(-max), more: seen > max || times.length > max };
}

/** The jitter of due time `at` of a schedule: the same whenever it is computed (armed again after an update). */
export function jitterOf(scheduleId: string, at: number, jitterMs: number): number {
  if (jitterMs <= 0) return 0;
  return parseInt(hashJson([scheduleId, at]).slice(0, 8), 16) % (jitterMs + 1);
}

/** The run a schedule creates for due time `at` (by hand: a run of its own, never a due time's). */
export function scheduledRunId(scheduleId: string, at: number, byHand = false): string {
  return byHand ? `${scheduleId}-now-${at}` : `${scheduleId}-${at}`;
}

export type { ScheduleSpecInput };
