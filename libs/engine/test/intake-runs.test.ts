import { describe, expect, it } from "vitest";
import { DEFAULT_WORKFLOW_STATE_MAP, RefusalCode, ticketRunId, type IntakeRules, type Ticket } from "@orch/contracts";
import type { KernelEffect } from "../src/index.js";
import { createTicketRun, INTAKE_DEFINITION, intakeRunId, syncTimerId } from "../src/index.js";
import { Drive, expectRefused } from "./drive.js";

/**
 * The `ticket.intake` built-in in the kernel, with a fake clock: its sync timer and `tickets.sync`
 * work, the answer applied whole (runs created through command timers, told to report their end
 * here), stale and redelivered answers, the breaker in the view, a failed ticket run run again at the
 * next sync then quarantined; and a ticket run's write-back (`ticket.update` work on stage entries,
 * the PR's link once it has one).
 */

const RUN = intakeRunId("ticketing.linear");
const rules: IntakeRules = {
  provider: "ticketing.linear",
  everyMs: 60_000,
  query: { assignedToMe: true, states: [], limit: 100 },
  stateMap: DEFAULT_WORKFLOW_STATE_MAP.map((m) => ({ ...m })),
  commentSummaries: true,
  attachPrLinks: true,
  retry: { initialMs: 1_000, multiplier: 2, maxMs: 10_000 },
  breaker: { failures: 2, coolDownMs: 30_000 },
  quarantineAfter: 2,
  writeAbandonAfter: 10,
  maxNewPerSync: 25,
  definition: { id: "ticket" },
  acceptEvent: "TicketAccepted",
};
const T0 = 1_000_000;
const ticket = (id: string, state = "Todo"): Ticket => ({
  provider: "ticketing.linear",
  id,
  key: `ENG-${id}`,
  title: `Ticket ${id}`,
  description: `Do ${id}`,
  labels: [],
  state,
  url: `https://linear.app/acme/issue/ENG-${id}`,
});

type CommandTimer = Extract<KernelEffect, { kind: "timer"; op: "set" }> & { command: Record<string, unknown> };
const commandsOf = (effects: KernelEffect[]) =>
  effects.filter((e): e is CommandTimer => e.kind === "timer" && e.op === "set" && e.timerKind === "command").map((e) => e.command);

function intake(): Drive {
  return Drive.of(INTAKE_DEFINITION, { runId: RUN, projectId: "p1", input: rules as unknown as Record<string, unknown>, autoStart: true }, { now: T0 });
}

/** Fires the armed sync timer; returns the attempt it dispatched. */
function fireSync(d: Drive): string {
  const t = d.timer("intake_sync")!;
  expect(t, "a sync timer armed").toBeDefined();
  d.fire(t.timerId);
  const [w] = d.newWork();
  expect(w).toMatchObject({ type: "tickets.sync", kind: "sync", payload: { provider: "ticketing.linear", query: rules.query } });
  return w!.attemptId;
}

const answer = (d: Drive, attemptId: string, tickets: Ticket[]) => d.signal({ name: "tickets_synced", attemptId, answer: { ok: true, tickets } });

