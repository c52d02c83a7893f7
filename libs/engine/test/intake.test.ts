import { describe, expect, it } from "vitest";
import { DEFAULT_WORKFLOW_STATE_MAP, ticketRunId, type Ticket } from "@orch/contracts";
import {
  INTAKE_DEFAULTS,
  intakeRunId,
  syncAnswered,
  syncFired,
  syncTimerId,
  ticketRunEnded,
  ticketWrites,
  type IntakeRules,
  type IntakeState,
} from "../src/index.js";

/** Ticket intake's policy, pure: what a sync's answer takes in, the breaker, quarantine, the writes back. */

const RUN = intakeRunId("ticketing.linear");
const rules: IntakeRules = {
  provider: "ticketing.linear",
  everyMs: 60_000,
  query: { assignedToMe: true, states: [], limit: 100 },
  stateMap: DEFAULT_WORKFLOW_STATE_MAP.map((m) => ({ ...m })),
  commentSummaries: true,
  attachPrLinks: true,
  ...INTAKE_DEFAULTS,
  retry: { ...INTAKE_DEFAULTS.retry },
  breaker: { failures: 3, coolDownMs: 600_000 },
  definition: { id: "ticket" },
};
const fresh = (): IntakeState => ({ rules, n: 0, failures: 0, taken: {}, timer: { timerId: syncTimerId(RUN, 1), dueAt: 0 } });
const ticket = (id: string, state = "Todo", extra: Partial<Ticket> = {}): Ticket => ({
  provider: "ticketing.linear",
  id,
  key: `ENG-${id}`,
  title: `Ticket ${id}`,
  description: `Do ${id}`,
  labels: ["backend"],
  state,
  url: `https://linear.app/acme/issue/ENG-${id}`,
  ...extra,
});

/** Fires the armed timer and answers the sync it dispatched. */
function sync(s: IntakeState, now: number, answer: { tickets: Ticket[] } | { error: { code: string; message: string; retryable: boolean } }) {
  const f = syncFired(RUN, s, s.timer!.timerId, now)!;
  const a = syncAnswered(
    RUN,
    "p1",
    f.state,
    "tickets" in answer ? { attemptId: f.attemptId, ok: true, tickets: answer.tickets } : { attemptId: f.attemptId, ok: false, error: answer.error },
    now + 10,
  )!;
  return { fired: f, ...a };
}

