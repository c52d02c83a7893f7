import { describe, expect, it } from "vitest";
import { DEFAULT_WORKFLOW_STATE_MAP, RefusalCode, type IntakeRules, type Signal, type TicketWrite } from "@orch/contracts";
import { INTAKE_DEFINITION, intakeRunId, MAX_PENDING_WRITES, WRITE_ANSWER_TIMEOUT_MS } from "../src/index.js";
import { Drive, expectRefused } from "./drive.js";

/**
 * Ticket writes the tracker failed for longer than the hub's in-process tries, kept by the intake
 * run (kernel, fake clock): `ticket_write_failed` makes a pending write and an `intake_write` timer
 * at the intake's backoff; the timer dispatches `ticket.update` from the intake (payload writeId);
 * `ticket_written` ends it; a non-retryable failure, or too many, abandon it with an event; a
 * duplicate or stale report changes nothing; a paused intake (breaker open or run paused) holds its
 * writes until it runs again; a newer state write replaces an older one still waiting; the view
 * counts them.
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
  writeAbandonAfter: 4,
  maxNewPerSync: 25,
  definition: { id: "ticket" },
  acceptEvent: "TicketAccepted",
};
const T0 = 1_000_000;
const TICKET = { provider: "ticketing.linear" as const, id: "uuid-7", key: "ENG-7" };
const WRITES: TicketWrite[] = [
  { kind: "state", key: "tk-7.state.Implementing.1", state: "In Progress" },
  { kind: "comment", key: "tk-7.stage.Implementing.1", body: "**Implementing** (In Progress)" },
];
const UNAVAILABLE = { code: "TRACKER_UNAVAILABLE", message: "503 from the tracker", retryable: true };

function intake(): Drive {
  return Drive.of(INTAKE_DEFINITION, { runId: RUN, projectId: "p1", input: rules as unknown as Record<string, unknown>, autoStart: true }, { now: T0 });
}

const failed = (over: Partial<Extract<Signal, { name: "ticket_write_failed" }>> = {}): Signal => ({
  name: "ticket_write_failed",
  writeId: "tk-7.ticket.update.Implementing.1",
  attemptId: "tk-7.ticket.update.Implementing.1",
  ticket: TICKET,
  writes: WRITES,
  error: UNAVAILABLE,
  tries: 5,
  ...over,
});

/** Fires the armed write timer; returns the `ticket.update` work it dispatched (if any). */
function fireWrite(d: Drive) {
  const t = d.timer("intake_write");
  expect(t, "a write timer armed").toBeDefined();
  const r = d.fire(t!.timerId);
  return { r, work: d.newWork(r.effects).filter((w) => w.type === "ticket.update") };
}