describe("the ticket.intake built-in (kernel, fake clock)", () => {
  it("syncs at once, then every interval; new tickets become runs once, reporting their end to the intake", () => {
    const d = intake();
    expect(d.timer("intake_sync")).toMatchObject({ timerId: syncTimerId(RUN, 1), dueAt: T0 });
    const a1 = fireSync(d);
    expect(d.timer("intake_sync")).toMatchObject({ timerId: syncTimerId(RUN, 2), dueAt: T0 + 60_000 });
    const r = answer(d, a1, [ticket("1"), ticket("2")]);
    const creates = commandsOf(r.effects);
    expect(creates.map((c) => c.runId)).toEqual([ticketRunId("ticketing.linear", "1"), ticketRunId("ticketing.linear", "2")]);
    expect(creates[0]).toMatchObject({
      type: "run.create",
      commandId: `create:${ticketRunId("ticketing.linear", "1")}`,
      projectId: "p1",
      reportTo: RUN,
      then: { name: "event", event: "TicketAccepted" },
      input: { key: "ENG-1", tracker: { provider: "ticketing.linear", id: "1", writeBack: { attachPrLinks: true } } },
    });
    // The same answer again (redelivered), and a later sync that finds them again, create nothing.
    expect(answer(d, a1, [ticket("1"), ticket("2")]).changed).toBe(false);
    const a2 = fireSync(d);
    expect(commandsOf(answer(d, a2, [ticket("1"), ticket("2")]).effects).filter((c) => c.type === "run.create")).toEqual([]);
    expect(d.view().intake).toMatchObject({ state: "active", syncs: 2, counts: { taken: 2, active: 2, ended: 0, quarantined: 0 } });
  });

  it("a stale attempt's answer changes nothing (two syncs answered at once: only the current one counts)", () => {
    const d = intake();
    const a1 = fireSync(d);
    const a2 = fireSync(d);
    expect(answer(d, a1, [ticket("1")]).changed).toBe(false);
    expect(commandsOf(answer(d, a2, [ticket("1")]).effects)).toHaveLength(1);
  });

  it("a ticket cancelled on the tracker abandons its run (the pipeline's Cancelled event)", () => {
    const d = intake();
    answer(d, fireSync(d), [ticket("1")]);
    const r = answer(d, fireSync(d), [ticket("1", "Canceled")]);
    expect(commandsOf(r.effects)).toEqual([
      expect.objectContaining({ type: "run.signal", runId: ticketRunId("ticketing.linear", "1"), signal: { name: "event", event: "Cancelled" } }),
    ]);
  });

  it("failed syncs back off, then the breaker pauses (event and view); an answer resumes", () => {
    const d = intake();
    const fail = (attemptId: string) =>
      d.signal({ name: "tickets_synced", attemptId, answer: { ok: false, error: { code: "TRACKER_UNAVAILABLE", message: "503", retryable: true } } });
    fail(fireSync(d));
    expect(d.timer("intake_sync")).toMatchObject({ dueAt: d.now + 1_000 });
    fail(fireSync(d));
    expect(d.eventsOf("intake.paused")).toHaveLength(1);
    expect(d.view().intake).toMatchObject({ state: "paused", failures: 2, lastError: { code: "TRACKER_UNAVAILABLE" }, paused: { until: d.now + 30_000 } });
    const probe = fireSync(d);
    expect(d.eventsOf("intake.probing")).toHaveLength(1);
    answer(d, probe, []);
    expect(d.eventsOf("intake.resumed")).toHaveLength(1);
    expect(d.view().intake).toMatchObject({ state: "active", failures: 0 });
  });

  it("a failed ticket run runs again at the next sync that finds the ticket, then is quarantined", () => {
    const d = intake();
    answer(d, fireSync(d), [ticket("1")]);
    const first = ticketRunId("ticketing.linear", "1");
    d.signal({ name: "child_ended", runId: first, status: "failed" });
    const again = commandsOf(answer(d, fireSync(d), [ticket("1")]).effects);
    expect(again).toEqual([expect.objectContaining({ type: "run.create", runId: `${first}-r2`, reportTo: RUN })]);
    d.signal({ name: "child_ended", runId: `${first}-r2`, status: "failed" });
    expect(d.eventsOf("intake.quarantined")).toHaveLength(1);
    expect(commandsOf(answer(d, fireSync(d), [ticket("1")]).effects)).toEqual([]);
    expect(d.view().intake!.quarantined).toEqual([{ ticketId: "1", key: "ENG-1", runId: `${first}-r2`, failedRuns: 2 }]);
  });

  it("paused, it syncs nothing; resumed, it syncs at once; new rules are taken; a non-intake refuses intake signals", () => {
    const d = intake();
    d.ok(d.signal({ name: "pause" }));
    expect(d.timer("intake_sync")).toBeUndefined();
    d.ok(d.signal({ name: "resume" }));
    expect(d.timer("intake_sync")).toMatchObject({ dueAt: d.now });
    d.ok(d.signal({ name: "set_intake", rules: { ...rules, everyMs: 5_000 } }));
    expect(d.eventsOf("intake.updated")).toHaveLength(1);
    expect(d.signal({ name: "set_intake", rules: { ...rules, everyMs: 5_000 } }).changed).toBe(false);
    const job = Drive.of("job", { input: { goal: "x" }, autoStart: true });
    expectRefused(job.signal({ name: "tickets_synced", attemptId: "x", answer: { ok: true, tickets: [] } }), RefusalCode.IllegalTransition);
  });

  it("refuses input that is not intake rules, saying why", () => {
    expect(() => Drive.of(INTAKE_DEFINITION, { input: { provider: "ticketing.linear" }, autoStart: true })).toThrow(/intake rules.*everyMs/);
  });
});