describe("ticket intake", () => {
  it("takes each new ticket in once, as a run named by (provider, ticket id), its input the ticket", () => {
    const r1 = sync(fresh(), 1_000, { tickets: [ticket("1"), ticket("2")] });
    expect(r1.fired.effects.arm).toEqual({ timerId: syncTimerId(RUN, 2), dueAt: 61_000 });
    const creates = r1.effects.commands;
    expect(creates.map((c) => c.runId)).toEqual([ticketRunId("ticketing.linear", "1"), ticketRunId("ticketing.linear", "2")]);
    expect(creates[0]).toMatchObject({
      type: "run.create",
      commandId: `create:${ticketRunId("ticketing.linear", "1")}`,
      definition: { id: "ticket" },
      title: "ENG-1: Ticket 1",
      labels: { ticket: "ENG-1", tracker_state: "Todo", tracker: "ticketing.linear" },
      input: {
        key: "ENG-1",
        title: "Ticket 1",
        description: "Do 1",
        labels: ["backend"],
        url: "https://linear.app/acme/issue/ENG-1",
        tracker: { provider: "ticketing.linear", id: "1" },
      },
      autoStart: true,
    });
    // The next sync sees them again and one more: only the new one is created.
    const r2 = sync(r1.state, 61_000, { tickets: [ticket("1"), ticket("2"), ticket("3")] });
    expect(r2.effects.commands.map((c) => c.runId)).toEqual([ticketRunId("ticketing.linear", "3")]);
  });

  it("two syncs in flight: only the current attempt's answer is applied; a redelivered answer changes nothing", () => {
    const s = fresh();
    const f1 = syncFired(RUN, s, s.timer!.timerId, 1_000)!;
    const f2 = syncFired(RUN, f1.state, f1.state.timer!.timerId, 61_000)!;
    const answer = (attemptId: string) => ({ attemptId, ok: true as const, tickets: [ticket("1")] });
    expect(syncAnswered(RUN, "p1", f2.state, answer(f1.attemptId), 61_010)).toBeNull();
    const a = syncAnswered(RUN, "p1", f2.state, answer(f2.attemptId), 61_020)!;
    expect(a.effects.commands).toHaveLength(1);
    expect(syncAnswered(RUN, "p1", a.state, answer(f2.attemptId), 61_030)).toBeNull();
    // A stale timer dispatches nothing.
    expect(syncFired(RUN, a.state, f1.state.timer!.timerId, 61_040)).toBeNull();
  });

  it("a restart (the state carried as JSON) creates nothing again; the ids alone would not either", () => {
    const r1 = sync(fresh(), 1_000, { tickets: [ticket("1")] });
    const restarted = JSON.parse(JSON.stringify(r1.state)) as IntakeState;
    expect(sync(restarted, 61_000, { tickets: [ticket("1")] }).effects.commands).toEqual([]);
    // Forgotten entirely, the same ticket still names the same run and command: the core creates it once.
    expect(sync(fresh(), 2_000, { tickets: [ticket("1")] }).effects.commands[0]!.commandId).toBe(r1.effects.commands[0]!.commandId);
  });

  it("a ticket cancelled on the tracker is not taken in; one taken in abandons its run, once", () => {
    expect(sync(fresh(), 1_000, { tickets: [ticket("9", "Canceled")] }).effects.commands).toEqual([]);
    expect(sync(fresh(), 1_000, { tickets: [ticket("9", "Won't do", { stateType: "canceled" })] }).effects.commands).toEqual([]);
    const r1 = sync(fresh(), 1_000, { tickets: [ticket("1")] });
    const r2 = sync(r1.state, 61_000, { tickets: [ticket("1", "canceled")] });
    expect(r2.effects.commands).toEqual([
      expect.objectContaining({ type: "run.signal", runId: ticketRunId("ticketing.linear", "1"), signal: { name: "event", event: "Cancelled" } }),
    ]);
    expect(r2.effects.events.map((e) => e.type)).toContain("intake.ticket_cancelled");
    expect(sync(r2.state, 121_000, { tickets: [ticket("1", "Canceled")] }).effects.commands).toEqual([]);
  });

  it("creates at most maxNewPerSync runs per sync; the rest the next time", () => {
    const many = Array.from({ length: 30 }, (_, i) => ticket(String(i)));
    const r1 = sync(fresh(), 1_000, { tickets: many });
    expect(r1.effects.commands).toHaveLength(25);
    expect(r1.effects.events.at(-1)).toMatchObject({ type: "intake.synced", data: { created: 25, deferred: 5 } });
    expect(sync(r1.state, 61_000, { tickets: many }).effects.commands).toHaveLength(5);
  });

  it("a failing tracker: backoff, then the breaker pauses the intake with an event and a status; an answer resumes it", () => {
    const err = { code: "TRACKER_ERROR", message: "list issues: injected (HTTP 503)", retryable: true };
    const f1 = sync(fresh(), 1_000, { error: err });
    expect(f1.state.failures).toBe(1);
    expect(f1.effects.arm!.dueAt).toBe(1_010 + 5_000);
    const f2 = sync(f1.state, 6_010, { error: err });
    expect(f2.effects.arm!.dueAt).toBe(6_020 + 10_000);
    const f3 = sync(f2.state, 16_020, { error: err });
    expect(f3.state.paused).toMatchObject({ until: 16_030 + 600_000 });
    expect(f3.effects.events.map((e) => e.type)).toEqual(["intake.sync_failed", "intake.paused"]);
    expect(f3.effects.arm!.dueAt).toBe(616_030);
    // A probe that fails again: still paused, no second `paused` event, the next probe a cool-down later.
    const f4 = sync(f3.state, 616_030, { error: err });
    expect(f4.state.paused).toBeDefined();
    expect(f4.effects.events.map((e) => e.type)).toEqual(["intake.sync_failed"]);
    expect(f4.fired.effects.events.map((e) => e.type)).toEqual(["intake.probing"]);
    // The tracker is back: resumed, the interval again, the tickets taken in.
    const ok = sync(f4.state, 1_216_040, { tickets: [ticket("1")] });
    expect(ok.state.paused).toBeUndefined();
    expect(ok.state.failures).toBe(0);
    expect(ok.effects.events.map((e) => e.type)).toEqual(["intake.resumed", "intake.ticket_taken", "intake.synced"]);
    expect(ok.effects.arm!.dueAt).toBe(1_216_050 + 60_000);
  });

  it("a refusal that will not change by itself (a missing key) pauses at once", () => {
    const f = sync(fresh(), 1_000, { error: { code: "TRACKER_TOKEN_MISSING", message: "no key for ticketing.linear: set LINEAR_API_KEY", retryable: false } });
    expect(f.state.paused?.reason).toContain("LINEAR_API_KEY");
    expect(f.effects.events.map((e) => e.type)).toContain("intake.paused");
  });

  it("a ticket whose run fails is run again under a new id, then quarantined, never restarted after", () => {
    const t1 = ticket("1");
    let s = sync(fresh(), 1_000, { tickets: [t1] }).state;
    const first = s.taken["1"]!.runId;
    const again = ticketRunEnded(s, "p1", { ticketId: "1", runId: first, status: "failed", ticket: t1 }, 2_000)!;
    expect(again.effects.commands[0]).toMatchObject({ type: "run.create", runId: `${first}-r2`, commandId: `create:${first}-r2` });
    // The old run's end reported twice changes nothing.
    expect(ticketRunEnded(again.state, "p1", { ticketId: "1", runId: first, status: "failed", ticket: t1 }, 2_001)).toBeNull();
    s = again.state;
    s = ticketRunEnded(s, "p1", { ticketId: "1", runId: `${first}-r2`, status: "failed", ticket: t1 }, 3_000)!.state;
    const q = ticketRunEnded(s, "p1", { ticketId: "1", runId: `${first}-r3`, status: "failed", ticket: t1 }, 4_000)!;
    expect(q.state.taken["1"]).toMatchObject({ status: "quarantined", failedRuns: 3 });
    expect(q.effects.events).toEqual([{ type: "intake.quarantined", data: { ticket: "ENG-1", runId: `${first}-r3`, failedRuns: 3 } }]);
    expect(sync(q.state, 61_000, { tickets: [t1] }).effects.commands).toEqual([]);
  });

  it("writes back through workflow_state_map: the state, a comment per stage visit, the PR link once", () => {
    const w = ticketWrites(rules, {
      runId: "tk-1",
      stage: "PRDrafted",
      visit: 1,
      summary: "A draft PR is open",
      pr: { url: "https://github.com/acme/w/pull/7", number: 7 },
    });
    expect(w).toEqual([
      { kind: "state", key: "tk-1.state.PRDrafted.1", state: "In Review" },
      { kind: "comment", key: "tk-1.stage.PRDrafted.1", body: "**PRDrafted** (In Review)\n\nA draft PR is open" },
      { kind: "link", key: "tk-1.pr.7", url: "https://github.com/acme/w/pull/7", title: "Pull request #7" },
    ]);
    // A stage the map does not name moves nothing; without summaries or links, only the state.
    expect(ticketWrites({ ...rules, commentSummaries: false, attachPrLinks: false }, { runId: "tk-1", stage: "Planning", visit: 1 })).toEqual([]);
    expect(ticketWrites({ ...rules, commentSummaries: false }, { runId: "tk-1", stage: "Implementing", visit: 2 })).toEqual([
      { kind: "state", key: "tk-1.state.Implementing.2", state: "In Progress" },
    ]);
  });
});
