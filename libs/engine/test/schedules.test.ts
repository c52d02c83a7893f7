import { describe, expect, it } from "vitest";
import type { KernelEffect } from "../src/index.js";
import { dueBetween, jitterOf, nextDue, parseScheduleSpec, scheduledRunId } from "../src/index.js";
import { Drive, expectRefused } from "./drive.js";

/**
 * Schedules: when a spec is due (cron in a time zone, with or without seconds, DST; intervals), and
 * the `schedule` built-in's runs with a fake clock: a firing per due time whose create is made from
 * the schedule and the due time, overlap (skip, queue, cancel_previous) on the created runs' reports,
 * catch-up (none, one, all) after downtime, pause, resume, update, trigger and backfill.
 */

const iso = (s: string) => Date.parse(s);
const creates = { definition: { id: "job" }, input: { goal: "nightly ${scheduledAt}" } };

describe("when a schedule is due (pure)", () => {
  it("cron in UTC, with seconds or without", () => {
    const five = parseScheduleSpec({ cron: "0 3 * * *", creates });
    expect(five.timezone).toBe("UTC");
    expect(nextDue(five, iso("2025-01-01T02:00:00Z"))).toBe(iso("2025-01-01T03:00:00Z"));
    // Strictly after: a due time at exactly `after` is the next day's.
    expect(nextDue(five, iso("2025-01-01T03:00:00Z"))).toBe(iso("2025-01-02T03:00:00Z"));
    const six = parseScheduleSpec({ cron: "*/15 * * * * *", creates });
    expect(nextDue(six, iso("2025-01-01T00:00:07.500Z"))).toBe(iso("2025-01-01T00:00:15Z"));
  });

  it("cron in a time zone across DST: local time kept, a missing hour fires once after it, a repeated one once", () => {
    const ny = parseScheduleSpec({ cron: "0 9 * * *", timezone: "America/New_York", creates });
    expect(new Date(nextDue(ny, iso("2025-03-09T05:00:00Z"))).toISOString()).toBe("2025-03-09T13:00:00.000Z"); // EDT
    expect(new Date(nextDue(ny, iso("2025-03-07T12:00:00Z"))).toISOString()).toBe("2025-03-07T14:00:00.000Z"); // EST
    const gap = parseScheduleSpec({ cron: "30 2 * * *", timezone: "America/New_York", creates });
    const day = dueBetween(gap, iso("2025-03-08T12:00:00Z"), iso("2025-03-10T12:00:00Z"), 10).times;
    expect(day).toHaveLength(2);
    const repeat = parseScheduleSpec({ cron: "30 1 * * *", timezone: "America/New_York", creates });
    const back = dueBetween(repeat, iso("2025-11-01T12:00:00Z"), iso("2025-11-03T12:00:00Z"), 10).times;
    expect(back).toHaveLength(2);
  });

  it("intervals are k × everyMs since the epoch; dueBetween keeps the latest `max`", () => {
    const every = parseScheduleSpec({ everyMs: 60_000, creates });
    expect(nextDue(every, 125_000)).toBe(180_000);
    expect(dueBetween(every, 60_000, 600_000, 3)).toEqual({ times: [480_000, 540_000, 600_000], more: true });
    expect(dueBetween(every, 61_000, 179_000, 3)).toEqual({ times: [120_000], more: false });
    const cron = parseScheduleSpec({ cron: "0 * * * *", creates });
    expect(dueBetween(cron, iso("2025-01-01T00:00:00Z"), iso("2025-01-01T05:30:00Z"), 2)).toEqual({
      times: [iso("2025-01-01T04:00:00Z"), iso("2025-01-01T05:00:00Z")],
      more: true,
    });
  });

  it("refuses what is not a schedule, saying why", () => {
    expect(() => parseScheduleSpec({ cron: "61 * * * *", creates })).toThrow(/cron/);
    expect(() => parseScheduleSpec({ cron: "0 3 * * *", timezone: "Mars/Olympus", creates })).toThrow(/IANA/);
    expect(() => parseScheduleSpec({ creates })).toThrow(/exactly one of cron and everyMs/);
    expect(() => parseScheduleSpec({ cron: "0 3 * * *", everyMs: 60_000, creates })).toThrow(/exactly one/);
    expect(() => parseScheduleSpec({ everyMs: 60_000 })).toThrow(/creates/);
  });

  it("jitter is derived from the schedule and the due time, within its bound", () => {
    const j = jitterOf("s1", 1_000_000, 5_000);
    expect(j).toBe(jitterOf("s1", 1_000_000, 5_000));
    expect(j).toBeGreaterThanOrEqual(0);
    expect(j).toBeLessThanOrEqual(5_000);
    expect(jitterOf("s1", 1_000_000, 0)).toBe(0);
  });
});