describe("an intake keeps the ticket writes the tracker failed (kernel, fake clock)", () => {
  it("waits the backoff, dispatches the writes again from the intake, and forgets them once written", () => {
    const d = intake();
    const r = d.ok(d.signal(failed()));
    expect(d.eventsOf("intake.write_failed", r.effects)).toHaveLength(1);
    expect(d.timer("intake_write")).toMatchObject({ dueAt: T0 + 1_000 });
    expect(d.view().intake).toMatchObject({ pendingWrites: 1, writes: [{ ticket: "ENG-7", failures: 1, state: "waiting", dueAt: T0 + 1_000 }] });
    // The same report again (a redelivered work item after the de-duplication window): nothing.
    expect(d.signal(failed()).changed).toBe(false);

    const { work } = fireWrite(d);
    expect(work).toHaveLength(1);
    expect(work[0]).toMatchObject({
      stepId: "ticket_update",
      attemptId: `${RUN}.ticket.write.2`,
      payload: { ticket: TICKET, writes: WRITES, intake: RUN, writeId: "tk-7.ticket.update.Implementing.1" },
    });
    expect(d.view().intake).toMatchObject({ pendingWrites: 1, writes: [{ state: "in_flight" }] });

    // An answer for another attempt is stale.
    expect(d.signal({ name: "ticket_written", writeId: "tk-7.ticket.update.Implementing.1", attemptId: "other" }).changed).toBe(false);
    const done = d.ok(d.signal({ name: "ticket_written", writeId: "tk-7.ticket.update.Implementing.1", attemptId: work[0]!.attemptId }));
    expect(d.eventsOf("intake.write_landed", done.effects)).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ ticket: "ENG-7", keys: WRITES.map((w) => w.key), failures: 1 }) }),
    ]);
    expect(d.timer("intake_write")).toBeUndefined();
    expect(d.view().intake!.pendingWrites).toBe(0);
    // A late duplicate of the first report does not bring it back.
    expect(d.signal(failed()).changed).toBe(false);
  });

  it("each failed try backs off longer (the intake's retry rules), then the writes are abandoned with an event", () => {
    const d = intake();
    d.ok(d.signal(failed()));
    const waits: number[] = [];
    for (let n = 2; n <= 4; n++) {
      const before = d.now;
      const due = d.timer("intake_write")!.dueAt;
      waits.push(due - before);
      const { work } = fireWrite(d);
      d.ok(d.signal(failed({ attemptId: work[0]!.attemptId, writes: [WRITES[1]!] })));
    }
    expect(waits).toEqual([1_000, 2_000, 4_000]);
    const abandoned = d.eventsOf("intake.write_abandoned");
    expect(abandoned).toHaveLength(1);
    expect(abandoned[0]!.data).toMatchObject({ ticket: "ENG-7", failures: 4, code: "TRACKER_UNAVAILABLE", keys: [WRITES[1]!.key] });
    expect(d.timer("intake_write")).toBeUndefined();
    expect(d.view().intake!.pendingWrites).toBe(0);
  });

  it("a write the tracker refuses (not retryable) is abandoned at once", () => {
    const d = intake();
    d.ok(d.signal(failed({ error: { code: "TRACKER_REFUSED", message: "no such state", retryable: false } })));
    expect(d.eventsOf("intake.write_abandoned")).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ failures: 1, code: "TRACKER_REFUSED" }) }),
    ]);
    expect(d.timer("intake_write")).toBeUndefined();
  });

  it("a write dispatched again and never answered counts as a failed try", () => {
    const d = intake();
    d.ok(d.signal(failed()));
    fireWrite(d);
    const watchdog = d.timer("intake_write")!;
    expect(watchdog.dueAt).toBe(d.now + WRITE_ANSWER_TIMEOUT_MS);
    fireWrite(d);
    expect(d.eventsOf("intake.write_failed").at(-1)!.data).toMatchObject({ failures: 2, code: "NO_ANSWER" });
    expect(d.view().intake).toMatchObject({ pendingWrites: 1, writes: [{ state: "waiting", failures: 2 }] });
  });

  it("while the intake's breaker is open its writes wait; when it closes they go", () => {
    const d = intake();
    const syncFail = () => {
      const t = d.timer("intake_sync")!;
      d.fire(t.timerId);
      const w = d.newWork().find((x) => x.type === "tickets.sync")!;
      d.signal({ name: "tickets_synced", attemptId: w.attemptId, answer: { ok: false, error: UNAVAILABLE } });
    };
    syncFail();
    syncFail();
    expect(d.view().intake!.state).toBe("paused");
    d.ok(d.signal(failed()));
    const { work } = fireWrite(d);
    expect(work).toEqual([]);
    expect(d.eventsOf("intake.write_held")).toHaveLength(1);
    expect(d.view().intake).toMatchObject({ pendingWrites: 1, writes: [{ state: "held" }] });
    expect(d.timer("intake_write")).toBeUndefined();
    // The probe answers: the breaker closes, the held writes are dispatched in the same transition.
    const probe = d.timer("intake_sync")!;
    d.fire(probe.timerId);
    const w = d.newWork().find((x) => x.type === "tickets.sync")!;
    const r = d.signal({ name: "tickets_synced", attemptId: w.attemptId, answer: { ok: true, tickets: [] } });
    expect(d.eventsOf("intake.resumed", r.effects)).toHaveLength(1);
    expect(d.newWork(r.effects).filter((x) => x.type === "ticket.update")).toEqual([
      expect.objectContaining({ payload: expect.objectContaining({ writeId: "tk-7.ticket.update.Implementing.1", intake: RUN }) }),
    ]);
  });

  it("while the intake run is paused its writes wait; resumed, they go", () => {
    const d = intake();
    d.ok(d.signal(failed()));
    d.ok(d.signal({ name: "pause" }));
    expect(fireWrite(d).work).toEqual([]);
    const r = d.ok(d.signal({ name: "resume" }));
    expect(d.newWork(r.effects).filter((x) => x.type === "ticket.update")).toHaveLength(1);
  });

  it("a newer state write for the ticket replaces an older one still waiting (its comment still goes)", () => {
    const d = intake();
    d.ok(d.signal(failed()));
    const newer: TicketWrite = { kind: "state", key: "tk-7.state.PRDrafted.1", state: "In Review" };
    const r = d.ok(d.signal(failed({ writeId: "tk-7.ticket.update.PRDrafted.1", attemptId: "tk-7.ticket.update.PRDrafted.1", writes: [newer] })));
    expect(d.eventsOf("intake.write_superseded", r.effects)).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ keys: ["tk-7.state.Implementing.1"], by: "tk-7.ticket.update.PRDrafted.1" }) }),
    ]);
    const writes = d.view().intake!.writes!;
    expect(writes.map((w) => w.keys)).toEqual([["tk-7.stage.Implementing.1"], ["tk-7.state.PRDrafted.1"]]);
  });

  it("is bounded: past the bound the oldest pending write is abandoned", () => {
    const d = intake();
    for (let i = 0; i <= MAX_PENDING_WRITES; i++) {
      d.tick(1);
      d.ok(d.signal(failed({ writeId: `w${i}`, attemptId: `w${i}`, ticket: { ...TICKET, id: `t${i}`, key: `ENG-${i}` }, writes: [WRITES[1]!] })));
    }
    expect(d.view().intake!.pendingWrites).toBe(MAX_PENDING_WRITES);
    expect(d.eventsOf("intake.write_abandoned")).toEqual([expect.objectContaining({ data: expect.objectContaining({ writeId: "w0" }) })]);
  });

  it("a run that is not an intake refuses the hub's write reports; an ended intake ignores them", () => {
    const job = Drive.of("job", { input: { goal: "x" }, autoStart: true });
    expectRefused(job.signal(failed()), RefusalCode.IllegalTransition);
    const d = intake();
    d.ok(d.signal({ name: "cancel" }));
    expect(d.signal(failed()).changed).toBe(false);
  });
});