describe("a ticket run's write-back", () => {
  const runOf = (attachPrLinks = true) => {
    const c = createTicketRun({ ...rules, attachPrLinks }, "p1", ticket("7"), ticketRunId("ticketing.linear", "7"), T0);
    return Drive.of("ticket", { runId: c.runId as string, input: c.input as Record<string, unknown>, autoStart: true }, { now: T0 });
  };
  const updates = (d: Drive, of?: KernelEffect[]) => d.newWork(of).filter((w) => w.type === "ticket.update");

  it("each stage it enters moves the ticket's state (the map) and comments, keyed by run, stage and visit", () => {
    const d = runOf();
    const r = d.event("TicketAccepted");
    const [u] = updates(d, r.effects);
    expect(u).toMatchObject({ attemptId: `${d.state.runId}.ticket.update.Planning.1`, payload: { ticket: { id: "7", key: "ENG-7" } } });
    // Made without an intake (no reportTo): no intake to hand failed writes to.
    expect((u!.payload as any).intake).toBeUndefined();
    // Planning has no tracker state in seed 003's table: a comment only.
    expect((u!.payload as any).writes).toEqual([{ kind: "comment", key: `${d.state.runId}.stage.Planning.1`, body: "**Planning**" }]);
    expect((u!.payload as any).ticket.writeBack).toBeUndefined();
    d.succeed("plan", { plan: "do it" });
    const impl = d.dispatched.filter((w) => w.type === "ticket.update").at(-1)!;
    expect((impl.payload as any).writes[0]).toEqual({ kind: "state", key: `${d.state.runId}.state.Implementing.1`, state: "In Progress" });
  });

  it("its pull request, once reported, is attached (with workflow_attach_pr_links), and not without it", () => {
    const d = runOf();
    d.event("TicketAccepted");
    const r = d.signal({ name: "pr_opened", number: 12, url: "https://github.com/acme/app/pull/12", provider: "github" });
    expect(updates(d, r.effects).flatMap((w) => (w.payload as any).writes)).toEqual([
      { kind: "link", key: `${d.state.runId}.pr.12`, url: "https://github.com/acme/app/pull/12", title: "Pull request #12" },
    ]);
    const off = runOf(false);
    off.event("TicketAccepted");
    const r2 = off.signal({ name: "pr_opened", number: 12, url: "https://github.com/acme/app/pull/12", provider: "github" });
    expect(
      updates(off, r2.effects)
        .flatMap((w) => (w.payload as any).writes)
        .filter((w: any) => w.kind === "link"),
    ).toEqual([]);
  });

  it("a ticket run made by an intake names it in its writes (where the hub hands what the tracker fails)", () => {
    const c = createTicketRun(rules, "p1", ticket("9"), ticketRunId("ticketing.linear", "9"), T0);
    const d = Drive.of("ticket", { runId: c.runId as string, input: c.input as Record<string, unknown>, reportTo: RUN, autoStart: true }, { now: T0 });
    const [u] = updates(d, d.event("TicketAccepted").effects);
    expect(u!.payload).toMatchObject({ intake: RUN, ticket: { id: "9" } });
  });

  it("a run that is not a ticket's writes nothing back", () => {
    const d = Drive.of("ticket", { input: { key: "ENG-8", title: "t" }, autoStart: true });
    const r = d.event("TicketAccepted");
    expect(updates(d, r.effects)).toEqual([]);
  });
});