type CommandTimer = Extract<KernelEffect, { kind: "timer"; op: "set" }> & { command: Record<string, unknown> };
const commandsOf = (effects: KernelEffect[]) =>
  effects.filter((e): e is CommandTimer => e.kind === "timer" && e.op === "set" && e.timerKind === "command").map((e) => e.command);
const createsOf = (effects: KernelEffect[]) => commandsOf(effects).filter((c) => c.type === "run.create");

const MIN = 60_000;
const T = 1_000 * MIN; // a whole minute

function schedule(spec: Record<string, unknown>, now = T + 1): Drive {
  const d = Drive.of("schedule", { runId: "nightly", input: { creates, ...spec }, autoStart: true }, { now });
  expect(d.status).toBe("waiting");
  return d;
}

/** Fires the armed schedule timer at `now` (or when it is due) and returns the creates it sent. */
function fireAt(d: Drive, now?: number) {
  const t = d.timer("tick")!;
  expect(t, "a schedule timer armed").toBeDefined();
  d.at(now ?? t.dueAt);
  d.fire(t.timerId);
  return createsOf(d.last.effects);
}

describe("the schedule built-in (kernel, fake clock)", () => {
  it("arms the next due time, and at each creates its run once: ids from the schedule and the due time, labelled", () => {
    const d = schedule({ everyMs: MIN });
    expect(d.timer("tick")).toMatchObject({ timerId: `nightly.sched.0.${T + MIN}`, dueAt: T + MIN });
    const [c] = fireAt(d);
    const runId = scheduledRunId("nightly", T + MIN);
    expect(c).toMatchObject({
      type: "run.create",
      runId,
      commandId: `create:${runId}`,
      definition: { id: "job" },
      input: { goal: `nightly ${new Date(T + MIN).toISOString()}` },
      labels: { schedule: "nightly", scheduled_at: new Date(T + MIN).toISOString() },
      reportTo: "nightly",
    });
    expect(d.timer("tick")).toMatchObject({ dueAt: T + 2 * MIN });
    // The same tick again (redelivered) changes nothing.
    expect(d.apply({ type: "timer", timerId: `nightly.sched.0.${T + MIN}`, kind: "tick" }).changed).toBe(false);
    expect(d.view().schedule).toMatchObject({ nextAt: T + 2 * MIN, lastAt: T + MIN, fired: 1, active: [{ runId, at: T + MIN }] });
  });

  it("an interval's template also has `slot`, the interval's number since the epoch", () => {
    const d = schedule({ everyMs: MIN, creates: { definition: { id: "job" }, input: { slot: "${slot}", at: "${at}" } } });
    const [c] = fireAt(d);
    expect(c!.input).toEqual({ slot: (T + MIN) / MIN, at: T + MIN });
  });

  it("jitter delays the firing, not the due time the run is for", () => {
    const d = schedule({ everyMs: MIN, jitterMs: 10_000 });
    const t = d.timer("tick")!;
    expect(t.dueAt - (T + MIN)).toBe(jitterOf("nightly", T + MIN, 10_000));
    const [c] = fireAt(d);
    expect(c!.runId).toBe(scheduledRunId("nightly", T + MIN));
  });

  it("overlap skip: a due time while its run goes is skipped; once it reported its end, the next fires", () => {
    const d = schedule({ everyMs: MIN, overlap: "skip" });
    const [first] = fireAt(d);
    expect(fireAt(d)).toEqual([]);
    expect(d.eventsOf("schedule.skipped").map((e) => e.data)).toEqual([{ scheduledAt: T + 2 * MIN, reason: "overlap", active: [first!.runId] }]);
    d.ok(d.signal({ name: "child_ended", runId: first!.runId as string, status: "completed" }));
    expect(fireAt(d)).toHaveLength(1);
    // A report about a run it does not follow changes nothing.
    expect(d.signal({ name: "child_ended", runId: "other", status: "completed" }).changed).toBe(false);
  });

  it("overlap allow: each due time gets its run, whatever goes", () => {
    const d = schedule({ everyMs: MIN, overlap: "allow" });
    const [first] = fireAt(d);
    const [second] = fireAt(d);
    expect(second!.runId).toBe(scheduledRunId("nightly", T + 2 * MIN));
    expect(d.view().schedule!.active.map((a) => a.runId)).toEqual([first!.runId, second!.runId]);
  });

  it("overlap queue: due times wait for the run going (bounded), then each gets its run in order", () => {
    const d = schedule({ everyMs: MIN, overlap: "queue", queueMax: 2 });
    const [first] = fireAt(d);
    fireAt(d);
    fireAt(d);
    fireAt(d); // beyond queueMax: skipped
    expect(d.view().schedule).toMatchObject({ queued: [T + 2 * MIN, T + 3 * MIN], skipped: 1 });
    d.ok(d.signal({ name: "child_ended", runId: first!.runId as string, status: "failed" }));
    expect(createsOf(d.last.effects).map((c) => c.runId)).toEqual([scheduledRunId("nightly", T + 2 * MIN)]);
    expect(d.view().schedule).toMatchObject({ queued: [T + 3 * MIN] });
  });

  it("overlap cancel_previous: the run going is told to cancel, the new one is created at once", () => {
    const d = schedule({ everyMs: MIN, overlap: "cancel_previous" });
    const [first] = fireAt(d);
    fireAt(d);
    const cmds = commandsOf(d.last.effects);
    expect(cmds.find((c) => c.type === "run.signal")).toMatchObject({ runId: first!.runId, signal: { name: "cancel" } });
    expect(cmds.filter((c) => c.type === "run.create").map((c) => c.runId)).toEqual([scheduledRunId("nightly", T + 2 * MIN)]);
  });

  it("catch-up after downtime: none fires only what is on time, one the latest missed, all up to the bound", () => {
    const down = T + 30 * MIN + 5_000; // the scheduler was away for half an hour
    const none = schedule({ everyMs: MIN, catchUp: "none" });
    // The latest due time is on time (5 s late, within the grace): only it fires.
    expect(fireAt(none, down).map((c) => c.runId)).toEqual([scheduledRunId("nightly", T + 30 * MIN)]);
    expect(none.eventsOf("schedule.missed")[0]!.data).toMatchObject({ policy: "none", count: 9, more: true });
    expect(none.timer("tick")!.dueAt).toBe(T + 31 * MIN);
    const one = schedule({ everyMs: MIN, catchUp: "one" });
    expect(fireAt(one, down).map((c) => c.runId)).toEqual([scheduledRunId("nightly", T + 30 * MIN)]);
    const all = schedule({ everyMs: MIN, catchUp: "all", catchUpMax: 3, overlap: "queue" });
    const made = fireAt(all, down);
    expect(made.map((c) => c.runId)).toEqual([scheduledRunId("nightly", T + 28 * MIN)]);
    expect(all.view().schedule).toMatchObject({ queued: [T + 29 * MIN, T + 30 * MIN] });
    // Every due time missed (none within the grace): `none` fires nothing.
    const hourly = schedule({ everyMs: 60 * MIN, catchUp: "none" }, 60 * MIN);
    expect(fireAt(hourly, 60 * MIN * 5 + 10 * MIN)).toEqual([]);
    expect(hourly.timer("tick")!.dueAt).toBe(60 * MIN * 6);
  });

  it("pause withdraws the timer and fires nothing; resume arms from now (the paused due times are not caught up)", () => {
    const d = schedule({ everyMs: MIN });
    const armed = d.timer("tick")!;
    d.ok(d.signal({ name: "pause" }));
    expect(d.status).toBe("paused");
    expect(d.timers.size).toBe(0);
    expect(d.apply({ type: "timer", timerId: armed.timerId, kind: "tick" }).changed).toBe(false);
    d.at(T + 10 * MIN + 1);
    d.ok(d.signal({ name: "resume" }));
    expect(d.timer("tick")).toMatchObject({ dueAt: T + 11 * MIN });
    d.ok(d.signal({ name: "cancel" }));
    expect(d.timers.size).toBe(0);
    expectRefused(d.signal({ name: "schedule_trigger" }), "TERMINAL_STATE");
  });

  it("schedule_set replaces the schedule and re-arms; the same again changes nothing; a bad one is refused", () => {
    const d = schedule({ everyMs: MIN });
    d.ok(d.signal({ name: "schedule_set", spec: { cron: "0 0 * * * *", creates } }));
    expect(d.timerEffects().map((t) => t.op)).toEqual(["cancel", "set"]);
    expect(d.timer("tick")).toMatchObject({ timerId: `nightly.sched.1.${nextDue({ cron: "0 0 * * * *", timezone: "UTC" }, T + 1)}` });
    expect(d.signal({ name: "schedule_set", spec: { cron: "0 0 * * * *", creates } }).changed).toBe(false);
    expectRefused(d.signal({ name: "schedule_set", spec: { cron: "nope", creates } }), "INVALID", /cron/);
  });

  it("trigger now creates a run of its own, whatever the overlap; backfill creates each past due time once", () => {
    const d = schedule({ everyMs: MIN, overlap: "skip" }, T + 10 * MIN + 1);
    fireAt(d);
    d.ok(d.signal({ name: "schedule_trigger" }));
    expect(createsOf(d.last.effects).map((c) => c.runId)).toEqual([scheduledRunId("nightly", d.now, true)]);
    d.ok(d.signal({ name: "schedule_backfill", from: T + MIN, to: T + 3 * MIN }));
    const back = createsOf(d.last.effects);
    expect(back.map((c) => c.runId)).toEqual([1, 2, 3].map((k) => scheduledRunId("nightly", T + k * MIN)));
    expect(back.every((c) => c.reportTo === undefined)).toBe(true);
    expectRefused(d.signal({ name: "schedule_backfill", from: 0, to: T }), "INVALID", /more than/);
  });

  it("a run that is not a schedule refuses schedule signals; a schedule's creation needs a schedule", () => {
    expectRefused(Drive.of("job", { autoStart: false }).signal({ name: "schedule_trigger" }), "ILLEGAL_TRANSITION");
    expect(() => Drive.of("schedule", { input: { everyMs: 5 } })).toThrow(/everyMs|creates/);
  });

  it("a report that arrives after the schedule ended is ignored: nothing changes, nothing is refused", () => {
    const d = schedule({ everyMs: MIN, overlap: "queue" });
    const [first] = fireAt(d);
    fireAt(d); // queued behind the first
    d.ok(d.signal({ name: "cancel" }));
    const before = d.view().schedule;
    const late = d.signal({ name: "child_ended", runId: first!.runId as string, status: "cancelled" });
    expect(late.error ?? null).toBeNull();
    expect(late.changed).toBe(false);
    expect(createsOf(late.effects)).toEqual([]);
    expect(d.view().schedule).toEqual(before);
    expect(d.eventsOf("schedule.run_ended")).toEqual([]);
  });

  it("a run created to report its end tells its schedule once, when it ends", () => {
    const d = Drive.of("job", { runId: "nightly-1", reportTo: "nightly", autoStart: true });
    d.ok(d.signal({ name: "cancel" }));
    expect(commandsOf(d.last.effects)).toEqual([
      expect.objectContaining({
        type: "run.signal",
        runId: "nightly",
        commandId: "ended.nightly-1",
        signal: { name: "child_ended", runId: "nightly-1", status: "cancelled" },
      }),
    ]);
    expect(d.state.reported).toBe(true);
  });
});
